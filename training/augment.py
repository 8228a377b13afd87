"""On-the-fly augmentation and MobileNetV2 input scaling, as Keras layers (METHOD §5). No Django.

The paper augmented each class to 437,500 stored slices with flips, rotations, zooms and brightness
changes. We draw class-balanced slices and augment each sample freshly inside the model instead:
the same distribution, nothing written to disk, and the work runs on the accelerator.

Value range: the model input is the grey slice as float in 0..255 (the array store's uint8 values).
All augmentation happens in 0..255; `grey_to_mobilenet_input` then maps it to [-1, 1] (what
MobileNetV2 expects: x / 127.5 - 1) and repeats the grey channel into 3.

The random layers act only when the model is called with training=True (model.fit). model.predict,
model(x) and evaluation leave the slices untouched, so the inference path never augments.
"""

from __future__ import annotations

import numpy as np

ORDER = ("flip", "rotation", "zoom", "brightness")


def augmentation_seeds(seed: int) -> dict[str, int]:
    """One int32 seed per random layer, derived from the model's seed (each layer its own stream)."""
    state = np.random.SeedSequence([int(seed), 0xA06]).generate_state(len(ORDER))
    return {name: int(s % (2**31 - 1)) for name, s in zip(ORDER, state, strict=True)}


def build_augmentation(config, *, seed: int):
    """keras.Sequential of the random layers for `config` (a training.network.TrainingConfig).

    Input and output: (batch, S, S, 1) float, values 0..255. Each sample gets its own flip, rotation
    angle, zoom and brightness offset. A setting of 0 / "none" leaves that layer out.
    """
    import keras
    from keras import layers

    seeds = augmentation_seeds(seed)
    steps = []
    if config.flip != "none":
        steps.append(layers.RandomFlip(config.flip, seed=seeds["flip"], name="flip"))
    if config.rotation_degrees > 0:
        steps.append(layers.RandomRotation(config.rotation_degrees / 360.0, fill_mode=config.fill_mode,
                                           seed=seeds["rotation"], name="rotation"))
    if config.zoom_fraction > 0:
        steps.append(layers.RandomZoom(config.zoom_fraction, fill_mode=config.fill_mode,
                                       seed=seeds["zoom"], name="zoom"))
    if config.brightness_fraction > 0:
        steps.append(layers.RandomBrightness(config.brightness_fraction, value_range=(0.0, 255.0),
                                             seed=seeds["brightness"], name="brightness"))
    return keras.Sequential(steps, name="augmentation")


def grey_to_mobilenet_input(x):
    """(batch, S, S, 1) grey 0..255 -> (batch, S, S, 3) in [-1, 1], MobileNetV2's expected input.

    Built from stock layers (Rescaling, Concatenate) so a saved .keras model loads without custom objects.
    """
    from keras import layers

    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_to_pm1")(x)
    return layers.Concatenate(axis=-1, name="grey_to_rgb")([x, x, x])


def reset_augmentation_streams(model, epoch: int) -> None:
    """Set every random layer's stream to a position that depends only on (its seed, epoch).

    Keras does not save the random layers' seed state in a .keras file, so without this a run resumed
    from a checkpoint would replay epoch 1's augmentations. Called at the start of each epoch, it
    makes a resumed run draw exactly the augmentations of an uninterrupted one. A stream advances
    one position per batch, so 2**20 positions per epoch never overlap for <= ~1M batches per epoch.
    """
    import keras

    for variable in model.non_trainable_variables:
        if "seed_generator" not in variable.path:
            continue
        state = keras.ops.convert_to_numpy(variable.value).copy()
        state[-1] = (int(epoch) * 2**20) % 2**31
        variable.assign(state)
