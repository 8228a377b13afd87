from django import forms

from imaging.models import Cohort


class TrainingStartForm(forms.Form):
    """The paper's values are the defaults (METHOD §5, §6); tiny values make a quick trial run."""

    cohort = forms.ModelChoiceField(queryset=Cohort.objects.exclude(content_hash=""), to_field_name="name")
    name = forms.CharField(max_length=100, required=False)
    repeats = forms.IntegerField(min_value=1, max_value=100, initial=24)
    folds = forms.IntegerField(min_value=2, max_value=20, required=False,
                               widget=forms.NumberInput(attrs={"placeholder": "6"}),
                               help_text="patient-level folds (METHOD: 6); empty: the cohort's split, else 6. "
                                         "A cohort's first run fixes them")
    epochs = forms.IntegerField(min_value=1, max_value=500, initial=50)
    samples_per_epoch = forms.IntegerField(min_value=2, initial=35000)
    batch_size = forms.IntegerField(min_value=2, initial=32)
    learning_rate = forms.FloatField(min_value=1e-7, initial=1e-4)
    input_size = forms.IntegerField(min_value=32, max_value=512, required=False,
                                    widget=forms.NumberInput(attrs={"placeholder": "the cohort's"}),
                                    help_text="crop side in pixels; empty: the cohort's (METHOD: 224)")
    width = forms.FloatField(min_value=0.1, max_value=2.0, initial=1.0, help_text="MobileNetV2 width multiplier")
    seed = forms.IntegerField(initial=0)

    def config(self) -> dict:
        """The run's configuration; without an input size the cohort's applies (as with ``train``)."""
        keys = ("epochs", "samples_per_epoch", "batch_size", "learning_rate", "input_size", "width")
        return {k: self.cleaned_data[k] for k in keys if self.cleaned_data[k] is not None}
