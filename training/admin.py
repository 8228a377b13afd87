from django.contrib import admin

from jobs.admin import JobProductAdmin, page_column
from training.models import FoldSplit, TrainedModel, TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(JobProductAdmin):
    list_display = ("name", "cohort", "repeats", "job", "created_at", "page")
    readonly_fields = ("job", "created_by", "created_at")
    start_url_name = "training_start"     # it creates the models and the job
    page = page_column("training_run", "grid", "run page")


@admin.register(TrainedModel)
class TrainedModelAdmin(admin.ModelAdmin):
    list_display = ("run", "repeat", "fold", "status", "epochs_done", "worker", "finished_at")
    list_filter = ("status", "run")
    readonly_fields = [f.name for f in TrainedModel._meta.fields]


@admin.register(FoldSplit)
class FoldSplitAdmin(admin.ModelAdmin):
    list_display = ("cohort", "n_folds", "seed", "created_at")
    readonly_fields = ("cohort", "n_folds", "seed", "assignment", "created_at")
