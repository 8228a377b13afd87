"""Jobs from the command line (issue 20): refusing without secrets, job ids, `--wait` without a worker,
resuming a cancelled job."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError

from jobs import cli, services
from jobs.models import Job, JobStatus

REPO = Path(__file__).resolve().parents[2]
CHECK = {"seconds": 1, "keras": False}
MESSAGE = "PSEUDONYM_KEY must be set when DEBUG is off"


def _without_secrets(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "PSEUDONYM_KEY", "DATABASE_URL",
                                                           "CELERY_BROKER_URL", "CELERY_BROKER_FOLDER"}}
    return {**env, "DEBUG": "0", "SECRET_KEY": "s" * 50, "DATA_DIR": str(tmp_path)}


# --- item 1: no secrets, no start -----------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "default", "--pool=solo", "-n", "nosecret@%h"],
    [sys.executable, "manage.py", "runserver", "127.0.0.1:0", "--noreload"],
], ids=["worker", "runserver"])
def test_the_worker_and_runserver_exit_non_zero_with_one_line_without_secrets(tmp_path, argv):
    result = subprocess.run(argv, cwd=REPO, env=_without_secrets(tmp_path), capture_output=True, text=True,
                            timeout=90)
    assert result.returncode != 0
    assert MESSAGE in result.stderr and "not started" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.django_db(transaction=True)
def test_a_job_starting_command_refuses_before_creating_a_job(settings):
    settings.MISSING_SECRETS = ["PSEUDONYM_KEY"]
    for argv in (["job", "check", "--inline", "--no-keras"], ["job", "check", "--no-keras"]):
        with pytest.raises(CommandError, match=f"job not started: {MESSAGE}"):
            call_command(*argv, stdout=io.StringIO())
    assert not Job.objects.exists()  # nothing left queued


@pytest.mark.django_db(transaction=True)
def test_a_worker_without_secrets_fails_the_job_instead_of_leaving_it_queued(settings):
    job = services.job_create(kind="worker_check", params=CHECK, enqueue=False)
    settings.MISSING_SECRETS = ["PSEUDONYM_KEY"]
    with pytest.raises(ImproperlyConfigured):
        services.job_run(job_pk=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and MESSAGE in job.error and job.can_resume
    settings.MISSING_SECRETS = []
    services.job_resume(job=job)
    services.job_run(job_pk=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED


# --- item 2: a cancelled job resumes --------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_a_cancelled_job_can_be_resumed_and_keeps_its_finished_work():
    job = services.job_create(kind="worker_check", params=CHECK, enqueue=False)
    services.job_cancel(job=job)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.can_resume
    Job.objects.filter(pk=job.pk).update(result={"database": {"vendor": "x"}})
    out = io.StringIO()
    call_command("job", "resume", str(job.pk), stdout=out)
    assert f"job {job.pk} queued again" in out.getvalue()
    services.job_run(job_pk=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.result["database"] == {"vendor": "x"}  # not redone


@pytest.mark.django_db(transaction=True)
def test_job_resume_inline_runs_the_job_here():
    job = services.job_create(kind="worker_check", params=CHECK, enqueue=False)
    services.job_cancel(job=job)
    out = io.StringIO()
    call_command("job", "resume", str(job.pk), "--inline", stdout=out)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and f"job {job.pk} (worker_check) running here" in out.getvalue()
    with pytest.raises(CommandError, match="only a failed or cancelled job"):
        call_command("job", "resume", str(job.pk), "--inline", stdout=io.StringIO())


# --- item 3: job ids and `--wait` without a worker ------------------------------------------------------

class _Command:
    def __init__(self):
        self.stdout = io.StringIO()

        class Style:
            def __getattr__(self, _name):
                return lambda text: text

        self.style = Style()


@pytest.mark.django_db
def test_follow_prints_the_job_id_and_how_to_follow_it():
    job = services.job_create(kind="worker_check", params=CHECK, enqueue=False)
    command = _Command()
    cli.follow(command, job, {})  # what train, evaluate and predict call after creating their job
    text = command.stdout.getvalue()
    assert f"job {job.pk} (worker_check) queued on 'default'" in text
    assert f"manage.py job wait {job.pk}" in text and f"manage.py job cancel {job.pk}" in text


@pytest.mark.parametrize("module", ["training.management.commands.train", "inference.management.commands.evaluate",
                                    "inference.management.commands.predict"])
def test_commands_that_create_their_own_job_print_it_through_follow(module):
    source = (REPO / (module.replace(".", "/") + ".py")).read_text()
    assert "cli.follow(" in source and "cli.refuse_without_secrets()" in source


@pytest.mark.django_db
def test_wait_says_within_seconds_that_no_worker_consumes_the_queue(monkeypatch):
    monkeypatch.setattr(cli, "NO_WORKER_FIRST_CHECK_S", 0.0)
    monkeypatch.setattr(cli, "NO_WORKER_RECHECK_S", 0.1)
    monkeypatch.setattr(cli, "NO_WORKER_GIVE_UP_S", 0.3)
    asked = []
    monkeypatch.setattr(cli, "queue_consumers", lambda queue: asked.append(queue) or [])
    job = services.job_create(kind="worker_check_gpu", params=CHECK, enqueue=False)
    bar = cli.ProgressBar(io.StringIO())
    with pytest.raises(CommandError, match="no worker consumes the 'gpu' queue") as error:
        cli.wait(job, bar, poll_s=0.05)
    assert "--inline" in str(error.value) and f"job cancel {job.pk}" in str(error.value)
    assert "waiting: no worker consumes the 'gpu' queue" in bar.stream.getvalue()  # said at the first check
    assert set(asked) == {"gpu"}


@pytest.mark.django_db(transaction=True)
def test_wait_goes_on_while_a_worker_consumes_the_queue(monkeypatch):
    monkeypatch.setattr(cli, "NO_WORKER_FIRST_CHECK_S", 0.0)
    job = services.job_create(kind="worker_check", params=CHECK, enqueue=False)

    def consumers(queue):
        Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)  # the worker took it and finished
        return ["cpu@host"]

    monkeypatch.setattr(cli, "queue_consumers", consumers)
    bar = cli.ProgressBar(io.StringIO())
    assert cli.wait(job, bar, poll_s=0.05).status == JobStatus.SUCCEEDED
    assert "no worker" not in bar.stream.getvalue()


def test_queue_consumers_of_a_broker_without_workers_is_empty(tmp_path):
    from testsupport import broker

    with broker("filesystem://", tmp_path / "broker"):
        assert cli.queue_consumers("default", timeout=0.5) == []


# --- item 6: no start-up noise ---------------------------------------------------------------------------

def test_the_embedded_brokers_missing_hostname_warning_is_not_logged(caplog):
    import logging

    logger = logging.getLogger("kombu.connection")
    with caplog.at_level(logging.WARNING):
        logger.warning("No hostname was supplied. Reverting to default 'localhost'")
        logger.warning("Some other broker trouble")
    assert [r.getMessage() for r in caplog.records] == ["Some other broker trouble"]


def test_commands_load_tensorflow_without_its_start_up_chatter(tmp_path):
    pytest.importorskip("tensorflow")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", "import tensorflow"], cwd=REPO,
                            env={**env, "DEBUG": "1", "DATA_DIR": str(tmp_path)}, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    for noise in ("oneDNN", "cpu_feature_guard", "absl::InitializeLog"):
        assert noise not in result.stderr
