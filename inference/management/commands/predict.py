"""`manage.py predict --case CODE (--training-job ID | --run ID | --evaluation ID) [--heat-maps] [--wait|--inline]`.

A case imported after training gets its sarcoma likelihood from every model of the run (METHOD §9). The
thresholds and sequence set come from an evaluation of the run: the one named by --evaluation, else the
run's latest finished evaluation. --training-job / --run name the run as in `manage.py evaluate`.
--heat-maps: once the prediction succeeded, the case's Grad-CAM maps too (a second job, `manage.py heat_maps`);
it needs --inline or --wait, since the maps start from the prediction's result.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from imaging.models import Case
from inference import selectors, services
from inference.management.commands.evaluate import validation_message
from inference.models import CaseAIResult, Evaluation
from jobs import cli
from jobs.models import JobStatus


class Command(BaseCommand):
    help = "Predict a case imported after training with every model of a trained, evaluated run (gpu queue)."

    def add_arguments(self, parser):
        parser.add_argument("--case", required=True, metavar="CODE", help="the case's pseudonym")
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--training-job", type=int, metavar="ID",
                           help="the run's training job id (or, if no run has that job, a run id)")
        which.add_argument("--run", type=int, metavar="ID", help="the training run id")
        which.add_argument("--evaluation", type=int, metavar="ID", help="the evaluation id")
        parser.add_argument("--heat-maps", action="store_true",
                            help="also compute the case's heat-maps (docs/saliency.md)")
        cli.add_job_arguments(parser)

    def handle(self, *args, **o):
        cli.refuse_without_secrets()
        if o["heat_maps"] and not (o["inline"] or o["wait"]):
            raise CommandError("--heat-maps needs --inline or --wait: the maps start once the prediction is stored")
        case = Case.objects.usable().filter(pseudonym=o["case"]).first()
        if case is None:
            raise CommandError(f"no case with pseudonym {o['case']!r}")
        try:
            if o["evaluation"] is not None:
                evaluation = Evaluation.objects.filter(pk=o["evaluation"]).first()
                if evaluation is None:
                    raise CommandError(f"no evaluation {o['evaluation']}")
            else:
                run = selectors.training_run_for(training_job=o["training_job"], run=o["run"])
                evaluation = selectors.latest_evaluation_of(run)
            job = services.case_prediction_start(case=case, evaluation=evaluation, enqueue=not o["inline"])
        except ValidationError as exc:
            raise CommandError(validation_message(exc)) from None
        self.stdout.write(f"case {case.pseudonym} with the models of evaluation {evaluation.pk} ({evaluation.name})")
        job = cli.follow(self, job, o)
        if job.status == JobStatus.SUCCEEDED:
            result = CaseAIResult.objects.get(evaluation=evaluation, case=case)
            per_sequence = ", ".join(f"{k} {v:.0f}%" for k, v in result.per_sequence.items())
            self.stdout.write(f"{case.pseudonym}: sarcoma likelihood {result.likelihood:.1f}% "
                              f"({' '.join(result.subset)}); per sequence: {per_sequence}")
            if o["heat_maps"]:
                self._heat_maps(case, evaluation, o)

    def _heat_maps(self, case, evaluation, o):
        try:
            job = services.heat_maps_start(evaluation=evaluation, cases=[case], enqueue=not o["inline"])
        except ValidationError as exc:
            raise CommandError(validation_message(exc)) from None
        job = cli.follow(self, job, o)
        if job.status == JobStatus.SUCCEEDED:
            self.stdout.write(f"{case.pseudonym}: heat-maps of {job.result.get('slices', 0)} tumour slices")
