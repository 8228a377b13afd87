"""`manage.py evaluate --training-job ID | --run ID [--rule mean|majority] [--repredict] [--wait|--inline]`.

--training-job takes the id of the run's training job (what `manage.py train` prints as "job N"); when no
run has that job, the number is taken as a run id. --run takes the run id only.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from inference import selectors, services
from jobs import cli
from jobs.models import JobStatus


def validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())


class Command(BaseCommand):
    help = ("Evaluate a trained run: out-of-fold predictions, leave-one-repeat-out ensembles, the search over all "
            "32,767 sequence sets, and every case's sarcoma likelihood (gpu queue).")

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--training-job", type=int, metavar="ID",
                           help="the run's training job id (or, if no run has that job, a run id)")
        which.add_argument("--run", type=int, metavar="ID", help="the training run id")
        parser.add_argument("--rule", choices=("mean", "majority"), default="mean",
                            help="sequence call: mean slice probability >= cutoff (default), or majority of slices")
        parser.add_argument("--cutoff", type=float, default=0.5)
        parser.add_argument("--repredict", action="store_true",
                            help="let every model predict again instead of reusing its saved held-out predictions")
        parser.add_argument("--name", default="")
        cli.add_job_arguments(parser)

    def handle(self, *args, **o):
        cli.refuse_without_secrets()
        try:
            run = selectors.training_run_for(training_job=o["training_job"], run=o["run"])
            evaluation = services.evaluation_start(
                run=run, rule=o["rule"], cutoff=o["cutoff"], repredict=o["repredict"], name=o["name"],
                enqueue=not o["inline"])
        except ValidationError as exc:
            raise CommandError(validation_message(exc)) from None
        self.stdout.write(f"evaluation {evaluation.pk} of training run {run.pk} ({run.name})")
        job = cli.follow(self, evaluation.job, o)
        if job.status == JobStatus.SUCCEEDED:
            evaluation.refresh_from_db()
            results = evaluation.results
            top = results["ensemble"]["top_mean"]
            self.stdout.write(
                f"top-10 sets, ensembles: accuracy {top['accuracy_percent']:.1f}%, "
                f"SS-Avg {top['ss_avg_percent']:.1f}%, "
                f"sensitivity {top['sensitivity_percent']:.1f}%, specificity {top['specificity_percent']:.1f}%"
                + (f" (honest SS-Avg {top['honest_ss_avg_percent']:.1f}%)" if "honest_ss_avg_percent" in top else ""))
            self.stdout.write(f"likelihoods use {' '.join(evaluation.chosen_subset)}; "
                              f"{evaluation.case_results.count()} cases have an AI result"
                              + ("  [SYNTHETIC data]" if results.get("synthetic") else ""))
