"""De-identify one DICOM data set with the PS3.15 Basic Application Level Confidentiality Profile.

Why our own code: the PyPI de-identifiers leaked planted identifiers in our trials (descriptions,
nested sequences, private tags, overlays, dates; DESIGN.md). The rules are data
(``imaging.deid_table``); this module applies them at every sequence depth and adds stricter rules
for what the table does not list (see the table's docstring and docs/deidentification.md).

ORDER AT IMPORT: classify the series type from the ORIGINAL header first (SeriesDescription,
ProtocolName, ScanOptions, ... are removed here), read geometry and pixels (``imaging.dicom_read``),
then call ``deidentify``, which returns a new data set and leaves its input untouched.

UIDs: every UID that is not a registered DICOM UID is replaced by ``uid_map`` (``imaging.uids.UidMap``,
keyed and deterministic), at every depth and in the file meta header, so StudyInstanceUID,
SeriesInstanceUID, FrameOfReferenceUID and ReferencedSOPInstanceUID stay consistent across files,
workers and re-imports without storing a mapping.
"""

import copy
from collections.abc import Callable, Iterable, Iterator

from pydicom import __version__ as pydicom_version
from pydicom.datadict import dictionary_has_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

from imaging.deid_table import (
    DUMMY,
    EMPTY,
    KEEP_AND_CLEAN_ITEMS,
    REMOVE,
    REPLACE_UID,
    resolved_action,
)
from imaging.dicom_read import quiet_pydicom
from imaging.uids import UidMap, is_registered_uid, normalise_uid, patient_key_hash

__all__ = [
    "DeidentificationError",
    "UidMap",
    "deidentify",
    "patient_key_hash",
    "scan_bytes_for_phi",
    "scan_for_phi",
]

KEEP = "K"
_MAX_DEPTH = 64

# VRs removed wherever the table does not list the attribute: names, dates/times, AE titles, free
# text, and values whose content we cannot interpret.
_REMOVED_VRS = frozenset({"PN", "DA", "DT", "TM", "AE", "LT", "ST", "UT", "UC", "UR", "UN"})
_DUMMY_TEXT = {"AE": "ANONYMOUS", "AS": "000D", "CS": "ANONYMIZED", "DA": "19000101", "DS": "0",
               "DT": "19000101000000", "IS": "0", "LO": "ANONYMIZED", "LT": "ANONYMIZED",
               "PN": "ANONYMIZED", "SH": "ANONYMIZED", "ST": "ANONYMIZED", "TM": "000000",
               "UC": "ANONYMIZED", "UR": "", "UT": "ANONYMIZED"}
_DATA_SET_TRAILING_PADDING = 0xFFFCFFFC
_PIXEL_DATA_GROUP = 0x7FE0

DEIDENTIFICATION_METHOD = (
    "DICOM PS3.15 E.1 Basic Application Confidentiality Profile",
    "private, curve, overlay groups, dates, descriptions removed",
    "UIDs replaced by keyed HMAC-SHA256 2.25 UIDs",
)
_BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
_SELF_CHECK_KEYWORDS = (
    "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthDate",
    "AccessionNumber", "PatientAddress", "PatientTelephoneNumbers",
)
_SELF_CHECK_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")
_WORD_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})  # free text, not coded terms (CS)


class DeidentificationError(ValueError):
    """The data set cannot be de-identified safely; the message names no identifying value."""


def deidentify(ds: Dataset, *, uid_map: Callable[[str], str], pseudonym: str,
               decompress: bool = True) -> Dataset:
    """Return a de-identified copy of ``ds`` (the input is not modified).

    uid_map: old UID -> new UID, normally ``UidMap(secret)``; registered DICOM UIDs are never passed
    to it. pseudonym: the case pseudonym, written to PatientName and PatientID.
    decompress: decode encapsulated (compressed) pixel data to native little endian first, because
    JPEG / JPEG 2000 code streams can carry comments and application segments the profile cannot see.

    Raises DeidentificationError when pixel data cannot be decompressed or when a value of the
    original patient / study identification is still found in the result (a self-check).
    """
    _check_pseudonym(pseudonym)
    with quiet_pydicom():
        identifying = _identifying_values(ds, pseudonym)
        out = Dataset(copy.deepcopy(ds))  # a plain Dataset: no filename, no preamble, no buffer
        old_meta = getattr(ds, "file_meta", None)
        out.file_meta = copy.deepcopy(old_meta) if old_meta is not None else FileMetaDataset()
        if decompress:
            _decompress_if_encapsulated(out)
        _clean(out, uid_map, depth=0)
        _mark_deidentified(out, pseudonym)
        out.file_meta = _rebuilt_file_meta(out, old_meta, uid_map)
        leaks = _self_check(out, identifying)
    if leaks:
        raise DeidentificationError(f"identifying value survived de-identification at {leaks[0]}")
    return out


def _check_pseudonym(pseudonym: str) -> None:
    if not isinstance(pseudonym, str) or not pseudonym.strip():
        raise ValueError("pseudonym is empty")
    if len(pseudonym) > 64 or not pseudonym.isascii() or not pseudonym.isprintable() \
            or any(c in pseudonym for c in "\\^="):
        raise ValueError("pseudonym must be at most 64 printable ASCII characters without \\ ^ =")


def _decompress_if_encapsulated(ds: Dataset) -> None:
    syntax = getattr(ds.file_meta, "TransferSyntaxUID", None)
    if "PixelData" not in ds or syntax is None:
        return
    syntax = UID(syntax)
    if not syntax.is_transfer_syntax:  # a private encoding: nobody can vouch for its code stream
        raise DeidentificationError("pixel data in an unknown transfer syntax cannot be de-identified")
    if not syntax.is_encapsulated:
        return
    try:
        ds.decompress(generate_instance_uid=False)
    except Exception:
        raise DeidentificationError(
            f"pixel data cannot be decompressed (transfer syntax {syntax.name})") from None


# --- the profile ------------------------------------------------------------------------------


def action_for(tag: int, vr: str | None) -> str:
    """The action for one element: the table first, then the group and VR rules stricter than it.

    Returns one of X (remove), Z (empty), D (dummy), U (replace UID), U* (keep the sequence and clean
    its items), K (keep; a sequence's items are still cleaned).
    """
    element = tag & 0xFFFF
    by_table = resolved_action(tag)
    if by_table is not None:
        return by_table
    if element == 0x0000 or tag == _DATA_SET_TRAILING_PADDING:
        return REMOVE  # group lengths become wrong; padding may hold stale bytes
    if not dictionary_has_tag(tag):
        # a public tag we cannot judge; also repeating groups other than 60xx / 50xx, such as the
        # retired Variable Pixel Data (7Fxx,0010), which are not in the main data dictionary
        return REMOVE
    if vr == "UI":
        return REPLACE_UID
    if vr in _REMOVED_VRS or vr is None:
        return REMOVE
    return KEEP


def _clean(ds: Dataset, uid_map: Callable[[str], str], *, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise DeidentificationError("sequences nested too deeply to de-identify")
    for tag in list(ds.keys()):
        if resolved_action(tag) == REMOVE:  # private, curve, overlay groups: no need to decode
            del ds[tag]
            continue
        try:
            element = ds[tag]
        except Exception:  # an undecodable value cannot be judged: remove it
            del ds[tag]
            continue
        action = action_for(tag, element.VR)
        if action == REMOVE:
            del ds[tag]
        elif action == EMPTY or (action == DUMMY and element.VR == "SQ"):
            element.value = Sequence() if element.VR == "SQ" else element.empty_value
        elif action == DUMMY:
            _set_dummy(element, uid_map)
        elif action == REPLACE_UID:
            if element.VR != "UI":
                del ds[tag]
            else:
                _replace_uids(element, uid_map)
        elif element.VR == "SQ":  # KEEP or KEEP_AND_CLEAN_ITEMS
            for item in element.value:
                _clean(item, uid_map, depth=depth + 1)
        elif action not in (KEEP, KEEP_AND_CLEAN_ITEMS):
            raise AssertionError(f"unknown de-identification action {action}")


def _set_dummy(element: DataElement, uid_map: Callable[[str], str]) -> None:
    if element.VR == "UI":
        _replace_uids(element, uid_map)
    elif element.VR in _DUMMY_TEXT:
        element.value = _DUMMY_TEXT[element.VR]
    elif element.VR in ("FL", "FD", "SL", "SS", "UL", "US", "SV", "UV"):
        element.value = 0
    else:  # binary (OB, OW, ...) and anything else: no content
        element.value = element.empty_value


def _replace_uids(element: DataElement, uid_map: Callable[[str], str]) -> None:
    def replace(uid: str) -> str:
        uid = normalise_uid(uid)
        return uid if not uid or is_registered_uid(uid) else uid_map(uid)

    if isinstance(element.value, (list, MultiValue)):
        element.value = [replace(uid) for uid in element.value]
    elif element.value:
        element.value = replace(element.value)


def _mark_deidentified(ds: Dataset, pseudonym: str) -> None:
    ds.PatientName = pseudonym
    ds.PatientID = pseudonym
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = list(DEIDENTIFICATION_METHOD)
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = _BASIC_PROFILE_CODE
    ds.DeidentificationMethodCodeSequence = [code]
    ds.LongitudinalTemporalInformationModified = "REMOVED"


def _rebuilt_file_meta(ds: Dataset, old_meta: Dataset | None, uid_map: Callable[[str], str]
                       ) -> FileMetaDataset:
    """A fresh group 0002: no source AE titles, no private information, our implementation UID."""
    old_meta = old_meta if old_meta is not None else Dataset()
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    sop_class = ds.get("SOPClassUID") or old_meta.get("MediaStorageSOPClassUID")
    if sop_class:
        meta.MediaStorageSOPClassUID = sop_class
    instance = ds.get("SOPInstanceUID")
    if not instance and old_meta.get("MediaStorageSOPInstanceUID"):
        instance = uid_map(normalise_uid(old_meta.MediaStorageSOPInstanceUID))
    if instance:
        meta.MediaStorageSOPInstanceUID = instance
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    meta.TransferSyntaxUID = syntax or ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"PYDICOM {pydicom_version}"[:16]
    return meta


# --- checks for leaks ---------------------------------------------------------------------------


def _element_text(element: DataElement) -> str:
    value = element.value
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    if isinstance(value, (list, MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value)


def _iter_elements(ds: Dataset, prefix: str = "", *, include_pixel_data: bool = True
                   ) -> Iterator[tuple[str, DataElement]]:
    """(location, element) for every element at every depth, file meta header first."""
    meta = getattr(ds, "file_meta", None) if not prefix else None
    if meta is not None:
        yield from _iter_elements(meta, "file meta ", include_pixel_data=include_pixel_data)
    for tag in list(ds.keys()):
        if not include_pixel_data and (tag >> 16) == _PIXEL_DATA_GROUP:
            continue
        try:
            element = ds[tag]
        except Exception:
            raw = ds.get_item(tag)
            element = DataElement(tag, "UN", bytes(getattr(raw, "value", b"") or b""))
        name = element.keyword or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        location = f"{prefix}{name}"
        yield location, element
        if element.VR == "SQ":
            for index, item in enumerate(element.value or []):
                yield from _iter_elements(item, f"{location}[{index}].",
                                          include_pixel_data=include_pixel_data)


def scan_for_phi(ds: Dataset, planted_values: Iterable[str], *, include_pixel_data: bool = True
                 ) -> list[str]:
    """Where any of ``planted_values`` still occurs (case-insensitive substring) in ``ds``.

    Walks every element at every depth, the file meta header, private and binary values (read as
    Latin-1) and, unless told otherwise, pixel data. Findings name the location and the index of the
    value ("PatientName: value #0"), never the value itself, so they can be logged.
    """
    needles = [(i, str(v).casefold()) for i, v in enumerate(planted_values) if str(v).strip()]
    findings = []
    with quiet_pydicom():
        for location, element in _iter_elements(ds, include_pixel_data=include_pixel_data):
            text = _element_text(element).casefold()
            findings += [f"{location}: value #{i}" for i, needle in needles if needle in text]
    return findings


def scan_bytes_for_phi(data: bytes, planted_values: Iterable[str]) -> list[str]:
    """Where any of ``planted_values`` occurs in raw bytes (UTF-8 / Latin-1, ASCII case-insensitive),
    e.g. a written file, so that nothing hides in the preamble, padding or undecoded values."""
    haystack = bytes(data).lower()
    findings = []
    for index, value in enumerate(planted_values):
        forms = {str(value).encode("utf-8").lower(), str(value).encode("latin-1", "ignore").lower()}
        for form in forms:
            offset = haystack.find(form) if form else -1
            if offset >= 0:
                findings.append(f"byte offset {offset}: value #{index}")
                break
    return findings


def _identifying_values(ds: Dataset, pseudonym: str) -> tuple[set[str], list[str]]:
    """(source UIDs, source patient identification values) for the self-check after cleaning."""
    uids = {normalise_uid(str(ds.get(keyword) or "")) for keyword in _SELF_CHECK_UIDS}
    uids = {uid for uid in uids if uid and not is_registered_uid(uid)}
    values: set[str] = set()
    for keyword in _SELF_CHECK_KEYWORDS:
        try:
            value = ds.get(keyword)
        except Exception:
            continue
        for item in value if isinstance(value, (list, MultiValue)) else [value]:
            text = str(item or "").strip().strip("\x00").strip()
            values.add(text)
            if keyword.endswith("Names") or keyword.endswith("Name"):
                values.update(part.strip() for part in text.replace("=", "^").split("^"))
    texts = sorted(v for v in values if len(v) >= 4 and v.casefold() != pseudonym.casefold())
    return uids, texts


def _self_check(ds: Dataset, identifying: tuple[set[str], list[str]]) -> list[str]:
    """Source UIDs must not remain as UID values. Patient values of >= 8 characters must not occur
    anywhere except inside new UIDs (random digits); shorter ones must not be a whole word-like value
    (a 4-character ID inside a number would be a false alarm)."""
    uids, texts = identifying
    long_values = [v.casefold() for v in texts if len(v) >= 8]
    short_values = {v.casefold() for v in texts if len(v) < 8}
    leaks = []
    for location, element in _iter_elements(ds, include_pixel_data=False):
        text = _element_text(element)
        if element.VR == "UI":
            if {normalise_uid(part) for part in text.split("\\")} & uids:
                leaks.append(location)
            continue
        text = text.casefold()
        whole = {part.strip().strip("\x00") for part in text.split("\\")}
        if any(v in text for v in long_values) or (element.VR in _WORD_VRS and whole & short_values):
            leaks.append(location)
    return leaks
