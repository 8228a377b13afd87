"""95 % confidence intervals for the section-10 metrics (METHOD.md §8, §10; issue 14). No Django import.

- :func:`wilson` — Wilson score interval of a proportion (sensitivity, specificity, accuracy). ``k`` may be
  fractional (e.g. the mean number of true positives over the 24 ensembles, with ``n`` the patients): the
  interval is then that of a proportion k/n observed on n patients.
- :func:`delong_auc` — empirical AUC (ties one half) with the DeLong (1988) variance from the structural
  components; a plain Wald interval ``auc ± z · se`` on the AUC scale (no logit), clipped to [0, 1]. With
  scores ``(M, P)`` (M correlated raters of the same patients, e.g. ensembles) the estimate is the mean of
  the M AUCs and the variance is that of the mean, from the member-averaged components.
- :func:`bootstrap` — patient-level percentile bootstrap, stratified (each resample keeps the number of
  patients of every stratum, normally the class), seeded, vectorised: the statistic gets a whole
  ``(B, n)`` block of resampled patient indexes at once.

All results are fractions in [0, 1] for proportions and AUC; the bootstrap returns the statistic's units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_CHUNK = 500        # resamples per call of the statistic: bounds memory at (chunk, n) indexes


@dataclass(frozen=True)
class Interval:
    """A point estimate and its two-sided ``1 - alpha`` interval."""

    estimate: float
    low: float
    high: float
    alpha: float = 0.05

    def as_dict(self) -> dict:
        return {"estimate": self.estimate, "ci_low": self.low, "ci_high": self.high}


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: must lie strictly between 0 and 1, got {alpha}")
    return alpha


def _z(alpha: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1.0 - _check_alpha(alpha) / 2.0))


def wilson(k: float, n: int, alpha: float = 0.05) -> Interval:
    """Wilson score interval of the proportion ``k / n`` (``0 <= k <= n``, ``n >= 1``).

    ``wilson(8, 10)`` → 0.800 (0.490, 0.943).
    """
    if not np.isfinite(k) or not np.isfinite(n):
        raise ValueError(f"wilson: k and n must be finite numbers, got k={k}, n={n}")
    if n < 1 or int(n) != n:
        raise ValueError(f"wilson: n must be a positive whole number of cases, got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"wilson: k must lie in [0, n] = [0, {n}], got {k}")
    z = _z(alpha)
    p = k / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if k == 0 else max(0.0, centre - half)           # exact ends, not 1 - 1e-16
    high = 1.0 if k == n else min(1.0, centre + half)
    return Interval(float(p), float(low), float(high), alpha)


def _truth(truth, n: int) -> np.ndarray:
    array = np.asarray(truth)
    if array.ndim != 1 or array.size != n:
        raise ValueError(f"truth: expected one value per patient ({n}), got shape {array.shape}")
    if array.dtype != bool:
        if array.dtype.kind not in "iuf" or not set(np.unique(array).tolist()) <= {0, 1}:
            raise ValueError("truth: expected bool or 0/1 (1 = sarcoma, positive)")
        array = array.astype(bool)
    return array


def auc_components(scores, truth) -> tuple[np.ndarray, np.ndarray]:
    """DeLong structural components of the empirical AUC, ``(..., P)`` scores → ``v10 (..., n1)``, ``v01 (..., n0)``.

    v10: for each positive, the fraction of negatives scored lower (ties 1/2); v01: for each negative, the
    fraction of positives scored higher (ties 1/2). AUC = mean(v10) = mean(v01). Mid-ranks, no pair matrix.
    """
    from scipy.stats import rankdata

    x = np.asarray(scores, dtype=np.float64)
    positive = _truth(truth, x.shape[-1])
    pos, neg = x[..., positive], x[..., ~positive]
    n1, n0 = pos.shape[-1], neg.shape[-1]
    pooled = rankdata(np.concatenate([pos, neg], axis=-1), axis=-1)
    v10 = (pooled[..., :n1] - rankdata(pos, axis=-1)) / n0
    v01 = 1.0 - (pooled[..., n1:] - rankdata(neg, axis=-1)) / n1
    return v10, v01


def delong_auc(scores, truth, alpha: float = 0.05) -> Interval:
    """Empirical AUC and its DeLong interval; ``scores`` ``(P,)`` or ``(M, P)`` (higher = more sarcoma-like).

    ``(M, P)``: the estimate is the mean AUC of the M rows, its variance that of the mean (components
    averaged over the rows first). Needs at least 2 patients of each class.
    """
    alpha = _check_alpha(alpha)
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise ValueError(f"scores: expected (patients,) or (members, patients), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("scores: contain NaN or infinite values")
    positive = _truth(truth, x.shape[-1])
    n1, n0 = int(positive.sum()), int((~positive).sum())
    if n1 < 2 or n0 < 2:
        raise ValueError(f"delong_auc: needs at least 2 sarcoma and 2 leiomyoma patients, got {n1} and {n0}")
    v10, v01 = auc_components(x.reshape(-1, x.shape[-1]), positive)
    v10, v01 = v10.mean(axis=0), v01.mean(axis=0)
    auc = float(v10.mean())
    variance = v10.var(ddof=1) / n1 + v01.var(ddof=1) / n0
    half = _z(alpha) * float(np.sqrt(variance))
    return Interval(auc, max(0.0, auc - half), min(1.0, auc + half), alpha)


@dataclass(frozen=True)
class BootstrapInterval(Interval):
    """Percentile bootstrap interval; ``resamples`` and ``seed`` make it reproducible."""

    resamples: int = 0
    seed: int = 0


def stratified_indexes(strata: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(resamples, n)`` patient indexes: each row draws, with replacement, within every stratum as many
    patients as the stratum holds (the positions of a stratum stay the stratum's)."""
    out = np.empty((resamples, strata.size), dtype=np.int64)
    for value in np.unique(strata):
        members = np.nonzero(strata == value)[0]
        out[:, members] = members[rng.integers(0, members.size, size=(resamples, members.size))]
    return out


def bootstrap(statistic: Callable[[np.ndarray], np.ndarray], n_patients: int, *, resamples: int = 2000,
              seed: int = 0, alpha: float = 0.05, strata=None) -> BootstrapInterval:
    """Patient-level (stratified) percentile bootstrap of ``statistic``.

    ``statistic(indexes)`` takes ``(B, n_patients)`` int patient indexes (one resample per row) and returns
    ``(B,)`` values; the estimate is ``statistic(arange(n)[None])[0]``. ``strata`` ``(n_patients,)`` (e.g.
    the truth) keeps every stratum's size in every resample; None resamples all patients together.
    The interval is the ``alpha/2`` and ``1 - alpha/2`` quantiles of the resampled values.
    """
    alpha = _check_alpha(alpha)
    if int(n_patients) != n_patients or n_patients < 1:
        raise ValueError(f"bootstrap: n_patients must be a positive whole number, got {n_patients}")
    if int(resamples) != resamples or resamples < 1:
        raise ValueError(f"bootstrap: resamples must be a positive whole number, got {resamples}")
    n_patients, resamples = int(n_patients), int(resamples)
    groups = np.zeros(n_patients, dtype=np.int64) if strata is None else np.asarray(strata)
    if groups.shape != (n_patients,):
        raise ValueError(f"bootstrap: strata must hold one value per patient ({n_patients}), "
                         f"got shape {groups.shape}")

    def evaluate(indexes: np.ndarray) -> np.ndarray:
        values = np.asarray(statistic(indexes), dtype=np.float64)
        if values.shape != (indexes.shape[0],):
            raise ValueError(f"bootstrap: the statistic must return one value per resample "
                             f"({indexes.shape[0]}), got shape {values.shape}")
        return values

    estimate = float(evaluate(np.arange(n_patients)[None, :])[0])
    rng = np.random.default_rng(seed)
    values = np.concatenate([evaluate(stratified_indexes(groups, min(BOOTSTRAP_CHUNK, resamples - start), rng))
                             for start in range(0, resamples, BOOTSTRAP_CHUNK)])
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError("bootstrap: the statistic is undefined (NaN) in every resample")
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return BootstrapInterval(estimate, float(low), float(high), alpha, resamples=resamples, seed=int(seed))
