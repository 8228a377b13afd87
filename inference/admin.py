from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from inference.models import CaseAIResult, Evaluation


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    list_display = ("name", "training_run", "status", "chosen_subset", "job", "created_at", "page")
    list_filter = ("status",)
    readonly_fields = ("training_run", "job", "status", "config", "chosen_subset", "results", "store_path",
                       "created_by", "created_at")

    @admin.display(description="evaluation page")
    def page(self, evaluation):
        return format_html('<a href="{}">results</a>', reverse("inference_evaluation", args=[evaluation.pk]))

    def add_view(self, request, form_url="", extra_context=None):
        """Evaluations are started from their start page (it creates the job)."""
        from django.shortcuts import redirect

        return redirect("inference_evaluation_start")


@admin.register(CaseAIResult)
class CaseAIResultAdmin(admin.ModelAdmin):
    list_display = ("case", "evaluation", "likelihood", "subset", "n_ensembles", "is_deployment", "created_at")
    list_filter = ("is_deployment", "evaluation")
    search_fields = ("case__pseudonym",)
    readonly_fields = [f.name for f in CaseAIResult._meta.fields]

    def has_add_permission(self, request):
        return False
