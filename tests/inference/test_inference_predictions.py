"""Slice → sequence → patient predictions, ensembles and the sarcoma likelihood (METHOD §6, §7, §9).

Every expected value below was worked out by hand from the small inputs next to it.
"""

import numpy as np
import pytest

from core.constants import SEQUENCE_CODES
from inference.predictions import (
    SliceIndex,
    deployment_figures,
    evaluation_calls,
    leave_one_out_ensembles,
    likelihood_figures,
    out_of_fold_probs,
    patient_scores,
    sarcoma_likelihood,
    select_out_of_fold,
    sequence_calls,
    sequence_percentages,
    sequence_probabilities,
    subset_coverage,
)
from inference.subsets import all_masks, as_mask, mask_codes, subset_sizes

CODES3 = ("A", "B", "C")


def test_leave_one_out_ensemble_j_is_the_mean_of_the_other_repeats():
    repeats = np.array([[0.2, 0.9],
                        [0.4, 0.6],
                        [0.9, 0.3]])
    ensembles = leave_one_out_ensembles(repeats)
    # Ens_0 = mean(rows 1, 2), Ens_1 = mean(rows 0, 2), Ens_2 = mean(rows 0, 1)
    np.testing.assert_allclose(ensembles, [[0.65, 0.45],
                                           [0.55, 0.60],
                                           [0.30, 0.75]])


def test_leave_one_out_needs_two_repeats_and_valid_probabilities():
    with pytest.raises(ValueError, match="at least 2 repeats"):
        leave_one_out_ensembles(np.array([[0.5, 0.5]]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        leave_one_out_ensembles(np.array([[0.5, 1.2], [0.1, 0.2]]))


def test_single_model_prediction_uses_the_model_of_the_fold_that_holds_the_patient_out():
    # 2 repeats, 2 folds, 3 slices; slices 0 and 2 are in fold 1, slice 1 in fold 0.
    fold_probs = np.array([[[0.10, 0.20, 0.30], [0.40, 0.50, 0.60]],
                           [[0.70, 0.80, 0.90], [0.15, 0.25, 0.35]]])
    slice_fold = np.array([1, 0, 1])
    np.testing.assert_allclose(select_out_of_fold(fold_probs, slice_fold), [[0.40, 0.20, 0.60],
                                                                             [0.15, 0.80, 0.35]])
    held_out = {(0, 0): [0.20], (0, 1): [0.40, 0.60], (1, 0): [0.80], (1, 1): [0.15, 0.35]}
    np.testing.assert_allclose(out_of_fold_probs(held_out, slice_fold, n_repeats=2, n_folds=2),
                               [[0.40, 0.20, 0.60], [0.15, 0.80, 0.35]])
    del held_out[(1, 0)]
    with pytest.raises(ValueError, match="repeat 1, fold 0 is missing"):
        out_of_fold_probs(held_out, slice_fold, n_repeats=2, n_folds=2)


def _index():
    # patient 0: A has 3 slices, B has 2; patient 1: C has 3 slices. Nobody else.
    return SliceIndex.build(patient=[0, 0, 0, 0, 0, 1, 1, 1], sequence=[0, 0, 0, 1, 1, 2, 2, 2],
                            n_patients=2, n_sequences=3)


def test_sequence_probability_is_the_mean_of_its_slices_and_nan_when_missing():
    probs = np.array([[0.95, 0.45, 0.45, 0.70, 0.20, 0.60, 0.60, 0.00]])
    seq = sequence_probabilities(probs, _index())
    assert seq.shape == (1, 2, 3)
    np.testing.assert_allclose(seq[0, 0, :2], [(0.95 + 0.45 + 0.45) / 3, 0.45])
    np.testing.assert_allclose(seq[0, 1, 2], 0.4)
    assert np.isnan(seq[0, 0, 2]) and np.isnan(seq[0, 1, 0]) and np.isnan(seq[0, 1, 1])


def test_mean_and_majority_rules_call_differently_and_a_tie_calls_sarcoma():
    probs = np.array([[0.95, 0.45, 0.45, 0.70, 0.20, 0.60, 0.60, 0.00]])
    mean_calls = sequence_calls(probs, _index(), rule="mean")
    majority_calls = sequence_calls(probs, _index(), rule="majority")
    # patient 0, A: mean 0.617 -> sarcoma; 1 of 3 slices >= 0.5 -> leiomyoma
    # patient 0, B: mean 0.45 -> leiomyoma; 1 of 2 slices -> tie -> sarcoma
    # patient 1, C: mean 0.40 -> leiomyoma; 2 of 3 slices -> sarcoma
    np.testing.assert_array_equal(mean_calls[0], [[1, -1, 0], [0, 0, -1]])
    np.testing.assert_array_equal(majority_calls[0], [[-1, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="sequence rule 'median'"):
        sequence_calls(probs, _index(), rule="median")


def test_evaluation_calls_are_ensemble_calls_and_single_model_calls():
    # 3 repeats, one patient with one slice of A: repeat probabilities 0.9, 0.2, 0.3
    index = SliceIndex.build(patient=[0], sequence=[0], n_patients=1, n_sequences=1)
    ensemble, single = evaluation_calls(np.array([[0.9], [0.2], [0.3]]), index)
    # Ens_0 = 0.25 -> -1, Ens_1 = 0.6 -> +1, Ens_2 = 0.55 -> +1; single models: +1, -1, -1
    np.testing.assert_array_equal(ensemble[:, 0, 0], [-1, 1, 1])
    np.testing.assert_array_equal(single[:, 0, 0], [1, -1, -1])


def test_cutoff_is_configurable():
    probs = np.array([[0.95, 0.45, 0.45, 0.70, 0.20, 0.60, 0.60, 0.00]])
    calls = sequence_calls(probs, _index(), cutoff=0.35)     # means 0.617, 0.45, 0.40 all >= 0.35
    np.testing.assert_array_equal(calls[0], [[1, 1, 0], [0, 0, 1]])
    majority = sequence_calls(probs, _index(), rule="majority", cutoff=0.65)
    # slices >= 0.65: A 1 of 3 -> -1; B 1 of 2 (0.70) -> tie -> +1; C 0 of 3 -> -1
    np.testing.assert_array_equal(majority[0], [[-1, 1, 0], [0, 0, -1]])


def test_patient_score_sums_plus_minus_one_and_a_patient_with_none_of_the_set_scores_zero():
    calls = np.array([[1, -1, 0],     # patient 0 has A and B
                      [0, 0, 1],      # patient 1 has only C
                      [-1, -1, -1]])  # patient 2 has all three
    np.testing.assert_array_equal(patient_scores(calls, ("A", "B"), CODES3), [0, 0, -2])
    np.testing.assert_array_equal(patient_scores(calls, ("A", "B", "C"), CODES3), [0, 1, -3])
    np.testing.assert_array_equal(patient_scores(calls, ("C",), CODES3), [0, 1, -1])
    # coverage counts patients with at least one sequence of the set: patient 1 lacks A and B
    assert subset_coverage(calls, ("A", "B"), CODES3) == 2
    assert subset_coverage(calls, ("C",), CODES3) == 2
    assert subset_coverage(calls, ("A", "B", "C"), CODES3) == 3


def test_sarcoma_likelihood_is_the_share_of_ensembles_calling_sarcoma():
    # 4 ensembles, 2 patients, sequences A, B. Set {A, B}; thresholds per ensemble.
    calls = np.array([[[1, 1], [-1, 0]],
                      [[1, -1], [-1, 0]],
                      [[-1, -1], [1, 0]],
                      [[1, 1], [1, 0]]])
    thresholds = np.array([1, 0, 0, 2])
    # scores: patient 0 -> [2, 0, -2, 2], patient 1 -> [-1, -1, 1, 1]
    # calls (score >= t): patient 0 -> [T, T, F, T] = 75 %; patient 1 -> [F, F, T, F] = 25 %
    figures = likelihood_figures(calls, ("A", "B"), thresholds, ("A", "B"))
    np.testing.assert_array_equal(figures.scores, [[2, -1], [0, -1], [-2, 1], [2, 1]])
    np.testing.assert_allclose(figures.likelihood_percent, [75.0, 25.0])
    # per-sequence: patient 0 A: 3 of 4 sarcoma, B: 2 of 4; patient 1 A: 2 of 4, B missing
    np.testing.assert_allclose(figures.sequence_percent[0], [75.0, 50.0])
    assert figures.sequence_percent[1, 0] == 50.0 and np.isnan(figures.sequence_percent[1, 1])
    assert figures.for_patient(1) == {"sarcoma_likelihood_percent": 25.0, "sequence_percent": {"A": 50.0}}
    np.testing.assert_allclose(sarcoma_likelihood(calls, 3, thresholds, ("A", "B")), [75.0, 25.0])


def test_sequence_percentages_reject_members_that_disagree_on_availability():
    calls = np.array([[[1, 0]], [[1, 1]]])
    with pytest.raises(ValueError, match="disagree on which sequences"):
        sequence_percentages(calls)


def test_deployment_averages_the_fold_models_of_each_repeat_then_ensembles():
    # One new patient with 2 slices of A and 1 of B; 3 repeats x 2 fold models.
    index = SliceIndex.build(patient=[0, 0, 0], sequence=[0, 0, 1], n_patients=1, n_sequences=2)
    fold_probs = np.array([[[0.9, 0.7, 0.2], [0.7, 0.5, 0.4]],    # repeat 0 -> [0.8, 0.6, 0.3]
                           [[0.1, 0.3, 0.9], [0.3, 0.1, 0.7]],    # repeat 1 -> [0.2, 0.2, 0.8]
                           [[0.6, 0.6, 0.5], [0.8, 0.4, 0.3]]])   # repeat 2 -> [0.7, 0.5, 0.4]
    # Ens_0 = mean(r1, r2) = [0.45, 0.35, 0.6]: A mean 0.40 -> -1, B 0.6 -> +1, score {A,B} = 0
    # Ens_1 = mean(r0, r2) = [0.75, 0.55, 0.35]: A 0.65 -> +1, B -> -1, score 0
    # Ens_2 = mean(r0, r1) = [0.50, 0.40, 0.55]: A 0.45 -> -1, B -> +1, score 0
    figures = deployment_figures(fold_probs, index, subset=("A", "B"), thresholds=[0, 1, 0],
                                 codes=("A", "B"))
    np.testing.assert_array_equal(figures.scores[:, 0], [0, 0, 0])
    np.testing.assert_array_equal(figures.calls[:, 0], [True, False, True])
    np.testing.assert_allclose(figures.likelihood_percent, [200 / 3])
    np.testing.assert_allclose(figures.sequence_percent[0], [100 / 3, 200 / 3])


def test_slice_index_from_labels_names_the_bad_slice():
    index = SliceIndex.from_labels(["C-2", "C-2", "C-7"], ["T2axi", "DWI", "T2sag"])
    assert index.patient_labels == ("C-2", "C-7")
    np.testing.assert_array_equal(index.patient, [0, 0, 1])
    expected = [SEQUENCE_CODES.index(code) for code in ("T2axi", "DWI", "T2sag")]
    np.testing.assert_array_equal(index.sequence, expected)
    assert index.available().sum() == 3
    with pytest.raises(ValueError, match="slice 1: unknown sequence code 'T9'"):
        SliceIndex.from_labels(["C-2", "C-2"], ["T2axi", "T9"])


def test_sequence_set_masks_follow_the_canonical_code_order():
    assert all_masks(15).size == 32767
    assert as_mask(("T2axi", "T2sag", "DWI")) == (1 << 12) | (1 << 14) | (1 << 1)
    assert mask_codes(as_mask(("T2sag", "DWI", "T2axi"))) == ("DWI", "T2axi", "T2sag")
    np.testing.assert_array_equal(subset_sizes(np.array([1, 3, 7, 32767])), [1, 2, 3, 15])
    with pytest.raises(ValueError, match="unknown sequence code 'T3axi'"):
        as_mask(("T3axi",))
    with pytest.raises(ValueError, match="empty"):
        as_mask(())
