"""The delinquency model's granular engine with paths side by side (sampler ``dq-lanes-v1``,
``dq_kernels.dq_lanes_block``) and the earlier draw kept for replays (``dq-binomial-v0``).

Independent references: numpy's own SFC64 bit generator (the lanes' uniforms), the binomial
pmf of ``scipy.stats.binom`` (each lane's draw: a chi-square test over the support, fixed
seeds), the kernel's numpy twin (the same numbers, to the bit), and the earlier sampler (the
same law within stated standard errors). The Markov-chain and hazard-model references of
tests/portfolio/test_delinquency_model.py run on this sampler too (it is the default)."""

from __future__ import annotations

import dataclasses
import math

import numba
import numpy as np
import pytest
from scipy import stats
from simulation_pools import assumptions, mixed_pool
from test_delinquency_model import _with_dq

from portfolio.errors import ValidationError
from portfolio.montecarlo import dq_kernels as K
from portfolio.montecarlo import lanes as LN
from portfolio.montecarlo.delinquency import (
    dq_sampler,
    draw_given_factor,
    prepare_delinquency,
    project,
    simulate_delinquency,
    simulate_dq_batch,
)
from portfolio.montecarlo.records import SimulationInputs, loan_sampler_for, replay_loan_sampler
from portfolio.montecarlo.simulation import block_seed, root_seed

L = LN.LANES


@numba.njit
def _uniforms(s, n_draws):
    st = np.ones((9, L))  # st[0]: every lane has loans to draw for
    out = np.empty((n_draws, L))
    for i in range(n_draws):
        LN.lane_uniforms(s, st)
        out[i] = st[2]
    return out


@numba.njit
def _binomials(n, p, u):
    st = np.empty((9, L))
    st[0] = n
    st[1] = p
    st[2] = u
    LN.lane_binomial(st)
    return st[3].copy()


def test_each_lanes_uniforms_are_numpys_sfc64_from_that_state() -> None:
    # A lane's state (a, b, c, counter) set into numpy.random.SFC64 through its documented
    # `state` property: Generator(SFC64).random() gives the same doubles, draw for draw
    seeds = np.random.default_rng(4).integers(0, np.iinfo(np.uint64).max, size=(4, L),
                                              dtype=np.uint64, endpoint=True)
    got = _uniforms(seeds.copy(), 500)
    twin_state = seeds.copy()
    twin = np.stack([LN.lane_uniforms_np(twin_state, np.ones(L)) for _ in range(500)])
    np.testing.assert_array_equal(got, twin)
    # a lane with nothing to draw for keeps its stream where it is
    idle = seeds.copy()
    LN.lane_uniforms_np(idle, np.where(np.arange(L) % 2 == 0, 1.0, 0.0))
    np.testing.assert_array_equal(idle[:, 1::2], seeds[:, 1::2])
    assert not np.array_equal(idle[:, 0::2], seeds[:, 0::2])
    for lane in (0, 17, L - 1):
        bg = np.random.SFC64()
        st = bg.state
        st["state"]["state"] = seeds[:, lane].copy()
        st["has_uint32"] = 0
        bg.state = st
        np.testing.assert_array_equal(got[:, lane], np.random.Generator(bg).random(500))


CASES = [  # (n, p): small and large modes, p above ½ (drawn as n − Bin(n, 1 − p)), the edges
    (15, 0.33), (6, 0.96), (40, 0.5), (1, 0.5), (2000, 0.02), (300, 0.7), (0, 0.3),
    (100, 0.0), (100, 1.0),
    (5000, 0.2), (3000, 0.6),  # n·p'/(1 − p') = 1250 / 2000 > LANE_BIG: from the mode
]


@pytest.mark.parametrize("n, p", CASES)
def test_each_lanes_draw_is_binomial(n: int, p: float) -> None:
    # 64 lanes × 400 calls = 25,600 draws, each lane its own uniform: the counts against
    # scipy's pmf by a chi-square test over the support (cells with expected count < 5
    # pooled); p-value > 1e-4 at a fixed seed, and the mean within 4 SE of n·p. The numba
    # lane kernel and its numpy twin give the same draws.
    rng = np.random.default_rng(int(n * 1000 + p * 100))
    nn = np.full(L, float(n))
    pp = np.full(L, p)
    draws = []
    for _ in range(400):
        u = rng.random(L)
        a = _binomials(nn, pp, u)
        np.testing.assert_array_equal(a, LN.lane_binomial_np(nn, pp, u))
        draws.append(a)
    x = np.concatenate(draws).astype(np.int64)
    assert np.all((x >= 0) & (x <= n))
    if n == 0 or p in (0.0, 1.0):
        assert np.all(x == round(n * p))
        return
    m = x.size
    se = math.sqrt(n * p * (1 - p) / m)
    assert abs(x.mean() - n * p) < 4 * se, (x.mean(), n * p, se)
    k = np.arange(n + 1)
    exp = stats.binom.pmf(k, n, p) * m
    obs = np.bincount(x, minlength=n + 1).astype(float)
    keep = exp >= 5
    o = np.append(obs[keep], obs[~keep].sum())
    e = np.append(exp[keep], exp[~keep].sum())
    if e[-1] < 5:  # pool the rest into the last kept cell
        o[-2] += o[-1]
        e[-2] += e[-1]
        o, e = o[:-1], e[:-1]
    chi2 = float(((o - e) ** 2 / e).sum())
    assert stats.chi2.sf(chi2, len(o) - 1) > 1e-4, (chi2, len(o))


@pytest.mark.parametrize("rule", ["catch_up", "re_age"])
@pytest.mark.parametrize("n_paths", [6, 70])
def test_the_lanes_kernel_equals_its_numpy_twin(rule: str, n_paths: int) -> None:
    # 6 paths: one chunk of LANES, most lanes padding; 70: two chunks, the second padded
    loans = mixed_pool(120, seed=6)
    a = _with_dq(assumptions(rho=0.1), 0.05, 0.45, 0.3, cure_rule=rule)
    shares = np.random.default_rng(3).dirichlet([1.0, 1.0], len(loans))
    prep = prepare_delinquency(loans, a, shares, ("p", "q"), engine="granular")
    assert prep.sampler == K.DQ_SAMPLER
    seed = block_seed(root_seed(13), 2)
    fast = simulate_dq_batch(prep, 2, seed, n_paths, "granular", "numba")
    slow = simulate_dq_batch(prep, 2, seed, n_paths, "granular", "numpy")
    np.testing.assert_array_equal(fast.flows, slow.flows)
    np.testing.assert_array_equal(fast.party_flows, slow.party_flows)
    assert fast.flows[..., 4].sum() > 0 and fast.flows[..., 5].sum() > 0
    # a path's numbers depend on its factor and its own stream, not on the paths beside it:
    # the same first paths' factor with 9 more paths (other loans in the lanes beside them)
    zb = np.random.default_rng(8).standard_normal((n_paths + 9, prep.H)) * 0.3
    few = draw_given_factor(prep, zb[:n_paths], np.random.Generator(np.random.PCG64(5)))
    more = draw_given_factor(prep, zb, np.random.Generator(np.random.PCG64(5)))
    if n_paths % L + 9 <= L:  # the same padded width: the first paths get the same streams
        np.testing.assert_array_equal(more[0][:n_paths], few[0])
        np.testing.assert_array_equal(more[1][:, :n_paths], few[1])


def test_the_earlier_draw_is_kept_for_replays_and_gives_the_same_law() -> None:
    # a delinquency granular run recorded without `loan_sampler` drew path by path from one
    # PCG64 stream: replays pass DQ_LEGACY_SAMPLER; the two draws are other numbers of the
    # same law (pool loss and charge-offs within 4 SE), and an unknown sampler is refused
    pool = mixed_pool(1_500, seed=6)
    a = _with_dq(assumptions(rho=0.1), 0.03, 0.5, 0.25)
    n = 2_000
    new = simulate_delinquency(pool, a, n, 3)
    old = simulate_delinquency(pool, a, n, 3, sampler=K.DQ_LEGACY_SAMPLER)
    assert not np.array_equal(new.default, old.default)
    for x, y in ((new.loss, old.loss), (new.default.sum(1), old.default.sum(1)),
                 (new.prepayment.sum(1), old.prepayment.sum(1))):
        se = math.sqrt(x.var(ddof=1) / n + y.var(ddof=1) / n)
        assert abs(x.mean() - y.mean()) < 4 * se, (x.mean(), y.mean(), se)
    via = project(pool, a, n, 3, model="delinquency", loan_sampler=K.DQ_LEGACY_SAMPLER)
    assert via.default.tobytes() == old.default.tobytes()
    assert project(pool, a, n, 3, model="delinquency").default.tobytes() == \
        new.default.tobytes()
    with pytest.raises(ValidationError, match="sampler"):
        simulate_delinquency(pool, a, 10, 3, sampler="gpu")
    # what a run records and what its replay uses
    assert loan_sampler_for("granular", "delinquency", None) == K.DQ_SAMPLER
    assert loan_sampler_for("loan", "delinquency", None) is None
    old_run = SimulationInputs(pool_id=1, n_paths=10, seed=5, engine="granular",
                               assumptions="a.toml", model="delinquency")
    assert replay_loan_sampler(old_run) == K.DQ_LEGACY_SAMPLER
    run = dataclasses.replace(old_run, loan_sampler=K.DQ_SAMPLER)
    assert SimulationInputs.from_json(run.to_json()) == run
    assert replay_loan_sampler(run) == K.DQ_SAMPLER
    assert dq_sampler(replay_loan_sampler(old_run)) == K.DQ_LEGACY_SAMPLER
    assert dq_sampler(None) == K.DQ_SAMPLER
    with pytest.raises(ValidationError, match="inputs.loan_sampler"):
        dataclasses.replace(old_run, engine="loan", loan_sampler=K.DQ_SAMPLER)
