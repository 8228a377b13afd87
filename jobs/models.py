"""One Job row per long operation (import, cohort build, training, evaluation, export, ...)."""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Job(models.Model):
    kind = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    step = models.CharField(max_length=255, blank=True, help_text="What the job is doing now")
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    worker = models.CharField(max_length=255, blank=True, help_text="host and process running the job")
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Job {self.pk} ({self.kind}, {self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def percent(self) -> float:
        return round(100.0 * self.done / self.total, 1) if self.total else 0.0

    @property
    def worker_lost(self) -> bool:
        """A running job whose worker stopped sending heartbeats (killed, crashed, machine gone)."""
        if self.status != JobStatus.RUNNING:
            return False
        last = self.heartbeat_at or self.started_at
        limit = timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT_S)
        return last is None or timezone.now() - last > limit

    @property
    def can_resume(self) -> bool:
        return self.worker_lost or self.status == JobStatus.FAILED

    @property
    def display_status(self) -> str:
        return "worker lost" if self.worker_lost else self.get_status_display().lower()
