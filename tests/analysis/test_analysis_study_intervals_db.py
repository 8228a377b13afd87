"""The statistics page, its exports and its API show a 95 % CI for every figure and say which likelihoods the
DNN row uses (issue 14, items 3 and 4). GENERATED study of factories_analysis, SYNTHETIC."""

import csv
import io

import numpy as np
import pytest
from django.urls import reverse
from django.utils.html import escape

from analysis import exports, selectors, services
from analysis import study_stats as ss
from core import intervals
from factories_analysis import EVALUATION_RESULTS, TRUTH, build_study
from inference.models import CaseAIResult

pytestmark = pytest.mark.django_db

NESTED = (91.67, 45.83, 41.67, 8.33, 33.33, 12.5)       # DNN on these: TP1 FN2 TN3 FP0 (nested calls)
METHODS = {"paper_style": {"label": "chosen on the evaluated patients", "n_sets": 10,
                           "sensitivity": {"estimate": 89.8, "ci_low": 80.1, "ci_high": 95.0},
                           "specificity": {"estimate": 91.7, "ci_low": 87.0, "ci_high": 94.8},
                           "accuracy": {"estimate": 91.2, "ci_low": 87.2, "ci_high": 94.0},
                           "ss_avg": {"estimate": 90.75, "ci_low": 85.5, "ci_high": 94.9},
                           "auc": {"estimate": 93.0, "ci_low": 89.0, "ci_high": 97.0, "median": 93.1}}}


def _with_nested(built, nested=NESTED, **extra) -> None:
    evaluation = built["evaluation"]
    evaluation.results = {**EVALUATION_RESULTS, **extra,
                          "nested_likelihood": {str(c.pk): x for c, x in zip(built["cases"], nested, strict=True)}}
    evaluation.save(update_fields=["results"])


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def _files(study) -> dict[str, str]:
    return exports.report_files(services.study_report(study=study))


def test_study_records_take_the_nested_likelihood_for_cases_of_the_training_cohort_only():
    built = build_study()
    _with_nested(built)
    CaseAIResult.objects.filter(case=built["cases"][5]).update(is_deployment=True)   # a new case
    cases = selectors.study_records(built["study"]).cases
    assert [c.nested_likelihood for c in cases] == [*NESTED[:5], None]
    assert [c.in_training_cohort for c in cases] == [True] * 5 + [False]
    assert [c.dnn_source for c in cases] == [ss.NESTED] * 5 + [ss.NEW_CASE]


def test_the_page_exports_and_api_say_the_dnn_row_is_nested_and_use_it(client, coordinator):
    built = build_study()
    _with_nested(built)
    study = built["study"]
    files = _files(study)
    (row, *_) = _csv(files["dnn.csv"])
    assert row["likelihood_source"] == "nested (out-of-sample)"
    assert (row["tp"], row["fn"], row["tn"], row["fp"]) == ("1", "2", "3", "0")
    assert row["sensitivity_percent"] == "33.33"
    low = intervals.wilson(1, 3)
    assert (row["sensitivity_ci_low_percent"], row["sensitivity_ci_high_percent"]) == (
        exports.metric_text("sensitivity", low.low), exports.metric_text("sensitivity", low.high))
    cases = {r["case"]: r for r in _csv(files["cases.csv"])}
    assert cases["case 002"]["ai_likelihood"] == "62.50" and cases["case 002"]["dnn_likelihood"] == "45.83"
    assert cases["case 002"]["dnn_likelihood_source"] == "nested (out-of-sample)"
    assert cases["case 002"]["dnn_missed"] == "yes" and cases["case 005"]["dnn_missed"] == "no"
    vs_dnn = [r for r in _csv(files["comparisons.csv"]) if r["kind"] == "vs_dnn" and r["test"]]
    assert vs_dnn and all("nested (out-of-sample)" in r["note"] for r in vs_dnn)
    assert all(r["mean_b"] == row[exports.metric_column(r["metric"])] for r in vs_dnn)
    assert "DNN row: nested (out-of-sample) likelihoods" in files["README.txt"]

    client.force_login(coordinator)
    page = client.get(reverse("analysis_study", args=[study.pk])).content.decode()
    assert 'id="dnn-source"' in page and "uses nested (out-of-sample) likelihoods" in page
    api = client.get(reverse("analysis_api_study", args=[study.pk])).json()
    assert api["dnn_source"] == "nested (out-of-sample) likelihoods"
    assert api["dnn"][0]["likelihood_source"] == "nested (out-of-sample)"


def test_without_nested_likelihoods_everything_says_in_sample(client, coordinator):
    study = build_study()["study"]
    files = _files(study)
    assert _csv(files["dnn.csv"])[0]["likelihood_source"] == "in-sample"
    assert {r["dnn_likelihood_source"] for r in _csv(files["cases.csv"])} == {"in-sample"}
    client.force_login(coordinator)
    page = client.get(reverse("analysis_study", args=[study.pk])).content.decode()
    assert "uses in-sample likelihoods" in page
    assert client.get(reverse("analysis_api_study", args=[study.pk])).json()["dnn_source"] == "in-sample likelihoods"


def test_every_statistics_table_has_ci_columns_and_the_page_shows_every_figure_with_its_ci(client, coordinator):
    built = build_study()
    study = built["study"]
    files = _files(study)
    for name in ("reader_statistics.csv", "group_statistics.csv", "dnn.csv"):
        header = files[name].splitlines()[0].split(",")
        for metric in ss.METRICS:
            assert set(exports.ci_columns(metric)) <= set(header), (name, metric)
    truth = np.array([t == "sarcoma" for t in TRUTH])
    dnn = _csv(files["dnn.csv"])[0]
    auc = intervals.delong_auc(np.array([r.likelihood for r in CaseAIResult.objects.filter(
        case__in=built["cases"]).order_by("case_id")]), truth)
    assert (dnn["auc_ci_low"], dnn["auc_ci_high"]) == (f"{auc.low:.4f}", f"{auc.high:.4f}")
    for row in _csv(files["reader_statistics.csv"]):
        if row["state"] == "complete":
            assert all(row[c] for m in ss.METRICS for c in exports.ci_columns(m)), row["reader"]

    client.force_login(coordinator)
    page = client.get(reverse("analysis_study", args=[study.pk])).content.decode()
    assert 'id="intervals-note"' in page and "Wilson" in page and "DeLong" in page and "bootstrap" in page
    assert escape(ss.GROUP_INTERVAL_METHOD) in page
    dnn_cell = f"<td>{dnn['ss_avg_percent']} ({dnn['ss_avg_ci_low_percent']}–{dnn['ss_avg_ci_high_percent']})</td>"
    assert dnn_cell in page
    api = client.get(reverse("analysis_api_study", args=[study.pk])).json()
    assert "Wilson" in api["intervals"]
    assert api["group_statistics"][0].keys() >= set(exports.ci_columns("auc"))


def test_the_evaluation_rows_carry_its_stored_intervals_and_wilson_where_it_stored_none():
    built = build_study()
    top_ci = {"ss_avg": {"estimate": 90.75, "ci_low": 86.0, "ci_high": 94.5},
              "auc": {"estimate": 93.0, "ci_low": 90.0, "ci_high": 96.0, "median": 93.2},
              "honest_ss_avg": {"estimate": 86.5, "ci_low": 81.0, "ci_high": 91.0}}
    ensemble = {**EVALUATION_RESULTS["ensemble"], "top_mean_ci": top_ci}
    _with_nested(built, methods=METHODS, ensemble=ensemble)
    rows = {r["source"]: r for r in _csv(_files(built["study"])["dnn.csv"])}
    paper = rows["evaluation (all its patients): chosen on the evaluated patients"]
    assert paper["likelihood_source"] == "paper_style"
    assert (paper["ss_avg_percent"], paper["ss_avg_ci_low_percent"], paper["ss_avg_ci_high_percent"]) == (
        "90.75", "85.50", "94.90")
    assert (paper["auc"], paper["auc_ci_low"], paper["auc_ci_high"]) == ("0.9300", "0.8900", "0.9700")
    top10 = next(r for label, r in rows.items() if "mean of the top-10 sequence sets" in label)
    assert (top10["ss_avg_ci_low_percent"], top10["auc_ci_high"]) == ("86.00", "0.9600")      # stored
    expected = intervals.wilson(0.898 * 63, 63)                     # 63 sarcomas in EVALUATION_RESULTS
    assert top10["sensitivity_ci_low_percent"] == exports.metric_text("sensitivity", expected.low)
    assert "Wilson on the cohort's patients where it stored none" in top10["interval_note"]
    honest = next(r for label, r in rows.items() if "thresholds from the training folds" in label)
    assert (honest["ss_avg_ci_low_percent"], honest["ss_avg_ci_high_percent"]) == ("81.00", "91.00")
    single = next(r for label, r in rows.items() if "single models" in label)
    assert single["ss_avg_ci_low_percent"] == "" and "no stored interval for SS-Avg, AUC" in single["interval_note"]
