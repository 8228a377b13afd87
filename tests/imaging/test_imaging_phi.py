"""Nothing identifying survives an import. Identifying strings are planted in a SYNTHETIC patient's files:
top level, sequences three deep, private blocks, overlays, descriptions, dates, UIDs, file and folder
names, and a rejected file. After an upload through the web page (and a second import on the command
line) none of them is found in a database dump, the stored files, the upload folder, the pages, the
API responses, the command's output or the logs."""

import gzip
import io
import logging
import shutil
from pathlib import Path

import pydicom
import pytest
from django.core.management import call_command
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from imaging.models import Case, Cohort, ImportBatch, Series
from imaging.phantoms import write_phantom_cohort
from imaging.services_cohorts import cohort_create
from jobs.models import Job, JobStatus
from jobs.services import job_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("role_groups")]


@pytest.fixture(autouse=True)
def run_jobs_here(request, monkeypatch):
    """Jobs are run in the test (job_run) rather than sent to a broker, except in worker tests."""
    if request.node.get_closest_marker("worker") is None:
        monkeypatch.setattr("jobs.services.job_enqueue", lambda *, job: None)



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


def _item(**attributes) -> Dataset:
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


def _plant(ds: Dataset) -> None:
    """Identifying values everywhere a PACS export can carry them."""
    ds.PatientName = "Quillfeather^Zenobia^Marisol"
    ds.PatientID = PATIENT_KEY
    ds.OtherPatientIDsSequence = [_item(PatientID="OPID-ZQ-55123", IssuerOfPatientID="Zanzibar Quay HIS")]
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
    deep = _item(CodeValue="ZQ1", CodingSchemeDesignator="99ZQ", CodeMeaning="ZQ deep code Ignatius")
    ds.RequestAttributesSequence = [
        _item(
            RequestedProcedureDescription="ZQ requested text Xanthippe",
            ScheduledProcedureStepID="ZQSTATION01",
            ReferencedStudySequence=[
                _item(
                    ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.1",
                    ReferencedSOPInstanceUID=ds.StudyInstanceUID,
                    PurposeOfReferenceCodeSequence=Sequence([deep]),
                )
            ],
        )
    ]
    block = ds.private_block(0x0041, "ZQ PRIVATE CREATOR", create=True)
    block.add_new(0x10, "LO", "ZQ private value Zenobia")
    block.add_new(0x11, "SQ", Sequence([_item(PatientName="Quillfeather^Nested")]))
    ds.add_new(0x60020022, "LO", "ZQ overlay Zenobia")  # OverlayDescription, group 6002
    ds.add_new(0x60020010, "US", 8)
    ds.add_new(0x60020011, "US", 8)
    ds.add_new(0x60023000, "OW", b"ZQ-overlay-bytes" + b"\x00" * 8)


def _planted_study(phantom_root: Path, target: Path) -> tuple[list[str], int]:
    """Copy one phantom patient under an identifying folder and file names, planting values in every
    file; returns the source UIDs and the file count."""
    uids: set[str] = set()
    files = sorted((phantom_root / "dicom" / "SYNTH-000001").rglob("*.dcm"))
    folder = target / "Quillfeather_Zenobia_MRI"
    folder.mkdir(parents=True)
    for number, path in enumerate(files, start=1):
        ds = pydicom.dcmread(path)
        uids |= {ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.FrameOfReferenceUID}
        _plant(ds)
        ds.save_as(folder / f"Quillfeather_Zenobia_{number:04d}.dcm")
    ct = pydicom.dcmread(files[1])  # a file that will be rejected: its reason must not quote it
    _plant(ct)
    ct.Modality = "CT"
    ct.SOPInstanceUID = "1.2.826.0.1.3680043.99.777123.1"
    uids.add(ct.SOPInstanceUID)
    ct.save_as(folder / "Quillfeather_Zenobia_CT.dcm")
    return sorted(uids), len(files)


def _manifest(path: Path) -> Path:
    path.write_text(
        "patient_key,class,subtype,institution,length_mm,width_mm,height_mm,degeneration,"
        f"irregular_margin\n{PATIENT_KEY},sarcoma,leiomyosarcoma,SITE-Z,80,70,60,,\n"
    )
    return path


def _leaks(text: str, needles: list[str]) -> list[str]:
    low = text.casefold()
    return [n for n in needles if n.casefold() in low]


def _files_text(root: Path) -> str:
    parts = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        parts.append(path.as_posix())
        parts.append(data.decode("latin-1"))
    return "\n".join(parts)


def test_no_planted_identifier_survives_an_import_anywhere(tmp_path, settings, client, make_user, caplog):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.UPLOAD_ROOT = tmp_path / "uploads"
    settings.IMAGING_IMPORT_WORKERS = 1
    caplog.set_level(logging.DEBUG)
    phantoms = tmp_path / "phantoms"
    write_phantom_cohort(
        phantoms, patients=1, sarcoma_fraction=1.0, seed=3, slice_size=32, slices_per_series=3
    )
    uids, n_good = _planted_study(phantoms, tmp_path / "export")
    needles = PLANTED + uids
    folder = tmp_path / "export" / "Quillfeather_Zenobia_MRI"

    # --- the web upload -------------------------------------------------------------------------
    coordinator = make_user("coordinator")
    client.force_login(coordinator)
    handles = [open(p, "rb") for p in sorted(folder.iterdir())]
    try:
        response = client.post(
            "/imaging/import/", {"files": handles, "manifest": open(_manifest(tmp_path / "m.csv"), "rb")}
        )
    finally:
        for handle in handles:
            handle.close()
    assert response.status_code == 302, response.content[:500]
    job = Job.objects.get(kind="import_dicom")
    job = job_run(job_pk=job.pk, worker="test-inline")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["files_imported"] == n_good and job.result["files_rejected"] == 1
    assert job.result["rejected"][0]["reason"] == "not MR (modality CT)"
    assert job.result["rejected"][0]["file"].endswith("(name hidden)")
    case = Case.objects.get()
    assert case.truth == "sarcoma"  # the manifest found the case through the keyed hash
    cohort_create(name="phi-check", cases=[case])

    # --- a second import on the command line, from the identifying folder -------------------------
    out = io.StringIO()
    call_command(
        "import_dicom", str(folder), "--manifest", str(tmp_path / "m.csv"), "--inline", stdout=out, stderr=out
    )
    assert _leaks(out.getvalue(), needles) == []

    # --- the database -------------------------------------------------------------------------------
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    assert "Quillfeather" not in str(Job.objects.values_list("params", flat=True))
    assert _leaks(dump.getvalue(), needles) == []
    assert (
        case.pseudonym in dump.getvalue() and '"model": "imaging.series"' in dump.getvalue()
    )  # it covers imaging
    assert ImportBatch.objects.count() == 2 and Series.objects.count() > 5

    # --- stored files; the raw upload is gone --------------------------------------------------------
    assert _leaks(_files_text(Path(settings.MEDIA_ROOT)), needles) == []
    leftovers = [p for p in Path(settings.UPLOAD_ROOT).rglob("*") if p.is_file()]
    assert leftovers == []

    # --- pages, admin and API -------------------------------------------------------------------------
    series = list(Series.objects.all())
    batch = ImportBatch.objects.first()
    urls = [
        "/imaging/cases/",
        f"/imaging/cases/{case.pk}/",
        "/imaging/mapping/",
        "/imaging/imports/",
        f"/imaging/imports/{batch.pk}/",
        "/imaging/cohorts/",
        f"/jobs/{job.pk}/",
        "/api/cases/",
        f"/api/cases/{case.pk}/",
        f"/api/jobs/{job.pk}/",
        "/admin/imaging/case/",
        f"/admin/imaging/case/{case.pk}/change/",
        "/admin/imaging/series/",
        "/admin/imaging/importbatch/",
        f"/admin/imaging/importbatch/{batch.pk}/change/",
        f"/admin/imaging/cohort/{Cohort.objects.get().pk}/change/",
    ]
    for s in series:
        urls += [
            f"/imaging/series/{s.pk}/",
            f"/api/series/{s.pk}/meta",
            f"/admin/imaging/series/{s.pk}/change/",
        ]
    admin = make_user("admin")
    for user in (coordinator, admin):
        client.force_login(user)
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            assert _leaks(response.content.decode("utf-8", "replace"), needles) == [], url
    volume = client.get(f"/api/series/{series[0].pk}/volume", HTTP_ACCEPT_ENCODING="gzip")
    assert _leaks(gzip.decompress(b"".join(volume.streaming_content)).decode("latin-1"), needles) == []

    # --- logs -------------------------------------------------------------------------------------------
    assert "import batch" in caplog.text
    assert _leaks(caplog.text, needles) == []


def test_planted_files_still_carry_the_identifiers_before_import(tmp_path):
    """The check above can fail: the planted values are really in the source files and folder names."""
    phantoms = tmp_path / "phantoms"
    write_phantom_cohort(
        phantoms, patients=1, sarcoma_fraction=1.0, seed=3, slice_size=32, slices_per_series=3
    )
    uids, _ = _planted_study(phantoms, tmp_path / "export")
    text = _files_text(tmp_path / "export")
    missing = [n for n in PLANTED + uids if n.casefold() not in text.casefold()]
    assert missing == []
    shutil.rmtree(tmp_path / "export")
