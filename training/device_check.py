"""The GPU worker check (`manage.py job check --gpu`, kind "worker_check_gpu", queue "gpu"; issue 16, item 6).

The worker check of the jobs app (database, media, Keras backend and devices, matmul throughput), then the
training rate of our own network on the worker's device: training samples a second of one small MobileNetV2
alone and of two fused in one step (training.fused), so a wrong device, a missing CUDA library or a backend
that cannot compile the fused step shows before a 144-model run is queued. A worker whose Keras sees no GPU
ends as a *warning* that says so: it would train on its CPU. Finished steps are kept for a resume.
"""

import time

import numpy as np

from jobs import worker_check
from jobs.services import JobContext

# The training-rate probe: small enough to compile in seconds on a CPU, the real network and training step.
RATE_CONFIG = {"input_size": 64, "width": 0.35, "batch_size": 32, "samples_per_epoch": 32, "epochs": 1,
               "batchnorm_momentum": 0.9}
GPU_WORDS = ("gpu", "cuda", "rocm")


def _training_rate(seconds: float, config: dict | None = None) -> dict:
    """Training samples/s of one model alone and of two fused, each timed for ``seconds`` after a compiled
    warm-up step, on random grey slices (the device's rate, not the data path's)."""
    import keras

    from training.fused import build_fused
    from training.network import TrainingConfig, build_model

    cfg = TrainingConfig.from_dict({**RATE_CONFIG, **(config or {})})
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (cfg.batch_size, cfg.input_size, cfg.input_size, 1)).astype("float32")
    y = np.arange(cfg.batch_size) % 2
    keras.utils.set_random_seed(0)
    alone = build_model(cfg, seed=1)
    fused, _ = build_fused(cfg, [1, 2])
    rates = {"alone": _rate(lambda: alone.train_on_batch(x, y), cfg.batch_size, seconds),
             "fused_2": _rate(lambda: fused.train_on_batch((x, x), (y, y)), 2 * cfg.batch_size, seconds)}
    return {"network": f"MobileNetV2 width {cfg.width}, {cfg.input_size}x{cfg.input_size}, batch {cfg.batch_size}",
            "samples_per_s": rates, "fused_2_ratio": round(rates["fused_2"] / rates["alone"], 2)}


def _rate(step, samples_per_step: int, seconds: float) -> float:
    step()                                                   # compiles
    steps, start = 0, time.perf_counter()
    while steps < 2 or time.perf_counter() - start < seconds:
        step()
        steps += 1
    return round(steps * samples_per_step / (time.perf_counter() - start), 1)


def _no_gpu_warning(keras_result: dict) -> str | None:
    devices = keras_result.get("devices", [])
    if any(w in d.lower() for d in devices for w in GPU_WORDS):
        return None
    return (f"no GPU visible to Keras ({keras_result.get('backend')} backend, devices {', '.join(devices) or 'none'}):"
            " this gpu-queue worker trains on its CPU")


def run(job, ctx: JobContext) -> None:
    worker_check.run(job, ctx)
    if "keras" in job.result and job.params.get("training", True) and "training" not in job.result:
        ctx.progress(step="measuring the training rate (MobileNetV2 alone and 2 fused)", force=True)
        ctx.set_result(training=_training_rate(max(1, int(job.params.get("seconds", 5))) / 2,
                                               job.params.get("training_config")))
    warning = _no_gpu_warning(job.result.get("keras", {})) if "keras" in job.result else None
    if warning:
        ctx.warn(warning)
