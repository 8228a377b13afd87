"""Reader attributes used by the statistics (METHOD §11): group and years of experience."""

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models


class ReaderGroup(models.TextChoices):
    SPECIALIST = "specialist", "Specialist (board-certified)"
    PRACTITIONER = "practitioner", "Practitioner (not board-certified)"


class ReaderProfile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reader_profile")
    code = models.CharField(max_length=16, unique=True, help_text="Reader code used in exports, e.g. R03")
    group = models.CharField(max_length=16, choices=ReaderGroup.choices)
    years_experience = models.PositiveSmallIntegerField(validators=[MaxValueValidator(70)])

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} ({self.group}, {self.years_experience} y)"
