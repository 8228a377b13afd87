"""The §7.4 threshold rule, the honest (training-fold) threshold and the AUC of integer scores."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from inference.thresholds import (
    best_thresholds,
    choose_threshold,
    cross_validated_threshold,
    roc_auc,
    score_histograms,
)

# Two sarcoma patients scoring 2 and 0, two leiomyoma patients scoring 1 and -2 (a set of 2 sequences).
# Threshold t (sarcoma when score >= t), worked by hand:
#   t = -2: TP 2 TN 0 -> SS-Avg 0.50      t = 1: TP 1 TN 1 -> 0.50
#   t = -1: TP 2 TN 1 -> 0.75 (sens 1)    t = 2: TP 1 TN 2 -> 0.75 (sens 0.5)
#   t =  0: TP 2 TN 1 -> 0.75 (sens 1)    t = 3: TP 0 TN 2 -> 0.50
# Best SS-Avg 0.75 at -1, 0 and 2; higher sensitivity keeps -1 and 0; the lower value gives -1.
SCORES = np.array([2, 0, 1, -2])
TRUTH = np.array([True, True, False, False])


def test_ties_go_to_higher_sensitivity_then_to_the_lower_threshold():
    choice = choose_threshold(SCORES, TRUTH, max_score=2)
    assert int(choice.threshold) == -1
    assert (int(choice.tp), int(choice.tn)) == (2, 1)
    assert float(choice.ss_avg) == 0.75 and float(choice.sensitivity) == 1.0
    assert float(choice.specificity) == 0.5 and float(choice.accuracy) == 0.75


def test_higher_sensitivity_beats_a_threshold_with_equal_ss_avg_but_higher_specificity():
    # Sarcoma 2, 2; leiomyoma 1, -2. t = -1: TP 2 TN 1 (0.75); t = 2: TP 2 TN 2 (1.0) -> 2 wins outright,
    # so the tie rule must not prefer low thresholds over a better SS-Avg.
    choice = choose_threshold(np.array([2, 2, 1, -2]), TRUTH, max_score=2)
    assert int(choice.threshold) == 2 and float(choice.ss_avg) == 1.0


def test_everything_tied_calls_everybody_sarcoma_at_the_bottom_of_the_range():
    # Every patient scores 0: every threshold has SS-Avg 0.5; the highest sensitivity (1) is any t <= 0;
    # the lowest value in the set's range [-3, 4] is -3.
    choice = choose_threshold(np.zeros(4, dtype=int), TRUTH, max_score=3)
    assert int(choice.threshold) == -3 and int(choice.tp) == 2 and int(choice.tn) == 0


def test_thresholds_are_chosen_per_row_when_scores_have_leading_axes():
    scores = np.stack([SCORES, np.array([2, 2, 1, -2]), np.zeros(4, dtype=int)])
    choice = choose_threshold(scores, TRUTH, max_score=2)
    np.testing.assert_array_equal(choice.threshold, [-1, 2, -2])
    np.testing.assert_array_equal(choice.tp, [2, 2, 2])
    np.testing.assert_array_equal(choice.tn, [1, 2, 0])


def test_a_wider_histogram_reports_the_threshold_within_the_sets_own_range():
    pos, neg = score_histograms(np.zeros(4, dtype=int), TRUTH, max_score=15)
    threshold, _, _ = best_thresholds(pos, neg, max_score=15, set_size=3)
    assert int(threshold) == -3


def test_the_rule_agrees_with_brute_force_on_random_scores():
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(1, 6))
        truth = rng.random(12) < 0.4
        truth[:2] = [True, False]
        scores = rng.integers(-n, n + 1, 12)
        best = None
        for t in range(-n, n + 2):      # key: 2·n1·n0·SS-Avg (an integer), then TP
            tp = int(((scores >= t) & truth).sum())
            tn = int(((scores < t) & ~truth).sum())
            key = (tp * (~truth).sum() + tn * truth.sum(), tp)
            if best is None or key > best[0]:
                best = (key, t, tp, tn)
        choice = choose_threshold(scores, truth, max_score=n)
        assert (int(choice.threshold), int(choice.tp), int(choice.tn)) == best[1:]


def test_auc_counts_ties_as_one_half():
    # pairs (2,1) (2,-2) (0,-2) won, (0,1) lost -> 3/4
    assert float(roc_auc(SCORES, TRUTH, max_score=2)) == 0.75
    # sarcoma 1 vs leiomyoma 1 (tie, 1/2) and 0 (won) -> 0.75
    assert float(roc_auc(np.array([1, 1, 0]), np.array([True, False, False]), max_score=1)) == 0.75


def test_auc_matches_scikit_learn_on_random_scores():
    rng = np.random.default_rng(3)
    truth = rng.random(60) < 0.3
    scores = rng.integers(-5, 6, (4, 60))
    expected = [roc_auc_score(truth, row) for row in scores]
    np.testing.assert_allclose(roc_auc(scores, truth, max_score=5), expected, rtol=0, atol=1e-15)


def test_honest_threshold_is_chosen_on_the_other_folds_only():
    # Fold 0: sarcoma a = 1, leiomyoma b = -1. Fold 1: sarcoma c = 0, leiomyoma d = 0. Set of 1 sequence.
    # Fold 0 is called with the threshold chosen on fold 1 (c, d both 0): all t tie at SS-Avg 0.5,
    #   sensitivity 1 for t <= 0, lowest value -1 -> a TP, b FP.
    # Fold 1 is called with the threshold chosen on fold 0 (a = 1, b = -1): t = 0 and 1 are perfect,
    #   lowest 0 -> c (0 >= 0) TP, d (0 >= 0) FP.
    # Pooled: TP 2, TN 0 -> SS-Avg 0.5, whereas the optimistic threshold (t = 0 on all four) gives 0.75.
    scores = np.array([1, -1, 0, 0])
    truth = np.array([True, False, True, False])
    folds = np.array([0, 0, 1, 1])
    honest = cross_validated_threshold(scores, truth, folds, max_score=1)
    np.testing.assert_array_equal(honest.fold_threshold, [-1, 0])
    assert (int(honest.tp), int(honest.tn)) == (2, 0)
    assert float(honest.ss_avg) == 0.5
    assert float(choose_threshold(scores, truth, max_score=1).ss_avg) == 0.75


def test_honest_threshold_needs_both_classes_outside_each_fold():
    # fold 0 holds both leiomyoma patients, so the patients outside it are all sarcoma
    with pytest.raises(ValueError, match="fold 0: the other folds lack"):
        cross_validated_threshold(np.array([1, -1, 0]), np.array([True, False, False]),
                                  np.array([1, 0, 0]), max_score=1)


def test_scores_outside_the_sets_range_are_refused():
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\]"):
        choose_threshold(np.array([2, 0]), np.array([True, False]), max_score=1)
