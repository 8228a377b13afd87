"""``python manage.py mrmc FILE.csv [--cov delong|jackknife] [--metric auc|sensitivity|specificity]
[--threshold T] [--alpha A] [--json]``: MRMC analysis of a long reader-study CSV (docs/statistics.md)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from analysis.mrmc import COVARIANCE_METHODS, FIGURES_OF_MERIT
from analysis.mrmc_io import MRMCInputError, run_from_csv


def _fmt(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


class Command(BaseCommand):
    help = ("Obuchowski-Rockette and DBM analysis of a long CSV with columns "
            "modality,reader,case,truth,rating (every reader rates every case in every modality; "
            "truth 1 = diseased/sarcoma).")

    def add_arguments(self, parser):
        parser.add_argument("file", help="long CSV: modality,reader,case,truth,rating")
        parser.add_argument("--cov", choices=COVARIANCE_METHODS, default="delong",
                            help="covariance of the figures of merit for OR (default: delong)")
        parser.add_argument("--metric", choices=FIGURES_OF_MERIT, default="auc",
                            help="figure of merit (default: auc)")
        parser.add_argument("--threshold", type=float, default=None,
                            help="dichotomise ratings: rating >= T is a positive (sarcoma) call")
        parser.add_argument("--alpha", type=float, default=0.05, help="two-sided level of CIs (default 0.05)")
        parser.add_argument("--json", action="store_true", help="print the full result as JSON")

    def handle(self, *args, **options):
        try:
            result = run_from_csv(options["file"], cov=options["cov"], metric=options["metric"],
                                  threshold=options["threshold"], alpha=options["alpha"])
        except MRMCInputError as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        self.stdout.write(self._summary(result))

    @staticmethod
    def _summary(result: dict) -> str:
        lines = [f"{result['file']}: {result['metric']}, OR covariance {result['covariance']}, "
                 f"{len(result['readers'])} readers, {result['n_cases']} cases "
                 f"({result['n_positive']} positive, {result['n_negative']} negative)"]
        for modality, value in result["figure_of_merit"]["mean"].items():
            lines.append(f"  modality {modality}: mean {result['metric']} {_fmt(value)}")
        level = round(100 * (1 - result["alpha"]))
        for key, label in (("random_readers_random_cases", "random readers, random cases"),
                           ("fixed_readers_random_cases", "fixed readers, random cases"),
                           ("random_readers_fixed_cases", "random readers, fixed cases")):
            test = result[key]
            if "chi2" in test:
                stat = f"chi2 = {_fmt(test['chi2'])}, df = {_fmt(test['df'], 0)}"
            else:
                stat = f"F = {_fmt(test['F'])}, df = ({_fmt(test['df1'], 0)}, {_fmt(test['ddf'], 2)})"
            lines.append(f"{label}: {stat}, p = {_fmt(test['p'])}")
            for d in test["differences"]:
                a, b = d["modalities"]
                lines.append(f"  {a} - {b}: {_fmt(d['estimate'])} (SE {_fmt(d['se'])}), {level}% CI "
                             f"{_fmt(d['ci_lo'])} to {_fmt(d['ci_hi'])}, p = {_fmt(d['p'])}")
        return "\n".join(lines)
