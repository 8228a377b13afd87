"""The cohort array store: write, memory-mapped read, content hash, clear errors."""

import json

import numpy as np
import pytest

from imaging.arraystore import ArrayStoreError, open_array_store, write_array_store


def small_arrays(n=10, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return dict(slices=rng.integers(0, 256, (n, size, size), dtype=np.uint8),
                case_ids=np.repeat(np.arange(n // 2), 2), sequence_idx=rng.integers(0, 15, n),
                slice_no=np.arange(n), labels=np.repeat(np.arange(n // 2) % 2, 2))


def test_store_round_trips_memory_mapped_with_its_hash(tmp_path):
    arrays = small_arrays()
    digest = write_array_store(tmp_path / "s", **arrays, meta={"cohort": "pilot"})
    store = open_array_store(tmp_path / "s", verify=True)
    assert isinstance(store.slices, np.memmap)
    assert not store.slices.flags.writeable
    np.testing.assert_array_equal(store.slices, arrays["slices"])
    np.testing.assert_array_equal(store.case_ids, arrays["case_ids"])
    np.testing.assert_array_equal(store.labels, arrays["labels"])
    assert store.content_hash == digest and digest.startswith("sha256:")
    assert store.meta["cohort"] == "pilot" and store.meta["input_size"] == 32 and store.meta["n_slices"] == 10
    assert store.case_labels() == {0: 0, 1: 1, 2: 0, 3: 1, 4: 0}
    assert store.slices_per_case() == {c: 2 for c in range(5)}
    np.testing.assert_array_equal(store.slice_indices([1, 3]), [2, 3, 6, 7])


def test_hash_changes_with_one_pixel_or_one_label(tmp_path):
    arrays = small_arrays()
    base = write_array_store(tmp_path / "a", **arrays)
    pixel = dict(arrays, slices=arrays["slices"].copy())
    pixel["slices"][3, 4, 5] ^= 1
    label = dict(arrays, labels=arrays["labels"].copy())
    label["labels"][0] = 1 - label["labels"][0]
    assert write_array_store(tmp_path / "b", **pixel) != base
    assert write_array_store(tmp_path / "c", **label) != base
    assert write_array_store(tmp_path / "d", **arrays) == base


def test_tampered_store_fails_verification(tmp_path):
    write_array_store(tmp_path / "s", **small_arrays())
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    meta["content_hash"] = "sha256:" + "0" * 64
    (tmp_path / "s" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ArrayStoreError, match="differs from recorded"):
        open_array_store(tmp_path / "s", verify=True)


def test_bad_input_is_refused_with_the_field_named(tmp_path):
    arrays = small_arrays()
    with pytest.raises(ValueError, match="uint8"):
        write_array_store(tmp_path / "x", **dict(arrays, slices=arrays["slices"].astype(np.float32)))
    with pytest.raises(ValueError, match="sequence_idx must be in 0..14"):
        write_array_store(tmp_path / "x", **dict(arrays, sequence_idx=np.full(10, 15)))
    with pytest.raises(ValueError, match="label must be 0"):
        write_array_store(tmp_path / "x", **dict(arrays, labels=np.full(10, 2)))
    with pytest.raises(ValueError, match=r"case_id must have shape \(10,\)"):
        write_array_store(tmp_path / "x", **dict(arrays, case_ids=np.arange(9)))
    assert not (tmp_path / "x").exists()
    write_array_store(tmp_path / "s", **arrays)
    with pytest.raises(FileExistsError):
        write_array_store(tmp_path / "s", **arrays)
    (tmp_path / "s" / "index.npz").unlink()
    with pytest.raises(ArrayStoreError, match="index.npz is missing"):
        open_array_store(tmp_path / "s")
    with pytest.raises(ArrayStoreError, match="folder not found"):
        open_array_store(tmp_path / "nowhere")
