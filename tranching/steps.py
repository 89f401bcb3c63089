"""The priority of payments step by step: the month state the steps share, one handler per step.

``tranching.waterfall.run_waterfall`` runs a deal month by month on every path at once. Each
month it works out the month's facts (pool cash, triggers, the clean-up call, what principal is
due), puts them in a :class:`MonthState` (per-path arrays), then runs the deal's steps in the
order the deal states them through :func:`pay_step`, and finally :func:`write_down`.

Every handler reads the state, takes cash from the available funds with :func:`take` (never
more than is there, so cash is conserved by construction) and records what it paid:

=============  ===========================================================================
deal step      handler
=============  ===========================================================================
``fee``        :func:`pay_fee` — this month's fee plus any fee unpaid earlier
``interest``   :func:`pay_interest` — coupon on the balance at the start of the month plus
               the shortfall carried (no interest on shortfall)
``reserve``    :func:`top_up_reserve` — keep cash in the reserve up to its target
``principal``  :func:`buy_new_loans` (revolving deals, at the first principal step), then
               :func:`pay_principal` — each tranche's share of the principal distribution
``reimburse``  :func:`reimburse` — written-down principal, senior first
``residual``   :func:`pay_residual` — all that is left, to the subordinated holder (or kept in
               the reserve while a ``trap_cash`` trigger is in force)
=============  ===========================================================================

The month's rules that are not steps of the deal are functions here too: what principal is due
and how it is allocated by mode (:func:`principal_modes`, :func:`principal_distribution_amount`,
:func:`sequential_allocation`, :func:`pro_rata_allocation`, :func:`distribute_principal`), the
reserve target (:func:`opening_reserve`, :func:`reserve_target`), the clean-up call
(:func:`clean_up_call`) and the loss allocation after the steps (:func:`write_down`).

A new step type is a dataclass in ``tranching.deal``'s ``Step`` union, a handler here that
changes a ``MonthState`` (new ledgers or accounts are new fields), and a case in
:func:`pay_step`; mypy's ``assert_never`` flags a ``Step`` without a case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import assert_never

import numpy as np

from tranching.deal import (
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

    @classmethod
    def of(cls, deal: Deal, initial_balance: float) -> Terms:
        principal_steps = [k for k, s in enumerate(deal.waterfall) if isinstance(s, PrincipalStep)]
        return cls(
            initial_balance=initial_balance,
            amounts=np.asarray(deal.tranche_amounts(initial_balance), dtype=np.float64),
            monthly_coupon=np.array([t.coupon for t in deal.tranches]) / 12.0,
            index={n: i for i, n in enumerate(deal.tranche_names)},
            fees={f.name: f for f in deal.fees},
            purchase_step=principal_steps[0] if deal.revolving_months > 0 else None,
        )

    def positions(self, tranches: Sequence[str]) -> list[int]:
        return [self.index[n] for n in tranches]


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

    def __post_init__(self) -> None:
        shape, n_paths = self.balance.shape, self.balance.shape[1]
        self.fees_due, self.fees_paid = {}, {}
        self.interest_due = np.zeros(shape)
        self.interest_paid = np.zeros(shape)
        self.principal_paid = np.zeros(shape)
        self.reimbursed = np.zeros(shape)
        self.writedown = np.zeros(shape)
        self.purchases = np.zeros(n_paths)
        self.reserve = np.zeros(n_paths)
        self.residual = np.zeros(n_paths)
        self.collateral_end = np.zeros(n_paths)


def take(m: MonthState, due: np.ndarray) -> np.ndarray:
    """Pay ``due`` from the available funds as far as they go; returns what was paid."""
    paid = np.minimum(due, m.available)
    m.available = m.available - paid
    return paid


# ---------------------------------------------------------------------------- the steps


def pay_step(step: Step, k: int, terms: Terms, m: MonthState) -> None:
    """Run step ``k`` of the priority of payments on every path."""
    match step:
        case FeeStep(fee=name):
            pay_fee(m, terms.fees[name])
        case InterestStep(tranche=name):
            j = terms.index[name]
            pay_interest(m, j, terms.monthly_coupon[j])
        case ReserveStep():
            top_up_reserve(m)
        case PrincipalStep(tranches=names):
            if k == terms.purchase_step:
                buy_new_loans(m)
            pay_principal(m, terms.positions(names))
        case ReimburseStep(tranches=names):
            reimburse(m, terms.positions(names))
        case ResidualStep():
            pay_residual(m)
        case _:
            assert_never(step)


def pay_fee(m: MonthState, fee: Fee) -> None:
    """Fee due this month (servicer: rate / 12 × pool balance at the start of the month; fixed:
    the amount, while the deal is live) plus any fee unpaid earlier; what is unpaid is carried."""
    if fee.kind is FeeKind.SERVICER:
        accrued = fee.rate / 12.0 * m.pool_bop
    else:
        accrued = np.where(m.live, fee.amount, 0.0)
    due = accrued + m.fee_shortfall[fee.name]
    paid = take(m, due)
    m.fee_shortfall[fee.name] = due - paid
    m.fees_due[fee.name] = due
    m.fees_paid[fee.name] = paid


def pay_interest(m: MonthState, tranche: int, monthly_rate: float) -> None:
    """Tranche interest: ``monthly_rate`` × balance at the start of the month plus the shortfall
    carried in (no interest on shortfall); what is unpaid is carried out."""
    due = monthly_rate * m.balance_bop[tranche] + m.interest_shortfall[tranche]
    paid = take(m, due)
    m.interest_due[tranche] = due
    m.interest_paid[tranche] = paid
    m.interest_shortfall[tranche] = due - paid


def top_up_reserve(m: MonthState) -> None:
    """Reserve: keep cash in the account up to its target (the whole reserve was released into
    the available funds, so it supports every step ranked above this one)."""
    m.reserve = take(m, m.reserve_target)


def buy_new_loans(m: MonthState) -> None:
    """Revolving purchases: while revolving, the principal the notes would receive buys new
    loans at par (``purchase_due`` is zero on the paths that do not revolve)."""
    m.purchases = take(m, m.purchase_due)


def pay_principal(m: MonthState, tranches: Sequence[int]) -> None:
    """Principal to ``tranches`` in order: each its allocated share of the distribution."""
    for j in tranches:
        paid = take(m, m.principal_due[j])
        m.principal_paid[j] = paid
        m.balance[j] = m.balance[j] - paid


def reimburse(m: MonthState, tranches: Sequence[int]) -> None:
    """Reimburse written-down principal to ``tranches`` in order (senior first)."""
    for j in tranches:
        paid = take(m, m.writedown_outstanding[j])
        m.reimbursed[j] = paid
        m.writedown_outstanding[j] = m.writedown_outstanding[j] - paid


def pay_residual(m: MonthState) -> None:
    """Everything left goes to the subordinated holder, except while a ``trap_cash`` trigger is
    in force (and it is not the final month): then it stays in the reserve."""
    kept = m.trap & ~m.final
    m.reserve = m.reserve + np.where(kept, m.available, 0.0)
    m.residual = np.where(kept, 0.0, m.available)
    m.available = np.zeros_like(m.available)


# ------------------------------------------------------------- the month's other rules


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
                    turbo: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Per path: (all notes due as principal?, principal pro rata?).

    Everything is due in turbo mode, under a turbo trigger and at a call or the legal final. A
    pro-rata deal pays pro rata except under a sequential or turbo trigger and when everything
    is due at a call or the legal final (``None``: no path pays pro rata)."""
    all_due = final | turbo | (mode is PrincipalMode.TURBO)
    if mode is not PrincipalMode.PRO_RATA:
        return all_due, None
    return all_due, ~(sequential | turbo | final)


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


def sequential_allocation(pda: np.ndarray, balance_bop: np.ndarray) -> np.ndarray:
    """(n_tranches, n_paths) the PDA allocated senior first, each up to its balance."""
    above = np.cumsum(balance_bop, axis=0) - balance_bop
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
