"""Inference API: an evaluation's status and results, and its per-case AI results (coordinators and admins).
Output: inference/serializers.py."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.generics import ListAPIView, RetrieveAPIView

from core.serializers import errors
from inference import selectors
from inference.serializers import CaseAIResultSerializer, EvaluationSerializer, EvaluationSummarySerializer


@extend_schema_view(get=extend_schema(responses={200: EvaluationSummarySerializer(many=True), **errors(400, 403)}))
class EvaluationListApi(ListAPIView):
    serializer_class = EvaluationSummarySerializer

    def get_queryset(self):
        return selectors.evaluations_visible_to(self.request.user).defer("results")


@extend_schema_view(get=extend_schema(responses={200: EvaluationSerializer, **errors(403, 404)}))
class EvaluationApi(RetrieveAPIView):
    serializer_class = EvaluationSerializer

    def get_queryset(self):
        return selectors.evaluations_visible_to(self.request.user)


@extend_schema_view(get=extend_schema(responses={200: CaseAIResultSerializer(many=True), **errors(400, 403, 404)}))
class EvaluationCaseResultsApi(ListAPIView):
    """An evaluation's AI results, one per case (empty, not 404, for an evaluation the user may not see)."""

    serializer_class = CaseAIResultSerializer

    def get_queryset(self):
        return (selectors.case_results_visible_to(self.request.user)
                .filter(evaluation_id=self.kwargs["pk"]).order_by("case__pseudonym"))
