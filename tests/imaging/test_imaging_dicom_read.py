"""Reading DICOM for import: pydicom's locally installed MR test files in every transfer syntax they
come in, a synthetic enhanced multi-frame MR, a DICOMDIR, and malformed files that must each be
rejected with a reason that names the problem and never a value from the file."""

import io
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from imaging.deid import UidMap, deidentify, scan_for_phi
from imaging.dicom_read import (
    ENHANCED_MR_IMAGE_STORAGE,
    SliceGeometry,
    frame_geometries,
    iter_dicomdir_files,
    read_dicom_file,
)

MR_SMALL_VARIANTS = [
    "MR_small.dcm",                    # explicit VR little endian
    "MR_small_implicit.dcm",           # implicit VR little endian
    "MR_small_bigendian.dcm",          # explicit VR big endian
    "MR_small_expb.dcm",               # explicit VR big endian, other writer
    "MR_small_padded.dcm",             # trailing padding
    "MR_small_RLE.dcm",                # RLE lossless
    "MR_small_jp2klossless.dcm",       # JPEG 2000 lossless
    "MR_small_jpeg_ls_lossless.dcm",   # JPEG-LS lossless
]
IDENTIFYING = ["Quillfeather^Zenobia", "PID-ZQ-77310", "ZQ T2 SAGITTAL"]


def _testdata(name: str) -> Path:
    path = get_testdata_file(name, download=False)  # no network here: local files only
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed locally")
    return Path(path)


def _planted_mr() -> Dataset:
    ds = pydicom.dcmread(_testdata("MR_small.dcm"))
    ds.PatientName, ds.PatientID, ds.SeriesDescription = IDENTIFYING
    return ds


def _save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def _reason(path: Path) -> str:
    result = read_dicom_file(path)
    assert result.status == "rejected" and not result.ok and result.dataset is None
    for value in IDENTIFYING:
        assert value.lower() not in result.reason.lower()
    return result.reason


@pytest.fixture(scope="module")
def reference():
    return read_dicom_file(_testdata("MR_small.dcm"))


@pytest.mark.parametrize("name", MR_SMALL_VARIANTS)
def test_mr_small_reads_identically_in_every_transfer_syntax(name, reference):
    result = read_dicom_file(_testdata(name))
    assert result.ok, result.reason
    assert result.pixels.shape == (1, 64, 64) and result.pixels.dtype == np.float32
    assert result.pixels.dtype.isnative
    assert np.array_equal(result.pixels, reference.pixels)
    assert result.slices == reference.slices


def test_geometry_of_a_classic_mr_slice(reference):
    (geometry,) = reference.slices
    assert geometry.position_mm == pytest.approx((-83.9063, -91.2, 6.6406))
    assert geometry.orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert geometry.pixel_spacing_mm == (0.3125, 0.3125)
    assert geometry.slice_thickness_mm == pytest.approx(0.8)
    assert (geometry.window_center, geometry.window_width) == (600.0, 1600.0)
    assert np.allclose(geometry.normal, [0, 0, 1])
    assert geometry.location_mm == pytest.approx(6.6406)
    assert reference.pixels.min() == 127 and reference.pixels.max() == 2145


def test_rescale_slope_and_intercept_are_applied(tmp_path):
    ds = pydicom.dcmread(_testdata("MR_small.dcm"))
    ds.RescaleSlope, ds.RescaleIntercept = "2.5", "-100"
    result = read_dicom_file(_save(ds, tmp_path / "rescaled.dcm"))
    assert result.ok
    expected = ds.pixel_array.astype(np.float32) * 2.5 - 100
    assert np.allclose(result.pixels[0], expected)


def test_deflated_mr_reads_and_a_cut_deflate_stream_is_truncated(tmp_path, reference):
    ds = pydicom.dcmread(_testdata("MR_small.dcm"))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    path = _save(ds, tmp_path / "deflated.dcm")
    result = read_dicom_file(path)
    assert result.ok and np.array_equal(result.pixels, reference.pixels)
    (tmp_path / "cut.dcm").write_bytes(path.read_bytes()[:-500])
    assert _reason(tmp_path / "cut.dcm") == "truncated file (deflated data set ends early)"


def test_a_file_without_extension_is_read(tmp_path):
    target = tmp_path / "IM000007"
    shutil.copy(_testdata("MR_small.dcm"), target)
    assert read_dicom_file(target).ok


def test_mr_with_overlay_reads(tmp_path):
    result = read_dicom_file(_testdata("examples_overlay.dcm"))
    assert result.ok and result.pixels.shape == (1, 300, 484)


def _enhanced_mr(frames: int = 3, rows: int = 4, cols: int = 5) -> tuple[Dataset, np.ndarray]:
    """A minimal synthetic Enhanced MR Image Storage object: per-frame positions, rescale, b-values."""
    rng = np.random.default_rng(7)
    stored = rng.integers(0, 4096, size=(frames, rows, cols), dtype=np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ENHANCED_MR_IMAGE_STORAGE
    ds.SOPClassUID = ENHANCED_MR_IMAGE_STORAGE
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.InstanceNumber = "MR", 1
    ds.PatientName, ds.PatientID = IDENTIFYING[0], IDENTIFYING[1]
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    shared = Dataset()
    shared.PlaneOrientationSequence = [Dataset()]
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # coronal
    shared.PixelMeasuresSequence = [Dataset()]
    shared.PixelMeasuresSequence[0].PixelSpacing = [0.8, 0.7]
    shared.PixelMeasuresSequence[0].SliceThickness = 4
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for index in range(frames):
        item = Dataset()
        item.PlanePositionSequence = [Dataset()]
        item.PlanePositionSequence[0].ImagePositionPatient = [-100, 10.0 + 5 * index, 50]
        item.PixelValueTransformationSequence = [Dataset()]
        item.PixelValueTransformationSequence[0].RescaleSlope = 1 + index
        item.PixelValueTransformationSequence[0].RescaleIntercept = -10 * index
        item.FrameContentSequence = [Dataset()]
        item.FrameContentSequence[0].TemporalPositionIndex = index + 1
        item.FrameContentSequence[0].FrameAcquisitionDateTime = "20190214101112"
        item.MRDiffusionSequence = [Dataset()]
        item.MRDiffusionSequence[0].DiffusionBValue = [0.0, 400.0, 800.0][index % 3]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.PixelData = stored.tobytes()
    return ds, stored


def test_enhanced_multiframe_mr_splits_into_slices_with_per_frame_geometry(tmp_path):
    ds, stored = _enhanced_mr()
    result = read_dicom_file(_save(ds, tmp_path / "enhanced"))
    assert result.ok, result.reason
    assert result.pixels.shape == (3, 4, 5)
    for index, geometry in enumerate(result.slices):
        assert geometry.frame == index
        assert geometry.position_mm == (-100.0, 10.0 + 5 * index, 50.0)
        assert geometry.orientation == (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
        assert geometry.pixel_spacing_mm == (0.8, 0.7) and geometry.slice_thickness_mm == 4.0
        assert geometry.temporal_position == index + 1
        assert geometry.b_value == [0.0, 400.0, 800.0][index]
        assert np.allclose(result.pixels[index], stored[index] * (1 + index) - 10 * index)
    locations = [g.location_mm for g in result.slices]
    assert np.allclose(np.diff(locations), 5.0)  # normal of a coronal plane is +y


def test_enhanced_mr_geometry_survives_deidentification_and_its_frame_dates_do_not(tmp_path):
    ds, _ = _enhanced_mr()
    result = read_dicom_file(_save(ds, tmp_path / "enhanced.dcm"))
    clean = deidentify(result.dataset, uid_map=UidMap(b"test-secret-for-deid-0123456789"), pseudonym="C-0001")
    assert frame_geometries(clean) == result.slices
    assert scan_for_phi(clean, ["20190214101112", *IDENTIFYING[:2]]) == []


def test_slice_geometry_without_orientation_has_no_location():
    assert SliceGeometry(frame=0, position_mm=(1.0, 2.0, 3.0)).location_mm is None


# --- rejections -------------------------------------------------------------------------------


def test_empty_file_is_rejected(tmp_path):
    (tmp_path / "empty.dcm").write_bytes(b"")
    assert _reason(tmp_path / "empty.dcm") == "empty file (0 bytes)"


def test_png_renamed_dcm_is_rejected_although_force_would_read_it(tmp_path):
    from PIL import Image

    path = tmp_path / "scan.dcm"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(path, format="PNG")
    assert len(pydicom.dcmread(path, force=True)) >= 0  # pydicom "reads" it with force=True
    assert _reason(path) == "not a DICOM file (no DICM preamble; looks like a PNG image)"


def test_text_file_is_not_dicom(tmp_path):
    (tmp_path / "notes.dcm").write_text("Quillfeather^Zenobia scanned on Tuesday\n" * 10)
    assert _reason(tmp_path / "notes.dcm") == "not a DICOM file (no DICM preamble)"


def test_a_bare_data_set_without_part10_header_is_recognised():
    reason = _reason(_testdata("ExplVR_LitEndNoMeta.dcm"))
    assert reason == ("not a DICOM file (no DICM preamble; "
                      "looks like a bare data set without the Part 10 header)")


def test_missing_file_and_folder_are_rejected(tmp_path):
    assert _reason(tmp_path / "nope.dcm") == "file not found"
    assert _reason(tmp_path) == "not a regular file"


def test_pydicom_truncated_mr_is_rejected():
    assert _reason(_testdata("MR_truncated.dcm")).startswith("truncated file")


@pytest.mark.parametrize("where", ["file meta", "element header", "person name", "description", "pixels"])
def test_files_cut_anywhere_inside_an_element_are_truncated(tmp_path, where):
    data = _save(_planted_mr(), tmp_path / "full.dcm").read_bytes()
    keep = {
        "file meta": 140,
        "element header": data.find(b"\x08\x00\x3e\x10LO") + 5,  # inside SeriesDescription's header
        "person name": data.find(b"Quillfeather") + 4,
        "description": data.find(b"ZQ T2 SAGITTAL") + 6,
        "pixels": len(data) - 1000,
    }[where]
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:keep])
    if where != "file meta":  # pydicom returns a partial data set here without raising
        assert len(pydicom.dcmread(io.BytesIO(data[:keep]))) > 0
    assert _reason(cut).startswith("truncated file")


def test_truncated_compressed_pixel_data_is_rejected(tmp_path):
    data = _testdata("MR_small_jpeg_ls_lossless.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:-200])
    assert _reason(cut).startswith("truncated file")


def test_ct_is_not_mr(tmp_path):
    assert _reason(_testdata("CT_small.dcm")) == "not MR (modality CT)"


def test_an_unknown_modality_value_is_not_echoed(tmp_path):
    ds = _planted_mr()
    ds.Modality = "QUILLFEATHER"
    assert _reason(_save(ds, tmp_path / "x.dcm")) == "not MR (modality not recognised)"


def test_mr_without_pixel_data_is_rejected(tmp_path):
    ds = _planted_mr()
    del ds.PixelData
    assert _reason(_save(ds, tmp_path / "nopixels.dcm")) == "no pixel data"


def test_pixel_data_shorter_than_the_image_is_truncated(tmp_path):
    ds = _planted_mr()
    ds.PixelData = ds.PixelData[:1000]
    reason = _reason(_save(ds, tmp_path / "short.dcm"))
    assert reason == "truncated file (pixel data shorter than the image size)"


def test_a_header_claiming_a_huge_image_is_refused_before_decoding(tmp_path):
    ds = pydicom.dcmread(_testdata("MR_small_jpeg_ls_lossless.dcm"))
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 1000
    assert _reason(_save(ds, tmp_path / "huge.dcm")).startswith("image too large")


def test_a_transfer_syntax_without_decoder_is_named(tmp_path):
    ds = pydicom.dcmread(_testdata("MR_small_jpeg_ls_lossless.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: nothing decodes it
    path = _save(ds, tmp_path / "mpeg.dcm")
    assert _reason(path) == ("pixel data cannot be decoded "
                             "(transfer syntax MPEG2 Main Profile / Main Level: not supported)")


@pytest.mark.parametrize(("name", "syntax"), [("MR_small_jp2klossless.dcm", "JPEG 2000"),
                                              ("MR_small_RLE.dcm", "RLE Lossless")])
def test_corrupt_compressed_pixel_data_is_rejected(tmp_path, name, syntax):
    ds = pydicom.dcmread(_testdata(name))
    frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    half = frame[: len(frame) // 4 * 2]  # a code stream cut in half, inside a valid encapsulation
    ds.PixelData = pydicom.encaps.encapsulate([half])
    reason = _reason(_save(ds, tmp_path / "corrupt.dcm"))
    assert reason.startswith(f"pixel data cannot be decoded (transfer syntax {syntax}")
    assert reason.endswith(": corrupt data)")


def test_colour_mr_is_rejected(tmp_path):
    ds = _planted_mr()
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = bytes(64 * 64 * 3)
    reason = _reason(_save(ds, tmp_path / "rgb.dcm"))
    assert reason == "not a greyscale MONOCHROME2 image (PhotometricInterpretation RGB)"


def test_secondary_capture_of_an_mr_is_rejected(tmp_path):
    ds = _planted_mr()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    reason = _reason(_save(ds, tmp_path / "sc.dcm"))
    assert reason == "not an MR image object (SOP class Secondary Capture Image Storage)"


def test_burned_in_annotation_is_rejected(tmp_path):
    ds = _planted_mr()
    ds.BurnedInAnnotation = "YES"
    assert _reason(_save(ds, tmp_path / "burned.dcm")).startswith("burned-in annotation")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_pydicom_complaints_quoting_values_do_not_reach_the_log(tmp_path, caplog):
    """pydicom logs "Invalid value for VR CS: '<value>'" the first time a value is decoded."""
    ds = _planted_mr()
    ds.add_new(0x00180091, "IS", "7")
    ds[0x00180091]._value = "7" + IDENTIFYING[0]  # EchoTrainLength: not an integer string
    path = _save(ds, tmp_path / "invalid.dcm")
    caplog.clear()  # setting those values above was logged, by this test itself
    with caplog.at_level("DEBUG"):
        result = read_dicom_file(path)
        values = [str(result.dataset.EchoTrainLength)]
        values += [str(element.value) for element in result.dataset.iterall()]
    assert result.ok and IDENTIFYING[0] in values[0]
    assert IDENTIFYING[0].lower() not in caplog.text.lower()


# --- DICOMDIR ---------------------------------------------------------------------------------


def test_dicomdir_is_reported_as_an_index_not_an_error():
    result = read_dicom_file(_testdata("DICOMDIR"))
    assert result.status == "dicomdir" and not result.ok
    assert "DICOMDIR" in result.reason


def test_dicomdir_lists_its_files_and_the_mr_ones_read():
    dicomdir = _testdata("DICOMDIR")
    files = list(iter_dicomdir_files(dicomdir))
    assert len(files) == 31 and len(set(files)) == 31
    assert all(path.is_file() and dicomdir.parent in path.parents for path in files)
    results = [read_dicom_file(path) for path in files]
    assert sum(r.ok for r in results) == 17
    assert {r.reason for r in results if not r.ok} == {"not MR (modality CT)", "not MR (modality CR)"}


@pytest.mark.filterwarnings("ignore::UserWarning")  # '..' is not a valid CS: that is the point
def test_dicomdir_paths_resolve_case_insensitively_and_never_leave_the_folder(tmp_path):
    source = _testdata("DICOMDIR").parent
    copy = tmp_path / "media"
    shutil.copytree(source, copy)
    (copy / "98892003" / "MR2").rename(copy / "98892003" / "mr2")  # lower-case folder, as on some media
    ds = pydicom.dcmread(copy / "DICOMDIR")
    images = [r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r]
    images[0].ReferencedFileID = ["..", "..", "etc", "passwd"]
    ds.save_as(copy / "DICOMDIR")
    files = list(iter_dicomdir_files(copy / "DICOMDIR"))
    assert len(files) == 30
    assert all(copy in path.resolve().parents for path in files)
    assert copy / "98892003" / "mr2" / "4950" in files


def test_a_non_dicomdir_is_refused_by_the_dicomdir_reader():
    with pytest.raises(ValueError, match="MR_small.dcm: not a DICOMDIR"):
        list(iter_dicomdir_files(_testdata("MR_small.dcm")))
