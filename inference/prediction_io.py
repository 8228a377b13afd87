"""Read out-of-fold slice predictions made anywhere from a CSV and evaluate them honestly. No Django import.

One row per slice × repeat, header required, any column order, extra columns ignored::

    patient,truth,fold,repeat,sequence,slice,p_sarcoma

* ``patient``: an identifier (text); ``truth``: ``sarcoma`` or ``leiomyoma``, ``fold``: 1…F, the same on
  every row of a patient;
* ``repeat``: 1…R (the training sets M1…M24); ``sequence``: one of ``core.constants.SEQUENCE_CODES``;
  ``slice``: the slice's identifier within the patient's sequence (text, e.g. its instance number);
* ``p_sarcoma``: the probability in [0, 1] given to the slice by repeat r's model of the fold that held the
  patient out.

Every slice must have one prediction of every repeat. All problems found are reported at once
(:class:`PredictionInputError`, the first ``MAX_LISTED`` with their line numbers); opening the file and
checking its header is ``core.csv_input.csv_rows``, shared with ``analysis.mrmc_io``. ``python manage.py
evaluate_predictions`` is a thin wrapper around :func:`evaluate_file`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.constants import LEIOMYOMA, SARCOMA, SEQUENCE_CODES
from core.csv_input import csv_rows
from inference.nested import NESTED_CAVEAT, method_intervals, nested_evaluation
from inference.predictions import SliceIndex, evaluation_calls

REQUIRED_COLUMNS: tuple[str, ...] = ("patient", "truth", "fold", "repeat", "sequence", "slice", "p_sarcoma")
MAX_LISTED = 20


class PredictionInputError(ValueError):
    """The prediction CSV cannot be evaluated; the message lists the problems with file and line."""


@dataclass(frozen=True)
class PredictionTable:
    """Validated out-of-fold predictions.

    repeat_probs ``(R, N)`` in [0, 1]; index maps the N slices to patients and sequences; truth ``(P,)`` bool
    (sarcoma); folds ``(P,)`` int (as in the file, 1…F); patients ``(P,)`` identifiers in index order.
    """

    path: str
    patients: tuple[str, ...]
    truth: np.ndarray
    folds: np.ndarray
    repeat_probs: np.ndarray
    index: SliceIndex


def _natural_order(ids) -> list[str]:
    ids = list(ids)
    try:
        return sorted(ids, key=int)
    except ValueError:
        return sorted(ids)


def _positive_int(value: str) -> int | None:
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number >= 1 else None


class _Problems:
    """Collects problems; raises once with the first MAX_LISTED and a count of the rest."""

    def __init__(self, path: Path):
        self.path, self.items = path, []

    def add(self, line: int | None, reason: str) -> None:
        self.items.append(f"line {line}: {reason}" if line else reason)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        shown = self.items[:MAX_LISTED]
        more = len(self.items) - len(shown)
        tail = f"\n  … and {more} more problem(s)" if more else ""
        raise PredictionInputError(f"{self.path}: {len(self.items)} problem(s):\n  " + "\n  ".join(shown) + tail)


def _parse_row(row: dict, codes: Sequence[str]) -> tuple[tuple, list[str]]:
    """(truth, fold, repeat, p) and the row's problems."""
    reasons = [f"column {c!r}: empty value" for c, v in row.items() if not v]
    if reasons:
        return (), reasons
    truth = row["truth"].lower()
    if truth not in (SARCOMA, LEIOMYOMA):
        reasons.append(f"column 'truth': {row['truth']!r} is not {SARCOMA!r} or {LEIOMYOMA!r}")
    fold, repeat = _positive_int(row["fold"]), _positive_int(row["repeat"])
    if fold is None:
        reasons.append(f"column 'fold': {row['fold']!r} is not a whole number >= 1")
    if repeat is None:
        reasons.append(f"column 'repeat': {row['repeat']!r} is not a whole number >= 1")
    if row["sequence"] not in codes:
        reasons.append(f"column 'sequence': unknown code {row['sequence']!r} (expected one of {', '.join(codes)})")
    try:
        p = float(row["p_sarcoma"])
    except ValueError:
        p = math.nan
    if not (math.isfinite(p) and 0.0 <= p <= 1.0):
        reasons.append(f"column 'p_sarcoma': {row['p_sarcoma']!r} is not a probability in [0, 1]")
    return (truth == SARCOMA, fold, repeat, p), reasons


def _check_range(problems: _Problems, values: set, what: str) -> int:
    """Values must be 1…max without gaps; returns max."""
    top = max(values) if values else 0
    gaps = sorted(set(range(1, top + 1)) - values)
    if gaps:
        problems.add(None, f"{what} must run 1…{top} without gaps; none has {what} "
                           f"{', '.join(map(str, gaps[:10]))}")
    return top


def read_predictions(path, *, codes: Sequence[str] = SEQUENCE_CODES) -> PredictionTable:
    """Read and validate a prediction CSV (module docstring); raises :class:`PredictionInputError`."""
    path = Path(path)
    codes = tuple(codes)
    problems = _Problems(path)
    patient_info: dict[str, tuple[bool, int, int]] = {}           # patient -> (truth, fold, first line)
    probs: dict[tuple[str, str, str], dict[int, float]] = {}       # slice -> {repeat: p}
    seen: dict[tuple[str, str, str, int], int] = {}
    for line, row in csv_rows(path, REQUIRED_COLUMNS, PredictionInputError):
        if isinstance(row, str):
            problems.add(line, row)
            continue
        parsed, reasons = _parse_row(row, codes)
        for reason in reasons:
            problems.add(line, reason)
        if reasons:
            continue
        truth, fold, repeat, p = parsed
        patient = row["patient"]
        first = patient_info.setdefault(patient, (truth, fold, line))
        if first[0] != truth:
            problems.add(line, f"patient {patient!r} has truth {'sarcoma' if truth else 'leiomyoma'} here but "
                               f"{'sarcoma' if first[0] else 'leiomyoma'} on line {first[2]}")
        if first[1] != fold:
            problems.add(line, f"patient {patient!r} is in fold {fold} here but in fold {first[1]} on line {first[2]}")
        key = (patient, row["sequence"], row["slice"])
        if (*key, repeat) in seen:
            problems.add(line, f"patient {patient!r}, sequence {key[1]!r}, slice {key[2]!r}, repeat {repeat} "
                               f"appears twice (also on line {seen[(*key, repeat)]})")
            continue
        seen[(*key, repeat)] = line
        probs.setdefault(key, {})[repeat] = p
    if not probs and not problems.items:
        raise PredictionInputError(f"{path}: no data rows after the header")
    problems.raise_if_any()

    n_repeats = _check_range(problems, {r for per in probs.values() for r in per}, "repeat")
    _check_range(problems, {info[1] for info in patient_info.values()}, "fold")
    for key, per in probs.items():
        if len(per) != n_repeats:
            absent = sorted(set(range(1, n_repeats + 1)) - set(per))
            problems.add(seen[(*key, next(iter(per)))],
                         f"patient {key[0]!r}, sequence {key[1]!r}, slice {key[2]!r} lacks repeat(s) "
                         f"{', '.join(map(str, absent[:10]))}; every slice needs all {n_repeats}")
    problems.raise_if_any()

    patients = _natural_order(patient_info)
    truth = np.array([patient_info[p][0] for p in patients], dtype=bool)
    folds = np.array([patient_info[p][1] for p in patients], dtype=np.int64)
    if truth.all() or not truth.any():
        raise PredictionInputError(f"{path}: the evaluation needs both sarcoma and leiomyoma patients")
    if np.unique(folds).size < 2:
        raise PredictionInputError(f"{path}: at least 2 folds are needed")
    code_pos = {c: i for i, c in enumerate(codes)}
    patient_pos = {p: i for i, p in enumerate(patients)}
    keys = sorted(probs, key=lambda k: (patient_pos[k[0]], code_pos[k[1]], k[2]))
    repeat_probs = np.array([[probs[k][r] for k in keys] for r in range(1, n_repeats + 1)], dtype=np.float64)
    index = SliceIndex.build([patient_pos[k[0]] for k in keys], [code_pos[k[1]] for k in keys],
                             n_patients=len(patients), n_sequences=len(codes), patient_labels=patients)
    return PredictionTable(str(path), tuple(patients), truth, folds, repeat_probs, index)


def _block(result, *, alpha: float, resamples: int, seed: int) -> dict:
    intervals = method_intervals(result, alpha=alpha, resamples=resamples, seed=seed).as_dict()
    return {"label": result.label, "n_sets": int(result.calls.shape[0]), **intervals}


def evaluate_table(table: PredictionTable, *, nested: bool = True, top: int = 10, rule: str = "mean",
                   alpha: float = 0.05, resamples: int = 2000, seed: int = 0,
                   codes: Sequence[str] = SEQUENCE_CODES) -> dict:
    """The three methods (``inference.nested``) with CIs on the table's leave-one-repeat-out ensembles.

    JSON-ready; metrics are fractions with ``ci_low`` / ``ci_high``; ``optimism_points`` in points (%).
    Without ``nested`` only ``paper_style`` and ``training_fold_threshold`` (and no optimism).
    """
    if table.repeat_probs.shape[0] < 2:
        raise PredictionInputError(f"{table.path}: leave-one-repeat-out ensembles need at least 2 repeats, "
                                   f"got {table.repeat_probs.shape[0]}")
    calls, _ = evaluation_calls(table.repeat_probs, table.index, rule=rule)
    try:
        result = nested_evaluation(calls, table.truth, table.folds, top=top, codes=codes, nested=nested)
    except ValueError as exc:
        raise PredictionInputError(f"{table.path}: {exc}") from None
    out = {"file": table.path, "n_patients": len(table.patients), "n_sarcoma": int(table.truth.sum()),
           "n_leiomyoma": int((~table.truth).sum()), "n_folds": int(np.unique(table.folds).size),
           "n_repeats": int(table.repeat_probs.shape[0]), "n_slices": table.index.n_slices,
           "members": "leave-one-repeat-out ensembles", "sequence_rule": rule, "top": top, "alpha": alpha}
    for method in result.methods:
        out[method.method] = _block(method, alpha=alpha, resamples=resamples, seed=seed)
    if result.nested is not None:
        out["optimism_points"] = result.optimism_points
        out["nested_note"] = NESTED_CAVEAT
        share = result.nested.vote_share
        out["nested_patients"] = [{"patient": p, "truth": SARCOMA if t else LEIOMYOMA, "fold": int(f),
                                   "sarcoma_vote_share": float(s)}
                                  for p, t, f, s in zip(table.patients, table.truth, table.folds, share,
                                                        strict=True)]
    return out


def evaluate_file(path, *, nested: bool = True, top: int = 10, alpha: float = 0.05, resamples: int = 2000,
                  seed: int = 0) -> dict:
    """Read ``path`` (:func:`read_predictions`) and evaluate it (:func:`evaluate_table`)."""
    if not 0 < alpha < 1:
        raise PredictionInputError(f"alpha must lie between 0 and 1, got {alpha}")
    if top < 1:
        raise PredictionInputError(f"top must be at least 1, got {top}")
    if resamples < 1:
        raise PredictionInputError(f"resamples must be at least 1, got {resamples}")
    return evaluate_table(read_predictions(path), nested=nested, top=top, alpha=alpha, resamples=resamples,
                          seed=seed)
