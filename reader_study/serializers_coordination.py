"""The coordinators' reader-study API output: studies, every reader's progress, the results of their actions
(core/serializers.py says why output serializers; the readers' side is in ``serializers.py``)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.serializers import NUMBER, JSONValue
from reader_study.hanging import default_protocol, format_protocol
from reader_study.models import Study
from reader_study.serializers import ExamStatusSerializer, utc_datetime


class StudySerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Study.Status.choices)
    washout_days = serializers.IntegerField()
    evaluation = serializers.IntegerField(source="evaluation_id", allow_null=True)
    cohort = serializers.IntegerField(source="cohort_id", allow_null=True)
    descriptor_k = serializers.IntegerField()
    hanging_protocol = serializers.SerializerMethodField(help_text="which sequences open in which viewport, "
                                                                   "e.g. 'T2sag | T2axi | ADC or DWI'")
    cases = serializers.IntegerField(source="cases.count", help_text="number of cases")
    readers = serializers.IntegerField(source="enrollments.count", help_text="number of enrolled readers")
    created_at = utc_datetime()
    opened_at = utc_datetime(allow_null=True)
    closed_at = utc_datetime(allow_null=True)


    def get_hanging_protocol(self, study) -> str:
        return format_protocol(study.hanging_protocol or default_protocol())


class ExamProgressSerializer(ExamStatusSerializer):
    median_seconds = JSONValue(NUMBER, allow_null=True, help_text="median active time per answered case (s)")
    overridden = serializers.BooleanField(help_text="a coordinator let the reader in before the washout")


class DescriptorProgressSerializer(serializers.Serializer):
    state = serializers.CharField()
    total = serializers.IntegerField()
    done = serializers.IntegerField()


class ReaderProgressSerializer(serializers.Serializer):
    """One enrolled reader's progress (a ``selectors.ReaderProgress``)."""

    reader = serializers.IntegerField(source="reader.pk", help_text="the reader's user id")
    username = serializers.CharField(source="reader.username")
    code = serializers.SerializerMethodField()
    exams = serializers.SerializerMethodField()
    descriptors = DescriptorProgressSerializer()

    def get_code(self, progress) -> str:
        return getattr(getattr(progress.reader, "reader_profile", None), "code", "")

    @extend_schema_field(ExamProgressSerializer(many=True))
    def get_exams(self, progress):
        return ExamProgressSerializer(progress.exams.values(), many=True).data


class StudyProgressSerializer(serializers.Serializer):
    study = StudySerializer()
    readers = ReaderProgressSerializer(many=True)


class EnrolmentSerializer(serializers.Serializer):
    enrollment = serializers.IntegerField(help_text="the enrolment's id")


class WashoutOverrideSerializer(serializers.Serializer):
    overridden_at = utc_datetime()


class ConsensusSerializer(serializers.Serializer):
    """What the k-of-n descriptor consensus wrote: leiomyoma cases seen, descriptors written and undecided."""

    k = serializers.IntegerField()
    n = serializers.IntegerField()
    cases = serializers.IntegerField()
    written = serializers.IntegerField()
    undecided = serializers.IntegerField()
