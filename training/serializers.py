"""The training API's output: a run with its repeat × fold grid, and one model (core/serializers.py says why
output serializers)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.serializers import NUMBER, JSONValue
from training import selectors
from training.models import TrainedModel, TrainingRun


class GridCellSerializer(serializers.Serializer):
    pk = serializers.IntegerField()
    fold = serializers.IntegerField()
    status = serializers.ChoiceField(choices=TrainedModel.Status.choices)
    epochs_done = serializers.IntegerField()
    auc = JSONValue(NUMBER, allow_null=True, help_text="held-out AUC of the final model; null until trained")


class GridRowSerializer(serializers.Serializer):
    repeat = serializers.IntegerField()
    cells = GridCellSerializer(many=True, help_text="one per fold")


class TrainingRunSerializer(serializers.ModelSerializer):
    cohort = serializers.SlugRelatedField(slug_field="name", read_only=True)
    grid = serializers.SerializerMethodField()
    epochs = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = ("id", "name", "cohort", "config", "repeats", "seed", "job", "created_at", "epochs", "grid")
        read_only_fields = fields

    @extend_schema_field(GridRowSerializer(many=True))
    def get_grid(self, run):
        return GridRowSerializer(selectors.model_grid(run), many=True).data

    def get_epochs(self, run) -> int:
        return int(run.config.get("epochs", 50))


class TrainedModelSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrainedModel
        fields = ("id", "run", "repeat", "fold", "seed", "status", "epochs_done", "history", "metrics", "card",
                  "error", "started_at", "finished_at")
        read_only_fields = fields
