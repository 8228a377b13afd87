"""The demo study of `make demo`: a few SYNTHETIC phantom cases read by the six demo readers."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Count, Q

from core.constants import LEIOMYOMA, SARCOMA
from imaging.models import Case
from inference.models import Evaluation
from reader_study import services
from reader_study.models import Study

DEMO_STUDY = "Demo study (synthetic phantoms)"
DEMO_CASES = {SARCOMA: 4, LEIOMYOMA: 8}   # small enough to read through in a demo


def _demo_cases() -> list[Case]:
    viewable = Case.objects.usable().filter(is_synthetic=True, series__n_slices__gt=0).exclude(series__volume_path="")
    chosen = []
    for truth, n in DEMO_CASES.items():
        chosen += list(viewable.filter(truth=truth).distinct().order_by("pseudonym")[:n])
    return chosen


def _demo_evaluation(cases: list[Case]) -> Evaluation | None:
    """The finished evaluation with AI results for most of the demo cases, if any."""
    return (Evaluation.objects.filter(status=Evaluation.Status.DONE)
            .annotate(n=Count("case_results", filter=Q(case_results__case__in=cases)))
            .filter(n__gt=0).order_by("-n", "-created_at").first())


def _attach_evaluation(study: Study, say) -> None:
    """A demo study made before any evaluation finished gets one on a later `make demo`, if still possible."""
    evaluation = None if study.evaluation_id else _demo_evaluation(list(study.cases.all()))
    if evaluation is None:
        say(f"{DEMO_STUDY!r} exists")
        return
    try:
        services.study_evaluation_set(study=study, evaluation=evaluation, by=study.created_by)
        say(f"{DEMO_STUDY!r} exists; exam 2 now shows {evaluation.name}")
    except ValidationError as exc:
        say(f"{DEMO_STUDY!r} exists; evaluation not attached: {'; '.join(exc.messages)}")


def demo_study(say) -> None:
    """Create and open the demo study once (idempotent); skipped until phantom cases with images exist."""
    existing = Study.objects.filter(name=DEMO_STUDY).first()
    if existing is not None:
        _attach_evaluation(existing, say)
        return
    cases = _demo_cases()
    if not cases:
        say("no synthetic cases with images yet: demo study skipped (import the phantom cohort first)")
        return
    users = get_user_model().objects
    coordinator = users.get(username="coordinator")
    readers = list(users.filter(username__in=[f"reader{i}" for i in range(1, 7)]).order_by("username"))
    evaluation = _demo_evaluation(cases)
    study = services.study_create(
        name=DEMO_STUDY, created_by=coordinator, cases=cases, evaluation=evaluation, readers=readers,
        instructions="SYNTHETIC phantom cases. Call each tumour sarcoma or leiomyoma and give your "
                     "confidence that it is a sarcoma (0-100). Exam 2 opens 28 days after your last exam-1 "
                     "read; in a demo the coordinator can override the washout from the study page.")
    services.study_open(study=study, by=coordinator)
    say(f"{DEMO_STUDY!r}: {len(cases)} cases, {len(readers)} readers, "
        f"AI results from {evaluation.name if evaluation else 'no evaluation yet (exam 2 shows no AI)'}")
