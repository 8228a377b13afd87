"""Claim, heartbeat, orphan requeue and lost-worker reset for every row a worker owns (a Job, a TrainedModel).

A claimable model subclasses `jobs.models.Claimable` (worker, attempts, started_at, finished_at, heartbeat_at,
error) and names in `CLAIM_STATES` which of its own status values mean what; the database and API values
stay each model's own:

| meaning   | Job       | TrainedModel |
| --------- | --------- | ------------ |
| waiting   | queued    | pending      |
| running   | running   | training     |
| succeeded | succeeded | done         |
| failed    | failed    | failed       |
| cancelled | cancelled | cancelled    |
| warned    | warning   | (none)       |

(warned: it ran to its end but did not do what was asked, e.g. an import that imported nothing; finished like the
others, a claim does nothing.)

A running row whose heartbeat (or, before the first one, its start) is older than JOB_HEARTBEAT_TIMEOUT_S has
lost its worker (`Claimable.worker_lost`, `Claimable.lost_q`); any worker may take it over.
"""

import threading
from collections.abc import Callable
from datetime import datetime

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from jobs.models import Claimable

HEARTBEAT_EVERY_S = 20.0
_CLAIM_FIELDS = ["status", "worker", "attempts", "started_at", "heartbeat_at", "error"]


def claim(rows: QuerySet, pk: int, *, worker: str, refuse: Callable[[Claimable], bool] | None = None):
    """Mark row `pk` of `rows` running for `worker`, under a row lock; None when there is nothing to do.

    Nothing to do: the row is gone or finished (a second delivery after the end), or another worker holds a
    live claim (a second delivery while it runs). A lost worker's claim is taken over; the same worker may
    claim again (its own redelivery after a restart). `refuse(row)` is asked under the lock before claiming
    and returns True when the row must not run (a cancel was requested); it saves what it changes itself.
    The row comes back as `rows` selects it (select_related included).
    """
    running = rows.model.CLAIM_STATES.running
    with transaction.atomic():
        row = rows.select_for_update(of=("self",)).filter(pk=pk).order_by().first()
        if row is None or row.is_finished:
            return None
        if row.status == running and row.worker != worker and not row.worker_lost:
            return None
        if refuse is not None and refuse(row):
            return None
        now = timezone.now()
        row.status, row.worker, row.attempts, row.error = running, worker, row.attempts + 1, ""
        row.started_at = row.started_at or now
        row.heartbeat_at = now
        row.save(update_fields=_CLAIM_FIELDS)
        return row


def beat(model: type[Claimable], pk: int, *, running_only: bool = False, **values) -> datetime:
    """Refresh the row's heartbeat (and write `values` with it); running_only: not once it has ended."""
    now = timezone.now()
    rows = model.objects.filter(pk=pk)
    if running_only:
        rows = rows.filter(status=model.CLAIM_STATES.running)
    rows.update(heartbeat_at=now, **values)
    return now


class Heartbeat(threading.Thread):
    """Keeps a running row's heartbeat fresh while its worker is busy in one long step; `stopped.set()` ends it."""

    def __init__(self, model: type[Claimable], pk: int, every_s: float = HEARTBEAT_EVERY_S):
        super().__init__(daemon=True, name=f"{model._meta.model_name}-{pk}-heartbeat")
        self.model, self.pk, self.every_s = model, pk, every_s
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.every_s):
                beat(self.model, self.pk, running_only=True)
        finally:
            connection.close()


def requeue_orphans(model: type[Claimable], *, worker: str, enqueue: Callable[[Claimable], None],
                    **changes) -> list[int]:
    """At worker start: rows this worker (same node name) was running died with it. Each goes back to waiting
    (with `changes`) and, once that is committed, to `enqueue(row)`. Returns their primary keys."""
    states = model.CLAIM_STATES
    pks = []
    for pk in model.objects.filter(status=states.running, worker=worker).values_list("pk", flat=True):
        with transaction.atomic():
            row = model.objects.select_for_update().filter(pk=pk, status=states.running, worker=worker).first()
            if row is None:
                continue
            row.status = states.waiting
            for name, value in changes.items():
                setattr(row, name, value)
            row.save(update_fields=["status", *changes])
        enqueue(row)
        pks.append(pk)
    return pks


def release_lost(rows: QuerySet) -> int:
    """Rows left running by a worker that stopped answering go back to waiting (they resume when claimed)."""
    return rows.filter(rows.model.lost_q()).update(status=rows.model.CLAIM_STATES.waiting)
