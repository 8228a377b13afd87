"""`manage.py validate_external --evaluation ID --cohort NAME [--name N] [--wait|--inline] [--json]`.

Issue 14, item 5: the evaluation's frozen model set (its run's models, chosen sequence set and thresholds, fixed
now) applied to a frozen cohort that shares no patient with the training cohort (gpu queue). Refused, with the
number of overlapping cases by reason, when the cohorts share a patient.
"""

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from imaging.models import Cohort
from inference import services_external
from inference.management.commands.evaluate import validation_message
from inference.models import Evaluation, ExternalValidation
from jobs import cli
from jobs.models import JobStatus

METRICS = ("ss_avg", "sensitivity", "specificity", "accuracy", "auc")


def _figure(name: str, block: dict | None) -> str:
    if not block:
        return f"{name} –"
    return f"{name} {100 * block['estimate']:.1f}% ({100 * block['ci_low']:.1f}–{100 * block['ci_high']:.1f})"


class Command(BaseCommand):
    help = ("Apply a finished evaluation's frozen model set to an external cohort that shares no patient with its "
            "training cohort: metrics with 95% CIs, ROC, calibration and every case's call (gpu queue).")

    def add_arguments(self, parser):
        parser.add_argument("--evaluation", type=int, required=True, metavar="ID", help="a finished evaluation")
        parser.add_argument("--cohort", required=True, metavar="NAME", help="the external cohort (frozen)")
        parser.add_argument("--name", default="")
        parser.add_argument("--json", action="store_true", help="print the results as JSON when it finishes")
        cli.add_job_arguments(parser)

    def handle(self, *args, **o):
        cli.refuse_without_secrets()
        evaluation = Evaluation.objects.filter(pk=o["evaluation"]).first()
        if evaluation is None:
            raise CommandError(f"--evaluation: no evaluation {o['evaluation']}")
        cohort = Cohort.objects.filter(name=o["cohort"]).first()
        if cohort is None:
            raise CommandError(f"--cohort: no cohort named {o['cohort']!r}")
        try:
            validation = services_external.external_validation_start(evaluation=evaluation, cohort=cohort,
                                                                     name=o["name"], enqueue=not o["inline"])
        except ValidationError as exc:
            raise CommandError(validation_message(exc) if hasattr(exc, "message_dict")
                               else " ".join(exc.messages)) from None
        self.stdout.write(f"external validation {validation.pk} of evaluation {evaluation.pk} on cohort "
                          f"{cohort.name}: set {' '.join(validation.frozen.get('codes') or [])} (frozen)")
        job = cli.follow(self, validation.job, o)
        if job.status in (JobStatus.SUCCEEDED, JobStatus.WARNING):
            self._summary(ExternalValidation.objects.get(pk=validation.pk), o["json"])

    def _summary(self, validation: ExternalValidation, as_json: bool) -> None:
        results = validation.results
        if as_json:
            self.stdout.write(json.dumps(results, indent=2))
            return
        figures = (results.get("metrics") or {}).get("likelihood") or {}
        self.stdout.write(f"{results['n_scored']} of {results['n_cases']} cases scored: "
                          + ", ".join(_figure(m, figures.get(m)) for m in METRICS) + " (95% CIs)"
                          + ("  [SYNTHETIC data]" if results.get("synthetic") else ""))
        for item in results.get("not_scored") or []:
            self.stdout.write(f"  not scored: {item['case']}: {item['reason']}")
