"""Evaluations and external validations learn of a corrected case (issue 13): registered with ``imaging.frozen``
by InferenceConfig.ready(), since imaging cannot import inference (layers)."""

from django.db.models import Q

from inference.models import Evaluation, ExternalValidation


def _mark(rows, *, reason: str, at) -> None:
    for row in rows:
        row.stale_since = row.stale_since or at
        row.stale_reason = "\n".join(filter(None, [row.stale_reason, reason]))
        row.save(update_fields=["stale_since", "stale_reason"])


def mark_evaluations_stale(*, case_ids, cohort_ids, reason: str, at) -> list[str]:
    """Mark stale every evaluation computed on the cases (an AI result for one) or on a run of the cohorts, and
    every external validation of those cohorts or of those evaluations' model sets; returns their labels
    ("evaluation <name>", "external validation <name>")."""
    ids = set(Evaluation.objects
              .filter(Q(case_results__case_id__in=case_ids) | Q(training_run__cohort_id__in=cohort_ids))
              .values_list("pk", flat=True))
    evaluations = list(Evaluation.objects.select_for_update().filter(pk__in=ids).order_by("name", "pk"))
    _mark(evaluations, reason=reason, at=at)
    validations = list(ExternalValidation.objects.select_for_update()
                       .filter(Q(cohort_id__in=cohort_ids) | Q(evaluation_id__in=ids)).order_by("name", "pk"))
    _mark(validations, reason=reason, at=at)
    return [f"evaluation {e.name}" for e in evaluations] + [f"external validation {v.name}" for v in validations]
