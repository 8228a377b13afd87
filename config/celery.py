"""The Celery app: queues `default` (import, cohort, analysis) and `gpu` (training, evaluation)."""

import os

from celery import Celery
from celery.signals import worker_init
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the worker's TensorFlow: no oneDNN / CPU-feature chatter
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # see config/settings.py

app = Celery("sarcoma")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("gpu"))
app.autodiscover_tasks()


@worker_init.connect
def _refuse_to_work_without_secrets(**_kwargs) -> None:
    """A worker without the production secrets exits at once, non-zero, with one line (no traceback)."""
    import sys

    from django.core.exceptions import ImproperlyConfigured

    from core.env import require_secrets

    try:
        require_secrets()
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"worker not started: {exc}\n")
        sys.stderr.flush()
        raise SystemExit(1) from None
