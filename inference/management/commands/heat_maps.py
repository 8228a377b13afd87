"""`manage.py heat_maps --evaluation ID [--case CODE ...] [--wait|--inline]` (issue 18, docs/saliency.md).

Grad-CAM heat-maps of the evaluation's cases (every case with a result, or the cases named), on the gpu queue.
Cases whose maps were made of their current crops are skipped, so the command can be run again after new patients
were predicted; a case whose tumour boxes or series were corrected since is mapped again.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from imaging.models import Case
from inference import services
from inference.management.commands.evaluate import validation_message
from inference.models import Evaluation
from jobs import cli
from jobs.models import JobStatus


class Command(BaseCommand):
    help = "Heat-maps (Grad-CAM of the ensemble) of an evaluation's cases, for exam 2 and the evaluation page."

    def add_arguments(self, parser):
        parser.add_argument("--evaluation", type=int, required=True, metavar="ID", help="the evaluation id")
        parser.add_argument("--case", action="append", metavar="CODE", default=[],
                            help="a case's pseudonym (repeatable); default: every case with a result")
        cli.add_job_arguments(parser)

    def handle(self, *args, **o):
        cli.refuse_without_secrets()
        evaluation = Evaluation.objects.filter(pk=o["evaluation"]).first()
        if evaluation is None:
            raise CommandError(f"no evaluation {o['evaluation']}")
        cases = None
        if o["case"]:
            found = {c.pseudonym: c for c in Case.objects.usable().filter(pseudonym__in=o["case"])}
            unknown = [code for code in o["case"] if code not in found]
            if unknown:
                raise CommandError(f"no case with pseudonym {', '.join(map(repr, unknown))}")
            cases = list(found.values())
        try:
            job = services.heat_maps_start(evaluation=evaluation, cases=cases, enqueue=not o["inline"])
        except ValidationError as exc:
            raise CommandError(validation_message(exc)) from None
        self.stdout.write(f"heat-maps of {len(job.params['case_pks'])} case(s) with the models of evaluation "
                          f"{evaluation.pk} ({evaluation.name})")
        job = cli.follow(self, job, o)
        if job.status == JobStatus.SUCCEEDED:
            result = job.result
            self.stdout.write(f"{result.get('cases', 0)} case(s) mapped ({result.get('slices', 0)} tumour slices; "
                              f"{result.get('out_of_date', 0)} out of date), {result.get('already', 0)} had their "
                              f"maps already")
