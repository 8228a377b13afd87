"""Training runs as jobs: folds, models grid, inline tiny run, idempotence, cancel, pages and command."""

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from factories_training import TINY_CONFIG, make_tiny_cohort
from jobs import services as jobs
from jobs.models import JobStatus
from training import services
from training.models import TrainedModel, TrainingRun

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def media(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def test_a_run_has_repeats_times_folds_models_and_one_stored_split(media):
    cohort = make_tiny_cohort()
    run = services.training_run_start(cohort=cohort, config=TINY_CONFIG, repeats=2, enqueue=False)
    assert run.models.count() == 12
    assert sorted(set(run.models.values_list("fold", flat=True))) == list(range(6))
    assert len(set(run.models.values_list("seed", flat=True))) == 12  # every model has its own seed
    again = services.training_run_start(cohort=cohort, config=TINY_CONFIG, repeats=1, enqueue=False)
    assert again.cohort.fold_split.pk == run.cohort.fold_split.pk  # the split is made once per cohort


def test_no_patient_is_both_trained_on_and_held_out_for_any_model(media):
    from training.folds import train_heldout_split

    cohort = make_tiny_cohort()
    split = services.fold_split_for(cohort=cohort)
    fold_of = {int(k): v for k, v in split.assignment.items()}
    for fold in range(6):
        train, heldout = train_heldout_split(fold_of, fold)
        assert heldout and not set(train) & set(heldout)
        assert set(train) | set(heldout) == set(cohort.cases.values_list("pk", flat=True))


def test_bad_configuration_is_a_validation_error_naming_the_setting(media):
    cohort = make_tiny_cohort()
    with pytest.raises(ValidationError, match="input_size"):
        services.training_run_start(cohort=cohort, config={**TINY_CONFIG, "input_size": 8}, enqueue=False)
    with pytest.raises(ValidationError, match="unknown setting"):
        services.training_run_start(cohort=cohort, config={"epochz": 3}, enqueue=False)


@pytest.mark.slow
def test_an_inline_tiny_run_trains_every_model_and_never_retrains_a_finished_one(media):
    cohort = make_tiny_cohort()
    out = io.StringIO()
    call_command("train", "--cohort", "tiny", "--repeats", "1", "--epochs", "1", "--samples-per-epoch", "16",
                 "--batch-size", "8", "--input-size", "32", "--width", "0.35", "--run-eagerly",
                 "--batchnorm-momentum", "0", "--inline",
                 stdout=out)
    run = cohort.training_runs.get()
    run.job.refresh_from_db()
    assert run.job.status == JobStatus.SUCCEEDED, run.job.error
    assert set(run.models.values_list("status", flat=True)) == {"done"}
    model = run.models.first()
    assert model.card["data_hash"] == cohort.content_hash and model.card["fold"] == model.fold
    assert model.card["runtime"]["backend"] in {"tensorflow", "jax", "torch"}
    assert (media / model.model_path).is_file() and 0.0 <= model.metrics["auc"] <= 1.0
    finished_at = model.finished_at
    services.model_train(model_pk=model.pk)  # a second delivery
    model.refresh_from_db()
    assert model.finished_at == finished_at
    assert "100.0% 6/6" in out.getvalue()
    assert "epoch 1/1, loss " in out.getvalue() and ", held-out AUC " in out.getvalue()  # per-epoch progress


def test_cancel_before_training_cancels_every_unstarted_model_and_the_job(media):
    cohort = make_tiny_cohort()
    run = services.training_run_start(cohort=cohort, config=TINY_CONFIG, repeats=1, enqueue=False)
    job = run.job
    jobs._claim(job.pk, "w")  # running: dispatched
    TrainedModel.objects.filter(run=run, fold=0).update(status="done")
    jobs.job_cancel(job=job)
    for model in run.models.exclude(fold=0):
        services.model_train(model_pk=model.pk, worker="w")
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert run.models.filter(status="done").count() == 1  # the finished model is kept
    assert run.models.filter(status="cancelled").count() == 5


def test_a_cancelled_run_resumes_and_trains_only_the_models_not_done(media, monkeypatch):
    """Issue 20, item 2: cancel keeps the finished models; resume trains the others, then it can be evaluated."""
    cohort = make_tiny_cohort()
    run = services.training_run_start(cohort=cohort, config=TINY_CONFIG, repeats=1, enqueue=False)
    job = run.job
    jobs._claim(job.pk, "w")
    TrainedModel.objects.filter(run=run, fold=0).update(status="done")
    jobs.job_cancel(job=job)
    for model in run.models.exclude(fold=0):
        services.model_train(model_pk=model.pk, worker="w")
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.can_resume

    trained = []

    def fake_fit_group(models, ctx=None):
        trained.extend(model.fold for model in models)
        TrainedModel.objects.filter(pk__in=[model.pk for model in models]).update(status="done")

    monkeypatch.setattr(services, "_fit", lambda model, ctx=None: fake_fit_group([model]))
    monkeypatch.setattr(services, "_fit_group", fake_fit_group)
    monkeypatch.setattr(jobs, "job_enqueue", lambda job: None)  # resumed here, inline, not by a worker
    jobs.job_resume(job=job)
    jobs.job_run_inline(job_pk=job.pk)
    job.refresh_from_db()
    assert sorted(trained) == [1, 2, 3, 4, 5]  # the finished model was not trained again
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert set(run.models.values_list("status", flat=True)) == {"done"}


def test_a_failing_model_does_not_stop_the_others(media, monkeypatch):
    cohort = make_tiny_cohort()
    run = services.training_run_start(cohort=cohort, config=TINY_CONFIG, repeats=1, enqueue=False)
    jobs._claim(run.job.pk, "w")

    def fake_fit(model, ctx=None):
        if model.fold == 2:
            raise RuntimeError("out of GPU memory")
        TrainedModel.objects.filter(pk=model.pk).update(status="done")

    monkeypatch.setattr(services, "_fit", fake_fit)
    for model in run.models.all():
        services.model_train(model_pk=model.pk, worker="w")
    run.job.refresh_from_db()
    assert run.models.filter(status="done").count() == 5
    assert run.models.get(fold=2).error == "RuntimeError: out of GPU memory"
    assert run.job.status == JobStatus.FAILED and "1 of 6 models failed" in run.job.error


def test_run_pages_and_api_for_admins_not_readers(media, client, admin_user, reader):
    cohort = make_tiny_cohort()
    run = services.training_run_start(cohort=cohort, config=TINY_CONFIG, repeats=1, enqueue=False)
    client.force_login(admin_user)
    html = client.get(f"/training/{run.pk}/").content.decode()
    assert html.count("model-pending") == 6 and "Job " in html
    assert len(client.get(f"/api/training/runs/{run.pk}/").json()["grid"][0]["cells"]) == 6
    assert client.get("/training/new/").status_code == 200
    client.force_login(reader)
    assert client.get(f"/training/{run.pk}/").status_code == 404
    assert client.get(f"/api/training/runs/{run.pk}/").status_code == 404
    assert client.get("/training/new/").status_code == 403


def test_the_start_page_starts_a_run(media, client, admin_user):
    make_tiny_cohort()
    client.force_login(admin_user)
    response = client.post("/training/new/", {"cohort": "tiny", "repeats": 1, "epochs": 1, "samples_per_epoch": 16,
                                              "batch_size": 8, "learning_rate": 1e-4, "input_size": 32,
                                              "width": 0.35, "seed": 0, "name": "trial"})
    assert response.status_code == 302
    assert TrainedModel.objects.filter(run__name="trial").count() == 6


def test_folds_are_a_run_option_default_six_at_least_two_fixed_by_the_cohort(media):
    """Issue 20, item 4: a pilot cohort with fewer than 6 patients per class trains with --folds K."""
    pilot = make_tiny_cohort("pilot", patients_per_class=3)
    with pytest.raises(ValidationError, match="cannot make 6 folds.*--folds K"):
        services.training_run_start(cohort=pilot, config=TINY_CONFIG, repeats=1, enqueue=False)
    with pytest.raises(ValidationError, match="between 2 and 20"):
        services.training_run_start(cohort=pilot, config=TINY_CONFIG, repeats=1, folds=1, enqueue=False)
    run = services.training_run_start(cohort=pilot, config=TINY_CONFIG, repeats=2, folds=3, enqueue=False)
    assert run.models.count() == 6 and sorted(set(run.models.values_list("fold", flat=True))) == [0, 1, 2]
    assert run.job.total == 6
    again = services.training_run_start(cohort=pilot, config=TINY_CONFIG, repeats=1, enqueue=False)
    assert again.models.count() == 3  # no --folds: the cohort's split
    with pytest.raises(ValidationError, match="already split into 3 folds"):
        services.training_run_start(cohort=pilot, config=TINY_CONFIG, repeats=1, folds=6, enqueue=False)


def test_the_train_command_takes_folds_and_the_cohorts_input_size_and_prints_the_job_id(media, monkeypatch):
    make_tiny_cohort("pilot", patients_per_class=3, size=32)
    monkeypatch.setattr(jobs, "job_enqueue", lambda job: None)
    out = io.StringIO()
    call_command("train", "--cohort", "pilot", "--folds", "2", "--repeats", "1", stdout=out)  # no --input-size
    run = TrainedModel.objects.first().run
    assert run.config["input_size"] == 32 and run.models.count() == 2
    assert f"job {run.job.pk} (training) queued" in out.getvalue()
    assert f"manage.py job cancel {run.job.pk}" in out.getvalue()


def test_the_start_page_takes_the_number_of_folds(media, client, admin_user):
    make_tiny_cohort("pilot", patients_per_class=3)
    client.force_login(admin_user)
    form = {"cohort": "pilot", "repeats": 1, "epochs": 1, "samples_per_epoch": 16, "batch_size": 8,
            "learning_rate": 1e-4, "input_size": 32, "width": 0.35, "seed": 0, "name": "pilot-3"}
    page = client.post("/training/new/", form).content.decode()
    assert "cannot make 6 folds" in page and "the Folds field" in page  # the form shows why, and the way out
    response = client.post("/training/new/", {**form, "folds": 3, "input_size": ""})  # the cohort's size
    assert response.status_code == 302
    assert TrainedModel.objects.filter(run__name="pilot-3").count() == 3
    assert TrainingRun.objects.get(name="pilot-3").config["input_size"] == 32
