from django.contrib import admin, messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html

from jobs import services
from jobs.models import Job


class JobProductAdmin(admin.ModelAdmin):
    """The admin of a table a job fills for a user (`jobs.models.JobProduct`: a training run, an evaluation).
    Its rows are made on the app's start page, which creates the job too: adding here goes there."""

    start_url_name: str

    def add_view(self, request, form_url="", extra_context=None):
        return redirect(self.start_url_name)


def page_column(url_name: str, text: str, description: str):
    """A list_display column: a link reading ``text`` to the row's own page (``url_name`` with its pk)."""

    @admin.display(description=description)
    def page(model_admin, obj):
        return format_html('<a href="{}">{}</a>', reverse(url_name, args=[obj.pk]), text)

    return page


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "done", "total", "step", "created_by", "created_at", "worker")
    list_filter = ("kind", "status")
    readonly_fields = [*(f.name for f in Job._meta.fields if f.name != "params"), "shown_params"]
    exclude = ("params",)
    actions = ["cancel", "resume"]

    @admin.display(description="params")
    def shown_params(self, obj):
        """The params without server paths and identifiers (the raw ones can hold a PACS retrieval's list)."""
        from jobs.serializers import shown_params

        return shown_params(obj.params)

    @admin.action(description="Cancel selected jobs")
    def cancel(self, request, queryset):
        for job in queryset:
            services.job_cancel(job=job)
        messages.info(request, f"cancel requested for {queryset.count()} job(s)")

    @admin.action(description="Resume selected jobs (failed, or worker lost)")
    def resume(self, request, queryset):
        for job in queryset:
            try:
                services.job_resume(job=job)
            except services.JobError as exc:
                messages.warning(request, str(exc))
