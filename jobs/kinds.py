"""Job kinds of the jobs app itself. Other apps register theirs from their own `kinds.py`."""

from jobs import registry

registry.register(
    "worker_check", "jobs.worker_check:run", queue="default",
    label="worker check (database, files, broker, deep-learning backend, throughput)",
)
