"""Training runs in fused groups (issue 16, item 3): one gpu task per group of `fuse` models, per-model claims,
progress, cancel, resume and retry; a diverged or out-of-step member trains alone; one failure never loses the
others. SYNTHETIC tiny cohort (bright vs dark blobs)."""

import pytest
from django.core.exceptions import ValidationError

from factories_training import TINY_CONFIG, make_tiny_cohort, poison_member_loss
from jobs import claims
from jobs import services as jobs
from jobs.models import Job, JobStatus
from training import services
from training.models import TrainedModel

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def media(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def enqueued(monkeypatch):
    """The groups handed to the gpu queue, as lists of (repeat, fold), once their transaction commits."""
    groups = []

    def record(pks):
        models = {m.pk: m for m in TrainedModel.objects.filter(pk__in=pks)}
        groups.append([(models[pk].repeat, models[pk].fold) for pk in pks])

    monkeypatch.setattr(services, "_enqueue", record)
    return groups


def _run(fuse, repeats=1, **config):
    cohort = make_tiny_cohort(f"tiny-{TrainedModel.objects.count()}-{fuse}-{len(config)}")
    return services.training_run_start(cohort=cohort, config={**TINY_CONFIG, "fuse": fuse, **config},
                                       repeats=repeats, enqueue=False)


def _dispatch(run):
    with pytest.raises(jobs.JobDetached):
        services.training_dispatch(run.job, jobs.JobContext(run.job))


@pytest.mark.parametrize(("fuse", "expected"), [
    (3, [[(0, 0), (0, 1), (0, 2)], [(0, 3), (0, 4), (0, 5)], [(1, 0), (1, 1), (1, 2)], [(1, 3), (1, 4), (1, 5)]]),
    (4, [[(0, 0), (0, 1), (0, 2), (0, 3)], [(0, 4), (0, 5), (1, 0), (1, 1)], [(1, 2), (1, 3), (1, 4), (1, 5)]]),
    (1, [[(r, f)] for r in range(2) for f in range(6)]),
])
def test_the_run_is_queued_as_one_gpu_task_per_group_of_fuse_models(media, enqueued, fuse, expected):
    run = _run(fuse, repeats=2)
    _dispatch(run)
    assert enqueued == expected
    assert set(run.models.values_list("status", flat=True)) == {"pending"}


def test_only_unfinished_models_are_grouped_and_models_at_another_epoch_go_in_another_group(media, enqueued):
    run = _run(3)
    run.models.filter(fold=0).update(status="done")
    run.models.filter(fold__in=[3, 4]).update(status="failed", epochs_done=1)     # resumed from epoch 1
    _dispatch(run)
    assert enqueued == [[(0, 1), (0, 2), (0, 5)], [(0, 3), (0, 4)]]


def test_fuse_is_validated_and_does_not_change_what_a_model_is(media):
    from training.fit import _RESUME_FREE_SETTINGS

    with pytest.raises(ValidationError, match="fuse"):
        _run(0)
    with pytest.raises(ValidationError, match="fuse"):
        _run(25)
    with pytest.raises(ValidationError, match="precision"):
        _run(2, precision="float16")
    assert {"fuse", "xla"} <= set(_RESUME_FREE_SETTINGS)          # a checkpoint resumes under another fuse
    assert "precision" not in _RESUME_FREE_SETTINGS                # but not in another precision


def test_a_group_claims_each_model_and_leaves_out_the_finished_and_the_ones_another_worker_holds(media,
                                                                                                  monkeypatch):
    run = _run(4)
    models = list(run.models.order_by("fold")[:4])
    TrainedModel.objects.filter(pk=models[0].pk).update(status="done")
    claims.claim(TrainedModel.objects.all(), models[1].pk, worker="other@host")      # live, another worker
    seen = []

    def fake_group(claimed, ctx=None):
        seen.append(sorted(m.fold for m in claimed))
        assert {m.status for m in claimed} == {"training"} and {m.worker for m in claimed} == {"gpu@here"}
        TrainedModel.objects.filter(pk__in=[m.pk for m in claimed]).update(status="done")

    monkeypatch.setattr(services, "_fit_group", fake_group)
    services.models_train_group(model_pks=[m.pk for m in models], worker="gpu@here")
    assert seen == [[2, 3]]
    assert TrainedModel.objects.get(pk=models[1].pk).worker == "other@host"


def test_a_group_left_with_one_model_trains_it_alone(media, monkeypatch):
    run = _run(2)
    first, second = run.models.order_by("fold")[:2]
    TrainedModel.objects.filter(pk=first.pk).update(status="done")
    alone = []
    monkeypatch.setattr(services, "_fit_group", lambda models, ctx=None: pytest.fail("no group of one"))
    monkeypatch.setattr(services, "_fit", lambda model, ctx=None: alone.append(model.fold))
    services.models_train_group(model_pks=[first.pk, second.pk], worker="w")
    assert alone == [1]


def test_when_the_group_itself_fails_each_member_goes_back_on_the_queue_alone(media, monkeypatch, enqueued):
    run = _run(3)
    jobs._claim(run.job.pk, "w")
    models = list(run.models.order_by("fold")[:3])

    def crash(models, ctx=None):
        raise RuntimeError("out of GPU memory for the fused step")

    monkeypatch.setattr(services, "_fit_group", crash)
    services.models_train_group(model_pks=[m.pk for m in models], worker="w")
    assert sorted(enqueued) == [[(0, 0)], [(0, 1)], [(0, 2)]]
    assert {m.status for m in TrainedModel.objects.filter(pk__in=[m.pk for m in models])} == {"pending"}
    assert Job.objects.get(pk=run.job.pk).status == JobStatus.RUNNING   # not finished: 3 to go


def test_cancel_during_a_group_cancels_its_members_and_keeps_the_finished_models(media, monkeypatch):
    from training.fit import TrainingCancelled

    run = _run(2)
    jobs._claim(run.job.pk, "w")
    run.models.exclude(fold__in=[0, 1]).update(status="done")

    def cancelled(models, ctx=None):
        jobs.job_cancel(job=run.job)                   # requested while the group trains
        raise TrainingCancelled(1, media)

    monkeypatch.setattr(services, "_fit_group", cancelled)
    services.models_train_group(model_pks=list(run.models.filter(fold__in=[0, 1]).values_list("pk", flat=True)),
                                worker="w")
    assert sorted(run.models.values_list("status", flat=True)) == ["cancelled"] * 2 + ["done"] * 4
    run.job.refresh_from_db()
    assert run.job.status == JobStatus.CANCELLED


def test_a_restarted_worker_requeues_its_orphans_in_their_groups(media, enqueued):
    run = _run(3)
    for model in run.models.filter(fold__in=[0, 1, 2, 4]):
        claims.claim(TrainedModel.objects.all(), model.pk, worker="gpu@dead")
    requeued = services.models_requeue_orphans(worker="gpu@dead")
    assert len(requeued) == 4
    assert enqueued == [[(0, 0), (0, 1), (0, 2)], [(0, 4)]]


@pytest.mark.slow
def test_a_real_fused_group_trains_each_model_records_its_progress_and_retries_a_diverged_one_alone(
        media, monkeypatch):
    """Two real members, fused, inline; member 1's loss turns NaN in epoch 1: it leaves the group, keeps no
    checkpoint of that epoch and is trained alone; both end done with their own cards and files."""
    run = _run(3)
    job = run.job
    jobs._claim(job.pk, "w")
    models = list(run.models.order_by("fold")[:3])
    poison_member_loss(monkeypatch, member=1, epoch=0)
    alone = []
    real_fit = services._fit
    monkeypatch.setattr(services, "_fit", lambda model, ctx=None: (alone.append(model.fold), real_fit(model, ctx)))
    steps = []
    ctx = jobs.JobContext(job, echo=lambda j: steps.append(j.step), inline=True)
    services.models_train_group(model_pks=[m.pk for m in models], worker="w", ctx=ctx)
    assert alone == [1]                                        # the diverged member, retried alone
    for model in TrainedModel.objects.filter(pk__in=[m.pk for m in models]):
        assert model.status == "done", (model.fold, model.error)
        assert model.epochs_done == 2 and [h["epoch"] for h in model.history] == [1, 2]
        assert (media / model.model_path).is_file() and model.card["fold"] == model.fold
        assert model.card["config"]["fuse"] == 3
    assert any("(fused ×3): epoch 1/2" in s for s in steps if s)
    assert any("(fused ×3): epoch 2/2" in s for s in steps if s)


def test_the_train_command_takes_fuse_precision_and_xla(media, monkeypatch):
    import io

    from django.core.management import call_command

    monkeypatch.setattr(jobs, "job_enqueue", lambda job: None)              # queued, not run here
    cohort = make_tiny_cohort("tiny-command")
    call_command("train", "--cohort", cohort.name, "--repeats", "1", "--fuse", "6", "--precision",
                 "mixed_bfloat16", "--xla", "off", stdout=io.StringIO())
    config = cohort.training_runs.get().config
    assert (config["fuse"], config["precision"], config["xla"]) == (6, "mixed_bfloat16", "off")
    call_command("train", "--cohort", cohort.name, "--repeats", "1", stdout=io.StringIO())
    config = cohort.training_runs.order_by("pk").last().config
    assert (config["fuse"], config["precision"], config["xla"]) == (2, "float32", "auto")     # the defaults
