"""The residual as a cash flow and the cash and loss reconciliation (tranching.reconcile).

- Every path of random structures and pools (hypothesis, the invariant tests' strategies), of
  the example deals on Monte Carlo paths and of a revolving deal buying new loans from a
  replenishment profile: cash in (pool, undertaking, advances) = tax + advances repaid + fees +
  classes' interest, principal and PDL refills + purchases + reserve movement + residual, and
  pool loss = class losses + the residual holder's cushion + the undertaking's payments + the
  advances not recovered, each to 1e-6 CNY; the CN example with every mechanic drawn.
- A hand-worked two-month case, every line written out.
- The residual holder's IRR on monthly periods against numpy-financial's ``irr``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import numpy_financial as npf
import test_waterfall_invariants as inv
from hypothesis import given
from replenishment_pools import short_tenor_loans, simple_assumptions
from tranching_pathgen import paths_from_arrays, realistic_pool_paths, synthetic_paths

from portfolio.montecarlo.replenishment import simulate_replenishment
from portfolio.montecarlo.simulation import simulate
from tranching.deal import deal_from_dict, load_deal
from tranching.reconcile import (
    collateral_left,
    excess_spread,
    excess_spread_table,
    periodic_irr,
    reconcile,
    residual_holder_cashflows,
    residual_investment,
    residual_table,
)
from tranching.waterfall import run_waterfall

ROOT = Path(__file__).resolve().parents[2]
CLOSE = 1e-6  # CNY


def check_closes(deal, result) -> None:  # type: ignore[no-untyped-def]
    rec = reconcile(deal, result)
    assert np.abs(rec.cash_error).max() <= CLOSE
    assert np.abs(rec.loss_error).max() <= CLOSE
    table = rec.table()
    assert table.loc[table["item"].str.startswith("difference"), "max"].max() <= CLOSE
    # the collateral left as the flows leave it is the stored end balance up to the simulation's
    # float round-off (module doc of tranching.reconcile)
    implied = np.asarray(rec.pool_loss["collateral left at the legal final"], dtype=np.float64)
    scale = result.pool_cash["balance_bop"][:, 0] + result.purchases.sum(axis=1)
    assert np.all(np.abs(implied - collateral_left(result)) <= 1e-12 * np.maximum(scale, 1.0))


@given(deal_dict=inv.deals(), pool=inv.pools)
def test_reconciliation_closes_on_every_path_random_structures(deal_dict: dict, pool: dict) -> None:
    deal = deal_from_dict(deal_dict)
    paths = synthetic_paths(n_paths=12, initial_balance=1_000_000.0, **pool)
    check_closes(deal, run_waterfall(deal, paths))


def test_reconciliation_closes_on_the_example_deals_with_monte_carlo_paths() -> None:
    for pd_scale in (1.0, 4.0):
        paths = realistic_pool_paths(pd_scale=pd_scale)
        for name in ("deal_cn_consumer.toml", "deal_us_consumer.toml"):
            deal = load_deal(ROOT / "examples" / name)
            check_closes(deal, run_waterfall(deal, paths))


def test_reconciliation_closes_with_every_cn_mechanic_drawn() -> None:
    # The CN example at 4x the calibrated default rates: tax, servicer advances (made and
    # repaid), the originator's shortfall undertaking, PDL refills and acceleration all move
    # cash on some path, and each is its own line of the reconciliation, which still closes.
    paths = realistic_pool_paths(pd_scale=4.0)
    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")
    r = run_waterfall(deal, paths)
    assert r.tax.sum() > 0 and r.support.sum() > 0 and r.advance_made.sum() > 0
    assert r.reimbursed.sum() > 0 and r.accelerated.any()
    rec = reconcile(deal, r)
    np.testing.assert_allclose(rec.cash_in["originator's shortfall undertaking"],
                               r.support.sum(axis=1))
    np.testing.assert_allclose(rec.borne["originator's shortfall undertaking"],
                               r.support.sum(axis=1))
    np.testing.assert_allclose(rec.cash_out["tax on interest income"], r.tax.sum(axis=1))
    np.testing.assert_allclose(rec.cash_out["servicer advances repaid"] + r.advances[:, -1],
                               rec.cash_in["servicer advances received"])
    assert sum(v.sum() for k, v in rec.cash_out.items() if k.endswith("PDL refilled")) > 0
    check_closes(deal, r)


def test_reconciliation_closes_for_a_revolving_deal_buying_new_loans() -> None:
    loans = short_tenor_loans(n=400)
    a = simple_assumptions(pd_scale=3.0)
    paths = simulate(loans, a, n_paths=60, seed=11)
    profile = simulate_replenishment(loans, a, 60, seed=11)
    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")
    r = run_waterfall(deal, paths, replenishment=profile)
    assert r.purchases.sum() > 0
    check_closes(deal, r)


def _hand_deal() -> dict:
    return {"deal": {"name": "hand", "closing_date": dt.date(2026, 1, 1),
                     "first_payment_date": dt.date(2026, 2, 1)},
            "tranches": [{"name": "A", "size": 0.8, "coupon": 0.06}, {"name": "Z", "size": 0.2}],
            "fees": [{"name": "trustee", "kind": "fixed", "amount": 100.0}],
            "waterfall": [{"step": "fee", "fee": "trustee"}, {"step": "interest", "tranche": "A"},
                          {"step": "principal", "tranches": ["A", "Z"]}, {"step": "residual"}]}


def test_hand_worked_two_months() -> None:
    # Pool 1,000,000: month 1 interest 15,000, principal 500,000, default 100,000; month 2
    # interest 6,000, principal 380,000, recovery 30,000, default 20,000 (pool ends at 0).
    # Month 1: available 515,000; fee 100; A interest 0.06/12 × 800,000 = 4,000;
    #   notes 1,000,000 vs collateral 400,000 → PDA 600,000 sequential: A gets 510,900
    #   (all that is left), A balance 289,100, Z 200,000; write-down of 489,100 − 400,000 =
    #   89,100 on Z (Z 110,900).
    # Month 2 (last): available 416,000; fee 100; A interest 0.005 × 289,100 = 1,445.50;
    #   A principal 289,100; Z principal 110,900 (its balance), residual
    #   416,000 − 100 − 1,445.50 − 289,100 − 110,900 = 14,454.50.
    # Cash: in 15,000 + 6,000 + 880,000 + 30,000 = 931,000 = fees 200 + A interest 5,445.50 +
    #   A principal 800,000 + Z principal 110,900 + residual 14,454.50.
    # Loss: defaults 120,000 − recoveries 30,000 = 90,000 = A loss 0 + Z loss 89,100 + cushion;
    #   cushion = excess spread (21,000 − 200 − 5,445.50 = 15,354.50) + OC 0 + reserve 0 −
    #   residual 14,454.50 = 900.00, all within the excess spread.
    paths = paths_from_arrays(initial_balance=1_000_000.0,
                              interest=np.array([[15_000.0, 6_000.0]]),
                              scheduled_principal=np.array([[500_000.0, 380_000.0]]),
                              default=np.array([[100_000.0, 20_000.0]]),
                              recovery=np.array([[0.0, 30_000.0]]))
    deal = deal_from_dict(_hand_deal())
    r = run_waterfall(deal, paths)
    rec = reconcile(deal, r)
    assert rec.cash_in["pool interest"][0] == 21_000.0
    assert rec.cash_out["A interest"][0] == 5_445.50
    assert rec.cash_out["A principal"][0] == 800_000.0
    assert rec.cash_out["Z principal"][0] == 110_900.0
    assert rec.cash_out["residual"][0] == 14_454.50
    assert abs(sum(rec.cash_in.values())[0] - 931_000.0) < 1e-9
    assert sum(rec.pool_loss.values())[0] == 90_000.0
    assert rec.borne["Z principal loss"][0] == 89_100.0
    assert abs(rec.borne["excess spread (residual holder investors)"][0] - 900.0) < 1e-9
    assert abs(rec.borne["initial OC and reserve (residual holder investors)"][0]) < 1e-9
    np.testing.assert_allclose(excess_spread(r)[0], [15_000 - 100 - 4_000, 6_000 - 100 - 1_445.5])
    # the residual holder (Z's holder): Z's principal plus the residual, by month
    np.testing.assert_allclose(residual_holder_cashflows(r)[0], [0.0, 110_900 + 14_454.50])
    assert residual_investment(deal, r) == 200_000.0
    row = residual_table(deal, r).iloc[0]
    # money multiple = 125,354.50 / 200,000
    assert abs(row["money_multiple"] - 125_354.50 / 200_000) < 1e-12
    # IRR on the tape: 200,000 = 125,354.50 / (1 + r)^2 → r = sqrt(0.6267725) − 1
    r_month = np.sqrt(125_354.50 / 200_000) - 1
    assert abs(row["irr_tape"] - ((1 + r_month) ** 12 - 1)) < 1e-9
    # present value at the default 5% (annual compounding, Act/365F from the closing date):
    # the holder's 125,354.50 paid on 2026-03-01, 59 days after closing; beside the 200,000
    # invested (no price per unit of Z's face: the position is Z plus OC and reserve)
    assert list(r.dates) == [dt.date(2026, 2, 1), dt.date(2026, 3, 1)]
    pv = 125_354.50 * 1.05 ** (-59 / 365)
    assert abs(row["present_value"] - pv) < 1e-6
    assert abs(row["pv_to_investment"] - pv / 200_000) < 1e-12
    assert "price" not in row.index
    tab = excess_spread_table(r)
    assert list(tab["excess_spread"]) == [10_900.0, 4_454.5]


def test_periodic_irr_against_numpy_financial() -> None:
    rng = np.random.default_rng(4)
    for _ in range(50):
        n = int(rng.integers(2, 40))
        cf = rng.uniform(0, 2_000, n)
        invest = float(rng.uniform(0.3, 1.5) * cf.sum())
        ours = periodic_irr(cf, invest)
        ref = npf.irr(np.concatenate([[-invest], cf]))  # numpy-financial, independent
        assert abs(ours - ref) < 1e-9


def test_residual_holder_of_the_cn_deal_earns_a_positive_return() -> None:
    # The CN example deal on Monte Carlo paths: the Sub holder's cash includes the residual,
    # so its IRR is positive, and the tape IRR equals numpy-financial's irr on the mean flows.
    paths = realistic_pool_paths()
    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")
    r = run_waterfall(deal, paths)
    row = residual_table(deal, r).iloc[0]
    assert row["holder"] == "platform" and row["tranche"] == "Sub"
    assert row["of_which_residual"] > 0 and row["irr"] > 0 and row["irr_tape"] > 0
    assert row["money_multiple"] > 1
    invest = residual_investment(deal, r)
    # OC 0 (sizes add to 100%), reserve at closing 1% of the pool
    assert abs(invest - (r.original_balance[-1] + 0.01 * paths.initial_balance)) < 1e-6
    tape = residual_holder_cashflows(r).mean(axis=0)
    ref = (1 + npf.irr(np.concatenate([[-invest], tape]))) ** 12 - 1
    assert abs(row["irr_tape"] - ref) < 1e-9
