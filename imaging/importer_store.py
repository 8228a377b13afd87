"""The series store: each series as one gzip-compressed uint16 volume file plus its JSON metadata.

Files live under ``MEDIA_ROOT/series/<digest of the de-identified series UID>/``:
``volume.u16le.gz`` (uint16 little-endian, frames × rows × cols in C order, gzip level 1 with a zero
timestamp so the same volume gives the same bytes) and ``meta.json`` (``imaging.volumes.encode_volume``
metadata plus instance numbers and phase count). The volume is compressed once at import and
served as is with ``Content-Encoding: gzip`` (api.py), so a request costs no CPU.

Frames come from ``dicom_read`` as real (rescaled) float32 values; the stored integers are recovered
exactly when every frame shares one rescale slope and intercept (the usual MR case), else the series
is re-quantised onto one common uint16 scale (Philips per-frame scaling), which the metadata records.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np

from core.files import atomic_write_bytes
from imaging import volumes
from imaging.dicom_read import SliceGeometry

VOLUME_FILE = "volume.u16le.gz"
META_FILE = "meta.json"
_AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _media_root() -> Path:
    from django.conf import settings

    return Path(settings.MEDIA_ROOT)


def series_folder(series_uid: str) -> str:
    """Folder of a series relative to MEDIA_ROOT; a digest, so no UID appears in a path."""
    return f"series/{hashlib.sha256(series_uid.encode()).hexdigest()[:24]}"


def _stored_integers(real: np.ndarray, slices: list[SliceGeometry]) -> tuple[np.ndarray, float, float, bool]:
    """(stored integer values, slope, intercept, requantised) for real values (frames, rows, cols) float32."""
    slopes = {g.rescale_slope for g in slices}
    intercepts = {g.rescale_intercept for g in slices}
    if len(slopes) == 1 and len(intercepts) == 1 and real.size:
        slope, intercept = slopes.pop(), intercepts.pop()
        if slope == 1.0 and intercept == 0.0:  # the usual MR case: the values are the stored integers
            stored = real
        else:
            stored = np.rint((real - np.float32(intercept)) / np.float32(slope))
        low, high = float(stored.min()), float(stored.max())
        exact = slope == 1.0 and intercept == 0.0 and np.array_equal(stored, np.rint(stored))
        if not exact:
            tolerance = 1e-3 * max(1.0, abs(slope))
            exact = (
                float(np.max(np.abs(stored * np.float32(slope) + np.float32(intercept) - real))) <= tolerance
            )
        if exact and low >= -32768 and high - min(low, 0.0) <= 65535:
            return stored.astype(np.int32), float(slope), float(intercept), False
    low, high = (float(real.min()), float(real.max())) if real.size else (0.0, 0.0)
    slope = (high - low) / 65535.0 if high > low else 1.0
    stored = np.rint((real.astype(np.float64) - low) / slope).astype(np.int32)
    return stored, slope, low, True


def encode_series(
    frames: list[np.ndarray], slices: list[SliceGeometry], instance_numbers: list[int | None]
) -> tuple[volumes.EncodedVolume, list[int]]:
    """Order the frames of one series for display and encode them (``imaging.volumes``).

    frames: one (rows, cols) float32 array per frame; slices: its geometry; returns the encoded
    volume and the display order (indices into the inputs).
    """
    n = len(frames)
    orientation = next((g.orientation for g in slices if g.orientation is not None), None)
    positions = [g.position_mm for g in slices]
    geometry = "dicom"
    if orientation is None or any(p is None for p in positions):
        geometry = "assumed (no ImagePositionPatient / ImageOrientationPatient)"
        orientation = _AXIAL
        step = next((g.slice_thickness_mm for g in slices if g.slice_thickness_mm), 1.0)
        by_number = sorted(range(n), key=lambda i: (instance_numbers[i] or 0, i))
        rank = {i: r for r, i in enumerate(by_number)}
        positions = [(0.0, 0.0, rank[i] * step) for i in range(n)]
    temporal = [g.temporal_position or 1 for g in slices]
    numbers = [v if v is not None else i for i, v in enumerate(instance_numbers)]
    order = [
        int(i)
        for i in volumes.slice_order(
            np.asarray(positions, dtype=np.float64),
            orientation,
            temporal_positions=temporal,
            instance_numbers=numbers,
        )
    ]
    ordered = [slices[i] for i in order]
    real = np.stack([frames[i] for i in order]).astype(np.float32)
    stored, slope, intercept, requantised = _stored_integers(real, ordered)
    first = ordered[0]
    voi = volumes.voi_window(first.window_center, first.window_width)
    spacing = first.pixel_spacing_mm or (1.0, 1.0)
    phases = sorted(set(temporal))
    encoded = volumes.encode_volume(
        stored,
        pixel_spacing=spacing,
        slice_positions=np.asarray([positions[i] for i in order]),
        orientation=orientation,
        slice_thickness=first.slice_thickness_mm,
        rescale_slope=slope,
        rescale_intercept=intercept,
        voi=voi,
        temporal_positions=[temporal[i] for i in order] if len(phases) > 1 else None,
    )
    encoded.meta.update(
        {
            "instance_numbers": [instance_numbers[i] for i in order],
            "phases": len(phases),
            "geometry": geometry if first.pixel_spacing_mm else f"{geometry}; pixel spacing assumed 1 mm",
            "requantised": requantised,
        }
    )
    return encoded, order


def write_volume(series_uid: str, encoded: volumes.EncodedVolume) -> tuple[str, str]:
    """Write volume and metadata; returns (volume path relative to MEDIA_ROOT, sha256 of the raw volume)."""
    folder = series_folder(series_uid)
    target = _media_root() / folder
    target.mkdir(parents=True, exist_ok=True)
    compressed = gzip.compress(encoded.data, compresslevel=1, mtime=0)
    atomic_write_bytes(target / VOLUME_FILE, compressed)
    atomic_write_bytes(target / META_FILE, json.dumps(encoded.meta, sort_keys=True).encode())
    return f"{folder}/{VOLUME_FILE}", hashlib.sha256(encoded.data).hexdigest()


def volume_file(series) -> Path:
    """Absolute path of a Series' compressed volume file."""
    return _media_root() / series.volume_path


def read_stored(series) -> np.ndarray:
    """A Series' stored values, (frames, rows, cols) uint16; real values need meta['rescale']."""
    data = gzip.decompress(volume_file(series).read_bytes())
    return volumes.decode_volume(data, series.meta)


def majority_shape(shapes: list[tuple[int, int]]) -> tuple[int, int]:
    return Counter(shapes).most_common(1)[0][0]
