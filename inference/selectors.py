"""Reads of the inference app. Evaluations and AI results per case are for coordinators and admins only;
readers see an AI result only through the reader study, in exam 2 (reader_study.selectors.ai_result_for).

Besides the tables: which files an evaluation has (``inference.store`` reads them; these functions say where,
from MEDIA_ROOT), its sequence calls from those files, which training run or evaluation an ID on the command
line names, and which of a case's series a new-patient prediction uses. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from accounts.roles import is_admin, is_coordinator
from core.constants import SEQUENCE_CODES
from core.metrics import ai_wrong
from imaging.models import CohortCase
from inference import saliency_store, store
from inference.models import CaseAIResult, Evaluation
from jobs.models import Job, JobStatus


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
    """The Table-1-style rows (best first) with one True/False per sequence code: a dot where used, and
    ``ci``: the set's stored 95 % CIs in % (``set_interval``; None for evaluations finished before)."""
    results = evaluation.results or {}
    rows = (results.get(kind) or {}).get("top") or []
    out = []
    for row in rows:
        used = set(row["sequences"].split())
        out.append({**row, "used": [code in used for code in SEQUENCE_CODES],
                    "ci": set_interval(results, kind, row["mask"])})
    return out


def top_mean_table(evaluation: Evaluation) -> list[dict]:
    """The top-10 mean rows of the headline table: {"kind", "label", "figures" (``top_mean``, in %),
    "ci" (``top_mean_ci``: {metric: {"estimate", "ci_low", "ci_high"}} or None)} for ensembles and single
    models."""
    results = evaluation.results or {}
    labels = {"ensemble": "Ensembles, top-10 mean (sets and thresholds chosen on the evaluated patients, as "
                          "the paper)",
              "single": "Single models, their own top-10 mean (chosen on the evaluated patients)"}
    return [{"kind": kind, "label": label, "figures": results[kind]["top_mean"],
             "ci": results[kind].get("top_mean_ci")}
            for kind, label in labels.items() if (results.get(kind) or {}).get("top_mean")]


def per_sequence_rows(evaluation: Evaluation) -> list[dict]:
    """Fig. 1 rows (``results["per_sequence"]``) with each single sequence's stored 95 % CIs:
    ``ensemble_ci``, ``single_ci`` (None for evaluations finished before they were stored)."""
    results = evaluation.results or {}
    out = []
    for row in results.get("per_sequence") or []:
        mask = 1 << SEQUENCE_CODES.index(row["sequence"])
        out.append({**row, "ensemble_ci": set_interval(results, "ensemble", mask),
                    "single_ci": set_interval(results, "single", mask)})
    return out


def chosen_intervals(evaluation: Evaluation) -> dict:
    """{"ensemble": CIs, "single": CIs} (in %) of the chosen set: computed when it was chosen (any rank), else
    the analysis's for the sets it stored (either top 10, each single sequence); None where there are none."""
    results = evaluation.results or {}
    chosen = results.get("chosen") or {}
    mask, own = chosen.get("mask"), chosen.get("intervals") or {}
    return {kind: own.get(kind) or set_interval(results, kind, mask) for kind in ("ensemble", "single")}


def case_result_table(evaluation: Evaluation) -> dict:
    """Per-case table of an evaluation: {"codes": the sequence columns any case has, "rows": [...]}.

    Each row: the case, truth (the cohort's frozen truth; a deployment case's own), fold, sarcoma likelihood %,
    per-sequence % aligned with "codes" (None where the case lacks the sequence), is_deployment, and ``missed``:
    the DNN's call is wrong (``core.metrics.ai_wrong``, the statistics page's definition); None without truth.
    """
    fold_of, frozen_truth = {}, {}
    run = evaluation.training_run
    if run is not None and hasattr(run.cohort, "fold_split"):
        fold_of = {int(k): int(v) for k, v in run.cohort.fold_split.assignment.items()}
    if run is not None:  # the truth the evaluation was computed with (a later correction marks it stale instead)
        frozen_truth = dict(CohortCase.objects.filter(cohort_id=run.cohort_id).values_list("case_id", "truth"))
    results = list(evaluation.case_results.select_related("case").order_by("is_deployment", "case__pseudonym"))
    present = set().union(*(r.per_sequence.keys() for r in results)) if results else set()
    codes = [code for code in SEQUENCE_CODES if code in present]
    rows = []
    for result in results:
        truth = frozen_truth.get(result.case_id, result.case.truth)
        missed = ai_wrong(result.likelihood, truth)
        rows.append({"case": result.case, "truth": truth, "fold": fold_of.get(result.case_id),
                     "likelihood": result.likelihood, "is_deployment": result.is_deployment,
                     "per_sequence": [result.per_sequence.get(code) for code in codes], "missed": missed})
    return {"codes": codes, "rows": rows}


def dropped_cases(evaluation: Evaluation) -> list[dict]:
    """Cases of the evaluation's cohort that it does not score, each with why: {"case", "reason"}.

    The cohort build (``imaging.cohorts._plan``) keeps only tumour slices: boxes on series mapped to one of
    the 15 sequence codes. A member without any has no slice in the array store, so no prediction and no
    result; the evaluation stores no list of them, so they are the cohort's members without a case result.
    """
    run = evaluation.training_run
    if run is None:
        return []
    scored = set(evaluation.case_results.filter(is_deployment=False).values_list("case_id", flat=True))
    members = (CohortCase.objects.filter(cohort_id=run.cohort_id).exclude(case_id__in=scored)
               .select_related("case").order_by("case__pseudonym"))
    out = []
    for member in members:
        case = member.case
        if mapped_series_with_boxes(case):
            reason = "has tumour slices now, but none when the cohort's array store was built"
        elif case.series.filter(boxes__isnull=False).exists():
            reason = "no tumour slices: its boxes are on series not mapped to one of the 15 sequence codes"
        else:
            reason = "no tumour slices: no tumour box on any series"
        out.append({"case": case, "truth": member.truth, "reason": reason})
    return out


def auc_over_ensembles(evaluation: Evaluation) -> dict | None:
    """AUC of the top-10 sets and of the chosen set as the mean AND the median over the ensembles, in %.

    METHOD §8 averages every figure over the 24 ensembles; the paper reported the AUC's median. Both are read
    from the stored results (``top_mean``: ``auc_percent``, ``auc_median_percent``; the chosen set's row the
    same), with the 95 % DeLong interval of the mean where one is stored (``top_mean_ci``, ``set_intervals``).
    {"ensemble"|"single": {"top_mean": {"mean", "median", "ci"}, "chosen": {...}}, "stored": bool}: the top-10
    entries are the mean over the 10 sets of each set's mean / median; ``ci`` is {"low", "high"} or None.

    Evaluations finished before the median was stored lack it: for them both are recomputed here from the
    slice probabilities (``stored`` False, no CI; cheap: at most 11 sets per kind); None without that store.
    """
    results = evaluation.results or {}
    stored = _stored_auc(results)
    if stored is not None:
        return {**stored, "stored": True}
    recomputed = _recomputed_auc(evaluation, results)
    return None if recomputed is None else {**recomputed, "stored": False}


def _ci(block: dict | None) -> dict | None:
    return None if not block else {"low": block.get("ci_low"), "high": block.get("ci_high")}


def _stored_auc(results: dict) -> dict | None:
    chosen = results.get("chosen") or {}
    out = {}
    for kind in ("ensemble", "single"):
        part = results.get(kind) or {}
        entry = {}
        top_mean = part.get("top_mean")
        if top_mean:
            if top_mean.get("auc_median_percent") is None:
                return None
            entry["top_mean"] = {"mean": top_mean["auc_percent"], "median": top_mean["auc_median_percent"],
                                 "ci": _ci((part.get("top_mean_ci") or {}).get("auc"))}
        row = chosen.get(kind)
        if row:
            if row.get("auc_median_percent") is None:
                return None
            block = set_interval(results, kind, chosen.get("mask"))
            entry["chosen"] = {"mean": row["auc_percent"], "median": row["auc_median_percent"],
                               "ci": _ci((block or {}).get("auc"))}
        out[kind] = entry
    return out


def _recomputed_auc(evaluation: Evaluation, results: dict) -> dict | None:
    from inference.combinations import evaluate_subsets

    chosen_mask = (results.get("chosen") or {}).get("mask")
    try:
        data = evaluation_probs(evaluation)
    except ValueError:
        return None
    patients = data.patients()
    ens_calls, single_calls = member_calls(evaluation, data, patients)
    out = {}
    for kind, calls in (("ensemble", ens_calls), ("single", single_calls)):
        top = [int(row["mask"]) for row in ((results.get(kind) or {}).get("top") or [])]
        masks = sorted(set(top) | ({int(chosen_mask)} if chosen_mask is not None else set()))
        if not masks:
            continue
        search = evaluate_subsets(calls, patients.truth, masks)
        auc = 100.0 * search.auc                  # (members, sets), in %
        per_set = {int(m): (float(auc[:, i].mean()), float(np.median(auc[:, i]))) for i, m in enumerate(search.masks)}
        entry = {}
        if top:
            entry["top_mean"] = {"mean": float(np.mean([per_set[m][0] for m in top])),
                                 "median": float(np.mean([per_set[m][1] for m in top])), "ci": None}
        if chosen_mask is not None:
            mean, median = per_set[int(chosen_mask)]
            entry["chosen"] = {"mean": mean, "median": median, "ci": None}
        out[kind] = entry
    return out


def set_interval(results: dict, kind: str, mask) -> dict | None:
    """The stored 95 % CIs (in %) of one set's figures for "ensemble" or "single", or None when the analysis
    stored none for that set (it stores them for both top 10s and each single sequence)."""
    if mask is None:
        return None
    return ((results.get("set_intervals") or {}).get(kind) or {}).get(str(int(mask)))


def nested_case_likelihoods(evaluation: Evaluation) -> dict[int, float]:
    """{Case pk: nested sarcoma likelihood in %} of the evaluation's cohort cases (issue 14).

    The share of the ensembles calling the case sarcoma with the top-1 set and thresholds chosen *without the
    case's fold* (``inference.nested``), × 100: an out-of-sample likelihood (the selection is nested, the
    training is not). Empty when the evaluation has none: finished before it was stored, or a fold's
    complement lacked a class (``results["methods_unavailable"]`` says why).
    """
    stored = (evaluation.results or {}).get("nested_likelihood") or {}
    return {int(pk): float(value) for pk, value in stored.items()}


METHOD_CSV_METRICS = ("ss_avg", "sensitivity", "specificity", "accuracy", "auc")


def method_rows(evaluation: Evaluation) -> list[dict]:
    """The three-method table (issue 14) in the order paper-style, training-fold threshold, nested: each row
    {"method", "label", "n_sets", "nested" (bool), metric: {"estimate", "ci_low", "ci_high"[, "median"]}}
    in %; empty for an evaluation that has none (``results["methods_unavailable"]`` says why when it was
    tried)."""
    from inference.nested import METHODS

    methods = (evaluation.results or {}).get("methods") or {}
    return [{"method": name, "nested": name == "nested", **methods[name]} for name in METHODS if name in methods]


def method_csv_rows(evaluation: Evaluation) -> Iterator[list]:
    """The three-method table as CSV rows, header first: figures in % with their 95 % CIs (Wilson for
    sensitivity, specificity and accuracy; DeLong for the AUC, whose estimate is the mean over the ensembles
    and ``auc_median_percent`` the median; seeded patient bootstrap for SS-Avg), and the optimism
    (paper-style − nested SS-Avg, points) on the nested row."""
    results = evaluation.results or {}
    header = ["method", "how_chosen", "n_sets"]
    for metric in METHOD_CSV_METRICS:
        name = "auc_mean" if metric == "auc" else metric
        header += [f"{name}_percent", f"{name}_ci_low_percent", f"{name}_ci_high_percent"]
    header += ["auc_median_percent", "ss_avg_bootstrap_resamples", "ss_avg_bootstrap_seed", "optimism_points"]
    yield header
    for row in method_rows(evaluation):
        cells = [row["method"], row["label"], row["n_sets"]]
        for metric in METHOD_CSV_METRICS:
            block = row.get(metric) or {}
            cells += [_rounded(block.get(key)) for key in ("estimate", "ci_low", "ci_high")]
        auc = row.get("auc") or {}
        cells += [_rounded(auc.get("median")), row["ss_avg"].get("resamples"), row["ss_avg"].get("seed"),
                  _rounded(results.get("optimism_points")) if row["nested"] else ""]
        yield cells


def _rounded(value) -> float | str:
    return "" if value is None else round(float(value), 4)


CSV_METRICS = ("ss_avg", "accuracy", "sensitivity", "specificity", "auc", "auc_median", "ss_avg_min", "ss_avg_max")


def subset_csv_header() -> list[str]:
    header = ["ensemble_rank", "mask", "sequences", "n_sequences", *SEQUENCE_CODES, "coverage", "coverage_percent"]
    header += [f"ensemble_{m}_percent" for m in CSV_METRICS]
    header += ["single_rank", *[f"single_{m}_percent" for m in CSV_METRICS]]
    return header


def subset_csv_rows(evaluation: Evaluation, chunk: int = 2048) -> Iterator[list]:
    """Every evaluated set (32,767 for the 15 codes), best ensemble rank first, as CSV rows (header first).

    Percentages with 4 decimals; a sequence column holds 1 where the set uses that sequence. ``auc`` is the
    mean over the members, ``auc_median`` the median (empty for tables written before it was stored).
    """
    table = store.read_subset_table(evaluation_dir(evaluation) / store.SUBSETS_FILE)
    yield subset_csv_header()
    order = np.argsort(table["ensemble_rank"], kind="stable")
    n_codes = len(SEQUENCE_CODES)
    n_patients = max(1, int(table["n_patients"]))
    for start in range(0, order.size, chunk):
        part = order[start:start + chunk]
        masks = table["masks"][part]
        bits = (masks[:, None] >> np.arange(n_codes)[None, :]) & 1
        metric = {f"{kind}_{m}": (np.round(100.0 * table[f"{kind}_{m}"][part], 4).tolist()
                                  if f"{kind}_{m}" in table else [""] * part.size)   # older tables: no median
                  for kind in ("ensemble", "single") for m in CSV_METRICS}
        for i, k in enumerate(part.tolist()):
            mask = int(masks[i])
            coverage = int(table["coverage"][k])
            row = [int(table["ensemble_rank"][k]), mask,
                   " ".join(code for j, code in enumerate(SEQUENCE_CODES) if bits[i, j]), int(table["sizes"][k]),
                   *bits[i].tolist(), coverage, round(100.0 * coverage / n_patients, 4)]
            row += [metric[f"ensemble_{m}"][i] for m in CSV_METRICS]
            row += [int(table["single_rank"][k]), *[metric[f"single_{m}"][i] for m in CSV_METRICS]]
            yield row


def has_subset_table(evaluation: Evaluation) -> bool:
    return (evaluation_dir(evaluation) / store.SUBSETS_FILE).is_file()


def subset_rank(evaluation: Evaluation, mask: int) -> int | None:
    """1-based rank of a set among the ensembles' 32,767 (None if the table is missing)."""
    return store.subset_rank(evaluation_dir(evaluation) / store.SUBSETS_FILE, mask)


# --- an evaluation's files and what they give ------------------------------------------------------------

def evaluation_dir(evaluation: Evaluation) -> Path:
    return store.evaluation_folder(settings.MEDIA_ROOT, evaluation.pk)


def evaluation_probs(evaluation: Evaluation) -> store.SliceProbabilities:
    """The evaluation's slice-probability store; ValueError (naming the file) when it is missing or malformed."""
    relative = evaluation.store_path or store.probs_relative_path(evaluation.pk)
    return store.read_probs(Path(settings.MEDIA_ROOT) / relative)


def member_calls(evaluation: Evaluation, data: store.SliceProbabilities, patients: store.Patients):
    """(ensemble calls, single-model calls) of every patient's sequences under the evaluation's rule and cutoff."""
    from inference.predictions import evaluation_calls

    cfg = evaluation.config or {}
    return evaluation_calls(data.probs, patients.index, rule=cfg.get("rule", "mean"), cutoff=cfg.get("cutoff", 0.5))


def case_prediction_path(evaluation: Evaluation, case_pk: int) -> Path:
    """Where a new patient's predictions by the evaluation's models are kept (``store.write_case_predictions``)."""
    return store.case_predictions_path(evaluation_dir(evaluation), case_pk)


def mapped_series_with_boxes(case) -> list[tuple]:
    """(series, boxes) of the case's series mapped to a sequence code that have tumour boxes on stored slices.

    The same selection as the cohort build (``imaging.cohorts._plan``), for one case.
    """
    plan = []
    for series in case.series.prefetch_related("boxes").order_by("series_number", "pk"):
        if series.sequence_code not in SEQUENCE_CODES:
            continue
        boxes = [b for b in sorted(series.boxes.all(), key=lambda b: b.slice_index) if b.slice_index < series.n_slices]
        if boxes:
            plan.append((series, boxes))
    return plan


# --- which run or evaluation an ID names ----------------------------------------------------------------

def training_run_for(*, training_job: int | None = None, run: int | None = None):
    """The training run named on the command line.

    ``run``: the TrainingRun's pk. ``training_job``: the pk of the run's training *job* (what ``manage.py
    train`` prints as "job N"); when no run has that job, it is taken as a run pk, so either number works.
    """
    from training.models import TrainingRun

    if (training_job is None) == (run is None):
        raise ValidationError({"training_run": "name the training run: --training-job ID or --run ID"})
    if run is not None:
        found = TrainingRun.objects.filter(pk=run).select_related("cohort").first()
        if found is None:
            raise ValidationError({"training_run": f"no training run {run}"})
        return found
    found = (TrainingRun.objects.filter(job_id=training_job).select_related("cohort").first()
             or TrainingRun.objects.filter(pk=training_job).select_related("cohort").first())
    if found is None:
        raise ValidationError({"training_run": f"no training run has job {training_job}, and no run has id "
                                               f"{training_job}"})
    return found


def latest_evaluation_of(run) -> Evaluation:
    """The run's most recent finished evaluation (its thresholds and subset serve new patients)."""
    evaluation = run.evaluations.filter(status=Evaluation.Status.DONE).order_by("-created_at", "-pk").first()
    if evaluation is None:
        raise ValidationError({"evaluation": f"training run {run.name!r} has no finished evaluation; run "
                                             f"`manage.py evaluate --run {run.pk}` first"})
    return evaluation


# --- heat-maps (issue 18) --------------------------------------------------------------------------------

def case_maps_path(evaluation_pk: int, case_pk: int) -> Path:
    """Where a case's heat-maps by an evaluation's models are kept (``inference.saliency_store``)."""
    return saliency_store.case_maps_path(store.evaluation_folder(settings.MEDIA_ROOT, evaluation_pk), case_pk)


def case_maps(evaluation_pk: int, case_pk: int) -> saliency_store.CaseMaps | None:
    """A case's heat-maps, or None where the evaluation has none for it."""
    return saliency_store.read_case_maps(case_maps_path(evaluation_pk, case_pk))


def series_with_maps(evaluation_pk: int, case_pk: int, codes=None) -> set[int]:
    """The series of a case that have heat-maps (reads two small arrays of the file, not the maps); with
    ``codes`` (sequence codes), only series of those sequences."""
    found = saliency_store.series_codes(case_maps_path(evaluation_pk, case_pk))
    if codes is None:
        return set(found)
    wanted = {SEQUENCE_CODES.index(code) for code in codes if code in SEQUENCE_CODES}
    return {series for series, sequences in found.items() if sequences & wanted}


def series_maps(evaluation_pk: int, case_pk: int, series_pk: int) -> saliency_store.SeriesMaps | None:
    return saliency_store.read_series_maps(case_maps_path(evaluation_pk, case_pk), series_pk)


def cases_with_maps(evaluation: Evaluation) -> set[int]:
    return saliency_store.stored_cases(evaluation_dir(evaluation))


HEAT_MAPS_KIND = "heat_maps"


def active_heat_maps_job(evaluation: Evaluation) -> Job | None:
    """The evaluation's heat-maps job still queued or running with a live worker: the page links it instead of
    offering a second start, and a second start is refused. A job whose worker was lost is not (its page
    resumes it; a new start works too)."""
    return (Job.objects.filter(kind=HEAT_MAPS_KIND, status__in=(JobStatus.QUEUED, JobStatus.RUNNING),
                               params__evaluation_pk=evaluation.pk)
            .exclude(Job.lost_q()).order_by("-created_at", "-pk").first())
