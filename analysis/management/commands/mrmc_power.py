"""``python manage.py mrmc_power FILE.csv --readers J [--cases K] [--effect-size D] [--power 0.8] [--alpha 0.05]
[--analysis RRRC|FRRC|RRFC] [--covariance jackknife|delong] [--table] [--json]``: MRMC power and sample size from a
pilot (Hillis, Obuchowski & Berbaum 2011; docs/statistics.md, "Planning a study")."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from analysis.mrmc import COVARIANCE_METHODS
from analysis.mrmc_io import MRMCInputError
from analysis.planning import ANALYSES, PlanningError, pilot_from_csv, plan


class Command(BaseCommand):
    help = ("Power of a pivotal reader study of J readers and K cases, or the smallest K for a wanted power, from a "
            "pilot's long CSV (modality,reader,case,truth,rating; two modalities), empirical AUC.")

    def add_arguments(self, parser):
        parser.add_argument("file", help="the pilot: long CSV modality,reader,case,truth,rating")
        parser.add_argument("--readers", type=int, required=True, help="readers J of the pivotal study")
        parser.add_argument("--cases", type=int, default=None,
                            help="cases K: report the power; without it, the smallest K reaching --power")
        parser.add_argument("--effect-size", type=float, default=None,
                            help="AUC difference to detect (default: the pilot's observed difference)")
        parser.add_argument("--power", type=float, default=0.8, help="wanted power (default 0.8)")
        parser.add_argument("--alpha", type=float, default=0.05, help="test size (default 0.05)")
        parser.add_argument("--analysis", choices=ANALYSES, default="RRRC",
                            help="generalization: random readers and cases (RRRC, default), FRRC, RRFC")
        parser.add_argument("--covariance", choices=COVARIANCE_METHODS, default="jackknife",
                            help="OR covariance of the AUCs (default jackknife, as RJafroc's ORH)")
        parser.add_argument("--table", action="store_true", help="also the smallest K for J = 2 ... 100")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **o):
        try:
            pilot = pilot_from_csv(o["file"], covariance=o["covariance"])
            result = plan(pilot, readers=o["readers"], cases=o["cases"], effect_size=o["effect_size"],
                          target_power=o["power"], alpha=o["alpha"], analysis=o["analysis"], table=o["table"])
        except (MRMCInputError, PlanningError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(result, indent=2) if o["json"] else "\n".join(summary_lines(result)))


def summary_lines(result: dict) -> list[str]:
    pilot, design = result["pilot"], result["design"]
    lines = [f"pilot: {pilot['pilot_readers']} readers, {pilot['pilot_cases']} cases; AUC "
             f"{pilot['fom'][0]:.4f} ({pilot['modalities'][0]}) vs {pilot['fom'][1]:.4f} ({pilot['modalities'][1]}); "
             f"OR variance components ({pilot['covariance']}): var_TR {pilot['var_tr']:.3g}, Var {pilot['var']:.3g}, "
             f"Cov1 {pilot['cov1']:.3g}, Cov2 {pilot['cov2']:.3g}, Cov3 {pilot['cov3']:.3g}",
             f"effect size {result['effect_size']:.4f} ({result['effect_size_source']}), alpha {result['alpha']}, "
             f"{result['analysis']}"]
    if design is None:
        lines.append(f"{result['readers']} readers: power {result['target_power']} is not reached with up to 2,000 "
                     "cases; add readers")
    else:
        lines.append(f"J = {design['readers']}, K = {design['cases']}: power {design['power']:.7f} (non-centrality "
                     f"{design['ncp']:.2f}, ddf {design['ddf']:.1f}, critical F {design['f_critical']:.2f})")
    for row in result.get("table", []):
        lines.append(f"  J = {row['readers']:3d}: " + (f"K = {row['cases']:4d} (power {row['power']:.4f})"
                                                       if row["cases"] else "K > 2,000"))
    return lines
