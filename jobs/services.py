"""Writes on jobs: create and enqueue, run (in a worker or inline), progress, cancel, resume.

Every long operation of the platform is a job kind (jobs.registry) whose runner receives a
`JobContext`: it reports progress through it and calls `ctx.check_cancel()` at its safe points.
Runners are resumable (a second run skips finished work), so a job whose worker died is resumed by
running it again, on any worker.
"""

import logging
import os
import socket
import time
from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, close_old_connections, transaction
from django.utils import timezone

from core.env import require_secrets
from jobs import claims, registry
from jobs.models import NOT_RESUMABLE, Job, JobStatus

log = logging.getLogger(__name__)

PROGRESS_WRITE_EVERY_S = 0.5


class JobCancelled(Exception):
    """Raised inside a runner at a safe point once a cancel was requested."""


class JobError(Exception):
    """A failure with a message for people (no traceback, no identifying values)."""


class JobDetached(Exception):
    """Raised by a runner that handed its work to other tasks (one per model on the gpu queue).

    The job stays running; those tasks report progress and finish it (`job_set_progress`, `job_finish`).
    """


def job_create(*, kind: str, params: dict | None = None, user=None, total: int = 0, enqueue: bool = True) -> Job:
    """Create a job and, once the transaction commits, put it on its kind's queue."""
    job_kind = registry.get(kind)
    job = Job.objects.create(
        kind=job_kind.name, params=params or {}, created_by=user if user and user.is_authenticated else None,
        total=total, step="queued",
    )
    if enqueue:
        job_enqueue(job=job)
    return job


BROKER_DOWN = ("could not be queued: the task broker was unreachable ({reason}). Nothing ran; resume the job "
               "once the broker is back.")


def job_enqueue(*, job: Job) -> None:
    """Queue the job once the transaction commits. A broker that cannot be reached does not fail the request
    that created the job (it is committed by then): the job is marked failed with the reason, so its page says
    so and Resume (button, API, `manage.py job resume`) queues it again."""
    from kombu.exceptions import OperationalError as BrokerError

    from jobs.tasks import run_job

    queue = registry.get(job.kind).queue

    def send() -> None:
        try:
            run_job.apply_async(kwargs={"job_pk": job.pk}, queue=queue)
        except BrokerError as exc:
            log.warning("job %s: broker unreachable, marked failed (resumable): %s", job.pk, type(exc).__name__)
            Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
                status=JobStatus.FAILED, finished_at=timezone.now(), step="not queued",
                error=BROKER_DOWN.format(reason=type(exc.__cause__ or exc).__name__))

    transaction.on_commit(send)


def job_cancel(*, job: Job) -> Job:
    """Ask a job to stop. A queued job stops at once; a running one at its next safe point."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.is_finished:
            return job
        job.cancel_requested = True
        if job.status == JobStatus.QUEUED or job.worker_lost:
            _finish(job, JobStatus.CANCELLED, step="cancelled before it ran" if job.status == "queued" else "cancelled")
        job.save()
    return job


def job_resume(*, job: Job, enqueue: bool = True) -> Job:
    """Run a job again that failed, was cancelled or whose worker was lost; finished work is not redone.
    ``enqueue=False`` leaves it queued for the caller to run here (``job resume --inline``)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if (job.params or {}).get(NOT_RESUMABLE):
            raise JobError(f"job {job.pk} cannot be resumed: {job.params[NOT_RESUMABLE]}")
        if not job.can_resume:
            raise JobError(f"job {job.pk} is {job.display_status}: only a failed or cancelled job, or one whose "
                           "worker was lost, can be resumed")
        job.status = JobStatus.QUEUED
        job.error = ""
        job.cancel_requested = False
        job.finished_at = None
        job.step = "queued again (resume)"
        job.save()
        if enqueue:
            job_enqueue(job=job)
    return job


def job_requeue_orphans(*, worker: str) -> list[int]:
    """At worker start: jobs that this worker (same node name) was running died with it; resume them."""
    return claims.requeue_orphans(Job, worker=worker, enqueue=lambda job: job_enqueue(job=job),
                                  step="queued again: its worker restarted")


def _finish(job: Job, status: str, *, step: str = "", error: str = "") -> None:
    job.status = status
    job.finished_at = timezone.now()
    job.step = step or status
    job.error = error


def _claim(job_pk: int, worker: str) -> Job | None:
    """Mark the job running for this worker; None when there is nothing to do (see `claims.claim`)."""
    return claims.claim(Job.objects.all(), job_pk, worker=worker, refuse=_cancel_before_it_ran)


def _cancel_before_it_ran(job: Job) -> bool:
    if not job.cancel_requested:
        return False
    _finish(job, JobStatus.CANCELLED, step="cancelled before it ran")
    job.save()
    return True


class JobContext:
    """Handed to a runner: progress, heartbeat and cancellation for one job."""

    def __init__(self, job: Job, echo: Callable[[Job], None] | None = None, inline: bool = False):
        self.job = job
        self.inline = inline  # True under `--inline`: do all the work here, hand nothing to other tasks
        self._echo = echo
        self._last_write = 0.0
        self._last_cancel_check = 0.0
        self.warning = ""  # set by `warn`: the job ends as a warning with this as its step

    @property
    def params(self) -> dict:
        return self.job.params

    def progress(self, done: int | None = None, total: int | None = None, step: str | None = None,
                 force: bool = False) -> None:
        """Record progress; written to the database at most twice a second unless forced."""
        if done is not None:
            self.job.done = done
        if total is not None:
            self.job.total = total
        if step is not None:
            self.job.step = step[:255]
        now = time.monotonic()
        if force or now - self._last_write >= PROGRESS_WRITE_EVERY_S or self.job.done == self.job.total:
            self._last_write = now
            # the heartbeat goes along, so an inline progress bar never reads "worker lost"
            self.job.heartbeat_at = claims.beat(Job, self.job.pk, done=self.job.done, total=self.job.total,
                                                step=self.job.step)
        if self._echo:
            self._echo(self.job)

    def advance(self, n: int = 1, step: str | None = None) -> None:
        self.progress(done=self.job.done + n, step=step)

    def set_result(self, **values) -> None:
        """Merge values into the job's result (kept across resumes) and save them now."""
        self.job.result = {**self.job.result, **values}
        Job.objects.filter(pk=self.job.pk).update(result=self.job.result)

    def warn(self, message: str) -> None:
        """End the job, once its runner returns, as a warning rather than a success, ``message`` as its step: it ran
        to its end but did not do what was asked (an import that imported nothing), which "succeeded" would hide."""
        self.warning = message[:255]

    def cancel_requested(self) -> bool:
        now = time.monotonic()
        if now - self._last_cancel_check >= PROGRESS_WRITE_EVERY_S:
            self._last_cancel_check = now
            self.job.cancel_requested = Job.objects.filter(pk=self.job.pk).values_list(
                "cancel_requested", flat=True).first() or False
        return self.job.cancel_requested

    def check_cancel(self) -> None:
        if self.cancel_requested():
            raise JobCancelled()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def job_run(*, job_pk: int, worker: str | None = None, echo: Callable[[Job], None] | None = None,
            inline: bool = False) -> Job | None:
    """Run a job's runner to its end (success, warning, failure, cancel). Safe to call twice: see `_claim`.

    inline: this process does all the work (`job_run_inline`); runners hand nothing to other tasks.
    """
    _refuse_without_secrets(job_pk)  # jobs key UIDs and case links with PSEUDONYM_KEY: never run without it
    close_old_connections()
    job = _claim(job_pk, worker or worker_name())
    if job is None:
        return Job.objects.filter(pk=job_pk).first()
    heartbeat = claims.Heartbeat(Job, job.pk)  # fresh while the runner is busy in one long step
    heartbeat.start()
    ctx = JobContext(job, echo=echo, inline=inline)
    try:
        registry.get(job.kind).runner()(job, ctx)
    except JobDetached:
        Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(step=job.step, result=job.result)
        return Job.objects.get(pk=job.pk)
    except JobCancelled:
        _end(job, JobStatus.CANCELLED, step="cancelled; finished work is kept (resume to go on)")
    except KeyboardInterrupt:
        _end(job, JobStatus.CANCELLED, step="interrupted on the command line; finished work is kept")
        raise
    except JobError as exc:
        _end(job, JobStatus.FAILED, error=str(exc))
    except Exception as exc:  # the message for people; the traceback goes to the worker log only
        log.exception("job %s (%s) failed", job.pk, job.kind)
        _end(job, JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
    else:
        if ctx.warning:
            _end(job, JobStatus.WARNING, step=ctx.warning)
        else:
            _end(job, JobStatus.SUCCEEDED, step="finished")
    finally:
        heartbeat.stopped.set()
    if echo:
        echo(job)
    return job


def _refuse_without_secrets(job_pk: int) -> None:
    """Raise ImproperlyConfigured when the secrets are missing, after marking the queued job failed with the
    reason, so it is not left queued for ever (Resume queues it again once the secrets are set)."""
    try:
        require_secrets()
    except ImproperlyConfigured as exc:
        try:
            Job.objects.filter(pk=job_pk, status=JobStatus.QUEUED).update(
                status=JobStatus.FAILED, finished_at=timezone.now(), step="not run",
                error=f"the worker refused to run it: {exc}")
        except DatabaseError:
            pass  # no database either: the refusal below says enough
        raise


def job_run_inline(*, job_pk: int, echo: Callable[[Job], None] | None = None) -> Job | None:
    """Run a job in this process (`--inline`, the demo set-up): same progress and cancel, no worker."""
    return job_run(job_pk=job_pk, worker=f"inline:{worker_name()}", echo=echo, inline=True)


def _end(job: Job, status: str, *, step: str = "", error: str = "") -> None:
    _finish(job, status, step=step, error=error)
    Job.objects.filter(pk=job.pk).update(
        status=job.status, finished_at=job.finished_at, step=job.step, error=job.error,
        done=job.done, total=job.total, result=job.result,
    )


def job_set_progress(*, job_pk: int, done: int | None = None, total: int | None = None,
                     step: str | None = None) -> None:
    """Progress from a task working for a detached job (see JobDetached); also refreshes the heartbeat."""
    values = {k: v for k, v in (("done", done), ("total", total)) if v is not None}
    if step is not None:
        values["step"] = step[:255]
    claims.beat(Job, job_pk, running_only=True, **values)


def job_finish(*, job_pk: int, status: str, step: str = "", error: str = "") -> None:
    """Finish a detached job once its last task ended; a job already finished is left as it is."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_pk).first()
        if job is None or job.is_finished:
            return
        _finish(job, status, step=step, error=error)
        job.save()


def job_is_cancel_requested(job_pk: int) -> bool:
    return bool(Job.objects.filter(pk=job_pk).values_list("cancel_requested", flat=True).first())
