"""Study planning (issue 19): how many readers and cases a pivotal reader study needs. No Django.

From a pilot — two modalities (e.g. exam 1 unaided, exam 2 with the AI) read by the same readers on the same cases —
the Obuchowski-Rockette variance components (`analysis.mrmc`: the treatment × reader component σ²_TR and the error
variance and covariances Var, Cov1, Cov2, Cov3 of the figure of merit, jackknife or DeLong), then for a pivotal
study of J readers and K cases, following Hillis, Obuchowski & Berbaum, "Power estimation for multireader ROC
methods: an updated and unified approach", Acad Radiol 2011;18:129-142 (the covariances scale with the number of
cases as K*/K, K* the pilot's):

    RRRC  den = σ²_TR⁺ + K*/K · (Var − Cov1 + (J − 1)·(Cov2 − Cov3)⁺)
          ddf = den² / [(σ²_TR⁺ + K*/K · (Var − Cov1 − (Cov2 − Cov3)⁺))² / (J − 1)]     (Hillis's ddf)
    FRRC  den = K*/K · (Var − Cov1 + (J − 1)·(Cov2 − Cov3)⁺),  ddf = K − 1
    RRFC  den = σ²_TR⁺ + K*/K · (Var − Cov1 − (Cov2 − Cov3)⁺),  ddf = J − 1
    non-centrality λ = J·d² / (2·den); power = P(F(1, ddf; λ) > F₁₋α(1, ddf))

(x⁺ = max(x, 0); d the effect size, a difference of the figure of merit between the two modalities). These are
the formulas of RJafroc's `SsPowerGivenJKOrVarComp`, whose published output for the Van Dyke data the tests
reproduce to the printed precision (FRRC with K − 1 denominator degrees of freedom as RJafroc has it; the paper's
OR form uses ∞, which gives slightly more power). The smallest K for a wanted power is found by counting up from
K = 2, as `SsSampleSizeKGivenJ` does.

Written here rather than taken from a library: no maintained Python package implements MRMC power (the R packages
RJafroc and iMRMC do); the variance components come from the project's own verified OR analysis.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from analysis import mrmc

ANALYSES = ("RRRC", "FRRC", "RRFC")
MAX_CASES = 2000          # RJafroc's search stops there too
MAX_READERS = 100


class PlanningError(ValueError):
    """Input that cannot be planned from (a pilot without two modalities, an effect size of 0, ...)."""


@dataclass(frozen=True)
class PilotComponents:
    """What the pilot gives the planning: its OR variance components, its size and its observed effect."""

    var_tr: float
    var: float
    cov1: float
    cov2: float
    cov3: float
    pilot_cases: int
    pilot_readers: int
    observed_effect: float        # FOM of the second modality minus the first (e.g. exam 2 − exam 1)
    fom: tuple[float, float]      # the two modalities' mean figures of merit
    modalities: tuple[str, str]
    covariance: str               # "jackknife" or "delong"
    metric: str = "auc"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Power:
    """The power of one pivotal design, with the statistics it comes from."""

    analysis: str
    readers: int
    cases: int
    effect_size: float
    alpha: float
    power: float
    ncp: float
    ddf: float
    f_critical: float

    def to_dict(self) -> dict:
        return asdict(self)


def pilot_components(components: mrmc.FomComponents, *, covariance: str = "jackknife", modality_ids=("1", "2"),
                     metric: str = "auc") -> PilotComponents:
    """The OR variance components of a pilot's figure-of-merit components (two modalities, ≥ 2 readers)."""
    fom = np.asarray(components.fom, dtype=float)
    if fom.ndim != 2 or fom.shape[0] != 2:
        raise PlanningError(f"the pilot must have exactly two modalities to compare, it has {fom.shape[0]}")
    if fom.shape[1] < 2:
        raise PlanningError("the pilot needs at least two readers (the reader variance comes from them)")
    if covariance not in mrmc.COVARIANCE_METHODS:
        raise PlanningError(f"covariance must be one of {', '.join(mrmc.COVARIANCE_METHODS)}")
    cov = mrmc.jackknife_covariance(components) if covariance == "jackknife" else mrmc.delong_covariance(components)
    result = mrmc.obuchowski_rockette(fom, cov, metric=metric, n_cases=components.jackknife.shape[-1],
                                      modality_ids=modality_ids)
    terms = result.terms
    means = result.fom_mean
    return PilotComponents(var_tr=result.var_tr, var=terms.var, cov1=terms.cov1, cov2=terms.cov2, cov3=terms.cov3,
                           pilot_cases=int(components.jackknife.shape[-1]), pilot_readers=int(fom.shape[1]),
                           observed_effect=float(means[1] - means[0]), fom=(float(means[0]), float(means[1])),
                           modalities=tuple(str(m) for m in result.modality_ids), covariance=covariance,
                           metric=metric)


def power(pilot: PilotComponents, *, readers: int, cases: int, effect_size: float | None = None,
          alpha: float = 0.05, analysis: str = "RRRC") -> Power:
    """The power of a pivotal study of ``readers`` readers and ``cases`` cases (see the module's formulas)."""
    d = _effect(pilot, effect_size)
    _check(readers=readers, cases=cases, alpha=alpha, analysis=analysis)
    var_tr = max(pilot.var_tr, 0.0)
    cov23 = max(pilot.cov2 - pilot.cov3, 0.0)
    scale = pilot.pilot_cases / cases
    random_cases = scale * (pilot.var - pilot.cov1 + (readers - 1) * cov23)
    fixed_cases = var_tr + scale * (pilot.var - pilot.cov1 - cov23)
    if analysis == "RRRC":
        den = var_tr + random_cases
        ddf = den ** 2 / (fixed_cases ** 2 / (readers - 1)) if fixed_cases > 0 else float("inf")
    elif analysis == "FRRC":
        den, ddf = random_cases, float(cases - 1)
    else:
        den, ddf = fixed_cases, float(readers - 1)
    if den <= 0:
        raise PlanningError("the pilot's variance components give no variance to test against (every reader "
                            "scored every case the same way?): plan from another pilot")
    ncp = readers * d ** 2 / (2 * den)
    f_critical = float(stats.f.ppf(1 - alpha, 1, ddf))
    return Power(analysis=analysis, readers=readers, cases=cases, effect_size=d, alpha=alpha,
                 power=float(stats.ncf.sf(f_critical, 1, ddf, ncp)), ncp=float(ncp), ddf=float(ddf),
                 f_critical=f_critical)


def smallest_cases(pilot: PilotComponents, *, readers: int, target_power: float = 0.8,
                   effect_size: float | None = None, alpha: float = 0.05, analysis: str = "RRRC",
                   max_cases: int = MAX_CASES) -> Power | None:
    """The smallest K ≥ 2 whose power reaches ``target_power`` with ``readers`` readers; None when even
    ``max_cases`` cases do not (with random readers, more cases cannot make up for too few readers)."""
    if not 0 < target_power < 1:
        raise PlanningError(f"power must lie between 0 and 1, got {target_power}")
    low, high = 2, max_cases
    if power(pilot, readers=readers, cases=high, effect_size=effect_size, alpha=alpha,
             analysis=analysis).power < target_power:
        return None
    while low < high:                    # power grows with K: bisect for the first K that reaches the target
        middle = (low + high) // 2
        if power(pilot, readers=readers, cases=middle, effect_size=effect_size, alpha=alpha,
                 analysis=analysis).power >= target_power:
            high = middle
        else:
            low = middle + 1
    return power(pilot, readers=readers, cases=low, effect_size=effect_size, alpha=alpha, analysis=analysis)


def power_table(pilot: PilotComponents, *, readers=range(2, MAX_READERS + 1), target_power: float = 0.8,
                effect_size: float | None = None, alpha: float = 0.05, analysis: str = "RRRC") -> list[dict]:
    """For each J: the smallest K reaching ``target_power`` and its power (K None where none up to MAX_CASES)."""
    rows = []
    for j in readers:
        found = smallest_cases(pilot, readers=j, target_power=target_power, effect_size=effect_size, alpha=alpha,
                               analysis=analysis)
        rows.append({"readers": j, "cases": found.cases if found else None,
                     "power": found.power if found else None})
    return rows


def _effect(pilot: PilotComponents, effect_size: float | None) -> float:
    d = pilot.observed_effect if effect_size is None else float(effect_size)
    if not np.isfinite(d) or d == 0:
        raise PlanningError("the effect size is 0: there is nothing to detect (give one with --effect-size, "
                            "e.g. 0.05 for five AUC points)")
    return abs(d)


def _check(*, readers: int, cases: int, alpha: float, analysis: str) -> None:
    if analysis not in ANALYSES:
        raise PlanningError(f"analysis must be one of {', '.join(ANALYSES)}, got {analysis!r}")
    if not 2 <= readers <= 10_000:
        raise PlanningError(f"readers must be at least 2, got {readers}")
    if not 2 <= cases <= 1_000_000:
        raise PlanningError(f"cases must be at least 2, got {cases}")
    if not 0 < alpha < 1:
        raise PlanningError(f"alpha must lie between 0 and 1, got {alpha}")


def pilot_from_csv(path, *, covariance: str = "jackknife") -> PilotComponents:
    """The pilot's components from a long reader-study CSV (as `manage.py mrmc` reads it), empirical AUC."""
    from analysis.mrmc_io import read_long_csv

    table = read_long_csv(path)
    try:
        components = mrmc.fom_components(table.ratings, table.truth, "auc")
    except mrmc.MRMCError as exc:
        raise PlanningError(str(exc)) from None
    return pilot_components(components, covariance=covariance, modality_ids=table.modality_ids)


def plan(pilot: PilotComponents, *, readers: int, cases: int | None = None, effect_size: float | None = None,
         target_power: float = 0.8, alpha: float = 0.05, analysis: str = "RRRC", table: bool = False) -> dict:
    """What `manage.py mrmc_power` and the planning page report: the power of (J, K), or the smallest K for J;
    with ``table``, the smallest K for every J from 2 to 100. JSON-ready."""
    out = {"pilot": pilot.to_dict(), "analysis": analysis, "alpha": alpha, "target_power": target_power,
           "effect_size": _effect(pilot, effect_size),
           "effect_size_source": "observed in the pilot" if effect_size is None else "given"}
    if cases is not None:
        out["design"] = power(pilot, readers=readers, cases=cases, effect_size=effect_size, alpha=alpha,
                              analysis=analysis).to_dict()
    else:
        found = smallest_cases(pilot, readers=readers, target_power=target_power, effect_size=effect_size,
                               alpha=alpha, analysis=analysis)
        out["design"] = found.to_dict() if found else None
        out["readers"] = readers
    if table:
        out["table"] = power_table(pilot, target_power=target_power, effect_size=effect_size, alpha=alpha,
                                   analysis=analysis)
    return out
