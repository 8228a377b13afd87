"""`manage.py build_cohort NAME [--cases all|synthetic|real|PSEUDONYM,...] [--institution NAME] [--margin 0.15]
[--input-size 224] [--wait] [--inline]`."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from imaging.models import Case, Cohort
from imaging.services_cohorts import (
    COHORT_SELECTIONS,
    cohort_candidates,
    cohort_candidates_missing,
    cohort_create,
)
from jobs import cli


class Command(BaseCommand):
    help = (
        "Freeze a cohort (cases with ground truth) and build its training array store as a job. "
        "An existing cohort of that name is (re)built."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--cases",
            default="all",
            help="'all' (every case with ground truth), 'synthetic', 'real' (non-synthetic), or comma-separated "
                 "pseudonyms",
        )
        parser.add_argument(
            "--institution", default="", help="only cases of this institution (with all, synthetic or real)"
        )
        parser.add_argument(
            "--margin", type=float, default=0.15, help="crop margin, fraction of the box side"
        )
        parser.add_argument(
            "--input-size", type=int, default=224, help="crop side in pixels (METHOD: 224); train at the same size"
        )
        parser.add_argument("--description", default="")
        cli.add_job_arguments(parser)

    def handle(self, *args, **o):
        cli.refuse_without_secrets()
        cohort = Cohort.objects.filter(name=o["name"]).first()
        if cohort is None:
            if o["cases"] in COHORT_SELECTIONS:  # as the cohort page offers them
                cases = cohort_candidates(selection=o["cases"], institution=o["institution"])
                if not cases.exists():
                    raise CommandError(f"cohort {o['name']}: no case to freeze: "
                                       + cohort_candidates_missing(selection=o["cases"],
                                                                   institution=o["institution"]))
            elif o["institution"]:
                raise CommandError("--institution goes with --cases all, synthetic or real, not with pseudonyms")
            else:
                wanted = [p.strip() for p in o["cases"].split(",") if p.strip()]
                cases = Case.objects.filter(pseudonym__in=wanted)
                missing = sorted(set(wanted) - set(cases.values_list("pseudonym", flat=True)))
                if missing:
                    raise CommandError(f"no case with pseudonym {', '.join(missing)}")
            try:
                cohort = cohort_create(
                    name=o["name"], cases=cases, crop_margin=o["margin"], input_size=o["input_size"],
                    description=o["description"],
                )
            except ValidationError as error:
                raise CommandError(cli.validation_message(error)) from None
            self.stdout.write(f"cohort {cohort.name}: {cohort.members.count()} cases")
        job = cli.start(self, kind="cohort_build", params={"cohort": cohort.pk}, options=o)
        job.refresh_from_db()
        if job.result:
            self.stdout.write(
                f"{job.result.get('n_slices')} slices, content hash {job.result.get('content_hash')}"
            )
