"""The "cohort_build" job: a frozen cohort's tumour slices as the training array store (METHOD §3).

For every member case, every series mapped to one of the 15 sequence codes, and every slice with a
tumour box: window the slice to 8 bits (the series' VOI, else its 0.5–99.5 percentiles;
``imaging.volumes``), crop a square around the box with the cohort's margin and resize it to
``input_size`` (``imaging.crops``), then write all crops with their indexes (case, sequence, slice,
label) through ``imaging.arraystore.write_array_store``, which records a content hash for model cards.

Crops are gathered in a memory-mapped temporary file, so a large cohort never sits in memory.
A build is one unit of work: a rerun after a crash starts it again (the store is written atomically),
and a cohort whose store already matches its recorded hash is not rebuilt.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from django.conf import settings

from core.constants import SARCOMA, SEQUENCE_CODES
from imaging import crops, importer_store, volumes
from imaging.arraystore import LABEL_LEIOMYOMA, LABEL_SARCOMA, open_array_store, write_array_store
from imaging.models import Cohort, CohortCase, Series, TumourBox

STORE_ROOT = "cohorts"


def store_relative_path(cohort: Cohort) -> str:
    return f"{STORE_ROOT}/{cohort.name}/store"


def _plan(cohort: Cohort) -> list[tuple[CohortCase, Series, list[TumourBox]]]:
    """(member, series, boxes) for every mapped series with boxes, in case / series order."""
    plan = []
    members = cohort.members.select_related("case").order_by("case_id")
    for member in members:
        for series in member.case.series.prefetch_related("boxes").order_by("series_number", "pk"):
            if series.sequence_code not in SEQUENCE_CODES:
                continue
            boxes = sorted(series.boxes.all(), key=lambda b: b.slice_index)
            boxes = [b for b in boxes if b.slice_index < series.n_slices]
            if boxes:
                plan.append((member, series, boxes))
    return plan


def series_uint8_slices(series: Series, slice_indices: list[int]) -> np.ndarray:
    """The given slices of a stored series windowed to uint8, shape (len(slice_indices), rows, cols)."""
    stored = importer_store.read_stored(series)[slice_indices]
    rescale = series.meta.get("rescale") or {}
    real = volumes.real_values(stored, rescale.get("slope", 1.0), rescale.get("intercept", 0.0))
    window = series.meta.get("window") or {}
    if window.get("width"):
        win = volumes.Window(
            center=float(window["center"]), width=float(window["width"]), source=window.get("source", "voi")
        )
    else:
        win = volumes.percentile_window(
            volumes.real_values(
                importer_store.read_stored(series), rescale.get("slope", 1.0), rescale.get("intercept", 0.0)
            )
        )
    return volumes.window_to_uint8(real, win)


def _store_is_current(cohort: Cohort) -> bool:
    if not (cohort.store_path and cohort.content_hash):
        return False
    try:
        return (
            open_array_store(Path(settings.MEDIA_ROOT) / cohort.store_path).content_hash
            == cohort.content_hash
        )
    except Exception:
        return False


def run(job, ctx) -> None:
    from jobs.services import JobError

    cohort = Cohort.objects.filter(pk=job.params.get("cohort")).first()
    if cohort is None:
        raise JobError("the cohort no longer exists")
    if _store_is_current(cohort):
        ctx.set_result(
            cohort=cohort.name,
            content_hash=cohort.content_hash,
            n_slices=cohort.n_slices,
            skipped="the array store is already built",
        )
        return
    plan = _plan(cohort)
    total = sum(len(boxes) for _, _, boxes in plan)
    if total == 0:
        raise JobError(
            f"cohort {cohort.name}: no tumour boxes on series mapped to a sequence code; "
            "import boxes or draw them on the series pages first"
        )
    size = cohort.input_size
    work = Path(settings.MEDIA_ROOT) / STORE_ROOT / cohort.name / ".build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        slices = np.lib.format.open_memmap(
            work / "crops.npy", mode="w+", dtype=np.uint8, shape=(total, size, size)
        )
        case_ids = np.zeros(total, np.int64)
        sequence_idx = np.zeros(total, np.int16)
        slice_no = np.zeros(total, np.int32)
        labels = np.zeros(total, np.uint8)
        per_case: dict[int, int] = {}
        row = 0
        ctx.progress(done=0, total=total, step=f"cropping {total} tumour slices", force=True)
        for member, series, boxes in plan:
            ctx.check_cancel()
            images = series_uint8_slices(series, [b.slice_index for b in boxes])
            for image, box in zip(images, boxes, strict=True):
                slices[row] = crops.tumour_crop(
                    image, (box.x0, box.y0, box.x1, box.y1), margin=cohort.crop_margin, size=size
                )
                case_ids[row] = member.case_id
                sequence_idx[row] = SEQUENCE_CODES.index(series.sequence_code)
                slice_no[row] = box.slice_index
                labels[row] = LABEL_SARCOMA if member.truth == SARCOMA else LABEL_LEIOMYOMA
                row += 1
            per_case[member.case_id] = per_case.get(member.case_id, 0) + len(boxes)
            ctx.progress(done=row, step=f"cropping ({row}/{total} slices)")
        slices.flush()
        ctx.progress(step="writing the array store", force=True)
        relative = store_relative_path(cohort)
        digest = write_array_store(
            Path(settings.MEDIA_ROOT) / relative,
            slices,
            case_ids,
            sequence_idx,
            slice_no,
            labels,
            meta={
                "cohort": cohort.name,
                "crop_margin": cohort.crop_margin,
                "cases": cohort.members.count(),
                "windowing": "DICOM VOI, else series 0.5-99.5 percentiles",
                "synthetic": not cohort.members.filter(case__is_synthetic=False).exists(),
            },
            overwrite=True,
        )
        del slices
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for member in cohort.members.all():
        CohortCase.objects.filter(pk=member.pk).update(n_slices=per_case.get(member.case_id, 0))
    Cohort.objects.filter(pk=cohort.pk).update(
        store_path=relative, content_hash=digest, n_slices=total, job=job
    )
    without = list(cohort.members.filter(n_slices=0).values_list("case__pseudonym", flat=True))
    ctx.set_result(
        cohort=cohort.name,
        content_hash=digest,
        n_slices=total,
        cases=len(per_case),
        cases_without_slices=without,
    )
    ctx.progress(done=total, total=total, step="finished", force=True)
