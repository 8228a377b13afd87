"""The import_dicom job end to end: a SYNTHETIC phantom cohort, pydicom's MR files in every transfer
syntax, DICOMDIR media, a mixed upload of good and malformed files, zip guards, --json, resume."""

import csv
import gzip
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.core.management import CommandError, call_command
from pydicom.data import get_testdata_file

from imaging import importer_store, services
from imaging.models import Case, ImportBatch, Series, TumourBox
from imaging.phantoms import write_phantom_cohort
from jobs.models import Job, JobStatus
from jobs.services import job_create, job_resume, job_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def run_jobs_here(request, monkeypatch):
    """Jobs are run in the test (job_run) rather than sent to a broker, except in worker tests."""
    if request.node.get_closest_marker("worker") is None:
        monkeypatch.setattr("jobs.services.job_enqueue", lambda *, job: None)


MR_VARIANTS = [
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_implicit.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_padded.dcm",
]


def _testdata(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed locally")
    return Path(path)


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    """Two SYNTHETIC patients, small images so the test stays fast."""
    out = tmp_path_factory.mktemp("phantoms") / "cohort"
    write_phantom_cohort(out, patients=2, sarcoma_fraction=0.5, seed=7, slice_size=32, slices_per_series=3)
    return out


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.UPLOAD_ROOT = tmp_path / "uploads"
    settings.IMAGING_IMPORT_WORKERS = 1
    return settings


def run_import(source, **kwargs) -> Job:
    job = job_create(
        kind="import_dicom", params=services.import_params(source=source, **kwargs), enqueue=False
    )
    return job_run(job_pk=job.pk, worker="test-inline")


def test_a_phantom_cohort_imports_with_no_rejects_mapping_manifest_and_boxes(phantom_dir):
    job = run_import(
        phantom_dir / "dicom", manifest=phantom_dir / "manifest.csv", boxes=phantom_dir / "boxes.csv"
    )
    assert job.status == JobStatus.SUCCEEDED, job.error
    result = job.result
    n_files = sum(1 for _ in (phantom_dir / "dicom").rglob("*.dcm"))
    assert result["files_rejected"] == 0 and result["rejected"] == []
    assert result["files_imported"] == n_files and result["cases"] == 2 and result["studies"] == 2
    assert job.done == job.total == 2 * n_files
    series_rows = list(csv.DictReader((phantom_dir / "series.csv").open()))
    assert result["series"] == len(series_rows) == Series.objects.count()
    manifest = {r["patient_key"]: r for r in csv.DictReader((phantom_dir / "manifest.csv").open())}

    def case_of(key):  # the patient is (issuer, key): the manifest's institution is the issuer here (issue 13)
        return Case.objects.get(source_key_hash=services.source_identity_hash(key, manifest[key]["institution"]))

    # every series got the code the generator intended, by the rules
    for row in series_rows:
        case = case_of(row["patient_key"])
        series = case.series.get(series_number=int(row["series_number"]))
        assert series.mapped_code == row["sequence_code"], (row["series_description"], series.mapped_rule)
        assert series.n_slices == int(row["instances"])
    # manifest: ground truth on the cases; the pseudonym is random, not the source key
    for key, row in manifest.items():
        case = case_of(key)
        assert case.truth == row["class"] and case.institution == row["institution"]
        assert case.length_mm == pytest.approx(float(row["length_mm"])) and case.is_synthetic
        assert key not in case.pseudonym and case.pseudonym.startswith("C-")
    # boxes: every row of boxes.csv landed on the slice that came from its instance
    boxes = list(csv.DictReader((phantom_dir / "boxes.csv").open()))
    assert result["boxes"]["applied"] == len(boxes) == TumourBox.objects.count()
    row = boxes[0]
    case = case_of(row["patient_key"])
    series = case.series.get(series_number=int(row["series_number"]))
    index = series.meta["instance_numbers"].index(int(row["instance_number"]))
    box = series.boxes.get(slice_index=index)
    assert (box.x0, box.y0, box.x1, box.y1) == tuple(int(row[k]) for k in ("x0", "y0", "x1", "y1"))
    # the stored volume holds exactly the pixels of the source files, in slice order
    source = pydicom.dcmread(
        phantom_dir
        / "dicom"
        / row["patient_key"]
        / f"S{int(row['series_number']):04d}"
        / f"I{int(row['instance_number']):04d}.dcm"
    )
    volume = importer_store.read_stored(series)
    assert volume.shape == (series.n_slices, series.rows, series.cols)
    assert np.array_equal(volume[index], source.pixel_array)
    assert ImportBatch.objects.get(job=job).files_imported == n_files


def test_reimporting_the_same_files_finds_the_same_case_and_rejects_duplicates(phantom_dir):
    first = run_import(phantom_dir / "dicom" / "SYNTH-000002")
    cases = set(Case.objects.values_list("pseudonym", flat=True))
    second = run_import(phantom_dir / "dicom" / "SYNTH-000002")
    assert second.status == JobStatus.WARNING      # every file a duplicate: nothing imported
    assert set(Case.objects.values_list("pseudonym", flat=True)) == cases  # keyed hash links them
    assert second.result["files_imported"] == 0
    assert second.result["files_rejected"] == first.result["files_imported"]
    assert all(
        r["reason"].startswith("duplicate instance (its series was already imported in import ")
        for r in second.result["rejected"]
    )


def test_a_resumed_import_skips_the_series_it_already_stored(phantom_dir):
    params = services.import_params(source=phantom_dir / "dicom" / "SYNTH-000001")
    job = job_run(
        job_pk=job_create(kind="import_dicom", params=params, enqueue=False).pk, worker="test-inline"
    )
    stored = Series.objects.count()
    assert job.params["source"] == "(removed after import)"  # a finished import forgets its paths
    # as if it had died at the very end: a failed job still has its params
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, params=params)
    job_resume(job=Job.objects.get(pk=job.pk))
    again = job_run(job_pk=job.pk, worker="test-inline")
    assert again.status == JobStatus.SUCCEEDED, again.error
    assert Series.objects.count() == stored
    assert again.result["files_rejected"] == 0 and again.result["series"] == stored


@pytest.mark.parametrize("name", MR_VARIANTS)
def test_the_mr_files_pydicom_ships_import_in_every_transfer_syntax(name, tmp_path):
    reference = pydicom.dcmread(_testdata("MR_small.dcm")).pixel_array
    job = run_import(_testdata(name))
    assert job.status == JobStatus.SUCCEEDED and job.result["files_rejected"] == 0, job.result
    series = Series.objects.get()
    assert np.array_equal(importer_store.read_stored(series)[0], reference)  # lossless, whatever the syntax


def test_a_truncated_file_is_rejected_with_its_reason(tmp_path):
    job = run_import(_testdata("MR_truncated.dcm"))
    assert job.status == JobStatus.WARNING and job.step.startswith("nothing imported: 0 imported, 1 rejected")
    [rejection] = job.result["rejected"]
    assert rejection["index"] == 1 and rejection["reason"].startswith("truncated file")
    assert "MR_truncated" not in rejection["file"]  # names that do not look like a counter are hidden


def test_dicomdir_media_imports_the_mr_files_it_lists_and_rejects_the_rest():
    dicomdir = _testdata("dicomdirtests/DICOMDIR")
    job = run_import(dicomdir)
    assert job.status == JobStatus.SUCCEEDED, job.error
    result = job.result
    assert result["source_kind"] == "dicomdir"
    assert result["files_imported"] > 0 and result["series"] >= 2
    reasons = {r["reason"] for r in result["rejected"]}
    assert reasons and all(reason.startswith("not MR (modality C") for reason in reasons)


def _write_bad_files(folder: Path, phantom_dir: Path) -> dict[str, str]:
    """Malformed files, each with the start of the reason it must get."""
    good = sorted((phantom_dir / "dicom").rglob("*.dcm"))[1]
    data = good.read_bytes()
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200)
    (folder / "empty").write_bytes(b"")
    (folder / "cut_short.dcm").write_bytes(data[: len(data) // 3])
    ds = pydicom.dcmread(good)
    del ds.PixelData
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(folder / "no_pixels.dcm")
    ds = pydicom.dcmread(good)
    ds.Modality = "CT"
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(folder / "IM9001")
    (folder / "notes.txt").write_text("companion notes, not an image")
    return {
        "photo.png": "not a DICOM file (no DICM preamble; looks like a PNG image)",
        "empty": "empty file",
        "cut_short.dcm": "truncated file",
        "no_pixels.dcm": "no pixel data",
        "IM9001": "not MR (modality CT)",
    }


def test_a_mixed_folder_imports_the_good_files_and_lists_each_bad_one_with_its_reason(phantom_dir, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(phantom_dir / "dicom" / "SYNTH-000001", folder / "good")
    expected = _write_bad_files(folder, phantom_dir)
    job = run_import(folder, workers=2)  # two reader processes: the report keeps the files' order
    assert job.status == JobStatus.SUCCEEDED
    result = job.result
    good = sum(1 for _ in (folder / "good").rglob("*.dcm"))
    assert result["files_imported"] == good and result["cases"] == 1
    ordered = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    by_index = {r["index"]: r for r in result["rejected"]}
    assert len(by_index) == len(expected)
    for name, reason in expected.items():
        rejection = by_index[ordered.index(name) + 1]  # the index is the file's place in sorted order
        assert rejection["reason"].startswith(reason), rejection
    assert by_index[ordered.index("IM9001") + 1]["file"].endswith("(IM9001)")  # a counter-like name is shown
    assert "photo" not in json.dumps(result["rejected"])  # other names are not
    assert [s["reason"] for s in result["skipped"]] == ["companion file (.txt), not an image"]


def _zip(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16
            archive.writestr(info, "/etc/passwd")
    return path


def test_a_zip_is_extracted_safely_and_unsafe_members_are_refused(phantom_dir, tmp_path):
    files = sorted((phantom_dir / "dicom" / "SYNTH-000002").rglob("*.dcm"))
    members = {f"study/{f.parent.name}/{f.name}": f.read_bytes() for f in files}
    members["../../escape.dcm"] = files[0].read_bytes()
    members["/abs/olute.dcm"] = files[0].read_bytes()
    members["bomb.bin"] = b"\x00" * (8 * 1024 * 1024)  # deflates ~1000:1
    archive = _zip(tmp_path / "upload.zip", members, symlink="link.dcm")
    job = run_import(archive)
    assert job.status == JobStatus.SUCCEEDED, job.error
    result = job.result
    assert result["files_imported"] == len(files) and result["source_kind"] == "zip"
    reasons = [r["reason"] for r in result["rejected"]]
    assert sum("unsafe path" in r for r in reasons) == 2
    assert any("symbolic link" in r for r in reasons)
    assert any("decompression bomb" in r for r in reasons)
    assert not (tmp_path / "escape.dcm").exists() and not Path("/abs/olute.dcm").exists()


def test_an_archive_beyond_the_size_limit_is_refused_as_a_whole(tmp_path, settings):
    settings.IMAGING_ZIP_MAX_BYTES = 1024 * 1024
    archive = _zip(tmp_path / "big.zip", {f"f{i}.dcm": bytes(range(256)) * 2048 for i in range(4)})
    job = run_import(archive)
    assert job.status == JobStatus.FAILED
    assert job.error.startswith("archive refused: the archive would expand to")
    assert Series.objects.count() == 0


def test_import_dicom_json_prints_the_summary_with_every_rejected_file(phantom_dir, tmp_path):
    folder = tmp_path / "in"
    second_series = sorted((phantom_dir / "dicom" / "SYNTH-000001").iterdir())[1]  # the first is a localizer
    shutil.copytree(second_series, folder)
    (folder / "junk").write_bytes(b"not dicom at all" * 20)
    out, err = io.StringIO(), io.StringIO()
    call_command("import_dicom", str(folder), "--json", "--inline", stdout=out, stderr=err)
    summary = json.loads(out.getvalue())
    assert summary["series"] == 1 and summary["studies"] == 1 and summary["slices"] == 3
    assert summary["rejected"] == [
        {
            "file": f"#{len(list(folder.iterdir()))} (name hidden)",
            "index": len(list(folder.iterdir())),
            "reason": "not a DICOM file (no DICM preamble)",
        }
    ]
    assert "running here" in err.getvalue()  # progress went to stderr, stdout is pure JSON


def test_a_bad_manifest_stops_the_command_before_any_import(phantom_dir, tmp_path):
    bad = tmp_path / "manifest.csv"
    bad.write_text("patient_key,class,length_mm\nSYNTH-000001,carcinoma,12\nSYNTH-000002,sarcoma,-4\n")
    with pytest.raises(Exception) as caught:
        call_command(
            "import_dicom",
            str(phantom_dir / "dicom"),
            "--manifest",
            str(bad),
            "--inline",
            stdout=io.StringIO(),
        )
    message = str(caught.value)
    assert "line 2, column class: must be sarcoma or leiomyoma" in message
    assert "line 3, column length_mm: must be between 0 and 1000 mm" in message
    assert "SYNTH" not in message and not Job.objects.exists()


def test_a_series_volume_file_is_gzip_of_uint16_little_endian(phantom_dir):
    run_import(phantom_dir / "dicom" / "SYNTH-000001")
    series = Series.objects.filter(mapped_code="T2axi").first()
    raw = gzip.decompress(importer_store.volume_file(series).read_bytes())
    assert len(raw) == series.n_slices * series.rows * series.cols * 2
    source = pydicom.dcmread(
        next((phantom_dir / "dicom" / "SYNTH-000001").glob(f"S{series.series_number:04d}/*"))
    )
    expected = "voi" if "WindowCenter" in source else "percentile"  # METHOD §3: VOI, else percentiles
    assert series.meta["format"] == "uint16-le" and series.meta["window"]["source"] == expected
    meta = json.loads((importer_store.volume_file(series).parent / "meta.json").read_text())
    assert meta["shape"] == [series.n_slices, series.rows, series.cols]
    assert series.series_uid.startswith("2.25.") and series.series_uid not in series.volume_path


def test_make_phantoms_writes_a_synthetic_cohort_and_refuses_a_used_folder(tmp_path):
    out = io.StringIO()
    args = [
        str(tmp_path / "p"),
        "--patients",
        "1",
        "--seed",
        "3",
        "--slice-size",
        "32",
        "--slices-per-series",
        "2",
    ]
    call_command("make_phantoms", *args, stdout=out)
    assert (tmp_path / "p" / "manifest.csv").read_text().startswith("patient_key,class,")
    assert "SYNTHETIC cohort" in out.getvalue() and "import_dicom" in out.getvalue()
    with pytest.raises(CommandError, match="not empty"):
        call_command("make_phantoms", *args, stdout=io.StringIO())


def _enhanced_mr(files: list[Path], target: Path) -> list[np.ndarray]:
    """One Enhanced MR Image Storage file holding the given classic slices as frames, in reverse order,
    with geometry only in the functional groups (PS3.3 C.7.6.16). Returns the frames in slice order."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sources = [pydicom.dcmread(f) for f in files]
    first = sources[0]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = first.StudyInstanceUID, generate_uid()
    ds.Modality, ds.PatientID, ds.SeriesNumber, ds.InstanceNumber = "MR", "ENH-1", 901, 1
    ds.SeriesDescription = "T2W_TSE_TRA enhanced"
    for keyword in (
        "Rows",
        "Columns",
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
    ):
        setattr(ds, keyword, getattr(first, keyword))
    ds.NumberOfFrames = len(sources)
    shared = Dataset()
    shared.PlaneOrientationSequence = [Dataset()]
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = first.ImageOrientationPatient
    shared.PixelMeasuresSequence = [Dataset()]
    shared.PixelMeasuresSequence[0].PixelSpacing = first.PixelSpacing
    shared.PixelMeasuresSequence[0].SliceThickness = first.SliceThickness
    ds.SharedFunctionalGroupsSequence = [shared]
    ordered = list(reversed(sources))
    frames = []
    for source in ordered:
        item = Dataset()
        item.PlanePositionSequence = [Dataset()]
        item.PlanePositionSequence[0].ImagePositionPatient = source.ImagePositionPatient
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = b"".join(s.pixel_array.astype("<u2").tobytes() for s in ordered)
    ds.save_as(target, enforce_file_format=True)
    return [s.pixel_array for s in sources]


def test_an_enhanced_multiframe_mr_file_becomes_one_series_in_slice_order(phantom_dir, tmp_path):
    rows = list(csv.DictReader((phantom_dir / "series.csv").open()))
    t2 = next(r for r in rows if r["sequence_code"] == "T2axi" and r["patient_key"] == "SYNTH-000001")
    files = sorted(
        (phantom_dir / "dicom" / "SYNTH-000001" / f"S{int(t2['series_number']):04d}").glob("*.dcm")
    )
    (tmp_path / "enh").mkdir()
    expected = _enhanced_mr(files, tmp_path / "enh" / "EE0001")
    job = run_import(tmp_path / "enh")
    assert job.status == JobStatus.SUCCEEDED and job.result["files_rejected"] == 0, job.result
    series = Series.objects.get()
    assert series.n_slices == len(files) and series.plane == "axial" and series.mapped_code == "T2axi"
    stored = importer_store.read_stored(series)
    positions = [pydicom.dcmread(f).ImagePositionPatient[2] for f in files]
    order = np.argsort(positions)  # stored along the slice normal, whatever the frame order in the file
    assert all(np.array_equal(stored[i], expected[j]) for i, j in enumerate(order))
