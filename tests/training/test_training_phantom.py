"""Phantom AUC core (benchmarks/phantom_auc.py): out-of-fold patient scores, patient-level permutation."""

import numpy as np
import pytest

pytest.importorskip("keras")

from benchmarks.phantom_auc import (  # noqa: E402
    SMOKE_CONFIG,
    folds_for_store,
    heldout_auc,
    permuted_patient_labels,
    synthetic_blob_store,
)
from training.network import TrainingConfig  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return synthetic_blob_store(tmp_path_factory.mktemp("phantom") / "s", n_per_class=4, slices_per_case=2)


def test_permutation_shuffles_whole_patients_and_keeps_class_counts(store):
    labels = permuted_patient_labels(store, seed=0)
    for case in store.case_list():
        assert len(set(labels[store.case_ids == case])) == 1
    assert labels.sum() == store.labels.sum()
    assert not np.array_equal(labels, store.labels)
    np.testing.assert_array_equal(labels, permuted_patient_labels(store, seed=0))


def test_every_patient_is_scored_once_by_the_model_that_did_not_train_on_it(store, tmp_path):
    fold_of = folds_for_store(store, n_folds=2, seed=0)
    config = TrainingConfig.from_dict({**SMOKE_CONFIG.to_dict(), "epochs": 1, "samples_per_epoch": 8,
                                       "batch_size": 8})
    seen = []
    result = heldout_auc(store, fold_of, config, tmp_path, seed=0, permute_labels=True,
                         on_model=lambda fold, metrics: seen.append((fold, metrics["n_slices"])))
    np.testing.assert_array_equal(result.case_ids, store.case_list())
    expected = permuted_patient_labels(store, seed=0)
    np.testing.assert_array_equal(result.labels, [expected[store.case_ids == c][0] for c in result.case_ids])
    assert result.permuted and 0.0 <= result.auc <= 1.0
    assert [fold for fold, _ in seen] == [0, 1] and sum(n for _, n in seen) == store.n_slices
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fold-0-permuted", "fold-1-permuted"]
    with pytest.raises(ValueError, match="have no fold"):
        heldout_auc(store, {c: f for c, f in fold_of.items() if c != 0}, config, tmp_path)


def test_the_documented_command_lines_parse_and_a_cohort_folder_finds_its_store(tmp_path):
    """Issue 20, item 5: `--out` is optional (a temporary folder), `--store` takes MEDIA_ROOT/cohorts/<name>."""
    from benchmarks.phantom_auc import build_parser, store_folder

    args = build_parser().parse_args(["--cohort", "demo-phantoms", "--folds", "3", "--eager"])
    assert args.out is None and args.folds == 3 and args.eager
    (tmp_path / "c" / "store").mkdir(parents=True)
    (tmp_path / "c" / "store" / "slices.npy").write_bytes(b"")
    assert store_folder(tmp_path / "c") == tmp_path / "c" / "store"
    assert store_folder(tmp_path / "c" / "store") == tmp_path / "c" / "store"
