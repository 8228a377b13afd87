"""Charts of the evaluation page, and the ROC points they draw. No Django import.

``roc_points`` is NumPy only (the evaluation stores its output in ``Evaluation.results``). The chart
functions import matplotlib (Agg backend) inside themselves, so importing this module costs nothing; each
takes the JSON stored by the evaluation and returns SVG text.
"""

from __future__ import annotations

import io

import numpy as np

ENSEMBLE_COLOUR = "#1f5fa8"
SINGLE_COLOUR = "#c8611b"


def roc_points(scores, truth, *, max_score: int) -> list[dict]:
    """Empirical ROC curve of integer patient scores, one curve per member.

    scores ``(M, P)`` integers in ``[-max_score, max_score]`` (a set's ±1 patient scores); truth ``(P,)``
    bool (sarcoma). For every threshold t = max_score + 1 … -max_score (call sarcoma when score ≥ t) the
    curve has the point (1 − specificity, sensitivity), fractions; consecutive equal points are dropped,
    so a curve starts at (0, 0) and ends at (1, 1). Returns ``[{"fpr": [...], "tpr": [...]}, ...]``.
    """
    scores = np.asarray(scores)
    truth = np.asarray(truth, dtype=bool)
    if scores.ndim != 2 or scores.shape[1] != truth.size:
        raise ValueError(f"roc_points: scores {scores.shape} need (members, {truth.size} patients)")
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_points: need both sarcoma and leiomyoma patients")
    thresholds = np.arange(max_score + 1, -max_score - 1, -1)
    called = scores[:, None, :] >= thresholds[None, :, None]           # (M, T, P)
    tpr = (called & truth).sum(axis=2) / n_pos
    fpr = (called & ~truth).sum(axis=2) / n_neg
    curves = []
    for member_fpr, member_tpr in zip(fpr, tpr, strict=True):
        keep = np.ones(member_fpr.size, dtype=bool)
        keep[1:] = (np.diff(member_fpr) != 0) | (np.diff(member_tpr) != 0)
        curves.append({"fpr": [round(float(v), 6) for v in member_fpr[keep]],
                       "tpr": [round(float(v), 6) for v in member_tpr[keep]]})
    return curves


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _svg(fig) -> str:
    plt = _pyplot()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def per_sequence_chart(rows: list[dict], *, synthetic: bool = False) -> str:
    """Paper Fig. 1: SS-Avg (%) of each sequence alone, single models vs ensembles, mean with min–max range.

    rows: ``inference.combinations.per_sequence_table`` output (as stored); sequences no patient has
    (coverage 0) are left out.
    """
    plt = _pyplot()
    rows = [r for r in rows if r.get("coverage")]
    fig, ax = plt.subplots(figsize=(8.5, 3.6))
    x = np.arange(len(rows))
    for offset, kind, colour, label in ((-0.15, "single", SINGLE_COLOUR, "single models"),
                                        (0.15, "ensemble", ENSEMBLE_COLOUR, "ensembles")):
        mean = np.array([r.get(f"{kind}_ss_avg_mean_percent") or np.nan for r in rows], dtype=float)
        low = np.array([r.get(f"{kind}_ss_avg_min_percent") or np.nan for r in rows], dtype=float)
        high = np.array([r.get(f"{kind}_ss_avg_max_percent") or np.nan for r in rows], dtype=float)
        ax.errorbar(x + offset, mean, yerr=[mean - low, high - mean], fmt="o", color=colour, capsize=3,
                    label=f"{label} (mean, range)")
    ax.set_xticks(x, [r["sequence"] for r in rows], rotation=45, ha="right")
    ax.set_ylabel("SS-Avg (%)")
    ax.set_ylim(0, 100)
    ax.axhline(50, color="#999", linewidth=0.8, linestyle=":")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Each sequence alone" + (" — SYNTHETIC data" if synthetic else ""), fontsize=10)
    return _svg(fig)


def roc_chart(roc: dict, *, synthetic: bool = False) -> str:
    """ROC curves of the chosen set: one thin line per ensemble and per single model, patient level."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    for kind, colour, label in (("single", SINGLE_COLOUR, "single models"), ("ensemble", ENSEMBLE_COLOUR, "ensembles")):
        curves = roc.get(kind) or []
        for i, curve in enumerate(curves):
            auc = roc.get(f"{kind}_auc_mean")
            ax.plot(curve["fpr"], curve["tpr"], color=colour, alpha=0.5, linewidth=1,
                    label=(f"{label}, mean AUC {auc:.3f}" if auc is not None else label) if i == 0 else None)
    ax.plot([0, 1], [0, 1], color="#999", linewidth=0.8, linestyle=":")
    ax.set_xlabel("1 − specificity")
    ax.set_ylabel("sensitivity")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(" ".join(roc.get("codes", [])) + (" — SYNTHETIC" if synthetic else ""), fontsize=9)
    return _svg(fig)


def coverage_chart(rows: list[dict], n_patients: int, *, synthetic: bool = False) -> str:
    """Coverage: % of patients who have each sequence (what a set containing it can score)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 2.8))
    x = np.arange(len(rows))
    percent = [100.0 * r.get("coverage", 0) / n_patients if n_patients else 0.0 for r in rows]
    ax.bar(x, percent, color=ENSEMBLE_COLOUR, alpha=0.8)
    ax.set_xticks(x, [r["sequence"] for r in rows], rotation=45, ha="right")
    ax.set_ylabel("patients with it (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("Coverage per sequence" + (" — SYNTHETIC data" if synthetic else ""), fontsize=10)
    return _svg(fig)
