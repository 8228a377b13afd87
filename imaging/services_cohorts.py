"""Writes on cohorts: create a frozen cohort from cases with ground truth, start its build job."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from imaging.models import Case, Cohort, CohortCase


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
