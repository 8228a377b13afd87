"""Ground truth and study layout of the SYNTHETIC phantom cohort (cheap: no images).

Who is a sarcoma, which subtype, site and naming style, tumour size, leiomyoma descriptors
(degeneration, irregular margin), the sarcoma-likeness that drives the tumour's appearance, and
which sequences each patient has. Deterministic for (patients, sarcoma_fraction, seed, difficulty).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.constants import LEIOMYOMA, SARCOMA, SARCOMA_SUBTYPES
from imaging.phantom_protocols import SITES, draw_sequences

# Share of subtypes among sarcomas; leiomyosarcoma 57% as in the paper (36 of 63), the rest plausible.
_SUBTYPE_WEIGHTS = dict(zip(SARCOMA_SUBTYPES, (0.57, 0.17, 0.08, 0.06, 0.04, 0.08), strict=True))
# Leiomyoma descriptors (paper: degeneration 37.5%, irregular margin 10% of leiomyomas).
P_DEGENERATION = 0.375
P_IRREGULAR_GIVEN_DEGENERATION = 0.12
P_IRREGULAR_GIVEN_PLAIN = 0.088


@dataclass(frozen=True)
class PatientPlan:
    """Ground truth and study layout of one synthetic patient."""

    index: int
    patient_key: str
    label: str                        # core.constants.SARCOMA or LEIOMYOMA
    subtype: str
    site: str                         # "A", "B", "C"
    naming_style: str
    degeneration: bool | None         # leiomyoma descriptors; None for sarcomas
    irregular_margin: bool | None
    sarcoma_likeness: float           # 0 classic leiomyoma .. 1 classic sarcoma (drives appearance)
    dimensions_mm: tuple[float, float, float]   # length >= width, height (full axes)
    sequences: tuple[str, ...]        # codes, acquisition order
    hemorrhage: bool


def check_arguments(patients: int, sarcoma_fraction: float, difficulty: float) -> None:
    if not isinstance(patients, (int, np.integer)) or isinstance(patients, bool) or patients < 1:
        raise ValueError(f"patients: must be a whole number of at least 1, not {patients!r}")
    if not 0.0 <= float(sarcoma_fraction) <= 1.0:
        raise ValueError(f"sarcoma_fraction: must lie in [0, 1], not {sarcoma_fraction!r}")
    if not 0.0 <= float(difficulty) <= 1.0:
        raise ValueError(f"difficulty: must lie in [0, 1], not {difficulty!r}")


def plan_cohort(*, patients: int, sarcoma_fraction: float, seed: int,
                difficulty: float = 0.5) -> list[PatientPlan]:
    """Draw the cohort's ground truth and sequences (no images). Deterministic for the arguments.

    ``round(patients × sarcoma_fraction)`` patients are sarcomas. ``difficulty`` in [0, 1] sets how far
    degenerated leiomyomas move towards the sarcoma look and sarcomas towards the leiomyoma look.
    """
    check_arguments(patients, sarcoma_fraction, difficulty)
    n_sarcoma = int(round(patients * float(sarcoma_fraction)))
    order = np.random.default_rng([seed, 0xC0401]).permutation(patients)
    is_sarcoma = np.zeros(patients, dtype=bool)
    is_sarcoma[order[:n_sarcoma]] = True
    site_weights = np.array([s.weight for s in SITES])
    plans = []
    for index in range(patients):
        rng = np.random.default_rng([seed, index, 1])
        site = SITES[int(rng.choice(len(SITES), p=site_weights / site_weights.sum()))]
        style = site.naming_styles[int(rng.integers(len(site.naming_styles)))]
        if is_sarcoma[index]:
            label = SARCOMA
            subtype = str(rng.choice(list(_SUBTYPE_WEIGHTS), p=np.array(list(_SUBTYPE_WEIGHTS.values()))))
            degeneration = irregular = None
            likeness = 1.0 - difficulty * rng.uniform(0.0, 0.55)
            length = float(np.clip(rng.lognormal(np.log(85.0), 0.35), 35.0, 150.0))
            hemorrhage = bool(rng.random() < 0.5)
        else:
            label, subtype = LEIOMYOMA, "leiomyoma"
            degeneration = bool(rng.random() < P_DEGENERATION)
            p_irregular = P_IRREGULAR_GIVEN_DEGENERATION if degeneration else P_IRREGULAR_GIVEN_PLAIN
            irregular = bool(rng.random() < p_irregular)
            likeness = difficulty * rng.uniform(0.35, 1.0) if degeneration else rng.uniform(0.0, 0.12)
            length = float(np.clip(rng.lognormal(np.log(65.0), 0.38), 22.0, 140.0))
            hemorrhage = False
        dims = (round(length, 1), round(length * rng.uniform(0.65, 0.95), 1),
                round(length * rng.uniform(0.6, 1.0), 1))
        plans.append(PatientPlan(
            index=index, patient_key=f"SYNTH-{index + 1:06d}", label=label, subtype=subtype, site=site.key,
            naming_style=style, degeneration=degeneration, irregular_margin=irregular,
            sarcoma_likeness=float(likeness), dimensions_mm=dims, sequences=tuple(draw_sequences(rng)),
            hemorrhage=hemorrhage,
        ))
    return plans
