"""Nested evaluation of the sequence-set search (inference.nested) and the acceptance test of issue 14.

``make_predictions`` / ``write_prediction_csv`` are this test's own generator of out-of-fold prediction files
(also used by test_inference_evaluate_predictions.py). Each patient has several of the 15 sequences with a
few slices each; a slice has a latent log-odds (± ``signal`` by class, plus unit noise) and every repeat adds
its own unit noise, so the repeats, and even more the leave-one-out ensembles, mostly agree, as real ones do.
With ``signal=0`` the probabilities are independent of the truth.
"""

import csv
import time
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pytest

from core.constants import LEIOMYOMA, SARCOMA, SEQUENCE_CODES
from inference.combinations import search_combinations
from inference.nested import METHOD_LABELS, method_intervals, metrics_with_intervals, nested_evaluation
from inference.prediction_io import evaluate_table, read_predictions
from inference.predictions import SliceIndex, evaluation_calls
from inference.subsets import mask_vector
from inference.thresholds import choose_threshold


@dataclass(frozen=True)
class Predictions:
    truth: np.ndarray            # (P,) bool
    folds: np.ndarray            # (P,) 1…F
    slice_patient: np.ndarray    # (N,)
    slice_sequence: np.ndarray   # (N,)
    slice_label: np.ndarray      # (N,) number of the slice within its patient's sequence
    repeat_probs: np.ndarray     # (R, N)
    n_codes: int = len(SEQUENCE_CODES)

    def index(self) -> SliceIndex:
        return SliceIndex.build(self.slice_patient, self.slice_sequence, n_patients=self.truth.size,
                                n_sequences=self.n_codes)

    def calls(self) -> np.ndarray:
        return evaluation_calls(self.repeat_probs, self.index())[0]


def make_predictions(*, n_patients=263, sarcoma_share=0.2, n_folds=6, n_repeats=24, signal=0.0, seed=0,
                     sequences=(6, 10), slices=(1, 3), n_codes=len(SEQUENCE_CODES)) -> Predictions:
    rng = np.random.default_rng(seed)
    truth = np.zeros(n_patients, dtype=bool)
    truth[rng.permutation(n_patients)[:round(sarcoma_share * n_patients)]] = True
    folds = np.empty(n_patients, dtype=np.int64)
    for cls in (True, False):                          # stratified, as METHOD §4
        members = rng.permutation(np.nonzero(truth == cls)[0])
        folds[members] = np.arange(members.size) % n_folds + 1
    patient, sequence, label = [], [], []
    for p in range(n_patients):
        for s in rng.permutation(n_codes)[:rng.integers(sequences[0], sequences[1] + 1)]:
            count = int(rng.integers(slices[0], slices[1] + 1))
            patient += [p] * count
            sequence += [int(s)] * count
            label += list(range(1, count + 1))
    patient, sequence = np.array(patient), np.array(sequence)
    latent = rng.normal(size=patient.size) + signal * np.where(truth[patient], 1.0, -1.0)
    logits = latent[None, :] + rng.normal(size=(n_repeats, patient.size))
    return Predictions(truth, folds, patient, sequence, np.array(label), 1.0 / (1.0 + np.exp(-logits)),
                       n_codes)


def write_prediction_csv(path, data: Predictions, codes=SEQUENCE_CODES) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patient", "truth", "fold", "repeat", "sequence", "slice", "p_sarcoma"])
        for r in range(data.repeat_probs.shape[0]):
            for i in range(data.slice_patient.size):
                p = data.slice_patient[i]
                writer.writerow([f"P{p:03d}", SARCOMA if data.truth[p] else LEIOMYOMA, data.folds[p], r + 1,
                                 codes[data.slice_sequence[i]], data.slice_label[i],
                                 f"{data.repeat_probs[r, i]:.6f}"])


CODES4 = ("A", "B", "C", "D")


def small_case(seed=0, signal=0.3, n_patients=60, n_repeats=6):
    data = make_predictions(n_patients=n_patients, sarcoma_share=0.35, n_folds=4, n_repeats=n_repeats,
                            signal=signal, seed=seed, sequences=(2, 4), n_codes=len(CODES4))
    return data.calls(), data.truth, data.folds


# ---------------------------------------------------------------------------------------------------------
# The pieces.

def test_paper_style_and_training_fold_threshold_reproduce_the_search():
    calls, truth, folds = small_case()
    result = nested_evaluation(calls, truth, folds, top=3, codes=CODES4)
    search = search_combinations(calls, truth, codes=CODES4, folds=folds, honest_top=3)
    best = search.order[:3]
    np.testing.assert_array_equal(result.paper_style.tp, search.tp[:, best])
    np.testing.assert_array_equal(result.paper_style.tn, search.tn[:, best])
    np.testing.assert_array_equal(result.training_fold_threshold.tp, search.honest.tp)
    np.testing.assert_array_equal(result.training_fold_threshold.tn, search.honest.tn)
    top = search.top_mean(3)
    assert result.paper_style.ss_avg == pytest.approx(top["ss_avg"])
    assert result.paper_style.accuracy == pytest.approx(top["accuracy"])
    assert result.training_fold_threshold.ss_avg == pytest.approx(top["honest_ss_avg"])
    assert [m.label for m in result.methods] == list(METHOD_LABELS.values())


def _plain_loop_choice(calls, positive, codes, top):
    """Rank every set by the rule of inference.combinations, with the §7.4 threshold per member."""
    rows = []
    n_seq = len(codes)
    n1, n0 = positive.sum(), (~positive).sum()
    for size in range(1, n_seq + 1):
        for chosen in combinations(range(n_seq), size):
            mask = sum(1 << s for s in chosen)
            scores = calls[:, :, mask_vector(mask, n_seq)].astype(np.int64).sum(axis=2)
            choice = choose_threshold(scores, positive, max_score=size)
            twice_ss = int((choice.tp * n0 + choice.tn * n1).sum())
            rows.append(((-twice_ss, -int(choice.tp.sum()), size, mask), mask,
                         np.maximum(choice.threshold, -size)))
    rows.sort(key=lambda row: row[0])
    return rows[:top]


def test_nested_choice_equals_a_plain_loop_over_folds_and_sets():
    calls, truth, folds = small_case(seed=1)
    result = nested_evaluation(calls, truth, folds, top=2, codes=CODES4).nested
    expected = np.zeros_like(result.calls)
    for i, fold in enumerate(np.unique(folds)):
        train, held = folds != fold, folds == fold
        for k, (_, mask, threshold) in enumerate(_plain_loop_choice(calls[:, train], truth[train], CODES4, 2)):
            assert result.masks[i, k] == mask
            np.testing.assert_array_equal(result.thresholds[i, :, k], threshold)
            scores = calls[:, held][:, :, mask_vector(mask, 4)].astype(np.int64).sum(axis=2)
            expected[k][:, held] = scores >= threshold[:, None]
    np.testing.assert_array_equal(result.calls, expected)


def test_nested_choice_for_a_fold_never_reads_that_folds_truth():
    calls, truth, folds = small_case(seed=2)
    before = nested_evaluation(calls, truth, folds, top=3, codes=CODES4).nested
    flipped = truth.copy()
    held = folds == 2
    flipped[held] = ~flipped[held]
    after = nested_evaluation(calls, flipped, folds, top=3, codes=CODES4).nested
    np.testing.assert_array_equal(before.masks[1], after.masks[1])
    np.testing.assert_array_equal(before.thresholds[1], after.thresholds[1])
    np.testing.assert_array_equal(before.calls[:, :, held], after.calls[:, :, held])


def test_vote_share_is_the_share_of_members_calling_sarcoma_with_the_top_set():
    calls, truth, folds = small_case(seed=3)
    nested = nested_evaluation(calls, truth, folds, top=2, codes=CODES4).nested
    np.testing.assert_allclose(nested.vote_share, nested.top1_calls.mean(axis=0))
    assert nested.vote_share.shape == truth.shape
    assert set(np.unique(nested.vote_share * calls.shape[0]).round(9)) <= set(range(calls.shape[0] + 1))


def test_optimism_is_paper_style_minus_nested_in_points():
    calls, truth, folds = small_case(seed=4)
    result = nested_evaluation(calls, truth, folds, top=3, codes=CODES4)
    assert result.optimism_points == pytest.approx(100 * (result.paper_style.ss_avg - result.nested.ss_avg))
    assert nested_evaluation(calls, truth, folds, top=3, codes=CODES4, nested=False).optimism_points is None


def test_metrics_are_means_over_sets_and_members_of_the_pooled_counts():
    calls, truth, folds = small_case(seed=5)
    nested = nested_evaluation(calls, truth, folds, top=3, codes=CODES4).nested
    n1, n0 = truth.sum(), (~truth).sum()
    assert nested.sensitivity == pytest.approx(nested.tp.mean() / n1)
    assert nested.specificity == pytest.approx(nested.tn.mean() / n0)
    assert nested.accuracy == pytest.approx((nested.tp + nested.tn).mean() / truth.size)
    summary = nested.summary()
    assert summary["auc_median"] == pytest.approx(float(np.median(nested.member_auc)))


def test_intervals_hold_the_point_figures_and_are_reproducible():
    calls, truth, folds = small_case(seed=6, signal=1.0)
    method = nested_evaluation(calls, truth, folds, top=3, codes=CODES4).nested
    ci = method_intervals(method, resamples=2000, seed=7)
    assert ci == method_intervals(method, resamples=2000, seed=7)
    for name in ("sensitivity", "specificity", "accuracy", "ss_avg"):
        interval = getattr(ci, name)
        assert interval.estimate == pytest.approx(getattr(method, name))
        assert 0 <= interval.low <= interval.estimate <= interval.high <= 1
    assert ci.auc.estimate == pytest.approx(method.member_auc.mean())
    assert ci.auc_median == pytest.approx(np.median(method.member_auc))
    assert ci.as_dict()["ss_avg"]["resamples"] == 2000


def test_interval_input_is_checked():
    truth = np.array([True, False, True, False])
    with pytest.raises(ValueError, match="bool"):
        metrics_with_intervals(np.ones((2, 4), dtype=int), truth)
    with pytest.raises(ValueError, match="both sarcoma and leiomyoma"):
        metrics_with_intervals(np.ones((2, 4), dtype=bool), np.ones(4, dtype=bool))


def test_a_fold_whose_complement_lacks_a_class_is_refused():
    calls, truth, _ = small_case(seed=7)
    folds = np.where(truth, 1, 2)
    with pytest.raises(ValueError, match="lack sarcoma or leiomyoma"):
        nested_evaluation(calls, truth, folds, top=2, codes=CODES4)
    with pytest.raises(ValueError, match="one integer fold per patient"):
        nested_evaluation(calls, truth, folds[:-1], top=2, codes=CODES4)
    with pytest.raises(ValueError, match="top"):
        nested_evaluation(calls, truth, np.arange(truth.size) % 3, top=16, codes=CODES4)


# ---------------------------------------------------------------------------------------------------------
# Acceptance (issue 14).

def test_no_signal_file_at_paper_size_gives_chance_nested_and_shows_the_optimism(tmp_path):
    """263 patients (a fifth sarcoma), 6 folds, 24 repeats, 15 codes; 5-10 s here (2 cores): not marked slow."""
    data = make_predictions(n_patients=263, sarcoma_share=0.2, n_folds=6, n_repeats=24, signal=0.0, seed=11)
    path = tmp_path / "no-signal.csv"
    write_prediction_csv(path, data)
    started = time.perf_counter()
    result = evaluate_table(read_predictions(path), nested=True, top=10)
    elapsed = time.perf_counter() - started
    nested, paper = result["nested"]["ss_avg"], result["paper_style"]["ss_avg"]
    assert 0.43 <= nested["estimate"] <= 0.57
    assert nested["ci_low"] < 0.5 < nested["ci_high"]
    assert paper["estimate"] - nested["estimate"] > 0.04          # paper-style clearly above chance
    assert result["optimism_points"] > 4
    assert result["training_fold_threshold"]["ss_avg"]["estimate"] > nested["estimate"]
    assert len(result["nested_patients"]) == 263
    print(f"paper {100 * paper['estimate']:.1f} / nested {100 * nested['estimate']:.1f} %, "
          f"evaluated in {elapsed:.1f} s")


def test_no_signal_smaller_cohort_gives_chance_nested():
    data = make_predictions(n_patients=150, n_repeats=8, signal=0.0, seed=12)
    result = nested_evaluation(data.calls(), data.truth, data.folds, top=10)
    assert abs(result.nested.ss_avg - 0.5) <= 0.07
    assert result.optimism_points > 0


def test_planted_signal_is_found_by_the_nested_evaluation():
    data = make_predictions(n_patients=150, n_repeats=8, signal=0.8, seed=13)
    result = nested_evaluation(data.calls(), data.truth, data.folds, top=10)
    assert result.nested.ss_avg > 0.8
    assert result.nested.member_auc.mean() > 0.85
    assert result.paper_style.ss_avg >= result.nested.ss_avg - 0.02
