"""Each structural feature on a small pool worked by hand: revolving, triggers, call, modes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from tranching_pathgen import paths_from_arrays

from tranching.analytics import losses_by_holder
from tranching.deal import deal_from_dict
from tranching.waterfall import run_waterfall

CENT = 0.005


def _deal(**extra) -> object:
    d = {"deal": {"name": "f", "closing_date": dt.date(2026, 1, 1),
                  "first_payment_date": dt.date(2026, 2, 1)},
         "tranches": [{"name": "A", "size": 0.9, "coupon": 0.0}, {"name": "Z", "size": 0.1}]}
    for key, value in extra.items():
        if key in ("principal_mode", "clean_up_call"):
            d["deal"][key] = value
        else:
            d[key] = value
    return deal_from_dict(d)


def test_revolving_buys_new_loans_with_their_own_schedule() -> None:
    # The replenishment profile: a 3-month new-loan pool of 4 CNY (the waterfall uses it per
    # unit of initial balance): bop 4, 2, 1; principal 2, 1, 1; interest 0.08, 0.04, 0.02;
    # eop 2, 1, 0 → per unit: bop 1, .5, .25; principal .5, .25, .25; interest .02, .01, .005;
    # eop .5, .25, 0. Pool 1000: principal 100, 100, 100, 700; interest 10, 8, 7, 6.
    # Horizon = max(4 pool months, 2 revolving + 3 profile months) = 5 months.
    # Month 1: principal 100, C = 900; revolving: PDA = notes 1000 − 900 = 100 buys new loans;
    #   from month 2 on they add 100 × (bop 1, .5, .25; principal .5, .25, .25;
    #   interest .02, .01, .005; eop .5, .25, 0) = bop 100, 50, 25; principal 50, 25, 25;
    #   interest 2, 1, 0.5; eop 50, 25, 0 in months 2, 3, 4. Residual = interest 10.
    # Month 2: principal 100 + 50 = 150, interest 8 + 2 = 10, C = 800 + 50 = 850; buys
    #   1000 − 850 = 150: months 3, 4, 5 get bop 150, 75, 37.5; principal 75, 37.5, 37.5;
    #   interest 3, 1.5, 0.75; eop 75, 37.5, 0.
    # Month 3 (amortising): principal 100 + 25 + 75 = 200 → A; interest 7 + 1 + 3 = 11;
    #   C = 700 + 25 + 75 = 800 (= notes 1000 − 200).
    # Month 4: principal 700 + 25 + 37.5 = 762.5 → A its last 700, Z 62.5; interest
    #   6 + 0.5 + 1.5 = 8; C = 0 + 0 + 37.5.
    # Month 5 (pool padded with zeros): principal 37.5 → Z (100 in all); interest 0.75.
    from portfolio.montecarlo.paths import PoolPaths

    deal = _deal(revolving={"months": 2})
    paths = paths_from_arrays(initial_balance=1000.0, interest=[[10.0, 8.0, 7.0, 6.0]],
                              scheduled_principal=[[100.0, 100.0, 100.0, 700.0]])
    profile = PoolPaths(
        dates=np.array(["2026-02-28", "2026-03-31", "2026-04-30"], dtype="datetime64[D]"),
        balance_bop=np.array([[4.0, 2.0, 1.0]]), interest=np.array([[0.08, 0.04, 0.02]]),
        scheduled_principal=np.array([[2.0, 1.0, 1.0]]), prepayment=np.zeros((1, 3)),
        default=np.zeros((1, 3)), recovery=np.zeros((1, 3)),
        balance_eop=np.array([[2.0, 1.0, 0.0]]), initial_balance=4.0)
    r = run_waterfall(deal, paths, replenishment=profile)
    assert len(r.dates) == 5
    assert r.revolving[0].tolist() == [True, True, False, False, False]
    assert r.purchases[0] == pytest.approx([100.0, 150.0, 0.0, 0.0, 0.0], abs=CENT)
    assert r.collections[0] == pytest.approx([110.0, 160.0, 211.0, 770.5, 38.25], abs=CENT)
    assert r.collateral[0] == pytest.approx([1000.0, 1000.0, 800.0, 37.5, 0.0], abs=CENT)
    assert r.principal_paid[0, 0] == pytest.approx([0.0, 0.0, 200.0, 700.0, 0.0], abs=CENT)
    assert r.principal_paid[1, 0] == pytest.approx([0.0, 0.0, 0.0, 62.5, 37.5], abs=CENT)
    assert r.residual[0] == pytest.approx([10.0, 10.0, 11.0, 8.0, 0.75], abs=CENT)
    assert r.tranche_loss.max() == 0.0


def test_revolving_without_a_profile_scales_the_pool() -> None:
    # The scaling approximation (no replenishment profile).
    # Month 1: pool pays 100 principal; revolving: notes 1000 − pool 900 = 100 buys loans,
    #   scale s = 1 + 100/900 = 10/9.
    # Month 2: flows × 10/9: principal 111.11, pool 800·10/9 = 888.89; buys 111.11,
    #   s = 10/9 · (1 + 111.11/888.89) = 1.25.
    # Month 3 (amortising): principal 100·1.25 = 125 → A. Month 4: 700·1.25 = 875 → A 775, Z 100.
    deal = _deal(revolving={"months": 2})
    paths = paths_from_arrays(initial_balance=1000.0, interest=[[10.0, 8.0, 7.0, 6.0]],
                              scheduled_principal=[[100.0, 100.0, 100.0, 700.0]])
    r = run_waterfall(deal, paths)
    assert r.revolving[0].tolist() == [True, True, False, False]
    assert r.purchases[0] == pytest.approx([100.0, 1000 / 9, 0.0, 0.0], abs=CENT)
    assert r.pool_scale[0] == pytest.approx([1.0, 10 / 9, 1.25, 1.25])
    assert r.principal_paid[0, 0] == pytest.approx([0.0, 0.0, 125.0, 775.0], abs=CENT)
    assert r.principal_paid[1, 0] == pytest.approx([0.0, 0.0, 0.0, 100.0], abs=CENT)
    # interest is scaled too and, with no coupons or fees, all of it is residual
    assert r.residual[0] == pytest.approx([10.0, 80 / 9, 8.75, 7.5], abs=CENT)


def test_end_revolving_trigger_stops_purchases_for_good() -> None:
    # a 2% default in month 1 breaches CNL > 1%: no purchase; notes amortise from month 1
    deal = _deal(revolving={"months": 3},
                 triggers=[{"name": "stop", "metric": "cnl", "level": 0.01, "curable": True,
                            "effect": "end_revolving"}])
    paths = paths_from_arrays(initial_balance=1000.0, interest=[[10.0, 8.0, 7.0]],
                              scheduled_principal=[[100.0, 100.0, 780.0]], default=[[20.0, 0.0, 0.0]])
    r = run_waterfall(deal, paths)
    assert not r.revolving.any()
    assert r.purchases.sum() == 0.0
    # month 1: PDA = 1000 − 880 = 120, paid from principal 100 + interest 10 = 110 → A 110
    assert r.principal_paid[0, 0, 0] == pytest.approx(110.0)


def test_clean_up_call_pays_everything_and_ends_the_deal() -> None:
    # pool 1000 → 700 → 400 → 100: 100 < 15% of 1000 in month 3 → call at par (100)
    deal = _deal(clean_up_call=0.15)
    paths = paths_from_arrays(initial_balance=1000.0, interest=[[10.0, 7.0, 4.0, 1.0]],
                              scheduled_principal=[[300.0, 300.0, 300.0, 100.0]])
    r = run_waterfall(deal, paths)
    assert r.call_proceeds[0] == pytest.approx([0.0, 0.0, 100.0, 0.0])
    # month 3: available 300 + 4 + 100 = 404 → A's last 300·... A paid 300, 300, 300 (900), Z 100
    assert r.principal_paid[:, 0, 2] == pytest.approx([300.0, 100.0])
    assert r.collections[0, 3] == 0.0 and r.residual[0, 3] == 0.0
    assert r.tranche_loss.max() == 0.0


def test_pro_rata_then_sequential_trigger() -> None:
    # pro rata 90/10; month 2's default of 20 breaches CNL > 1% → sequential from month 2
    deal = _deal(principal_mode="pro_rata",
                 triggers=[{"name": "seq", "metric": "cnl", "level": 0.01, "effect": "sequential"}])
    paths = paths_from_arrays(initial_balance=1000.0, interest=[[0.0, 0.0, 0.0]],
                              scheduled_principal=[[100.0, 100.0, 780.0]], default=[[0.0, 20.0, 0.0]])
    r = run_waterfall(deal, paths)
    # month 1: PDA 100 → A 90, Z 10; month 2: PDA = 900 − 780 = 120 but only 100 cash → A 100
    assert r.principal_paid[:, 0, 0] == pytest.approx([90.0, 10.0])
    assert r.principal_paid[:, 0, 1] == pytest.approx([100.0, 0.0])
    # the 20 shortfall is written off Z (bottom-up): Z 90 → 70
    assert r.writedown[:, 0, 1] == pytest.approx([0.0, 20.0])
    assert r.triggers["seq"][0].tolist() == [False, True, True]


def test_trap_cash_keeps_the_residual_in_the_reserve() -> None:
    deal = _deal(reserve={"target": 0.0}, triggers=[
        {"name": "trap", "metric": "cnl", "level": 0.01, "curable": False, "effect": "trap_cash"}],
        waterfall=[{"step": "reserve"}, {"step": "principal"}, {"step": "residual"}])
    paths = paths_from_arrays(initial_balance=1000.0, interest=[[10.0, 10.0, 10.0]],
                              scheduled_principal=[[100.0, 100.0, 780.0]], default=[[0.0, 20.0, 0.0]])
    r = run_waterfall(deal, paths)
    # month 1 (no breach): residual 10. Month 2 (breach): available 110 → A 110 of PDA 120;
    # nothing is left to trap. Month 3 (final): released, residual = 10 + 780 − 770 = 20.
    assert r.residual[0, 0] == pytest.approx(10.0)
    assert r.residual[0, 1] == 0.0
    assert r.reserve[0, 2] == 0.0
    # with a larger interest flow the trapped excess stays in the reserve
    paths2 = paths_from_arrays(initial_balance=1000.0, interest=[[10.0, 50.0, 10.0]],
                               scheduled_principal=[[100.0, 100.0, 780.0]], default=[[0.0, 20.0, 0.0]])
    r2 = run_waterfall(deal, paths2)
    assert r2.residual[0, 1] == 0.0
    assert r2.reserve[0, 1] == pytest.approx(150.0 - 120.0)


def test_losses_by_holder_follow_retention_shares() -> None:
    deal = _deal(retention={"kind": "vertical", "share": 0.05})
    paths = paths_from_arrays(initial_balance=1000.0, interest=[[0.0]], scheduled_principal=[[850.0]],
                              default=[[150.0]])
    r = run_waterfall(deal, paths)
    # loss 150: Z loses 100, A 50; vertical 5%: platform 5% of each, investors 95%
    by = losses_by_holder(deal, r)
    assert by["platform"][0] == pytest.approx(0.05 * 150)
    assert by["investors"][0] == pytest.approx(0.95 * 150)
    assert sum(v for v in by.values())[0] == pytest.approx(r.tranche_loss.sum())


def test_amount_sized_tranches_and_mismatch() -> None:
    d = {"deal": {"name": "a", "closing_date": dt.date(2026, 1, 1),
                  "first_payment_date": dt.date(2026, 2, 1)},
         "tranches": [{"name": "A", "amount": 900.0, "coupon": 0.0}, {"name": "Z", "amount": 100.0}]}
    deal = deal_from_dict(d)
    paths = paths_from_arrays(initial_balance=1000.0, interest=[[0.0]], scheduled_principal=[[1000.0]])
    assert np.allclose(run_waterfall(deal, paths).principal_received[:, 0], [900.0, 100.0])


def test_thread_count_is_checked_and_the_path_ranges_cover_every_path_once() -> None:
    from tranching.errors import DealError
    from tranching.waterfall import path_ranges

    paths = paths_from_arrays(initial_balance=1000.0, interest=[[10.0, 8.0]] * 3,
                              scheduled_principal=[[500.0, 500.0]] * 3)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(DealError, match="threads.*whole number >= 1"):
            run_waterfall(_deal(), paths, threads=bad)
    # 3 paths on 5 threads: one path a thread; 10 paths on 3: 3, 3, 4 consecutive paths
    assert path_ranges(3, 5) == [(0, 1), (1, 2), (2, 3)]
    assert path_ranges(10, 3) == [(0, 3), (3, 6), (6, 10)]
    one = run_waterfall(_deal(), paths, threads=1)
    many = run_waterfall(_deal(), paths, threads=5)
    np.testing.assert_array_equal(many.principal_paid, one.principal_paid)
    np.testing.assert_array_equal(many.residual, one.residual)
    # hand check: A (900) takes the pool's 1000 of principal first, Z the last 100
    np.testing.assert_array_equal(one.principal_paid[:, :, :].sum(axis=2),
                                  [[900.0] * 3, [100.0] * 3])
