from django.contrib import admin, messages

from jobs import services
from jobs.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "done", "total", "step", "created_by", "created_at", "worker")
    list_filter = ("kind", "status")
    readonly_fields = [f.name for f in Job._meta.fields]
    actions = ["cancel", "resume"]

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
