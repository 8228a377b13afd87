"""Reader-study API (DRF, session auth + CSRF). Thin: selectors decide what a user may see, services write.
Output: ``serializers.py`` (readers), ``serializers_coordination.py`` (coordinators).

Reader endpoints live under /api/reading/, coordinator endpoints under /api/studies/. Anything a user may
not see answers 404 (not 403), so that ids of other readers' cases are not even confirmed to exist. The
reading endpoints serve every task; the descriptor task's URLs pass ``tasks`` (see ``urls.py``).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view, permission_classes, renderer_classes
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from accounts.permissions import IsCoordinator, IsReader, has_role, require_role
from accounts.roles import READER, roles_known
from core.serializers import errors
from imaging.api import VOLUME_PARAMETERS, VOLUME_RESPONSES, OctetStreamRenderer, volume_response
from reader_study import payloads, selectors, services, volume_grants
from reader_study.models import DESCRIPTORS, EXAMS, TASK_NAMES, TASKS, Study
from reader_study.serializers import (
    ActiveTimeSerializer,
    ExamStatusSerializer,
    HeatMapSeriesSerializer,
    ReaderStudySerializer,
    ReadingPayloadSerializer,
    ReadResultSerializer,
    ScoreResultSerializer,
    WorklistSerializer,
)
from reader_study.serializers_coordination import (
    ConsensusSerializer,
    EnrolmentSerializer,
    StudyProgressSerializer,
    StudySerializer,
    WashoutOverrideSerializer,
)


class AnswerSerializer(serializers.Serializer):
    call = serializers.CharField()
    confidence = serializers.IntegerField()
    note = serializers.CharField(required=False, allow_blank=True, default="")
    active_seconds = serializers.FloatField(required=False, default=0.0)


class DescriptorAnswerSerializer(serializers.Serializer):
    degeneration = serializers.BooleanField()
    irregular_margin = serializers.BooleanField()
    active_seconds = serializers.FloatField(required=False, default=0.0)


# Each task's own answer: the fields its submit carries, the service that stores them, what the API answers.
READING_API_IS_FOR_READERS = "the reading API is for readers"
ANSWERS = {**dict.fromkeys(EXAMS, (AnswerSerializer, services.read_submit, ReadResultSerializer)),
           DESCRIPTORS: (DescriptorAnswerSerializer, services.descriptor_score_submit, ScoreResultSerializer)}
ANY_ANSWER = PolymorphicProxySerializer(component_name="ReaderAnswer", resource_type_field_name=None,
                                        serializers=[AnswerSerializer, DescriptorAnswerSerializer])
ANY_ANSWER_RESULT = PolymorphicProxySerializer(component_name="ReaderAnswerResult", resource_type_field_name=None,
                                               serializers=[ReadResultSerializer, ScoreResultSerializer])


class SecondsSerializer(serializers.Serializer):
    seconds = serializers.FloatField()


class HangingProtocolSerializer(serializers.Serializer):
    hanging_protocol = serializers.CharField(help_text="viewports separated by '|', fallback codes by 'or' or ',' "
                                                       "(e.g. 'T2sag | T2axi | ADC or DWI'); at most 4 viewports")


class ReaderActionSerializer(serializers.Serializer):
    reader = serializers.IntegerField(help_text="the reader's user id")
    reason = serializers.CharField(required=False, allow_blank=True, default="")


def _errors(exc: ValidationError) -> dict:
    return exc.message_dict if hasattr(exc, "error_dict") else {"detail": " ".join(exc.messages)}


def _run(action):
    """Call a service: its ValidationError becomes 400, its PermissionDenied 403 with the reason."""
    try:
        return action()
    except ValidationError as exc:
        return Response(_errors(exc), status=status.HTTP_400_BAD_REQUEST)
    except DjangoPermissionDenied as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_403_FORBIDDEN)


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- reader ---------------------------------------------------------------------------------------
class ReadingAPI(IsReader):
    message = READING_API_IS_FOR_READERS


def _my_study(user, pk: int) -> Study:
    try:
        return selectors.study_for_reader(user, pk)
    except ObjectDoesNotExist:
        raise NotFound(f"no study {pk} in your studies") from None


@extend_schema(responses={200: ReaderStudySerializer(many=True), **errors(403)},
               operation_id="reading_studies_list")
@api_view(["GET"])
@permission_classes([ReadingAPI])
def reader_studies_api(request):
    """The studies the reader is enrolled in, with their own progress per exam."""
    studies = selectors.studies_for_reader(request.user)
    return Response(ReaderStudySerializer(studies, many=True, context={"user": request.user}).data)


@extend_schema(responses={200: ReaderStudySerializer, **errors(403, 404)})
@api_view(["GET"])
@permission_classes([ReadingAPI])
def reader_study_api(request, pk: int):
    study = _my_study(request.user, pk)
    return Response(ReaderStudySerializer(study, context={"user": request.user}).data)


@extend_schema(responses={200: WorklistSerializer, **errors(403, 404)})
@api_view(["GET"])
@permission_classes([ReadingAPI])
def worklist_api(request, pk: int, exam: int, tasks=EXAMS):
    """The reader's stored order for a task: display codes and whether each is answered, nothing else."""
    if exam not in tasks:
        raise NotFound(f"no exam {exam}")
    study = _my_study(request.user, pk)
    state = selectors.exam_status(study, request.user, exam)
    if not state.is_open and state.state != "finished":
        raise PermissionDenied(f"{TASK_NAMES[exam]}: {state.reason}")
    items = selectors.worklist(study, request.user, exam)
    return Response(WorklistSerializer({"exam": state, "items": items}).data)


@extend_schema(request=None, responses={200: ExamStatusSerializer, **errors(400, 403, 404)})
@api_view(["POST"])
@permission_classes([ReadingAPI])
def exam_finish_api(request, pk: int, exam: int):
    study = _my_study(request.user, pk)
    return _run(lambda: Response(ExamStatusSerializer(selectors.exam_status(
        study, request.user, services.exam_finish(reader=request.user, study=study, exam=exam).exam)).data))


def _my_assignment(request, pk: int, tasks):
    """The reader's assignment, with the Reader role checked: from the cached user's roles where they are
    loaded (no query; joining the groups into the query cost PostgreSQL ~0.5 ms of planning per request),
    else in the assignment's own query (one query fewer than asking for the groups first)."""
    known = roles_known(request.user)
    if known:
        require_role(request.user, READER, READING_API_IS_FOR_READERS)
    try:
        return selectors.assignment_for_reader(request.user, pk, exams=tasks, in_reader_role=not known)
    except ObjectDoesNotExist:
        require_role(request.user, READER, READING_API_IS_FOR_READERS)   # not a reader: 403, as elsewhere
        raise NotFound(f"no case {pk} in your worklists") from None


@extend_schema(responses={200: ReadingPayloadSerializer, **errors(400, 403, 404)})
@api_view(["GET"])
def reading_case_api(request, pk: int, tasks=EXAMS):
    """One case as the reader sees it: display code, series, their answer, and in exam 2 only the AI."""
    assignment = _my_assignment(request, pk, tasks)
    state = selectors.reading_state(assignment)      # the exam's status once, for the check and the payload

    def open_case():
        services.assignment_open(reader=request.user, assignment=assignment, status=state.status)
        series = payloads.reading_series(assignment, state)
        volume_grants.grant_opened_case(request.user.pk, assignment, series.get(assignment.case_id, []))
        # the payload is JSON-ready as built (the page embeds the same dict); ReadingPayloadSerializer
        # documents it in the schema and a test holds the two equal: running it cost ~0.5 ms a request
        return Response(payloads.reading_payload(assignment, state, series))

    return _run(open_case)


@extend_schema(
    responses=VOLUME_RESPONSES, parameters=VOLUME_PARAMETERS,
    description="A series volume of a case in one of the reader's open studies: uint16 little-endian, "
    "frames × rows × cols (shape in the case payload), gzip content-encoded; immutable when ?v= names it; "
    "?slices=FIRST-LAST answers only those frames (the viewer's progressive loading).",
)
@api_view(["GET"])
@renderer_classes([OctetStreamRenderer, JSONRenderer])
def series_volume_api(request, pk: int, handle: str):
    """A series of the case of the reader's own assignment ``pk``, named by its handle in the case payload.

    Readers' images come from here, not from imaging, and only while the assignment's task is open to the
    reader (none in the washout, none once it is finished); the handle and the ETag are keyed to the
    assignment, so the two exams of a case cannot be linked through them. ``?slices=`` ranges follow the same
    rules (checked before the range is even parsed, so a 400 never answers a reader who may not see it).
    Where Redis is the cache, the check's answer is the reader's volume grant for the assignment, stored when
    the case was opened and revoked when its task ends (``volume_grants``)."""
    granted = volume_grants.grant_read(request.user.pk, pk)
    if granted is None or handle not in granted:
        granted = _volume_grant(request, pk)
    elif not has_role(request.user, READER):       # the role, from the cached user, on every request
        raise PermissionDenied(READING_API_IS_FOR_READERS)
    return volume_response(request, granted.get(handle), tag=lambda sha: payloads.volume_tag(pk, sha))


def _volume_grant(request, pk: int) -> dict[str, dict]:
    """The full check (the reader's assignment, its task open) and the case's series by handle, remembered
    for the next volumes of the case (``volume_grants``)."""
    assignment = _my_assignment(request, pk, TASKS)
    _open_task(request, assignment)
    return volume_grants.grant_case(request.user.pk, assignment)


def _open_task(request, assignment) -> None:
    """A case's images (and exam 2's heat-maps) only while its task is open to the reader."""
    status = selectors.exam_status(assignment.study, request.user, assignment.exam, counts=False)
    if not status.is_open:
        raise PermissionDenied(f"{TASK_NAMES[assignment.exam]}: {status.reason}: its images open with it")


@extend_schema(responses={200: HeatMapSeriesSerializer, **errors(403, 404)})
@api_view(["GET"])
def series_heat_map_api(request, pk: int, handle: str):
    """The AI's heat-maps of one series of the case of the reader's own exam-2 assignment ``pk`` (issue 18).

    Exam 2 only, exactly like the AI panel: an exam-1 assignment answers 404 as if it were not the reader's, so
    nothing tells an exam-1 reader that maps exist. Also 404 where the study does not offer them or the series
    has none; 403 while the exam is not open."""
    assignment = _my_assignment(request, pk, (2,))
    _open_task(request, assignment)
    shown = selectors.heat_map_series(assignment)
    series_pk = next((pk_ for pk_ in shown if payloads.series_handle(assignment.pk, pk_) == handle), None)
    maps = selectors.heat_maps_of_series(assignment, series_pk) if series_pk is not None else None
    if maps is None:
        raise NotFound("no heat-maps for this series")
    return Response(HeatMapSeriesSerializer(payloads.heat_map_series_payload(maps)).data)


@extend_schema(request=ANY_ANSWER, responses={200: ANY_ANSWER_RESULT, **errors(400, 403, 404)})
@api_view(["POST"])
def answer_submit_api(request, pk: int, tasks=EXAMS):
    """The reader's answer to a case, in its task's own form: a read in an exam ({call, confidence, note}), a
    descriptor score in the descriptor task ({degeneration, irregular_margin}); both with active_seconds."""
    assignment = _my_assignment(request, pk, tasks)
    serializer, submit, result = ANSWERS[assignment.exam]
    data = _valid(serializer, request.data)

    def store():
        answer = submit(reader=request.user, assignment=assignment, **data)
        return Response(result({**payloads.answer_json(answer), "next_unread": selectors.next_unread(assignment)})
                        .data)

    return _run(store)


@extend_schema(request=SecondsSerializer, responses={200: ActiveTimeSerializer, **errors(400, 403, 404)})
@api_view(["POST"])
def active_time_api(request, pk: int, tasks=EXAMS):
    assignment = _my_assignment(request, pk, tasks)
    seconds = _valid(SecondsSerializer, request.data)["seconds"]
    return _run(lambda: Response(ActiveTimeSerializer({"active_seconds": round(services.active_time_add(
        reader=request.user, assignment=assignment, seconds=seconds), 1)}).data))


# --- coordinator ------------------------------------------------------------------------------------
def _coordinated_study(request, pk: int) -> Study:
    try:
        return selectors.study_for_coordinator(request.user, pk)
    except ObjectDoesNotExist:
        raise NotFound(f"no study {pk}") from None


@extend_schema(responses={200: StudySerializer(many=True), **errors(403)}, operation_id="studies_list")
@api_view(["GET"])
@permission_classes([IsCoordinator])
def study_list_api(request):
    return Response(StudySerializer(selectors.studies_for_coordinator(request.user), many=True).data)


@extend_schema(responses={200: StudyProgressSerializer, **errors(403, 404)})
@api_view(["GET"])
@permission_classes([IsCoordinator])
def study_progress_api(request, pk: int):
    """Every reader's progress per exam, with time spent (coordinators)."""
    study = _coordinated_study(request, pk)
    return Response(StudyProgressSerializer({"study": study, "readers": selectors.study_progress(study)}).data)


def _reader(pk: int):
    user = get_user_model().objects.filter(pk=pk).first()
    if user is None:
        raise NotFound(f"no user {pk}")
    return user


STUDY_ACTION_RESPONSES = errors(400, 403, 404)


@extend_schema(request=None, responses={200: StudySerializer, **STUDY_ACTION_RESPONSES})
@api_view(["POST"])
@permission_classes([IsCoordinator])
def study_open_api(request, pk: int):
    study = _coordinated_study(request, pk)
    return _run(lambda: Response(StudySerializer(services.study_open(study=study, by=request.user)).data))


@extend_schema(request=None, responses={200: StudySerializer, **STUDY_ACTION_RESPONSES})
@api_view(["POST"])
@permission_classes([IsCoordinator])
def study_close_api(request, pk: int):
    study = _coordinated_study(request, pk)
    return _run(lambda: Response(StudySerializer(services.study_close(study=study, by=request.user)).data))


@extend_schema(request=ReaderActionSerializer, responses={200: EnrolmentSerializer, **STUDY_ACTION_RESPONSES})
@api_view(["POST"])
@permission_classes([IsCoordinator])
def study_enrol_api(request, pk: int):
    study = _coordinated_study(request, pk)
    reader = _reader(_valid(ReaderActionSerializer, request.data)["reader"])
    return _run(lambda: Response(EnrolmentSerializer({"enrollment": services.reader_enrol(
        study=study, reader=reader, by=request.user).pk}).data))


@extend_schema(request=ReaderActionSerializer,
               responses={200: WashoutOverrideSerializer, **STUDY_ACTION_RESPONSES})
@api_view(["POST"])
@permission_classes([IsCoordinator])
def washout_override_api(request, pk: int):
    study = _coordinated_study(request, pk)
    data = _valid(ReaderActionSerializer, request.data)
    reader = _reader(data["reader"])
    return _run(lambda: Response(WashoutOverrideSerializer({"overridden_at": services.washout_override(
        study=study, reader=reader, by=request.user, reason=data["reason"]).washout_override_at}).data))


@extend_schema(request=HangingProtocolSerializer, responses={200: StudySerializer, **STUDY_ACTION_RESPONSES})
@api_view(["POST"])
@permission_classes([IsCoordinator])
def study_hanging_api(request, pk: int):
    """Set the study's hanging protocol (which sequences open in which viewport, for every case)."""
    study = _coordinated_study(request, pk)
    protocol = _valid(HangingProtocolSerializer, request.data)["hanging_protocol"]
    return _run(lambda: Response(StudySerializer(services.study_hanging_set(study=study, protocol=protocol,
                                                                             by=request.user)).data))


@extend_schema(request=None, responses={200: ConsensusSerializer, **STUDY_ACTION_RESPONSES})
@api_view(["POST"])
@permission_classes([IsCoordinator])
def descriptor_consensus_api(request, pk: int):
    study = _coordinated_study(request, pk)
    return _run(lambda: Response(ConsensusSerializer(services.descriptor_consensus_apply(
        study=study, by=request.user)).data))
