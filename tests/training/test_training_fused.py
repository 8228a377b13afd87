"""Fused training (issue 16, item 2): N models in one compiled step give what the N models give apart.

From the same seeds (so the same initial weights and augmentation streams) and the same batches, fused groups
of 2 and 3 end with the same weights, BatchNorm statistics and held-out predictions as the models trained one by
one, with augmentation off and on; a member's checkpoint carries its own optimizer state, and training resumed
from it continues exactly as the model trained alone. fp32, tiny on purpose (2 CPU cores), SYNTHETIC data.
"""

import dataclasses

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from benchmarks.phantom_auc import synthetic_blob_store  # noqa: E402
from training.fused import FusedBatches, build_fused, member_checkpoint, reset_member_streams  # noqa: E402
from training.network import TrainingConfig, build_model  # noqa: E402
from training.sampling import ClassBalancedSampler  # noqa: E402

NO_AUGMENTATION = TrainingConfig(epochs=1, samples_per_epoch=12, batch_size=4, input_size=32, width=0.35,
                                 learning_rate=1e-3, batchnorm_momentum=0.5, run_eagerly=True, flip="none",
                                 rotation_degrees=0.0, zoom_fraction=0.0, brightness_fraction=0.0)
AUGMENTED = dataclasses.replace(NO_AUGMENTATION, flip="horizontal", rotation_degrees=15.0, zoom_fraction=0.1,
                                brightness_fraction=0.1)
FOLDS = {11: [0, 1, 2, 3, 4, 5], 22: [2, 3, 4, 5, 6, 7], 33: [0, 1, 4, 5, 6, 7]}   # seed -> training patients
STEPS = 3
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return synthetic_blob_store(tmp_path_factory.mktemp("store") / "s", n_per_class=4, slices_per_case=3)


def sampler(store, seed, config):
    return ClassBalancedSampler(store, FOLDS[seed], batch_size=config.batch_size,
                                samples_per_epoch=config.samples_per_epoch, seed=seed)


def apart(store, seeds, config, steps=STEPS):
    """Each model alone: built after set_random_seed(its seed), trained on its own sampler's batches."""
    models = []
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        model = build_model(config, seed=seed)
        own = sampler(store, seed, config)
        for step in range(steps):
            model.train_on_batch(*own.batch(0, step))
        models.append(model)
    return models


def fused_run(store, seeds, config, steps=STEPS):
    fused, members = build_fused(config, seeds)
    batches = FusedBatches([sampler(store, seed, config) for seed in seeds])
    reset_member_streams(members, 0)
    for step in range(steps):
        x, y = batches.batch(0, step)
        fused.train_on_batch(list(x), list(y))
    return fused, members


def weights(model):
    return [np.asarray(v.value) for v in model.weights if "seed_generator" not in v.path]


def assert_same(a, b, atol):
    wa, wb = weights(a), weights(b)
    assert len(wa) == len(wb)
    worst = max(float(np.max(np.abs(x - y))) if x.size else 0.0 for x, y in zip(wa, wb, strict=True))
    assert worst <= atol, f"largest weight difference {worst:.2e} > {atol:.0e}"


def heldout(store):
    return store.slices[store.slice_indices([6, 7])][..., None].astype("float32")


@pytest.mark.parametrize("seeds", [(11, 22), (11, 22, 33)], ids=["N=2", "N=3"])
def test_fused_members_end_as_the_models_trained_apart_without_augmentation(store, seeds):
    alone = apart(store, seeds, NO_AUGMENTATION)
    _, members = fused_run(store, seeds, NO_AUGMENTATION)
    x = heldout(store)
    for model, member in zip(alone, members, strict=True):
        assert_same(model, member, atol=1e-5)                           # weights and BatchNorm statistics
        np.testing.assert_allclose(member.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)
    # and the members did train, each its own way: no member equals another, none equals its start
    assert not np.allclose(weights(members[0])[-2], weights(members[1])[-2])
    keras.utils.set_random_seed(seeds[0])
    start = build_model(NO_AUGMENTATION, seed=seeds[0])
    assert not np.allclose(weights(start)[-2], weights(members[0])[-2])


def test_with_augmentation_each_member_draws_its_own_stream_as_it_would_alone(store):
    seeds = (11, 22)
    alone = apart(store, seeds, AUGMENTED)
    for model in alone:                          # the models alone started their streams where fused ones do
        assert model.get_layer("augmentation").layers
    _, members = fused_run(store, seeds, AUGMENTED)
    for model, member in zip(alone, members, strict=True):
        assert_same(model, member, atol=1e-4)
    # the augmentation acts: without it, member 0 would have ended elsewhere
    plain = apart(store, seeds[:1], dataclasses.replace(AUGMENTED, flip="none", rotation_degrees=0.0,
                                                        zoom_fraction=0.0, brightness_fraction=0.0))[0]
    assert not np.allclose(weights(plain)[-2], weights(members[0])[-2])


def test_batchnorm_statistics_are_each_members_own(store):
    _, members = fused_run(store, (11, 22), NO_AUGMENTATION)
    means = [[np.asarray(v.value) for v in m.non_trainable_variables if v.path.endswith("moving_mean")]
             for m in members]
    assert len(means[0]) == len(means[1]) > 10
    assert not all(np.allclose(a, b) for a, b in zip(means[0], means[1], strict=True))


def test_a_members_checkpoint_resumes_as_the_model_trained_alone(store, tmp_path):
    seeds = (11, 22)
    fused, members = fused_run(store, seeds, NO_AUGMENTATION, steps=2)
    member_checkpoint(fused, members[1])
    members[1].save(tmp_path / "epoch-0001.keras")
    resumed = keras.saving.load_model(tmp_path / "epoch-0001.keras")     # as training.fit's resume loads it
    alone = apart(store, seeds[1:], NO_AUGMENTATION, steps=2)[0]
    assert int(resumed.optimizer.iterations.value) == int(alone.optimizer.iterations.value) == 2
    for name in ("_momentums", "_velocities", "_velocity_hats"):
        for a, b in zip(getattr(resumed.optimizer, name), getattr(alone.optimizer, name), strict=True):
            np.testing.assert_allclose(np.asarray(a.value), np.asarray(b.value), atol=1e-6)
    batch = sampler(store, 22, NO_AUGMENTATION).batch(0, 2)
    resumed.train_on_batch(*batch)
    alone.train_on_batch(*batch)
    assert_same(resumed, alone, atol=1e-5)


def test_a_group_is_refused_without_a_seed_each_or_with_mismatched_samplers(store):
    with pytest.raises(ValueError, match="its own seed"):
        build_fused(NO_AUGMENTATION, [5, 5])
    with pytest.raises(ValueError, match="at least one"):
        build_fused(NO_AUGMENTATION, [])
    other = dataclasses.replace(NO_AUGMENTATION, samples_per_epoch=40)
    with pytest.raises(ValueError, match="different steps per epoch"):
        FusedBatches([sampler(store, 11, NO_AUGMENTATION), sampler(store, 22, other)])
