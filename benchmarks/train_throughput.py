"""Training throughput: the real path (sampler + augmentation + step) against a bare model.fit.

Measures, in one process and on one device, samples per second of
  1. real:      ClassBalancedSampler -> PyDataset -> model.fit of the full model (augmentation inside),
  2. in_memory: the same model fed random in-memory arrays (no sampler: the data pipeline's cost),
  3. bare:      the same network without augmentation layers on in-memory arrays,
and prints real / bare as the overhead ratio. Compilation (tracing) is excluded by warm-up steps.
Data: a SYNTHETIC random array store in a temporary folder.

    .venv/bin/python benchmarks/train_throughput.py                    # CPU defaults: 96 px, width 0.35
    .venv/bin/python benchmarks/train_throughput.py --full --steps 50  # the paper's 224 px, width 1.0
    KERAS_BACKEND=jax .venv/bin/python benchmarks/train_throughput.py --full --steps 200   # on a GPU
    .venv/bin/python benchmarks/train_throughput.py --fuse 2,3,6   # one model alone against N fused
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core.constants import N_FOLDS, N_REPEATS  # noqa: E402
from imaging.arraystore import open_array_store, write_array_store  # noqa: E402
from training.network import TrainingConfig  # noqa: E402

PAPER_SAMPLES_PER_MODEL = 50 * 35_000


def synthetic_store(folder: Path, size: int, n_slices: int, seed: int = 0):
    """SYNTHETIC: n_slices random uint8 slices over 20 cases (10 per class)."""
    rng = np.random.default_rng(seed)
    case_ids = np.sort(rng.integers(0, 20, n_slices))
    case_ids[:20] = np.arange(20)  # every case has slices
    case_ids.sort()
    slices = rng.integers(0, 256, (n_slices, size, size), dtype=np.uint8)
    write_array_store(folder / "store", slices, case_ids, rng.integers(0, 15, n_slices),
                      np.zeros(n_slices, int), case_ids % 2,
                      {"cohort": "synthetic-throughput", "synthetic": True}, overwrite=True)
    return open_array_store(folder / "store")


def timed_fit(model, fit_args: dict, n_samples: int) -> float:
    """Samples per second of one model.fit epoch."""
    began = time.perf_counter()
    model.fit(**fit_args, epochs=1, verbose=0)
    return n_samples / (time.perf_counter() - began)


def measure(args) -> dict:
    import keras

    from training.network import build_model
    from training.sampling import ClassBalancedSampler, as_keras_dataset

    config = TrainingConfig(input_size=args.input_size, width=args.width, batch_size=args.batch_size,
                            samples_per_epoch=args.steps * args.batch_size, loader_workers=args.workers,
                            run_eagerly=args.eager)
    bare_config = TrainingConfig.from_dict({**config.to_dict(), "flip": "none", "rotation_degrees": 0.0,
                                            "zoom_fraction": 0.0, "brightness_fraction": 0.0})
    n = args.steps * args.batch_size
    warm = args.warmup_steps * args.batch_size
    keras.utils.set_random_seed(0)
    report = {"backend": keras.backend.backend(), "keras": keras.__version__,
              "devices": [str(d) for d in keras.distribution.list_devices()],
              "input_size": config.input_size, "width": config.width, "batch_size": config.batch_size,
              "steps": args.steps, "loader_workers": args.workers, "eager": args.eager}

    with tempfile.TemporaryDirectory() as tmp:
        store = synthetic_store(Path(tmp), config.input_size, max(512, 2 * config.batch_size))
        train_ids = store.case_list()
        model = build_model(config, seed=0)
        report["n_params"] = int(model.count_params())
        sampler = ClassBalancedSampler(store, train_ids, batch_size=config.batch_size, samples_per_epoch=n,
                                       seed=0)
        warm_sampler = ClassBalancedSampler(store, train_ids, batch_size=config.batch_size,
                                            samples_per_epoch=warm, seed=1)
        began = time.perf_counter()
        model.fit(as_keras_dataset(warm_sampler, workers=args.workers), epochs=1, verbose=0)
        report["real_warmup_seconds"] = round(time.perf_counter() - began, 1)
        report["real_samples_per_s"] = timed_fit(
            model, {"x": as_keras_dataset(sampler, workers=args.workers)}, n)
        if args.real_only:
            report["real_samples_per_s"] = round(report["real_samples_per_s"], 1)
            return report

        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (n, config.input_size, config.input_size, 1), dtype=np.uint8)
        y = rng.integers(0, 2, n).astype(np.int32)
        model.fit(x[:warm], y[:warm], batch_size=config.batch_size, epochs=1, verbose=0)
        report["in_memory_samples_per_s"] = timed_fit(
            model, {"x": x, "y": y, "batch_size": config.batch_size, "shuffle": False}, n)

        bare = build_model(bare_config, seed=0)
        bare.fit(x[:warm], y[:warm], batch_size=config.batch_size, epochs=1, verbose=0)
        report["bare_samples_per_s"] = timed_fit(
            bare, {"x": x, "y": y, "batch_size": config.batch_size, "shuffle": False}, n)

    for key in ("real_samples_per_s", "in_memory_samples_per_s", "bare_samples_per_s"):
        report[key] = round(report[key], 1)
    report["real_over_bare"] = round(report["real_samples_per_s"] / report["bare_samples_per_s"], 3)
    report["real_over_in_memory"] = round(report["real_samples_per_s"] / report["in_memory_samples_per_s"], 3)
    samples = N_REPEATS * N_FOLDS * PAPER_SAMPLES_PER_MODEL
    report["protocol_144_models_hours_at_real_rate"] = round(samples / report["real_samples_per_s"] / 3600, 1)
    return report


def fused(args) -> dict:
    """One model alone against N fused (training.fused) on the same device, the same batch per model, the real
    path (each member its own sampler and seed, augmentation on) and in memory; compilation excluded by warm-up
    steps. The fused rate counts every member's samples (N x batch per step)."""
    import keras

    from training.fused import FusedBatches, build_fused, fused_dataset
    from training.network import build_model
    from training.sampling import ClassBalancedSampler, as_keras_dataset

    config = TrainingConfig(input_size=args.input_size, width=args.width, batch_size=args.batch_size,
                            samples_per_epoch=args.steps * args.batch_size, loader_workers=args.workers,
                            run_eagerly=args.eager, precision="mixed_bfloat16" if args.bf16 else "float32",
                            xla=args.xla)
    n, warm = args.steps * args.batch_size, args.warmup_steps * args.batch_size
    report = {"backend": keras.backend.backend(), "keras": keras.__version__,
              "devices": [str(d) for d in keras.distribution.list_devices()],
              "precision": config.precision, "xla": config.xla, "input_size": config.input_size,
              "width": config.width, "batch_size_per_model": config.batch_size, "steps": args.steps,
              "loader_workers": args.workers, "eager": args.eager, "groups": []}
    with tempfile.TemporaryDirectory() as tmp:
        store = synthetic_store(Path(tmp), config.input_size, max(512, 2 * config.batch_size))
        ids = store.case_list()

        def samplers(count: int, samples: int, first_seed: int) -> list:
            return [ClassBalancedSampler(store, ids, batch_size=config.batch_size, samples_per_epoch=samples,
                                         seed=first_seed + k) for k in range(count)]

        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (n, config.input_size, config.input_size, 1), dtype=np.uint8)
        y = rng.integers(0, 2, n).astype(np.int32)
        keras.utils.set_random_seed(0)
        one = build_model(config, seed=0)
        one.fit(as_keras_dataset(samplers(1, warm, 100)[0], workers=args.workers), epochs=1, verbose=0)
        report["one_model_samples_per_s"] = round(timed_fit(
            one, {"x": as_keras_dataset(samplers(1, n, 0)[0], workers=args.workers)}, n), 1)
        for size in args.fuse:
            model, _ = build_fused(config, list(range(1, size + 1)))
            model.fit(fused_dataset(FusedBatches(samplers(size, warm, 100)), workers=args.workers), epochs=1,
                      verbose=0)
            real = timed_fit(model, {"x": fused_dataset(FusedBatches(samplers(size, n, 0)),
                                                        workers=args.workers)}, size * n)
            in_memory = timed_fit(model, {"x": [x] * size, "y": [y] * size, "batch_size": config.batch_size,
                                          "shuffle": False}, size * n)
            samples = N_REPEATS * N_FOLDS * PAPER_SAMPLES_PER_MODEL
            report["groups"].append({
                "fuse": size, "samples_per_s": round(real, 1), "in_memory_samples_per_s": round(in_memory, 1),
                "over_one_model": round(real / report["one_model_samples_per_s"], 2),
                "real_over_in_memory": round(real / in_memory, 3),
                "protocol_144_models_hours": round(samples / real / 3600, 1)})
            del model
            keras.backend.clear_session()
    return report


def concurrent(args) -> dict:
    """N models trained at once (N processes sharing the device) against one at a time.

    Each process runs the real path (`--real-only`); the aggregate rate is the sum of their rates. The
    processes start together but compile separately, so their timed windows overlap only approximately
    (use enough --steps that compilation is small against the timed part).
    """
    base = [sys.executable, __file__, "--real-only", "--json-only", "--input-size", str(args.input_size),
            "--width", str(args.width), "--batch-size", str(args.batch_size), "--steps", str(args.steps),
            "--warmup-steps", str(args.warmup_steps), "--workers", str(args.workers)] + (["--eager"] * args.eager)
    one = json.loads(subprocess.run(base, capture_output=True, text=True, check=True).stdout)
    procs = [subprocess.Popen(base, stdout=subprocess.PIPE, text=True) for _ in range(args.concurrent)]
    rates = [json.loads(p.communicate()[0])["real_samples_per_s"] for p in procs]
    return {"backend": one["backend"], "devices": one["devices"], "one_model_samples_per_s": one["real_samples_per_s"],
            "concurrent_models": args.concurrent, "per_model_samples_per_s": rates,
            "aggregate_samples_per_s": round(sum(rates), 1),
            "aggregate_over_one": round(sum(rates) / one["real_samples_per_s"], 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input-size", type=int, default=96)
    parser.add_argument("--width", type=float, default=0.35)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--warmup-steps", type=int, default=2, help="untimed steps (compilation) first")
    parser.add_argument("--workers", type=int, default=2, help="PyDataset loader threads")
    parser.add_argument("--full", action="store_true", help="the paper's size: --input-size 224 --width 1.0")
    parser.add_argument("--eager", action="store_true", help="run_eagerly=True (no compilation)")
    parser.add_argument("--concurrent", type=int, default=0,
                        help="also train N models at once (N processes on one device) and compare with one")
    parser.add_argument("--fuse", type=lambda v: [int(x) for x in v.split(",")], default=None, metavar="N[,N…]",
                        help="compare one model alone with N models fused in one step (training.fused)")
    parser.add_argument("--bf16", action="store_true",
                        help="mixed precision (bfloat16) for --fuse: the training config's precision='mixed_bfloat16'")
    parser.add_argument("--xla", choices=("auto", "on", "off"), default="auto",
                        help="the training config's xla for --fuse (auto: XLA on JAX)")
    parser.add_argument("--real-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.full:
        args.input_size, args.width = 224, 1.0
    if args.fuse:
        result = fused(args)
        print(json.dumps(result, indent=1))
        for group in result["groups"]:
            print(f"fuse {group['fuse']}: {group['samples_per_s']} samples/s in all against "
                  f"{result['one_model_samples_per_s']} for one model alone (x{group['over_one_model']}); real / "
                  f"in-memory {group['real_over_in_memory']}; 144 models x 1,750,000 samples: "
                  f"{group['protocol_144_models_hours']} h")
        return 0
    if args.concurrent:
        result = concurrent(args)
        print(json.dumps(result, indent=1))
        print(f"{result['concurrent_models']} models at once: {result['aggregate_samples_per_s']} samples/s in all "
              f"against {result['one_model_samples_per_s']} for one model alone "
              f"(x{result['aggregate_over_one']})")
        return 0
    report = measure(args)
    if args.json_only:
        print(json.dumps(report))
        return 0
    print(json.dumps(report, indent=1))
    print(f"backend {report['backend']} on {', '.join(report['devices'])}: "
          f"real {report['real_samples_per_s']} samples/s, in-memory {report['in_memory_samples_per_s']}, "
          f"bare {report['bare_samples_per_s']}; real / bare = {report['real_over_bare']}")
    print(f"144 models x 1,750,000 samples at the real rate "
          f"({report['input_size']} px, width {report['width']}): "
          f"{report['protocol_144_models_hours_at_real_rate']} h (training steps only, no held-out scoring)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
