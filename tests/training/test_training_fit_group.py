"""A fused group's training (issue 16, items 2-3): per-model checkpoints that `train_one_model` reads unchanged,
cancel and resume, a diverged member dropped while the others go on, members at another epoch left out.
Tiny on purpose (2 CPU cores): 2 epochs of 2 eager steps of 4 slices at 32 x 32. SYNTHETIC data."""

import dataclasses
import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from benchmarks.phantom_auc import synthetic_blob_store  # noqa: E402
from factories_training import poison_member_loss  # noqa: E402
from training.fit import TrainingCancelled, train_one_model  # noqa: E402
from training.fit_group import GroupMember, MemberDiverged, NotInGroup, train_fused_group  # noqa: E402
from training.network import TrainingConfig  # noqa: E402

TINY = TrainingConfig(epochs=2, samples_per_epoch=8, batch_size=4, input_size=32, width=0.35, learning_rate=1e-3,
                      batchnorm_momentum=0.5, run_eagerly=True)
SPLITS = [([0, 1, 2, 3, 4, 5], [6, 7], 11), ([2, 3, 4, 5, 6, 7], [0, 1], 22)]
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return synthetic_blob_store(tmp_path_factory.mktemp("store") / "s", n_per_class=4, slices_per_case=3)


def members(root):
    return [GroupMember(train, heldout, root / f"m{k}", seed) for k, (train, heldout, seed) in enumerate(SPLITS)]


def alone(store, member, folder=None, **kw):
    return train_one_model(store=store, train_case_ids=member.train_case_ids, heldout_case_ids=member.heldout_case_ids,
                           config=TINY, checkpoint_dir=folder or member.checkpoint_dir, seed=member.seed, **kw)


def final(result):
    return [np.asarray(w) for w in keras.saving.load_model(result.model_path).get_weights()]


def assert_close(a, b, atol=1e-4):
    worst = max(float(np.max(np.abs(x - y))) if x.size else 0.0 for x, y in zip(a, b, strict=True))
    assert worst <= atol, f"largest weight difference {worst:.2e}"


@pytest.fixture(scope="module")
def apart(store, tmp_path_factory):
    root = tmp_path_factory.mktemp("apart")
    return [alone(store, m) for m in members(root)]


def test_a_group_trains_each_model_as_alone_into_folders_that_train_one_model_reads(store, tmp_path, apart):
    seen = []
    results = train_fused_group(store=store, members=members(tmp_path), config=TINY,
                                on_epoch=lambda i, e, logs: seen.append((i, e, sorted(logs))))
    assert [(i, e) for i, e, _ in seen] == [(0, 1), (1, 1), (0, 2), (1, 2)]
    assert {"loss", "accuracy", "heldout_auc", "heldout_loss", "seconds", "epoch"} <= set(seen[0][2])
    for k, (result, reference) in enumerate(zip(results, apart, strict=True)):
        assert result.epochs_completed == 2 and len(result.history) == 2
        assert_close(final(result), final(reference))
        np.testing.assert_allclose(result.heldout_p_sarcoma, reference.heldout_p_sarcoma, atol=1e-4)
        np.testing.assert_array_equal(result.heldout_rows, reference.heldout_rows)
        state = json.loads((tmp_path / f"m{k}" / "state.json").read_text())
        assert state["finished"] and state["seed"] == SPLITS[k][2]
        again = alone(store, members(tmp_path)[k])                     # the folder as one model's: not retrained
        assert again.status == "already_finished"
    rerun = train_fused_group(store=store, members=members(tmp_path), config=TINY)
    assert [r.status for r in rerun] == ["already_finished", "already_finished"]


def test_a_cancelled_group_resumes_as_a_group_or_a_member_alone(store, tmp_path, apart):
    seen = []
    with pytest.raises(TrainingCancelled):
        train_fused_group(store=store, members=members(tmp_path), config=TINY,
                          on_epoch=lambda i, e, logs: seen.append((i, e)), should_stop=lambda: len(seen) >= 2)
    assert seen == [(0, 1), (1, 1)]
    # member 1 resumes alone from the group's checkpoint; member 0 with the group (of one)
    one = alone(store, members(tmp_path)[1])
    assert one.resumed_from_epoch == 1
    assert_close(final(one), final(apart[1]))
    results = train_fused_group(store=store, members=members(tmp_path), config=TINY)
    assert results[0].resumed_from_epoch == 1 and results[1].status == "already_finished"
    assert_close(final(results[0]), final(apart[0]))


def test_a_diverged_member_is_dropped_and_the_others_go_on_unchanged(store, tmp_path, apart, monkeypatch):
    poison_member_loss(monkeypatch, member=1, epoch=0)
    results = train_fused_group(store=store, members=members(tmp_path), config=TINY)
    assert isinstance(results[1], MemberDiverged) and results[1].epoch == 1
    assert "dropped from its fused group" in str(results[1])
    assert not (tmp_path / "m1" / "state.json").exists()              # no checkpoint of a diverged epoch
    assert results[0].epochs_completed == 2
    assert_close(final(results[0]), final(apart[0]))                  # re-fused without it: still its own run
    retried = alone(store, members(tmp_path)[1])                       # the caller retries it alone
    assert_close(final(retried), final(apart[1]))


def test_a_member_at_another_epoch_or_of_another_run_is_left_out(store, tmp_path):
    group = members(tmp_path)
    with pytest.raises(TrainingCancelled):             # member 0 alone, stopped after its first epoch
        alone(store, group[0], should_stop=lambda: (tmp_path / "m0" / "state.json").exists())
    stranger = dataclasses.replace(group[1], checkpoint_dir=tmp_path / "m0", seed=99)   # m0's folder, other seed
    results = train_fused_group(store=store, members=[*group, stranger], config=TINY)
    assert isinstance(results[0], NotInGroup) and "epoch 1" in str(results[0])
    assert results[1].epochs_completed == 2 and results[1].resumed_from_epoch == 0
    assert isinstance(results[2], ValueError) and "belongs to another run" in str(results[2])
