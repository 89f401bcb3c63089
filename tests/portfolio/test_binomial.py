"""The exact binomial sampler of the granular engine (``engines.binomial_draw``).

References: ``scipy.stats.binom`` (pmf/cdf) for the distribution, numpy's own
``Generator(PCG64).random()`` for the uniform stream, and the plain-Python twin
``engines.binomial_draw_np`` for the draws one by one.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from scipy import special, stats

from portfolio.montecarlo import engines


@numba.njit(cache=True)
def _draws(n, p, gen, size):
    out = np.empty(size, dtype=np.int64)
    for i in range(size):
        out[i] = engines.binomial_draw(n, p, gen)
    return out


@numba.njit(cache=True)
def _doubles(gen, size):
    out = np.empty(size)
    for i in range(size):
        out[i] = gen.random()
    return out


def _state(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def test_double_stream_in_a_kernel_is_numpys():
    # what the kernels rely on: Generator.random() compiled by numba gives numpy's own
    # Generator(PCG64).random() number for number and leaves the generator where numpy's
    # calls would (including a pending float32 half, untouched by the doubles)
    gen = np.random.Generator(np.random.PCG64(11))
    gen.random(3, dtype=np.float32)  # leaves a buffered uint32 half
    ours = np.random.Generator(np.random.PCG64(11))
    ours.random(3, dtype=np.float32)
    np.testing.assert_array_equal(_doubles(ours, 1001), gen.random(1001))
    assert ours.bit_generator.state == gen.bit_generator.state
    np.testing.assert_array_equal(ours.random(5, dtype=np.float32),
                                  gen.random(5, dtype=np.float32))


def test_numba_sampler_equals_its_twin_draw_for_draw():
    rng = np.random.default_rng(3)
    gen = np.random.Generator(np.random.PCG64(5))
    ours = np.random.Generator(np.random.PCG64(5))
    cases = [(0, 0.3), (7, 0.0), (7, 1.0), (1, 0.5), (100, 0.08), (100, 0.92), (11, 0.99),
             (12, 0.9166), (5_000, 0.5), (30_000, 0.004)]
    cases += [(int(rng.integers(0, 20_000)), float(rng.random() ** 3)) for _ in range(3_000)]
    for n, p in cases:
        assert engines.binomial_draw(n, p, ours) == engines.binomial_draw_np(n, p, gen), (n, p)
    assert ours.bit_generator.state == gen.bit_generator.state


def test_degenerate_cases_draw_nothing():
    gen = _state(1)
    before = gen.bit_generator.state
    assert engines.binomial_draw(0, 0.4, gen) == 0
    assert engines.binomial_draw(-3, 0.4, gen) == 0
    assert engines.binomial_draw(9, 0.0, gen) == 0
    assert engines.binomial_draw(9, 1.0, gen) == 9
    assert gen.bit_generator.state == before  # no uniform consumed


def test_same_state_same_draws():
    a, b = _state(9), _state(9)
    np.testing.assert_array_equal(_draws(700, 0.13, a, 5000), _draws(700, 0.13, b, 5000))
    assert not np.array_equal(_draws(700, 0.13, _state(10), 5000), _draws(700, 0.13, a, 5000))


# (n, p) over both methods: inversion (mode ≤ 10), BTRD just above (mode 11, small
# variance, where its recursive evaluation decides most draws), large n (the squeeze and the
# Stirling test in the tails), p > ½ (the reflection), tiny p with huge n.
GRID = [(1, 0.3), (10, 0.5), (100, 0.08), (25, 0.45), (120, 0.0917), (22, 0.5), (100, 0.2),
        (400, 0.03), (2_000, 0.004), (1_000, 0.3), (10_000, 0.5), (28_000, 0.03),
        (200_000, 0.0011), (60, 0.95), (3_000, 0.97), (100, 0.75)]


@pytest.mark.parametrize(("n", "p"), GRID)
def test_draws_follow_the_binomial_distribution(n, p):
    # 400,000 draws against scipy.stats.binom: chi-square over every outcome with an expected
    # count ≥ 20 (the rest pooled into one lower and one upper tail cell), p-value > 1e-4
    # (16 cases: a false alarm in fewer than 0.2% of runs; a sampler off by 1% of a
    # probability of 0.1 in one outcome gives chi-square ≈ 40 more, and BTRD constants off
    # by a few percent distort whole regions); mean and variance within 5 SE.
    size = 400_000
    k = _draws(n, p, _state(n * 7919 + int(p * 1e6)), size)
    assert k.min() >= 0 and k.max() <= n
    counts = np.bincount(k, minlength=n + 1).astype(float)
    expected = stats.binom.pmf(np.arange(n + 1), n, p) * size
    big = np.flatnonzero(expected >= 20)
    lo, hi = big.min(), big.max()
    obs = np.r_[counts[:lo].sum(), counts[lo:hi + 1], counts[hi + 1:].sum()]
    exp = np.r_[expected[:lo].sum(), expected[lo:hi + 1], expected[hi + 1:].sum()]
    keep = exp > 0
    chi2 = float(((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum())
    dof = int(keep.sum()) - 1
    assert stats.chi2.sf(chi2, dof) > 1e-4, (chi2, dof)
    mean, var = n * p, n * p * (1 - p)
    assert abs(k.mean() - mean) < 5 * math.sqrt(var / size) + 1e-12
    # SE of the sample variance ≈ var·√(2/size) (plus the excess kurtosis term, small here)
    assert abs(k.var() - var) < 5 * var * math.sqrt((2 + (1 - 6 * p * (1 - p)) / var) / size)


def test_far_tail_is_reached_at_the_right_rate():
    # P(K ≥ 70) for n = 400, p = 0.12 (mean 48, sd 6.5: 3.4 sd out) = 3.7e-4 by
    # scipy.stats.binom.sf; 2,000,000 draws see it 2 × 742 ± 4·27 times. A normal
    # approximation or a truncated search would miss this tail's weight.
    n, p, size = 400, 0.12, 2_000_000
    k = _draws(n, p, _state(77), size)
    tail = stats.binom.sf(69, n, p)
    hits = int((k >= 70).sum())
    assert abs(hits - tail * size) < 4 * math.sqrt(tail * size)


def test_stirling_tail_correction():
    # fc(k) = ln k! − ((k + ½) ln(k + 1) − (k + 1) + ½ ln 2π), from scipy.special.gammaln;
    # from k = 10 the series stops before −1/(1680x⁷), x = k + 1: within that bound, plus
    # the reference's own cancellation (a few ulps of ln k!)
    k = np.arange(0, 400)
    ref = special.gammaln(k + 1.0) - ((k + 0.5) * np.log(k + 1.0) - (k + 1.0)
                                      + 0.5 * math.log(2 * math.pi))
    got = np.array([engines.stirling_tail(int(x)) for x in k])
    bound = (np.where(k < 10, 0.0, 1.0 / (1680.0 * (k + 1.0) ** 7))
             + 8 * np.finfo(float).eps * (1.0 + special.gammaln(k + 2.0)))
    assert np.all(np.abs(got - ref) <= bound)


@numba.njit(cache=True)
def _draws_pre(ns, ps, gen):
    # the granular kernel's draws: each probability's constants first (engines._draw_consts)
    out = np.empty(ns.shape[0], dtype=np.int64)
    row = np.empty(4)
    for i in range(ns.shape[0]):
        engines._draw_consts(ps[i], row)
        out[i] = engines._binomial_draw_pre(ns[i], row, gen)
    return out


@numba.njit(cache=True)
def _draws_plain(ns, ps, gen):
    out = np.empty(ns.shape[0], dtype=np.int64)
    for i in range(ns.shape[0]):
        out[i] = engines.binomial_draw(ns[i], ps[i], gen)
    return out


def test_draws_with_precomputed_constants_are_binomial_draw():
    # granular_block computes p', p'/(1 - p') and log1p(-p') once per probability
    # (engines._draw_consts) and draws with engines._binomial_draw_pre: the same counts from
    # the same uniforms as binomial_draw, which leaves the generator in the same state
    # (inversion and BTRD, both sides of p = 1/2, the degenerate cases)
    rng = np.random.default_rng(8)
    ns = np.r_[0, -2, 9, 9, 1, 100, 100, 11, 12, 5_000, 30_000,
               rng.integers(0, 20_000, 20_000)].astype(np.int64)
    ps = np.r_[0.3, 0.3, 0.0, 1.0, 0.5, 0.08, 0.92, 0.99, 0.9166, 0.5, 0.004,
               rng.random(10_000) ** 3, 1.0 - rng.random(10_000) ** 3]
    ours, ref = _state(21), _state(21)
    np.testing.assert_array_equal(_draws_pre(ns, ps, ours), _draws_plain(ns, ps, ref))
    assert ours.bit_generator.state == ref.bit_generator.state
