"""Multi-reader multi-case (MRMC) analysis of a fully crossed reader study. No Django import.

Input: ``ratings`` of shape (modalities t, readers r, cases n) -- every reader reads every case in every
modality -- and ``truth`` of shape (n,), True for diseased (sarcoma, positive) cases. A *figure of merit*
(FOM) is computed per modality x reader:

* ``"auc"``: empirical (trapezoidal) AUC = Wilcoxon-Mann-Whitney statistic; a tie between a diseased and
  a non-diseased case counts 1/2. Ratings: higher = more confident the case is diseased.
* ``"sensitivity"``: mean of the binary call over the diseased cases.
* ``"specificity"``: mean of (1 - call) over the non-diseased cases.

Binary calls are ratings in {0, 1}, or ratings dichotomised by :func:`dichotomise` (rating >= threshold).

Analyses (formulas and references in docs/statistics.md):

* :func:`obuchowski_rockette` -- Obuchowski-Rockette (OR) model with the FOM error covariance from
  DeLong's structural components (``"delong"``) or the case jackknife (``"jackknife"``), and Hillis (2007)
  denominator degrees of freedom. Gives random readers & random cases (RRRC, F test), fixed readers &
  random cases (FRRC, chi-square test) and random readers & fixed cases (RRFC, F test).
* :func:`dorfman_berbaum_metz` -- DBM: ANOVA of jackknife pseudovalues (Hillis-improved RRRC ddf).

Jackknife and structural components run over the cases a FOM depends on: all cases for AUC, the diseased
cases for sensitivity, the non-diseased cases for specificity (the MRMCaov convention).

Both are verified against every published Van Dyke number in ``shared/data/mrmc`` (tests/analysis).
All tests are two-sided. Modality contrasts are "first minus second" in the order of ``modality_ids``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import numpy as np
from scipy import stats

from core.intervals import auc_components  # the one DeLong structural-components code

FigureOfMerit = Literal["auc", "sensitivity", "specificity"]
CovarianceMethod = Literal["delong", "jackknife"]
FIGURES_OF_MERIT: tuple[str, ...] = ("auc", "sensitivity", "specificity")
COVARIANCE_METHODS: tuple[str, ...] = ("delong", "jackknife")


class MRMCError(ValueError):
    """The data cannot be analysed as given (shape, classes, ratings); the message says why."""


# --------------------------------------------------------------------------------------------------
# Figures of merit and their case-level components
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FomComponents:
    """A FOM per modality x reader with the case-level pieces its covariance needs.

    ``v10`` (t, r, n1): structural component of each diseased case (for AUC the fraction of non-diseased
    cases it outranks, ties 1/2; for sensitivity the call itself); None when the FOM ignores diseased cases.
    ``v01`` (t, r, n0): the same for non-diseased cases; None when the FOM ignores them.
    ``jackknife`` (t, r, n_jk): the FOM with each of the ``jackknife_cases`` (indices into the case axis)
    deleted in turn.
    """

    metric: str
    fom: np.ndarray
    v10: np.ndarray | None
    v01: np.ndarray | None
    jackknife: np.ndarray
    jackknife_cases: np.ndarray


def dichotomise(ratings: np.ndarray, threshold: float) -> np.ndarray:
    """Binary calls from ratings: 1.0 where rating >= ``threshold`` (called diseased), else 0.0."""
    return (np.asarray(ratings, dtype=float) >= threshold).astype(float)


def _check_design(ratings: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ratings = np.asarray(ratings, dtype=float)
    truth = np.asarray(truth)
    if ratings.ndim != 3:
        raise MRMCError(f"ratings must have shape (modalities, readers, cases), got {ratings.shape}")
    if truth.shape != (ratings.shape[2],):
        raise MRMCError(f"truth must have one value per case ({ratings.shape[2]}), got shape {truth.shape}")
    if truth.dtype != bool:
        if not set(np.unique(truth).tolist()) <= {0, 1}:
            raise MRMCError("truth must be bool or 0/1 (1 = diseased)")
        truth = truth.astype(bool)
    if not np.all(np.isfinite(ratings)):
        raise MRMCError("ratings contain NaN or infinite values: every reader must rate every case")
    return ratings, truth


def _require_cases(n: int, what: str, metric: str) -> None:
    if n < 2:
        raise MRMCError(f"{metric} needs at least 2 {what} cases for a jackknife/DeLong variance, got {n}")


def empirical_auc(ratings, truth) -> np.ndarray:
    """Empirical AUC (ties 1/2) over the last axis of ``ratings`` (..., n); truth (n,) bool or 0/1."""
    ratings = np.asarray(ratings, dtype=float)
    truth = np.asarray(truth).astype(bool)
    v10, _ = auc_components(ratings, truth)
    return v10.mean(axis=-1)


def _leave_one_out(components: np.ndarray) -> np.ndarray:
    """FOM = mean of components over the last axis; returns the mean with each element left out."""
    n = components.shape[-1]
    return (components.sum(axis=-1, keepdims=True) - components) / (n - 1)


def _check_binary(ratings: np.ndarray, metric: str) -> None:
    if not np.all((ratings == 0) | (ratings == 1)):
        raise MRMCError(f"{metric} needs binary ratings (0/1); give a threshold "
                        "(--threshold T: rating >= T is positive)")


def fom_components(ratings, truth, metric: FigureOfMerit = "auc") -> FomComponents:
    """FOM table (t, r) and the case-level components for ``metric``; see the module docstring."""
    ratings, truth = _check_design(ratings, truth)
    n1, n0 = int(truth.sum()), int((~truth).sum())
    cases = np.arange(truth.size)
    if metric == "auc":
        _require_cases(n1, "diseased", metric)
        _require_cases(n0, "non-diseased", metric)
        v10, v01 = auc_components(ratings, truth)
        jackknife = np.empty_like(ratings)
        jackknife[..., truth] = _leave_one_out(v10)
        jackknife[..., ~truth] = _leave_one_out(v01)
        return FomComponents(metric, v10.mean(axis=-1), v10, v01, jackknife, cases)
    if metric == "sensitivity":
        _require_cases(n1, "diseased", metric)
        _check_binary(ratings, metric)
        v10 = ratings[..., truth]
        return FomComponents(metric, v10.mean(axis=-1), v10, None, _leave_one_out(v10), cases[truth])
    if metric == "specificity":
        _require_cases(n0, "non-diseased", metric)
        _check_binary(ratings, metric)
        v01 = 1.0 - ratings[..., ~truth]
        return FomComponents(metric, v01.mean(axis=-1), None, v01, _leave_one_out(v01), cases[~truth])
    raise MRMCError(f"unknown figure of merit {metric!r}; expected one of {FIGURES_OF_MERIT}")


def delong_covariance(components: FomComponents) -> np.ndarray:
    """DeLong covariance of the t*r FOMs: S10/n1 + S01/n0, shape (t*r, t*r), modality-major order."""
    t, r = components.fom.shape
    cov = np.zeros((t * r, t * r))
    for v in (components.v10, components.v01):
        if v is not None:
            flat = v.reshape(t * r, -1)
            cov += np.cov(flat, ddof=1) / flat.shape[1]
    return cov


def jackknife_covariance(components: FomComponents) -> np.ndarray:
    """Jackknife covariance (n-1)/n * sum_k (theta_-k - mean)(theta'_-k - mean)', shape (t*r, t*r)."""
    t, r, n = components.jackknife.shape
    flat = components.jackknife.reshape(t * r, n)
    centred = flat - flat.mean(axis=1, keepdims=True)
    return (n - 1) / n * centred @ centred.T


def pseudovalues(components: FomComponents) -> np.ndarray:
    """DBM jackknife pseudovalues Y_ijk = n * theta_ij - (n - 1) * theta_ij(-k), shape (t, r, n_jk)."""
    n = components.jackknife.shape[-1]
    return n * components.fom[..., None] - (n - 1) * components.jackknife


# --------------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """A contrast of two modalities, ``modality_a`` minus ``modality_b``; df is inf for a z (normal) test."""

    modality_a: str
    modality_b: str
    estimate: float
    se: float
    df: float
    statistic: float   # t, or z when df is inf
    p: float
    ci_lo: float
    ci_hi: float


@dataclass(frozen=True)
class ModalityEstimate:
    """The reader-averaged FOM of one modality with its CI; df is inf for a normal CI.

    ``msr`` (reader mean square), ``var`` and ``cov2`` are the modality's own variance pieces where the
    analysis uses them (None otherwise). CIs are not clipped to [0, 1].
    """

    modality: str
    estimate: float
    se: float
    df: float
    ci_lo: float
    ci_hi: float
    msr: float | None = None
    var: float | None = None
    cov2: float | None = None


@dataclass(frozen=True)
class ReaderTest:
    """Fixed-reader test of equal modalities for one reader, with that reader's contrasts.

    OR: ``var`` and ``cov1`` of the reader, chi-square (df1, ddf = inf). DBM: ``ms_tc`` of the reader,
    F test with (t-1, (t-1)(n-1)) df.
    """

    reader: str
    statistic_name: str
    statistic: float
    df1: float
    ddf: float
    p: float
    differences: tuple[Difference, ...]
    var: float | None = None
    cov1: float | None = None
    ms_tc: float | None = None


@dataclass(frozen=True)
class ReaderModalityEstimate:
    """One reader's FOM in one modality with a normal CI from its own variance (not clipped)."""

    modality: str
    reader: str
    estimate: float
    se: float
    ci_lo: float
    ci_hi: float


@dataclass(frozen=True)
class ModalityTest:
    """Test that all modalities have the same mean FOM, under one generalisation (RRRC, FRRC or RRFC).

    ``statistic_name`` is "F" (df1, ddf) or "chi2" (df1; ddf is inf). ``den`` is the denominator used.
    """

    analysis: str
    statistic_name: str
    statistic: float
    df1: float
    ddf: float
    p: float
    den: float
    differences: tuple[Difference, ...]
    modalities: tuple[ModalityEstimate, ...]
    readers: tuple[ReaderTest, ...] = ()
    reader_modality: tuple[ReaderModalityEstimate, ...] = ()


@dataclass(frozen=True)
class ORAnova:
    """Two-way ANOVA of the FOM table (t, r): sums of squares and mean squares."""

    SST: float
    SSR: float
    SSTR: float
    MST: float
    MSR: float
    MSTR: float


@dataclass(frozen=True)
class CovarianceTerms:
    """OR error variance and covariances of the FOMs (averages over the t*r x t*r covariance matrix).

    var: mean of the variances; cov1: same reader, different modality; cov2: different reader, same
    modality; cov3: different reader and modality.
    """

    var: float
    cov1: float
    cov2: float
    cov3: float

    def _ratio(self, cov: float) -> float:
        """A correlation; NaN (undefined) when the figure of merit has no variance (e.g. every reader 100%)."""
        return cov / self.var if self.var else float("nan")

    @property
    def corr1(self) -> float:
        return self._ratio(self.cov1)

    @property
    def corr2(self) -> float:
        return self._ratio(self.cov2)

    @property
    def corr3(self) -> float:
        return self._ratio(self.cov3)


@dataclass(frozen=True)
class _MRMCResult:
    """What both analyses report: the figure of merit per modality and reader, and the three tests."""

    metric: str
    modality_ids: tuple[str, ...]
    reader_ids: tuple[str, ...]
    n_cases: int
    fom: np.ndarray
    fom_mean: np.ndarray
    rrrc: ModalityTest
    frrc: ModalityTest
    rrfc: ModalityTest


@dataclass(frozen=True)
class ORResult(_MRMCResult):
    """Obuchowski-Rockette analysis. fom (t, r); fom_mean (t,); covariance (t*r, t*r) modality-major."""

    covariance_method: str
    covariance: np.ndarray
    anova: ORAnova
    terms: CovarianceTerms
    var_r: float   # reader variance component (ANOVA estimate; may be negative)
    var_tr: float  # modality x reader variance component (may be negative)


@dataclass(frozen=True)
class DBMAnova:
    """Three-way ANOVA (modality T, reader R, case C) of the pseudovalues: SS, df and MS per effect."""

    ss: dict[str, float]
    df: dict[str, int]
    ms: dict[str, float]
    modality_ms: tuple[dict[str, float], ...]   # per modality: MS_R, MS_C, MS_RC of its (r, n) table


@dataclass(frozen=True)
class DBMResult(_MRMCResult):
    """Dorfman-Berbaum-Metz analysis on jackknife pseudovalues (Hillis-improved RRRC ddf)."""

    anova: DBMAnova
    variance_components: dict[str, float]   # var_R, var_C, var_TR, var_TC, var_RC, var_TRC_err


# --------------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------------


def _ids(given, count: int, what: str) -> tuple[str, ...]:
    if given is None:
        return tuple(str(i + 1) for i in range(count))
    ids = tuple(str(x) for x in given)
    if len(ids) != count:
        raise MRMCError(f"{len(ids)} {what} ids for {count} {what}s")
    return ids


def _t_interval(estimate: float, se: float, df: float, alpha: float) -> tuple[float, float]:
    q = stats.norm.ppf(1 - alpha / 2) if np.isinf(df) else stats.t.ppf(1 - alpha / 2, df)
    return estimate - q * se, estimate + q * se


def _two_sided_p(statistic: float, df: float) -> float:
    if np.isinf(df):
        return float(2 * stats.norm.sf(abs(statistic)))
    return float(2 * stats.t.sf(abs(statistic), df))


def _safe_div(a: float, b: float) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(a) / np.float64(b))


def _differences(means: np.ndarray, modality_ids: tuple[str, ...], se: float, df: float,
                 alpha: float) -> tuple[Difference, ...]:
    """All pairwise contrasts a - b (a before b in ``modality_ids``) sharing one SE and df."""
    out = []
    for a, b in combinations(range(len(modality_ids)), 2):
        estimate = float(means[a] - means[b])
        statistic = _safe_div(estimate, se)
        lo, hi = _t_interval(estimate, se, df, alpha)
        out.append(Difference(modality_ids[a], modality_ids[b], estimate, float(se), float(df), statistic,
                              _two_sided_p(statistic, df), float(lo), float(hi)))
    return tuple(out)


def _f_p(statistic: float, df1: float, ddf: float) -> float:
    if np.isinf(ddf):
        return float(stats.chi2.sf(statistic * df1, df1))
    return float(stats.f.sf(statistic, df1, ddf))


def _check_shape(t: int, r: int) -> None:
    if t < 2:
        raise MRMCError(f"an MRMC comparison needs at least 2 modalities, got {t}")
    if r < 2:
        raise MRMCError(f"an MRMC analysis needs at least 2 readers, got {r}")


def _rounding_to_zero(deviation: np.ndarray, scale: float) -> np.ndarray:
    """Deviations from a mean that are only floating-point rounding become exactly 0.

    Identical FOMs give deviations of ~1e-17, not 0; left alone they turn an undefined 0/0 test into a
    spurious F such as 2.0.
    """
    return np.where(np.abs(deviation) <= 1e-12 * max(1.0, abs(scale)), 0.0, deviation)


def or_anova(fom: np.ndarray) -> ORAnova:
    """Two-way ANOVA (no replication) of the FOM table fom (t, r)."""
    t, r = fom.shape
    grand = fom.mean()
    mod_means, reader_means = fom.mean(axis=1), fom.mean(axis=0)
    sst = r * np.sum(_rounding_to_zero(mod_means - grand, grand) ** 2)
    ssr = t * np.sum(_rounding_to_zero(reader_means - grand, grand) ** 2)
    sstr = np.sum(_rounding_to_zero(fom - mod_means[:, None] - reader_means[None, :] + grand, grand) ** 2)
    return ORAnova(SST=float(sst), SSR=float(ssr), SSTR=float(sstr), MST=float(sst / (t - 1)),
                   MSR=float(ssr / (r - 1)), MSTR=float(sstr / ((t - 1) * (r - 1))))


def covariance_terms(covariance: np.ndarray, t: int, r: int) -> CovarianceTerms:
    """Average the (t*r, t*r) covariance (modality-major) into OR's var, cov1, cov2, cov3."""
    modality = np.repeat(np.arange(t), r)
    reader = np.tile(np.arange(r), t)
    same_m = modality[:, None] == modality[None, :]
    same_r = reader[:, None] == reader[None, :]

    def mean_of(mask: np.ndarray) -> float:
        return float(covariance[mask].mean()) if mask.any() else float("nan")

    return CovarianceTerms(var=mean_of(same_m & same_r), cov1=mean_of(~same_m & same_r),
                           cov2=mean_of(same_m & ~same_r), cov3=mean_of(~same_m & ~same_r))


def _reader_modality(fom: np.ndarray, covariance: np.ndarray, modality_ids, reader_ids,
                     alpha: float) -> tuple[ReaderModalityEstimate, ...]:
    t, r = fom.shape
    ses = np.sqrt(np.clip(np.diag(covariance), 0, None)).reshape(t, r)
    out = []
    for i in range(t):
        for j in range(r):
            lo, hi = _t_interval(fom[i, j], ses[i, j], np.inf, alpha)
            out.append(ReaderModalityEstimate(modality_ids[i], reader_ids[j], float(fom[i, j]),
                                              float(ses[i, j]), float(lo), float(hi)))
    return tuple(out)


# --------------------------------------------------------------------------------------------------
# Obuchowski-Rockette
# --------------------------------------------------------------------------------------------------


def _or_rrrc(fom, anova, terms, cov_blocks, modality_ids, alpha) -> ModalityTest:
    t, r = fom.shape
    den = anova.MSTR + r * max(terms.cov2 - terms.cov3, 0.0)
    ddf = _safe_div(den ** 2, anova.MSTR ** 2 / ((t - 1) * (r - 1)))   # Hillis (2007)
    f = _safe_div(anova.MST, den)
    singles = tuple(rrrc_modality_estimate(fom[i], cov_blocks[i].cov2, modality_ids[i], alpha) for i in range(t))
    se = float(np.sqrt(2 * den / r))
    return ModalityTest("random readers, random cases", "F", f, float(t - 1), ddf, _f_p(f, t - 1, ddf),
                        float(den), _differences(fom.mean(axis=1), modality_ids, se, ddf, alpha),
                        singles)


def rrrc_modality_estimate(fom_row, cov2: float, modality: str = "1", alpha: float = 0.05) -> ModalityEstimate:
    """One modality's reader-averaged FOM with its random-readers, random-cases CI (OR, Hillis 2007).

    ``fom_row`` (r,): the FOM of each of r >= 2 readers on the same cases; ``cov2``: the mean covariance of two
    different readers' FOMs (DeLong or jackknife). SE^2 = [MSR + r max(cov2, 0)] / r with MSR the readers'
    variance (n - 1), df = den^2 / (MSR^2 / (r - 1)) (infinite when MSR = 0). Needs only this modality's
    reads, so it serves a single exam too. The CI is not clipped.
    """
    fom_row = np.asarray(fom_row, dtype=float)
    r = fom_row.size
    if r < 2:
        raise MRMCError(f"a random-readers interval needs at least 2 readers, got {r}")
    msr = float(np.var(fom_row, ddof=1))
    den = msr + r * max(cov2, 0.0)
    se = float(np.sqrt(den / r))
    df = _safe_div(den ** 2, msr ** 2 / (r - 1))
    lo, hi = _t_interval(fom_row.mean(), se, df, alpha)
    return ModalityEstimate(modality, float(fom_row.mean()), se, df, float(lo), float(hi), msr=msr, cov2=cov2)


def _or_frrc(fom, anova, terms, cov_blocks, covariance, modality_ids, reader_ids, alpha) -> ModalityTest:
    t, r = fom.shape
    den = terms.var - terms.cov1 + (r - 1) * max(terms.cov2 - terms.cov3, 0.0)
    chi2 = _safe_div((t - 1) * anova.MST, den)
    singles = []
    for i in range(t):
        var_i, cov2_i = cov_blocks[i].var, cov_blocks[i].cov2
        se_i = float(np.sqrt((var_i + (r - 1) * max(cov2_i, 0.0)) / r))
        lo, hi = _t_interval(fom[i].mean(), se_i, np.inf, alpha)
        singles.append(ModalityEstimate(modality_ids[i], float(fom[i].mean()), se_i, float("inf"),
                                        float(lo), float(hi), var=var_i, cov2=cov2_i))
    readers = []
    for j in range(r):
        idx = np.arange(t) * r + j
        reader_terms = covariance_terms(covariance[np.ix_(idx, idx)], t, 1)
        den_j = reader_terms.var - reader_terms.cov1
        chi2_j = _safe_div(np.sum((fom[:, j] - fom[:, j].mean()) ** 2), den_j)
        readers.append(ReaderTest(
            reader_ids[j], "chi2", chi2_j, float(t - 1), float("inf"),
            float(stats.chi2.sf(chi2_j, t - 1)),
            _differences(fom[:, j], modality_ids, float(np.sqrt(2 * den_j)), np.inf, alpha),
            var=reader_terms.var, cov1=reader_terms.cov1))
    se = float(np.sqrt(2 * den / r))
    return ModalityTest("fixed readers, random cases", "chi2", chi2, float(t - 1), float("inf"),
                        float(stats.chi2.sf(chi2, t - 1)), float(den),
                        _differences(fom.mean(axis=1), modality_ids, se, np.inf, alpha), tuple(singles),
                        tuple(readers), _reader_modality(fom, covariance, modality_ids, reader_ids, alpha))


def _rrfc(fom, ms_t: float, ms_tr: float, msr_per_modality, scale: float, modality_ids,
          alpha) -> ModalityTest:
    """Random readers, fixed cases: conventional ANOVA F = MS(T)/MS(T:R); shared by OR and DBM.

    ``scale`` converts mean squares to the FOM scale (r for OR, r*n for DBM pseudovalues).
    """
    t, r = fom.shape
    ddf = float((t - 1) * (r - 1))
    f = _safe_div(ms_t, ms_tr)
    singles = []
    for i in range(t):
        se_i = float(np.sqrt(msr_per_modality[i] / scale))
        lo, hi = _t_interval(fom[i].mean(), se_i, r - 1, alpha)
        singles.append(ModalityEstimate(modality_ids[i], float(fom[i].mean()), se_i, float(r - 1),
                                        float(lo), float(hi), msr=float(msr_per_modality[i])))
    se = float(np.sqrt(2 * ms_tr / scale))
    return ModalityTest("random readers, fixed cases", "F", f, float(t - 1), ddf, _f_p(f, t - 1, ddf),
                        float(ms_tr), _differences(fom.mean(axis=1), modality_ids, se, ddf, alpha),
                        tuple(singles))


def obuchowski_rockette(fom: np.ndarray, covariance: np.ndarray, *, metric: str = "auc",
                        covariance_method: str = "", n_cases: int = 0, modality_ids=None,
                        reader_ids=None, alpha: float = 0.05) -> ORResult:
    """OR analysis of a FOM table fom (t, r) with its error covariance (t*r, t*r), modality-major.

    Hillis (2007): RRRC F = MS(T) / [MS(T:R) + r max(cov2 - cov3, 0)] with
    ddf_H = den^2 / (MS(T:R)^2 / ((t-1)(r-1))); FRRC chi2 = (t-1) MS(T) / [var - cov1 + (r-1) max(cov2 -
    cov3, 0)] with t-1 df; RRFC F = MS(T) / MS(T:R) with (t-1, (t-1)(r-1)) df.
    """
    fom = np.asarray(fom, dtype=float)
    t, r = fom.shape
    _check_shape(t, r)
    covariance = np.asarray(covariance, dtype=float)
    if covariance.shape != (t * r, t * r):
        raise MRMCError(f"covariance must have shape {(t * r, t * r)}, got {covariance.shape}")
    modality_ids, reader_ids = _ids(modality_ids, t, "modality"), _ids(reader_ids, r, "reader")
    anova = or_anova(fom)
    terms = covariance_terms(covariance, t, r)
    blocks = [covariance_terms(covariance[i * r:(i + 1) * r, i * r:(i + 1) * r], 1, r) for i in range(t)]
    var_tr = anova.MSTR - terms.var + terms.cov1 + terms.cov2 - terms.cov3
    var_r = (anova.MSR - var_tr - terms.var - (t - 1) * terms.cov1 + terms.cov2 + (t - 1) * terms.cov3) / t
    msr_i = [float(np.var(fom[i], ddof=1)) for i in range(t)]
    return ORResult(
        metric=metric, covariance_method=covariance_method, modality_ids=modality_ids,
        reader_ids=reader_ids, n_cases=n_cases, fom=fom, fom_mean=fom.mean(axis=1), covariance=covariance,
        anova=anova, terms=terms, var_r=float(var_r), var_tr=float(var_tr),
        rrrc=_or_rrrc(fom, anova, terms, blocks, modality_ids, alpha),
        frrc=_or_frrc(fom, anova, terms, blocks, covariance, modality_ids, reader_ids, alpha),
        rrfc=_rrfc(fom, anova.MST, anova.MSTR, msr_i, r, modality_ids, alpha),
    )


# --------------------------------------------------------------------------------------------------
# Dorfman-Berbaum-Metz
# --------------------------------------------------------------------------------------------------


def _two_way_ms(y: np.ndarray) -> dict[str, float]:
    """MS_R, MS_C, MS_RC of one modality's pseudovalue table y (r, n)."""
    r, n = y.shape
    grand = y.mean()
    rm, cm = y.mean(axis=1), y.mean(axis=0)
    resid = y - rm[:, None] - cm[None, :] + grand
    return {"MS_R": float(n * np.sum((rm - grand) ** 2) / (r - 1)),
            "MS_C": float(r * np.sum((cm - grand) ** 2) / (n - 1)),
            "MS_RC": float(np.sum(resid ** 2) / ((r - 1) * (n - 1)))}


def dbm_anova(y: np.ndarray) -> DBMAnova:
    """Three-way ANOVA without replication of pseudovalues y (t, r, n)."""
    t, r, n = y.shape
    g = y.mean()
    m_t, m_r, m_c = y.mean(axis=(1, 2)), y.mean(axis=(0, 2)), y.mean(axis=(0, 1))
    m_tr, m_tc, m_rc = y.mean(axis=2), y.mean(axis=1), y.mean(axis=0)
    scale = float(np.abs(y).max())

    def ss_of(deviation: np.ndarray) -> float:
        return float(np.sum(_rounding_to_zero(deviation, scale) ** 2))

    ss = {
        "T": r * n * ss_of(m_t - g),
        "R": t * n * ss_of(m_r - g),
        "C": t * r * ss_of(m_c - g),
        "TR": n * ss_of(m_tr - m_t[:, None] - m_r[None, :] + g),
        "TC": r * ss_of(m_tc - m_t[:, None] - m_c[None, :] + g),
        "RC": t * ss_of(m_rc - m_r[:, None] - m_c[None, :] + g),
        "TRC": ss_of(y - m_tr[:, :, None] - m_tc[:, None, :] - m_rc[None, :, :] + m_t[:, None, None]
                     + m_r[None, :, None] + m_c[None, None, :] - g),
    }
    df = {"T": t - 1, "R": r - 1, "C": n - 1, "TR": (t - 1) * (r - 1), "TC": (t - 1) * (n - 1),
          "RC": (r - 1) * (n - 1), "TRC": (t - 1) * (r - 1) * (n - 1)}
    ms = {k: float(ss[k] / df[k]) for k in ss}
    return DBMAnova(ss={k: float(v) for k, v in ss.items()}, df=df, ms=ms,
                    modality_ms=tuple(_two_way_ms(y[i]) for i in range(t)))


def _dbm_reader_tests(y, fom, modality_ids, reader_ids, alpha) -> tuple[ReaderTest, ...]:
    t, r, n = y.shape
    ddf = float((t - 1) * (n - 1))
    out = []
    for j in range(r):
        yj = y[:, j, :]                                    # (t, n)
        resid = yj - yj.mean(axis=1, keepdims=True) - yj.mean(axis=0, keepdims=True) + yj.mean()
        ms_tc = float(np.sum(resid ** 2) / ddf)
        ms_t = float(n * np.sum((yj.mean(axis=1) - yj.mean()) ** 2) / (t - 1))
        f = _safe_div(ms_t, ms_tc)
        se = float(np.sqrt(2 * ms_tc / n))
        out.append(ReaderTest(reader_ids[j], "F", f, float(t - 1), ddf, _f_p(f, t - 1, ddf),
                              _differences(fom[:, j], modality_ids, se, ddf, alpha), ms_tc=ms_tc))
    return tuple(out)


def dorfman_berbaum_metz(components: FomComponents, *, modality_ids=None, reader_ids=None,
                         alpha: float = 0.05) -> DBMResult:
    """DBM analysis of the jackknife pseudovalues of ``components`` (see :func:`pseudovalues`).

    RRRC (Hillis 2008): F = MS(T) / [MS(TR) + max(MS(TC) - MS(TRC), 0)], ddf = den^2 / (MS(TR)^2 /
    ((t-1)(r-1))). FRRC: F = MS(T) / MS(TC), df (t-1, (t-1)(n-1)). RRFC: F = MS(T) / MS(TR),
    df (t-1, (t-1)(r-1)). With the jackknife, DBM RRRC equals OR-jackknife RRRC exactly.
    """
    fom = components.fom
    t, r = fom.shape
    _check_shape(t, r)
    modality_ids, reader_ids = _ids(modality_ids, t, "modality"), _ids(reader_ids, r, "reader")
    y = pseudovalues(components)
    n = y.shape[-1]
    anova = dbm_anova(y)
    ms = anova.ms
    components_var = {
        "var_R": (ms["R"] - ms["TR"] - ms["RC"] + ms["TRC"]) / (t * n),
        "var_C": (ms["C"] - ms["TC"] - ms["RC"] + ms["TRC"]) / (t * r),
        "var_TR": (ms["TR"] - ms["TRC"]) / n,
        "var_TC": (ms["TC"] - ms["TRC"]) / r,
        "var_RC": (ms["RC"] - ms["TRC"]) / t,
        "var_TRC_err": ms["TRC"],
    }
    means = fom.mean(axis=1)

    # random readers, random cases
    den = ms["TR"] + max(ms["TC"] - ms["TRC"], 0.0)
    ddf = _safe_div(den ** 2, ms["TR"] ** 2 / ((t - 1) * (r - 1)))
    f = _safe_div(ms["T"], den)
    singles = []
    for i, mi in enumerate(anova.modality_ms):
        den_i = mi["MS_R"] + max(mi["MS_C"] - mi["MS_RC"], 0.0)
        se_i = float(np.sqrt(den_i / (r * n)))
        df_i = _safe_div(den_i ** 2, mi["MS_R"] ** 2 / (r - 1))
        lo, hi = _t_interval(means[i], se_i, df_i, alpha)
        singles.append(ModalityEstimate(modality_ids[i], float(means[i]), se_i, df_i, float(lo), float(hi)))
    rrrc = ModalityTest("random readers, random cases", "F", f, float(t - 1), ddf, _f_p(f, t - 1, ddf),
                        float(den), _differences(means, modality_ids, float(np.sqrt(2 * den / (r * n))),
                                                 ddf, alpha), tuple(singles))

    # fixed readers, random cases
    ddf_c = float((t - 1) * (n - 1))
    f = _safe_div(ms["T"], ms["TC"])
    singles = []
    for i, mi in enumerate(anova.modality_ms):
        se_i = float(np.sqrt(mi["MS_C"] / (r * n)))
        lo, hi = _t_interval(means[i], se_i, n - 1, alpha)
        singles.append(ModalityEstimate(modality_ids[i], float(means[i]), se_i, float(n - 1), float(lo),
                                        float(hi)))
    frrc = ModalityTest("fixed readers, random cases", "F", f, float(t - 1), ddf_c, _f_p(f, t - 1, ddf_c),
                        float(ms["TC"]),
                        _differences(means, modality_ids, float(np.sqrt(2 * ms["TC"] / (r * n))), ddf_c,
                                     alpha),
                        tuple(singles), _dbm_reader_tests(y, fom, modality_ids, reader_ids, alpha))

    rrfc = _rrfc(fom, ms["T"], ms["TR"], [mi["MS_R"] for mi in anova.modality_ms], r * n, modality_ids,
                 alpha)
    return DBMResult(metric=components.metric, modality_ids=modality_ids, reader_ids=reader_ids,
                     n_cases=n, fom=fom, fom_mean=means, anova=anova,
                     variance_components={k: float(v) for k, v in components_var.items()},
                     rrrc=rrrc, frrc=frrc, rrfc=rrfc)


# --------------------------------------------------------------------------------------------------
# One call for the whole analysis
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MRMCAnalysis:
    """OR (with the chosen covariance) and DBM analyses of one figure of merit."""

    metric: str
    covariance_method: str
    threshold: float | None
    n_positive: int
    n_negative: int
    components: FomComponents
    obuchowski_rockette: ORResult
    dbm: DBMResult


def analyse(ratings, truth, *, metric: FigureOfMerit = "auc", covariance: CovarianceMethod = "delong",
            threshold: float | None = None, modality_ids=None, reader_ids=None,
            alpha: float = 0.05) -> MRMCAnalysis:
    """Full MRMC analysis: ratings (t, r, n), truth (n,) bool/0-1 (True = diseased / sarcoma).

    ``threshold``: if given, ratings are first dichotomised (rating >= threshold is a positive call);
    sensitivity and specificity need binary ratings, so they need a threshold unless ratings are 0/1.
    """
    if covariance not in COVARIANCE_METHODS:
        raise MRMCError(f"unknown covariance method {covariance!r}; expected one of {COVARIANCE_METHODS}")
    ratings, truth = _check_design(ratings, truth)
    t, r, _ = ratings.shape
    _check_shape(t, r)
    if threshold is not None:
        ratings = dichotomise(ratings, threshold)
    comps = fom_components(ratings, truth, metric)
    cov = delong_covariance(comps) if covariance == "delong" else jackknife_covariance(comps)
    or_result = obuchowski_rockette(comps.fom, cov, metric=metric, covariance_method=covariance,
                                    n_cases=comps.jackknife.shape[-1], modality_ids=modality_ids,
                                    reader_ids=reader_ids, alpha=alpha)
    dbm = dorfman_berbaum_metz(comps, modality_ids=modality_ids, reader_ids=reader_ids, alpha=alpha)
    return MRMCAnalysis(metric=metric, covariance_method=covariance, threshold=threshold,
                        n_positive=int(truth.sum()), n_negative=int((~truth).sum()), components=comps,
                        obuchowski_rockette=or_result, dbm=dbm)
