"""The Celery app: queues `default` (import, cohort, analysis) and `gpu` (training, evaluation)."""

import os

from celery import Celery
from celery.signals import worker_init
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("sarcoma")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("gpu"))
app.autodiscover_tasks()



@worker_init.connect
def _refuse_to_work_without_secrets(**_kwargs) -> None:
    from core.env import require_secrets

    require_secrets()
