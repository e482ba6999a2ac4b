"""evaluation.stats: bootstrap intervals, paired tests, Holm, ranks."""

import math

import numpy as np
import pytest

from captum_crigrad.metrics import stats


def test_bootstrap_ci_is_seeded_and_covers_the_mean():
    rng = np.random.default_rng(1)
    v = rng.normal(2.0, 1.0, size=400)
    mean, low, high = stats.bootstrap_ci(v, seed=3)
    assert mean == pytest.approx(v.mean())
    assert low < mean < high
    # about 1.96 standard errors on each side
    se = v.std(ddof=1) / math.sqrt(v.size)
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert stats.bootstrap_ci(v, seed=3) == (mean, low, high)
    assert stats.bootstrap_ci(v, seed=4) != (mean, low, high)


def test_bootstrap_ci_ignores_nan_and_handles_degenerate_input():
    assert stats.bootstrap_ci([1.0, np.nan, 3.0])[0] == 2.0
    assert all(math.isnan(x) for x in stats.bootstrap_ci([np.nan]))
    assert stats.bootstrap_ci([5.0]) == (5.0, 5.0, 5.0)
    with pytest.raises(ValueError, match="n_resamples"):
        stats.bootstrap_ci([1.0], n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        stats.bootstrap_ci([1.0], confidence=1.0)


def test_curve_band_is_pointwise():
    curves = np.stack([np.linspace(1, 0, 5) + d for d in (-0.1, 0.0, 0.1)])
    mean, low, high = stats.curve_band(curves, seed=0)
    np.testing.assert_allclose(mean, np.linspace(1, 0, 5))
    assert (low <= mean).all() and (mean <= high).all()


def test_holm_matches_hand_computation():
    p = [0.01, 0.04, 0.03, np.nan]
    # sorted 0.01, 0.03, 0.04 -> x3, x2, x1 with running maximum
    adjusted = stats.holm(p)
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(adjusted[3])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("test", ["wilcoxon", "bootstrap"])
def test_compare_methods_reports_winners_by_direction_and_ties(test):
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.1, size=200)
    values = {
        "good": base - 0.1,
        "same": base.copy(),
        "base": base.copy(),
    }
    rows = stats.compare_methods(values, "lower", test=test)
    verdict = {(r["a"], r["b"]): r["verdict"] for r in rows}
    assert verdict[("good", "same")] == "good"
    assert verdict[("good", "base")] == "good"
    assert verdict[("same", "base")] == "tie"
    rows = stats.compare_methods(values, "higher", test=test)
    assert {(r["a"], r["b"]): r["verdict"] for r in rows}[("good", "base")] == "base"
    for r in rows:
        assert r["p_holm"] >= r["p"] and r["n_pairs"] == 200


def test_paired_test_uses_only_images_scored_by_both():
    a = np.array([1.0, 2.0, np.nan, 4.0])
    b = np.array([0.0, 1.0, 3.0, np.nan])
    diff, low, high, p, n = stats.paired_test(a, b)
    assert n == 2 and diff == 1.0 and low == high == 1.0
    with pytest.raises(ValueError, match="same length"):
        stats.paired_test([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="test"):
        stats.paired_test([1.0], [1.0], test="t")


def test_mean_ranks_average_ties_and_follow_directions():
    means = {
        "deletion_auc": {"a": 0.1, "b": 0.2, "c": 0.2},  # lower better
        "insertion_auc": {"a": 0.5, "b": 0.9, "c": 0.7},  # higher better
    }
    ranks = stats.mean_ranks(
        means, {"deletion_auc": "lower", "insertion_auc": "higher"}
    )
    assert ranks["a"]["ranks"] == {"deletion_auc": 1.0, "insertion_auc": 3.0}
    assert (
        ranks["b"]["ranks"]["deletion_auc"]
        == ranks["c"]["ranks"]["deletion_auc"]
        == 2.5
    )
    assert ranks["b"]["mean_rank"] == pytest.approx((2.5 + 1) / 2)
