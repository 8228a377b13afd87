"""Imaging in the Django admin: cases and ground truth, series and overrides, boxes, rules, imports, cohorts.

Coordinators (staff, in the Coordinator group) may view and edit these without per-model permissions:
the role is the permission, as everywhere else. Deleting is left to admins. Writes go through the
services, so the admin validates exactly as the pages do.

A frozen case (issue 13, `imaging.frozen`) shows its truth and subtype, and everything of its series and
boxes, read-only, with a line naming what freezes it and a link to its "Correct this case" page; nothing of
it can be deleted here. The services refuse too (a tampered POST): a refused edit is shown as an error,
Django's "changed successfully" is withheld and the admin log says what was refused, never "Changed".
"""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html

from accounts.roles import is_admin, is_coordinator
from imaging import frozen, nodes, sequences, services
from imaging.models import (
    Case,
    CaseAudit,
    Cohort,
    CohortCase,
    DicomNode,
    ImportBatch,
    SequenceRuleSet,
    Series,
    TumourBox,
)


def _frozen_labels(request, case_id) -> list[str]:
    """What freezes the case, asked once per request (the admin asks for read-only fields several times)."""
    if case_id is None:
        return []
    cache = request.__dict__.setdefault("_frozen_labels", {})
    if case_id not in cache:
        cache[case_id] = frozen.frozen_labels(case_id)
    return cache[case_id]


def frozen_note(case) -> str:
    """The read-only line on a frozen case's (or its series' and boxes') admin page: what freezes it, and where
    a deliberate change is made instead. (A display callable gets no request, hence no cache here.)"""
    labels = frozen.frozen_labels(case)
    if not labels:
        return "not frozen"
    return format_html('{} is frozen by {}: its truth, subtype, series and boxes are read-only here. '
                       '<a href="{}">Correct this case</a> (a correction with a reason, which marks them stale).',
                       case.pseudonym, ", ".join(labels), reverse("imaging_case_correct", args=[case.pk]))


class CoordinatorAdmin(admin.ModelAdmin):
    def refuse(self, request, error: ValidationError, prefix: str = "") -> None:
        """Show a service's refusal, and remember it: Django's success message is withheld for this request
        and its admin log line says what was refused (``message_user``, ``log_change``)."""
        text = prefix + "; ".join(error.messages)
        request.__dict__.setdefault("_admin_refusals", []).append(text)
        messages.error(request, text)

    def message_user(self, request, message, level=messages.INFO, *args, **kwargs):
        if level == messages.SUCCESS and request.__dict__.get("_admin_refusals"):
            message, level = "Saved without the refused changes above.", messages.WARNING
        return super().message_user(request, message, level, *args, **kwargs)

    def log_change(self, request, obj, message):
        refusals = request.__dict__.get("_admin_refusals")
        if refusals:
            message = "Refused: " + " | ".join(refusals)   # a plain-text change message, shown as is
        return super().log_change(request, obj, message)

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

    def get_readonly_fields(self, request, obj=None):
        """``obj``: the case. A frozen case's series keep their sequence-code override too."""
        if obj is not None and _frozen_labels(request, obj.pk):
            return SERIES_FIELDS
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        return is_admin(request.user) and not (obj is not None and _frozen_labels(request, obj.pk))


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

    @admin.display(description="frozen")
    def frozen_note(self, case):
        return frozen_note(case)

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        return ("frozen_note", *fields) if obj is not None and _frozen_labels(request, obj.pk) else fields

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and _frozen_labels(request, obj.pk):
            return (*self.readonly_fields, "frozen_note", *services.FROZEN_FIELDS)
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        """A frozen case is never deleted (its cohorts and studies hold it); admins may delete the others."""
        return super().has_delete_permission(request, obj) and not (obj and _frozen_labels(request, obj.pk))

    def save_model(self, request, obj, form, change):
        """Through ``case_update`` (audited, refuses a frozen case's truth and subtype). Those two are read-only
        on a frozen case's form, so a POST still carrying other values was tampered with: refused, said so."""
        case = Case.objects.get(pk=obj.pk)   # the stored values: the form has set its own on obj already
        tampered = [name for name in services.FROZEN_FIELDS if name not in form.fields
                    and request.POST.get(name, getattr(case, name)).strip() != getattr(case, name)]
        if tampered:
            try:
                frozen.refuse_if_frozen(case)
            except ValidationError as error:
                self.refuse(request, error)
        values = {f: form.cleaned_data[f] for f in services.CASE_FIELDS if f in form.changed_data}
        try:
            services.case_update(case=case, by=request.user, **values)   # the rest, as a manifest would
        except ValidationError as error:
            self.refuse(request, error)

    def save_formset(self, request, form, formset, change):
        if formset.model is Series:
            for series_form in formset.forms:
                if "override_code" in series_form.changed_data:
                    series = Series.objects.get(pk=series_form.instance.pk)
                    try:
                        services.series_override_set(series=series, user=request.user,
                                                     code=series_form.cleaned_data["override_code"])
                    except ValidationError as error:
                        self.refuse(request, error, f"series {series.series_number}: ")
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []   # for the log
            return
        super().save_formset(request, form, formset, change)


class TumourBoxInline(CoordinatorInline):
    model = TumourBox
    fields = ("slice_index", "x0", "y0", "x1", "y1", "source", "drawn_by")
    readonly_fields = ("source", "drawn_by")

    def _frozen(self, request, series) -> bool:
        """``series``: the inline's parent. Its frozen case's boxes are read-only, none added or deleted."""
        return series is not None and bool(_frozen_labels(request, series.case_id))

    def get_readonly_fields(self, request, obj=None):
        return self.fields if self._frozen(request, obj) else self.readonly_fields

    def has_add_permission(self, request, obj=None):
        return is_coordinator(request.user) and not self._frozen(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not self._frozen(request, obj)


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

    @admin.display(description="frozen")
    def frozen_note(self, series):
        return frozen_note(series.case)

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        return ("frozen_note", *fields) if obj is not None and _frozen_labels(request, obj.case_id) else fields

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and _frozen_labels(request, obj.case_id):
            return (*self.fields, "frozen_note")
        return self.readonly_fields

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
        return super().has_delete_permission(request, obj) and not (obj and _frozen_labels(request, obj.case_id))

    def save_model(self, request, obj, form, change):
        if "override_code" in form.changed_data:
            try:
                services.series_override_set(series=Series.objects.get(pk=obj.pk), user=request.user,
                                             code=form.cleaned_data["override_code"])
            except ValidationError as error:
                self.refuse(request, error, f"series {obj.series_number}: ")

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
                        self.refuse(request, error, f"box on slice {box_form.instance.slice_index}: ")
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
                self.refuse(request, error, f"box on slice {data['slice_index']}: ")


@admin.register(TumourBox)
class TumourBoxAdmin(CoordinatorAdmin):
    list_display = ("series", "slice_index", "x0", "y0", "x1", "y1", "source", "drawn_by")
    list_filter = ("source",)
    search_fields = ("series__case__pseudonym",)
    readonly_fields = ("series", "source", "drawn_by")

    @admin.display(description="frozen")
    def frozen_note(self, box):
        return frozen_note(box.series.case)

    def _frozen(self, request, box) -> bool:
        return box is not None and bool(_frozen_labels(request, box.series.case_id))

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        return ("frozen_note", *fields) if self._frozen(request, obj) else fields

    def get_readonly_fields(self, request, obj=None):
        if self._frozen(request, obj):
            return ("frozen_note", "series", "slice_index", "x0", "y0", "x1", "y1", "source", "drawn_by")
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not self._frozen(request, obj)

    def save_model(self, request, obj, form, change):
        if not form.changed_data:
            return   # a frozen box's page has nothing to change (and box_save would refuse it)
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
            self.refuse(request, error)


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
        "stale_since",   # set by a correction (imaging.services.case_correct) only: rebuild needed
        "stale_reason",
    )
    fields = ("name", "description", *readonly_fields[1:])
    inlines = [CohortCaseInline]


class DicomNodeForm(forms.ModelForm):
    """The AE title and port checked as on the command line (`manage.py dicom_node`), next to the field."""

    dicomweb_url = forms.URLField(required=False, assume_scheme="https",
                                  help_text=DicomNode._meta.get_field("dicomweb_url").help_text)

    class Meta:
        model = DicomNode
        fields = ("name", "ae_title", "host", "port", "may_send", "any_address", "dicomweb_url", "source_name")

    def clean_ae_title(self):
        try:
            return nodes.clean_ae_title(self.cleaned_data["ae_title"])
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["ae_title"]) from None

    def clean_port(self):
        port = self.cleaned_data["port"]
        if not 1 <= port <= 65535:
            raise ValidationError(f"{port} is not a TCP port (1-65535)")
        return port


@admin.register(DicomNode)
class DicomNodeAdmin(admin.ModelAdmin):
    """The DICOM nodes and the listener's allow-list (docs/pacs.md): admins only; saved through the service, with
    the AE title and port validated in the form as on the command line."""

    form = DicomNodeForm
    list_display = ("name", "ae_title", "host", "port", "may_send", "any_address", "dicomweb_url")
    list_filter = ("may_send",)
    search_fields = ("name", "ae_title", "host")

    def has_module_permission(self, request):
        return is_admin(request.user)

    def has_view_permission(self, request, obj=None):
        return is_admin(request.user)

    has_change_permission = has_add_permission = has_delete_permission = has_view_permission

    def save_model(self, request, obj, form, change):
        if change:                               # a renamed node: the service finds nodes by name
            DicomNode.objects.filter(pk=obj.pk).update(name=obj.name)
        saved = nodes.dicom_node_add(name=obj.name, ae_title=obj.ae_title, host=obj.host, port=obj.port,
                                     may_send=obj.may_send, any_address=obj.any_address,
                                     dicomweb_url=obj.dicomweb_url, source_name=obj.source_name)
        obj.pk = saved.pk
