"""The GPU worker check (issue 16, item 6): devices, a measured training rate of our own network alone and fused,
and a warning where a gpu-queue worker has no GPU."""

import pytest

from jobs import registry
from jobs import services as jobs
from jobs.models import JobStatus
from training.device_check import _no_gpu_warning

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("devices", [["/device:CPU:0", "/device:GPU:0"], ["CudaDevice(id=0)"], ["cuda"]])
def test_a_worker_that_sees_a_gpu_gets_no_warning(devices):
    assert _no_gpu_warning({"backend": "jax", "devices": devices}) is None


def test_a_worker_without_a_gpu_is_told_it_trains_on_its_cpu():
    message = _no_gpu_warning({"backend": "tensorflow", "devices": ["/device:CPU:0"]})
    assert "no GPU visible to Keras (tensorflow backend, devices /device:CPU:0)" in message
    assert "trains on its CPU" in message


@pytest.mark.slow
def test_the_gpu_check_measures_the_training_rate_alone_and_fused_and_warns_without_a_gpu(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    job = jobs.job_create(kind="worker_check_gpu", enqueue=False,
                          params={"seconds": 1, "training_config": {"input_size": 32, "batch_size": 8,
                                                                       "run_eagerly": True}})
    assert registry.get(job.kind).queue == "gpu"
    jobs.job_run(job_pk=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.WARNING, job.error          # this machine has no GPU
    assert job.step.startswith("no GPU visible to Keras")
    training = job.result["training"]
    assert training["network"] == "MobileNetV2 width 0.35, 32x32, batch 8"
    assert training["samples_per_s"]["alone"] > 0 and training["samples_per_s"]["fused_2"] > 0
    assert training["fused_2_ratio"] == pytest.approx(
        training["samples_per_s"]["fused_2"] / training["samples_per_s"]["alone"], abs=0.01)
    assert job.result["keras"]["backend"] and job.result["database"]["vendor"]
