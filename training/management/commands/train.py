"""`manage.py train --cohort NAME [--repeats R] [--folds K] [--epochs E] [...] [--wait|--inline]`."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from imaging.models import Cohort
from jobs import cli
from training import services


class Command(BaseCommand):
    help = "Train the cross-validated MobileNetV2 ensemble of a cohort (gpu tasks of `--fuse` models each)."

    def add_arguments(self, parser):
        parser.add_argument("--cohort", required=True)
        parser.add_argument("--name", default="")
        parser.add_argument("--repeats", type=int, default=24)
        parser.add_argument("--folds", type=int, default=None, metavar="K",
                            help="patient-level folds (default 6, METHOD §4; at least 2); the cohort's first run "
                                 "fixes them for every later run")
        parser.add_argument("--epochs", type=int, default=50)
        parser.add_argument("--samples-per-epoch", type=int, default=35000)
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--learning-rate", type=float, default=1e-4)
        parser.add_argument("--input-size", type=int, default=None,
                            help="crop side in pixels; default: the cohort's (build_cohort --input-size, METHOD: 224)")
        parser.add_argument("--width", type=float, default=1.0, help="MobileNetV2 width multiplier")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--batchnorm-momentum", type=float, default=None,
                            help="BatchNorm momentum (default MobileNetV2's 0.999); 0-0.9 for short trial runs")
        parser.add_argument("--run-eagerly", action="store_true",
                            help="no graph compilation: faster for tiny trial models on a CPU, slower for real ones")
        parser.add_argument("--fuse", type=int, default=None, metavar="N",
                            help="models trained together in one compiled step (default 2; 1: each alone; "
                                 "docs/training.md says how to choose it for a GPU)")
        parser.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default=None,
                            help="mixed_bfloat16: bf16 compute on devices that have it (default float32)")
        parser.add_argument("--xla", choices=("auto", "on", "off"), default=None,
                            help="XLA compilation (default auto: on with the JAX backend)")
        cli.add_job_arguments(parser)

    def handle(self, *args, **o):
        cli.refuse_without_secrets()
        cohort = Cohort.objects.filter(name=o["cohort"]).first()
        if cohort is None:
            raise CommandError(f"no cohort named {o['cohort']!r}")
        config = {"epochs": o["epochs"], "samples_per_epoch": o["samples_per_epoch"], "batch_size": o["batch_size"],
                  "learning_rate": o["learning_rate"], "input_size": o["input_size"], "width": o["width"],
                  "run_eagerly": o["run_eagerly"], "batchnorm_momentum": o["batchnorm_momentum"]}
        config.update({key: o[key] for key in ("fuse", "precision", "xla") if o[key] is not None})
        if config["input_size"] is None:
            del config["input_size"]  # the cohort's
        try:
            run = services.training_run_start(cohort=cohort, config=config, repeats=o["repeats"], seed=o["seed"],
                                              name=o["name"], enqueue=not o["inline"], folds=o["folds"])
        except ValidationError as exc:
            raise CommandError(cli.validation_message(exc)) from None
        self.stdout.write(f"training run {run.pk}: {run.models.count()} models")
        cli.follow(self, run.job, o)
