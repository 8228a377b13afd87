"""Class-balanced, seeded batches from the training patients only."""

import numpy as np
import pytest

from imaging.arraystore import ArrayStore
from training.sampling import ClassBalancedSampler, as_keras_dataset


@pytest.fixture(scope="module")
def store():
    """SYNTHETIC: 12 cases (even = leiomyoma with 9 slices, odd = sarcoma with 3); pixel value = row % 256."""
    case_ids = np.concatenate([np.full(9 if c % 2 == 0 else 3, c) for c in range(12)])
    labels = (case_ids % 2).astype(np.uint8)
    n = case_ids.size
    slices = np.broadcast_to((np.arange(n) % 256).astype(np.uint8)[:, None, None], (n, 8, 8)).copy()
    return ArrayStore(slices=slices, case_ids=case_ids, sequence_idx=np.zeros(n, np.int16),
                      slice_no=np.zeros(n, np.int32), labels=labels)


def test_each_batch_is_half_sarcoma_from_training_patients_only(store):
    train = [0, 1, 2, 3, 4, 5, 6, 7]
    sampler = ClassBalancedSampler(store, train, batch_size=16, samples_per_epoch=100, seed=0)
    assert sampler.steps_per_epoch == 7  # ceil(100 / 16)
    seen = set()
    for step in range(sampler.steps_per_epoch):
        rows, labels = sampler.batch_rows(0, step)
        assert labels.sum() == 8
        assert set(store.case_ids[rows]) <= set(train)
        seen |= set(store.case_ids[rows].tolist())
        images, y = sampler.batch(0, step)
        assert images.shape == (16, 8, 8, 1) and images.dtype == np.uint8 and y.dtype == np.int32
        np.testing.assert_array_equal(images[:, 0, 0, 0], rows % 256)  # image i is slice rows[i]
        np.testing.assert_array_equal(y, labels)
    assert seen == set(train)


def test_within_a_class_every_training_slice_is_equally_likely(store):
    sampler = ClassBalancedSampler(store, range(12), batch_size=64, samples_per_epoch=64 * 200, seed=1)
    rows = np.concatenate([sampler.batch_rows(0, s)[0] for s in range(sampler.steps_per_epoch)])
    sarcoma = rows[store.labels[rows] == 1]
    counts = np.bincount(sarcoma, minlength=store.n_slices)[store.labels == 1]
    assert counts.min() > 0.7 * counts.mean() and counts.max() < 1.3 * counts.mean()


def test_batches_depend_only_on_seed_epoch_and_step(store):
    a = ClassBalancedSampler(store, range(12), batch_size=9, samples_per_epoch=90, seed=4)
    b = ClassBalancedSampler(store, range(12), batch_size=9, samples_per_epoch=90, seed=4)
    np.testing.assert_array_equal(a.batch_rows(3, 5)[0], b.batch_rows(3, 5)[0])
    assert not np.array_equal(a.batch_rows(3, 5)[0], a.batch_rows(4, 5)[0])
    c = ClassBalancedSampler(store, range(12), batch_size=9, samples_per_epoch=90, seed=5)
    assert not np.array_equal(a.batch_rows(3, 5)[0], c.batch_rows(3, 5)[0])
    n_sarcoma = {int(a.batch_rows(0, s)[1].sum()) for s in range(10)}
    assert n_sarcoma <= {4, 5} and len(n_sarcoma) == 2  # odd batch: the spare slot goes either way


def test_keras_dataset_serves_the_samplers_batches(store):
    sampler = ClassBalancedSampler(store, range(12), batch_size=8, samples_per_epoch=24, seed=2,
                                   dtype="float32", one_hot=True)
    dataset = as_keras_dataset(sampler, epoch=0)
    assert len(dataset) == 3
    dataset.set_epoch(7)
    x, y = dataset[1]
    x_ref, y_ref = sampler.batch(7, 1)
    assert x.dtype == np.float32 and y.shape == (8, 2)
    np.testing.assert_array_equal(x, x_ref)
    np.testing.assert_array_equal(y.argmax(1), sampler.batch_rows(7, 1)[1])


def test_sampler_refuses_a_training_set_without_one_class(store):
    with pytest.raises(ValueError, match="no sarcoma slices"):
        ClassBalancedSampler(store, [0, 2, 4], batch_size=8, samples_per_epoch=8, seed=0)
    with pytest.raises(ValueError, match=r"\[99\] have no slices"):
        ClassBalancedSampler(store, [0, 1, 99], batch_size=8, samples_per_epoch=8, seed=0)
