"""Jobs through a real Celery worker process: the embedded broker, Redis, and a killed worker."""

import io
import os

import pytest
from django.core.management import call_command

from jobs import cli, services
from jobs.models import Job, JobStatus
from testsupport import broker, redis_available, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CHECK = {"seconds": 1, "keras": False}


def _finished(job):
    return lambda: Job.objects.get(pk=job.pk).is_finished


def test_a_real_worker_runs_a_job_over_the_embedded_filesystem_broker(tmp_path, start_worker):
    folder = tmp_path / "broker"
    with broker("filesystem://", folder):
        start_worker(broker_url="filesystem://", broker_folder=folder)
        assert [w.split("@")[0] for w in cli.queue_consumers("default")] == ["test"]  # what --wait asks
        out = io.StringIO()
        call_command("job", "check", "--no-keras", "--seconds", "1", "--wait", stdout=out)
    job = Job.objects.latest("pk")
    assert job.status == JobStatus.SUCCEEDED
    assert job.worker.startswith("test@")  # it ran in the worker, not here
    assert "100.0%" in out.getvalue() and "no worker" not in out.getvalue()


@pytest.mark.skipif(not redis_available(REDIS_URL), reason=f"Redis is not running at {REDIS_URL}")
def test_a_real_worker_runs_a_job_over_redis(start_worker):
    with broker(REDIS_URL):
        start_worker(broker_url=REDIS_URL)
        job = services.job_create(kind="worker_check_gpu", params=CHECK)  # the gpu queue
        wait_for(_finished(job), 60, what="job over redis")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.worker.startswith("test@")


def test_a_killed_worker_leaves_the_job_resumable_and_a_restart_finishes_it(tmp_path, start_worker, settings):
    settings.JOB_HEARTBEAT_TIMEOUT_S = 1
    folder = tmp_path / "broker"
    with broker("filesystem://", folder):
        worker = start_worker(broker_url="filesystem://", broker_folder=folder, nodename="node1@%h")
        job = services.job_create(kind="worker_check", params={"seconds": 30, "keras": False})
        wait_for(lambda: Job.objects.get(pk=job.pk).step.startswith("throughput: 2"), 60, what="mid-job")
        worker.kill()
        wait_for(lambda: Job.objects.get(pk=job.pk).worker_lost, 10, what="worker lost")
        job.refresh_from_db()
        assert job.status == JobStatus.RUNNING and job.can_resume and job.done < job.total
        # the same node comes back: it resumes what it was running (no cancel, no manual step)
        Job.objects.filter(pk=job.pk).update(params={"seconds": 1, "keras": False})
        start_worker(broker_url="filesystem://", broker_folder=folder, nodename="node1@%h")
        wait_for(_finished(job), 60, what="resumed job")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2
