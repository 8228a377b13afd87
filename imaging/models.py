"""Imaging records: cases (one per patient, under a pseudonym), series, tumour boxes, rules, cohorts.

Nothing here identifies a patient: a case is known by its random pseudonym, and the link to the source
patient key is a keyed hash (HMAC with settings.PSEUDONYM_KEY), never the key itself.
"""

import math

from django.conf import settings
from django.db import models

from core.constants import CLASS_CHOICES, SEQUENCE_CODES, UNUSED_SEQUENCE
from jobs.models import JobProduct

SEQUENCE_CHOICES = [(c, c) for c in SEQUENCE_CODES] + [(UNUSED_SEQUENCE, "unused")]


class Plane(models.TextChoices):
    AXIAL = "axial", "axial"
    SAGITTAL = "sagittal", "sagittal"
    CORONAL = "coronal", "coronal"
    OBLIQUE = "oblique", "oblique"


class SequenceRuleSet(models.Model):
    """The rules (data, see imaging/sequences.py) that map series to sequence codes; one is active."""

    name = models.CharField(max_length=100, unique=True)
    rules = models.JSONField(help_text="A list of rules; see docs/phantoms.md for the format")
    is_active = models.BooleanField(default=False)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name}{' (active)' if self.is_active else ''}"


class ImportBatch(models.Model):
    """One import (a folder, zip or upload) and what became of each file."""

    job = models.OneToOneField("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="import_batch")
    source_label = models.CharField(max_length=255, help_text="what was imported (an upload's name, never paths)")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    files_seen = models.PositiveIntegerField(default=0)
    files_imported = models.PositiveIntegerField(default=0)
    rejections = models.JSONField(default=list, blank=True, help_text="[{file, reason}] — reasons never echo values")
    summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import {self.pk}: {self.files_imported}/{self.files_seen} files"


class DicomNode(models.Model):
    """A DICOM node the platform talks to (issue 17): a PACS or modality that may send studies to our listener
    (``may_send``: the allow-list, by calling AE title and, unless ``any_address``, the sender's address), and/or
    one we query and retrieve from (C-FIND/C-MOVE/C-GET on ``host:port``, or DICOMweb at ``dicomweb_url``).
    ``source_name`` is the site its patient IDs belong to (the issuer, when a file gives none)."""

    name = models.SlugField(max_length=64, unique=True)
    ae_title = models.CharField(max_length=16, help_text="the node's AE title (what it calls itself)")
    host = models.CharField(max_length=255, help_text="host name or address")
    port = models.PositiveIntegerField(help_text="its DICOM port (for query/retrieve)")
    may_send = models.BooleanField(default=True, help_text="on the allow-list: its C-STOREs are accepted")
    any_address = models.BooleanField(default=False,
                                      help_text="accept its AE title from any address (else only from its host)")
    dicomweb_url = models.URLField(blank=True, help_text="its DICOMweb root (QIDO-RS / WADO-RS), if any")
    source_name = models.CharField(max_length=64, blank=True,
                                   help_text="the site its patient IDs belong to (default: the node's name)")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.ae_title} at {self.host}:{self.port})"


class CaseQuerySet(models.QuerySet):
    def usable(self):
        """Cases that may enter cohorts, studies, training and evaluation: not held for review (issue 13)."""
        return self.filter(review_reason="")

    def held(self):
        """Imported studies held for a coordinator's review ("same patient" or "new patient")."""
        return self.exclude(review_reason="")


class Case(models.Model):
    pseudonym = models.CharField(max_length=32, unique=True)
    source_key_hash = models.CharField(max_length=64, unique=True,
                                       help_text="HMAC-SHA256 of the patient identity (issuer, patient key)")
    identity_hash = models.CharField(max_length=64, blank=True, db_index=True, default="", db_default="",
                                     help_text="keyed hash of (issuer, patient key); empty for cases imported "
                                               "before issuers (their source_key_hash is the identity)")
    issuer_hash = models.CharField(max_length=64, blank=True, default="", db_default="",
                                   help_text="keyed hash of the issuer of the patient ID; empty: none known")
    sex_hash = models.CharField(max_length=64, blank=True, default="", db_default="",
                                help_text="keyed hash of PatientSex (never the value)")
    birth_date_hash = models.CharField(max_length=64, blank=True, default="", db_default="",
                                       help_text="keyed hash of PatientBirthDate (never the value)")
    person_hash = models.CharField(max_length=64, blank=True, default="", db_default="", db_index=True,
                                   help_text="keyed hash of name + birth date + sex (never the values): cases "
                                             "sharing it under other patient IDs may be one person")
    duplicate_checked = models.BooleanField(default=False, db_default=False,
                                            help_text="a coordinator said this case is not a duplicate of the "
                                                      "cases sharing its person hash")
    review_reason = models.TextField(blank=True, default="", db_default="",
                                     help_text="non-empty: an imported study held for review")
    review_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="held_imports",
                                  help_text="the existing case the held study may belong to")
    truth = models.CharField(max_length=16, choices=CLASS_CHOICES, blank=True, help_text="ground truth")
    subtype = models.CharField(max_length=64, blank=True, help_text="histopathological subtype")
    institution = models.CharField(max_length=64, blank=True, help_text="site code from the manifest")
    length_mm = models.FloatField(null=True, blank=True)
    width_mm = models.FloatField(null=True, blank=True)
    height_mm = models.FloatField(null=True, blank=True)
    degeneration = models.BooleanField(null=True, blank=True)
    irregular_margin = models.BooleanField(null=True, blank=True)
    is_synthetic = models.BooleanField(default=False, help_text="a generated phantom, not a patient")
    import_batch = models.ForeignKey(ImportBatch, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="cases")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CaseQuerySet.as_manager()

    class Meta:
        ordering = ["pseudonym"]

    def __str__(self) -> str:
        return self.pseudonym

    @property
    def volume_ml(self) -> float | None:
        """Ellipsoid volume 4/3·π·a·b·c with semi-axes a, b, c = π/6·L·W·H (METHOD §1); mm³ → mL."""
        if None in (self.length_mm, self.width_mm, self.height_mm):
            return None
        return math.pi / 6.0 * self.length_mm * self.width_mm * self.height_mm / 1000.0

    @property
    def max_diameter_mm(self) -> float | None:
        dims = [d for d in (self.length_mm, self.width_mm, self.height_mm) if d is not None]
        return max(dims) if dims else None


class Series(models.Model):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="series")
    series_uid = models.CharField(max_length=64, unique=True, help_text="the remapped (de-identified) UID")
    study_uid = models.CharField(max_length=64, blank=True, db_index=True,
                                 help_text="the remapped (de-identified) StudyInstanceUID")
    import_batch = models.ForeignKey(ImportBatch, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="series")
    series_number = models.IntegerField(null=True, blank=True)
    mapped_code = models.CharField(max_length=16, choices=SEQUENCE_CHOICES, default=UNUSED_SEQUENCE)
    mapped_rule = models.CharField(max_length=100, blank=True, help_text="id of the rule that chose mapped_code")
    override_code = models.CharField(max_length=16, choices=SEQUENCE_CHOICES, blank=True,
                                     help_text="a coordinator's correction; wins over the rule")
    attributes = models.JSONField(default=dict, blank=True,
                                  help_text="non-identifying attributes the rules read (plane, flags, b-values)")
    plane = models.CharField(max_length=16, choices=Plane.choices, blank=True)
    n_slices = models.PositiveIntegerField(default=0)
    rows = models.PositiveIntegerField(default=0)
    cols = models.PositiveIntegerField(default=0)
    meta = models.JSONField(default=dict, blank=True, help_text="volume metadata: spacing, positions, window")
    volume_path = models.CharField(max_length=255, blank=True, help_text="relative to MEDIA_ROOT")
    volume_sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["case", "series_number", "pk"]
        verbose_name_plural = "series"

    def __str__(self) -> str:
        return f"{self.case.pseudonym} {self.sequence_code} ({self.n_slices} slices)"

    @property
    def sequence_code(self) -> str:
        return self.override_code or self.mapped_code


class TumourBox(models.Model):
    class Source(models.TextChoices):
        MANIFEST = "manifest", "import manifest"
        DRAWN = "drawn", "drawn by a coordinator"

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="boxes")
    slice_index = models.PositiveIntegerField(help_text="0-based index in the stored volume (sorted by position)")
    x0 = models.PositiveIntegerField()
    y0 = models.PositiveIntegerField()
    x1 = models.PositiveIntegerField()
    y1 = models.PositiveIntegerField()
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.MANIFEST)
    drawn_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["series", "slice_index"]
        constraints = [models.UniqueConstraint(fields=["series", "slice_index"], name="one_box_per_slice"),
                       models.CheckConstraint(condition=models.Q(x1__gt=models.F("x0"), y1__gt=models.F("y0")),
                                              name="box_not_empty")]

    def __str__(self) -> str:
        return f"box on slice {self.slice_index} of {self.series_id}: ({self.x0},{self.y0})-({self.x1},{self.y1})"


class Cohort(JobProduct):
    """A named, frozen set of cases with ground truth, and its training array store."""

    name = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    cases = models.ManyToManyField(Case, through="CohortCase", related_name="cohorts")
    crop_margin = models.FloatField(default=0.15)
    input_size = models.PositiveIntegerField(default=224)
    frozen = models.BooleanField(default=False)
    store_path = models.CharField(max_length=255, blank=True, help_text="array store folder, relative to MEDIA_ROOT")
    content_hash = models.CharField(max_length=80, blank=True, help_text='"sha256:<hex>" of the array store')
    n_slices = models.PositiveIntegerField(default=0)
    stale_since = models.DateTimeField(null=True, blank=True,
                                       help_text="a case of the cohort was corrected after it was frozen")
    stale_reason = models.TextField(blank=True, help_text="what was corrected (rebuild needed)")


class CohortCase(models.Model):
    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="members")
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="cohort_memberships")
    truth = models.CharField(max_length=16, choices=CLASS_CHOICES, help_text="ground truth frozen with the cohort")
    n_slices = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cohort", "case"], name="case_once_per_cohort")]

    def __str__(self) -> str:
        return f"{self.case} in {self.cohort}"


class CaseAlias(models.Model):
    """Another patient identity of a case (issue 14, item 9): the identity of a case merged into it as the same
    person, so that later studies of that identity find this case."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="aliases")
    identity_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"alias of {self.case}"


class CaseAudit(models.Model):
    """Who changed what of a case, and when (issue 13): truth, subtype, boxes, series, merges, corrections.

    ``before`` and ``after`` hold the changed values only, never an identifying one (no source key, no UID,
    no file name): a class, a subtype, a box's slice and corners, a series' id, number and sequence code.
    """

    class Action(models.TextChoices):
        TRUTH = "truth", "ground truth changed"
        SUBTYPE = "subtype", "subtype changed"
        DETAILS = "details", "descriptors changed"
        BOX_ADDED = "box_added", "box added"
        BOX_CHANGED = "box_changed", "box changed"
        BOX_REMOVED = "box_removed", "box removed"
        SERIES_ADDED = "series_added", "series added"
        SERIES_REMOVED = "series_removed", "series removed"
        SERIES_CODE = "series_code", "series sequence code changed"
        MERGED = "merged", "merged"
        CORRECTED = "corrected", "corrected (frozen case)"

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="audit")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+", help_text="empty for an import or a job")
    at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["case", "at", "pk"]
        indexes = [models.Index(fields=["case", "at"], name="case_audit_case_at")]

    def __str__(self) -> str:
        return f"{self.case}: {self.get_action_display()} at {self.at:%Y-%m-%d %H:%M:%S}"
