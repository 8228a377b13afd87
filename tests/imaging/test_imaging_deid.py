"""De-identification proven on a PHI-laden MR file: identifying strings planted everywhere (top level,
sequences three deep, private blocks and creators, overlays, curves, descriptions, dates, UIDs, person
names, file meta, preamble, trailing padding) and none may survive, in the data set or in the bytes
of the written file. The planted values are synthetic; the image is pydicom's MR_small.dcm."""

import io

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from imaging.deid import (
    DeidentificationError,
    UidMap,
    deidentify,
    patient_key_hash,
    scan_bytes_for_phi,
    scan_for_phi,
)
from imaging.uids import keyed_uid

SECRET = b"test-secret-for-deid-0123456789"
PSEUDONYM = "C-0042"


def _testdata(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed locally")
    return path


def _item(**attributes) -> Dataset:
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


PLANTED = {
    "patient_name": "Quillfeather^Zenobia^Marisol",
    "patient_id": "PID-ZQ-77310",
    "other_id": "OPID-ZQ-55123",
    "other_id_seq": "OPIDSEQ-ZQ-9911",
    "other_name": "Quillfeather^Zenobia-Maiden",
    "birth_date": "19610317",
    "study_date": "20190211",
    "series_date": "20190212",
    "content_date": "20190213",
    "acq_datetime": "20190214101112",
    "study_time": "101213.5",
    "accession": "ACC-ZQ-4471",
    "institution": "Zanzibar Quay General Hospital",
    "institution_address": "12 Quillfeather Street, Zanzibar",
    "department": "Zanzibar Radiology Dept",
    "referring": "Referrer^Xanthippe",
    "performing": "Performer^Ottoline",
    "operator": "Operator^Barnabas",
    "reading": "Reader^Philippa",
    "study_desc": "ZQ STUDY DESCRIPTION pelvis",
    "series_desc": "ZQ T2 TSE SAG series-description",
    "protocol": "ZQ protocol-name uterus",
    "image_comments": "ZQ image comment left ovary",
    "station": "ZQSTATION01",
    "serial": "SN-ZQ-004242",
    "patient_address": "34 Zenobia Lane",
    "patient_phone": "555-0199-ZQ",
    "private_value": "ZQ private tag value",
    "private_creator": "ZQ PRIVATE CREATOR",
    "private_nested": "ZQ private nested value",
    "overlay_desc": "ZQ overlay description",
    "overlay_bytes": "ZQ-overlay-bytes",
    "curve_label": "ZQ curve label",
    "request_desc": "ZQ requested procedure text",
    "deep_name": "Deepname^Ignatius",
    "deep_date": "20180707",
    "deep_text": "ZQ deep text value",
    "deep_institution": "Deep Zanzibar Clinic",
    "evaluator": "Evaluator^Cornelius",
    "update_datetime": "20200101121314",
    "study_uid": "1.2.999.42.1.1",
    "series_uid": "1.2.999.42.1.2",
    "sop_uid": "1.2.999.42.1.3",
    "for_uid": "1.2.999.42.1.4",
    "creator_uid": "1.2.999.42.1.5",
    "ref_uid": "1.2.999.42.1.6",
    "deep_ref_uid": "1.2.999.42.1.7",
    "extension_uid": "1.2.999.42.1.8",
    "meta_ae": "ZQSENDAE",
    "meta_private": "ZQ meta private info",
    "preamble": "ZQ-PREAMBLE-TEXT",
    "padding": "ZQ trailing padding",
    "icon_desc": "ZQ icon comment",
    "unknown_public": "ZQ value in an unknown public tag",
    "variable_pixels": "ZQ retired variable pixel data",
}


def planted_dataset() -> Dataset:
    """MR_small.dcm with identifying values planted in every kind of place."""
    ds = pydicom.dcmread(_testdata("MR_small.dcm"))
    p = PLANTED
    ds.PatientName = p["patient_name"]
    ds.PatientID = p["patient_id"]
    ds.OtherPatientIDs = p["other_id"]
    ds.OtherPatientNames = p["other_name"]
    ds.OtherPatientIDsSequence = [_item(PatientID=p["other_id_seq"], IssuerOfPatientID="ZQ issuer")]
    ds.PatientBirthDate = p["birth_date"]
    ds.PatientAddress = p["patient_address"]
    ds.PatientTelephoneNumbers = p["patient_phone"]
    ds.StudyDate, ds.SeriesDate, ds.ContentDate = p["study_date"], p["series_date"], p["content_date"]
    ds.AcquisitionDate = p["series_date"]
    ds.AcquisitionDateTime = p["acq_datetime"]
    ds.StudyTime = p["study_time"]
    ds.AccessionNumber = p["accession"]
    ds.InstitutionName = p["institution"]
    ds.InstitutionAddress = p["institution_address"]
    ds.InstitutionalDepartmentName = p["department"]
    ds.ReferringPhysicianName = p["referring"]
    ds.PerformingPhysicianName = p["performing"]
    ds.OperatorsName = p["operator"]
    ds.NameOfPhysiciansReadingStudy = p["reading"]
    ds.StudyDescription = p["study_desc"]
    ds.SeriesDescription = p["series_desc"]
    ds.ProtocolName = p["protocol"]
    ds.ImageComments = p["image_comments"]
    ds.StationName = p["station"]
    ds.DeviceSerialNumber = p["serial"]
    ds.EvaluatorName = p["evaluator"]  # a PN the table does not list
    ds.StudyUpdateDateTime = p["update_datetime"]  # a DT the table does not list
    ds.ContextGroupExtensionCreatorUID = p["extension_uid"]  # a UI the table does not list
    ds.StudyInstanceUID, ds.SeriesInstanceUID = p["study_uid"], p["series_uid"]
    ds.SOPInstanceUID, ds.FrameOfReferenceUID = p["sop_uid"], p["for_uid"]
    ds.file_meta.MediaStorageSOPInstanceUID = p["sop_uid"]
    ds.InstanceCreatorUID = p["creator_uid"]
    ds.RequestAttributesSequence = [_item(RequestedProcedureDescription=p["request_desc"])]
    ds.TemporalPositionIdentifier = 3
    # three levels deep, through sequences the profile keeps
    level3 = _item(ContentCreatorName=p["deep_name"], ObservationDateTime=p["deep_date"] + "120000",
                   TextValue=p["deep_text"], InstitutionName=p["deep_institution"],
                   ReferencedSOPInstanceUID=p["deep_ref_uid"], CodeValue="T-83000",
                   CodingSchemeDesignator="SRT")
    level3.add_new(0x00430010, "LO", p["private_creator"])
    level3.add_new(0x00431001, "LO", p["private_nested"])
    level2 = _item(ReferencedSOPClassUID="1.2.840.10008.5.1.4.1.1.4",
                   ReferencedSOPInstanceUID=p["ref_uid"], AnatomicRegionSequence=[level3])
    level1 = _item(ReferencedSOPClassUID="1.2.840.10008.5.1.4.1.1.4",
                   ReferencedSOPInstanceUID=p["ref_uid"], SourceImageSequence=[level2],
                   PatientName=p["deep_name"])
    ds.ReferencedImageSequence = [level1]
    # private block, private sequence
    block = ds.private_block(0x0029, p["private_creator"], create=True)
    block.add_new(0x10, "LO", p["private_value"])
    block.add_new(0x11, "SQ", Sequence([_item(PatientName=p["deep_name"])]))
    # overlay (60xx) and curve (50xx) groups
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60000011, "US", 8)
    ds.add_new(0x60000022, "LO", p["overlay_desc"])
    ds.add_new(0x60003000, "OW", p["overlay_bytes"].encode().ljust(16, b"\0"))
    ds.add_new(0x50002500, "LO", p["curve_label"])
    ds.add_new(0x50003000, "OB", p["curve_label"].encode())
    ds.IconImageSequence = [_item(ImageComments=p["icon_desc"])]
    ds.add_new(0xFFFCFFFC, "OB", p["padding"].encode() + b"\0")
    ds.add_new(0x00180000, "UL", 1234)  # a stale group length
    ds.add_new(0x00089999, "LO", p["unknown_public"])  # even group, not in the data dictionary
    ds.add_new(0x7F000010, "OW", p["variable_pixels"].encode().ljust(32, b"\0"))
    # file meta and preamble
    ds.file_meta.SourceApplicationEntityTitle = p["meta_ae"]
    ds.file_meta.add_new(0x00020100, "UI", "1.2.999.42.9")
    ds.file_meta.add_new(0x00020102, "OB", p["meta_private"].encode())
    ds.preamble = p["preamble"].encode().ljust(128, b"\0")
    return ds


def _written(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _all_elements(ds: Dataset):
    yield from ds.iterall()


@pytest.fixture(scope="module")
def original() -> Dataset:
    return planted_dataset()


@pytest.fixture(scope="module")
def cleaned(original) -> Dataset:
    return deidentify(original, uid_map=UidMap(SECRET), pseudonym=PSEUDONYM)


def test_every_planted_value_is_present_before_deidentification(original):
    """The scanners must see what was planted, or the 'nothing survives' tests prove nothing."""
    findings = scan_for_phi(original, PLANTED.values())
    found = {int(f.rsplit("#", 1)[1]) for f in findings}
    written = {int(f.rsplit("#", 1)[1]) for f in scan_bytes_for_phi(_written(original), PLANTED.values())}
    assert found | written == set(range(len(PLANTED)))
    assert "ReferencedImageSequence[0].SourceImageSequence[0].AnatomicRegionSequence[0].TextValue: value #" \
        + str(list(PLANTED).index("deep_text")) in findings


def test_no_planted_value_survives_in_the_dataset(cleaned):
    assert scan_for_phi(cleaned, PLANTED.values()) == []


def test_no_planted_value_survives_in_the_bytes_of_the_written_file(cleaned):
    data = _written(cleaned)
    assert scan_bytes_for_phi(data, PLANTED.values()) == []
    assert data[:128] == bytes(128)


def test_findings_name_the_place_but_never_the_value(original):
    findings = scan_for_phi(original, [PLANTED["patient_name"]])
    assert "PatientName: value #0" in findings
    assert all(PLANTED["patient_name"].lower() not in f.lower() for f in findings)


def test_patient_is_named_by_the_pseudonym_and_marked_deidentified(cleaned):
    assert str(cleaned.PatientName) == PSEUDONYM and cleaned.PatientID == PSEUDONYM
    assert cleaned.PatientIdentityRemoved == "YES"
    assert cleaned.LongitudinalTemporalInformationModified == "REMOVED"
    code = cleaned.DeidentificationMethodCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
    assert "Basic Application Confidentiality Profile" in cleaned.DeidentificationMethod[0]


def test_private_curve_and_overlay_groups_are_gone_at_every_depth(cleaned):
    groups = {element.tag.group for element in _all_elements(cleaned)}
    assert not [g for g in groups if g % 2 == 1]
    assert not [g for g in groups if 0x5000 <= g <= 0x50FF or 0x6000 <= g <= 0x60FF]
    assert 0xFFFCFFFC not in cleaned and "IconImageSequence" not in cleaned
    assert not [element.tag for element in _all_elements(cleaned) if element.tag.element == 0]
    assert "RequestAttributesSequence" not in cleaned and "OtherPatientIDsSequence" not in cleaned


def test_names_dates_and_descriptions_are_removed_or_emptied(cleaned):
    for element in _all_elements(cleaned):
        if element.VR == "PN":
            assert str(element.value or "") in ("", PSEUDONYM), element.keyword
        if element.VR in ("DA", "DT", "TM"):
            assert str(element.value or "") in ("", "19000101", "19000101000000", "000000"), element.keyword
    for keyword in ("SeriesDescription", "StudyDescription", "ProtocolName", "ImageComments",
                    "InstitutionName", "StationName", "DeviceSerialNumber", "OtherPatientIDs",
                    "PatientBirthDate", "AcquisitionDate", "AcquisitionDateTime"):
        assert not cleaned.get(keyword), keyword


def test_what_the_images_need_is_kept(original, cleaned):
    for keyword in ("Rows", "Columns", "PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient",
                    "SliceThickness", "InstanceNumber", "SeriesNumber", "TemporalPositionIdentifier",
                    "EchoTime", "RepetitionTime", "ScanningSequence", "Modality", "SOPClassUID"):
        assert cleaned.get(keyword) == original.get(keyword), keyword
    assert np.array_equal(cleaned.pixel_array, original.pixel_array)


def test_every_non_standard_uid_is_replaced_by_a_keyed_2_25_uid(cleaned):
    uid_map = UidMap(SECRET)
    assert cleaned.StudyInstanceUID == uid_map(PLANTED["study_uid"])
    assert cleaned.SOPInstanceUID == keyed_uid(SECRET, PLANTED["sop_uid"])
    assert cleaned.ContextGroupExtensionCreatorUID == uid_map(PLANTED["extension_uid"])
    deep = cleaned.ReferencedImageSequence[0].SourceImageSequence[0].AnatomicRegionSequence[0]
    assert deep.ReferencedSOPInstanceUID == uid_map(PLANTED["deep_ref_uid"])
    for element in _all_elements(cleaned):
        if element.VR == "UI" and element.value:
            uid = pydicom.uid.UID(element.value)
            assert uid.type or uid.startswith("2.25."), element.keyword
            assert uid.is_valid, element.keyword
    assert cleaned.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    assert cleaned.ReferencedImageSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.4"


def test_file_meta_is_rebuilt(cleaned):
    meta = cleaned.file_meta
    assert meta.MediaStorageSOPInstanceUID == cleaned.SOPInstanceUID
    assert meta.MediaStorageSOPClassUID == cleaned.SOPClassUID
    assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert meta.ImplementationClassUID == pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    assert "SourceApplicationEntityTitle" not in meta and 0x00020102 not in meta


def test_the_input_dataset_is_left_untouched_for_classification(original, cleaned):
    assert original.SeriesDescription == PLANTED["series_desc"]
    assert str(original.PatientName) == PLANTED["patient_name"]
    assert original.SOPInstanceUID == PLANTED["sop_uid"]


def test_uid_map_is_deterministic_and_keyed():
    one, two, other = UidMap(SECRET), UidMap(SECRET), UidMap(b"another-secret-0123456789abcdef")
    assert one("1.2.3.4.5") == two("1.2.3.4.5") == two("1.2.3.4.5\x00")
    assert one("1.2.3.4.5") != other("1.2.3.4.5")
    assert one("1.2.3.4.5") != one("1.2.3.4.6")
    assert one("1.2.840.10008.1.2.1") == "1.2.840.10008.1.2.1"  # registered: unchanged
    assert len(one("1.2.3.4.5")) <= 64 and pydicom.uid.UID(one("1.2.3.4.5")).is_valid
    assert "test-secret" not in repr(one)


def test_two_runs_and_two_workers_give_identical_output(original):
    first = deidentify(original, uid_map=UidMap(SECRET), pseudonym=PSEUDONYM)
    second = deidentify(original, uid_map=UidMap(SECRET), pseudonym=PSEUDONYM)
    assert _written(first) == _written(second)
    other = deidentify(original, uid_map=UidMap(b"another-secret-0123456789abcdef"), pseudonym=PSEUDONYM)
    assert other.SOPInstanceUID != first.SOPInstanceUID
    assert other.StudyInstanceUID != first.StudyInstanceUID


def test_references_between_instances_stay_consistent():
    """A localizer and an image that references it, de-identified by two separate workers."""
    localizer = planted_dataset()
    image = planted_dataset()
    image.SOPInstanceUID = "1.2.999.42.2.1"
    image.file_meta.MediaStorageSOPInstanceUID = "1.2.999.42.2.1"
    image.ReferencedImageSequence[0].ReferencedSOPInstanceUID = localizer.SOPInstanceUID
    out_localizer = deidentify(localizer, uid_map=UidMap(SECRET), pseudonym=PSEUDONYM)
    out_image = deidentify(image, uid_map=UidMap(SECRET), pseudonym=PSEUDONYM)
    assert out_image.ReferencedImageSequence[0].ReferencedSOPInstanceUID == out_localizer.SOPInstanceUID
    assert out_image.SOPInstanceUID != out_localizer.SOPInstanceUID
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert out_image.get(keyword) == out_localizer.get(keyword), keyword


@pytest.mark.parametrize("name", ["MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm",
                                  "MR_small_RLE.dcm"])
def test_compressed_pixel_data_is_decoded_so_no_code_stream_metadata_survives(name):
    ds = pydicom.dcmread(_testdata(name))
    out = deidentify(ds, uid_map=UidMap(SECRET), pseudonym=PSEUDONYM)
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(out.pixel_array, ds.pixel_array)
    assert out.SOPInstanceUID == keyed_uid(SECRET, ds.SOPInstanceUID)  # not a fresh random UID
    reread = pydicom.dcmread(io.BytesIO(_written(out)))
    assert np.array_equal(reread.pixel_array, ds.pixel_array)


def test_pixel_data_in_an_unknown_transfer_syntax_is_refused():
    ds = pydicom.dcmread(_testdata("MR_small_jpeg_ls_lossless.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.999.42.77"
    with pytest.raises(DeidentificationError, match="unknown transfer syntax"):
        deidentify(ds, uid_map=UidMap(SECRET), pseudonym=PSEUDONYM)


def test_big_endian_input_is_written_and_read_back():
    ds = pydicom.dcmread(_testdata("MR_small_bigendian.dcm"))
    out = deidentify(ds, uid_map=UidMap(SECRET), pseudonym=PSEUDONYM)
    reread = pydicom.dcmread(io.BytesIO(_written(out)))
    assert np.array_equal(reread.pixel_array, ds.pixel_array)
    assert str(reread.PatientName) == PSEUDONYM


def test_a_patient_value_hidden_where_the_profile_keeps_data_stops_deidentification():
    ds = planted_dataset()
    ds.Manufacturer = PLANTED["patient_id"]  # LO the table keeps: only the self-check can see it
    with pytest.raises(DeidentificationError) as caught:
        deidentify(ds, uid_map=UidMap(SECRET), pseudonym=PSEUDONYM)
    assert "Manufacturer" in str(caught.value)
    assert PLANTED["patient_id"] not in str(caught.value)


def test_short_ids_inside_numbers_are_not_false_alarms():
    ds = pydicom.dcmread(_testdata("MR_small.dcm"))
    ds.PatientID = "4000"  # also the value of LargestImagePixelValue / RepetitionTime
    out = deidentify(ds, uid_map=UidMap(SECRET), pseudonym=PSEUDONYM)
    assert out.PatientID == PSEUDONYM


@pytest.mark.parametrize("bad", ["", "   ", "Doe^Jane", "A\\B", "x" * 65, "naïve"])
def test_pseudonym_must_be_a_plain_short_code(bad):
    ds = pydicom.dcmread(_testdata("MR_small.dcm"))
    with pytest.raises(ValueError, match="pseudonym"):
        deidentify(ds, uid_map=UidMap(SECRET), pseudonym=bad)


def test_patient_key_hash_links_without_revealing_the_key():
    digest = patient_key_hash(SECRET, "PAT-000123")
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert digest == patient_key_hash(SECRET, " PAT-000123 ")
    assert digest != patient_key_hash(SECRET, "PAT-000124")
    assert digest != patient_key_hash(b"another-secret-0123456789abcdef", "PAT-000123")
    assert "PAT-000123" not in digest
    with pytest.raises(ValueError, match="empty"):
        patient_key_hash(SECRET, "  ")
    with pytest.raises(ValueError, match="secret too short"):
        patient_key_hash(b"short", "PAT-000123")


def test_uid_hash_and_patient_hash_are_separate_domains():
    assert keyed_uid(SECRET, "12345") != patient_key_hash(SECRET, "12345")
