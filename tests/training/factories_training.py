"""A tiny synthetic cohort (SYNTHETIC: bright vs dark blobs) with a real array store, for training tests."""

import hashlib
from pathlib import Path

import numpy as np
from django.conf import settings

from core.constants import LEIOMYOMA, SARCOMA
from imaging.models import Case, Cohort, CohortCase

TINY_CONFIG = {"epochs": 2, "samples_per_epoch": 16, "batch_size": 8, "input_size": 32, "width": 0.35,
               "eval_max_slices": 16, "learning_rate": 1e-3,
               # eager: 4-6x faster than graphs for tiny models; BatchNorm statistics that follow the data at once,
               # else a from-scratch MobileNetV2 predicts nearly constants for thousands of steps (docs/training.md)
               "run_eagerly": True, "batchnorm_momentum": 0.0}


def make_tiny_cohort(name: str = "tiny", patients_per_class: int = 6, slices: int = 3, size: int = 32,
                     seed: int = 0) -> Cohort:
    """Sarcoma slices carry a bright blob, leiomyoma slices a dark one: learnable in a few steps."""
    from imaging.arraystore import write_array_store

    rng = np.random.default_rng(seed)
    cohort = Cohort.objects.create(name=name, input_size=size)
    images, case_ids, seq, slice_no, labels = [], [], [], [], []
    for i in range(2 * patients_per_class):
        truth = SARCOMA if i % 2 == 0 else LEIOMYOMA
        case = Case.objects.create(pseudonym=f"SYN-{name}-{i:03d}",
                                   source_key_hash=hashlib.sha256(f"{name}-{i}".encode()).hexdigest(),
                                   truth=truth, is_synthetic=True)
        CohortCase.objects.create(cohort=cohort, case=case, truth=truth, n_slices=slices)
        for s in range(slices):
            img = rng.integers(60, 100, (size, size)).astype(np.uint8)
            img[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 220 if truth == SARCOMA else 20
            images.append(img)
            case_ids.append(case.pk)
            seq.append(12)
            slice_no.append(s)
            labels.append(1 if truth == SARCOMA else 0)
    relative = f"cohorts/{name}"
    cohort.content_hash = write_array_store(
        Path(settings.MEDIA_ROOT) / relative, np.stack(images), np.array(case_ids), np.array(seq),
        np.array(slice_no), np.array(labels, np.uint8), {"cohort": name, "synthetic": True}, overwrite=True)
    cohort.store_path, cohort.frozen, cohort.n_slices = relative, True, len(images)
    cohort.save()
    return cohort


# A finished model's stored values, as training.fit and training.cards record them ("epoch" is 1-based).
CARD_HISTORY = [
    {"epoch": 1, "loss": 0.69, "accuracy": 0.52, "heldout_loss": 0.70, "heldout_accuracy": 0.50,
     "heldout_auc": 0.611, "seconds": 12.5},
    {"epoch": 2, "loss": 0.41, "accuracy": 0.83, "heldout_loss": 0.52, "heldout_accuracy": 0.75,
     "heldout_auc": 0.802, "seconds": 11.9},
]
CARD_FINAL = {"n_slices": 480, "loss": 0.5, "accuracy": 0.76, "auc": 0.787}


def make_trained_model_with_card(*, eval_max_slices: int | None = 64, repeat: int = 0, fold: int = 0):
    """A SYNTHETIC finished model with its card, no .keras file (for the model card page)."""
    from training.cards import model_card
    from training.models import TrainedModel, TrainingRun
    from training.network import TrainingConfig

    cohort = Cohort.objects.create(name=f"synthetic-card-{Cohort.objects.count()}", input_size=32,
                                   content_hash="sha256:" + "ab" * 32)
    config = TrainingConfig(epochs=2, samples_per_epoch=16, batch_size=8, input_size=32, width=0.35,
                            eval_max_slices=eval_max_slices).to_dict()
    run = TrainingRun.objects.create(name="synthetic run", cohort=cohort, config=config, repeats=1, seed=7)
    card = model_card(cohort_name=cohort.name, content_hash=cohort.content_hash, repeat=repeat, fold=fold, seed=1234,
                      config=config, history=CARD_HISTORY, heldout=CARD_FINAL, seconds=95.0, n_train_cases=10,
                      n_heldout_cases=2, n_params=412_000, runtime={"backend": "jax", "devices": ["cpu:0"]})
    return TrainedModel.objects.create(run=run, repeat=repeat, fold=fold, seed=1234, status="done", epochs_done=2,
                                       history=CARD_HISTORY, metrics=CARD_FINAL, card=card)


def poison_member_loss(monkeypatch, member: int = 1, epoch: int = 0) -> None:
    """Make member `member` of every fused group report a NaN training loss for `epoch` (0-based), as a member
    that diverged would (training.fit_group reads each member's loss through `_member_logs`)."""
    from training import fit_group

    real = fit_group._member_logs

    def poisoned(history, name, at):
        logs = real(history, name, at)
        if name.endswith(f"_m{member}") and at == epoch:
            logs["loss"] = float("nan")
        return logs

    monkeypatch.setattr(fit_group, "_member_logs", poisoned)
