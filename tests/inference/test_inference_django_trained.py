"""End to end with real Keras models (SLOW): a tiny SYNTHETIC two-sequence cohort, 2 repeats × 2 folds trained
inline, then `manage.py evaluate --inline` (reusing the models' held-out predictions), the same with
`--repredict`, `manage.py predict --inline --heat-maps` for a case imported after training, and `manage.py
heat_maps --inline` for every case.

Everything heavy runs once, in a module fixture whose rows are committed (django_db_blocker) and deleted at
the end; the tests only read them (each in a rolled-back transaction)."""

import io
from types import SimpleNamespace

import numpy as np
import pytest
from django.core.management import call_command
from django.test import override_settings

from factories_inference import TINY_CONFIG, add_boxed_series, make_cohort, make_new_case
from inference import selectors
from inference.models import CaseAIResult, Evaluation
from jobs.models import JobStatus

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

# Eager mode: compiling MobileNetV2's train step costs more than these few steps (training.network docs);
# batchnorm_momentum 0: with a handful of steps the moving averages would otherwise stay at their start.
CONFIG = {**TINY_CONFIG, "epochs": 1, "run_eagerly": True, "batchnorm_momentum": 0.0}


@pytest.fixture(scope="module")
def trained(django_db_setup, django_db_blocker, tmp_path_factory):
    from imaging.models import Case, Cohort, TumourBox
    from jobs.models import Job
    from jobs.services import job_run_inline
    from training import services as training
    from training.models import TrainingRun

    override = override_settings(MEDIA_ROOT=tmp_path_factory.mktemp("inference-trained") / "media")
    override.enable()
    try:
        with django_db_blocker.unblock():
            cohort = make_cohort("tt", n_folds=2)
            run = training.training_run_start(cohort=cohort, config=CONFIG, repeats=2, enqueue=False)
            training_job = job_run_inline(job_pk=run.job.pk)
            outputs = {}
            for key, extra in (("evaluate", []), ("repredict", ["--repredict"])):
                outputs[key] = io.StringIO()
                call_command("evaluate", "--run", str(run.pk), *extra, "--inline", stdout=outputs[key])
            reused, repredicted = Evaluation.objects.filter(training_run=run).order_by("pk")
            case = make_new_case("SYN-NEW-T01")
            outputs["predict"] = io.StringIO()
            call_command("predict", "--case", case.pseudonym, "--training-job", str(run.job_id), "--inline",
                         "--heat-maps", stdout=outputs["predict"])
            # the tiny cohort's cases have an array store but no series: give one of them images to map
            add_boxed_series(cohort.cases.order_by("pk").first(), size=32)
            for key in ("heat_maps", "heat_maps_again"):        # the second finds every case mapped already
                outputs[key] = io.StringIO()
                call_command("heat_maps", "--evaluation", str(repredicted.pk), "--inline", stdout=outputs[key])
            # a case whose file is gone is mapped again, alone
            gone = selectors.case_maps_path(repredicted.pk, cohort.cases.order_by("pk").first().pk)
            maps_before = gone.read_bytes()
            gone.unlink()
            outputs["heat_maps_resume"] = io.StringIO()
            call_command("heat_maps", "--evaluation", str(repredicted.pk), "--inline",
                         stdout=outputs["heat_maps_resume"])
            maps_resumed = gone.read_bytes()
            # a corrected tumour box makes other crops: the case's maps are out of date and made again
            box = TumourBox.objects.filter(series__case=cohort.cases.order_by("pk").first()).order_by("pk").first()
            TumourBox.objects.filter(pk=box.pk).update(x0=box.x0 + 2)
            outputs["heat_maps_stale"] = io.StringIO()
            call_command("heat_maps", "--evaluation", str(repredicted.pk), "--inline",
                         stdout=outputs["heat_maps_stale"])
            yield SimpleNamespace(run=run, training_job=training_job, reused=reused, repredicted=repredicted,
                                  case=case, maps_before=maps_before, maps_resumed=maps_resumed,
                                  outputs={k: v.getvalue() for k, v in outputs.items()})
            for model in (CaseAIResult, Evaluation, TrainingRun, Cohort, Case, Job):
                model.objects.all().delete()
    finally:
        override.disable()


def test_a_trained_run_is_evaluated_end_to_end_and_every_case_gets_its_likelihood(trained):
    assert trained.training_job.status == JobStatus.SUCCEEDED, trained.training_job.error
    assert set(trained.run.models.values_list("status", flat=True)) == {"done"}
    evaluation = Evaluation.objects.get(pk=trained.reused.pk)
    assert evaluation.status == Evaluation.Status.DONE, evaluation.job.error
    assert evaluation.job.result["predictions"] == {"reused": 4, "predicted": 0}
    assert "top-10 sets, ensembles" in trained.outputs["evaluate"]
    results = evaluation.results
    assert results["n_patients"] == 12 and results["n_subsets"] == 32767 and results["synthetic"]
    data = selectors.evaluation_probs(evaluation)
    assert data.probs.shape == (2, 36) and np.all((data.probs >= 0) & (data.probs <= 1))
    sequences_of = {int(c): {("T2axi", "DWI")[int(s == 1)] for s in data.sequence_idx[data.case_id == c]}
                    for c in np.unique(data.case_id)}
    rows = CaseAIResult.objects.filter(evaluation=evaluation)
    assert set(rows.values_list("case_id", flat=True)) == set(trained.run.cohort.cases.values_list("pk", flat=True))
    for row in rows:
        assert 0.0 <= row.likelihood <= 100.0 and row.likelihood in (0.0, 50.0, 100.0)  # 2 ensembles
        assert set(row.per_sequence) == sequences_of[row.case_id]
        assert row.subset == evaluation.chosen_subset and row.n_ensembles == 2 and not row.is_deployment


def test_repredicting_with_the_model_files_gives_the_saved_held_out_predictions(trained):
    again = Evaluation.objects.get(pk=trained.repredicted.pk)
    assert again.status == Evaluation.Status.DONE, again.job.error
    assert again.job.result["predictions"] == {"reused": 0, "predicted": 4}
    first, second = selectors.evaluation_probs(trained.reused), selectors.evaluation_probs(again)
    # the saved ones came from the in-memory model (eager), these from the .keras file (traced graph): float32
    # round-off differs (measured up to 2.4e-5 with oneDNN on), nothing more
    np.testing.assert_allclose(second.probs, first.probs, atol=1e-4)


def test_a_case_imported_after_training_gets_a_prediction(trained):
    evaluation = Evaluation.objects.filter(training_run=trained.run).order_by("-pk").first()
    result = CaseAIResult.objects.get(evaluation=evaluation, case=trained.case)
    assert result.is_deployment and result.n_ensembles == 2 and result.likelihood in (0.0, 50.0, 100.0)
    assert set(result.per_sequence) == {"T2axi", "DWI"} and result.subset == evaluation.chosen_subset
    stored = np.load(selectors.case_prediction_path(evaluation, trained.case.pk))
    assert stored["fold_probs"].shape == (2, 2, 6) and np.all((stored["fold_probs"] >= 0) & (stored["fold_probs"] <= 1))
    assert f"{trained.case.pseudonym}: sarcoma likelihood" in trained.outputs["predict"]


def test_the_evaluation_page_shows_the_trained_run(trained, client, coordinator):
    client.force_login(coordinator)
    html = client.get(f"/inference/evaluations/{trained.reused.pk}/").content.decode()
    assert all(case.pseudonym in html for case in trained.run.cohort.cases.all())
    assert client.get(f"/inference/evaluations/{trained.reused.pk}/figures/roc.svg").status_code == 200


def _heat_jobs():
    from jobs.models import Job

    return list(Job.objects.filter(kind="heat_maps").order_by("pk"))


def test_every_case_gets_heat_maps_from_the_models_that_make_its_likelihood(trained):
    from inference import saliency_store
    from inference.runners import case_tumour_slices

    evaluation, run = trained.repredicted, trained.run
    first, all_cases, again, _, _ = _heat_jobs()
    assert [j.status for j in (first, all_cases, again)] == [JobStatus.SUCCEEDED] * 3
    assert first.result["cases"] == 1 and first.result["models_read"] == 4           # the new patient: all models
    assert all_cases.result == {**all_cases.result, "cases": 12, "already": 1, "models_read": 4}  # 2 folds × 2
    assert again.result["cases"] == 0 and again.result["already"] == 13 and again.result["models_read"] == 0
    assert "12 case(s) mapped" in trained.outputs["heat_maps"]
    assert "13 had their maps already" in trained.outputs["heat_maps_again"]
    assert "heat-maps of 6 tumour slices" in trained.outputs["predict"]
    assert all_cases.result["slices"] == 6

    cohort = run.cohort
    fold_of = {int(k): int(v) for k, v in cohort.fold_split.assignment.items()}
    imaged = cohort.cases.order_by("pk").first()
    reference = saliency_store.read_reference(selectors.evaluation_dir(evaluation))
    assert reference > 0
    for case in [*cohort.cases.all(), trained.case]:
        maps = selectors.case_maps(evaluation.pk, case.pk)
        slices = case_tumour_slices(case, size=cohort.input_size, margin=cohort.crop_margin)
        assert maps.crops.shape[0] == (6 if case.pk in (imaged.pk, trained.case.pk) else 0)   # 2 series × 3 boxes
        np.testing.assert_array_equal(maps.crops, slices.crops)
        np.testing.assert_array_equal(maps.window, slices.window)
        np.testing.assert_array_equal(maps.series_id, slices.series_id)
        np.testing.assert_array_equal(maps.slice_no, slices.slice_no)
        assert maps.maps.shape == slices.crops.shape and maps.maps.dtype == np.uint8
        assert maps.scale in (0.0, reference)            # one full-colour level for the whole evaluation
        if case.pk == trained.case.pk:
            assert maps.kind == saliency_store.DEPLOYMENT and maps.models == ("r0f0", "r0f1", "r1f0", "r1f1")
        else:
            fold = fold_of[case.pk]
            assert maps.kind == saliency_store.HELD_OUT and maps.models == (f"r0f{fold}", f"r1f{fold}")
    box = imaged.series.order_by("pk").first().boxes.order_by("slice_index").first()
    window = selectors.case_maps(evaluation.pk, imaged.pk).window[0]
    assert window[0] <= box.x0 and window[1] <= box.y0 and window[0] + window[2] >= box.x1   # the box in its crop


def test_a_case_whose_maps_are_gone_or_out_of_date_is_mapped_again_alone(trained):
    *_, resumed, stale = _heat_jobs()
    assert resumed.status == JobStatus.SUCCEEDED and resumed.result["cases"] == 1 and resumed.result["already"] == 12
    with np.load(io.BytesIO(trained.maps_before)) as old, np.load(io.BytesIO(trained.maps_resumed)) as again:
        assert again["maps"].shape[0] == 6
        np.testing.assert_array_equal(again["maps"], old["maps"])      # the same maps again: deterministic
    assert stale.status == JobStatus.SUCCEEDED
    assert stale.result == {**stale.result, "cases": 1, "out_of_date": 1, "already": 12}
    assert "1 out of date" in trained.outputs["heat_maps_stale"]
    case = trained.run.cohort.cases.order_by("pk").first()        # the one with images, its box corrected
    now = selectors.case_maps(trained.repredicted.pk, case.pk)
    with np.load(io.BytesIO(trained.maps_resumed)) as before:
        assert str(before["crops_sha256"]) != now.crops_sha256 and not np.array_equal(before["window"], now.window)


class _Ctx:
    """A job context that cancels at its ``cancel_at``-th check (None: never), as a cancel between models would."""

    def __init__(self, cancel_at=None):
        self.cancel_at, self.checks, self.result = cancel_at, 0, {}

    def progress(self, **kwargs):
        pass

    def check_cancel(self):
        from jobs.services import JobCancelled

        self.checks += 1
        if self.cancel_at is not None and self.checks >= self.cancel_at:
            raise JobCancelled()

    def set_result(self, **kwargs):
        self.result.update(kwargs)


def test_a_cancelled_heat_maps_job_keeps_the_finished_folds_and_resumes_with_the_rest(trained):
    from inference import saliency_store, services
    from inference.runners_saliency import heat_maps_run
    from jobs.services import JobCancelled

    evaluation = trained.reused                 # no maps yet: the other tests mapped the second evaluation
    job = services.heat_maps_start(evaluation=evaluation, enqueue=False)
    folder = selectors.evaluation_dir(evaluation)
    files = folder / saliency_store.SALIENCY_DIR
    with pytest.raises(JobCancelled):
        heat_maps_run(job, _Ctx(cancel_at=3))   # fold 0's two models done, cancelled before fold 1's first
    assert len(list(files.glob("case-*.npz"))) == 6
    ctx = _Ctx()
    heat_maps_run(job, ctx)
    assert ctx.result["cases"] == 6 and ctx.result["already"] == 6 and ctx.result["models_read"] == 2
    assert len(list(files.glob("case-*.npz"))) == 12
    assert saliency_store.stored_cases(folder) == {trained.run.cohort.cases.order_by("pk").first().pk}   # images
