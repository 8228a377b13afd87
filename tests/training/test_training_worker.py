"""A tiny training job through a real Celery worker process; a killed worker; cancel through the job."""

import pytest
from django.utils import timezone

from factories_training import TINY_CONFIG, make_tiny_cohort
from jobs import services as jobs
from jobs.models import Job, JobStatus
from testsupport import broker, wait_for
from training import services
from training.models import TrainedModel

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.slow]


@pytest.fixture
def media(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _job_finished(run):
    return lambda: Job.objects.get(pk=run.job_id).is_finished


def test_killing_the_worker_mid_job_and_restarting_it_completes_without_retraining(media, tmp_path, start_worker):
    cohort = make_tiny_cohort()
    folder = tmp_path / "broker"
    with broker("filesystem://", folder):
        worker = start_worker(broker_url="filesystem://", broker_folder=folder, nodename="gpu1@%h",
                              MEDIA_ROOT=media, KERAS_BACKEND="tensorflow")
        run = services.training_run_start(cohort=cohort, config={**TINY_CONFIG, "epochs": 2}, repeats=1)
        first = wait_for(lambda: TrainedModel.objects.filter(run=run, status="done").first(), 600,
                         every=0.5, what="a first finished model")
        wait_for(lambda: TrainedModel.objects.filter(run=run, status="training").exists(), 120, what="the next model")
        worker.kill()
        finished_before = {m.pk: m.finished_at for m in TrainedModel.objects.filter(run=run, status="done")}
        assert Job.objects.get(pk=run.job_id).status == JobStatus.RUNNING
        start_worker(broker_url="filesystem://", broker_folder=folder, nodename="gpu1@%h",
                     MEDIA_ROOT=media, KERAS_BACKEND="tensorflow")
        wait_for(_job_finished(run), 900, every=1, what="the resumed job")
    job = Job.objects.get(pk=run.job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert set(run.models.values_list("status", flat=True)) == {"done"}
    for pk, finished_at in finished_before.items():  # finished models were not trained again
        assert TrainedModel.objects.get(pk=pk).finished_at == finished_at
    assert first.pk in finished_before
    assert job.done == job.total == 6


def test_cancel_stops_the_job_in_the_worker_and_keeps_finished_models(media, tmp_path, start_worker):
    cohort = make_tiny_cohort()
    folder = tmp_path / "broker"
    with broker("filesystem://", folder):
        start_worker(broker_url="filesystem://", broker_folder=folder, MEDIA_ROOT=media)
        run = services.training_run_start(cohort=cohort, config={**TINY_CONFIG, "epochs": 3}, repeats=1)
        wait_for(lambda: TrainedModel.objects.filter(run=run, status="done").exists(), 600, every=0.5,
                 what="a first finished model")
        jobs.job_cancel(job=Job.objects.get(pk=run.job_id))
        wait_for(_job_finished(run), 300, every=0.5, what="the cancelled job")
    job = Job.objects.get(pk=run.job_id)
    assert job.status == JobStatus.CANCELLED
    statuses = list(run.models.values_list("status", flat=True))
    assert statuses.count("done") >= 1 and "cancelled" in statuses and "training" not in statuses
    assert job.finished_at <= timezone.now()
