"""Factories for the reader-study tests: SYNTHETIC cases with viewable series, AI results, open studies.

Volumes are encoded with imaging.volumes.encode_volume (the format the viewer reads) and stored with
imaging.importer_store.write_volume under the test's MEDIA_ROOT, so imaging's volume endpoint serves them.
``phantom_case`` renders the synthetic phantom pelvis (imaging.phantom_render) instead of the cheap test
pattern, for browser tests and screenshots that should look like MRI.
"""

from __future__ import annotations

import hashlib

import factory
import numpy as np

from core.constants import LEIOMYOMA
from imaging.importer_store import write_volume
from imaging.models import Case, Series
from imaging.volumes import Window, encode_volume
from inference.models import CaseAIResult, Evaluation

ORIENTATIONS = {"axial": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0), "sagittal": (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
                "coronal": (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)}
PLANE_OF = {"T2axi": "axial", "T2sag": "sagittal", "DWI": "axial", "ADC": "axial", "T1axi": "axial",
            "T2cor": "coronal", "fsT1CEsag": "sagittal"}


class CaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Case

    pseudonym = factory.Sequence(lambda n: f"PSN-{n:05d}-SECRET")
    source_key_hash = factory.Sequence(lambda n: hashlib.sha256(f"source-{n}".encode()).hexdigest())
    truth = LEIOMYOMA
    is_synthetic = True


class EvaluationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Evaluation

    name = factory.Sequence(lambda n: f"evaluation {n} (synthetic)")
    status = Evaluation.Status.DONE
    chosen_subset = ["T2sag", "DWI"]


def pattern_stack(n_slices: int, size: int, seed: int) -> np.ndarray:
    """(n_slices, size, size) uint16: a bright disk whose radius changes along the stack, on a gradient.

    Slices differ from each other and the values span 0..~2000, so scrolling and window/level change pixels.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    centre = size / 2
    stack = []
    for k in range(n_slices):
        radius = size * (0.15 + 0.25 * np.sin(np.pi * (k + 1) / (n_slices + 1)))
        disk = ((yy - centre) ** 2 + (xx - centre) ** 2 < radius ** 2) * 1400.0
        stack.append(disk + 3.0 * xx + rng.normal(0, 20, size=(size, size)))
    return np.clip(np.stack(stack), 0, 4000).astype(np.uint16)


def _positions(plane: str, n_slices: int, spacing: float, pixel_mm: float, size: int) -> np.ndarray:
    """First-pixel centres (mm) of a stack centred on the origin, stepping along the plane's normal."""
    o = np.asarray(ORIENTATIONS[plane])
    row_dir, col_dir = o[:3], o[3:]
    normal = np.cross(row_dir, col_dir)
    corner = -(size - 1) / 2 * pixel_mm * (row_dir + col_dir)
    offsets = (np.arange(n_slices) - (n_slices - 1) / 2) * spacing
    return corner[None, :] + offsets[:, None] * normal[None, :]


def write_series(case: Case, code: str, stored: np.ndarray, *, plane: str | None = None, spacing: float = 5.0,
                 pixel_mm: float = 1.5, positions: np.ndarray | None = None, window: tuple | None = None,
                 slope: float = 1.0, number: int = 1) -> Series:
    """A Series row whose volume file is written under MEDIA_ROOT as the importer writes it (gzip)."""
    plane = plane or PLANE_OF.get(code, "axial")
    n, rows, cols = stored.shape
    if positions is None:
        positions = _positions(plane, n, spacing, pixel_mm, rows)
    voi = Window(center=window[0], width=window[1], source="voi") if window else None
    encoded = encode_volume(stored, pixel_spacing=[pixel_mm, pixel_mm], slice_positions=positions,
                            orientation=ORIENTATIONS[plane], slice_thickness=spacing, rescale_slope=slope,
                            voi=voi)
    uid = f"2.25.{case.pk}{number:03d}"
    volume_path, sha256 = write_volume(uid, encoded)      # gzip under MEDIA_ROOT, as an import writes it
    series = Series.objects.create(
        case=case, series_uid=uid, series_number=number, mapped_code=code, plane=plane, n_slices=n, rows=rows,
        cols=cols, meta=encoded.meta, volume_path=volume_path, volume_sha256=sha256)
    return series


def case_with_series(*, truth: str = LEIOMYOMA, codes=("T2axi", "T2sag", "DWI"), n_slices: int = 8,
                     size: int = 32, seed: int = 0) -> Case:
    case = CaseFactory(truth=truth)
    for number, code in enumerate(codes, start=1):
        write_series(case, code, pattern_stack(n_slices, size, seed + number), number=number)
    return case


def phantom_case(index: int, *, seed: int = 7, patients: int = 6, sarcoma_fraction: float = 0.34) -> Case:
    """A case rendered from the SYNTHETIC phantom cohort (plan ``index``): realistic-looking MR slices."""
    from imaging.phantom_plan import plan_cohort
    from imaging.phantom_render import render_patient

    plan = plan_cohort(patients=patients, sarcoma_fraction=sarcoma_fraction, seed=seed)[index]
    rendered = render_patient(plan, seed=seed)
    case = CaseFactory(truth=plan.label, degeneration=plan.degeneration,
                       irregular_margin=plan.irregular_margin)
    for number, series in enumerate(rendered.series, start=1):
        if series.code not in ("T2axi", "T2sag", "DWI", "ADC", "T1axi"):
            continue
        geometry = series.geometries[0]
        n = series.stored.shape[0]
        write_series(case, series.code, series.stored, plane=geometry.plane, positions=geometry.positions[:n],
                     pixel_mm=geometry.pixel_spacing[0], spacing=geometry.spacing, window=series.window,
                     slope=series.rescale_slope, number=number)
    return case


def ai_result(evaluation: Evaluation, case: Case, likelihood: float) -> CaseAIResult:
    return CaseAIResult.objects.create(
        evaluation=evaluation, case=case, likelihood=likelihood,
        per_sequence={"T2sag": likelihood - 4.17, "DWI": likelihood + 2.13, "T2axi": 33.37},
        subset=["T2sag", "DWI"], n_ensembles=24)


def open_study(*, coordinator, readers, cases, evaluation=None, name: str = "Study (synthetic)", **kwargs):
    """A study created and opened through the services, as a coordinator would."""
    from reader_study import services

    study = services.study_create(name=name, created_by=coordinator, cases=cases, evaluation=evaluation,
                                  readers=readers, **kwargs)
    return services.study_open(study=study, by=coordinator)



def answer_all(reader, study, exam: int, call: str = LEIOMYOMA, confidence: int = 30,
               seconds: float = 12) -> None:
    """Answer every case of the reader's worklist for an exam (through the service), each case opened an hour
    ago (active time is capped by the wall-clock time since a case was first opened)."""
    from reader_study import selectors, services

    opened_ago(selectors.worklist(study, reader, exam), hours=1)
    for a in selectors.worklist(study, reader, exam):
        services.read_submit(reader=reader, assignment=a, call=call, confidence=confidence,
                             active_seconds=seconds)


def opened_ago(assignments, *, hours: float = 1) -> None:
    """Pretend the reader first opened these cases ``hours`` ago (where they were not opened yet)."""
    from datetime import timedelta

    from django.utils import timezone

    assignments.filter(first_opened_at__isnull=True).update(first_opened_at=timezone.now() - timedelta(hours=hours))


def move_washout(study, reader, days: float) -> None:
    """Pretend the reader's exam-1 reads were made ``days`` ago (the washout runs from the last one)."""
    from datetime import timedelta

    from django.utils import timezone

    from reader_study.models import Read

    Read.objects.filter(assignment__study=study, assignment__reader=reader, assignment__exam=1).update(
        updated_at=timezone.now() - timedelta(days=days))
