"""MobileNetV2 builder, training settings and on-device augmentation."""

import json

import numpy as np
import pytest

from training.network import TrainingConfig

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

from training.augment import build_augmentation, grey_to_mobilenet_input  # noqa: E402
from training.network import build_model  # noqa: E402


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.fixture(scope="module")
def images():
    """SYNTHETIC: 8 copies of one asymmetric 32 x 32 slice (a bright corner), values 0..255."""
    img = np.full((32, 32, 1), 40.0, np.float32)
    img[2:12, 2:20] = 230.0
    return np.repeat(img[None], 8, axis=0)


def test_default_network_is_224_mobilenetv2_with_2260546_parameters():
    config = TrainingConfig()
    model = build_model(config)
    assert model.input_shape == (None, 224, 224, 1)
    assert model.output_shape == (None, 2)
    assert model.count_params() == 2_260_546
    assert isinstance(model.optimizer, keras.optimizers.Adam) and model.optimizer.amsgrad
    assert float(to_numpy(model.optimizer.learning_rate)) == pytest.approx(1e-4)


def test_paper_defaults_and_json_round_trip():
    config = TrainingConfig()
    assert (config.epochs, config.samples_per_epoch, config.batch_size) == (50, 35_000, 32)
    assert config.learning_rate == 1e-4 and (config.input_size, config.width) == (224, 1.0)
    assert config.steps_per_epoch == 1094
    data = json.loads(json.dumps(config.to_dict()))
    assert TrainingConfig.from_dict(data) == config
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['epoch'\]"):
        TrainingConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="input_size=16 must be >= 32"):
        TrainingConfig(input_size=16)
    with pytest.raises(ValueError, match="flip='diagonal'"):
        TrainingConfig(flip="diagonal")


def test_augmentation_keeps_shape_and_range_and_varies_per_sample(images):
    augment = build_augmentation(TrainingConfig(input_size=32), seed=7)
    out = to_numpy(augment(images, training=True))
    assert out.shape == images.shape
    assert out.min() >= 0.0 and out.max() <= 255.0
    assert not np.allclose(out, images)
    per_sample = out.reshape(8, -1)
    assert len({tuple(np.round(row, 3)) for row in per_sample}) == 8  # each sample its own transform


def test_augmentation_is_deterministic_for_a_seed(images):
    config = TrainingConfig(input_size=32)
    a = to_numpy(build_augmentation(config, seed=3)(images, training=True))
    b = to_numpy(build_augmentation(config, seed=3)(images, training=True))
    c = to_numpy(build_augmentation(config, seed=4)(images, training=True))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_inference_path_does_not_augment(images):
    augment = build_augmentation(TrainingConfig(input_size=32), seed=1)
    np.testing.assert_array_equal(to_numpy(augment(images, training=False)), images)
    model = build_model(TrainingConfig(input_size=32, width=0.35, run_eagerly=True))
    first = model.predict_on_batch(images)
    np.testing.assert_array_equal(first, model.predict_on_batch(images))
    # identical inputs give identical outputs: nothing random on the inference path
    np.testing.assert_allclose(first, first[:1].repeat(8, axis=0), rtol=1e-5)


def test_grey_becomes_three_equal_channels_in_minus_one_to_one():
    grey = np.array([0.0, 127.5, 255.0], np.float32).reshape(1, 1, 3, 1)
    rgb = to_numpy(grey_to_mobilenet_input(keras.ops.convert_to_tensor(grey)))
    assert rgb.shape == (1, 1, 3, 3)
    np.testing.assert_allclose(rgb[0, 0, :, 0], [-1.0, 0.0, 1.0], atol=1e-6)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_no_keras_import_at_module_level_of_training_modules():
    import subprocess
    import sys
    from pathlib import Path
    code = ("import sys; import training.folds, imaging.arraystore, training.network, training.augment, "
            "training.sampling, training.fit; print('keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"
