"""Training one model of the protocol, resumable and cancellable (METHOD §5). No Django.

`train_one_model` is what a Celery task on the `gpu` queue calls for one (repeat, fold) model. It
trains epoch by epoch; after each epoch it scores the held-out patients' slices, saves a checkpoint
(a .keras file with weights and optimizer state, plus `state.json` with the epoch and history) and
reports progress through `on_epoch`. Called again with the same arguments it resumes after the last
finished epoch, and once finished it returns the stored result without training again, so a task
that is delivered twice or restarted after a worker died loses at most one epoch.

Reproducible for a seed on CPU: the initial weights come from keras.utils.set_random_seed(seed),
the batches are a pure function of (seed, epoch, batch) and the augmentation streams are reset to a
position given by (seed, epoch) at the start of every epoch; a resumed run therefore ends with the
same weights as an uninterrupted one.

Checkpoint folder:
  state.json                 {"epochs_completed", "checkpoint", "history", "finished", identity…}
  epoch-NNNN.keras           the last finished epoch (older ones are removed)
  model.keras                the final model (written when all epochs are done)
  heldout_predictions.npz    rows, case_id, sequence_idx, slice_no, label, p_sarcoma of held-out slices
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.files import atomic_path, atomic_write_json
from imaging.arraystore import ArrayStore
from training.network import TrainingConfig

STATE_FILE = "state.json"
FINAL_MODEL_FILE = "model.keras"
PREDICTIONS_FILE = "heldout_predictions.npz"
# Settings that change speed or progress reporting but not the trained model: may differ on resume.
# Settings that change how a model is trained, not what it becomes: a checkpoint resumes under other values.
_RESUME_FREE_SETTINGS = ("loader_workers", "run_eagerly", "eval_max_slices", "fuse", "xla")
_STOP_CHECK_SECONDS = 5.0


class TrainingCancelled(Exception):
    """should_stop() said stop. Finished epochs are checkpointed; calling again resumes after them."""

    def __init__(self, epochs_completed: int, checkpoint_dir: Path):
        super().__init__(f"training cancelled after {epochs_completed} finished epoch(s); "
                         f"checkpoint in {checkpoint_dir}")
        self.epochs_completed = epochs_completed
        self.checkpoint_dir = checkpoint_dir


class ModelDiverged(RuntimeError):
    """The training loss was not finite (NaN or inf) after ``epoch``: that epoch is not checkpointed, the one
    before it is kept, so nothing that diverged is ever saved as a model."""

    def __init__(self, epoch: int, loss: float, message: str | None = None):
        super().__init__(message or f"training loss {loss} after epoch {epoch}: diverged; its checkpoint of "
                                    f"epoch {epoch - 1} is kept (resume to retry from there)")
        self.epoch = epoch
        self.loss = loss


class CheckpointMismatch(ValueError):
    """The checkpoint folder belongs to another run (other data, patients, seed or settings)."""


@dataclass
class FitResult:
    """What one model's training produced.

    history: one dict per epoch: epoch (1-based), loss, accuracy (training batches, augmented),
      heldout_loss, heldout_accuracy, heldout_auc (slice level, unaugmented), seconds.
    heldout: final slice-level metrics over every held-out slice: n_slices, loss, accuracy, auc.
    heldout_rows / heldout_p_sarcoma: array-store rows of the held-out slices, (n,) int64, and the
      final model's P(sarcoma) for them, (n,) float32 (the out-of-fold predictions of METHOD §6).
    """

    model_path: Path
    epochs_completed: int
    history: list[dict]
    heldout: dict
    heldout_rows: np.ndarray
    heldout_p_sarcoma: np.ndarray
    seed: int
    resumed_from_epoch: int = 0
    status: str = "completed"  # or "already_finished" when a finished run was returned from its folder
    extra: dict = field(default_factory=dict)  # "n_params": the model's parameter count


def model_seed(base_seed: int, repeat: int, fold: int) -> int:
    """A model's own seed from the job's base seed, its repeat (0..23) and fold (0..5); fits int32."""
    state = np.random.SeedSequence([int(base_seed), int(repeat), int(fold)]).generate_state(1)[0]
    return int(state % (2**31 - 1))


def train_one_model(
    *,
    store: ArrayStore,
    train_case_ids: Iterable[int],
    heldout_case_ids: Iterable[int],
    config: TrainingConfig,
    checkpoint_dir: str | os.PathLike,
    seed: int,
    on_epoch: Callable[[int, dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FitResult:
    """Train (or resume, or return) the model for one fold of one repeat.

    store: the cohort's ArrayStore. train_case_ids / heldout_case_ids: disjoint patient ids (from
    training.folds.train_heldout_split); heldout may be empty (then no held-out metrics).
    seed: this model's seed (see model_seed); config.seed is only recorded.
    on_epoch(epoch, logs): called after each finished and checkpointed epoch, epoch 1-based, logs as
      in FitResult.history. should_stop(): polled before each epoch and every ~5 s during one; when it
      returns True the unfinished epoch is discarded and TrainingCancelled is raised.
    Raises CheckpointMismatch if checkpoint_dir holds another run's checkpoint.
    """
    import keras

    from training.augment import reset_augmentation_streams
    from training.network import apply_compile_options, build_model
    from training.sampling import ClassBalancedSampler, as_keras_dataset

    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    train_ids, heldout_ids = _checked_split(store, train_case_ids, heldout_case_ids)
    identity = _run_identity(store, train_ids, heldout_ids, config, seed)
    state = _read_state(checkpoint_dir)
    if state is not None:
        _check_same_run(state, identity, checkpoint_dir)
        if state.get("finished") and (checkpoint_dir / FINAL_MODEL_FILE).is_file():
            return _stored_result(checkpoint_dir, state, seed)

    keras.utils.set_random_seed(seed)
    start = state["epochs_completed"] if state else 0
    history = list(state["history"]) if state else []
    if start > 0:
        model = keras.saving.load_model(checkpoint_dir / state["checkpoint"])
        apply_compile_options(model, config)
    else:
        model = build_model(config, seed=seed)

    sampler = ClassBalancedSampler(store, train_ids, batch_size=config.batch_size,
                                   samples_per_epoch=config.samples_per_epoch, seed=seed, dtype="uint8",
                                   one_hot=config.loss == "categorical_crossentropy")
    dataset = as_keras_dataset(sampler, epoch=start, workers=config.loader_workers)
    heldout_rows = store.slice_indices(heldout_ids)
    eval_rows = _progress_rows(heldout_rows, config.eval_max_slices, seed)
    stopper = _stop_callback(should_stop)

    for epoch in range(start, config.epochs):
        if should_stop is not None and should_stop():
            raise TrainingCancelled(epoch, checkpoint_dir)
        began = time.monotonic()
        dataset.set_epoch(epoch)
        reset_augmentation_streams(model, epoch)
        fitted = model.fit(dataset, epochs=epoch + 1, initial_epoch=epoch, verbose=0, callbacks=[stopper])
        if stopper.stopped:
            raise TrainingCancelled(epoch, checkpoint_dir)
        logs = {"epoch": epoch + 1}
        logs.update({name: float(values[-1]) for name, values in fitted.history.items()})
        if not math.isfinite(logs.get("loss", 0.0)):
            raise ModelDiverged(epoch + 1, logs["loss"])
        if eval_rows.size:
            p = predict_store_rows(model, store, eval_rows, batch_size=max(config.batch_size, 64))
            logs.update({f"heldout_{k}": v for k, v in slice_metrics(store.labels[eval_rows], p).items()
                         if k != "n_slices"})
        logs["seconds"] = round(time.monotonic() - began, 3)
        history.append(logs)
        _save_checkpoint(model, checkpoint_dir, epoch + 1, history, identity)
        if on_epoch is not None:
            on_epoch(epoch + 1, dict(logs))

    return _finish(model, store, heldout_rows, checkpoint_dir, history, identity, seed, start,
                   batch_size=max(config.batch_size, 64))


def predict_slices(model_or_path, slices: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
    """P(sarcoma) for each slice, shape (N,) float32, without augmentation.

    model_or_path: a keras.Model from build_model / training, or the path of a saved .keras file.
    slices: (N, S, S) or (N, S, S, 1) grey values 0..255 (uint8 or float), S the model's input size.
    A np.memmap is read batch by batch, never as a whole.
    """
    model = load_for_prediction(model_or_path)
    slices = np.asarray(slices) if not isinstance(slices, np.ndarray) else slices
    _check_slices_fit_model(model, slices.shape)
    return _predict_batches(model, (slices[i:i + batch_size] for i in range(0, slices.shape[0], batch_size)),
                            slices.shape[0])


def predict_store_rows(model_or_path, store: ArrayStore, rows: np.ndarray, *,
                       batch_size: int = 64) -> np.ndarray:
    """P(sarcoma) for the given array-store rows, shape (len(rows),) float32, without augmentation."""
    model = load_for_prediction(model_or_path)
    rows = np.asarray(rows, dtype=np.int64)
    _check_slices_fit_model(model, (rows.size, *store.slices.shape[1:]))
    batches = (store.slices[rows[i:i + batch_size]] for i in range(0, rows.size, batch_size))
    return _predict_batches(model, batches, rows.size)


def load_for_prediction(model_or_path):
    """A keras.Model as is, or the .keras file at a path loaded without its optimizer."""
    if isinstance(model_or_path, (str, os.PathLike)):
        import keras

        path = Path(model_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} not found")
        from training.network import apply_compile_options

        model = keras.saving.load_model(path, compile=False)
        apply_compile_options(model)
        return model
    return model_or_path


def slice_metrics(labels: np.ndarray, p_sarcoma: np.ndarray) -> dict:
    """Slice-level held-out figures: n_slices, loss (mean cross-entropy, nats), accuracy (p >= 0.5), auc.

    labels: (N,) 0/1 with 1 = sarcoma; p_sarcoma: (N,) probabilities. auc is None when one class is absent.
    """
    labels = np.asarray(labels).astype(np.int64)
    p = np.clip(np.asarray(p_sarcoma, dtype=np.float64), 1e-7, 1 - 1e-7)
    if labels.size == 0:
        return {"n_slices": 0, "loss": None, "accuracy": None, "auc": None}
    loss = -np.mean(np.where(labels == 1, np.log(p), np.log1p(-p)))
    return {"n_slices": int(labels.size), "loss": float(loss),
            "accuracy": float(np.mean((p >= 0.5) == (labels == 1))), "auc": roc_auc(labels, p)}


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC as Mann-Whitney U / (n_pos n_neg), ties counting 1/2; None if a class is absent."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks (1-based) over ties
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [scores.size]])
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + 1 + e) / 2.0
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


# -- internals -------------------------------------------------------------------------------------

def _predict_batches(model, batches, n) -> np.ndarray:
    out = np.empty(n, dtype=np.float32)
    done = 0
    for batch in batches:
        x = np.asarray(batch, dtype=np.float32)
        if x.ndim == 3:
            x = x[..., None]
        probs = np.asarray(model.predict_on_batch(x))
        out[done:done + x.shape[0]] = probs[:, 1]
        done += x.shape[0]
    return out


def _check_slices_fit_model(model, shape) -> None:
    size = model.input_shape[1]
    channels_ok = len(shape) == 3 or (len(shape) == 4 and shape[3] == 1)
    if not channels_ok or shape[1] != size or shape[2] != size:
        raise ValueError(f"slices of shape {tuple(shape)} do not fit the model's input ({size}, {size}, 1)")


def _checked_split(store, train_case_ids, heldout_case_ids):
    train_ids = np.unique(np.asarray(list(train_case_ids), dtype=np.int64))
    heldout_ids = np.unique(np.asarray(list(heldout_case_ids), dtype=np.int64))
    if train_ids.size == 0:
        raise ValueError("train_case_ids is empty")
    both = np.intersect1d(train_ids, heldout_ids)
    if both.size:
        raise ValueError(f"cases {both[:5].tolist()} are both training and held-out cases (leakage)")
    missing = np.setdiff1d(np.concatenate([train_ids, heldout_ids]), store.case_ids)
    if missing.size:
        raise ValueError(f"cases {missing[:5].tolist()} have no slices in the array store")
    return train_ids, heldout_ids


def _run_identity(store, train_ids, heldout_ids, config, seed) -> dict:
    settings = {k: v for k, v in config.to_dict().items() if k not in _RESUME_FREE_SETTINGS}
    return {"store_hash": store.content_hash, "train_case_ids": train_ids.tolist(),
            "heldout_case_ids": heldout_ids.tolist(), "seed": int(seed),
            "config": json.loads(json.dumps(settings))}


def _check_same_run(state, identity, checkpoint_dir) -> None:
    for key, value in identity.items():
        if state.get(key) != value:
            raise CheckpointMismatch(
                f"checkpoint folder {checkpoint_dir} belongs to another run: its {key} differs "
                "(use a new folder, or delete this one to start over)")


def _read_state(checkpoint_dir: Path) -> dict | None:
    path = checkpoint_dir / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointMismatch(f"{path} is not valid JSON ({exc}); delete the folder to start over") \
            from None
    checkpoint = state.get("checkpoint")
    if state.get("epochs_completed", 0) > 0 and not (checkpoint and (checkpoint_dir / checkpoint).is_file()):
        raise CheckpointMismatch(f"{path} names checkpoint {checkpoint!r}, which is missing")
    return state


def _save_checkpoint(model, checkpoint_dir: Path, epochs_completed: int, history, identity) -> None:
    name = f"epoch-{epochs_completed:04d}.keras"
    with atomic_path(checkpoint_dir / name, suffix=".keras") as tmp:
        model.save(tmp)
    atomic_write_json(checkpoint_dir / STATE_FILE, {
        **identity, "epochs_completed": epochs_completed, "checkpoint": name,
        "history": _json_safe(history), "finished": False}, indent=1)
    for old in checkpoint_dir.glob("epoch-*.keras"):
        if old.name != name:
            old.unlink(missing_ok=True)


def _finish(model, store, heldout_rows, checkpoint_dir, history, identity, seed, start, batch_size):
    with atomic_path(checkpoint_dir / FINAL_MODEL_FILE, suffix=".keras") as tmp:
        model.save(tmp)
    p = predict_store_rows(model, store, heldout_rows, batch_size=batch_size)
    with atomic_path(checkpoint_dir / PREDICTIONS_FILE, suffix=".npz") as tmp:
        np.savez(tmp, rows=heldout_rows, case_id=store.case_ids[heldout_rows],
                 sequence_idx=store.sequence_idx[heldout_rows], slice_no=store.slice_no[heldout_rows],
                 label=store.labels[heldout_rows], p_sarcoma=p)
    heldout = slice_metrics(store.labels[heldout_rows], p)
    state = _read_state(checkpoint_dir) or {**identity, "checkpoint": None}
    n_params = int(model.count_params())
    state.update({"epochs_completed": len(history), "history": _json_safe(history), "finished": True,
                  "heldout": _json_safe(heldout), "n_params": n_params})
    atomic_write_json(checkpoint_dir / STATE_FILE, state, indent=1)
    return FitResult(model_path=checkpoint_dir / FINAL_MODEL_FILE, epochs_completed=len(history), history=history,
                     heldout=heldout, heldout_rows=heldout_rows, heldout_p_sarcoma=p, seed=seed,
                     resumed_from_epoch=start, extra={"n_params": n_params})


def _stored_result(checkpoint_dir: Path, state: dict, seed: int) -> FitResult:
    with np.load(checkpoint_dir / PREDICTIONS_FILE) as saved:
        rows, p = saved["rows"], saved["p_sarcoma"]
    return FitResult(model_path=checkpoint_dir / FINAL_MODEL_FILE, epochs_completed=state["epochs_completed"],
                     history=state["history"], heldout=state["heldout"], heldout_rows=rows,
                     heldout_p_sarcoma=p, seed=seed, resumed_from_epoch=state["epochs_completed"],
                     status="already_finished", extra={"n_params": state.get("n_params")})


def _progress_rows(heldout_rows: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    if cap is None or heldout_rows.size <= cap:
        return heldout_rows
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xE7A1]))
    return np.sort(rng.choice(heldout_rows, size=cap, replace=False))


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _stop_callback(should_stop):
    """A keras Callback that polls should_stop() every ~5 s during an epoch and stops fit() if it says so."""
    import keras

    class _PollStop(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.stopped = False
            self._last = time.monotonic()

        def on_epoch_begin(self, epoch, logs=None):
            self._last = time.monotonic()

        def on_train_batch_end(self, batch, logs=None):
            if should_stop is None or time.monotonic() - self._last < _STOP_CHECK_SECONDS:
                return
            self._last = time.monotonic()
            if should_stop():
                self.stopped = True
                self.model.stop_training = True

    return _PollStop()
