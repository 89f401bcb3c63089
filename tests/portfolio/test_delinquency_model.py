"""The delinquency-state projection (``portfolio.montecarlo.delinquency``, kernels in
``portfolio.montecarlo.dq_kernels``).

Independent references: the expected flows of a homogeneous pool from the Markov chain of
one loan's states (bucket, re-age shift, schedule position) — ``numpy.linalg.matrix_power``
of the transition matrix built here by hand from the rules in docs/model.md, ρ = 0 — and the
hazard model (``--model hazard``) for the defaults derived from the hazard curves. Monte Carlo
comparisons are within a stated number of standard errors with fixed seeds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from simulation_pools import (
    assumptions,
    flat_assumptions,
    homogeneous_pool,
    mixed_pool,
)

from portfolio.loans.schedules import schedule_matrix
from portfolio.montecarlo.assumptions import Assumptions, DelinquencyAssumptions
from portfolio.montecarlo.delinquency import (
    accumulator_shapes,
    dq_horizon,
    dq_shapes,
    new_accumulators,
    prepare_delinquency,
    simulate_delinquency,
    simulate_dq_batch,
)
from portfolio.montecarlo.simulation import block_seed, root_seed, simulate


def _with_dq(a: Assumptions, rc: float, roll: float, cure: float, **kw: object) -> Assumptions:
    shape = a.default_hazard.shape
    dq = DelinquencyAssumptions(roll_current=np.full(shape, rc),
                                roll=np.full((*shape, 6), roll), cure=np.full((*shape, 6), cure),
                                **kw)  # type: ignore[arg-type]
    return dataclasses.replace(a, delinquency=dq)


@pytest.mark.parametrize("rule", ["catch_up", "re_age"])
@pytest.mark.parametrize("co", [None, 90, 180])
def test_accumulator_shapes_are_known_before_the_preparation(rule: str, co: int | None) -> None:
    # delinquency.dq_shapes (what the replenishment profile allocates while its new loans
    # are prepared) = the shapes of new_accumulators of the prepared pool, for either cure
    # rule and charge-off point (None: the assumptions' 120 days). By hand: T = 12 months,
    # K = charge-off / 30 buckets, H = T + K (catch-up) or T + 2K (re-age: a cured loan's
    # schedule restarts), months = H + the recovery lag; states = K + 1
    loans = mixed_pool(80, seed=5)
    a = _with_dq(assumptions(rho=0.1), 0.04, 0.45, 0.3, cure_rule=rule, charge_off_dpd=120)
    prep = prepare_delinquency(loans, a, charge_off_dpd=co)
    T = int(np.asarray(loans.remaining_term).max())
    K = (co or 120) // 30
    months = T + K * (2 if rule == "re_age" else 1) + len(a.recovery_lag)
    assert prep.base.T == T and dq_horizon(T, co or 120, rule) == prep.H
    shapes = dq_shapes(T, a, co, (3,), 17)
    assert shapes == accumulator_shapes(prep, (3,), 17)
    assert shapes == ((6, 3, 17, months), (3, 17, months, K + 1))
    assert tuple(x.shape for x in new_accumulators(prep, (3,), 17)) == shapes
    assert dq_shapes(T, a, 45, (3,), 17) is None  # not a charge-off point: the preparation says


# ------------------------------------------------------------------------------------------
# numba kernels against their numpy twins (same uniforms)


@pytest.mark.parametrize("rule", ["catch_up", "re_age"])
@pytest.mark.parametrize("co", [90, 120])
def test_loan_kernel_equals_its_numpy_twin(rule: str, co: int) -> None:
    loans = mixed_pool(150, seed=3)
    a = _with_dq(assumptions(rho=0.1), 0.04, 0.45, 0.3, cure_rule=rule, charge_off_dpd=co)
    shares = np.random.default_rng(0).dirichlet([1.0, 2.0], len(loans))
    prep = prepare_delinquency(loans, a, shares, ("p", "q"), engine="loan")
    seed = block_seed(root_seed(11), 0)
    fast = simulate_dq_batch(prep, 0, seed, 40, "loan", "numba")
    slow = simulate_dq_batch(prep, 0, seed, 40, "loan", "numpy")
    # the same decisions on the same uniforms; sums in another order
    np.testing.assert_allclose(fast.flows, slow.flows, rtol=1e-12, atol=1e-6)
    np.testing.assert_allclose(fast.party_flows, slow.party_flows, rtol=1e-12, atol=1e-6)
    assert fast.flows[..., 4].sum() > 0 and fast.flows[..., 5].sum() > 0  # charge-offs, cures


@pytest.mark.parametrize("rule", ["catch_up", "re_age"])
def test_granular_kernel_equals_its_numpy_twin(rule: str) -> None:
    """The same exact binomial draws in the same order (engines.binomial_draw and its twin on
    the same PCG64 stream): the same counts, so the same flows."""
    loans = mixed_pool(120, seed=6)
    a = _with_dq(assumptions(rho=0.1), 0.05, 0.45, 0.3, cure_rule=rule)
    shares = np.random.default_rng(3).dirichlet([1.0, 1.0], len(loans))
    prep = prepare_delinquency(loans, a, shares, ("p", "q"), engine="granular")
    seed = block_seed(root_seed(13), 2)
    fast = simulate_dq_batch(prep, 2, seed, 6, "granular", "numba")
    slow = simulate_dq_batch(prep, 2, seed, 6, "granular", "numpy")
    np.testing.assert_allclose(fast.flows, slow.flows, rtol=1e-13, atol=1e-9)
    np.testing.assert_allclose(fast.party_flows, slow.party_flows, rtol=1e-13, atol=1e-9)
    assert fast.flows[..., 4].sum() > 0 and fast.flows[..., 5].sum() > 0


# ------------------------------------------------------------------------------------------
# identities on every path


@pytest.mark.parametrize("engine", ["loan", "granular"])
@pytest.mark.parametrize("rule", ["catch_up", "re_age"])
def test_balances_chain_and_states_add_up(rule: str, engine: str) -> None:
    loans = mixed_pool(400, seed=5)
    a = _with_dq(assumptions(rho=0.1), 0.03, 0.5, 0.25, cure_rule=rule)
    shares = np.random.default_rng(1).dirichlet([1.0, 1.0, 1.0], len(loans))
    p = simulate_delinquency(loans, a, 300, 7, engine=engine,  # type: ignore[arg-type]
                             shares=shares,
                             party_ids=("a", "b", "c"))
    dq = p.delinquency
    assert dq is not None and dq.state_balance.shape == (300, p.n_months, 4)
    np.testing.assert_allclose(p.balance_bop[:, 1:], p.balance_eop[:, :-1], atol=1e-6)
    np.testing.assert_allclose(p.balance_eop, dq.state_balance.sum(axis=-1), atol=1e-5)
    np.testing.assert_allclose(p.balance_bop[:, 0], p.initial_balance, rtol=1e-12)
    assert p.balance_eop[:, -1].max() == 0.0  # every loan has left by the horizon
    # lifetime: the initial balance = principal collected + prepaid + charged off
    out = (p.scheduled_principal + p.prepayment + p.default).sum(axis=1)
    np.testing.assert_allclose(out, p.initial_balance, rtol=1e-10)
    for name, arr in p.party_flows.items():
        np.testing.assert_allclose(arr.sum(axis=0), getattr(p, name), rtol=1e-9, atol=1e-6)
    assert dq.party_state_balance is not None
    np.testing.assert_allclose(dq.party_state_balance.sum(axis=0), dq.state_balance,
                               rtol=1e-9, atol=1e-6)


def test_a_pool_current_at_cutoff_has_nothing_past_30_days_in_month_1() -> None:
    """Month 1: a loan current at the cut-off can at most have missed one instalment."""
    loans = mixed_pool(600, seed=9)
    a = _with_dq(assumptions(rho=0.2, pd_scale=5.0), 0.2, 0.9, 0.05)
    for engine in ("loan", "granular"):
        p = simulate_delinquency(loans, a, 512, 3, engine=engine)  # type: ignore[arg-type]
        sb = p.delinquency.state_balance  # type: ignore[union-attr]
        assert np.all(sb[:, 0, 2:] == 0.0)  # 31-60 and 61-90: exactly 0 on every path
        assert np.all(sb[:, 1, 3:] == 0.0)  # month 2: no 61-90 yet
        assert (sb[:, 0, 1] > 0).mean() > 0.99  # 1-30 is not empty (rc = 20%)
        assert p.delinquency.dpd_balance(30)[:, 0].max() == 0.0  # type: ignore[union-attr]
        assert np.all(p.default[:, :3] == 0.0)  # the first charge-off: month 4 (90 DPD)
        assert (p.default[:, 3] > 0).mean() > 0.9  # (a very good factor path may have none)


@pytest.mark.parametrize("engine", ["loan", "granular"])
@pytest.mark.parametrize("co", [90, 180])
def test_recoveries_never_precede_their_charge_off(co: int, engine: str) -> None:
    loans = mixed_pool(300, seed=2)
    a = _with_dq(assumptions(rho=0.15, recovery_rate=0.4), 0.05, 0.6, 0.2, charge_off_dpd=co)
    p = simulate_delinquency(loans, a, 400, 5, engine=engine)  # type: ignore[arg-type]
    rate, lag = 0.4, (0.2, 0.3, 0.3, 0.2)
    # the recovery of month t is exactly the lag-weighted charge-offs of months t - k - 1
    want = np.zeros_like(p.default)
    for k, share in enumerate(lag):
        want[:, k + 1:] += rate * share * p.default[:, : p.n_months - k - 1]
    np.testing.assert_allclose(p.recovery, want, rtol=1e-12, atol=1e-9)
    # on every path: nothing recovered before the first charge-off, and the cumulative
    # recovery through month t never exceeds the rate times the charge-offs before t
    cum_rec = np.cumsum(p.recovery, axis=1)
    cum_co_before = np.concatenate([np.zeros((p.n_paths, 1)),
                                    np.cumsum(p.default, axis=1)[:, :-1]], axis=1)
    assert np.all(cum_rec <= rate * cum_co_before + 1e-6)
    first_co = np.argmax(p.default > 0, axis=1)
    has = p.default.sum(axis=1) > 0
    for i in np.flatnonzero(has):
        assert p.recovery[i, : first_co[i] + 1].sum() == 0.0
    assert np.all(p.default[:, : co // 30] == 0.0)  # a loan needs K + 1 missed instalments


@pytest.mark.parametrize("engine", ["loan", "granular"])
def test_same_seed_same_numbers_whatever_the_batch_size_and_threads(engine: str) -> None:
    loans = mixed_pool(200, seed=4)
    a = _with_dq(assumptions(rho=0.1), 0.03, 0.5, 0.3)
    one = simulate_delinquency(loans, a, 700, 17, engine=engine,  # type: ignore[arg-type]
                               batch_size=1, threads=1)
    two = simulate_delinquency(loans, a, 700, 17, engine=engine,  # type: ignore[arg-type]
                               batch_size=5000, threads=3)
    for name in ("balance_bop", "interest", "default", "recovery", "prepayment"):
        assert np.array_equal(getattr(one, name), getattr(two, name))
    assert np.array_equal(one.delinquency.state_balance,  # type: ignore[union-attr]
                          two.delinquency.state_balance)  # type: ignore[union-attr]


@pytest.mark.parametrize("engine", ["loan", "granular"])
def test_party_split_is_the_blocks_own_results_whatever_the_threads(engine: str) -> None:
    """The assembled run (column-first flows, balances by state apart, per party too) holds
    exactly each canonical block's accumulators (``simulate_dq_batch``, rows of (paths,
    months, column)), on 1 thread in batches of one block and on 3 threads."""
    loans = mixed_pool(150, seed=6)
    a = _with_dq(assumptions(rho=0.1), 0.04, 0.5, 0.3)
    rng = np.random.default_rng(3)
    shares = rng.dirichlet(np.ones(3), size=len(loans))
    parties = ("platform", "p1", "p2")
    runs = [simulate_delinquency(loans, a, 600, 23, engine=engine,  # type: ignore[arg-type]
                                 shares=shares, party_ids=parties, batch_size=b, threads=t)
            for b, t in ((1, 1), (5000, 3))]
    prep = prepare_delinquency(loans, a, shares, parties, engine)  # type: ignore[arg-type]
    root = root_seed(23)
    blocks = [simulate_dq_batch(prep, b, block_seed(root, b), n, engine)  # type: ignore[arg-type]
              for b, n in ((0, 256), (1, 256), (2, 88))]
    flows = np.concatenate([x.flows for x in blocks], axis=0)  # (paths, months, N_DQ)
    pflows = np.concatenate([x.party_flows for x in blocks], axis=1)
    cols = {"balance_bop": 0, "interest": 1, "scheduled_principal": 2, "prepayment": 3,
            "default": 4}
    states = slice(6, 6 + prep.n_buckets + 1)
    for p in runs:
        dq = p.delinquency
        assert dq is not None and dq.party_state_balance is not None
        assert dq.party_cures is not None
        for name, k in cols.items():
            assert np.array_equal(getattr(p, name), flows[..., k])
            assert np.array_equal(p.party_flows[name], pflows[..., k])
        assert np.array_equal(dq.cures, flows[..., 5])
        assert np.array_equal(dq.party_cures, pflows[..., 5])
        assert np.array_equal(dq.state_balance, flows[..., states])
        assert np.array_equal(dq.party_state_balance, pflows[..., states])
        assert dq.party_state_balance.shape == (3, 600, p.n_months, prep.n_buckets + 1)


# ------------------------------------------------------------------------------------------
# the Markov chain reference: numpy.linalg.matrix_power of one loan's transition matrix


def _markov_expectation(r: int, K: int, rc: float, smm: float, ro: float, cu: float,
                        re_age: bool, bop: np.ndarray, interest: np.ndarray,
                        principal: np.ndarray, H: int) -> dict[str, np.ndarray]:
    """Expected per-loan flows by month from the chain on states (b, d0, j), ρ = 0, rates
    constant: written out from the rules (docs/model.md), independently of the kernels.

    b: bucket 0..K; d0: re-age shift 0..K (0 without); j: instalments paid (0..r-1);
    absorbing: 'gone' (charged off, prepaid or matured: their flows are booked on entry)."""
    states = [(b, d, j) for b in range(K + 1) for d in range(K + 1) for j in range(r)]
    idx = {s: i for i, s in enumerate(states)}
    n = len(states) + 1
    gone = n - 1
    P = np.zeros((n, n))
    P[gone, gone] = 1.0
    # expected flows in the month, per state: interest, principal, prepay, charge-off, cure
    F = np.zeros((n, 5))
    for (b, d, j), i in idx.items():
        t = j + b + d
        if b == 0:
            P[i, idx[(1, d, j)]] += rc
            F[i, 0] += (1 - rc) * interest[j]
            F[i, 1] += (1 - rc) * principal[j]
            if j + 1 == r:
                P[i, gone] += 1 - rc
            else:
                P[i, gone] += (1 - rc) * smm
                F[i, 2] += (1 - rc) * smm * bop[j + 1]
                P[i, idx[(0, d, j + 1)]] += (1 - rc) * (1 - smm)
        else:
            if b == K:
                P[i, gone] += ro
                F[i, 3] += ro * bop[j]
            else:
                P[i, idx[(b + 1, d, j)]] += ro
            F[i, 4] += cu * bop[j]
            if re_age and d == 0:
                last, d_new = j, b
            else:
                last, d_new = min(t - d, r - 1), d
            F[i, 0] += cu * interest[j:last + 1].sum()
            F[i, 1] += cu * principal[j:last + 1].sum()
            P[i, gone if last + 1 == r else idx[(0, d_new, last + 1)]] += cu
            stay = 1 - ro - cu
            F[i, 0] += stay * interest[j]
            F[i, 1] += stay * principal[j]
            P[i, gone if j + 1 == r else idx[(b, d, j + 1)]] += stay
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    pi0 = np.zeros(n)
    pi0[idx[(0, 0, 0)]] = 1.0
    flows = np.zeros((H, 5))
    bucket_eop = np.zeros((H, K + 1))
    bal = np.r_[bop, 0.0]
    for t in range(H):
        pi = pi0 @ np.linalg.matrix_power(P, t)
        flows[t] = pi @ F
        nxt = pi0 @ np.linalg.matrix_power(P, t + 1)
        for (b, _d, j), i in idx.items():
            bucket_eop[t, b] += nxt[i] * bal[j]
    return {"interest": flows[:, 0], "scheduled_principal": flows[:, 1],
            "prepayment": flows[:, 2], "default": flows[:, 3], "cures": flows[:, 4],
            "state_balance": bucket_eop}


@pytest.mark.parametrize("engine", ["loan", "granular"])
@pytest.mark.parametrize("rule", ["catch_up", "re_age"])
def test_engines_match_the_markov_chain_matrix_power(rule: str, engine: str) -> None:
    n_loans, n_paths, term = 200, 2000, 6
    loans = homogeneous_pool(n_loans, balance=6000.0, term=term, mob=0, rtype=0)
    rc, ro, cu, smm = 0.08, 0.5, 0.3, 0.04
    a = _with_dq(flat_assumptions(0.01, smm=smm, rho=0.0), rc, ro, cu, cure_rule=rule)
    p = simulate_delinquency(loans, a, n_paths, 21, engine=engine)  # type: ignore[arg-type]
    sm = schedule_matrix(np.array([6000.0]), np.array([0.18]), np.array([term]),
                         np.array([0], dtype=np.int8), loans.origination_date[:1],
                         months_on_book=np.array([0]), n_months=term)
    bop = (sm.principal + sm.balance)[0]
    H = p.balance_bop.shape[1]
    want = _markov_expectation(term, 3, rc, smm, ro, cu, rule == "re_age", bop,
                               sm.interest[0], sm.principal[0], H)
    dq = p.delinquency
    got = {"interest": p.interest, "scheduled_principal": p.scheduled_principal,
           "prepayment": p.prepayment, "default": p.default, "cures": dq.cures}
    for name, arr in got.items():
        mean = arr.mean(axis=0) / n_loans
        se = arr.std(axis=0, ddof=1) / np.sqrt(n_paths) / n_loans
        z = np.abs(mean - want[name]) / np.maximum(se, 1e-9)
        assert z.max() < 4.5, (name, z.max(), mean, want[name])  # 4.5 SE over ~40 months
    sb = dq.state_balance.mean(axis=0) / n_loans
    se = dq.state_balance.std(axis=0, ddof=1) / np.sqrt(n_paths) / n_loans
    z = np.abs(sb - want["state_balance"]) / np.maximum(se, 1e-9)
    assert z.max() < 4.5


# ------------------------------------------------------------------------------------------
# item 3: the hazard model and the delinquency model derived from it agree


@pytest.mark.parametrize("engine", ["loan", "granular"])
def test_derived_delinquency_model_agrees_with_the_hazard_model_on_lifetime_default_and_loss(
        engine: str) -> None:
    """Without a [delinquency] section the delinquency model is the hazard model's go-bad
    events charged off K months later: lifetime default and loss equal in expectation.
    Tolerance: 4 standard errors of the difference of two independent means."""
    loans = mixed_pool(1500, seed=12)
    a = assumptions(rho=0.08, pd_scale=2.0, recovery_rate=0.2)
    n = 4000
    haz = simulate(loans, a, n, 31, engine=engine)  # type: ignore[arg-type]
    dlq = simulate_delinquency(loans, a, n, 32, engine=engine)  # type: ignore[arg-type]
    for h_arr, d_arr in ((haz.default.sum(axis=1), dlq.default.sum(axis=1)),
                         (haz.loss, dlq.loss)):
        diff = h_arr.mean() - d_arr.mean()
        se = np.sqrt(h_arr.var(ddof=1) / n + d_arr.var(ddof=1) / n)
        assert abs(diff) < 4 * se, (h_arr.mean(), d_arr.mean(), se)
        assert se < 0.02 * h_arr.mean()  # enough paths to see a 10% bias
    # the charge-off month is 3 months after the hazard model's default month
    h_month = (haz.default.mean(axis=0) * np.arange(haz.n_months)).sum() / haz.default.mean(0).sum()
    d_month = (dlq.default.mean(axis=0) * np.arange(dlq.n_months)).sum() / dlq.default.mean(0).sum()
    assert abs(d_month - h_month - 3.0) < 0.1


def test_granular_and_loan_engines_agree_with_correlation() -> None:
    """ρ = 0.15, φ = 0.6, both cure rules' default: lifetime charge-offs, cures, 30+ DPD
    balance month by month and the loss, loan against granular engine, within 4 SE of the
    difference of two independent means."""
    loans = mixed_pool(800, seed=8)
    a = _with_dq(assumptions(rho=0.15, phi=0.6), 0.04, 0.5, 0.3)
    n = 3000
    g = simulate_delinquency(loans, a, n, 41, engine="granular")
    ln = simulate_delinquency(loans, a, n, 42, engine="loan")
    pairs = [(g.default.sum(1), ln.default.sum(1)), (g.loss, ln.loss),
             (g.delinquency.cures.sum(1), ln.delinquency.cures.sum(1)),  # type: ignore[union-attr]
             (g.interest.sum(1), ln.interest.sum(1))]
    for x, y in pairs:
        se = np.sqrt(x.var(ddof=1) / n + y.var(ddof=1) / n)
        assert abs(x.mean() - y.mean()) < 4 * se, (x.mean(), y.mean(), se)
    dg = g.delinquency.dpd_balance(30)  # type: ignore[union-attr]
    dl = ln.delinquency.dpd_balance(30)  # type: ignore[union-attr]
    se = np.sqrt(dg.var(0, ddof=1) / n + dl.var(0, ddof=1) / n)
    z = np.abs(dg.mean(0) - dl.mean(0)) / np.maximum(se, 1e-9)
    assert z.max() < 4.5  # per month, ~30 months
