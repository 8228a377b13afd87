"""The worker check job: proves a (new) worker can do the platform's work, step by step.

An admin adding a GPU machine runs it on the `gpu` queue and sees, on the job page, whether that
worker reaches the database and the shared media volume, which Keras backend and devices it has, and
how fast it multiplies matrices for `seconds` seconds; the GPU check (training.device_check) adds the
training rate of our own network. Each finished step is kept in the job's result, so a resumed check
continues where it stopped.
"""

import platform
import time
import uuid

import numpy as np
from django.conf import settings
from django.db import connection

from jobs.services import JobContext, JobError


def _check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def _check_media() -> dict:
    settings.MEDIA_ROOT.mkdir(parents=True, exist_ok=True)
    probe = settings.MEDIA_ROOT / f".worker-check-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"ok")
        if probe.read_bytes() != b"ok":
            raise JobError(f"media folder {settings.MEDIA_ROOT}: wrote a file but read back something else")
    except OSError as exc:
        raise JobError(f"media folder {settings.MEDIA_ROOT} is not writable: {exc.strerror}") from None
    finally:
        probe.unlink(missing_ok=True)
    return {"media_root_writable": True}


def _check_keras() -> dict:
    import keras

    backend = keras.backend.backend()
    devices: list[str] = []
    if backend == "tensorflow":
        import tensorflow as tf  # noqa: TID251 - device listing only; the model code stays pure Keras

        devices = [d.name for d in tf.config.list_logical_devices()]
    elif backend == "jax":
        import jax

        devices = [str(d) for d in jax.devices()]
    elif backend == "torch":
        import torch

        devices = ["cuda"] if torch.cuda.is_available() else ["cpu"]
    return {"keras": keras.__version__, "backend": backend, "devices": devices}


def _throughput(ctx: JobContext, seconds: int, first_step: int, n_steps: int) -> dict:
    """NumPy float32 matmul GFLOP/s over `seconds`, one progress tick per second."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((512, 512), dtype=np.float32)
    flops, start = 0.0, time.perf_counter()
    for second in range(seconds):
        until = time.perf_counter() + 1.0
        while time.perf_counter() < until:
            a = (a @ a) / 512.0
            flops += 2 * 512**3
        ctx.check_cancel()
        ctx.progress(done=first_step + second + 1, total=n_steps, step=f"throughput: {second + 1}/{seconds} s")
    return {"matmul_gflops": round(flops / (time.perf_counter() - start) / 1e9, 2)}


def run(job, ctx: JobContext) -> None:
    seconds = int(job.params.get("seconds", 5))
    steps = [("database", _check_database), ("media", _check_media)]
    if job.params.get("keras", True):
        steps.append(("keras", _check_keras))
    n_steps = len(steps) + seconds
    ctx.set_result(host=platform.node(), python=platform.python_version())
    for index, (name, check) in enumerate(steps):
        if name not in job.result:  # finished steps are not redone on resume
            ctx.check_cancel()
            ctx.progress(done=index, total=n_steps, step=f"checking {name}", force=True)
            ctx.set_result(**{name: check()})
    ctx.progress(done=len(steps), total=n_steps, step="measuring throughput", force=True)
    ctx.set_result(throughput=_throughput(ctx, seconds, len(steps), n_steps))
