"""The inference API's output: evaluations and their per-case AI results (core/serializers.py says why output
serializers)."""

from rest_framework import serializers

from core.serializers import NUMBER, JSONValue
from inference.models import CaseAIResult, Evaluation

SEQUENCE_CODES = {"type": "array", "items": {"type": "string"}}
_NUMBER_OR_NULL = {"type": "number", "nullable": True}
INTERVAL = {"type": "object", "description": "a figure in % and its 95 % CI",
            "properties": {"estimate": _NUMBER_OR_NULL, "ci_low": _NUMBER_OR_NULL, "ci_high": _NUMBER_OR_NULL},
            "required": ["estimate", "ci_low", "ci_high"], "additionalProperties": {}}
METRIC_INTERVALS = {"type": "object", "additionalProperties": {},
                    "properties": {"ss_avg": INTERVAL, "sensitivity": INTERVAL, "specificity": INTERVAL,
                                   "accuracy": INTERVAL,
                                   "auc": {**INTERVAL, "nullable": True,
                                           "description": "estimate = mean over the ensembles; median beside"}}}
METHOD = {**METRIC_INTERVALS, "description": "one method: how its choices were made (label) and its figures",
          "properties": {**METRIC_INTERVALS["properties"], "label": {"type": "string"},
                         "n_sets": {"type": "integer"}}}
RESULTS = {
    "type": "object", "additionalProperties": {},
    "description": "the analysis (docs/inference.md): top-10 tables and means, per-sequence figures, the chosen "
                   "set, and the honest evaluation: methods (paper_style, training_fold_threshold, nested) with "
                   "95 % CIs in %, optimism_points (paper-style − nested SS-Avg, points), nested_likelihood "
                   "({case pk: %}); methods_unavailable says why the methods are missing",
    "properties": {
        "methods": {"type": "object", "additionalProperties": METHOD,
                    "properties": {name: METHOD for name in ("paper_style", "training_fold_threshold", "nested")}},
        "optimism_points": _NUMBER_OR_NULL,
        "nested_caveat": {"type": "string"},
        "nested_likelihood": {"type": "object", "additionalProperties": NUMBER},
        "methods_unavailable": {"type": "string"},
    },
}


class EvaluationSerializer(serializers.ModelSerializer):
    training_run = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    chosen_subset = JSONValue(SEQUENCE_CODES, help_text="the sequence codes behind the likelihood")
    results = JSONValue(RESULTS)

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
