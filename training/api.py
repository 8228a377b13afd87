"""Training API: a run with its model grid (polled by the run page), and a model's card. Output:
training/serializers.py."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.generics import RetrieveAPIView

from core.serializers import errors
from training import selectors
from training.serializers import TrainedModelSerializer, TrainingRunSerializer


@extend_schema_view(get=extend_schema(responses={200: TrainingRunSerializer, **errors(403, 404)}))
class TrainingRunApi(RetrieveAPIView):
    serializer_class = TrainingRunSerializer

    def get_queryset(self):
        return selectors.runs_visible_to(self.request.user)


@extend_schema_view(get=extend_schema(responses={200: TrainedModelSerializer, **errors(403, 404)}))
class TrainedModelApi(RetrieveAPIView):
    serializer_class = TrainedModelSerializer

    def get_queryset(self):
        return selectors.models_visible_to(self.request.user)
