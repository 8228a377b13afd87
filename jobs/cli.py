"""Command-line side of jobs: `--wait` (poll and draw a progress bar) and `--inline` (run here).

Used by every management command that starts a job, so they all behave alike.
"""

import shutil
import sys
import time

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

from core.env import require_secrets
from jobs import registry, services
from jobs.models import Job, JobStatus


def add_job_arguments(parser) -> None:
    parser.add_argument("--wait", action="store_true", help="wait for the job, with a progress bar")
    parser.add_argument("--inline", action="store_true",
                        help="run the job in this process instead of a worker (same progress and cancel)")


class ProgressBar:
    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self._last = ""

    def __call__(self, job: Job) -> None:
        width = max(10, min(40, shutil.get_terminal_size((80, 20)).columns - 50))
        filled = int(width * job.done / job.total) if job.total else 0
        line = (f"\r[{'#' * filled}{'.' * (width - filled)}] {job.percent:5.1f}% "
                f"{job.done}/{job.total} {job.display_status}: {job.step}")[:200]
        if line != self._last:
            self.stream.write(line.ljust(len(self._last)))
            self.stream.flush()
            self._last = line

    def close(self) -> None:
        if self._last:
            self.stream.write("\n")
            self.stream.flush()
            self._last = ""


def validation_message(exc) -> str:
    """A ValidationError for the command line: every problem on its own line, named by its field."""
    return "\n".join(f"{field}: {message}" for field, messages in exc.message_dict.items() for message in messages)


def refuse_without_secrets() -> None:
    """Called by every job-starting command before it creates anything, so that no job is left queued by a
    command that cannot run it: one line, non-zero exit (README, *Configuration*)."""
    try:
        require_secrets()
    except ImproperlyConfigured as exc:
        raise CommandError(f"job not started: {exc}") from None


def start(command, *, kind: str, params: dict, options: dict, user=None) -> Job:
    """Create the job; run it here (--inline), or enqueue it and optionally wait (--wait)."""
    refuse_without_secrets()
    inline = options.get("inline")
    job = services.job_create(kind=kind, params=params, user=user, enqueue=not inline)
    return follow(command, job, options)


def follow(command, job: Job, options: dict) -> Job:
    """Say the job's id; run the created job here (--inline), or wait for the queued job (--wait) or not;
    then report.

    Create the job with `enqueue=not options["inline"]`: an inline job must not also go to a worker.
    """
    inline = options.get("inline")
    how = "running here" if inline else f"queued on {registry.get(job.kind).queue!r}"
    follow_up = "" if inline or options.get("wait") else (
        f"; follow it with `manage.py job wait {job.pk}`, cancel it with `manage.py job cancel {job.pk}`")
    command.stdout.write(f"job {job.pk} ({job.kind}) {how}{follow_up}")
    bar = ProgressBar(command.stdout)
    if options.get("inline"):
        try:
            services.job_run_inline(job_pk=job.pk, echo=bar)
        finally:
            bar.close()
    elif options.get("wait"):
        wait(job, bar)
    return report(command, job)


# `--wait` on a job that stays queued asks the workers (a broadcast, `inspect().active_queues()`) whether any
# consumes the job's queue: first after NO_WORKER_FIRST_CHECK_S, then every NO_WORKER_RECHECK_S; when none
# does it says so at once, and gives up after NO_WORKER_GIVE_UP_S (a worker starting meanwhile is found).
NO_WORKER_FIRST_CHECK_S = 2.0
NO_WORKER_RECHECK_S = 5.0
NO_WORKER_GIVE_UP_S = 15.0
INSPECT_TIMEOUT_S = 1.0


def queue_consumers(queue: str, timeout: float = INSPECT_TIMEOUT_S) -> list[str]:
    """The names of the running workers that consume `queue` (none answered: empty; broker down: empty)."""
    from celery import current_app
    from kombu.exceptions import OperationalError

    try:
        answers = current_app.control.inspect(timeout=timeout).active_queues() or {}
    except (OperationalError, OSError):
        return []
    return sorted(worker for worker, queues in answers.items() if any(q.get("name") == queue for q in queues))


def no_worker_message(job: Job, queue: str) -> str:
    return (f"no worker consumes the {queue!r} queue, so job {job.pk} stays queued until one starts "
            f"(`celery -A config worker -Q {queue}`, or `scripts/serve.sh "
            f"{'gpu-worker' if queue == 'gpu' else 'worker'}`); or run it in this process instead: "
            f"`manage.py job cancel {job.pk}`, then the same command with --inline")


def wait(job: Job, bar: ProgressBar, poll_s: float = 0.5) -> Job:
    queue = registry.get(job.kind).queue
    started = time.monotonic()
    next_check = started + NO_WORKER_FIRST_CHECK_S
    warned = False
    try:
        while True:
            job.refresh_from_db()
            bar(job)
            if job.is_finished:
                return job
            now = time.monotonic()
            if job.status == JobStatus.QUEUED and now >= next_check:
                if queue_consumers(queue):
                    next_check = float("inf")  # a worker will take it: just wait
                else:
                    if now - started >= NO_WORKER_GIVE_UP_S:
                        bar.close()
                        raise CommandError(no_worker_message(job, queue))
                    if not warned:
                        bar.close()
                        bar.stream.write(f"waiting: {no_worker_message(job, queue)}\n")
                        bar.stream.flush()
                        warned = True
                    next_check = now + NO_WORKER_RECHECK_S
            time.sleep(poll_s)
    except KeyboardInterrupt:
        bar.close()
        raise CommandError(f"stopped waiting; job {job.pk} goes on in the worker "
                           f"(cancel it on its web page or with `manage.py job cancel {job.pk}`)") from None
    finally:
        bar.close()


def report(command, job: Job) -> Job:
    job.refresh_from_db()
    if job.status == JobStatus.FAILED:
        raise CommandError(f"job {job.pk} failed: {job.error}")
    if job.status == JobStatus.CANCELLED:
        command.stdout.write(command.style.WARNING(f"job {job.pk} cancelled: {job.step}"))
    elif job.status == JobStatus.WARNING:
        command.stdout.write(command.style.WARNING(f"job {job.pk} finished with a warning: {job.step}"))
    elif job.status == JobStatus.SUCCEEDED:
        command.stdout.write(command.style.SUCCESS(f"job {job.pk} succeeded"))
    return job
