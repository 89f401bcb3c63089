"""A six-month waterfall worked by hand, matched to the cent.

Deal: pool 1,000.00; A 700.00 at 12% (1% a month), B 200.00 at 24% (2% a month), Sub 100.00
(no coupon, takes the residual); trustee fee 1.00 a month; reserve 20.00 (2% of the initial
pool, funded at closing, non-declining); trigger: CNL > 3% → full turbo, not curable.
Priority: trustee fee, interest A, interest B, reserve, principal A→B→Sub, reimburse, residual.

Pool (one path):       bop     interest  sched  prepay  default  recovery  eop
    month 1         1000.00     15.00   100.00    0.00     0.00     0.00   900.00
    month 2          900.00     13.50   100.00   50.00     0.00     0.00   750.00
    month 3          750.00     11.00   100.00    0.00    50.00     0.00   600.00
    month 4          600.00      9.00   100.00    0.00     0.00     0.00   500.00
    month 5          500.00      7.50   200.00    0.00     0.00    10.00   300.00
    month 6          300.00      4.50   300.00    0.00     0.00     5.00     0.00

Month 1: available = 15 + 100 + reserve 20 = 135. Fee 1 → 134; int A 700×1% = 7 → 127;
  int B 200×2% = 4 → 123; reserve kept 20 → 103; CNL 0% (no breach); PDA = notes 1000 − pool
  900 = 100 → A 100 → 3; residual 3.  A 600, B 200, Sub 100.
Month 2: available = 13.5 + 150 + 20 = 183.5. Fee 1 → 182.5; int A 6 → 176.5; int B 4 → 172.5;
  reserve 20 → 152.5; PDA = 900 − 750 = 150 → A 150 → 2.5; residual 2.5.  A 450.
Month 3: default 50, CNL = 50/1000 = 5% > 3% → trigger breached → turbo (PDA = all notes 750).
  available = 11 + 100 + 20 = 131. Fee 1 → 130; int A 4.50 → 125.5; int B 4 → 121.5; reserve 20
  → 101.5; A gets 101.5 → 0; residual 0.  A 348.50. Notes 348.5 + 200 + 100 = 648.5 > pool 600:
  write-down 48.50 on Sub (bottom-up) → Sub 51.50.
Month 4: available = 9 + 100 + 20 = 129. Fee 1 → 128; int A 3.485 → 124.515; int B 4 → 120.515;
  reserve 20 → 100.515; turbo: A gets 100.515 → A 247.985; residual 0. Notes 499.485 ≤ pool 500.
Month 5: available = 7.5 + 200 + recovery 10 + 20 = 237.5. Fee 1 → 236.5; int A 2.47985 →
  234.02015; int B 4 → 230.02015; reserve 20 → 210.02015; A gets 210.02015 → A 37.96485.
Month 6 (legal final: reserve target 0, everything due): available = 4.5 + 300 + 5 + 20 = 329.5.
  Fee 1 → 328.5; int A 0.3796485 → 328.1203515; int B 4 → 324.1203515; principal A 37.96485 →
  286.1555015; B 200 → 86.1555015; Sub 51.50 → 34.6555015; reimburse Sub's write-down
  34.6555015 of 48.50 → 0; residual 0. Sub's principal loss = 48.50 − 34.6555015 = 13.8444985.
Check: cash in 1,025.50 + reserve 20 = fees 6 + int A 23.8444985 + int B 24
  + principal 986.1555015 + residual 5.50 = 1,045.50.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from tranching_pathgen import paths_from_arrays

from tranching.deal import deal_from_dict
from tranching.waterfall import run_waterfall

CENT = 0.005


@pytest.fixture
def worked():
    deal = deal_from_dict({
        "deal": {"name": "hand", "closing_date": dt.date(2026, 1, 1),
                 "first_payment_date": dt.date(2026, 2, 1)},
        "tranches": [{"name": "A", "size": 0.7, "coupon": 0.12},
                     {"name": "B", "size": 0.2, "coupon": 0.24},
                     {"name": "Sub", "size": 0.1, "holder": "platform"}],
        "fees": [{"name": "trustee", "kind": "fixed", "amount": 1.0}],
        "reserve": {"target": 0.02, "basis": "initial", "funding": "closing"},
        "triggers": [{"name": "cnl", "metric": "cnl", "level": 0.03, "curable": False,
                      "effect": "turbo"}],
        "waterfall": [{"step": "fee", "fee": "trustee"}, {"step": "interest", "tranche": "A"},
                      {"step": "interest", "tranche": "B"}, {"step": "reserve"},
                      {"step": "principal", "tranches": ["A", "B", "Sub"]},
                      {"step": "reimburse"}, {"step": "residual"}],
    })
    paths = paths_from_arrays(
        initial_balance=1000.0,
        interest=[[15.0, 13.5, 11.0, 9.0, 7.5, 4.5]],
        scheduled_principal=[[100.0, 100.0, 100.0, 100.0, 200.0, 300.0]],
        prepayment=[[0.0, 50.0, 0.0, 0.0, 0.0, 0.0]],
        default=[[0.0, 0.0, 50.0, 0.0, 0.0, 0.0]],
        recovery=[[0.0, 0.0, 0.0, 0.0, 10.0, 5.0]],
    )
    np.testing.assert_allclose(paths.balance_eop[0], [900, 750, 600, 500, 300, 0])
    return deal, run_waterfall(deal, paths)


def test_interest(worked) -> None:
    _, r = worked
    assert r.interest_paid[0, 0] == pytest.approx([7.0, 6.0, 4.5, 3.485, 2.47985, 0.3796485], abs=CENT)
    assert r.interest_paid[1, 0] == pytest.approx([4.0] * 6, abs=CENT)
    assert r.interest_paid[2, 0] == pytest.approx([0.0] * 6, abs=CENT)
    assert r.interest_shortfall.max() < CENT


def test_principal_writedown_and_reimbursement(worked) -> None:
    _, r = worked
    assert r.principal_paid[0, 0] == pytest.approx([100, 150, 101.5, 100.515, 210.02015, 37.96485],
                                                   abs=CENT)
    assert r.principal_paid[1, 0] == pytest.approx([0, 0, 0, 0, 0, 200], abs=CENT)
    assert r.principal_paid[2, 0] == pytest.approx([0, 0, 0, 0, 0, 51.5], abs=CENT)
    assert r.writedown[2, 0] == pytest.approx([0, 0, 48.5, 0, 0, 0], abs=CENT)
    assert r.writedown[:2].max() < CENT
    assert r.reimbursed[2, 0] == pytest.approx([0, 0, 0, 0, 0, 34.6555015], abs=CENT)
    assert r.balance[0, 0] == pytest.approx([600, 450, 348.5, 247.985, 37.96485, 0], abs=CENT)
    assert r.balance[2, 0] == pytest.approx([100, 100, 51.5, 51.5, 51.5, 0], abs=CENT)
    assert r.tranche_loss[:, 0] == pytest.approx([0.0, 0.0, 13.8444985], abs=CENT)


def test_fee_reserve_residual_and_trigger(worked) -> None:
    _, r = worked
    assert r.fees_paid["trustee"][0] == pytest.approx([1.0] * 6, abs=CENT)
    assert r.reserve[0] == pytest.approx([20, 20, 20, 20, 20, 0], abs=CENT)
    assert r.residual[0] == pytest.approx([3.0, 2.5, 0, 0, 0, 0], abs=CENT)
    assert r.triggers["cnl"][0].tolist() == [False, False, True, True, True, True]
    assert r.metrics["cnl"][0] == pytest.approx([0, 0, 0.05, 0.05, 0.04, 0.035])


def test_totals_balance(worked) -> None:
    _, r = worked
    # cash in 1,025.50 + opening reserve 20.00 = everything paid out (hand total above)
    total_out = (r.fees_paid["trustee"].sum() + r.interest_paid.sum() + r.principal_paid.sum()
                 + r.reimbursed.sum() + r.residual.sum())
    assert r.collections.sum() == pytest.approx(1025.5, abs=CENT)
    assert total_out == pytest.approx(1045.5, abs=CENT)
    assert np.abs(r.conservation_error()).max() < 1e-9
