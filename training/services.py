"""Writes of the training app: fold splits, training runs, and training one model (the gpu task's body).

A training run is one job. Its runner (`training_dispatch`, default queue) puts one `train_model` task per
(repeat, fold) on the gpu queue and detaches; each task trains, checkpoints every epoch, reports progress
to the job and, when it is the last to end, finishes the job. Every step is idempotent: a finished model is
never trained again, an interrupted one resumes from its last checkpoint, so any number of GPU workers on
any number of machines can share a run, and a resumed job only redoes what is unfinished.
"""

import logging
import time
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from imaging.models import Cohort
from jobs import claims
from jobs import services as jobs
from jobs.models import Job, JobStatus
from training.models import FoldSplit, TrainedModel, TrainingRun

log = logging.getLogger(__name__)
Status = TrainedModel.Status
# What the job's step line shows after each epoch (job page and command-line bar).
EPOCH_FIGURES = (("loss", "loss"), ("accuracy", "acc"), ("heldout_accuracy", "held-out acc"),
                 ("heldout_auc", "held-out AUC"))


# --- folds ------------------------------------------------------------------------------------------

DEFAULT_FOLDS = 6  # METHOD §4: 6-fold patient-level cross-validation
MIN_FOLDS, MAX_FOLDS = 2, 20


def fold_split_for(*, cohort: Cohort, seed: int = 0, n_folds: int | None = None) -> FoldSplit:
    """The cohort's fold split, made once (METHOD §4) and then reused by every run and repeat.

    n_folds: None takes the existing split (or makes one of DEFAULT_FOLDS); a number that differs from the
    cohort's existing split is refused (the split belongs to the cohort: build another cohort for another)."""
    existing = FoldSplit.objects.filter(cohort=cohort).first()
    if existing:
        if n_folds is not None and n_folds != existing.n_folds:
            raise ValidationError({"folds": f"cohort {cohort.name} is already split into {existing.n_folds} folds "
                                            f"(made by its first run and kept for every later one): train with "
                                            f"{existing.n_folds} folds, or build another cohort for a "
                                            f"{n_folds}-fold split"})
        return existing
    n_folds = DEFAULT_FOLDS if n_folds is None else n_folds
    if not MIN_FOLDS <= n_folds <= MAX_FOLDS:
        raise ValidationError({"folds": f"between {MIN_FOLDS} and {MAX_FOLDS}"})
    from training.folds import make_folds

    store = open_cohort_store(cohort)
    labels = store.case_labels()
    counts = store.slices_per_case()
    ids = sorted(labels)
    try:
        fold_of = make_folds(ids, [labels[i] for i in ids], [counts[i] for i in ids], n_folds=n_folds, seed=seed)
    except ValueError as exc:
        raise ValidationError({"cohort": f"cohort {cohort.name}: cannot make {n_folds} folds: {exc} (choose "
                                         f"fewer folds, at least {MIN_FOLDS}: the Folds field, or --folds K on "
                                         f"the command line)"}) from None
    split, _ = FoldSplit.objects.get_or_create(
        cohort=cohort, defaults={"n_folds": n_folds, "seed": seed,
                                 "assignment": {str(k): int(v) for k, v in fold_of.items()}})
    return split


def open_cohort_store(cohort: Cohort):
    from imaging.arraystore import open_array_store

    if not cohort.store_path:
        raise ValidationError({"cohort": f"cohort {cohort.name} has no array store yet: build it first"})
    return open_array_store(Path(settings.MEDIA_ROOT) / cohort.store_path)


# --- starting a run -----------------------------------------------------------------------------------

def training_config(values: dict):
    """A TrainingConfig from user input; bad values become a ValidationError naming the field."""
    from training.network import TrainingConfig

    try:
        return TrainingConfig.from_dict(values)
    except (TypeError, ValueError) as exc:
        raise ValidationError({"config": str(exc)}) from None


@transaction.atomic
def training_run_start(*, cohort: Cohort, config: dict | None = None, repeats: int = 24, seed: int = 0,
                       name: str = "", user=None, enqueue: bool = True, folds: int | None = None) -> TrainingRun:
    """Create a run with its repeats × folds models and its job; the job is queued on commit.

    folds: the cohort's number of folds (default 6, METHOD §4; at least 2), fixed by the cohort's first run."""
    if not 1 <= repeats <= 100:
        raise ValidationError({"repeats": "between 1 and 100"})
    if not cohort.content_hash:
        raise ValidationError({"cohort": f"cohort {cohort.name} has not been built (no array store)"})
    cfg = training_config({"input_size": cohort.input_size, **(config or {})})
    if cfg.input_size != cohort.input_size:
        raise ValidationError({"input_size": f"cohort {cohort.name} holds {cohort.input_size}-pixel crops; "
                                             f"train at input size {cohort.input_size} or rebuild the cohort"})
    split = fold_split_for(cohort=cohort, seed=seed, n_folds=folds)
    run = TrainingRun.objects.create(name=name or f"{cohort.name} ×{repeats}", cohort=cohort, config=cfg.to_dict(),
                                     repeats=repeats, seed=seed, created_by=user)
    from training.fit import model_seed

    TrainedModel.objects.bulk_create(
        TrainedModel(run=run, repeat=r, fold=f, seed=model_seed(seed, r, f))
        for r in range(repeats) for f in range(split.n_folds))
    run.job = jobs.job_create(kind="training", params={"run_pk": run.pk}, user=user,
                              total=repeats * split.n_folds, enqueue=enqueue)
    run.save(update_fields=["job"])
    return run


# --- the job's runner -----------------------------------------------------------------------------------

def training_dispatch(job: Job, ctx) -> None:
    """Runner of the "training" job: queue every unfinished model (or, inline, train them here)."""
    run = TrainingRun.objects.get(pk=job.params["run_pk"])
    _reset_lost_models(run)
    pending = list(run.models.exclude(status=Status.DONE).order_by("repeat", "fold"))
    done = run.models.filter(status=Status.DONE).count()
    ctx.progress(done=done, total=run.models.count(), step=f"{len(pending)} model(s) to train", force=True)
    if ctx.inline:
        for model in pending:
            ctx.check_cancel()
            model_train(model_pk=model.pk, worker=job.worker, ctx=ctx)
            ctx.progress(done=run.models.filter(status=Status.DONE).count(), force=True)
        _sync_job(run)  # every model has ended: this finishes the job
        raise jobs.JobDetached()
    from training.tasks import train_model

    run.models.filter(pk__in=[m.pk for m in pending]).update(status=Status.PENDING, error="")
    for model in pending:
        transaction.on_commit(lambda pk=model.pk: train_model.apply_async(kwargs={"model_pk": pk}, queue="gpu"))
    if not pending:
        _sync_job(run)
    raise jobs.JobDetached()


def _reset_lost_models(run: TrainingRun) -> None:
    """Models left 'training' by a worker that stopped answering, failed or cancelled go back to pending."""
    claims.release_lost(run.models.all())
    run.models.filter(status__in=[Status.FAILED, Status.CANCELLED]).update(status=Status.PENDING)


def models_requeue_orphans(*, worker: str) -> list[int]:
    """At worker start: models this node was training when it died go back on the queue."""
    from training.tasks import train_model

    return claims.requeue_orphans(
        TrainedModel, worker=worker, enqueue=lambda model: train_model.apply_async(kwargs={"model_pk": model.pk},
                                                                                  queue="gpu"))


# --- one model ------------------------------------------------------------------------------------------

def _cancel_before_training(model: TrainedModel) -> bool:
    if not (model.run.job_id and jobs.job_is_cancel_requested(model.run.job_id)):
        return False
    model.status = Status.CANCELLED
    model.save(update_fields=["status"])
    return True


def checkpoint_dir_for(model: TrainedModel) -> Path:
    return Path(settings.MEDIA_ROOT) / "training" / f"run-{model.run_id}" / f"r{model.repeat:02d}-f{model.fold}"


def model_train(*, model_pk: int, worker: str = "", ctx=None) -> TrainedModel:
    """Train (or resume) one model; never retrains a finished one. Ends the job when it is the last."""
    model = claims.claim(TrainedModel.objects.select_related("run__cohort", "run__job"), model_pk,
                         worker=worker or jobs.worker_name(), refuse=_cancel_before_training)
    if model is None:
        model = TrainedModel.objects.select_related("run").get(pk=model_pk)
        _sync_job(model.run)
        return model
    try:
        _fit(model, ctx)
    except Exception as exc:  # one failed model never loses the others
        from training.fit import TrainingCancelled

        cancelled = isinstance(exc, TrainingCancelled)
        if not cancelled:
            log.exception("model r%s f%s of run %s failed", model.repeat, model.fold, model.run_id)
        TrainedModel.objects.filter(pk=model.pk).update(
            status=Status.CANCELLED if cancelled else Status.FAILED,
            error="" if cancelled else f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now())
    _sync_job(model.run)
    model.refresh_from_db()
    return model


def _fit(model: TrainedModel, ctx=None) -> None:
    from training.cards import backend_and_devices, model_card
    from training.fit import train_one_model
    from training.folds import train_heldout_split

    run = model.run
    store = open_cohort_store(run.cohort)
    fold_of = {int(k): v for k, v in run.cohort.fold_split.assignment.items()}
    train_ids, heldout_ids = train_heldout_split(fold_of, model.fold)
    config = training_config(run.config)
    began = time.monotonic()
    job_pk = run.job_id

    def on_epoch(epoch: int, logs: dict) -> None:
        claims.beat(TrainedModel, model.pk, epochs_done=epoch,
                    history=[*TrainedModel.objects.get(pk=model.pk).history[: epoch - 1], logs])
        step = f"repeat {model.repeat + 1} fold {model.fold + 1}: epoch {epoch}/{config.epochs}" + "".join(
            f", {label} {logs[key]:.3f}" for key, label in EPOCH_FIGURES if logs.get(key) is not None)
        if ctx is not None:
            ctx.progress(step=step, force=True)
        elif job_pk:
            jobs.job_set_progress(job_pk=job_pk, step=step)

    def should_stop() -> bool:
        claims.beat(TrainedModel, model.pk)
        return bool(job_pk) and jobs.job_is_cancel_requested(job_pk)

    result = train_one_model(store=store, train_case_ids=train_ids, heldout_case_ids=heldout_ids, config=config,
                             checkpoint_dir=checkpoint_dir_for(model), seed=model.seed, on_epoch=on_epoch,
                             should_stop=should_stop)
    card = model_card(cohort_name=run.cohort.name, content_hash=run.cohort.content_hash, repeat=model.repeat,
                      fold=model.fold, seed=model.seed, config=config.to_dict(), history=result.history,
                      heldout=result.heldout, seconds=time.monotonic() - began, n_train_cases=len(train_ids),
                      n_heldout_cases=len(heldout_ids), n_params=result.extra.get("n_params"),
                      runtime=backend_and_devices())
    TrainedModel.objects.filter(pk=model.pk).update(
        status=Status.DONE, epochs_done=result.epochs_completed, history=result.history, metrics=result.heldout,
        card=card, model_path=str(Path(result.model_path).relative_to(settings.MEDIA_ROOT)),
        finished_at=timezone.now(), heartbeat_at=timezone.now())


def _sync_job(run: TrainingRun) -> None:
    """Write the run's model counts to its job; finish the job when no model is left to run."""
    if not run.job_id:
        return
    counts = {s: run.models.filter(status=s).count() for s in Status.values}
    total = sum(counts.values())
    jobs.job_set_progress(job_pk=run.job_id, done=counts[Status.DONE], total=total)
    open_models = counts[Status.PENDING] + counts[Status.TRAINING]
    if open_models:
        return
    cancelled = jobs.job_is_cancel_requested(run.job_id)
    if counts[Status.FAILED]:
        jobs.job_finish(job_pk=run.job_id, status=JobStatus.FAILED,
                        error=f"{counts[Status.FAILED]} of {total} models failed (see the run's grid); "
                              f"{counts[Status.DONE]} finished and are kept. Resume to retry the others.")
    elif cancelled or counts[Status.CANCELLED]:
        jobs.job_finish(job_pk=run.job_id, status=JobStatus.CANCELLED,
                        step=f"cancelled; {counts[Status.DONE]} of {total} finished models kept")
    else:
        jobs.job_finish(job_pk=run.job_id, status=JobStatus.SUCCEEDED, step=f"all {total} models trained")
