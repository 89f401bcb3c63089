"""The deal mechanics of issue 12 worked by hand, each to the cent: a PDL with interest accruing
through a write-down and a later refill; a step-down with the switch to pro rata and a trigger
back to sequential; an acceleration after an event of default; the originator's shortfall
undertaking paying a senior shortfall. The arithmetic is written out above each test; the
waterfall is checked against it, not against itself."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest
from tranching_pathgen import paths_from_arrays

from tranching.deal import deal_from_dict
from tranching.waterfall import run_waterfall

CENT = 0.005
HEAD = {"name": "hand", "closing_date": dt.date(2026, 1, 1),
        "first_payment_date": dt.date(2026, 2, 1)}


def _deal(head: dict[str, Any] | None = None, **parts: Any):
    return deal_from_dict({"deal": {**HEAD, **(head or {})}, **parts})


# ------------------------------------------------------------------------------------ PDL
# Pool 1,000.00; A 800.00 at 12% (1% a month), B 200.00 at 24% (2% a month); no fees.
# Priority: interest A, PDL A, interest B, PDL B, principal A→B, residual.
#             bop     interest  sched   default   eop
#  month 1  1000.00    10.00     0.00   100.00   900.00
#  month 2   900.00    30.00     0.00     0.00   900.00
#  month 3   900.00     9.00   900.00     0.00     0.00   (legal final)
# Full accrual (coupon on balance + PDL):
#  m1: available 10. Int A 800×1% = 8 → 2 left. Int B 200×2% = 4, paid 2, shortfall 2.
#      PDA = 1000 − 900 = 100 due to A, nothing left → 0. Notes 1000 > pool 900: write-down 100
#      on B (bottom-up) → B 100.00, PDL_B 100.00.
#  m2: available 30. Int A 8 → 22. Int B (100 + PDL 100)×2% = 4 + shortfall 2 = 6 → 16 left.
#      PDL B refilled 16 → PDL_B 84.00. PDA = 900 − 900 = 0. Residual 0.
#  m3: available 909. Int A 8 → 901. Int B (100 + 84)×2% = 3.68 → 897.32. PDL B refilled 84
#      → 813.32. Principal (all due): A 800 → 13.32; B 13.32 of 100 → B 86.68, written down at
#      the legal final → PDL_B 86.68, B's loss 200 − 16 − 84 − 13.32 = 86.68.
#  Cash: in 10 + 30 + 909 = 949 = int A 24 + int B 11.68 + PDL refills 100 + principal 813.32.
# Outstanding accrual (coupon on the written-down balance only): m2 int B = 100×2% + 2 = 4,
#  refill 18 → PDL 82; m3 int B = 100×2% = 2 → 899; refill 82 → 817; A 800 → 17; B 17 → loss 83.
# Interest on interest (full accrual): m2 int B = 4 + 2×1.02 = 6.04, refill 15.96 → PDL 84.04;
#  m3 int B = (100 + 84.04)×2% = 3.6808 → 897.3192; refill 84.04 → 813.2792; B 13.2792 → loss
#  200 − 15.96 − 84.04 − 13.2792 = 86.7208.

def _pdl_case(**head: Any):
    deal = _deal(head, tranches=[{"name": "A", "size": 0.8, "coupon": 0.12},
                                 {"name": "B", "size": 0.2, "coupon": 0.24}],
                 waterfall=[{"step": "interest", "tranche": "A"},
                            {"step": "reimburse", "tranches": ["A"]},
                            {"step": "interest", "tranche": "B"},
                            {"step": "reimburse", "tranches": ["B"]},
                            {"step": "principal", "tranches": ["A", "B"]},
                            {"step": "residual"}])
    paths = paths_from_arrays(initial_balance=1000.0, interest=[[10.0, 30.0, 9.0]],
                              scheduled_principal=[[0.0, 0.0, 900.0]],
                              default=[[100.0, 0.0, 0.0]])
    return run_waterfall(deal, paths)


def test_pdl_accrues_interest_through_the_write_down_and_is_refilled_from_interest() -> None:
    r = _pdl_case()
    assert r.interest_due[1, 0] == pytest.approx([4.00, 6.00, 3.68], abs=CENT)
    assert r.interest_paid[1, 0] == pytest.approx([2.00, 6.00, 3.68], abs=CENT)
    assert r.interest_shortfall[1, 0] == pytest.approx([2.00, 0.0, 0.0], abs=CENT)
    assert r.pdl[1, 0] == pytest.approx([100.00, 84.00, 86.68], abs=CENT)
    assert r.reimbursed[1, 0] == pytest.approx([0.0, 16.00, 84.00], abs=CENT)
    assert r.principal_paid[:, 0].sum(axis=1) == pytest.approx([800.00, 13.32], abs=CENT)
    assert r.tranche_loss[:, 0] == pytest.approx([0.0, 86.68], abs=CENT)
    assert r.pdl.min() >= 0.0
    assert np.abs(r.conservation_error()).max() < 1e-9


def test_outstanding_accrual_stops_the_coupon_on_the_written_down_principal() -> None:
    r = _pdl_case(accrual="outstanding")
    assert r.interest_due[1, 0] == pytest.approx([4.00, 4.00, 2.00], abs=CENT)
    assert r.pdl[1, 0] == pytest.approx([100.00, 82.00, 83.00], abs=CENT)
    assert r.tranche_loss[:, 0] == pytest.approx([0.0, 83.00], abs=CENT)


def test_unpaid_interest_bears_interest_when_the_deal_says_so() -> None:
    r = _pdl_case(interest_on_shortfall=True)
    assert r.interest_due[1, 0] == pytest.approx([4.00, 6.04, 3.6808], abs=CENT)
    assert r.pdl[1, 0, 1] == pytest.approx(84.04, abs=CENT)
    assert r.tranche_loss[1, 0] == pytest.approx(86.7208, abs=CENT)


# ------------------------------------------------------------------ step-down and pro rata
# Pool 1,000.00; A 800.00, B 200.00, no coupons, no fees; pro rata from the step-down month 2;
# performance test: 90+ DPD balance (this month's defaults) / pool > 5%, curable → sequential.
#             bop     interest  sched   default   eop      90+ ratio
#  month 1  1000.00     0.00   100.00     0.00   900.00    0
#  month 2   900.00     0.00    90.00     0.00   810.00    0
#  month 3   810.00    81.00    81.00    81.00   648.00    81 / 648 = 12.5% > 5%: breach
#  month 4   648.00     0.00    64.80     0.00   583.20    0: cured
#  month 5   583.20     0.00   583.20     0.00     0.00    (legal final)
#  m1 (before the step-down): sequential, PDA 100 → A 100. A 700, B 200.
#  m2 pro rata: PDA 90 → A 90×700/900 = 70, B 90×200/900 = 20. A 630, B 180.
#  m3 breach → sequential: available 81 + 81 = 162 = PDA 810 − 648 → A 162. A 468, B 180.
#  m4 cured → pro rata: PDA 64.80 → A 64.8×468/648 = 46.80, B 64.8×180/648 = 18. A 421.20, B 162.
#  m5 legal final: all due, sequential: A 421.20, B 162.

def test_step_down_switches_to_pro_rata_and_a_breach_switches_back_to_sequential() -> None:
    deal = _deal({"principal_mode": "pro_rata", "step_down_month": 2},
                 tranches=[{"name": "A", "size": 0.8, "coupon": 0.0},
                           {"name": "B", "size": 0.2}],
                 triggers=[{"name": "dq", "metric": "dpd90", "level": 0.05, "curable": True,
                            "effect": "sequential"}])
    paths = paths_from_arrays(initial_balance=1000.0, interest=[[0.0, 0.0, 81.0, 0.0, 0.0]],
                              scheduled_principal=[[100.0, 90.0, 81.0, 64.8, 583.2]],
                              default=[[0.0, 0.0, 81.0, 0.0, 0.0]])
    r = run_waterfall(deal, paths)
    assert r.metrics["dpd90"][0, 2] == pytest.approx(0.125)
    assert r.pro_rata[0].tolist() == [False, True, False, True, False]
    assert r.principal_paid[0, 0] == pytest.approx([100.0, 70.0, 162.0, 46.8, 421.2], abs=CENT)
    assert r.principal_paid[1, 0] == pytest.approx([0.0, 20.0, 0.0, 18.0, 162.0], abs=CENT)
    assert r.tranche_loss[:, 0] == pytest.approx([0.0, 0.0], abs=CENT)


# ------------------------------------------------------------------ event of default
# Pool 1,000.00; A 800.00 at 12% (1%), B 200.00 at 24% (2%); trustee fee 1.00 a month; reserve
# 10.00 (1% of the initial pool, at closing); event of default: CNL > 5%, not curable.
# Normal priority: fee, int A, int B, reserve, principal A→B, residual.
#             bop     interest  sched   default   eop
#  month 1  1000.00    20.00   100.00     0.00   900.00
#  month 2   900.00    18.00   100.00   100.00   700.00   CNL 10% > 5%: accelerated
#  month 3   700.00    14.00   700.00     0.00     0.00   (legal final)
#  m1: available 20 + 100 + reserve 10 = 130. Fee 1 → 129; int A 8 → 121; int B 4 → 117;
#      reserve 10 → 107; PDA 100 → A → 7; residual 7. A 700, B 200.
#  m2 accelerated (fees, then A's interest and all its principal, then B's; the reserve is
#      released): available 18 + 100 + 10 = 128. Fee 1 → 127; int A 7 → 120; principal A 120 of
#      700 → A 580; int B 4 unpaid (shortfall 4); residual 0. Notes 780 > pool 700: B written
#      down 80 → B 120, PDL 80.
#  m3: available 714. Fee 1 → 713; int A 5.80 → 707.20; principal A 580 → 127.20; int B
#      (120 + 80)×2% + 4 = 8 → 119.20; principal B 119.20 of 120 → 0.80 written down at the
#      legal final. B's loss = 200 − 119.20 = 80.80.
#  Cash: in 10 + 120 + 118 + 714 = 962 = fees 3 + int A 20.80 + int B 12 + principal 919.20
#      + residual 7.

def test_an_event_of_default_sends_all_cash_to_the_senior_class() -> None:
    deal = _deal(tranches=[{"name": "A", "size": 0.8, "coupon": 0.12},
                           {"name": "B", "size": 0.2, "coupon": 0.24}],
                 fees=[{"name": "trustee", "kind": "fixed", "amount": 1.0}],
                 reserve={"target": 0.01},
                 triggers=[{"name": "eod", "metric": "cnl", "level": 0.05,
                            "effect": "accelerate"}])
    paths = paths_from_arrays(initial_balance=1000.0, interest=[[20.0, 18.0, 14.0]],
                              scheduled_principal=[[100.0, 100.0, 700.0]],
                              default=[[0.0, 100.0, 0.0]])
    r = run_waterfall(deal, paths)
    assert r.accelerated[0].tolist() == [False, True, True]
    assert r.interest_paid[0, 0] == pytest.approx([8.0, 7.0, 5.8], abs=CENT)
    assert r.principal_paid[0, 0] == pytest.approx([100.0, 120.0, 580.0], abs=CENT)
    assert r.interest_paid[1, 0] == pytest.approx([4.0, 0.0, 8.0], abs=CENT)
    assert r.interest_shortfall[1, 0] == pytest.approx([0.0, 4.0, 0.0], abs=CENT)
    assert r.principal_paid[1, 0] == pytest.approx([0.0, 0.0, 119.2], abs=CENT)
    assert r.reserve[0] == pytest.approx([10.0, 0.0, 0.0], abs=CENT)
    assert r.residual[0] == pytest.approx([7.0, 0.0, 0.0], abs=CENT)
    assert r.tranche_loss[:, 0] == pytest.approx([0.0, 80.8], abs=CENT)
    assert np.abs(r.conservation_error()).max() < 1e-9


# ------------------------------------------------------------ the shortfall undertaking
# Pool 1,000.00; A 900.00 at 12% (1%), B 100.00 (no coupon); trustee fee 5.00 a month; the
# originator's undertaking covers A up to 2% of the initial pool = 20.00.
#             bop     interest  sched   default   eop
#  month 1  1000.00     3.00     0.00     0.00  1000.00
#  month 2  1000.00     2.00   880.00   120.00     0.00   (legal final)
#  m1: available 3. Fee 5: paid 3, 2 carried. Int A 9: nothing left → the undertaking pays 9
#      (11.00 of the cap left). PDA 0.
#  m2: available 882. Fee 5 + 2 = 7 → 875; int A 9 → 866; principal A 866 of 900 → 34 owed at
#      the legal final → the undertaking pays 11 (cap used up) → A owes 23, written down; B
#      gets nothing. A's loss 23.00; the originator's loss 20.00.
#  Cash: in 3 + 882 + undertaking 20 = 905 = fees 10 + int A 18 + principal A 877.

def test_the_shortfall_undertaking_pays_a_senior_shortfall_up_to_its_cap() -> None:
    deal = _deal(tranches=[{"name": "A", "size": 0.9, "coupon": 0.12},
                           {"name": "B", "size": 0.1}],
                 fees=[{"name": "trustee", "kind": "fixed", "amount": 5.0}],
                 shortfall_undertaking={"cap": 0.02, "tranches": ["A"]})
    paths = paths_from_arrays(initial_balance=1000.0, interest=[[3.0, 2.0]],
                              scheduled_principal=[[0.0, 880.0]], default=[[0.0, 120.0]])
    r = run_waterfall(deal, paths)
    assert r.fees_paid["trustee"][0] == pytest.approx([3.0, 7.0], abs=CENT)
    assert r.support_interest[0, 0] == pytest.approx([9.0, 0.0], abs=CENT)
    assert r.interest_paid[0, 0] == pytest.approx([9.0, 9.0], abs=CENT)
    assert r.support_principal[0, 0] == pytest.approx([0.0, 11.0], abs=CENT)
    assert r.principal_paid[0, 0] == pytest.approx([0.0, 877.0], abs=CENT)
    assert r.support_drawn == pytest.approx([20.0], abs=CENT)
    assert r.tranche_loss[:, 0] == pytest.approx([23.0, 100.0], abs=CENT)
    assert np.abs(r.conservation_error()).max() < 1e-9


# ------------------------------------------- tax, servicer advances, the clean-up call
# Pool 1,000.00; A 900.00, B 100.00, no coupons; VAT 3% price-inclusive on the interest
# collected; servicer advances up to 1% of the pool; clean-up call below 50% of the pool.
#             bop     interest  sched   default   eop
#  month 1  1000.00    10.30   100.00     0.00   900.00   30+ DPD = month 2's default 50
#  month 2   900.00     9.27   400.00    50.00   450.00   450 < 500: called at par
#  m1: available 110.30; tax 10.30 × 0.03 / 1.03 = 0.30 → 110.00; advance: the pool's rate
#      10.30 / 1000 = 1.03% × 50 = 0.515 → 110.515; PDA 100 → A 100; residual 10.515.
#  m2: available 409.27 + call 450 = 859.27; tax 0.27 → 859.00; advance repaid 0.515 →
#      858.485 (no new advance at the call); A 800 → 58.485; B 58.485 of 100, 41.515 lost.

def test_tax_advances_and_the_call_month() -> None:
    deal = _deal({"clean_up_call": 0.5},
                 tranches=[{"name": "A", "size": 0.9, "coupon": 0.0}, {"name": "B", "size": 0.1}],
                 tax={"rate": 0.03}, advances={"limit": 0.01})
    paths = paths_from_arrays(initial_balance=1000.0, interest=[[10.30, 9.27, 4.5]],
                              scheduled_principal=[[100.0, 400.0, 450.0]],
                              default=[[0.0, 50.0, 0.0]])
    r = run_waterfall(deal, paths)
    assert r.tax[0] == pytest.approx([0.30, 0.27, 0.0], abs=CENT)
    assert r.advance_made[0] == pytest.approx([0.515, 0.0, 0.0], abs=CENT)
    assert r.advance_recovered[0] == pytest.approx([0.0, 0.515, 0.0], abs=CENT)
    assert r.call_month.tolist() == [1]
    assert r.call_proceeds[0] == pytest.approx([0.0, 450.0, 0.0], abs=CENT)
    assert r.principal_paid[:, 0, 1] == pytest.approx([800.0, 58.485], abs=CENT)
    assert r.residual[0] == pytest.approx([10.515, 0.0, 0.0], abs=CENT)
    assert np.abs(r.conservation_error()).max() < 1e-9


# ------------------------------------------------- CNL over initial plus purchases
# Pool 1,000.00, A 900.00, B 100.00, no coupons; revolving 2 months (scaling approximation).
#  m1: sched 100, default 50 → pool 850. CNL = 50 / 1000 = 5% either way (nothing bought yet).
#      PDA = 1000 − 850 = 150 spent on new loans, 100 available → purchases 100.
#  m2: no new loss: CNL over initial = 50 / 1000 = 5%; over initial plus purchases
#      = 50 / (1000 + 100) = 4.5455%.

def test_cnl_over_initial_plus_purchases() -> None:
    deal = _deal(tranches=[{"name": "A", "size": 0.9, "coupon": 0.0}, {"name": "B", "size": 0.1}],
                 revolving={"months": 2})
    paths = paths_from_arrays(initial_balance=1000.0, interest=[[0.0, 0.0, 0.0]],
                              scheduled_principal=[[100.0, 100.0, 650.0]],
                              default=[[50.0, 0.0, 0.0]])
    r = run_waterfall(deal, paths)
    assert r.purchases[0, 0] == pytest.approx(100.0, abs=CENT)
    assert r.metrics["cnl"][0, :2] == pytest.approx([0.05, 0.05])
    assert r.metrics["cnl_purchases"][0, :2] == pytest.approx([0.05, 50.0 / 1100.0])
