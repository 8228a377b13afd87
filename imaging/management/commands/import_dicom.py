"""`manage.py import_dicom PATH [--manifest CSV] [--boxes CSV] [--source-name NAME] [--json] [--wait] [--inline]`."""

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from imaging import services
from jobs import cli
from jobs.models import Job


class _ToStderr:
    """Lets jobs.cli write its progress to stderr, so that --json leaves stdout to the JSON alone."""

    def __init__(self, command):
        self.stdout, self.style = command.stderr, command.style


class Command(BaseCommand):
    help = (
        "Import DICOM (a folder, a zip, a DICOMDIR or one file) as a job: every file is imported or "
        "rejected with a reason; de-identified on the way in. Files are reported by index (their position "
        "in the byte-sorted list of files under PATH) and a sanitised name."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument(
            "--manifest",
            help="CSV: patient_key, class, subtype, institution, length_mm, "
            "width_mm, height_mm, degeneration, irregular_margin",
        )
        parser.add_argument(
            "--boxes", help="CSV: patient_key, series_number, instance_number, x0, y0, x1, y1"
        )
        parser.add_argument(
            "--json", action="store_true", help="print the summary as JSON on stdout (waits for the job)"
        )
        parser.add_argument("--workers", type=int, help="processes that read files (default: up to 2)")
        parser.add_argument(
            "--source-name", default="",
            help="where the files come from (a site code, e.g. site-B): the issuer of their patient IDs when the "
            "files carry no Issuer of Patient ID and the manifest no institution; required once the platform "
            "holds cases from more than one source",
        )
        parser.add_argument(
            "--unnamed-are-this-source", action="store_true",
            help="the cases imported so far with no source named came from --source-name: its patients find them "
            "(instead of being held for review)",
        )
        cli.add_job_arguments(parser)

    def handle(self, *args, **options):
        try:
            params = services.import_params(
                source=Path(options["path"]),
                manifest=options["manifest"] and Path(options["manifest"]),
                boxes=options["boxes"] and Path(options["boxes"]),
                workers=options["workers"],
                source_name=options["source_name"],
                unnamed_are_this_source=options["unnamed_are_this_source"],
            )
        except ValidationError as error:
            raise CommandError(cli.validation_message(error)) from None  # one problem a line
        if options["json"] and not options["inline"]:
            options["wait"] = True
        target = _ToStderr(self) if options["json"] else self
        job = cli.start(target, kind="import_dicom", params=params, options=options)
        job = Job.objects.get(pk=job.pk)
        if options["json"]:
            self.stdout.write(json.dumps(job.result or {"job": job.pk, "status": job.status}, indent=2))
        elif job.result:
            self._print_summary(job.result)

    def _print_summary(self, r: dict) -> None:
        self.stdout.write(
            f"{r['studies']} studies, {r['series']} series, {r['slices']} slices in {r['cases']} "
            f"cases; {r['files_imported']} files imported, {r['files_rejected']} rejected, "
            f"{r['files_skipped']} skipped"
        )
        for patient in r.get("patients") or []:   # held and added first, then the new cases
            self.stdout.write(f"  {patient['text']}")
        if r.get("possible_duplicates"):
            n = r["possible_duplicates"]
            self.stdout.write(f"  {n} group{'s' if n != 1 else ''} of possible duplicate patients (same name, birth "
                              f"date and sex under different patient IDs): review them on /imaging/cases/duplicates/")
        for item in r["rejected"]:
            self.stdout.write(f"  rejected {item['file']}: {item['reason']}")
        for name in ("manifest", "boxes"):
            if r.get(name):
                report = {k: v for k, v in r[name].items() if k != "problems"}
                self.stdout.write(f"  {name}: {report}")
                for problem in (r[name].get("problems") or [])[:20]:
                    self.stdout.write(f"    {problem}")
