"""Revolving with a replenishment profile: new loans with fresh schedules keep the deal alive.

The waterfall arithmetic of a purchase is worked by hand in
``test_waterfall_features.test_revolving_buys_new_loans_with_their_own_schedule``; here: the
short-tenor pool of the demo with the 12-month revolving CN deal, and the invariants of
``test_waterfall_invariants`` with a random replenishment profile.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from replenishment_pools import short_tenor_loans, simple_assumptions
from test_waterfall_invariants import check_invariants, deals, pools
from tranching_pathgen import synthetic_paths

from portfolio.montecarlo.replenishment import simulate_replenishment
from portfolio.montecarlo.simulation import simulate
from tranching.analytics import wal_per_path, year_fractions
from tranching.deal import deal_from_dict, load_deal
from tranching.errors import DealError
from tranching.waterfall import run_waterfall

ROOT = Path(__file__).resolve().parents[2]
N_PATHS = 400


@pytest.fixture(scope="module")
def short_pool() -> tuple:
    loans = short_tenor_loans(n=600)
    a = simple_assumptions()
    paths = simulate(loans, a, N_PATHS, seed=11)
    profile = simulate_replenishment(loans, a, N_PATHS, seed=11)
    return paths, profile


def test_short_tenor_pool_stays_replenished_and_then_amortises(short_pool: tuple) -> None:
    paths, profile = short_pool
    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")  # 12 revolving months
    init = paths.initial_balance
    assert paths.n_months == 16 and int(np.max(paths.balance_eop[:, 11])) == 0  # pool gone by 12
    r = run_waterfall(deal, paths, replenishment=profile)
    assert len(r.dates) == 12 + profile.n_months  # loans bought in month 12 run off
    check_invariants(deal, r, init)
    trig = r.triggers["cnl_early_amortisation"]
    calm = ~trig[:, :12].any(axis=1)  # paths where the CNL trigger did not end the revolving
    assert calm.mean() > 0.8
    assert r.revolving[calm, :12].all() and not r.revolving[:, 12:].any()
    # during the revolving period the collateral is the initial pool less at most the net
    # losses (defaults − recoveries, of the pool and of the loans bought): the excess spread
    # (APR 11–24% against coupons and fees under 5%) keeps every purchase at the PDA
    net_loss = r.metrics["cnl"][:, :12] * init
    assert np.all(r.collateral[calm, :12] >= init - net_loss[calm] - 1e-6 * init)
    assert r.collateral[calm, :12].mean() > 0.97 * init
    # afterwards it amortises over the new loans' terms (3..12 months), not in one month
    left = r.collateral[calm] / init
    assert np.median(left[:, 12]) > 0.5
    assert np.median(left[:, 15]) > 0.1  # a quarter after the revolving period ends
    months_to_call = np.argmax(r.call_proceeds[calm] > 0, axis=1) + 1
    assert np.all((months_to_call > 12 + 3) & (months_to_call <= 12 + 12))
    wal = wal_per_path(r, deal.closing_date)
    revolving_end = year_fractions(deal.closing_date, [r.dates[11]])[0]  # 1.03 years
    assert np.nanmean(wal[0]) > revolving_end + 0.1
    assert np.all(wal[0][calm] > revolving_end)


def test_the_scaling_approximation_collapses_on_the_same_pool(short_pool: tuple) -> None:
    # what the profile fixes: scaled like the run-off pool, A is repaid in one or two months
    # right after the revolving period (the clean-up call fires at once)
    paths, _ = short_pool
    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")
    r = run_waterfall(deal, paths)
    calm = ~r.triggers["cnl_early_amortisation"][:, :12].any(axis=1)
    a_paid = r.principal_paid[0][calm]
    assert np.all(a_paid[:, 12:].sum(axis=1) < 1e-6)
    assert np.all(a_paid[:, 11] > 0.85 * r.original_balance[0])


def test_a_profile_is_ignored_without_a_revolving_period(short_pool: tuple) -> None:
    paths, profile = short_pool
    deal = load_deal(ROOT / "examples" / "deal_us_consumer.toml")
    a, b = run_waterfall(deal, paths), run_waterfall(deal, paths, replenishment=profile)
    np.testing.assert_array_equal(a.principal_paid, b.principal_paid)
    np.testing.assert_array_equal(a.residual, b.residual)


def test_a_profile_with_other_paths_is_refused(short_pool: tuple) -> None:
    paths, _ = short_pool
    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")
    wrong = synthetic_paths(n_paths=3, n_months=8)
    with pytest.raises(DealError, match="replenishment"):
        run_waterfall(deal, paths, replenishment=wrong)


profiles = st.fixed_dictionaries({
    "n_months": st.integers(1, 20),
    "seed": st.integers(0, 2**31),
    "initial_balance": st.floats(0.5, 1e7),
    "monthly_pd": st.floats(0.0, 0.08),
    "smm": st.floats(0.0, 0.1),
    "recovery_rate": st.floats(0.0, 0.9),
    "lag": st.integers(0, 6),
    "apr": st.floats(0.0, 0.36),
    "term": st.integers(1, 18),
})


@given(deal_dict=deals(), pool=pools, prof=profiles, revolving=st.integers(1, 14))
def test_invariants_with_a_replenishment_profile(deal_dict: dict, pool: dict, prof: dict,
                                                 revolving: int) -> None:
    deal_dict["revolving"] = {"months": revolving}
    deal = deal_from_dict(deal_dict)
    paths = synthetic_paths(n_paths=12, initial_balance=1_000_000.0, **pool)
    profile = synthetic_paths(n_paths=12, **prof)
    r = run_waterfall(deal, paths, replenishment=profile)
    assert len(r.dates) == max(paths.n_months, revolving + profile.n_months)
    check_invariants(deal, r, paths.initial_balance)
    # purchases only while revolving, never more than the principal the notes were due
    assert np.all(r.purchases[~r.revolving] == 0.0)
    assert not r.revolving[:, revolving:].any()


def test_invariants_with_profiles_on_the_example_deals() -> None:
    for pd_ in (0.002, 0.02, 0.06):
        paths = synthetic_paths(n_paths=200, n_months=12, seed=3, monthly_pd=pd_, rho=0.2, term=9)
        profile = synthetic_paths(n_paths=200, n_months=15, seed=4, monthly_pd=pd_, rho=0.2,
                                  term=12, initial_balance=1.0)
        for name in ("deal_cn_consumer.toml", "deal_us_consumer.toml"):
            deal = load_deal(ROOT / "examples" / name)
            check_invariants(deal, run_waterfall(deal, paths, replenishment=profile),
                             paths.initial_balance)


def test_dates_extend_monthly_past_the_pool() -> None:
    d = {"deal": {"name": "x", "closing_date": dt.date(2026, 1, 15),
                  "first_payment_date": dt.date(2026, 2, 26)},
         "tranches": [{"name": "A", "size": 0.9, "coupon": 0.03}, {"name": "Z", "size": 0.1}],
         "revolving": {"months": 6}}
    deal = deal_from_dict(d)
    paths = synthetic_paths(n_paths=5, n_months=4, term=4)
    profile = synthetic_paths(n_paths=5, n_months=7, term=5)
    r = run_waterfall(deal, paths, replenishment=profile)
    assert len(r.dates) == 13
    assert r.dates[-1] == dt.date(2027, 2, 26)
    assert r.balance[:, :, -1].max() < 1e-6


def test_purchases_see_the_factor_of_their_calendar_month() -> None:
    # Issue 11 §6. A deterministic factor path that is 0 except one bad month m* = 14
    # (Z = −3): loans bought at the end of month s see month s + 1 + a at their age a, so every
    # vintage still alive then has its default rate peak at age m* − s − 1 — in calendar
    # month m* — and nowhere else. (Before, every purchase replayed one vintage by age.)
    loans = short_tenor_loans(n=300)
    a = simple_assumptions(rho=0.3)
    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")  # 12 revolving months
    m_star, n_v = 14, deal.revolving_months
    z = np.zeros(40)
    z[m_star] = -3.0
    prof = simulate_replenishment(loans, a, 1, seed=1, deterministic_z=z, purchase_months=n_v)
    assert prof.n_vintages == n_v
    from portfolio.montecarlo.replenishment import replenishment_loans

    new = replenishment_loans(loans, prof.dates[0].astype(object) - dt.timedelta(days=31))
    for s in range(n_v):
        v = prof.vintage(s)
        # the vintage is the new loans projected on the factor months s + 1 … (same engine,
        # conditional expectation given that path)
        ref = simulate(new, a, 1, 0, deterministic_z=z[s + 1: s + 1 + 12])
        np.testing.assert_allclose(v.default, ref.default, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(v.interest, ref.interest, rtol=1e-12, atol=1e-9)
        rate = v.default[0, :12] / np.where(v.balance_bop[0, :12] > 0, v.balance_bop[0, :12], 1)
        age = m_star - s - 1
        if age >= 12:  # bought too early: every loan (3–12 months) is gone by month m*
            assert rate.max() < 1.2 * rate.min(), s
            continue
        assert int(np.argmax(rate)) == age, s
        assert rate[age] > 5 * np.delete(rate[:12], age).max(), s  # Φ-ratio at Z = −3, ρ 0.3
    # in the deal: the purchased loans' defaults (all there is after the pool ran off in
    # month 12) are the calendar sum Σ_s purchase_s × vintage_s[t − s − 1], peaking at m*
    paths = simulate(loans, a, 1, seed=1, deterministic_z=z[:12])
    r = run_waterfall(deal, paths, replenishment=prof)
    init = paths.initial_balance
    net = np.diff(np.r_[0.0, r.metrics["cnl"][0]]) * init  # defaults − recoveries by month
    months = len(r.dates)
    expected = np.zeros(months)
    expected[:paths.n_months] = (paths.default - paths.recovery)[0]
    unit = 1.0 / prof.initial_balance
    for s in range(months):
        if r.purchases[0, s] > 0:
            v = prof.vintage(s)
            k = min(v.n_months, months - s - 1)
            expected[s + 1: s + 1 + k] += r.purchases[0, s] * unit * (
                v.default - v.recovery)[0, :k]
    live = np.cumsum(r.call_proceeds[0]) == 0
    np.testing.assert_allclose(net[live], expected[live], rtol=1e-9, atol=1e-6 * init)
    late = np.arange(months) >= 12
    bought_default = np.zeros(months)
    for s in range(n_v):
        v = prof.vintage(s)
        k = min(v.n_months, months - s - 1)
        bought_default[s + 1: s + 1 + k] += r.purchases[0, s] * unit * v.default[0, :k]
    assert int(np.argmax(np.where(late & live, bought_default, 0.0))) == m_star


def test_monte_carlo_vintages_share_the_runs_calendar_factor() -> None:
    # No persistence (φ = 0: months independent), strong correlation: on every path the loans
    # bought at month s default in month s + 1 + a together with the pool's loans of that
    # calendar month (same Z), and not with the pool's month s + 1 + a ± 1.
    import dataclasses

    loans = short_tenor_loans(n=3000)
    a = dataclasses.replace(simple_assumptions(pd_scale=3.0, rho=0.5), factor_persistence=0.0)
    main = simulate(loans, a, 768, seed=8)
    prof = simulate_replenishment(loans, a, 768, seed=8, purchase_months=4)
    pool_rate = main.default / np.where(main.balance_bop > 0, main.balance_bop, 1.0)
    for s, age in ((0, 1), (2, 2), (3, 4)):
        v = prof.vintage(s)
        x = v.default[:, age] / v.balance_bop[:, age]
        m = s + 1 + age
        assert np.corrcoef(x, pool_rate[:, m])[0, 1] > 0.6, (s, age)
        for off in (m - 1, m + 1):  # 768 independent pairs: |r| < 0.2 is 5.5 SE
            assert abs(np.corrcoef(x, pool_rate[:, off])[0, 1]) < 0.2, (s, age, off)


def test_an_acceleration_releases_the_reserve_even_while_cash_is_trapped() -> None:
    # Found by the property test above (CI, stop 19): an 'oc' trigger at 1.0 accelerates and a
    # second one traps cash from month 1. The pool (1 m, APR 25%, 1-month term) pays 1 m of
    # principal and 1 m × 0.25 / 12 = 20,833.33 of interest in month 1; both notes (0.5 m each,
    # no coupon) are repaid from it. Before the fix the 20,833.33 left was trapped in the reserve
    # for two months although the acceleration releases the reserve; now it goes to the residual
    # holder in month 1, and the reserve stays at 0.
    deal = deal_from_dict({
        "deal": {"name": "pinned", "closing_date": dt.date(2026, 1, 15),
                 "first_payment_date": dt.date(2026, 2, 15), "principal_mode": "sequential",
                 "initial_oc": 0.0, "accrual": "full", "interest_on_shortfall": False},
        "tranches": [{"name": "T0", "size": 0.5, "holder": "investors", "coupon": 0.0},
                     {"name": "T1", "size": 0.5, "holder": "investors"}],
        "fees": [],
        "reserve": {"target": 0.0, "basis": "initial", "floor": 0.0, "funding": "closing"},
        "triggers": [{"name": "g0", "metric": "oc", "level": 1.0, "curable": False,
                      "effect": "accelerate", "average_months": 1},
                     {"name": "g1", "metric": "oc", "level": 1.0, "curable": False,
                      "effect": "trap_cash", "average_months": 1}],
        "waterfall": [{"step": "principal", "tranches": ["T0", "T1"]}, {"step": "reserve"},
                      {"step": "residual"}],
        "revolving": {"months": 1},
    })
    paths = synthetic_paths(n_paths=12, initial_balance=1_000_000.0, n_months=3, seed=0,
                            monthly_pd=0.0, rho=0.0, smm=0.0, recovery_rate=0.0, lag=0,
                            apr=0.25, term=1)
    profile = synthetic_paths(n_paths=12, n_months=1, seed=0, initial_balance=1.0,
                              monthly_pd=0.0, smm=0.0, recovery_rate=0.0, lag=0, apr=0.0, term=1)
    r = run_waterfall(deal, paths, replenishment=profile)
    assert r.accelerated.all() and r.triggers["g1"].all()
    np.testing.assert_allclose(r.reserve, 0.0, atol=1e-9)
    np.testing.assert_allclose(r.residual[:, 0], 1_000_000.0 * 0.25 / 12, rtol=1e-12)
    check_invariants(deal, r, paths.initial_balance)
