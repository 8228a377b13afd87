"""The "warning" job status: a job that ran to its end but did not do what was asked (an import that imported
nothing) is neither "succeeded" nor "failed"; it is finished, not resumable, and says why in its step line."""

import io

import pytest
from django.core.management.base import BaseCommand

from jobs import cli, services
from jobs.models import Job, JobStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("role_groups")]

CHECK = {"seconds": 1, "keras": False}


def _warns(job, ctx):
    ctx.progress(done=1, total=1, step="looked at 1 thing", force=True)
    ctx.warn("nothing done: 0 done, 1 refused")


def _run_warning_job(monkeypatch) -> Job:
    monkeypatch.setattr("jobs.worker_check.run", _warns)  # the worker_check kind's runner, by its path
    job = services.job_create(kind="worker_check", params=CHECK, enqueue=False)
    return services.job_run(job_pk=job.pk, worker="t")


def test_a_runner_that_warns_ends_its_job_as_a_warning_with_the_reason_as_its_step(monkeypatch):
    job = _run_warning_job(monkeypatch)
    job.refresh_from_db()
    assert (job.status, job.step, job.error) == (JobStatus.WARNING, "nothing done: 0 done, 1 refused", "")
    assert job.finished_at is not None and job.display_status == "warning"


def test_a_warning_job_is_finished_and_cannot_be_resumed_or_cancelled(monkeypatch):
    job = _run_warning_job(monkeypatch)
    assert job.is_finished and not job.can_resume
    with pytest.raises(services.JobError, match="only a failed or cancelled job"):
        services.job_resume(job=job, enqueue=False)
    assert services.job_cancel(job=job).status == JobStatus.WARNING
    services.job_run(job_pk=job.pk, worker="t")  # a second delivery does nothing
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.WARNING, 1)


def test_a_runner_that_does_not_warn_still_succeeds():
    job = services.job_create(kind="worker_check", params=CHECK, enqueue=False)
    assert services.job_run(job_pk=job.pk, worker="t").status == JobStatus.SUCCEEDED


def test_the_command_line_reports_a_warning_as_a_warning_not_a_success(monkeypatch):
    job = _run_warning_job(monkeypatch)
    out = io.StringIO()
    command = BaseCommand(stdout=out)
    cli.report(command, job)
    assert out.getvalue().strip() == f"job {job.pk} finished with a warning: nothing done: 0 done, 1 refused"
    assert "succeeded" not in out.getvalue()


def test_the_job_api_gives_the_warning_status(monkeypatch, client, admin_user):
    job = _run_warning_job(monkeypatch)
    client.force_login(admin_user)
    body = client.get(f"/api/jobs/{job.pk}/").json()
    assert (body["status"], body["display_status"], body["can_resume"]) == ("warning", "warning", False)
    assert body["step"] == "nothing done: 0 done, 1 refused"


def test_the_job_list_marks_a_warning_row(monkeypatch, client, admin_user):
    job = _run_warning_job(monkeypatch)
    client.force_login(admin_user)
    page = client.get("/jobs/").content.decode()
    assert '<tr class="status-warning">' in page and f'href="/jobs/{job.pk}/"' in page
