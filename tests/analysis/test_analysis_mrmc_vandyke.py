"""Reproduce every published Van Dyke MRMC number (Iowa OR-DBM 2.51, MRMCaov, JAFROC 4.2.1).

The reference values live in ../shared/data/mrmc/vandyke_reference.json as printed strings; each must be
matched to within half a unit of its last printed digit (JAFROC prints single precision: relative 1e-5 is
also allowed for that block, as the JSON's tolerance rule says). Every key is resolved; an unknown key
fails the test instead of being skipped.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from analysis import mrmc
from analysis.mrmc_io import read_long_csv

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mrmc"
REFERENCE = DATA / "vandyke_reference.json"
CSV = DATA / "vandyke.csv"
HAVE_DATA = REFERENCE.exists() and CSV.exists()
pytestmark = pytest.mark.skipif(not HAVE_DATA, reason=f"Van Dyke reference data not found under {DATA}")

SINGLE_PRECISION_SOURCES = {"jafroc_4_2_1_dbm"}
# MRMCaov clips per-modality and per-reader CIs to [0, 1]: the *_t01 prefixes and the sens/spec blocks.
CLIPPED_PREFIXES = {"or_jk_t01", "or_dl_t01", "sens_jk", "spec_jk", "sens_jkall"}


def _reference() -> dict:
    return json.loads(REFERENCE.read_text()) if HAVE_DATA else {"published": {}, "computed_full_precision":
                                                                 {"values": {}}}


REF = _reference()
PUBLISHED = [(source, key, printed) for source, values in REF["published"].items()
             for key, printed in values.items()]
COMPUTED = list(REF["computed_full_precision"]["values"].items())


@pytest.fixture(scope="module")
def results() -> dict:
    table = read_long_csv(CSV)
    ids = {"modality_ids": table.modality_ids, "reader_ids": table.reader_ids}
    auc_jk = mrmc.analyse(table.ratings, table.truth, covariance="jackknife", **ids)
    auc_dl = mrmc.analyse(table.ratings, table.truth, covariance="delong", **ids)
    sens = mrmc.analyse(table.ratings, table.truth, metric="sensitivity", threshold=3,
                        covariance="jackknife", **ids)
    spec = mrmc.analyse(table.ratings, table.truth, metric="specificity", threshold=3,
                        covariance="jackknife", **ids)
    return {
        "or_jk": auc_jk.obuchowski_rockette, "or_dl": auc_dl.obuchowski_rockette, "dbm": auc_jk.dbm,
        "sens_jk": sens.obuchowski_rockette, "spec_jk": spec.obuchowski_rockette,
        "sens_jkall": _sensitivity_jackknifed_over_all_cases(table, ids),
    }


def _sensitivity_jackknifed_over_all_cases(table, ids) -> mrmc.ORResult:
    """The JSON's contrast case: deleting a non-diseased case leaves sensitivity unchanged."""
    calls = mrmc.dichotomise(table.ratings, 3)
    sens = mrmc.fom_components(calls, table.truth, "sensitivity")
    jackknife = np.repeat(sens.fom[..., None], table.truth.size, axis=-1)
    jackknife[..., table.truth] = sens.jackknife
    everything = mrmc.FomComponents("sensitivity", sens.fom, sens.v10, None, jackknife,
                                    np.arange(table.truth.size))
    return mrmc.obuchowski_rockette(sens.fom, mrmc.jackknife_covariance(everything), **ids)


def _find(items, **match):
    found = [item for item in items if all(getattr(item, k) == v for k, v in match.items())]
    assert len(found) == 1, f"expected one item matching {match}, found {len(found)}"
    return found[0]


DIFF_FIELDS = {"est": "estimate", "se": "se", "df": "df", "t": "statistic", "z": "statistic", "p": "p",
               "ci_lo": "ci_lo", "ci_hi": "ci_hi"}
SINGLE_FIELDS = {"est": "estimate", "se": "se", "df": "df", "ci_lo": "ci_lo", "ci_hi": "ci_hi", "msr": "msr",
                 "var": "var", "cov2": "cov2"}


def _difference(differences, label: str, field: str) -> float:
    a, b = label.split("-")
    return getattr(_find(differences, modality_a=a, modality_b=b), DIFF_FIELDS[field])


def _test_value(test: mrmc.ModalityTest, parts: list[str], clip: bool) -> float:
    head = parts[0]
    if head in ("F", "X2"):
        return test.statistic
    if head in ("df1", "df"):
        return test.df1
    if head in ("ddf", "p", "den"):
        return {"ddf": test.ddf, "p": test.p, "den": test.den}[head]
    if head == "diff":
        return _difference(test.differences, parts[1], parts[2])
    if head == "single":
        value = getattr(_find(test.modalities, modality=parts[1]), SINGLE_FIELDS[parts[2]])
        return float(np.clip(value, 0, 1)) if clip and parts[2].startswith("ci_") else value
    if head == "reader":
        reader = _find(test.readers, reader=parts[1])
        if parts[2] == "diff":
            return _difference(reader.differences, parts[3], parts[4])
        return {"var": reader.var, "cov1": reader.cov1, "MS_TC": reader.ms_tc}[parts[2]]
    if head == "readermod":
        est = _find(test.reader_modality, modality=parts[1], reader=parts[2])
        value = getattr(est, parts[3])
        return float(np.clip(value, 0, 1)) if clip and parts[3].startswith("ci_") else value
    raise KeyError(head)


def _or_value(result: mrmc.ORResult, parts: list[str], clip: bool) -> float:
    head = parts[0]
    if head in ("MST", "MSR", "MSTR", "SST", "SSR", "SSTR"):
        return getattr(result.anova, head)
    if head in ("var", "cov1", "cov2", "cov3", "corr1", "corr2", "corr3"):
        return getattr(result.terms, head)
    if head == "varR":
        return result.var_r
    if head == "varTR":
        return result.var_tr
    return _test_value(getattr(result, head), parts[1:], clip)


def _dbm_value(result: mrmc.DBMResult, parts: list[str]) -> float:
    head = parts[0]
    if head.startswith("SS_"):
        return result.anova.ss[head[3:]]
    if head.startswith("MS_"):
        return result.anova.ms[head[3:]]
    if head.startswith("var_"):
        return result.variance_components[head]
    if head == "trt":
        return result.anova.modality_ms[result.modality_ids.index(parts[1])][parts[2]]
    return _test_value(getattr(result, head), parts[1:], clip=False)


def resolve(results: dict, key: str) -> float:
    """The value this implementation gives for a reference key (key legend in the JSON)."""
    prefix, *parts = key.split(".")
    if prefix in ("auc", "sens", "spec"):
        result = results[{"auc": "or_jk", "sens": "sens_jk", "spec": "spec_jk"}[prefix]]
        return result.fom[result.modality_ids.index(parts[0]), result.reader_ids.index(parts[1])]
    if prefix == "auc_mean":
        return results["or_jk"].fom_mean[results["or_jk"].modality_ids.index(parts[0])]
    if prefix == "dbm":
        return _dbm_value(results["dbm"], parts)
    base = prefix.removesuffix("_t01")
    return _or_value(results[base], parts, clip=prefix in CLIPPED_PREFIXES)


def printed_tolerance(printed: str, source: str) -> float:
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    tolerance = 0.5 * 10.0 ** -decimals
    if source in SINGLE_PRECISION_SOURCES:
        tolerance = max(tolerance, 1e-5 * abs(float(printed)))
    return tolerance + 1e-12


def test_every_published_value_is_checked():
    counts = {source: len(values) for source, values in REF["published"].items()}
    assert len(PUBLISHED) == sum(counts.values()) == 456
    for source, summary in REF["verification"]["results"].items():
        assert counts[source] == summary["n_checked"], source


@pytest.mark.parametrize(("source", "key", "printed"), PUBLISHED, ids=[f"{s}:{k}" for s, k, _ in PUBLISHED])
def test_reproduces_published_value(results, source, key, printed):
    value = float(resolve(results, key))
    tolerance = printed_tolerance(printed, source)
    assert abs(value - float(printed)) <= tolerance, (
        f"{source} {key}: computed {value!r}, published {printed} (tolerance {tolerance:g})")


@pytest.mark.parametrize(("key", "expected"), COMPUTED, ids=[k for k, _ in COMPUTED])
def test_agrees_with_independent_full_precision_values(results, key, expected):
    """Also unpublished values (DeLong FRRC/RRFC, specificity, DBM details) agree with an independent
    implementation to its 12 significant digits."""
    value = float(resolve(results, key))
    assert math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-12), f"{key}: {value!r} vs {expected!r}"


def test_dbm_random_readers_equals_or_jackknife_exactly(results):
    dbm, or_jk = results["dbm"].rrrc, results["or_jk"].rrrc
    assert dbm.statistic == pytest.approx(or_jk.statistic, rel=1e-10)
    assert dbm.ddf == pytest.approx(or_jk.ddf, rel=1e-10)
    assert dbm.differences[0].se == pytest.approx(or_jk.differences[0].se, rel=1e-10)
