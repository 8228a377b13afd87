"""Writes of the training app: fold splits, training runs, and training one model (the gpu task's body).

A training run is one job. Its runner (`training_dispatch`, default queue) puts the unfinished models on the gpu
queue in groups of the config's `fuse` models (one `train_group` task each, trained fused in one compiled step:
training.fit_group; a group of one is a `train_model` task) and detaches; each task trains, checkpoints every
epoch, reports each model's progress and, when it is the last to end, finishes the job. Every step is
idempotent: a finished model is never trained again, an interrupted one resumes from its last checkpoint, so
any number of GPU workers on any number of machines can share a run, and a resumed job only redoes what is
unfinished.
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
    groups = model_groups(pending, training_config(run.config).fuse)
    if ctx.inline:
        for group in groups:
            ctx.check_cancel()
            models_train_group(model_pks=[m.pk for m in group], worker=job.worker, ctx=ctx)
            ctx.progress(done=run.models.filter(status=Status.DONE).count(), force=True)
        _sync_job(run)  # every model has ended: this finishes the job
        raise jobs.JobDetached()
    run.models.filter(pk__in=[m.pk for m in pending]).update(status=Status.PENDING, error="")
    for group in groups:
        transaction.on_commit(lambda pks=[m.pk for m in group]: _enqueue(pks))
    if not pending:
        _sync_job(run)
    raise jobs.JobDetached()


def model_groups(models: list[TrainedModel], fuse: int) -> list[list[TrainedModel]]:
    """The models in groups of up to `fuse` trained in one compiled step (training.fused), in order: models of
    one run at the same epoch go together (a fused group steps all its members from one epoch), by repeat and
    fold, so a repeat's folds share a group where they can."""
    ordered = sorted(models, key=lambda m: (m.run_id, m.epochs_done, m.repeat, m.fold))
    groups: list[list[TrainedModel]] = []
    for model in ordered:
        last = groups[-1] if groups else None
        if (last and len(last) < fuse and last[0].run_id == model.run_id
                and last[0].epochs_done == model.epochs_done):
            last.append(model)
        else:
            groups.append([model])
    return groups


def _enqueue(model_pks: list[int]) -> None:
    """One gpu task per group: a group of one is a plain train_model task."""
    from training.tasks import train_group, train_model

    if len(model_pks) == 1:
        train_model.apply_async(kwargs={"model_pk": model_pks[0]}, queue="gpu")
    else:
        train_group.apply_async(kwargs={"model_pks": list(model_pks)}, queue="gpu")


def _reset_lost_models(run: TrainingRun) -> None:
    """Models left 'training' by a worker that stopped answering, failed or cancelled go back to pending."""
    claims.release_lost(run.models.all())
    run.models.filter(status__in=[Status.FAILED, Status.CANCELLED]).update(status=Status.PENDING)


def models_requeue_orphans(*, worker: str) -> list[int]:
    """At worker start: models this node was training when it died go back on the queue, in their groups."""
    orphans: dict[int, list[TrainedModel]] = {}
    pks = claims.requeue_orphans(TrainedModel, worker=worker,
                                 enqueue=lambda model: orphans.setdefault(model.run_id, []).append(model))
    for run_id, models in orphans.items():
        fuse = training_config(TrainingRun.objects.get(pk=run_id).config).fuse
        for group in model_groups(models, fuse):
            _enqueue([m.pk for m in group])
    return pks


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
    models = models_train_group(model_pks=[model_pk], worker=worker, ctx=ctx)
    if not models:
        raise TrainedModel.DoesNotExist(f"model {model_pk} does not exist (its run was deleted)")
    return models[0]


def models_train_group(*, model_pks: list[int], worker: str = "", ctx=None) -> list[TrainedModel]:
    """Train (or resume) a group of one run's models fused in one compiled step (training.fit_group); one model
    alone when only one is left to train. Models that are finished, claimed by a live worker or cancelled are
    left out; a model that diverges or cannot step with the group is put back alone on the queue; one that fails
    fails alone; if the group itself fails, each member is retried alone. Ends the job when it is the last."""
    rows = TrainedModel.objects.select_related("run__cohort", "run__job")
    name = worker or jobs.worker_name()
    claimed = [m for pk in model_pks
               if (m := claims.claim(rows, pk, worker=name, refuse=_cancel_before_training)) is not None]
    if len(claimed) == 1:
        _guarded(claimed, lambda: _fit(claimed[0], ctx))
    elif claimed:
        _guarded(claimed, lambda: _fit_group(claimed, ctx), on_error=lambda exc: _retry_alone(claimed, exc, ctx))
    models = list(TrainedModel.objects.select_related("run").filter(pk__in=model_pks))
    if models:
        _sync_job(models[0].run)
    return sorted(models, key=lambda m: model_pks.index(m.pk))


def _guarded(models: list[TrainedModel], train, on_error=None) -> None:
    """Run `train`; a cancel marks the models cancelled, any other error fails them (or goes to on_error):
    one failed model never loses the others, which are other tasks' or already stored."""
    from training.fit import TrainingCancelled

    try:
        train()
    except TrainingCancelled:
        _end(models, Status.CANCELLED, "")
    except Exception as exc:
        names = ", ".join(f"r{m.repeat} f{m.fold}" for m in models)
        log.exception("model(s) %s of run %s failed", names, models[0].run_id)
        if on_error is not None:
            on_error(exc)
        else:
            _end(models, Status.FAILED, f"{type(exc).__name__}: {exc}"[:2000])


def _end(models: list[TrainedModel], status: str, error: str) -> None:
    TrainedModel.objects.filter(pk__in=[m.pk for m in models]).exclude(status=Status.DONE).update(
        status=status, error=error, finished_at=timezone.now())


def _retry_alone(models: list[TrainedModel], reason, ctx) -> None:
    """Members that cannot go on in their group are trained alone: inline at once, else re-queued one by one
    (pending, their claim released); each resumes from its own last checkpoint."""
    log.warning("run %s: %d model(s) leave their fused group and train alone: %s", models[0].run_id,
                len(models), reason)
    pks = [m.pk for m in models]
    TrainedModel.objects.filter(pk__in=pks).exclude(status=Status.DONE).update(
        status=Status.PENDING, worker="", error="")
    for pk in pks:
        if ctx is not None:
            model_train(model_pk=pk, worker="", ctx=ctx)
        else:
            transaction.on_commit(lambda pk=pk: _enqueue([pk]))


def _fit(model: TrainedModel, ctx=None) -> None:
    from training.fit import train_one_model
    from training.folds import train_heldout_split

    run = model.run
    config = training_config(run.config)
    train_ids, heldout_ids = train_heldout_split(_fold_of(run), model.fold)
    began = time.monotonic()
    result = train_one_model(store=open_cohort_store(run.cohort), train_case_ids=train_ids,
                             heldout_case_ids=heldout_ids, config=config, checkpoint_dir=checkpoint_dir_for(model),
                             seed=model.seed, on_epoch=lambda epoch, logs: _record_epoch(model, epoch, logs, config,
                                                                                          ctx),
                             should_stop=lambda: _beat_and_check_cancel([model]))
    _store_result(model, result, config, len(train_ids), len(heldout_ids), time.monotonic() - began)


def _fit_group(models: list[TrainedModel], ctx=None) -> None:
    """Train claimed models of one run fused (training.fit_group), then store each member's own outcome."""
    from training.fit import FitResult
    from training.fit_group import GroupMember, MemberDiverged, NotInGroup, train_fused_group
    from training.folds import train_heldout_split

    run = models[0].run
    config = training_config(run.config)
    fold_of = _fold_of(run)
    splits = [train_heldout_split(fold_of, m.fold) for m in models]
    members = [GroupMember(train, heldout, checkpoint_dir_for(m), m.seed)
               for m, (train, heldout) in zip(models, splits, strict=True)]
    began = time.monotonic()
    results = train_fused_group(
        store=open_cohort_store(run.cohort), members=members, config=config,
        on_epoch=lambda index, epoch, logs: _record_epoch(models[index], epoch, logs, config, ctx,
                                                          fused=len(models)),
        should_stop=lambda: _beat_and_check_cancel(models))
    seconds = time.monotonic() - began
    retry = []
    for model, (train, heldout), result in zip(models, splits, results, strict=True):
        if isinstance(result, FitResult):
            _store_result(model, result, config, len(train), len(heldout), seconds)
        elif isinstance(result, (MemberDiverged, NotInGroup)):
            retry.append((model, result))
        else:
            _end([model], Status.FAILED, f"{type(result).__name__}: {result}"[:2000])
    for model, reason in retry:
        _retry_alone([model], reason, ctx)


def _fold_of(run: TrainingRun) -> dict[int, int]:
    return {int(k): v for k, v in run.cohort.fold_split.assignment.items()}


def _record_epoch(model: TrainedModel, epoch: int, logs: dict, config, ctx, fused: int = 1) -> None:
    """After a model's checkpointed epoch: its heartbeat, epochs and history (the run's grid), the job's step."""
    claims.beat(TrainedModel, model.pk, epochs_done=epoch,
                history=[*TrainedModel.objects.get(pk=model.pk).history[: epoch - 1], logs])
    step = (f"repeat {model.repeat + 1} fold {model.fold + 1}{f' (fused ×{fused})' if fused > 1 else ''}: "
            f"epoch {epoch}/{config.epochs}") + "".join(
        f", {label} {logs[key]:.3f}" for key, label in EPOCH_FIGURES if logs.get(key) is not None)
    if ctx is not None:
        ctx.progress(step=step, force=True)
    elif model.run.job_id:
        jobs.job_set_progress(job_pk=model.run.job_id, step=step)


def _beat_and_check_cancel(models: list[TrainedModel]) -> bool:
    for model in models:
        claims.beat(TrainedModel, model.pk)
    job_pk = models[0].run.job_id
    return bool(job_pk) and jobs.job_is_cancel_requested(job_pk)


def _store_result(model: TrainedModel, result, config, n_train: int, n_heldout: int, seconds: float) -> None:
    """A finished model: its card, metrics and file, status done."""
    from training.cards import backend_and_devices, model_card

    run = model.run
    card = model_card(cohort_name=run.cohort.name, content_hash=run.cohort.content_hash, repeat=model.repeat,
                      fold=model.fold, seed=model.seed, config=config.to_dict(), history=result.history,
                      heldout=result.heldout, seconds=seconds, n_train_cases=n_train, n_heldout_cases=n_heldout,
                      n_params=result.extra.get("n_params"), runtime=backend_and_devices())
    TrainedModel.objects.filter(pk=model.pk).update(
        status=Status.DONE, epochs_done=result.epochs_completed, history=result.history, metrics=result.heldout,
        card=card, model_path=str(Path(result.model_path).relative_to(settings.MEDIA_ROOT)),
        finished_at=timezone.now(), heartbeat_at=timezone.now(), error="")


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
