"""Training records: a cohort's folds, a training run (R repeats × 6 folds) and its models with cards."""

from django.db import models

from jobs.models import Claimable, ClaimStates, JobProduct, work_status


class FoldSplit(models.Model):
    """The cohort's patient-level split (METHOD §4), made once with a recorded seed, reused by every repeat."""

    cohort = models.OneToOneField("imaging.Cohort", on_delete=models.CASCADE, related_name="fold_split")
    n_folds = models.PositiveSmallIntegerField(default=6)
    seed = models.BigIntegerField()
    assignment = models.JSONField(help_text="{case pk: fold index}")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.n_folds} folds of {self.cohort} (seed {self.seed})"


class TrainingRun(JobProduct):
    """One training job: cohort + configuration → repeats × folds models on the gpu queue."""

    name = models.CharField(max_length=100)
    cohort = models.ForeignKey("imaging.Cohort", on_delete=models.PROTECT, related_name="training_runs")
    config = models.JSONField(help_text="training.network.TrainingConfig as a dict")
    repeats = models.PositiveSmallIntegerField(default=24)
    seed = models.BigIntegerField(default=0, help_text="base seed; repeat r trains with a seed derived from it")


class TrainedModel(Claimable):
    """One (repeat, fold) model, claimed and trained by one gpu worker at a time (jobs.claims)."""

    Status = work_status("TrainedModel.Status", __name__, running="training")

    CLAIM_STATES = ClaimStates(waiting=Status.PENDING, running=Status.TRAINING, succeeded=Status.DONE,
                               failed=Status.FAILED, cancelled=Status.CANCELLED)

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="models")
    repeat = models.PositiveSmallIntegerField()
    fold = models.PositiveSmallIntegerField()
    seed = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    epochs_done = models.PositiveSmallIntegerField(default=0)
    history = models.JSONField(default=list, blank=True, help_text="per-epoch loss, accuracy, held-out metrics")
    metrics = models.JSONField(default=dict, blank=True, help_text="held-out fold metrics of the final model")
    card = models.JSONField(default=dict, blank=True, help_text="the model card")
    model_path = models.CharField(max_length=255, blank=True, help_text=".keras file, relative to MEDIA_ROOT")

    class Meta:
        ordering = ["run", "repeat", "fold"]
        constraints = [models.UniqueConstraint(fields=["run", "repeat", "fold"], name="one_model_per_repeat_fold")]

    def __str__(self) -> str:
        return f"{self.run.name} r{self.repeat} f{self.fold} ({self.status})"
