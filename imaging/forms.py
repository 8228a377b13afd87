"""Forms of the coordinator pages; validation of content happens in the services."""

from django import forms

from core.constants import SEQUENCE_CODES, UNUSED_SEQUENCE
from imaging.models import Case
from imaging.services import CASE_FIELDS

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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("degeneration", "irregular_margin"):
            value = getattr(self.instance, name)
            self.initial[name] = "" if value is None else ("true" if value else "false")


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
