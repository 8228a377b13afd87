"""The statistics API's output: a study's statistics page as JSON (core/serializers.py says why output
serializers). The tables are the export CSVs' rows: text cells under the CSV's column names (percent with 2
decimals, AUC 4, empty when undefined), every metric with its 95 % CI columns; ``mrmc`` is the mrmc.json
document."""

from rest_framework import serializers

from core.serializers import OBJECT, DictSerializer, JSONValue
from reader_study.models import Study

TEXT_ROWS = {"type": "array", "items": {"type": "object", "additionalProperties": {"type": "string"}}}


def _table(help_text: str) -> JSONValue:
    return JSONValue(TEXT_ROWS, help_text=help_text)


class StatisticsStudySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Study.Status.choices)
    synthetic = serializers.BooleanField(help_text="built from SYNTHETIC data")


class MrmcDifferenceSerializer(serializers.Serializer):
    """Random readers, random cases: exam 2 minus exam 1, its SE, 95% CI and p (null when undefined)."""

    estimate = serializers.FloatField(allow_null=True)
    se = serializers.FloatField(allow_null=True)
    ci_lo = serializers.FloatField(allow_null=True)
    ci_hi = serializers.FloatField(allow_null=True)
    p = serializers.FloatField(allow_null=True)


class MrmcMetricSerializer(DictSerializer):
    readers = serializers.ListField(child=serializers.CharField())
    conclusion = serializers.CharField()
    note = serializers.CharField()
    result = JSONValue(OBJECT, allow_null=True, help_text="the full analysis (analysis.mrmc)")
    exam2_minus_exam1 = MrmcDifferenceSerializer(required=False)


class MrmcDocumentSerializer(serializers.Serializer):
    modalities = serializers.ListField(child=serializers.CharField())
    alpha = serializers.FloatField()
    note = serializers.CharField()
    metrics = serializers.DictField(child=MrmcMetricSerializer(), help_text="per figure of merit")


class StudyStatisticsSerializer(serializers.Serializer):
    study = StatisticsStudySerializer()
    n_cases = serializers.IntegerField()
    n_sarcoma = serializers.IntegerField()
    n_leiomyoma = serializers.IntegerField()
    cases_without_truth = serializers.IntegerField()
    complete_readers = serializers.DictField(child=serializers.ListField(child=serializers.CharField()),
                                             help_text="per exam (1, 2): the codes of the readers who finished it")
    notes = serializers.ListField(child=serializers.CharField())
    intervals = serializers.CharField(help_text="which 95 % confidence interval each figure carries")
    dnn_source = serializers.CharField(
        help_text="which likelihoods the DNN row uses: in-sample, nested (out-of-sample), or mixed: N nested, "
                  "M in-sample")
    reader_statistics = _table("per reader × exam, each metric with its 95 % CI (*_ci_low, *_ci_high)")
    group_statistics = _table("per reader group × exam: means ± SD and the mean's 95 % CI")
    dnn = _table("the DNN's figures with 95 % CIs; likelihood_source on the study's row")
    comparisons = _table("every t-test")
    mrmc = MrmcDocumentSerializer()
