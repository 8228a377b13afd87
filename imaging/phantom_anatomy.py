"""A simple female pelvis with one uterine tumour, for the SYNTHETIC phantom cohort.

Geometry is analytic and lives in patient coordinates (DICOM LPS, millimetres; origin near the
uterus): an elliptic body cylinder with a subcutaneous fat ring, visceral fat, muscles, bone
marrow, rectum, bladder, an anteverted uterus with endometrium, and one tumour inside the uterus.
Any image plane can be sampled from it, so every series of a patient shows the same tumour.

Tumour appearance follows the radiology the paper relies on (METHOD §1):

- leiomyoma: well-defined, homogeneous, low T2 signal, no restricted diffusion;
- sarcoma: irregular margin, heterogeneous, intermediate-high T2, necrosis, restricted diffusion
  (high DWI, low ADC), early enhancement;
- degenerated leiomyoma: moves towards the sarcoma look, by an amount set by ``difficulty``.

All of it is driven by one number per tumour, the *sarcoma-likeness* ``s`` in [0, 1], plus small
independent jitter per feature, so the classes are learnable but overlap when ``difficulty`` is high.

No Django import; NumPy/SciPy in, NumPy out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

# Tissue labels of the label volume (uint8).
(AIR, SUBCUT_FAT, VISCERAL_FAT, MUSCLE, MARROW, RECTUM, BLADDER, MYOMETRIUM, ENDOMETRIUM, TUMOUR,
 NECROSIS) = range(11)
TUMOUR_LABELS = (TUMOUR, NECROSIS)
FAT_LABELS = (SUBCUT_FAT, VISCERAL_FAT, MARROW)
N_LABELS = 11

# Per-tissue relative signal: T2-weighted, T1-weighted, ADC (10^-3 mm²/s), peak enhancement
# (added to T1 signal after contrast), uptake speed (dynamic curve shape). Tumour rows are
# placeholders replaced per patient.
_TISSUE_TABLE = np.array([
    # T2    T1    ADC   enh   speed
    [0.00, 0.00, 0.00, 0.00, 0.0],   # air
    [0.72, 0.90, 0.05, 0.00, 0.0],   # subcutaneous fat
    [0.66, 0.84, 0.10, 0.04, 0.3],   # visceral fat
    [0.17, 0.32, 1.40, 0.14, 0.4],   # muscle
    [0.50, 0.70, 0.40, 0.05, 0.3],   # bone marrow
    [0.24, 0.30, 1.20, 0.30, 0.6],   # rectum
    [0.95, 0.08, 3.00, 0.00, 0.0],   # bladder (urine)
    [0.48, 0.38, 1.60, 0.50, 0.7],   # myometrium
    [0.82, 0.38, 1.40, 0.30, 0.4],   # endometrium
    [0.20, 0.36, 1.15, 0.35, 0.4],   # tumour (solid part) — replaced per patient
    [0.90, 0.16, 2.50, 0.00, 0.0],   # necrosis / cystic degeneration
], dtype=np.float32)


@dataclass(frozen=True, eq=False)
class TumourSpec:
    """One tumour: geometry (mm, LPS) and appearance (relative signal units, ADC in 10^-3 mm²/s)."""

    centre: np.ndarray            # (3,) mm
    semi_axes: np.ndarray         # (3,) mm, = (length, width, height) / 2 in tumour axes
    rotation: np.ndarray          # (3, 3) tumour axes -> patient axes
    t2: float
    t1: float
    adc: float
    enhancement: float
    uptake_speed: float
    heterogeneity: float          # relative amplitude of the texture, 0 = homogeneous
    irregularity: float           # relative amplitude of the margin lobulation, 0 = smooth ellipsoid
    necrosis: float               # radius of the necrotic/cystic core as a fraction of the tumour, 0 = none
    hemorrhage: bool              # T1-bright foci in the solid part
    lobes: np.ndarray             # (J, 3) unit directions of the margin lobes
    lobe_weights: np.ndarray      # (J,) signed lobe amplitudes
    texture_grid: np.ndarray      # (3, G, G, G) smooth-noise control points (texture, necrosis, hemorrhage)


@dataclass(frozen=True, eq=False)
class Anatomy:
    """One patient's pelvis. Lengths in mm (LPS: x to the patient's left, y posterior, z head)."""

    body_semi: tuple[float, float]
    body_centre_y: float
    fat_thickness: float
    bladder_centre: np.ndarray
    bladder_semi: np.ndarray
    uterus_centre: np.ndarray
    uterus_semi: np.ndarray
    uterus_rotation: np.ndarray
    tumour: TumourSpec
    cross_section: np.ndarray = field(default=None, repr=False)  # (512, 512) uint8 labels, 1 mm, y-major

    def __post_init__(self) -> None:
        if self.cross_section is None:
            object.__setattr__(self, "cross_section", _cross_section_raster(self))


def rotation_matrix(rng: np.random.Generator, max_degrees: float = 30.0) -> np.ndarray:
    """A random rotation (3, 3) with each Euler angle within ±max_degrees."""
    a, b, c = np.deg2rad(rng.uniform(-max_degrees, max_degrees, size=3))
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _lerp(a: float, b: float, t: float) -> float:
    return float(a + (b - a) * min(max(t, 0.0), 1.0))


def tumour_appearance(s: float, rng: np.random.Generator, *, irregular_margin: bool) -> dict[str, float]:
    """Appearance parameters from sarcoma-likeness ``s`` (0 = classic leiomyoma, 1 = classic sarcoma).

    Each feature gets its own jitter (SD 0.08 in ``s`` units) so the features are correlated but
    not identical, as on real images.
    """

    def jittered() -> float:
        return float(np.clip(s + rng.normal(0.0, 0.08), 0.0, 1.0))

    irregularity = _lerp(0.02, 0.30, jittered())
    if irregular_margin:
        irregularity = max(irregularity, rng.uniform(0.15, 0.25))
    return {
        "t2": _lerp(0.16, 0.60, jittered()),
        "t1": _lerp(0.34, 0.40, jittered()),
        "adc": _lerp(1.20, 0.75, jittered()),
        "enhancement": _lerp(0.30, 0.55, jittered()),
        "uptake_speed": _lerp(0.35, 0.90, jittered()),
        "heterogeneity": _lerp(0.04, 0.30, jittered()),
        "irregularity": irregularity,
        "necrosis": 0.7 * max(0.0, (jittered() - 0.3) / 0.7),
    }


def sample_anatomy(rng: np.random.Generator, *, dimensions_mm: tuple[float, float, float], s: float,
                   irregular_margin: bool, hemorrhage: bool) -> Anatomy:
    """Draw one pelvis around a tumour of the given full dimensions (length, width, height in mm)."""
    semi = np.asarray(dimensions_mm, dtype=np.float64) / 2.0
    tumour_rotation = rotation_matrix(rng, 35.0)
    extent = np.abs(tumour_rotation) @ semi  # half-extent of the tumour along the patient axes
    uterus_rotation = rotation_matrix(rng, 8.0) @ _rot_x(np.deg2rad(rng.uniform(-35, -10)))
    uterus_semi = np.maximum(np.array([rng.uniform(38, 48), rng.uniform(28, 36), rng.uniform(45, 60)]),
                             extent + rng.uniform(8, 14))
    uterus_centre = np.array([rng.uniform(-8, 8), rng.uniform(-5, 8), rng.uniform(-5, 10)])
    room = np.maximum(uterus_semi - extent - 6.0, 0.0)
    tumour_centre = uterus_centre + rng.uniform(-1, 1, size=3) * np.minimum(room, 15.0)
    body_semi = (float(max(rng.uniform(150, 185), uterus_semi[0] + 60)),
                 float(max(rng.uniform(110, 135), uterus_semi[1] + 55)))
    appearance = tumour_appearance(s, rng, irregular_margin=irregular_margin)
    n_lobes = 9
    lobes = rng.normal(size=(n_lobes, 3))
    lobes /= np.linalg.norm(lobes, axis=1, keepdims=True)
    tumour = TumourSpec(
        centre=tumour_centre, semi_axes=semi, rotation=tumour_rotation,
        hemorrhage=hemorrhage, lobes=lobes, lobe_weights=rng.uniform(-1, 1, size=n_lobes),
        texture_grid=rng.normal(size=(3, 7, 7, 7)).astype(np.float32), **appearance,
    )
    return Anatomy(
        body_semi=body_semi, body_centre_y=float(rng.uniform(5, 15)),
        fat_thickness=float(rng.uniform(12, 35)),
        bladder_centre=np.array([rng.uniform(-6, 6), uterus_centre[1] - uterus_semi[1] - rng.uniform(10, 25),
                                 uterus_centre[2] - rng.uniform(35, 55)]),
        bladder_semi=np.array([rng.uniform(30, 45), rng.uniform(18, 28), rng.uniform(20, 32)]),
        uterus_centre=uterus_centre, uterus_semi=uterus_semi, uterus_rotation=uterus_rotation, tumour=tumour,
    )


def _rot_x(angle: float) -> np.ndarray:
    return np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])


@dataclass(frozen=True, eq=False)
class TissueMaps:
    """Labels and tumour fields on a sampling grid of shape (slices, rows, cols)."""

    labels: np.ndarray        # uint8 tissue labels
    texture: np.ndarray       # float32 smooth noise (~N(0, 1)) inside the tumour, 0 elsewhere
    hemorrhage: np.ndarray    # bool, T1-bright foci in the solid tumour


def _inside_ellipsoid(points: np.ndarray, centre: np.ndarray, semi: np.ndarray,
                      rotation: np.ndarray | None = None) -> np.ndarray:
    local = points - centre.astype(np.float32)
    if rotation is not None:
        local = local @ rotation.astype(np.float32)  # patient -> local axes (rotation is local -> patient)
    local /= semi.astype(np.float32)
    return np.einsum("...i,...i->...", local, local) < 1.0


def _sample_grid(grid: np.ndarray, q: np.ndarray, reach: float) -> np.ndarray:
    """Trilinear sample of a (G, G, G) noise grid at normalised tumour coordinates q in [-reach, reach]."""
    g = grid.shape[0]
    coords = (q + reach) / (2 * reach) * (g - 1)
    return ndimage.map_coordinates(grid, coords.T, order=1, mode="nearest")


def cross_section_labels(x: np.ndarray, y: np.ndarray, *, body_semi: tuple[float, float],
                         body_centre_y: float, fat_thickness: float, rectum_y: float) -> np.ndarray:
    """Labels of the structures that run feet-to-head (body, fat, muscles, bone, rectum) at (x, y) mm."""
    ax, ay = body_semi
    yc = y - body_centre_y
    labels = np.zeros(x.shape, dtype=np.uint8)
    body = (x / ax) ** 2 + (yc / ay) ** 2 < 1.0
    labels[body] = SUBCUT_FAT
    t = fat_thickness
    inner = (x / (ax - t)) ** 2 + (yc / (ay - t)) ** 2 < 1.0
    labels[inner] = VISCERAL_FAT
    # Muscles (gluteal, iliopsoas, rectus) and bone, as elliptic columns in the body.
    for cx, cy, sx, sy, label in (
        (-0.45, 0.62, 0.30, 0.28, MUSCLE), (0.45, 0.62, 0.30, 0.28, MUSCLE),
        (-0.50, 0.05, 0.13, 0.20, MUSCLE), (0.50, 0.05, 0.13, 0.20, MUSCLE),
        (-0.16, -0.80, 0.12, 0.07, MUSCLE), (0.16, -0.80, 0.12, 0.07, MUSCLE),
        (-0.64, 0.28, 0.11, 0.15, MARROW), (0.64, 0.28, 0.11, 0.15, MARROW),
        (0.0, 0.78, 0.16, 0.12, MARROW),
    ):
        region = ((x - cx * ax) / (sx * ax)) ** 2 + ((yc - cy * ay) / (sy * ay)) ** 2 < 1.0
        labels[region & body] = label
    rectum = (x / 16.0) ** 2 + ((y - rectum_y) / 14.0) ** 2 < 1.0
    labels[rectum & inner] = RECTUM
    return labels


# The cross-section is rasterised once per patient at 1 mm and looked up per pixel: nine ellipse
# tests on every voxel of every plane were the slowest step of cohort generation.
_RASTER_HALF_MM = 256


def _cross_section_raster(anatomy: Anatomy) -> np.ndarray:
    centres = np.arange(-_RASTER_HALF_MM, _RASTER_HALF_MM, dtype=np.float32) + 0.5
    y, x = np.meshgrid(centres, centres, indexing="ij")
    return cross_section_labels(
        x, y, body_semi=anatomy.body_semi, body_centre_y=anatomy.body_centre_y,
        fat_thickness=anatomy.fat_thickness,
        rectum_y=float(anatomy.uterus_centre[1] + anatomy.uterus_semi[1] + 22))


def render_tissues(anatomy: Anatomy, points: np.ndarray) -> TissueMaps:
    """Tissue labels at ``points`` (..., 3) in mm (LPS); returns maps of shape ``points.shape[:-1]``."""
    shape = points.shape[:-1]
    last = 2 * _RASTER_HALF_MM - 1
    ix = np.clip(np.floor(points[..., 0] + _RASTER_HALF_MM).astype(np.int32), 0, last)
    iy = np.clip(np.floor(points[..., 1] + _RASTER_HALF_MM).astype(np.int32), 0, last)
    labels = anatomy.cross_section[iy, ix]
    labels[_inside_ellipsoid(points, anatomy.bladder_centre, anatomy.bladder_semi)] = BLADDER
    uterus = anatomy.uterus_centre, anatomy.uterus_rotation
    labels[_inside_ellipsoid(points, uterus[0], anatomy.uterus_semi, uterus[1])] = MYOMETRIUM
    endometrium_semi = np.array([0.35, 0.12, 0.75]) * anatomy.uterus_semi
    labels[_inside_ellipsoid(points, uterus[0], endometrium_semi, uterus[1])] = ENDOMETRIUM

    texture = np.zeros(shape, dtype=np.float32)
    hemorrhage = np.zeros(shape, dtype=bool)
    tumour = anatomy.tumour
    reach = 1.0 + 2.0 * tumour.irregularity + 0.05
    local = (points - tumour.centre.astype(np.float32)) @ tumour.rotation.astype(np.float32)
    local /= tumour.semi_axes.astype(np.float32)
    near = np.all(np.abs(local) < reach, axis=-1)
    if near.any():
        q = local[near]
        rho = np.linalg.norm(q, axis=-1)
        direction = q / np.maximum(rho, 1e-6)[:, None]
        # Lobulated margin: sum of von-Mises-like bumps on the sphere of directions.
        bumps = np.exp(6.0 * (direction @ tumour.lobes.T - 1.0)) @ tumour.lobe_weights
        boundary = 1.0 + tumour.irregularity * np.clip(bumps, -1.5, 1.5)
        inside = rho < boundary
        noise = np.stack([_sample_grid(tumour.texture_grid[i], q, reach) for i in range(3)])
        noise /= 0.55  # trilinear averaging shrinks the SD of the control points
        core = rho < tumour.necrosis * (1.0 + 0.35 * noise[1])
        tumour_labels = np.where(core, NECROSIS, TUMOUR).astype(np.uint8)
        sub = labels[near]
        sub[inside] = tumour_labels[inside]
        labels[near] = sub
        tex = np.zeros(q.shape[0], dtype=np.float32)
        tex[inside] = noise[0][inside]
        texture[near] = tex
        if tumour.hemorrhage:
            hem = np.zeros(q.shape[0], dtype=bool)
            hem[inside] = (noise[2][inside] > 1.2) & ~core[inside]
            hemorrhage[near] = hem
    return TissueMaps(labels=labels, texture=texture, hemorrhage=hemorrhage)


def tissue_table(tumour: TumourSpec) -> np.ndarray:
    """(N_LABELS, 5) signal table with this patient's tumour row filled in."""
    table = _TISSUE_TABLE.copy()
    table[TUMOUR] = (tumour.t2, tumour.t1, tumour.adc, tumour.enhancement, tumour.uptake_speed)
    return table


def contrast_signal(maps: TissueMaps, tumour: TumourSpec, *, weighting: str, fat_suppressed: bool,
                    contrast_fraction: float = 0.0, b_value: float = 800.0) -> np.ndarray:
    """Noise-free signal (float32, same shape as the maps) for one kind of image.

    weighting: "T2", "T1", "DWI" (trace at ``b_value`` s/mm², T2 shine-through included) or
    "ADC" (in 10^-3 mm²/s). contrast_fraction: 0 before gadolinium, 1 at peak enhancement; for
    dynamic phases it is the phase's fraction of the uptake curve, scaled by each tissue's speed.
    Relative signals are about 0..1; ADC about 0..3.
    """
    table = tissue_table(tumour)
    labels = maps.labels
    t2 = table[labels, 0]
    solid = labels == TUMOUR
    texture = 1.0 + tumour.heterogeneity * maps.texture
    if weighting == "T2":
        signal = t2 * np.where(solid, texture, 1.0)
    elif weighting == "T1":
        signal = table[labels, 1].copy()
        if contrast_fraction > 0:
            speed = table[labels, 4]
            if contrast_fraction < 1:
                uptake = 1.0 - np.exp(-3.0 * speed * contrast_fraction)
            else:
                uptake = np.ones_like(speed)
            signal += table[labels, 3] * uptake * np.where(solid, texture, 1.0)
        signal = np.where(maps.hemorrhage, signal + 0.35, signal)
    elif weighting in ("DWI", "ADC"):
        adc = table[labels, 2] * np.where(solid, 1.0 - 0.5 * tumour.heterogeneity * maps.texture, 1.0)
        if weighting == "ADC":
            return adc.astype(np.float32)
        signal = t2 * np.where(solid, texture, 1.0) * np.exp(-b_value * adc * 1e-3) / 0.45
        fat_suppressed = True  # EPI diffusion is always fat-suppressed
    else:
        raise ValueError(f"unknown weighting {weighting!r}; expected T2, T1, DWI or ADC")
    if fat_suppressed:
        signal = np.where(np.isin(labels, FAT_LABELS), signal * 0.08, signal)
    return signal.astype(np.float32)
