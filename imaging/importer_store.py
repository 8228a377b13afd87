"""The series store: each series as one gzip-compressed uint16 volume file plus its JSON metadata.

Files live under ``MEDIA_ROOT/series/<digest of the de-identified series UID>/``:
``volume.u16le.gz`` (uint16 little-endian, frames × rows × cols in C order, gzip level 1 with a zero
timestamp so the same volume gives the same bytes) and ``meta.json`` (``imaging.volumes.encode_volume``
metadata plus instance numbers and phase count). The volume is compressed once at import and
served as is with ``Content-Encoding: gzip`` (api.py), so a request costs no CPU.

Frame-cuttable gzip (``compress_frames``): the deflate stream is full-flushed after every frame, so each frame's
compressed bytes start on a byte boundary and refer to nothing before them. ``frames.json`` records where each
frame starts in the file and each frame's CRC-32; a run of frames is then cut from the stored file with one
read and sent as its own small gzip member (``cut_frames``: a header, the frames' bytes, an empty final block,
the run's CRC-32 combined from the frames' and its length) — no inflating, no compressing per request. The
whole file stays one ordinary gzip stream (``gzip.decompress`` reads it; the whole-volume path sends it as is).
A volume stored before this layout has no ``frames.json``; ``frame_index`` rewrites it in the new layout the
first time frames are asked of it (same raw bytes, so its SHA-256, ETag and URLs do not change).

Frames come from ``dicom_read`` as real (rescaled) float32 values; the stored integers are recovered
exactly when every frame shares one rescale slope and intercept (the usual MR case), else the series
is re-quantised onto one common uint16 scale (Philips per-frame scaling), which the metadata records.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.files import atomic_write_bytes
from imaging import volumes
from imaging.dicom_read import SliceGeometry

VOLUME_FILE = "volume.u16le.gz"
META_FILE = "meta.json"
FRAMES_FILE = "frames.json"
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"   # deflate, no name, mtime 0, fastest, OS unknown
_FINAL_BLOCK = b"\x03\x00"                                       # an empty fixed-Huffman block marked last
_AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _media_root() -> Path:
    from django.conf import settings

    return Path(settings.MEDIA_ROOT)


def series_folder(series_uid: str) -> str:
    """Folder of a series relative to MEDIA_ROOT; a digest, so no UID appears in a path."""
    return f"series/{hashlib.sha256(series_uid.encode()).hexdigest()[:24]}"


def _stored_integers(real: np.ndarray, slices: list[SliceGeometry]) -> tuple[np.ndarray, float, float, bool]:
    """(stored integer values, slope, intercept, requantised) for real values (frames, rows, cols) float32."""
    slopes = {g.rescale_slope for g in slices}
    intercepts = {g.rescale_intercept for g in slices}
    if len(slopes) == 1 and len(intercepts) == 1 and real.size:
        slope, intercept = slopes.pop(), intercepts.pop()
        if slope == 1.0 and intercept == 0.0:  # the usual MR case: the values are the stored integers
            stored = real
        else:
            stored = np.rint((real - np.float32(intercept)) / np.float32(slope))
        low, high = float(stored.min()), float(stored.max())
        exact = slope == 1.0 and intercept == 0.0 and np.array_equal(stored, np.rint(stored))
        if not exact:
            tolerance = 1e-3 * max(1.0, abs(slope))
            exact = (
                float(np.max(np.abs(stored * np.float32(slope) + np.float32(intercept) - real))) <= tolerance
            )
        if exact and low >= -32768 and high - min(low, 0.0) <= 65535:
            return stored.astype(np.int32), float(slope), float(intercept), False
    low, high = (float(real.min()), float(real.max())) if real.size else (0.0, 0.0)
    slope = (high - low) / 65535.0 if high > low else 1.0
    stored = np.rint((real.astype(np.float64) - low) / slope).astype(np.int32)
    return stored, slope, low, True


def encode_series(
    frames: list[np.ndarray], slices: list[SliceGeometry], instance_numbers: list[int | None]
) -> tuple[volumes.EncodedVolume, list[int]]:
    """Order the frames of one series for display and encode them (``imaging.volumes``).

    frames: one (rows, cols) float32 array per frame; slices: its geometry; returns the encoded
    volume and the display order (indices into the inputs).
    """
    n = len(frames)
    orientation = next((g.orientation for g in slices if g.orientation is not None), None)
    positions = [g.position_mm for g in slices]
    geometry = "dicom"
    if orientation is None or any(p is None for p in positions):
        geometry = "assumed (no ImagePositionPatient / ImageOrientationPatient)"
        orientation = _AXIAL
        step = next((g.slice_thickness_mm for g in slices if g.slice_thickness_mm), 1.0)
        by_number = sorted(range(n), key=lambda i: (instance_numbers[i] or 0, i))
        rank = {i: r for r, i in enumerate(by_number)}
        positions = [(0.0, 0.0, rank[i] * step) for i in range(n)]
    temporal = [g.temporal_position or 1 for g in slices]
    numbers = [v if v is not None else i for i, v in enumerate(instance_numbers)]
    order = [
        int(i)
        for i in volumes.slice_order(
            np.asarray(positions, dtype=np.float64),
            orientation,
            temporal_positions=temporal,
            instance_numbers=numbers,
        )
    ]
    ordered = [slices[i] for i in order]
    real = np.stack([frames[i] for i in order]).astype(np.float32)
    stored, slope, intercept, requantised = _stored_integers(real, ordered)
    first = ordered[0]
    voi = volumes.voi_window(first.window_center, first.window_width)
    spacing = first.pixel_spacing_mm or (1.0, 1.0)
    phases = sorted(set(temporal))
    encoded = volumes.encode_volume(
        stored,
        pixel_spacing=spacing,
        slice_positions=np.asarray([positions[i] for i in order]),
        orientation=orientation,
        slice_thickness=first.slice_thickness_mm,
        rescale_slope=slope,
        rescale_intercept=intercept,
        voi=voi,
        temporal_positions=[temporal[i] for i in order] if len(phases) > 1 else None,
    )
    encoded.meta.update(
        {
            "instance_numbers": [instance_numbers[i] for i in order],
            "phases": len(phases),
            "geometry": geometry if first.pixel_spacing_mm else f"{geometry}; pixel spacing assumed 1 mm",
            "requantised": requantised,
        }
    )
    return encoded, order


def write_volume(series_uid: str, encoded: volumes.EncodedVolume) -> tuple[str, str]:
    """Write volume and metadata; returns (volume path relative to MEDIA_ROOT, sha256 of the raw volume)."""
    folder = series_folder(series_uid)
    target = _media_root() / folder
    target.mkdir(parents=True, exist_ok=True)
    _, rows, cols = encoded.meta["shape"]
    _write_frames(target / VOLUME_FILE, encoded.data, rows * cols * 2)
    atomic_write_bytes(target / META_FILE, json.dumps(encoded.meta, sort_keys=True).encode())
    return f"{folder}/{VOLUME_FILE}", hashlib.sha256(encoded.data).hexdigest()


@dataclass(frozen=True)
class FrameIndex:
    """Where each frame of a stored volume lies. ``offsets``: n + 1 byte offsets into the gzip file (frame k's
    deflate bytes are ``offsets[k]:offsets[k + 1]``); ``crc32``: each frame's CRC-32; ``frame_bytes``: rows × cols
    × 2."""

    frame_bytes: int
    offsets: tuple[int, ...]
    crc32: tuple[int, ...]

    @property
    def n_frames(self) -> int:
        return len(self.crc32)


def compress_frames(data: bytes, frame_bytes: int) -> tuple[bytes, FrameIndex]:
    """One gzip stream of ``data`` (level 1, mtime 0: the same volume gives the same bytes), full-flushed after
    every ``frame_bytes`` so that runs of frames can be cut from it (``cut_frames``)."""
    if frame_bytes <= 0 or len(data) % frame_bytes:
        raise ValueError(f"{len(data)} bytes are not whole frames of {frame_bytes} bytes")
    deflate = zlib.compressobj(1, zlib.DEFLATED, -15)
    parts, offsets, crcs, position = [_GZIP_HEADER], [len(_GZIP_HEADER)], [], len(_GZIP_HEADER)
    view = memoryview(data)
    for start in range(0, len(data), frame_bytes):
        frame = view[start:start + frame_bytes]
        chunk = deflate.compress(frame) + deflate.flush(zlib.Z_FULL_FLUSH)
        parts.append(chunk)
        position += len(chunk)
        offsets.append(position)
        crcs.append(zlib.crc32(frame))
    parts.append(deflate.flush(zlib.Z_FINISH))          # the empty final block (everything was flushed)
    parts.append(struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF))
    return b"".join(parts), FrameIndex(frame_bytes, tuple(offsets), tuple(crcs))


def _write_frames(path: Path, data: bytes, frame_bytes: int) -> FrameIndex:
    compressed, index = compress_frames(data, frame_bytes)
    atomic_write_bytes(path, compressed)               # the volume first: an index never describes other bytes
    atomic_write_bytes(path.with_name(FRAMES_FILE), json.dumps(
        {"frame_bytes": index.frame_bytes, "offsets": index.offsets, "crc32": index.crc32}).encode())
    return index


def frame_index(path: Path, *, n_frames: int, frame_bytes: int) -> FrameIndex:
    """The frame index of the volume file at ``path``; a volume stored before frames were cuttable (or whose
    index does not match its file) is rewritten in the cuttable layout first, once (same raw bytes)."""
    index_path = path.with_name(FRAMES_FILE)
    try:
        stat = path.stat()
        return _read_index(str(index_path), index_path.stat().st_mtime_ns, stat.st_size, n_frames, frame_bytes)
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        pass
    data = gzip.decompress(path.read_bytes())
    if len(data) != n_frames * frame_bytes:
        raise ValueError(f"the stored volume holds {len(data)} bytes, its series {n_frames} frames of {frame_bytes}")
    return _write_frames(path, data, frame_bytes)


@lru_cache(maxsize=256)
def _read_index(index_path: str, mtime_ns: int, file_size: int, n_frames: int, frame_bytes: int) -> FrameIndex:
    """The parsed ``frames.json`` (cached by its modification time), checked against the volume file's size."""
    raw = json.loads(Path(index_path).read_bytes())
    index = FrameIndex(int(raw["frame_bytes"]), tuple(raw["offsets"]), tuple(raw["crc32"]))
    trailer = len(_FINAL_BLOCK) + 8
    if (index.frame_bytes != frame_bytes or index.n_frames != n_frames or len(index.offsets) != n_frames + 1
            or index.offsets[-1] + trailer != file_size):
        raise ValueError("the frame index does not describe this volume file")
    return index


def cut_frames(path: Path, index: FrameIndex, first: int, last: int) -> bytes:
    """Frames ``first..last`` (inclusive) of the stored volume as one gzip member, read straight from the file."""
    if not 0 <= first <= last < index.n_frames:
        raise ValueError(f"frames {first}-{last} are outside 0-{index.n_frames - 1}")
    start, end = index.offsets[first], index.offsets[last + 1]
    with open(path, "rb") as handle:
        body = os.pread(handle.fileno(), end - start, start)
    if len(body) != end - start:
        raise ValueError("the stored volume is shorter than its frame index")
    crc = index.crc32[first]
    shift = _crc32_shift(index.frame_bytes)
    for k in range(first + 1, last + 1):
        crc = _gf2_times(shift, crc) ^ index.crc32[k]
    size = (last - first + 1) * index.frame_bytes
    return b"".join((_GZIP_HEADER, body, _FINAL_BLOCK, struct.pack("<II", crc, size & 0xFFFFFFFF)))


# CRC-32 of a concatenation from the parts' CRCs (zlib's crc32_combine, which Python does not expose): the CRC of
# A + B is the CRC of A carried through len(B) zero bytes, a linear map over GF(2), XOR the CRC of B.
def _gf2_times(matrix: tuple[int, ...], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _gf2_square(matrix: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(_gf2_times(matrix, matrix[n]) for n in range(32))


@lru_cache(maxsize=64)
def _crc32_shift(n_bytes: int) -> tuple[int, ...]:
    """The 32 × 32 GF(2) matrix that carries a CRC-32 through ``n_bytes`` zero bytes (columns as ints)."""
    one_bit = (0xEDB88320,) + tuple(1 << (n - 1) for n in range(1, 32))
    power = _gf2_square(_gf2_square(_gf2_square(one_bit)))      # one zero byte = 8 zero bits
    result = tuple(1 << n for n in range(32))                   # identity
    while n_bytes:
        if n_bytes & 1:
            result = tuple(_gf2_times(power, column) for column in result)
        n_bytes >>= 1
        if n_bytes:
            power = _gf2_square(power)
    return result


def volume_file(series) -> Path:
    """Absolute path of a Series' compressed volume file."""
    return _media_root() / series.volume_path


def read_stored(series) -> np.ndarray:
    """A Series' stored values, (frames, rows, cols) uint16; real values need meta['rescale']."""
    data = gzip.decompress(volume_file(series).read_bytes())
    return volumes.decode_volume(data, series.meta)


def majority_shape(shapes: list[tuple[int, int]]) -> tuple[int, int]:
    return Counter(shapes).most_common(1)[0][0]
