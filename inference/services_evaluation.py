"""The "evaluation" job of a trained run (METHOD §6–§9), and a coordinator's choice of sequence set.

An evaluation is one job on the gpu queue (``evaluation_run``), in two phases:

1. **Predictions.** Every model predicts every slice of its held-out fold. A finished model already left
   those predictions in its checkpoint folder (``heldout_predictions.npz``, written by
   ``training.fit.train_one_model`` with the final weights); they are *reused* when the folder's
   ``state.json`` says finished and names the cohort store's content hash, and the file's rows, case ids and
   sequence indexes are exactly the model's held-out slices in the current store. Otherwise, or with
   ``repredict=True`` (``manage.py evaluate --repredict``), the model's ``.keras`` file predicts them. Each
   finished model is kept as a part file, so a resumed job skips it; at the end the parts become the
   evaluation's slice-probability store (``inference.services``; ``probs.npz``).
2. **Analysis** (NumPy, seconds): the leave-one-repeat-out ensembles and the sequence calls
   (``evaluation.config["rule"]``: ``mean`` or ``majority``), the full search over the 32,767 sequence sets
   for the ensembles and for the single models, the top-10 tables and means (optimistic and honest
   thresholds), the per-sequence Fig. 1 data, and the ROC curves and coverage of the chosen set. Stored in
   ``Evaluation.results``; the full per-set table goes to ``subsets.npz`` for the CSV download.
   ``Evaluation.chosen_subset`` is the top-ranked set, and every case of the cohort gets a ``CaseAIResult``
   (sarcoma likelihood and per-sequence %, METHOD §9).

``evaluation_choose_subset`` lets a coordinator pick another set afterwards: the thresholds, ROC and every
case's result (new patients' too) are recomputed from the stored probabilities, without any model.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core.constants import SEQUENCE_CODES
from inference import services
from inference.models import CaseAIResult, Evaluation
from jobs import services as jobs
from jobs.models import Job

Status = Evaluation.Status
TOP_N = 10
PREDICT_BATCH = 128
PARTS_DIR = "parts"


# --- starting -------------------------------------------------------------------------------------------

def evaluation_config(*, rule: str = "mean", cutoff: float = 0.5, repredict: bool = False) -> dict:
    """The evaluation's choices (METHOD §7.2): sequence-call rule and cutoff, and whether to re-predict."""
    from inference.predictions import SEQUENCE_RULES

    if rule not in SEQUENCE_RULES:
        raise ValidationError({"rule": f"{rule!r} is not a sequence-call rule; use one of {', '.join(SEQUENCE_RULES)}"})
    try:
        cutoff = float(cutoff)
    except (TypeError, ValueError):
        raise ValidationError({"cutoff": f"{cutoff!r} is not a number"}) from None
    if not 0.0 < cutoff < 1.0:
        raise ValidationError({"cutoff": f"{cutoff} must lie strictly between 0 and 1"})
    return {"rule": rule, "cutoff": cutoff, "repredict": bool(repredict)}


def check_run_trained(run) -> None:
    """A run can be evaluated once every model is trained and it has at least 2 repeats (METHOD §6)."""
    from training.models import FoldSplit, TrainedModel

    total = run.models.count()
    done = run.models.filter(status=TrainedModel.Status.DONE).count()
    if total == 0:
        raise ValidationError({"training_run": f"training run {run.name!r} has no models"})
    if done < total:
        raise ValidationError({"training_run": f"training run {run.name!r}: {total - done} of {total} models are "
                                               "not trained yet (see its grid); evaluate once all are done"})
    if run.repeats < 2:
        raise ValidationError({"training_run": f"training run {run.name!r} has 1 repeat; the leave-one-repeat-out "
                                               "ensembles (METHOD §6) need at least 2"})
    if not FoldSplit.objects.filter(cohort_id=run.cohort_id).exists():
        raise ValidationError({"training_run": f"cohort {run.cohort.name} has no fold split"})


@transaction.atomic
def evaluation_start(*, run, rule: str = "mean", cutoff: float = 0.5, repredict: bool = False, name: str = "",
                     user=None, enqueue: bool = True) -> Evaluation:
    """Create an evaluation of a fully trained run and its job (gpu queue; queued on commit)."""
    config = evaluation_config(rule=rule, cutoff=cutoff, repredict=repredict)
    check_run_trained(run)
    user = user if user is not None and user.is_authenticated else None
    evaluation = Evaluation.objects.create(
        name=(name or f"{run.name} · {rule}")[:100], training_run=run, config=config, created_by=user)
    evaluation.job = jobs.job_create(kind="evaluation", params={"evaluation_pk": evaluation.pk}, user=user,
                                     total=run.models.count() + 2, enqueue=enqueue)
    evaluation.save(update_fields=["job"])
    return evaluation


# --- the job's runner ---------------------------------------------------------------------------------------

def evaluation_run(job: Job, ctx) -> None:
    """Runner of the "evaluation" job: collect the out-of-fold predictions, then analyse them."""
    evaluation = (Evaluation.objects.select_related("training_run__cohort")
                  .filter(pk=job.params.get("evaluation_pk")).first())
    if evaluation is None or evaluation.training_run is None:
        raise jobs.JobError("the evaluation, or its training run, no longer exists")
    Evaluation.objects.filter(pk=evaluation.pk).update(status=Status.RUNNING)
    try:
        if not _probs_ready(evaluation):
            collect_predictions(evaluation, ctx)
        ctx.check_cancel()
        analyse(evaluation, ctx)
    except (jobs.JobCancelled, KeyboardInterrupt):
        Evaluation.objects.filter(pk=evaluation.pk).update(status=Status.CANCELLED)
        raise
    except BaseException:
        Evaluation.objects.filter(pk=evaluation.pk).update(status=Status.FAILED)
        raise


def _probs_ready(evaluation: Evaluation) -> bool:
    if not evaluation.store_path:
        return False
    try:
        services.evaluation_probs(evaluation)
    except ValueError:
        return False
    return True


def collect_predictions(evaluation: Evaluation, ctx) -> services.SliceProbabilities:
    """Phase 1: every model's P(sarcoma) for its held-out slices → the evaluation's probs.npz."""
    from training.models import FoldSplit, TrainedModel
    from training.services import open_cohort_store

    run = evaluation.training_run
    try:
        store = open_cohort_store(run.cohort)
    except (ValidationError, ValueError) as exc:
        raise jobs.JobError(f"cohort {run.cohort.name}: its array store cannot be opened ({_message(exc)})") from None
    split = FoldSplit.objects.filter(cohort_id=run.cohort_id).first()
    if split is None:
        raise jobs.JobError(f"cohort {run.cohort.name} has no fold split")
    fold_of = {int(k): int(v) for k, v in split.assignment.items()}
    cases = store.case_list()
    lacking = [int(c) for c in cases if int(c) not in fold_of]
    if lacking:
        raise jobs.JobError(f"cohort {run.cohort.name}: cases {lacking[:5]} of the array store have no fold")
    slice_fold = np.array([fold_of[int(c)] for c in cases], dtype=np.int64)[np.searchsorted(cases, store.case_ids)]

    models = list(run.models.order_by("repeat", "fold"))
    unfinished = [m for m in models if m.status != TrainedModel.Status.DONE]
    if unfinished:
        raise jobs.JobError(f"training run {run.name!r}: {len(unfinished)} of {len(models)} models are not trained")
    grid = {(m.repeat, m.fold) for m in models}
    expected = {(r, f) for r in range(run.repeats) for f in range(split.n_folds)}
    if grid != expected:
        raise jobs.JobError(f"training run {run.name!r}: its models do not form {run.repeats} repeats × "
                            f"{split.n_folds} folds")
    changed = [m for m in models if m.card.get("data_hash") not in (None, store.content_hash)]
    if changed:
        raise jobs.JobError(f"cohort {run.cohort.name}: its array store changed since {len(changed)} model(s) were "
                            "trained (content hash differs from their model cards)")

    parts = services.evaluation_dir(evaluation) / PARTS_DIR
    probs = np.full((run.repeats, store.n_slices), np.nan, dtype=np.float32)
    sources: Counter = Counter()
    repredict = bool(evaluation.config.get("repredict"))
    ctx.progress(done=0, total=len(models) + 2, step=f"predictions of {len(models)} models", force=True)
    for i, model in enumerate(models):
        ctx.check_cancel()
        rows = np.flatnonzero(slice_fold == model.fold)
        part = parts / f"r{model.repeat:02d}-f{model.fold}.npz"
        p, source = _read_part(part, rows.size)
        if p is None:
            p = None if repredict else stored_heldout_predictions(model, store, rows)
            source = "reused"
            if p is None:
                p, source = _predict_rows(model, store, rows), "predicted"
            services.save_npz_atomic(part, p=p.astype(np.float32), source=np.str_(source))
        probs[model.repeat, rows] = p
        sources[source] += 1
        ctx.progress(done=i + 1, step=f"repeat {model.repeat + 1} fold {model.fold + 1}: {source} "
                                      f"{rows.size} held-out slice predictions")
    data = services.SliceProbabilities(
        probs=probs, rows=np.arange(store.n_slices, dtype=np.int64), case_id=store.case_ids,
        sequence_idx=store.sequence_idx, fold=slice_fold, label=store.labels, store_hash=store.content_hash,
        n_folds=split.n_folds)
    services.write_probs(services.evaluation_dir(evaluation) / services.PROBS_FILE, data)
    evaluation.store_path = services.probs_relative_path(evaluation)
    Evaluation.objects.filter(pk=evaluation.pk).update(store_path=evaluation.store_path)
    ctx.set_result(predictions={"reused": sources["reused"], "predicted": sources["predicted"]},
                   slices=store.n_slices)
    shutil.rmtree(parts, ignore_errors=True)
    return data


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc)


def _read_part(path: Path, n: int) -> tuple[np.ndarray | None, str]:
    if not path.is_file():
        return None, ""
    try:
        with np.load(path) as saved:
            p, source = saved["p"], str(saved["source"])
    except (OSError, KeyError, ValueError):
        return None, ""
    return (p, source) if p.shape == (n,) else (None, "")


def stored_heldout_predictions(model, store, rows: np.ndarray) -> np.ndarray | None:
    """The model's own held-out predictions from its checkpoint folder, if they match ``rows`` exactly.

    Match = state.json says finished and names this store's content hash, and the file's rows, case ids and
    sequence indexes equal the store's at ``rows`` (the model's held-out fold). Anything else: None.
    """
    from training.fit import PREDICTIONS_FILE, STATE_FILE
    from training.services import checkpoint_dir_for

    folder = checkpoint_dir_for(model)
    try:
        state = json.loads((folder / STATE_FILE).read_text())
        if not state.get("finished") or state.get("store_hash") != store.content_hash:
            return None
        with np.load(folder / PREDICTIONS_FILE) as saved:
            if not (np.array_equal(saved["rows"], rows) and np.array_equal(saved["case_id"], store.case_ids[rows])
                    and np.array_equal(saved["sequence_idx"], store.sequence_idx[rows])):
                return None
            p = np.asarray(saved["p_sarcoma"], dtype=np.float32)
    except (OSError, KeyError, ValueError):
        return None
    if p.shape != rows.shape or not np.all(np.isfinite(p)) or p.min(initial=0) < 0 or p.max(initial=0) > 1:
        return None
    return p


def model_file(model) -> Path:
    path = Path(settings.MEDIA_ROOT) / model.model_path if model.model_path else None
    if path is None or not path.is_file():
        raise jobs.JobError(f"model repeat {model.repeat + 1} fold {model.fold + 1} of run {model.run_id}: its file "
                            f"{model.model_path or '(none)'} is missing; resume the training run to retrain it")
    return path


def _predict_rows(model, store, rows: np.ndarray) -> np.ndarray:
    from training.fit import predict_store_rows

    return predict_store_rows(model_file(model), store, rows, batch_size=PREDICT_BATCH)


# --- phase 2: the analysis ---------------------------------------------------------------------------------

def _progress(ctx, **kwargs) -> None:
    if ctx is not None:
        ctx.progress(force=True, **kwargs)


def _search(calls, patients, note: dict, kind: str):
    """The full 32,767-set search; honest thresholds for the top sets where every fold allows them."""
    from inference.combinations import search_combinations

    try:
        return search_combinations(calls, patients.truth, folds=patients.fold, honest_top=TOP_N)
    except ValueError as exc:   # a fold's complement lacks a class: no honest figure, the rest stands
        note[f"{kind}_honest_unavailable"] = str(exc)
        return search_combinations(calls, patients.truth)


def _calls(evaluation: Evaluation, data: services.SliceProbabilities, patients):
    from inference.predictions import evaluation_calls

    cfg = evaluation.config or {}
    return evaluation_calls(data.probs, patients.index, rule=cfg.get("rule", "mean"), cutoff=cfg.get("cutoff", 0.5))


def _percent(values: dict) -> dict:
    return {(f"{k}_percent" if k != "n_sets" else k): (100.0 * v if k != "n_sets" else v) for k, v in values.items()}


def analyse(evaluation: Evaluation, ctx=None) -> Evaluation:
    """Phase 2: ensembles, sequence calls, the two searches, tables, the chosen set, every case's result."""
    from inference.combinations import per_sequence_table

    data = services.evaluation_probs(evaluation)
    patients = data.patients()
    n_models = data.n_repeats * data.n_folds
    _progress(ctx, done=n_models, total=n_models + 2, step="ensembles, sequence calls and the search over all "
                                                             "32,767 sequence sets")
    ens_calls, single_calls = _calls(evaluation, data, patients)
    note: dict = {}
    began = time.monotonic()
    ens = _search(ens_calls, patients, note, "ensemble")
    single = _search(single_calls, patients, note, "single")
    seconds = time.monotonic() - began
    write_subset_table(services.evaluation_dir(evaluation) / services.SUBSETS_FILE, ens, single)
    run = evaluation.training_run
    synthetic = run is not None and not run.cohort.cases.filter(is_synthetic=False).exists()
    results = {
        "synthetic": synthetic,
        "n_patients": int(patients.case_ids.size), "n_sarcoma": int(patients.truth.sum()),
        "n_leiomyoma": int((~patients.truth).sum()), "n_slices": data.n_slices, "n_repeats": data.n_repeats,
        "n_folds": data.n_folds, "n_subsets": int(ens.masks.size), "store_hash": data.store_hash,
        "rule": (evaluation.config or {}).get("rule", "mean"), "cutoff": (evaluation.config or {}).get("cutoff", 0.5),
        "search_seconds": round(seconds, 3),
        "ensemble": {"top_mean": _percent(ens.top_mean(TOP_N)), "top": ens.rows(limit=TOP_N)},
        "single": {"top_mean": _percent(single.top_mean(TOP_N)), "top": single.rows(limit=TOP_N)},
        "per_sequence": per_sequence_table(ens, single),
        "top_mask": int(ens.top(1)[0]),
        **note,
    }
    if ctx is not None and ctx.job.result.get("predictions"):
        results["predictions"] = ctx.job.result["predictions"]
    evaluation.results = results
    _progress(ctx, done=n_models + 1, step="sarcoma likelihood of every case")
    apply_subset(evaluation, data=data, patients=patients, calls=(ens_calls, single_calls),
                 mask=results["top_mask"], rank=1)
    _progress(ctx, done=n_models + 2, step="finished")
    return evaluation


def write_subset_table(path: Path, ens, single) -> None:
    """Per-set figures of both searches (fractions), indexed like ``masks``, for the CSV download."""
    if not np.array_equal(ens.masks, single.masks):
        raise ValueError("the ensemble and single-model searches evaluated different sets")
    arrays = {"masks": ens.masks, "sizes": ens.sizes, "coverage": ens.coverage,
              "n_patients": np.int64(ens.n_patients), "codes": np.array(ens.codes)}
    for kind, search in (("ensemble", ens), ("single", single)):
        rank = np.empty(search.masks.size, dtype=np.int32)
        rank[search.order] = np.arange(1, search.masks.size + 1, dtype=np.int32)
        ss = search.ss_avg
        arrays |= {f"{kind}_rank": rank, f"{kind}_ss_avg": search.mean_ss_avg,
                   f"{kind}_accuracy": search.mean_accuracy, f"{kind}_sensitivity": search.mean_sensitivity,
                   f"{kind}_specificity": search.mean_specificity, f"{kind}_auc": search.mean_auc,
                   f"{kind}_ss_avg_min": ss.min(axis=0), f"{kind}_ss_avg_max": ss.max(axis=0)}
    services.save_npz_atomic(path, **arrays)


def subset_rank(evaluation: Evaluation, mask: int) -> int | None:
    """1-based rank of a set among the ensembles' 32,767 (None if the table is missing)."""
    path = services.evaluation_dir(evaluation) / services.SUBSETS_FILE
    if not path.is_file():
        return None
    with np.load(path) as table:
        at = np.searchsorted(table["masks"], mask)
        if at < table["masks"].size and int(table["masks"][at]) == mask:
            return int(table["ensemble_rank"][at])
    return None


def _one_set(calls, patients, mask: int):
    from inference.combinations import evaluate_subsets

    try:
        return evaluate_subsets(calls, patients.truth, [mask], folds=patients.fold, honest_top=1)
    except ValueError:
        return evaluate_subsets(calls, patients.truth, [mask])


def _row(search) -> dict:
    row = search.rows()[0]
    row.pop("rank", None)
    return row


def apply_subset(evaluation: Evaluation, *, data, patients, calls, mask: int, rank: int | None,
                 user=None) -> Evaluation:
    """Make ``mask`` the evaluation's set: its thresholds, ROC, coverage, and every case's likelihood."""
    from inference.figures import roc_points
    from inference.predictions import likelihood_figures, patient_scores
    from inference.subsets import mask_codes

    ens_calls, single_calls = calls
    ens_one, single_one = _one_set(ens_calls, patients, mask), _one_set(single_calls, patients, mask)
    thresholds = ens_one.thresholds_for(mask)
    codes = list(mask_codes(mask))
    size = len(codes)
    figures = likelihood_figures(ens_calls, mask, thresholds)
    chosen = {
        "mask": mask, "codes": codes, "rank": rank, "thresholds": thresholds.tolist(),
        "coverage": int(ens_one.coverage[0]),
        "coverage_percent": 100.0 * int(ens_one.coverage[0]) / max(1, patients.case_ids.size),
        "ensemble": _row(ens_one), "single": _row(single_one),
        "roc": {"codes": codes,
                "ensemble": roc_points(patient_scores(ens_calls, mask), patients.truth, max_score=size),
                "single": roc_points(patient_scores(single_calls, mask), patients.truth, max_score=size),
                "ensemble_auc_mean": float(ens_one.mean_auc[0]), "single_auc_mean": float(single_one.mean_auc[0])},
        "chosen_by": getattr(user, "username", "") or "default (top-ranked)",
        "chosen_at": timezone.now().isoformat(timespec="seconds"),
    }
    with transaction.atomic():
        Evaluation.objects.select_for_update().filter(pk=evaluation.pk).first()
        evaluation.results = services.json_safe({**(evaluation.results or {}), "chosen": chosen})
        evaluation.chosen_subset = codes
        evaluation.status = Status.DONE
        evaluation.save(update_fields=["results", "chosen_subset", "status"])
        _write_case_results(evaluation, patients, figures, codes)
        from inference.services_prediction import deployment_results_refresh

        deployment_results_refresh(evaluation)
    return evaluation


def _write_case_results(evaluation: Evaluation, patients, figures, codes: list[str]) -> None:
    n_members = int(figures.calls.shape[0])
    existing = {r.case_id: r for r in CaseAIResult.objects.filter(evaluation=evaluation, is_deployment=False)}
    new, changed = [], []
    for p, case_pk in enumerate(patients.case_ids.tolist()):
        shown = figures.for_patient(p)
        values = {"likelihood": round(shown["sarcoma_likelihood_percent"], 4),
                  "per_sequence": {k: round(v, 4) for k, v in shown["sequence_percent"].items()},
                  "subset": codes, "n_ensembles": n_members}
        row = existing.get(case_pk)
        if row is None:
            new.append(CaseAIResult(evaluation=evaluation, case_id=case_pk, is_deployment=False, **values))
        else:
            for key, value in values.items():
                setattr(row, key, value)
            changed.append(row)
    CaseAIResult.objects.bulk_create(new, batch_size=500)
    CaseAIResult.objects.bulk_update(changed, ["likelihood", "per_sequence", "subset", "n_ensembles"], batch_size=500)


# --- a coordinator's choice ---------------------------------------------------------------------------------

def evaluation_choose_subset(*, evaluation: Evaluation, subset, user=None) -> Evaluation:
    """Use another sequence set for the likelihoods (METHOD §9: default top-ranked; a coordinator may choose).

    ``subset``: sequence codes (or a mask). Refused while the evaluation is not done, and once a reader study
    that shows this evaluation has been opened (readers may have seen its likelihoods).
    """
    from inference.subsets import as_mask

    if evaluation.status != Status.DONE:
        raise ValidationError({"subset": f"evaluation {evaluation.name!r} is {evaluation.status}; choose a set once "
                                         "it is done"})
    try:
        mask = as_mask(subset)
    except ValueError as exc:
        raise ValidationError({"subset": str(exc)}) from None
    studies = getattr(evaluation, "reader_studies", None)
    opened = list(studies.exclude(status="draft").values_list("name", flat=True)) if studies is not None else []
    if opened:
        raise ValidationError({"subset": f"reader studies already opened show this evaluation ({', '.join(opened)}); "
                                         "its results cannot change now — start a new evaluation instead"})
    try:
        data = services.evaluation_probs(evaluation)
    except ValueError as exc:
        raise ValidationError({"subset": str(exc)}) from None
    patients = data.patients()
    from inference.subsets import mask_vector

    if not patients.index.available()[:, mask_vector(mask, len(SEQUENCE_CODES))].any():
        raise ValidationError({"subset": "no patient of the cohort has any of these sequences; choose a set that "
                                         "covers some patients"})
    return apply_subset(evaluation, data=data, patients=patients, calls=_calls(evaluation, data, patients),
                        mask=mask, rank=subset_rank(evaluation, mask), user=user)
