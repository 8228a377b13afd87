"""Issue 18, item 3: sanity checks of the heat-maps (Adebayo et al., "Sanity checks for saliency maps", 2018).

SYNTHETIC phantom crops, 96 px: each holds a bright disc (the tumour, its bounding box the tumour box) on a noisy
background, at a random place and size. The only class signal is planted *in the tumour*: a sarcoma's disc is
heterogeneous (pixel SD 50), a leiomyoma's homogeneous (SD 6), both of the same mean brightness. So evidence for
sarcoma exists only inside a sarcoma's tumour box, and a map that means something must point there.

One model (MobileNetV2 width 0.35, 200 steps, no augmentation) is trained on 48 patients and mapped on 16
held-out ones (their 32 sarcoma slices); a second is trained the same way on patient-permuted labels. Checked:

- **pointing game** (Zhang et al. 2016, 15 px tolerance at 224 px, scaled): the trained model's map peaks at the
  tumour on >= 80 % of the held-out sarcoma slices (measured while writing this test: 97 %);
- **model randomization**: the same model with its weights shuffled gives maps whose rank correlation with the
  trained maps is low (mean below 0.5; measured -0.25), and which do not point at the tumour (below 80 %;
  measured 25 %);
- **data randomization**: the label-permuted model's maps do not point at the tumour (below 80 %; measured 41 %).

About 2 minutes on 2 CPUs (two models).
"""

import time

import numpy as np
import pytest

pytest.importorskip("keras")

from imaging.arraystore import open_array_store, write_array_store  # noqa: E402
from inference import saliency  # noqa: E402
from training.fit import roc_auc, train_one_model  # noqa: E402
from training.network import TrainingConfig  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

SIZE = 96
SANITY_CONFIG = TrainingConfig(epochs=1, samples_per_epoch=3200, batch_size=16, input_size=SIZE, width=0.35,
                               learning_rate=1e-3, rotation_degrees=0.0, zoom_fraction=0.0, brightness_fraction=0.0,
                               flip="none", batchnorm_momentum=0.9)
POINTING_MIN = 0.8
RANDOM_RANK_CORRELATION_MAX = 0.5


def textured_tumour_store(path, *, n_cases=64, slices_per_case=4, seed=0, permute=False):
    """A SYNTHETIC store of tumour crops, the tumour boxes (N, 4) and the true labels per slice (N,)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    slices, case_ids, boxes = [], [], []
    for case in range(n_cases):
        sarcoma = case % 2
        background = rng.uniform(70, 110)
        for _ in range(slices_per_case):
            image = rng.normal(background, 12, (SIZE, SIZE))
            cy, cx = rng.uniform(0.25, 0.75, 2) * SIZE
            radius = rng.uniform(0.2, 0.3) * SIZE
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2
            image[disc] = rng.normal(160, 50 if sarcoma else 6, int(disc.sum()))
            slices.append(np.clip(image, 0, 255).astype(np.uint8))
            case_ids.append(case)
            boxes.append((cx - radius, cy - radius, cx + radius, cy + radius))
    case_ids = np.array(case_ids)
    truth = case_ids % 2
    trained_on = (rng.permutation(n_cases) % 2)[case_ids] if permute else truth
    n = len(slices)
    write_array_store(path, np.stack(slices), case_ids, rng.integers(0, 15, n), np.arange(n) % slices_per_case,
                      trained_on, {"cohort": "synthetic-textured-tumours", "synthetic": True}, overwrite=True)
    return open_array_store(path), np.array(boxes), truth


def _trained(tmp_path, name, *, permute):
    import keras

    store, boxes, truth = textured_tumour_store(tmp_path / f"{name}-store", permute=permute)
    cases = np.unique(store.case_ids)
    held = (cases // 2) % 4 == 0                      # 16 patients, 8 of each class
    result = train_one_model(store=store, train_case_ids=cases[~held].tolist(), heldout_case_ids=cases[held].tolist(),
                             config=SANITY_CONFIG, checkpoint_dir=tmp_path / name, seed=1)
    rows = result.heldout_rows
    auc = roc_auc(truth[rows], result.heldout_p_sarcoma)
    sarcoma_rows = rows[truth[rows] == 1]
    model = keras.saving.load_model(result.model_path, compile=False)
    return model, store.slices[sarcoma_rows], boxes[sarcoma_rows], auc


def _pointing(grids, boxes) -> float:
    return float(np.mean([saliency.pointing_hit(g, b, SIZE) for g, b in zip(grids, boxes, strict=True)]))


def test_maps_point_at_the_planted_signal_and_fail_the_randomization_checks(tmp_path):
    began = time.monotonic()
    model, crops, boxes, auc = _trained(tmp_path, "trained", permute=False)
    assert crops.shape[0] == 32
    assert auc >= 0.9, f"the model did not learn the planted signal (held-out slice AUC {auc:.3f})"
    maps = saliency.grad_cam(model, crops)
    trained_pointing = _pointing(maps, boxes)

    randomized = saliency.randomized_copy(model, seed=0)
    random_maps = saliency.grad_cam(randomized, crops)
    correlations = [saliency.rank_correlation(saliency.upsample(a[None], SIZE)[0], saliency.upsample(b[None], SIZE)[0])
                    for a, b in zip(maps, random_maps, strict=True)]
    random_pointing = _pointing(random_maps, boxes)
    # the randomization checks mean something only if the shuffled model's maps are not blank (a blank map
    # points nowhere and correlates with nothing)
    assert np.mean([np.ptp(m) > 0 for m in random_maps]) >= 0.5, "the shuffled model's maps are mostly blank"

    permuted, permuted_crops, permuted_boxes, _ = _trained(tmp_path, "permuted", permute=True)
    np.testing.assert_array_equal(permuted_crops, crops)    # same images, only the labels were permuted
    permuted_pointing = _pointing(saliency.grad_cam(permuted, crops), permuted_boxes)
    print(f"pointing: trained {trained_pointing:.2f}, weights shuffled {random_pointing:.2f}, labels permuted "
          f"{permuted_pointing:.2f}; rank correlation trained vs shuffled mean {np.mean(correlations):.2f}; "
          f"{time.monotonic() - began:.0f} s")

    assert trained_pointing >= POINTING_MIN, f"the trained model's maps point at the tumour on {trained_pointing:.0%}"
    assert np.mean(correlations) < RANDOM_RANK_CORRELATION_MAX, (
        f"maps barely change when the weights are shuffled (mean rank correlation {np.mean(correlations):.2f})")
    assert random_pointing < POINTING_MIN, f"shuffled weights still point at the tumour ({random_pointing:.0%})"
    assert permuted_pointing < POINTING_MIN, f"a label-permuted model points at the tumour ({permuted_pointing:.0%})"
