"""The runner of the "external_validation" job kind (registered in ``inference.kinds``, gpu queue; issue 14,
item 5): a frozen model set applied, case by case, to a cohort that shares no patient with the training cohort.

Each case of the external cohort is a new patient (METHOD §9, deployment), and goes exactly the new-patient way
(``inference.runners``): its tumour slices are cropped as the training cohort's build does
(``runners.case_tumour_slices``), every model of the run predicts every crop (``runners.predict_all``, one part
file per finished model), and the predictions are kept in the evaluation's per-case file
(``selectors.case_prediction_path``, tagged with the crops' hash). A resumed job — or a later validation, or a
new-patient prediction of the same case with the same evaluation — skips every case whose file holds these
crops' predictions, and a case cut short resumes from its finished models. Progress counts models × cases.

Then, in seconds: the sarcoma likelihood of every case from the frozen set, thresholds, rule and cutoff that
``ExternalValidation.frozen`` copied from the evaluation at the start (``predictions.deployment_figures``), and
the metrics with their intervals, ROC and calibration (``inference.external``). The cohort's overlap with the
training cohort is checked again before any model runs (an alias or a merge may have appeared since the start).
"""

from __future__ import annotations

import shutil

import numpy as np
from django.core.exceptions import ValidationError

from inference import runners, selectors, selectors_external, services_external, store
from inference.models import ExternalValidation
from jobs import services as jobs
from jobs.models import Job


def external_validation_run(job: Job, ctx) -> None:
    """Runner of "external_validation": predict every case (skipping stored ones), then compute the metrics."""
    validation = (ExternalValidation.objects.select_related("evaluation__training_run__cohort", "cohort")
                  .filter(pk=job.params.get("validation_pk")).first())
    if validation is None:
        raise jobs.JobError("the external validation no longer exists")
    with _status_follows_job(validation):
        try:
            services_external.external_validation_check(evaluation=validation.evaluation, cohort=validation.cohort)
        except ValidationError as exc:
            raise jobs.JobError("; ".join(exc.messages)) from None
        scored, not_scored = predict_cases(validation, ctx)
        ctx.check_cancel()
        ctx.progress(step="metrics, ROC and calibration", force=True)
        results = analyse(validation, scored, not_scored)
        services_external.external_validation_finish(validation=validation, results=results)
        ctx.progress(done=ctx.job.total, step="finished", force=True)
        ctx.set_result(cases=len(scored), not_scored=len(not_scored))


def _status_follows_job(validation: ExternalValidation):
    return runners.status_follows_job(lambda status: services_external.external_validation_status_follow(
        validation=validation, job_status=status))


class _CaseProgress:
    """The progress of one case's models as part of the whole job: ``done`` counts from the case's offset, the
    job's total stays, the step names the case."""

    def __init__(self, ctx, offset: int, label: str):
        self._ctx, self._offset, self._label = ctx, offset, label

    def progress(self, done: int | None = None, total: int | None = None, step: str | None = None,
                 force: bool = False) -> None:
        self._ctx.progress(done=None if done is None else self._offset + done,
                           step=None if step is None else f"{self._label}: {step}", force=force)

    def check_cancel(self) -> None:
        self._ctx.check_cancel()


def predict_cases(validation: ExternalValidation, ctx) -> tuple[list[dict], list[dict]]:
    """Every model's predictions of every external case's tumour crops.

    Returns (scored, not_scored): scored ``{"member", "fold_probs" (R, F, N), "sequence_idx" (N,)}`` per case with
    tumour slices; not_scored ``{"member", "reason"}``.
    """
    evaluation = validation.evaluation
    run = evaluation.training_run
    models = list(run.models.order_by("repeat", "fold"))
    members = selectors_external.cohort_members(validation.cohort_id)
    total = len(members) * len(models) + 1
    ctx.progress(done=0, total=total, step=f"{len(models)} models predict the tumour slices of {len(members)} cases",
                 force=True)
    scored, not_scored, sources = [], [], {"reused": 0, "predicted": 0}
    for i, member in enumerate(members):
        ctx.check_cancel()
        case, offset = member.case, i * len(models)
        label = f"case {i + 1}/{len(members)} ({case.pseudonym})"
        slices = runners.case_tumour_slices(case, size=run.cohort.input_size, margin=run.cohort.crop_margin)
        if slices.crops.shape[0] == 0:
            not_scored.append({"member": member, "reason": "no tumour box on a series mapped to a sequence code"})
            ctx.progress(done=offset + len(models), step=f"{label}: no tumour slices, not scored")
            continue
        digest = slices.sha256
        path = selectors.case_prediction_path(evaluation, case.pk)
        fold_probs = store.case_predictions_for_crops(path, digest)
        source = "reused"
        if fold_probs is None:
            parts = store.case_parts_dir(path, digest)
            fold_probs = runners.predict_all(models, slices, parts, _CaseProgress(ctx, offset, label))
            store.write_case_predictions(path, fold_probs=fold_probs, sequence_idx=slices.sequence_idx,
                                         slice_no=slices.slice_no, crops_sha256=digest)
            shutil.rmtree(parts, ignore_errors=True)
            source = "predicted"
        sources[source] += 1
        scored.append({"member": member, "fold_probs": fold_probs, "sequence_idx": slices.sequence_idx})
        ctx.progress(done=offset + len(models), step=f"{label}: {source} {slices.crops.shape[0]} slice predictions")
    ctx.set_result(predictions=sources)
    return scored, not_scored


def analyse(validation: ExternalValidation, scored: list[dict], not_scored: list[dict]) -> dict:
    """The likelihood of every scored case from the frozen set, then ``inference.external.validation_metrics``."""
    from core.metrics import ai_call
    from inference.external import validation_metrics
    from inference.predictions import SliceIndex, deployment_figures
    from inference.subsets import mask_vector

    frozen = validation.frozen
    if not scored:
        raise jobs.JobError(f"cohort {validation.cohort.name}: no case has tumour slices (boxes on series mapped to "
                            "a sequence code); nothing to validate")
    sizes = [item["sequence_idx"].size for item in scored]
    index = SliceIndex.build(np.repeat(np.arange(len(scored)), sizes),
                             np.concatenate([item["sequence_idx"] for item in scored]).astype(np.int64),
                             n_patients=len(scored))
    figures = deployment_figures(np.concatenate([item["fold_probs"] for item in scored], axis=2), index,
                                 subset=frozen["mask"], thresholds=frozen["thresholds"], rule=frozen["rule"],
                                 cutoff=frozen["cutoff"])
    truth = [item["member"].truth for item in scored]
    try:
        metrics = validation_metrics(figures.likelihood_percent, np.array(truth), member_calls=figures.calls,
                                     member_scores=figures.scores)
    except ValueError as exc:
        raise jobs.JobError(f"cohort {validation.cohort.name}: {exc}") from None
    in_set = mask_vector(frozen["mask"], index.n_sequences)
    covered = index.available()[:, in_set].any(axis=1)
    cases = []
    for p, item in enumerate(scored):
        shown = figures.for_patient(p)
        likelihood = round(shown["sarcoma_likelihood_percent"], 4)
        call = ai_call(likelihood)
        cases.append({"case": item["member"].case.pseudonym, "truth": truth[p], "likelihood_percent": likelihood,
                      "call": call, "correct": call == truth[p], "n_slices": int(sizes[p]),
                      "covered": bool(covered[p]),
                      "per_sequence": {k: round(v, 4) for k, v in shown["sequence_percent"].items()}})
    members = [item["member"] for item in scored] + [item["member"] for item in not_scored]
    return {
        "synthetic": all(m.case.is_synthetic for m in members),
        "n_cases": len(members), "n_scored": len(scored), "n_ensembles": int(figures.calls.shape[0]),
        "coverage": int(covered.sum()), "metrics": metrics, "cases": cases,
        "not_scored": [{"case": item["member"].case.pseudonym, "truth": item["member"].truth,
                        "reason": item["reason"]} for item in not_scored],
    }
