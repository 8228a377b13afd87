"""Class-balanced batches from the array store for one model's training (METHOD §5). No Django.

The paper augmented both classes to 437,500 slices and drew 35,000 at random per epoch, so each
epoch saw the classes in equal numbers and, within a class, every slice equally likely ("without
considering the balance between the number of MRI slices for each patient and each sequence").
We do the same without materialising anything: each batch holds half sarcoma and half leiomyoma
slices drawn uniformly, with replacement, from the TRAINING patients' slices only.

Batches are a pure function of (seed, epoch, batch number), so they do not depend on which loader
thread builds them, and a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from imaging.arraystore import LABEL_LEIOMYOMA, LABEL_SARCOMA, ArrayStore


class ClassBalancedSampler:
    """Draws class-balanced batches of training slices. NumPy only; see `as_keras_dataset` for Keras.

    store: the cohort's ArrayStore; train_case_ids: the patients this model may learn from.
    batch_size: slices per batch; an odd batch gives its spare slot to a class chosen at random.
    samples_per_epoch: slices per epoch; steps_per_epoch = ceil(samples_per_epoch / batch_size).
    dtype: dtype of the images handed out, "uint8" (4x less to move to the device) or "float32".
    one_hot: labels as (B, 2) one-hot float32 instead of (B,) int32 (for categorical_crossentropy).
    """

    def __init__(self, store: ArrayStore, train_case_ids: Iterable[int], *, batch_size: int,
                 samples_per_epoch: int, seed: int, dtype: str = "uint8", one_hot: bool = False):
        train_case_ids = np.unique(np.asarray(list(train_case_ids), dtype=np.int64))
        unknown = np.setdiff1d(train_case_ids, store.case_ids)
        if unknown.size:
            raise ValueError(f"training cases {unknown[:5].tolist()} have no slices in the array store")
        rows = store.slice_indices(train_case_ids)
        self.pools = {label: rows[store.labels[rows] == label] for label in (LABEL_LEIOMYOMA, LABEL_SARCOMA)}
        for label, name in ((LABEL_SARCOMA, "sarcoma"), (LABEL_LEIOMYOMA, "leiomyoma")):
            if self.pools[label].size == 0:
                raise ValueError(f"the training patients have no {name} slices; cannot balance the classes")
        if batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 to hold both classes, got {batch_size}")
        self.store = store
        self.train_case_ids = train_case_ids
        self.batch_size = int(batch_size)
        self.samples_per_epoch = int(samples_per_epoch)
        self.steps_per_epoch = -(-self.samples_per_epoch // self.batch_size)
        self.seed = int(seed)
        self.dtype = np.dtype(dtype)
        self.one_hot = one_hot

    def batch_rows(self, epoch: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Store rows and labels of batch `step` of `epoch`: ((B,) int64 rows, (B,) uint8 labels)."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(epoch), int(step)]))
        n_sarcoma = self.batch_size // 2 + (int(rng.integers(2)) if self.batch_size % 2 else 0)
        n_leiomyoma = self.batch_size - n_sarcoma
        rows = np.concatenate([
            rng.choice(self.pools[LABEL_SARCOMA], size=n_sarcoma, replace=True),
            rng.choice(self.pools[LABEL_LEIOMYOMA], size=n_leiomyoma, replace=True),
        ])
        rows = rows[rng.permutation(rows.size)]
        return rows, self.store.labels[rows]

    def batch(self, epoch: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Images (B, S, S, 1) in 0..255 (self.dtype) and labels ((B,) int32 or (B, 2) one-hot)."""
        rows, labels = self.batch_rows(epoch, step)
        order = np.argsort(rows, kind="stable")  # ascending reads are kinder to a memory-mapped file
        images = np.empty((rows.size, *self.store.slices.shape[1:]), dtype=np.uint8)
        images[order] = self.store.slices[rows[order]]
        images = images[..., None].astype(self.dtype, copy=False)
        if self.one_hot:
            return images, np.eye(2, dtype=np.float32)[labels]
        return images, labels.astype(np.int32)


def as_keras_dataset(sampler: ClassBalancedSampler, *, epoch: int = 0, workers: int = 1):
    """A keras.utils.PyDataset (works on every backend) serving `sampler`'s batches for one epoch.

    Call `.set_epoch(e)` before each model.fit epoch; len() is sampler.steps_per_epoch.
    """
    return _pydataset_class()(sampler, epoch=epoch, workers=workers)


_PYDATASET_CLASS = None


def _pydataset_class():
    # The class derives from keras.utils.PyDataset, so it is created on first use: importing this
    # module must not import Keras (the web process imports training modules).
    global _PYDATASET_CLASS
    if _PYDATASET_CLASS is None:
        import keras

        class BalancedSliceDataset(keras.utils.PyDataset):
            def __init__(self, sampler, *, epoch, workers):
                super().__init__(workers=workers, use_multiprocessing=False,
                                 max_queue_size=max(4, 2 * workers))
                self.sampler = sampler
                self.epoch = int(epoch)

            def set_epoch(self, epoch: int) -> None:
                self.epoch = int(epoch)

            def __len__(self):
                return self.sampler.steps_per_epoch

            def __getitem__(self, step):
                return self.sampler.batch(self.epoch, step)

        _PYDATASET_CLASS = BalancedSliceDataset
    return _PYDATASET_CLASS
