"""The inference API's output: evaluations and their per-case AI results (core/serializers.py says why output
serializers)."""

from rest_framework import serializers

from core.serializers import NUMBER, JSONValue
from inference.models import CaseAIResult, Evaluation

SEQUENCE_CODES = {"type": "array", "items": {"type": "string"}}


class EvaluationSerializer(serializers.ModelSerializer):
    training_run = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    chosen_subset = JSONValue(SEQUENCE_CODES, help_text="the sequence codes behind the likelihood")

    class Meta:
        model = Evaluation
        fields = ("id", "name", "training_run", "job", "status", "config", "chosen_subset", "results", "created_at")
        read_only_fields = fields


class EvaluationSummarySerializer(EvaluationSerializer):
    class Meta(EvaluationSerializer.Meta):
        fields = ("id", "name", "training_run", "job", "status", "config", "chosen_subset", "created_at")
        read_only_fields = fields


class CaseAIResultSerializer(serializers.ModelSerializer):
    case = serializers.SlugRelatedField(slug_field="pseudonym", read_only=True)
    per_sequence = JSONValue({"type": "object", "additionalProperties": NUMBER},
                             help_text="{sequence code: % of ensembles calling sarcoma}")
    subset = JSONValue(SEQUENCE_CODES, help_text="the sequence codes combined for the likelihood")

    class Meta:
        model = CaseAIResult
        fields = ("case", "likelihood", "per_sequence", "subset", "n_ensembles", "is_deployment", "created_at")
        read_only_fields = fields
