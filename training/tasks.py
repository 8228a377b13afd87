"""Thin Celery wrappers of the training app (primary keys in, services do the work)."""

from celery import shared_task
from celery.signals import worker_ready

from training import services


@shared_task(name="training.train_model", acks_late=True, reject_on_worker_lost=True, queue="gpu")
def train_model(*, model_pk: int) -> None:
    from celery import current_task

    services.model_train(model_pk=model_pk, worker=current_task.request.hostname or "")


@shared_task(name="training.train_group", acks_late=True, reject_on_worker_lost=True, queue="gpu")
def train_group(*, model_pks: list[int]) -> None:
    """A group of one run's models trained fused in one compiled step (training config `fuse`)."""
    from celery import current_task

    services.models_train_group(model_pks=model_pks, worker=current_task.request.hostname or "")


@worker_ready.connect
def _resume_models_of_this_worker(sender=None, **_kwargs) -> None:
    """A restarted GPU worker (same node name) puts the models it was training back on the queue."""
    hostname = getattr(sender, "hostname", None)
    if hostname:
        services.models_requeue_orphans(worker=hostname)
