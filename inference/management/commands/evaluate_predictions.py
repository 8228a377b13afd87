"""``python manage.py evaluate_predictions FILE.csv [--nested] [--top 10] [--json]``: honest evaluation of
out-of-fold slice predictions made anywhere (docs/inference.md, "Evaluating predictions from a CSV")."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from inference.prediction_io import REQUIRED_COLUMNS, PredictionInputError, evaluate_file

METRICS = (("ss_avg", "SS-Avg"), ("sensitivity", "Sens"), ("specificity", "Spec"), ("accuracy", "Acc"),
           ("auc", "AUC"))


def _cell(block: dict | None, percent: bool) -> str:
    if block is None:
        return "n/a"
    scale, digits = (100.0, 1) if percent else (1.0, 3)
    return (f"{scale * block['estimate']:.{digits}f} ({scale * block['ci_low']:.{digits}f}–"
            f"{scale * block['ci_high']:.{digits}f})")


class Command(BaseCommand):
    help = ("Paper-style, training-fold-threshold and (with --nested) nested evaluation of out-of-fold "
            f"predictions in a CSV with columns {','.join(REQUIRED_COLUMNS)}.")

    def add_arguments(self, parser):
        parser.add_argument("file", help=f"CSV: {','.join(REQUIRED_COLUMNS)}")
        parser.add_argument("--nested", action="store_true",
                            help="also run the nested evaluation (one full set search per fold)")
        parser.add_argument("--top", type=int, default=10, help="number of best sets averaged (default 10)")
        parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
        parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **options):
        try:
            result = evaluate_file(options["file"], nested=options["nested"], top=options["top"],
                                   resamples=options["resamples"], seed=options["seed"])
        except PredictionInputError as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        self.stdout.write(self._table(result))

    @staticmethod
    def _table(result: dict) -> str:
        lines = [f"{result['file']}: {result['n_patients']} patients ({result['n_sarcoma']} sarcoma, "
                 f"{result['n_leiomyoma']} leiomyoma), {result['n_folds']} folds, {result['n_repeats']} repeats; "
                 f"top-{result['top']} sets, mean over the leave-one-repeat-out ensembles; 95% CIs",
                 " | ".join(["method", *(name + (" %" if key != "auc" else "") for key, name in METRICS)])]
        for method in ("paper_style", "training_fold_threshold", "nested"):
            if method in result:
                block = result[method]
                cells = [_cell(block[key], key != "auc") for key, _ in METRICS]
                lines.append(" | ".join([block["label"], *cells]))
        if "optimism_points" in result:
            lines.append(f"optimism (paper-style − nested SS-Avg): {result['optimism_points']:.1f} points; "
                         f"the nested figure {result['nested_note']}")
        return "\n".join(lines)
