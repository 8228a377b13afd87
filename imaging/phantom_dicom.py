"""DICOM files of the SYNTHETIC phantom cohort: headers full of fake identifiers, written fast.

Every file carries identifiers a de-identifier must remove, at every depth: patient name, ID,
birth date, address, institution, physicians, accession number, dates and times, an
OtherPatientIDsSequence, a RequestAttributesSequence and a ReferencedPerformedProcedureStepSequence
with person names inside, a private block with the name and ID, and a 60xx overlay whose
description holds the name. All of them are obviously fake ("PHANTOM^ALICE", "SYNTH-000001",
"FAKE^REFERRER^DR") and every description says SYNTHETIC.

Speed: pydicom's writer costs ~4 ms a file, too slow for ~10,000 files. The elements that are the
same for a whole series are encoded once; each instance encodes only its ~10 own elements and the
file is the concatenation in tag order. ``instance_dataset`` builds the same file as a plain pydicom
Dataset; a test checks the two are byte-identical.
"""

from __future__ import annotations

import datetime as dt
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.pixels import pack_bits
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, MRImageStorage

from imaging.phantom_plan import PatientPlan
from imaging.phantom_protocols import MAX_B_VALUE, SITE_BY_KEY, series_names
from imaging.phantom_render import RenderedSeries

SYNTHETIC_LABEL = "SYNTHETIC PHANTOM"
PRIVATE_CREATOR = "SYNTHETIC PHANTOM 1.0"
IMPLEMENTATION_VERSION = "SYNTH_PHANTOM_1"
_FAKE_FIRST_NAMES = (
    "ALICE", "BEATRICE", "CLARA", "DORA", "EDITH", "FLORA", "GRETA", "HILDA", "IRIS", "JUNE", "KAREN",
    "LILA", "MAUD", "NORA", "OLIVE", "PEARL", "QUEENIE", "ROSA", "STELLA", "THEA", "UMA", "VERA", "WANDA",
    "XENIA", "YVONNE", "ZELDA",
)


_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "sarcoma-reader-study/synthetic-phantom")


def phantom_uid(seed: int, *parts: object) -> str:
    """A deterministic UID for the cohort seed and the parts that name the object.

    The 2.25 form (PS3.5 §B.2) of a name-based UUID. Note: ``pydicom.uid.generate_uid(prefix=None,
    entropy_srcs=...)`` ignores ``entropy_srcs`` and returns a random UID, so it cannot be used here.
    """
    name = "|".join(["seed", str(seed), *map(str, parts)])
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, name).int}"


@dataclass(frozen=True)
class Identity:
    """The fake person and visit written into every file of one study."""

    name: str
    patient_id: str
    birth_date: str
    age: str
    study_date: str
    study_time: str
    accession: str


def fake_identity(plan: PatientPlan, seed: int) -> Identity:
    rng = np.random.default_rng([seed, plan.index, 3])
    study_day = dt.date(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 7 * 365)))
    age = int(rng.integers(30, 76))
    birth = dt.date(study_day.year - age, int(rng.integers(1, 13)), int(rng.integers(1, 29)))
    if (birth.month, birth.day) > (study_day.month, study_day.day):
        age -= 1
    first = _FAKE_FIRST_NAMES[int(rng.integers(len(_FAKE_FIRST_NAMES)))]
    return Identity(
        name=f"PHANTOM^{first}", patient_id=plan.patient_key, birth_date=birth.strftime("%Y%m%d"),
        age=f"{age:03d}Y", study_date=study_day.strftime("%Y%m%d"),
        study_time=f"{int(rng.integers(7, 19)):02d}{int(rng.integers(0, 60)):02d}00",
        accession=f"SYNACC{plan.index + 1:06d}",
    )


def _add_time(hhmmss: str, seconds: int) -> str:
    start = dt.datetime(2000, 1, 1, int(hhmmss[:2]), int(hhmmss[2:4]), int(hhmmss[4:6]))
    return (start + dt.timedelta(seconds=seconds)).strftime("%H%M%S")


@dataclass(frozen=True)
class SeriesContext:
    """What every instance of one series shares."""

    plan: PatientPlan
    who: Identity
    series: RenderedSeries
    series_number: int
    seed: int
    study_uid: str
    series_uid: str
    frame_uid: str
    overlay: bool


def _phi_sequences(ds: Dataset, ctx: SeriesContext) -> None:
    """Identifiers hidden inside sequences, where shallow de-identifiers miss them."""
    plan = ctx.plan
    request = Dataset()
    request.AccessionNumber = ctx.who.accession
    request.RequestingPhysician = "FAKE^REQUESTER^DR"
    request.RequestedProcedureDescription = "MRI PELVIS (SYNTHETIC)"
    request.ScheduledProcedureStepID = f"SYNSPS{plan.index + 1:06d}"
    request.RequestedProcedureID = f"SYNREQ{plan.index + 1:06d}"
    ds.RequestAttributesSequence = DicomSequence([request])
    step = Dataset()
    step.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.3"  # Modality Performed Procedure Step
    step.ReferencedSOPInstanceUID = phantom_uid(ctx.seed, plan.patient_key, "mpps")
    step.PerformingPhysicianName = "FAKE^TECHNOLOGIST"
    ds.ReferencedPerformedProcedureStepSequence = DicomSequence([step])
    other = Dataset()
    other.PatientID = f"SYNTH-ALT-{plan.index + 1:06d}"
    other.IssuerOfPatientID = "PHANTOM HIS (SYNTHETIC)"
    ds.OtherPatientIDsSequence = DicomSequence([other])


def _overlay(ds: Dataset, rows: int, cols: int, who: Identity) -> None:
    """A 60xx overlay (a frame outline) whose description holds the fake name: de-identification
    must drop the whole group."""
    plane = np.zeros((rows, cols), dtype=np.uint8)
    plane[2, 2:-2] = plane[-3, 2:-2] = plane[2:-2, 2] = plane[2:-2, -3] = 1
    ds.add_new(0x60000010, "US", rows)
    ds.add_new(0x60000011, "US", cols)
    ds.add_new(0x60000022, "LO", f"{who.name} {who.patient_id}")
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", pack_bits(plane))


def series_dataset(ctx: SeriesContext) -> Dataset:
    """Elements shared by every instance of the series (no per-instance elements)."""
    plan, who, series = ctx.plan, ctx.who, ctx.series
    site = SITE_BY_KEY[plan.site]
    geometry = series.geometries[0]
    protocol = series.protocol
    description, protocol_name = series_names(series.code, plan.naming_style)
    header = series.header

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = header["ImageType"]
    ds.SOPClassUID = MRImageStorage
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = who.study_date
    ds.StudyTime, ds.SeriesTime = who.study_time, _series_time(ctx)
    ds.AccessionNumber = who.accession
    ds.Modality = "MR"
    ds.Manufacturer = site.manufacturer
    ds.InstitutionName = site.institution_name
    ds.InstitutionAddress = f"{plan.site} Phantom Road 1, Nowhere (SYNTHETIC)"
    ds.ReferringPhysicianName = "FAKE^REFERRER^DR"
    ds.StationName = f"PHANTOM-MR-{plan.site}"
    ds.StudyDescription = f"{SYNTHETIC_LABEL} MRI PELVIS"
    ds.SeriesDescription = description
    ds.InstitutionalDepartmentName = "RADIOLOGY (SYNTHETIC)"
    ds.PerformingPhysicianName = "FAKE^RADIOGRAPHER"
    ds.NameOfPhysiciansReadingStudy = "FAKE^READER^DR"
    ds.OperatorsName = "FAKE^OPERATOR"
    ds.ManufacturerModelName = site.model
    ds.PatientName = who.name
    ds.PatientID = who.patient_id
    ds.PatientBirthDate = who.birth_date
    ds.PatientSex = "F"
    ds.PatientAge = who.age
    ds.PatientAddress = "1 Phantom Lane, Nowhere (SYNTHETIC)"
    ds.PatientTelephoneNumbers = "555-0100"
    ds.PatientComments = SYNTHETIC_LABEL
    if protocol.contrast:
        ds.ContrastBolusAgent = "GADOTERATE (SYNTHETIC)"
        ds.ContrastBolusRoute = "IV"
    ds.BodyPartExamined = "PELVIS"
    ds.ScanningSequence = header["ScanningSequence"]
    ds.SequenceVariant = header["SequenceVariant"]
    ds.ScanOptions = header["ScanOptions"]
    ds.MRAcquisitionType = header["MRAcquisitionType"]
    ds.SliceThickness = geometry.thickness
    ds.RepetitionTime = header["RepetitionTime"]
    ds.EchoTime = header["EchoTime"]
    ds.NumberOfAverages = 1
    ds.ImagingFrequency = round(42.577 * site.field_strength, 4)
    ds.ImagedNucleus = "1H"
    ds.MagneticFieldStrength = site.field_strength
    ds.SpacingBetweenSlices = geometry.spacing
    ds.EchoTrainLength = header["EchoTrainLength"]
    ds.DeviceSerialNumber = f"SYN-{plan.site}-0001"
    ds.SoftwareVersions = "sarcoma-reader-study phantom 1"
    ds.ProtocolName = protocol_name
    ds.FlipAngle = header["FlipAngle"]
    ds.PatientPosition = "FFS"
    if protocol.weighting == "DWI":
        ds.DiffusionBValue = MAX_B_VALUE[plan.naming_style]
    ds.StudyInstanceUID = ctx.study_uid
    ds.SeriesInstanceUID = ctx.series_uid
    ds.StudyID = f"S{plan.index + 1:05d}"
    ds.SeriesNumber = ctx.series_number
    ds.FrameOfReferenceUID = ctx.frame_uid
    if protocol.dynamic:
        ds.NumberOfTemporalPositions = max(series.temporal_positions)
    ds.PositionReferenceIndicator = ""
    ds.ImageComments = f"{SYNTHETIC_LABEL} - not patient data"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = geometry.rows, geometry.cols
    ds.PixelSpacing = [round(v, 6) for v in geometry.pixel_spacing]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if series.window is not None:
        ds.WindowCenter, ds.WindowWidth = series.window
    if series.rescale_slope != 1.0:
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, series.rescale_slope, "US"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    _phi_sequences(ds, ctx)
    block = ds.private_block(0x0029, PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "LO", who.name.replace("^", " "))
    block.add_new(0x11, "LO", who.patient_id)
    block.add_new(0x12, "DA", who.birth_date)
    block.add_new(0x13, "LO", SYNTHETIC_LABEL)
    if ctx.overlay:
        _overlay(ds, geometry.rows, geometry.cols, who)
    return ds


def _series_time(ctx: SeriesContext) -> str:
    return _add_time(ctx.who.study_time, 90 * ctx.series_number)


def _ds(value: float) -> str:
    """Decimal string as written in the files: 4 decimals, trailing zeros dropped ('-178.5938', '0')."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def instance_values(ctx: SeriesContext, instance: int) -> list[tuple[int, str, str | bytes]]:
    """(tag, VR, value) of the elements that differ between instances (1-based ``instance``), tag order."""
    series = ctx.series
    k = instance - 1
    localizer = len(series.geometries) > 1
    geometry = series.geometries[k] if localizer else series.geometries[0]
    position = geometry.positions[0 if localizer else series.slice_indices[k]]
    phase = series.temporal_positions[k]
    content_time = _add_time(_series_time(ctx), 40 * (phase - 1))
    values: list[tuple[int, str, str | bytes]] = [
        (0x00080018, "UI", phantom_uid(ctx.seed, ctx.plan.patient_key, ctx.series_number, instance)),
        (0x00080032, "TM", content_time),                          # AcquisitionTime
        (0x00080033, "TM", content_time),                          # ContentTime
        (0x00200012, "IS", str(phase)),                            # AcquisitionNumber
        (0x00200013, "IS", str(instance)),                         # InstanceNumber
        (0x00200032, "DS", "\\".join(_ds(v) for v in position)),  # ImagePositionPatient
        (0x00200037, "DS", "\\".join(_ds(v) for v in geometry.orientation)),  # ImageOrientationPatient
    ]
    if series.protocol.dynamic:
        values.append((0x00200100, "IS", str(phase)))              # TemporalPositionIdentifier
    values.append((0x00201041, "DS", _ds(float(np.dot(position, geometry.normal)))))  # SliceLocation
    values.append((0x7FE00010, "OW", series.stored[k].astype("<u2").tobytes()))     # PixelData
    return values


def _file_meta(sop_instance_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    return meta


def instance_dataset(ctx: SeriesContext, instance: int) -> Dataset:
    """The complete instance as a plain pydicom Dataset: the reference for ``SeriesWriter``'s bytes."""
    ds = series_dataset(ctx)
    for tag, vr, value in instance_values(ctx, instance):
        ds.add_new(tag, vr, value)
    ds.file_meta = _file_meta(ds.SOPInstanceUID)
    ds.preamble = b"\x00" * 128
    return ds


def _encode(ds: Dataset) -> dict[int, bytes]:
    """Each top-level element of ``ds`` encoded alone (Explicit VR Little Endian), keyed by tag."""
    chunks = {}
    for element in ds:
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, False
        write_data_element(fp, element, ["iso8859"])
        chunks[int(element.tag)] = fp.getvalue()
    return chunks


_LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT"}


def _encode_value(tag: int, vr: str, value: str | bytes) -> bytes:
    """One element, Explicit VR Little Endian (PS3.5 §7.1.2), padded to even length."""
    raw = value if isinstance(value, bytes) else value.encode("ascii")
    if len(raw) % 2:
        raw += b"\x00" if vr in ("UI", "OB") else b" "
    if vr in _LONG_VRS:
        return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr.encode(), 0, len(raw)) + raw
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(raw)) + raw


def _meta_bytes(sop_instance_uid: str) -> bytes:
    body = b"".join((
        _encode_value(0x00020001, "OB", b"\x00\x01"),
        _encode_value(0x00020002, "UI", MRImageStorage),
        _encode_value(0x00020003, "UI", sop_instance_uid),
        _encode_value(0x00020010, "UI", ExplicitVRLittleEndian),
        _encode_value(0x00020012, "UI", PYDICOM_IMPLEMENTATION_UID),
        _encode_value(0x00020013, "SH", IMPLEMENTATION_VERSION),
    ))
    return _encode_value(0x00020000, "UL", struct.pack("<I", len(body))) + body


class SeriesWriter:
    """Writes the instances of one series; shared elements are encoded once."""

    def __init__(self, ctx: SeriesContext):
        self.ctx = ctx
        self._shared = _encode(series_dataset(ctx))

    def file_bytes(self, instance: int) -> tuple[bytes, str]:
        """(Part-10 file bytes, SOPInstanceUID) of instance ``instance`` (1-based)."""
        values = instance_values(self.ctx, instance)
        sop_uid = str(values[0][2])
        chunks = dict(self._shared)
        chunks.update((tag, _encode_value(tag, vr, value)) for tag, vr, value in values)
        body = b"".join(chunks[tag] for tag in sorted(chunks))
        return b"\x00" * 128 + b"DICM" + _meta_bytes(sop_uid) + body, sop_uid

    def write(self, path: Path, instance: int) -> str:
        """Write one instance; returns its SOPInstanceUID."""
        data, sop_uid = self.file_bytes(instance)
        path.write_bytes(data)
        return sop_uid
