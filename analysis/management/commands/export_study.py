"""``python manage.py export_study STUDY --out DIR [--no-figures]``: every export of a reader study."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from analysis import services
from reader_study.models import Study


def find_study(key: str) -> Study:
    """A study by primary key or by exact name; CommandError naming the choices otherwise."""
    study = Study.objects.filter(pk=int(key)).first() if key.isdigit() else None
    study = study or Study.objects.filter(name=key).first()
    if study is None:
        known = ", ".join(f"{s.pk} ({s.name!r})" for s in Study.objects.order_by("pk")[:10]) or "none"
        raise CommandError(f"no study {key!r} (give its id or exact name); studies: {known}")
    return study


class Command(BaseCommand):
    help = ("Write a study's exports to a folder: the tidy reads CSV, per-reader, group, t-test, DNN and "
            "case tables, the MRMC results as CSV and JSON, and the figures as PNG and SVG.")

    def add_arguments(self, parser):
        parser.add_argument("study", help="the study's id or exact name")
        parser.add_argument("--out", required=True, help="folder to write into (created if missing)")
        parser.add_argument("--no-figures", action="store_true", help="skip the PNG/SVG figures (faster)")

    def handle(self, *args, **options):
        study = find_study(options["study"])
        out = Path(options["out"])
        if out.exists() and not out.is_dir():
            raise CommandError(f"--out {out}: exists and is not a folder")
        try:
            written = services.study_export(study=study, out=out, figures=not options["no_figures"])
        except OSError as exc:
            raise CommandError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
        report = services.study_report(study=study)
        for note in report.stats.notes:
            self.stdout.write(f"note: {note}")
        self.stdout.write(f"study {study.pk} ({study.name!r}): {len(written)} files written to {out}")
        for path in written:
            self.stdout.write(f"  {path.relative_to(out)}")
