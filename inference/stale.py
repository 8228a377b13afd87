"""Evaluations learn of a corrected case (issue 13): registered with ``imaging.frozen`` by InferenceConfig.ready(),
since imaging cannot import inference (layers)."""

from django.db.models import Q

from inference.models import Evaluation


def mark_evaluations_stale(*, case_ids, cohort_ids, reason: str, at) -> list[str]:
    """Mark stale every evaluation computed on the cases (an AI result for one) or on a run of the cohorts;
    returns their labels ("evaluation <name>")."""
    ids = set(Evaluation.objects
              .filter(Q(case_results__case_id__in=case_ids) | Q(training_run__cohort_id__in=cohort_ids))
              .values_list("pk", flat=True))
    evaluations = list(Evaluation.objects.select_for_update().filter(pk__in=ids).order_by("name", "pk"))
    for evaluation in evaluations:
        evaluation.stale_since = evaluation.stale_since or at
        evaluation.stale_reason = "\n".join(filter(None, [evaluation.stale_reason, reason]))
        evaluation.save(update_fields=["stale_since", "stale_reason"])
    return [f"evaluation {e.name}" for e in evaluations]
