"""jobs.claims: one claim / heartbeat / requeue / lost-worker helper, proved on both claimable models (a Job and
a TrainedModel) through the same calls."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs import claims
from jobs.models import Job, JobStatus
from testsupport import wait_for
from training.models import TrainedModel, TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


def _job(**fields) -> Job:
    return Job.objects.create(kind="worker_check", **fields)


def _model(**fields) -> TrainedModel:
    from imaging.models import Cohort

    cohort = Cohort.objects.first() or Cohort.objects.create(name="claims")
    run = TrainingRun.objects.first() or TrainingRun.objects.create(name="claims", cohort=cohort, config={})
    fold = TrainedModel.objects.count()
    return TrainedModel.objects.create(run=run, repeat=0, fold=fold, seed=fold, **fields)


class Rows:
    """Makes rows of one claimable model: `make(**fields)`, with `make.model` and `make.states` beside."""

    def __init__(self, model, factory):
        self.model, self.states, self._factory = model, model.CLAIM_STATES, factory

    def __call__(self, **fields):
        return self._factory(**fields)


@pytest.fixture(params=[(Job, _job), (TrainedModel, _model)], ids=["job", "trained_model"])
def make(request):
    return Rows(*request.param)


def _claim(row, worker):
    return claims.claim(type(row).objects.all(), row.pk, worker=worker)


def _ago(seconds):
    return timezone.now() - timedelta(seconds=seconds)


def test_the_status_vocabulary_maps_each_models_own_values():
    assert (Job.CLAIM_STATES.waiting, Job.CLAIM_STATES.running, Job.CLAIM_STATES.finished) == (
        "queued", "running", ("succeeded", "failed", "cancelled", "warning"))
    states = TrainedModel.CLAIM_STATES
    assert (states.waiting, states.running, states.finished) == ("pending", "training", ("done", "failed", "cancelled"))


def test_a_waiting_row_is_claimed_once_for_its_worker(make):
    row = make()
    claimed = _claim(row, "w1")
    assert claimed is not None
    row.refresh_from_db()
    assert (row.status, row.worker, row.attempts) == (make.states.running, "w1", 1)
    assert row.started_at and row.heartbeat_at and not row.worker_lost


def test_a_second_delivery_of_a_finished_row_does_nothing(make):
    for status in make.states.finished:
        row = make(status=status, worker="w1", attempts=1)
        assert _claim(row, "w1") is None and _claim(row, "w2") is None
        row.refresh_from_db()
        assert (row.status, row.attempts) == (status, 1)


def test_a_live_claim_by_another_worker_is_respected(make):
    row = make()
    _claim(row, "w1")
    assert _claim(row, "w2") is None  # a second delivery while w1 is alive
    row.refresh_from_db()
    assert (row.status, row.worker, row.attempts) == (make.states.running, "w1", 1)


def test_a_redelivery_to_the_same_worker_claims_again(make):
    row = make()
    _claim(row, "w1")
    assert _claim(row, "w1") is not None
    row.refresh_from_db()
    assert (row.worker, row.attempts) == ("w1", 2)


def test_a_claim_whose_heartbeat_is_older_than_the_limit_is_taken_over(make, settings):
    settings.JOB_HEARTBEAT_TIMEOUT_S = 60
    started = _ago(600)
    row = make(status=make.states.running, worker="dead", attempts=1, started_at=started,
               heartbeat_at=_ago(120), error="old")
    assert row.worker_lost
    assert _claim(row, "w2") is not None
    row.refresh_from_db()
    assert (row.status, row.worker, row.attempts, row.error) == (make.states.running, "w2", 2, "")
    assert row.started_at == started and not row.worker_lost  # first start kept, heartbeat fresh


def test_refuse_keeps_the_row_from_running(make):
    row = make()
    asked = []

    def cancelled(locked):
        asked.append(locked.pk)
        return True

    assert claims.claim(make.model.objects.all(), row.pk, worker="w1", refuse=cancelled) is None
    row.refresh_from_db()
    assert asked == [row.pk] and (row.status, row.attempts) == (make.states.waiting, 0)


def test_a_missing_row_is_nothing_to_do(make):
    assert claims.claim(make.model.objects.all(), 999_999, worker="w1") is None


def test_simultaneous_deliveries_make_one_claim(make):
    row = make()
    barrier = threading.Barrier(4)
    results = [None] * 4

    def deliver(i):
        try:
            barrier.wait()
            results[i] = _claim(row, f"w{i}")
        except Exception as exc:  # noqa: BLE001 - reported to the test
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and isinstance(winners[0], make.model), results
    row.refresh_from_db()
    assert row.attempts == 1 and row.worker == winners[0].worker


def test_orphans_of_the_named_worker_go_back_to_waiting_and_are_enqueued(make):
    running = make.states.running
    mine = make(status=running, worker="w@host", heartbeat_at=timezone.now())
    other = make(status=running, worker="x@host", heartbeat_at=timezone.now())
    enqueued = []
    assert claims.requeue_orphans(make.model, worker="w@host", enqueue=lambda r: enqueued.append(r.pk)) == [mine.pk]
    mine.refresh_from_db()
    other.refresh_from_db()
    assert enqueued == [mine.pk] and mine.status == make.states.waiting
    assert (other.status, other.worker) == (running, "x@host")


def test_orphan_requeue_writes_the_given_fields():
    job = _job(status=JobStatus.RUNNING, worker="w@host", step="epoch 3")
    claims.requeue_orphans(Job, worker="w@host", enqueue=lambda r: None, step="queued again")
    job.refresh_from_db()
    assert (job.status, job.step) == (JobStatus.QUEUED, "queued again")


def test_release_lost_puts_back_only_running_rows_whose_worker_went_silent(make, settings):
    settings.JOB_HEARTBEAT_TIMEOUT_S = 60
    states = make.states
    silent = make(status=states.running, worker="a", heartbeat_at=_ago(120))
    never_beat = make(status=states.running, worker="b", started_at=_ago(120))
    alive = make(status=states.running, worker="c", heartbeat_at=_ago(5))
    finished = make(status=states.succeeded, heartbeat_at=_ago(999))
    model = make.model
    assert {r.pk for r in model.objects.all() if r.worker_lost} == {silent.pk, never_beat.pk}
    assert set(model.objects.filter(model.lost_q()).values_list("pk", flat=True)) == {silent.pk, never_beat.pk}
    assert claims.release_lost(model.objects.all()) == 2
    statuses = dict(model.objects.values_list("pk", "status"))
    assert statuses[silent.pk] == statuses[never_beat.pk] == states.waiting
    assert (statuses[alive.pk], statuses[finished.pk]) == (states.running, states.succeeded)


def test_a_heartbeat_refreshes_the_row_and_running_only_leaves_a_finished_one(make):
    states = make.states
    running = make(status=states.running, heartbeat_at=_ago(300))
    finished = make(status=states.failed, heartbeat_at=_ago(300))
    model = make.model
    now = claims.beat(model, running.pk, running_only=True)
    claims.beat(model, finished.pk, running_only=True)
    running.refresh_from_db()
    finished.refresh_from_db()
    assert running.heartbeat_at == now and finished.heartbeat_at < _ago(200)


def test_the_heartbeat_thread_keeps_a_running_row_alive(make, settings):
    settings.JOB_HEARTBEAT_TIMEOUT_S = 60
    row = make(status=make.states.running, heartbeat_at=_ago(300))
    beating = claims.Heartbeat(make.model, row.pk, every_s=0.05)
    beating.start()
    try:
        wait_for(lambda: not make.model.objects.get(pk=row.pk).worker_lost, 10, what="a fresh heartbeat")
    finally:
        beating.stopped.set()
        beating.join(10)
