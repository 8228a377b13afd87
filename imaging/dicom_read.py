"""Read one DICOM file for import: validate it, decode its pixels, extract per-slice geometry.

Why validate before trusting pydicom: ``dcmread`` returns a partial data set *without raising* when
a file is cut short, and ``force=True`` happily "reads" a PNG. So a file is accepted only when it has
the Part 10 preamble, every element it declares fits inside the file, it is an MR image, and its
pixel data decode to the declared size. Anything else comes back as a rejection with a reason meant
for a coordinator. Reasons never contain a value read from the file except standard, non-identifying
terms (a modality such as CT, a registered transfer syntax or SOP class name): never names, IDs,
dates, descriptions or exception messages, which may quote values.

Usage order at import (see docs/deidentification.md): ``read_dicom_file`` -> classify the series
from the ORIGINAL header (SeriesDescription, ProtocolName, ...) -> keep ``slices`` / ``pixels`` ->
``imaging.deid.deidentify`` -> discard the original header.

Shapes and units: ``ReadResult.pixels`` is float32 ``(frames, rows, cols)`` in modality units
(stored value x RescaleSlope + RescaleIntercept, per frame); positions and spacings are in mm in the
patient coordinate system (LPS) of PS3.3 C.7.6.2.
"""

import io
import logging
import re
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from imaging.dicom_values import finite_float, first_float

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
LEGACY_CONVERTED_ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.4"
MR_IMAGE_SOP_CLASSES = frozenset(
    {MR_IMAGE_STORAGE, ENHANCED_MR_IMAGE_STORAGE, LEGACY_CONVERTED_ENHANCED_MR_IMAGE_STORAGE}
)
MEDIA_STORAGE_DIRECTORY_STORAGE = "1.2.840.10008.1.3.10"

# PS3.3 C.7.3.1.1.1 defined terms (current and retired): only these are echoed in a reason.
_KNOWN_MODALITIES = frozenset(
    "AR ASMT AU BDUS BI BMD CD CF CP CR CS CT DD DF DG DM DOC DS DX EC ECG EPS ES FA FID FS GM HC HD IO "
    "IOL IVOCT IVUS KER KO LEN LP LS MA MG MR MS NM OAM OCT OP OPM OPR OPT OPTBSV OPTENF OPV OSS OT "
    "PLAN POS PR PT PX REG RESP RF RG RTDOSE RTIMAGE RTINTENT RTPLAN RTRAD RTRECORD RTSEGANN RTSTRUCT "
    "RWV SEG SM SMR SR SRF STAIN ST TEXTUREMAP TG US VA VF XA XAPS XC".split()
)
_KNOWN_PHOTOMETRIC = frozenset(
    "MONOCHROME1 MONOCHROME2 PALETTE COLOR RGB HSV ARGB CMYK YBR_FULL YBR_FULL_422 YBR_PARTIAL_422 "
    "YBR_PARTIAL_420 YBR_ICT YBR_RCT XYB".split()
)
_NON_DICOM_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
)

_VRS = frozenset(
    b"AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US "
    b"UT UV".split()
)
_LONG_LENGTH_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED_LENGTH = 0xFFFFFFFF
_MAX_NESTING = 64
MAX_VOXELS_PER_FILE = 512 * 512 * 2048
"""Rows x Columns x frames above this is refused before decoding (a header can claim any size)."""


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's warnings and log records for the duration.

    pydicom reports invalid values by quoting them ("Invalid value for VR PN: 'DOE^JANE'") through
    both ``warnings`` and the ``pydicom`` logger; nothing identifying may reach a log line. The
    deployment should also set the ``pydicom`` logger to ERROR; this guard does not rely on it.
    """
    logger = logging.getLogger("pydicom")
    drop_all = logging.Filter()
    drop_all.filter = lambda record: False  # type: ignore[method-assign]
    logger.addFilter(drop_all)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.removeFilter(drop_all)


@dataclass(frozen=True)
class SliceGeometry:
    """Where one frame (= one slice) lies and how its values map to display, all from the header.

    position_mm: ImagePositionPatient, centre of the first (top-left) pixel, mm (x, y, z) LPS.
    orientation: ImageOrientationPatient, row direction cosines then column direction cosines.
    pixel_spacing_mm: PixelSpacing, (distance between rows, distance between columns) in mm.
    window_center / window_width: the first VOI window, in modality units (after rescale).
    temporal_position: TemporalPositionIdentifier (classic) or TemporalPositionIndex (enhanced);
    orders dynamic phases, since acquisition times are removed by de-identification.
    b_value: DiffusionBValue in s/mm2 when the header states it (vendors often keep it private).
    """

    frame: int
    instance_number: int | None = None
    position_mm: tuple[float, float, float] | None = None
    orientation: tuple[float, float, float, float, float, float] | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    slice_thickness_mm: float | None = None
    window_center: float | None = None
    window_width: float | None = None
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    temporal_position: int | None = None
    b_value: float | None = None

    @property
    def normal(self) -> np.ndarray | None:
        """Unit slice normal (row cosines x column cosines), shape (3,), or None without orientation."""
        if self.orientation is None:
            return None
        normal = np.cross(np.asarray(self.orientation[:3]), np.asarray(self.orientation[3:]))
        length = float(np.linalg.norm(normal))
        return normal / length if length > 0 else None

    @property
    def location_mm(self) -> float | None:
        """Signed distance of the slice along its normal, mm: the key to sort slices of a stack."""
        normal = self.normal
        if normal is None or self.position_mm is None:
            return None
        return float(np.dot(np.asarray(self.position_mm), normal))


@dataclass(frozen=True)
class ReadResult:
    """Outcome of reading one file.

    status: "image" (accepted), "dicomdir" (a media index: read the files it lists with
    ``iter_dicomdir_files``; not an error) or "rejected" (``reason`` says why).
    dataset: the original header (identifying!) with its pixel data, for classification and then
    ``deidentify``; None unless accepted.
    pixels: float32 (frames, rows, cols) in modality units; slices: one geometry per frame.
    """

    path: Path
    status: str
    reason: str | None = None
    dataset: Dataset | None = field(default=None, repr=False)
    pixels: np.ndarray | None = field(default=None, repr=False)
    slices: tuple[SliceGeometry, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "image"


class _Rejected(Exception):
    """Internal: carries a rejection reason up to ``read_dicom_file``."""


def read_dicom_file(path: str | Path) -> ReadResult:
    """Validate and read one file (any name, with or without extension).

    Returns ``ReadResult``; never raises for a bad file (an unexpected bug still raises).
    """
    path = Path(path)
    try:
        data = _read_bytes(path)
    except _Rejected as rejection:
        return ReadResult(path, "rejected", reason=str(rejection))
    return read_dicom_bytes(data, path)


def read_dicom_bytes(data: bytes, path: str | Path = "") -> ReadResult:
    """``read_dicom_file`` for a Part 10 file already in memory (an instance received over the network, which
    must not touch the disk before de-identification); ``path`` only names it in the result."""
    path = Path(path)
    try:
        if len(data) < 132 or data[128:132] != b"DICM":
            raise _Rejected(f"not a DICOM file (no DICM preamble{_what_it_looks_like(data)})")
        transfer_syntax = _check_part10_structure(data)
        with quiet_pydicom():
            ds = _parse(data)
            if _is_dicomdir(ds):
                return ReadResult(path, "dicomdir",
                                  reason="DICOMDIR (a media index, not an image): its listed files are read")
            _check_is_mr_image(ds)
            pixels = _decode_pixels(ds, transfer_syntax)
            _decode_all_elements(ds)
            slices = frame_geometries(ds)  # one per frame: pixels were checked to hold NumberOfFrames
            pixels = _apply_rescale(pixels, slices)
    except _Rejected as rejection:
        return ReadResult(path, "rejected", reason=str(rejection))
    return ReadResult(path, "image", dataset=ds, pixels=pixels, slices=slices)


# --- validation -------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise _Rejected("file not found")
    if not path.is_file():
        raise _Rejected("not a regular file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise _Rejected(f"file cannot be read ({type(error).__name__})") from None
    if not data:
        raise _Rejected("empty file (0 bytes)")
    if len(data) < 132 or data[128:132] != b"DICM":
        raise _Rejected(f"not a DICOM file (no DICM preamble{_what_it_looks_like(data)})")
    return data


def _what_it_looks_like(data: bytes) -> str:
    for signature, what in _NON_DICOM_SIGNATURES:
        if data.startswith(signature):
            return f"; looks like {what}"
    if len(data) >= 8 and (data[:2] in (b"\x08\x00", b"\x02\x00") or data[:2] == b"\x00\x08"):
        return "; looks like a bare data set without the Part 10 header"  # starts with group 0002/0008
    return ""


def _check_part10_structure(data: bytes) -> str:
    """Walk the file meta header and the data set; every declared length must fit in the file.

    Returns the transfer syntax UID. This is what catches the truncations pydicom reads silently.
    """
    buffer = memoryview(data)
    position, transfer_syntax = _walk_file_meta(buffer)
    if not transfer_syntax:
        raise _Rejected("unreadable DICOM header (no transfer syntax in the file meta header)")
    uid = UID(transfer_syntax)
    little, explicit = True, True
    if uid.is_transfer_syntax:
        little, explicit = uid.is_little_endian, not uid.is_implicit_VR
    body = buffer[position:]
    if uid.is_transfer_syntax and uid.is_deflated:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            body = memoryview(inflater.decompress(bytes(body)) + inflater.flush())
        except zlib.error:
            raise _Rejected("unreadable DICOM data set (deflate stream is corrupt)") from None
        if not inflater.eof:
            raise _Rejected("truncated file (deflated data set ends early)")
    try:
        _walk_dataset(body, 0, little, explicit, in_item=False, depth=0)
    except _Truncated:
        raise _Rejected("truncated file (a data element runs past the end of the file)") from None
    except _Malformed as problem:
        raise _Rejected(f"unreadable DICOM data set ({problem})") from None
    return transfer_syntax


class _Truncated(Exception):
    pass


class _Malformed(Exception):
    pass


def _walk_file_meta(buffer: memoryview) -> tuple[int, str]:
    """Group 0002 is always explicit VR little endian (PS3.10 7.1)."""
    position, transfer_syntax, declared_end = 132, "", 0
    while True:
        if declared_end > len(buffer):  # shorter than its (0002,0000) group length says
            raise _Rejected("truncated file (ends inside the file meta header)")
        if len(buffer) - position < 8:
            if position == 132 or position < len(buffer):  # no header, or half an element header
                raise _Rejected("truncated file (ends inside the file meta header)")
            return position, transfer_syntax  # a header and no data set: found out later
        group, element = struct.unpack_from("<HH", buffer, position)
        if group != 0x0002:
            return position, transfer_syntax
        vr = bytes(buffer[position + 4:position + 6])
        if vr in _LONG_LENGTH_VRS:
            if len(buffer) - position < 12:
                raise _Rejected("truncated file (ends inside the file meta header)")
            (length,) = struct.unpack_from("<I", buffer, position + 8)
            position += 12
        elif vr in _VRS:
            (length,) = struct.unpack_from("<H", buffer, position + 6)
            position += 8
        else:
            raise _Rejected("unreadable DICOM header (invalid file meta header)")
        if length == _UNDEFINED_LENGTH or position + length > len(buffer):
            raise _Rejected("truncated file (ends inside the file meta header)")
        if element == 0x0000 and length == 4:  # group length: where the header must end
            declared_end = position + 4 + struct.unpack_from("<I", buffer, position)[0]
        if element == 0x0010:
            transfer_syntax = bytes(buffer[position:position + length]).decode("ascii", "replace")
            transfer_syntax = transfer_syntax.strip("\x00 ")
        position += length


def _walk_dataset(buffer: memoryview, position: int, little: bool, explicit: bool, *,
                  in_item: bool, depth: int) -> int:
    """Walk elements from ``position``; return the position after the data set (or item delimiter)."""
    if depth > _MAX_NESTING:
        raise _Malformed("sequences nested too deeply")
    end = len(buffer)
    order = "<" if little else ">"
    if end - position >= 6:  # like pydicom: trust the bytes over the declared VR encoding
        explicit = bytes(buffer[position + 4:position + 6]) in _VRS
    while position < end:
        if end - position < 8:
            if not in_item and not any(buffer[position:end]):
                return end  # zero padding after the last element
            raise _Truncated
        group, element = struct.unpack_from(order + "HH", buffer, position)
        tag = (group << 16) | element
        if group == 0xFFFE:
            if tag == _ITEM_END and in_item:
                return position + 8
            raise _Malformed("misplaced item or delimiter")
        vr = b""
        if explicit:
            vr = bytes(buffer[position + 4:position + 6])
            if vr in _LONG_LENGTH_VRS:
                if end - position < 12:
                    raise _Truncated
                (length,) = struct.unpack_from(order + "I", buffer, position + 8)
                position += 12
            elif vr in _VRS:
                (length,) = struct.unpack_from(order + "H", buffer, position + 6)
                position += 8
            else:
                raise _Malformed("invalid value representation")
        else:
            (length,) = struct.unpack_from(order + "I", buffer, position + 4)
            position += 8
        if length == _UNDEFINED_LENGTH:
            # a sequence, encapsulated pixel data, or UN of undefined length (implicit VR LE inside)
            inner_explicit, inner_little = (False, True) if vr == b"UN" else (explicit, little)
            position = _walk_items(buffer, position, inner_little, inner_explicit, depth=depth + 1)
        elif position + length > end:
            raise _Truncated
        else:
            position += length
    if in_item:
        raise _Truncated  # an undefined-length item without its delimiter
    return position


def _walk_items(buffer: memoryview, position: int, little: bool, explicit: bool, *, depth: int) -> int:
    end = len(buffer)
    order = "<" if little else ">"
    while True:
        if end - position < 8:
            raise _Truncated
        group, element, length = struct.unpack_from(order + "HHI", buffer, position)
        tag = (group << 16) | element
        position += 8
        if tag == _SEQUENCE_END:
            return position
        if tag != _ITEM:
            raise _Malformed("expected a sequence item")
        if length == _UNDEFINED_LENGTH:
            position = _walk_dataset(buffer, position, little, explicit, in_item=True, depth=depth)
        elif position + length > end:
            raise _Truncated
        else:
            position += length


def _parse(data: bytes) -> Dataset:
    try:
        return pydicom.dcmread(io.BytesIO(data))
    except Exception as error:  # pydicom raises many kinds; the reason must not quote values
        raise _Rejected(f"unreadable DICOM header ({type(error).__name__})") from None


def _is_dicomdir(ds: Dataset) -> bool:
    media_class = getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    return media_class == MEDIA_STORAGE_DIRECTORY_STORAGE or "DirectoryRecordSequence" in ds


def _safe_text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:
        return ""
    return str(value).strip() if value is not None else ""


def _check_is_mr_image(ds: Dataset) -> None:
    modality = _safe_text(ds, "Modality").upper()
    if not modality:
        raise _Rejected("not MR (no modality)")
    if modality != "MR":
        shown = modality if modality in _KNOWN_MODALITIES else "not recognised"
        raise _Rejected(f"not MR (modality {shown})")
    sop_class = _safe_text(ds, "SOPClassUID") or str(
        getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "") or "")
    if sop_class not in MR_IMAGE_SOP_CLASSES:
        shown = UID(sop_class).name if sop_class and UID(sop_class).type else "unregistered"
        raise _Rejected(f"not an MR image object (SOP class {shown})")
    if _safe_text(ds, "BurnedInAnnotation").upper() == "YES":
        raise _Rejected("burned-in annotation (BurnedInAnnotation YES): text may be in the pixels")
    if "PixelData" not in ds:
        raise _Rejected("no pixel data")
    samples = _int_or_none(ds, "SamplesPerPixel")
    photometric = _safe_text(ds, "PhotometricInterpretation").upper()
    if samples not in (None, 1) or photometric != "MONOCHROME2":
        shown = photometric if photometric in _KNOWN_PHOTOMETRIC else "not recognised"
        raise _Rejected(f"not a greyscale MONOCHROME2 image (PhotometricInterpretation {shown})")
    for keyword in ("Rows", "Columns", "BitsAllocated"):
        if not _int_or_none(ds, keyword):
            raise _Rejected(f"image size missing ({keyword})")


def _decode_all_elements(ds: Dataset, depth: int = 0) -> None:
    """Decode every element now, inside the quiet guard: pydicom validates a value when it is first
    decoded and its complaint quotes the value, so later reads by the caller must find nothing left to
    decode. An element whose value cannot be decoded at all is dropped."""
    if depth > _MAX_NESTING:
        raise _Rejected("unreadable DICOM data set (sequences nested too deeply)")
    for tag in list(ds.keys()):
        try:
            element = ds[tag]
        except Exception:
            del ds[tag]
            continue
        if element.VR == "SQ":
            for item in element.value or []:
                _decode_all_elements(item, depth + 1)


def _int_or_none(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else None
    except Exception:
        return None


def _transfer_syntax_name(transfer_syntax: str) -> str:
    uid = UID(transfer_syntax)
    return uid.name if uid.is_transfer_syntax else "unknown transfer syntax"


def _decode_pixels(ds: Dataset, transfer_syntax: str) -> np.ndarray:
    """Stored values as (frames, rows, cols), native byte order; checks size before decoding."""
    from pydicom.pixels import get_decoder

    uid = UID(transfer_syntax)
    name = _transfer_syntax_name(transfer_syntax)
    frames = _int_or_none(ds, "NumberOfFrames") or 1
    rows, cols = int(ds.Rows), int(ds.Columns)
    if rows * cols * frames > MAX_VOXELS_PER_FILE:
        raise _Rejected("image too large (Rows x Columns x frames above the import limit)")
    if not uid.is_transfer_syntax or not uid.is_encapsulated:
        bits = int(ds.BitsAllocated)
        expected = (rows * cols * frames * bits + 7) // 8
        if len(ds.PixelData) < expected:
            raise _Rejected("truncated file (pixel data shorter than the image size)")
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise _Rejected(f"pixel data cannot be decoded (transfer syntax {name}: not supported)") from None
    if not decoder.is_available:
        raise _Rejected(f"pixel data cannot be decoded (transfer syntax {name}: no decoder installed)")
    try:
        array = ds.pixel_array
    except Exception:
        raise _Rejected(f"pixel data cannot be decoded (transfer syntax {name}: corrupt data)") from None
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.shape != (frames, rows, cols):
        raise _Rejected("pixel data does not match the image size (Rows x Columns x frames)")
    return array


def _apply_rescale(pixels: np.ndarray, slices: tuple[SliceGeometry, ...]) -> np.ndarray:
    out = pixels.astype(np.float32)
    for index, geometry in enumerate(slices):
        if geometry.rescale_slope != 1.0 or geometry.rescale_intercept != 0.0:
            slope, intercept = np.float32(geometry.rescale_slope), np.float32(geometry.rescale_intercept)
            out[index] = out[index] * slope + intercept
    return out


# --- geometry ---------------------------------------------------------------------------------


def frame_geometries(ds: Dataset) -> tuple[SliceGeometry, ...]:
    """One ``SliceGeometry`` per frame.

    Classic MR: one frame, attributes at top level. Enhanced / legacy-converted MR: each frame looks
    first in its item of PerFrameFunctionalGroupsSequence, then in SharedFunctionalGroupsSequence,
    then at top level (PS3.3 C.7.6.16), so a multi-frame file splits into per-frame slices.
    """
    frames = _int_or_none(ds, "NumberOfFrames") or 1
    per_frame = _sequence_items(ds, "PerFrameFunctionalGroupsSequence")
    shared = _sequence_items(ds, "SharedFunctionalGroupsSequence")
    shared_item = shared[0] if shared else None
    instance_number = _int_or_none(ds, "InstanceNumber")
    geometries = []
    for frame in range(frames):
        groups = [per_frame[frame] if frame < len(per_frame) else None, shared_item]

        def find(macro: str, keyword: str, groups=groups):
            return _functional_value(ds, groups, macro, keyword)

        slope = finite_float(find("PixelValueTransformationSequence", "RescaleSlope"))
        intercept = finite_float(find("PixelValueTransformationSequence", "RescaleIntercept"))
        temporal = find("FrameContentSequence", "TemporalPositionIndex")
        if temporal is None:
            temporal = _value(ds, "TemporalPositionIdentifier")
        geometries.append(SliceGeometry(
            frame=frame,
            instance_number=instance_number,
            position_mm=_floats(find("PlanePositionSequence", "ImagePositionPatient"), 3),
            orientation=_floats(find("PlaneOrientationSequence", "ImageOrientationPatient"), 6),
            pixel_spacing_mm=_floats(find("PixelMeasuresSequence", "PixelSpacing"), 2),
            slice_thickness_mm=finite_float(find("PixelMeasuresSequence", "SliceThickness")),
            window_center=first_float(find("FrameVOILUTSequence", "WindowCenter")),
            window_width=first_float(find("FrameVOILUTSequence", "WindowWidth")),
            rescale_slope=1.0 if slope is None or slope == 0 else slope,
            rescale_intercept=0.0 if intercept is None else intercept,
            temporal_position=_int_value(temporal),
            b_value=finite_float(find("MRDiffusionSequence", "DiffusionBValue")),
        ))
    return tuple(geometries)


def _sequence_items(ds: Dataset, keyword: str) -> list[Dataset]:
    try:
        return list(ds.get(keyword) or [])
    except Exception:
        return []


def _value(ds: Dataset | None, keyword: str):
    if ds is None:
        return None
    try:
        value = ds.get(keyword)
    except Exception:
        return None
    return None if value in (None, "") else value


def _functional_value(ds: Dataset, groups: list[Dataset | None], macro: str, keyword: str):
    for group in groups:
        items = _sequence_items(group, macro) if group is not None else []
        if items:
            value = _value(items[0], keyword)
            if value is not None:
                return value
    return _value(ds, keyword)


def _int_value(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _floats(value, count: int) -> tuple[float, ...] | None:
    if value is None or isinstance(value, (str, bytes)):
        return None
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(numbers) != count or not all(np.isfinite(numbers)):
        return None
    return numbers


# --- DICOMDIR -----------------------------------------------------------------------------------

_SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def iter_dicomdir_files(path: str | Path) -> Iterator[Path]:
    """Yield the files a DICOMDIR lists (ReferencedFileID of its directory records), in record order.

    Paths are resolved against the DICOMDIR's folder, case-insensitively when the exact name is
    missing (media copied from CD often change case). A listed path that would leave that folder
    ("..", absolute) is skipped. Listed files are not validated here: give each to
    ``read_dicom_file``, which reports a missing file as "file not found".
    Raises ValueError naming the DICOMDIR when it cannot be read as one.
    """
    path = Path(path)
    root = path.parent
    try:
        with quiet_pydicom():
            ds = pydicom.dcmread(path)
            records = list(ds.get("DirectoryRecordSequence") or [])
    except Exception:
        raise ValueError(f"{path.name}: not a readable DICOMDIR") from None
    if not records and not _is_dicomdir(ds):
        raise ValueError(f"{path.name}: not a DICOMDIR (no directory records)")
    seen: set[Path] = set()
    for record in records:
        with quiet_pydicom():
            file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        components = [file_id] if isinstance(file_id, str) else list(file_id)
        components = [str(c).strip() for c in components]
        if not components or not all(_SAFE_COMPONENT.match(c) for c in components):
            continue
        target = _resolve_case_insensitive(root, components)
        if target not in seen:
            seen.add(target)
            yield target


def _resolve_case_insensitive(root: Path, components: list[str]) -> Path:
    current = root
    for component in components:
        candidate = current / component
        if not candidate.exists() and current.is_dir():
            matches = [child for child in current.iterdir() if child.name.lower() == component.lower()]
            if len(matches) == 1:
                candidate = matches[0]
        current = candidate
    return current
