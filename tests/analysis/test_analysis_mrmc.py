"""MRMC building blocks on small synthetic studies: ties, >2 modalities, identities, errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from analysis import mrmc
from core.intervals import auc_components


def synthetic_study(t=3, r=4, n1=12, n0=15, levels=5, seed=0):
    """Synthetic (not real) crossed study: integer ratings 1..levels, so ties are frequent."""
    rng = np.random.default_rng(seed)
    truth = np.r_[np.ones(n1, bool), np.zeros(n0, bool)]
    case_effect = rng.normal(size=n1 + n0) + 1.2 * truth
    reader_effect = rng.normal(scale=0.3, size=r)
    modality_effect = np.linspace(0, 0.6, t)
    latent = (case_effect[None, None, :] + reader_effect[None, :, None] + modality_effect[:, None, None]
              * truth[None, None, :] + rng.normal(scale=0.7, size=(t, r, n1 + n0)))
    ratings = np.clip(np.round(latent + 2.5), 1, levels)
    order = rng.permutation(n1 + n0)            # diseased and non-diseased interleaved
    return ratings[..., order], truth[order]


def brute_force_psi(x, y):
    """psi(X, Y) = 1 if X > Y, 1/2 if tied, 0 otherwise; shape (n1, n0)."""
    return (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])


def test_structural_components_match_pairwise_psi_with_ties():
    ratings, truth = synthetic_study()
    v10, v01 = auc_components(ratings, truth)       # core.intervals: the one DeLong component code
    for i in range(ratings.shape[0]):
        for j in range(ratings.shape[1]):
            psi = brute_force_psi(ratings[i, j, truth], ratings[i, j, ~truth])
            np.testing.assert_allclose(v10[i, j], psi.mean(axis=1), atol=1e-12)
            np.testing.assert_allclose(v01[i, j], psi.mean(axis=0), atol=1e-12)


def test_empirical_auc_counts_ties_half_like_sklearn():
    ratings, truth = synthetic_study(seed=3)
    auc = mrmc.empirical_auc(ratings, truth)
    for i in range(ratings.shape[0]):
        for j in range(ratings.shape[1]):
            assert auc[i, j] == pytest.approx(roc_auc_score(truth, ratings[i, j]), abs=1e-12)


def test_auc_of_all_tied_ratings_is_one_half_and_perfect_separation_is_one():
    truth = np.array([1, 1, 0, 0, 0], bool)
    assert mrmc.empirical_auc(np.full(5, 3.0), truth) == pytest.approx(0.5)
    assert mrmc.empirical_auc(np.array([5, 4, 1, 2, 3.0]), truth) == pytest.approx(1.0)
    assert mrmc.empirical_auc(np.array([4, 2, 1, 2, 3.0]), truth) == pytest.approx((1 + 0.5 + 1 + 1 + 1 + 0)
                                                                                    / 6)


def test_jackknife_matches_explicit_case_deletion():
    ratings, truth = synthetic_study(t=2, r=3, seed=5)
    comps = mrmc.fom_components(ratings, truth, "auc")
    for k in range(truth.size):
        keep = np.arange(truth.size) != k
        deleted = mrmc.empirical_auc(ratings[..., keep], truth[keep])
        np.testing.assert_allclose(comps.jackknife[..., k], deleted, atol=1e-12)


def test_delong_covariance_matches_textbook_formula():
    ratings, truth = synthetic_study(t=2, r=3, seed=7)
    comps = mrmc.fom_components(ratings, truth, "auc")
    t, r, _ = ratings.shape
    v10 = np.array([[brute_force_psi(ratings[i, j, truth], ratings[i, j, ~truth]).mean(axis=1)
                     for j in range(r)] for i in range(t)]).reshape(t * r, -1)
    v01 = np.array([[brute_force_psi(ratings[i, j, truth], ratings[i, j, ~truth]).mean(axis=0)
                     for j in range(r)] for i in range(t)]).reshape(t * r, -1)
    n1, n0 = truth.sum(), (~truth).sum()
    s10 = (v10 - v10.mean(1, keepdims=True)) @ (v10 - v10.mean(1, keepdims=True)).T / (n1 - 1)
    s01 = (v01 - v01.mean(1, keepdims=True)) @ (v01 - v01.mean(1, keepdims=True)).T / (n0 - 1)
    np.testing.assert_allclose(mrmc.delong_covariance(comps), s10 / n1 + s01 / n0, atol=1e-15)


def test_sensitivity_and_specificity_from_threshold_count_calls_by_hand():
    truth = np.array([1, 1, 1, 0, 0, 0, 0], bool)
    ratings = np.array([[[5, 3, 2, 1, 3, 2, 1], [4, 4, 4, 4, 1, 1, 1]],
                        [[1, 1, 5, 1, 1, 1, 1], [5, 5, 5, 5, 5, 1, 1]]], float)
    sens = mrmc.fom_components(mrmc.dichotomise(ratings, 3), truth, "sensitivity").fom
    spec = mrmc.fom_components(mrmc.dichotomise(ratings, 3), truth, "specificity").fom
    np.testing.assert_allclose(sens, [[2 / 3, 3 / 3], [1 / 3, 3 / 3]])
    np.testing.assert_allclose(spec, [[3 / 4, 3 / 4], [4 / 4, 2 / 4]])


def test_binary_delong_and_jackknife_coincide_for_sensitivity():
    ratings, truth = synthetic_study(seed=11)
    comps = mrmc.fom_components(mrmc.dichotomise(ratings, 3), truth, "sensitivity")
    np.testing.assert_allclose(mrmc.delong_covariance(comps), mrmc.jackknife_covariance(comps), atol=1e-15)
    assert comps.jackknife.shape[-1] == truth.sum()


def test_three_modalities_give_three_contrasts_and_two_numerator_df():
    ratings, truth = synthetic_study(t=3, seed=2)
    result = mrmc.analyse(ratings, truth, covariance="jackknife", modality_ids=["A", "B", "C"])
    o = result.obuchowski_rockette
    for test in (o.rrrc, o.frrc, o.rrfc, result.dbm.rrrc, result.dbm.frrc, result.dbm.rrfc):
        assert test.df1 == 2
        pairs = [(d.modality_a, d.modality_b) for d in test.differences]
        assert pairs == [("A", "B"), ("A", "C"), ("B", "C")]
        assert 0 <= test.p <= 1
        for d in test.differences:
            assert d.ci_lo < d.estimate < d.ci_hi
    means = o.fom.mean(axis=1)
    assert o.rrrc.differences[1].estimate == pytest.approx(means[0] - means[2])
    # Hillis: with the jackknife, DBM and OR random-reader tests are the same test, for any t.
    assert result.dbm.rrrc.statistic == pytest.approx(o.rrrc.statistic, rel=1e-10)
    assert result.dbm.rrrc.ddf == pytest.approx(o.rrrc.ddf, rel=1e-10)
    # the chi-square FRRC with t - 1 = 2 df
    assert o.frrc.p == pytest.approx(float(stats.chi2.sf(o.frrc.statistic, 2)))


def test_pairwise_contrast_of_a_three_modality_study_uses_all_modalities_in_the_denominator():
    """The OR denominator pools MS(T:R) over every modality, so the 2-modality subset differs in SE."""
    ratings, truth = synthetic_study(t=3, seed=4)
    full = mrmc.analyse(ratings, truth, covariance="delong").obuchowski_rockette
    pair = mrmc.analyse(ratings[:2], truth, covariance="delong").obuchowski_rockette
    assert full.rrrc.differences[0].estimate == pytest.approx(pair.rrrc.differences[0].estimate)
    assert full.rrrc.differences[0].se != pytest.approx(pair.rrrc.differences[0].se)


def test_anova_sums_of_squares_add_up_to_total():
    ratings, truth = synthetic_study(t=3, r=5, seed=8)
    fom = mrmc.empirical_auc(ratings, truth)
    anova = mrmc.or_anova(fom)
    assert anova.SST + anova.SSR + anova.SSTR == pytest.approx(np.sum((fom - fom.mean()) ** 2))


def test_case_order_does_not_change_the_analysis():
    ratings, truth = synthetic_study(seed=9)
    perm = np.random.default_rng(1).permutation(truth.size)
    a = mrmc.analyse(ratings, truth, covariance="delong")
    b = mrmc.analyse(ratings[..., perm], truth[perm], covariance="delong")
    assert a.obuchowski_rockette.rrrc.statistic == pytest.approx(b.obuchowski_rockette.rrrc.statistic)
    assert a.dbm.frrc.statistic == pytest.approx(b.dbm.frrc.statistic)


def test_swapping_modalities_flips_the_sign_of_the_contrast_only():
    ratings, truth = synthetic_study(t=2, seed=10)
    a = mrmc.analyse(ratings, truth).obuchowski_rockette.rrrc
    b = mrmc.analyse(ratings[::-1], truth).obuchowski_rockette.rrrc
    assert a.differences[0].estimate == pytest.approx(-b.differences[0].estimate)
    assert a.differences[0].se == pytest.approx(b.differences[0].se)
    assert a.p == pytest.approx(b.p)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"metric": "sensitivity"}, "binary ratings"),
    ({"metric": "ppv"}, "unknown figure of merit"),
    ({"covariance": "bootstrap"}, "unknown covariance"),
])
def test_bad_options_are_rejected_with_a_reason(kwargs, message):
    ratings, truth = synthetic_study(t=2, seed=1)
    with pytest.raises(mrmc.MRMCError, match=message):
        mrmc.analyse(ratings, truth, **kwargs)


def test_design_errors_name_the_problem():
    ratings, truth = synthetic_study(t=2, r=3, seed=1)
    with pytest.raises(mrmc.MRMCError, match="at least 2 modalities"):
        mrmc.analyse(ratings[:1], truth)
    with pytest.raises(mrmc.MRMCError, match="at least 2 readers"):
        mrmc.analyse(ratings[:, :1], truth)
    one_diseased = truth.copy()
    one_diseased[np.flatnonzero(truth)[1:]] = False
    with pytest.raises(mrmc.MRMCError, match="at least 2 diseased"):
        mrmc.analyse(ratings, one_diseased)
    holes = ratings.copy()
    holes[0, 0, 0] = np.nan
    with pytest.raises(mrmc.MRMCError, match="every reader must rate every case"):
        mrmc.analyse(holes, truth)


def test_identical_modalities_and_readers_give_an_undefined_test_not_a_spurious_f():
    ratings, truth = synthetic_study(t=1, r=1, seed=12)
    identical = np.broadcast_to(ratings, (2, 3, truth.size)).copy()
    result = mrmc.analyse(identical, truth)
    o = result.obuchowski_rockette
    assert o.anova.MST == 0 and o.anova.MSTR == 0
    assert np.isnan(o.rrrc.statistic) and np.isnan(o.rrrc.p)
    assert result.dbm.anova.ms["T"] == 0 and np.isnan(result.dbm.rrrc.statistic)
    assert o.rrrc.differences[0].estimate == 0


def test_correlations_are_undefined_not_an_error_when_the_variance_is_zero():
    import math

    from analysis.mrmc import CovarianceTerms

    terms = CovarianceTerms(var=0.0, cov1=0.0, cov2=0.0, cov3=0.0)
    assert math.isnan(terms.corr1) and math.isnan(terms.corr2) and math.isnan(terms.corr3)
