"""Issue 14 on the evaluation page (SYNTHETIC, no Keras): the AUC as mean and median over the ensembles,
the cohort's cases left out for having no tumour slices, and "missed by the DNN" by the one definition.
The three-method table with its CIs is in test_inference_honest_evaluation.py."""

import hashlib

import numpy as np
import pytest

from core import metrics
from factories_inference import fake_trained_run, make_cohort
from imaging.models import Case, CohortCase
from inference import selectors, services
from inference.models import CaseAIResult, Evaluation
from inference.predictions import patient_scores
from jobs import services as jobs
from jobs.models import JobStatus

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def media(tmp_path, settings, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setattr("jobs.services.job_enqueue", lambda *, job: None)
    return settings.MEDIA_ROOT


def make_synthetic_case(truth: str, *, prefix: str) -> Case:
    return Case.objects.create(pseudonym=f"{prefix}001", truth=truth, is_synthetic=True,
                               source_key_hash=hashlib.sha256(prefix.encode()).hexdigest())


@pytest.fixture
def evaluation() -> Evaluation:
    run = fake_trained_run(make_cohort(), repeats=3)
    evaluation = services.evaluation_start(run=run, enqueue=False)
    job = jobs.job_run(job_pk=evaluation.job.pk, worker="test")
    assert job.status == JobStatus.SUCCEEDED, job.error
    evaluation.refresh_from_db()
    return evaluation


def test_the_auc_is_given_as_mean_and_median_over_the_ensembles(evaluation):
    auc = selectors.auc_over_ensembles(evaluation)
    stored = evaluation.results["ensemble"]["top_mean"]["auc_percent"]
    assert auc["ensemble"]["top_mean"]["mean"] == pytest.approx(stored, abs=1e-9)   # the stored mean, again
    # the chosen set's median by hand: one AUC per ensemble from its patients' ±1 scores
    data = selectors.evaluation_probs(evaluation)
    patients = data.patients()
    ens_calls, _ = selectors.member_calls(evaluation, data, patients)
    scores = patient_scores(ens_calls, evaluation.results["chosen"]["mask"])
    per_member = [100 * metrics.roc_auc(patients.truth, s) for s in scores]
    assert auc["ensemble"]["chosen"]["median"] == pytest.approx(np.median(per_member))
    assert auc["ensemble"]["chosen"]["mean"] == pytest.approx(np.mean(per_member))
    assert set(auc) == {"ensemble", "single", "stored"} and auc["stored"] is True   # read, not recomputed
    assert evaluation.results["chosen"]["ensemble"]["auc_median_percent"] == pytest.approx(np.median(per_member))
    top = auc["ensemble"]["top_mean"]
    assert top["ci"]["low"] <= top["mean"] <= top["ci"]["high"]                    # DeLong, of the mean


def test_an_evaluation_finished_before_the_median_was_stored_gets_it_recomputed(evaluation):
    stored = selectors.auc_over_ensembles(evaluation)
    results = evaluation.results
    for part in (results["ensemble"]["top_mean"], results["single"]["top_mean"], results["chosen"]["ensemble"],
                 results["chosen"]["single"]):
        del part["auc_median_percent"]
    Evaluation.objects.filter(pk=evaluation.pk).update(results=results)
    evaluation.refresh_from_db()
    recomputed = selectors.auc_over_ensembles(evaluation)
    assert recomputed["stored"] is False
    for kind in ("ensemble", "single"):
        for entry in ("top_mean", "chosen"):
            assert recomputed[kind][entry]["median"] == pytest.approx(stored[kind][entry]["median"])
            assert recomputed[kind][entry]["mean"] == pytest.approx(stored[kind][entry]["mean"])


def test_cohort_cases_without_tumour_slices_are_listed_with_the_reason(evaluation, client, coordinator):
    cohort = evaluation.training_run.cohort
    bare = make_synthetic_case("sarcoma", prefix="SYN-DROP-")
    unmapped = make_synthetic_case("leiomyoma", prefix="SYN-UNMP-")
    series = unmapped.series.create(series_uid=f"2.25.{unmapped.pk}01", series_number=1, mapped_code="unused",
                                    n_slices=3, rows=8, cols=8)
    series.boxes.create(slice_index=1, x0=1, y0=1, x1=5, y1=5)
    for case in (bare, unmapped):
        CohortCase.objects.create(cohort=cohort, case=case, truth=case.truth)
    dropped = {d["case"].pseudonym: d["reason"] for d in selectors.dropped_cases(evaluation)}
    assert dropped == {bare.pseudonym: "no tumour slices: no tumour box on any series",
                       unmapped.pseudonym: "no tumour slices: its boxes are on series not mapped to one of "
                                           "the 15 sequence codes"}
    client.force_login(coordinator)
    html = client.get(f"/inference/evaluations/{evaluation.pk}/").content.decode()
    assert 'id="dropped-cases"' in html and bare.pseudonym in html and unmapped.pseudonym in html
    assert 'id="auc-over-ensembles"' in html and "Median (as the paper)" in html
    assert 'id="ai-wrong-definition"' in html and "at exactly 50 %" in html


def test_a_leiomyoma_at_exactly_50_percent_is_missed_by_the_dnn_in_the_case_table(evaluation):
    leiomyoma = CaseAIResult.objects.filter(evaluation=evaluation, case__truth="leiomyoma").first()
    sarcoma = CaseAIResult.objects.filter(evaluation=evaluation, case__truth="sarcoma").first()
    CaseAIResult.objects.filter(pk__in=[leiomyoma.pk, sarcoma.pk]).update(likelihood=50.0)
    rows = {r["case"].pk: r for r in selectors.case_result_table(evaluation)["rows"]}
    assert rows[leiomyoma.case_id]["missed"] is True
    assert rows[sarcoma.case_id]["missed"] is False
