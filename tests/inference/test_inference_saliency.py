"""Grad-CAM maps, their store and their colours (issue 18; inference.saliency, saliency_store, saliency_figure)."""

import numpy as np
import pytest

from inference import saliency, saliency_figure, saliency_store


@pytest.fixture(scope="module")
def tiny_model():
    pytest.importorskip("keras")
    import keras

    from training.network import TrainingConfig, build_model

    keras.utils.set_random_seed(3)
    config = TrainingConfig(input_size=64, width=0.35, batchnorm_momentum=0.0, rotation_degrees=0.0,
                            zoom_fraction=0.0, brightness_fraction=0.0, flip="none", run_eagerly=True)
    model = build_model(config, seed=3)
    crops = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 1)).astype(np.float32)
    model.fit(crops, np.arange(8) % 2, epochs=1, batch_size=8, verbose=0)   # batch statistics into the BN layers
    return model


def _gradient_grad_cam(model, crops):
    """Grad-CAM the textbook way (keras-io's example): TensorFlow's GradientTape from the model's own softmax
    output back to the last block's activations, of the sarcoma log-odds log p1 − log p0."""
    tf = pytest.importorskip("tensorflow")
    import keras

    both = keras.Model(model.inputs[0], [model.get_layer("pool").input, model.output])
    with tf.GradientTape() as tape:
        activations, probs = both(tf.constant(crops[..., None].astype("float32")), training=False)
        log_odds = tf.math.log(probs[:, 1]) - tf.math.log(probs[:, 0])
    grads = tape.gradient(log_odds, activations)
    weights = tf.reduce_mean(grads, axis=(1, 2))
    return tf.nn.relu(tf.einsum("nhwk,nk->nhw", activations, weights)).numpy()


def test_our_grad_cam_equals_the_gradient_one_on_the_model(tiny_model):
    crops = np.random.default_rng(1).integers(0, 256, (5, 64, 64)).astype(np.uint8)
    ours = saliency.grad_cam(tiny_model, crops, batch_size=2)
    theirs = _gradient_grad_cam(tiny_model, crops)
    assert ours.shape == (5, 2, 2) and ours.dtype == np.float32
    assert np.any(ours > 0)
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-6 * float(theirs.max()))


def test_the_signed_map_adds_up_to_the_models_sarcoma_log_odds(tiny_model):
    crops = np.random.default_rng(2).integers(0, 256, (4, 64, 64)).astype(np.uint8)
    features = np.asarray(saliency.feature_model(tiny_model)(crops[..., None].astype("float32"), training=False))
    direction, bias = saliency.sarcoma_direction(tiny_model)
    signed = saliency.cam(features, direction)
    p = np.asarray(tiny_model(crops[..., None].astype("float32"), training=False), dtype=np.float64)
    np.testing.assert_allclose(signed.sum(axis=(1, 2)) + bias, np.log(p[:, 1] / p[:, 0]), rtol=1e-3, atol=1e-4)


def test_grad_cam_refuses_crops_of_another_size(tiny_model):
    with pytest.raises(ValueError, match="32×32 px but the model takes 64×64"):
        saliency.grad_cam(tiny_model, np.zeros((1, 32, 32), np.uint8))
    assert saliency.grad_cam(tiny_model, np.zeros((0, 64, 64), np.uint8)).shape == (0, 2, 2)


def test_a_weight_loader_reusing_one_network_gives_each_models_own_maps(tiny_model, tmp_path):
    import keras

    crops = np.random.default_rng(4).integers(0, 256, (3, 64, 64)).astype(np.uint8)
    paths = []
    for seed in (0, 1, 2):
        copy = saliency.randomized_copy(tiny_model, seed=seed)
        paths.append(tmp_path / f"m{seed}.keras")
        copy.save(paths[-1])
    loader = saliency.WeightLoader()
    for path in paths:
        fresh = saliency.grad_cam(keras.saving.load_model(path, compile=False), crops, signed=True)
        np.testing.assert_allclose(loader.maps(path, crops, signed=True), fresh, rtol=1e-5, atol=1e-7)
    assert loader.reads == 3


def test_randomized_copy_keeps_each_tensors_values_but_not_their_places(tiny_model):
    copy = saliency.randomized_copy(tiny_model, seed=0)
    for mine, theirs in zip(tiny_model.get_weights(), copy.get_weights(), strict=True):
        np.testing.assert_array_equal(np.sort(mine.ravel()), np.sort(theirs.ravel()))
    assert any(not np.array_equal(m, t) for m, t in zip(tiny_model.get_weights(), copy.get_weights(), strict=True))


def test_ensemble_upsample_and_uint8():
    maps = np.array([[[[0.0, 2.0], [0.0, 0.0]]], [[[0.0, 4.0], [2.0, 0.0]]]])     # 2 models, 1 slice, 2×2
    mean = saliency.ensemble_map(maps)
    np.testing.assert_allclose(mean, [[[0.0, 3.0], [1.0, 0.0]]])
    big = saliency.upsample(mean, 8)
    assert big.shape == (1, 8, 8) and big.min() >= 0
    assert np.unravel_index(np.argmax(big[0]), (8, 8))[0] < 4 <= np.unravel_index(np.argmax(big[0]), (8, 8))[1]
    u8, scale = saliency.to_uint8(big)
    assert u8.dtype == np.uint8 and u8.max() == 255 and scale == pytest.approx(big.max())
    assert saliency.to_uint8(np.zeros((2, 4, 4))) == (pytest.approx(np.zeros((2, 4, 4))), 0.0)
    with pytest.raises(ValueError, match="at least one model"):
        saliency.ensemble_map(np.zeros((0, 1, 2, 2)))
    # signed maps: one model's evidence for sarcoma outweighed by another's against shows nothing
    np.testing.assert_allclose(saliency.ensemble_map(np.array([[[[-4.0, 2.0]]], [[[2.0, 0.0]]]])), [[[0.0, 1.0]]])


def test_one_reference_level_for_an_evaluation_keeps_weak_cases_faint():
    strong, weak = np.array([[0.0, 1.0], [2.0, 4.0]]), np.array([[0.0, 0.2], [0.0, 0.0]])
    level = saliency.reference_level(np.stack([strong, weak]), percentile=100)
    assert level == 4.0 and saliency.reference_level(np.zeros((2, 2, 2))) is None
    u8, scale = saliency.to_uint8(weak, level)
    assert scale == 4.0 and u8.max() == round(0.2 / 4 * 255)          # faint, not stretched to full colour
    assert saliency.to_uint8(np.array([[8.0]]), level)[0].item() == 255  # above the level: clipped
    assert saliency.to_uint8(weak, None)[0].max() == 255                 # without one: the map's own maximum


def test_pointing_game_takes_the_strongest_cells_centre_with_the_games_tolerance():
    grid = np.zeros((3, 3))
    grid[1, 0] = 1.0                      # cell centre at x 16, y 48 on a 96 px crop
    assert saliency.peak(grid, 96) == (16.0, 48.0)
    assert saliency.pointing_hit(grid, (10, 40, 30, 60), 96)
    assert saliency.pointing_hit(grid, (20, 40, 60, 60), 96)          # 4 px away: within 15 × 96/224 = 6.4 px
    assert not saliency.pointing_hit(grid, (30, 40, 60, 60), 96)      # 14 px away
    assert saliency.pointing_hit(grid, (30, 40, 60, 60), 96, tolerance=15)
    assert not saliency.pointing_hit(np.zeros((3, 3)), (0, 0, 96, 96), 96)    # a blank map points nowhere


def test_rank_correlation():
    a = np.arange(16.0).reshape(4, 4)
    assert saliency.rank_correlation(a, a ** 2) == pytest.approx(1.0)
    assert saliency.rank_correlation(a, -a) == pytest.approx(-1.0)
    assert saliency.rank_correlation(a, np.ones((4, 4))) == 0.0
    with pytest.raises(ValueError, match="different sizes"):
        saliency.rank_correlation(a, np.ones(3))


def _case_maps(n=3, size=8):
    maps = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        maps[i, i, i] = 50 * (i + 1)
    return saliency_store.CaseMaps(
        maps=maps, crops=np.full_like(maps, 7), series_id=np.array([5, 4, 5]), slice_no=np.array([9, 2, 3]),
        sequence_idx=np.array([0, 1, 0]), window=np.array([[0, 0, 16], [-2, 3, 12], [1, 1, 8]]), scale=0.25,
        models=("r0f1", "r1f1"), kind=saliency_store.HELD_OUT, crops_sha256="abc")


def test_store_round_trip_and_lookups(tmp_path):
    path = saliency_store.case_maps_path(tmp_path, 42)
    assert saliency_store.read_case_maps(path) is None and saliency_store.series_codes(path) == {}
    assert saliency_store.stored_crops_sha256(path) is None and saliency_store.read_series_maps(path, 5) is None
    written = _case_maps()
    saliency_store.write_case_maps(path, written)
    back = saliency_store.read_case_maps(path)
    for name in ("maps", "crops", "series_id", "slice_no", "sequence_idx", "window"):
        np.testing.assert_array_equal(getattr(back, name), getattr(written, name))
    assert (back.scale, back.models, back.kind, back.crops_sha256) == (0.25, ("r0f1", "r1f1"), "held-out", "abc")
    one = saliency_store.read_series_maps(path, 5)           # slice order 3, 9: rows 2, 0
    assert one.slice_no.tolist() == [3, 9] and one.window.tolist() == [[1, 1, 8], [0, 0, 16]]
    np.testing.assert_array_equal(one.maps, written.maps[[2, 0]])
    assert saliency_store.read_series_maps(path, 6) is None
    assert back.strongest() == 2 and back.maps.shape[1] == 8
    assert saliency_store.series_codes(path) == {4: {1}, 5: {0}}
    assert saliency_store.stored_crops_sha256(path) == "abc"
    assert saliency_store.stored_cases(tmp_path) == {42}
    path.write_bytes(b"not an npz")
    assert saliency_store.read_case_maps(path) is None and saliency_store.series_codes(path) == {}
    assert saliency_store.stored_crops_sha256(path) is None


def test_store_refuses_inconsistent_maps():
    good = _case_maps()
    with pytest.raises(ValueError, match="window has shape"):
        saliency_store.CaseMaps(**{**good.__dict__, "window": np.zeros((3, 2), np.int64)})
    with pytest.raises(ValueError, match="uint8"):
        saliency_store.CaseMaps(**{**good.__dict__, "maps": good.maps.astype(np.float32)})


def test_overlay_leaves_the_image_where_the_map_is_zero_and_colours_it_where_strong():
    crop = np.full((4, 4), 100, np.uint8)
    heat = np.zeros((4, 4), np.uint8)
    heat[0, 0] = 255
    out = saliency_figure.overlay(crop, heat, opacity=1.0)
    assert out.shape == (4, 4, 3)
    np.testing.assert_array_equal(out[1:, 1:], 100)
    np.testing.assert_array_equal(out[0, 0], saliency_figure.lut()[255])
    assert saliency_figure.lut().shape == (256, 3)
    stops = saliency_figure.legend_stops()
    assert len(stops) == 5 and stops[0]["value"] == 0.0 and stops[-1]["rgb"].startswith("#")
    assert saliency_figure.png(out)[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="same 2-D size"):
        saliency_figure.overlay(crop, heat[:2])
