"""One Job row per long operation (import, cohort build, training, evaluation, export, ...), and the fields and
status vocabulary of every row a worker claims (`Claimable`; the claim itself is `jobs.claims`)."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


@dataclass(frozen=True)
class ClaimStates:
    """One status vocabulary for claimed rows: which of a model's own status values means what.

    waiting: may be claimed (queued / pending); running: claimed by `worker`, alive while its heartbeat is
    fresh; succeeded, failed, cancelled (and warned, where a model has it): finished, a claim does nothing (a resume
    makes the row waiting first).
    """

    waiting: str
    running: str
    succeeded: str
    failed: str
    cancelled: str
    warned: str = ""  # finished, but did not do what was asked (a Job only: an import that imported nothing)

    @property
    def finished(self) -> tuple[str, ...]:
        return (self.succeeded, self.failed, self.cancelled, *((self.warned,) if self.warned else ()))


def work_status(qualname: str, module: str, *, running: str) -> type[models.TextChoices]:
    """The status choices of a row whose work a worker does for a user (an evaluation, a trained model): pending,
    then ``running`` (the word its pages show: running, training), then done, failed or cancelled; each value is its
    own label. ``qualname`` and ``module`` say where the class is defined, so that its members pickle."""
    words = ("pending", running, "done", "failed", "cancelled")
    return models.TextChoices(qualname.rpartition(".")[2], [(word.upper(), (word, word)) for word in words],
                              module=module, qualname=qualname)


def heartbeat_limit() -> timedelta:
    """How long a running row's worker may stay silent before it counts as lost."""
    return timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT_S)


class JobProduct(models.Model):
    """What a job makes and a user asked for (a cohort, a training run, an evaluation): the job that made it,
    who asked, when; newest first. One definition instead of the same three fields in three apps."""

    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Claimable(models.Model):
    """The fields `jobs.claims` works on. A subclass declares its own `status` field and, in CLAIM_STATES,
    which of its values are waiting, running, succeeded, failed and cancelled."""

    CLAIM_STATES: ClaimStates

    worker = models.CharField(max_length=255, blank=True, help_text="host and process (Celery node) that claimed it")
    attempts = models.PositiveIntegerField(default=0, help_text="how many times a worker claimed it")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="last sign of life from its worker")
    error = models.TextField(blank=True)

    class Meta:
        abstract = True

    @property
    def is_finished(self) -> bool:
        return self.status in self.CLAIM_STATES.finished

    @property
    def worker_lost(self) -> bool:
        """Running, but its worker stopped sending heartbeats (killed, crashed, machine gone)."""
        if self.status != self.CLAIM_STATES.running:
            return False
        last = self.heartbeat_at or self.started_at
        return last is None or timezone.now() - last > heartbeat_limit()

    @classmethod
    def lost_q(cls) -> Q:
        """`worker_lost` as a filter."""
        limit = timezone.now() - heartbeat_limit()
        silent = Q(heartbeat_at__lt=limit) | Q(heartbeat_at__isnull=True, started_at__lt=limit) | Q(
            heartbeat_at__isnull=True, started_at__isnull=True)
        return Q(status=cls.CLAIM_STATES.running) & silent


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    # It ran to its end but did not do what was asked (an import that imported nothing): the step says why.
    WARNING = "warning", "Warning"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# Server paths a job's params may hold (an import's source folder, manifest, boxes, upload folder): they can
# carry patient names (/data/DOE_JANE/...), so they never leave the server (the job API hides them; a
# successful import removes them).
PATH_PARAMS = ("source", "manifest", "boxes", "upload_dir")
# Params that hold identifiers a job needs while it runs (a PACS retrieval's accession numbers and patient IDs):
# never shown (the job API, the admin); the job replaces them by their count once it has succeeded.
IDENTIFYING_PARAMS = ("items",)
# A param that says why a failed or cancelled job can no longer be resumed (its input was discarded).
NOT_RESUMABLE = "not_resumable"


class Job(Claimable):
    CLAIM_STATES = ClaimStates(waiting=JobStatus.QUEUED, running=JobStatus.RUNNING, succeeded=JobStatus.SUCCEEDED,
                               failed=JobStatus.FAILED, cancelled=JobStatus.CANCELLED, warned=JobStatus.WARNING)

    kind = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    step = models.CharField(max_length=255, blank=True, help_text="What the job is doing now")
    cancel_requested = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Job {self.pk} ({self.kind}, {self.status})"

    @property
    def percent(self) -> float:
        return round(100.0 * self.done / self.total, 1) if self.total else 0.0

    @property
    def can_resume(self) -> bool:
        """A failed or cancelled job, or one whose worker was lost: its runner skips the finished work. Not one
        whose input was discarded (``NOT_RESUMABLE`` in its params)."""
        if (self.params or {}).get(NOT_RESUMABLE):
            return False
        return self.worker_lost or self.status in (JobStatus.FAILED, JobStatus.CANCELLED)

    @property
    def display_status(self) -> str:
        return "worker lost" if self.worker_lost else self.get_status_display().lower()
