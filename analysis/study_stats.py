"""Every statistic of one reader study, from plain records (METHOD §10-§12). No Django import.

Input: the study's readers (:class:`ReaderInfo`), its cases (:class:`CaseInfo`, with ground truth and the
DNN's sarcoma likelihood), and the reads (:class:`ReadRecord`, one per reader x exam x case). Output: a
:class:`StudyStatistics` with

* per reader x exam: confusion counts, accuracy, sensitivity, specificity, SS-Avg (from the calls) and
  the AUC (from the 0-100 confidence), as fractions in [0, 1], each with its 95 % interval (Wilson, DeLong,
  stratified patient bootstrap for SS-Avg: ``INTERVAL_METHODS``, via ``core.intervals``);
* per group (specialists, practitioners, all readers) x exam: mean and SD (n - 1 denominator) and the
  mean's Obuchowski-Rockette random-readers, random-cases interval (``GROUP_INTERVAL_METHOD``);
* the DNN on the study's cases: a case is called sarcoma when its likelihood is >= 50 % (at least half of
  the ensembles call it sarcoma; ``core.metrics.ai_call``, the one definition also used for "DNN wrong");
  the AUC uses the likelihood as the rating. The likelihood is :attr:`CaseInfo.dnn_likelihood`: nested
  (out-of-sample) for a case of the evaluation's training cohort where the evaluation has it, else the one
  exam 2 showed; :attr:`DnnFigures.source` says which. Intervals as per reader;
* t-tests, all two-sided and named by :mod:`analysis.ttests`: specialists vs practitioners (Student's
  *and* Welch's), each group vs the DNN row (one-sample), and exam 1 vs exam 2 of the same readers (paired);
* MRMC exam 1 vs exam 2 (:func:`analysis.mrmc.analyse`, Obuchowski-Rockette with DeLong covariance and
  Hillis df, plus DBM) for the AUC from confidence and for sensitivity and specificity from the calls,
  with the random-reader conclusion in plain words;
* the misdiagnosis analysis of METHOD §12 (paper Fig. 2e/f) per exam.

Incomplete studies: a reader x exam is *complete* when the reader has answered every case of the study in
that exam. Per-reader figures are shown for whatever has been read (flagged incomplete); group means,
t-tests and the misdiagnosis analysis use the readers complete in that exam; paired tests and MRMC use the
readers complete in both exams (MRMC needs a fully crossed design).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats as sp_stats

from analysis import mrmc, ttests
from analysis.mrmc_io import analysis_to_dict
from core import metrics
from core.constants import LEIOMYOMA, SARCOMA
from core.intervals import Interval, bootstrap, delong_auc, wilson

EXAMS: tuple[int, ...] = (1, 2)
EXAM_LABELS = {1: "Exam 1 (unaided)", 2: "Exam 2 (AI-aided)"}
METRICS: tuple[str, ...] = ("accuracy", "sensitivity", "specificity", "ss_avg", "auc")
METRIC_LABELS = {"accuracy": "Accuracy", "sensitivity": "Sensitivity", "specificity": "Specificity",
                 "ss_avg": "SS-Avg", "auc": "AUC"}
SPECIALIST, PRACTITIONER, ALL_READERS = "specialist", "practitioner", "all"
GROUPS: tuple[str, ...] = (SPECIALIST, PRACTITIONER)
GROUP_LABELS = {SPECIALIST: "Specialists", PRACTITIONER: "Practitioners", ALL_READERS: "All readers"}
MRMC_METRICS: tuple[str, ...] = ("auc", "sensitivity", "specificity")
MRMC_MODALITIES: tuple[str, ...] = ("exam 1", "exam 2")
ONE_SAMPLE = "one_sample"
ONE_SAMPLE_NAME = "One-sample t-test against the DNN's value (the DNN taken as a fixed number)"
DNN_CALL_PERCENT = metrics.AI_CALL_PERCENT   # a DNN sarcoma call: >= 50 % of the ensembles call sarcoma
MISSED_DNN_ONLY, MISSED_READERS_ONLY, MISSED_BOTH = "dnn_only", "readers_only", "both"
MISSED_LABELS = {MISSED_DNN_ONLY: "DNN only", MISSED_READERS_ONLY: "readers only", MISSED_BOTH: "both"}

# 95 % intervals (issue 14). Per reader x exam and for the DNN row: Wilson for the proportions, DeLong for the
# AUC, a patient-level bootstrap stratified by class for SS-Avg. Per group (a mean over readers): the
# Obuchowski-Rockette random-readers, random-cases interval of one exam (Hillis df; DeLong covariance).
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 14          # fixed: the same reads always give the same SS-Avg interval
INTERVAL_METHODS = {"accuracy": "Wilson", "sensitivity": "Wilson", "specificity": "Wilson",
                    "ss_avg": f"patient-level bootstrap, stratified by class, {BOOTSTRAP_RESAMPLES} resamples, "
                              f"seed {BOOTSTRAP_SEED}, percentile",
                    "auc": "DeLong"}
GROUP_INTERVAL_METHOD = ("Obuchowski-Rockette random readers, random cases (one exam; DeLong covariance of "
                         "the readers' figures, Hillis df): generalises to other readers and other cases")

# Where the DNN row's likelihood of a case comes from (issue 14, item 4)
NESTED, IN_SAMPLE, NEW_CASE = "nested", "in_sample", "new_case"
SOURCE_LABELS = {NESTED: "nested (out-of-sample)", IN_SAMPLE: "in-sample",
                 NEW_CASE: "out-of-sample (new case, not in the training cohort)"}


# --------------------------------------------------------------------------------------------------
# Input records
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReaderInfo:
    """A reader of the study: ``code`` (e.g. "R03"), ``group`` (specialist | practitioner; any other value
    counts under "all readers" only) and years of experience."""

    code: str
    group: str
    years: int | None = None


@dataclass(frozen=True)
class CaseInfo:
    """A case of the study under its study-level ``label`` (e.g. "case 017", never the pseudonym).

    ``ai_likelihood``: the DNN's sarcoma likelihood shown in exam 2 (% of the ensembles calling sarcoma,
    0-100; METHOD §9) or None. ``in_training_cohort``: the case was one of the evaluation's cross-validated
    patients, so that likelihood is in-sample (the set and threshold were chosen on it); False for a new
    case predicted by all models. ``nested_likelihood``: the same share with the set and threshold chosen
    without the case's fold (out-of-sample), or None where the evaluation has none.
    ``degeneration_votes``: (readers who scored degeneration, readers who scored the case) or None.
    """

    label: str
    truth: str
    max_diameter_mm: float | None = None
    degeneration: bool | None = None
    irregular_margin: bool | None = None
    ai_likelihood: float | None = None
    degeneration_votes: tuple[int, int] | None = None
    in_training_cohort: bool = True
    nested_likelihood: float | None = None

    @property
    def dnn_source(self) -> str | None:
        """Which likelihood the DNN row uses for this case: nested | in_sample | new_case; None without one."""
        if not self.in_training_cohort:
            return NEW_CASE if self.ai_likelihood is not None else None
        if self.nested_likelihood is not None:
            return NESTED
        return IN_SAMPLE if self.ai_likelihood is not None else None

    @property
    def dnn_likelihood(self) -> float | None:
        """The likelihood (%) of the DNN row, its AUC, "DNN wrong" and the readers-vs-DNN t-tests: the nested
        one for a case of the training cohort where it exists, else the one shown in exam 2."""
        return self.nested_likelihood if self.dnn_source == NESTED else self.ai_likelihood


@dataclass(frozen=True)
class ReadRecord:
    """One answer: reader code, exam (1 | 2), case label, call (sarcoma | leiomyoma), confidence 0-100."""

    reader: str
    exam: int
    case: str
    call: str
    confidence: float
    active_seconds: float = 0.0


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReaderExamMetrics:
    """One reader in one exam. ``values``: metric -> fraction in [0, 1], None where undefined (a class not
    read yet, no reads). ``roc``: the reader's empirical ROC from confidence, None where undefined."""

    reader: str
    group: str
    years: int | None
    exam: int
    n_cases: int
    n_read: int
    counts: metrics.ConfusionCounts | None
    values: dict[str, float | None]
    mean_seconds: float | None
    roc: metrics.RocCurve | None = field(default=None, repr=False, compare=False)
    intervals: dict[str, Interval | None] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.n_cases > 0 and self.n_read == self.n_cases

    @property
    def state(self) -> str:
        if self.n_read == 0:
            return "not started"
        return "complete" if self.complete else f"incomplete ({self.n_read} of {self.n_cases})"


@dataclass(frozen=True)
class GroupSummary:
    """Mean and SD (n - 1 denominator; None for fewer than 2 readers) over the complete readers of a group,
    and the mean's interval (``GROUP_INTERVAL_METHOD``; None for fewer than 2 readers or no variance)."""

    group: str
    exam: int
    readers: tuple[str, ...]
    mean: dict[str, float | None]
    sd: dict[str, float | None]
    intervals: dict[str, Interval | None] = field(default_factory=dict)


@dataclass(frozen=True)
class DnnFigures:
    """The DNN on the study's cases with an AI result: calls at likelihood >= 50 %, AUC from likelihood.

    ``sources``: how many cases use each likelihood (:attr:`CaseInfo.dnn_source`); ``source`` says it in words.
    """

    n_cases: int
    n_without_ai: int
    counts: metrics.ConfusionCounts | None
    values: dict[str, float | None]
    roc: metrics.RocCurve | None = field(default=None, repr=False, compare=False)
    intervals: dict[str, Interval | None] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """"in-sample", "nested (out-of-sample)", ... or "mixed: 4 nested, 2 in-sample"."""
        used = {k: n for k, n in self.sources.items() if n}
        if len(used) == 1:
            return SOURCE_LABELS[next(iter(used))]
        short = {NESTED: "nested", IN_SAMPLE: "in-sample", NEW_CASE: "new (not in the training cohort)"}
        return "mixed: " + ", ".join(f"{used[k]} {short[k]}" for k in SOURCE_LABELS if k in used)


@dataclass(frozen=True)
class Comparison:
    """One comparison of a metric: ``tests`` holds the t-tests that were run, ``note`` why none was."""

    kind: str            # "groups" | "vs_dnn" | "exams"
    metric: str
    exam: int | None     # None for exam 1 vs exam 2
    group: str | None    # the group of an exam comparison or of a comparison with the DNN
    a: str
    b: str
    tests: tuple[ttests.TTestResult, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class MrmcSummary:
    """MRMC exam 1 vs exam 2 for one figure of merit: the analysis, its JSON-ready dict, the conclusion."""

    metric: str
    readers: tuple[str, ...]
    analysis: mrmc.MRMCAnalysis | None = field(default=None, repr=False, compare=False)
    result: dict | None = None
    conclusion: str = ""
    note: str = ""


@dataclass(frozen=True)
class MisdiagnosedCase:
    """A case in the misdiagnosis analysis of one exam (METHOD §12)."""

    case: str
    truth: str
    max_diameter_mm: float | None
    degeneration: bool | None
    degeneration_votes: tuple[int, int] | None
    ai_likelihood: float | None     # the DNN row's likelihood (CaseInfo.dnn_likelihood), %
    dnn_wrong: bool | None          # core.metrics.ai_wrong; None without an AI result
    readers_wrong: int
    readers_total: int

    @property
    def readers_missed(self) -> bool:
        return self.readers_total > 0 and 2 * self.readers_wrong > self.readers_total

    @property
    def category(self) -> str:
        """dnn_only | readers_only | both | "" (neither missed it, or no reader finished the exam)."""
        if self.readers_total == 0:     # nothing to compare the DNN with: the exam is not analysed
            return ""
        if self.dnn_wrong and self.readers_missed:
            return MISSED_BOTH
        if self.dnn_wrong:
            return MISSED_DNN_ONLY
        if self.readers_missed:
            return MISSED_READERS_ONLY
        return ""


@dataclass(frozen=True)
class Misdiagnosis:
    """All cases of one exam with who missed them; ``counts[truth][category]``; readers = complete ones."""

    exam: int
    readers: tuple[str, ...]
    cases: tuple[MisdiagnosedCase, ...]
    counts: dict[str, dict[str, int]]

    @property
    def analysed(self) -> bool:
        """False while no reader has finished the exam: there is no readers' side to map."""
        return bool(self.readers)


@dataclass(frozen=True)
class StudyStatistics:
    readers: tuple[ReaderInfo, ...]
    cases: tuple[CaseInfo, ...]
    reader_exams: tuple[ReaderExamMetrics, ...]
    complete_readers: dict[int, tuple[str, ...]]
    readers_complete_both: tuple[str, ...]
    groups: tuple[GroupSummary, ...]
    dnn: DnnFigures | None
    comparisons: tuple[Comparison, ...]
    mrmc: tuple[MrmcSummary, ...]
    misdiagnosis: tuple[Misdiagnosis, ...]
    alpha: float
    notes: tuple[str, ...] = ()

    @property
    def n_positive(self) -> int:
        return sum(c.truth == SARCOMA for c in self.cases)

    @property
    def n_negative(self) -> int:
        return sum(c.truth == LEIOMYOMA for c in self.cases)

    def reader_exam(self, reader: str, exam: int) -> ReaderExamMetrics:
        for row in self.reader_exams:
            if row.reader == reader and row.exam == exam:
                return row
        raise KeyError(f"no reader {reader!r} in exam {exam}")

    def group(self, group: str, exam: int) -> GroupSummary:
        for row in self.groups:
            if row.group == group and row.exam == exam:
                return row
        raise KeyError(f"no group {group!r} in exam {exam}")

    def mrmc_for(self, metric: str) -> MrmcSummary:
        return next(m for m in self.mrmc if m.metric == metric)


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def _check_inputs(readers: Sequence[ReaderInfo], cases: Sequence[CaseInfo],
                  reads: Sequence[ReadRecord]) -> None:
    codes = [r.code for r in readers]
    labels = [c.label for c in cases]
    for what, ids in (("reader code", codes), ("case label", labels)):
        dup = [k for k, n in Counter(ids).items() if n > 1]
        if dup:
            raise ValueError(f"{what} {dup[0]!r} appears twice")
    for case in cases:
        if case.truth not in (SARCOMA, LEIOMYOMA):
            raise ValueError(f"case {case.label!r}: truth {case.truth!r} is not {SARCOMA!r} or {LEIOMYOMA!r}")
        for what, value in (("AI likelihood", case.ai_likelihood), ("nested likelihood", case.nested_likelihood)):
            if value is not None and not 0 <= value <= 100:
                raise ValueError(f"case {case.label!r}: {what} {value} is not in 0-100")
    known_readers, known_cases, seen = set(codes), set(labels), set()
    for read in reads:
        where = f"read of reader {read.reader!r}, exam {read.exam}, case {read.case!r}"
        if read.reader not in known_readers:
            raise ValueError(f"{where}: unknown reader")
        if read.case not in known_cases:
            raise ValueError(f"{where}: unknown case")
        if read.exam not in EXAMS:
            raise ValueError(f"{where}: exam must be 1 or 2")
        if read.call not in (SARCOMA, LEIOMYOMA):
            raise ValueError(f"{where}: call {read.call!r} is not {SARCOMA!r} or {LEIOMYOMA!r}")
        if not (math.isfinite(read.confidence) and 0 <= read.confidence <= 100):
            raise ValueError(f"{where}: confidence {read.confidence} is not in 0-100")
        key = (read.reader, read.exam, read.case)
        if key in seen:
            raise ValueError(f"{where}: read twice")
        seen.add(key)


# --------------------------------------------------------------------------------------------------
# Metrics of one set of answers
# --------------------------------------------------------------------------------------------------


def _safe(func, *args) -> float | None:
    try:
        return float(func(*args))
    except metrics.EmptyClassError:
        return None


AnswerMetrics = tuple[metrics.ConfusionCounts | None, dict[str, float | None], metrics.RocCurve | None]


def answer_metrics(truth: Sequence[str], calls: Sequence[str], scores: Sequence[float]) -> AnswerMetrics:
    """Counts, the five METRICS (fractions; None where a class is missing) and the ROC of one answer set."""
    if len(truth) == 0:
        return None, dict.fromkeys(METRICS), None
    truth_arr, call_arr = np.asarray(truth), np.asarray(calls)
    counts = metrics.confusion_counts(truth_arr, call_arr)
    sens, spec = _safe(metrics.sensitivity, counts), _safe(metrics.specificity, counts)
    values = {"accuracy": metrics.accuracy(counts), "sensitivity": sens, "specificity": spec,
              "ss_avg": None if sens is None or spec is None else (sens + spec) / 2, "auc": None}
    roc = None
    if sens is not None and spec is not None:
        roc = metrics.roc_curve(truth_arr, np.asarray(scores, dtype=float))
        values["auc"] = roc.auc
    return counts, values, roc


def answer_intervals(truth: Sequence[str], calls: Sequence[str], scores: Sequence[float], *,
                     alpha: float = 0.05) -> dict[str, Interval | None]:
    """The 1 - alpha interval of each of the five METRICS of one answer set (``INTERVAL_METHODS``).

    Wilson for accuracy (on all cases), sensitivity (on the sarcomas) and specificity (on the leiomyomas);
    DeLong for the AUC from ``scores`` (needs 2 cases of each class); SS-Avg by a patient-level percentile
    bootstrap that keeps each class's size (``BOOTSTRAP_RESAMPLES``, ``BOOTSTRAP_SEED``). None where the
    metric itself is undefined (a class missing).
    """
    out: dict[str, Interval | None] = dict.fromkeys(METRICS)
    if len(truth) == 0:
        return out
    positive = np.asarray(truth) == SARCOMA
    correct = (np.asarray(calls) == SARCOMA) == positive
    n1, n0 = int(positive.sum()), int((~positive).sum())
    out["accuracy"] = wilson(int(correct.sum()), positive.size, alpha)
    if n1:
        out["sensitivity"] = wilson(int(correct[positive].sum()), n1, alpha)
    if n0:
        out["specificity"] = wilson(int(correct[~positive].sum()), n0, alpha)
    if n1 and n0:
        weight = np.where(positive, 0.5 / n1, 0.5 / n0)     # SS-Avg = sum(weight * correct)
        out["ss_avg"] = bootstrap(lambda idx: (weight[idx] * correct[idx]).sum(axis=1), positive.size,
                                  resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED, alpha=alpha,
                                  strata=positive)
    if n1 >= 2 and n0 >= 2:
        out["auc"] = delong_auc(np.asarray(scores, dtype=float), positive, alpha)
    return out


def _reader_exam_metrics(reader: ReaderInfo, exam: int, cases: Sequence[CaseInfo],
                         reads: Mapping[str, ReadRecord], alpha: float) -> ReaderExamMetrics:
    answered = [c for c in cases if c.label in reads]
    chosen = [reads[c.label] for c in answered]
    answers = ([c.truth for c in answered], [r.call for r in chosen], [r.confidence for r in chosen])
    counts, values, roc = answer_metrics(*answers)
    seconds = float(np.mean([r.active_seconds for r in chosen])) if chosen else None
    return ReaderExamMetrics(reader=reader.code, group=reader.group, years=reader.years, exam=exam,
                             n_cases=len(cases), n_read=len(chosen), counts=counts, values=values,
                             mean_seconds=seconds, roc=roc, intervals=answer_intervals(*answers, alpha=alpha))


def _mean_sd(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    array = np.asarray(values, dtype=float)
    return float(array.mean()), (float(array.std(ddof=1)) if array.size >= 2 else None)


def _group_members(readers: Sequence[ReaderInfo], group: str, among: Iterable[str]) -> tuple[str, ...]:
    among = set(among)
    return tuple(r.code for r in readers if r.code in among and (group == ALL_READERS or r.group == group))


def group_interval(ratings: np.ndarray, truth: np.ndarray, metric: str, *,
                   alpha: float = 0.05) -> Interval | None:
    """``GROUP_INTERVAL_METHOD`` for the readers' mean ``metric`` in one exam; None where undefined.

    ``ratings`` (readers, cases): confidence 0-100 for the AUC, 0/1 sarcoma calls otherwise; ``truth`` (cases,)
    True = sarcoma. Accuracy and SS-Avg are weighted sums of sensitivity and specificity, which depend on
    disjoint cases, so their covariance is the same sum: SS-Avg (S_sens + S_spec) / 4, accuracy
    (n1^2 S_sens + n0^2 S_spec) / n^2. Clipped to [0, 1]. None for fewer than 2 readers, fewer than 2 cases of
    a class the metric uses, or a zero SE (the readers agree exactly and cov2 <= 0: no width to give).
    """
    ratings, truth = np.asarray(ratings, dtype=float), np.asarray(truth, dtype=bool)
    if ratings.shape[0] < 2:
        return None
    try:
        if metric in mrmc.FIGURES_OF_MERIT:
            comps = mrmc.fom_components(ratings[None], truth, metric)
            fom, cov = comps.fom[0], mrmc.delong_covariance(comps)
        else:
            sens = mrmc.fom_components(ratings[None], truth, "sensitivity")
            spec = mrmc.fom_components(ratings[None], truth, "specificity")
            n1, n0 = int(truth.sum()), int((~truth).sum())
            w1, w0 = (0.5, 0.5) if metric == "ss_avg" else (n1 / (n1 + n0), n0 / (n1 + n0))
            fom = w1 * sens.fom[0] + w0 * spec.fom[0]
            cov = w1 ** 2 * mrmc.delong_covariance(sens) + w0 ** 2 * mrmc.delong_covariance(spec)
    except mrmc.MRMCError:
        return None
    cov2 = mrmc.covariance_terms(cov, 1, ratings.shape[0]).cov2
    estimate = mrmc.rrrc_modality_estimate(fom, cov2, alpha=alpha)
    if not (estimate.se > 0 and math.isfinite(estimate.ci_lo) and math.isfinite(estimate.ci_hi)):
        return None
    return Interval(estimate.estimate, max(0.0, estimate.ci_lo), min(1.0, estimate.ci_hi), alpha)


def _group_intervals(cases, reads_by_key, members, exam, alpha) -> dict[str, Interval | None]:
    if len(members) < 2:
        return dict.fromkeys(METRICS)
    truth = np.array([c.truth == SARCOMA for c in cases])
    reads = [[reads_by_key[(code, exam, c.label)] for c in cases] for code in members]
    calls = np.array([[float(r.call == SARCOMA) for r in row] for row in reads])
    confidence = np.array([[r.confidence for r in row] for row in reads])
    return {metric: group_interval(confidence if metric == "auc" else calls, truth, metric, alpha=alpha)
            for metric in METRICS}


def _group_summaries(readers, by_key, complete, cases, reads_by_key, alpha) -> tuple[GroupSummary, ...]:
    out = []
    for exam in EXAMS:
        for group in (*GROUPS, ALL_READERS):
            members = _group_members(readers, group, complete[exam])
            mean, sd = {}, {}
            for metric in METRICS:
                vals = [by_key[(code, exam)].values[metric] for code in members]
                mean[metric], sd[metric] = _mean_sd([v for v in vals if v is not None])
            out.append(GroupSummary(group=group, exam=exam, readers=members, mean=mean, sd=sd,
                                    intervals=_group_intervals(cases, reads_by_key, members, exam, alpha)))
    return tuple(out)


def dnn_figures(cases: Sequence[CaseInfo], *, alpha: float = 0.05) -> DnnFigures | None:
    """The DNN on the cases that have an AI result, from :attr:`CaseInfo.dnn_likelihood` (nested where the
    evaluation has it for a case of its training cohort); None when no case has one."""
    with_ai = [c for c in cases if c.dnn_likelihood is not None]
    if not with_ai:
        return None
    scores = [c.dnn_likelihood for c in with_ai]
    answers = ([c.truth for c in with_ai], [metrics.ai_call(x) for x in scores], scores)
    counts, values, roc = answer_metrics(*answers)
    return DnnFigures(n_cases=len(with_ai), n_without_ai=len(cases) - len(with_ai), counts=counts,
                      values=values, roc=roc, intervals=answer_intervals(*answers, alpha=alpha),
                      sources=dict(Counter(c.dnn_source for c in with_ai)))


# --------------------------------------------------------------------------------------------------
# t-tests
# --------------------------------------------------------------------------------------------------


def one_sample_t_test(values, reference: float, *, confidence: float = 0.95) -> ttests.TTestResult:
    """Two-sided one-sample t-test of mean(values) against a fixed ``reference`` (df = n - 1).

    Used for a reader group against the DNN when only the DNN's single value is known: it treats the
    DNN's figure as a constant and asks whether the readers' mean differs from it.
    """
    array = np.asarray(values, dtype=float)
    if array.size < 2:
        raise ValueError(f"a one-sample t-test needs at least 2 values, got {array.size}")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sp_stats.ttest_1samp(array, popmean=reference)
        ci = res.confidence_interval(confidence_level=confidence)
    mean = float(array.mean())
    result = ttests.TTestResult(test=ONE_SAMPLE, name=ONE_SAMPLE_NAME, statistic=float(res.statistic),
                              df=float(res.df), p=float(res.pvalue), mean_a=mean, mean_b=float(reference),
                              mean_difference=mean - float(reference), ci_lo=float(ci.low) - reference,
                              ci_hi=float(ci.high) - reference, confidence=confidence, n_a=int(array.size),
                              n_b=1)
    return _undefined_if_constant((result,), _spread(array))[0]


CONSTANT_SPREAD = 1e-9   # metric values (fractions) closer than this are equal: their t-test is undefined


def _quiet(func, *args):
    """Run a t-test; SciPy warns (and returns NaN) when both samples have no variance: keep the NaN."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args)


def _undefined_if_constant(tests, spread: float) -> tuple[ttests.TTestResult, ...]:
    """t, p and CI set to NaN when the values the test divides by do not vary (``spread`` ~ 0).

    Then the t statistic is x/0: SciPy gives +-inf and p = 0 (or, after rounding, t ~ 1e16), which would
    read as overwhelming significance; it is undefined instead.
    """
    tests = tuple(tests)
    if spread >= CONSTANT_SPREAD:
        return tests
    return tuple(replace(t, statistic=math.nan, p=math.nan, ci_lo=math.nan, ci_hi=math.nan) for t in tests)


def _spread(values) -> float:
    return float(np.ptp(np.asarray(values, dtype=float))) if len(values) else 0.0


def _values(by_key, codes, exam: int, metric: str) -> list[float]:
    vals = [by_key[(code, exam)].values[metric] for code in codes]
    return [v for v in vals if v is not None]


def _group_comparisons(readers, by_key, complete, dnn) -> list[Comparison]:
    out = []
    for exam in EXAMS:
        spec = _group_members(readers, SPECIALIST, complete[exam])
        prac = _group_members(readers, PRACTITIONER, complete[exam])
        for metric in METRICS:
            a, b = _values(by_key, spec, exam, metric), _values(by_key, prac, exam, metric)
            base = {"kind": "groups", "metric": metric, "exam": exam, "group": None,
                    "a": GROUP_LABELS[SPECIALIST], "b": GROUP_LABELS[PRACTITIONER]}
            if len(a) < 2 or len(b) < 2:
                out.append(Comparison(**base, note="needs at least 2 complete readers per group with a "
                                                   f"value (have {len(a)} and {len(b)})"))
            else:
                tests = _quiet(ttests.compare_groups, a, b)
                tests = _undefined_if_constant(tests, max(_spread(a), _spread(b)))
                out.append(Comparison(**base, tests=tests))
            for group, members in ((SPECIALIST, spec), (PRACTITIONER, prac)):
                out.append(_vs_dnn(metric, exam, group, _values(by_key, members, exam, metric), dnn))
    return out


def _vs_dnn(metric, exam, group, values, dnn: DnnFigures | None) -> Comparison:
    """A group against the DNN row's value (the same row the page shows, :func:`dnn_figures`): one-sample t-test.

    The DNN is one fixed classifier on these cases, so it is taken as a constant; its 24 ensembles are not
    independent samples of anything (they share 22 of 23 repeats), so no two-sample test against them."""
    base = {"kind": "vs_dnn", "metric": metric, "exam": exam, "group": group, "a": GROUP_LABELS[group],
            "b": "DNN"}
    if len(values) < 2:
        return Comparison(**base, note=f"needs at least 2 complete readers with a value (have {len(values)})")
    if dnn is None or dnn.values.get(metric) is None:
        return Comparison(**base, note="no DNN value (no AI results for the study's cases)")
    return Comparison(**base, tests=(one_sample_t_test(values, dnn.values[metric]),),
                      note=f"DNN row: {dnn.source} likelihoods")


def _exam_comparisons(readers, by_key, both) -> list[Comparison]:
    out = []
    for group in (*GROUPS, ALL_READERS):
        members = _group_members(readers, group, both)
        for metric in METRICS:
            pairs = [(by_key[(c, 1)].values[metric], by_key[(c, 2)].values[metric]) for c in members]
            pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
            base = {"kind": "exams", "metric": metric, "exam": None, "group": group,
                    "a": EXAM_LABELS[1], "b": EXAM_LABELS[2]}
            if len(pairs) < 2:
                out.append(Comparison(**base, note=f"needs at least 2 readers complete in both exams "
                                                   f"(have {len(pairs)})"))
                continue
            first, second = zip(*pairs, strict=True)
            test = _quiet(ttests.paired_t_test, list(first), list(second))
            spread = _spread(np.subtract(first, second))
            out.append(Comparison(**base, tests=_undefined_if_constant((test,), spread)))
    return out


# --------------------------------------------------------------------------------------------------
# MRMC exam 1 vs exam 2
# --------------------------------------------------------------------------------------------------


def mrmc_ratings(cases: Sequence[CaseInfo], reads: Mapping[tuple[str, int, str], ReadRecord],
                 reader_codes: Sequence[str], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(2 exams, readers, cases) ratings, (cases,) truth: confidence for AUC, else 0/1 sarcoma calls."""
    ratings = np.empty((len(EXAMS), len(reader_codes), len(cases)))
    for i, exam in enumerate(EXAMS):
        for j, code in enumerate(reader_codes):
            for k, case in enumerate(cases):
                read = reads[(code, exam, case.label)]
                ratings[i, j, k] = read.confidence if metric == "auc" else float(read.call == SARCOMA)
    truth = np.array([c.truth == SARCOMA for c in cases])
    return ratings, truth


def _fmt_metric(metric: str, value: float) -> str:
    return f"{value:.3f}" if metric == "auc" else f"{100 * value:.1f} %"


def _fmt_difference(metric: str, value: float) -> str:
    return f"{value:+.3f}" if metric == "auc" else f"{100 * value:+.1f} points"


def _fmt_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def mrmc_conclusion(summary_metric: str, result: mrmc.MRMCAnalysis, alpha: float = 0.05) -> str:
    """The random-readers, random-cases result (OR, Hillis df) in plain words, exam 2 relative to exam 1."""
    name = {"auc": "AUC (from the confidence ratings)", "sensitivity": "sensitivity",
            "specificity": "specificity"}[summary_metric]
    o = result.obuchowski_rockette
    first, second = (float(v) for v in o.fom_mean)
    diff = o.rrrc.differences[0]              # exam 1 minus exam 2
    change, lo, hi = -diff.estimate, -diff.ci_hi, -diff.ci_lo
    head = (f"Readers' mean {name}: {_fmt_metric(summary_metric, first)} unaided (exam 1), "
            f"{_fmt_metric(summary_metric, second)} with the AI (exam 2); change "
            f"{_fmt_difference(summary_metric, change)}")
    p = o.rrrc.p
    if p is None or not math.isfinite(p):
        return (f"{head}. No test is possible: its error term is zero (every reader changed by the same "
                "amount and the readers' errors are no more alike within an exam than across exams), so "
                "the F statistic is undefined; more readers or cases are needed.")
    head += (f" (95 % CI {_fmt_difference(summary_metric, lo)} to {_fmt_difference(summary_metric, hi)}; "
             f"F = {o.rrrc.statistic:.2f} on {o.rrrc.df1:g} and {o.rrrc.ddf:.1f} df, {_fmt_p(p)})")
    if p < alpha:
        direction = "higher" if change > 0 else "lower"
        return (f"{head}. The {name} is significantly {direction} with the AI at the {100 * alpha:g} % "
                "level, treating readers and cases as random: the difference is expected to hold for other "
                "readers like these reading other cases like these.")
    return (f"{head}. The difference is not significant at the {100 * alpha:g} % level, treating readers and "
            f"cases as random: these data do not show that the AI changes the {name} of readers like these "
            "on cases like these; the confidence interval shows the changes the data leave possible.")


def _mrmc_one(metric, cases, reads_by_key, both, alpha) -> MrmcSummary:
    readers = tuple(both)
    if len(readers) < 2:
        return MrmcSummary(metric=metric, readers=readers,
                           note=f"needs at least 2 readers who completed both exams (have {len(readers)})")
    ratings, truth = mrmc_ratings(cases, reads_by_key, readers, metric)
    try:
        result = mrmc.analyse(ratings, truth, metric=metric, covariance="delong",
                              modality_ids=MRMC_MODALITIES, reader_ids=readers, alpha=alpha)
    except mrmc.MRMCError as exc:
        return MrmcSummary(metric=metric, readers=readers, note=str(exc))
    try:
        as_dict, note = analysis_to_dict(result), ""
    except ZeroDivisionError:   # mrmc's correlations divide by var, which is 0 when no case changes the FOM
        as_dict = None
        note = (f"the {metric} has no case-to-case variance (every reader gets every case of the class it "
                "counts the same way), so the covariance correlations are undefined")
    return MrmcSummary(metric=metric, readers=readers, analysis=result, result=as_dict,
                       conclusion=mrmc_conclusion(metric, result, alpha), note=note)


# --------------------------------------------------------------------------------------------------
# Misdiagnosis (paper Fig. 2e/f)
# --------------------------------------------------------------------------------------------------


def dnn_wrong(case: CaseInfo) -> bool | None:
    """The DNN's call differs from the truth (``core.metrics.ai_wrong``: likelihood >= 50 % is a sarcoma call)
    on the DNN row's likelihood (:attr:`CaseInfo.dnn_likelihood`); None without an AI result."""
    return metrics.ai_wrong(case.dnn_likelihood, case.truth)


def _misdiagnosis(exam, cases, reads_by_key, readers) -> Misdiagnosis:
    rows = []
    counts: dict[str, dict[str, int]] = {t: dict.fromkeys(MISSED_LABELS, 0) for t in (SARCOMA, LEIOMYOMA)}
    for case in cases:
        wrong = sum(reads_by_key[(code, exam, case.label)].call != case.truth for code in readers)
        row = MisdiagnosedCase(case=case.label, truth=case.truth, max_diameter_mm=case.max_diameter_mm,
                               degeneration=case.degeneration, degeneration_votes=case.degeneration_votes,
                               ai_likelihood=case.dnn_likelihood, dnn_wrong=dnn_wrong(case),
                               readers_wrong=wrong, readers_total=len(readers))
        if row.category:
            counts[case.truth][row.category] += 1
        rows.append(row)
    return Misdiagnosis(exam=exam, readers=tuple(readers), cases=tuple(rows), counts=counts)


# --------------------------------------------------------------------------------------------------
# Everything
# --------------------------------------------------------------------------------------------------


def _notes(readers, reader_exams, complete, both) -> list[str]:
    notes = []
    for exam in EXAMS:
        behind = [m for m in reader_exams if m.exam == exam and not m.complete]
        if behind:
            listed = ", ".join(f"{m.reader} ({m.state})" for m in behind)
            notes.append(f"{EXAM_LABELS[exam]}: not finished by {listed}; group means, t-tests and the "
                         "misdiagnosis analysis of this exam use the "
                         f"{len(complete[exam])} complete reader(s).")
    if len(both) < len(readers):
        notes.append(f"Paired tests and MRMC use the {len(both)} reader(s) who completed both exams"
                     + (f": {', '.join(both)}." if both else "."))
    return notes


def compute(readers: Sequence[ReaderInfo], cases: Sequence[CaseInfo], reads: Sequence[ReadRecord], *,
            alpha: float = 0.05) -> StudyStatistics:
    """All statistics of a study (see the module docstring), with 1 - ``alpha`` intervals."""
    readers, cases, reads = tuple(readers), tuple(cases), tuple(reads)
    _check_inputs(readers, cases, reads)
    reads_by_key = {(r.reader, r.exam, r.case): r for r in reads}
    per_reader: dict[tuple[str, int], dict[str, ReadRecord]] = defaultdict(dict)
    for r in reads:
        per_reader[(r.reader, r.exam)][r.case] = r
    reader_exams = tuple(_reader_exam_metrics(reader, exam, cases, per_reader[(reader.code, exam)], alpha)
                         for reader in readers for exam in EXAMS)
    by_key = {(m.reader, m.exam): m for m in reader_exams}
    complete = {exam: tuple(m.reader for m in reader_exams if m.exam == exam and m.complete)
                for exam in EXAMS}
    both = tuple(code for code in complete[1] if code in complete[2])
    dnn = dnn_figures(cases, alpha=alpha)
    comparisons = _group_comparisons(readers, by_key, complete, dnn) + _exam_comparisons(readers, by_key, both)
    return StudyStatistics(
        readers=readers, cases=cases, reader_exams=reader_exams, complete_readers=complete,
        readers_complete_both=both,
        groups=_group_summaries(readers, by_key, complete, cases, reads_by_key, alpha), dnn=dnn,
        comparisons=tuple(comparisons),
        mrmc=tuple(_mrmc_one(metric, cases, reads_by_key, both, alpha) for metric in MRMC_METRICS),
        misdiagnosis=tuple(_misdiagnosis(exam, cases, reads_by_key, complete[exam]) for exam in EXAMS),
        alpha=alpha, notes=tuple(_notes(readers, reader_exams, complete, both)))
