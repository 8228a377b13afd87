"""Which cases are frozen, and by what (issue 13, "frozen stays frozen").

A case is frozen while it is in a built cohort (`Cohort.frozen`, through `CohortCase`) or in a reader study that
is no longer a draft. Its truth, subtype, tumour boxes and series then stay as they are: every write path asks
`frozen_by` (or `refuse_if_frozen`) first, and a deliberate change goes through the one audited correction use
case, `imaging.services.case_correct`.

imaging sits below reader_study and inference in the layer order (docs/architecture.md), so it cannot ask them
itself. They register here instead, from their `AppConfig.ready()`, as job kinds and demo steps do:

* `register_freezer(fn)`: `fn(case_ids) -> {case_id: ["study <name>", ...]}` — what of theirs freezes a case;
* `register_stale_marker(fn)`: `fn(case_ids=..., cohort_ids=..., reason=..., at=...) -> ["evaluation 3", ...]` —
  called by the correction use case, inside its transaction, to mark their results built on those cases (or on
  those cohorts) stale, returning the labels of what it marked.
"""

from collections.abc import Callable, Iterable

from django.core.exceptions import ValidationError

Freezer = Callable[[list[int]], dict[int, list[str]]]
StaleMarker = Callable[..., list[str]]

_freezers: list[Freezer] = []
_stale_markers: list[StaleMarker] = []


def register_freezer(fn: Freezer) -> Freezer:
    """Add a source of freezes (idempotent: registering the same function twice counts once)."""
    if fn not in _freezers:
        _freezers.append(fn)
    return fn


def register_stale_marker(fn: StaleMarker) -> StaleMarker:
    """Add a reaction to a correction: mark one's own results on the corrected cases stale (idempotent)."""
    if fn not in _stale_markers:
        _stale_markers.append(fn)
    return fn


def stale_markers() -> list[StaleMarker]:
    return list(_stale_markers)


def _cohort_freezes(case_ids: list[int]) -> dict[int, list[str]]:
    from imaging.models import CohortCase

    found: dict[int, list[str]] = {}
    rows = (CohortCase.objects.filter(case_id__in=case_ids, cohort__frozen=True)
            .order_by("cohort__name").values_list("case_id", "cohort__name"))
    for case_id, name in rows:
        found.setdefault(case_id, []).append(f"cohort {name}")
    return found


def frozen_by(case_ids: Iterable[int]) -> dict[int, list[str]]:
    """For each given case that is frozen, the labels of what freezes it ("cohort pilot-1", "study Pilot").

    Cases that are not frozen are absent from the result. One query per source, whatever the number of cases.
    """
    ids = sorted({int(i) for i in case_ids})
    if not ids:
        return {}
    found = _cohort_freezes(ids)
    for fn in _freezers:
        for case_id, labels in fn(ids).items():
            found.setdefault(case_id, []).extend(labels)
    return {case_id: sorted(set(labels), key=labels.index) for case_id, labels in found.items()}


def frozen_labels(case) -> list[str]:
    """What freezes one case (a Case or its primary key); empty when nothing does."""
    case_id = getattr(case, "pk", case)
    return frozen_by([case_id]).get(case_id, [])


def is_frozen(case) -> bool:
    return bool(frozen_labels(case))


def frozen_message(case, labels: list[str], what: str = "changed") -> str:
    pseudonym = getattr(case, "pseudonym", f"case {getattr(case, 'pk', case)}")
    return (f"{pseudonym} is frozen by {', '.join(labels)}: its truth, subtype, boxes and series cannot be "
            f"{what}; use “correct this case” on the case page (a correction with a reason, which marks "
            f"them stale)")


def refuse_if_frozen(case, what: str = "changed") -> None:
    """Raise a ValidationError naming the cohorts and studies that freeze the case, if any do."""
    labels = frozen_labels(case)
    if labels:
        raise ValidationError(frozen_message(case, labels, what), code="frozen")
