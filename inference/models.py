"""Evaluations of a training run and the AI results per case that exam 2 shows (METHOD §9)."""

from django.db import models

from jobs.models import JobProduct, work_status


class Evaluation(JobProduct):
    Status = work_status("Evaluation.Status", __name__, running="running")

    name = models.CharField(max_length=100)
    training_run = models.ForeignKey("training.TrainingRun", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="evaluations")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    config = models.JSONField(default=dict, blank=True, help_text="sequence-call rule and other choices")
    chosen_subset = models.JSONField(default=list, blank=True, help_text="sequence codes behind the likelihood")
    results = models.JSONField(default=dict, blank=True, help_text="top-10, per-sequence figures, coverage")
    store_path = models.CharField(max_length=255, blank=True, help_text="slice-probability store, under MEDIA_ROOT")
    stale_since = models.DateTimeField(null=True, blank=True,
                                       help_text="a case it was computed on was corrected afterwards")
    stale_reason = models.TextField(blank=True, help_text="what was corrected (rerun needed)")


class CaseAIResult(models.Model):
    """What a reader sees beside a case in exam 2: sarcoma likelihood and per-sequence percentages."""

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="case_results")
    case = models.ForeignKey("imaging.Case", on_delete=models.CASCADE, related_name="ai_results")
    likelihood = models.FloatField(help_text="% of the ensembles whose patient-level call is sarcoma (0-100)")
    per_sequence = models.JSONField(default=dict, help_text="{sequence code: % of ensembles calling sarcoma}")
    subset = models.JSONField(default=list, help_text="the sequence codes combined for the likelihood")
    n_ensembles = models.PositiveIntegerField(default=24)
    is_deployment = models.BooleanField(default=False, help_text="a new case predicted by all models")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["evaluation", "case"], name="one_ai_result_per_case")]

    def __str__(self) -> str:
        return f"{self.case} in {self.evaluation}: {self.likelihood:.0f}%"


class ExternalValidation(JobProduct):
    """A frozen model set (a finished evaluation: its run's models, its chosen sequence set and per-ensemble
    thresholds, copied into ``frozen`` when the validation starts) applied to another cohort that shares no patient
    with the training cohort (issue 14, item 5). ``results``: metrics with CIs, ROC, calibration, per-case calls."""

    Status = work_status("ExternalValidation.Status", __name__, running="running")

    name = models.CharField(max_length=100)
    evaluation = models.ForeignKey(Evaluation, on_delete=models.PROTECT, related_name="external_validations",
                                   help_text="the frozen model set: its run's models, set and thresholds")
    cohort = models.ForeignKey("imaging.Cohort", on_delete=models.PROTECT, related_name="external_validations",
                               help_text="the external cohort (no patient of the training cohort)")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    frozen = models.JSONField(default=dict, blank=True,
                              help_text="set, thresholds, rule and cutoff as fixed when it started")
    results = models.JSONField(default=dict, blank=True, help_text="metrics with CIs, ROC, calibration, per case")
    stale_since = models.DateTimeField(null=True, blank=True,
                                       help_text="a case of its cohort, or its model set's evaluation, was corrected")
    stale_reason = models.TextField(blank=True, help_text="what was corrected (rerun needed)")
