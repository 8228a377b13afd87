"""Sets of MRI sequences as bit masks (METHOD.md §7, §8). No Django import.

A set of sequences is an ``int`` bit mask over the sequence codes in their canonical order
(``core.constants.SEQUENCE_CODES``, the paper's Table 1 order): bit ``i`` set means code ``i`` is in the
set. ``T2axi`` is code 12, so ``{T2axi}`` is ``1 << 12 == 4096``; the 15-sequence search enumerates the
masks ``1 … 2**15 - 1`` (32,767 non-empty sets). The same helpers work for any number of codes, which is
how the tests use three made-up sequences.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from core.constants import SEQUENCE_CODES

SubsetLike = int | Iterable[str]


def n_subsets(n_sequences: int) -> int:
    """Number of non-empty sets of ``n_sequences`` sequences: ``2**n - 1`` (32,767 for 15)."""
    return (1 << n_sequences) - 1


def all_masks(n_sequences: int) -> np.ndarray:
    """Every non-empty set as a mask, ``(2**n - 1,)`` int64, ascending (1, 2, …)."""
    return np.arange(1, n_subsets(n_sequences) + 1, dtype=np.int64)


def membership_matrix(masks: np.ndarray, n_sequences: int, dtype=np.float32) -> np.ndarray:
    """``(n_sequences, n_masks)`` 0/1 matrix, entry ``[s, k]`` = 1 when sequence ``s`` is in set ``k``.

    With sequence calls ``(..., patients, sequences)`` in {-1, 0, +1}, ``calls @ membership_matrix(...)``
    is every set's patient score at once.
    """
    masks = np.asarray(masks, dtype=np.int64)
    bits = (masks[None, :] >> np.arange(n_sequences, dtype=np.int64)[:, None]) & 1
    return bits.astype(dtype)


def subset_sizes(masks: np.ndarray) -> np.ndarray:
    """Number of sequences in each set, ``(n_masks,)`` int."""
    masks = np.asarray(masks, dtype=np.int64)
    sizes = np.zeros(masks.shape, dtype=np.int64)
    remaining = masks.copy()
    while np.any(remaining):      # one pass per bit; numpy < 2 has no bitwise_count
        sizes += remaining & 1
        remaining >>= 1
    return sizes


def as_mask(subset: SubsetLike, codes: Sequence[str] = SEQUENCE_CODES) -> int:
    """The mask of a set given as a mask or as sequence codes (e.g. ``("T2axi", "T2sag", "DWI")``).

    Raises ``ValueError`` naming an unknown code, an empty set, or a mask outside the code list.
    """
    n = len(codes)
    if isinstance(subset, (int, np.integer)):
        mask = int(subset)
        if not 0 < mask < (1 << n):
            raise ValueError(f"sequence set mask {mask}: must be between 1 and {(1 << n) - 1} for {n} codes")
        return mask
    if isinstance(subset, str):
        subset = (subset,)
    position = {code: i for i, code in enumerate(codes)}
    mask = 0
    for code in subset:
        if code not in position:
            raise ValueError(f"sequence set: unknown sequence code {code!r}; known codes: {', '.join(codes)}")
        mask |= 1 << position[code]
    if mask == 0:
        raise ValueError("sequence set: empty; name at least one sequence code")
    return mask


def mask_codes(mask: int, codes: Sequence[str] = SEQUENCE_CODES) -> tuple[str, ...]:
    """The codes of a mask, in canonical order."""
    return tuple(code for i, code in enumerate(codes) if (int(mask) >> i) & 1)


def mask_vector(mask: int, n_sequences: int) -> np.ndarray:
    """``(n_sequences,)`` bool, True for the sequences in the set."""
    return ((int(mask) >> np.arange(n_sequences)) & 1).astype(bool)
