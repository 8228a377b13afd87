"""Writes of the inference app, one function per use case: start an evaluation, finish it with its analysis,
choose another sequence set, start and store a new patient's prediction (METHOD §6–§9).

Why they are kept apart from the job runners (``inference.runners``) and the files (``inference.store``): a
use case takes the row lock first and checks its guards on the locked row, inside one transaction, so two
requests (or a request and a worker) cannot both pass a guard that only one of them should; the runners do the
long work outside any transaction and call in here to save. The science is in ``inference.predictions`` /
``combinations`` / ``thresholds``; these functions only move data between the database, the files and those
functions.

``Evaluation.status`` follows the evaluation's job: ``STATUS_OF_JOB`` is the one map between the two, and
``evaluation_status_follow`` the one write of the field (``evaluation_finish`` through it too).
"""

from __future__ import annotations

import numpy as np
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core.constants import SEQUENCE_CODES
from inference import selectors, store
from inference.models import CaseAIResult, Evaluation
from jobs import services as jobs
from jobs.models import Job, JobStatus

Status = Evaluation.Status

# The evaluation's status is its job's, in the evaluation's words (the API's EvaluationStatusEnum).
STATUS_OF_JOB = {
    JobStatus.QUEUED: Status.PENDING,
    JobStatus.RUNNING: Status.RUNNING,
    JobStatus.SUCCEEDED: Status.DONE,
    JobStatus.FAILED: Status.FAILED,
    JobStatus.CANCELLED: Status.CANCELLED,
    JobStatus.WARNING: Status.DONE,   # finished, with something the job page points out: the results stand
}


def evaluation_status_follow(*, evaluation: Evaluation, job_status: str) -> None:
    """Set the evaluation's status to what its job's ``job_status`` means for it (``STATUS_OF_JOB``).

    The runner calls it as its job's status changes: running when it starts, failed or cancelled as it ends
    (the status ``jobs.services.job_run`` is about to give the job), and ``evaluation_finish`` with the job's
    last step, in the transaction that stores the results (so "done" always comes with them).
    """
    evaluation.status = STATUS_OF_JOB[job_status]
    Evaluation.objects.filter(pk=evaluation.pk).update(status=evaluation.status)


def _locked(evaluation: Evaluation) -> Evaluation:
    """The evaluation's row, freshly read and locked until the caller's transaction ends."""
    return (Evaluation.objects.select_for_update(of=("self",)).select_related("training_run__cohort")
            .get(pk=evaluation.pk))


# --- starting -------------------------------------------------------------------------------------------

def evaluation_config(*, rule: str = "mean", cutoff: float = 0.5, repredict: bool = False) -> dict:
    """The evaluation's choices (METHOD §7.2): sequence-call rule and cutoff, and whether to re-predict."""
    from inference.predictions import SEQUENCE_RULES

    if rule not in SEQUENCE_RULES:
        raise ValidationError({"rule": f"{rule!r} is not a sequence-call rule; use one of {', '.join(SEQUENCE_RULES)}"})
    try:
        cutoff = float(cutoff)
    except (TypeError, ValueError):
        raise ValidationError({"cutoff": f"{cutoff!r} is not a number"}) from None
    if not 0.0 < cutoff < 1.0:
        raise ValidationError({"cutoff": f"{cutoff} must lie strictly between 0 and 1"})
    return {"rule": rule, "cutoff": cutoff, "repredict": bool(repredict)}


def check_run_trained(run) -> None:
    """A run can be evaluated once every model is trained and it has at least 2 repeats (METHOD §6)."""
    from training.models import FoldSplit, TrainedModel

    total = run.models.count()
    done = run.models.filter(status=TrainedModel.Status.DONE).count()
    if total == 0:
        raise ValidationError({"training_run": f"training run {run.name!r} has no models"})
    if done < total:
        raise ValidationError({"training_run": f"training run {run.name!r}: {total - done} of {total} models are "
                                               "not trained yet (see its grid); evaluate once all are done"})
    if run.repeats < 2:
        raise ValidationError({"training_run": f"training run {run.name!r} has 1 repeat; the leave-one-repeat-out "
                                               "ensembles (METHOD §6) need at least 2"})
    if not FoldSplit.objects.filter(cohort_id=run.cohort_id).exists():
        raise ValidationError({"training_run": f"cohort {run.cohort.name} has no fold split"})


@transaction.atomic
def evaluation_start(*, run, rule: str = "mean", cutoff: float = 0.5, repredict: bool = False, name: str = "",
                     user=None, enqueue: bool = True) -> Evaluation:
    """Create an evaluation of a fully trained run and its job (gpu queue; queued on commit)."""
    from training.models import TrainingRun

    config = evaluation_config(rule=rule, cutoff=cutoff, repredict=repredict)
    run = TrainingRun.objects.select_for_update(of=("self",)).select_related("cohort").get(pk=run.pk)
    check_run_trained(run)
    user = user if user is not None and user.is_authenticated else None
    evaluation = Evaluation.objects.create(
        name=(name or f"{run.name} · {rule}")[:100], training_run=run, config=config, created_by=user)
    evaluation.job = jobs.job_create(kind="evaluation", params={"evaluation_pk": evaluation.pk}, user=user,
                                     total=run.models.count() + 3, enqueue=enqueue)
    evaluation.save(update_fields=["job"])
    return evaluation


# --- the results and the chosen set -------------------------------------------------------------------------

def evaluation_finish(*, evaluation: Evaluation, results: dict, patients: store.Patients, calls) -> Evaluation:
    """The evaluation job's last step: store the analysis's ``results`` with their top-ranked set applied to
    every case (``results["top_mask"]``), and the evaluation is done. Returns the saved row."""
    with transaction.atomic():
        locked = _locked(evaluation)
        locked.results = results
        apply_subset(locked, patients=patients, calls=calls, mask=results["top_mask"], rank=1)
        evaluation_status_follow(evaluation=locked, job_status=JobStatus.SUCCEEDED)
    return locked


def evaluation_choose_subset(*, evaluation: Evaluation, subset, user=None) -> Evaluation:
    """Use another sequence set for the likelihoods (METHOD §9: default top-ranked; a coordinator may choose).

    ``subset``: sequence codes (or a mask). Refused while the evaluation is not done, and once a reader study
    that shows this evaluation has been opened (readers may have seen its likelihoods). Both are checked on the
    locked row, which stays locked until every case's result is rewritten. ``evaluation`` is refreshed from
    the saved row.
    """
    from inference.subsets import as_mask, mask_vector

    with transaction.atomic():
        locked = _locked(evaluation)
        if locked.status != Status.DONE:
            raise ValidationError({"subset": f"evaluation {locked.name!r} is {locked.status}; choose a set once "
                                             "it is done"})
        try:
            mask = as_mask(subset)
        except ValueError as exc:
            raise ValidationError({"subset": str(exc)}) from None
        studies = getattr(locked, "reader_studies", None)   # absent where reader_study is not installed
        opened = list(studies.exclude(status="draft").values_list("name", flat=True)) if studies is not None else []
        if opened:
            raise ValidationError({"subset": f"reader studies already opened show this evaluation "
                                             f"({', '.join(opened)}); its results cannot change now — start a new "
                                             "evaluation instead"})
        try:
            data = selectors.evaluation_probs(locked)
        except ValueError as exc:
            raise ValidationError({"subset": str(exc)}) from None
        patients = data.patients()
        if not patients.index.available()[:, mask_vector(mask, len(SEQUENCE_CODES))].any():
            raise ValidationError({"subset": "no patient of the cohort has any of these sequences; choose a set "
                                             "that covers some patients"})
        apply_subset(locked, patients=patients, calls=selectors.member_calls(locked, data, patients), mask=mask,
                     rank=selectors.subset_rank(locked, mask), user=user)
    for field in ("results", "chosen_subset", "status"):
        setattr(evaluation, field, getattr(locked, field))
    return evaluation


def apply_subset(locked: Evaluation, *, patients: store.Patients, calls, mask: int, rank: int | None,
                 user=None) -> None:
    """Make ``mask`` the evaluation's set: its thresholds, ROC, coverage, and every case's likelihood.

    ``locked``: the evaluation's row as ``_locked`` read it, inside the caller's transaction; its results
    gain ``chosen`` and it is saved, so nothing written since the lock was taken is lost.
    """
    from inference.predictions import likelihood_figures

    ens_calls, _ = calls
    chosen = _chosen(patients, calls, mask, rank, user)
    figures = likelihood_figures(ens_calls, mask, chosen["thresholds"])
    locked.results = json_safe({**(locked.results or {}), "chosen": chosen})
    locked.chosen_subset = chosen["codes"]
    locked.save(update_fields=["results", "chosen_subset"])
    _write_case_results(locked, patients, figures, chosen["codes"])
    deployment_results_refresh(locked)


def _chosen(patients: store.Patients, calls, mask: int, rank: int | None, user) -> dict:
    """What ``Evaluation.results["chosen"]`` holds for ``mask``: thresholds, coverage, figures, ROC, who chose."""
    from inference.figures import roc_points
    from inference.predictions import patient_scores
    from inference.subsets import mask_codes

    ens_calls, single_calls = calls
    ens_one, single_one = _one_set(ens_calls, patients, mask), _one_set(single_calls, patients, mask)
    codes = list(mask_codes(mask))
    size = len(codes)
    return {
        "mask": mask, "codes": codes, "rank": rank, "thresholds": ens_one.thresholds_for(mask).tolist(),
        "coverage": int(ens_one.coverage[0]),
        "coverage_percent": 100.0 * int(ens_one.coverage[0]) / max(1, patients.case_ids.size),
        "ensemble": _row(ens_one), "single": _row(single_one),
        "roc": {"codes": codes,
                "ensemble": roc_points(patient_scores(ens_calls, mask), patients.truth, max_score=size),
                "single": roc_points(patient_scores(single_calls, mask), patients.truth, max_score=size),
                "ensemble_auc_mean": float(ens_one.mean_auc[0]), "single_auc_mean": float(single_one.mean_auc[0])},
        "intervals": {"ensemble": _set_ci(ens_calls, ens_one, mask, patients),
                      "single": _set_ci(single_calls, single_one, mask, patients)},
        "chosen_by": getattr(user, "username", "") or "default (top-ranked)",
        "chosen_at": timezone.now().isoformat(timespec="seconds"),
    }


def _set_ci(calls, search, mask: int, patients: store.Patients) -> dict | None:
    """The chosen set's 95 % CIs (in %), whatever its rank; None where the cohort is too small for one."""
    from inference.combinations import set_calls
    from inference.runners import intervals_in_percent

    calls_, scores = set_calls(calls, search, [mask])
    try:
        return intervals_in_percent(calls_[0], patients.truth, scores[0])
    except ValueError:
        return None


def _one_set(calls, patients: store.Patients, mask: int):
    from inference.combinations import evaluate_subsets

    try:
        return evaluate_subsets(calls, patients.truth, [mask], folds=patients.fold, honest_top=1)
    except ValueError:
        return evaluate_subsets(calls, patients.truth, [mask])


def _row(search) -> dict:
    row = search.rows()[0]
    row.pop("rank", None)
    return row


def _write_case_results(evaluation: Evaluation, patients: store.Patients, figures, codes: list[str]) -> None:
    n_members = int(figures.calls.shape[0])
    existing = {r.case_id: r for r in CaseAIResult.objects.filter(evaluation=evaluation, is_deployment=False)}
    new, changed = [], []
    for p, case_pk in enumerate(patients.case_ids.tolist()):
        shown = figures.for_patient(p)
        values = {"likelihood": round(shown["sarcoma_likelihood_percent"], 4),
                  "per_sequence": {k: round(v, 4) for k, v in shown["sequence_percent"].items()},
                  "subset": codes, "n_ensembles": n_members}
        row = existing.get(case_pk)
        if row is None:
            new.append(CaseAIResult(evaluation=evaluation, case_id=case_pk, is_deployment=False, **values))
        else:
            for key, value in values.items():
                setattr(row, key, value)
            changed.append(row)
    CaseAIResult.objects.bulk_create(new, batch_size=500)
    CaseAIResult.objects.bulk_update(changed, ["likelihood", "per_sequence", "subset", "n_ensembles"], batch_size=500)


# --- new patients (METHOD §9, deployment) ---------------------------------------------------------------

def case_prediction_check(*, case, evaluation: Evaluation) -> None:
    """Why a case cannot be predicted with an evaluation's models, as a ValidationError naming the field."""
    if evaluation.status != Status.DONE or not (evaluation.results or {}).get("chosen"):
        raise ValidationError({"evaluation": f"evaluation {evaluation.name!r} is {evaluation.status}, not done: its "
                                             "thresholds are needed for new patients"})
    if getattr(case, "review_reason", ""):
        raise ValidationError({"case": f"{case.pseudonym} is an imported study held for review (same or new "
                                       "patient?): resolve it on its import's page first"})
    run = evaluation.training_run
    if run is None:
        raise ValidationError({"evaluation": f"evaluation {evaluation.name!r} has no training run"})
    if run.cohort.members.filter(case=case).exists():
        raise ValidationError({"case": f"case {case.pseudonym} is in cohort {run.cohort.name}, which trained these "
                                       "models: its out-of-fold result is on the evaluation page (a prediction "
                                       "by models trained on it would be optimistic)"})
    if not selectors.mapped_series_with_boxes(case):
        raise ValidationError({"case": f"case {case.pseudonym} has no tumour boxes on series mapped to a sequence "
                                       "code; map its series and draw the boxes on the series pages first"})


@transaction.atomic
def case_prediction_start(*, case, evaluation: Evaluation, user=None, enqueue: bool = True) -> Job:
    """Start the "case_prediction" job (gpu queue) for a case imported after training."""
    locked = _locked(evaluation)
    case_prediction_check(case=case, evaluation=locked)
    user = user if user is not None and user.is_authenticated else None
    return jobs.job_create(kind="case_prediction", params={"evaluation_pk": locked.pk, "case_pk": case.pk},
                           user=user, total=locked.training_run.models.count() + 1, enqueue=enqueue)


def write_deployment_result(evaluation: Evaluation, case_pk: int, fold_probs: np.ndarray,
                            sequence_idx: np.ndarray) -> CaseAIResult:
    """The case's likelihood and per-sequence % from all models' predictions and the evaluation's set.

    fold_probs (R, F, N): every model's P(sarcoma) of each of the case's N tumour slices; sequence_idx (N,).
    """
    from inference.predictions import SliceIndex, deployment_figures

    chosen = evaluation.results["chosen"]
    cfg = evaluation.config or {}
    index = SliceIndex.build(np.zeros(len(sequence_idx), dtype=np.int64), np.asarray(sequence_idx, dtype=np.int64),
                             n_patients=1)
    figures = deployment_figures(fold_probs, index, subset=int(chosen["mask"]), thresholds=chosen["thresholds"],
                                 rule=cfg.get("rule", "mean"), cutoff=cfg.get("cutoff", 0.5))
    shown = figures.for_patient(0)
    result, _ = CaseAIResult.objects.update_or_create(
        evaluation=evaluation, case_id=case_pk,
        defaults={"likelihood": round(shown["sarcoma_likelihood_percent"], 4),
                  "per_sequence": {k: round(v, 4) for k, v in shown["sequence_percent"].items()},
                  "subset": list(chosen["codes"]), "n_ensembles": int(figures.calls.shape[0]),
                  "is_deployment": True})
    return result


def deployment_results_refresh(evaluation: Evaluation) -> int:
    """Recompute every stored new-patient result of the evaluation (after its set changed); returns the count."""
    count = 0
    for case_pk, path in store.stored_case_predictions(selectors.evaluation_dir(evaluation)):
        if not CaseAIResult.objects.filter(evaluation=evaluation, case_id=case_pk, is_deployment=True).exists():
            continue
        fold_probs, sequence_idx = store.read_case_predictions(path)
        write_deployment_result(evaluation, case_pk, fold_probs, sequence_idx)
        count += 1
    return count


def json_safe(value):
    """Plain JSON for a JSONField: NumPy scalars and arrays to Python, NaN/inf to None (PostgreSQL rejects NaN)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if np.isfinite(value) else None
    return value


# --- heat-maps (issue 18) ------------------------------------------------------------------------------------

@transaction.atomic
def heat_maps_start(*, evaluation: Evaluation, cases=None, user=None, enqueue: bool = True) -> Job:
    """Start the "heat_maps" job (gpu queue): Grad-CAM maps for the evaluation's cases (``cases``, or every case
    with a result of it). Cases that have their maps already are skipped by the job, so starting it again after
    a new patient's prediction maps that patient only."""
    locked = _locked(evaluation)
    if locked.status != Status.DONE or locked.training_run is None:
        raise ValidationError({"evaluation": f"evaluation {locked.name!r} is {locked.status}: heat-maps need a "
                                             "finished evaluation of a training run"})
    running = selectors.active_heat_maps_job(locked)
    if running is not None:
        raise ValidationError({"evaluation": f"heat-maps job {running.pk} of evaluation {locked.name!r} is "
                                             f"{running.status}: wait for it (it skips what is done already)"})
    with_result = set(CaseAIResult.objects.filter(evaluation=locked).values_list("case_id", flat=True))
    if cases is None:
        chosen = sorted(with_result)
    else:
        cases = list(cases)
        lacking = [c.pseudonym for c in cases if c.pk not in with_result]
        if lacking:
            raise ValidationError({"case": f"{', '.join(lacking[:5])}: no result of evaluation {locked.name!r} "
                                           "(predict a new patient first: `manage.py predict`)"})
        chosen = sorted(c.pk for c in cases)
    if not chosen:
        raise ValidationError({"evaluation": f"evaluation {locked.name!r} has no case with a result"})
    user = user if user is not None and user.is_authenticated else None
    return jobs.job_create(kind=selectors.HEAT_MAPS_KIND, params={"evaluation_pk": locked.pk, "case_pks": chosen},
                           user=user, total=1, enqueue=enqueue)
