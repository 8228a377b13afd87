"""The words and figures of the exam-2 AI panel (issue 15, items 1 and 7). No Django: ``payloads.ai_payload``
hands it one case's stored result and its evaluation's operating point and figures.

What the numbers are (METHOD §7, §9; ``inference/predictions.py``): each of the N ensembles calls each sequence
of the chosen set that the case has sarcoma (+1) or leiomyoma (−1); a sequence the case lacks adds 0. The sum is
the ensemble's score for the case, and the ensemble calls the case sarcoma when the score reaches its own
threshold (``results["chosen"]["thresholds"]``, one per ensemble). The likelihood is the share of ensembles
that do; a sequence's figure is the share of ensembles whose call on that sequence alone is sarcoma. The two
differ whenever the sum does not follow one sequence: a case with only one sequence of the set scores at most
+1, and an ensemble whose threshold is +2 never calls it sarcoma however sure that sequence is.

Every sentence here speaks of this case and the model only: nothing about other cases (no coverage, no counts
of patients), so no reader learns anything of the study's case mix from the panel.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping

from core.constants import SEQUENCE_CODES

MINUS = "\u2212"


def signed(value: int) -> str:
    """A patient score as people read it: +2, 0, −1 (a true minus sign)."""
    return "0" if value == 0 else (f"+{value}" if value > 0 else f"{MINUS}{-value}")


def count_of(percent: float, n: int) -> int:
    """How many of ``n`` ensembles a stored percentage stands for (it was k / n · 100, rounded to 4 places)."""
    return int(round(float(percent) * n / 100.0)) if n else 0


def whole_percent(percent: float) -> int:
    """A stored percentage as a whole number: with 24 ensembles one step is 4.2 points, so decimals are false."""
    return int(round(float(percent)))


def operating_point(thresholds: Iterable[int] | None) -> dict | None:
    """The ensembles' thresholds on the patient score: lowest, highest, median and how people read it."""
    values = sorted(int(t) for t in (thresholds or []))
    if not values:
        return None
    low, high = values[0], values[-1]
    text = (f"score ≥ {signed(low)}" if low == high else
            f"score ≥ {signed(low)} to ≥ {signed(high)}, depending on the ensemble "
            f"(median ≥ {signed(int(round(statistics.median(values))))})")
    return {"low": low, "high": high, "text": text}


def _interval(block: Mapping | None) -> dict | None:
    if not block or block.get("estimate") is None:
        return None
    rounded = {key: int(round(float(block[key]))) for key in ("estimate", "ci_low", "ci_high")
               if block.get(key) is not None}
    rounded["text"] = (f"{rounded['estimate']} % (95 % CI {rounded['ci_low']}–{rounded['ci_high']} %)"
                       if "ci_low" in rounded and "ci_high" in rounded else f"{rounded['estimate']} %")
    return rounded


def performance(nested: Mapping | None, in_sample: Mapping | None) -> dict | None:
    """Sensitivity and specificity with 95 % CIs: the honest (nested) figures where the evaluation has them,
    else the chosen set's own, labelled as chosen on the patients they score (optimistic)."""
    for kind, block, label in (
            ("nested", nested, "honest (nested) evaluation: sequence set and threshold chosen without the "
                               "patients they were tested on"),
            ("in_sample", in_sample, "chosen and tested on the same patients (no nested evaluation): "
                                     "optimistic")):
        block = block or {}
        sensitivity, specificity = _interval(block.get("sensitivity")), _interval(block.get("specificity"))
        if sensitivity and specificity:
            return {"kind": kind, "label": label, "sensitivity": sensitivity, "specificity": specificity}
    return None


def case_note(n_used: int, point: dict | None) -> str:
    """Why the likelihood may not follow the per-sequence figures, for this case, where the rule decides it."""
    if point is None:
        return ""
    low, high = point["low"], point["high"]
    if n_used == 0:
        decided = ("no ensemble calls it sarcoma" if low > 0 else "every ensemble calls it sarcoma" if high <= 0
                   else "only the ensembles whose threshold is 0 or lower call it sarcoma")
        return f"This case has none of the set's sequences: every ensemble scores it 0, so {decided}."
    if n_used < low:
        return (f"With {n_used} of the set's sequences, this case scores at most {signed(n_used)}, below every "
                f"ensemble's threshold: no ensemble can call it sarcoma, whatever the sequences show.")
    if -n_used >= high:
        return (f"With {n_used} of the set's sequences, this case scores at least {signed(-n_used)}, which reaches "
                f"every ensemble's threshold: every ensemble calls it sarcoma, whatever the sequences show.")
    if n_used < high:
        return (f"With {n_used} of the set's sequences, this case scores at most {signed(n_used)}: ensembles whose "
                f"threshold is higher cannot call it sarcoma.")
    return ""


def panel(*, likelihood: float, per_sequence: Mapping[str, float], subset: Iterable[str], n_ensembles: int,
          thresholds: Iterable[int] | None = None, nested: Mapping | None = None,
          in_sample: Mapping | None = None) -> dict:
    """The panel's content. ``likelihood`` and ``per_sequence`` in % as stored (``CaseAIResult``); ``subset``
    the chosen set; ``thresholds`` one per ensemble; ``nested``/``in_sample`` {metric: {estimate, ci_low,
    ci_high}} in %. Every percentage is whole, and beside it the count of ensembles it stands for."""
    n = int(n_ensembles or 0)
    chosen = [code for code in SEQUENCE_CODES if code in set(subset or [])]
    has = per_sequence or {}
    used = []
    for code in chosen:
        if code in has:
            k = count_of(has[code], n)
            used.append({"code": code, "n_sarcoma": k, "percent": whole_percent(has[code])})
    k = count_of(likelihood, n)
    point = operating_point(thresholds)
    return {
        "likelihood": whole_percent(likelihood), "n_sarcoma": k, "n_ensembles": n,
        "subset": chosen, "used": used, "missing": [code for code in chosen if code not in has],
        "threshold": point, "performance": performance(nested, in_sample),
        "how_combined": (f"Each of the {n} ensembles scores every sequence of the set that this case has +1 "
                         f"(sarcoma) or {MINUS}1 (leiomyoma), adds the scores (a missing sequence adds 0) and "
                         f"calls the case sarcoma when the sum reaches its threshold; a sequence's figure is the "
                         f"share of ensembles calling that sequence sarcoma on its own, so the two can differ."),
        "note": case_note(len(used), point),
    }
