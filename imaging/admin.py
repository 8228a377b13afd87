"""Imaging in the Django admin: cases and ground truth, series and overrides, boxes, rules, imports, cohorts.

Coordinators (staff, in the Coordinator group) may view and edit these without per-model permissions:
the role is the permission, as everywhere else. Deleting is left to admins. Writes go through the
services, so the admin validates exactly as the pages do.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from accounts.roles import is_admin, is_coordinator
from imaging import frozen, sequences, services
from imaging.models import Case, CaseAudit, Cohort, CohortCase, ImportBatch, SequenceRuleSet, Series, TumourBox


class CoordinatorAdmin(admin.ModelAdmin):
    def has_module_permission(self, request):
        return is_coordinator(request.user)

    def has_view_permission(self, request, obj=None):
        return is_coordinator(request.user)

    def has_change_permission(self, request, obj=None):
        return is_coordinator(request.user)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return is_admin(request.user)


class CoordinatorInline(admin.TabularInline):
    extra = 0

    def has_view_permission(self, request, obj=None):
        return is_coordinator(request.user)

    def has_change_permission(self, request, obj=None):
        return is_coordinator(request.user)

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return is_coordinator(request.user)

# The series columns a coordinator checks: how it was mapped, what overrides it, and its shape.
SERIES_FIELDS = ("series_number", "mapped_code", "mapped_rule", "override_code", "plane", "n_slices", "rows", "cols")


class SeriesInline(CoordinatorInline):
    model = Series
    fields = SERIES_FIELDS
    readonly_fields = tuple(f for f in SERIES_FIELDS if f != "override_code")
    show_change_link = True

    def has_delete_permission(self, request, obj=None):
        return is_admin(request.user)


class CaseAuditInline(CoordinatorInline):
    """The case's audit trail, read-only (written by the services only)."""

    model = CaseAudit
    fields = ("at", "actor", "action", "before", "after", "reason")
    readonly_fields = fields
    ordering = ("at", "pk")

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Case)
class CaseAdmin(CoordinatorAdmin):
    list_display = ("pseudonym", *services.CASE_FIELDS[:6], "volume", *services.CASE_FIELDS[6:], "is_synthetic")
    list_filter = ("truth", "institution", "is_synthetic", "degeneration", "irregular_margin")
    search_fields = ("pseudonym", "subtype")
    fields = ("pseudonym", "is_synthetic", *services.CASE_FIELDS, "import_batch", "created_at")
    readonly_fields = ("pseudonym", "is_synthetic", "import_batch", "created_at")
    inlines = [SeriesInline, CaseAuditInline]

    @admin.display(description="volume (mL)")
    def volume(self, case):
        return None if case.volume_ml is None else round(case.volume_ml, 1)

    def save_model(self, request, obj, form, change):
        values = {f: form.cleaned_data[f] for f in services.CASE_FIELDS if f in form.changed_data}
        case = Case.objects.get(pk=obj.pk)   # the stored values: the form has set its own on obj already
        try:
            services.case_update(case=case, by=request.user, **values)
        except ValidationError as error:
            messages.error(request, "; ".join(error.messages))

    def save_formset(self, request, form, formset, change):
        if formset.model is Series:
            for series_form in formset.forms:
                if "override_code" in series_form.changed_data:
                    series = Series.objects.get(pk=series_form.instance.pk)
                    try:
                        services.series_override_set(series=series, user=request.user,
                                                     code=series_form.cleaned_data["override_code"])
                    except ValidationError as error:
                        messages.error(request, "; ".join(error.messages))
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []   # for the log
            return
        super().save_formset(request, form, formset, change)


class TumourBoxInline(CoordinatorInline):
    model = TumourBox
    fields = ("slice_index", "x0", "y0", "x1", "y1", "source", "drawn_by")
    readonly_fields = ("source", "drawn_by")

    def has_add_permission(self, request, obj=None):
        return is_coordinator(request.user)


@admin.register(Series)
class SeriesAdmin(CoordinatorAdmin):
    list_display = (
        "id",
        "case",
        "series_number",
        "mapped_code",
        "mapped_rule",
        "override_code",
        "plane",
        "n_slices",
    )
    list_editable = ("override_code",)
    list_filter = ("mapped_code", "override_code", "plane", "case__is_synthetic")
    search_fields = ("case__pseudonym", "mapped_rule")
    fields = (
        "case",
        *SERIES_FIELDS,
        "attributes",
        "meta_summary",
        "volume_path",
        "volume_sha256",
        "import_batch",
    )
    readonly_fields = tuple(f for f in fields if f != "override_code")
    inlines = [TumourBoxInline]

    @admin.display(description="volume metadata")
    def meta_summary(self, series):
        meta = series.meta or {}
        return json.dumps(
            {
                k: meta.get(k)
                for k in (
                    "shape",
                    "pixel_spacing",
                    "slice_thickness",
                    "slice_spacing",
                    "window",
                    "rescale",
                    "phases",
                    "geometry",
                )
            }
        )

    def has_delete_permission(self, request, obj=None):
        """A frozen case's series are taken off it only by a correction (the case page)."""
        return super().has_delete_permission(request, obj) and not (obj and frozen.is_frozen(obj.case_id))

    def save_model(self, request, obj, form, change):
        if "override_code" in form.changed_data:
            try:
                services.series_override_set(series=Series.objects.get(pk=obj.pk), user=request.user,
                                             code=form.cleaned_data["override_code"])
            except ValidationError as error:
                messages.error(request, "; ".join(error.messages))

    def save_formset(self, request, form, formset, change):
        for box_form in formset.forms:
            if not box_form.has_changed() and not box_form.cleaned_data.get("DELETE"):
                continue
            data = box_form.cleaned_data
            if data.get("DELETE"):
                if box_form.instance.pk:
                    try:
                        services.box_delete(series=form.instance, slice_index=box_form.instance.slice_index,
                                            user=request.user)
                    except ValidationError as error:
                        messages.error(request, "; ".join(error.messages))
                continue
            try:
                old_index = TumourBox.objects.filter(pk=box_form.instance.pk).values_list("slice_index", flat=True)
                if box_form.instance.pk and old_index and old_index[0] != data["slice_index"]:
                    frozen.refuse_if_frozen(form.instance.case, "changed (its tumour boxes included)")
                    services.box_delete(series=form.instance, slice_index=old_index[0], user=request.user)
                services.box_save(
                    series=form.instance,
                    slice_index=data["slice_index"],
                    x0=data["x0"],
                    y0=data["y0"],
                    x1=data["x1"],
                    y1=data["y1"],
                    user=request.user,
                )
            except ValidationError as error:
                messages.error(request, f"box on slice {data['slice_index']}: {'; '.join(error.messages)}")


@admin.register(TumourBox)
class TumourBoxAdmin(CoordinatorAdmin):
    list_display = ("series", "slice_index", "x0", "y0", "x1", "y1", "source", "drawn_by")
    list_filter = ("source",)
    search_fields = ("series__case__pseudonym",)
    readonly_fields = ("series", "source", "drawn_by")

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not (obj and frozen.is_frozen(obj.series.case_id))

    def save_model(self, request, obj, form, change):
        try:
            services.box_save(
                series=obj.series,
                slice_index=obj.slice_index,
                x0=obj.x0,
                y0=obj.y0,
                x1=obj.x1,
                y1=obj.y1,
                user=request.user,
            )
        except ValidationError as error:
            messages.error(request, "; ".join(error.messages))


class RuleSetForm(forms.ModelForm):
    class Meta:
        model = SequenceRuleSet
        fields = ("name", "rules", "is_active")

    def clean_rules(self):
        try:
            return sequences.validate_rules(self.cleaned_data["rules"]).to_json_data()
        except sequences.RuleValidationError as error:
            raise ValidationError([f"{where}: {why}" for where, why in error.errors]) from None


@admin.register(SequenceRuleSet)
class SequenceRuleSetAdmin(CoordinatorAdmin):
    form = RuleSetForm
    list_display = ("name", "is_active", "updated_by", "updated_at")

    def has_add_permission(self, request):
        return is_coordinator(request.user)

    def save_model(self, request, obj, form, change):
        record = services.ruleset_save(
            name=obj.name, rules=form.cleaned_data["rules"], user=request.user, activate=obj.is_active
        )
        obj.pk = record.pk


@admin.register(ImportBatch)
class ImportBatchAdmin(CoordinatorAdmin):
    list_display = ("id", "source_label", "created_by", "created_at", "files_seen", "files_imported", "job")
    readonly_fields = (
        "job",
        "source_label",
        "created_by",
        "created_at",
        "files_seen",
        "files_imported",
        "rejections",
        "summary",
    )

    def has_change_permission(self, request, obj=None):
        return False


class CohortCaseInline(CoordinatorInline):
    model = CohortCase
    fields = ("case", "truth", "n_slices")
    readonly_fields = fields

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Cohort)
class CohortAdmin(CoordinatorAdmin):
    list_display = ("name", "frozen", "n_slices", "content_hash", "created_at")
    readonly_fields = (
        "name",
        "frozen",
        "crop_margin",
        "input_size",
        "store_path",
        "content_hash",
        "n_slices",
        "job",
        "created_by",
        "created_at",
    )
    fields = ("name", "description", *readonly_fields[1:])
    inlines = [CohortCaseInline]
