"""The evaluation page's heat-map gallery (issue 18): reads only, beside ``inference.selectors``.

A coordinator decides whether readers see the maps in exam 2 (``Study.heat_maps``); before that they want to see
what the maps look like where the models were surest, both ways: the cases the ensemble called most confidently
right and most confidently wrong. A confident wrong call whose map lights up the myometrium rather than the
tumour is the reason to keep the maps hidden. The ranking (``most_confident``) is plain logic on
``(case pk, likelihood %, truth)``; the rest reads the stored maps (``inference.saliency_store``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.constants import SEQUENCE_CODES
from core.metrics import AI_CALL_PERCENT, ai_wrong
from inference import saliency_figure, selectors
from inference.models import Evaluation

PER_SIDE = 4          # tiles in each row of the gallery


@dataclass(frozen=True)
class Ranked:
    """One case in the ranking: ``likelihood`` in % sarcoma, ``confidence`` = |likelihood − 50| in points."""

    case_pk: int
    likelihood: float
    truth: str
    confidence: float
    right: bool


def most_confident(cases: Iterable[tuple[int, float | None, str | None]],
                   *, per_side: int | None = PER_SIDE) -> tuple[list[Ranked], list[Ranked]]:
    """(right, wrong): the cases the DNN called right and wrong, each most confident first, at most ``per_side``
    each (None: all). Right and wrong are ``core.metrics.ai_wrong``'s (a tie at 50 % is a sarcoma call), the
    definition of the per-case table and the statistics. A case without a likelihood or a truth is in neither.
    Equal confidence goes by case pk, so the page does not reshuffle between visits."""
    right, wrong = [], []
    for case_pk, likelihood, truth in cases:
        wrong_call = ai_wrong(likelihood, truth)
        if wrong_call is None:
            continue
        ranked = Ranked(case_pk=int(case_pk), likelihood=float(likelihood), truth=truth,
                        confidence=abs(float(likelihood) - AI_CALL_PERCENT), right=not wrong_call)
        (wrong if wrong_call else right).append(ranked)
    right.sort(key=_surest_first)
    wrong.sort(key=_surest_first)
    if per_side is None:
        return right, wrong
    return right[:per_side], wrong[:per_side]


def _surest_first(ranked: Ranked) -> tuple[float, int]:
    return -ranked.confidence, ranked.case_pk


def strongest_slice(evaluation_pk: int, case_pk: int):
    """(crop, map, sequence code) of the case's slice with the strongest map, both (S, S) uint8; None where the
    case has no readable maps (no file, a damaged one, or no slice in it)."""
    maps = selectors.case_maps(evaluation_pk, case_pk)
    row = maps.strongest() if maps is not None else None
    if row is None:
        return None
    index = int(maps.sequence_idx[row])
    code = SEQUENCE_CODES[index] if 0 <= index < len(SEQUENCE_CODES) else "?"
    return maps.crops[row], maps.maps[row], code


def heat_map_gallery(evaluation: Evaluation, case_rows: list[dict]) -> dict:
    """What the page's "Heat-maps" section shows, from the per-case table's rows
    (``selectors.case_result_table``: its truth is the one the evaluation was computed with).

    {"n_cases": cases with a result, "n_with_maps": of those, how many have maps, "missing": how many lack
    them, "right" / "wrong": tiles (most confident first), "legend": the colour stops, "job": the running
    heat-maps job or None}. A tile: the row's "case", "truth", "likelihood", plus "confidence" (points)
    and "sequence" (the code of the strongest slice, the one drawn).
    """
    with_maps = selectors.cases_with_maps(evaluation)
    by_pk = {row["case"].pk: row for row in case_rows}
    mapped = [pk for pk in by_pk if pk in with_maps]
    right, wrong = most_confident(((pk, by_pk[pk]["likelihood"], by_pk[pk]["truth"]) for pk in mapped),
                                  per_side=None)
    return {"n_cases": len(by_pk), "n_with_maps": len(mapped), "missing": len(by_pk) - len(mapped),
            "right": _tiles(evaluation, right, by_pk), "wrong": _tiles(evaluation, wrong, by_pk),
            "legend": saliency_figure.legend_stops(), "job": selectors.active_heat_maps_job(evaluation)}


def _tiles(evaluation: Evaluation, ranked: list[Ranked], by_pk: dict[int, dict]) -> list[dict]:
    """The first ``PER_SIDE`` ranked cases whose maps can be drawn (a damaged file is passed over, not shown
    as a broken image)."""
    tiles = []
    for r in ranked:
        drawn = strongest_slice(evaluation.pk, r.case_pk)
        if drawn is None:
            continue
        row = by_pk[r.case_pk]
        tiles.append({"case": row["case"], "truth": r.truth, "likelihood": r.likelihood,
                      "confidence": r.confidence, "sequence": drawn[2]})
        if len(tiles) == PER_SIDE:
            break
    return tiles


def heat_map_png(evaluation: Evaluation, case_pk: int) -> bytes | None:
    """The gallery's image of a case: its strongest slice's crop with the map over it, as the viewer draws it
    (``saliency_figure.overlay``), PNG, S × S pixels; None where the case has no maps."""
    drawn = strongest_slice(evaluation.pk, case_pk)
    if drawn is None:
        return None
    crop, heat, _ = drawn
    return saliency_figure.png(saliency_figure.overlay(crop, heat))
