"""Issue 14, item 7: a test fails if training stops learning, or if held-out patients leak into training.

A tiny SYNTHETIC phantom cohort (bright disc = sarcoma, dark disc = leiomyoma; benchmarks/phantom_auc.py):
48 patients per class, 2 slices each, split into 2 folds (stratified, training.folds). One model is trained
on fold 1's patients and scores fold 0's (48 held-out patients): MobileNetV2 at width 0.35, 32-px crops, one
compiled epoch of 200 steps, no augmentation (the signal is the disc's brightness; rotations and zooms would
only cost time). The held-out patient-level AUC must be >= 0.9. A second model is trained the same way on
labels permuted at patient level (``permuted_patient_labels``); its held-out AUC must be within 0.5 +- 0.2
(the AUC of uninformative scores on 24 + 24 patients has SD ~0.08). Only the held-out fold is scored, so the
test costs two models (~90 s on 2 CPUs), not four; benchmarks/phantom_auc.py scores every fold.
"""

import time

import numpy as np
import pytest

pytest.importorskip("keras")

from benchmarks.phantom_auc import (  # noqa: E402
    PHANTOM_CONFIG,
    folds_for_store,
    permuted_patient_labels,
    synthetic_blob_store,
)
from training.fit import roc_auc, train_one_model  # noqa: E402
from training.folds import train_heldout_split  # noqa: E402
from training.network import TrainingConfig  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

LEARNS_CONFIG = TrainingConfig.from_dict({
    **PHANTOM_CONFIG.to_dict(), "epochs": 1, "samples_per_epoch": 3200, "batch_size": 16, "input_size": 32,
    "width": 0.35, "learning_rate": 1e-3, "rotation_degrees": 0.0, "zoom_fraction": 0.0,
    "brightness_fraction": 0.0})


def _heldout_patient_auc(store, train_ids, heldout_ids, folder) -> tuple[float, int]:
    """Patient-level AUC of the mean held-out P(sarcoma) of each held-out patient; and how many were scored."""
    result = train_one_model(store=store, train_case_ids=train_ids, heldout_case_ids=heldout_ids,
                             config=LEARNS_CONFIG, checkpoint_dir=folder, seed=1)
    cases = store.case_ids[result.heldout_rows]
    assert set(np.unique(cases).tolist()) == set(heldout_ids) and not set(heldout_ids) & set(train_ids)
    label_of = store.case_labels()
    patients = np.unique(cases)
    scores = [result.heldout_p_sarcoma[cases == case].mean() for case in patients]
    return roc_auc(np.array([label_of[int(c)] for c in patients]), np.array(scores)), patients.size


def test_training_learns_a_planted_signal_and_finds_none_in_patient_permuted_labels(tmp_path):
    began = time.monotonic()
    store = synthetic_blob_store(tmp_path / "store", n_per_class=48, slices_per_case=2, size=32, seed=0)
    train_ids, heldout_ids = train_heldout_split(folds_for_store(store, n_folds=2, seed=0), 0)
    learned, n_scored = _heldout_patient_auc(store, train_ids, heldout_ids, tmp_path / "learned")
    permuted_store = store.with_labels(permuted_patient_labels(store, seed=0))
    permuted, _ = _heldout_patient_auc(permuted_store, train_ids, heldout_ids, tmp_path / "permuted")
    print(f"held-out AUC {learned:.3f}, permuted {permuted:.3f}, {n_scored} patients, "
          f"{time.monotonic() - began:.0f} s")
    assert n_scored == 48
    assert learned >= 0.9, f"held-out patient AUC {learned:.3f} < 0.9: training no longer learns"
    assert abs(permuted - 0.5) <= 0.2, (
        f"held-out AUC {permuted:.3f} with patient-permuted labels: do held-out patients reach training?")
