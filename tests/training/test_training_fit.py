"""One model's training: end to end, cancel, resume without redoing epochs, reproducible for a seed."""

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from benchmarks.phantom_auc import synthetic_blob_store  # noqa: E402
from training.fit import (  # noqa: E402
    CheckpointMismatch,
    ModelDiverged,
    TrainingCancelled,
    model_seed,
    predict_slices,
    roc_auc,
    train_one_model,
)
from training.network import TrainingConfig  # noqa: E402

# Tiny on purpose (2 CPU cores): 2 epochs of 1 eager step of 8 slices at 32 x 32, width 0.35.
TINY = TrainingConfig(epochs=2, samples_per_epoch=8, batch_size=8, input_size=32, width=0.35,
                      learning_rate=1e-3, batchnorm_momentum=0.0, run_eagerly=True)
TRAIN, HELDOUT = [0, 1, 2, 3, 4, 5], [6, 7]
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return synthetic_blob_store(tmp_path_factory.mktemp("store") / "s", n_per_class=4, slices_per_case=3)


def train(store, folder, seed=11, config=TINY, **kw):
    return train_one_model(store=store, train_case_ids=TRAIN, heldout_case_ids=HELDOUT, config=config,
                           checkpoint_dir=folder, seed=seed, **kw)


@pytest.fixture(scope="module")
def interrupted_run(store, tmp_path_factory):
    """Cancelled after epoch 1, then called again.

    Returns (folder, first_epochs, cancel, state_after_cancel, second_epochs, result).
    """
    folder = tmp_path_factory.mktemp("interrupted")
    first, second = [], []
    with pytest.raises(TrainingCancelled) as cancel:
        train(store, folder, on_epoch=lambda e, logs: first.append((e, logs)),
              should_stop=lambda: bool(first))
    state_after_cancel = json.loads((folder / "state.json").read_text())
    state_after_cancel["checkpoint_file_existed"] = (folder / state_after_cancel["checkpoint"]).is_file()
    result = train(store, folder, on_epoch=lambda e, logs: second.append(e))
    return folder, first, cancel.value, state_after_cancel, second, result


@pytest.fixture(scope="module")
def uninterrupted_run(store, tmp_path_factory):
    return train(store, tmp_path_factory.mktemp("straight"))


def final_weights(result):
    return [np.asarray(w) for w in keras.saving.load_model(result.model_path).get_weights()]


def test_cancel_after_epoch_one_keeps_that_epoch(interrupted_run):
    folder, first, cancel, state, _, _ = interrupted_run
    assert [e for e, _ in first] == [1]
    assert cancel.epochs_completed == 1
    assert state["epochs_completed"] == 1 and not state["finished"]
    assert state["checkpoint"] == "epoch-0001.keras" and state["checkpoint_file_existed"]
    logs = first[0][1]
    assert {"loss", "accuracy", "heldout_loss", "heldout_accuracy", "heldout_auc"} <= set(logs)


def test_resume_continues_at_epoch_two_without_redoing_epoch_one(interrupted_run):
    folder, first, _, _, second, result = interrupted_run
    assert second == [2]
    assert result.resumed_from_epoch == 1 and result.epochs_completed == 2 and result.status == "completed"
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert result.history[0]["loss"] == first[0][1]["loss"]  # epoch 1 kept, not retrained
    assert sorted(p.name for p in folder.glob("*.keras")) == ["epoch-0002.keras", "model.keras"]


def test_resumed_run_equals_uninterrupted_run_with_the_same_seed(interrupted_run, uninterrupted_run):
    resumed = interrupted_run[-1]
    assert [h["loss"] for h in resumed.history] == pytest.approx(
        [h["loss"] for h in uninterrupted_run.history], rel=1e-5)
    for a, b in zip(final_weights(resumed), final_weights(uninterrupted_run), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(resumed.heldout_p_sarcoma, uninterrupted_run.heldout_p_sarcoma, atol=1e-5)


def test_another_seed_trains_another_model(store, tmp_path, uninterrupted_run):
    one_epoch = TrainingConfig.from_dict({**TINY.to_dict(), "epochs": 1})
    same = train(store, tmp_path / "same", seed=11, config=one_epoch)
    other = train(store, tmp_path / "other", seed=12, config=one_epoch)
    assert same.history[0]["loss"] == pytest.approx(uninterrupted_run.history[0]["loss"], rel=1e-5)
    assert other.history[0]["loss"] != pytest.approx(same.history[0]["loss"], rel=1e-3)
    assert not np.allclose(other.heldout_p_sarcoma, same.heldout_p_sarcoma, atol=1e-4)


def test_finished_model_is_returned_not_retrained(store, interrupted_run):
    folder, *_, result = interrupted_run
    calls = []
    again = train(store, folder, on_epoch=lambda e, logs: calls.append(e))
    assert calls == [] and again.status == "already_finished"
    assert again.extra["n_params"] == result.extra["n_params"] > 0
    np.testing.assert_array_equal(again.heldout_p_sarcoma, result.heldout_p_sarcoma)


def test_heldout_predictions_cover_exactly_the_heldout_slices(store, uninterrupted_run):
    rows = uninterrupted_run.heldout_rows
    assert set(store.case_ids[rows]) == set(HELDOUT)
    assert rows.size == sum(store.slices_per_case()[c] for c in HELDOUT)
    p = uninterrupted_run.heldout_p_sarcoma
    assert p.shape == rows.shape and ((p >= 0) & (p <= 1)).all()
    assert uninterrupted_run.heldout["n_slices"] == rows.size


def test_predict_slices_from_file_matches_training_predictions(store, uninterrupted_run):
    rows = uninterrupted_run.heldout_rows
    from_file = predict_slices(uninterrupted_run.model_path, store.slices[rows], batch_size=4)
    np.testing.assert_allclose(from_file, uninterrupted_run.heldout_p_sarcoma, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="do not fit the model's input"):
        predict_slices(uninterrupted_run.model_path, np.zeros((2, 48, 48), np.uint8))


def test_checkpoint_of_another_run_is_refused(store, interrupted_run):
    folder = interrupted_run[0]
    with pytest.raises(CheckpointMismatch, match="its seed differs"):
        train(store, folder, seed=99)


def test_overlapping_train_and_heldout_patients_are_refused(store, tmp_path):
    with pytest.raises(ValueError, match="leakage"):
        train_one_model(store=store, train_case_ids=[0, 1, 2], heldout_case_ids=[2, 3], config=TINY,
                        checkpoint_dir=tmp_path, seed=0)


def test_roc_auc_and_model_seed():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([0, 1, 1], [0.5, 0.5, 0.9]) == pytest.approx(0.75)  # a tie counts one half
    assert roc_auc([1, 1], [0.2, 0.3]) is None
    seeds = {model_seed(0, r, f) for r in range(24) for f in range(6)}
    assert len(seeds) == 144 and all(0 <= s < 2**31 for s in seeds)
    assert model_seed(0, 3, 2) == model_seed(0, 3, 2)


def test_stop_during_an_epoch_discards_that_epoch(store, tmp_path, monkeypatch):
    import training.fit as fit

    monkeypatch.setattr(fit, "_STOP_CHECK_SECONDS", 0.0)  # poll after every batch
    answers = iter([False])  # the check before epoch 1 says go; every later poll says stop
    with pytest.raises(TrainingCancelled) as cancel:
        train(store, tmp_path, should_stop=lambda: next(answers, True))
    assert cancel.value.epochs_completed == 0
    assert not (tmp_path / "state.json").exists() and not list(tmp_path.glob("*.keras"))


def test_a_model_whose_loss_turns_nan_stops_with_its_last_good_checkpoint(store, tmp_path, monkeypatch):
    """A diverged epoch is never checkpointed or trained on (it used to be saved with a NaN history)."""
    from training import network

    real_build = network.build_model

    def diverging_in_epoch_2(*args, **kwargs):
        model = real_build(*args, **kwargs)
        real_fit = model.fit

        def fit(*a, **k):
            fitted = real_fit(*a, **k)
            if k.get("initial_epoch") == 1:
                fitted.history["loss"][-1] = float("nan")
            return fitted

        model.fit = fit
        return model

    monkeypatch.setattr(network, "build_model", diverging_in_epoch_2)
    with pytest.raises(ModelDiverged, match="training loss nan after epoch 2: diverged; its checkpoint of epoch 1"):
        train(store, tmp_path / "m")
    state = json.loads((tmp_path / "m" / "state.json").read_text())
    assert state["epochs_completed"] == 1 and not state["finished"]
    assert [p.name for p in (tmp_path / "m").glob("*.keras")] == ["epoch-0001.keras"]
