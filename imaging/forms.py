"""Forms of the coordinator pages; validation of content happens in the services."""

from django import forms

from core.constants import CLASS_CHOICES, SEQUENCE_CODES, UNUSED_SEQUENCE
from imaging.models import Case, Series
from imaging.services import CASE_FIELDS, FROZEN_FIELDS

OVERRIDE_CHOICES = (
    [("", "— use the rule's code —")] + [(c, c) for c in SEQUENCE_CODES] + [(UNUSED_SEQUENCE, "unused")]
)
_FLAG_CHOICES = [("", "unknown"), ("true", "yes"), ("false", "no")]


def _flag(value):
    return {"true": True, "false": False}.get(value)


class CaseTruthForm(forms.ModelForm):
    """Ground truth and descriptors of one case (METHOD §1)."""

    degeneration = forms.TypedChoiceField(
        choices=_FLAG_CHOICES, coerce=_flag, empty_value=None, required=False
    )
    irregular_margin = forms.TypedChoiceField(
        choices=_FLAG_CHOICES, coerce=_flag, empty_value=None, required=False
    )

    class Meta:
        model = Case
        fields = CASE_FIELDS

    def __init__(self, *args, frozen_by=(), **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("degeneration", "irregular_margin"):
            value = getattr(self.instance, name)
            self.initial[name] = "" if value is None else ("true" if value else "false")
        if frozen_by:   # a frozen case: truth and subtype change only through a correction
            for name in FROZEN_FIELDS:
                self.fields[name].disabled = True
                self.fields[name].help_text = f"frozen by {', '.join(frozen_by)}: use “Correct this case”"


class CaseCorrectionForm(forms.Form):
    """The correction of a frozen case: new truth or subtype, series to take off it, and the reason."""

    truth = forms.ChoiceField(choices=[("", "no ground truth")] + list(CLASS_CHOICES), required=False,
                              label="Ground truth")
    subtype = forms.CharField(max_length=64, required=False)
    remove_series = forms.ModelMultipleChoiceField(
        queryset=Series.objects.none(), required=False, widget=forms.CheckboxSelectMultiple,
        label="Series to take off this case", help_text="series of another patient (their boxes go with them)")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000,
                             help_text="why (kept in the case's audit trail and on what is marked stale); "
                                       "no patient names")

    def __init__(self, *args, case: Case, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["remove_series"].queryset = case.series.order_by("series_number", "pk")
        self.fields["remove_series"].label_from_instance = (
            lambda s: f"#{s.series_number if s.series_number is not None else '—'} {s.sequence_code} "
                      f"({s.n_slices} slices)")
        self.initial.setdefault("truth", case.truth)
        self.initial.setdefault("subtype", case.subtype)


class OverrideForm(forms.Form):
    override_code = forms.ChoiceField(choices=OVERRIDE_CHOICES, required=False)


class RulesForm(forms.Form):
    name = forms.CharField(max_length=100, initial="site rules")
    rules = forms.CharField(widget=forms.Textarea(attrs={"rows": 28, "spellcheck": "false", "class": "code"}))


class UploadOptionsForm(forms.Form):
    """Non-file fields of the upload page (the files are streamed to disk by views_upload)."""

    label = forms.CharField(
        max_length=120, required=False, help_text="what this is, e.g. 'site B batch 3' (no patient names)"
    )
    source_name = forms.CharField(
        max_length=64, required=False, label="Source",
        help_text="where the files come from, as a site code (e.g. site-B): the issuer of their patient IDs when "
        "the files carry no Issuer of Patient ID and the manifest no institution. Required once the platform "
        "holds cases from more than one source: the same patient ID from two sources is two patients",
    )
    unnamed_are_this_source = forms.BooleanField(
        required=False, label="The cases imported without a source come from this source",
        help_text="tick once, on the first import that names the source of the earlier unnamed imports: their "
        "patients are then found by this source's imports instead of held for review",
    )


class CohortForm(forms.Form):
    SELECTIONS = [
        ("all", "every case with ground truth"),
        ("synthetic", "synthetic cases with ground truth"),
        ("real", "non-synthetic cases with ground truth"),
    ]
    name = forms.SlugField(max_length=64)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    selection = forms.ChoiceField(choices=SELECTIONS, initial="all")
    institution = forms.CharField(required=False, help_text="only cases of this institution (optional)")
    crop_margin = forms.FloatField(min_value=0, max_value=2, initial=0.15)
    input_size = forms.IntegerField(
        min_value=32, max_value=1024, initial=224,
        help_text="crop side in pixels (METHOD: 224); a smaller size makes a quick trial cohort",
    )


class RetrieveForm(forms.Form):
    """A retrieval from a PACS (`imaging.retrieve`): the node, how, and the list (typed or uploaded)."""

    node = forms.ChoiceField(help_text="the PACS, as the admin registered it (DICOM nodes)")
    method = forms.ChoiceField(choices=[("get", "C-GET (the PACS sends on the same connection)"),
                                        ("move", "C-MOVE to this platform's listener"),
                                        ("dicomweb", "DICOMweb (QIDO-RS and WADO-RS)")], initial="get")
    kind = forms.ChoiceField(choices=[("accession", "accession numbers"), ("patient", "source patient IDs")],
                             initial="accession", label="The lines are")
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), required=False, label="List",
                           help_text="one per line; 'patient:' or 'accession:' in front of a line says which")
    file = forms.FileField(required=False, label="or a text file",
                           help_text="the same, one per line (at most 1 MB)")

    def __init__(self, *args, nodes=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["node"].choices = [(n.name, f"{n.name} ({n.ae_title} at {n.host}:{n.port})") for n in nodes]

    def list_text(self) -> str:
        upload = self.cleaned_data.get("file")
        if upload is not None:
            if upload.size > 1024 * 1024:
                raise forms.ValidationError({"file": "larger than 1 MB"})
            return self.cleaned_data["text"] + "\n" + upload.read().decode("utf-8", errors="replace")
        return self.cleaned_data["text"]
