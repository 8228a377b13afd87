"""The cohort array store: every tumour slice of a frozen cohort as one uint8 array (DESIGN data flow 2).

No Django, no Keras. The cohort build writes it once with `write_array_store`; training and
evaluation open it memory-mapped with `open_array_store`, so a 224 x 224 cohort of ~100,000 slices
(~5 GB) is never read into memory as a whole.

Layout of the folder:

- `slices.npy`  uint8, shape (N, S, S): the cropped grey slices (METHOD §3; S = 224 by default).
- `index.npz`   one entry per slice, arrays of length N:
                `case_id` int64, `sequence_idx` int16 (0..14, position in core.constants.SEQUENCE_CODES),
                `slice_no` int32 (the slice's number within its series), `label` uint8
                (LABEL_SARCOMA = 1, LABEL_LEIOMYOMA = 0).
- `meta.json`   {"format": 1, "cohort": name, "content_hash": "sha256:…", "input_size": S,
                 "n_slices": N, "created": ISO-8601 UTC, …caller's extra keys}.

The content hash is the SHA-256 of, in this order: the text "slices", the shape as "N,S,S", the
slice bytes in C order; then for each index field in the order above, its name and its values as
little-endian bytes of the dtype listed. It identifies the data a model was trained on (model card).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from core.constants import N_SEQUENCES

# Integer class labels used by the store, the sampler and the network's softmax (column 1 = sarcoma).
LABEL_LEIOMYOMA = 0
LABEL_SARCOMA = 1

FORMAT_VERSION = 1
SLICES_FILE = "slices.npy"
INDEX_FILE = "index.npz"
META_FILE = "meta.json"
INDEX_DTYPES: dict[str, str] = {
    "case_id": "<i8", "sequence_idx": "<i2", "slice_no": "<i4", "label": "u1",
}
_CHUNK = 4096  # slices per chunk when copying / hashing, bounds memory to ~200 MB at 224 x 224


class ArrayStoreError(ValueError):
    """An array store is missing, malformed or does not match its recorded hash."""


@dataclass(frozen=True, eq=False)
class ArrayStore:
    """A cohort's slices and per-slice index. `slices` is usually a read-only np.memmap.

    slices: (N, S, S) uint8; case_ids (N,) int64; sequence_idx (N,) int16; slice_no (N,) int32;
    labels (N,) uint8 in {0, 1}; meta: the meta.json content (may be empty for in-memory stores).
    """

    slices: np.ndarray
    case_ids: np.ndarray
    sequence_idx: np.ndarray
    slice_no: np.ndarray
    labels: np.ndarray
    meta: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def n_slices(self) -> int:
        return int(self.slices.shape[0])

    @property
    def input_size(self) -> int:
        return int(self.slices.shape[1])

    @property
    def content_hash(self) -> str:
        """The recorded hash (meta.json) or, for an in-memory store, the hash computed now."""
        return self.meta.get("content_hash") or content_hash(
            self.slices, self.case_ids, self.sequence_idx, self.slice_no, self.labels)

    def case_list(self) -> np.ndarray:
        """Sorted unique case ids, shape (n_cases,)."""
        return np.unique(self.case_ids)

    def case_labels(self) -> dict[int, int]:
        """{case_id: label}. Raises ArrayStoreError if a case has slices with both labels."""
        cases, first = np.unique(self.case_ids, return_index=True)
        labels = self.labels[first]
        mixed = np.unique(self.case_ids[self.labels != labels[np.searchsorted(cases, self.case_ids)]])
        if mixed.size:
            raise ArrayStoreError(f"{self._where()}: cases {mixed[:5].tolist()} have slices with both labels")
        return {int(c): int(lab) for c, lab in zip(cases, labels, strict=True)}

    def slices_per_case(self) -> dict[int, int]:
        """{case_id: number of slices}: the `slice_counts` input of training.folds.make_folds."""
        cases, counts = np.unique(self.case_ids, return_counts=True)
        return {int(c): int(n) for c, n in zip(cases, counts, strict=True)}

    def slice_indices(self, case_ids: Iterable[int]) -> np.ndarray:
        """Row numbers (sorted, int64) of every slice that belongs to one of `case_ids`."""
        wanted = np.asarray(list(case_ids), dtype=np.int64)
        return np.flatnonzero(np.isin(self.case_ids, wanted))

    def with_labels(self, labels: np.ndarray) -> ArrayStore:
        """An in-memory copy that shares the slices but carries other labels (permutation tests)."""
        labels = np.asarray(labels, dtype=np.uint8)
        _check_index(self.n_slices, self.case_ids, self.sequence_idx, self.slice_no, labels, "labels")
        meta = {k: v for k, v in self.meta.items() if k != "content_hash"}
        return replace(self, labels=labels, meta=meta)

    def verify(self) -> None:
        """Recompute the content hash and compare it with meta.json; ArrayStoreError on mismatch."""
        recorded = self.meta.get("content_hash")
        actual = content_hash(self.slices, self.case_ids, self.sequence_idx, self.slice_no, self.labels)
        if recorded != actual:
            raise ArrayStoreError(f"{self._where()}: content hash {actual} differs from recorded {recorded}")

    def _where(self) -> str:
        return f"array store {self.path}" if self.path else "in-memory array store"


def write_array_store(
    path: str | os.PathLike,
    slices: np.ndarray,
    case_ids: np.ndarray,
    sequence_idx: np.ndarray,
    slice_no: np.ndarray,
    labels: np.ndarray,
    meta: Mapping | None = None,
    *,
    overwrite: bool = False,
) -> str:
    """Write an array store folder at `path`; returns its content hash ("sha256:<hex>").

    slices: (N, S, S) uint8 (a np.memmap works and is copied in chunks). case_ids, sequence_idx,
    slice_no, labels: (N,) integers, see the module docstring. meta: extra JSON-serialisable keys for
    meta.json, e.g. {"cohort": "pilot-2025"}; "cohort" defaults to the folder name.
    The folder is written next to `path` and renamed into place, so a reader never sees half a store.
    """
    path = Path(path)
    slices = _checked_slices(slices)
    index = {
        "case_id": np.asarray(case_ids), "sequence_idx": np.asarray(sequence_idx),
        "slice_no": np.asarray(slice_no), "label": np.asarray(labels),
    }
    _check_index(slices.shape[0], index["case_id"], index["sequence_idx"], index["slice_no"],
                 index["label"], "write_array_store")
    index = {name: index[name].astype(INDEX_DTYPES[name]) for name in INDEX_DTYPES}
    if path.exists() and not overwrite:
        raise FileExistsError(f"array store {path} already exists (pass overwrite=True to replace it)")

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        out = np.lib.format.open_memmap(tmp / SLICES_FILE, mode="w+", dtype=np.uint8, shape=slices.shape)
        for start in range(0, slices.shape[0], _CHUNK):
            out[start:start + _CHUNK] = slices[start:start + _CHUNK]
        out.flush()
        del out
        np.savez(tmp / INDEX_FILE, **index)
        digest = content_hash(slices, *index.values())
        record = dict(meta or {})
        record.update({
            "format": FORMAT_VERSION,
            "cohort": record.get("cohort", path.name),
            "content_hash": digest,
            "input_size": int(slices.shape[1]),
            "n_slices": int(slices.shape[0]),
            "n_cases": int(np.unique(index["case_id"]).size),
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        })
        (tmp / META_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return digest


def open_array_store(path: str | os.PathLike, *, verify: bool = False) -> ArrayStore:
    """Open an array store folder; slices are memory-mapped read-only. verify=True rechecks the hash."""
    path = Path(path)
    if not path.is_dir():
        raise ArrayStoreError(f"array store {path}: folder not found")
    for name in (SLICES_FILE, INDEX_FILE, META_FILE):
        if not (path / name).is_file():
            raise ArrayStoreError(f"array store {path}: {name} is missing")
    try:
        meta = json.loads((path / META_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise ArrayStoreError(f"array store {path}: {META_FILE} is not valid JSON ({exc})") from None
    if meta.get("format") != FORMAT_VERSION:
        raise ArrayStoreError(f"array store {path}: format {meta.get('format')!r} is not {FORMAT_VERSION}")
    try:
        slices = np.load(path / SLICES_FILE, mmap_mode="r")
    except ValueError as exc:
        raise ArrayStoreError(f"array store {path}: {SLICES_FILE} is unreadable ({exc})") from None
    try:
        slices = _checked_slices(slices)
    except ValueError as exc:
        raise ArrayStoreError(f"array store {path}: {SLICES_FILE}: {exc}") from None
    with np.load(path / INDEX_FILE) as npz:
        missing = [name for name in INDEX_DTYPES if name not in npz.files]
        if missing:
            raise ArrayStoreError(f"array store {path}: {INDEX_FILE} lacks {missing}")
        index = {name: npz[name] for name in INDEX_DTYPES}
    try:
        _check_index(slices.shape[0], index["case_id"], index["sequence_idx"], index["slice_no"],
                     index["label"], INDEX_FILE)
    except ValueError as exc:
        raise ArrayStoreError(f"array store {path}: {exc}") from None
    store = ArrayStore(slices=slices, case_ids=index["case_id"], sequence_idx=index["sequence_idx"],
                       slice_no=index["slice_no"], labels=index["label"], meta=meta, path=path)
    if verify:
        store.verify()
    return store


def content_hash(slices, case_ids, sequence_idx, slice_no, labels) -> str:
    """SHA-256 over the slices and the index, as described in the module docstring: "sha256:<hex>"."""
    h = hashlib.sha256()
    h.update(b"slices")
    h.update(",".join(str(int(d)) for d in slices.shape).encode())
    for start in range(0, slices.shape[0], _CHUNK):
        h.update(np.ascontiguousarray(slices[start:start + _CHUNK], dtype=np.uint8).tobytes())
    fields = (case_ids, sequence_idx, slice_no, labels)
    for (name, dtype), values in zip(INDEX_DTYPES.items(), fields, strict=True):
        h.update(name.encode())
        h.update(np.ascontiguousarray(np.asarray(values).astype(dtype)).tobytes())
    return "sha256:" + h.hexdigest()


def _checked_slices(slices) -> np.ndarray:
    if not isinstance(slices, np.ndarray):
        slices = np.asarray(slices)
    if slices.dtype != np.uint8:
        raise ValueError(f"slices must be uint8, got {slices.dtype}")
    if slices.ndim != 3 or slices.shape[1] != slices.shape[2]:
        raise ValueError(f"slices must have shape (N, S, S), got {slices.shape}")
    if slices.shape[0] == 0:
        raise ValueError("slices is empty")
    return slices


def _check_index(n, case_ids, sequence_idx, slice_no, labels, where) -> None:
    fields = {"case_id": case_ids, "sequence_idx": sequence_idx, "slice_no": slice_no, "label": labels}
    for name, values in fields.items():
        values = np.asarray(values)
        if values.shape != (n,):
            raise ValueError(f"{where}: {name} must have shape ({n},) like the slices, got {values.shape}")
        if not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"{where}: {name} must be integers, got {values.dtype}")
    seq = np.asarray(sequence_idx)
    if seq.min() < 0 or seq.max() >= N_SEQUENCES:
        raise ValueError(f"{where}: sequence_idx must be in 0..{N_SEQUENCES - 1}, "
                         f"got {int(seq.min())}..{int(seq.max())}")
    bad = np.setdiff1d(np.unique(labels), [LABEL_LEIOMYOMA, LABEL_SARCOMA])
    if bad.size:
        raise ValueError(f"{where}: label must be 0 (leiomyoma) or 1 (sarcoma), found {bad[:5].tolist()}")
