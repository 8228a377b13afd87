"""Read a long-format reader-study CSV, run the MRMC analysis and return JSON-ready results. No Django.

The CSV has one row per reader x case x modality with the columns ``modality,reader,case,truth,rating``
(header required, any column order, extra columns ignored):

* ``modality``, ``reader``, ``case``: identifiers (text; sorted numerically when all are integers).
* ``truth``: 1 = diseased (sarcoma, positive), 0 = non-diseased; the same for every row of a case.
* ``rating``: a number, higher = more confident the case is diseased (e.g. a 0-100 likelihood), or 0/1
  calls; ``threshold`` dichotomises it (rating >= threshold is a positive call).

Every reader must rate every case in every modality (fully crossed design). Problems raise
:class:`MRMCInputError` whose message names the file, the line and column, and the reason.
``python manage.py mrmc`` is a thin wrapper around :func:`run_from_csv`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis import mrmc
from core.csv_input import csv_rows

REQUIRED_COLUMNS: tuple[str, ...] = ("modality", "reader", "case", "truth", "rating")
_MAX_LISTED = 5


class MRMCInputError(ValueError):
    """The CSV cannot be analysed; the message names the file, line/column and reason."""


@dataclass(frozen=True)
class ReaderStudyTable:
    """A fully crossed reader study: ratings (modalities, readers, cases), truth (cases,) True = diseased."""

    path: str
    ratings: np.ndarray
    truth: np.ndarray
    modality_ids: tuple[str, ...]
    reader_ids: tuple[str, ...]
    case_ids: tuple[str, ...]


def _natural_order(ids) -> list[str]:
    ids = list(ids)
    try:
        return sorted(ids, key=int)
    except ValueError:
        return sorted(ids)


def _parse_truth(value: str, where: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if number not in (0.0, 1.0):
        raise MRMCInputError(f"{where}, column 'truth': {value!r} is not 0 or 1 (1 = diseased/sarcoma)")
    return number == 1.0


def _parse_rating(value: str, where: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise MRMCInputError(f"{where}, column 'rating': {value!r} is not a number") from None
    if not math.isfinite(number):
        raise MRMCInputError(f"{where}, column 'rating': {value!r} is not a finite number")
    return number


def _read_rows(path: Path):
    """Yield (line number, {column: stripped value}) after checking the header (``core.csv_input``); empty
    lines skipped, the first row with a wrong number of fields or an empty value raises."""
    for line, row in csv_rows(path, REQUIRED_COLUMNS, MRMCInputError):
        if isinstance(row, str):
            raise MRMCInputError(f"{path}, line {line}: {row}")
        for column, value in row.items():
            if not value:
                raise MRMCInputError(f"{path}, line {line}, column {column!r}: empty value")
        yield line, row


def read_long_csv(path) -> ReaderStudyTable:
    """Read and validate a long-format reader-study CSV (see the module docstring)."""
    path = Path(path)
    values: dict[tuple[str, str, str], float] = {}
    first_line: dict[tuple[str, str, str], int] = {}
    truth_of: dict[str, tuple[bool, int]] = {}
    for line, row in _read_rows(path):
        where = f"{path}, line {line}"
        truth = _parse_truth(row["truth"], where)
        rating = _parse_rating(row["rating"], where)
        key = (row["modality"], row["reader"], row["case"])
        if key in values:
            raise MRMCInputError(f"{where}: modality {key[0]!r}, reader {key[1]!r}, case {key[2]!r} is rated "
                                 f"twice (also on line {first_line[key]})")
        case_truth = truth_of.setdefault(row["case"], (truth, line))
        if case_truth[0] != truth:
            raise MRMCInputError(f"{where}, column 'truth': case {row['case']!r} has truth {int(truth)} here "
                                 f"but {int(case_truth[0])} on line {case_truth[1]}")
        values[key], first_line[key] = rating, line
    if not values:
        raise MRMCInputError(f"{path}: no data rows after the header")

    modalities = _natural_order({k[0] for k in values})
    readers = _natural_order({k[1] for k in values})
    cases = _natural_order(truth_of)
    ratings = np.full((len(modalities), len(readers), len(cases)), np.nan)
    m_index = {m: i for i, m in enumerate(modalities)}
    r_index = {r: i for i, r in enumerate(readers)}
    c_index = {c: i for i, c in enumerate(cases)}
    for (m, r, c), value in values.items():
        ratings[m_index[m], r_index[r], c_index[c]] = value
    _check_complete(path, ratings, modalities, readers, cases)
    truth = np.array([truth_of[c][0] for c in cases], dtype=bool)
    return ReaderStudyTable(str(path), ratings, truth, tuple(modalities), tuple(readers), tuple(cases))


def _check_complete(path: Path, ratings: np.ndarray, modalities, readers, cases) -> None:
    missing = np.argwhere(np.isnan(ratings))
    if missing.size == 0:
        return
    listed = [f"reader {readers[r]!r} / case {cases[c]!r} / modality {modalities[m]!r}"
              for m, r, c in missing[:_MAX_LISTED]]
    more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
    raise MRMCInputError(f"{path}: every reader must rate every case in every modality; missing rows for "
                         f"{'; '.join(listed)}{more}")


# --------------------------------------------------------------------------------------------------
# Results as JSON-ready dicts
# --------------------------------------------------------------------------------------------------


def _num(value) -> float | None:
    """A finite float, or None (JSON has no NaN/inf: an undefined df or statistic becomes null)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _difference(d: mrmc.Difference) -> dict:
    stat_name = "z" if math.isinf(d.df) else "t"
    return {"modalities": [d.modality_a, d.modality_b], "estimate": _num(d.estimate), "se": _num(d.se),
            "df": _num(d.df), stat_name: _num(d.statistic), "p": _num(d.p), "ci_lo": _num(d.ci_lo),
            "ci_hi": _num(d.ci_hi)}


def _modality(m: mrmc.ModalityEstimate) -> dict:
    out = {"modality": m.modality, "estimate": _num(m.estimate), "se": _num(m.se), "df": _num(m.df),
           "ci_lo": _num(m.ci_lo), "ci_hi": _num(m.ci_hi)}
    for name in ("msr", "var", "cov2"):
        if getattr(m, name) is not None:
            out[name] = _num(getattr(m, name))
    return out


def _statistic(test) -> dict:
    if test.statistic_name == "chi2":
        return {"chi2": _num(test.statistic), "df": _num(test.df1), "p": _num(test.p)}
    return {"F": _num(test.statistic), "df1": _num(test.df1), "ddf": _num(test.ddf), "p": _num(test.p)}


def _test(test: mrmc.ModalityTest) -> dict:
    out = {"analysis": test.analysis, **_statistic(test), "den": _num(test.den),
           "differences": [_difference(d) for d in test.differences],
           "modalities": [_modality(m) for m in test.modalities]}
    if test.readers:
        out["readers"] = [
            {"reader": rt.reader, **_statistic(rt),
             **{k: _num(getattr(rt, k)) for k in ("var", "cov1", "ms_tc") if getattr(rt, k) is not None},
             "differences": [_difference(d) for d in rt.differences]}
            for rt in test.readers]
    if test.reader_modality:
        out["reader_modality"] = [
            {"modality": e.modality, "reader": e.reader, "estimate": _num(e.estimate), "se": _num(e.se),
             "ci_lo": _num(e.ci_lo), "ci_hi": _num(e.ci_hi)} for e in test.reader_modality]
    return out


def analysis_to_dict(result: mrmc.MRMCAnalysis) -> dict:
    """JSON-ready summary of an :class:`mrmc.MRMCAnalysis` (NaN/inf become None)."""
    o, dbm = result.obuchowski_rockette, result.dbm
    terms = o.terms
    return {
        "metric": result.metric,
        "covariance": result.covariance_method,
        "threshold": result.threshold,
        "modalities": list(o.modality_ids),
        "readers": list(o.reader_ids),
        "n_positive": result.n_positive,
        "n_negative": result.n_negative,
        "n_jackknife_cases": o.n_cases,
        "figure_of_merit": {
            "mean": {m: _num(v) for m, v in zip(o.modality_ids, o.fom_mean, strict=True)},
            "per_reader": {m: {r: _num(o.fom[i, j]) for j, r in enumerate(o.reader_ids)}
                           for i, m in enumerate(o.modality_ids)},
        },
        "covariance_terms": {"var": _num(terms.var), "cov1": _num(terms.cov1), "cov2": _num(terms.cov2),
                             "cov3": _num(terms.cov3), "corr1": _num(terms.corr1),
                             "corr2": _num(terms.corr2), "corr3": _num(terms.corr3),
                             "var_r": _num(o.var_r), "var_tr": _num(o.var_tr)},
        "anova": {k: _num(getattr(o.anova, k)) for k in ("MST", "MSR", "MSTR", "SST", "SSR", "SSTR")},
        "random_readers_random_cases": _test(o.rrrc),
        "fixed_readers_random_cases": _test(o.frrc),
        "random_readers_fixed_cases": _test(o.rrfc),
        "dbm": {
            "mean_squares": {k: _num(v) for k, v in dbm.anova.ms.items()},
            "df": dict(dbm.anova.df),
            "variance_components": {k: _num(v) for k, v in dbm.variance_components.items()},
            "random_readers_random_cases": _test(dbm.rrrc),
            "fixed_readers_random_cases": _test(dbm.frrc),
            "random_readers_fixed_cases": _test(dbm.rrfc),
        },
    }


def run_from_csv(path, *, cov: str = "delong", metric: str = "auc", threshold: float | None = None,
                 alpha: float = 0.05) -> dict:
    """Read ``path`` (long CSV), run OR (``cov`` = delong | jackknife) and DBM on ``metric``; return a dict.

    ``metric`` is auc, sensitivity or specificity; sensitivity/specificity need 0/1 ratings or a
    ``threshold`` (rating >= threshold is a positive call).
    """
    if metric not in mrmc.FIGURES_OF_MERIT:
        raise MRMCInputError(f"unknown metric {metric!r}; expected one of {', '.join(mrmc.FIGURES_OF_MERIT)}")
    if cov not in mrmc.COVARIANCE_METHODS:
        raise MRMCInputError(f"unknown covariance {cov!r}; expected one of "
                             f"{', '.join(mrmc.COVARIANCE_METHODS)}")
    if not 0 < alpha < 1:
        raise MRMCInputError(f"alpha must lie between 0 and 1, got {alpha}")
    table = read_long_csv(path)
    try:
        result = mrmc.analyse(table.ratings, table.truth, metric=metric, covariance=cov, threshold=threshold,
                              modality_ids=table.modality_ids, reader_ids=table.reader_ids, alpha=alpha)
    except mrmc.MRMCError as exc:
        raise MRMCInputError(f"{table.path}: {exc}") from None
    return {"file": table.path, "alpha": alpha, "n_cases": len(table.case_ids), **analysis_to_dict(result)}
