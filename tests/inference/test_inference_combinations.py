"""The METHOD §8 combination search: subset count, ranking, and vectorised == straightforward loop."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from core.constants import SEQUENCE_CODES
from inference import combinations
from inference.combinations import evaluate_subsets, per_sequence_table, search_combinations
from inference.thresholds import cross_validated_threshold

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "combination_search.py"


def _benchmark_module():
    spec = importlib.util.spec_from_file_location("combination_search_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _benchmark_module()

TRUTH4 = np.array([True, True, False, False])


def _two_members():
    """2 members, 4 patients (2 sarcoma, 2 leiomyoma), sequences A and B, everybody has both.

    Member 0: A = [+1, +1, -1, -1] (perfect), B = [+1, -1, +1, -1].
    Member 1: A = [+1, -1, -1, -1],           B = [+1, -1, +1, -1].
    Worked by hand (threshold t, sarcoma when score >= t):
      {A}:    m0 scores [1, 1 | -1, -1] -> t = 0 (0 and 1 perfect; lower), SS-Avg 1.
              m1 scores [1, -1 | -1, -1] -> t = 0, TP 1 TN 2, SS-Avg 0.75.      mean 0.875
      {B}:    both [1, -1 | 1, -1]: every t has SS-Avg 0.5 -> sensitivity 1 -> t = -1, TP 2 TN 0. mean 0.5
      {A,B}:  m0 [2, 0 | 0, -2] -> t = -1 (TP 2 TN 1, 0.75; t = 1 also 0.75 but sensitivity 0.5).
              m1 [2, -2 | 0, -2] -> t = 1 (TP 1 TN 2, 0.75).                   mean 0.75
    Ranking: {A} (mask 1), {A,B} (mask 3), {B} (mask 2).
    """
    a0, a1 = [1, 1, -1, -1], [1, -1, -1, -1]
    b = [1, -1, 1, -1]
    return np.array([np.column_stack([a0, b]), np.column_stack([a1, b])])


def test_hand_built_search_thresholds_metrics_and_ranking():
    result = search_combinations(_two_members(), TRUTH4, codes=("A", "B"))
    np.testing.assert_array_equal(result.masks, [1, 2, 3])
    np.testing.assert_array_equal(result.threshold, [[0, -1, -1], [0, -1, 1]])
    np.testing.assert_array_equal(result.tp, [[2, 2, 2], [1, 2, 1]])
    np.testing.assert_array_equal(result.tn, [[2, 0, 1], [2, 0, 2]])
    np.testing.assert_allclose(result.mean_ss_avg, [0.875, 0.5, 0.75])
    np.testing.assert_allclose(result.mean_sensitivity, [0.75, 1.0, 0.75])
    np.testing.assert_allclose(result.mean_specificity, [1.0, 0.0, 0.75])
    np.testing.assert_allclose(result.mean_accuracy, [0.875, 0.5, 0.75])
    # AUC {A}: m0 1.0; m1 sarcoma [1, -1] vs leiomyoma [-1, -1]: 2 wins + 2 ties -> 0.75
    np.testing.assert_allclose(result.auc[:, 0], [1.0, 0.75])
    np.testing.assert_array_equal(result.top(3), [1, 3, 2])
    assert result.rank_of(("B",)) == 3
    np.testing.assert_array_equal(result.thresholds_for(("A", "B")), [-1, 1])
    top2 = result.top_mean(2)
    assert top2["ss_avg"] == pytest.approx((0.875 + 0.75) / 2)
    assert top2["sensitivity"] == pytest.approx(0.75)
    rows = result.rows()
    assert [r["sequences"] for r in rows] == ["A", "A B", "B"]
    assert rows[0]["ss_avg_percent"] == pytest.approx(87.5)
    assert rows[0]["ss_avg_min_percent"] == pytest.approx(75.0)
    assert rows[0]["ss_avg_max_percent"] == pytest.approx(100.0)
    assert rows[0]["coverage"] == 4
    assert all(type(v) in (int, float, str) for v in rows[0].values())      # plain values for CSV / JSON


def test_ranking_ties_go_to_sensitivity_then_fewer_sequences_then_lower_mask():
    # One member; C is a copy of B. Every one of the 7 sets has SS-Avg 0.75 (worked by hand):
    #   {A}: [1, -1 | -1, -1] -> t = 0, sensitivity 0.5; every set with B or C reaches sensitivity 1.
    # So {A} is last; among the sensitivity-1 sets the smaller come first, equal sizes by mask.
    a, b = [1, -1, -1, -1], [1, 1, 1, -1]
    calls = np.column_stack([a, b, b])[None]
    result = search_combinations(calls, TRUTH4, codes=("A", "B", "C"))
    np.testing.assert_allclose(result.mean_ss_avg, 0.75)
    np.testing.assert_array_equal(result.top(7), [2, 4, 3, 5, 6, 7, 1])
    np.testing.assert_array_equal(result.threshold[0], [0, 0, -1, 0, -1, -1, -2])


def test_a_patient_without_any_sequence_of_the_set_scores_zero_and_is_outside_coverage():
    # Patient 3 (leiomyoma) lacks A: for {A} it scores 0 and is called sarcoma by any threshold <= 0.
    calls = np.array([[[1, 1], [1, -1], [-1, -1], [0, -1]]])
    result = evaluate_subsets(calls, TRUTH4, [1, 2, 3], codes=("A", "B"))
    np.testing.assert_array_equal(result.coverage, [3, 4, 4])
    # {A}: sarcoma [1, 1], leiomyoma [-1, 0]: t = 1 perfect (t = 0 would call patient 3 sarcoma)
    assert result.threshold[0, 0] == 1 and result.tp[0, 0] == 2 and result.tn[0, 0] == 2
    assert result.rows()[0]["coverage_percent"] == pytest.approx(75.0)


def test_full_search_has_32767_sets_of_the_15_codes():
    rng = np.random.default_rng(0)
    truth = np.arange(30) < 10
    available = rng.random((30, 15)) < 0.6
    available[:, 12] = True
    calls = np.where(available, rng.choice([-1, 1], (2, 30, 15)), 0).astype(np.int8)
    result = search_combinations(calls, truth)
    assert result.masks.size == 32767 == np.unique(result.masks).size
    assert result.masks.min() == 1 and result.masks.max() == 2**15 - 1
    assert sorted(result.order.tolist()) == list(range(32767))
    assert result.codes == SEQUENCE_CODES
    positions = rng.choice(32767, 40, replace=False)
    reference = bench.reference_evaluate(calls, truth, result.masks[positions])
    assert bench.compare_with_reference(result, reference, positions) == []


def _random_calls(rng, n_members, n_patients, n_seq, correlated):
    available = rng.random((n_patients, n_seq)) < 0.55
    available[np.arange(n_patients), rng.integers(0, n_seq, n_patients)] = True
    base = rng.choice([-1, 1], (n_patients, n_seq))
    if correlated:      # like leave-one-out ensembles: a few calls flip in a few members
        flips = rng.random((n_members, n_patients, n_seq)) < 0.02
        member_calls = np.where(flips, -base, base)
    else:               # like independent single models
        member_calls = rng.choice([-1, 1], (n_members, n_patients, n_seq))
    return np.where(available, member_calls, 0).astype(np.int8)


@pytest.mark.parametrize("correlated", [True, False])
def test_vectorised_search_equals_the_straightforward_loop(correlated):
    rng = np.random.default_rng(11 if correlated else 12)
    calls = _random_calls(rng, n_members=6, n_patients=45, n_seq=6, correlated=correlated)
    truth = rng.random(45) < 0.3
    plan = combinations._count_plan(calls, truth)
    assert (plan.base_rows is not None) == correlated          # both counting paths are exercised
    result = search_combinations(calls, truth, codes=tuple("ABCDEF"), chunk_size=7)
    reference = bench.reference_evaluate(calls, truth, result.masks)
    assert bench.compare_with_reference(result, reference, np.arange(result.masks.size)) == []
    # ranking from the loop's exact fractions: SS-Avg, sensitivity, fewer sequences, lower mask
    n1, n0 = truth.sum(), (~truth).sum()
    keys = [(-(reference["tp"][:, k] * n0 + reference["tn"][:, k] * n1).sum(), -reference["tp"][:, k].sum(),
             bin(int(m)).count("1"), int(m)) for k, m in enumerate(result.masks)]
    expected = [int(result.masks[k]) for k in sorted(range(len(keys)), key=keys.__getitem__)]
    assert result.top(result.masks.size).tolist() == expected


def test_benchmark_cohort_is_synthetic_of_the_papers_size_and_searches_like_the_loop():
    cohort = bench.synthetic_cohort(5)
    assert cohort["truth"].sum() == 63 and (~cohort["truth"]).sum() == 200
    available = cohort["index"].available()
    assert available[:, SEQUENCE_CODES.index("T2axi")].sum() == 258      # 98.0 %
    assert available[:, SEQUENCE_CODES.index("DWI")].sum() == 254         # 96.5 %
    assert available.any(axis=1).all()
    from inference.predictions import leave_one_out_ensembles, sequence_calls
    calls = sequence_calls(leave_one_out_ensembles(cohort["repeat_probs"]), cohort["index"])
    masks = np.array([1 << i for i in range(15)] + [32767, 4096 | 16384 | 2])
    result = evaluate_subsets(calls, cohort["truth"], masks, folds=cohort["folds"], honest_top=3)
    reference = bench.reference_evaluate(calls, cohort["truth"], masks)
    assert bench.compare_with_reference(result, reference, np.arange(masks.size)) == []
    # honest figures of the top sets equal the thresholds module's cross-validated threshold
    for i, mask in enumerate(result.honest.masks):
        chosen = [s for s in range(15) if (int(mask) >> s) & 1]
        scores = calls[:, :, chosen].astype(int).sum(axis=2)
        cv = cross_validated_threshold(scores, cohort["truth"], cohort["folds"], max_score=len(chosen))
        np.testing.assert_array_equal(result.honest.tp[:, i], cv.tp)
        np.testing.assert_array_equal(result.honest.tn[:, i], cv.tn)
    assert "honest_ss_avg" in result.top_mean(3)
    assert "honest_ss_avg_percent" in result.rows(limit=1)[0]


def test_per_sequence_table_gives_mean_and_range_over_members():
    ensembles = search_combinations(_two_members(), TRUTH4, codes=("A", "B"))
    singles = evaluate_subsets(_two_members()[::-1], TRUTH4, [1, 2], codes=("A", "B"))
    rows = per_sequence_table(ensembles, singles)
    assert [r["sequence"] for r in rows] == ["A", "B"]
    assert rows[0]["ensemble_ss_avg_mean_percent"] == pytest.approx(87.5)
    assert rows[0]["ensemble_ss_avg_min_percent"] == pytest.approx(75.0)
    assert rows[0]["ensemble_ss_avg_max_percent"] == pytest.approx(100.0)
    assert rows[1]["single_ss_avg_mean_percent"] == pytest.approx(50.0)


def test_bad_input_is_refused_with_a_reason():
    calls = _two_members()
    with pytest.raises(ValueError, match=r"integers in \{-1, 0, \+1\}"):
        search_combinations(calls * 2, TRUTH4, codes=("A", "B"))
    with pytest.raises(ValueError, match="2 sequences but 15 sequence codes"):
        search_combinations(calls, TRUTH4)
    with pytest.raises(ValueError, match="both sarcoma and leiomyoma"):
        search_combinations(calls, np.ones(4, dtype=bool), codes=("A", "B"))
    uneven = calls.copy()
    uneven[1, 0, 0] = 0
    with pytest.raises(ValueError, match="disagree on which sequences"):
        search_combinations(uneven, TRUTH4, codes=("A", "B"))


def test_auc_median_over_members_is_stored_beside_the_mean_in_top_mean_and_rows():
    """SYNTHETIC random calls, 5 independent members: the median differs from the mean and is each set's
    median of the per-member AUCs (core.metrics.roc_auc, written independently of the search)."""
    from core.metrics import roc_auc
    from inference.predictions import patient_scores

    rng = np.random.default_rng(21)
    calls = _random_calls(rng, n_members=5, n_patients=40, n_seq=4, correlated=False)
    truth = rng.random(40) < 0.4
    codes = tuple("ABCD")
    result = search_combinations(calls, truth, codes=codes)
    per_set = {}
    for mask in result.top(3).tolist():
        scores = patient_scores(calls, mask, codes)                      # (members, patients)
        per_set[mask] = np.array([roc_auc(truth, s) for s in scores])
    rows = result.rows(limit=3)
    for row in rows:
        auc = per_set[row["mask"]]
        assert row["auc_percent"] == pytest.approx(100 * auc.mean())
        assert row["auc_median_percent"] == pytest.approx(100 * np.median(auc))
    assert any(abs(np.median(a) - a.mean()) > 1e-6 for a in per_set.values())   # the two summaries differ
    summary = result.top_mean(3)
    assert summary["auc_median"] == pytest.approx(np.mean([np.median(a) for a in per_set.values()]))
    assert summary["auc"] == pytest.approx(np.mean([a.mean() for a in per_set.values()]))


def test_set_calls_are_the_patient_calls_behind_the_searchs_counts():
    rng = np.random.default_rng(22)
    calls = _random_calls(rng, n_members=4, n_patients=30, n_seq=4, correlated=True)
    truth = rng.random(30) < 0.4
    result = search_combinations(calls, truth, codes=tuple("ABCD"))
    masks = result.top(5)
    patient_calls, scores = combinations.set_calls(calls, result, masks)
    assert patient_calls.shape == scores.shape == (5, 4, 30) and patient_calls.dtype == bool
    for i, mask in enumerate(masks.tolist()):
        k = result.position(mask)
        np.testing.assert_array_equal(patient_calls[i][:, truth].sum(axis=1), result.tp[:, k])
        np.testing.assert_array_equal((~patient_calls[i][:, ~truth]).sum(axis=1), result.tn[:, k])


def test_honest_set_calls_are_the_patient_calls_behind_the_training_fold_counts():
    rng = np.random.default_rng(23)
    calls = _random_calls(rng, n_members=4, n_patients=36, n_seq=4, correlated=True)
    truth = np.arange(36) % 4 == 0
    folds = np.array([7, 3, 5] * 12)                 # fold labels need not be 0…F-1 nor sorted
    result = search_combinations(calls, truth, codes=tuple("ABCD"), folds=folds, honest_top=4)
    masks, patient_calls = combinations.honest_set_calls(calls, result, folds)
    np.testing.assert_array_equal(masks, result.top(4))
    assert patient_calls.shape == (4, 4, 36)
    for i in range(4):
        np.testing.assert_array_equal(patient_calls[i][:, truth].sum(axis=1), result.honest.tp[:, i])
        np.testing.assert_array_equal((~patient_calls[i][:, ~truth]).sum(axis=1), result.honest.tn[:, i])
    none = search_combinations(calls, truth, codes=tuple("ABCD"))
    assert combinations.honest_set_calls(calls, none, folds)[1].shape == (0, 4, 36)
