"""Confidence intervals (core.intervals): Wilson, DeLong AUC, stratified patient bootstrap."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core.intervals import auc_components, bootstrap, delong_auc, stratified_indexes, wilson


def test_wilson_matches_published_values():
    ci = wilson(8, 10)
    assert ci.estimate == 0.8
    assert (round(ci.low, 3), round(ci.high, 3)) == (0.490, 0.943)
    ci = wilson(81, 263)                      # Newcombe's formula written out
    z = 1.959963984540054
    p, n = 81 / 263, 263
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert ci.low == pytest.approx(centre - half) and ci.high == pytest.approx(centre + half)


def test_wilson_stays_inside_zero_one_at_the_ends_and_accepts_fractional_counts():
    assert wilson(0, 10).low == 0.0 and wilson(10, 10).high == 1.0
    assert wilson(0, 10).high == pytest.approx(0.2775, abs=1e-4)
    mid = wilson(7.5, 10)
    assert wilson(7, 10).low < mid.low < wilson(8, 10).low
    assert wilson(8, 10, alpha=0.01).low < wilson(8, 10).low


@pytest.mark.parametrize(("k", "n", "alpha", "message"), [
    (11, 10, 0.05, "k must lie in"), (-1, 10, 0.05, "k must lie in"), (1, 0, 0.05, "n must be a positive"),
    (1, 2.5, 0.05, "n must be a positive"), (1, 10, 1.0, "alpha"), (float("nan"), 10, 0.05, "finite"),
])
def test_wilson_rejects_bad_input_with_a_clear_message(k, n, alpha, message):
    with pytest.raises(ValueError, match=message):
        wilson(k, n, alpha)


def _brute_force_delong(scores, truth):
    pos, neg = scores[truth], scores[~truth]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size


def test_delong_auc_agrees_with_scikit_learn_and_a_brute_force_variance():
    rng = np.random.default_rng(3)
    truth = rng.random(120) < 0.3
    scores = rng.integers(-4, 5, 120) + 1.5 * truth          # integer scores: many ties
    ci = delong_auc(scores, truth)
    auc, variance = _brute_force_delong(scores, truth)
    assert ci.estimate == pytest.approx(roc_auc_score(truth, scores)) == pytest.approx(auc)
    half = 1.959963984540054 * np.sqrt(variance)
    assert (ci.low, ci.high) == (pytest.approx(auc - half), pytest.approx(auc + half))


def test_delong_variance_is_the_one_of_the_mrmc_analysis():
    from analysis import mrmc

    rng = np.random.default_rng(4)
    truth = rng.random(80) < 0.4
    ratings = rng.normal(size=80) + truth
    components = mrmc.fom_components(ratings[None, None, :], truth, "auc")
    variance = mrmc.delong_covariance(components)[0, 0]
    ci = delong_auc(ratings, truth)
    assert (ci.high - ci.low) / 2 == pytest.approx(1.959963984540054 * np.sqrt(variance))
    v10, v01 = auc_components(ratings, truth)
    np.testing.assert_allclose(v10, components.v10[0, 0])
    np.testing.assert_allclose(v01, components.v01[0, 0])


def test_delong_of_several_members_is_the_mean_auc_and_is_clipped():
    rng = np.random.default_rng(5)
    truth = np.arange(40) < 15
    scores = rng.normal(size=(6, 40)) + 2 * truth
    ci = delong_auc(scores, truth)
    assert ci.estimate == pytest.approx(np.mean([roc_auc_score(truth, row) for row in scores]))
    perfect = delong_auc(truth.astype(float), truth)
    assert perfect.estimate == 1.0 and perfect.high == 1.0 and perfect.low == 1.0


@pytest.mark.parametrize(("scores", "truth", "message"), [
    ([0.1, 0.2, 0.3], [1, 0, 1], "at least 2 sarcoma and 2 leiomyoma"),
    ([0.1, float("nan"), 0.3, 0.4], [1, 0, 1, 0], "NaN"),
    ([0.1, 0.2, 0.3, 0.4], [1, 0, 1], "one value per patient"),
    ([0.1, 0.2, 0.3, 0.4], [2, 0, 1, 0], "0/1"),
])
def test_delong_rejects_bad_input_with_a_clear_message(scores, truth, message):
    with pytest.raises(ValueError, match=message):
        delong_auc(np.array(scores), np.array(truth))


def test_stratified_resamples_keep_each_class_size_and_draw_within_it():
    strata = np.array([True] * 5 + [False] * 20)
    idx = stratified_indexes(strata, 300, np.random.default_rng(0))
    assert idx.shape == (300, 25)
    assert strata[idx[:, :5]].all() and not strata[idx[:, 5:]].any()


def test_bootstrap_is_seeded_and_close_to_the_normal_interval_of_a_mean():
    rng = np.random.default_rng(6)
    values = rng.normal(10.0, 2.0, 400)

    def mean(indexes):
        return values[indexes].mean(axis=1)

    first = bootstrap(mean, values.size, resamples=2000, seed=1)
    assert first == bootstrap(mean, values.size, resamples=2000, seed=1)
    assert first != bootstrap(mean, values.size, resamples=2000, seed=2)
    assert first.estimate == pytest.approx(values.mean())
    half = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert first.high - first.low == pytest.approx(2 * half, rel=0.1)
    assert first.low < first.estimate < first.high and first.resamples == 2000


def test_bootstrap_rejects_bad_arguments():
    def stat(indexes):
        return indexes.mean(axis=1)

    with pytest.raises(ValueError, match="strata must hold one value per patient"):
        bootstrap(stat, 10, strata=np.zeros(9))
    with pytest.raises(ValueError, match="resamples"):
        bootstrap(stat, 10, resamples=0)
    with pytest.raises(ValueError, match="one value per resample"):
        bootstrap(lambda idx: idx.mean(), 10)
    with pytest.raises(ValueError, match="alpha"):
        bootstrap(stat, 10, alpha=0)
