"""Writes on cohorts: create a frozen cohort from cases with ground truth, start its build job."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from imaging.models import Case, Cohort, CohortCase

COHORT_SELECTIONS = ("all", "synthetic", "real")


def _selected(cases, selection: str, institution: str):
    if selection == "synthetic":
        cases = cases.filter(is_synthetic=True)
    elif selection == "real":
        cases = cases.filter(is_synthetic=False)
    return cases.filter(institution=institution) if institution else cases


def cohort_candidates(*, selection: str = "all", institution: str = ""):
    """The cases a new cohort takes (the cohort page and `build_cohort`): usable cases with ground truth, all,
    synthetic or real, optionally of one institution. Empty: `cohort_candidates_missing` says why."""
    return _selected(Case.objects.usable().exclude(truth=""), selection, institution)


def cohort_candidates_missing(*, selection: str = "all", institution: str = "") -> str:
    """Why `cohort_candidates` is empty, in words a coordinator can act on."""
    kind = {"synthetic": "synthetic ", "real": "real (non-synthetic) "}.get(selection, "")
    where = f" of institution {institution!r}" if institution else ""
    usable = Case.objects.usable()
    if not usable.exists():
        return "there are no cases yet: import DICOM first (manage.py import_dicom or the upload page)"
    n = _selected(usable, selection, institution).count()
    if not n:
        return f"no {kind}case{where} ({usable.count()} cases in all)"
    return (f"none of the {n} {kind}case(s){where} has a ground truth yet: set it on the case pages or import a "
            "manifest with a class column (import_dicom --manifest)")


def _refuse_undecided_duplicates(cases: list[Case]) -> None:
    """One person in two cases would sit in two folds and be tested by a model trained on herself: a cohort may
    not hold two cases flagged as possible duplicates (issue 14, item 9) until they are merged or called
    different people on /imaging/cases/duplicates/."""
    by_person: dict[str, list[Case]] = {}
    for case in cases:
        if case.person_hash:
            by_person.setdefault(case.person_hash, []).append(case)
    pairs = [group for group in by_person.values() if len(group) > 1 and not all(c.duplicate_checked for c in group)]
    if pairs:
        shown = "; ".join(" and ".join(c.pseudonym for c in group) for group in pairs[:10])
        raise ValidationError({"cases": f"possible duplicate patients (same name, birth date and sex under different "
                                        f"patient IDs), not yet decided: {shown}. Merge them or call them different "
                                        f"people on the possible-duplicates page first"})


@transaction.atomic
def cohort_create(
    *, name: str, cases, description: str = "", crop_margin: float = 0.15, input_size: int = 224, user=None
) -> Cohort:
    """A named, frozen set of cases; each case's ground truth is frozen with it.

    Every case needs a ground truth; the error names the cases (by pseudonym) that lack one.
    """
    slug = slugify(name or "")
    if not slug:
        raise ValidationError({"name": "a cohort needs a name (letters, digits, '-')"})
    if Cohort.objects.filter(name=slug).exists():
        raise ValidationError({"name": f"a cohort named {slug} already exists"})
    if not 0 <= crop_margin <= 2:
        raise ValidationError({"crop_margin": "must be between 0 and 2 (fraction of the box's longer side)"})
    if not 32 <= input_size <= 1024:
        raise ValidationError({"input_size": "must be between 32 and 1024 pixels"})
    cases = list(Case.objects.filter(pk__in=[getattr(c, "pk", c) for c in cases]).order_by("pk"))
    if not cases:
        raise ValidationError({"cases": "a cohort needs at least one case"})
    held = [c.pseudonym for c in cases if c.review_reason]
    if held:  # an imported study held for review is not a case yet (issue 13)
        raise ValidationError({"cases": f"held for review (resolve them on their import's page first): "
                                        f"{', '.join(held[:10])}"})
    _refuse_undecided_duplicates(cases)
    missing = [c.pseudonym for c in cases if not c.truth]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise ValidationError({"cases": f"cases without ground truth: {shown}"})
    cohort = Cohort.objects.create(
        name=slug,
        description=description,
        crop_margin=crop_margin,
        input_size=input_size,
        frozen=True,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    CohortCase.objects.bulk_create([CohortCase(cohort=cohort, case=c, truth=c.truth) for c in cases])
    return cohort


def cohort_build_start(*, cohort: Cohort, user=None):
    """Start the "cohort_build" job that writes the cohort's array store; returns the Job."""
    from jobs.services import job_create

    job = job_create(kind="cohort_build", params={"cohort": cohort.pk}, user=user)
    Cohort.objects.filter(pk=cohort.pk).update(job=job)
    return job
