from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from training.models import FoldSplit, TrainedModel, TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("name", "cohort", "repeats", "job", "created_at", "page")
    readonly_fields = ("job", "created_by", "created_at")

    @admin.display(description="run page")
    def page(self, run):
        return format_html('<a href="{}">grid</a>', reverse("training_run", args=[run.pk]))

    def add_view(self, request, form_url="", extra_context=None):
        """Runs are started from the start page (it creates the models and the job)."""
        from django.shortcuts import redirect

        return redirect("training_start")


@admin.register(TrainedModel)
class TrainedModelAdmin(admin.ModelAdmin):
    list_display = ("run", "repeat", "fold", "status", "epochs_done", "worker", "finished_at")
    list_filter = ("status", "run")
    readonly_fields = [f.name for f in TrainedModel._meta.fields]


@admin.register(FoldSplit)
class FoldSplitAdmin(admin.ModelAdmin):
    list_display = ("cohort", "n_folds", "seed", "created_at")
    readonly_fields = ("cohort", "n_folds", "seed", "assignment", "created_at")
