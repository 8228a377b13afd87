"""Patient-level cross-validation folds (METHOD §4). No Django, no Keras: plain Python and NumPy.

The paper split its patients into 6 groups with a balanced number of slices per group; one group
evaluates and the other five train. We keep that and also stratify by class, so every fold holds
sarcoma and leiomyoma patients. A patient is the unit of assignment, so all of a patient's slices
are always on the same side of a model's train / held-out split: no leakage.

The split is made once per cohort with a recorded seed and reused by every repeat (METHOD §6).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from core.constants import N_FOLDS


def make_folds(
    patient_ids: Sequence[Hashable],
    classes: Sequence[Hashable],
    slice_counts: Sequence[int],
    n_folds: int = N_FOLDS,
    seed: int = 0,
) -> dict[Hashable, int]:
    """Assign each patient to one of `n_folds` folds; returns {patient_id: fold in 0..n_folds-1}.

    patient_ids, classes, slice_counts: one entry per patient (same length). `classes` may be any
    labels (e.g. "sarcoma"/"leiomyoma" or 1/0); `slice_counts` is the number of tumour slices the
    patient contributes (>= 0).

    Greedy balancing, deterministic for a seed:
    - classes are processed in order of decreasing total slices (ties: sorted label text);
    - within a class, patients are sorted by slice count, largest first; patients with equal counts
      are ordered by a shuffle seeded with `seed`;
    - each patient goes to the fold with the fewest slices of its class, then the fewest patients of
      its class, then the fewest slices overall; remaining ties are broken by a seeded fold order.
    Every fold gets at least one patient of each class, which requires each class to have at least
    `n_folds` patients (else ValueError).
    """
    ids, labels, counts = _validated(patient_ids, classes, slice_counts, n_folds)
    rng = np.random.default_rng(seed)
    fold_rank = rng.permutation(n_folds)  # seeded tie-break between equally loaded folds
    total_slices = np.zeros(n_folds, dtype=np.int64)
    fold_of: dict[Hashable, int] = {}

    for label in _class_order(labels, counts):
        members = [i for i, lab in enumerate(labels) if lab == label]
        members = [members[j] for j in rng.permutation(len(members))]
        members.sort(key=lambda i: -counts[i])  # stable: equal counts keep their shuffled order
        class_slices = np.zeros(n_folds, dtype=np.int64)
        class_patients = np.zeros(n_folds, dtype=np.int64)
        for i in members:
            fold = min(range(n_folds), key=lambda f: (class_slices[f], class_patients[f],
                                                      total_slices[f], fold_rank[f]))
            fold_of[ids[i]] = fold
            class_slices[fold] += counts[i]
            class_patients[fold] += 1
            total_slices[fold] += counts[i]
    return fold_of


def train_heldout_split(fold_of: Mapping[Hashable, int], fold: int) -> tuple[list, list]:
    """Patients that train and patients held out for the model of `fold`: (train_ids, heldout_ids).

    Both lists are sorted so the result does not depend on dict order. The two are disjoint and
    together cover every patient of `fold_of`.
    """
    folds = set(fold_of.values())
    if fold not in folds:
        raise ValueError(f"fold {fold!r} is not one of the folds in the split ({sorted(folds)})")
    train = sorted((p for p, f in fold_of.items() if f != fold), key=_sort_key)
    heldout = sorted((p for p, f in fold_of.items() if f == fold), key=_sort_key)
    return train, heldout


def fold_slice_table(
    fold_of: Mapping[Hashable, int],
    patient_ids: Sequence[Hashable],
    classes: Sequence[Hashable],
    slice_counts: Sequence[int],
) -> tuple[list, np.ndarray]:
    """Slices per fold and class, for the model card and for checking balance.

    Returns (class_labels, table) with table of shape (n_folds, n_classes): slices of each class in
    each fold. Folds are numbered 0..max(fold).
    """
    labels = sorted(set(classes), key=_sort_key)
    n_folds = max(fold_of.values()) + 1
    table = np.zeros((n_folds, len(labels)), dtype=np.int64)
    for pid, label, count in zip(patient_ids, classes, slice_counts, strict=True):
        table[fold_of[pid], labels.index(label)] += int(count)
    return labels, table


def _validated(patient_ids, classes, slice_counts, n_folds):
    ids, labels, counts = list(patient_ids), list(classes), [int(c) for c in slice_counts]
    if not (len(ids) == len(labels) == len(counts)):
        raise ValueError(
            f"patient_ids ({len(ids)}), classes ({len(labels)}) and slice_counts ({len(counts)}) "
            "must have one entry per patient")
    if int(n_folds) != n_folds or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    if len(set(ids)) != len(ids):
        dupes = sorted({p for p in ids if ids.count(p) > 1}, key=_sort_key)[:5]
        raise ValueError(f"patient_ids must be unique; repeated: {dupes}")
    negative = [p for p, c in zip(ids, counts, strict=True) if c < 0]
    if negative:
        raise ValueError(f"slice_counts must be >= 0; negative for patients {negative[:5]}")
    for label in set(labels):
        n = labels.count(label)
        if n < n_folds:
            raise ValueError(
                f"class {label!r} has {n} patients; at least n_folds={n_folds} are needed so that "
                "every fold holds both classes")
    if len(set(labels)) < 2:
        raise ValueError(f"folds need patients of two classes; got only {sorted(set(labels), key=str)}")
    return ids, labels, counts


def _class_order(labels, counts):
    totals: dict = {}
    for label, count in zip(labels, counts, strict=True):
        totals[label] = totals.get(label, 0) + count
    return sorted(totals, key=lambda lab: (-totals[lab], str(lab)))


def _sort_key(value):
    # Patient ids may be ints or strings; sort numbers numerically and never compare int with str.
    return (0, value, "") if isinstance(value, (int, np.integer)) else (1, 0, str(value))
