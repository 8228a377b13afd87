"""Job lifecycle without a worker process: run inline, progress, cancel, resume, duplicate delivery."""

import io
import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from jobs import cli, registry, services
from jobs.models import Job, JobStatus
from jobs.tasks import run_job

pytestmark = pytest.mark.django_db(transaction=True)

CHECK = {"seconds": 1, "keras": False}


def test_inline_run_reports_progress_and_result():
    job = services.job_create(kind="worker_check", params=CHECK, enqueue=False)
    seen = []
    services.job_run(job_pk=job.pk, echo=lambda j: seen.append((j.done, j.total)))
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.done == job.total == 3  # database, media, 1 second of throughput
    assert job.result["database"]["vendor"] in {"sqlite", "postgresql"}
    assert job.result["throughput"]["matmul_gflops"] > 0
    assert seen[-1] == (3, 3) and len(seen) >= 3


def test_second_delivery_of_a_finished_job_does_nothing():
    job = services.job_create(kind="worker_check", params=CHECK, enqueue=False)
    services.job_run(job_pk=job.pk)
    services.job_run(job_pk=job.pk)
    job.refresh_from_db()
    assert job.attempts == 1


def test_second_delivery_while_alive_elsewhere_is_skipped():
    job = services.job_create(kind="worker_check", params=CHECK, enqueue=False)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, worker="other:1", heartbeat_at=timezone.now())
    services.job_run(job_pk=job.pk, worker="me:2")
    job.refresh_from_db()
    assert (job.status, job.worker, job.attempts) == (JobStatus.RUNNING, "other:1", 0)


def test_cancel_of_a_queued_job_is_immediate():
    job = services.job_create(kind="worker_check", params=CHECK, enqueue=False)
    job = services.job_cancel(job=job)
    assert job.status == JobStatus.CANCELLED
    services.job_run(job_pk=job.pk)  # the queued message arrives later: nothing runs
    job.refresh_from_db()
    assert job.attempts == 0


def test_cancel_of_a_running_job_stops_at_the_next_safe_point():
    job = services.job_create(kind="worker_check", params={"seconds": 20, "keras": False}, enqueue=False)

    def cancel_when_measuring():
        from testsupport import wait_for

        wait_for(lambda: Job.objects.get(pk=job.pk).step.startswith("throughput"), 30, what="throughput step")
        services.job_cancel(job=Job.objects.get(pk=job.pk))

    t = threading.Thread(target=cancel_when_measuring)
    t.start()
    services.job_run(job_pk=job.pk)
    t.join()
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.done < job.total
    assert "database" in job.result  # finished work is kept


def test_a_job_whose_worker_went_silent_is_shown_lost_and_can_be_resumed(settings):
    settings.JOB_HEARTBEAT_TIMEOUT_S = 60
    job = services.job_create(kind="worker_check", params=CHECK, enqueue=False)
    stale = timezone.now() - timedelta(seconds=120)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, worker="dead:1", heartbeat_at=stale,
                                         started_at=stale, result={"database": {"vendor": "x"}}, attempts=1)
    job.refresh_from_db()
    assert job.worker_lost and job.display_status == "worker lost" and job.can_resume
    services.job_resume(job=job)
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    services.job_run(job_pk=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2
    assert job.result["database"] == {"vendor": "x"}  # the finished step was not redone


def test_a_running_job_with_a_live_worker_cannot_be_resumed():
    job = services.job_create(kind="worker_check", params=CHECK, enqueue=False)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, heartbeat_at=timezone.now())
    job.refresh_from_db()
    with pytest.raises(services.JobError, match="can be resumed"):
        services.job_resume(job=job)


def test_a_failing_runner_fails_the_job_with_a_message(monkeypatch):
    registry.register("always_fails", "tests_jobs_helpers:missing", queue="default")
    job = services.job_create(kind="always_fails", enqueue=False)
    services.job_run(job_pk=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "ModuleNotFoundError" in job.error


def test_requeue_orphans_puts_this_workers_running_jobs_back_in_the_queue():
    mine = services.job_create(kind="worker_check", params=CHECK, enqueue=False)
    other = services.job_create(kind="worker_check", params=CHECK, enqueue=False)
    Job.objects.filter(pk=mine.pk).update(status=JobStatus.RUNNING, worker="w@host")
    Job.objects.filter(pk=other.pk).update(status=JobStatus.RUNNING, worker="x@host")
    assert services.job_requeue_orphans(worker="w@host") == [mine.pk]
    assert Job.objects.get(pk=other.pk).status == JobStatus.RUNNING


def test_inline_command_draws_a_progress_bar():
    out = io.StringIO()
    call_command("job", "check", "--no-keras", "--seconds", "1", "--inline", stdout=out)
    text = out.getvalue()
    assert "100.0% 3/3" in text and "succeeded" in text and "[####" in text


def test_unknown_job_is_a_clear_command_error():
    with pytest.raises(CommandError, match="no job 999999"):
        call_command("job", "show", "999999")


def test_progress_bar_renders_percent_and_step():
    out = io.StringIO()
    bar = cli.ProgressBar(out)
    bar(Job(kind="x", done=5, total=10, step="reading files", status=JobStatus.RUNNING, heartbeat_at=timezone.now()))
    assert "50.0% 5/10 running: reading files" in out.getvalue()


def test_a_job_whose_broker_is_unreachable_fails_with_a_reason_and_can_be_resumed(admin_user,
                                                                                 django_capture_on_commit_callbacks):
    with mock.patch.object(run_job, "apply_async", side_effect=BrokerError("Error 111 connecting")) as send:
        with django_capture_on_commit_callbacks(execute=True):
            job = services.job_create(kind="worker_check", user=admin_user)
    job.refresh_from_db()
    assert send.call_count == 1
    assert job.status == JobStatus.FAILED and "broker was unreachable" in job.error and job.can_resume
    with mock.patch.object(run_job, "apply_async") as send:
        with django_capture_on_commit_callbacks(execute=True):
            services.job_resume(job=job)
    job.refresh_from_db()
    assert send.call_count == 1 and job.status == JobStatus.QUEUED and job.error == ""
