"""Images of one SYNTHETIC phantom patient: every series sampled from the same 3-D pelvis.

``render_patient(plan, seed=...)`` returns stored pixel values (uint16, 12 bits), the tumour mask
and box per instance, and the acquisition header of every series. The slab of each plane is
centred on the tumour (with jitter), so each series shows it on several slices. No DICOM here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from imaging import phantom_anatomy as anatomy_mod
from imaging.phantom_plan import PatientPlan
from imaging.phantom_protocols import (
    LOCALIZER,
    MAX_B_VALUE,
    PROTOCOLS,
    SITE_BY_KEY,
    Protocol,
    acquisition_header,
)

DYNAMIC_PHASES = 4
# Field of view (mm) and slice thickness / spacing (mm) per plane.
_FOV_MM = {"axial": 360.0, "sagittal": 300.0, "coronal": 360.0}
_SLICE_MM = {"axial": (5.0, 6.0), "sagittal": (4.0, 4.8), "coronal": (5.0, 6.0)}
# Row direction, column direction (DICOM ImageOrientationPatient), LPS.
_ORIENTATION = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
}


@dataclass(frozen=True, eq=False)
class SliceGeometry:
    """A stack of parallel slices. Positions (n, 3) mm are the first-pixel centres (ImagePositionPatient)."""

    plane: str
    rows: int
    cols: int
    pixel_spacing: tuple[float, float]     # (between rows, between columns) mm, as DICOM PixelSpacing
    row_dir: tuple[float, float, float]
    col_dir: tuple[float, float, float]
    positions: np.ndarray
    thickness: float
    spacing: float

    @property
    def orientation(self) -> list[float]:
        return [*self.row_dir, *self.col_dir]

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_dir, self.col_dir)

    def points(self) -> np.ndarray:
        """(slices, rows, cols, 3) pixel centres in mm."""
        i = np.arange(self.rows, dtype=np.float32)[:, None, None] * self.pixel_spacing[0]
        j = np.arange(self.cols, dtype=np.float32)[None, :, None] * self.pixel_spacing[1]
        in_plane = j * np.asarray(self.row_dir, np.float32) + i * np.asarray(self.col_dir, np.float32)
        return self.positions.astype(np.float32)[:, None, None, :] + in_plane[None]


def slice_geometry(plane: str, centre: np.ndarray, *, size: int, slices: int) -> SliceGeometry:
    """Slices of ``plane`` centred on ``centre`` (mm), ``size`` × ``size`` pixels."""
    row_dir, col_dir = (np.array(v) for v in _ORIENTATION[plane])
    normal = np.cross(row_dir, col_dir)
    spacing_px = _FOV_MM[plane] / size
    thickness, spacing = _SLICE_MM[plane]
    corner = centre - (size - 1) / 2 * spacing_px * (row_dir + col_dir)
    offsets = (np.arange(slices) - (slices - 1) / 2) * spacing
    positions = corner[None, :] + offsets[:, None] * normal[None, :]
    return SliceGeometry(plane=plane, rows=size, cols=size, pixel_spacing=(spacing_px, spacing_px),
                         row_dir=tuple(row_dir), col_dir=tuple(col_dir), positions=np.round(positions, 4),
                         thickness=thickness, spacing=spacing)


@dataclass
class RenderedSeries:
    """Pixels and truth of one series. ``stored``: (instances, rows, cols) uint16 stored values."""

    code: str                              # sequence code, or LOCALIZER
    protocol: Protocol
    geometries: list[SliceGeometry]        # one per instance for the localizer, else one
    stored: np.ndarray
    temporal_positions: list[int]          # per instance, 1-based (1 for non-dynamic)
    slice_indices: list[int]               # per instance, index into the geometry's positions
    boxes: list[tuple[int, int, int, int] | None]   # per instance (x0, y0, x1, y1), None = no tumour
    tumour_masks: np.ndarray | None        # (instances, rows, cols) bool, for tests
    rescale_slope: float
    window: tuple[float, float] | None     # (center, width) in real values, or None = no VOI
    header: dict[str, object]


@dataclass
class RenderedPatient:
    plan: PatientPlan
    anatomy: anatomy_mod.Anatomy
    series: list[RenderedSeries] = field(default_factory=list)


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _acquire(signal: np.ndarray, rng: np.random.Generator, *, weighting: str, gain: float,
             slope: float, air: np.ndarray) -> np.ndarray:
    """Blur (partial volume), scale, add Rician noise; return 12-bit stored values (uint16)."""
    blur = 0.9 if weighting in ("DWI", "ADC") else 0.6
    signal = ndimage.gaussian_filter(signal, sigma=(0, blur, blur), mode="nearest")
    if weighting == "ADC":
        noise = rng.standard_normal(signal.shape, dtype=np.float32) * 45.0
        real = np.where(air, 0.0, np.maximum(signal * 1000.0 + noise, 0.0))  # 10^-6 mm²/s, Siemens style
    else:
        sigma = {"T2": 0.015, "T1": 0.018, "DWI": 0.03}[weighting]
        noise = rng.standard_normal((2, *signal.shape), dtype=np.float32) * sigma
        real = gain * np.hypot(signal + noise[0], noise[1])
    return np.clip(np.rint(real / slope), 0, 4095).astype(np.uint16)


def _scanner_window(real: np.ndarray) -> tuple[float, float]:
    """A VOI like scanners write: covering the 1st-99th percentile of non-air values."""
    values = real[real > 0]
    if values.size == 0:
        return 500.0, 1000.0
    low, high = np.percentile(values, [1.0, 99.0])
    return float(round((low + high) / 2)), float(max(round(high - low), 1))


def render_patient(plan: PatientPlan, *, seed: int, slice_size: int = 128,
                   slices_per_series: int = 16) -> RenderedPatient:
    """Images, boxes and tumour masks of every series of one patient. Deterministic for the arguments."""
    rng = np.random.default_rng([seed, plan.index, 2])
    anatomy = anatomy_mod.sample_anatomy(
        rng, dimensions_mm=plan.dimensions_mm, s=plan.sarcoma_likeness,
        irregular_margin=bool(plan.irregular_margin), hemorrhage=plan.hemorrhage)
    site = SITE_BY_KEY[plan.site]
    slope = float(site.rescale_slopes[int(rng.integers(len(site.rescale_slopes)))])
    tumour_centre = anatomy.tumour.centre
    centre = np.array([0.0, anatomy.body_centre_y, tumour_centre[2]])
    jitter = rng.uniform(-8, 8, size=3)
    # One slab per plane, shared by the series in that plane (as on a real exam, near enough).
    plane_centres = {
        "axial": np.array([centre[0], centre[1], tumour_centre[2] + jitter[2]]),
        "sagittal": np.array([tumour_centre[0] + jitter[0], centre[1], centre[2]]),
        "coronal": np.array([centre[0], tumour_centre[1] + jitter[1], centre[2]]),
    }
    geometries = {plane: slice_geometry(plane, c, size=slice_size, slices=slices_per_series)
                  for plane, c in plane_centres.items()}
    maps_cache: dict[str, anatomy_mod.TissueMaps] = {}

    def maps_for(plane: str) -> anatomy_mod.TissueMaps:
        if plane not in maps_cache:
            maps_cache[plane] = anatomy_mod.render_tissues(anatomy, geometries[plane].points())
        return maps_cache[plane]

    patient = RenderedPatient(plan=plan, anatomy=anatomy)
    patient.series.append(_render_localizer(anatomy, rng, plan, slice_size=slice_size, slope=slope))
    for code in plan.sequences:
        protocol = PROTOCOLS[code]
        maps = maps_for(protocol.plane)
        phases = DYNAMIC_PHASES if protocol.dynamic else 1
        stored_phases, real_phases = [], []
        gain = rng.uniform(1500, 2300)
        air = maps.labels == anatomy_mod.AIR
        for phase in range(phases):
            fraction = (phase / (phases - 1)) if protocol.dynamic else (1.0 if protocol.contrast else 0.0)
            signal = anatomy_mod.contrast_signal(
                maps, anatomy.tumour, weighting=protocol.weighting, fat_suppressed=protocol.fat_suppressed,
                contrast_fraction=fraction, b_value=MAX_B_VALUE[plan.naming_style])
            stored = _acquire(signal, rng, weighting=protocol.weighting, gain=gain, slope=slope, air=air)
            stored_phases.append(stored)
            real_phases.append(stored.astype(np.float32) * slope)
        tumour = np.isin(maps.labels, anatomy_mod.TUMOUR_LABELS)
        n = tumour.shape[0]
        window = _scanner_window(np.concatenate(real_phases)) if rng.random() > 0.1 else None
        patient.series.append(RenderedSeries(
            code=code, protocol=protocol, geometries=[geometries[protocol.plane]],
            stored=np.concatenate(stored_phases),
            temporal_positions=[p + 1 for p in range(phases) for _ in range(n)],
            slice_indices=list(range(n)) * phases, boxes=[_box(tumour[k]) for k in range(n)] * phases,
            tumour_masks=np.concatenate([tumour] * phases), rescale_slope=slope, window=window,
            header=acquisition_header(protocol, plan.naming_style, rng),
        ))
    return patient


def _render_localizer(anatomy: anatomy_mod.Anatomy, rng: np.random.Generator, plan: PatientPlan, *,
                      slice_size: int, slope: float) -> RenderedSeries:
    """A three-plane scout through the uterus: one axial, one sagittal, one coronal image."""
    protocol = PROTOCOLS[LOCALIZER]
    centre = np.array([0.0, anatomy.body_centre_y, anatomy.uterus_centre[2]])
    geometries, images = [], []
    gain = rng.uniform(1200, 1800)
    for plane in ("axial", "sagittal", "coronal"):
        geometry = slice_geometry(plane, centre, size=slice_size, slices=1)
        maps = anatomy_mod.render_tissues(anatomy, geometry.points())
        signal = anatomy_mod.contrast_signal(maps, anatomy.tumour, weighting="T1", fat_suppressed=False)
        images.append(_acquire(signal, rng, weighting="T1", gain=gain, slope=slope,
                               air=maps.labels == anatomy_mod.AIR))
        geometries.append(geometry)
    return RenderedSeries(
        code=LOCALIZER, protocol=protocol, geometries=geometries, stored=np.concatenate(images),
        temporal_positions=[1, 1, 1], slice_indices=[0, 0, 0], boxes=[None, None, None], tumour_masks=None,
        rescale_slope=slope, window=None, header=acquisition_header(protocol, plan.naming_style, rng),
    )
