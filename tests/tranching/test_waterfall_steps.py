"""Each handler of the priority of payments alone, on a hand-built month state, to the cent.

Every expected amount is worked out by hand in the comment next to it (the independent source).
Paths are columns: most tests run two or three paths at once to show that each path follows its
own arithmetic (one with enough cash, one short of it, ...).
"""

from __future__ import annotations

import datetime as dt
from typing import get_args

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tranching import steps
from tranching.deal import (
    Basis,
    Fee,
    FeeKind,
    FeeStep,
    Funding,
    InterestStep,
    Overcollateralisation,
    PrincipalMode,
    PrincipalStep,
    ReimburseStep,
    Reserve,
    ReserveStep,
    ResidualStep,
    Step,
    deal_from_dict,
)
from tranching.steps import (
    MonthState,
    Terms,
    buy_new_loans,
    clean_up_call,
    distribute_principal,
    oc_target,
    opening_reserve,
    pay_fee,
    pay_interest,
    pay_principal,
    pay_residual,
    pay_step,
    principal_distribution_amount,
    principal_modes,
    pro_rata_allocation,
    reimburse,
    reserve_target,
    sequential_allocation,
    take,
    top_up_reserve,
    write_down,
)

CENT = 0.005


def a(x: object) -> np.ndarray:
    return np.array(x, dtype=float)


def state(balance: list[list[float]], available: list[float], **kw: object) -> MonthState:
    """A month state with ``balance`` (tranches × paths) at the start of the month and
    ``available`` cash; every other fact zero / False unless given."""
    bal = a(balance)
    n = bal.shape[1]
    facts: dict[str, object] = dict(
        balance_bop=bal.copy(), pool_bop=np.zeros(n), collateral=np.zeros(n),
        live=np.ones(n, dtype=bool), final=np.zeros(n, dtype=bool), trap=np.zeros(n, dtype=bool),
        principal_due=np.zeros_like(bal), purchase_due=np.zeros(n), reserve_target=np.zeros(n),
        available=a(available), balance=bal, interest_shortfall=np.zeros_like(bal),
        writedown_outstanding=np.zeros_like(bal), fee_shortfall={})
    facts.update(kw)
    return MonthState(**facts)  # type: ignore[arg-type]


def test_take_pays_what_is_due_as_far_as_the_cash_goes() -> None:
    m = state([[0.0, 0.0]], [100.00, 30.00])
    paid = take(m, a([45.50, 45.50]))
    # path 1: 45.50 of 100.00 → 54.50 left; path 2: only 30.00 there → 30.00 paid, 0 left
    assert paid == pytest.approx([45.50, 30.00], abs=CENT)
    assert m.available == pytest.approx([54.50, 0.0], abs=CENT)


def test_servicer_fee_on_the_pool_at_the_start_of_the_month_plus_the_unpaid_fee() -> None:
    fee = Fee("servicer", FeeKind.SERVICER, rate=0.012)
    m = state([[0.0, 0.0]], [5_000.00, 1_100.00], pool_bop=a([1_000_000.00, 1_000_000.00]),
              fee_shortfall={"servicer": a([0.0, 250.00])})
    pay_fee(m, fee)
    # accrued 1.2% / 12 × 1,000,000.00 = 1,000.00; path 2 also owes 250.00 carried → 1,250.00
    assert m.fees_due["servicer"] == pytest.approx([1_000.00, 1_250.00], abs=CENT)
    # path 2 has 1,100.00: pays it all, carries 1,250.00 − 1,100.00 = 150.00
    assert m.fees_paid["servicer"] == pytest.approx([1_000.00, 1_100.00], abs=CENT)
    assert m.fee_shortfall["servicer"] == pytest.approx([0.0, 150.00], abs=CENT)
    assert m.available == pytest.approx([4_000.00, 0.0], abs=CENT)


def test_fixed_fee_accrues_only_while_the_deal_is_live() -> None:
    fee = Fee("trustee", FeeKind.FIXED, amount=2_000.00)
    m = state([[0.0, 0.0]], [10_000.00, 10_000.00], live=np.array([True, False]),
              fee_shortfall={"trustee": a([0.0, 300.00])})
    pay_fee(m, fee)
    # path 1: 2,000.00 accrued; path 2 (notes repaid or called): nothing accrues, the 300.00
    # carried is still due
    assert m.fees_due["trustee"] == pytest.approx([2_000.00, 300.00], abs=CENT)
    assert m.fees_paid["trustee"] == pytest.approx([2_000.00, 300.00], abs=CENT)
    assert m.available == pytest.approx([8_000.00, 9_700.00], abs=CENT)


def test_interest_is_coupon_on_the_opening_balance_plus_shortfall_without_interest_on_it() -> None:
    m = state([[700_000.00, 700_000.00], [200_000.00, 200_000.00]], [10_000.00, 3_000.00],
              interest_shortfall=a([[0.0, 0.0], [0.0, 500.00]]))
    m.balance[0] -= 100_000.00  # paid down earlier this month: interest stays on the bop balance
    pay_interest(m, 0, 0.036 / 12)
    pay_interest(m, 1, 0.054 / 12)
    # A: 3.6% / 12 × 700,000.00 = 2,100.00 on both paths
    # B: 5.4% / 12 × 200,000.00 = 900.00; path 2 also 500.00 carried (no interest on it) = 1,400.00
    assert m.interest_due[:, 0] == pytest.approx([2_100.00, 900.00], abs=CENT)
    assert m.interest_due[:, 1] == pytest.approx([2_100.00, 1_400.00], abs=CENT)
    # path 1: 10,000 − 2,100 − 900 = 7,000.00 left; path 2: 3,000 − 2,100 = 900.00 for B,
    # short 1,400.00 − 900.00 = 500.00, carried
    assert m.interest_paid[:, 1] == pytest.approx([2_100.00, 900.00], abs=CENT)
    assert m.interest_shortfall[:, 0] == pytest.approx([0.0, 0.0], abs=CENT)
    assert m.interest_shortfall[:, 1] == pytest.approx([0.0, 500.00], abs=CENT)
    assert m.available == pytest.approx([7_000.00, 0.0], abs=CENT)


def test_reserve_is_kept_up_to_its_target_from_what_is_left() -> None:
    m = state([[0.0, 0.0]], [15_000.00, 4_000.00], reserve_target=a([10_000.00, 10_000.00]))
    top_up_reserve(m)
    # path 1 keeps the full 10,000.00 and has 5,000.00 left; path 2 keeps all its 4,000.00
    assert m.reserve == pytest.approx([10_000.00, 4_000.00], abs=CENT)
    assert m.available == pytest.approx([5_000.00, 0.0], abs=CENT)


def test_revolving_purchases_spend_the_principal_due_on_new_loans() -> None:
    m = state([[900.00, 900.00]], [150.00, 80.00], purchase_due=a([100.00, 100.00]))
    buy_new_loans(m)
    # path 1 buys 100.00, 50.00 left; path 2 has 80.00: buys 80.00
    assert m.purchases == pytest.approx([100.00, 80.00], abs=CENT)
    assert m.available == pytest.approx([50.00, 0.0], abs=CENT)


def test_principal_pays_each_tranche_its_allocation_in_the_order_given() -> None:
    m = state([[600.00, 600.00], [300.00, 300.00], [100.00, 100.00]], [1_000.00, 650.00],
              principal_due=a([[600.00, 600.00], [100.00, 100.00], [0.0, 0.0]]))
    pay_principal(m, [0, 1])
    pay_principal(m, [2])
    # path 1: A 600.00, B 100.00, 300.00 left; path 2: A 600.00, B the 50.00 left
    assert m.principal_paid[:, 0] == pytest.approx([600.00, 100.00, 0.0], abs=CENT)
    assert m.principal_paid[:, 1] == pytest.approx([600.00, 50.00, 0.0], abs=CENT)
    assert m.balance[:, 0] == pytest.approx([0.0, 200.00, 100.00], abs=CENT)
    assert m.balance[:, 1] == pytest.approx([0.0, 250.00, 100.00], abs=CENT)
    assert m.available == pytest.approx([300.00, 0.0], abs=CENT)


def test_reimbursement_repays_written_down_principal_senior_first() -> None:
    m = state([[0.0], [0.0], [0.0]], [70.00],
              writedown_outstanding=a([[0.0], [40.00], [50.00]]))
    reimburse(m, [0, 1, 2])
    # B's 40.00 first, then 30.00 of Sub's 50.00; 20.00 stays written down
    assert m.reimbursed[:, 0] == pytest.approx([0.0, 40.00, 30.00], abs=CENT)
    assert m.writedown_outstanding[:, 0] == pytest.approx([0.0, 0.0, 20.00], abs=CENT)
    assert m.available == pytest.approx([0.0], abs=CENT)


def test_residual_goes_to_the_holder_unless_cash_is_trapped_before_the_final_month() -> None:
    m = state([[0.0, 0.0, 0.0]], [12.34, 12.34, 12.34], trap=np.array([False, True, True]),
              final=np.array([False, False, True]))
    m.reserve = a([5.00, 5.00, 0.0])
    pay_residual(m)
    # path 1: 12.34 to the holder; path 2 (trap in force): kept, reserve 5.00 + 12.34 = 17.34;
    # path 3 (trap, but the final month): released, 12.34 to the holder
    assert m.residual == pytest.approx([12.34, 0.0, 12.34], abs=CENT)
    assert m.reserve == pytest.approx([5.00, 17.34, 0.0], abs=CENT)
    assert m.available == pytest.approx([0.0, 0.0, 0.0], abs=CENT)


def test_write_down_bottom_up_against_the_collateral_after_purchases() -> None:
    m = state([[500.00, 500.00, 500.00], [200.00, 200.00, 200.00], [100.00, 100.00, 100.00]],
              [0.0, 0.0, 0.0], collateral=a([651.50, 380.00, 700.00]),
              final=np.array([False, False, True]),
              writedown_outstanding=a([[0.0] * 3, [0.0] * 3, [10.00, 0.0, 0.0]]))
    m.purchases = a([100.00, 0.0, 0.0])
    write_down(m)
    # path 1: collateral 651.50 + purchases 100.00 = 751.50; notes 800.00 → 48.50 off Sub
    # path 2: collateral 380.00; notes 800.00 → 420.00: Sub 100.00, B 200.00, A 120.00
    # path 3: the legal final: collateral counts as 0 → all 800.00 written down
    assert m.collateral_end == pytest.approx([751.50, 380.00, 0.0], abs=CENT)
    assert m.writedown[:, 0] == pytest.approx([0.0, 0.0, 48.50], abs=CENT)
    assert m.writedown[:, 1] == pytest.approx([120.00, 200.00, 100.00], abs=CENT)
    assert m.writedown[:, 2] == pytest.approx([500.00, 200.00, 100.00], abs=CENT)
    assert m.balance[:, 1] == pytest.approx([380.00, 0.0, 0.0], abs=CENT)
    # written down principal outstanding: path 1 had 10.00 already → 58.50
    assert m.writedown_outstanding[2] == pytest.approx([58.50, 100.00, 100.00], abs=CENT)


# -------------------------------------------------------- principal distribution by mode


def test_pda_pays_the_notes_down_to_collateral_less_the_oc_target() -> None:
    # notes 1,000.00, collateral 950.00, OC target 10% × 950.00 = 95.00 → notes target
    # 950.00 − 95.00 = 855.00 → PDA 1,000.00 − 855.00 = 145.00
    target = oc_target(Overcollateralisation(target=0.10, basis=Basis.CURRENT, floor=0.02),
                       a([950.00, 100.00, 950.00]), 1_000.00)
    # path 2: 10% × 100.00 = 10.00 < floor 2% × 1,000.00 = 20.00 → 20.00
    assert target == pytest.approx([95.00, 20.00, 95.00], abs=CENT)
    pda = principal_distribution_amount(a([1_000.00, 1_000.00, 1_000.00]), a([950.00, 100.00, 950.00]),
                                        target, all_due=np.array([False, False, True]))
    # path 2: notes target 100.00 − 20.00 = 80.00 → PDA 920.00; path 3: all due → 1,000.00
    assert pda == pytest.approx([145.00, 920.00, 1_000.00], abs=CENT)
    # no OC target and collateral above the notes: nothing due
    assert oc_target(None, a([1.0]), 1_000.00) == 0.0
    assert principal_distribution_amount(a([800.00]), a([900.00]), 0.0,
                                         np.array([False])) == pytest.approx([0.0], abs=CENT)


def test_sequential_and_pro_rata_allocations() -> None:
    bop = a([[600.00], [300.00], [100.00]])
    # sequential: 750.00 → A 600.00, B 150.00, Sub 0
    assert sequential_allocation(a([750.00]), bop)[:, 0] == pytest.approx([600.00, 150.00, 0.0],
                                                                         abs=CENT)
    # pro rata: 750.00 × (60%, 30%, 10%) = 450.00, 225.00, 75.00
    assert pro_rata_allocation(a([750.00]), bop)[:, 0] == pytest.approx([450.00, 225.00, 75.00],
                                                                        abs=CENT)
    # no notes: nothing allocated (no division by zero)
    zero = np.zeros((2, 1))
    assert pro_rata_allocation(a([10.0]), zero)[:, 0] == pytest.approx([0.0, 0.0])


def test_principal_modes_per_path() -> None:
    final = np.array([False, False, False, True])
    seq = np.array([False, True, False, False])
    turbo = np.array([False, False, True, False])
    all_due, pro_rata = principal_modes(PrincipalMode.PRO_RATA, final=final, sequential=seq,
                                        turbo=turbo)
    # pro rata except under a sequential or turbo trigger and in the final month; all due
    # under turbo and in the final month
    assert pro_rata is not None and pro_rata.tolist() == [True, False, False, False]
    assert all_due.tolist() == [False, False, True, True]
    all_due, pro_rata = principal_modes(PrincipalMode.SEQUENTIAL, final=final, sequential=seq,
                                        turbo=turbo)
    assert pro_rata is None and all_due.tolist() == [False, False, True, True]
    all_due, pro_rata = principal_modes(PrincipalMode.TURBO, final=final, sequential=seq, turbo=turbo)
    assert pro_rata is None and all_due.tolist() == [True, True, True, True]


def test_distribute_principal_buys_while_revolving_and_allocates_by_path() -> None:
    bop = a([[600.00] * 3, [300.00] * 3, [100.00] * 3])
    # collateral 850.00 on every path, no OC target → PDA 1,000.00 − 850.00 = 150.00
    due, purchase = distribute_principal(bop, a([850.00] * 3), 0.0,
                                         all_due=np.zeros(3, dtype=bool),
                                         pro_rata=np.array([False, True, True]),
                                         revolving=np.array([False, False, True]))
    # path 1 sequential: A 150.00; path 2 pro rata: 90.00, 45.00, 15.00; path 3 revolving:
    # the 150.00 buys new loans, nothing to the notes
    assert due[:, 0] == pytest.approx([150.00, 0.0, 0.0], abs=CENT)
    assert due[:, 1] == pytest.approx([90.00, 45.00, 15.00], abs=CENT)
    assert due[:, 2] == pytest.approx([0.0, 0.0, 0.0], abs=CENT)
    assert purchase == pytest.approx([0.0, 0.0, 150.00], abs=CENT)


# ------------------------------------------------------- reserve and clean-up call rules


def test_reserve_targets() -> None:
    # non-declining: max(1% × 1,000,000.00, 0) = 10,000.00; zero in the final month
    r = Reserve(target=0.01, basis=Basis.INITIAL)
    assert reserve_target(r, a([400_000.00, 400_000.00]), 1_000_000.00,
                          np.array([False, True])) == pytest.approx([10_000.00, 0.0], abs=CENT)
    # declining: 2% × pool bop 400,000.00 = 8,000.00 ; 2% × 100,000.00 = 2,000.00 < floor
    # 0.5% × 1,000,000.00 = 5,000.00
    r = Reserve(target=0.02, basis=Basis.CURRENT, floor=0.005)
    assert reserve_target(r, a([400_000.00, 100_000.00]), 1_000_000.00,
                          np.array([False, False])) == pytest.approx([8_000.00, 5_000.00], abs=CENT)
    assert reserve_target(None, a([1.0]), 1.0, np.array([False])) == pytest.approx([0.0])
    # funded at closing at its target; funded from excess spread: empty at closing
    assert opening_reserve(Reserve(0.01), 1_000_000.00, 2) == pytest.approx([10_000.00] * 2)
    assert opening_reserve(Reserve(0.01, funding=Funding.EXCESS_SPREAD), 1e6, 2) == pytest.approx([0, 0])


def test_clean_up_call_below_the_level_outside_the_revolving_period() -> None:
    collat = a([99_999.99, 100_000.00, 50_000.00, 50_000.00, 0.0])
    alive = np.array([True, True, True, False, True])
    revolving = np.array([False, False, True, False, False])
    call = clean_up_call(0.10, collat, 1_000_000.00, alive=alive, revolving=revolving)
    # 10% × 1,000,000.00 = 100,000.00: path 1 below it; path 2 at it (not below); path 3
    # revolving; path 4 already called; path 5 nothing left to buy
    assert call.tolist() == [True, False, False, False, False]
    assert not clean_up_call(None, collat, 1e6, alive=alive, revolving=revolving).any()


# ------------------------------------------------------------------------- the dispatcher


def _deal(revolving: int = 0, head: dict[str, object] | None = None):
    d = {"deal": head or {"name": "s", "closing_date": dt.date(2026, 1, 1),
                          "first_payment_date": dt.date(2026, 2, 1)},
         "tranches": [{"name": "A", "size": 0.7, "coupon": 0.12},
                      {"name": "B", "size": 0.2, "coupon": 0.24},
                      {"name": "Sub", "size": 0.1, "holder": "platform"}],
         "fees": [{"name": "trustee", "kind": "fixed", "amount": 1.0}],
         "reserve": {"target": 0.02, "basis": "initial", "funding": "closing"},
         "waterfall": [{"step": "fee", "fee": "trustee"}, {"step": "interest", "tranche": "A"},
                       {"step": "interest", "tranche": "B"}, {"step": "reserve"},
                       {"step": "principal", "tranches": ["A", "B"]},
                       {"step": "principal", "tranches": ["Sub"]},
                       {"step": "reimburse"}, {"step": "residual"}]}
    if revolving:
        d["revolving"] = {"months": revolving}
    return deal_from_dict(d)


def test_every_step_type_has_a_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    for name in ("pay_fee", "pay_interest", "top_up_reserve", "buy_new_loans", "pay_principal",
                 "reimburse", "pay_residual"):
        monkeypatch.setattr(steps, name, lambda *args, _n=name, **kw: calls.append(_n))
    terms = Terms.of(_deal(revolving=3), 1_000.00)
    m = state([[0.0], [0.0], [0.0]], [0.0])
    examples: dict[type, Step] = {FeeStep: FeeStep("trustee"), InterestStep: InterestStep("A"),
                                  ReserveStep: ReserveStep(), PrincipalStep: PrincipalStep(("A",)),
                                  ReimburseStep: ReimburseStep(("A",)), ResidualStep: ResidualStep()}
    assert set(examples) == set(get_args(Step))
    for step in examples.values():  # as step 4, where this deal buys new loans
        pay_step(step, 4, terms, m)
    assert calls == ["pay_fee", "pay_interest", "top_up_reserve", "buy_new_loans",
                     "pay_principal", "reimburse", "pay_residual"]


def test_new_loans_are_bought_at_the_first_principal_step_only() -> None:
    deal = _deal(revolving=3)
    terms = Terms.of(deal, 1_000.00)
    assert terms.purchase_step == 4  # fee, interest A, interest B, reserve, → principal A, B
    assert Terms.of(_deal(revolving=0), 1_000.00).purchase_step is None
    m = state([[700.00], [200.00], [100.00]], [250.00], purchase_due=a([100.00]),
              principal_due=a([[0.0], [0.0], [0.0]]))
    pay_step(deal.waterfall[5], 5, terms, m)  # the second principal step: no purchase
    assert m.purchases == pytest.approx([0.0])
    pay_step(deal.waterfall[4], 4, terms, m)
    assert m.purchases == pytest.approx([100.00], abs=CENT)
    assert m.available == pytest.approx([150.00], abs=CENT)


def test_a_whole_month_through_the_handlers_matches_the_hand_worked_waterfall() -> None:
    # Month 6 (the legal final) of test_waterfall_handworked.py, from the handlers alone.
    # Opening: A 37.96485, B 200.00, Sub 51.50 (48.50 written down); available = interest 4.50
    # + principal 300.00 + recovery 5.00 + reserve 20.00 = 329.50. Everything is due.
    # Fee 1.00 → 328.50; int A 1% × 37.96485 = 0.3796485 → 328.1203515; int B 2% × 200 = 4.00
    # → 324.1203515; reserve target 0 (final); principal A 37.96485 → 286.1555015, B 200.00 →
    # 86.1555015, Sub 51.50 → 34.6555015; reimburse Sub 34.6555015 of 48.50 → 0; residual 0.
    deal = _deal()
    terms = Terms.of(deal, 1_000.00)
    bop = a([[37.96485], [200.00], [51.50]])
    final = np.array([True])
    all_due, pro_rata = principal_modes(deal.principal_mode, final=final,
                                        sequential=np.array([False]), turbo=np.array([True]))
    due, purchase = distribute_principal(bop, a([0.0]), 0.0, all_due=all_due, pro_rata=pro_rata,
                                         revolving=np.array([False]))
    m = state(bop.tolist(), [329.50], final=final, principal_due=due, purchase_due=purchase,
              reserve_target=reserve_target(deal.reserve, a([300.00]), 1_000.00, final),
              writedown_outstanding=a([[0.0], [0.0], [48.50]]),
              fee_shortfall={"trustee": a([0.0])})
    for k, step in enumerate(deal.waterfall):
        pay_step(step, k, terms, m)
    write_down(m)
    assert m.fees_paid["trustee"] == pytest.approx([1.00], abs=CENT)
    assert m.interest_paid[:, 0] == pytest.approx([0.3796485, 4.00, 0.0], abs=CENT)
    assert m.principal_paid[:, 0] == pytest.approx([37.96485, 200.00, 51.50], abs=CENT)
    assert m.reimbursed[:, 0] == pytest.approx([0.0, 0.0, 34.6555015], abs=CENT)
    assert m.reserve == pytest.approx([0.0]) and m.residual == pytest.approx([0.0], abs=CENT)
    # Sub's loss = 48.50 − 34.6555015 = 13.8444985, still written down after the last month
    assert m.writedown_outstanding[:, 0] == pytest.approx([0.0, 0.0, 13.8444985], abs=CENT)
    assert m.balance[:, 0] == pytest.approx([0.0, 0.0, 0.0], abs=CENT)


@settings(max_examples=300, deadline=None)
@given(start=st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2060, 12, 31)),
       days=st.integers(min_value=1, max_value=800))
def test_days_30_360_is_quantlibs_bond_basis(start: dt.date, days: int) -> None:
    # the first coupon period's day count: QuantLib's Thirty360(BondBasis) (2006 ISDA
    # Definitions 4.16(f)) as the independent source; month ends (28th-31st) included
    import QuantLib as ql

    from tranching.steps import days_30_360

    end = start + dt.timedelta(days=days)
    want = ql.Thirty360(ql.Thirty360.BondBasis).dayCount(
        ql.Date(start.day, start.month, start.year), ql.Date(end.day, end.month, end.year))
    assert days_30_360(start, end) == want


def test_first_coupon_accrues_from_closing_by_30_360() -> None:
    # closing 2026-07-15, first payment 2026-08-26: 41 days 30/360 (not one month's 30);
    # 15th to 15th is one month, and then the terms are the same object (the same floats)
    base = {"name": "t", "closing_date": dt.date(2026, 7, 15),
            "first_payment_date": dt.date(2026, 8, 26)}
    long_first = Terms.of(_deal(head=base), 1e6)
    assert long_first.first_period_months == 41 / 30
    assert long_first.for_month(0).monthly_coupon == pytest.approx(
        long_first.monthly_coupon * 41 / 30, rel=1e-15)
    assert long_first.for_month(1) is long_first
    one_month = Terms.of(_deal(head={**base, "first_payment_date": dt.date(2026, 8, 15)}), 1e6)
    assert one_month.for_month(0) is one_month
