"""Identifying values planted in SYNTHETIC phantom files, and the scans that look for them afterwards (the import's
PHI test, the PACS tests)."""

import gzip
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

PATIENT_KEY = "PID-ZQ-77310"
PLANTED = [
    "Quillfeather",
    "Zenobia",
    "Marisol",
    "Xanthippe",
    "Ignatius",
    "Ottoline",
    "Zanzibar Quay",
    PATIENT_KEY,
    "OPID-ZQ-55123",
    "ACC-ZQ-4471",
    "19610317",
    "20190211",
    "20190214",
    "ZQSTATION01",
    "SN-ZQ-004242",
    "555-0199-ZQ",
    "ZQ-overlay-bytes",
    "ZQ private value",
    "ZQ PRIVATE CREATOR",
    "ZQ requested text",
    "ZQ image comment",
    "ZQ study text",
    "ZQ deep code",
]


def item(**attributes) -> Dataset:
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


def plant(ds: Dataset) -> None:
    """Identifying values everywhere a PACS export can carry them."""
    ds.PatientName = "Quillfeather^Zenobia^Marisol"
    ds.PatientID = PATIENT_KEY
    ds.OtherPatientIDsSequence = [item(PatientID="OPID-ZQ-55123", IssuerOfPatientID="Zanzibar Quay HIS")]
    ds.PatientBirthDate = "19610317"
    ds.PatientAddress = "12 Quillfeather Street, Zanzibar Quay"
    ds.PatientTelephoneNumbers = "555-0199-ZQ"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20190211"
    ds.AcquisitionDateTime = "20190214101112"
    ds.AccessionNumber = "ACC-ZQ-4471"
    ds.InstitutionName = "Zanzibar Quay General Hospital"
    ds.ReferringPhysicianName = "Referrer^Xanthippe"
    ds.OperatorsName = "Operator^Ottoline"
    ds.StationName = "ZQSTATION01"
    ds.DeviceSerialNumber = "SN-ZQ-004242"
    ds.StudyDescription = "ZQ study text Zenobia"
    ds.SeriesDescription = f"{ds.SeriesDescription} Quillfeather"  # the sequence words stay classifiable
    ds.ProtocolName = f"{ds.ProtocolName} Marisol"
    ds.ImageComments = "ZQ image comment Zenobia"
    deep = item(CodeValue="ZQ1", CodingSchemeDesignator="99ZQ", CodeMeaning="ZQ deep code Ignatius")
    ds.RequestAttributesSequence = [
        item(
            RequestedProcedureDescription="ZQ requested text Xanthippe",
            ScheduledProcedureStepID="ZQSTATION01",
            ReferencedStudySequence=[
                item(
                    ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.1",
                    ReferencedSOPInstanceUID=ds.StudyInstanceUID,
                    PurposeOfReferenceCodeSequence=Sequence([deep]),
                )
            ],
        )
    ]
    block = ds.private_block(0x0041, "ZQ PRIVATE CREATOR", create=True)
    block.add_new(0x10, "LO", "ZQ private value Zenobia")
    block.add_new(0x11, "SQ", Sequence([item(PatientName="Quillfeather^Nested")]))
    ds.add_new(0x60020022, "LO", "ZQ overlay Zenobia")  # OverlayDescription, group 6002
    ds.add_new(0x60020010, "US", 8)
    ds.add_new(0x60020011, "US", 8)
    ds.add_new(0x60023000, "OW", b"ZQ-overlay-bytes" + b"\x00" * 8)


def planted_study(phantom_root: Path, target: Path) -> tuple[list[str], int]:
    """Copy one phantom patient under an identifying folder and file names, planting values in every
    file; returns the source UIDs and the file count."""
    uids: set[str] = set()
    files = sorted((phantom_root / "dicom" / "SYNTH-000001").rglob("*.dcm"))
    folder = target / "Quillfeather_Zenobia_MRI"
    folder.mkdir(parents=True)
    for number, path in enumerate(files, start=1):
        ds = pydicom.dcmread(path)
        uids |= {ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.FrameOfReferenceUID}
        plant(ds)
        ds.save_as(folder / f"Quillfeather_Zenobia_{number:04d}.dcm")
    ct = pydicom.dcmread(files[1])  # a file that will be rejected: its reason must not quote it
    plant(ct)
    ct.Modality = "CT"
    ct.SOPInstanceUID = "1.2.826.0.1.3680043.99.777123.1"
    uids.add(ct.SOPInstanceUID)
    ct.save_as(folder / "Quillfeather_Zenobia_CT.dcm")
    return sorted(uids), len(files)


def manifest(path: Path) -> Path:
    path.write_text(
        "patient_key,class,subtype,institution,length_mm,width_mm,height_mm,degeneration,"
        f"irregular_margin\n{PATIENT_KEY},sarcoma,leiomyosarcoma,SITE-Z,80,70,60,,\n"
    )
    return path


def leaks(text: str, needles: list[str]) -> list[str]:
    low = text.casefold()
    return [n for n in needles if n.casefold() in low]


def files_text(root: Path) -> str:
    parts = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        parts.append(path.as_posix())
        parts.append(data.decode("latin-1"))
    return "\n".join(parts)
