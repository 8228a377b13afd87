"""Coordinator forms. They only collect input; the services validate and write."""

from django import forms
from django.contrib.auth import get_user_model

from accounts.roles import READER
from imaging.models import Case, Cohort
from inference.models import Evaluation
from reader_study.hanging import DEFAULT_PROTOCOL, MAX_VIEWPORTS, format_protocol
from reader_study.models import Study

HANGING_HELP = (f"which sequences open in which viewport, for every case: viewports separated by “|” (at most "
                f"{MAX_VIEWPORTS}), in each the sequence codes to try in order, e.g. “T2sag | T2axi | ADC or DWI”; "
                f"a viewport whose sequences a case lacks shows another of its series")


def reader_label(user) -> str:
    profile = getattr(user, "reader_profile", None)
    if profile is None:
        return user.username
    return f"{profile.code} · {user.username} ({profile.group}, {profile.years_experience} y)"


class ReaderChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, user):
        return reader_label(user)


class OneReaderField(forms.ModelChoiceField):
    def label_from_instance(self, user):
        return reader_label(user)


class CaseChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, case):
        synthetic = " · synthetic" if case.is_synthetic else ""
        return f"{case.pseudonym} · {case.truth or 'no truth'}{synthetic}"


def reader_users():
    return (get_user_model().objects.filter(groups__name=READER).select_related("reader_profile")
            .order_by("reader_profile__code", "username"))


class StudyCreateForm(forms.Form):
    name = forms.CharField(max_length=100)
    cohort = forms.ModelChoiceField(Cohort.objects.all(), required=False,
                                    help_text="take every case of this cohort (when no case is ticked below)")
    cases = CaseChoiceField(Case.objects.usable(), required=False, widget=forms.CheckboxSelectMultiple,
                            help_text="or tick the cases one by one")
    evaluation = forms.ModelChoiceField(Evaluation.objects.filter(status=Evaluation.Status.DONE),
                                        required=False, help_text="whose AI results exam 2 shows")
    readers = ReaderChoiceField(queryset=reader_users(), required=False, widget=forms.CheckboxSelectMultiple)
    washout_days = forms.IntegerField(min_value=0, max_value=365, initial=28)
    descriptor_k = forms.IntegerField(min_value=1, initial=4, label="Descriptor consensus: k of the readers")
    instructions = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    hanging_protocol = forms.CharField(
        max_length=200, required=False, initial=format_protocol(DEFAULT_PROTOCOL), label="Hanging protocol",
        help_text=HANGING_HELP)
    heat_maps = forms.ChoiceField(choices=Study.HeatMaps.choices, initial=Study.HeatMaps.OFF, required=False,
                                  label="AI heat-maps in exam 2",
                                  help_text="where the ensemble saw sarcoma, over the tumour slices (never in exam 1)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["readers"].queryset = reader_users()   # evaluated per request, not at import

    def clean_heat_maps(self) -> str:
        return self.cleaned_data.get("heat_maps") or Study.HeatMaps.OFF


class HangingProtocolForm(forms.Form):
    hanging_protocol = forms.CharField(max_length=200, label="Hanging protocol", help_text=HANGING_HELP)


class EnrolForm(forms.Form):
    reader = OneReaderField(queryset=get_user_model().objects.none())

    def __init__(self, *args, queryset=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reader"].queryset = queryset if queryset is not None else reader_users()


class OverrideForm(forms.Form):
    reader = OneReaderField(queryset=get_user_model().objects.none())
    reason = forms.CharField(max_length=500)

    def __init__(self, *args, queryset=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reader"].queryset = queryset if queryset is not None else reader_users()
