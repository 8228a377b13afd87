"""Runner of the "heat_maps" job (gpu queue, issue 18): Grad-CAM maps of an evaluation's cases, kept per case.

Which models make a case's map (docs/saliency.md):

- a **cross-validated case** (in the run's cohort): in each repeat, the model of the fold that held the case out
  — R models, none of which saw it; the same models whose predictions make its likelihood.
- a **new patient** (``predict``): every model of the run (R × F), as its likelihood.

The map is the mean of those models' maps (``inference.saliency``), at the crop's resolution, then stored with
each crop's square on its slice (``inference.saliency_store``). The work goes by groups of cases that share
their models (one group per fold, one for the new patients): each model file is read once for its group and
maps every crop of the group in batches. The architecture is loaded once per job; the other models only load
their weights into it (the run's models share one architecture). A group's cases are written when its last
model is done, so a cancelled or failed job resumes at the first group not written, and a case whose file exists
is never recomputed.
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
    """Runner of "heat_maps": every pending case of ``params["case_pks"]`` gets its maps."""
    from imaging.models import Case

    evaluation = (Evaluation.objects.select_related("training_run__cohort")
                  .filter(pk=job.params.get("evaluation_pk")).first())
    if evaluation is None or evaluation.training_run is None:
        raise jobs.JobError("the evaluation, or its training run, no longer exists")
    wanted = [int(pk) for pk in job.params.get("case_pks") or []]
    present = saliency_store.stored_cases(selectors.evaluation_dir(evaluation))
    cases = list(Case.objects.filter(pk__in=[pk for pk in wanted if pk not in present]).order_by("pk"))
    groups = _groups(evaluation, cases)
    total = sum(len(g.models) for g in groups)
    ctx.progress(done=0, total=max(total, 1), step=f"heat-maps of {len(cases)} case(s); "
                                                   f"{len(wanted) - len(cases)} already have theirs", force=True)
    loader = saliency.WeightLoader()
    done, slices = 0, 0
    for group in groups:
        slices += _map_group(evaluation, group, loader, ctx, done)
        done += len(group.models)
    ctx.progress(done=max(total, 1), total=max(total, 1), step="finished", force=True)
    ctx.set_result(cases=len(cases), already=len(wanted) - len(cases), slices=slices, models_read=loader.reads)


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


def _map_group(evaluation: Evaluation, group: Group, loader: saliency.WeightLoader, ctx, done: int) -> int:
    """Map the group's crops with each of its models, average, write each case's file; returns slices mapped."""
    run = evaluation.training_run
    size, margin = run.cohort.input_size, run.cohort.crop_margin
    per_case = [(case, case_tumour_slices(case, size=size, margin=margin)) for case in group.cases]
    crops = np.concatenate([s.crops for _, s in per_case]) if per_case else np.zeros((0, size, size), np.uint8)
    total = None
    for i, trained in enumerate(group.models):
        ctx.check_cancel()
        maps = loader.maps(model_file(trained), crops, batch_size=MAP_BATCH).astype(np.float64)
        total = maps if total is None else total + maps
        ctx.progress(done=done + i + 1, step=f"{group.kind} maps: repeat {trained.repeat + 1} fold "
                                             f"{trained.fold + 1}, {crops.shape[0]} tumour slices")
    mean = total / len(group.models)
    names = tuple(f"r{m.repeat}f{m.fold}" for m in group.models)
    start = 0
    for case, slices in per_case:
        n = slices.crops.shape[0]
        _write_case(evaluation, case.pk, slices, mean[start:start + n], names, group.kind)
        start += n
    return int(crops.shape[0])


def _write_case(evaluation: Evaluation, case_pk: int, slices: CaseSlices, grid: np.ndarray, names, kind) -> None:
    size = slices.crops.shape[1]
    maps, scale = saliency.to_uint8(saliency.upsample(grid, size))
    saliency_store.write_case_maps(
        selectors.case_maps_path(evaluation.pk, case_pk),
        saliency_store.CaseMaps(maps=maps, crops=slices.crops, series_id=slices.series_id,
                                slice_no=slices.slice_no, sequence_idx=slices.sequence_idx, window=slices.window,
                                scale=scale, models=names, kind=kind, crops_sha256=slices.sha256))
