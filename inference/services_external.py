"""Writes of the external validations (issue 14, item 5), one function per use case: start one (refusing a cohort
that shares a patient with the training cohort), follow its job's status, store its results.

The frozen model set is a finished evaluation: its run's R × F models, its chosen sequence set and each
ensemble's threshold, its sequence-call rule and cutoff. They are copied into ``ExternalValidation.frozen`` when
the validation starts, under the evaluation's row lock, so choosing another set on the evaluation later changes
nothing here: the thresholds are the evaluation's stored ones, never chosen again on the external cohort.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from core.constants import LEIOMYOMA, SARCOMA
from inference import selectors_external
from inference.models import Evaluation, ExternalValidation
from inference.services import STATUS_OF_JOB, json_safe
from jobs import services as jobs
from jobs.models import JobStatus

Status = ExternalValidation.Status


def frozen_model_set(evaluation: Evaluation) -> dict:
    """What the validation applies, fixed now: the evaluation's chosen set (mask and codes), each ensemble's
    threshold for it, the sequence-call rule and cutoff, and which run and evaluation they come from."""
    chosen = (evaluation.results or {}).get("chosen") or {}
    cfg = evaluation.config or {}
    run = evaluation.training_run
    return {"evaluation": evaluation.pk, "evaluation_name": evaluation.name, "training_run": run.pk,
            "training_cohort": run.cohort.name, "mask": int(chosen["mask"]), "codes": list(chosen["codes"]),
            "thresholds": [int(t) for t in chosen["thresholds"]], "rank": chosen.get("rank"),
            "chosen_by": chosen.get("chosen_by", ""), "chosen_at": chosen.get("chosen_at", ""),
            "rule": cfg.get("rule", "mean"), "cutoff": float(cfg.get("cutoff", 0.5)),
            "repeats": run.repeats, "n_models": run.models.count()}


def external_validation_check(*, evaluation: Evaluation, cohort) -> None:
    """Why ``evaluation``'s model set cannot be validated on ``cohort``, as a ValidationError naming the field.

    The evaluation must be done with a chosen set; the cohort frozen (its truth fixed), with sarcoma and leiomyoma
    cases, and sharing no patient with the training cohort: no common case, no common identity hash (source key,
    identity or alias), no common person hash. The message counts the overlapping cases and names none.
    """
    if evaluation.status != Evaluation.Status.DONE or not (evaluation.results or {}).get("chosen"):
        raise ValidationError({"evaluation": f"evaluation {evaluation.name!r} is {evaluation.status}, not done: its "
                                             "set and thresholds are what an external validation applies"})
    run = evaluation.training_run
    if run is None:
        raise ValidationError({"evaluation": f"evaluation {evaluation.name!r} has no training run"})
    if not cohort.frozen:
        raise ValidationError({"cohort": f"cohort {cohort.name} is not frozen yet: build it first, so that its "
                                         "cases and their truth are fixed"})
    if cohort.pk == run.cohort_id:
        raise ValidationError({"cohort": f"cohort {cohort.name} trained these models; an external validation needs "
                                         "another cohort"})
    overlap = selectors_external.cohort_overlap(cohort.pk, run.cohort_id)
    if overlap.total:
        raise ValidationError({"cohort": f"cohort {cohort.name} shares {overlap.total} case(s) with cohort "
                                         f"{run.cohort.name}, which trained these models ({overlap.reasons()}); an "
                                         "external validation needs a cohort with no patient of the training cohort"})
    truths = set(cohort.members.values_list("truth", flat=True))
    if not {SARCOMA, LEIOMYOMA} <= truths:
        raise ValidationError({"cohort": f"cohort {cohort.name} needs both sarcoma and leiomyoma cases for "
                                         "sensitivity and specificity"})


@transaction.atomic
def external_validation_start(*, evaluation: Evaluation, cohort, by=None, name: str = "",
                              enqueue: bool = True) -> ExternalValidation:
    """Create an external validation of ``evaluation``'s frozen model set on ``cohort`` and its job (gpu queue;
    queued on commit). The evaluation's row stays locked until then, so its set cannot change in between."""
    locked = (Evaluation.objects.select_for_update(of=("self",)).select_related("training_run__cohort")
              .get(pk=evaluation.pk))
    external_validation_check(evaluation=locked, cohort=cohort)
    user = by if by is not None and by.is_authenticated else None
    frozen = frozen_model_set(locked)
    validation = ExternalValidation.objects.create(
        name=(name or f"{locked.name} on {cohort.name}")[:100], evaluation=locked, cohort=cohort, frozen=frozen,
        created_by=user)
    validation.job = jobs.job_create(kind="external_validation", params={"validation_pk": validation.pk}, user=user,
                                     total=cohort.members.count() * frozen["n_models"] + 1, enqueue=enqueue)
    validation.save(update_fields=["job"])
    return validation


def external_validation_status_follow(*, validation: ExternalValidation, job_status: str) -> None:
    """The validation's status is its job's, in the same words as an evaluation's (``services.STATUS_OF_JOB``)."""
    validation.status = STATUS_OF_JOB[job_status]
    ExternalValidation.objects.filter(pk=validation.pk).update(status=validation.status)


def external_validation_finish(*, validation: ExternalValidation, results: dict) -> ExternalValidation:
    """The job's last step: store the results, and the validation is done (both in one transaction)."""
    with transaction.atomic():
        locked = ExternalValidation.objects.select_for_update().get(pk=validation.pk)
        locked.results = json_safe(results)
        locked.save(update_fields=["results"])
        external_validation_status_follow(validation=locked, job_status=JobStatus.SUCCEEDED)
    return locked
