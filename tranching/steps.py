"""The priority of payments step by step: the month state the steps share, one handler per step.

``tranching.waterfall.run_waterfall`` runs a deal month by month on every path at once. Each
month it works out the month's facts (pool cash, triggers, the clean-up call, what principal is
due), puts them in a :class:`MonthState` (per-path arrays), then runs the deal's steps in the
order the deal states them through :func:`pay_step`, and finally :func:`write_down`.

Every handler reads the state, takes cash from the available funds with :func:`take` (never
more than is there, so cash is conserved by construction) and records what it paid. A deal with
separate collection accounts (``[accounts]``) holds two pots: ``available`` is then the interest
account and ``principal_account`` the principal account; the interest-side handlers draw with
:func:`take_interest` (the principal account covering their shortfall where the deal says so),
the principal-side ones with :func:`take_principal` (the interest account covering theirs), and
each transfer is recorded (``to_interest``, ``to_principal``). Where the accounts are merged
(a call, the legal final, an event of default) the principal account is empty and principal is
paid from the one pot:

=============  ===========================================================================
deal step      handler
=============  ===========================================================================
``fee``        :func:`pay_fee` — this month's fee plus any fee unpaid earlier
``interest``   :func:`pay_interest` — coupon on the balance at the start of the month (with
               its PDL unless the deal accrues on the outstanding balance only) plus the
               shortfall carried (and the coupon on it if the deal says so); the
               originator's shortfall undertaking pays what is unpaid of a covered class
``reserve``    :func:`top_up_reserve` — keep cash in the reserve up to its target
``principal``  :func:`buy_new_loans` (revolving deals, at the first principal step), then
               :func:`pay_principal` — each tranche's share of the principal distribution
``reimburse``  :func:`reimburse` — refill each named class's PDL (its written-down
               principal), in the order named
``residual``   :func:`pay_residual` — all that is left, to the subordinated holder (or kept in
               the reserve while a ``trap_cash`` trigger is in force)
=============  ===========================================================================

The month's rules that are not steps of the deal are functions here too: what principal is due
and how it is allocated by mode (:func:`principal_modes`, :func:`principal_distribution_amount`,
:func:`sequential_allocation`, :func:`pro_rata_allocation`, :func:`distribute_principal`), the
reserve target (:func:`opening_reserve`, :func:`reserve_target`), the clean-up call
(:func:`clean_up_call`), what comes before every step (:func:`recover_advances`,
:func:`pay_tax`, :func:`make_advance`), the order of payments after an event of default
(:func:`acceleration_steps`) and the loss allocation after the steps (:func:`write_down`).

A new step type is a dataclass in ``tranching.deal``'s ``Step`` union, a handler here that
changes a ``MonthState`` (new ledgers or accounts are new fields), and a case in
:func:`pay_step`; mypy's ``assert_never`` flags a ``Step`` without a case.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass, field, replace
from typing import assert_never

import numpy as np

from tranching.deal import (
    Accrual,
    Advances,
    Basis,
    Deal,
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
    Tax,
)


@dataclass(frozen=True, slots=True)
class Terms:
    """A deal's numbers resolved once against a pool: what the handlers look up by name."""

    initial_balance: float  # the pool's initial balance, CNY
    amounts: np.ndarray  # (n_tranches,) original tranche balances, CNY
    monthly_coupon: np.ndarray  # (n_tranches,) annual coupon / 12 (30/360)
    index: Mapping[str, int]  # tranche name -> seniority position
    fees: Mapping[str, Fee]
    purchase_step: int | None  # the step at which new loans are bought (revolving deals)
    full_accrual: bool = False  # coupons accrue on balance + PDL (Accrual.FULL)
    interest_on_shortfall: bool = False
    covered: frozenset[int] = frozenset()  # tranches under the shortfall undertaking
    # separate collection accounts: the deal's rules for moving cash between them
    cover_expenses: bool = False  # principal account covers tax and fees
    cover_interest: frozenset[int] = frozenset()  # ... and these classes' interest
    cover_principal: bool = False  # interest account covers principal and purchases
    # the first payment date's coupon period runs from closing: its 30/360 days / 30
    first_period_months: float = 1.0

    def for_month(self, t: int) -> Terms:
        """The terms of month ``t``: the coupons of the first payment date accrue from the
        closing date (``first_period_months`` × the monthly coupon, 30/360), every later
        one over one month; the same object when the first period is one month."""
        if t > 0 or self.first_period_months == 1.0:
            return self
        return replace(self, monthly_coupon=self.monthly_coupon * self.first_period_months)

    @classmethod
    def of(cls, deal: Deal, initial_balance: float) -> Terms:
        principal_steps = [k for k, s in enumerate(deal.waterfall) if isinstance(s, PrincipalStep)]
        acc = deal.accounts
        return cls(
            initial_balance=initial_balance,
            amounts=np.asarray(deal.tranche_amounts(initial_balance), dtype=np.float64),
            monthly_coupon=np.array([t.coupon for t in deal.tranches]) / 12.0,
            index={n: i for i, n in enumerate(deal.tranche_names)},
            fees={f.name: f for f in deal.fees},
            purchase_step=principal_steps[0] if deal.revolving_months > 0 else None,
            full_accrual=deal.accrual is Accrual.FULL,
            interest_on_shortfall=deal.interest_on_shortfall,
            covered=frozenset(deal.index(n) for n in (
                deal.shortfall_undertaking.tranches if deal.shortfall_undertaking else ())),
            cover_expenses=acc is not None and acc.principal_covers_expenses,
            cover_interest=frozenset(deal.index(n) for n in (
                acc.principal_covers_interest if acc is not None else ())),
            cover_principal=acc is not None and acc.interest_covers_principal,
            first_period_months=days_30_360(deal.closing_date, deal.first_payment_date) / 30.0,
        )

    def positions(self, tranches: Sequence[str]) -> list[int]:
        return [self.index[n] for n in tranches]


def days_30_360(start: dt.date, end: dt.date) -> int:
    """Days from ``start`` to ``end`` by the 30/360 (Bond Basis) day count of the 2006 ISDA
    Definitions, section 4.16(f): 360 × years + 30 × months + D2 − D1, with D1 = 31 → 30 and
    D2 = 31 → 30 when D1 is 30 or 31. One month between the same day of two months is 30."""
    d1 = min(start.day, 30)
    d2 = 30 if end.day == 31 and d1 == 30 else end.day
    return 360 * (end.year - start.year) + 30 * (end.month - start.month) + d2 - d1


# the month's tranche payments MonthState can write straight into given zeroed arrays
OUTPUT_ROWS = ("interest_due", "interest_paid", "principal_paid", "reimbursed", "writedown",
               "support_interest", "support_principal")


@dataclass(slots=True)
class MonthState:
    """One payment date on every path, as the priority of payments sees and changes it.

    Tranche arrays are (n_tranches, n_paths) in seniority order, the others (n_paths,), CNY.
    ``balance``, ``interest_shortfall``, ``writedown_outstanding`` and ``fee_shortfall`` are the
    deal's running ledgers: the run passes the same arrays from month to month and the steps
    update them in place. The month's payments start at zero."""

    # facts of the month, fixed before the steps run
    balance_bop: np.ndarray  # note balances at the start of the month
    pool_bop: np.ndarray  # pool performing balance at the start of the month
    collateral: np.ndarray  # pool performing balance at month end (0 where called)
    live: np.ndarray  # bool: the deal runs and notes or write-downs are outstanding
    final: np.ndarray  # bool: clean-up call or legal final: everything due, reserve released
    trap: np.ndarray  # bool: a trap_cash trigger is in force
    principal_due: np.ndarray  # (n_tranches, n_paths) the principal distribution, allocated
    purchase_due: np.ndarray  # principal spent on new loans while revolving
    reserve_target: np.ndarray
    # cash not yet paid out: collections + call proceeds + the reserve released
    available: np.ndarray
    # running ledgers
    balance: np.ndarray
    interest_shortfall: np.ndarray  # unpaid interest carried
    writedown_outstanding: np.ndarray  # written-down principal not yet reimbursed
    fee_shortfall: dict[str, np.ndarray]  # unpaid fees carried
    # coupons accrue on this (n_tranches, n_paths): balance_bop, plus the PDL at the start of
    # the month under full accrual (None: balance_bop)
    accrual_base: np.ndarray | None = None
    # the shortfall undertaking's cap not yet drawn (None: no undertaking)
    support_left: np.ndarray | None = None
    # separate accounts: the principal account's cash not yet paid out (``available`` is then
    # the interest account); None: one pot
    principal_account: np.ndarray | None = None
    # bool: the accounts are one pot this month (call, legal final, event of default)
    merged: np.ndarray | None = None
    # bool: all the notes are due as principal (turbo): the interest account covers principal
    # whatever the deal's rule, so nothing reaches the residual while a note is unpaid
    sweep: np.ndarray | None = None
    # zeroed (n_tranches, n_paths) arrays the month's tranche payments are written into, by
    # field name (``OUTPUT_ROWS``; the run's tape rows, so they need no copy); None: new ones
    rows: InitVar[Mapping[str, np.ndarray] | None] = None
    # paid this month
    fees_due: dict[str, np.ndarray] = field(init=False)
    fees_paid: dict[str, np.ndarray] = field(init=False)
    interest_due: np.ndarray = field(init=False)
    interest_paid: np.ndarray = field(init=False)
    principal_paid: np.ndarray = field(init=False)
    reimbursed: np.ndarray = field(init=False)
    writedown: np.ndarray = field(init=False)
    purchases: np.ndarray = field(init=False)
    reserve: np.ndarray = field(init=False)  # reserve balance at month end
    residual: np.ndarray = field(init=False)
    collateral_end: np.ndarray = field(init=False)  # collateral after purchases (write_down)
    support: np.ndarray = field(init=False)  # drawn from the shortfall undertaking
    support_interest: np.ndarray = field(init=False)  # (n_tranches, n_paths) of which interest
    support_principal: np.ndarray = field(init=False)  # (n_tranches, n_paths) of which principal
    tax: np.ndarray = field(init=False)  # tax paid on the interest collected
    advance_recovered: np.ndarray = field(init=False)  # servicer advances repaid
    advance_made: np.ndarray = field(init=False)  # servicer advances received
    to_interest: np.ndarray = field(init=False)  # principal account -> interest account
    to_principal: np.ndarray = field(init=False)  # interest account -> principal account

    def __post_init__(self, rows: Mapping[str, np.ndarray] | None) -> None:
        shape, n_paths = self.balance.shape, self.balance.shape[1]
        given = rows if rows is not None else {}

        def zeros(name: str) -> np.ndarray:
            return given[name] if name in given else np.zeros(shape)

        if self.accrual_base is None:
            self.accrual_base = self.balance_bop
        if self.support_left is None:
            self.support_left = np.zeros(n_paths)
        self.support = np.zeros(n_paths)
        self.support_interest = zeros("support_interest")
        self.support_principal = zeros("support_principal")
        self.tax = np.zeros(n_paths)
        self.advance_recovered = np.zeros(n_paths)
        self.advance_made = np.zeros(n_paths)
        self.to_interest = np.zeros(n_paths)
        self.to_principal = np.zeros(n_paths)
        self.fees_due, self.fees_paid = {}, {}
        self.interest_due = zeros("interest_due")
        self.interest_paid = zeros("interest_paid")
        self.principal_paid = zeros("principal_paid")
        self.reimbursed = zeros("reimbursed")
        self.writedown = zeros("writedown")
        self.purchases = np.zeros(n_paths)
        self.reserve = np.zeros(n_paths)
        self.residual = np.zeros(n_paths)
        self.collateral_end = np.zeros(n_paths)


def take(m: MonthState, due: np.ndarray) -> np.ndarray:
    """Pay ``due`` from the available funds as far as they go; returns what was paid."""
    paid = np.minimum(due, m.available)
    m.available = m.available - paid
    return paid


def take_interest(m: MonthState, due: np.ndarray, cover: bool = False) -> np.ndarray:
    """Pay ``due`` from the interest account (the one pot without separate accounts); with
    ``cover`` the principal account pays what the interest account cannot, as far as it goes
    (recorded in ``to_interest``). Returns what was paid."""
    paid = take(m, due)
    if cover and m.principal_account is not None:
        extra = np.minimum(due - paid, m.principal_account)
        m.principal_account = m.principal_account - extra
        m.to_interest = m.to_interest + extra
        paid = paid + extra
    return paid


def take_principal(m: MonthState, due: np.ndarray, cover: bool = False) -> np.ndarray:
    """Pay ``due`` from the principal account (the one pot without separate accounts, or where
    the accounts are merged); with ``cover`` the interest account pays what the principal
    account cannot, as far as it goes (recorded in ``to_principal``), and always where every
    note is due (``sweep``: turbo). Returns what was paid."""
    if m.principal_account is None:
        return take(m, due)
    paid = np.minimum(due, m.principal_account)
    m.principal_account = m.principal_account - paid
    merged = m.merged if m.merged is not None else np.zeros(due.shape, dtype=bool)
    sweep = merged | (m.sweep if m.sweep is not None else False)
    if cover or sweep.any():
        extra = take(m, np.where(sweep | cover, due - paid, 0.0))
        m.to_principal = m.to_principal + np.where(merged, 0.0, extra)
        paid = paid + extra
    return paid


# ---------------------------------------------------------------------------- the steps


def pay_step(step: Step, k: int, terms: Terms, m: MonthState) -> None:
    """Run step ``k`` of the priority of payments on every path."""
    match step:
        case FeeStep(fee=name):
            pay_fee(m, terms.fees[name], cover=terms.cover_expenses)
        case InterestStep(tranche=name):
            j = terms.index[name]
            pay_interest(m, j, terms.monthly_coupon[j], on_shortfall=terms.interest_on_shortfall,
                         covered=j in terms.covered, cover=j in terms.cover_interest)
        case ReserveStep():
            top_up_reserve(m)
        case PrincipalStep(tranches=names):
            if k == terms.purchase_step:
                buy_new_loans(m, cover=terms.cover_principal)
            pay_principal(m, terms.positions(names), cover=terms.cover_principal)
        case ReimburseStep(tranches=names):
            reimburse(m, terms.positions(names))
        case ResidualStep():
            pay_residual(m)
        case _:
            assert_never(step)


def pay_fee(m: MonthState, fee: Fee, cover: bool = False) -> None:
    """Fee due this month (servicer: rate / 12 × pool balance at the start of the month; fixed:
    the amount, while the deal is live) plus any fee unpaid earlier; what is unpaid is carried.
    From the interest account, covered by the principal account if ``cover``."""
    if fee.kind is FeeKind.SERVICER:
        accrued = fee.rate / 12.0 * m.pool_bop
    else:
        accrued = np.where(m.live, fee.amount, 0.0)
    due = accrued + m.fee_shortfall[fee.name]
    paid = take_interest(m, due, cover)
    m.fee_shortfall[fee.name] = due - paid
    m.fees_due[fee.name] = due
    m.fees_paid[fee.name] = paid


def pay_interest(m: MonthState, tranche: int, monthly_rate: float, *,
                 on_shortfall: bool = False, covered: bool = False,
                 cover: bool = False) -> None:
    """Tranche interest: ``monthly_rate`` × the accrual base (balance at the start of the month,
    plus its PDL under full accrual) plus the shortfall carried in, itself × (1 +
    ``monthly_rate``) when unpaid interest bears interest. A ``covered`` class's unpaid interest
    is drawn from the shortfall undertaking as far as its cap goes; what is still unpaid is
    carried out. From the interest account, covered by the principal account if ``cover``
    (before the undertaking is drawn)."""
    assert m.accrual_base is not None
    carried = m.interest_shortfall[tranche]
    if on_shortfall:
        carried = carried * (1.0 + monthly_rate)
    due = monthly_rate * m.accrual_base[tranche] + carried
    paid = take_interest(m, due, cover)
    if covered:
        drawn = draw_support(m, due - paid)
        m.support_interest[tranche] = drawn
        paid = paid + drawn
    m.interest_due[tranche] = due
    m.interest_paid[tranche] = paid
    m.interest_shortfall[tranche] = due - paid


def draw_support(m: MonthState, gap: np.ndarray) -> np.ndarray:
    """The shortfall undertaking pays ``gap`` as far as its undrawn cap goes (paid straight to
    the class, not through the available funds); returns what it paid."""
    assert m.support_left is not None
    drawn = np.minimum(np.maximum(gap, 0.0), m.support_left)
    m.support_left = m.support_left - drawn
    m.support = m.support + drawn
    return drawn


def top_up_reserve(m: MonthState) -> None:
    """Reserve: keep cash in the account up to its target (the whole reserve was released into
    the available funds, so it supports every step ranked above this one)."""
    m.reserve = take(m, m.reserve_target)


def buy_new_loans(m: MonthState, cover: bool = False) -> None:
    """Revolving purchases: while revolving, the principal the notes would receive buys new
    loans at par (``purchase_due`` is zero on the paths that do not revolve). From the
    principal account, covered by the interest account if ``cover``."""
    m.purchases = take_principal(m, m.purchase_due, cover)


def pay_principal(m: MonthState, tranches: Sequence[int], cover: bool = False) -> None:
    """Principal to ``tranches`` in order: each its allocated share of the distribution. From
    the principal account, covered by the interest account if ``cover``."""
    for j in tranches:
        paid = take_principal(m, m.principal_due[j], cover)
        m.principal_paid[j] = paid
        m.balance[j] = m.balance[j] - paid


def support_at_final(m: MonthState, covered: frozenset[int]) -> None:
    """After the steps of a final month (clean-up call, legal final): the shortfall undertaking
    pays what is still owed of each ``covered`` class's principal — its balance, as principal,
    then its PDL, as a reimbursement — senior first, as far as its undrawn cap goes."""
    for j in sorted(covered):
        owed = np.where(m.final, m.balance[j], 0.0)
        drawn = draw_support(m, owed)
        m.principal_paid[j] = m.principal_paid[j] + drawn
        m.balance[j] = m.balance[j] - drawn
        refill = draw_support(m, np.where(m.final, m.writedown_outstanding[j], 0.0))
        m.reimbursed[j] = m.reimbursed[j] + refill
        m.writedown_outstanding[j] = m.writedown_outstanding[j] - refill
        m.support_principal[j] = drawn + refill


def reimburse(m: MonthState, tranches: Sequence[int]) -> None:
    """Refill the PDL (written-down principal not yet reimbursed) of ``tranches`` in order."""
    for j in tranches:
        paid = take(m, m.writedown_outstanding[j])
        m.reimbursed[j] = paid
        m.writedown_outstanding[j] = m.writedown_outstanding[j] - paid


def pay_residual(m: MonthState) -> None:
    """Everything left (in both accounts) goes to the subordinated holder, except while a
    ``trap_cash`` trigger is in force (and it is not the final month): then it stays in the
    reserve. An acceleration overrides the trap (the caller clears ``trap``): the reserve is
    released and, once every note is paid, the rest goes to the residual holder."""
    left = m.available
    if m.principal_account is not None:
        left = left + m.principal_account
        m.principal_account = np.zeros_like(m.principal_account)
    kept = m.trap & ~m.final
    m.reserve = m.reserve + np.where(kept, left, 0.0)
    m.residual = np.where(kept, 0.0, left)
    m.available = np.zeros_like(m.available)


# ------------------------------------------------------------- the month's other rules


def pay_tax(m: MonthState, tax: Tax | None, pool_interest: np.ndarray,
            cover: bool = False) -> None:
    """Tax on the interest the trust collected this month, before anything else (it is always
    covered: the available funds, or the interest account, include that interest; ``cover``
    lets the principal account pay it otherwise)."""
    if tax is not None:
        m.tax = take_interest(m, tax.on(pool_interest), cover)


def recover_advances(m: MonthState, outstanding: np.ndarray) -> np.ndarray:
    """Servicer advances outstanding are repaid first, as far as the cash goes; returns what is
    still outstanding."""
    m.advance_recovered = take(m, outstanding)
    return outstanding - m.advance_recovered


def make_advance(m: MonthState, advances: Advances | None, outstanding: np.ndarray, *,
                 delinquent: np.ndarray, pool_interest: np.ndarray,
                 initial_balance: float) -> np.ndarray:
    """The servicer advances the interest due on the delinquent (30+ DPD) balance — the pool's
    interest rate this month (interest / balance at the start of the month) times that
    balance — up to its limit outstanding; nothing at a call or the legal final. Returns the
    advances outstanding after it."""
    if advances is None:
        return outstanding
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(m.pool_bop > 0, pool_interest / np.where(m.pool_bop > 0, m.pool_bop, 1.0), 0.0)
    room = np.maximum(advances.limit * initial_balance - outstanding, 0.0)
    made = np.where(m.final | ~m.live, 0.0, np.minimum(rate * delinquent, room))
    m.advance_made = made
    m.available = m.available + made
    return outstanding + made


def acceleration_steps(deal: Deal) -> tuple[Step, ...]:
    """The order of payments after an event of default: the fees, then class by class in
    seniority its interest, its principal (all of it is due) and its PDL; the rest to the
    residual holder. No reserve step (the reserve is released), no purchases."""
    steps: list[Step] = [s for s in deal.waterfall if isinstance(s, FeeStep)]
    for t in deal.tranches:
        if t.coupon > 0:
            steps.append(InterestStep(t.name))
        steps += [PrincipalStep((t.name,)), ReimburseStep((t.name,))]
    return (*steps, ResidualStep())


def write_down(m: MonthState) -> None:
    """Loss allocation after the steps: the notes' excess over the collateral (after this
    month's purchases; zero at a call and at the legal final) is written down bottom-up, the
    most junior tranche first, and added to the written-down principal outstanding."""
    m.collateral_end = np.where(m.final, 0.0, m.collateral + m.purchases)
    deficiency = np.maximum(m.balance.sum(axis=0) - m.collateral_end, 0.0)
    for j in range(m.balance.shape[0] - 1, -1, -1):
        cut = np.minimum(m.balance[j], deficiency)
        m.writedown[j] = cut
        m.balance[j] = m.balance[j] - cut
        deficiency = deficiency - cut
    m.writedown_outstanding += m.writedown


def principal_modes(mode: PrincipalMode, *, final: np.ndarray, sequential: np.ndarray,
                    turbo: np.ndarray, stepped_down: bool = True,
                    accelerated: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Per path: (all notes due as principal?, principal pro rata?).

    Everything is due in turbo mode, under a turbo trigger, after an event of default
    (``accelerated``) and at a call or the legal final. A pro-rata deal pays pro rata from its
    step-down date on (``stepped_down``) while the performance tests pass, i.e. except under a
    sequential or turbo trigger and when everything is due (``None``: no path pays pro rata)."""
    all_due = final | turbo | (mode is PrincipalMode.TURBO)
    if accelerated is not None:
        all_due = all_due | accelerated
    if mode is not PrincipalMode.PRO_RATA or not stepped_down:
        return all_due, None
    return all_due, ~(sequential | all_due)


def oc_target(oc: Overcollateralisation | None, collateral: np.ndarray,
              initial_balance: float) -> np.ndarray | float:
    """The overcollateralisation the notes are paid down to: max(target × basis, floor ×
    initial), basis the pool at month end (current) or the initial pool; 0 without a target."""
    if oc is None:
        return 0.0
    basis = collateral if oc.basis is Basis.CURRENT else initial_balance
    return np.maximum(oc.target * basis, oc.floor * initial_balance)


def principal_distribution_amount(notes_bop: np.ndarray, collateral: np.ndarray,
                                  target_oc: np.ndarray | float, all_due: np.ndarray) -> np.ndarray:
    """PDA = max(0, notes − max(0, C − OC target)); the whole note balance where all is due."""
    notes_target = np.maximum(collateral - target_oc, 0.0)
    pda = np.maximum(notes_bop - notes_target, 0.0)
    return np.where(all_due, notes_bop, pda)


def cumulative_rows(a: np.ndarray) -> np.ndarray:
    """``np.cumsum(a, axis=0)`` of a (n_tranches, n_paths) array, a row at a time: the same
    sums in the same order (row k = row k − 1 + a[k]), without numpy's accumulation along
    the short first axis (a path at a time: ten times slower on 3 × 5,000)."""
    out = np.empty_like(a)
    if len(a):
        out[0] = a[0]
        for k in range(1, len(a)):
            np.add(out[k - 1], a[k], out=out[k])
    return out


def sequential_allocation(pda: np.ndarray, balance_bop: np.ndarray) -> np.ndarray:
    """(n_tranches, n_paths) the PDA allocated senior first, each up to its balance."""
    above = cumulative_rows(balance_bop) - balance_bop
    return np.clip(pda[None, :] - above, 0.0, balance_bop)


def pro_rata_allocation(pda: np.ndarray, balance_bop: np.ndarray) -> np.ndarray:
    """(n_tranches, n_paths) the PDA allocated in proportion to the balances."""
    notes_bop = balance_bop.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(notes_bop > 0, balance_bop / np.where(notes_bop > 0, notes_bop, 1.0), 0.0)
    return np.minimum(pda[None, :] * share, balance_bop)


def distribute_principal(balance_bop: np.ndarray, collateral: np.ndarray,
                         target_oc: np.ndarray | float, *, all_due: np.ndarray,
                         pro_rata: np.ndarray | None,
                         revolving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(principal due per tranche (n_tranches, n_paths), purchase due (n_paths,)).

    The principal distribution amount (:func:`principal_distribution_amount`) buys new loans
    on the revolving paths; elsewhere it is allocated sequentially, or pro rata on the
    ``pro_rata`` paths."""
    pda = principal_distribution_amount(balance_bop.sum(axis=0), collateral, target_oc, all_due)
    purchase_due = np.where(revolving, pda, 0.0)
    pda = np.where(revolving, 0.0, pda)
    due = sequential_allocation(pda, balance_bop)
    if pro_rata is not None:
        due = np.where(pro_rata[None, :], pro_rata_allocation(pda, balance_bop), due)
    return due, purchase_due


def opening_reserve(reserve: Reserve | None, initial_balance: float, n_paths: int) -> np.ndarray:
    """The reserve at closing: its target when funded at closing, else empty."""
    if reserve is not None and reserve.funding is Funding.CLOSING:
        return np.full(n_paths, max(reserve.target * initial_balance, reserve.floor * initial_balance))
    return np.zeros(n_paths)


def reserve_target(reserve: Reserve | None, pool_bop: np.ndarray, initial_balance: float,
                   final: np.ndarray) -> np.ndarray:
    """max(target × basis, floor × initial), basis the initial pool (non-declining) or the pool
    at the start of the month; zero at a call and at the legal final (and without a reserve)."""
    if reserve is None:
        return np.zeros_like(pool_bop)
    basis = initial_balance if reserve.basis is Basis.INITIAL else pool_bop
    target = np.maximum(reserve.target * basis, reserve.floor * initial_balance)
    return np.where(final, 0.0, target)


def clean_up_call(level: float | None, collateral: np.ndarray, initial_balance: float, *,
                  alive: np.ndarray, revolving: np.ndarray) -> np.ndarray:
    """bool per path: the originator buys the pool at par, outside the revolving period, in a
    month when 0 < collateral < ``level`` × initial balance."""
    if level is None:
        return np.zeros(collateral.shape, dtype=bool)
    return alive & ~revolving & (collateral > 0) & (collateral < level * initial_balance)
