"""The hazard model's granular engine with paths side by side (sampler ``granular-lanes-v1``,
``lanes.granular_lanes_block``) and the earlier draw kept for replays
(``granular-binomial-v0``, ``engines.granular_block``).

Independent references: the kernel's numpy twin (the same numbers, to the bit); a closed form
— with ρ = 0 a cell's loans are independent, so the defaults of month 1 are Binomial(n, h)
(mean n·h, variance n·h·(1 − h)) and the loans still performing after month t number
n·((1 − h)(1 − smm))ᵗ in expectation; and the earlier sampler (the same law within 4
standard errors). The lanes' uniforms and binomial draws themselves are checked against
numpy's SFC64 and scipy's pmf in tests/portfolio/test_dq_lanes.py.
"""

from __future__ import annotations

import dataclasses
import math

import numba
import numpy as np
import pytest
from scipy import stats
from simulation_pools import assumptions, flat_assumptions, homogeneous_pool, mixed_pool

from portfolio.errors import ValidationError
from portfolio.montecarlo import engines, lanes
from portfolio.montecarlo.delinquency import project
from portfolio.montecarlo.records import SimulationInputs, loan_sampler_for, replay_loan_sampler
from portfolio.montecarlo.simulation import (
    HAZARD_SAMPLERS,
    block_seed,
    prepare_pool,
    root_seed,
    simulate,
    simulate_batch,
)
from portfolio.store.scenarios import check_set_sampler

L = lanes.LANES


def _concat(*pools):
    return type(pools[0])(**{f.name: np.concatenate([getattr(p, f.name) for p in pools])
                             for f in dataclasses.fields(pools[0])})


# small cells (drawn per loan after the lanes, from the block's stream), a large cell and one
# whose prepayment draws have n·p'/(1 − p') above LANE_BTRD (drawn by BTRD from their streams)
HYBRID = _concat(mixed_pool(900, seed=8), homogeneous_pool(700, term=12, mob=3),
                 homogeneous_pool(4_000, term=6, mob=0, score=640))


@numba.njit
def _btrd_lanes(n, p, s, calls):
    st = np.empty((9, lanes.LANES))
    out = np.empty((calls, lanes.LANES))
    for i in range(calls):
        st[0] = n
        st[1] = p
        lanes.lane_uniforms(s, st)
        lanes.lane_binomial_btrd(st, s)
        out[i] = st[3]
    return out


@pytest.mark.parametrize("n, p", [(4_000, 0.05), (20_000, 0.3), (30_000, 0.9), (900, 0.15)])
def test_a_lanes_btrd_draw_is_binomial(n: int, p: float) -> None:
    # n·p'/(1 − p') of 211, 8,571, 3,333 and 159, all above LANE_BTRD: each lane draws by
    # BTRD from its own SFC64 stream. 64 lanes × 300 calls against scipy's pmf (chi-square
    # over the support, cells with expected count < 5 pooled; p-value > 1e-4 at a fixed
    # seed) and the mean within 4 SE; the numpy twin (BTRD's twin on the lane's stream in
    # Python integers) gives the same draws and leaves every stream where the kernel does
    assert n * min(p, 1 - p) / (1 - min(p, 1 - p)) > lanes.LANE_BTRD
    seeds = lanes.lane_seeds(np.random.Generator(np.random.PCG64(n)), lanes.LANES)
    nn, pp = np.full(L, float(n)), np.full(L, p)
    s = seeds.copy()
    x = _btrd_lanes(nn, pp, s, 300)
    twin = seeds.copy()
    for i in range(40):  # the twin is slow: the first 40 calls
        u = lanes.lane_uniforms_np(twin, nn)
        np.testing.assert_array_equal(x[i], lanes.lane_binomial_np(nn, pp, u, twin))
    again = seeds.copy()
    _btrd_lanes(nn, pp, again, 40)
    np.testing.assert_array_equal(again, twin)  # the streams advanced alike
    x = x.ravel().astype(np.int64)
    m = x.size
    se = math.sqrt(n * p * (1 - p) / m)
    assert abs(x.mean() - n * p) < 4 * se, (x.mean(), n * p, se)
    k = np.arange(n + 1)
    exp = stats.binom.pmf(k, n, p) * m
    obs = np.bincount(x, minlength=n + 1).astype(float)
    keep = exp >= 5
    o = np.append(obs[keep], obs[~keep].sum())
    e = np.append(exp[keep], exp[~keep].sum())
    if e[-1] < 5:
        o[-2] += o[-1]
        e[-2] += e[-1]
        o, e = o[:-1], e[:-1]
    chi2 = float(((o - e) ** 2 / e).sum())
    assert stats.chi2.sf(chi2, len(o) - 1) > 1e-4, (chi2, len(o))


@pytest.mark.parametrize("copula", ["gaussian", "t"])
@pytest.mark.parametrize("n_paths", [6, 70])
@pytest.mark.parametrize("small_cells", [0.0, 6.0])
def test_the_lanes_kernel_equals_its_numpy_twin(copula: str, n_paths: int,
                                                small_cells: float) -> None:
    # 6 paths: one chunk of LANES, most lanes padding; 70: two chunks, the second padded
    shares = np.random.default_rng(1).dirichlet([1.0, 1.0], size=len(HYBRID))
    a = dataclasses.replace(assumptions(pd_scale=3.0, smm=0.05), copula=copula, t_dof=5.0)
    prep = prepare_pool(HYBRID, a, shares, ("p", "q"), loan_level=True,
                        small_cells=small_cells)
    assert prep.granular_sampler == lanes.GRANULAR_SAMPLER
    assert (prep.n_binomial_cells < prep.n_cells) == (small_cells > 0)
    seed = block_seed(root_seed(21), 3)
    fast = simulate_batch(prep, 3, seed, n_paths, "granular", backend="numba")
    slow = simulate_batch(prep, 3, seed, n_paths, "granular", backend="numpy")
    if small_cells == 0.0:  # every cell in the lanes: the same bytes
        np.testing.assert_array_equal(fast.flows, slow.flows)
        np.testing.assert_array_equal(fast.party_flows, slow.party_flows)
    else:  # the small cells' loan-level kernel adds its rows in another order than its twin
        np.testing.assert_allclose(fast.flows, slow.flows, rtol=1e-12, atol=1e-6)
        np.testing.assert_allclose(fast.party_flows, slow.party_flows, rtol=1e-12, atol=1e-6)
    assert fast.flows[..., engines.DEFAULT].sum() > 0
    assert fast.flows[..., engines.PREPAY].sum() > 0
    # some prepayment draws are BTRD lanes: the cell of 4,000 loans at an SMM of 5%
    big = prep.cell_n[:prep.n_binomial_cells] * 0.05 / 0.95 > lanes.LANE_BTRD
    assert big.any()
    # the parties' flows add up to the pool's (every loan wholly shared out)
    np.testing.assert_allclose(fast.party_flows.sum(axis=0), fast.flows, rtol=1e-12,
                               atol=1e-6)


def test_the_pd_table_and_the_per_cell_pds_give_the_same_bytes(monkeypatch) -> None:
    # the kernel keeps a chunk's PDs per distinct (month, threshold) pair when the table is
    # small enough, else computes each cell's: the same erfc of the same numbers
    prep = prepare_pool(HYBRID, assumptions(pd_scale=2.0), small_cells=0.0)
    seed = block_seed(root_seed(4), 0)
    table = simulate_batch(prep, 0, seed, 80, "granular")
    monkeypatch.setattr(lanes, "PD_TABLE_MAX_BYTES", 0)
    per_cell = simulate_batch(prep, 0, seed, 80, "granular")
    assert table.flows.tobytes() == per_cell.flows.tobytes()


def _kernel_run(prep, seeds, zb, scale, n_paths):
    nb = prep.n_binomial_cells
    thr_s, _ = engines.scaled_inputs(prep.cell_thr, np.zeros((1, prep.T)), prep.rho)
    out = np.zeros((n_paths, prep.T, engines.N_ACC))
    pout = np.zeros((prep.n_parties, n_paths, prep.T, engines.N_ACC))
    lanes.granular_lanes_block(seeds, n_paths, zb, scale, prep.cell_n[:nb], prep.cell_r[:nb],
                               thr_s[:nb], prep.cell_smm[:nb], prep.cell_flows[:nb],
                               prep.cell_pflows[:nb], out, pout, engines.NO_T, 0.0,
                               lanes.PD_TABLE_MAX_BYTES)
    return out, pout


def test_a_paths_numbers_do_not_depend_on_the_paths_beside_it() -> None:
    # a path's numbers come from its factor path, its own stream and the pool: the same
    # paths run in another order, beside other paths or alone give the same bytes
    shares = np.random.default_rng(2).dirichlet([1.0, 1.0, 1.0], size=len(HYBRID))
    prep = prepare_pool(HYBRID, assumptions(pd_scale=3.0), shares, ("a", "b", "c"),
                        small_cells=0.0)
    n = 2 * L
    seeds = lanes.lane_seeds(np.random.Generator(np.random.PCG64(9)), n)
    zb = np.random.default_rng(5).standard_normal((n, prep.T)) * 0.3
    scale = np.ones(n)
    out, pout = _kernel_run(prep, seeds, zb, scale, n)
    pick = np.array([100, 3, 64, 0, 127])  # another order, other neighbours, padding after
    m = len(pick)
    sub_seeds = np.zeros((4, L), dtype=np.uint64)
    sub_seeds[:, :m] = seeds[:, pick]
    sub_zb = lanes.padded(zb[pick], L, 0.0)
    sub, psub = _kernel_run(prep, sub_seeds, sub_zb, lanes.padded(scale[pick], L, 1.0), m)
    np.testing.assert_array_equal(sub, out[pick])
    np.testing.assert_array_equal(psub, pout[:, pick])


def test_defaults_and_survivors_match_the_closed_form_without_correlation() -> None:
    # ρ = 0: the conditional PD is the hazard h on every path, so a cell of n identical loans
    # has Binomial(n, h) defaults in month 1 (mean n·h, variance n·h·(1 − h)) and, default
    # then prepayment each month, n·((1 − h)(1 − smm))ᵗ loans performing after month t
    # (closed form of the independent monthly survival; the last month has no prepayment)
    n, h, smm, paths = 2_000, 0.02, 0.05, 4_000
    pool = homogeneous_pool(n, term=6, mob=0)
    prep = prepare_pool(pool, flat_assumptions(h, smm=smm, rho=0.0), small_cells=0.0)
    assert prep.n_binomial_cells == prep.n_cells == 1
    res = simulate(pool, flat_assumptions(h, smm=smm, rho=0.0), paths, 11)
    bop = prep.cell_flows[0, :, 0] / n  # one loan's scheduled start-of-month balance
    d1 = res.default[:, 0] / bop[0]  # month-1 default counts
    assert np.allclose(d1, np.round(d1), atol=1e-6)
    se = math.sqrt(n * h * (1 - h) / paths)
    assert abs(d1.mean() - n * h) < 4 * se, (d1.mean(), n * h, se)
    # the sample variance against the binomial's: (paths − 1)·s²/σ² is chi-square
    chi = (paths - 1) * d1.var(ddof=1) / (n * h * (1 - h))
    assert stats.chi2.sf(chi, paths - 1) > 1e-4 and stats.chi2.cdf(chi, paths - 1) > 1e-4
    q = (1 - h) * (1 - smm)
    alive = res.balance_bop[:, :prep.T] / bop[None, :]
    for t in range(1, prep.T):
        want = n * q ** t
        x = alive[:, t]
        se_t = x.std(ddof=1) / math.sqrt(paths)
        assert abs(x.mean() - want) < 4 * se_t + 1e-9, (t, x.mean(), want, se_t)


def test_the_earlier_draw_is_kept_for_replays_and_gives_the_same_law() -> None:
    # a hazard granular run recorded without `loan_sampler` drew path by path from one PCG64
    # stream (engines.granular_block): replays pass GRANULAR_LEGACY_SAMPLER; the two draws are
    # other numbers of the same law (pool loss, defaults, prepayments within 4 SE)
    pool = mixed_pool(1_500, seed=6)
    a = assumptions(pd_scale=2.0, rho=0.1)
    n = 2_000
    new = simulate(pool, a, n, 3)
    old = simulate(pool, a, n, 3, loan_sampler=lanes.GRANULAR_LEGACY_SAMPLER)
    assert not np.array_equal(new.default, old.default)
    for x, y in ((new.loss, old.loss), (new.default.sum(1), old.default.sum(1)),
                 (new.prepayment.sum(1), old.prepayment.sum(1))):
        se = math.sqrt(x.var(ddof=1) / n + y.var(ddof=1) / n)
        assert abs(x.mean() - y.mean()) < 4 * se, (x.mean(), y.mean(), se)
    via = project(pool, a, n, 3, loan_sampler=lanes.GRANULAR_LEGACY_SAMPLER)
    assert via.default.tobytes() == old.default.tobytes()
    assert project(pool, a, n, 3).default.tobytes() == new.default.tobytes()
    # the loan engine's sampler leaves the granular engine on the current draw, and back
    assert simulate(pool, a, 64, 3, loan_sampler=engines.LOAN_SAMPLER).default.tobytes() == \
        simulate(pool, a, 64, 3).default.tobytes()
    legacy = prepare_pool(pool, a, loan_sampler=lanes.GRANULAR_LEGACY_SAMPLER)
    assert legacy.loan_sampler == engines.LOAN_SAMPLER
    assert set(lanes.GRANULAR_SAMPLERS) <= set(HAZARD_SAMPLERS)
    with pytest.raises(ValidationError, match="loan_sampler"):
        prepare_pool(pool, a, loan_sampler="dq-lanes-v1")


def test_what_a_run_records_and_what_its_replay_uses() -> None:
    assert loan_sampler_for("granular", "hazard", None) == lanes.GRANULAR_SAMPLER
    assert loan_sampler_for("granular", "hazard", "adverse") is None
    old_run = SimulationInputs(pool_id=1, n_paths=10, seed=5, engine="granular",
                               assumptions="a.toml")
    assert replay_loan_sampler(old_run) == lanes.GRANULAR_LEGACY_SAMPLER
    run = dataclasses.replace(old_run, loan_sampler=lanes.GRANULAR_SAMPLER)
    assert SimulationInputs.from_json(run.to_json()) == run
    assert replay_loan_sampler(run) == lanes.GRANULAR_SAMPLER
    with pytest.raises(ValidationError, match="inputs.loan_sampler"):
        dataclasses.replace(old_run, loan_sampler=engines.LOAN_SAMPLER)
    with pytest.raises(ValidationError, match="inputs.loan_sampler"):
        dataclasses.replace(old_run, engine="loan", loan_sampler=lanes.GRANULAR_SAMPLER)
    # a scenario set of the hazard granular engine: either draw, or null (stored before)
    for s in (*lanes.GRANULAR_SAMPLERS, None):
        check_set_sampler("granular", "hazard", s)
    with pytest.raises(ValidationError, match="loan_sampler"):
        check_set_sampler("granular", "hazard", "dq-lanes-v1")
