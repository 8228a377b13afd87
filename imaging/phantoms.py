"""The SYNTHETIC phantom cohort: DICOM studies of a simple pelvis with one uterine tumour each.

Why: the platform must be demonstrable and testable end to end (import, de-identification,
sequence mapping, viewer, training, reader study) without patient data. Every file says
SYNTHETIC and carries obviously fake identifiers ("PHANTOM^ALICE", "SYNTH-000001") that
de-identification must remove.

``write_phantom_cohort(outdir, patients=60, sarcoma_fraction=0.25, seed=1)`` writes::

    outdir/README.txt
    outdir/manifest.csv   patient_key, class, subtype, institution, length_mm, width_mm, height_mm,
                          degeneration, irregular_margin
    outdir/series.csv     one row per series: patient_key, series_number, source UID, names, intended code
    outdir/boxes.csv      tumour box per instance that shows the tumour (pixels, x1/y1 exclusive)
    outdir/dicom/<patient_key>/S<series_number>/I<instance_number>.dcm

``patient_key`` is the source PatientID (0010,0020). Boxes are matched to imported series by
``(patient_key, series_number, instance_number)``: SeriesNumber and InstanceNumber survive
de-identification, UIDs do not (the source UIDs are in the CSVs for importers that keep a map).

The same arguments give byte-identical files (pixel data, headers, UIDs, CSVs). The pieces:
``phantom_plan`` (ground truth, sequences), ``phantom_anatomy`` (3-D pelvis and tumour signal),
``phantom_render`` (pixels per series), ``phantom_protocols`` (names per vendor), ``phantom_dicom``
(headers and fast writing). See docs/phantoms.md.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.constants import SARCOMA, SEQUENCE_CODES, UNUSED_SEQUENCE
from imaging.phantom_dicom import SYNTHETIC_LABEL, SeriesContext, SeriesWriter, fake_identity, phantom_uid
from imaging.phantom_plan import PatientPlan, check_arguments, plan_cohort
from imaging.phantom_protocols import LOCALIZER, series_names
from imaging.phantom_render import RenderedPatient, render_patient

__all__ = [
    "BOX_COLUMNS", "MANIFEST_COLUMNS", "SERIES_COLUMNS", "PatientPlan", "PhantomSummary", "RenderedPatient",
    "plan_cohort", "render_patient", "series_number_for", "write_phantom_cohort",
]

MANIFEST_COLUMNS = ("patient_key", "class", "subtype", "institution", "length_mm", "width_mm", "height_mm",
                    "degeneration", "irregular_margin")
SERIES_COLUMNS = ("patient_key", "series_number", "source_series_instance_uid", "series_description",
                  "protocol_name", "sequence_code", "plane", "instances", "slices", "phases", "rows",
                  "columns")
BOX_COLUMNS = ("patient_key", "series_number", "instance_number", "sequence_code",
               "source_series_instance_uid", "source_sop_instance_uid", "temporal_position", "slice_index",
               "x0", "y0", "x1", "y1")


@dataclass(frozen=True)
class PhantomSummary:
    """What ``write_phantom_cohort`` wrote."""

    outdir: Path
    dicom_dir: Path
    manifest_path: Path
    series_path: Path
    boxes_path: Path
    patients: int
    sarcomas: int
    leiomyomas: int
    series: int
    instances: int
    sequence_patients: dict[str, int]      # code -> number of patients with that sequence
    seed: int
    difficulty: float


_OUR_OUTPUTS = ("dicom", "manifest.csv", "series.csv", "boxes.csv", "README.txt")


def _prepare_outdir(outdir: Path, overwrite: bool) -> None:
    if outdir.exists() and not outdir.is_dir():
        raise FileExistsError(f"{outdir}: exists and is not a folder")
    if outdir.exists() and any(outdir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{outdir}: folder is not empty; choose an empty folder or pass "
                                  "overwrite=True")
        foreign = sorted(p.name for p in outdir.iterdir() if p.name not in _OUR_OUTPUTS)
        if foreign:
            raise FileExistsError(f"{outdir}: holds files that are not a phantom cohort "
                                  f"({', '.join(foreign[:5])}); refusing to overwrite")
        for name in _OUR_OUTPUTS:
            path = outdir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    outdir.mkdir(parents=True, exist_ok=True)


def _flag(value: bool | None) -> str:
    return "" if value is None else ("1" if value else "0")


def series_number_for(plan: PatientPlan, position: int) -> int:
    """SeriesNumber of the ``position``-th series (0 = localizer): 1, 2, 3… or Philips-style 101, 201…"""
    return (position + 1) * 100 + 1 if plan.naming_style == "philips" else position + 1


def write_phantom_cohort(outdir: str | Path, *, patients: int, sarcoma_fraction: float, seed: int,
                         difficulty: float = 0.5, slice_size: int = 128, slices_per_series: int = 16,
                         overlays: bool = True, overwrite: bool = False,
                         progress: Callable[[int, int], None] | None = None) -> PhantomSummary:
    """Write a SYNTHETIC DICOM cohort (one MR study per patient) plus manifest, series and box CSVs.

    patients: number of studies; sarcoma_fraction: share of sarcomas (rounded); seed: any int, the
    same arguments give byte-identical output; difficulty in [0, 1]: how much degenerated leiomyomas
    mimic sarcomas (and sarcomas leiomyomas); slice_size: rows = columns (pixels); slices_per_series:
    slices per stack (dynamic series hold 4 phases of them); overlays: write a 60xx overlay with a
    fake name into every file; overwrite: replace an earlier cohort in ``outdir`` (only our own files);
    progress(done, total) is called after each patient.
    Raises ValueError (bad argument, named) or FileExistsError (outdir not empty).
    """
    check_arguments(patients, sarcoma_fraction, difficulty)
    if not 32 <= int(slice_size) <= 1024:
        raise ValueError(f"slice_size: must be between 32 and 1024 pixels, not {slice_size!r}")
    if not 1 <= int(slices_per_series) <= 256:
        raise ValueError(f"slices_per_series: must be between 1 and 256, not {slices_per_series!r}")
    outdir = Path(outdir)
    _prepare_outdir(outdir, overwrite)
    dicom_dir = outdir / "dicom"
    plans = plan_cohort(patients=patients, sarcoma_fraction=sarcoma_fraction, seed=seed,
                        difficulty=difficulty)
    manifest_rows: list[list[object]] = []
    series_rows: list[list[object]] = []
    box_rows: list[list[object]] = []
    n_series = n_instances = 0
    for done, plan in enumerate(plans, start=1):
        rendered = render_patient(plan, seed=seed, slice_size=slice_size, slices_per_series=slices_per_series)
        who = fake_identity(plan, seed)
        study_uid = phantom_uid(seed, plan.patient_key, "study")
        frame_uid = phantom_uid(seed, plan.patient_key, "frame")
        manifest_rows.append([plan.patient_key, plan.label, plan.subtype, f"SITE-{plan.site}",
                              *plan.dimensions_mm, _flag(plan.degeneration), _flag(plan.irregular_margin)])
        for position, series in enumerate(rendered.series):
            number = series_number_for(plan, position)
            series_uid = phantom_uid(seed, plan.patient_key, number, "series")
            ctx = SeriesContext(plan=plan, who=who, series=series, series_number=number, seed=seed,
                                study_uid=study_uid, series_uid=series_uid, frame_uid=frame_uid,
                                overlay=overlays)
            writer = SeriesWriter(ctx)
            folder = dicom_dir / plan.patient_key / f"S{number:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            code = UNUSED_SEQUENCE if series.code == LOCALIZER else series.code
            for instance in range(1, series.stored.shape[0] + 1):
                sop_uid = writer.write(folder / f"I{instance:04d}.dcm", instance)
                box = series.boxes[instance - 1]
                if box is not None:
                    box_rows.append([plan.patient_key, number, instance, code, series_uid, sop_uid,
                                     series.temporal_positions[instance - 1],
                                     series.slice_indices[instance - 1], *box])
            description, protocol_name = series_names(series.code, plan.naming_style)
            localizer = series.code == LOCALIZER
            series_rows.append([plan.patient_key, number, ctx.series_uid, description, protocol_name, code,
                                "mixed" if localizer else series.protocol.plane, series.stored.shape[0],
                                series.stored.shape[0] if localizer else len(set(series.slice_indices)),
                                max(series.temporal_positions), slice_size, slice_size])
            n_series += 1
            n_instances += series.stored.shape[0]
        if progress is not None:
            progress(done, len(plans))
    paths = {name: outdir / f"{name}.csv" for name in ("manifest", "series", "boxes")}
    _write_csv(paths["manifest"], MANIFEST_COLUMNS, manifest_rows)
    _write_csv(paths["series"], SERIES_COLUMNS, series_rows)
    _write_csv(paths["boxes"], BOX_COLUMNS, box_rows)
    readme = _readme(patients, sarcoma_fraction, seed, difficulty)
    (outdir / "README.txt").write_text(readme, encoding="utf-8")
    n_sarcoma = sum(p.label == SARCOMA for p in plans)
    return PhantomSummary(
        outdir=outdir, dicom_dir=dicom_dir, manifest_path=paths["manifest"], series_path=paths["series"],
        boxes_path=paths["boxes"], patients=len(plans), sarcomas=n_sarcoma, leiomyomas=len(plans) - n_sarcoma,
        series=n_series, instances=n_instances,
        sequence_patients={code: sum(code in p.sequences for p in plans) for code in SEQUENCE_CODES},
        seed=seed, difficulty=float(difficulty),
    )


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[list[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)


def _readme(patients: int, sarcoma_fraction: float, seed: int, difficulty: float) -> str:
    return (
        f"{SYNTHETIC_LABEL} COHORT - NOT PATIENT DATA\n\n"
        f"Generated by imaging.phantoms.write_phantom_cohort(patients={patients}, "
        f"sarcoma_fraction={sarcoma_fraction}, seed={seed}, difficulty={difficulty}).\n"
        "All names, identifiers, dates and institutions in these files are fake.\n\n"
        "dicom/        one MR study per patient (Explicit VR Little Endian)\n"
        "manifest.csv  ground truth per patient (patient_key = source PatientID)\n"
        "series.csv    every series with its intended sequence code\n"
        "boxes.csv     tumour box per instance; match on (patient_key, series_number, instance_number);\n"
        "              pixels, x = column, y = row, x1 and y1 exclusive\n"
        "See docs/phantoms.md in the platform repository.\n"
    )
