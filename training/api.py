"""Training API: a run with its model grid (polled by the run page), and a model's card."""

from rest_framework import serializers
from rest_framework.generics import RetrieveAPIView

from training import selectors
from training.models import TrainedModel, TrainingRun


class TrainingRunSerializer(serializers.ModelSerializer):
    cohort = serializers.SlugRelatedField(slug_field="name", read_only=True)
    grid = serializers.SerializerMethodField()
    epochs = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = ("id", "name", "cohort", "config", "repeats", "seed", "job", "created_at", "epochs", "grid")
        read_only_fields = fields

    def get_grid(self, run) -> list[dict]:
        return selectors.model_grid(run)

    def get_epochs(self, run) -> int:
        return int(run.config.get("epochs", 50))


class TrainedModelSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrainedModel
        fields = ("id", "run", "repeat", "fold", "seed", "status", "epochs_done", "history", "metrics", "card",
                  "error", "started_at", "finished_at")
        read_only_fields = fields


class TrainingRunApi(RetrieveAPIView):
    serializer_class = TrainingRunSerializer

    def get_queryset(self):
        return selectors.runs_visible_to(self.request.user)


class TrainedModelApi(RetrieveAPIView):
    serializer_class = TrainedModelSerializer

    def get_queryset(self):
        return selectors.models_visible_to(self.request.user)
