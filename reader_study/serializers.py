"""The reading API's output (readers): their studies, worklists, a case as they see it, their answers.

core/serializers.py says why output serializers; the coordinators' side is in ``serializers_coordination.py``.
The case payload is built once in ``payloads.py`` (the reading page embeds the same JSON) and passes through
``ReadingPayloadSerializer`` here, which states it in the API schema. Times are sent in UTC ("...Z"), as the
dicts these serializers replaced were.
"""

from __future__ import annotations

import datetime as dt

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.serializers import NUMBER, NUMBERS, DictSerializer, JSONValue
from reader_study import selectors
from reader_study.models import DESCRIPTORS, EXAMS, Study


def utc_datetime(**kwargs) -> serializers.DateTimeField:
    return serializers.DateTimeField(default_timezone=dt.UTC, **kwargs)


class ExamStatusSerializer(serializers.Serializer):
    """Where the reader stands in one task: open, locked (``reason`` says why, ``opens_at`` when), finished,
    closed; for the descriptor task none, locked, open, done or closed."""

    exam = serializers.IntegerField()
    state = serializers.CharField()
    reason = serializers.CharField()
    total = serializers.IntegerField()
    done = serializers.IntegerField()
    active_seconds = serializers.SerializerMethodField()
    finished_at = utc_datetime(allow_null=True)
    opens_at = utc_datetime(allow_null=True)

    def get_active_seconds(self, status) -> float:
        return round(status.active_seconds, 1)


class DescriptorStatusSerializer(serializers.Serializer):
    state = serializers.CharField()
    reason = serializers.CharField()
    total = serializers.IntegerField()
    done = serializers.IntegerField()


class ReaderStudySerializer(serializers.Serializer):
    """A study as its reader sees it, with their own progress per task (context: ``user``)."""

    id = serializers.IntegerField(source="pk")
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Study.Status.choices)
    instructions = serializers.CharField()
    washout_days = serializers.IntegerField()
    exams = serializers.SerializerMethodField()
    descriptors = serializers.SerializerMethodField()

    @extend_schema_field(ExamStatusSerializer(many=True))
    def get_exams(self, study):
        user = self.context["user"]
        return ExamStatusSerializer([selectors.exam_status(study, user, x) for x in EXAMS], many=True).data

    @extend_schema_field(DescriptorStatusSerializer)
    def get_descriptors(self, study):
        return DescriptorStatusSerializer(selectors.exam_status(study, self.context["user"], DESCRIPTORS)).data


class WorklistItemSerializer(serializers.Serializer):
    """One case of a worklist (an Assignment): its display code and whether it is answered, nothing else."""

    assignment = serializers.IntegerField(source="pk")
    position = serializers.SerializerMethodField()
    display_code = serializers.CharField()
    answered = serializers.SerializerMethodField()

    def get_position(self, assignment) -> int:
        return assignment.position + 1

    def get_answered(self, assignment) -> bool:
        return assignment.answer is not None


class WorklistSerializer(serializers.Serializer):
    exam = ExamStatusSerializer()
    items = WorklistItemSerializer(many=True)


# --- a case as the reader sees it (payloads.reading_payload) ------------------------------------------
class ViewerSeriesSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="the series' handle: opaque, meaningful only within this assignment")
    code = serializers.CharField(help_text="sequence code, or 'other'")
    plane = serializers.CharField()
    n_slices = serializers.IntegerField()
    rows = serializers.IntegerField()
    cols = serializers.IntegerField()
    pixel_spacing = JSONValue(NUMBERS)
    slice_positions = JSONValue({"type": "array", "items": NUMBERS})
    orientation = JSONValue(NUMBERS)
    rescale = JSONValue({"type": "object", "properties": {"slope": NUMBER, "intercept": NUMBER}})
    window = JSONValue({"type": "object", "properties": {"center": NUMBER, "width": NUMBER,
                                                         "source": {"type": "string"}}}, allow_null=True)
    value_range = JSONValue(NUMBERS, allow_null=True)
    temporal_positions = JSONValue({"type": "array", "items": {"type": "integer"}}, allow_null=True)
    slice_thickness = serializers.FloatField(allow_null=True, help_text="mm (DICOM SliceThickness), when known")
    volume_url = serializers.CharField()


class StudyRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ReadSerializer(serializers.Serializer):
    call = serializers.CharField()
    confidence = serializers.IntegerField()
    note = serializers.CharField()
    revision = serializers.IntegerField()


class ScoreSerializer(serializers.Serializer):
    degeneration = serializers.BooleanField()
    irregular_margin = serializers.BooleanField()


class AISequenceSerializer(serializers.Serializer):
    code = serializers.CharField()
    n_sarcoma = serializers.IntegerField(help_text="ensembles whose call on this sequence alone is sarcoma")
    percent = serializers.IntegerField(help_text="the same as a whole percentage of the ensembles")


class AIThresholdSerializer(serializers.Serializer):
    low = serializers.IntegerField(help_text="the lowest ensemble's threshold on the patient score")
    high = serializers.IntegerField(help_text="the highest ensemble's threshold on the patient score")
    text = serializers.CharField()


class AIFigureSerializer(serializers.Serializer):
    estimate = serializers.IntegerField(help_text="%")
    ci_low = serializers.IntegerField(required=False, help_text="95 % CI, %")
    ci_high = serializers.IntegerField(required=False, help_text="95 % CI, %")
    text = serializers.CharField()


class AIPerformanceSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["nested", "in_sample"])
    label = serializers.CharField()
    sensitivity = AIFigureSerializer()
    specificity = AIFigureSerializer()


class AIPanelSerializer(serializers.Serializer):
    """The exam-2 AI panel (``reader_study.ai_panel``): whole percentages beside the counts of ensembles."""

    likelihood = serializers.IntegerField(help_text="% of the ensembles whose call on the case is sarcoma")
    n_sarcoma = serializers.IntegerField()
    n_ensembles = serializers.IntegerField()
    subset = serializers.ListField(child=serializers.CharField(), help_text="the chosen sequence set")
    used = AISequenceSerializer(many=True, help_text="the set's sequences this case has")
    missing = serializers.ListField(child=serializers.CharField(), help_text="the set's sequences it lacks")
    threshold = AIThresholdSerializer(allow_null=True)
    performance = AIPerformanceSerializer(allow_null=True)
    how_combined = serializers.CharField()
    note = serializers.CharField(allow_blank=True)


class HeatMapLegendStopSerializer(serializers.Serializer):
    value = serializers.FloatField(help_text="0 (none) to 1 (the case's strongest)")
    rgb = serializers.CharField()


class HeatMapsSerializer(serializers.Serializer):
    """Exam 2's heat-maps (issue 18): the series that have them and where each is fetched."""

    default_on = serializers.BooleanField(help_text="the overlay starts on (the study's setting)")
    series = serializers.DictField(child=serializers.CharField(), help_text="series handle → its maps' URL")
    legend = HeatMapLegendStopSerializer(many=True)
    what = serializers.CharField()


class HeatMapSliceSerializer(serializers.Serializer):
    slice = serializers.IntegerField(help_text="the slice index in the series")
    window = serializers.ListField(child=serializers.IntegerField(), min_length=3, max_length=3,
                                   help_text="left, top, side: the crop's square on the slice, in its pixels")
    map = serializers.CharField(help_text="the map, a grey PNG of size × size, base64")


class HeatMapSeriesSerializer(serializers.Serializer):
    size = serializers.IntegerField()
    colormap = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()),
                                     help_text="256 RGB colours, one per map value")
    slices = HeatMapSliceSerializer(many=True)


class ReadingUrlsSerializer(serializers.Serializer):
    submit = serializers.CharField()
    time = serializers.CharField()
    worklist = serializers.CharField()
    page = serializers.CharField(help_text="a case's page, {id} standing for the assignment")


class ReadingPayloadSerializer(DictSerializer):
    """One case of one task as its reader sees it. ``read`` (in an exam) or ``score`` (in the descriptor task)
    is the reader's own answer, null until answered; ``ai`` exists in exam 2 only (null without a result)."""

    assignment = serializers.IntegerField()
    exam = serializers.IntegerField()
    display_code = serializers.CharField()
    position = serializers.IntegerField()
    total = serializers.IntegerField()
    done = serializers.IntegerField()
    study = StudyRefSerializer()
    series = ViewerSeriesSerializer(many=True)
    default_series = serializers.ListField(child=serializers.CharField())
    preload = serializers.CharField(allow_null=True, help_text="the first viewport's opening slice (?slices=m-m)")
    read = ReadSerializer(required=False, allow_null=True)
    score = ScoreSerializer(required=False, allow_null=True)
    previous = serializers.IntegerField(allow_null=True)
    following = serializers.IntegerField(allow_null=True)
    next_unread = serializers.IntegerField(allow_null=True)
    prefetch = serializers.ListField(child=serializers.CharField())
    urls = ReadingUrlsSerializer()
    ai = AIPanelSerializer(required=False, allow_null=True)
    heat_maps = HeatMapsSerializer(required=False, allow_null=True,
                                   help_text="exam 2 only: the AI's heat-maps (null where none are offered)")


# --- answers -------------------------------------------------------------------------------------------
class ReadResultSerializer(ReadSerializer):
    """The stored read, and the next unanswered case of the worklist (null when none is left)."""

    next_unread = serializers.IntegerField(allow_null=True)


class ScoreResultSerializer(ScoreSerializer):
    """The stored descriptor score, and the next unscored case of the worklist (null when none is left)."""

    next_unread = serializers.IntegerField(allow_null=True)


class ActiveTimeSerializer(serializers.Serializer):
    active_seconds = serializers.FloatField(help_text="the case's active reading time so far (s)")
