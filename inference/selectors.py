"""Reads of the inference app. Evaluations and AI results per case are for coordinators and admins only;
readers see an AI result only through the reader study, in exam 2 (reader_study.selectors.ai_result_for)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from django.db.models import QuerySet

from accounts.roles import is_admin, is_coordinator
from core.constants import SEQUENCE_CODES
from inference import services
from inference.models import CaseAIResult, Evaluation


def evaluations_visible_to(user) -> QuerySet[Evaluation]:
    if not is_coordinator(user):
        return Evaluation.objects.none()
    return Evaluation.objects.select_related("training_run__cohort", "job", "created_by")


def evaluation_for_user(user, pk: int) -> Evaluation:
    """Raises Evaluation.DoesNotExist for a missing evaluation and for a user who may not see it."""
    return evaluations_visible_to(user).get(pk=pk)


def case_results_visible_to(user) -> QuerySet[CaseAIResult]:
    if not is_coordinator(user):
        return CaseAIResult.objects.none()
    return CaseAIResult.objects.select_related("case", "evaluation")


def can_start_evaluation(user) -> bool:
    """Evaluations run on GPU workers: admins start them (as they start training)."""
    return is_admin(user)


def can_choose_subset(user) -> bool:
    return is_coordinator(user)


def can_predict_case(user) -> bool:
    """A new patient's prediction is one small gpu job; coordinators (who import the cases) may start it."""
    return is_coordinator(user)


def finished_evaluations(user) -> QuerySet[Evaluation]:
    return evaluations_visible_to(user).filter(status=Evaluation.Status.DONE)


def top_table(evaluation: Evaluation, kind: str = "ensemble") -> list[dict]:
    """The Table-1-style rows (best first) with one True/False per sequence code: a dot where used."""
    rows = ((evaluation.results or {}).get(kind) or {}).get("top") or []
    out = []
    for row in rows:
        used = set(row["sequences"].split())
        out.append({**row, "used": [code in used for code in SEQUENCE_CODES]})
    return out


def case_result_table(evaluation: Evaluation) -> dict:
    """Per-case table of an evaluation: {"codes": the sequence columns any case has, "rows": [...]}.

    Each row: the case, truth, fold, sarcoma likelihood %, per-sequence % aligned with "codes" (None where the
    case lacks the sequence), is_deployment, and ``missed``: more than half of the ensembles call the wrong
    class (METHOD §12's DNN miss); None without ground truth.
    """
    fold_of = {}
    run = evaluation.training_run
    if run is not None and hasattr(run.cohort, "fold_split"):
        fold_of = {int(k): int(v) for k, v in run.cohort.fold_split.assignment.items()}
    results = list(evaluation.case_results.select_related("case").order_by("is_deployment", "case__pseudonym"))
    present = set().union(*(r.per_sequence.keys() for r in results)) if results else set()
    codes = [code for code in SEQUENCE_CODES if code in present]
    rows = []
    for result in results:
        truth = result.case.truth
        wrong_percent = 100.0 - result.likelihood if truth == "sarcoma" else result.likelihood
        missed = None if not truth else wrong_percent > 50.0
        rows.append({"case": result.case, "truth": truth, "fold": fold_of.get(result.case_id),
                     "likelihood": result.likelihood, "is_deployment": result.is_deployment,
                     "per_sequence": [result.per_sequence.get(code) for code in codes], "missed": missed})
    return {"codes": codes, "rows": rows}


CSV_METRICS = ("ss_avg", "accuracy", "sensitivity", "specificity", "auc", "ss_avg_min", "ss_avg_max")


def subset_csv_header() -> list[str]:
    header = ["ensemble_rank", "mask", "sequences", "n_sequences", *SEQUENCE_CODES, "coverage", "coverage_percent"]
    header += [f"ensemble_{m}_percent" for m in CSV_METRICS]
    header += ["single_rank", *[f"single_{m}_percent" for m in CSV_METRICS]]
    return header


def subset_csv_rows(evaluation: Evaluation, chunk: int = 2048) -> Iterator[list]:
    """Every evaluated set (32,767 for the 15 codes), best ensemble rank first, as CSV rows (header first).

    Percentages with 4 decimals; a sequence column holds 1 where the set uses that sequence.
    """
    path = services.evaluation_dir(evaluation) / services.SUBSETS_FILE
    with np.load(path) as saved:
        table = {name: saved[name] for name in saved.files}
    yield subset_csv_header()
    order = np.argsort(table["ensemble_rank"], kind="stable")
    n_codes = len(SEQUENCE_CODES)
    n_patients = max(1, int(table["n_patients"]))
    for start in range(0, order.size, chunk):
        part = order[start:start + chunk]
        masks = table["masks"][part]
        bits = (masks[:, None] >> np.arange(n_codes)[None, :]) & 1
        metric = {f"{kind}_{m}": np.round(100.0 * table[f"{kind}_{m}"][part], 4)
                  for kind in ("ensemble", "single") for m in CSV_METRICS}
        for i, k in enumerate(part.tolist()):
            mask = int(masks[i])
            coverage = int(table["coverage"][k])
            row = [int(table["ensemble_rank"][k]), mask,
                   " ".join(code for j, code in enumerate(SEQUENCE_CODES) if bits[i, j]), int(table["sizes"][k]),
                   *bits[i].tolist(), coverage, round(100.0 * coverage / n_patients, 4)]
            row += [float(metric[f"ensemble_{m}"][i]) for m in CSV_METRICS]
            row += [int(table["single_rank"][k]), *[float(metric[f"single_{m}"][i]) for m in CSV_METRICS]]
            yield row


def has_subset_table(evaluation: Evaluation) -> bool:
    return (services.evaluation_dir(evaluation) / services.SUBSETS_FILE).is_file()
