"""Exports of a study: the tidy reads CSV, statistics tables, MRMC results as CSV and JSON.

The same :class:`Table` objects feed the statistics page and the CSV files, so the two show the same
(rounded) numbers. Conventions: accuracy, sensitivity, specificity and SS-Avg in percent (2 decimals);
AUC as a fraction (4 decimals); p-values with 4 significant digits; empty cells where a value is undefined.
Cases appear under their study-level label ("case 017"; the same in both exams) and, in the reads CSV,
their exam-specific display code; never under their pseudonym. Readers appear under their reader code.
"""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from analysis import study_stats as ss
from core.intervals import wilson

READS_FILE = "reads.csv"
READS_COLUMNS = ("study", "reader", "group", "years_experience", "exam", "case", "display_code", "truth",
                 "call", "correct", "confidence", "active_seconds", "ai_likelihood_shown")
PERCENT_METRICS = ("accuracy", "sensitivity", "specificity", "ss_avg")


# --------------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------------


def _finite(value) -> bool:
    return value is not None and math.isfinite(float(value))


def metric_text(metric: str, value: float | None, *, scale: bool = True) -> str:
    """A metric value for a table: percent (2 decimals) or, for the AUC, a fraction (4 decimals)."""
    if not _finite(value):
        return ""
    if metric == "auc":
        return f"{value:.4f}"
    return f"{100 * value if scale else value:.2f}"


def metric_column(metric: str) -> str:
    return "auc" if metric == "auc" else f"{metric}_percent"


def ci_columns(metric: str) -> tuple[str, str]:
    """The two columns of a metric's 95 % interval: "sensitivity_ci_low_percent", ..., "auc_ci_low"."""
    if metric == "auc":
        return "auc_ci_low", "auc_ci_high"
    return f"{metric}_ci_low_percent", f"{metric}_ci_high_percent"


def metric_columns(metric: str) -> tuple[str, str, str]:
    """A metric's value column and its interval's two columns."""
    return (metric_column(metric), *ci_columns(metric))


def metric_cells(metric: str, value: float | None, interval) -> tuple[str, str, str]:
    """Value, CI low, CI high as text (``interval``: a ``core.intervals.Interval``, (low, high) or None)."""
    if interval is None:
        low = high = None
    elif isinstance(interval, list | tuple):
        low, high = interval
    else:
        low, high = interval.low, interval.high
    return metric_text(metric, value), metric_text(metric, low), metric_text(metric, high)


def metric_unit(metric: str) -> str:
    return "fraction" if metric == "auc" else "%"


def p_text(p: float | None) -> str:
    return f"{p:.4g}" if _finite(p) else ""


def number_text(value, decimals: int = 4) -> str:
    return f"{float(value):.{decimals}f}" if _finite(value) else ""


def _yes_no(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


@dataclass(frozen=True)
class Table:
    """A table of text cells: what the page shows and what the CSV holds."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    @property
    def headers(self) -> tuple[str, ...]:
        """Column names for people: "sensitivity_percent" -> "sensitivity %"."""
        names = (c.replace("ss_avg", "SS-Avg").replace("auc", "AUC") for c in self.columns)
        return tuple(c.replace("_percent", " %").replace("_", " ") for c in names)

    def as_dicts(self) -> list[dict[str, str]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return buffer.getvalue()


def _table(columns: Iterable[str], rows: Iterable[Iterable]) -> Table:
    return Table(tuple(columns), tuple(tuple("" if c is None else str(c) for c in row) for row in rows))


# --------------------------------------------------------------------------------------------------
# The tidy reads CSV (streamed)
# --------------------------------------------------------------------------------------------------


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(columns: Iterable[str], rows: Iterable[Iterable]) -> Iterator[str]:
    """CSV text one line at a time (for a streamed HTTP response or a file)."""
    writer = csv.writer(_Echo(), lineterminator="\n")
    yield writer.writerow(list(columns))
    for row in rows:
        yield writer.writerow(["" if c is None else c for c in row])


def _read_row(study_name: str, read: dict) -> list:
    shown = read["ai_likelihood_shown"]
    correct = "" if not read["truth"] else int(read["call"] == read["truth"])
    return [study_name, read["reader"], read["group"], read["years_experience"], read["exam"], read["case"],
            read["display_code"], read["truth"], read["call"], correct, read["confidence"],
            f"{read['active_seconds']:.1f}", "" if shown is None else f"{shown:.2f}"]


def reads_csv_lines(study) -> Iterator[str]:
    """Every read of ``study``: one row per reader x exam x case (columns READS_COLUMNS)."""
    from analysis import selectors

    return csv_lines(READS_COLUMNS, (_read_row(study.name, r) for r in selectors.reads_for_export(study)))


CASE_AUDIT_FILE = "case_audit.csv"
CASE_AUDIT_COLUMNS = ("study", "case", "at", "action", "actor", "before", "after", "reason")


def case_audit_csv_lines(study) -> Iterator[str]:
    """The audit trail of the study's cases (columns CASE_AUDIT_COLUMNS; before/after as JSON)."""
    from analysis import selectors

    return csv_lines(CASE_AUDIT_COLUMNS, (
        (study.name, a["case"], a["at"], a["action"], a["actor"], json.dumps(a["before"], sort_keys=True),
         json.dumps(a["after"], sort_keys=True), a["reason"]) for a in selectors.case_audit_for_export(study)))


# --------------------------------------------------------------------------------------------------
# Statistics tables
# --------------------------------------------------------------------------------------------------


INTERVALS_NOTE = (
    "95 % confidence intervals: per reader and for the DNN on the study's cases, Wilson for accuracy, "
    "sensitivity and specificity, DeLong for the AUC, a patient-level percentile bootstrap stratified by class "
    f"({ss.BOOTSTRAP_RESAMPLES} resamples, seed {ss.BOOTSTRAP_SEED}) for SS-Avg; for a group mean, the "
    f"{ss.GROUP_INTERVAL_METHOD}. Empty where the metric or its interval is undefined.")


def _metrics_cells(values: dict, bounds: dict) -> list[str]:
    cells: list[str] = []
    for metric in ss.METRICS:
        cells += metric_cells(metric, values.get(metric), bounds.get(metric))
    return cells


def reader_statistics_table(stats: ss.StudyStatistics) -> Table:
    """Per reader x exam: counts, each metric with its 95 % interval (Wilson, DeLong, bootstrap)."""
    columns = ("reader", "group", "years_experience", "exam", "state", "n_cases", "n_read", "tp", "fn", "tn",
               "fp", *(c for m in ss.METRICS for c in metric_columns(m)), "mean_active_seconds")
    rows = []
    for m in stats.reader_exams:
        counts = (m.counts.tp, m.counts.fn, m.counts.tn, m.counts.fp) if m.counts else ("",) * 4
        rows.append((m.reader, m.group, m.years, m.exam, m.state, m.n_cases, m.n_read, *counts,
                     *_metrics_cells(m.values, m.intervals), number_text(m.mean_seconds, 1)))
    return _table(columns, rows)


def group_statistics_table(stats: ss.StudyStatistics) -> Table:
    """Mean, SD and the mean's 95 % interval (``ss.GROUP_INTERVAL_METHOD``) per group and exam, over the
    readers complete in that exam."""
    columns = ["group", "exam", "n_readers", "readers"]
    for metric in ss.METRICS:
        columns += [f"{metric_column(metric)}_mean", f"{metric_column(metric)}_sd", *ci_columns(metric)]
    rows = []
    for g in stats.groups:
        cells = [ss.GROUP_LABELS[g.group], g.exam, len(g.readers), " ".join(g.readers)]
        for metric in ss.METRICS:
            mean, low, high = metric_cells(metric, g.mean[metric], g.intervals.get(metric))
            cells += [mean, metric_text(metric, g.sd[metric]), low, high]
        rows.append(cells)
    return _table(columns, rows)


DNN_STUDY_LABEL = ("study cases: sarcoma when likelihood >= 50 % (in-sample: the study's chosen sequence set; "
                   "nested: the set and threshold chosen without the case's fold)")


def _wilson_bounds(figures: dict, reported: dict) -> dict:
    """Wilson intervals of a whole-cohort mean over ensembles (a proportion of its patients, core.intervals
    allows the fractional count) where the class sizes are known; SS-Avg and AUC need per-patient data."""
    sizes = {"accuracy": reported.get("n_patients"), "sensitivity": reported.get("n_sarcoma"),
             "specificity": reported.get("n_leiomyoma")}
    out = {}
    for metric, n in sizes.items():
        value = figures.get(metric)
        if isinstance(n, int) and n > 0 and value is not None and 0 <= value <= 1:
            out[metric] = wilson(value * n, n)
    return out


def dnn_table(report) -> Table:
    """The DNN on the study's cases (which likelihood it uses in ``likelihood_source``), and the figures its
    evaluation reports for its whole cohort, each metric with its 95 % interval."""
    columns = ("source", "likelihood_source", "n_cases", "tp", "fn", "tn", "fp",
               *(c for m in ss.METRICS for c in metric_columns(m)), "interval_note")
    rows = []
    dnn = report.stats.dnn
    if dnn is not None:
        counts = (dnn.counts.tp, dnn.counts.fn, dnn.counts.tn, dnn.counts.fp) if dnn.counts else ("",) * 4
        rows.append((DNN_STUDY_LABEL, dnn.source, dnn.n_cases, *counts,
                     *_metrics_cells(dnn.values, dnn.intervals), ""))
    reported = report.dnn_reported
    patients = reported.get("n_patients", "")
    for method in reported.get("methods", []):
        rows.append((f"evaluation (all its patients): {method['label']}", method["method"], patients,
                     "", "", "", "", *_metrics_cells(method["values"], method["intervals"]),
                     "intervals as the evaluation stored them"))
    rank = reported.get("chosen_rank")
    labels = {"top10": "evaluation (all its patients): ensembles, mean of the top-10 sequence sets",
              "top10_honest": "evaluation (all its patients): ensembles, top-10 mean, thresholds from the "
                              "training folds",
              "single_top10": "evaluation (all its patients): single models, mean of the top-10 sets",
              "chosen_subset": "evaluation (all its patients): ensembles, chosen set "
                               f"{' '.join(reported.get('chosen_codes', []))}"
                               + (f" (rank {rank})" if rank else "")}
    for key, label in labels.items():
        figures = reported.get(key)
        if figures:
            stored = reported.get("intervals", {}).get(key, {})
            bounds = {**_wilson_bounds(figures, reported), **stored}
            missing = [ss.METRIC_LABELS[m] for m in ss.METRICS if figures.get(m) is not None and m not in bounds]
            notes = ["intervals as the evaluation stored them" if stored else "",
                     "Wilson on the cohort's patients where it stored none" if set(bounds) - set(stored) else "",
                     f"no stored interval for {', '.join(missing)} (needs the per-patient calls)" if missing else ""]
            rows.append((label, "", patients, "", "", "", "", *_metrics_cells(figures, bounds),
                         "; ".join(n for n in notes if n)))
    return _table(columns, rows)


def _comparison_title(c: ss.Comparison) -> str:
    if c.kind == "exams":
        return f"{ss.GROUP_LABELS[c.group]}: exam 1 vs exam 2"
    return f"{c.a} vs {c.b}, exam {c.exam}"


def comparisons_table(stats: ss.StudyStatistics) -> Table:
    """Every t-test, one row per test; means, the difference a - b and its CI in the metric's unit."""
    columns = ("comparison", "kind", "group", "exam", "metric", "unit", "test", "test_name", "n_a", "n_b",
               "mean_a", "mean_b", "difference_a_minus_b", "ci_lo", "ci_hi", "t", "df", "p", "significant",
               "note")
    rows = []
    for c in stats.comparisons:
        head = (_comparison_title(c), c.kind, ss.GROUP_LABELS.get(c.group, ""), c.exam or "", c.metric,
                metric_unit(c.metric))
        if not c.tests:
            rows.append((*head, "", "", "", "", "", "", "", "", "", "", "", "", "", c.note))
        for t in c.tests:
            significant = "" if not _finite(t.p) else ("yes" if t.p < stats.alpha else "no")
            note = "; ".join(n for n in (c.note, "" if _finite(t.p) else "undefined: the values do not vary") if n)
            rows.append((*head, t.test, t.name, t.n_a, t.n_b, metric_text(c.metric, t.mean_a),
                         metric_text(c.metric, t.mean_b), metric_text(c.metric, t.mean_difference),
                         metric_text(c.metric, t.ci_lo), metric_text(c.metric, t.ci_hi),
                         number_text(t.statistic), number_text(t.df, 2), p_text(t.p), significant, note))
    return _table(columns, rows)


NOT_ANALYSED = "not analysed: no reader finished this exam"


def cases_table(stats: ss.StudyStatistics) -> Table:
    """One row per case: truth, size, descriptors, the DNN's likelihood and who misdiagnosed it per exam.

    ``ai_likelihood``: shown in exam 2; ``dnn_likelihood`` (``dnn_likelihood_source``): the DNN row's, nested
    where the evaluation has it for a case of its training cohort; ``dnn_missed``: ``core.metrics.ai_wrong``
    on it (likelihood >= 50 % = sarcoma)."""
    columns = ["case", "truth", "max_diameter_mm", "degeneration", "degeneration_votes", "irregular_margin",
               "ai_likelihood", "ai_likelihood_nested", "dnn_likelihood", "dnn_likelihood_source", "dnn_missed"]
    for exam in ss.EXAMS:
        columns += [f"readers_wrong_exam{exam}", f"readers_exam{exam}", f"missed_by_exam{exam}"]
    by_exam = {m.exam: {c.case: c for c in m.cases} for m in stats.misdiagnosis}
    rows = []
    for case in stats.cases:
        votes = "{}/{}".format(*case.degeneration_votes) if case.degeneration_votes else ""
        cells = [case.label, case.truth, number_text(case.max_diameter_mm, 1), _yes_no(case.degeneration),
                 votes, _yes_no(case.irregular_margin), number_text(case.ai_likelihood, 2),
                 number_text(case.nested_likelihood, 2), number_text(case.dnn_likelihood, 2),
                 ss.SOURCE_LABELS.get(case.dnn_source, ""), _yes_no(ss.dnn_wrong(case))]
        for exam in ss.EXAMS:
            row = by_exam[exam][case.label]
            missed = ss.MISSED_LABELS.get(row.category, "") if row.readers_total else NOT_ANALYSED
            cells += [row.readers_wrong, row.readers_total, missed]
        rows.append(cells)
    return _table(columns, rows)


# --------------------------------------------------------------------------------------------------
# MRMC
# --------------------------------------------------------------------------------------------------

_MRMC_TESTS = (("obuchowski_rockette", "Obuchowski-Rockette, DeLong covariance, Hillis df"),
               ("dbm", "Dorfman-Berbaum-Metz, jackknife"))
_GENERALISES = (("rrrc", "random readers, random cases"), ("frrc", "fixed readers, random cases"),
                ("rrfc", "random readers, fixed cases"))


def _exam2_minus_exam1(test) -> tuple[float, float, float, float]:
    d = test.differences[0]                        # analysis.mrmc gives exam 1 minus exam 2
    return -d.estimate, d.se, -d.ci_hi, -d.ci_lo


def mrmc_table(stats: ss.StudyStatistics) -> Table:
    """One row per figure of merit x method x generalisation; the difference is exam 2 minus exam 1."""
    columns = ("metric", "unit", "method", "generalises_to", "n_readers", "readers", "exam1_mean",
               "exam2_mean", "difference_exam2_minus_exam1", "se", "ci_lo", "ci_hi", "statistic_name",
               "statistic", "df1", "ddf", "p", "significant", "note")
    rows = []
    for summary in stats.mrmc:
        head = (summary.metric, metric_unit(summary.metric))
        if summary.analysis is None:
            rows.append((*head, "", "", len(summary.readers), " ".join(summary.readers), *("",) * 11,
                         summary.note))
            continue
        for attr, method in _MRMC_TESTS:
            result = getattr(summary.analysis, attr)
            means = [metric_text(summary.metric, float(v)) for v in result.fom_mean]
            for key, generalises in _GENERALISES:
                test = getattr(result, key)
                estimate, se, lo, hi = _exam2_minus_exam1(test)
                significant = "" if not _finite(test.p) else ("yes" if test.p < stats.alpha else "no")
                ddf = "" if not _finite(test.ddf) else number_text(test.ddf, 2)
                rows.append((*head, method, generalises, len(summary.readers), " ".join(summary.readers),
                             *means,
                             metric_text(summary.metric, estimate), metric_text(summary.metric, se),
                             metric_text(summary.metric, lo), metric_text(summary.metric, hi),
                             test.statistic_name, number_text(test.statistic), number_text(test.df1, 2), ddf,
                             p_text(test.p), significant, ""))
    return _table(columns, rows)


def mrmc_document(stats: ss.StudyStatistics) -> dict:
    """The MRMC results as JSON: per metric the readers, the conclusion and the full analysis dict."""
    out = {"modalities": list(ss.MRMC_MODALITIES), "alpha": stats.alpha,
           "note": "modality differences inside 'result' are exam 1 minus exam 2 (analysis.mrmc order); "
                   "'exam2_minus_exam1' restates the random-readers, random-cases result as exam 2 minus "
                   "exam 1. AUC from the confidence ratings; sensitivity and specificity from the calls.",
           "metrics": {}}
    for s in stats.mrmc:
        entry = {"readers": list(s.readers), "conclusion": s.conclusion, "note": s.note, "result": s.result}
        if s.analysis is not None:
            rrrc = s.analysis.obuchowski_rockette.rrrc
            estimate, se, lo, hi = _exam2_minus_exam1(rrrc)
            entry["exam2_minus_exam1"] = {k: (float(v) if _finite(v) else None) for k, v in
                                          (("estimate", estimate), ("se", se), ("ci_lo", lo), ("ci_hi", hi),
                                           ("p", rrrc.p))}
        out["metrics"][s.metric] = entry
    return out


def mrmc_json(stats: ss.StudyStatistics) -> str:
    return json.dumps(mrmc_document(stats), indent=2, allow_nan=False)


# --------------------------------------------------------------------------------------------------
# All files of a report
# --------------------------------------------------------------------------------------------------

README = """Exports of reader study {name!r}{synthetic}.

reads.csv               one row per reader x exam x case: reader code, group, years of experience, exam,
                        case (study-level label, the same in both exams: join exam 1 and exam 2 on it),
                        display_code (what the reader saw in that exam), truth, call, correct (1/0),
                        confidence (0-100 likelihood of sarcoma), active_seconds (time the case was on screen
                        and in use, s; never more than the wall-clock time since the reader first opened it),
                        ai_likelihood_shown (exam 2)
reader_statistics.csv   per reader x exam: counts and metrics (percent; AUC from confidence as a fraction),
                        each with its 95 % CI (*_ci_low, *_ci_high)
group_statistics.csv    mean, SD (n - 1) and the mean's 95 % CI per group and exam over the readers complete
                        in that exam
comparisons.csv         every t-test (Student's = equal variances; Welch's = unequal; paired = exam 1 vs 2;
                        a group vs the DNN: one-sample against the DNN row of dnn.csv)
dnn.csv                 the DNN on the study's cases (sarcoma when likelihood >= 50 %; likelihood_source:
                        nested (out-of-sample), in-sample, or mixed) and as its evaluation reports it, with
                        95 % CIs
cases.csv               per case: truth, size, descriptors, AI likelihood shown in exam 2 (in-sample for a
                        case of the evaluation's training cohort), the nested one, the one the DNN row uses,
                        who misdiagnosed it per exam (truth: the ground truth frozen with the study when it
                        opened, as in reads.csv); dnn_missed: the DNN row's call (sarcoma when its likelihood
                        >= 50 %) is wrong; readers missed a case when more than half of the complete readers
                        are wrong; an exam no reader has finished reads "not analysed"
case_audit.csv          every recorded change of the study's cases (truth, subtype, boxes, series, merges,
                        corrections): case label, when, action, actor (user number, or import or job),
                        before and after (JSON), reason
mrmc.csv, mrmc.json     MRMC exam 1 vs exam 2 (readers complete in both exams)
figures/                the statistics page's figures as PNG and SVG

{intervals}
DNN row: {dnn_source}. For a case of the evaluation's training cohort the likelihood shown in exam 2 is
in-sample (the sequence set and threshold were chosen on all its patients, that case included; METHOD 9);
the DNN row, its CIs, dnn_missed and the readers-vs-DNN t-tests use the nested (out-of-sample) likelihood
where the evaluation has it, else the in-sample one.
"""


def dnn_source_text(stats: ss.StudyStatistics) -> str:
    """Which likelihoods the DNN row uses, in words ("no AI results" without a DNN row)."""
    return f"{stats.dnn.source} likelihoods" if stats.dnn is not None else "no AI results for the study's cases"


def report_files(report) -> dict[str, str]:
    """File name -> text of every export except the streamed reads CSV."""
    stats = report.stats
    return {
        "reader_statistics.csv": reader_statistics_table(stats).csv(),
        "group_statistics.csv": group_statistics_table(stats).csv(),
        "comparisons.csv": comparisons_table(stats).csv(),
        "dnn.csv": dnn_table(report).csv(),
        "cases.csv": cases_table(stats).csv(),
        "mrmc.csv": mrmc_table(stats).csv(),
        "mrmc.json": mrmc_json(stats),
        "README.txt": README.format(name=report.study_name,
                                    synthetic=" (SYNTHETIC data)" if report.synthetic else "",
                                    intervals=textwrap.fill(INTERVALS_NOTE, 110),
                                    dnn_source=dnn_source_text(stats)),
    }
