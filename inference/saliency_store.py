"""Where an evaluation's heat-maps are kept (issue 18), one file per case. No Django.

``<evaluation folder>/saliency/case-<pk>.npz`` (compressed) holds, for each of the case's N tumour slices:

- ``maps`` (N, S, S) uint8: the ensemble's Grad-CAM at the crop's resolution (``inference.saliency``), against
  ``scale``, the evaluation's full-colour level (sarcoma log-odds per cell at 255; 0 where nothing shows);
- ``crops`` (N, S, S) uint8: the crop the models saw (the evaluation page's gallery draws the map on it);
- ``series_id``, ``slice_no``, ``sequence_idx`` (N,): which slice of which series;
- ``window`` (N, 3): the crop's square on the slice, ``left, top, side`` in the slice's pixels
  (``imaging.crops.CropWindow``): the map covers exactly that square once scaled by side / S;
- ``models``: which models were averaged (``r<repeat>f<fold>``), ``kind`` ("held-out" for a cross-validated
  case: each repeat's model that never saw it; "deployment": every model), ``crops_sha256``.

A file made of the case's current crops is never recomputed (the job skips its case); it is written atomically,
so a file is whole. ``reference.json`` holds the evaluation's full-colour level (set by the first maps made).
Nothing in it identifies the patient: keys, slice numbers and pixels of the de-identified series.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.files import atomic_path

SALIENCY_DIR = "saliency"
HELD_OUT, DEPLOYMENT = "held-out", "deployment"


@dataclass(frozen=True)
class CaseMaps:
    """One case's heat-maps (see the module docstring for each field)."""

    maps: np.ndarray
    crops: np.ndarray
    series_id: np.ndarray
    slice_no: np.ndarray
    sequence_idx: np.ndarray
    window: np.ndarray
    scale: float
    models: tuple[str, ...]
    kind: str
    crops_sha256: str

    def __post_init__(self) -> None:
        n = self.maps.shape[0]
        if self.maps.ndim != 3 or self.maps.dtype != np.uint8 or self.crops.shape != self.maps.shape:
            raise ValueError(f"heat-maps: maps {self.maps.shape} {self.maps.dtype} and crops {self.crops.shape} "
                             "must be the same (N, S, S) uint8")
        for name in ("series_id", "slice_no", "sequence_idx"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"heat-maps: {name} has shape {getattr(self, name).shape}, expected ({n},)")
        if self.window.shape != (n, 3):
            raise ValueError(f"heat-maps: window has shape {self.window.shape}, expected ({n}, 3)")

    def strongest(self) -> int | None:
        """The row whose map is strongest (the gallery's slice); None without slices."""
        if self.maps.shape[0] == 0:
            return None
        return int(np.argmax(self.maps.reshape(self.maps.shape[0], -1).max(axis=1)))


def case_maps_path(evaluation_folder: Path, case_pk: int) -> Path:
    return Path(evaluation_folder) / SALIENCY_DIR / f"case-{case_pk}.npz"


def write_case_maps(path: Path, maps: CaseMaps) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(
            tmp, maps=maps.maps, crops=maps.crops, series_id=maps.series_id.astype(np.int64),
            slice_no=maps.slice_no.astype(np.int64), sequence_idx=maps.sequence_idx.astype(np.int64),
            window=maps.window.astype(np.int64), scale=np.float64(maps.scale), models=np.array(maps.models, dtype=str),
            kind=np.str_(maps.kind), crops_sha256=np.str_(maps.crops_sha256))


def _read(path: Path, read, default):
    """``read(the opened npz)``, or ``default`` where there is no file or it is not one of ours."""
    if not Path(path).is_file():
        return default
    try:
        with np.load(path) as saved:
            return read(saved)
    except (OSError, KeyError, ValueError):
        return default


def read_case_maps(path: Path) -> CaseMaps | None:
    """The stored maps, or None where there are none (or the file is not one of ours)."""
    return _read(path, lambda saved: CaseMaps(
        maps=saved["maps"], crops=saved["crops"], series_id=saved["series_id"], slice_no=saved["slice_no"],
        sequence_idx=saved["sequence_idx"], window=saved["window"], scale=float(saved["scale"]),
        models=tuple(str(m) for m in saved["models"]), kind=str(saved["kind"]),
        crops_sha256=str(saved["crops_sha256"])), None)


def stored_crops_sha256(path: Path) -> str | None:
    """What crops a stored file was made of (without reading its maps or crops); None where it is unreadable."""
    return _read(path, lambda saved: str(saved["crops_sha256"]), None)


@dataclass(frozen=True)
class SeriesMaps:
    """One series' maps as the viewer needs them (no crops): maps (n, S, S) uint8, slice_no (n,), window (n, 3),
    in slice order."""

    maps: np.ndarray
    slice_no: np.ndarray
    window: np.ndarray


def read_series_maps(path: Path, series_id: int) -> SeriesMaps | None:
    """One series' maps from a case's file, without reading the crops; None where the file or the series has
    none."""
    def read(saved):
        rows = np.flatnonzero(saved["series_id"] == series_id)
        if rows.size == 0:
            return None
        slice_no = saved["slice_no"]
        order = rows[np.argsort(slice_no[rows], kind="stable")]
        return SeriesMaps(maps=saved["maps"][order], slice_no=slice_no[order], window=saved["window"][order])

    return _read(path, read, None)


def series_codes(path: Path) -> dict[int, set[int]]:
    """{series id: its sequence indexes} of a stored file (small arrays only); {} where there is none."""
    def read(saved):
        found: dict[int, set[int]] = {}
        for series, sequence in zip(saved["series_id"].tolist(), saved["sequence_idx"].tolist(), strict=True):
            found.setdefault(int(series), set()).add(int(sequence))
        return found

    return _read(path, read, {})


REFERENCE_FILE = "reference.json"


def read_reference(evaluation_folder: Path) -> float | None:
    """The evaluation's full-colour level (``inference.saliency.reference_level``), once set."""
    path = Path(evaluation_folder) / SALIENCY_DIR / REFERENCE_FILE
    try:
        level = float(json.loads(path.read_text())["level"])
    except (OSError, KeyError, ValueError, TypeError):
        return None
    return level if level > 0 else None


def write_reference(evaluation_folder: Path, level: float, *, percentile: float, n_slices: int) -> None:
    path = Path(evaluation_folder) / SALIENCY_DIR / REFERENCE_FILE
    with atomic_path(path, suffix=".json") as tmp:
        Path(tmp).write_text(json.dumps({"level": level, "percentile": percentile, "from_slices": n_slices}))


def stored_cases(evaluation_folder: Path) -> set[int]:
    """The cases of an evaluation that have maps to show: a file with at least one slice (a case without tumour
    slices on mapped series gets an empty file, so the job does not look at it again, but has nothing to show)."""
    folder = Path(evaluation_folder) / SALIENCY_DIR
    found = set()
    for path in folder.glob("case-*.npz") if folder.is_dir() else []:
        try:
            pk = int(path.stem.removeprefix("case-"))
        except ValueError:
            continue
        if series_codes(path):
            found.add(pk)
    return found
