"""Inference API: an evaluation's status and results, and its per-case AI results (coordinators and admins)."""

from rest_framework import serializers
from rest_framework.generics import ListAPIView, RetrieveAPIView

from inference import selectors
from inference.models import CaseAIResult, Evaluation


class EvaluationSerializer(serializers.ModelSerializer):
    training_run = serializers.PrimaryKeyRelatedField(read_only=True)

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

    class Meta:
        model = CaseAIResult
        fields = ("case", "likelihood", "per_sequence", "subset", "n_ensembles", "is_deployment", "created_at")
        read_only_fields = fields


class EvaluationListApi(ListAPIView):
    serializer_class = EvaluationSummarySerializer

    def get_queryset(self):
        return selectors.evaluations_visible_to(self.request.user).defer("results")


class EvaluationApi(RetrieveAPIView):
    serializer_class = EvaluationSerializer

    def get_queryset(self):
        return selectors.evaluations_visible_to(self.request.user)


class EvaluationCaseResultsApi(ListAPIView):
    serializer_class = CaseAIResultSerializer

    def get_queryset(self):
        return (selectors.case_results_visible_to(self.request.user)
                .filter(evaluation_id=self.kwargs["pk"]).order_by("case__pseudonym"))
