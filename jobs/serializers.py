"""The job API's output: one job as the job page polls it (core/serializers.py says why output serializers)."""

from rest_framework import serializers

from jobs.models import IDENTIFYING_PARAMS, PATH_PARAMS, Job


def shown_params(value: dict | None) -> dict:
    """A job's params without its server paths (``PATH_PARAMS``) and identifiers (``IDENTIFYING_PARAMS``)."""
    return {key: ("(server path, not shown)" if key in PATH_PARAMS and item
                  else f"({len(item)} lines, not shown)" if key in IDENTIFYING_PARAMS and isinstance(item, list)
                  else item)
            for key, item in (value or {}).items()}


class ParamsField(serializers.DictField):
    """A job's params as `shown_params` gives them, whatever the job's state."""

    def to_representation(self, value):
        return shown_params(value)


class JobSerializer(serializers.ModelSerializer):
    params = ParamsField(read_only=True)
    display_status = serializers.CharField(read_only=True)
    percent = serializers.FloatField(read_only=True)
    worker_lost = serializers.BooleanField(read_only=True)
    can_resume = serializers.BooleanField(read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Job
        fields = ("id", "kind", "status", "display_status", "done", "total", "percent", "step", "error",
                  "cancel_requested", "worker_lost", "can_resume", "result", "params", "created_by",
                  "created_at", "started_at", "finished_at", "heartbeat_at", "attempts")
        read_only_fields = fields
