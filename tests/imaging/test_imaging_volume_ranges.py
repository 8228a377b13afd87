"""The frame-cuttable volume store (imaging.importer_store): one ordinary gzip stream, full-flushed after every
frame, plus an index, so that any run of frames is cut from the file as its own valid gzip member — checked
here byte for byte against the raw volume, CRC and length included (``gzip.decompress`` verifies both)."""

import gzip
import json
import zlib

import numpy as np
import pytest

from imaging import importer_store
from imaging.importer_store import FRAMES_FILE, compress_frames, cut_frames, frame_index

ROWS, COLS, FRAMES = 33, 35, 7
FRAME_BYTES = ROWS * COLS * 2


@pytest.fixture
def raw() -> bytes:
    values = np.random.default_rng(3).integers(0, 4000, size=(FRAMES, ROWS, COLS), dtype=np.uint16)
    return values.astype("<u2").tobytes()


@pytest.fixture
def stored(tmp_path, raw):
    """A volume file written the way write_volume writes it (the file and its frames.json)."""
    path = tmp_path / "volume.u16le.gz"
    compressed, index = compress_frames(raw, FRAME_BYTES)
    path.write_bytes(compressed)
    path.with_name(FRAMES_FILE).write_text(json.dumps({"frame_bytes": index.frame_bytes, "offsets": index.offsets,
                                                       "crc32": index.crc32}))
    return path


def test_the_cuttable_file_is_one_ordinary_gzip_stream_of_the_volume(raw):
    compressed, index = compress_frames(raw, FRAME_BYTES)
    assert gzip.decompress(compressed) == raw
    assert compress_frames(raw, FRAME_BYTES)[0] == compressed                  # the same volume, the same bytes
    assert index.n_frames == FRAMES and index.crc32[2] == zlib.crc32(raw[2 * FRAME_BYTES:3 * FRAME_BYTES])
    assert len(compressed) < len(raw)


def test_every_run_of_frames_cuts_to_a_valid_gzip_member(stored, raw):
    index = frame_index(stored, n_frames=FRAMES, frame_bytes=FRAME_BYTES)
    for first in range(FRAMES):
        for last in range(first, FRAMES):
            member = cut_frames(stored, index, first, last)
            assert gzip.decompress(member) == raw[first * FRAME_BYTES:(last + 1) * FRAME_BYTES], (first, last)


def test_a_cut_outside_the_volume_is_refused(stored):
    index = frame_index(stored, n_frames=FRAMES, frame_bytes=FRAME_BYTES)
    with pytest.raises(ValueError, match="outside 0-6"):
        cut_frames(stored, index, 5, 7)


def test_an_old_single_stream_volume_is_rewritten_cuttable_with_the_same_content(tmp_path, raw):
    path = tmp_path / "volume.u16le.gz"
    path.write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))           # as volumes were stored before
    index = frame_index(path, n_frames=FRAMES, frame_bytes=FRAME_BYTES)
    assert gzip.decompress(path.read_bytes()) == raw and path.with_name(FRAMES_FILE).exists()
    assert gzip.decompress(cut_frames(path, index, 1, 3)) == raw[FRAME_BYTES:4 * FRAME_BYTES]


def test_an_index_that_does_not_describe_its_file_is_rebuilt(stored, raw):
    index_path = stored.with_name(FRAMES_FILE)
    index_path.write_text(json.dumps({"frame_bytes": FRAME_BYTES, "offsets": [10] * (FRAMES + 1),
                                      "crc32": [0] * FRAMES}))
    index = frame_index(stored, n_frames=FRAMES, frame_bytes=FRAME_BYTES)
    assert gzip.decompress(cut_frames(stored, index, 0, FRAMES - 1)) == raw


def test_a_volume_whose_size_disagrees_with_its_series_is_an_error(stored):
    stored.with_name(FRAMES_FILE).unlink()
    with pytest.raises(ValueError, match="holds 16170 bytes, its series 8 frames"):
        frame_index(stored, n_frames=FRAMES + 1, frame_bytes=FRAME_BYTES)


def test_write_volume_stores_a_cuttable_volume(settings, tmp_path):
    from imaging.volumes import encode_volume

    settings.MEDIA_ROOT = tmp_path / "media"
    values = np.arange(4 * 6 * 5, dtype=np.uint16).reshape(4, 6, 5)
    positions = np.array([[0.0, 0.0, 5.0 * k] for k in range(4)])
    encoded = encode_volume(values, pixel_spacing=(1, 1), slice_positions=positions,
                            orientation=[1, 0, 0, 0, 1, 0])
    relative, _ = importer_store.write_volume("2.25.1234", encoded)
    path = tmp_path / "media" / relative
    index = frame_index(path, n_frames=4, frame_bytes=60)
    assert np.array_equal(np.frombuffer(gzip.decompress(cut_frames(path, index, 2, 3)), "<u2").reshape(2, 6, 5),
                          values[2:])
