"""Heat-map speed (issue 18, item 4): one patient's maps by a whole ensemble, against the textbook way.

Target: the maps of one patient (~60 tumour slices) by every model of the ensemble in < 1 minute on 2 CPU
cores. A cross-validated patient is mapped by one model per repeat (24 with the paper's 24 repeats); a new
patient by every model (144): both are measured with ``--models``.

The models are the real network (MobileNetV2, 224 px, width 1.0, ``training.network.build_model``) with
SYNTHETIC weights: Grad-CAM's cost does not depend on what the weights learned. One model is saved and its
file read once per ensemble member, as the job reads each member's own file (the same file here, so it stays in
the page cache: a real job reading 24 distinct files from disk can be slower); the crops are SYNTHETIC noise. The
job's cropping of the series (reading the volumes) is not included.

Two ways, same run, same crops:

- **ours** (``inference.saliency.WeightLoader``, what the ``heat_maps`` job does): the architecture is built
  once from the first file, each later member only loads its weights; the map is one forward pass to the last
  block and a dot product with the head's sarcoma direction (equal to Grad-CAM, tested).
- **baseline** (keras-io's Grad-CAM example, the textbook way): each member loaded whole with
  ``keras.saving.load_model``, then TensorFlow's GradientTape from the softmax back to the last block.
  ``--baseline-models`` of them (default 3), the per-model time extrapolated to the ensemble and said so.

    .venv/bin/python benchmarks/saliency_speed.py --models 24 --slices 60
    .venv/bin/python benchmarks/saliency_speed.py --models 24 --slices 60 --quick   # 64 px, width 0.35: seconds

Prints seconds, per-model seconds and the ratio; ``--json`` for a machine-readable line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=24, help="ensemble members (24: a cross-validated patient)")
    parser.add_argument("--slices", type=int, default=60, help="tumour slices of the patient")
    parser.add_argument("--baseline-models", type=int, default=3, help="members timed the textbook way")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="64 px, width 0.35 (a check that it runs)")
    parser.add_argument("--json", action="store_true")
    return parser


def _saved_model(folder: Path, size: int, width: float) -> Path:
    import keras

    from training.network import TrainingConfig, build_model

    keras.utils.set_random_seed(0)
    model = build_model(TrainingConfig(input_size=size, width=width), seed=0)
    path = folder / "member.keras"
    model.save(path)
    return path


def ours(path: Path, crops: np.ndarray, n_models: int) -> float:
    from inference.saliency import WeightLoader, ensemble_map, reference_level, to_uint8, upsample

    began = time.perf_counter()
    loader = WeightLoader()
    total = None
    for _ in range(n_models):
        maps = loader.maps(path, crops, signed=True).astype(np.float64)
        total = maps if total is None else total + maps
    mean = ensemble_map((total / n_models)[None])
    to_uint8(upsample(mean, crops.shape[1]), reference_level(mean))
    return time.perf_counter() - began


def baseline(path: Path, crops: np.ndarray, n_models: int) -> float:
    import keras
    import tensorflow as tf  # noqa: TID251 (the baseline is the textbook TensorFlow Grad-CAM, keras-io's)

    began = time.perf_counter()
    for _ in range(n_models):
        model = keras.saving.load_model(path, compile=False)
        both = keras.Model(model.inputs[0], [model.get_layer("pool").input, model.output])
        for start in range(0, crops.shape[0], 64):
            batch = tf.constant(crops[start:start + 64, ..., None].astype("float32"))
            with tf.GradientTape() as tape:
                activations, probs = both(batch, training=False)
                log_odds = tf.math.log(probs[:, 1]) - tf.math.log(probs[:, 0])
            grads = tape.gradient(log_odds, activations)
            tf.nn.relu(tf.einsum("nhwk,nk->nhw", activations, tf.reduce_mean(grads, axis=(1, 2)))).numpy()
    return time.perf_counter() - began


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    size, width = (64, 0.35) if args.quick else (args.size, args.width)
    crops = np.random.default_rng(0).integers(0, 256, (args.slices, size, size)).astype(np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        path = _saved_model(Path(folder), size, width)
        ours(path, crops[:2], 1)                          # warm-up, both ways: TensorFlow's first graph traces
        baseline(path, crops[:2], 1)
        ours_s = ours(path, crops, args.models)
        base_n = max(1, min(args.baseline_models, args.models))
        base_s = baseline(path, crops, base_n)
    base_per_model = base_s / base_n
    figures = {
        "models": args.models, "slices": args.slices, "size": size, "width": width, "cpus": os.cpu_count(),
        "ours_s": round(ours_s, 2), "ours_per_model_s": round(ours_s / args.models, 3),
        "baseline_models_timed": base_n, "baseline_per_model_s": round(base_per_model, 3),
        "baseline_extrapolated_s": round(base_per_model * args.models, 1),
        "speed_up": round(base_per_model * args.models / ours_s, 2),
        "target_met": ours_s < 60.0,
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"one patient, {args.slices} slices of {size} px, {args.models} models (width {width}), "
              f"{os.cpu_count()} CPUs:")
        print(f"  ours:     {ours_s:.1f} s ({ours_s / args.models:.2f} s per model) — target < 60 s: "
              f"{'met' if ours_s < 60 else 'MISSED'}")
        print(f"  baseline: {base_per_model:.2f} s per model ({base_n} timed), {base_per_model * args.models:.0f} s "
              f"for {args.models} extrapolated; ours is {figures['speed_up']:.1f}× faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
