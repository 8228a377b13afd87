"""Training a group of models fused in one compiled step, resumable per model (issue 16). No Django.

`train_fused_group` is `training.fit.train_one_model` for N models at once (`training.fused`): the same
checkpoint folder per model, in the same format (`state.json`, `epoch-NNNN.keras` with the model's own optimizer
state, `model.keras`, `heldout_predictions.npz`), written after every epoch for every member. So a group
interrupted after epoch e resumes as a group, or any member resumes *alone* with `train_one_model` and the same
arguments, from the same checkpoint; a finished member is returned as stored, never retrained; and inference and
the model cards read the members' files as they read a model trained alone.

A member whose training loss is not finite (NaN or inf: it diverged) is dropped from the group at the end of that
epoch: its result is a `MemberDiverged` naming the epoch, its folder keeps its last good checkpoint, and the rest
of the group goes on without it, re-fused. The caller retries it alone (`train_one_model` resumes it from that
checkpoint), so one model never holds the others back and none is lost. Members that do not start at the same
epoch (one was resumed alone meanwhile) cannot step together: the group trains those at the earliest common
start; the others are returned as `NotInGroup` for the caller to train alone.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imaging.arraystore import ArrayStore
from training.fit import (
    FINAL_MODEL_FILE,
    ModelDiverged,
    TrainingCancelled,
    _check_same_run,
    _checked_split,
    _finish,
    _progress_rows,
    _read_state,
    _run_identity,
    _save_checkpoint,
    _stop_callback,
    _stored_result,
    predict_store_rows,
    slice_metrics,
)
from training.network import TrainingConfig


@dataclass(frozen=True)
class GroupMember:
    """One model of a group: what `train_one_model` takes for it."""

    train_case_ids: Sequence[int]
    heldout_case_ids: Sequence[int]
    checkpoint_dir: str | os.PathLike
    seed: int


class MemberDiverged(ModelDiverged):
    """The member's training loss was not finite after ``epoch``; its last good checkpoint is kept."""

    def __init__(self, epoch: int, loss: float):
        super().__init__(epoch, loss, f"training loss {loss} after epoch {epoch}: diverged; dropped from its fused "
                                      f"group, its checkpoint of epoch {epoch - 1} is kept (train it alone to retry)")


class NotInGroup(RuntimeError):
    """The member's checkpoint is at another epoch than the group's: train it alone."""


@dataclass
class _Active:
    index: int
    member: GroupMember
    folder: Path
    identity: dict
    heldout_rows: np.ndarray
    eval_rows: np.ndarray
    history: list
    train_ids: np.ndarray
    state: dict | None
    model: object = None


def train_fused_group(*, store: ArrayStore, members: Sequence[GroupMember], config: TrainingConfig,
                      on_epoch: Callable[[int, int, dict], None] | None = None,
                      should_stop: Callable[[], bool] | None = None) -> list:
    """Train (or resume, or return) every member; one result per member, in order: a `FitResult`, or the
    `MemberDiverged` / `NotInGroup` / `CheckpointMismatch` / `ValueError` that stopped that member alone.

    on_epoch(index, epoch, logs): after each member's checkpointed epoch (index into ``members``, epoch 1-based,
    logs as in `FitResult.history`). should_stop(): polled as by `train_one_model`; when it says stop, the
    unfinished epoch is discarded for every member and `TrainingCancelled` is raised (finished epochs are kept).
    """
    results: list = [None] * len(members)
    active = _prepare(store, members, config, results)
    if not active:
        return results
    start = _common_start(active, results)
    active = [a for a in active if results[a.index] is None]
    fused = _fuse(active, config, start)
    batch_size = max(config.batch_size, 64)
    stopper = _stop_callback(should_stop)
    for epoch in range(start, config.epochs):
        if should_stop is not None and should_stop():
            raise TrainingCancelled(epoch, Path(active[0].member.checkpoint_dir))
        fused, active = _train_epoch(store, fused, active, config, epoch, stopper, results, on_epoch)
        if not active:
            return results
    for a in active:
        results[a.index] = _finish(a.model, store, a.heldout_rows, a.folder, a.history, a.identity,
                                   a.member.seed, start, batch_size=batch_size)
    return results


def _prepare(store, members, config, results) -> list[_Active]:
    """Each member's split, identity and state; finished and refused ones get their result now."""
    active = []
    for index, member in enumerate(members):
        folder = Path(member.checkpoint_dir)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            train_ids, heldout_ids = _checked_split(store, member.train_case_ids, member.heldout_case_ids)
            identity = _run_identity(store, train_ids, heldout_ids, config, member.seed)
            state = _read_state(folder)
            if state is not None:
                _check_same_run(state, identity, folder)
                if state.get("finished") and (folder / FINAL_MODEL_FILE).is_file():
                    results[index] = _stored_result(folder, state, member.seed)
                    continue
        except ValueError as exc:          # CheckpointMismatch is a ValueError: this member only
            results[index] = exc
            continue
        heldout_rows = store.slice_indices(heldout_ids)
        active.append(_Active(index, member, folder, identity, heldout_rows,
                              _progress_rows(heldout_rows, config.eval_max_slices, member.seed),
                              list(state["history"]) if state else [], train_ids, state))
    return active


def _common_start(active, results) -> int:
    """The earliest epoch any member starts from; members checkpointed at another epoch leave the group."""
    starts = {a.index: (a.state["epochs_completed"] if a.state else 0) for a in active}
    start = min(starts.values())
    for a in active:
        if starts[a.index] != start:
            results[a.index] = NotInGroup(f"checkpoint at epoch {starts[a.index]}, the group starts at {start}: "
                                          "train this model alone")
    return start


def _fuse(active, config, start):
    """The fused model of the active members: built fresh from their seeds, or from their checkpoints."""
    import keras

    from training.fused import build_fused, fuse_members, reset_member_streams

    if start == 0:
        fused, models = build_fused(config, [a.member.seed for a in active])
    else:
        models = [keras.saving.load_model(a.folder / a.state["checkpoint"]) for a in active]
        fused = fuse_members(models, config)
    for a, model in zip(active, models, strict=True):
        a.model = model
    reset_member_streams(models, start)
    return fused


def _train_epoch(store, fused, active, config, epoch, stopper, results, on_epoch):
    """One epoch of the group; returns the (possibly re-fused) model and the members still in the group."""
    from training.fused import FusedBatches, fuse_members, fused_dataset, member_checkpoint, reset_member_streams
    from training.sampling import ClassBalancedSampler

    began = time.monotonic()
    samplers = [ClassBalancedSampler(store, a.train_ids, batch_size=config.batch_size,
                                     samples_per_epoch=config.samples_per_epoch, seed=a.member.seed,
                                     dtype="uint8", one_hot=config.loss == "categorical_crossentropy")
                for a in active]
    reset_member_streams([a.model for a in active], epoch)
    fitted = fused.fit(fused_dataset(FusedBatches(samplers), epoch=epoch, workers=config.loader_workers),
                       epochs=epoch + 1, initial_epoch=epoch, verbose=0, callbacks=[stopper])
    if stopper.stopped:
        raise TrainingCancelled(epoch, Path(active[0].member.checkpoint_dir))
    seconds = round(time.monotonic() - began, 3)
    kept = []
    for a in active:
        logs = _member_logs(fitted.history, a.model.name, epoch)
        if not math.isfinite(logs.get("loss", 0.0)):
            results[a.index] = MemberDiverged(epoch + 1, logs["loss"])
            continue
        if a.eval_rows.size:
            p = predict_store_rows(a.model, store, a.eval_rows, batch_size=max(config.batch_size, 64))
            logs.update({f"heldout_{k}": v for k, v in slice_metrics(store.labels[a.eval_rows], p).items()
                         if k != "n_slices"})
        logs["seconds"] = seconds
        a.history.append(logs)
        member_checkpoint(fused, a.model)
        _save_checkpoint(a.model, a.folder, epoch + 1, a.history, a.identity)
        if on_epoch is not None:
            on_epoch(a.index, epoch + 1, dict(logs))
        kept.append(a)
    if kept and len(kept) < len(active):                # a member diverged: the others go on, re-fused
        fused = fuse_members([a.model for a in kept], config, optimizer_from=fused.optimizer)
        reset_member_streams([a.model for a in kept], epoch + 1)
    return fused, kept


def _member_logs(history: dict, name: str, epoch: int) -> dict:
    """The member's own training loss and accuracy out of the fused history ("<member>_loss", …)."""
    logs = {"epoch": epoch + 1}
    for key, values in history.items():
        if key.startswith(name + "_"):
            logs[key[len(name) + 1:]] = float(values[-1])
    return logs
