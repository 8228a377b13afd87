"""The inference Django layer on SYNTHETIC data without Keras: runs whose models "finished" with hand-made
held-out predictions. The evaluation job (reuse, resume, cancel), each case's likelihood checked against an
independent loop, the choice of set, new patients (model predictions stubbed), pages, CSV, permissions,
commands. The real-Keras path is in test_inference_django_trained.py (slow)."""

import csv
import io

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from core.constants import SEQUENCE_CODES
from factories_inference import DWI, T2AXI, fake_trained_run, heldout_probs, make_cohort, make_new_case
from inference import runners, selectors, services
from inference.figures import roc_points
from inference.models import CaseAIResult, Evaluation
from jobs import services as jobs
from jobs.models import JobStatus

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def media(tmp_path, settings, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setattr("jobs.services.job_enqueue", lambda *, job: None)  # jobs run here, never on a broker
    return settings.MEDIA_ROOT


@pytest.fixture
def run():
    return fake_trained_run(make_cohort(), repeats=3)


def evaluate(run, **kwargs) -> Evaluation:
    evaluation = services.evaluation_start(run=run, enqueue=False, **kwargs)
    job = jobs.job_run(job_pk=evaluation.job.pk, worker="test")
    assert job.status == JobStatus.SUCCEEDED, job.error
    evaluation.refresh_from_db()
    return evaluation


def likelihoods_by_loop(probs, case_of_slice, seq_of_slice, mask, thresholds, cutoff=0.5) -> dict:
    """METHOD §6-§9 written out with loops: {case pk: (likelihood %, {code: % of ensembles calling sarcoma})}."""
    repeats = probs.shape[0]
    out = {}
    for case in np.unique(case_of_slice):
        codes = sorted(set(seq_of_slice[case_of_slice == case].tolist()))
        sarcoma_votes, seq_votes = 0, dict.fromkeys(codes, 0)
        for j in range(repeats):
            others = [r for r in range(repeats) if r != j]
            score = 0
            for s in codes:
                where = (case_of_slice == case) & (seq_of_slice == s)
                mean = np.mean([np.mean(probs[r][where].astype(np.float64)) for r in others])
                call = 1 if mean >= cutoff else -1
                seq_votes[s] += call == 1
                if (mask >> s) & 1:
                    score += call
            sarcoma_votes += score >= thresholds[j]
        out[int(case)] = (100.0 * sarcoma_votes / repeats,
                          {SEQUENCE_CODES[s]: 100.0 * v / repeats for s, v in seq_votes.items()})
    return out


def test_the_evaluation_reuses_held_out_predictions_and_every_case_gets_its_likelihood(run, media):
    evaluation = evaluate(run)
    assert evaluation.status == Evaluation.Status.DONE
    assert evaluation.job.result["predictions"] == {"reused": 6, "predicted": 0}

    data = selectors.evaluation_probs(evaluation)           # the compact store: (repeats, slices) float32
    store = open_store(run)
    assert data.probs.shape == (3, store.n_slices) and data.probs.dtype == np.float32
    assert evaluation.store_path == f"evaluations/{evaluation.pk}/probs.npz"
    fold_of = {int(k): v for k, v in run.cohort.fold_split.assignment.items()}
    model = run.models.get(repeat=1, fold=1)
    rows = store.slice_indices([c for c, f in fold_of.items() if f == 1])
    np.testing.assert_array_equal(data.probs[1, rows], heldout_probs(store.labels[rows], seed=11))
    assert not (media / f"evaluations/{evaluation.pk}/parts").exists()  # parts are folded into probs.npz
    assert model.status == "done"

    results = evaluation.results
    assert results["n_subsets"] == 32767 and results["n_patients"] == 12 and results["synthetic"] is True
    assert len(results["ensemble"]["top"]) == 10 and len(results["per_sequence"]) == 15
    assert results["ensemble"]["top"][0]["mask"] == results["top_mask"] == results["chosen"]["mask"]
    assert evaluation.chosen_subset == results["chosen"]["codes"] == results["ensemble"]["top"][0]["sequences"].split()
    assert {r["sequence"]: r["coverage"] for r in results["per_sequence"]}["DWI"] == 10
    assert 0.0 <= results["ensemble"]["top_mean"]["honest_ss_avg_percent"] <= 100.0
    assert len(results["chosen"]["roc"]["ensemble"]) == 3 and len(results["chosen"]["thresholds"]) == 3

    expected = likelihoods_by_loop(data.probs, data.case_id, data.sequence_idx, results["chosen"]["mask"],
                                   results["chosen"]["thresholds"])
    rows = {r.case_id: r for r in CaseAIResult.objects.filter(evaluation=evaluation)}
    assert set(rows) == set(run.cohort.cases.values_list("pk", flat=True))
    for case_pk, (likelihood, per_sequence) in expected.items():
        assert rows[case_pk].likelihood == pytest.approx(likelihood, abs=1e-3)
        assert rows[case_pk].per_sequence == pytest.approx(per_sequence, abs=1e-3)
        assert rows[case_pk].subset == evaluation.chosen_subset and rows[case_pk].n_ensembles == 3
        assert not rows[case_pk].is_deployment
    assert {len(r.per_sequence) for r in rows.values()} == {1, 2}  # two patients lack DWI


def open_store(run):
    from training.services import open_cohort_store

    return open_cohort_store(run.cohort)


def test_a_failed_evaluation_resumes_without_redoing_finished_models(run, media, monkeypatch):
    from training.services import checkpoint_dir_for

    broken = run.models.get(repeat=2, fold=0)
    saved = checkpoint_dir_for(broken) / "heldout_predictions.npz"
    saved.rename(saved.with_suffix(".bak"))          # no usable predictions and no .keras file
    evaluation = services.evaluation_start(run=run, enqueue=False)
    job = jobs.job_run(job_pk=evaluation.job.pk, worker="test")
    evaluation.refresh_from_db()
    assert job.status == JobStatus.FAILED and evaluation.status == Evaluation.Status.FAILED
    assert "repeat 3 fold 1" in job.error and "missing" in job.error
    assert len(list((media / f"evaluations/{evaluation.pk}/parts").glob("*.npz"))) == 4  # r0f0 … r1f1 kept

    saved.with_suffix(".bak").rename(saved)
    asked = []
    original = runners.stored_heldout_predictions

    def looked_up(model, store, rows):
        asked.append((model.repeat, model.fold))
        return original(model, store, rows)

    monkeypatch.setattr(runners, "stored_heldout_predictions", looked_up)
    jobs.job_resume(job=job)
    job = jobs.job_run(job_pk=job.pk, worker="test")
    evaluation.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert asked == [(2, 0), (2, 1)]                 # only the models after the failure were looked at again
    assert evaluation.status == Evaluation.Status.DONE and evaluation.case_results.count() == 12


def test_cancel_stops_between_models_and_keeps_finished_ones(run, media, monkeypatch):
    monkeypatch.setattr(jobs, "PROGRESS_WRITE_EVERY_S", 0.0)
    evaluation = services.evaluation_start(run=run, enqueue=False)
    original = runners.stored_heldout_predictions

    def cancel_after_first(model, store, rows):
        if (model.repeat, model.fold) == (0, 1):
            jobs.job_cancel(job=evaluation.job)
        return original(model, store, rows)

    monkeypatch.setattr(runners, "stored_heldout_predictions", cancel_after_first)
    job = jobs.job_run(job_pk=evaluation.job.pk, worker="test")
    evaluation.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and evaluation.status == Evaluation.Status.CANCELLED
    assert len(list((media / f"evaluations/{evaluation.pk}/parts").glob("*.npz"))) == 2
    assert not evaluation.case_results.exists()

    # issue 20, item 2: the cancelled evaluation resumes; the two finished parts are not redone
    asked = []
    monkeypatch.setattr(runners, "stored_heldout_predictions",
                        lambda model, store, rows: asked.append((model.repeat, model.fold)) or original(model, store,
                                                                                                       rows))
    monkeypatch.setattr(jobs, "job_enqueue", lambda job: None)
    jobs.job_resume(job=job)
    job = jobs.job_run(job_pk=job.pk, worker="test")
    evaluation.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert (0, 0) not in asked and (0, 1) not in asked and asked[0] == (1, 0)
    assert evaluation.status == Evaluation.Status.DONE and evaluation.case_results.exists()


def test_starting_needs_a_fully_trained_run_with_two_repeats_and_a_valid_rule(media):
    run = fake_trained_run(make_cohort(), repeats=2)
    with pytest.raises(ValidationError, match="rule"):
        services.evaluation_start(run=run, rule="median", enqueue=False)
    with pytest.raises(ValidationError, match="cutoff"):
        services.evaluation_start(run=run, cutoff=1.5, enqueue=False)
    run.models.filter(repeat=1, fold=1).update(status="training")
    with pytest.raises(ValidationError, match="1 of 4 models are not trained"):
        services.evaluation_start(run=run, enqueue=False)
    from training import services as training

    single = training.training_run_start(cohort=run.cohort, repeats=1, enqueue=False)
    single.models.update(status="done")
    with pytest.raises(ValidationError, match="at least 2"):
        services.evaluation_start(run=single, enqueue=False)


def test_majority_rule_is_recorded_and_used(run):
    evaluation = evaluate(run, rule="majority")
    assert evaluation.config["rule"] == "majority" and evaluation.results["rule"] == "majority"
    assert evaluation.case_results.count() == 12


def test_a_coordinator_chooses_another_set_and_every_likelihood_is_recomputed(run, coordinator):
    evaluation = evaluate(run)
    services.evaluation_choose_subset(evaluation=evaluation, subset=["DWI"], user=coordinator)
    evaluation.refresh_from_db()
    chosen = evaluation.results["chosen"]
    assert evaluation.chosen_subset == ["DWI"] and chosen["mask"] == 1 << DWI
    assert chosen["chosen_by"] == coordinator.username and chosen["coverage"] == 10
    assert 1 <= chosen["rank"] <= 32767
    data = selectors.evaluation_probs(evaluation)
    expected = likelihoods_by_loop(data.probs, data.case_id, data.sequence_idx, 1 << DWI, chosen["thresholds"])
    for result in evaluation.case_results.all():
        assert result.subset == ["DWI"]
        assert result.likelihood == pytest.approx(expected[result.case_id][0], abs=1e-3)
    ci = selectors.chosen_intervals(evaluation)["ensemble"]      # computed at choice, whatever the set's rank
    assert ci == chosen["intervals"]["ensemble"] and ci["accuracy"]["ci_low"] <= ci["accuracy"]["estimate"]
    assert ci["accuracy"]["estimate"] == pytest.approx(chosen["ensemble"]["accuracy_percent"], abs=1e-6)

    with pytest.raises(ValidationError, match="no patient of the cohort has any of these sequences"):
        services.evaluation_choose_subset(evaluation=evaluation, subset=["ADC", "T2sag"])
    with pytest.raises(ValidationError, match="unknown sequence code 'T3axi'"):
        services.evaluation_choose_subset(evaluation=evaluation, subset=["T3axi"])
    from reader_study.models import Study

    Study.objects.create(name="Pilot (synthetic)", evaluation=evaluation, status="open")
    with pytest.raises(ValidationError, match="Pilot"):
        services.evaluation_choose_subset(evaluation=evaluation, subset=["T2axi"])



def test_choosing_a_set_keeps_what_changed_in_the_row_after_the_caller_read_it(run):
    evaluation = evaluate(run)
    read_earlier = Evaluation.objects.get(pk=evaluation.pk)
    Evaluation.objects.filter(pk=evaluation.pk).update(results={**evaluation.results, "search_seconds": 99.0})
    services.evaluation_choose_subset(evaluation=read_earlier, subset=["DWI"])
    saved = Evaluation.objects.get(pk=evaluation.pk)
    assert saved.results["search_seconds"] == 99.0 and saved.results["chosen"]["codes"] == ["DWI"]
    assert saved.chosen_subset == read_earlier.chosen_subset == ["DWI"]


def test_choosing_a_set_is_refused_once_the_evaluation_is_no_longer_done_though_the_caller_read_it_done(run):
    evaluation = evaluate(run)
    read_earlier = Evaluation.objects.get(pk=evaluation.pk)
    Evaluation.objects.filter(pk=evaluation.pk).update(status=Evaluation.Status.RUNNING)
    with pytest.raises(ValidationError, match="is running; choose a set once it is done"):
        services.evaluation_choose_subset(evaluation=read_earlier, subset=["DWI"])
    saved = Evaluation.objects.get(pk=evaluation.pk)
    assert saved.status == Evaluation.Status.RUNNING and saved.chosen_subset == evaluation.chosen_subset


def test_every_job_status_names_one_evaluation_status():
    assert set(services.STATUS_OF_JOB) == set(JobStatus)
    assert set(services.STATUS_OF_JOB.values()) == set(Evaluation.Status)

def fake_model_predictions(monkeypatch, value: float = 0.9):
    seen = []

    def predict(model, crops):
        seen.append((model.repeat, model.fold, crops.shape, str(crops.dtype)))
        return np.full(crops.shape[0], value, dtype=np.float32)

    monkeypatch.setattr(runners, "predict_crops", predict)
    return seen


def test_a_new_case_gets_a_prediction_from_every_model(run, monkeypatch, media):
    evaluation = evaluate(run)
    case = make_new_case()
    seen = fake_model_predictions(monkeypatch)
    job = services.case_prediction_start(case=case, evaluation=evaluation)
    job = jobs.job_run(job_pk=job.pk, worker="test")
    assert job.status == JobStatus.SUCCEEDED, job.error
    # every model saw the 6 boxed slices (3 T2axi + 3 DWI) as crops of the run's input size
    assert sorted((r, f) for r, f, _, _ in seen) == [(r, f) for r in range(3) for f in range(2)]
    assert {shape for _, _, shape, _ in seen} == {(6, 32, 32)} and {d for *_, d in seen} == {"uint8"}
    result = CaseAIResult.objects.get(evaluation=evaluation, case=case)
    assert result.is_deployment and result.n_ensembles == 3
    assert result.per_sequence == {"DWI": 100.0, "T2axi": 100.0}     # every model says 0.9 everywhere
    chosen = evaluation.results["chosen"]
    score = len(chosen["codes"])                                      # all of the set's sequences call sarcoma
    assert result.likelihood == pytest.approx(100.0 * np.mean([score >= t for t in chosen["thresholds"]]))
    assert job.result["slices"] == 6

    stored = np.load(selectors.case_prediction_path(evaluation, case.pk))
    assert stored["fold_probs"].shape == (3, 2, 6)
    seen.clear()                                                      # same crops again: nothing re-predicted
    jobs.job_run(job_pk=services.case_prediction_start(case=case, evaluation=evaluation).pk, worker="t")
    assert seen == []
    services.evaluation_choose_subset(evaluation=evaluation, subset=["DWI", "T2axi"])
    assert CaseAIResult.objects.get(evaluation=evaluation, case=case).subset == ["DWI", "T2axi"]


def test_new_case_predictions_are_refused_for_cohort_cases_and_cases_without_boxes(run):
    evaluation = evaluate(run)
    with pytest.raises(ValidationError, match="which trained these models"):
        services.case_prediction_start(case=run.cohort.cases.first(), evaluation=evaluation)
    with pytest.raises(ValidationError, match="no tumour boxes"):
        services.case_prediction_start(case=make_new_case(boxed=0), evaluation=evaluation)


def test_crops_follow_the_cohort_build(media):
    from imaging import crops
    from imaging.cohorts import series_uint8_slices

    case = make_new_case(codes=("T2axi", "unused", "DWI"))
    slices = runners.case_tumour_slices(case, size=32, margin=0.15)
    assert slices.crops.shape == (6, 32, 32) and slices.sequence_idx.tolist() == [T2AXI] * 3 + [DWI] * 3
    series = case.series.get(mapped_code="DWI")
    box = series.boxes.get(slice_index=1)
    image = series_uint8_slices(series, [1])[0]
    expected = crops.tumour_crop(image, (box.x0, box.y0, box.x1, box.y1), margin=0.15, size=32)
    np.testing.assert_array_equal(slices.crops[4], expected)


def test_pages_csv_and_figures_for_coordinators_and_admins(run, client, coordinator, admin_user):
    evaluation = evaluate(run)
    client.force_login(coordinator)
    html = client.get(f"/inference/evaluations/{evaluation.pk}/").content.decode()
    assert "The 10 best sets" in html and html.count("●") >= 10 and "subset-form" in html
    assert all(case.pseudonym in html for case in run.cohort.cases.all())
    for name in ("per-sequence", "roc", "coverage"):
        response = client.get(f"/inference/evaluations/{evaluation.pk}/figures/{name}.svg")
        assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
        assert b"<svg" in response.content
    response = client.get(f"/inference/evaluations/{evaluation.pk}/subsets.csv")
    assert response.status_code == 200 and response.streaming
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1 + 32767 and rows[0][:3] == ["ensemble_rank", "mask", "sequences"]
    top = evaluation.results["ensemble"]["top"][0]
    header = rows[0]
    assert int(rows[1][header.index("mask")]) == top["mask"] and rows[1][0] == "1"
    assert float(rows[1][header.index("ensemble_ss_avg_percent")]) == pytest.approx(top["ss_avg_percent"], abs=1e-3)
    assert sorted(int(r[1]) for r in rows[1:]) == list(range(1, 32768))
    assert client.get("/api/inference/evaluations/").json()["count"] == 1
    assert len(client.get(f"/api/inference/evaluations/{evaluation.pk}/cases/").json()["results"]) == 12

    response = client.post(f"/inference/evaluations/{evaluation.pk}/subset/", {"subset": ["T2axi"]})
    assert response.status_code == 302
    evaluation.refresh_from_db()
    assert evaluation.chosen_subset == ["T2axi"]
    assert client.get("/inference/evaluations/new/").status_code == 403   # coordinators do not start gpu jobs

    client.force_login(admin_user)
    assert "Evaluate this run" in client.get(f"/training/{run.pk}/").content.decode()
    response = client.post("/inference/evaluations/new/", {"run": run.pk, "rule": "mean", "cutoff": 0.5})
    assert response.status_code == 302 and Evaluation.objects.count() == 2


def test_readers_never_see_evaluations(run, client, reader):
    evaluation = evaluate(run)
    client.force_login(reader)
    assert client.get("/inference/evaluations/").status_code == 403
    for url in (f"/inference/evaluations/{evaluation.pk}/", f"/inference/evaluations/{evaluation.pk}/subsets.csv",
                f"/inference/evaluations/{evaluation.pk}/figures/roc.svg",
                f"/api/inference/evaluations/{evaluation.pk}/"):
        assert client.get(url).status_code == 404, url
    assert client.get("/api/inference/evaluations/").json()["count"] == 0
    assert client.get(f"/api/inference/evaluations/{evaluation.pk}/cases/").json()["count"] == 0
    assert client.post(f"/inference/evaluations/{evaluation.pk}/subset/", {"subset": ["DWI"]}).status_code == 404
    assert client.get(f"/inference/predict/?case={run.cohort.cases.first().pk}").status_code == 403


def test_the_case_page_form_starts_a_prediction(run, client, coordinator):
    evaluation = evaluate(run)
    case = make_new_case()
    client.force_login(coordinator)
    assert evaluation.name in client.get(f"/inference/predict/?case={case.pk}").content.decode()
    response = client.post("/inference/predict/", {"case": case.pk, "evaluation": evaluation.pk})
    assert response.status_code == 302 and response["Location"].startswith("/jobs/")
    cohort_case = run.cohort.cases.first()
    html = client.post("/inference/predict/", {"case": cohort_case.pk, "evaluation": evaluation.pk}).content.decode()
    assert "which trained these models" in html
    assert client.get("/inference/predict/?case=abc").status_code == 404

    from django.template.loader import render_to_string

    snippet = render_to_string("inference/_case_ai.html", {"case": cohort_case, "is_coordinator_role": True})
    likelihood = CaseAIResult.objects.get(evaluation=evaluation, case=cohort_case).likelihood
    assert f"{likelihood:.1f} %" in snippet and f"/inference/predict/?case={cohort_case.pk}" in snippet
    assert render_to_string("inference/_case_ai.html", {"case": cohort_case}).strip() == ""


def test_commands_evaluate_and_predict(run, monkeypatch):
    out = io.StringIO()
    call_command("evaluate", "--training-job", str(run.job_id), "--inline", stdout=out)
    assert "top-10 sets, ensembles" in out.getvalue() and "12 cases have an AI result" in out.getvalue()
    assert "SYNTHETIC" in out.getvalue() and "100.0% 9/9" in out.getvalue()   # 6 models + 3 analysis steps
    evaluation = Evaluation.objects.get()
    assert evaluation.training_run == run and evaluation.status == Evaluation.Status.DONE
    with pytest.raises(CommandError, match="no training run has job 999999"):
        call_command("evaluate", "--training-job", "999999", "--inline", stdout=io.StringIO())
    with pytest.raises(CommandError, match="cutoff"):
        call_command("evaluate", "--run", str(run.pk), "--cutoff", "0", stdout=io.StringIO())

    fake_model_predictions(monkeypatch, value=0.1)
    case = make_new_case()
    out = io.StringIO()
    call_command("predict", "--case", case.pseudonym, "--run", str(run.pk), "--inline", stdout=out)
    assert f"{case.pseudonym}: sarcoma likelihood" in out.getvalue() and "DWI 0%" in out.getvalue()
    with pytest.raises(CommandError, match="no case with pseudonym"):
        call_command("predict", "--case", "NOPE", "--run", str(run.pk), stdout=io.StringIO())


def test_training_run_for_takes_a_job_id_or_a_run_id(run):
    assert selectors.training_run_for(training_job=run.job_id) == run
    assert selectors.training_run_for(run=run.pk) == run
    with pytest.raises(ValidationError, match="--training-job ID or --run ID"):
        selectors.training_run_for()
    with pytest.raises(ValidationError, match="has no finished evaluation"):
        selectors.latest_evaluation_of(run)


def test_roc_points_by_hand():
    # scores of 2 sarcoma (2, 0) and 2 leiomyoma (-2, 0) patients, one set of 2 sequences
    curves = roc_points(np.array([[2, 0, -2, 0]]), np.array([True, True, False, False]), max_score=2)
    assert curves == [{"fpr": [0.0, 0.0, 0.5, 1.0], "tpr": [0.0, 0.5, 1.0, 1.0]}]


def test_json_safe_turns_nan_into_null():
    assert services.json_safe({"a": np.float64("nan"), "b": [np.int64(3), np.float32(0.5)]}) == {
        "a": None, "b": [3, 0.5]}
