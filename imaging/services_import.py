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
from imaging.models import Case, CaseAudit, Series

log = logging.getLogger(__name__)

SAME_PATIENT = "same"
NEW_PATIENT = "new"
DECISIONS = {SAME_PATIENT: "same patient", NEW_PATIENT: "new patient"}
_FILLABLE = ("truth", "subtype", "institution", "length_mm", "width_mm", "height_mm", "degeneration",
             "irregular_margin", "sex_hash", "birth_date_hash")


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
    before = {"series": target.series.count()}
    Series.objects.filter(case=held).update(case=target)
    filled = {}
    if not target.issuer_hash and held.issuer_hash:  # a case with no issuer: now known under the held identity
        target.identity_hash = held.identity_hash
        target.issuer_hash = held.issuer_hash
        target.save(update_fields=["identity_hash", "issuer_hash"])
    for name in _FILLABLE:
        if getattr(target, name) in ("", None) and getattr(held, name) not in ("", None):
            filled[name] = getattr(held, name)
            setattr(target, name, filled[name])
    if filled:
        target.save(update_fields=list(filled))
    visible = {k: v for k, v in filled.items() if not k.endswith("_hash")}
    case_audit_record(case=target, action=CaseAudit.Action.MERGED, by=by, reason=reason or "same patient",
                      before=before, after={**record, "filled": visible})
    log.info("held case %s joined case %s (same patient) by user %s", held.pk, target.pk, by.pk)
    held.delete()
    return target

