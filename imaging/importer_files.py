"""One input file through the import pipeline: read and validate, classify, de-identify, keep numbers.

No Django import. The order is the one DESIGN.md fixes:

1. ``dicom_read.read_dicom_file`` validates the file and decodes its pixels (or gives a reason);
2. the sequence attributes are read from the ORIGINAL header (``sequences.extract_attributes``),
   before SeriesDescription and ProtocolName are removed;
3. the study, series and instance UIDs are replaced through the keyed map (``uids.UidMap``, the map
   ``deid.deidentify`` uses), the source PatientID through a keyed hash; ``deid.deidentify`` (the
   PS3.15 profile) runs on the header of the first file of each series as a guard;
4. the original header is dropped: nothing of it is stored but numbers (geometry, pixels), keyed UIDs
   and the cleaned attributes below.

What is kept of the descriptions is a *cleaned* copy (``clean_description``): only words of a fixed
MR protocol vocabulary survive, so a coordinator can still read "ax t2 frfse" and rules can be run
again later, but a name or a date typed into a description is gone.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from imaging import deid, dicom_read, sequences
from imaging.uids import UidMap, fact_hash, issuer_hash, patient_key_hash, person_hash

# Words of MR protocol names that identify nobody; anything else in a description is dropped.
PROTOCOL_VOCABULARY = frozenset(
    """
t1 t2 t1w t2w pd pdw flair stir tirm fs fatsat fat sat sup supp spair spir chess ideal dixon water w f
in opp op ip ax axi axial tra trans transverse sag sagittal cor coronal obl oblique tse fse frfse ssfse
haste blade propeller mvxd space cube vista se ir gre gr ep epi ep2d resolve dwi dw diff diffusion
trace tracew adc dadc map dyn dynamic dce perfusion multiphase multi phase phases twist disco vibe lava
thrive fl3d fspgr spgr flash mprage quick3d ce c gd gad gado post pre contrast pc loc localizer
localiser scout survey 3pl pl plane calibration cal asset sense ref scan swi t2star star mip mpr sub
subtraction reformat 3d 2d hr hires high res bh breath hold nav navigator fb free mm iso thin thick
small fov large pelvis pelvic uterus uterine abdomen abd body routine std standard delayed early late
arterial venous equilibrium min sec s synthetic phantom noise smartexam aahead mocosub moco
""".split()
)
_TOKEN = re.compile(r"[A-Za-z0-9]+|\+")
_SHORT_NUMBER = re.compile(r"^(?:b\d{1,4}|\d{1,3}|\d{1,3}(?:mm|s|d|ph))$", re.IGNORECASE)
_CODE_STRING = re.compile(r"[A-Z0-9_]{1,16}")  # a defined term, never free text
_KNOWN_MANUFACTURERS = (
    "SIEMENS",
    "GE",
    "PHILIPS",
    "TOSHIBA",
    "CANON",
    "HITACHI",
    "FUJIFILM",
    "UNITED IMAGING",
)


def clean_description(text: str) -> str:
    """Keep only protocol-vocabulary words, short numbers and b-values, in order, lower case."""
    kept = []
    for token in _TOKEN.findall(str(text or "")):
        low = token.lower()
        if low == "+" or low in PROTOCOL_VOCABULARY or _SHORT_NUMBER.match(low):
            kept.append(low)
    return " ".join(kept)


def _manufacturer(text: str) -> str:
    upper = str(text or "").upper()
    return next((name for name in _KNOWN_MANUFACTURERS if upper.startswith(name)), "")


def cleaned_attributes(attrs: sequences.SeriesAttributes) -> dict:
    """The attributes to store with a series: descriptions cleaned, free text reduced to flags."""
    data = attrs.to_dict()
    data["series_description"] = clean_description(attrs.series_description)
    data["protocol_name"] = clean_description(attrs.protocol_name)
    data["contrast_agent"] = (
        "CONTRAST" if attrs.contrast_agent.strip().upper() not in ("", "NONE", "NO") else ""
    )
    data["manufacturer"] = _manufacturer(attrs.manufacturer)
    for key in ("image_type", "scanning_sequence", "sequence_variant", "scan_options"):
        data[key] = [t for t in data[key] if _CODE_STRING.fullmatch(t)]
    data["modality"] = "MR" if attrs.modality.strip().upper() == "MR" else ""
    return data


@dataclass
class FileOutcome:
    """What one accepted file contributes: numbers, remapped UIDs and the pre-de-identification attributes."""

    index: int
    key_hash: str
    study_uid: str
    series_uid: str
    sop_uid: str
    series_number: int | None
    attributes: sequences.SeriesAttributes
    geometries: tuple[dicom_read.SliceGeometry, ...]
    pixels: np.ndarray | None  # float32 (frames, rows, cols), modality units; None once spooled
    shape: tuple[int, int]  # (rows, cols)
    synthetic: bool = False
    temporal_identifier: int | None = None
    spool: str | None = None  # where the pixels wait on disk (.npy) until their series is stored
    issuer_hash: str = ""  # keyed hash of Issuer of Patient ID (0010,0021); "" when the file has none
    sex_hash: str = ""  # keyed hashes of PatientSex and PatientBirthDate: tell two patients apart, never stored raw
    birth_date_hash: str = ""
    person_hash: str = ""  # keyed hash of name + birth date + sex: possible duplicate patients (never the values)
    identity: str = ""  # keyed hash of (issuer, patient key), set by the importer (issuer may come from elsewhere)
    resolved_issuer: str = ""  # the issuer hash the importer used (the file's, the manifest's or the source's)

    def load_pixels(self) -> np.ndarray:
        return self.pixels if self.pixels is not None else np.load(self.spool)


@dataclass
class FileRejected:
    index: int
    reason: str


@dataclass
class FileSkipped:
    index: int
    reason: str


@dataclass
class Pipeline:
    """Per-import state shared by the files: the keyed UID map and the site secret."""

    secret: str
    uid_map: UidMap = field(init=False)
    token: str = field(init=False)

    def __post_init__(self) -> None:
        self.uid_map = UidMap(self.secret)
        self.token = secrets.token_hex(8)


def forget_pipeline(pipeline: Pipeline) -> None:
    """Drop what this process remembers of a pipeline (the series it guarded): a long-running listener starts a
    fresh pipeline now and then so that nothing grows for ever."""
    for key in [k for k in _DEIDENTIFIED_SERIES if k[0] == pipeline.token]:
        _DEIDENTIFIED_SERIES.discard(key)


def _source_patient_key(ds: Dataset) -> str:
    """PatientID; without one, the study stands for the patient (documented in docs/imaging.md)."""
    key = str(ds.get("PatientID", "") or "").strip().strip("\x00").strip()
    if key:
        return key
    study = str(ds.get("StudyInstanceUID", "") or "").strip().strip("\x00").strip()
    return f"study:{study}" if study else ""


def _text(ds: Dataset, keyword: str) -> str:
    """A top-level text value, or "" (a multi-valued or odd one is read as its text form)."""
    try:
        return str(ds.get(keyword, "") or "")
    except (TypeError, ValueError):
        return ""


def _is_synthetic(ds: Dataset) -> bool:
    texts = [str(ds.get(k, "") or "") for k in ("StudyDescription", "SeriesDescription", "ProtocolName")]
    return any("SYNTHETIC" in t.upper() for t in texts)


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


_UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
_DEIDENTIFIED_SERIES: set[tuple[str, str]] = set()  # (pipeline token, keyed series UID), per process


def _mapped_uid(pipeline: Pipeline, ds: Dataset, keyword: str) -> str:
    """The keyed replacement of one of the file's UIDs: what ``deid.deidentify`` writes, by construction
    (it calls the same map for every UID that is not a registered DICOM UID)."""
    value = str(ds.get(keyword, "") or "")
    return pipeline.uid_map(value) if value.strip("\x00 ") else ""


def _deidentify_once_per_series(pipeline: Pipeline, ds: Dataset, series_uid: str) -> str | None:
    """Run the PS3.15 profile (``deid.deidentify``, header without pixel data) on the first file of each
    series a process meets; a series whose header the profile cannot clean (its self-check finds a
    patient value left) is refused. Nothing of the result is stored: the import keeps no header at all,
    only numbers, keyed UIDs and cleaned attributes, so running the profile on every file would cost a
    third of the import time and keep nothing more safe."""
    key = (pipeline.token, series_uid)
    if key in _DEIDENTIFIED_SERIES:
        return None
    header = Dataset({tag: ds.get_item(tag) for tag in ds.keys() if (tag >> 16) != 0x7FE0})
    header.file_meta = ds.file_meta
    try:
        clean = deid.deidentify(header, uid_map=pipeline.uid_map, pseudonym="PENDING", decompress=False)
    except deid.DeidentificationError as error:
        return f"cannot be de-identified safely ({error})"
    if str(clean.get("SeriesInstanceUID", "")) != series_uid:
        return "cannot be de-identified consistently (series UID)"
    _DEIDENTIFIED_SERIES.add(key)
    return None


def process_file(pipeline: Pipeline, index: int, path: Path) -> FileOutcome | FileRejected | FileSkipped:
    """Run one file through read, classify-attributes, de-identify. Never raises for a bad file."""
    return _process(pipeline, index, dicom_read.read_dicom_file(path))


def process_bytes(pipeline: Pipeline, index: int, data: bytes) -> FileOutcome | FileRejected | FileSkipped:
    """``process_file`` for a Part 10 file in memory (an instance received over DICOM networking)."""
    return _process(pipeline, index, dicom_read.read_dicom_bytes(data))


def _process(pipeline: Pipeline, index: int, result) -> FileOutcome | FileRejected | FileSkipped:
    if result.status == "dicomdir":
        return FileSkipped(index, "DICOMDIR (media index): the files it lists are imported")
    if not result.ok:
        return FileRejected(index, result.reason or "not readable")
    ds = result.dataset
    with dicom_read.quiet_pydicom():
        source_key = _source_patient_key(ds)
        if not source_key:
            return FileRejected(index, "no PatientID and no StudyInstanceUID: cannot tell which patient")
        attributes = sequences.extract_attributes(ds)
        synthetic = _is_synthetic(ds)
        study_uid, series_uid, sop_uid = (_mapped_uid(pipeline, ds, k) for k in _UID_KEYWORDS)
        if not series_uid or not sop_uid:
            return FileRejected(index, "no SeriesInstanceUID or SOPInstanceUID")
        problem = _deidentify_once_per_series(pipeline, ds, series_uid)
        if problem:
            return FileRejected(index, problem)
        series_number = _int_or_none(ds.get("SeriesNumber"))
        temporal = _int_or_none(ds.get("TemporalPositionIdentifier"))
        issuer = issuer_hash(pipeline.secret, _text(ds, "IssuerOfPatientID"))
        sex = fact_hash(pipeline.secret, "sex", _text(ds, "PatientSex"))
        birth = fact_hash(pipeline.secret, "birth_date", _text(ds, "PatientBirthDate"))
        person = person_hash(pipeline.secret, _text(ds, "PatientName"), _text(ds, "PatientBirthDate"),
                             _text(ds, "PatientSex"))
    return FileOutcome(
        index=index,
        key_hash=patient_key_hash(pipeline.secret, source_key),
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        series_number=series_number,
        attributes=attributes,
        geometries=result.slices,
        pixels=result.pixels,
        shape=tuple(int(v) for v in result.pixels.shape[1:]),
        synthetic=synthetic,
        temporal_identifier=temporal,
        issuer_hash=issuer,
        sex_hash=sex,
        birth_date_hash=birth,
        person_hash=person,
    )


def process_file_to_spool(
    pipeline: Pipeline, index: int, path: str, spool_dir: str
) -> FileOutcome | FileRejected | FileSkipped:
    """``process_file``, then park the pixels in ``spool_dir`` so that only metadata stays in memory
    (and only metadata crosses a process boundary when files are read in parallel)."""
    outcome = process_file(pipeline, index, Path(path))
    if isinstance(outcome, FileOutcome):
        target = Path(spool_dir) / f"{index}.npy"
        np.save(target, outcome.pixels, allow_pickle=False)
        outcome.pixels = None
        outcome.spool = str(target)
    return outcome


def process_packed(arguments: tuple) -> FileOutcome | FileRejected | FileSkipped:
    """``process_file_to_spool`` with its arguments in one tuple, for ``ProcessPoolExecutor.map``; lives
    here (no Django import) so that a spawned reader process can unpickle it."""
    return process_file_to_spool(*arguments)
