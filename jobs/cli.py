"""Command-line side of jobs: `--wait` (poll and draw a progress bar) and `--inline` (run here).

Used by every management command that starts a job, so they all behave alike.
"""

import shutil
import sys
import time

from django.core.management.base import CommandError

from jobs import services
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


def start(command, *, kind: str, params: dict, options: dict, user=None) -> Job:
    """Create the job; run it here (--inline), or enqueue it and optionally wait (--wait)."""
    inline = options.get("inline")
    job = services.job_create(kind=kind, params=params, user=user, enqueue=not inline)
    command.stdout.write(f"job {job.pk} ({kind}) {'running here' if inline else 'queued'}")
    return follow(command, job, options)


def follow(command, job: Job, options: dict) -> Job:
    """Run a created job here (--inline), or wait for the queued job (--wait) or not; then report.

    Create the job with `enqueue=not options["inline"]`: an inline job must not also go to a worker.
    """
    bar = ProgressBar(command.stdout)
    if options.get("inline"):
        try:
            services.job_run_inline(job_pk=job.pk, echo=bar)
        finally:
            bar.close()
    elif options.get("wait"):
        wait(job, bar)
    return report(command, job)


def wait(job: Job, bar: ProgressBar, poll_s: float = 0.5) -> Job:
    try:
        while True:
            job.refresh_from_db()
            bar(job)
            if job.is_finished:
                return job
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
    elif job.status == JobStatus.SUCCEEDED:
        command.stdout.write(command.style.SUCCESS(f"job {job.pk} succeeded"))
    return job
