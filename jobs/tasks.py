"""Thin Celery wrappers around jobs.services (take primary keys, idempotent)."""

from celery import shared_task
from celery.signals import worker_ready

from jobs import services


@shared_task(name="jobs.run_job", acks_late=True, reject_on_worker_lost=True)
def run_job(*, job_pk: int) -> None:
    from celery import current_task

    services.job_run(job_pk=job_pk, worker=current_task.request.hostname or services.worker_name())


@worker_ready.connect
def _resume_jobs_of_this_worker(sender=None, **_kwargs) -> None:
    """A restarted worker (same node name) resumes the jobs it was running when it died."""
    hostname = getattr(sender, "hostname", None)
    if hostname:
        services.job_requeue_orphans(worker=hostname)
