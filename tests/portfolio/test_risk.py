"""Loss measures (portfolio/risk.py) against hand calculations written out here, SciPy and
numpy's documented quantile methods; invariants with hypothesis."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.stats import mstats

from partners.dispersion import loss_measures
from portfolio.errors import ValidationError
from portfolio.montecarlo.simulation import loss_distribution
from portfolio.risk import (
    LOSS_LEVELS,
    expected_shortfall,
    interpolated_quantile,
    loss_stats,
    mean_and_se,
    value_at_risk,
)

# Ten path losses; sorted: 1, 1, 2, 3, 3, 4, 5, 5, 6, 9 (x_(1) .. x_(10)).
LOSSES = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0])
SORTED = np.sort(LOSSES)


@pytest.mark.parametrize(("alpha", "k"), [(0.05, 1), (0.5, 5), (0.75, 8), (0.9, 9),
                                          (0.95, 10), (0.999, 10)])
def test_var_is_the_ceil_n_alpha_th_smallest_loss(alpha: float, k: int) -> None:
    # Hand calculation: k = ⌈10·α⌉ (0.5 → 1, 5 → 5, 7.5 → 8, 9 → 9, 9.5 → 10, 9.99 → 10).
    var, _ = value_at_risk(SORTED, alpha)
    assert var == SORTED[k - 1]
    # numpy's "inverted_cdf" (Hyndman–Fan type 1) is the same definition.
    assert var == np.quantile(LOSSES, alpha, method="inverted_cdf")


def test_var_standard_error_by_hand() -> None:
    # α = 0.9, n = 10: VaR = x_(9) (0-based index 8); half-width √(10·0.9·0.1) = 0.9487 ranks;
    # order statistics at indices ⌊8 − 0.9487⌋ = 7 and ⌈8 + 0.9487⌉ = 9: x = 5 and 9;
    # SE = (9 − 5) / 2 = 2.
    var, se = value_at_risk(SORTED, 0.9)
    assert (var, se) == (6.0, 2.0)


def test_expected_shortfall_is_the_tail_mean_by_hand() -> None:
    # α = 0.75: m = 10·0.25 = 2.5 tail paths: the two largest (9, 6) and half of the next (5):
    # ES = (9 + 6 + 0.5·5) / 2.5 = 7.
    var, _ = value_at_risk(SORTED, 0.75)
    assert var == 5.0
    es, se = expected_shortfall(SORTED, 0.75, var)
    assert es == pytest.approx(7.0, rel=1e-15)
    # SE: the losses ≥ VaR are 5, 5, 6, 9: mean 6.25, sample variance
    # ((−1.25)² + (−1.25)² + (−0.25)² + 2.75²) / 3 = 10.75 / 3; α(ES − VaR)² = 0.75·2² = 3;
    # SE = √((10.75/3 + 3) / 2.5).
    assert se == pytest.approx(math.sqrt((10.75 / 3 + 3.0) / 2.5), rel=1e-14)
    # α = 0.9: m = 1 tail path: ES = the largest loss.
    assert expected_shortfall(SORTED, 0.9, 6.0)[0] == 9.0


def test_mean_and_its_standard_error_match_scipy() -> None:
    rng = np.random.default_rng(4)
    x = rng.lognormal(0.0, 1.0, (3, 500))
    mean, se = mean_and_se(x, axis=1)
    np.testing.assert_allclose(mean, x.mean(axis=1), rtol=1e-15)
    np.testing.assert_allclose(se, stats.sem(x, axis=1), rtol=1e-13)  # SciPy: std(ddof=1)/√n
    mean0, se0 = mean_and_se(x.T, axis=0)
    np.testing.assert_array_equal(mean0, mean)
    np.testing.assert_allclose(se0, se, rtol=1e-15)
    # one path: no spread to estimate, SE 0
    assert mean_and_se(np.array([5.0]))[1] == 0.0


def test_interpolated_quantile_by_hand_and_scipy() -> None:
    # Type 7: position (n − 1)·α = 8.55 → x_[8] + 0.55·(x_[9] − x_[8]) = 6 + 0.55·3 = 7.65.
    assert interpolated_quantile(LOSSES, 0.95) == pytest.approx(7.65, rel=1e-15)
    # SciPy's mquantiles with alphap = betap = 1 is the same (Hyndman–Fan type 7).
    for a in (0.1, 0.5, 0.95, 0.99):
        want = float(mstats.mquantiles(LOSSES, prob=[a], alphap=1, betap=1)[0])
        assert interpolated_quantile(LOSSES, a) == pytest.approx(want, rel=1e-14)


def _es_by_integral(x: np.ndarray, alpha: float) -> float:
    """ES as (1/(1 − α)) ∫_α^1 F⁻¹(u) du with F⁻¹ the empirical inverse (a step function:
    x_(k) on ((k − 1)/n, k/n]), the integral written as a sum of rectangles."""
    xs = np.sort(x)
    n = xs.size
    k = np.arange(1, n + 1)
    width = np.clip(k / n - np.maximum((k - 1) / n, alpha), 0.0, None)
    return float((xs * width).sum() / (1.0 - alpha))


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(x=st.lists(finite, min_size=1, max_size=300), alpha=st.floats(0.01, 0.99))
def test_measures_agree_with_independent_definitions(x: list[float], alpha: float) -> None:
    arr = np.asarray(x, dtype=np.float64)
    n = arr.size
    xs = np.sort(arr)
    var, var_se = value_at_risk(xs, alpha)
    es, es_se = expected_shortfall(xs, alpha, var)
    scale = max(1.0, float(np.abs(arr).max()))
    # VaR: the empirical inverse CDF (numpy's type 1) away from the rank boundaries, where
    # n·α rounded in floating point could fall on either side of an integer.
    if abs(n * alpha - round(n * alpha)) > 1e-9:
        assert var == np.quantile(arr, alpha, method="inverted_cdf")
    # ES: the integral of the empirical quantile function over [α, 1].
    assert es == pytest.approx(_es_by_integral(arr, alpha), abs=1e-9 * scale)
    # Order: VaR ≤ ES ≤ the largest loss; the tail mean is at least the mean.
    tol = 1e-9 * scale
    assert var <= es + tol
    assert es <= xs[-1] + tol
    assert float(arr.mean()) <= es + tol
    assert var_se >= 0 and es_se >= 0


@settings(max_examples=100, deadline=None)
@given(x=st.lists(finite, min_size=1, max_size=200))
def test_var_and_es_rise_with_the_level(x: list[float]) -> None:
    s = loss_stats(np.asarray(x), (0.5, 0.9, 0.99))
    scale = max(1.0, max(abs(v) for v in x))
    assert list(s.var) == sorted(s.var)
    assert all(b >= a - 1e-9 * scale for a, b in zip(s.es, s.es[1:], strict=False))


def test_loss_stats_on_the_hand_example() -> None:
    s = loss_stats(LOSSES, (0.75, 0.9), initial_balance=100.0)
    assert s.n_paths == 10 and s.initial_balance == 100.0
    assert s.el == 3.9  # (3 + 1 + 4 + 1 + 5 + 9 + 2 + 6 + 5 + 3) / 10
    assert s.var == (5.0, 6.0)
    assert s.es[0] == pytest.approx(7.0, rel=1e-15) and s.es[1] == 9.0
    rows = s.rows()
    assert [(r["measure"], r["level"]) for r in rows[1:]] == [
        ("VaR", 0.75), ("ES", 0.75), ("VaR", 0.9), ("ES", 0.9)]
    assert rows[1]["loss_pct"] == 0.05
    assert LOSS_LEVELS == (0.95, 0.99, 0.999)


def test_bad_input_names_the_field() -> None:
    with pytest.raises(ValidationError, match="paths"):
        loss_stats(np.zeros(0))
    with pytest.raises(ValidationError, match="levels"):
        loss_stats(LOSSES, (0.5, 1.0))


def test_every_caller_uses_these_measures() -> None:
    # The simulation's loss distribution and the dispersion's per-party measures are these
    # functions, number for number.
    x = np.random.default_rng(9).lognormal(10.0, 1.0, 3_001)
    assert loss_distribution(x) == loss_stats(x)
    s = loss_stats(x, (0.99, 0.999))
    m = loss_measures(x)
    assert (m.el, m.var_99, m.es_99, m.var_999, m.es_999) == (
        s.el, s.var[0], s.es[0], s.var[1], s.es[1])
