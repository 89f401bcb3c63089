"""The loan engine's draw (``engines.loan_subset_block``, sampler ``subset-binomial-v1``).

Independent sources: the numpy twin (same draws, plain Python), and closed forms written out
below for a pool of identical-cell bullet loans of two sizes under a flat hazard and SMM and
no factor (rho = 0), where every loan is independent:

* a bullet's balance at the start of month t is its full balance B until maturity, so a
  default or a prepayment in any month removes B; with survival S_0 = 1,
  S_{t+1} = S_t·(1 − h)·(1 − s_t) (s = SMM, 0 in the last month, nothing left to prepay),
  P(default in t) = S_t·h and P(prepay in t) = S_t·(1 − h)·s_t;
* so the pool's lifetime default is Σ_l B_l·X_l with independent X_l ~ Bernoulli(q_d),
  q_d = Σ_t S_t·h: mean q_d·ΣB, variance q_d(1 − q_d)·ΣB² (the Bernoulli variance).

The granular engine splits a cell's flows pro rata to the counts, so its variance is
q_d(1 − q_d)·(ΣB)²/N — 45 % below the exact one for this pool; the loan engine has to give the
exact one. Monte Carlo comparisons within 4–4.5 standard errors, fixed seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from simulation_pools import assumptions, flat_assumptions, homogeneous_pool, mixed_pool

from portfolio.montecarlo import engines
from portfolio.montecarlo.simulation import (
    _block_streams,
    block_seed,
    factor_paths,
    prepare_pool,
    simulate,
)


def _concat(*pools):
    from dataclasses import fields

    return type(pools[0])(**{f.name: np.concatenate([getattr(p, f.name) for p in pools])
                             for f in fields(pools[0])})


def _kernel_inputs(prep, n_b, seed):
    gf, gm, gi = _block_streams(seed)
    z, scale = factor_paths(prep, gf, gm, n_b)
    thr_s, zb = engines.scaled_inputs(prep.cell_thr, z, prep.rho)
    kf = 1.0 / (math.sqrt(1.0 - prep.rho) * math.sqrt(2.0))
    cum = np.zeros((prep.n_cells, n_b, 2 * prep.T))
    total = np.zeros((prep.n_cells, n_b))
    engines.event_cdfs(zb, scale, prep.cell_r, thr_s, prep.cell_smm, cum, total, engines.NO_T,
                       kf)
    return cum, total


@pytest.mark.parametrize(("tile", "pd_scale", "smm", "zero_shares"),
                         [(1024, 3.0, 0.05, False), (7, 3.0, 0.05, False), (5, 40.0, 0.3, False),
                          (64, 3.0, 0.05, True)])
def test_subset_kernel_equals_its_numpy_twin_bit_for_bit(tile, pd_scale, smm, zero_shares):
    # several cells, runs of `tile` loans (7 and 5: many runs per cell, short last runs), two
    # parties; with pd_scale 40 and SMM 30 % most loans have an event, so the loans without
    # one are marked instead (N > n/2) and the events take one more uniform each. With
    # zero_shares a third of the loans go wholly to one party, a third to the other (the
    # kernel skips a party whose share is 0; the twin adds its zeros)
    pool = _concat(mixed_pool(700, seed=8), homogeneous_pool(300, term=12, mob=3))
    shares = np.random.default_rng(1).dirichlet([1, 2], size=len(pool))
    if zero_shares:
        shares[0::3] = [1.0, 0.0]
        shares[1::3] = [0.0, 1.0]
    prep = prepare_pool(pool, assumptions(pd_scale=pd_scale, smm=smm), shares, loan_level=True)
    n_b = 24
    cum, total = _kernel_inputs(prep, n_b, block_seed(np.random.SeedSequence(3), 0))
    if pd_scale > 10:
        assert (total > 0.5).mean() > 0.2  # the complement branch is exercised
    res = []
    for kernel in (engines.loan_subset_block, engines.loan_subset_block_np):
        gen = np.random.Generator(np.random.PCG64(99))
        out = np.zeros((n_b, prep.T, engines.N_ACC))
        pout = np.zeros((prep.n_parties, n_b, prep.T, engines.N_ACC))
        kernel(gen, tile, prep.cell_first, prep.cell_r, cum, total, prep.sched, prep.loan_base,
               prep.shares, out, pout)
        res.append((out, pout, gen.random(4)))  # the generator left in the same place
    (o1, p1, g1), (o2, p2, g2) = res
    assert np.array_equal(o1, o2)
    assert np.array_equal(p1, p2)
    assert np.array_equal(g1, g2)
    assert (o1[..., engines.DEFAULT] > 0).any() and (o1[..., engines.PREPAY] > 0).any()
    # the parties' corrections add up to the pool's (shares sum to 1 per loan)
    np.testing.assert_allclose(p1.sum(axis=0), o1, rtol=1e-9, atol=1e-6)


def _bullet_pool():
    # one cell: 500 bullets of 1,000 and 500 of 20,000, three months left (term 3, mob 0)
    return _concat(homogeneous_pool(500, balance=1_000.0, term=3, mob=0),
                   homogeneous_pool(500, balance=20_000.0, term=3, mob=0))


def _closed_form(h: float, smm: float, months: int = 3):
    surv, p_def, p_pre = 1.0, [], []
    for t in range(months):
        s_t = smm if t < months - 1 else 0.0
        p_def.append(surv * h)
        p_pre.append(surv * (1 - h) * s_t)
        surv *= (1 - h) * (1 - s_t)
    return np.array(p_def), np.array(p_pre)


@pytest.mark.parametrize(("h", "smm", "tile"), [(0.05, 0.0, None), (0.05, 0.1, 64),
                                                (0.3, 0.2, None)])
def test_loan_engine_mean_and_variance_equal_the_closed_form(h, smm, tile, monkeypatch):
    # h = 0.3, SMM 0.2: two thirds of the loans have an event (the complement branch);
    # tile 64: the cell's 1,000 loans in 16 runs
    if tile is not None:
        monkeypatch.setattr(engines, "LOAN_TILE", tile)
    pool = _bullet_pool()
    bal = np.asarray(pool.balance)
    n_paths = 4_000
    paths = simulate(pool, flat_assumptions(h, smm=smm, rho=0.0), n_paths, seed=12,
                     engine="loan")
    p_def, p_pre = _closed_form(h, smm)
    # monthly means: default and prepayment amounts, within 4.5 SE (6 comparisons)
    for flow, probs in ((paths.default, p_def), (paths.prepayment, p_pre)):
        x = flow[:, :3]
        want = probs * bal.sum()
        se = x.std(axis=0, ddof=1) / math.sqrt(n_paths)
        assert np.all(np.abs(x.mean(axis=0) - want) <= 4.5 * se + 1e-9), (x.mean(0), want, se)
    # lifetime default: mean and the Bernoulli variance with the loans' own sizes
    q_d = p_def.sum()
    life = paths.default.sum(axis=1)
    var_exact = q_d * (1 - q_d) * (bal**2).sum()
    var_granular = q_d * (1 - q_d) * bal.sum() ** 2 / len(bal)
    assert abs(life.mean() - q_d * bal.sum()) < 4 * math.sqrt(var_exact / n_paths)
    # SE of a sample variance: sqrt((m4 − σ⁴)/n), m4 the fourth central moment
    v = life.var(ddof=1)
    m4 = ((life - life.mean()) ** 4).mean()
    se_v = math.sqrt((m4 - v**2) / n_paths)
    assert abs(v - var_exact) < 4 * se_v, (v, var_exact, se_v)
    assert abs(v - var_granular) > 4 * se_v  # the test can tell the two apart


def test_loan_engine_agrees_with_the_granular_engine_on_a_mixed_pool():
    # correlated factor (rho 0.08): the expected loss and the mean monthly default of the two
    # engines agree within 4 SE (both exact in expectation), same seed, independent draws
    pool = mixed_pool(3_000, seed=5)
    a = assumptions(pd_scale=3.0, smm=0.05)
    n = 3_000
    loan = simulate(pool, a, n, seed=8, engine="loan")
    gran = simulate(pool, a, n, seed=9, engine="granular")
    for x, y in ((loan.loss, gran.loss), (loan.default.sum(1), gran.default.sum(1)),
                 (loan.prepayment.sum(1), gran.prepayment.sum(1))):
        se = math.sqrt(x.var(ddof=1) / n + y.var(ddof=1) / n)
        assert abs(x.mean() - y.mean()) < 4 * se, (x.mean(), y.mean(), se)


def test_loan_engine_is_the_same_for_any_threads_and_batch_size():
    pool = mixed_pool(1_500, seed=2)
    a = assumptions(pd_scale=2.0)
    one = simulate(pool, a, 700, seed=4, engine="loan", threads=1, batch_size=256)
    two = simulate(pool, a, 700, seed=4, engine="loan", threads=2, batch_size=1000)
    for name in ("default", "prepayment", "interest", "balance_eop"):
        assert np.array_equal(getattr(one, name), getattr(two, name)), name
    assert one.default.sum() > 0


def test_the_earlier_draw_is_kept_for_replays_and_gives_the_same_law():
    # a loan-engine run recorded without `loan_sampler` drew one float32 uniform per loan and
    # path: replays pass LEGACY_LOAN_SAMPLER (tests/riskpool/test_migration.py replays such a
    # run bit for bit); both draws agree within 4 SE, and an unknown sampler is refused
    from portfolio.errors import ValidationError
    from portfolio.montecarlo.records import SimulationInputs, replay_loan_sampler
    from portfolio.montecarlo.simulation import LEGACY_LOAN_SAMPLER

    pool = mixed_pool(2_000, seed=6)
    a = assumptions(pd_scale=3.0, smm=0.05)
    n = 2_000
    new = simulate(pool, a, n, seed=3, engine="loan")
    old = simulate(pool, a, n, seed=3, engine="loan", loan_sampler=LEGACY_LOAN_SAMPLER)
    assert not np.array_equal(new.default, old.default)
    for x, y in ((new.loss, old.loss), (new.prepayment.sum(1), old.prepayment.sum(1))):
        se = math.sqrt(x.var(ddof=1) / n + y.var(ddof=1) / n)
        assert abs(x.mean() - y.mean()) < 4 * se, (x.mean(), y.mean(), se)
    with pytest.raises(ValidationError, match="loan_sampler"):
        simulate(pool, a, 10, seed=3, engine="loan", loan_sampler="gpu")
    rec = SimulationInputs(pool_id=1, n_paths=10, seed=5, engine="loan", assumptions="a.toml")
    assert replay_loan_sampler(rec) == LEGACY_LOAN_SAMPLER
    rec = SimulationInputs(pool_id=1, n_paths=10, seed=5, engine="loan", assumptions="a.toml",
                           loan_sampler=engines.LOAN_SAMPLER)
    assert replay_loan_sampler(rec) == engines.LOAN_SAMPLER
