"""What reader studies freeze, and how they learn of a correction (imaging.frozen's registry; issue 13).

imaging cannot import reader_study (layers), so `ReaderStudyConfig.ready()` registers these two functions with
`imaging.frozen`: a study that is no longer a draft freezes its cases, and a correction of one of them marks the
study stale. `truth_drift` says where the truth frozen with a study now differs from the cases' (corrected)
truth: what `services.study_truth_adopt` would adopt.
"""

from dataclasses import dataclass

from django.db.models import F, Q

from reader_study.models import Study


def _study_case_rows(case_ids: list[int]):
    through = Study.cases.through
    return (through.objects.filter(case_id__in=case_ids).exclude(study__status=Study.Status.DRAFT)
            .order_by("study__name").values_list("case_id", "study_id", "study__name"))


def study_freezes(case_ids: list[int]) -> dict[int, list[str]]:
    """{case_id: ["study <name>", ...]} for the cases in open or closed studies."""
    found: dict[int, list[str]] = {}
    for case_id, _study_id, name in _study_case_rows(case_ids):
        found.setdefault(case_id, []).append(f"study {name}")
    return found


def freeze_truths(study: Study) -> int:
    """Freeze the ground truth of the study's cases that have none frozen yet (``StudyCaseTruth``): the
    cohort's frozen truth (``CohortCase.truth``) when the study has a cohort holding the case, else the case's
    truth now. Called when the study opens (and, for a study opened before this existed, before a correction
    changes one of its cases). Returns the number of rows written."""
    from imaging.models import CohortCase
    from reader_study.models import StudyCaseTruth

    have = set(StudyCaseTruth.objects.filter(study=study).values_list("case_id", flat=True))
    cohort_truth = {}
    if study.cohort_id:
        cohort_truth = dict(CohortCase.objects.filter(cohort_id=study.cohort_id).values_list("case_id", "truth"))
    rows = [StudyCaseTruth(study=study, case_id=pk, truth=cohort_truth.get(pk, truth), subtype=subtype)
            for pk, truth, subtype in study.cases.values_list("pk", "truth", "subtype") if pk not in have]
    StudyCaseTruth.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def mark_studies_stale(*, case_ids, cohort_ids, reason: str, at) -> list[str]:
    """Mark stale every open or closed study holding the cases (or built on the cohorts), after freezing the
    truth of any of their cases not frozen yet; returns their labels ("study <name>")."""
    from django.db.models import Q

    ids = set(Study.objects.filter(Q(cases__in=case_ids) | Q(cohort_id__in=cohort_ids))
              .exclude(status=Study.Status.DRAFT).values_list("pk", flat=True))
    studies = list(Study.objects.select_for_update().filter(pk__in=ids).order_by("name"))
    for study in studies:
        freeze_truths(study)
        study.stale_since = study.stale_since or at
        study.stale_reason = "\n".join(filter(None, [study.stale_reason, reason]))
        study.save(update_fields=["stale_since", "stale_reason"])
    return [f"study {s.name}" for s in studies]


@dataclass(frozen=True)
class TruthDrift:
    """One case of a study whose frozen truth (``StudyCaseTruth``) is no longer the case's live truth."""

    case_id: int
    pseudonym: str
    frozen_truth: str
    frozen_subtype: str
    truth: str
    subtype: str


def truth_drift(study: Study) -> list[TruthDrift]:
    """The study's cases whose frozen truth or subtype differs from the live ``Case`` values (after a
    correction), by pseudonym. One query. Cases without a frozen row (a draft study) are not listed."""
    from reader_study.models import StudyCaseTruth

    rows = (StudyCaseTruth.objects.filter(study=study, case__in=study.cases.all())
            .filter(~Q(truth=F("case__truth")) | ~Q(subtype=F("case__subtype")))
            .order_by("case__pseudonym")
            .values_list("case_id", "case__pseudonym", "truth", "subtype", "case__truth", "case__subtype"))
    return [TruthDrift(*row) for row in rows]
