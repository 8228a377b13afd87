"""The external-validation API's output (core/serializers.py says why output serializers). Cases appear by
pseudonym only, inside ``results``."""

from rest_framework import serializers

from core.serializers import JSONValue
from inference.models import ExternalValidation

FROZEN = {"type": "object", "description": "the evaluation's set (mask, codes), each ensemble's threshold, the "
                                           "sequence-call rule and cutoff, as fixed when the validation started"}
RESULTS = {"type": "object", "description": "metrics with 95 % CIs (fractions), ROC, calibration bins, and per "
                                            "case: pseudonym, truth, likelihood %, call"}


class ExternalValidationSerializer(serializers.ModelSerializer):
    evaluation = serializers.PrimaryKeyRelatedField(read_only=True)
    cohort = serializers.SlugRelatedField(slug_field="name", read_only=True)
    frozen = JSONValue(FROZEN)
    results = JSONValue(RESULTS)

    class Meta:
        model = ExternalValidation
        fields = ("id", "name", "evaluation", "cohort", "job", "status", "frozen", "results", "created_at")
        read_only_fields = fields


class ExternalValidationSummarySerializer(ExternalValidationSerializer):
    class Meta(ExternalValidationSerializer.Meta):
        fields = ("id", "name", "evaluation", "cohort", "job", "status", "frozen", "created_at")
        read_only_fields = fields
