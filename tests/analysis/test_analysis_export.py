"""Exports of the GENERATED study: read them back, recompute everything with analysis.metrics, ttests and
mrmc from the exported reads, and check the statistics files (and each other) agree."""

import csv
import io
import json
import math
from collections import defaultdict

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from analysis import exports, mrmc_io, services, study_stats, ttests
from core import metrics
from factories_analysis import EXPECTED_MISSED, build_study

pytestmark = pytest.mark.django_db
METRICS = ("accuracy", "sensitivity", "specificity", "ss_avg", "auc")


@pytest.fixture
def exported(tmp_path):
    built = build_study()
    out = tmp_path / "export"
    call_command("export_study", str(built["study"].pk), "--out", str(out), "--no-figures",
                 stdout=io.StringIO())
    return built, out


def _rows(path):
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _text(metric, value):
    return exports.metric_text(metric, value)


def _recompute(reads):
    """metric values per (reader, exam) from the reads CSV alone, with analysis.metrics."""
    by = defaultdict(list)
    for r in reads:
        by[(r["reader"], int(r["exam"]))].append(r)
    out = {}
    for key, rows in by.items():
        truth = [r["truth"] for r in rows]
        counts = metrics.confusion_counts(truth, [r["call"] for r in rows])
        values = {"accuracy": metrics.accuracy(counts)}
        if counts.n_positive:
            values["sensitivity"] = metrics.sensitivity(counts)
        if counts.n_negative:
            values["specificity"] = metrics.specificity(counts)
        if counts.n_positive and counts.n_negative:
            values.update(ss_avg=metrics.ss_avg(counts),
                          auc=metrics.roc_auc(truth, [float(r["confidence"]) for r in rows]))
        out[key] = (len(rows), values)
    return out


def test_reads_csv_is_tidy_and_names_no_pseudonym(exported):
    built, out = exported
    reads = _rows(out / "reads.csv")
    assert tuple(reads[0]) == exports.READS_COLUMNS
    assert len(reads) == 4 * 2 * 6 + 3                 # four complete readers, R05's three exam-1 reads
    assert {r["reader"] for r in reads} == {"R01", "R02", "R03", "R04", "R05"}
    first = next(r for r in reads if r["reader"] == "R01" and r["exam"] == "1" and r["case"] == "case 003")
    assert first == {"study": built["study"].name, "reader": "R01", "group": "specialist",
                     "years_experience": "14", "exam": "1", "case": "case 003", "display_code": "A-1002",
                     "truth": "sarcoma", "call": "leiomyoma", "correct": "0", "confidence": "30",
                     "active_seconds": "30.0", "ai_likelihood_shown": ""}
    shown = {r["ai_likelihood_shown"] for r in reads if r["exam"] == "2" and r["case"] == "case 001"}
    assert shown == {"95.83"}
    everything = "".join(p.read_text() for p in out.iterdir() if p.is_file())
    for case in built["cases"]:
        assert case.pseudonym not in everything
    for user in built["readers"].values():
        assert user.username not in everything


def test_exam_1_and_exam_2_rows_of_a_case_join_on_the_study_label(exported):
    _, out = exported
    reads = _rows(out / "reads.csv")
    by_case = defaultdict(set)
    for r in reads:
        if r["reader"] == "R02":
            by_case[r["case"]].add((r["exam"], r["display_code"], r["truth"]))
    for rows in by_case.values():
        exams = {e for e, _, _ in rows}
        codes = {c for _, c, _ in rows}
        truths = {t for _, _, t in rows}
        assert exams == {"1", "2"} and len(codes) == 2 and len(truths) == 1   # two display codes, one case


def test_reader_statistics_equal_a_recomputation_from_the_exported_reads(exported):
    _, out = exported
    recomputed = _recompute(_rows(out / "reads.csv"))
    stats_rows = _rows(out / "reader_statistics.csv")
    assert len(stats_rows) == 10                          # 5 readers x 2 exams, R05's exam 2 "not started"
    for row in stats_rows:
        key = (row["reader"], int(row["exam"]))
        if key not in recomputed:
            assert row["state"] == "not started" and row["n_read"] == "0"
            continue
        n, values = recomputed[key]
        assert int(row["n_read"]) == n
        for metric in METRICS:
            assert row[exports.metric_column(metric)] == _text(metric, values.get(metric)), (key, metric)


def test_group_statistics_and_t_tests_equal_a_recomputation_from_the_exported_reads(exported):
    _, out = exported
    recomputed = _recompute(_rows(out / "reads.csv"))
    complete = {k: v for k, (n, v) in recomputed.items() if n == 6}
    groups = {"Specialists": ("R01", "R02"), "Practitioners": ("R03", "R04")}
    table = {(r["group"], r["exam"]): r for r in _rows(out / "group_statistics.csv")}
    for group, codes in groups.items():
        for exam in (1, 2):
            row = table[(group, str(exam))]
            assert row["readers"] == " ".join(codes)       # R05 (incomplete) is not in the mean
            for metric in METRICS:
                values = [complete[(c, exam)][metric] for c in codes]
                assert row[f"{exports.metric_column(metric)}_mean"] == _text(metric, np.mean(values))
                assert row[f"{exports.metric_column(metric)}_sd"] == _text(metric, np.std(values, ddof=1))
    tests = _rows(out / "comparisons.csv")
    paired = next(r for r in tests
                  if r["kind"] == "exams" and r["group"] == "All readers" and r["metric"] == "ss_avg")
    codes = ("R01", "R02", "R03", "R04")
    expected = ttests.paired_t_test([complete[(c, 1)]["ss_avg"] for c in codes],
                                    [complete[(c, 2)]["ss_avg"] for c in codes])
    assert paired["test"] == "paired" and paired["p"] == exports.p_text(expected.p)
    assert float(paired["t"]) == pytest.approx(-7 / 3, abs=1e-4)
    student = next(r for r in tests if r["kind"] == "groups" and r["metric"] == "auc" and r["exam"] == "1"
                   and r["test"] == "student")
    welch = next(r for r in tests if r["kind"] == "groups" and r["metric"] == "auc" and r["exam"] == "1"
                 and r["test"] == "welch")
    a, b = [complete[(c, 1)]["auc"] for c in groups["Specialists"]], [complete[(c, 1)]["auc"] for c in
                                                                      groups["Practitioners"]]
    assert student["p"] == exports.p_text(ttests.student_t_test(a, b).p)
    assert welch["p"] == exports.p_text(ttests.welch_t_test(a, b).p)
    assert "equal variances" in student["test_name"] and "unequal" in welch["test_name"]


def _long_csv(reads, path, rating):
    complete = defaultdict(int)
    for r in reads:
        complete[r["reader"]] += 1
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["modality", "reader", "case", "truth", "rating"])
        for r in reads:
            if complete[r["reader"]] == 12:              # both exams of every case
                writer.writerow([r["exam"], r["reader"], r["case"], int(r["truth"] == "sarcoma"), rating(r)])


def test_mrmc_exports_equal_manage_py_mrmc_on_the_exported_reads(exported, tmp_path):
    _, out = exported
    reads = _rows(out / "reads.csv")
    document = json.loads((out / "mrmc.json").read_text())
    table = _rows(out / "mrmc.csv")
    ratings = {"auc": lambda r: r["confidence"], "sensitivity": lambda r: int(r["call"] == "sarcoma"),
               "specificity": lambda r: int(r["call"] == "sarcoma")}
    for metric, rating in ratings.items():
        long = tmp_path / f"long_{metric}.csv"
        _long_csv(reads, long, rating)
        again = mrmc_io.run_from_csv(long, metric=metric)
        mine = document["metrics"][metric]
        assert mine["readers"] == again["readers"] == ["R01", "R02", "R03", "R04"]
        rrrc, rrrc_again = mine["result"]["random_readers_random_cases"], again["random_readers_random_cases"]
        for key in ("F", "df1", "ddf", "p"):
            assert rrrc[key] == pytest.approx(rrrc_again[key], rel=1e-12), (metric, key)
        assert mine["result"]["covariance_terms"] == pytest.approx(again["covariance_terms"], rel=1e-12)
        row = next(r for r in table if r["metric"] == metric and r["method"].startswith("Obuchowski")
                   and r["generalises_to"] == "random readers, random cases")
        assert row["p"] == exports.p_text(rrrc_again["p"])
        means = again["figure_of_merit"]["mean"]
        assert row["exam1_mean"] == _text(metric, means["1"])
        assert row["exam2_mean"] == _text(metric, means["2"])
        difference = rrrc_again["differences"][0]               # exam 1 minus exam 2
        assert row["difference_exam2_minus_exam1"] == _text(metric, -difference["estimate"])
        assert mine["exam2_minus_exam1"]["estimate"] == pytest.approx(-difference["estimate"])
        assert mine["conclusion"].startswith("Readers' mean")


def test_cases_csv_holds_the_misdiagnosis_and_the_dnn(exported):
    _, out = exported
    rows = {r["case"]: r for r in _rows(out / "cases.csv")}
    for exam, expected in EXPECTED_MISSED.items():
        got = {case: r[f"missed_by_exam{exam}"] for case, r in rows.items() if r[f"missed_by_exam{exam}"]}
        assert got == {case: study_stats.MISSED_LABELS[c] for case, c in expected.items()}
    assert rows["case 004"]["max_diameter_mm"] == "120.0" and rows["case 004"]["degeneration"] == "yes"
    assert rows["case 004"]["readers_wrong_exam1"] == "3" and rows["case 004"]["readers_exam1"] == "4"
    dnn = _rows(out / "dnn.csv")
    study_row = dnn[0]
    likelihood = [float(r["ai_likelihood"]) for r in rows.values()]
    truth = [r["truth"] for r in rows.values()]
    calls = ["sarcoma" if x >= 50 else "leiomyoma" for x in likelihood]
    recomputed = metrics.binary_metrics(truth, calls)
    assert study_row["sensitivity_percent"] == _text("sensitivity", recomputed.sensitivity)
    assert study_row["auc"] == _text("auc", metrics.roc_auc(truth, likelihood))
    reported = {r["source"]: r for r in dnn[1:]}
    top10 = next(r for label, r in reported.items() if "ensembles, mean of the top-10" in label)
    assert (top10["n_cases"], top10["sensitivity_percent"]) == ("263", "89.80")
    assert top10["ss_avg_percent"] == "90.75"
    assert top10["auc"] == "0.9300"
    chosen = next(r for label, r in reported.items() if "chosen set DWI T2axi T2sag (rank 1)" in label)
    assert chosen["auc"] == "0.9380" and chosen["specificity_percent"] == "91.50"
    assert any("thresholds from the training folds" in label for label in reported)
    assert any("single models" in label for label in reported)


def test_mrmc_json_is_strict_json_and_files_are_complete(exported):
    _, out = exported
    json.loads((out / "mrmc.json").read_text(),
               parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    names = {p.name for p in out.iterdir()}
    assert names == {"reads.csv", "reader_statistics.csv", "group_statistics.csv", "comparisons.csv",
                     "dnn.csv", "cases.csv", "mrmc.csv", "mrmc.json", "README.txt", "case_audit.csv"}
    assert "SYNTHETIC" in (out / "README.txt").read_text()


def test_export_study_command_writes_figures_and_finds_a_study_by_name(tmp_path):
    built = build_study(name="Named study (synthetic)")
    stdout = io.StringIO()
    call_command("export_study", "Named study (synthetic)", "--out", str(tmp_path / "x"), stdout=stdout)
    assert (tmp_path / "x" / "figures" / "groups.svg").read_text().lstrip().startswith("<?xml")
    assert (tmp_path / "x" / "figures" / "roc_exam2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "R05 (incomplete (3 of 6))" in stdout.getvalue()
    assert f"study {built['study'].pk}" in stdout.getvalue()


def test_export_study_command_names_an_unknown_study(tmp_path):
    build_study()
    with pytest.raises(CommandError, match="no study 'nope'"):
        call_command("export_study", "nope", "--out", str(tmp_path))
    (tmp_path / "file").write_text("x")
    with pytest.raises(CommandError, match="not a folder"):
        call_command("export_study", "Generated study (synthetic)", "--out", str(tmp_path / "file"))


def test_report_files_match_the_service_report(exported):
    built, out = exported
    report = services.study_report(study=built["study"])
    for name, content in exports.report_files(report).items():
        assert (out / name).read_text() == content
    assert not math.isnan(report.stats.dnn.values["auc"])
