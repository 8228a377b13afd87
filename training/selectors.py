"""Reads of the training app; training runs and model cards are for admins and coordinators."""

from django.db.models import QuerySet

from accounts.roles import is_coordinator
from training.models import TrainedModel, TrainingRun


def runs_visible_to(user) -> QuerySet[TrainingRun]:
    if not is_coordinator(user):
        return TrainingRun.objects.none()
    return TrainingRun.objects.select_related("cohort", "job", "created_by")


def models_visible_to(user) -> QuerySet[TrainedModel]:
    if not is_coordinator(user):
        return TrainedModel.objects.none()
    return TrainedModel.objects.select_related("run__cohort")


def model_grid(run: TrainingRun) -> list[dict]:
    """Rows of the repeat × fold grid: one row per repeat, one cell per fold."""
    rows: dict[int, list] = {}
    for m in run.models.order_by("repeat", "fold").only("pk", "repeat", "fold", "status", "epochs_done", "metrics"):
        rows.setdefault(m.repeat, []).append(
            {"pk": m.pk, "fold": m.fold, "status": m.status, "epochs_done": m.epochs_done,
             "auc": (m.metrics or {}).get("auc")})
    return [{"repeat": r, "cells": cells} for r, cells in sorted(rows.items())]
