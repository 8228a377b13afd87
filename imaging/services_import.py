"""Writes on imports held for review (issue 13): a coordinator decides "same patient" or "new patient".

An import never merges silently (``importer_cases``): a study whose patient already has a case, but whose files or
manifest disagree with it, or whose case is frozen, is stored apart as a *held* case (``Case.review_reason``,
``Case.review_of`` = the existing case). It is invisible to cohorts, studies, training and evaluation
(``Case.objects.usable()``) until resolved here.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from imaging import frozen
from imaging.models import Case, CaseAlias, CaseAudit, Series

log = logging.getLogger(__name__)

SAME_PATIENT = "same"
NEW_PATIENT = "new"
DECISIONS = {SAME_PATIENT: "same patient", NEW_PATIENT: "new patient"}
_FILLABLE = ("truth", "subtype", "institution", "length_mm", "width_mm", "height_mm", "degeneration",
             "irregular_margin", "sex_hash", "birth_date_hash", "person_hash")


@transaction.atomic
def import_review_resolve(*, case: Case, decision: str, by, reason: str = "") -> Case:
    """Resolve a held import. ``decision`` "new": the held study is a patient of its own, its case is released
    (kept under its own pseudonym, with the manifest values it got). "same": its series (with their boxes) join
    the existing case, which keeps its own ground truth and values (empty ones are filled from the held case),
    and the held case is removed. When the existing case is frozen (a cohort or an opened study), "same" is a
    correction of it: it needs a reason, and every cohort, evaluation and study built on the case is marked stale
    (``imaging.services.mark_built_on_stale``), as for any correction. Refused for a case that is not held.
    Audited on the case that remains. Returns it."""
    from imaging.services import case_audit_record, mark_built_on_stale, require_coordinator

    if decision not in DECISIONS:
        raise ValidationError({"decision": f"one of {', '.join(DECISIONS)}"})
    require_coordinator(by, "a review decision")
    held = Case.objects.select_for_update().filter(pk=getattr(case, "pk", case)).first()
    if held is None or not held.review_reason:
        raise ValidationError("this case is not held for review (already resolved?)")
    series = list(held.series.order_by("series_number", "pk").values("pk", "series_number"))
    record = {"held_case": held.pseudonym, "series": [s["pk"] for s in series],
              "held_because": held.review_reason, "decision": DECISIONS[decision]}
    target = held.review_of
    if decision == NEW_PATIENT or target is None:
        held.review_reason = ""
        held.save(update_fields=["review_reason"])
        case_audit_record(case=held, action=CaseAudit.Action.SERIES_ADDED, by=by, reason=reason or "new patient",
                          after={**record, "existing_case": target.pseudonym if target else ""})
        log.info("held case %s released as a new patient by user %s", held.pk, by.pk)
        return held
    target = Case.objects.select_for_update().get(pk=target.pk)
    labels = frozen.frozen_labels(target)
    if labels:
        reason = (reason or "").strip()
        if not reason:
            raise ValidationError(
                {"reason": f"{target.pseudonym} is frozen by {', '.join(labels)}: adding the held study's series "
                           f"to it is a correction, which needs a reason (what is built on it is marked stale)"},
                code="frozen")
        now = timezone.now()
        record["affected"] = mark_built_on_stale(
            target, f"{target.pseudonym} corrected on {now:%Y-%m-%d} ({len(series)} series of held study "
                    f"{held.pseudonym} added): {reason}", at=now)
    _join(held, target, by=by, reason=reason or "same patient", record=record)
    log.info("held case %s joined case %s (same patient) by user %s", held.pk, target.pk, by.pk)
    return target


def _join(source: Case, target: Case, *, by, reason: str, record: dict) -> None:
    """Move the source case's series (with their boxes) into the target, fill the target's empty values from it,
    keep the source's identity as an alias of the target, audit one ``merged`` line and delete the source."""
    from imaging.services import case_audit_record

    before = {"series": target.series.count()}
    Series.objects.filter(case=source).update(case=target)
    if not target.issuer_hash and source.issuer_hash:  # a case with no issuer: now known under the source's identity
        target.identity_hash = source.identity_hash
        target.issuer_hash = source.issuer_hash
        target.save(update_fields=["identity_hash", "issuer_hash"])
    elif not source.review_reason:   # a case of its own: its identity keeps finding the person's case
        identity = source.identity_hash or source.source_key_hash
        if identity not in (target.identity_hash, target.source_key_hash):
            CaseAlias.objects.update_or_create(identity_hash=identity, defaults={"case": target})
    CaseAlias.objects.filter(case=source).update(case=target)
    filled = {}
    for name in _FILLABLE:
        if getattr(target, name) in ("", None) and getattr(source, name) not in ("", None):
            filled[name] = getattr(source, name)
            setattr(target, name, filled[name])
    if filled:
        target.save(update_fields=list(filled))
    visible = {k: v for k, v in filled.items() if not k.endswith("_hash")}
    case_audit_record(case=target, action=CaseAudit.Action.MERGED, by=by, reason=reason, before=before,
                      after={**record, "filled": visible})
    source.delete()


@transaction.atomic
def case_merge(*, case: Case, into: Case, by, reason: str) -> Case:
    """Merge a possible duplicate (issue 14, item 9): ``case`` is the same person as ``into`` under another patient
    ID (same keyed name + birth date + sex hash). Its series join ``into``, which keeps its own truth and values
    (empty ones are filled); its identity becomes an alias of ``into`` so later studies find it. Only before
    folds are drawn: refused while either case is frozen (a built cohort, an opened study), and for cases held
    for review (resolve those on their import's page). Needs a reason; coordinators only; audited."""
    from imaging.services import require_coordinator

    require_coordinator(by, "a merge")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "say why these are one person (it is kept in the audit trail)"})
    pair = Case.objects.select_for_update().in_bulk([getattr(case, "pk", case), getattr(into, "pk", into)])
    source, target = pair.get(getattr(case, "pk", case)), pair.get(getattr(into, "pk", into))
    if source is None or target is None or source.pk == target.pk:
        raise ValidationError("choose two different cases")
    if source.review_reason or target.review_reason:
        raise ValidationError("a case held for review is resolved on its import's page first")
    if not source.person_hash or source.person_hash != target.person_hash:
        raise ValidationError(f"{source.pseudonym} and {target.pseudonym} are not flagged as possible duplicates")
    for one in (source, target):
        labels = frozen.frozen_labels(one)
        if labels:
            raise ValidationError(f"{one.pseudonym} is frozen by {', '.join(labels)}: cases are merged before "
                                  f"folds are drawn (correct the frozen case instead)", code="frozen")
    series = list(source.series.values_list("pk", flat=True))
    _join(source, target, by=by, reason=reason,
          record={"merged_case": source.pseudonym, "series": series, "decision": "same person"})
    log.info("case %s merged into case %s (same person) by user %s", source.pk, target.pk, by.pk)
    return target


@transaction.atomic
def case_duplicates_dismiss(*, cases, by, reason: str = "") -> int:
    """Say that cases flagged as possible duplicates are different people: they are no longer listed (a new case
    with the same person hash flags them again). Coordinators only; audited on each. Returns how many."""
    from imaging.services import case_audit_record, require_coordinator

    require_coordinator(by, "a duplicate decision")
    found = list(Case.objects.select_for_update().filter(pk__in=[getattr(c, "pk", c) for c in cases]))
    if len(found) < 2 or len({c.person_hash for c in found}) != 1 or not found[0].person_hash:
        raise ValidationError("choose the cases of one group of possible duplicates")
    for one in found:
        one.duplicate_checked = True
        one.save(update_fields=["duplicate_checked"])
        case_audit_record(case=one, action=CaseAudit.Action.DETAILS, by=by, reason=reason or "different people",
                          after={"possible_duplicates": sorted(c.pseudonym for c in found if c.pk != one.pk),
                                 "decision": "different people"})
    return len(found)
