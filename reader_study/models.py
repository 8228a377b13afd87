"""Reader studies (METHOD §11): studies, enrolments, stored worklists, reads and their audit trail.

A reader's worklists are rows of one table, `Assignment`, one per case of each reading task: exam 1, exam 2 and
the leiomyoma descriptor task (stored as exam 3: the worklist seed and the display-code prefix have always
numbered it so). Each task keeps its own answer model: a `Read` for an exam, a `DescriptorScore` for the
descriptor task. Readers never see a case pseudonym: every case reaches them under a task-specific display
code (`Assignment.display_code`). Writes go through `reader_study.services`, reads through `selectors`.
"""

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from core.constants import CLASS_CHOICES
from reader_study.hanging import default_protocol

EXAM_CHOICES = [(1, "Exam 1 (unaided)"), (2, "Exam 2 (AI-aided)")]
EXAMS = (1, 2)
DESCRIPTORS = 3   # the descriptor task: an Assignment's "exam" number, as its worklist seed's always was
TASKS = (*EXAMS, DESCRIPTORS)
TASK_CHOICES = [*EXAM_CHOICES, (DESCRIPTORS, "Leiomyoma descriptors")]
TASK_NAMES = {1: "exam 1", 2: "exam 2", DESCRIPTORS: "descriptor task"}   # for messages to people
# The reverse relation of Assignment that holds a task's answer (each task has its own answer model).
ANSWER_RELATION = {**dict.fromkeys(EXAMS, "read"), DESCRIPTORS: "descriptor_score"}
USER = settings.AUTH_USER_MODEL


def new_study_seed() -> int:
    """A random 62-bit seed per study: worklists are drawn from it, so no two studies share an order."""
    return secrets.randbits(62)


class Study(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        OPEN = "open", "open"
        CLOSED = "closed", "closed"

    class HeatMaps(models.TextChoices):
        """Whether exam 2's viewer offers the AI's heat-maps (issue 18, docs/saliency.md); never exam 1."""
        HIDDEN = "hidden", "not shown"
        OFF = "off", "offered, off until the reader turns them on (key H)"
        ON = "on", "offered, on when a case opens (key H turns them off)"

    name = models.CharField(max_length=100, unique=True)
    cohort = models.ForeignKey("imaging.Cohort", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="reader_studies",
                               help_text="where the cases came from (optional)")
    cases = models.ManyToManyField("imaging.Case", related_name="reader_studies", blank=True)
    evaluation = models.ForeignKey("inference.Evaluation", null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="reader_studies", help_text="whose AI results exam 2 shows")
    washout_days = models.PositiveSmallIntegerField(
        default=28, help_text="days between a reader's last exam-1 read and exam 2")
    instructions = models.TextField(blank=True, help_text="shown to readers on the study page")
    hanging_protocol = models.JSONField(
        default=default_protocol, blank=True,
        help_text="per viewport, the sequence codes it opens, the first the case has (reader_study.hanging)")
    heat_maps = models.CharField(max_length=8, choices=HeatMaps.choices, default=HeatMaps.OFF,
                                 help_text="exam 2 only: the AI's heat-maps over the tumour slices")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DRAFT)
    seed = models.BigIntegerField(default=new_study_seed,
                                  help_text="worklists are drawn from (seed, reader, exam)")
    descriptor_k = models.PositiveSmallIntegerField(
        default=4, validators=[MinValueValidator(1)],
        help_text="descriptor consensus: at least k of the n readers")
    created_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    stale_since = models.DateTimeField(null=True, blank=True,
                                       help_text="a case of the study was corrected after it opened")
    stale_reason = models.TextField(blank=True, help_text="what was corrected; the statistics keep the truth "
                                                          "frozen when the study opened")

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return self.name


class StudyCaseTruth(models.Model):
    """The ground truth of a study's case, frozen when the study opens (issue 13): the statistics and exports
    use it, not the live ``Case.truth``, so a later correction never changes a study's results behind its
    back (it marks the study stale instead)."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="frozen_truths")
    case = models.ForeignKey("imaging.Case", on_delete=models.PROTECT, related_name="+")
    truth = models.CharField(max_length=16, choices=CLASS_CHOICES, blank=True)
    subtype = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["study", "case"]
        constraints = [models.UniqueConstraint(fields=["study", "case"], name="truth_frozen_once_per_case")]

    def __str__(self) -> str:
        return f"{self.case} in {self.study}: {self.truth or 'no truth'}"


class Enrollment(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="enrollments")
    reader = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="enrollments")
    enrolled_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    enrolled_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study", "reader__username"]
        constraints = [models.UniqueConstraint(fields=["study", "reader"], name="reader_enrolled_once")]

    def __str__(self) -> str:
        return f"{self.reader} in {self.study}"


class ExamProgress(models.Model):
    """One reader's exam: the seed of its worklist, when it was finished, and any washout override."""

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="exam_progress")
    reader = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="exam_progress")
    exam = models.PositiveSmallIntegerField(choices=EXAM_CHOICES)
    seed = models.BigIntegerField(
        help_text="derived from (study seed, reader, exam); the order is stored too")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, help_text="answers are frozen from here on")
    washout_override_by = models.ForeignKey(USER, null=True, blank=True,
                                            on_delete=models.PROTECT, related_name="+")
    washout_override_at = models.DateTimeField(null=True, blank=True)
    washout_override_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["study", "reader__username", "exam"]
        verbose_name_plural = "exam progress"
        constraints = [
            models.UniqueConstraint(fields=["study", "reader", "exam"], name="one_progress_per_exam")]

    def __str__(self) -> str:
        return f"{self.reader} · {self.study} · exam {self.exam}"


class Assignment(models.Model):
    """One case in one reader's worklist for one task (exam 1, exam 2 or the descriptor task), at a stored
    position, under a display code."""

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="assignments")
    reader = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="assignments")
    exam = models.PositiveSmallIntegerField(choices=TASK_CHOICES,
                                            help_text="the task: exam 1, exam 2 or 3, the descriptor task")
    case = models.ForeignKey("imaging.Case", on_delete=models.PROTECT, related_name="reader_assignments")
    display_code = models.CharField(max_length=16, help_text="what the reader sees instead of the pseudonym")
    position = models.PositiveIntegerField(help_text="0-based place in the reader's order for this task")
    active_seconds = models.FloatField(default=0.0, help_text="time with the case on screen and in use (s)")
    first_opened_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["study", "reader", "exam", "position"]
        constraints = [
            models.UniqueConstraint(fields=["study", "reader", "exam", "case"],
                                    name="case_once_per_worklist"),
            models.UniqueConstraint(fields=["study", "reader", "exam", "position"],
                                    name="one_case_per_position"),
            models.UniqueConstraint(fields=["study", "reader", "exam", "display_code"],
                                    name="display_code_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.study} · {self.reader} · {TASK_NAMES.get(self.exam, self.exam)} · {self.display_code}"

    @property
    def answer(self):
        """The reader's answer to this case (its Read in an exam, its DescriptorScore in the descriptor task),
        or None; no query where the worklist selected it."""
        return getattr(self, ANSWER_RELATION[self.exam], None)


class Read(models.Model):
    """A reader's answer for one case of one exam; one per assignment, so one per reader × case × exam."""

    assignment = models.OneToOneField(Assignment, on_delete=models.PROTECT, related_name="read")
    call = models.CharField(max_length=16, choices=CLASS_CHOICES)
    confidence = models.PositiveSmallIntegerField(validators=[MaxValueValidator(100)],
                                                  help_text="likelihood of sarcoma, 0-100")
    note = models.TextField(blank=True)
    active_seconds = models.FloatField(default=0.0, help_text="active reading time on the case at the last "
                                                              "submit (s)")
    ai_likelihood_shown = models.FloatField(null=True, blank=True,
                                            help_text="the AI sarcoma likelihood (%) on screen; exam 2 only")
    revision = models.PositiveIntegerField(default=1)
    submitted_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["assignment"]
        constraints = [
            models.CheckConstraint(condition=models.Q(confidence__lte=100), name="confidence_0_100")]

    def __str__(self) -> str:
        return f"{self.assignment}: {self.call} ({self.confidence})"


class ReadAudit(models.Model):
    """Every creation of and change to a read, with the values before and after."""

    class Action(models.TextChoices):
        CREATED = "created", "created"
        CHANGED = "changed", "changed"

    read = models.ForeignKey(Read, on_delete=models.PROTECT, related_name="audit")
    actor = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=8, choices=Action.choices)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["read", "at", "pk"]

    def __str__(self) -> str:
        return f"{self.action} {self.read} by {self.actor} at {self.at:%Y-%m-%d %H:%M:%S}"


class StudyEvent(models.Model):
    """The study's audit log: creation, enrolments, opening, finishing exams, washout overrides, consensus."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(USER, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    reader = models.ForeignKey(USER, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+", help_text="the reader concerned, if any")
    action = models.CharField(max_length=32)
    detail = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.study}: {self.action}"


class DescriptorScore(models.Model):
    """A reader's leiomyoma descriptors for one case of their descriptor task; the k-of-n consensus goes onto
    the Case. One per assignment, as a Read is for an exam."""

    assignment = models.OneToOneField(Assignment, on_delete=models.PROTECT, related_name="descriptor_score")
    degeneration = models.BooleanField()
    irregular_margin = models.BooleanField()
    submitted_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["assignment"]

    def __str__(self) -> str:
        return (f"{self.assignment}: degeneration {self.degeneration}, "
                f"irregular margin {self.irregular_margin}")
