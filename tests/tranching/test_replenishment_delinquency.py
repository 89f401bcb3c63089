"""Revolving purchases under the delinquency-state model: the replenishment profile's vintages
follow the delinquency transitions (charge-offs at the charge-off point, balances by state).

Reference: the expected flows of a vintage (``delinquency.expected_dq_vintage``) against the
mean of the loan engine's paths (every loan drawn individually, ``simulate_delinquency``) with
a factor loading of 0, where the expectation given the factor is the unconditional mean:
within 4.5 standard errors month by month.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest
from replenishment_pools import short_tenor_loans, simple_assumptions

from portfolio.errors import ValidationError
from portfolio.montecarlo import dq_kernels as K
from portfolio.montecarlo.assumptions import DELINQUENCY_BUCKETS, DelinquencyAssumptions
from portfolio.montecarlo.delinquency import (
    expected_dq_into,
    expected_dq_tables,
    expected_dq_vintage,
    expected_dq_vintages_into,
    new_accumulators,
    prepare_delinquency,
    simulate_delinquency,
)
from portfolio.montecarlo.replenishment import replenishment_loans, simulate_replenishment

CUTOFF = dt.date(2026, 6, 30)


def _assumptions(loading: float):
    a = simple_assumptions()
    shape = a.default_hazard.shape
    roll = np.ones(shape + (DELINQUENCY_BUCKETS,))
    cure = np.zeros(shape + (DELINQUENCY_BUCKETS,))
    roll[..., :3] = (0.35, 0.55, 0.75)
    cure[..., :3] = (0.45, 0.25, 0.10)
    dq = DelinquencyAssumptions(roll_current=np.full(shape, 0.04), roll=roll, cure=cure,
                                factor_loading=loading)
    return dataclasses.replace(a, delinquency=dq)


def test_expected_vintage_equals_the_loan_engine_mean_without_a_factor() -> None:
    new = replenishment_loans(short_tenor_loans(n=300), CUTOFF)
    a = _assumptions(0.0)
    prep = prepare_delinquency(new, a)
    acc = expected_dq_vintage(prep, np.zeros((1, prep.H)), backend="numpy")[0]
    np.testing.assert_allclose(expected_dq_vintage(prep, np.zeros((1, prep.H)))[0], acc,
                               rtol=1e-11, atol=1e-8)
    paths = simulate_delinquency(new, a, 4000, 11, engine="loan")
    sims = {
        K.BOP: paths.balance_bop, K.INTEREST: paths.interest,
        K.PRINCIPAL: paths.scheduled_principal, K.PREPAY: paths.prepayment,
        K.CHARGE_OFF: paths.default, K.CURE: paths.delinquency.cures,
    }
    for b in range(4):
        sims[K.EOP_BUCKET0 + b] = paths.delinquency.state_balance[..., b]
    checked = 0
    for col, x in sims.items():
        mean = x.mean(axis=0)[: prep.H]
        se = x.std(axis=0, ddof=1)[: prep.H] / np.sqrt(x.shape[0])
        want = acc[: prep.H, col]
        ok = np.abs(mean - want) <= 4.5 * se + 1e-6 * (1 + np.abs(want))
        assert ok.all(), (col, np.flatnonzero(~ok), mean[~ok], want[~ok], se[~ok])
        checked += int((want > 0).sum())
    assert checked > 50
    assert acc[: prep.H, K.CHARGE_OFF].sum() > 0 and np.all(acc[:3, K.CHARGE_OFF] == 0)


def test_profile_under_the_delinquency_model() -> None:
    """Every vintage carries its balances by state; charge-offs start in month 4 (90 DPD);
    the states add up to the end balance; recoveries follow the charge-offs; later vintages
    see other months of the factor; the same seed gives the same profile; re-aging and a
    deterministic level are refused."""
    loans = short_tenor_loans(n=200)
    a = _assumptions(0.08)
    prof = simulate_replenishment(loans, a, 300, 5, model="delinquency", purchase_months=3,
                                  cutoff=CUTOFF)
    again = simulate_replenishment(loans, a, 300, 5, model="delinquency", purchase_months=3,
                                   cutoff=CUTOFF)
    assert prof.n_vintages == 3
    for s in range(3):
        v = prof.vintage(s)
        assert v.delinquency is not None and v.delinquency.charge_off_dpd == 90
        np.testing.assert_allclose(v.delinquency.state_balance.sum(axis=2), v.balance_eop,
                                   rtol=1e-9, atol=1e-6)
        assert np.all(v.default[:, :3] == 0) and v.default.sum() > 0
        assert np.all(np.cumsum(v.recovery, axis=1) <= np.cumsum(v.default, axis=1)
                      * a.recovery_rate + 1e-6)
        np.testing.assert_array_equal(v.default, again.vintage(s).default)
    assert not np.allclose(prof.vintage(0).default, prof.vintage(2).default)
    with pytest.raises(ValidationError, match="cure_rule"):
        simulate_replenishment(loans, dataclasses.replace(a, delinquency=dataclasses.replace(
            a.delinquency, cure_rule="re_age")), 10, 5, model="delinquency", cutoff=CUTOFF)
    with pytest.raises(ValidationError, match="deterministic"):
        simulate_replenishment(loans, a, 1, 5, model="delinquency", deterministic_z=0.0,
                               cutoff=CUTOFF)


def test_waterfall_reads_the_bought_loans_dpd_from_their_states() -> None:
    """A revolving deal on delinquency-model paths with the delinquency profile: each month's
    30+ DPD balance the triggers test is the pool's simulated 30+ DPD plus, for every earlier
    purchase P_s, P_s × (vintage s's 30+ DPD per unit of its balance, s + 1 months later) —
    rebuilt here from the result's purchases and the paths."""
    from pathlib import Path

    from tranching.deal import load_deal
    from tranching.waterfall import run_waterfall

    root = Path(__file__).resolve().parents[2]
    deal = load_deal(root / "examples" / "deal_cn_consumer.toml")
    assert deal.revolving_months > 0
    loans = short_tenor_loans(n=200)
    a = _assumptions(0.08)
    paths = simulate_delinquency(loans, a, 64, 3)
    prof = simulate_replenishment(loans, a, 64, 3, model="delinquency",
                                  purchase_months=deal.revolving_months, cutoff=CUTOFF)
    res = run_waterfall(deal, paths, replenishment=prof)
    purchases = np.asarray(res.purchases).T  # (months, paths); results are (paths, months)
    unit = 1.0 / prof.initial_balance
    pool = paths.delinquency.dpd_balance(30)
    checked = 0
    for t in range(1, 8):
        want = pool[:, t].copy()
        for s in range(t):
            v = prof.vintage(s).delinquency.dpd_balance(30)
            if t - s - 1 < v.shape[1]:
                want += purchases[s] * unit * v[:, t - s - 1]
        got = res.metrics["delinquency"][:, t] * res.pool_cash["balance_eop"][:, t]
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-6)
        checked += int((want > 0).sum())
    assert checked > 50 and purchases[:6].sum() > 0


def test_expected_vintage_numba_equals_its_numpy_twin() -> None:
    """The compiled loop and the vectorised numpy twin on the same factor paths (loading
    0.1, 50 paths of a standard normal factor)."""
    new = replenishment_loans(short_tenor_loans(n=120), CUTOFF)
    prep = prepare_delinquency(new, _assumptions(0.1))
    z = np.random.default_rng(2).standard_normal((50, prep.H))
    zb = z * np.sqrt(0.1) / (np.sqrt(0.9) * np.sqrt(2.0))
    fast = expected_dq_vintage(prep, zb)
    slow = expected_dq_vintage(prep, zb, backend="numpy")
    np.testing.assert_allclose(fast, slow, rtol=1e-11, atol=1e-8)
    assert fast[:, :, K.CHARGE_OFF].sum() > 0 and fast[:, :, K.CURE].sum() > 0


def test_vintages_at_once_equal_one_vintage_at_a_time_and_the_numpy_twin() -> None:
    """``expected_dq_vintages_into`` (a block's vintages together, each transition probability
    computed once per factor month and threshold) against one ``expected_dq_into`` per vintage
    on the shifted factor: bit for bit; and each vintage against the numpy twin. The
    transitions change with age in steps of three months (so the thresholds repeat from one
    month to the next and change), 70 paths (a chunk of 64 and a part chunk)."""
    a = _assumptions(0.1)
    dq = a.delinquency
    age = np.arange(dq.roll_current.shape[-1])
    step = (age // 3) % 2  # 0 0 0 1 1 1 0 0 0 …
    roll = dq.roll.copy()
    roll[..., :, 0] = 0.3 + 0.1 * step
    a = dataclasses.replace(a, delinquency=dataclasses.replace(
        dq, roll_current=np.broadcast_to(0.03 + 0.02 * step, dq.roll_current.shape).copy(),
        roll=roll))
    new = replenishment_loans(short_tenor_loans(n=120), CUTOFF)
    prep = prepare_delinquency(new, a)
    n_v, n_b = 5, 70
    z = np.random.default_rng(4).standard_normal((n_b, n_v + prep.H + 1))
    zb = z * np.sqrt(0.1) / (np.sqrt(0.9) * np.sqrt(2.0))
    tables = expected_dq_tables(prep)
    out, states = new_accumulators(prep, (n_v,), n_b)
    expected_dq_vintages_into(prep, tables, zb, 1, out, states)
    for s in range(n_v):
        one, one_states = new_accumulators(prep, (), n_b)
        expected_dq_into(prep, tables, zb[:, 1 + s:], one, one_states)
        assert np.array_equal(out[:, s], one) and np.array_equal(states[s], one_states)
        slow = expected_dq_vintage(prep, zb[:, 1 + s: 1 + s + prep.H], backend="numpy")
        np.testing.assert_allclose(np.moveaxis(out[:, s], 0, -1), slow[..., :K.EOP_BUCKET0],
                                   rtol=1e-11, atol=1e-8)
        np.testing.assert_allclose(states[s], slow[..., K.EOP_BUCKET0:K.EOP_BUCKET0
                                                   + prep.n_buckets + 1],
                                   rtol=1e-11, atol=1e-8)
    assert out[K.CHARGE_OFF].sum() > 0 and out[K.CURE].sum() > 0
    with pytest.raises(ValueError, match="zb must have at least"):
        expected_dq_vintages_into(prep, tables, zb[:, :-2], 1, out, states)  # one month short


def test_a_chunk_of_paths_equals_each_path_alone_with_exactly_empty_buckets() -> None:
    """``_expected_dq_kernel`` runs a chunk's paths side by side, and a step where some
    path's bucket is exactly empty path by path (that path adds nothing): 70 paths (a chunk
    and a part chunk), some with a factor so extreme that their roll from current is exactly
    0 (an empty bucket on those paths only) or exactly 1, against each path alone (a chunk
    of one), added into non-zero accumulators: bit for bit."""
    a = _assumptions(0.1)
    new = replenishment_loans(short_tenor_loans(n=120), CUTOFF)
    prep = prepare_delinquency(new, a)
    n_v, n_b = 3, 70
    z = np.random.default_rng(9).standard_normal((n_b, n_v + prep.H + 1))
    zb = z * np.sqrt(0.1) / (np.sqrt(0.9) * np.sqrt(2.0))
    zb[3, :] = 40.0  # erfc(40 − thr) = 0: nothing rolls from current on path 3
    zb[66, 5:] = -40.0  # every current loan rolls from month 4 on, path 66
    zb[20, 2] = 40.0
    tables = expected_dq_tables(prep)
    rng = np.random.default_rng(10)
    out0, states0 = new_accumulators(prep, (n_v,), n_b)
    out0 += rng.random(out0.shape) * 50.0
    states0 += rng.random(states0.shape) * 50.0
    out, states = out0.copy(), states0.copy()
    expected_dq_vintages_into(prep, tables, zb, 1, out, states)
    for p in range(n_b):
        one, one_states = out0[:, :, p:p + 1].copy(), states0[:, p:p + 1].copy()
        expected_dq_vintages_into(prep, tables, zb[p:p + 1], 1, one, one_states)
        np.testing.assert_array_equal(out[:, :, p:p + 1], one)
        np.testing.assert_array_equal(states[:, p:p + 1], one_states)
    rolled_in = states[:, :, 1:, 1] - states0[:, :, 1:, 1]  # 1–30 balance added
    assert np.all(rolled_in[:, 3] == 0.0) and (rolled_in[:, 4] > 0.0).any()
    assert out[K.CHARGE_OFF].sum() > out0[K.CHARGE_OFF].sum()


def test_waterfall_on_delinquency_paths_has_the_same_bytes_on_one_two_and_three_threads(
) -> None:
    """The paths cut into ranges on threads (their balances by state and every vintage's
    too): every array of the result is the same, bit for bit, as on one thread."""
    from pathlib import Path

    from tranching.deal import load_deal
    from tranching.waterfall import run_waterfall

    def arrays(res: object) -> dict[str, bytes]:  # every array of the result, as bytes
        out = {}
        for f in dataclasses.fields(res):  # type: ignore[arg-type]
            v = getattr(res, f.name)
            for k, x in (v.items() if isinstance(v, dict) else [("", v)]):
                if isinstance(x, np.ndarray):
                    out[f"{f.name}/{k}"] = x.dtype.str.encode() + x.tobytes()
        return out

    root = Path(__file__).resolve().parents[2]
    deal = load_deal(root / "examples" / "deal_cn_consumer.toml")
    loans = short_tenor_loans(n=200)
    a = _assumptions(0.08)
    paths = simulate_delinquency(loans, a, 65, 3)
    prof = simulate_replenishment(loans, a, 65, 3, model="delinquency",
                                  purchase_months=deal.revolving_months, cutoff=CUTOFF)
    one = run_waterfall(deal, paths, replenishment=prof, threads=1)
    assert one.purchases.sum() > 0 and one.metrics["delinquency"].max() > 0
    want = arrays(one)
    assert len(want) > 40
    for n in (2, 3):
        got = arrays(run_waterfall(deal, paths, replenishment=prof, threads=n))
        assert sorted(got) == sorted(want)
        assert [k for k in want if got[k] != want[k]] == []


def test_waterfall_on_worker_slices_of_delinquency_paths_equals_the_whole_run() -> None:
    """What a Dask task gets (``slice_paths`` of the run and of the profile) carries the
    balances by state and cures, party versions included, so the deal's DPD trigger and
    losses on each slice joined in path order are the whole run's, bit for bit. (Before, the
    distributed slice dropped the states: the DPD trigger months and the tranche losses of a
    delinquency run on workers differed from the local run.)"""
    from pathlib import Path

    from portfolio.montecarlo.paths import slice_paths
    from tranching.deal import load_deal
    from tranching.distributed import WaterfallOnWorkers, WaterfallSummary
    from tranching.waterfall import run_waterfall

    root = Path(__file__).resolve().parents[2]
    deal = load_deal(root / "examples" / "deal_cn_consumer.toml")
    loans = short_tenor_loans(n=200)
    a = _assumptions(0.08)
    n = len(loans.balance)
    shares = np.column_stack([np.full(n, 0.3), np.full(n, 0.7)])
    paths = simulate_delinquency(loans, a, 70, 5, shares=shares, party_ids=("platform", "b"))
    prof = simulate_replenishment(loans, a, 70, 5, model="delinquency",
                                  purchase_months=deal.revolving_months, cutoff=CUTOFF)
    part = slice_paths(paths, 20, 45)
    dq, whole = part.delinquency, paths.delinquency
    assert dq is not None and whole is not None
    assert whole.party_state_balance is not None and dq.party_state_balance is not None
    assert np.array_equal(dq.state_balance, whole.state_balance[20:45])
    assert np.array_equal(dq.cures, whole.cures[20:45])
    assert np.array_equal(dq.party_state_balance, whole.party_state_balance[:, 20:45])
    assert whole.party_cures is not None and dq.party_cures is not None
    assert np.array_equal(dq.party_cures, whole.party_cures[:, 20:45])
    local = WaterfallSummary.from_result(run_waterfall(deal, paths, replenishment=prof,
                                                       threads=1))
    assert max(ever.sum() for ever in local.breached_ever.values()) > 0
    reducer = WaterfallOnWorkers(deal, prof)
    joined = reducer.combine([reducer(slice_paths(paths, lo, hi), lo)
                              for lo, hi in ((0, 20), (20, 45), (45, 70))])
    for f in ("tranche_loss", "interest_paid", "principal_received", "tranche_cashflows",
              "residual"):
        assert np.array_equal(getattr(joined, f), getattr(local, f)), f
    for k, months in local.trigger_months.items():
        assert np.array_equal(joined.trigger_months[k], months), k
