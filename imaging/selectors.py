"""Reads on imaging, with the permission filter built in.

Coordinators and admins see every case and series; nobody else sees anything here. Readers reach images
only through reader_study (``/api/reading/<assignment>/series/<handle>/volume``), which knows their assignments: imaging
imports no app above it (docs/architecture.md).
"""

from __future__ import annotations

from pathlib import Path

from django.db.models import Count, Prefetch, Q, QuerySet

from accounts.roles import is_coordinator
from core.constants import SEQUENCE_CODES
from imaging import sequences
from imaging.models import Case, CaseAudit, Cohort, ImportBatch, SequenceRuleSet, Series, TumourBox


def cases_visible_to(user) -> QuerySet[Case]:
    """Coordinators and admins: all cases. Everyone else: none (readers reach series, not case records)."""
    if not getattr(user, "is_authenticated", False) or not is_coordinator(user):
        return Case.objects.none()
    return Case.objects.all()


def case_list(
    user, *, q: str = "", truth: str = "", sequence: str = "", institution: str = ""
) -> QuerySet[Case]:
    """The coordinator's case list: pseudonym / subtype search, class, sequence code, institution. Studies held
    for review are not cases yet: they are listed on their import's page (``held_imports``)."""
    cases = cases_visible_to(user).usable()
    if q:
        cases = cases.filter(Q(pseudonym__icontains=q) | Q(subtype__icontains=q))
    if truth == "unknown":
        cases = cases.filter(truth="")
    elif truth:
        cases = cases.filter(truth=truth)
    if institution:
        cases = cases.filter(institution=institution)
    if sequence:
        cases = cases.filter(
            Q(series__override_code=sequence) | Q(series__override_code="", series__mapped_code=sequence)
        ).distinct()
    return cases.annotate(series_count=Count("series", distinct=True)).order_by("pseudonym")


def institutions(user) -> list[str]:
    return list(
        cases_visible_to(user).usable()
        .exclude(institution="")
        .values_list("institution", flat=True)
        .distinct()
        .order_by("institution")
    )


def case_for_user(user, pk: int) -> Case:
    """One case with its series and boxes (raises Case.DoesNotExist when not visible)."""
    boxes = Prefetch("boxes", queryset=TumourBox.objects.order_by("slice_index"))
    return (
        cases_visible_to(user)
        .prefetch_related(Prefetch("series", queryset=Series.objects.prefetch_related(boxes)))
        .get(pk=pk)
    )


def case_audit(user, case: Case) -> QuerySet[CaseAudit]:
    """A case's audit trail, oldest first, for coordinators and admins; empty for anyone else."""
    if not is_coordinator(user):
        return CaseAudit.objects.none()
    return CaseAudit.objects.filter(case=case).select_related("actor").order_by("at", "pk")


def case_audit_for_cases(case_ids) -> QuerySet[CaseAudit]:
    """The audit lines of the given cases (the study export's case_audit.csv; the caller checks the role)."""
    return CaseAudit.objects.filter(case_id__in=case_ids).select_related("actor").order_by("case_id", "at", "pk")


def series_visible_to(user) -> QuerySet[Series]:
    """Coordinators and admins: every series. Everyone else, readers included: none (see the module doc)."""
    if not getattr(user, "is_authenticated", False) or not is_coordinator(user):
        return Series.objects.none()
    return Series.objects.select_related("case")


def series_for_user(user, pk: int) -> Series:
    return series_visible_to(user).get(pk=pk)


def boxes_of(series: Series) -> list[dict]:
    return [
        {"slice_index": b.slice_index, "x0": b.x0, "y0": b.y0, "x1": b.x1, "y1": b.y1, "source": b.source}
        for b in series.boxes.order_by("slice_index")
    ]


# --- sequence mapping -------------------------------------------------------------------------------


def active_rule_set() -> tuple[sequences.RuleSet, SequenceRuleSet | None]:
    """The active rules (validated) and their record; the shipped defaults when none is active.
    A stored rule set that no longer validates falls back to the defaults too."""
    record = SequenceRuleSet.objects.filter(is_active=True).order_by("-updated_at").first()
    if record is not None:
        try:
            return sequences.validate_rules(record.rules), record
        except sequences.RuleValidationError:
            pass
    return sequences.load_default_rules(), None


def mapping_report(user, *, code: str = "", overridden: str = "", q: str = "", plane: str = "",
                   rule: str = "") -> QuerySet[Series]:
    """Every series with its code, the rule that chose it and any override (coordinators only), filtered: ``code``
    the code used (override, else rule's; "unused" too), ``overridden`` "yes" for overridden series only, ``q`` words
    in the case's pseudonym or the series' cleaned description, ``plane`` one of ``models.Plane``, ``rule`` a
    rule's id, or "none" for series no rule matched."""
    if not is_coordinator(user):
        return Series.objects.none()
    series = Series.objects.select_related("case").order_by("case__pseudonym", "series_number", "pk")
    if code:
        series = series.filter(Q(override_code=code) | Q(override_code="", mapped_code=code))
    if overridden == "yes":
        series = series.exclude(override_code="")
    if q:
        series = series.filter(Q(case__pseudonym__icontains=q) | Q(attributes__series_description__icontains=q))
    if plane:
        series = series.filter(plane=plane)
    if rule:
        series = series.filter(mapped_rule="" if rule == "none" else rule)
    return series


def sequence_codes() -> tuple[str, ...]:
    return SEQUENCE_CODES


# --- imports and cohorts ----------------------------------------------------------------------------


def import_batches_visible_to(user) -> QuerySet[ImportBatch]:
    if not is_coordinator(user):
        return ImportBatch.objects.none()
    return ImportBatch.objects.select_related("job", "created_by").annotate(
        held_count=Count("cases", filter=~Q(cases__review_reason=""), distinct=True))


def import_upload_kept(batch: ImportBatch) -> bool:
    """True when a failed or cancelled web import still keeps its raw upload (for a resume, or to discard)."""
    job = batch.job
    return bool(job is not None and job.params.get("upload_dir") and job.status in ("failed", "cancelled")
                and Path(job.params["upload_dir"]).exists())


def held_imports(user, batch: ImportBatch | None = None) -> QuerySet[Case]:
    """Studies held for review (issue 13), all or one import's, oldest first, with the case each may belong to;
    coordinators only."""
    if not is_coordinator(user):
        return Case.objects.none()
    cases = (Case.objects.held().select_related("review_of", "import_batch")
             .annotate(series_count=Count("series", distinct=True)).order_by("created_at", "pk"))
    return cases.filter(import_batch=batch) if batch is not None else cases


def cohorts_visible_to(user) -> QuerySet[Cohort]:
    if not is_coordinator(user):
        return Cohort.objects.none()
    return Cohort.objects.annotate(case_count=Count("members"))



def possible_duplicates(user, batch: ImportBatch | None = None) -> list[list[Case]]:
    """Groups of usable cases that share a person hash (keyed name + birth date + sex) under different patient
    IDs and that a coordinator has not yet called different people (issue 14, item 9): each group oldest first,
    groups by their oldest case. ``batch``: only groups with a case of that import. Coordinators only."""
    if not is_coordinator(user):
        return []
    return duplicate_groups(batch)


def duplicate_groups(batch: ImportBatch | None = None) -> list[list[Case]]:
    """``possible_duplicates`` without the permission check, for the importer's summary."""
    cases = Case.objects.usable().exclude(person_hash="")
    flagged = (cases.values("person_hash").annotate(n=Count("pk"), open=Count("pk", filter=Q(duplicate_checked=False)))
               .filter(n__gte=2, open__gte=1).values_list("person_hash", flat=True))
    if batch is not None:
        flagged = flagged.filter(person_hash__in=cases.filter(import_batch=batch).values("person_hash"))
    groups: dict[str, list[Case]] = {}
    members = (cases.filter(person_hash__in=list(flagged)).select_related("import_batch")
               .annotate(series_count=Count("series", distinct=True)).order_by("created_at", "pk"))
    for case in members:
        groups.setdefault(case.person_hash, []).append(case)
    return sorted(groups.values(), key=lambda group: (group[0].created_at, group[0].pk))
