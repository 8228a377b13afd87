"""Runner of the "heat_maps" job (gpu queue, issue 18): Grad-CAM maps of an evaluation's cases, kept per case.

Which models make a case's map (docs/saliency.md):

- a **cross-validated case** (in the run's cohort): in each repeat, the model of the fold that held the case out
  — R models, none of which saw it; the same models whose predictions make its likelihood.
- a **new patient** (``predict``): every model of the run (R × F), as its likelihood.

The map is the positive part of the mean of those models' signed maps (``inference.saliency``), at the crop's
resolution, stored with each crop's square on its slice (``inference.saliency_store``) against one full-colour
level per evaluation (the 99th percentile of the first mapped cases' positive cells, kept in the evaluation's
saliency folder), so that a case with little evidence for sarcoma shows little colour.

The work goes by groups of cases that share their models (one group per fold, one for the new patients): each model
file is read once for its group and maps every crop of the group in batches. The architecture is loaded once per
job; the other models only load their weights into it (the run's models share one architecture). A group's cases
are written when its last model is done, so a cancelled or failed job resumes at the first group not written. A
case whose file was made of its current crops is never recomputed; one whose boxes or series were corrected since
(the crops' SHA-256 differs) is mapped again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference import saliency, saliency_store, selectors
from inference.models import CaseAIResult, Evaluation
from inference.runners import CaseSlices, case_tumour_slices, model_file
from jobs import services as jobs
from jobs.models import Job

MAP_BATCH = 64


@dataclass
class Group:
    """Cases mapped by the same models: ``kind`` held-out (one fold's models) or deployment (all of them)."""

    kind: str
    models: list
    cases: list


def heat_maps_run(job: Job, ctx) -> None:
    """Runner of "heat_maps": every case of ``params["case_pks"]`` whose maps are missing or out of date."""
    from imaging.models import Case

    evaluation = (Evaluation.objects.select_related("training_run__cohort")
                  .filter(pk=job.params.get("evaluation_pk")).first())
    if evaluation is None or evaluation.training_run is None:
        raise jobs.JobError("the evaluation, or its training run, no longer exists")
    wanted = [int(pk) for pk in job.params.get("case_pks") or []]
    cohort = evaluation.training_run.cohort
    ctx.progress(done=0, total=1, step=f"cropping the tumour slices of {len(wanted)} case(s)", force=True)
    current = {case.pk: (case, case_tumour_slices(case, size=cohort.input_size, margin=cohort.crop_margin))
               for case in Case.objects.filter(pk__in=wanted).order_by("pk")}
    pending, stale = _pending(evaluation, current)
    groups = _groups(evaluation, [current[pk][0] for pk in pending])
    total = max(sum(len(g.models) for g in groups), 1)
    already = len(current) - len(pending)
    ctx.progress(done=0, total=total, step=f"heat-maps of {len(pending)} case(s) ({stale} out of date); "
                                           f"{already} have theirs", force=True)
    loader = saliency.WeightLoader()
    done, slices = 0, 0
    slices_of = {pk: slices for pk, (_, slices) in current.items()}
    for group in groups:
        slices += _map_group(evaluation, group, slices_of, loader, ctx, done)
        done += len(group.models)
    ctx.progress(done=total, total=total, step="finished", force=True)
    ctx.set_result(cases=len(pending), already=already, out_of_date=stale, gone=len(wanted) - len(current),
                   slices=slices, models_read=loader.reads)


def _pending(evaluation: Evaluation, current: dict) -> tuple[list[int], int]:
    """The cases to map: no readable file, or one made of other crops (boxes or series corrected since: the
    file's crops_sha256 differs); and how many of them were out of date."""
    pending, stale = [], 0
    for pk, (_, slices) in current.items():
        stored = saliency_store.stored_crops_sha256(selectors.case_maps_path(evaluation.pk, pk))
        if stored == slices.sha256:
            continue
        stale += stored is not None
        pending.append(pk)
    return pending, stale


def _groups(evaluation: Evaluation, cases) -> list[Group]:
    """Fold groups (R models each) for cross-validated cases, one group of all models for new patients."""
    run = evaluation.training_run
    models = list(run.models.order_by("repeat", "fold"))
    deployment = set(CaseAIResult.objects.filter(evaluation=evaluation, is_deployment=True,
                                                 case__in=cases).values_list("case_id", flat=True))
    split = getattr(run.cohort, "fold_split", None)
    fold_of = {int(k): int(v) for k, v in (split.assignment if split else {}).items()}
    by_fold: dict[int, list] = {}
    new = []
    for case in cases:
        if case.pk in deployment or case.pk not in fold_of:
            new.append(case)
        else:
            by_fold.setdefault(fold_of[case.pk], []).append(case)
    groups = [Group(saliency_store.HELD_OUT, [m for m in models if m.fold == fold], members)
              for fold, members in sorted(by_fold.items())]
    if new:
        groups.append(Group(saliency_store.DEPLOYMENT, models, new))
    return groups


def _map_group(evaluation: Evaluation, group: Group, slices_of: dict, loader: saliency.WeightLoader, ctx,
               done: int) -> int:
    """Map the group's crops with each of its models, average, write each case's file; returns slices mapped."""
    size = evaluation.training_run.cohort.input_size
    per_case = [(case, slices_of[case.pk]) for case in group.cases]
    crops = np.concatenate([s.crops for _, s in per_case]) if per_case else np.zeros((0, size, size), np.uint8)
    total = None
    for i, trained in enumerate(group.models):
        ctx.check_cancel()
        maps = loader.maps(model_file(trained), crops, batch_size=MAP_BATCH, signed=True).astype(np.float64)
        total = maps if total is None else total + maps
        ctx.progress(done=done + i + 1, step=f"{group.kind} maps: repeat {trained.repeat + 1} fold "
                                             f"{trained.fold + 1}, {crops.shape[0]} tumour slices")
    mean = saliency.ensemble_map((total / len(group.models))[None])
    reference = _reference(evaluation, mean)
    names = tuple(f"r{m.repeat}f{m.fold}" for m in group.models)
    start = 0
    for case, slices in per_case:
        n = slices.crops.shape[0]
        _write_case(evaluation, case.pk, slices, mean[start:start + n], names, group.kind, reference)
        start += n
    return int(crops.shape[0])


def _reference(evaluation: Evaluation, grids: np.ndarray) -> float | None:
    """The evaluation's full-colour level: the stored one, else set now from these maps (the first mapped)."""
    folder = selectors.evaluation_dir(evaluation)
    level = saliency_store.read_reference(folder)
    if level is None:
        level = saliency.reference_level(grids)
        if level is not None:
            saliency_store.write_reference(folder, level, percentile=saliency.REFERENCE_PERCENTILE,
                                           n_slices=int(grids.shape[0]))
    return level


def _write_case(evaluation: Evaluation, case_pk: int, slices: CaseSlices, grid: np.ndarray, names, kind,
                reference: float | None) -> None:
    size = slices.crops.shape[1]
    maps, scale = saliency.to_uint8(saliency.upsample(grid, size), reference)
    saliency_store.write_case_maps(
        selectors.case_maps_path(evaluation.pk, case_pk),
        saliency_store.CaseMaps(maps=maps, crops=slices.crops, series_id=slices.series_id,
                                slice_no=slices.slice_no, sequence_idx=slices.sequence_idx, window=slices.window,
                                scale=scale, models=names, kind=kind, crops_sha256=slices.sha256))
