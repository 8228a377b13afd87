"""New patients (METHOD §9, deployment): every model of a run predicts a case imported after training.

The "case_prediction" job (gpu queue) crops the case's tumour slices exactly as the cohort build does
(``imaging.cohorts.series_uint8_slices`` windows a series to 8 bits, ``imaging.crops.tumour_crop`` crops a
square around each tumour box with the run cohort's margin and resizes it to the run's input size), lets all
R × F models predict every crop, and stores a ``CaseAIResult`` (``is_deployment=True``) for the evaluation:
each repeat's slice probability is the mean of its F fold models, then the same leave-one-repeat-out
ensembles, sequence calls and scores as the cross-validation, with the evaluation's chosen set and its
per-ensemble thresholds (``inference.predictions.deployment_figures``).

Predictions are kept in ``MEDIA_ROOT/evaluations/<pk>/cases/case-<case pk>.npz`` (``fold_probs`` (R, F, N)
float32, ``sequence_idx``, ``slice_no``, ``crops_sha256``), so a later change of the evaluation's set
recomputes the case's result without any model, and predicting the same crops again reuses them. While the
job runs, each finished model is kept as a part file (keyed by the crops' hash), so a resume skips it.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.core.exceptions import ValidationError

from core.constants import SEQUENCE_CODES
from inference import services
from inference.models import CaseAIResult, Evaluation
from jobs import services as jobs
from jobs.models import Job

CASES_DIR = "cases"
PREDICT_BATCH = 128


@dataclass(frozen=True)
class CaseSlices:
    """A case's tumour crops: crops (N, S, S) uint8; sequence_idx, slice_no (N,) int64."""

    crops: np.ndarray
    sequence_idx: np.ndarray
    slice_no: np.ndarray

    @property
    def sha256(self) -> str:
        digest = hashlib.sha256(np.ascontiguousarray(self.crops).tobytes())
        digest.update(self.sequence_idx.astype("<i8").tobytes())
        return digest.hexdigest()


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


def case_tumour_slices(case, *, size: int, margin: float) -> CaseSlices:
    """Every tumour slice of a case as a ``size`` × ``size`` crop, as the cohort build makes them (METHOD §3)."""
    from imaging import crops
    from imaging.cohorts import series_uint8_slices

    images, sequence_idx, slice_no = [], [], []
    for series, boxes in mapped_series_with_boxes(case):
        slices = series_uint8_slices(series, [b.slice_index for b in boxes])
        for image, box in zip(slices, boxes, strict=True):
            images.append(crops.tumour_crop(image, (box.x0, box.y0, box.x1, box.y1), margin=margin, size=size))
            sequence_idx.append(SEQUENCE_CODES.index(series.sequence_code))
            slice_no.append(box.slice_index)
    if not images:
        return CaseSlices(np.zeros((0, size, size), np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return CaseSlices(np.stack(images).astype(np.uint8), np.array(sequence_idx, np.int64), np.array(slice_no, np.int64))


def case_prediction_path(evaluation: Evaluation, case_pk: int) -> Path:
    return services.evaluation_dir(evaluation) / CASES_DIR / f"case-{case_pk}.npz"


# --- starting -------------------------------------------------------------------------------------------

def case_prediction_check(*, case, evaluation: Evaluation) -> None:
    """Why a case cannot be predicted with an evaluation's models, as a ValidationError naming the field."""
    if evaluation.status != Evaluation.Status.DONE or not (evaluation.results or {}).get("chosen"):
        raise ValidationError({"evaluation": f"evaluation {evaluation.name!r} is {evaluation.status}, not done: its "
                                             "thresholds are needed for new patients"})
    run = evaluation.training_run
    if run is None:
        raise ValidationError({"evaluation": f"evaluation {evaluation.name!r} has no training run"})
    if run.cohort.members.filter(case=case).exists():
        raise ValidationError({"case": f"case {case.pseudonym} is in cohort {run.cohort.name}, which trained these "
                                       "models: its out-of-fold result is on the evaluation page (a prediction "
                                       "by models trained on it would be optimistic)"})
    if not mapped_series_with_boxes(case):
        raise ValidationError({"case": f"case {case.pseudonym} has no tumour boxes on series mapped to a sequence "
                                       "code; map its series and draw the boxes on the series pages first"})


def case_prediction_start(*, case, evaluation: Evaluation, user=None, enqueue: bool = True) -> Job:
    """Start the "case_prediction" job (gpu queue) for a case imported after training."""
    case_prediction_check(case=case, evaluation=evaluation)
    user = user if user is not None and user.is_authenticated else None
    return jobs.job_create(kind="case_prediction", params={"evaluation_pk": evaluation.pk, "case_pk": case.pk},
                           user=user, total=evaluation.training_run.models.count() + 1, enqueue=enqueue)


# --- the job's runner -----------------------------------------------------------------------------------

def case_prediction_run(job: Job, ctx) -> None:
    """Runner of "case_prediction": crop, let every model predict (skipping finished ones), store the result."""
    from imaging.models import Case

    evaluation = (Evaluation.objects.select_related("training_run__cohort")
                  .filter(pk=job.params.get("evaluation_pk")).first())
    case = Case.objects.filter(pk=job.params.get("case_pk")).first()
    if evaluation is None or case is None:
        raise jobs.JobError("the evaluation or the case no longer exists")
    try:
        case_prediction_check(case=case, evaluation=evaluation)
    except ValidationError as exc:
        raise jobs.JobError("; ".join(exc.messages)) from None
    run = evaluation.training_run
    ctx.progress(step=f"cropping the tumour slices of {case.pseudonym}", force=True)
    slices = case_tumour_slices(case, size=run.cohort.input_size, margin=run.cohort.crop_margin)
    digest = slices.sha256
    path = case_prediction_path(evaluation, case.pk)
    fold_probs = _stored_fold_probs(path, digest)
    models = list(run.models.order_by("repeat", "fold"))
    if fold_probs is None:
        fold_probs = _predict_all(models, slices, path.parent / f"case-{case.pk}-{digest[:16]}", ctx)
        services.save_npz_atomic(path, fold_probs=fold_probs, sequence_idx=slices.sequence_idx,
                                 slice_no=slices.slice_no, crops_sha256=np.str_(digest))
        shutil.rmtree(path.parent / f"case-{case.pk}-{digest[:16]}", ignore_errors=True)
    result = write_deployment_result(evaluation, case.pk, fold_probs, slices.sequence_idx)
    ctx.progress(done=len(models) + 1, total=len(models) + 1, step="finished", force=True)
    ctx.set_result(case=case.pseudonym, evaluation=evaluation.pk, slices=int(slices.crops.shape[0]),
                   likelihood=result.likelihood, per_sequence=result.per_sequence, subset=result.subset)


def _stored_fold_probs(path: Path, digest: str) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as saved:
            return saved["fold_probs"] if str(saved["crops_sha256"]) == digest else None
    except (OSError, KeyError, ValueError):
        return None


def _predict_all(models, slices: CaseSlices, parts: Path, ctx) -> np.ndarray:
    n_repeats = max(m.repeat for m in models) + 1
    n_folds = max(m.fold for m in models) + 1
    n = slices.crops.shape[0]
    fold_probs = np.full((n_repeats, n_folds, n), np.nan, dtype=np.float32)
    ctx.progress(done=0, total=len(models) + 1, step=f"{len(models)} models predict {n} tumour slices", force=True)
    for i, model in enumerate(models):
        ctx.check_cancel()
        part = parts / f"r{model.repeat:02d}-f{model.fold}.npy"
        p = np.load(part) if part.is_file() else None
        if p is None or p.shape != (n,):
            p = predict_crops(model, slices.crops)
            parts.mkdir(parents=True, exist_ok=True)
            np.save(part.with_suffix(".tmp.npy"), p.astype(np.float32))
            part.with_suffix(".tmp.npy").replace(part)
        fold_probs[model.repeat, model.fold] = p
        ctx.progress(done=i + 1, step=f"repeat {model.repeat + 1} fold {model.fold + 1} predicted")
    if not np.all(np.isfinite(fold_probs)):
        raise jobs.JobError("some models of the run are missing (the repeats × folds grid is incomplete)")
    return fold_probs


def predict_crops(model, crops: np.ndarray) -> np.ndarray:
    """One model's P(sarcoma) for each crop, (N,) float32."""
    from inference.services_evaluation import model_file
    from training.fit import predict_slices

    return predict_slices(model_file(model), crops, batch_size=PREDICT_BATCH)


def write_deployment_result(evaluation: Evaluation, case_pk: int, fold_probs: np.ndarray,
                            sequence_idx: np.ndarray) -> CaseAIResult:
    """The case's likelihood and per-sequence % from all models' predictions and the evaluation's set."""
    from inference.predictions import SliceIndex, deployment_figures

    chosen = evaluation.results["chosen"]
    cfg = evaluation.config or {}
    index = SliceIndex.build(np.zeros(len(sequence_idx), dtype=np.int64), np.asarray(sequence_idx, dtype=np.int64),
                             n_patients=1)
    figures = deployment_figures(fold_probs, index, subset=int(chosen["mask"]), thresholds=chosen["thresholds"],
                                 rule=cfg.get("rule", "mean"), cutoff=cfg.get("cutoff", 0.5))
    shown = figures.for_patient(0)
    result, _ = CaseAIResult.objects.update_or_create(
        evaluation=evaluation, case_id=case_pk,
        defaults={"likelihood": round(shown["sarcoma_likelihood_percent"], 4),
                  "per_sequence": {k: round(v, 4) for k, v in shown["sequence_percent"].items()},
                  "subset": list(chosen["codes"]), "n_ensembles": int(figures.calls.shape[0]),
                  "is_deployment": True})
    return result


def deployment_results_refresh(evaluation: Evaluation) -> int:
    """Recompute every stored new-patient result of the evaluation (after its set changed); returns the count."""
    folder = services.evaluation_dir(evaluation) / CASES_DIR
    count = 0
    for path in sorted(folder.glob("case-*.npz")) if folder.is_dir() else []:
        try:
            case_pk = int(path.stem.removeprefix("case-"))
        except ValueError:
            continue
        if not CaseAIResult.objects.filter(evaluation=evaluation, case_id=case_pk, is_deployment=True).exists():
            continue
        with np.load(path) as saved:
            write_deployment_result(evaluation, case_pk, saved["fold_probs"], saved["sequence_idx"])
        count += 1
    return count
