from django.contrib import admin

from inference.models import CaseAIResult, Evaluation, ExternalValidation
from jobs.admin import JobProductAdmin, page_column


@admin.register(Evaluation)
class EvaluationAdmin(JobProductAdmin):
    list_display = ("name", "training_run", "status", "chosen_subset", "job", "created_at", "page")
    list_filter = ("status",)
    # stale_*: set by a correction of one of its cases (imaging.services.case_correct), never by hand
    readonly_fields = ("training_run", "job", "status", "config", "chosen_subset", "results", "store_path",
                       "created_by", "created_at", "stale_since", "stale_reason")
    start_url_name = "inference_evaluation_start"
    page = page_column("inference_evaluation", "results", "evaluation page")


@admin.register(CaseAIResult)
class CaseAIResultAdmin(admin.ModelAdmin):
    list_display = ("case", "evaluation", "likelihood", "subset", "n_ensembles", "is_deployment", "created_at")
    list_filter = ("is_deployment", "evaluation")
    search_fields = ("case__pseudonym",)
    readonly_fields = [f.name for f in CaseAIResult._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(ExternalValidation)
class ExternalValidationAdmin(JobProductAdmin):
    list_display = ("name", "evaluation", "cohort", "status", "job", "created_at", "page")
    list_filter = ("status",)
    # frozen: copied from the evaluation when it started; results: the job's; never by hand
    readonly_fields = ("evaluation", "cohort", "job", "status", "frozen", "results", "created_by", "created_at")
    start_url_name = "inference_external_validation_start"
    page = page_column("inference_external_validation", "results", "validation page")
