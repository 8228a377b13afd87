from django import forms

from core.constants import SEQUENCE_CODES
from inference import selectors_external
from inference.models import Evaluation
from training.models import TrainingRun


class EvaluationStartForm(forms.Form):
    """METHOD §7.2: the sequence call is the mean slice probability ≥ 0.5 by default (the paper is silent)."""

    run = forms.ModelChoiceField(queryset=TrainingRun.objects.select_related("cohort"), label="Training run")
    name = forms.CharField(max_length=100, required=False)
    rule = forms.ChoiceField(choices=[("mean", "mean slice probability ≥ cutoff"),
                                      ("majority", "majority of slices ≥ cutoff (a tie calls sarcoma)")],
                             initial="mean", label="Sequence call")
    cutoff = forms.FloatField(min_value=0.01, max_value=0.99, initial=0.5)
    repredict = forms.BooleanField(required=False, label="Predict again with every model",
                                   help_text="by default each model's held-out predictions saved at the end of "
                                             "its training are reused when they match the cohort store")


class SubsetChoiceForm(forms.Form):
    subset = forms.MultipleChoiceField(choices=[(c, c) for c in SEQUENCE_CODES], widget=forms.CheckboxSelectMultiple,
                                       label="Sequences combined for the likelihood")


class CasePredictionForm(forms.Form):
    evaluation = forms.ModelChoiceField(queryset=Evaluation.objects.none(), label="Evaluation (its models and set)")

    def __init__(self, *args, evaluations=None, **kwargs):
        super().__init__(*args, **kwargs)
        if evaluations is not None:
            self.fields["evaluation"].queryset = evaluations


class ExternalValidationStartForm(forms.Form):
    """Issue 14, item 5: a finished evaluation's frozen model set; a cohort sharing no patient with its training
    cohort."""
    evaluation = forms.ModelChoiceField(queryset=Evaluation.objects.none(), label="Frozen model set (a finished "
                                        "evaluation: its models, chosen set and thresholds)")
    cohort = forms.ModelChoiceField(queryset=selectors_external.external_cohorts(), label="External cohort",
                                    help_text="a frozen cohort that shares no patient with the training cohort")
    name = forms.CharField(max_length=100, required=False)

    def __init__(self, *args, evaluations=None, **kwargs):
        super().__init__(*args, **kwargs)
        if evaluations is not None:
            self.fields["evaluation"].queryset = evaluations
