"""Scanner protocols of the SYNTHETIC phantom cohort: which sequences a patient gets and how each
series is named and described in DICOM, per vendor naming style.

Three sites, three naming styles (Siemens-like, GE-like, Philips-like) and a plain "readable"
variant ("T2 TSE AX", "T1 FS +C COR"), so the sequence rules are exercised on the names real
scanners write. The names are realistic; the images and the people are not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.constants import SEQUENCE_CODES

LOCALIZER = "localizer"  # our internal key for the scout series (maps to "unused")

# How often a patient has each sequence. T2axi, T2sag and DWI follow the paper (98.0%, 98.4%,
# 96.5% of patients); the paper gives no figures for the others, these are plausible choices.
# ADC is drawn only for patients with DWI (it is computed from it): 0.975 × 0.965 ≈ 94%.
SEQUENCE_COVERAGE: dict[str, float] = {
    "T2axi": 0.980, "T2sag": 0.984, "DWI": 0.965, "ADC": 0.975,
    "T2cor": 0.45, "fsT2axi": 0.30, "T1axi": 0.80, "T1sag": 0.25,
    "fsT1axi": 0.40, "fsT1sag": 0.35, "fsT1CEaxi": 0.50, "fsT1CEsag": 0.60, "fsT1CEcor": 0.30,
    "dynamicaxi": 0.20, "dynamicsag": 0.30,
}
assert set(SEQUENCE_COVERAGE) == set(SEQUENCE_CODES)

# Acquisition order within a study (series numbers follow it).
ACQUISITION_ORDER: tuple[str, ...] = (
    LOCALIZER, "T2sag", "T2axi", "T2cor", "fsT2axi", "T1axi", "T1sag", "DWI", "ADC",
    "fsT1axi", "fsT1sag", "dynamicsag", "dynamicaxi", "fsT1CEaxi", "fsT1CEsag", "fsT1CEcor",
)


@dataclass(frozen=True)
class Protocol:
    """What a sequence code means physically."""

    code: str
    plane: str            # axial / sagittal / coronal
    weighting: str        # T2 / T1 / DWI / ADC
    fat_suppressed: bool
    contrast: bool
    dynamic: bool
    kind: str             # tse / gre3d / epi (acquisition family, for TR/TE and sequence names)


PROTOCOLS: dict[str, Protocol] = {p.code: p for p in (
    Protocol("T2axi", "axial", "T2", False, False, False, "tse"),
    Protocol("T2sag", "sagittal", "T2", False, False, False, "tse"),
    Protocol("T2cor", "coronal", "T2", False, False, False, "tse"),
    Protocol("fsT2axi", "axial", "T2", True, False, False, "tse"),
    Protocol("T1axi", "axial", "T1", False, False, False, "tse"),
    Protocol("T1sag", "sagittal", "T1", False, False, False, "tse"),
    Protocol("fsT1axi", "axial", "T1", True, False, False, "gre3d"),
    Protocol("fsT1sag", "sagittal", "T1", True, False, False, "gre3d"),
    Protocol("fsT1CEaxi", "axial", "T1", True, True, False, "gre3d"),
    Protocol("fsT1CEsag", "sagittal", "T1", True, True, False, "gre3d"),
    Protocol("fsT1CEcor", "coronal", "T1", True, True, False, "gre3d"),
    Protocol("dynamicaxi", "axial", "T1", True, True, True, "gre3d"),
    Protocol("dynamicsag", "sagittal", "T1", True, True, True, "gre3d"),
    Protocol("DWI", "axial", "DWI", True, False, False, "epi"),
    Protocol("ADC", "axial", "ADC", True, False, False, "epi"),
    Protocol(LOCALIZER, "axial", "T1", False, False, False, "scout"),
)}

# SeriesDescription per naming style; ProtocolName is derived (see ``series_names``).
_NAMES: dict[str, dict[str, str]] = {
    "siemens": {
        LOCALIZER: "localizer", "T2axi": "t2_tse_tra", "T2sag": "t2_tse_sag", "T2cor": "t2_tse_cor",
        "fsT2axi": "t2_tse_fs_tra", "T1axi": "t1_tse_tra", "T1sag": "t1_tse_sag",
        "fsT1axi": "t1_vibe_fs_tra", "fsT1sag": "t1_vibe_fs_sag", "fsT1CEaxi": "t1_vibe_fs_tra_post",
        "fsT1CEsag": "t1_vibe_fs_sag_post", "fsT1CEcor": "t1_vibe_fs_cor_post",
        "dynamicaxi": "t1_vibe_fs_tra_dyn", "dynamicsag": "t1_vibe_fs_sag_dyn",
        "DWI": "ep2d_diff_b50_800_tra_TRACEW", "ADC": "ep2d_diff_b50_800_tra_ADC",
    },
    "readable": {
        LOCALIZER: "Localizer 3-plane", "T2axi": "T2 TSE AX", "T2sag": "T2 TSE SAG", "T2cor": "T2 TSE COR",
        "fsT2axi": "T2 TSE FS AX", "T1axi": "T1 TSE AX", "T1sag": "T1 TSE SAG", "fsT1axi": "T1 FS AX",
        "fsT1sag": "T1 FS SAG", "fsT1CEaxi": "T1 FS +C AX", "fsT1CEsag": "T1 FS +C SAG",
        "fsT1CEcor": "T1 FS +C COR", "dynamicaxi": "T1 FS DYN AX", "dynamicsag": "T1 FS DYN SAG",
        "DWI": "DWI b50-800 AX", "ADC": "ep2d_diff ADC",
    },
    "ge": {
        LOCALIZER: "3-Plane Loc", "T2axi": "AX T2 FRFSE", "T2sag": "SAG T2 FRFSE", "T2cor": "COR T2 FRFSE",
        "fsT2axi": "AX T2 FRFSE FS", "T1axi": "AX T1 FSE", "T1sag": "SAG T1 FSE", "fsT1axi": "AX LAVA PRE",
        "fsT1sag": "SAG LAVA PRE", "fsT1CEaxi": "AX LAVA +C", "fsT1CEsag": "SAG T1 FS +C",
        "fsT1CEcor": "COR T1 FS +C", "dynamicaxi": "AX LAVA DYN", "dynamicsag": "SAG LAVA DYN",
        "DWI": "AX DWI b1000", "ADC": "Apparent Diffusion Coefficient (mm2/s)",
    },
    "philips": {
        LOCALIZER: "Survey", "T2axi": "T2W_TSE_TRA", "T2sag": "T2W_TSE_SAG", "T2cor": "T2W_TSE_COR",
        "fsT2axi": "T2W_SPAIR_TRA", "T1axi": "T1W_TSE_TRA", "T1sag": "T1W_TSE_SAG",
        "fsT1axi": "T1W_THRIVE_TRA", "fsT1sag": "T1W_THRIVE_SAG", "fsT1CEaxi": "T1W_THRIVE_TRA_GD",
        "fsT1CEsag": "T1W_THRIVE_SAG_GD", "fsT1CEcor": "T1W_THRIVE_COR_GD",
        "dynamicaxi": "DYN_THRIVE_TRA", "dynamicsag": "DYN_THRIVE_SAG",
        "DWI": "DWI_b0_800_TRA", "ADC": "dADC_b800",
    },
}


@dataclass(frozen=True)
class Site:
    """A synthetic institution: its fake name, scanner and naming styles."""

    key: str
    institution_name: str
    manufacturer: str
    model: str
    field_strength: float
    naming_styles: tuple[str, ...]
    rescale_slopes: tuple[float, ...]   # stored -> real value factors this site writes
    weight: float                       # share of the cohort


SITES: tuple[Site, ...] = (
    Site("A", "PHANTOM GENERAL HOSPITAL A (SYNTHETIC)", "SIEMENS", "MAGNETOM Skyra", 3.0,
         ("siemens", "readable"), (1.0,), 0.45),
    Site("B", "PHANTOM UNIVERSITY CLINIC B (SYNTHETIC)", "GE MEDICAL SYSTEMS", "SIGNA Artist", 1.5,
         ("ge",), (1.0,), 0.35),
    Site("C", "PHANTOM CITY HOSPITAL C (SYNTHETIC)", "Philips Medical Systems", "Ingenia", 1.5,
         ("philips",), (1.25, 2.0), 0.20),
)
SITE_BY_KEY = {site.key: site for site in SITES}
MAX_B_VALUE = {"siemens": 800.0, "readable": 800.0, "ge": 1000.0, "philips": 800.0}


def series_names(code: str, style: str) -> tuple[str, str]:
    """(SeriesDescription, ProtocolName) for a sequence code in a naming style."""
    description = _NAMES[style][code]
    if style == "ge":
        return description, "PELVIS UTERUS (SYNTHETIC)"
    if style == "philips":
        return description, f"WIP {description} SENSE"
    if code in ("DWI", "ADC"):
        return description, description.rsplit("_", 1)[0] if style == "siemens" else "DWI b50-800 AX"
    return description, description


def acquisition_header(protocol: Protocol, style: str, rng: np.random.Generator) -> dict[str, object]:
    """Per-series acquisition attributes (DICOM keyword -> value). Times in ms, angles in degrees."""
    kind = protocol.kind
    if kind == "tse" and protocol.weighting == "T2":
        header = {"RepetitionTime": rng.uniform(3500, 6000), "EchoTime": rng.uniform(85, 110),
                  "FlipAngle": 150.0, "EchoTrainLength": int(rng.integers(15, 26)),
                  "ScanningSequence": ["SE"], "SequenceVariant": ["SK", "SP", "OSP"],
                  "MRAcquisitionType": "2D"}
    elif kind == "tse":
        header = {"RepetitionTime": rng.uniform(450, 750), "EchoTime": rng.uniform(9, 15),
                  "FlipAngle": 150.0, "EchoTrainLength": int(rng.integers(3, 5)),
                  "ScanningSequence": ["SE"], "SequenceVariant": ["SK", "SP", "OSP"],
                  "MRAcquisitionType": "2D"}
    elif kind == "gre3d":
        header = {"RepetitionTime": rng.uniform(3.5, 5.5), "EchoTime": rng.uniform(1.2, 2.4),
                  "FlipAngle": 10.0, "EchoTrainLength": 1,
                  "ScanningSequence": ["GR"], "SequenceVariant": ["SP", "SS", "OSP"],
                  "MRAcquisitionType": "3D"}
    elif kind == "epi":
        header = {"RepetitionTime": rng.uniform(4000, 7000), "EchoTime": rng.uniform(55, 80),
                  "FlipAngle": 90.0, "EchoTrainLength": int(rng.integers(40, 80)),
                  "ScanningSequence": ["EP"], "SequenceVariant": ["SK", "SP"],
                  "MRAcquisitionType": "2D"}
    else:  # scout
        header = {"RepetitionTime": rng.uniform(7, 9), "EchoTime": rng.uniform(3, 4.5), "FlipAngle": 20.0,
                  "EchoTrainLength": 1, "ScanningSequence": ["GR"], "SequenceVariant": ["SP"],
                  "MRAcquisitionType": "2D"}
    header["RepetitionTime"] = round(float(header["RepetitionTime"]), 2)
    header["EchoTime"] = round(float(header["EchoTime"]), 2)
    fat_option = {"siemens": ["PFP", "FS"], "readable": ["PFP", "FS"], "ge": ["FAST_GEMS", "FS"],
                  "philips": ["FS"]}[style]
    plain_option = {"siemens": ["PFP"], "readable": ["PFP"], "ge": ["FAST_GEMS"], "philips": []}[style]
    header["ScanOptions"] = fat_option if protocol.fat_suppressed else plain_option
    header["ImageType"] = _image_type(protocol, style)
    return header


def _image_type(protocol: Protocol, style: str) -> list[str]:
    if protocol.weighting == "ADC":
        return ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"] if style != "ge" else ["DERIVED", "PRIMARY", "ADC"]
    if protocol.weighting == "DWI":
        return ["DERIVED", "PRIMARY", "DIFFUSION", "TRACEW"] if style in ("siemens", "readable") \
            else ["ORIGINAL", "PRIMARY", "DIFFUSION"]
    if style == "philips":
        return ["ORIGINAL", "PRIMARY", "M_SE" if protocol.kind == "tse" else "M_FFE", "M", "SE"
                if protocol.kind == "tse" else "FFE"]
    return ["ORIGINAL", "PRIMARY", "M", "ND"] if style != "ge" else ["ORIGINAL", "PRIMARY", "OTHER"]


def draw_sequences(rng: np.random.Generator) -> list[str]:
    """The sequence codes one patient has, in acquisition order.

    At least one T2 (axial or sagittal) so every patient is readable; never all 15 (as in the paper).
    """
    has = {code: bool(rng.random() < p) for code, p in SEQUENCE_COVERAGE.items()}
    has["ADC"] = has["ADC"] and has["DWI"]
    if not (has["T2axi"] or has["T2sag"]):
        has["T2sag"] = True
    if all(has.values()):
        optional = [c for c in SEQUENCE_CODES if c not in ("T2axi", "T2sag", "DWI", "ADC")]
        has[optional[int(rng.integers(len(optional)))]] = False
    return [code for code in ACQUISITION_ORDER if code != LOCALIZER and has[code]]
