"""Django admin for reader studies. State changes go through the services (actions), never raw edits:
opening draws worklists, and reads are read-only here so that every change stays in the audit trail."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from accounts.roles import is_coordinator
from imaging.admin import CoordinatorAdmin
from imaging.models import Case
from reader_study import services
from reader_study.models import (
    Assignment,
    DescriptorScore,
    Enrollment,
    ExamProgress,
    Read,
    ReadAudit,
    Study,
    StudyEvent,
)


class RoleAdmin(CoordinatorAdmin):
    """Coordinators and admins use these pages by their role (groups carry no model permissions); unlike the
    imaging pages, coordinators add and delete here too (the actions and guards below keep it safe)."""

    def has_add_permission(self, request, obj=None):
        return is_coordinator(request.user)

    def has_delete_permission(self, request, obj=None):
        return is_coordinator(request.user)


class ReadOnlyAdmin(RoleAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class EnrollmentInline(admin.TabularInline):
    model = Enrollment
    fields = ("reader", "enrolled_by", "enrolled_at")
    readonly_fields = ("enrolled_by", "enrolled_at")
    extra = 0

    def has_view_permission(self, request, obj=None):
        return is_coordinator(request.user)

    def has_add_permission(self, request, obj=None):
        return is_coordinator(request.user) and (obj is None or obj.status != Study.Status.CLOSED)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return is_coordinator(request.user) and (obj is None or obj.status == Study.Status.DRAFT)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_view_permission(self, request, obj=None):
        return is_coordinator(request.user)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return self.fields


class StudyEventInline(ReadOnlyInline):
    model = StudyEvent
    fields = ("at", "action", "actor", "reader", "detail")


@admin.register(Study)
class StudyAdmin(RoleAdmin):
    list_display = ("name", "status", "washout_days", "evaluation", "created_by", "created_at", "opened_at")
    list_filter = ("status",)
    search_fields = ("name",)
    filter_horizontal = ("cases",)
    inlines = [EnrollmentInline, StudyEventInline]
    actions = ["open_studies", "close_studies", "apply_descriptor_consensus"]
    # stale_*: set by a correction (imaging.services.case_correct), cleared by adopting the corrected truth
    # (services.study_truth_adopt, on the study's page), never by hand; hanging_protocol: validated and audited
    # by services.study_hanging_set, on the study's page
    readonly_fields = ("status", "seed", "created_by", "created_at", "opened_at", "closed_at", "stale_since",
                       "stale_reason", "hanging_protocol")

    def has_delete_permission(self, request, obj=None):
        return is_coordinator(request.user) and (obj is None or obj.status == Study.Status.DRAFT)

    def get_readonly_fields(self, request, obj=None):
        fixed = list(self.readonly_fields)
        if obj is not None and obj.status != Study.Status.DRAFT:
            fixed += ["cases", "cohort", "evaluation", "washout_days", "heat_maps"]   # the readers are reading these
        return fixed

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        """The cases picker offers usable cases only: a study held for import review is not a case yet."""
        if db_field.name == "cases":
            kwargs["queryset"] = Case.objects.usable()
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        if not change:
            StudyEvent.objects.create(study=obj, action="created", actor=request.user,
                                      detail={"via": "admin"})

    def save_formset(self, request, form, formset, change):
        """New enrolments go through the service, so an open study draws the new reader's worklists."""
        if formset.model is not Enrollment:
            return super().save_formset(request, form, formset, change)
        for enrollment in formset.save(commit=False):
            if enrollment.pk is None:
                try:
                    services.reader_enrol(study=form.instance, reader=enrollment.reader, by=request.user)
                except ValidationError as exc:
                    messages.error(request, "; ".join(exc.messages))
        for enrollment in formset.deleted_objects:
            services.reader_unenrol(study=form.instance, reader=enrollment.reader, by=request.user)

    def _each(self, request, queryset, action, done: str):
        for study in queryset:
            try:
                action(study=study, by=request.user)
                messages.success(request, f"{study.name}: {done}")
            except ValidationError as exc:
                messages.error(request, f"{study.name}: {'; '.join(exc.messages)}")

    @admin.action(description="Open selected studies (draws every reader's worklists)")
    def open_studies(self, request, queryset):
        self._each(request, queryset, services.study_open, "opened")

    @admin.action(description="Close selected studies")
    def close_studies(self, request, queryset):
        self._each(request, queryset, services.study_close, "closed")

    @admin.action(description="Write the descriptor consensus onto the cases")
    def apply_descriptor_consensus(self, request, queryset):
        self._each(request, queryset, services.descriptor_consensus_apply, "consensus written")


@admin.register(ExamProgress)
class ExamProgressAdmin(ReadOnlyAdmin):
    list_display = ("study", "reader", "exam", "started_at", "finished_at", "washout_override_by",
                    "washout_override_at")
    list_filter = ("study", "exam")


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdmin):
    list_display = ("study", "reader", "exam", "position", "display_code", "case", "active_seconds")
    list_filter = ("study", "exam", "reader")


class ReadAuditInline(ReadOnlyInline):
    model = ReadAudit
    fields = ("at", "actor", "action", "before", "after")


@admin.register(Read)
class ReadAdmin(ReadOnlyAdmin):
    list_display = ("assignment", "call", "confidence", "active_seconds", "ai_likelihood_shown", "revision",
                    "updated_at")
    list_filter = ("assignment__study", "assignment__exam", "call")
    inlines = [ReadAuditInline]


@admin.register(ReadAudit)
class ReadAuditAdmin(ReadOnlyAdmin):
    list_display = ("read", "actor", "action", "at")


@admin.register(StudyEvent)
class StudyEventAdmin(ReadOnlyAdmin):
    list_display = ("study", "action", "actor", "reader", "at")
    list_filter = ("study", "action")


@admin.register(DescriptorScore)
class DescriptorScoreAdmin(ReadOnlyAdmin):
    list_display = ("assignment", "degeneration", "irregular_margin", "updated_at")
    list_filter = ("assignment__study",)
