"""Reads for the analysis pages and exports, with the permission filter built in.

Only coordinators (and admins) see study statistics: ``studies_for_analysis`` is empty for anyone else.
``study_records`` turns a study's rows into the plain records of :mod:`analysis.study_stats`; cases appear
there under a study-level label (``case_labels``), never under their pseudonym.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from accounts.roles import is_coordinator
from analysis.study_stats import CaseInfo, ReaderInfo, ReadRecord
from core.constants import CLASS_CHOICES
from inference import selectors as inference_selectors
from inference.models import CaseAIResult
from reader_study.models import Assignment, DescriptorScore, Read, Study
from reader_study.selectors import study_truths

KNOWN_TRUTHS = {value for value, _ in CLASS_CHOICES}
UNKNOWN_GROUP = "unknown"


def studies_for_analysis(user) -> QuerySet[Study]:
    """Every study for coordinators and admins, with case, reader and read counts; nothing for others."""
    if not is_coordinator(user):
        return Study.objects.none()
    return (Study.objects.select_related("evaluation")
            .annotate(n_cases=Count("cases", distinct=True), n_readers=Count("enrollments", distinct=True),
                      n_reads=Count("assignments__read", distinct=True)))


def study_for_analysis(user, pk: int) -> Study:
    """One study for a coordinator; raises Study.DoesNotExist otherwise."""
    return studies_for_analysis(user).get(pk=pk)


def case_labels(study: Study) -> dict[int, str]:
    """Case pk -> "case 001", "case 002", ... numbered by the cases' primary keys (import order).

    The label is the same in both exams (unlike the exam-specific display codes), so a case's exam-1 and
    exam-2 rows join on it; it is not the pseudonym. Adding a case to the study later appends a number.
    """
    pks = list(study.cases.order_by("pk").values_list("pk", flat=True))
    width = max(3, len(str(len(pks))))
    return {pk: f"case {i:0{width}d}" for i, pk in enumerate(pks, start=1)}


def reader_infos(study: Study) -> dict[int, ReaderInfo]:
    """User pk -> ReaderInfo for every reader enrolled in or with a worklist in the study, by reader code.

    A reader without a profile (should not happen: readers get one when created) appears as "U<pk>" in
    group "unknown", so no username ever reaches the statistics or an export.
    """
    from django.contrib.auth import get_user_model

    users = (get_user_model().objects
             .filter(Q(enrollments__study=study) | Q(assignments__study=study)).distinct()
             .select_related("reader_profile"))
    infos = {}
    for user in users:
        profile = getattr(user, "reader_profile", None)
        infos[user.pk] = (ReaderInfo(code=profile.code, group=profile.group, years=profile.years_experience)
                          if profile else ReaderInfo(code=f"U{user.pk}", group=UNKNOWN_GROUP, years=None))
    return dict(sorted(infos.items(), key=lambda item: item[1].code))


@dataclass(frozen=True)
class StudyRecords:
    """A study as plain records, plus what was left out of the statistics and why."""

    readers: tuple[ReaderInfo, ...]
    cases: tuple[CaseInfo, ...]
    reads: tuple[ReadRecord, ...]
    cases_without_truth: int
    synthetic: bool


def _degeneration_votes(study: Study) -> dict[int, tuple[int, int]]:
    rows = (DescriptorScore.objects.filter(assignment__study=study).values("assignment__case_id")
            .annotate(yes=Count("pk", filter=Q(degeneration=True)), n=Count("pk")))
    return {r["assignment__case_id"]: (r["yes"], r["n"]) for r in rows}


def study_ai_likelihoods(study: Study) -> dict[int, tuple[float, bool, float | None]]:
    """Case pk -> (likelihood shown in exam 2 %, in the evaluation's training cohort, nested likelihood % or
    None) for the study's cases with an AI result. A case of the training cohort (a cross-validated
    ``CaseAIResult``, not ``is_deployment``) gets the evaluation's nested (out-of-sample) likelihood where it
    has one (``inference.selectors.nested_case_likelihoods``); a new case never has one (it needs none)."""
    if not study.evaluation_id:
        return {}
    rows = (CaseAIResult.objects.filter(evaluation_id=study.evaluation_id, case__in=study.cases.all())
            .values_list("case_id", "likelihood", "is_deployment"))
    nested = inference_selectors.nested_case_likelihoods(study.evaluation)
    return {pk: (likelihood, not deployment, None if deployment else nested.get(pk))
            for pk, likelihood, deployment in rows}


def study_records(study: Study) -> StudyRecords:
    """The readers, cases (with ground truth only) and reads of a study for :func:`study_stats.compute`.

    The truth is the one frozen with the study (``reader_study.selectors.study_truths``: frozen when it opened,
    else its cohort's), never the live ``Case.truth``: a later correction marks the study stale instead."""
    labels = case_labels(study)
    ai = study_ai_likelihoods(study)
    votes = _degeneration_votes(study)
    truths = study_truths(study)
    cases, without_truth, synthetic = [], 0, True
    for case in study.cases.order_by("pk"):
        synthetic = synthetic and case.is_synthetic
        truth = truths.get(case.pk, "")
        if truth not in KNOWN_TRUTHS:
            without_truth += 1
            continue
        shown, in_cohort, nested = ai.get(case.pk, (None, True, None))
        cases.append(CaseInfo(label=labels[case.pk], truth=truth, max_diameter_mm=case.max_diameter_mm,
                              degeneration=case.degeneration, irregular_margin=case.irregular_margin,
                              ai_likelihood=shown, degeneration_votes=votes.get(case.pk),
                              in_training_cohort=in_cohort, nested_likelihood=nested))
    readers = reader_infos(study)
    kept = {c.label for c in cases}
    reads = []
    rows = (Read.objects.filter(assignment__study=study)
            .values_list("assignment__reader_id", "assignment__exam", "assignment__case_id", "call",
                         "confidence", "active_seconds"))
    for reader_id, exam, case_id, call, confidence, seconds in rows:
        label = labels.get(case_id)
        if label in kept:
            reads.append(ReadRecord(reader=readers[reader_id].code, exam=exam, case=label, call=call,
                                    confidence=float(confidence), active_seconds=float(seconds)))
    return StudyRecords(readers=tuple(readers.values()), cases=tuple(cases), reads=tuple(reads),
                        cases_without_truth=without_truth, synthetic=synthetic and bool(labels))


def reads_for_export(study: Study) -> Iterator[dict]:
    """Every read of the study, one dict per read, in reader-code, exam, case order; streamed from the
    database in chunks (``iterator``), so a large study never sits in memory at once."""
    labels = case_labels(study)
    truths = study_truths(study)
    readers = reader_infos(study)
    order = {pk: i for i, pk in enumerate(readers)}
    assignments = (Assignment.objects.filter(study=study, read__isnull=False)
                   .values_list("reader_id", flat=True).distinct())
    for reader_id in sorted(set(assignments), key=lambda pk: order.get(pk, len(order))):
        info = readers[reader_id]
        rows = (Read.objects.filter(assignment__study=study, assignment__reader_id=reader_id)
                .order_by("assignment__exam", "assignment__case_id")
                .values("assignment__exam", "assignment__case_id", "assignment__display_code",
                        "call", "confidence", "active_seconds",
                        "ai_likelihood_shown"))
        for row in rows.iterator(chunk_size=2000):
            yield {"reader": info.code, "group": info.group, "years_experience": info.years,
                   "exam": row["assignment__exam"], "case": labels.get(row["assignment__case_id"], ""),
                   "display_code": row["assignment__display_code"], "truth": truths.get(row["assignment__case_id"], ""),
                   "call": row["call"], "confidence": row["confidence"],
                   "active_seconds": row["active_seconds"], "ai_likelihood_shown": row["ai_likelihood_shown"]}


def _without_pseudonym(value, pseudonym: str, label: str):
    """``value`` (JSON) with the pseudonym replaced by the study label wherever it occurs in a string."""
    if isinstance(value, str):
        return value.replace(pseudonym, label) if pseudonym else value
    if isinstance(value, list):
        return [_without_pseudonym(v, pseudonym, label) for v in value]
    if isinstance(value, dict):
        return {k: _without_pseudonym(v, pseudonym, label) for k, v in value.items()}
    return value


def case_audit_for_export(study: Study) -> Iterator[dict]:
    """The audit trail of the study's cases (imaging ``CaseAudit``), for case_audit.csv: cases under their
    study label, never their pseudonym (also replaced wherever a reason or value quotes it); the actor as
    ``user <pk>`` (coordinators' usernames stay out of exports, as readers' do) or ``import or job``."""
    from imaging.selectors import case_audit_for_cases

    labels = case_labels(study)
    pseudonyms = dict(study.cases.values_list("pk", "pseudonym"))
    for line in case_audit_for_cases(labels).iterator(chunk_size=2000):
        label, pseudonym = labels[line.case_id], pseudonyms.get(line.case_id, "")
        yield {"case": label, "at": line.at.isoformat(timespec="seconds"), "action": line.action,
               "actor": f"user {line.actor_id}" if line.actor_id else "import or job",
               "before": _without_pseudonym(line.before, pseudonym, label),
               "after": _without_pseudonym(line.after, pseudonym, label),
               "reason": _without_pseudonym(line.reason, pseudonym, label)}


# --------------------------------------------------------------------------------------------------
# What the evaluation itself reports (its whole cohort, not only the study's cases)
# --------------------------------------------------------------------------------------------------

_FIGURE_KEYS = ("accuracy", "sensitivity", "specificity", "ss_avg", "auc")


def _as_figures(candidate, prefix: str = "") -> dict | None:
    """{metric: fraction} from a dict holding ``<prefix><metric>_percent`` values (inference's format)."""
    if not isinstance(candidate, dict):
        return None
    out = {key: float(candidate[f"{prefix}{key}_percent"]) / 100 for key in _FIGURE_KEYS
           if isinstance(candidate.get(f"{prefix}{key}_percent"), int | float)}
    return out if {"sensitivity", "specificity"} <= out.keys() else None


def evaluation_reported_figures(evaluation) -> dict:
    """What the evaluation stored for its whole cohort (not only a study's cases), as fractions.

    From ``Evaluation.results`` as ``inference.runners.analyse`` writes it: ``top10`` = the
    ensembles' mean over the 10 best sequence sets (``results["ensemble"]["top_mean"]``, the paper's
    headline), ``top10_honest`` = the same with thresholds chosen on the training folds, ``single_top10``
    = single models, ``chosen_subset`` = the chosen set's ensemble row (``results["chosen"]["ensemble"]``)
    with ``chosen_codes`` and ``chosen_rank``; ``n_patients``, ``n_sarcoma``, ``n_leiomyoma``; ``methods`` =
    the three-method rows with their 95 % intervals (:func:`_method_figures`); ``intervals`` = {row key:
    {metric: [low, high]}} where the evaluation stored CIs for a row (``top_mean_ci``, ``set_intervals``).
    Parts it lacks are left out.
    """
    results = getattr(evaluation, "results", None)
    if not isinstance(results, dict):
        return {}
    ensemble, single = results.get("ensemble") or {}, results.get("single") or {}
    chosen = results.get("chosen") or {}
    found = {"top10": _as_figures(ensemble.get("top_mean")),
             "top10_honest": _as_figures(ensemble.get("top_mean"), prefix="honest_"),
             "single_top10": _as_figures(single.get("top_mean")),
             "chosen_subset": _as_figures(chosen.get("ensemble"))}
    out = {key: value for key, value in found.items() if value}
    if out.get("chosen_subset"):
        out["chosen_codes"] = [str(c) for c in chosen.get("codes") or evaluation.chosen_subset or []]
        out["chosen_rank"] = chosen.get("rank")
    for key in ("n_patients", "n_sarcoma", "n_leiomyoma"):
        if isinstance(results.get(key), int):
            out[key] = results[key]
    methods = _method_figures(evaluation)
    if methods:
        out["methods"] = methods
    chosen_ci = inference_selectors.set_interval(results, "ensemble", chosen.get("mask"))
    stored = {"top10": _bounds(ensemble.get("top_mean_ci")), "single_top10": _bounds(single.get("top_mean_ci")),
              "top10_honest": _bounds(ensemble.get("top_mean_ci"), {"ss_avg": "honest_ss_avg"}),
              "chosen_subset": _bounds(chosen_ci)}
    intervals = {key: bounds for key, bounds in stored.items() if bounds and key in out}
    if intervals:
        out["intervals"] = intervals
    return out


def _bounds(block, names: dict | None = None) -> dict:
    """{metric: [low, high]} as fractions from a stored CI block ``{name: {"ci_low", "ci_high"}}`` in %;
    ``names`` maps a metric to the block's name for it (e.g. the honest SS-Avg); other metrics are taken only
    when ``names`` is None."""
    if not isinstance(block, dict):
        return {}
    out = {}
    for metric in _FIGURE_KEYS:
        name = metric if names is None else names.get(metric)
        entry = block.get(name) if name else None
        if isinstance(entry, dict) and all(isinstance(entry.get(b), int | float) for b in ("ci_low", "ci_high")):
            out[metric] = [float(entry["ci_low"]) / 100, float(entry["ci_high"]) / 100]
    return out


def _method_figures(evaluation) -> list[dict]:
    """The evaluation's three-method rows (paper-style, training-fold thresholds, nested) as fractions with
    their stored 95 % intervals: [{"method", "label", "values": {metric: x}, "intervals": {metric: [lo, hi]}}]."""
    out = []
    for row in inference_selectors.method_rows(evaluation):
        values, bounds = {}, {}
        for key in _FIGURE_KEYS:
            block = row.get(key)
            if isinstance(block, dict) and isinstance(block.get("estimate"), int | float):
                values[key] = float(block["estimate"]) / 100
                if all(isinstance(block.get(b), int | float) for b in ("ci_low", "ci_high")):
                    bounds[key] = [float(block["ci_low"]) / 100, float(block["ci_high"]) / 100]
        if values:
            out.append({"method": row["method"], "label": str(row.get("label") or row["method"]),
                        "values": values, "intervals": bounds})
    return out
