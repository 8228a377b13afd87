"""`manage.py pacs_retrieve --node NAME (--list FILE | VALUE ...) [--patient-ids] [--method get|move|dicomweb]
[--wait|--inline]` — studies pulled from a PACS by accession number or source patient ID."""

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from imaging.retrieve import METHODS, retrieve_start
from jobs import cli


class Command(BaseCommand):
    help = ("Find studies on a DICOM node by accession number (or source patient ID) and fetch them: each is "
            "de-identified on arrival and imported (docs/pacs.md).")

    def add_arguments(self, parser):
        parser.add_argument("values", nargs="*", help="accession numbers (or patient IDs with --patient-ids)")
        parser.add_argument("--node", required=True, help="the DICOM node's name (manage.py dicom_node list)")
        parser.add_argument("--list", type=Path, default=None,
                            help="a text file, one value per line ('patient:' or 'accession:' in front to say which)")
        parser.add_argument("--patient-ids", action="store_true", help="values are source patient IDs")
        parser.add_argument("--method", choices=METHODS, default="get",
                            help="get (C-GET, default), move (C-MOVE to this platform's listener), dicomweb")
        cli.add_job_arguments(parser)

    def handle(self, *args, **o):
        cli.refuse_without_secrets()
        if o["list"] is not None and not o["list"].is_file():
            raise CommandError(f"--list {o['list']}: no such file")
        text = "\n".join(o["values"]) + ("\n" + o["list"].read_text() if o["list"] else "")
        try:
            job = retrieve_start(node=o["node"], text=text, method=o["method"],
                                 default_kind="patient" if o["patient_ids"] else "accession",
                                 enqueue=not o["inline"])
        except ValidationError as exc:
            raise CommandError(cli.validation_message(exc)) from None
        self.stdout.write(f"retrieval job {job.pk}: {job.total} line(s) from {o['node']} by {o['method']}")
        cli.follow(self, job, o)
        job.refresh_from_db()
        if job.is_finished and job.result.get("summary"):
            self.stdout.write(job.result["summary"])
