"""Per-reader randomised worklists (METHOD §11): the order of the cases and their display codes.

No Django here. A worklist is drawn once from a seed derived from (study seed, reader, exam) and then
stored, so it is reproducible from the seed (an auditor can redraw it) yet never changes under a reader
even if the case list or this code changed later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EXAM_PREFIXES = {1: "A", 2: "B", 3: "D"}   # exam 1, exam 2, descriptor task: codes never look alike


@dataclass(frozen=True)
class WorklistItem:
    case_id: int
    position: int          # 0-based place in the reader's order
    display_code: str      # e.g. "A-0417": what the reader sees instead of any case identifier


def worklist_seed(study_seed: int, reader_id: int, exam: int) -> int:
    """A 63-bit seed from (study, reader, exam): different for each, the same every time it is asked."""
    for name, value in (("study_seed", study_seed), ("reader_id", reader_id), ("exam", exam)):
        if int(value) < 0:
            raise ValueError(f"{name}: must be a non-negative integer, not {value!r}")
    sequence = np.random.SeedSequence([int(study_seed), int(reader_id), int(exam)])
    state = sequence.generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def _code_digits(n_cases: int) -> int:
    """Enough digits that codes drawn without replacement stay sparse (at most 1 in 5 numbers used)."""
    digits = 3
    while 10 ** digits < 5 * n_cases:
        digits += 1
    return digits


def draw_worklist(case_ids: list[int], seed: int, exam: int) -> list[WorklistItem]:
    """Shuffle ``case_ids`` and give each a random display code of the exam's prefix.

    The input order does not matter (ids are sorted first), so the same set and seed always give the same
    worklist. Codes are random numbers, not positions, so they say nothing about the order or the case.
    """
    if exam not in EXAM_PREFIXES:
        raise ValueError(f"exam: must be one of {sorted(EXAM_PREFIXES)}, not {exam!r}")
    ids = sorted({int(c) for c in case_ids})
    if len(ids) != len(case_ids):
        raise ValueError("case_ids: each case may appear only once in a worklist")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ids))
    digits = _code_digits(len(ids))
    numbers = rng.choice(10 ** digits - 10 ** (digits - 1), size=len(ids), replace=False) + 10 ** (digits - 1)
    prefix = EXAM_PREFIXES[exam]
    return [WorklistItem(case_id=ids[k], position=pos, display_code=f"{prefix}-{int(numbers[pos])}")
            for pos, k in enumerate(order)]
