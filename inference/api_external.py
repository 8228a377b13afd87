"""External-validation API: each validation's status, frozen model set and results (coordinators and admins; an
empty list, or 404, for anyone else). Output: inference/serializers_external.py."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.generics import ListAPIView, RetrieveAPIView

from core.serializers import errors
from inference import selectors_external
from inference.serializers_external import ExternalValidationSerializer, ExternalValidationSummarySerializer


@extend_schema_view(get=extend_schema(responses={200: ExternalValidationSummarySerializer(many=True),
                                                 **errors(400, 403)}))
class ExternalValidationListApi(ListAPIView):
    serializer_class = ExternalValidationSummarySerializer

    def get_queryset(self):
        return selectors_external.external_validations_visible_to(self.request.user).defer("results")


@extend_schema_view(get=extend_schema(responses={200: ExternalValidationSerializer, **errors(403, 404)}))
class ExternalValidationApi(RetrieveAPIView):
    serializer_class = ExternalValidationSerializer

    def get_queryset(self):
        return selectors_external.external_validations_visible_to(self.request.user)
