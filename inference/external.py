"""External validation of a frozen model set (issue 14, item 5). No Django import: NumPy in, NumPy out.

A frozen model set is a finished evaluation's models with its chosen sequence set and each ensemble's §7.4
threshold, all fixed before the external cohort is seen. Each external case gets its sarcoma likelihood exactly
as a new patient does (``inference.predictions.deployment_figures``); this module turns those figures into the
validation's numbers and checks that the cohort is truly external.

- :func:`validation_metrics` — the DNN's call on a case is ``core.metrics.ai_call`` (likelihood ≥ 50 % =
  sarcoma). Sensitivity, specificity, accuracy with Wilson intervals, SS-Avg with a seeded, class-stratified
  patient bootstrap, AUC of the likelihood with a DeLong interval (``inference.nested.metrics_with_intervals``,
  built on ``core.intervals``); the same for the mean over the ensembles (each with its own frozen threshold,
  as the paper's figures are means over the 24 ensembles); the ROC curve of the likelihood; calibration bins.
- :func:`calibration_bins` — observed sarcoma fraction against mean likelihood per likelihood bin, with counts.
- :func:`patient_overlap` — which external cases share a patient with the training cohort.
- :func:`roc_chart` and :func:`calibration_chart` — the page's two SVG figures (matplotlib inside).

Likelihoods are percentages (0–100); metrics are fractions in [0, 1] unless a key ends in ``_percent``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from core.intervals import wilson
from core.metrics import AI_CALL_PERCENT, roc_curve
from inference.nested import metrics_with_intervals
from inference.thresholds import truth_mask

DEFAULT_BINS = 10
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0


def _likelihood(values, n: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"likelihood: expected one value per case, got shape {array.shape}")
    if n is not None and array.size != n:
        raise ValueError(f"likelihood: {array.size} values for {n} cases")
    if not np.all(np.isfinite(array)) or (array.size and (array.min() < 0.0 or array.max() > 100.0)):
        raise ValueError("likelihood: must be finite percentages in [0, 100]")
    return array


def likelihood_calls(likelihood) -> np.ndarray:
    """``(P,)`` bool: the DNN calls sarcoma where the likelihood ≥ 50 % (``core.metrics.ai_call``)."""
    return _likelihood(likelihood) >= AI_CALL_PERCENT


# --- calibration --------------------------------------------------------------------------------------------

def calibration_bins(likelihood, truth, *, n_bins: int = DEFAULT_BINS, alpha: float = 0.05) -> list[dict]:
    """Observed sarcoma fraction against the mean likelihood, per equal-width likelihood bin.

    Bins are ``[low, high)`` percent, the last one ``[low, 100]``; so with 10 bins a likelihood of exactly 50 %
    (the call's tie, which calls sarcoma) falls in the bin ``[50, 60)`` with the other sarcoma calls. Each bin:
    ``low``, ``high``, ``n``, ``n_sarcoma``, ``mean_likelihood_percent``, ``observed_percent`` and its Wilson
    interval (``observed_ci_low_percent``, ``observed_ci_high_percent``); the last four are None for an empty bin.
    A well-calibrated likelihood has observed ≈ mean in every bin.
    """
    positive = truth_mask(truth)
    values = _likelihood(likelihood, positive.size)
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins: must be a positive whole number, got {n_bins}")
    edges = np.linspace(0.0, 100.0, int(n_bins) + 1)
    which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, int(n_bins) - 1)
    out = []
    for b in range(int(n_bins)):
        inside = which == b
        n, k = int(inside.sum()), int(positive[inside].sum())
        row = {"low": float(edges[b]), "high": float(edges[b + 1]), "n": n, "n_sarcoma": k,
               "mean_likelihood_percent": None, "observed_percent": None,
               "observed_ci_low_percent": None, "observed_ci_high_percent": None}
        if n:
            interval = wilson(k, n, alpha)
            row |= {"mean_likelihood_percent": float(values[inside].mean()),
                    "observed_percent": 100.0 * interval.estimate,
                    "observed_ci_low_percent": 100.0 * interval.low,
                    "observed_ci_high_percent": 100.0 * interval.high}
        out.append(row)
    return out


def brier_score(likelihood, truth) -> float:
    """Mean squared difference between likelihood / 100 and the truth (1 = sarcoma); 0 is perfect."""
    positive = truth_mask(truth)
    values = _likelihood(likelihood, positive.size) / 100.0
    return float(np.mean((values - positive) ** 2))


# --- metrics ------------------------------------------------------------------------------------------------

def _confusion(calls: np.ndarray, positive: np.ndarray) -> dict:
    return {"tp": int((calls & positive).sum()), "fn": int((~calls & positive).sum()),
            "tn": int((~calls & ~positive).sum()), "fp": int((calls & ~positive).sum())}


def roc_of_likelihood(likelihood, truth) -> dict:
    """ROC curve of the likelihood as the score: ``fpr``, ``tpr`` (fractions) and ``threshold_percent`` (call
    sarcoma when likelihood ≥ it; the first point, where nothing is called, has None), and ``auc``."""
    curve = roc_curve(truth_mask(truth), _likelihood(likelihood))
    thresholds = [None if not np.isfinite(t) else round(float(t), 6) for t in curve.thresholds]
    return {"fpr": [round(float(v), 6) for v in curve.fpr], "tpr": [round(float(v), 6) for v in curve.tpr],
            "threshold_percent": thresholds, "auc": float(curve.auc)}


def _intervals(calls, positive, scores, *, alpha, resamples, seed) -> dict:
    """``metrics_with_intervals`` as a dict, its AUC left out (None) when a class has fewer than 2 cases."""
    enough = int(positive.sum()) >= 2 and int((~positive).sum()) >= 2
    found = metrics_with_intervals(calls, positive, scores=scores if enough else None, alpha=alpha,
                                   resamples=resamples, seed=seed)
    return found.as_dict()


def validation_metrics(likelihood, truth, *, member_calls=None, member_scores=None, alpha: float = 0.05,
                       resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                       n_bins: int = DEFAULT_BINS) -> dict:
    """Everything the validation reports, JSON-ready.

    likelihood ``(P,)`` % of the ensembles calling sarcoma; truth ``(P,)`` (bool, 0/1 or class names).
    member_calls ``(M, P)`` bool and member_scores ``(M, P)``: each ensemble's patient call (score ≥ its frozen
    threshold) and ±1 score, for the mean-over-ensembles figures (left out when not given).

    Returns ``{"n", "n_sarcoma", "n_leiomyoma", "call_rule", "confusion", "likelihood": {...},
    "ensembles": {...} | None, "roc": {...}, "calibration": [...], "brier": float, "alpha", "resamples",
    "seed"}``; ``likelihood`` and ``ensembles`` hold ``ss_avg``, ``sensitivity``, ``specificity``,
    ``accuracy`` as ``{"estimate", "ci_low", "ci_high"}`` and ``auc`` (None with fewer than 2 cases of a class).
    Raises ValueError when a class is missing (no sensitivity or specificity exists then).
    """
    positive = truth_mask(truth)
    values = _likelihood(likelihood, positive.size)
    if not positive.any() or positive.all():
        raise ValueError(f"truth: an external validation needs sarcoma and leiomyoma cases, got "
                         f"{int(positive.sum())} sarcoma and {int((~positive).sum())} leiomyoma")
    calls = values >= AI_CALL_PERCENT
    out = {"n": int(positive.size), "n_sarcoma": int(positive.sum()), "n_leiomyoma": int((~positive).sum()),
           "call_rule": f"sarcoma when the likelihood is ≥ {AI_CALL_PERCENT:g} %",
           "confusion": _confusion(calls, positive),
           "likelihood": _intervals(calls, positive, values, alpha=alpha, resamples=resamples, seed=seed),
           "ensembles": None, "roc": roc_of_likelihood(values, positive),
           "calibration": calibration_bins(values, positive, n_bins=n_bins, alpha=alpha),
           "brier": brier_score(values, positive), "alpha": alpha, "resamples": int(resamples), "seed": int(seed)}
    if member_calls is not None:
        member = np.asarray(member_calls)
        if member.dtype != bool or member.ndim != 2 or member.shape[1] != positive.size:
            raise ValueError(f"member_calls: expected bool (members, {positive.size}), got shape {member.shape}")
        scores = None if member_scores is None else np.asarray(member_scores, dtype=np.float64)
        if scores is not None and scores.shape != member.shape:
            raise ValueError(f"member_scores: shape {scores.shape} differs from member_calls {member.shape}")
        out["ensembles"] = _intervals(member, positive, scores, alpha=alpha, resamples=resamples, seed=seed)
        out["ensembles"]["n_members"] = int(member.shape[0])
    return out


# --- is the cohort external? -----------------------------------------------------------------------------

@dataclass(frozen=True)
class CaseKeys:
    """What says who a case is, as keyed hashes only: ``identities`` its source key hash, identity hash and alias
    identity hashes (one key space: an import finds a case by any of them); ``person`` the hash of name + birth
    date + sex, "" when unknown."""

    case: int
    identities: frozenset[str]
    person: str = ""


@dataclass(frozen=True)
class Overlap:
    """External cases that share a patient with the training cohort, each counted under its strongest reason: in
    both cohorts, else a shared identity hash, else the same person hash (so the counts add up to ``total``). No
    identifier of any patient."""

    same_case: int
    same_identity: int
    same_person: int
    cases: tuple[int, ...]

    @property
    def total(self) -> int:
        return len(self.cases)

    def reasons(self) -> str:
        parts = [(self.same_case, "in both cohorts"), (self.same_identity, "the same patient identity"),
                 (self.same_person, "the same person (name, birth date and sex)")]
        return ", ".join(f"{n} {text}" for n, text in parts if n)


def patient_overlap(external: Iterable[CaseKeys], training: Iterable[CaseKeys]) -> Overlap:
    """Which external cases are (or may be) a patient of the training cohort: the same case, any shared identity
    hash (source key, identity or alias), or the same non-empty person hash."""
    training = list(training)
    cases = {k.case for k in training}
    identities = set().union(*(k.identities for k in training)) if training else set()
    identities.discard("")
    persons = {k.person for k in training if k.person}
    same_case = same_identity = same_person = 0
    hits = []
    for keys in external:   # each case under its strongest reason only, so the three counts add up to the total
        if keys.case in cases:
            same_case += 1
        elif (keys.identities - {""}) & identities:
            same_identity += 1
        elif keys.person and keys.person in persons:
            same_person += 1
        else:
            continue
        hits.append(keys.case)
    return Overlap(same_case, same_identity, same_person, tuple(sorted(hits)))


# --- figures ------------------------------------------------------------------------------------------------

def roc_chart(roc: dict, *, auc: dict | None = None, title: str = "", synthetic: bool = False) -> str:
    """SVG: the ROC curve of the likelihood, the operating point of the 50 % call marked, AUC with its CI."""
    from inference.figures import ENSEMBLE_COLOUR, _pyplot, _svg

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    label = "likelihood"
    if auc:
        label += f", AUC {auc['estimate']:.3f} ({auc['ci_low']:.3f}–{auc['ci_high']:.3f})"
    ax.plot(roc["fpr"], roc["tpr"], color=ENSEMBLE_COLOUR, linewidth=1.5, label=label)
    at = [i for i, t in enumerate(roc.get("threshold_percent") or []) if t is not None and t >= AI_CALL_PERCENT]
    if at:
        i = at[-1]
        ax.plot([roc["fpr"][i]], [roc["tpr"][i]], "o", color="#c8611b", label=f"call at ≥ {AI_CALL_PERCENT:g} %")
    ax.plot([0, 1], [0, 1], color="#999", linewidth=0.8, linestyle=":")
    ax.set_xlabel("1 − specificity")
    ax.set_ylabel("sensitivity")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title((title or "External validation: ROC") + (" — SYNTHETIC data" if synthetic else ""), fontsize=9)
    return _svg(fig)


def calibration_chart(bins: list[dict], *, title: str = "", synthetic: bool = False) -> str:
    """SVG: observed sarcoma % (Wilson interval) against the mean likelihood per bin, the diagonal being perfect;
    below it, the cases per bin (sarcoma and leiomyoma stacked)."""
    from inference.figures import ENSEMBLE_COLOUR, SINGLE_COLOUR, _pyplot, _svg

    plt = _pyplot()
    fig, (ax, counts) = plt.subplots(2, 1, figsize=(4.4, 5.4), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    full = [b for b in bins if b["n"]]
    x = np.array([b["mean_likelihood_percent"] for b in full], dtype=float)
    y = np.array([b["observed_percent"] for b in full], dtype=float)
    low = np.array([b["observed_ci_low_percent"] for b in full], dtype=float)
    high = np.array([b["observed_ci_high_percent"] for b in full], dtype=float)
    ax.plot([0, 100], [0, 100], color="#999", linewidth=0.8, linestyle=":", label="perfect calibration")
    if full:
        ax.errorbar(x, y, yerr=[y - low, high - y], fmt="o-", color=ENSEMBLE_COLOUR, capsize=3,
                    label="observed (95 % CI)")
    ax.set_ylabel("sarcoma observed (%)")
    ax.set_xlim(-2, 102)
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title((title or "Calibration of the likelihood") + (" — SYNTHETIC data" if synthetic else ""), fontsize=9)
    centres = np.array([(b["low"] + b["high"]) / 2 for b in bins])
    width = 0.9 * (bins[0]["high"] - bins[0]["low"]) if bins else 10.0
    sarcoma = np.array([b["n_sarcoma"] for b in bins])
    leiomyoma = np.array([b["n"] - b["n_sarcoma"] for b in bins])
    counts.bar(centres, sarcoma, width=width, color=SINGLE_COLOUR, label="sarcoma")
    counts.bar(centres, leiomyoma, width=width, bottom=sarcoma, color="#8aa9cf", label="leiomyoma")
    counts.set_xlabel("sarcoma likelihood (%): mean in the bin above, bin below")
    counts.set_ylabel("cases")
    counts.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=7, ncol=2, frameon=False)
    return _svg(fig)
