"""Issue 14 in the evaluation job, page, CSV and JSON (SYNTHETIC data, no Keras): the three methods
(paper-style, training-fold threshold, nested) with 95 % CIs, the optimism, each case's nested likelihood, CIs
for the top-10 means and the shown sets, the AUC median in the subsets CSV, and a fold whose complement
lacks a class."""

import csv
import io
import itertools

import numpy as np
import pytest

from core.intervals import wilson
from factories_inference import fake_trained_run, make_cohort
from imaging.models import Case
from inference import selectors, services, store
from inference.models import Evaluation
from inference.nested import METHOD_LABELS, METHODS, NESTED_CAVEAT, nested_evaluation
from jobs import services as jobs
from jobs.models import JobStatus

pytestmark = [pytest.mark.django_db(transaction=True)]
METRICS = ("ss_avg", "sensitivity", "specificity", "accuracy", "auc")


@pytest.fixture(autouse=True)
def media(tmp_path, settings, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setattr("jobs.services.job_enqueue", lambda *, job: None)
    return settings.MEDIA_ROOT


def evaluate(run, echo=None) -> Evaluation:
    evaluation = services.evaluation_start(run=run, enqueue=False)
    job = jobs.job_run(job_pk=evaluation.job.pk, worker="test", echo=echo)
    assert job.status == JobStatus.SUCCEEDED, job.error
    evaluation.refresh_from_db()
    return evaluation


@pytest.fixture
def evaluation() -> Evaluation:
    """12 SYNTHETIC patients (6 sarcoma), 2 folds, 3 repeats."""
    return evaluate(fake_trained_run(make_cohort(), repeats=3))


def nested_again(evaluation):
    """The three methods recomputed from the evaluation's own slice probabilities (ensemble calls, folds)."""
    data = selectors.evaluation_probs(evaluation)
    patients = data.patients()
    ens_calls, _ = selectors.member_calls(evaluation, data, patients)
    return nested_evaluation(ens_calls, patients.truth, patients.fold, top=10), patients


def test_the_results_hold_the_three_methods_with_their_95_percent_intervals(evaluation):
    results = evaluation.results
    methods = results["methods"]
    assert set(methods) == set(METHODS)          # a JSON object: PostgreSQL's jsonb keeps no key order
    assert [row["method"] for row in selectors.method_rows(evaluation)] == list(METHODS)   # the page's order
    result, patients = nested_again(evaluation)
    n1, n0 = int(patients.truth.sum()), int((~patients.truth).sum())
    for method in result.methods:
        block = methods[method.method]
        assert block["label"] == METHOD_LABELS[method.method] and block["n_sets"] == 10
        for metric in METRICS:
            b = block[metric]
            assert 0.0 <= b["ci_low"] <= b["estimate"] <= b["ci_high"] <= 100.0, (method.method, metric, b)
        assert block["ss_avg"]["estimate"] == pytest.approx(100 * method.ss_avg)
        assert block["auc"]["estimate"] == pytest.approx(100 * method.member_auc.mean())
        assert block["auc"]["median"] == pytest.approx(100 * np.median(method.member_auc))
        assert block["ss_avg"]["resamples"] == 2000 and block["ss_avg"]["seed"] == 0
        for metric, n in (("sensitivity", n1), ("specificity", n0), ("accuracy", n1 + n0)):
            expected = wilson(block[metric]["estimate"] / 100 * n, n)     # Wilson on the patients
            assert (block[metric]["ci_low"], block[metric]["ci_high"]) == pytest.approx(
                (100 * expected.low, 100 * expected.high))
    assert results["optimism_points"] == pytest.approx(methods["paper_style"]["ss_avg"]["estimate"]
                                                       - methods["nested"]["ss_avg"]["estimate"])
    assert results["nested_caveat"] == NESTED_CAVEAT
    assert [f["fold"] for f in results["nested_sets"]] == [1, 2]
    # the paper-style and training-fold rows are the headline's top-10 means, now with their CIs
    top = results["ensemble"]["top_mean"]
    assert methods["paper_style"]["ss_avg"]["estimate"] == pytest.approx(top["ss_avg_percent"])
    assert methods["training_fold_threshold"]["ss_avg"]["estimate"] == pytest.approx(top["honest_ss_avg_percent"])


def test_the_top_10_means_and_the_shown_sets_carry_their_intervals(evaluation):
    results = evaluation.results
    for kind in ("ensemble", "single"):
        mean, ci = results[kind]["top_mean"], results[kind]["top_mean_ci"]
        for metric in ("ss_avg", "sensitivity", "specificity", "accuracy"):
            assert ci[metric]["estimate"] == pytest.approx(mean[f"{metric}_percent"])
            assert ci[metric]["ci_low"] <= ci[metric]["estimate"] <= ci[metric]["ci_high"]
        assert ci["auc"]["estimate"] == pytest.approx(mean["auc_percent"])      # mean over 10 sets × members
        assert ci["auc"]["median"] == pytest.approx(mean["auc_median_percent"])
        assert ci["honest_ss_avg"]["estimate"] == pytest.approx(mean["honest_ss_avg_percent"])
        for row in selectors.top_table(evaluation, kind):
            assert row["ci"]["sensitivity"]["estimate"] == pytest.approx(row["sensitivity_percent"])
            assert row["ci"]["ss_avg"]["estimate"] == pytest.approx(row["ss_avg_percent"])
            assert row["ci"]["honest_ss_avg"]["estimate"] == pytest.approx(row["honest_ss_avg_percent"])
    assert results["ensemble"]["top_mean_ci"]["honest_ss_avg"] == pytest.approx(
        results["methods"]["training_fold_threshold"]["ss_avg"])          # the same calls, the same bootstrap
    for row in selectors.per_sequence_rows(evaluation):
        if row["coverage"]:
            assert row["ensemble_ci"]["ss_avg"]["estimate"] == pytest.approx(row["ensemble_ss_avg_mean_percent"])
            assert row["single_ci"]["ss_avg"]["estimate"] == pytest.approx(row["single_ss_avg_mean_percent"])
    chosen = selectors.chosen_intervals(evaluation)                          # the top-ranked set by default
    assert chosen["ensemble"]["specificity"]["estimate"] == pytest.approx(
        results["chosen"]["ensemble"]["specificity_percent"])


def test_nested_case_likelihoods_are_the_nested_vote_shares_of_the_cohort_cases(evaluation):
    likelihoods = selectors.nested_case_likelihoods(evaluation)
    result, patients = nested_again(evaluation)
    assert set(likelihoods) == set(evaluation.training_run.cohort.cases.values_list("pk", flat=True))
    expected = dict(zip(patients.case_ids.tolist(), (100 * result.nested.vote_share).tolist(), strict=True))
    assert likelihoods == pytest.approx(expected)
    assert all(isinstance(k, int) for k in likelihoods)
    older = Evaluation(results={k: v for k, v in evaluation.results.items() if k != "nested_likelihood"})
    assert selectors.nested_case_likelihoods(older) == {}


def test_the_job_reports_the_nested_search_as_its_own_step(media):
    seen = []
    evaluate(fake_trained_run(make_cohort(), repeats=3), echo=lambda job: seen.append((job.done, job.total, job.step)))
    steps = [step for _, _, step in seen]
    search = next(i for i, s in enumerate(steps) if "search over all 32,767" in s)
    nested = next(i for i, s in enumerate(steps) if "nested search" in s)
    per_case = next(i for i, s in enumerate(steps) if "sarcoma likelihood of every case" in s)
    assert search < nested < per_case
    assert seen[nested][:2] == (7, 9) and seen[-1][:2] == (9, 9)        # 6 models, then 3 analysis steps


def test_the_page_shows_the_three_labelled_methods_with_cis_and_the_optimism(evaluation, client, coordinator):
    client.force_login(coordinator)
    html = client.get(f"/inference/evaluations/{evaluation.pk}/").content.decode()
    assert 'id="methods-table"' in html
    for name in METHODS:
        assert f'data-method="{name}"' in html and METHOD_LABELS[name] in html
    section = html[html.index('id="methods-table"'):html.index('id="nested-caveat"')]
    assert section.count("95 % CI") >= 3 * 5                               # every figure of the three rows
    optimism = evaluation.results["optimism_points"]
    assert 'id="optimism"' in html and f"Optimism: {optimism:.1f} points" in html
    assert NESTED_CAVEAT.replace("'", "&#x27;") in html
    assert f"/inference/evaluations/{evaluation.pk}/subsets.csv?format=methods" in html
    headline = html[html.index('id="top-means"'):html.index('id="auc-over-ensembles"')]
    assert headline.count("95 % CI") == 2 * 5                               # ensembles and single models
    assert "No CIs are stored" not in html and "Recomputed from the slice probabilities" not in html


def test_the_methods_csv_is_the_three_method_table_with_cis(evaluation, client, coordinator):
    client.force_login(coordinator)
    response = client.get(f"/inference/evaluations/{evaluation.pk}/subsets.csv?format=methods")
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    assert f"evaluation-{evaluation.pk}-methods.csv" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["method"] for r in rows] == list(METHODS)
    methods = evaluation.results["methods"]
    for row in rows:
        block = methods[row["method"]]
        assert row["how_chosen"] == METHOD_LABELS[row["method"]]
        assert float(row["ss_avg_percent"]) == pytest.approx(block["ss_avg"]["estimate"], abs=1e-4)
        assert float(row["sensitivity_ci_low_percent"]) == pytest.approx(block["sensitivity"]["ci_low"], abs=1e-4)
        assert float(row["auc_mean_ci_high_percent"]) == pytest.approx(block["auc"]["ci_high"], abs=1e-4)
        assert float(row["auc_median_percent"]) == pytest.approx(block["auc"]["median"], abs=1e-4)
        assert row["ss_avg_bootstrap_resamples"] == "2000"
    assert [r["optimism_points"] != "" for r in rows] == [False, False, True]
    assert float(rows[2]["optimism_points"]) == pytest.approx(evaluation.results["optimism_points"], abs=1e-4)


def test_the_api_returns_the_methods_and_the_optimism(evaluation, client, coordinator):
    client.force_login(coordinator)
    results = client.get(f"/api/inference/evaluations/{evaluation.pk}/").json()["results"]
    assert set(results["methods"]) == set(METHODS)
    assert results["methods"]["nested"]["ss_avg"]["ci_low"] <= results["methods"]["nested"]["ss_avg"]["estimate"]
    assert results["optimism_points"] == pytest.approx(evaluation.results["optimism_points"])


def test_the_subsets_csv_has_the_auc_median_per_kind_and_older_tables_leave_it_empty(evaluation):
    header, first = itertools.islice(selectors.subset_csv_rows(evaluation), 2)
    row = dict(zip(header, first, strict=True))
    top = evaluation.results["ensemble"]["top"][0]
    assert row["ensemble_auc_median_percent"] == pytest.approx(top["auc_median_percent"], abs=1e-3)
    assert row["ensemble_auc_percent"] == pytest.approx(top["auc_percent"], abs=1e-3)
    assert 0.0 <= row["single_auc_median_percent"] <= 100.0
    path = selectors.evaluation_dir(evaluation) / store.SUBSETS_FILE
    table = store.read_subset_table(path)
    store.save_npz_atomic(path, **{k: v for k, v in table.items() if not k.endswith("_auc_median")})
    header, first = itertools.islice(selectors.subset_csv_rows(evaluation), 2)
    row = dict(zip(header, first, strict=True))
    assert row["ensemble_auc_median_percent"] == "" and row["single_auc_median_percent"] == ""
    assert row["ensemble_auc_percent"] == pytest.approx(top["auc_percent"], abs=1e-3)


def test_a_fold_whose_complement_lacks_a_class_leaves_a_note_and_keeps_the_rest(client, coordinator):
    cohort = make_cohort("tcx")
    split = cohort.fold_split
    truth = dict(Case.objects.filter(pk__in=[int(k) for k in split.assignment]).values_list("pk", "truth"))
    leiomyomas = iter(itertools.cycle((0, 1)))
    # every sarcoma in fold 1: fold 2 (the complement of fold 1) has leiomyomas only
    split.assignment = {k: 0 if truth[int(k)] == "sarcoma" else next(leiomyomas) for k in split.assignment}
    split.save(update_fields=["assignment"])
    evaluation = evaluate(fake_trained_run(cohort, repeats=3))
    results = evaluation.results
    assert "methods" not in results and "optimism_points" not in results
    assert "the other folds lack sarcoma or leiomyoma patients" in results["methods_unavailable"]
    assert "ensemble_honest_unavailable" in results
    assert len(results["ensemble"]["top"]) == 10 and results["chosen"]["mask"] == results["top_mask"]
    assert selectors.nested_case_likelihoods(evaluation) == {} and selectors.method_rows(evaluation) == []
    client.force_login(coordinator)
    html = client.get(f"/inference/evaluations/{evaluation.pk}/").content.decode()
    assert 'id="methods-unavailable"' in html and "no three-method table" in html
    assert client.get(f"/inference/evaluations/{evaluation.pk}/subsets.csv?format=methods").status_code == 404
