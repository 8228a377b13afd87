"""The runners of the inference job kinds (``inference.kinds``), both on the gpu queue: the work that happens
inside a Job, outside any transaction, resumable, reporting progress through the job's context.

Why apart from ``inference.services``: a runner is long, loads models and reports progress; a use case is
short and holds a row lock. A runner reads through ``selectors``, keeps its files through ``store`` and saves
through ``services``, and only ``runners`` import the model code (inside functions: the web stays light).

**evaluation** (``evaluation_run``, METHOD §6–§9), in two phases:

1. **Predictions.** Every model predicts every slice of its held-out fold. A finished model already left
   those predictions in its checkpoint folder (``heldout_predictions.npz``, written by
   ``training.fit.train_one_model`` with the final weights); they are *reused* when the folder's
   ``state.json`` says finished and names the cohort store's content hash, and the file's rows, case ids and
   sequence indexes are exactly the model's held-out slices in the current store. Otherwise, or with
   ``repredict=True`` (``manage.py evaluate --repredict``), the model's ``.keras`` file predicts them. Each
   finished model is kept as a part file, so a resumed job skips it; at the end the parts become the
   evaluation's slice-probability store (``inference.store``; ``probs.npz``).
2. **Analysis** (NumPy, seconds): the leave-one-repeat-out ensembles and the sequence calls
   (``evaluation.config["rule"]``: ``mean`` or ``majority``), the full search over the 32,767 sequence sets
   for the ensembles and for the single models, the top-10 tables and means (optimistic and honest
   thresholds; AUC mean and median over the members), the per-sequence Fig. 1 data, and the ROC curves and
   coverage of the chosen set. Then the honest evaluation (issue 14, ``inference.nested``): the three methods
   (paper-style, training-fold threshold, nested: one more full search per fold) with 95 % CIs, the
   optimism, each case's nested likelihood, and CIs for the top-10 means and for the sets the page shows.
   Stored in ``Evaluation.results`` (``services.evaluation_finish``); the full per-set table goes to
   ``subsets.npz`` for the CSV download. ``Evaluation.chosen_subset`` is the top-ranked set, and every case
   of the cohort gets a ``CaseAIResult`` (sarcoma likelihood and per-sequence %, METHOD §9).

**case_prediction** (``case_prediction_run``, METHOD §9, deployment): a case imported after training. Its
tumour slices are cropped exactly as the cohort build does (``imaging.cohorts.series_uint8_slices`` windows a
series to 8 bits, ``imaging.crops.tumour_crop`` crops a square around each tumour box with the run cohort's
margin and resizes it to the run's input size), all R × F models predict every crop, and the evaluation gets
a ``CaseAIResult`` (``is_deployment=True``): each repeat's slice probability is the mean of its F fold
models, then the same leave-one-repeat-out ensembles, sequence calls and scores as the cross-validation, with
the evaluation's chosen set and its per-ensemble thresholds (``inference.predictions.deployment_figures``).
The predictions are kept (``store.write_case_predictions``), so a later change of the evaluation's set
recomputes the case's result without any model, and predicting the same crops again reuses them.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError

from core.constants import SEQUENCE_CODES
from inference import selectors, services, store
from inference.models import Evaluation
from jobs import services as jobs
from jobs.models import Job, JobStatus

TOP_N = 10
PREDICT_BATCH = 128
ANALYSIS_STEPS = 3            # progress steps after the predictions: search, honest evaluation, per case
BOOTSTRAP_RESAMPLES = 2000    # SS-Avg intervals: seeded patient bootstrap (issue 14)
BOOTSTRAP_SEED = 0


# --- the evaluation job -------------------------------------------------------------------------------------

def evaluation_run(job: Job, ctx) -> None:
    """Runner of the "evaluation" job: collect the out-of-fold predictions, then analyse them."""
    evaluation = (Evaluation.objects.select_related("training_run__cohort")
                  .filter(pk=job.params.get("evaluation_pk")).first())
    if evaluation is None or evaluation.training_run is None:
        raise jobs.JobError("the evaluation, or its training run, no longer exists")
    with _status_follows_job(evaluation):
        if not _probs_ready(evaluation):
            collect_predictions(evaluation, ctx)
        ctx.check_cancel()
        analyse(evaluation, ctx)


@contextmanager
def status_follows_job(follow) -> Iterator[None]:
    """A job's product (evaluation, external validation) is running while its runner is, and ends as
    ``jobs.services.job_run`` ends the job for what the runner raised: cancelled (a cancel, or Ctrl-C under
    ``--inline``) or failed (anything else). ``follow(job_status)`` writes the product's status."""
    follow(JobStatus.RUNNING)
    try:
        yield
    except (jobs.JobCancelled, KeyboardInterrupt):
        follow(JobStatus.CANCELLED)
        raise
    except BaseException:
        follow(JobStatus.FAILED)
        raise


def _status_follows_job(evaluation: Evaluation):
    return status_follows_job(lambda status: services.evaluation_status_follow(evaluation=evaluation,
                                                                                job_status=status))


def _probs_ready(evaluation: Evaluation) -> bool:
    if not evaluation.store_path:
        return False
    try:
        selectors.evaluation_probs(evaluation)
    except ValueError:
        return False
    return True


def collect_predictions(evaluation: Evaluation, ctx) -> store.SliceProbabilities:
    """Phase 1: every model's P(sarcoma) for its held-out slices → the evaluation's probs.npz."""
    from training.models import TrainedModel

    run = evaluation.training_run
    cohort_store, split = _cohort_store_and_split(run)
    fold_of = {int(k): int(v) for k, v in split.assignment.items()}
    cases = cohort_store.case_list()
    lacking = [int(c) for c in cases if int(c) not in fold_of]
    if lacking:
        raise jobs.JobError(f"cohort {run.cohort.name}: cases {lacking[:5]} of the array store have no fold")
    slice_fold = np.array([fold_of[int(c)] for c in cases], dtype=np.int64)[np.searchsorted(cases,
                                                                                           cohort_store.case_ids)]

    models = list(run.models.order_by("repeat", "fold"))
    unfinished = [m for m in models if m.status != TrainedModel.Status.DONE]
    if unfinished:
        raise jobs.JobError(f"training run {run.name!r}: {len(unfinished)} of {len(models)} models are not trained")
    grid = {(m.repeat, m.fold) for m in models}
    expected = {(r, f) for r in range(run.repeats) for f in range(split.n_folds)}
    if grid != expected:
        raise jobs.JobError(f"training run {run.name!r}: its models do not form {run.repeats} repeats × "
                            f"{split.n_folds} folds")
    changed = [m for m in models if m.card.get("data_hash") not in (None, cohort_store.content_hash)]
    if changed:
        raise jobs.JobError(f"cohort {run.cohort.name}: its array store changed since {len(changed)} model(s) were "
                            "trained (content hash differs from their model cards)")

    folder = selectors.evaluation_dir(evaluation)
    parts = folder / store.PARTS_DIR
    probs = np.full((run.repeats, cohort_store.n_slices), np.nan, dtype=np.float32)
    sources: Counter = Counter()
    repredict = bool(evaluation.config.get("repredict"))
    ctx.progress(done=0, total=len(models) + ANALYSIS_STEPS, step=f"predictions of {len(models)} models",
                 force=True)
    for i, model in enumerate(models):
        ctx.check_cancel()
        rows = np.flatnonzero(slice_fold == model.fold)
        part = store.model_part_path(parts, model.repeat, model.fold)
        p, source = store.read_model_part(part, rows.size)
        if p is None:
            p = None if repredict else stored_heldout_predictions(model, cohort_store, rows)
            source = "reused"
            if p is None:
                p, source = _predict_rows(model, cohort_store, rows), "predicted"
            store.write_model_part(part, p, source)
        probs[model.repeat, rows] = p
        sources[source] += 1
        ctx.progress(done=i + 1, step=f"repeat {model.repeat + 1} fold {model.fold + 1}: {source} "
                                      f"{rows.size} held-out slice predictions")
    data = store.SliceProbabilities(
        probs=probs, rows=np.arange(cohort_store.n_slices, dtype=np.int64), case_id=cohort_store.case_ids,
        sequence_idx=cohort_store.sequence_idx, fold=slice_fold, label=cohort_store.labels,
        store_hash=cohort_store.content_hash, n_folds=split.n_folds)
    store.write_probs(folder / store.PROBS_FILE, data)
    evaluation.store_path = store.probs_relative_path(evaluation.pk)
    Evaluation.objects.filter(pk=evaluation.pk).update(store_path=evaluation.store_path)
    ctx.set_result(predictions={"reused": sources["reused"], "predicted": sources["predicted"]},
                   slices=cohort_store.n_slices)
    shutil.rmtree(parts, ignore_errors=True)
    return data


def _cohort_store_and_split(run):
    from training.models import FoldSplit
    from training.services import open_cohort_store

    try:
        cohort_store = open_cohort_store(run.cohort)
    except (ValidationError, ValueError) as exc:
        raise jobs.JobError(f"cohort {run.cohort.name}: its array store cannot be opened ({_message(exc)})") from None
    split = FoldSplit.objects.filter(cohort_id=run.cohort_id).first()
    if split is None:
        raise jobs.JobError(f"cohort {run.cohort.name} has no fold split")
    return cohort_store, split


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc)


def stored_heldout_predictions(model, cohort_store, rows: np.ndarray) -> np.ndarray | None:
    """The model's own held-out predictions from its checkpoint folder, if they match ``rows`` of the store
    exactly (``store.read_heldout_predictions``); None otherwise."""
    from training.services import checkpoint_dir_for

    return store.read_heldout_predictions(
        checkpoint_dir_for(model), store_hash=cohort_store.content_hash, rows=rows,
        case_ids=cohort_store.case_ids[rows], sequence_idx=cohort_store.sequence_idx[rows])


def model_file(model) -> Path:
    path = Path(settings.MEDIA_ROOT) / model.model_path if model.model_path else None
    if path is None or not path.is_file():
        raise jobs.JobError(f"model repeat {model.repeat + 1} fold {model.fold + 1} of run {model.run_id}: its file "
                            f"{model.model_path or '(none)'} is missing; resume the training run to retrain it")
    return path


def _predict_rows(model, cohort_store, rows: np.ndarray) -> np.ndarray:
    from training.fit import predict_store_rows

    return predict_store_rows(model_file(model), cohort_store, rows, batch_size=PREDICT_BATCH)


# --- phase 2: the analysis ---------------------------------------------------------------------------------

def _progress(ctx, **kwargs) -> None:
    if ctx is not None:
        ctx.progress(force=True, **kwargs)


def _search(calls, patients: store.Patients, note: dict, kind: str):
    """The full 32,767-set search; honest thresholds for the top sets where every fold allows them."""
    from inference.combinations import search_combinations

    try:
        return search_combinations(calls, patients.truth, folds=patients.fold, honest_top=TOP_N)
    except ValueError as exc:   # a fold's complement lacks a class: no honest figure, the rest stands
        note[f"{kind}_honest_unavailable"] = str(exc)
        return search_combinations(calls, patients.truth)


def _percent(values: dict) -> dict:
    return {(f"{k}_percent" if k != "n_sets" else k): (100.0 * v if k != "n_sets" else v) for k, v in values.items()}


def _interval_block(intervals) -> dict:
    """``inference.nested.MetricsWithIntervals`` as the ``evaluate_predictions --json`` block, in %:
    ``{metric: {"estimate", "ci_low", "ci_high"}}``; ``ss_avg`` adds ``resamples`` and ``seed``, ``auc`` (None
    without scores) adds ``median``."""
    out = intervals.as_dict()
    for metric, block in out.items():
        if block is not None:
            out[metric] = {k: (100.0 * v if k in ("estimate", "ci_low", "ci_high", "median") and v is not None
                               else v) for k, v in block.items()}
    return out


def intervals_in_percent(calls, truth, scores) -> dict:
    """95 % CIs (in %) of calls (… , P) bool against truth; AUC from scores (…, P) when given."""
    from inference.nested import metrics_with_intervals

    return _interval_block(metrics_with_intervals(calls, truth, scores=scores, resamples=BOOTSTRAP_RESAMPLES,
                                                  seed=BOOTSTRAP_SEED))


def _search_intervals(calls, search, patients: store.Patients, masks: list[int]) -> tuple[dict, dict]:
    """95 % CIs of one search: (the top-10 mean, {str(mask): one set's figures}) for ``masks``, in %.

    The top-10 mean pools the 10 sets' patient calls (k, M, P) and their scores (the AUC's estimate is then
    the mean over sets and members, as ``top_mean``'s; its ``median`` is replaced by the stored one: the mean
    over the sets of each set's median over the members). A set with training-fold thresholds (the top 10)
    also gets ``honest_ss_avg``: the bootstrap interval of its honest SS-Avg (and so does the top-10 mean)."""
    from inference.combinations import honest_set_calls, set_calls

    truth = patients.truth
    best = [int(m) for m in search.top(TOP_N)]
    top_calls, top_scores = set_calls(calls, search, best)
    top_block = intervals_in_percent(top_calls, truth, top_scores.reshape(-1, top_scores.shape[-1]))
    top_block["auc"]["median"] = 100.0 * float(search.median_auc(search.order[:TOP_N]).mean())
    set_calls_, set_scores = set_calls(calls, search, masks)
    per_set = {str(m): intervals_in_percent(set_calls_[i], truth, set_scores[i]) for i, m in enumerate(masks)}
    honest_masks, honest_calls = honest_set_calls(calls, search, patients.fold)
    if sorted(honest_masks.tolist()) == sorted(best):
        top_block["honest_ss_avg"] = intervals_in_percent(honest_calls, truth, None)["ss_avg"]
    for i, mask in enumerate(honest_masks.tolist()):
        if str(mask) in per_set:
            per_set[str(mask)]["honest_ss_avg"] = intervals_in_percent(honest_calls[i], truth, None)["ss_avg"]
    return top_block, per_set


def _interval_results(ens_calls, single_calls, ens, single, patients: store.Patients, note: dict) -> dict:
    """CIs for every figure the evaluation page shows from the two searches: the top-10 means, and each set of
    either top 10 and each single sequence (both kinds). A cohort too small for an interval leaves a note."""
    masks = sorted({int(m) for m in ens.top(TOP_N)} | {int(m) for m in single.top(TOP_N)}
                   | {1 << i for i in range(len(ens.codes))})
    try:
        ens_top, ens_sets = _search_intervals(ens_calls, ens, patients, masks)
        single_top, single_sets = _search_intervals(single_calls, single, patients, masks)
    except ValueError as exc:       # e.g. DeLong needs 2 patients of each class
        note["intervals_unavailable"] = f"no confidence intervals: {exc}"
        return {}
    return {"top_mean_ci": {"ensemble": ens_top, "single": single_top},
            "set_intervals": {"ensemble": ens_sets, "single": single_sets}}


def _honest_methods(ens_calls, patients: store.Patients, note: dict) -> dict:
    """The three methods of ``inference.nested`` on the ensembles, with CIs in %, the optimism and each case's
    nested likelihood; when a fold's complement lacks a class, a note instead (the rest of the results stand).
    Cost: one full search per fold plus one (measured 2.3 s at 263 patients × 24 ensembles × 6 folds)."""
    from inference.nested import NESTED_CAVEAT, describe_sets, method_intervals, nested_evaluation

    began = time.monotonic()
    try:
        result = nested_evaluation(ens_calls, patients.truth, patients.fold, top=TOP_N)
        methods = {m.method: {"label": m.label, "n_sets": int(m.calls.shape[0]),
                              **_interval_block(method_intervals(m, resamples=BOOTSTRAP_RESAMPLES,
                                                                 seed=BOOTSTRAP_SEED))}
                   for m in result.methods}
    except ValueError as exc:
        note["methods_unavailable"] = f"no three-method table (paper-style, training-fold threshold, nested): {exc}"
        return {}
    nested = result.nested
    return {
        "methods": methods,
        "optimism_points": result.optimism_points,
        "nested_caveat": NESTED_CAVEAT,
        "nested_sets": [{"fold": int(f) + 1, "codes": codes}
                        for f, codes in zip(nested.fold_ids.tolist(), describe_sets(nested), strict=True)],
        "nested_likelihood": {str(int(pk)): 100.0 * float(share)
                              for pk, share in zip(patients.case_ids.tolist(), nested.vote_share, strict=True)},
        "nested_seconds": round(time.monotonic() - began, 3),
    }


def analyse(evaluation: Evaluation, ctx=None) -> Evaluation:
    """Phase 2: ensembles, sequence calls, the two searches, tables, the honest evaluation with its CIs, the
    chosen set, every case's result."""
    from inference.combinations import per_sequence_table

    data = selectors.evaluation_probs(evaluation)
    patients = data.patients()
    n_models = data.n_repeats * data.n_folds
    _progress(ctx, done=n_models, total=n_models + ANALYSIS_STEPS,
              step="ensembles, sequence calls and the search over all 32,767 sequence sets")
    ens_calls, single_calls = selectors.member_calls(evaluation, data, patients)
    note: dict = {}
    began = time.monotonic()
    ens = _search(ens_calls, patients, note, "ensemble")
    single = _search(single_calls, patients, note, "single")
    seconds = time.monotonic() - began
    store.write_subset_table(selectors.evaluation_dir(evaluation) / store.SUBSETS_FILE, ens, single)
    run = evaluation.training_run
    synthetic = run is not None and not run.cohort.cases.filter(is_synthetic=False).exists()
    cfg = evaluation.config or {}
    results = {
        "synthetic": synthetic,
        "n_patients": int(patients.case_ids.size), "n_sarcoma": int(patients.truth.sum()),
        "n_leiomyoma": int((~patients.truth).sum()), "n_slices": data.n_slices, "n_repeats": data.n_repeats,
        "n_folds": data.n_folds, "n_subsets": int(ens.masks.size), "store_hash": data.store_hash,
        "rule": cfg.get("rule", "mean"), "cutoff": cfg.get("cutoff", 0.5),
        "search_seconds": round(seconds, 3),
        "ensemble": {"top_mean": _percent(ens.top_mean(TOP_N)), "top": ens.rows(limit=TOP_N)},
        "single": {"top_mean": _percent(single.top_mean(TOP_N)), "top": single.rows(limit=TOP_N)},
        "per_sequence": per_sequence_table(ens, single),
        "top_mask": int(ens.top(1)[0]),
    }
    if ctx is not None and ctx.job.result.get("predictions"):
        results["predictions"] = ctx.job.result["predictions"]
    _progress(ctx, done=n_models + 1, step=f"honest evaluation: a nested search over the 32,767 sets for each "
                                           f"of the {data.n_folds} folds, and 95 % confidence intervals")
    intervals = _interval_results(ens_calls, single_calls, ens, single, patients, note)
    for kind in ("ensemble", "single"):
        if intervals:
            results[kind]["top_mean_ci"] = intervals["top_mean_ci"][kind]
    if intervals:
        results["set_intervals"] = intervals["set_intervals"]
    results.update(_honest_methods(ens_calls, patients, note))
    results.update(note)
    _progress(ctx, done=n_models + 2, step="sarcoma likelihood of every case")
    evaluation = services.evaluation_finish(evaluation=evaluation, results=results, patients=patients,
                                            calls=(ens_calls, single_calls))
    _progress(ctx, done=n_models + ANALYSIS_STEPS, step="finished")
    return evaluation


# --- the new-patient job ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CaseSlices:
    """A case's tumour crops: crops (N, S, S) uint8; sequence_idx, slice_no, series_id (N,) int64; window (N, 3)
    int64, each crop's square on its slice (left, top, side in the slice's pixels: where a heat-map goes back)."""

    crops: np.ndarray
    sequence_idx: np.ndarray
    slice_no: np.ndarray
    series_id: np.ndarray
    window: np.ndarray

    @property
    def sha256(self) -> str:
        digest = hashlib.sha256(np.ascontiguousarray(self.crops).tobytes())
        digest.update(self.sequence_idx.astype("<i8").tobytes())
        return digest.hexdigest()


def case_tumour_slices(case, *, size: int, margin: float) -> CaseSlices:
    """Every tumour slice of a case as a ``size`` × ``size`` crop, as the cohort build makes them (METHOD §3)."""
    from imaging import crops
    from imaging.cohorts import series_uint8_slices

    images, sequence_idx, slice_no, series_id, windows = [], [], [], [], []
    for series, boxes in selectors.mapped_series_with_boxes(case):
        slices = series_uint8_slices(series, [b.slice_index for b in boxes])
        for image, box in zip(slices, boxes, strict=True):
            corners = (box.x0, box.y0, box.x1, box.y1)
            images.append(crops.tumour_crop(image, corners, margin=margin, size=size))
            window = crops.crop_window(corners, margin=margin)
            windows.append((window.left, window.top, window.side))
            sequence_idx.append(SEQUENCE_CODES.index(series.sequence_code))
            slice_no.append(box.slice_index)
            series_id.append(series.pk)
    if not images:
        empty = np.zeros(0, np.int64)
        return CaseSlices(np.zeros((0, size, size), np.uint8), empty, empty, empty, np.zeros((0, 3), np.int64))
    return CaseSlices(np.stack(images).astype(np.uint8), np.array(sequence_idx, np.int64),
                      np.array(slice_no, np.int64), np.array(series_id, np.int64), np.array(windows, np.int64))


def case_prediction_run(job: Job, ctx) -> None:
    """Runner of "case_prediction": crop, let every model predict (skipping finished ones), store the result."""
    from imaging.models import Case

    evaluation = (Evaluation.objects.select_related("training_run__cohort")
                  .filter(pk=job.params.get("evaluation_pk")).first())
    case = Case.objects.filter(pk=job.params.get("case_pk")).first()
    if evaluation is None or case is None:
        raise jobs.JobError("the evaluation or the case no longer exists")
    try:
        services.case_prediction_check(case=case, evaluation=evaluation)
    except ValidationError as exc:
        raise jobs.JobError("; ".join(exc.messages)) from None
    run = evaluation.training_run
    ctx.progress(step=f"cropping the tumour slices of {case.pseudonym}", force=True)
    slices = case_tumour_slices(case, size=run.cohort.input_size, margin=run.cohort.crop_margin)
    digest = slices.sha256
    path = selectors.case_prediction_path(evaluation, case.pk)
    fold_probs = store.case_predictions_for_crops(path, digest)
    models = list(run.models.order_by("repeat", "fold"))
    if fold_probs is None:
        parts = store.case_parts_dir(path, digest)
        fold_probs = predict_all(models, slices, parts, ctx)
        store.write_case_predictions(path, fold_probs=fold_probs, sequence_idx=slices.sequence_idx,
                                     slice_no=slices.slice_no, crops_sha256=digest)
        shutil.rmtree(parts, ignore_errors=True)
    result = services.write_deployment_result(evaluation, case.pk, fold_probs, slices.sequence_idx)
    ctx.progress(done=len(models) + 1, total=len(models) + 1, step="finished", force=True)
    ctx.set_result(case=case.pseudonym, evaluation=evaluation.pk, slices=int(slices.crops.shape[0]),
                   likelihood=result.likelihood, per_sequence=result.per_sequence, subset=result.subset)


def predict_all(models, slices: CaseSlices, parts: Path, ctx) -> np.ndarray:
    """(R, F, N) float32: every model's P(sarcoma) of each crop, one part file per finished model."""
    n_repeats = max(m.repeat for m in models) + 1
    n_folds = max(m.fold for m in models) + 1
    n = slices.crops.shape[0]
    fold_probs = np.full((n_repeats, n_folds, n), np.nan, dtype=np.float32)
    ctx.progress(done=0, total=len(models) + 1, step=f"{len(models)} models predict {n} tumour slices", force=True)
    for i, model in enumerate(models):
        ctx.check_cancel()
        part = store.case_part_path(parts, model.repeat, model.fold)
        p = store.read_case_part(part, n)
        if p is None:
            p = predict_crops(model, slices.crops)
            store.write_case_part(part, p)
        fold_probs[model.repeat, model.fold] = p
        ctx.progress(done=i + 1, step=f"repeat {model.repeat + 1} fold {model.fold + 1} predicted")
    if not np.all(np.isfinite(fold_probs)):
        raise jobs.JobError("some models of the run are missing (the repeats × folds grid is incomplete)")
    return fold_probs


def predict_crops(model, crops: np.ndarray) -> np.ndarray:
    """One model's P(sarcoma) for each crop, (N,) float32."""
    from training.fit import predict_slices

    return predict_slices(model_file(model), crops, batch_size=PREDICT_BATCH)
