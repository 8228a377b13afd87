"""The MobileNetV2 classifier and its training settings (METHOD §5). No Django.

One builder, `build_model(config)`, makes the whole network from a `TrainingConfig`: grey slice in
(values 0..255), augmentation (active only while training), grey -> 3-channel and scaling to
[-1, 1], `keras.applications.MobileNetV2(weights=None)`, global average pooling and a 2-class
softmax (column 1 = sarcoma, imaging.arraystore.LABEL_SARCOMA). Pure Keras 3 API, so TensorFlow,
JAX and PyTorch backends all run it. Keras is imported inside the functions only.

Parameter count: the paper's 3,538,984 is MobileNetV2 with its 1000-class ImageNet head; with our
2-class head the 224 x 224, width 1.0 network has 2,260,546 parameters (model card says so).
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from core.constants import INPUT_SIZE

N_CLASSES = 2
FLIP_MODES = ("none", "horizontal", "vertical", "horizontal_and_vertical")
FILL_MODES = ("reflect", "wrap", "constant", "nearest")
LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy")
# float32, or bf16 compute with float32 weights (no loss scale: bf16 has float32's range, and a dynamic loss
# scale would tie the members of a fused group together, training.fused). float16 is not offered for that reason.
PRECISIONS = ("float32", "mixed_bfloat16")
XLA_MODES = ("auto", "on", "off")
MAX_FUSE = 24


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of one model's training; defaults are the paper's where it says, ours where it is silent.

    Paper (METHOD §5): epochs 50, samples_per_epoch 35,000 (1,750,000 samples per model), AMSGrad with
    learning_rate 1e-4, MobileNetV2 at 224 x 224, width (alpha) 1.0.
    Paper silent, our choice: batch_size 32 (the Keras default); sparse categorical cross-entropy;
    augmentation magnitudes below (the paper names flips, rotations, zooms and brightness only).

    Augmentation (on the 0..255 grey slice, per sample):
      flip: "horizontal" (left-right, anatomically plausible for pelvic MRI), or "vertical",
            "horizontal_and_vertical", "none";
      rotation_degrees: uniform in +-degrees; zoom_fraction: uniform zoom in/out by up to this fraction;
      brightness_fraction: add a uniform offset of up to this fraction of 255, then clip to 0..255;
      fill_mode: how pixels moved in by rotation/zoom are filled (Keras fill modes).
    seed: the job's base seed, recorded; each model's own seed is given to training.fit.train_one_model.
    batchnorm_momentum: None keeps MobileNetV2's 0.999. Built from scratch (weights=None) the network's
      activations shrink with depth, so until the BatchNorm moving averages have caught up (thousands
      of steps at 0.999) inference-mode outputs are nearly constant and held-out AUC reads 0.5. The
      full protocol has 54,700 steps per model, plenty; tiny smoke runs with a handful of steps use
      0.0 (inference then normalises with the last training batch's statistics).
    eval_max_slices: cap on held-out slices scored after each epoch for progress (a seeded subset;
      None = all). The final held-out metrics always use every held-out slice.
    loader_workers: threads that assemble batches from the array store (keras.utils.PyDataset workers).
    run_eagerly: debug / CPU-test switch; compiling MobileNetV2's train step costs ~20-30 s on 2 CPUs.
    fuse: models trained together in one compiled step (training.fused, issue 16): a training run's models
      of one repeat are trained in groups of this size by one gpu task; 1 trains each model alone. The
      results are the same either way (tested), so it can change between resumes. Default 2: the best
      measured on the CPU (docs/training.md); set it from `benchmarks/train_throughput.py --fuse` on a GPU.
    precision: "float32", or "mixed_bfloat16" (bf16 compute, float32 weights and outputs) where the device
      has fast bf16 (recent GPUs); part of the model's identity (a checkpoint is resumed in its own precision).
    xla: "auto" (XLA on JAX; TensorFlow's graph, with XLA only when augmentation is off), "on" (XLA, refused
      on TensorFlow while rotation or zoom augmentation is on: they have no XLA kernel there), "off".
    """

    epochs: int = 50
    samples_per_epoch: int = 35_000
    batch_size: int = 32
    learning_rate: float = 1e-4
    input_size: int = INPUT_SIZE
    width: float = 1.0
    loss: str = "sparse_categorical_crossentropy"
    flip: str = "horizontal"
    rotation_degrees: float = 15.0
    zoom_fraction: float = 0.1
    brightness_fraction: float = 0.1
    fill_mode: str = "reflect"
    seed: int = 0
    batchnorm_momentum: float | None = None
    eval_max_slices: int | None = None
    loader_workers: int = 1
    run_eagerly: bool = False
    fuse: int = 2
    precision: str = "float32"
    xla: str = "auto"

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
        _require(self.batch_size >= 2, "batch_size", self.batch_size, "must be >= 2 (half of each class)")
        _require(self.samples_per_epoch >= self.batch_size, "samples_per_epoch", self.samples_per_epoch,
                 f"must be >= batch_size ({self.batch_size})")
        _require(self.learning_rate > 0, "learning_rate", self.learning_rate, "must be > 0")
        _require(self.input_size >= 32, "input_size", self.input_size, "must be >= 32 (MobileNetV2 minimum)")
        _require(self.width > 0, "width", self.width, "must be > 0")
        _require(self.loss in LOSSES, "loss", self.loss, f"must be one of {LOSSES}")
        _require(self.flip in FLIP_MODES, "flip", self.flip, f"must be one of {FLIP_MODES}")
        _require(0 <= self.rotation_degrees <= 180, "rotation_degrees", self.rotation_degrees,
                 "must be 0..180")
        _require(0 <= self.zoom_fraction < 1, "zoom_fraction", self.zoom_fraction, "must be in [0, 1)")
        _require(0 <= self.brightness_fraction <= 1, "brightness_fraction", self.brightness_fraction,
                 "must be in [0, 1]")
        _require(self.fill_mode in FILL_MODES, "fill_mode", self.fill_mode, f"must be one of {FILL_MODES}")
        _require(self.batchnorm_momentum is None or 0 <= self.batchnorm_momentum < 1, "batchnorm_momentum",
                 self.batchnorm_momentum, "must be None or in [0, 1)")
        _require(self.eval_max_slices is None or self.eval_max_slices >= 1, "eval_max_slices",
                 self.eval_max_slices, "must be None or >= 1")
        _require(self.loader_workers >= 1, "loader_workers", self.loader_workers, "must be >= 1")
        _require(isinstance(self.fuse, int) and 1 <= self.fuse <= MAX_FUSE, "fuse", self.fuse,
                 f"must be a whole number from 1 (each model alone) to {MAX_FUSE}")
        _require(self.precision in PRECISIONS, "precision", self.precision, f"must be one of {PRECISIONS}")
        _require(self.xla in XLA_MODES, "xla", self.xla, f"must be one of {XLA_MODES}")

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch: ceil(samples_per_epoch / batch_size) (35,000 / 32 -> 1,094 batches)."""
        return -(-self.samples_per_epoch // self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (model card, job record)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        """Inverse of to_dict; unknown keys are an error (a typo must not silently fall back to a default)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"training config: unknown setting(s) {unknown}; known: {sorted(known)}")
        return cls(**data)


def build_model(config: TrainingConfig, *, seed: int | None = None, name: str = "mobilenetv2_sarcoma"):
    """The compiled classifier for `config`: input (S, S, 1) grey 0..255 -> (2,) softmax, column 1 = sarcoma.

    seed: seeds the augmentation layers (defaults to config.seed). Call keras.utils.set_random_seed
    first for reproducible initial weights. name: the model's name (members of a fused group,
    training.fused, need one each). Under mixed precision the head computes in float32, so the
    probabilities and the loss keep float32's resolution.
    """
    import keras

    from training.augment import build_augmentation, grey_to_mobilenet_input

    seed = config.seed if seed is None else seed
    size = config.input_size
    with precision_policy(config.precision):
        inputs = keras.Input(shape=(size, size, 1), name="slice_grey_0_255")
        augmentation = build_augmentation(config, seed=seed)
        x = augmentation(inputs) if augmentation.layers else inputs  # all augmentation switched off: none
        x = grey_to_mobilenet_input(x)
        backbone = keras.applications.MobileNetV2(
            input_shape=(size, size, 3), alpha=config.width, include_top=False, weights=None)
        if config.batchnorm_momentum is not None:
            for layer in backbone.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.momentum = config.batchnorm_momentum
        x = backbone(x)
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        head_dtype = "float32" if config.precision != "float32" else None
        outputs = keras.layers.Dense(N_CLASSES, activation="softmax", name="sarcoma_vs_leiomyoma",
                                     dtype=head_dtype)(x)
        model = keras.Model(inputs, outputs, name=name)
    compile_model(model, config)
    apply_compile_options(model, config)
    return model


@contextmanager
def precision_policy(precision: str):
    """Layers built inside take ``precision`` as their dtype policy; the process's policy is restored after,
    so one worker can train float32 and bf16 runs one after the other."""
    import keras

    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def apply_compile_options(model, config: TrainingConfig | None = None) -> None:
    """run_eagerly and XLA from ``config`` on a built or loaded model (config None: the defaults).

    xla "auto": on the JAX backend, compile the train/predict steps even though the model holds augmentation
    layers. Keras marks RandomRotation and RandomZoom `supports_jit = False` (a TensorFlow/XLA limitation),
    and jit_compile="auto" then switches compilation off for the whole model: on JAX that means op-by-op
    execution, many times slower. On JAX these layers compile fine, so we lift the flag there; TensorFlow
    (tf.function graph, no XLA) and PyTorch are left alone. "on" asks XLA of every backend (a clear error where
    TensorFlow cannot compile the augmentation), "off" of none.
    """
    import keras

    xla = config.xla if config is not None else "auto"
    if config is not None:
        model.run_eagerly = config.run_eagerly
    if model.run_eagerly or xla == "off":
        model.jit_compile = False
        return
    backend = keras.backend.backend()
    if xla == "auto" and backend != "jax":
        return
    blocking = [layer.name for layer in _augmentation_layers(model) if not layer.supports_jit]
    if blocking and backend != "jax":
        raise ValueError(f"training config: xla='on' cannot compile the augmentation layers {blocking} on the "
                         f"{backend} backend (its image transforms have no XLA kernel): use xla='auto', or the "
                         f"JAX backend (KERAS_BACKEND=jax), where they compile")
    for layer in _augmentation_layers(model):
        layer.supports_jit = True
    model.jit_compile = True


def _augmentation_layers(model) -> list:
    try:
        return list(model.get_layer("augmentation").layers)
    except ValueError:  # augmentation switched off: nothing blocks compilation
        return []


def compile_model(model, config: TrainingConfig) -> None:
    """AMSGrad (Adam with amsgrad=True) at config.learning_rate, cross-entropy, accuracy (METHOD §5)."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate, amsgrad=True),
        loss=config.loss,
        metrics=["accuracy"],
        run_eagerly=config.run_eagerly,
    )


def _require(ok: bool, name: str, value: Any, reason: str) -> None:
    if not ok:
        raise ValueError(f"training config: {name}={value!r} {reason}")
