"""A GENERATED reader study with known reads, built directly through the ORM (all data SYNTHETIC).

Six cases (3 sarcomas, 3 leiomyomas), four complete readers (2 specialists, 2 practitioners) and one
practitioner (R05) who read only three cases of exam 1. The confidences below fix every call (sarcoma at
>= 50) and every statistic; the expected values in EXPECTED were worked out by hand (see the comments).
"""

from __future__ import annotations

import hashlib
import itertools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from accounts.models import ReaderProfile
from accounts.roles import READER
from analysis.study_stats import CaseInfo, ReaderInfo, ReadRecord
from core.constants import LEIOMYOMA, SARCOMA
from imaging.models import Case
from inference.models import CaseAIResult, Evaluation
from reader_study.models import Assignment, Enrollment, ExamProgress, Read, Study

S, L = SARCOMA, LEIOMYOMA
TRUTH = (S, S, S, L, L, L)
SIZES_MM = ((45.0, 30.0, 28.0), (80.0, 62.0, 50.0), (30.0, 22.0, 25.0), (120.0, 90.0, 70.0),
            (70.0, 95.0, 60.0), (60.0, 41.0, 33.0))    # largest diameters 45, 80, 30, 120, 95, 60
DEGENERATION = (None, None, None, True, False, None)
AI_LIKELIHOOD = (95.83, 62.5, 41.67, 12.5, 58.33, 4.17)      # DNN: S S L L S L -> case 3 and case 5 wrong
READERS = (("R01", "specialist", 14), ("R02", "specialist", 8), ("R03", "practitioner", 4),
           ("R04", "practitioner", 2), ("R05", "practitioner", 1))
# confidence per reader x exam, one per case in TRUTH order; the call is sarcoma when confidence >= 50
CONFIDENCE = {
    ("R01", 1): (90, 70, 30, 55, 60, 10),   # S S L S S L: TP2 FN1 TN1 FP2; AUC 7/9
    ("R01", 2): (95, 80, 60, 20, 40, 10),   # S S S L L L: all right; AUC 9/9
    ("R02", 1): (80, 40, 30, 30, 20, 10),   # S L L L L L: TP1 FN2 TN3 FP0; AUC 8.5/9 (a 30-30 tie)
    ("R02", 2): (85, 65, 35, 55, 20, 10),   # S S L S L L: TP2 FN1 TN2 FP1; AUC 8/9
    ("R03", 1): (60, 30, 20, 70, 40, 10),   # S L L S L L: TP1 FN2 TN2 FP1; AUC 4/9
    ("R03", 2): (90, 70, 40, 60, 30, 20),   # S S L S L L: TP2 FN1 TN2 FP1; AUC 8/9
    ("R04", 1): (40, 55, 20, 50, 30, 60),   # L S L S L S: TP1 FN2 TN1 FP2; AUC 3/9
    ("R04", 2): (75, 65, 52, 55, 35, 15),   # S S S S L L: TP3 FN0 TN2 FP1; AUC 8/9
    ("R05", 1): (70, 20, 90, None, None, None),   # incomplete: 3 of 6 cases in exam 1, nothing in exam 2
}
SECONDS = 30.0

# Hand-computed (percent, AUC as a fraction). Reader x exam: accuracy, sensitivity, specificity, SS-Avg, AUC.
EXPECTED_READERS = {
    ("R01", 1): (50.0, 200 / 3, 100 / 3, 50.0, 7 / 9),
    ("R01", 2): (100.0, 100.0, 100.0, 100.0, 1.0),
    ("R02", 1): (200 / 3, 100 / 3, 100.0, 200 / 3, 8.5 / 9),
    ("R02", 2): (200 / 3, 200 / 3, 200 / 3, 200 / 3, 8 / 9),
    ("R03", 1): (50.0, 100 / 3, 200 / 3, 50.0, 4 / 9),
    ("R03", 2): (200 / 3, 200 / 3, 200 / 3, 200 / 3, 8 / 9),
    ("R04", 1): (100 / 3, 100 / 3, 100 / 3, 100 / 3, 3 / 9),
    ("R04", 2): (250 / 3, 100.0, 200 / 3, 250 / 3, 8 / 9),
}
EXPECTED_DNN = (200 / 3, 200 / 3, 200 / 3, 200 / 3, 8 / 9)
# misdiagnosis (complete readers; more than half wrong): exam 1: case 3 both (4 of 4 readers wrong), case 4
# readers only (3 of 4), case 5 DNN only; exam 2: case 3 DNN only (2 of 4 is not more than half), case 4
# readers only (3 of 4), case 5 DNN only
EXPECTED_MISSED = {1: {"case 003": "both", "case 004": "readers_only", "case 005": "dnn_only"},
                   2: {"case 003": "dnn_only", "case 004": "readers_only", "case 005": "dnn_only"}}


# Evaluation.results as inference.runners.analyse stores it (the parts analysis reads)
EVALUATION_RESULTS = {
    "synthetic": True, "n_patients": 263, "n_sarcoma": 63, "n_leiomyoma": 200,
    "ensemble": {"top_mean": {"n_sets": 10, "accuracy_percent": 90.3, "sensitivity_percent": 89.8,
                              "specificity_percent": 91.7, "ss_avg_percent": 90.75, "auc_percent": 93.0,
                              "honest_sensitivity_percent": 85.0, "honest_specificity_percent": 88.0,
                              "honest_accuracy_percent": 87.3, "honest_ss_avg_percent": 86.5}},
    "single": {"top_mean": {"n_sets": 10, "accuracy_percent": 86.0, "sensitivity_percent": 84.0,
                            "specificity_percent": 87.0, "ss_avg_percent": 85.5, "auc_percent": 90.0}},
    "chosen": {"codes": ["DWI", "T2axi", "T2sag"], "rank": 1,
               "ensemble": {"sequences": "DWI T2axi T2sag", "accuracy_percent": 91.0,
                            "sensitivity_percent": 90.5, "specificity_percent": 91.5, "ss_avg_percent": 91.0,
                            "auc_percent": 93.8}},
}


def call_of(confidence: int) -> str:
    return S if confidence >= 50 else L


def plain_records() -> tuple[list[ReaderInfo], list[CaseInfo], list[ReadRecord]]:
    """The same study as plain records for analysis.study_stats (no database)."""
    readers = [ReaderInfo(code, group, years) for code, group, years in READERS]
    cases = [CaseInfo(label=f"case {i:03d}", truth=t, max_diameter_mm=max(SIZES_MM[i - 1]),
                      degeneration=DEGENERATION[i - 1], ai_likelihood=AI_LIKELIHOOD[i - 1])
             for i, t in enumerate(TRUTH, start=1)]
    reads = [ReadRecord(reader=code, exam=exam, case=f"case {i:03d}", call=call_of(conf), confidence=conf,
                        active_seconds=SECONDS)
             for (code, exam), confs in CONFIDENCE.items() for i, conf in enumerate(confs, start=1)
             if conf is not None]
    return readers, cases, reads


_serial = itertools.count(1)


def make_reader(code: str, group: str, years: int):
    """A user in the Reader role with a profile; no password (tests log in with force_login)."""
    n = next(_serial)
    user = get_user_model().objects.create(username=f"analysis-reader-{code.lower()}-{n}")
    user.set_unusable_password()
    user.save()
    user.groups.add(Group.objects.get_or_create(name=READER)[0])
    ReaderProfile.objects.create(user=user, code=code, group=group, years_experience=years)
    return user


def make_case(truth: str, index: int, *, with_series: bool = False) -> Case:
    n = next(_serial)
    length, width, height = SIZES_MM[(index - 1) % len(SIZES_MM)]
    case = Case.objects.create(
        pseudonym=f"PSN-SECRET-{n:05d}", source_key_hash=hashlib.sha256(f"analysis-{n}".encode()).hexdigest(),
        truth=truth, length_mm=length, width_mm=width, height_mm=height,
        degeneration=DEGENERATION[(index - 1) % len(DEGENERATION)], is_synthetic=True)
    if with_series:
        case.series.create(series_uid=f"2.25.9{n:06d}", mapped_code="T2axi", n_slices=1, rows=8, cols=8,
                           volume_path=f"series/analysis-test-{n}.bin")   # never opened here
    return case


def make_evaluation(cases, likelihoods=AI_LIKELIHOOD) -> Evaluation:
    evaluation = Evaluation.objects.create(
        name=f"evaluation {next(_serial)} (synthetic)", status=Evaluation.Status.DONE,
        chosen_subset=["T2axi", "T2sag", "DWI"],
        results=EVALUATION_RESULTS)
    for case, likelihood in zip(cases, likelihoods, strict=True):
        CaseAIResult.objects.create(evaluation=evaluation, case=case, likelihood=likelihood,
                                    subset=["T2axi", "T2sag", "DWI"], per_sequence={})
    return evaluation


def build_study(*, name: str = "Generated study (synthetic)", confidence=None, extra_cases=()) -> dict:
    """The generated study in the database: cases, readers, enrolments, worklists and reads of both exams.

    ``extra_cases``: truths of further cases that nobody read (e.g. "" for a case without ground truth).
    Display codes differ between exams ("A-1xx" exam 1, "B-2xx" exam 2), positions are shuffled per reader.
    """
    confidence = confidence or CONFIDENCE
    cases = [make_case(t, i) for i, t in enumerate(TRUTH, start=1)]
    evaluation = make_evaluation(cases)
    cases += [make_case(t, len(cases) + k + 1) for k, t in enumerate(extra_cases)]
    study = Study.objects.create(name=name, evaluation=evaluation, status=Study.Status.OPEN)
    study.cases.set(cases)
    readers = {code: make_reader(code, group, years) for code, group, years in READERS}
    now = timezone.now()
    for r_index, (code, user) in enumerate(readers.items()):
        Enrollment.objects.create(study=study, reader=user)
        for exam in (1, 2):
            confs = confidence.get((code, exam), (None,) * len(TRUTH))
            complete = all(c is not None for c in confs)
            ExamProgress.objects.create(study=study, reader=user, exam=exam, seed=r_index * 10 + exam,
                                        started_at=now, finished_at=now if complete else None)
            for c_index, case in enumerate(cases):
                assignment = Assignment.objects.create(
                    study=study, reader=user, exam=exam, case=case,
                    position=_unique_position(c_index, r_index, len(cases)),
                    display_code=f"{'AB'[exam - 1]}-{exam}{r_index}{c_index:02d}", active_seconds=SECONDS)
                conf = confs[c_index] if c_index < len(confs) else None
                if conf is not None:
                    Read.objects.create(assignment=assignment, call=call_of(conf), confidence=conf,
                                        active_seconds=SECONDS,
                                        ai_likelihood_shown=AI_LIKELIHOOD[c_index] if exam == 2 else None)
    return {"study": study, "cases": cases, "readers": readers, "evaluation": evaluation}


def _unique_position(c_index: int, r_index: int, n: int) -> int:
    """A per-reader permutation of 0..n-1 (reversed for odd readers), so orders differ between readers."""
    return n - 1 - c_index if r_index % 2 else c_index
