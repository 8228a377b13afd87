"""A series as the browser viewer receives it, and 8-bit windowing for stored slices (METHOD §3).

Viewer format (DESIGN "The viewer is a small vanilla-JavaScript canvas viewer"): one binary
volume of uint16 little-endian values, frames × rows × columns in C order, plus JSON-able
metadata (shape, spacing, slice positions, orientation, rescale, default window). Never DICOM
headers. The browser applies rescale and window/level to the 16-bit values itself.

Windowing (METHOD §3): the DICOM VOI (WindowCenter/WindowWidth) when present, else the per-series
0.5–99.5 percentiles, mapped linearly to 0..255 (values below the window go to 0, above to 255).

Shapes: ``stored`` is (frames, rows, cols) of stored pixel values; "real" values are
``stored × slope + intercept`` (Modality LUT). Positions in mm (DICOM patient coordinates, LPS).
No Django import.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imaging.dicom_values import first_float

FORMAT = "uint16-le"
PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class Window:
    """A linear display window in real (rescaled) units; ``source`` is "voi" or "percentile"."""

    center: float
    width: float
    source: str

    @property
    def low(self) -> float:
        return self.center - self.width / 2.0

    @property
    def high(self) -> float:
        return self.center + self.width / 2.0

    def to_dict(self) -> dict[str, Any]:
        return {"center": self.center, "width": self.width, "source": self.source}


def real_values(stored: np.ndarray, slope: float = 1.0, intercept: float = 0.0) -> np.ndarray:
    """Stored values to real values (float32), the DICOM Modality LUT."""
    return stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def percentile_window(real: np.ndarray, low: float = PERCENTILES[0], high: float = PERCENTILES[1]) -> Window:
    """Window spanning the ``low``–``high`` percentiles of all values of a series (METHOD §3)."""
    if real.size == 0:
        raise ValueError("percentile window: the series has no pixels")
    p_low, p_high = (float(v) for v in np.percentile(real, [low, high]))
    width = p_high - p_low
    if width <= 0:  # flat image: any non-zero width shows it as one grey
        width = 1.0
    return Window(center=(p_low + p_high) / 2.0, width=width, source="percentile")


def voi_window(center: Any, width: Any) -> Window | None:
    """The first VOI window from WindowCenter/WindowWidth values (possibly multi-valued), or None
    when absent or unusable (missing, not a number, width <= 0)."""

    c, w = first_float(center), first_float(width)
    if c is None or w is None or w <= 0:
        return None
    return Window(center=c, width=w, source="voi")


def series_window(stored: np.ndarray, *, slope: float = 1.0, intercept: float = 0.0,
                  voi: Window | None = None) -> Window:
    """The default window of a series: its VOI when present, else its 0.5–99.5 percentiles."""
    return voi if voi is not None else percentile_window(real_values(stored, slope, intercept))


def window_to_uint8(real: np.ndarray, window: Window) -> np.ndarray:
    """Map real values linearly to 0..255 through ``window`` (clipped), as uint8 of the same shape."""
    scaled = (real.astype(np.float32) - np.float32(window.low)) / np.float32(window.width)
    return np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def series_to_uint8(stored: np.ndarray, *, slope: float = 1.0, intercept: float = 0.0,
                    voi: Window | None = None) -> tuple[np.ndarray, Window]:
    """8-bit slices of a whole series (frames, rows, cols) and the window used (METHOD §3)."""
    real = real_values(stored, slope, intercept)
    window = voi if voi is not None else percentile_window(real)
    return window_to_uint8(real, window), window


# ------------------------------------------------------------------------------------------------
# Viewer volume
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EncodedVolume:
    """``data``: uint16 little-endian bytes, C order (frames, rows, cols); ``meta``: JSON-able dict."""

    data: bytes
    meta: dict[str, Any]


def slice_normal(orientation: Sequence[float]) -> np.ndarray:
    """Unit normal (3,) of the slices: row direction × column direction."""
    o = np.asarray(orientation, dtype=np.float64)
    if o.shape != (6,):
        raise ValueError(f"orientation: expected 6 direction cosines, got {o.size}")
    normal = np.cross(o[:3], o[3:])
    norm = np.linalg.norm(normal)
    if norm < 1e-6:
        raise ValueError("orientation: row and column directions are parallel")
    return normal / norm


def slice_order(positions: np.ndarray, orientation: Sequence[float], *,
                temporal_positions: Sequence[int] | None = None,
                instance_numbers: Sequence[int] | None = None) -> np.ndarray:
    """Frame order: by temporal position (dynamic phases), then location along the normal, then
    InstanceNumber. Returns indices into the inputs. Times are removed at de-identification, so
    phases are ordered by TemporalPositionIdentifier (DESIGN)."""
    positions = np.asarray(positions, dtype=np.float64)
    locations = positions @ slice_normal(orientation)
    n = positions.shape[0]
    temporal = np.zeros(n) if temporal_positions is None else np.asarray(temporal_positions, dtype=np.float64)
    instances = np.arange(n) if instance_numbers is None else np.asarray(instance_numbers, dtype=np.float64)
    return np.lexsort((instances, np.round(locations, 3), temporal))


def _as_uint16(stored: np.ndarray, slope: float, intercept: float) -> tuple[np.ndarray, float, float]:
    """Values as uint16 plus the (slope, intercept) that give back real values.

    Integers: shifted when signed (intercept adjusted), lossless. Floats (e.g. the modality values
    ``imaging.dicom_read`` returns) are real values after ``slope``/``intercept``: lossless when they
    are whole numbers spanning at most 65,535, else quantised linearly over their range
    (error at most half a step, range / 131,070).
    """
    if stored.size == 0:
        raise ValueError("pixels: the series has no pixels")
    if np.issubdtype(stored.dtype, np.floating):
        if not np.isfinite(stored).all():
            raise ValueError("pixels: contain NaN or infinite values")
        real = stored.astype(np.float64) * slope + intercept
        low, high = float(real.min()), float(real.max())
        if np.array_equal(real, np.round(real)) and high - min(low, 0.0) <= 65535:
            offset = min(low, 0.0)
            return (real - offset).astype("<u2"), 1.0, offset
        step = (high - low) / 65535 if high > low else 1.0
        return np.rint((real - low) / step).astype("<u2"), step, low
    if not np.issubdtype(stored.dtype, np.integer):
        raise ValueError(f"pixels: expected numbers, got {stored.dtype}")
    low, high = int(stored.min()), int(stored.max())
    offset = min(low, 0)
    if high - offset > 65535:
        raise ValueError(f"pixels: value range {low}..{high} does not fit in 16 bits")
    shifted = (stored.astype(np.int64) - offset).astype("<u2") if offset else stored.astype("<u2")
    return shifted, slope, intercept + slope * offset


def encode_volume(stored: np.ndarray, *, pixel_spacing: Sequence[float], slice_positions: np.ndarray,
                  orientation: Sequence[float], slice_thickness: float | None = None,
                  rescale_slope: float = 1.0, rescale_intercept: float = 0.0, voi: Window | None = None,
                  temporal_positions: Sequence[int] | None = None) -> EncodedVolume:
    """Encode a series for the viewer. Frames must already be in display order (see ``slice_order``).

    stored: (frames, rows, cols) integer stored values with ``rescale_slope``/``rescale_intercept``,
    or float real values (modality units, slope 1 and intercept 0; stored losslessly when whole
    numbers, else quantised to 16 bits); pixel_spacing: (between rows, between columns) mm;
    slice_positions: (frames, 3) ImagePositionPatient mm; orientation: the 6
    ImageOrientationPatient cosines; voi: the series' VOI window if it has one (real units).
    """
    stored = np.asarray(stored)
    if stored.ndim != 3:
        raise ValueError(f"pixels: expected (frames, rows, cols), got shape {stored.shape}")
    positions = np.asarray(slice_positions, dtype=np.float64).reshape(-1, 3)
    if positions.shape[0] != stored.shape[0]:
        raise ValueError(f"slice_positions: {positions.shape[0]} positions for {stored.shape[0]} frames")
    if temporal_positions is not None and len(temporal_positions) != stored.shape[0]:
        raise ValueError(f"temporal_positions: {len(temporal_positions)} values for {stored.shape[0]} frames")
    spacing = [float(v) for v in pixel_spacing]
    if len(spacing) != 2 or min(spacing) <= 0:
        raise ValueError(f"pixel_spacing: expected two positive numbers (mm), got {list(pixel_spacing)}")
    values, slope, intercept = _as_uint16(stored, float(rescale_slope), float(rescale_intercept))
    window = series_window(values, slope=slope, intercept=intercept, voi=voi)
    locations = positions @ slice_normal(orientation)
    distinct = np.unique(np.round(locations, 3))
    real_range = [float(v) * slope + intercept for v in (values.min(), values.max())]
    meta = {
        "format": FORMAT,
        "shape": [int(v) for v in values.shape],
        "pixel_spacing": spacing,
        "slice_thickness": None if slice_thickness is None else float(slice_thickness),
        "slice_spacing": float(np.median(np.diff(distinct))) if distinct.size > 1 else None,
        "slice_positions": [[round(float(v), 4) for v in p] for p in positions],
        "slice_locations": [round(float(v), 4) for v in locations],
        "orientation": [float(v) for v in orientation],
        "temporal_positions": None if temporal_positions is None else [int(t) for t in temporal_positions],
        "rescale": {"slope": float(slope), "intercept": float(intercept)},
        "window": window.to_dict(),
        "value_range": [min(real_range), max(real_range)],
    }
    return EncodedVolume(data=np.ascontiguousarray(values).tobytes(), meta=meta)


def decode_volume(data: bytes, meta: dict[str, Any]) -> np.ndarray:
    """The (frames, rows, cols) uint16 stored values back from ``encode_volume``'s output."""
    if meta.get("format") != FORMAT:
        raise ValueError(f"volume: unknown format {meta.get('format')!r}; expected {FORMAT!r}")
    shape = tuple(int(v) for v in meta["shape"])
    expected = int(np.prod(shape)) * 2
    if len(data) != expected:
        raise ValueError(f"volume: {len(data)} bytes for shape {shape}; expected {expected}")
    return np.frombuffer(data, dtype="<u2").reshape(shape)


def encode_series_datasets(datasets: Iterable[Any]) -> EncodedVolume:
    """Encode the instances of one series (pydicom Datasets with pixel data, de-identified or not).

    Orders frames with ``slice_order``; takes rescale and VOI from the first instance. Raises
    ValueError naming the instance when geometry or size disagree.
    """
    items = list(datasets)
    if not items:
        raise ValueError("series: no instances")
    first = items[0]
    rows, cols = int(first.Rows), int(first.Columns)
    pixels, positions, temporal, numbers = [], [], [], []
    for ds in items:
        label = f"instance {ds.get('InstanceNumber', '?')}"
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            raise ValueError(f"{label}: size {ds.Rows}×{ds.Columns} differs from the series' {rows}×{cols}")
        if "ImagePositionPatient" not in ds:
            raise ValueError(f"{label}: no ImagePositionPatient")
        array = ds.pixel_array
        if array.ndim != 2:
            raise ValueError(f"{label}: expected one 2-D frame, got shape {array.shape}")
        pixels.append(array)
        positions.append([float(v) for v in ds.ImagePositionPatient])
        temporal.append(int(ds.get("TemporalPositionIdentifier", 1) or 1))
        numbers.append(int(ds.get("InstanceNumber", 0) or 0))
    orientation = [float(v) for v in first.ImageOrientationPatient]
    order = slice_order(np.array(positions), orientation, temporal_positions=temporal,
                        instance_numbers=numbers)
    stored = np.stack([pixels[i] for i in order])
    dynamic = len(set(temporal)) > 1
    return encode_volume(
        stored, pixel_spacing=[float(v) for v in first.PixelSpacing],
        slice_positions=np.array(positions)[order], orientation=orientation,
        slice_thickness=float(first.SliceThickness) if first.get("SliceThickness") else None,
        rescale_slope=float(first.get("RescaleSlope", 1.0) or 1.0),
        rescale_intercept=float(first.get("RescaleIntercept", 0.0) or 0.0),
        voi=voi_window(first.get("WindowCenter"), first.get("WindowWidth")),
        temporal_positions=[temporal[i] for i in order] if dynamic else None,
    )
