"""The waterfall engine: a deal's priority of payments run on every Monte Carlo path at once.

Vectorised over paths, a loop over months (the recursion is real: balances, reserve, carried
shortfalls and trigger latches depend on the previous month). numpy, with compiled loops
(``tranching.kernels``, each tested equal to its numpy twin) for the flows and DPD balances of
the loans bought while revolving; no I/O.

Each month ``t`` (0-based; ``paths`` arrays are (n_paths, n_months)):

1. **Pool cash.** The deal holds the simulated pool plus the loans bought while revolving
   (step 3). Collections = interest + scheduled principal + prepayment + recovery of both.
   Collateral ``C`` = their performing balance at month end (balance_eop). (In the scaling
   approximation of step 3 the simulated pool's flows are multiplied by ``s`` instead.)
2. **Triggers**, tested on this month's data before any payment:
   ``cnl`` = (cumulative defaults − cumulative recoveries) / initial pool balance (or / initial
   plus the purchases to date: ``denominator``), breached when above the level in force;
   ``oc`` = C / balance (bop) of the trigger's notes (all tranches by default), breached when
   below the level; ``delinquency``/``dpd30``, ``dpd60``, ``dpd90`` = 30+/60+/90+ DPD balance /
   C, breached when above the level; ``average_months`` tests the mean of the last n months.
   With the delinquency-state model (``PoolPaths.delinquency``, ``--model delinquency``) the
   simulated pool's DPD balances are the simulated ones (``dpd_balance(30/60/90)``: the
   end-of-month balance more than 30/60/90 days past due; with charge-off at 90 DPD the 90+
   balance is 0, those loans being charged off) and ``cnl`` reads the charge-offs
   (``PoolPaths.default``) and the recoveries that follow them. Under the hazard model the
   paths have no delinquency states, so the DPD balances at month t are *defined* from the
   path: a loan that defaults (reaches 90 DPD) at the end of month t+k was 90 − 30k days past
   due at the end of month t: 30+ at t = default[t+1] + default[t+2], 60+ = default[t+1], 90+ =
   default[t] of the loans held at t (zero beyond the horizon; see ``PoolMetrics``); the loans
   bought while revolving (a hazard-model profile) are counted that way under both models.
   A curable trigger is in force in the months it is breached; a non-curable one from its first
   breach on. Effects while in force: ``sequential`` — principal allocated sequentially;
   ``turbo`` — the whole note balance is due as principal (all available funds after the steps
   ranked above the principal steps go to principal), and the revolving period ends for good;
   ``end_revolving`` — the revolving period ends for good; ``trap_cash`` — the cash that would
   go to the residual holder is kept in the reserve account instead (next month it is part of
   the available funds like the rest of the reserve; released at a clean-up call and in the
   last month).
3. **Revolving period** (the first ``revolving_months`` months unless ended early): the
   principal the notes would receive is spent at the first ``principal`` step on new loans at
   par. A path whose pool has run off (C ≤ 1e-9 of the initial balance) cannot buy and
   amortises. How the purchased loans perform:

   * **With a replenishment profile** (``run_waterfall(..., replenishment=profile)``, e.g.
     ``portfolio.montecarlo.replenishment.simulate_replenishment``: a pool of NEW loans with the pool's
     cell mix, projected on the same paths): a purchase of P at month s adds
     P × profile_flow_s[path, t − s − 1] / profile.initial_balance to every pool flow
     (interest, scheduled principal, prepayment, default, recovery, balances) of month t > s on
     the same path — new loans with fresh schedules; profile_flow_s is the vintage bought at
     month s (``ReplenishmentProfile.vintage(s)``, which saw the factor of months s + 1 …), or
     the one profile given for every purchase. The horizon is extended with zero pool flows to
     ``max(n_months of paths, revolving_months + n_months of the profile)`` so that loans bought
     in the last revolving month run off (the result then has more months than ``paths``).
   * **Without one** (a rough approximation, kept for pools of long loans and for tests): the
     replenished balance performs like the remaining pool — from the next month on every pool
     flow is scaled by (C + purchase) / C, i.e. ``s ← s·(1 + purchase / C)``. For short-tenor
     loans this is wrong: the seasoned pool has nearly run off when the revolving period ends,
     so the scaled pool collapses at once and the notes are repaid within a month or two.
4. **Clean-up call**: outside the revolving period, in the first month with
   0 < C < clean_up_call × initial balance, the originator buys the pool at par (C is added to the
   cash); every tranche is due in full this month and the deal ends (later pool flows, including
   recoveries, belong to the caller).
5. **Available funds** = collections + call proceeds + the whole reserve balance (the reserve is
   released into the available funds and rebuilt at the ``reserve`` step, so it supports every
   step ranked above it). Then the typed steps in order:
   ``fee`` — due this month (servicer: rate/12 × pool balance_bop; fixed: amount, while any note
   balance or write-down is outstanding) plus fees unpaid earlier; ``interest`` — coupon/12 ×
   balance (bop) plus shortfall carried (no interest on shortfall); on the first payment date
   the coupon runs from the closing date, coupon × its 30/360 days / 360; ``principal`` — the
   principal distribution amount PDA = max(0, Σ balance_bop − max(0, C − OC target)), allocated
   sequentially (senior first) or pro rata to balances (bop); PDA = Σ balance_bop in turbo mode,
   under a turbo trigger, at a clean-up call and in the last month; ``reserve`` — keep up to the
   target (max(target × basis, floor × initial); 0 in the last month and at a call);
   ``reimburse`` — repay written-down principal, senior first; ``residual`` — all that is left,
   to the holder of the subordinated tranche.
   With separate collection accounts (``[accounts]``, ``open_accounts``) the funds are two
   pots: the interest account (interest collected, recoveries if the deal says so, the
   reserve released, advances) pays the tax, fees, interest, reserve and PDL refills; the
   principal account (principal collected, recoveries, call proceeds) pays principal and
   purchases; each side's shortfall is covered from the other where the deal's rules say so;
   the residual takes both. At a call, the legal final and after an event of default they are
   one pot.
   Before the steps: the tax on the interest collected, then servicer advances repaid and the
   month's advance received. Coupons accrue on balance + PDL (``accrual = "full"``, the default)
   or on the balance; unpaid interest may bear interest; a class under the shortfall
   undertaking has its unpaid interest paid by the originator, and its principal and PDL in a
   final month (``support_at_final``), up to the cap. docs/model.md section 8 has the formulas.
6. **Write-downs**: after the steps, if the tranche balances exceed the collateral (C plus
   purchases; 0 at a call and in the last month, the legal final), the excess is written off
   bottom-up (the most junior tranche first). Written-down principal is tracked per tranche and
   can be reimbursed later (e.g. from recoveries) at the ``reimburse`` step; what is still written
   down after the last month is lost.

Per-path identities (tested with hypothesis): collections + call proceeds + undertaking
payments + advances received = tax + advances repaid + fees + interest + principal +
reimbursements + purchases + residual + (reserve_eop − reserve_bop);
``tranche_loss`` = original balance − principal received (principal + reimbursements).

The code follows these steps. ``run_waterfall`` is the month loop; ``HeldPool`` is the
collateral (steps 1 and 3: the pool's cash, its cumulative net loss and delinquency, the flows
of the loans bought); ``Triggers`` tests the triggers and carries their latches (step 2); the
month's facts go into a ``tranching.steps.MonthState`` and the deal's steps run in order, one
handler per step type (``tranching.steps``: steps 4–6); ``Tape`` records each month and makes
the ``WaterfallResult``. Once every path's deal has ended at a clean-up call with nothing left
to pay, the months are inert (``inert_month``): each records what the month before it recorded
unless the last month or the step-down date changes a flag, so such a month is not computed
(``Tape.repeat``; tested bit for bit against computing every month).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from portfolio import settings
from portfolio.montecarlo.paths import PoolPaths, ReplenishmentProfile, slice_paths
from tranching.deal import (
    Accounts,
    Deal,
    Denominator,
    Effect,
    Metric,
    RecoveryAccount,
    Step,
    payment_dates,
)
from tranching.errors import DealError, must_be
from tranching.kernels import (
    add_vintage,
    add_vintage_dpd,
    add_vintage_dpd_np,
    dpd_months,
    dpd_months_np,
    transpose_into,
)
from tranching.steps import (
    OUTPUT_ROWS,
    MonthState,
    Terms,
    acceleration_steps,
    clean_up_call,
    distribute_principal,
    make_advance,
    oc_target,
    opening_reserve,
    pay_step,
    pay_tax,
    principal_modes,
    recover_advances,
    reserve_target,
    support_at_final,
    write_down,
)

# the first delinquency state (DelinquencyPaths.state_balance's column) of the 30+, 60+ and
# 90+ DPD balances: state k holds the loans 30(k − 1) + 1 … 30k days past due
DPD_FIRST_STATE = np.array([30 // 30 + 1, 60 // 30 + 1, 90 // 30 + 1], dtype=np.int64)

POOL_RUNOFF = 1e-9  # a pool below this share of its initial balance is treated as run off

# the trigger metrics recorded per month (``WaterfallResult.metrics``): ``delinquency`` is the
# 30+ DPD ratio; ``oc`` the last OC trigger's ratio
METRICS = ("cnl", "cnl_purchases", "oc", "delinquency", "dpd60", "dpd90")

# the pool flows, in the order of ``HeldPool.simulated`` and ``HeldPool.bought``
FLOWS = ("interest", "scheduled_principal", "prepayment", "default", "recovery", "balance_bop",
         "balance_eop")
# the held pool's flows recorded in ``WaterfallResult.pool_cash`` (fields of ``PoolMonth``)
POOL_CASH = ("interest", "principal", "recovery", "default", "balance_bop", "balance_eop")
# the collection accounts' flows recorded in ``WaterfallResult.accounts`` (separate accounts)
ACCOUNTS = ("interest_in", "principal_in", "to_interest", "to_principal")
# what ``Tape`` records per tranche (n_tranches, n_paths) and per path each month
TAPE_TRANCHE = ("interest_due", "interest_paid", "interest_shortfall", "principal_paid",
                "reimbursed", "balance", "writedown", "writedown_outstanding",
                "support_interest", "support_principal")
TAPE_POOL = ("reserve_bop", "reserve", "residual", "collections", "call_proceeds", "purchases",
             "collateral", "pool_scale", "tax", "support", "advance_made", "advance_recovered",
             "advances")


@dataclass(frozen=True, slots=True)
class WaterfallResult:
    """Everything the waterfall paid, per path and month.

    Tranche arrays are (n_tranches, n_paths, n_months) in seniority order; the others
    (n_paths, n_months); ``fees_paid``/``triggers`` map a name to (n_paths, n_months).
    """

    tranche_names: tuple[str, ...]
    original_balance: np.ndarray  # (n_tranches,) CNY
    dates: tuple[dt.date, ...]  # payment dates, one per month
    interest_due: np.ndarray  # this month's coupon plus shortfall carried in
    interest_paid: np.ndarray
    interest_shortfall: np.ndarray  # unpaid interest carried out of the month
    principal_paid: np.ndarray  # principal distribution paid
    reimbursed: np.ndarray  # written-down principal reimbursed
    balance: np.ndarray  # balance at the end of the month (after payments and write-downs)
    writedown: np.ndarray  # principal written down in the month
    writedown_outstanding: np.ndarray  # written-down principal not yet reimbursed (eop)
    reserve_bop: np.ndarray
    reserve: np.ndarray  # reserve balance at month end
    fees_due: dict[str, np.ndarray]
    fees_paid: dict[str, np.ndarray]
    triggers: dict[str, np.ndarray]  # bool: trigger in force in the month
    breached: dict[str, np.ndarray]  # bool: trigger test failed in the month
    residual: np.ndarray  # cash to the subordinated holder
    collections: np.ndarray  # pool cash collected by the deal (scaled by revolving)
    call_proceeds: np.ndarray  # clean-up call price received
    purchases: np.ndarray  # revolving purchases of new loans (at par)
    collateral: np.ndarray  # pool performing balance held by the deal at month end
    revolving: np.ndarray  # bool: month in the revolving period
    pool_scale: np.ndarray  # s: multiple of the simulated pool held (1 with a profile; 0 after a call)
    # the CN mechanics (zeros / False when the deal has none of them)
    tax: np.ndarray  # tax paid on the interest collected
    support: np.ndarray  # drawn from the originator's shortfall undertaking
    support_interest: np.ndarray  # (n_tranches, n_paths, n_months) of which to interest
    support_principal: np.ndarray  # (n_tranches, n_paths, n_months) of which to principal
    advance_made: np.ndarray  # servicer advances received
    advance_recovered: np.ndarray  # servicer advances repaid
    advances: np.ndarray  # servicer advances outstanding (eop)
    accelerated: np.ndarray  # bool: an event of default has accelerated the notes
    pro_rata: np.ndarray  # bool: principal paid pro rata this month
    metrics: dict[str, np.ndarray] = field(default_factory=dict)  # METRICS
    # the held pool's flows (n_paths, n_months): interest, principal (scheduled + prepaid),
    # recovery, default, balance_bop, balance_eop (before a call; 0 once called)
    pool_cash: dict[str, np.ndarray] = field(default_factory=dict)
    # separate collection accounts (None without them), (n_paths, n_months): interest_in and
    # principal_in (collected into each), to_interest (principal account -> interest account)
    # and to_principal (interest account -> principal account)
    accounts: dict[str, np.ndarray] | None = None

    @property
    def n_paths(self) -> int:
        return int(self.residual.shape[0])

    @property
    def principal_received(self) -> np.ndarray:
        """(n_tranches, n_paths) all principal received: principal paid + reimbursements."""
        return principal_received(self.principal_paid, self.reimbursed)

    @property
    def tranche_loss(self) -> np.ndarray:
        """(n_tranches, n_paths) principal loss in CNY = original balance − principal received.

        Unpaid interest is not part of it (it shows in ``interest_shortfall`` and in the IRR).
        Round-off below 1e-9 of the tranche balance (or of 1 CNY) is reported as zero."""
        return tranche_loss(self.original_balance, self.principal_received)

    @property
    def tranche_cashflows(self) -> np.ndarray:
        """(n_tranches, n_paths, n_months) cash to each tranche: interest + principal."""
        return self.interest_paid + self.principal_paid + self.reimbursed

    @property
    def cash_out(self) -> np.ndarray:
        """(n_paths, n_months) everything paid out of available funds except the reserve."""
        fees = sum(self.fees_paid.values()) if self.fees_paid else 0.0
        return (fees + self.interest_paid.sum(axis=0) + self.principal_paid.sum(axis=0)
                + self.reimbursed.sum(axis=0) + self.purchases + self.residual)

    def conservation_error(self) -> np.ndarray:
        """(n_paths, n_months) cash in − cash out − change in reserve (zero up to rounding).

        Cash in: collections, call proceeds, the shortfall undertaking's payments, servicer
        advances received; cash out: ``cash_out``, tax, advances repaid."""
        return (self.collections + self.call_proceeds + self.support + self.advance_made
                - self.cash_out - self.tax - self.advance_recovered
                - (self.reserve - self.reserve_bop))

    @property
    def pdl(self) -> np.ndarray:
        """(n_tranches, n_paths, n_months) principal deficiency ledger per class at month end:
        principal written down and not yet refilled (the same as ``writedown_outstanding``)."""
        return self.writedown_outstanding

    @property
    def call_month(self) -> np.ndarray:
        """(n_paths,) 0-based month the clean-up call was exercised, −1 where it was not."""
        called = self.call_proceeds > 0
        return np.where(called.any(axis=1), called.argmax(axis=1), -1)

    @property
    def support_drawn(self) -> np.ndarray:
        """(n_paths,) the originator's loss under its shortfall undertaking: all it paid."""
        return self.support.sum(axis=1)


def principal_received(principal_paid: np.ndarray, reimbursed: np.ndarray) -> np.ndarray:
    """(n_tranches, n_paths) principal paid + reimbursements over the months
    (``WaterfallResult.principal_received``)."""
    return principal_paid.sum(axis=2) + reimbursed.sum(axis=2)


def tranche_loss(original_balance: np.ndarray, received: np.ndarray) -> np.ndarray:
    """(n_tranches, n_paths) original balance − principal received, round-off below 1e-9 of
    the tranche balance (or of 1 CNY) as zero (``WaterfallResult.tranche_loss``)."""
    loss = original_balance[:, None] - received
    tiny = 1e-9 * np.maximum(original_balance, 1.0)[:, None]
    return np.where(loss > tiny, loss, 0.0)


# the result's arrays by group (``Tape.allocate``'s keys): the tranche arrays, the other
# per-path arrays, the flags, and the groups of named arrays (fees, triggers, metrics, ...)
FLAGS = ("revolving", "accelerated", "pro_rata")
NAMED_GROUPS = ("fees_due", "fees_paid", "triggers", "breached", "metrics", "pool_cash",
                "accounts")


def field_group(name: str) -> str:
    """The group (``Tape.allocate``'s key) of a ``WaterfallResult`` array field."""
    if name in TAPE_TRANCHE:
        return "tranche"
    if name in TAPE_POOL:
        return "pool"
    if name in FLAGS:
        return "flag"
    raise DealError(must_be("keep", "WaterfallResult array fields ("
                            + ", ".join((*TAPE_TRANCHE, *TAPE_POOL, *FLAGS, *NAMED_GROUPS))
                            + "), or group.name of a group's array", repr(name)))


def kept(key: tuple[str, str], keep: frozenset[str] | None) -> bool:
    """Whether ``keep`` (None: everything) names the result's array ``key`` (group, name):
    its field name, its group (a group of named arrays) or ``group.name``."""
    group, name = key
    if keep is None:
        return True
    if group in NAMED_GROUPS:
        return group in keep or f"{group}.{name}" in keep
    return name in keep


@dataclass(frozen=True, slots=True)
class WaterfallPart:
    """The arrays of a run kept by :func:`run_waterfall_part`, read as ``WaterfallResult``'s
    fields of the same names and with the same bytes (a group of named arrays such as
    ``fees_paid`` or ``metrics`` holds the names kept); ``principal_received`` and
    ``tranche_loss`` as ``WaterfallResult``'s. Reading an array that was not kept (or one
    made of it) raises ``AttributeError`` naming it and those kept."""

    tranche_names: tuple[str, ...]
    original_balance: np.ndarray
    dates: tuple[dt.date, ...]
    n_paths: int
    arrays: Mapping[tuple[str, str], np.ndarray]  # by (group, name), as Tape.allocate

    def __getattr__(self, name: str) -> Any:
        # (``principal_received`` and ``tranche_loss`` are made here, not as properties: an
        # AttributeError raised in a property would be replaced by this method's own)
        if name == "principal_received":
            return principal_received(self.principal_paid, self.reimbursed)
        if name == "tranche_loss":
            return tranche_loss(self.original_balance, self.principal_received)
        if name in NAMED_GROUPS:
            return {k: v for (g, k), v in self.arrays.items() if g == name}
        if name not in (*TAPE_TRANCHE, *TAPE_POOL, *FLAGS):
            raise AttributeError(name)
        key = (field_group(name), name)
        if key not in self.arrays:
            raise AttributeError(f"{name}: not kept by this waterfall run (kept: "
                                 + (", ".join(f"{g}.{k}" for g, k in self.arrays) or "none")
                                 + ")")
        return self.arrays[key]


def run_waterfall(deal: Deal, paths: PoolPaths, replenishment: PoolPaths | None = None, *,
                  threads: int | None = None) -> WaterfallResult:
    """Run ``deal``'s priority of payments on every path of ``paths`` (see the module doc).

    ``replenishment``: the profile of the loans bought while revolving (same number of paths;
    any positive ``initial_balance``: flows are used per unit of it). Ignored for a deal
    without a revolving period; without it a revolving deal uses the scaling approximation.

    ``threads``: the paths are cut into that many consecutive ranges, run on as many threads
    (numpy releases the GIL in its array operations) and written into one result; default
    ``portfolio.settings.threads()``, with at least ``MIN_THREAD_PATHS`` paths a thread. Every
    step is path by path, so the numbers do not depend on it (tested bit for bit)."""
    tape, amounts = _run(deal, paths, replenishment, threads, None)
    return tape.result(deal, amounts)


def run_waterfall_part(deal: Deal, paths: PoolPaths, replenishment: PoolPaths | None = None,
                       *, keep: Collection[str],
                       threads: int | None = None) -> WaterfallPart:
    """:func:`run_waterfall` recording only the arrays named in ``keep`` (``WaterfallResult``
    field names; ``"group.name"`` for one of a group's arrays, e.g. ``"metrics.cnl"``; a
    group's name for all of them): the same month loop, so the same bytes in every array
    kept, but the others are neither written month by month nor made path-major, and their
    memory is never touched (the dispersion's retained securitisation reads a few totals of
    a run: ``partners.dispersion``)."""
    tape, amounts = _run(deal, paths, replenishment, threads, frozenset(keep))
    return tape.part(deal, amounts, paths.n_paths)


def _run(deal: Deal, paths: PoolPaths, replenishment: PoolPaths | None, threads: int | None,
         keep: frozenset[str] | None) -> tuple[Tape, np.ndarray]:
    """The run on ``threads`` path ranges into one set of arrays (``Tape.allocate``; those
    ``keep`` names, every one when None): a tape that holds them, and the tranche amounts."""
    check_replenishment(deal, paths, replenishment)
    amounts = Terms.of(deal, float(paths.initial_balance)).amounts
    out = Tape.allocate(deal, horizon(deal, paths, replenishment), paths.n_paths, keep)
    ranges = path_ranges(paths.n_paths, threads)
    if len(ranges) == 1:
        return _run_paths(deal, paths, replenishment, out, ranges[0]), amounts

    def run(a: int, b: int) -> Tape:  # one thread: its paths, written into its rows of out
        return _run_paths(deal, slice_paths(paths, a, b), None if replenishment is None
                          else slice_paths(replenishment, a, b), out, (a, b))

    with ThreadPoolExecutor(len(ranges)) as ex:
        tapes = [f.result() for f in [ex.submit(run, a, b) for a, b in ranges]]
    return tapes[0], amounts


MIN_THREAD_PATHS = 2_000  # paths a thread at least (run_waterfall's default thread count)


def path_ranges(n_paths: int, threads: int | None = None) -> list[tuple[int, int]]:
    """``[start, stop)`` of consecutive path ranges, one per thread: ``threads`` of them
    (at most one per path), default ``portfolio.settings.threads()`` with at least
    ``MIN_THREAD_PATHS`` paths each."""
    if threads is None:
        n = min(settings.threads(), max(1, n_paths // MIN_THREAD_PATHS))
    else:
        if isinstance(threads, bool) or not isinstance(threads, int | np.integer) or threads < 1:
            raise DealError(must_be("threads", "a whole number >= 1", threads))
        n = int(threads)
    n = max(1, min(n, n_paths))
    edges = [n_paths * i // n for i in range(n + 1)]
    return [(edges[i], edges[i + 1]) for i in range(n)]


def check_replenishment(deal: Deal, paths: PoolPaths, replenishment: PoolPaths | None) -> None:
    """A replenishment profile must have the run's paths and a positive initial balance."""
    if replenishment is None:
        return
    n_paths = paths.n_paths
    if replenishment.n_paths != n_paths:
        raise DealError(must_be("replenishment", f"a profile with the run's {n_paths} paths",
                                f"{replenishment.n_paths} paths", deal.source))
    if not replenishment.initial_balance > 0:
        raise DealError(must_be("replenishment.initial_balance", "> 0",
                                replenishment.initial_balance, deal.source))


def horizon(deal: Deal, paths: PoolPaths, replenishment: PoolPaths | None) -> int:
    """The months the waterfall runs: the paths' months, extended with a replenishment
    profile to ``revolving_months + the profile's months`` (module doc, step 3)."""
    if replenishment is None or deal.revolving_months <= 0:
        return paths.n_months
    return max(paths.n_months, deal.revolving_months + replenishment.n_months)


def _run_paths(deal: Deal, paths: PoolPaths, replenishment: PoolPaths | None,
               out: dict[tuple[str, str], np.ndarray], rows: tuple[int, int]) -> Tape:
    """The month loop on ``paths`` (all of them, or one thread's range ``rows`` of the
    result's paths), recorded into ``out`` (``Tape.allocate``)."""
    pool = HeldPool(deal, paths, replenishment)
    n_paths, n_months, init = paths.n_paths, pool.n_months, pool.initial_balance
    terms = Terms.of(deal, init)
    triggers = Triggers(deal, n_paths)
    tape = Tape(deal, n_months, out, rows)
    accelerated_steps = acceleration_steps(deal)
    # the running ledgers, (n_tranches, n_paths) and (n_paths,)
    balance = np.repeat(terms.amounts[:, None], n_paths, axis=1)
    interest_shortfall = np.zeros_like(balance)
    writedown_outstanding = np.zeros_like(balance)
    fee_shortfall = {f.name: np.zeros(n_paths) for f in deal.fees}
    reserve = opening_reserve(deal.reserve, init, n_paths)
    su = deal.shortfall_undertaking
    support_left = np.full(n_paths, su.cap * init if su is not None else 0.0)
    advances = np.zeros(n_paths)  # servicer advances outstanding
    ended = np.zeros(n_paths, dtype=bool)  # called: the deal is over
    # month t − 1 was inert (``inert_month``) with these month flags: an inert month t with
    # the same flags records the same rows (``Tape.repeat``)
    inert_before: tuple[bool, bool] | None = None

    for t in range(n_months):
        last = t == n_months - 1
        stepped_down = deal.step_down_month is None or t + 1 >= deal.step_down_month
        alive = ~ended
        # 1. pool cash; 2. triggers; 3. revolving; 4. clean-up call (module doc)
        cash = pool.month(t, alive)
        inert = inert_month(ended, cash, balance, interest_shortfall, writedown_outstanding,
                            *fee_shortfall.values(), reserve, advances)
        if inert and inert_before == (last, stepped_down):
            tape.repeat(t)
            continue
        inert_before = (last, stepped_down) if inert else None
        collat = cash.balance_eop
        balance_bop = balance.copy()
        metrics = pool.metrics(t, cash)
        trig = triggers.test(t, metrics=metrics, collateral=collat, balance_bop=balance_bop,
                             alive=alive)
        revolving = ((t < deal.revolving_months) & (not last) & ~triggers.revolving_ended & alive
                     & (collat > POOL_RUNOFF * init))
        call = clean_up_call(deal.clean_up_call, collat, init, alive=alive, revolving=revolving)
        call_proceeds = np.where(call, collat, 0.0)
        collat_after = np.where(call, 0.0, collat)
        final = call | last
        accel = trig.accelerate & alive
        # 5. what is due, the available funds and the priority of payments; 6. write-downs
        all_due, pro_rata = principal_modes(
            deal.principal_mode, final=final, sequential=trig.sequential, turbo=trig.turbo,
            stepped_down=stepped_down, accelerated=accel)
        principal_due, purchase_due = distribute_principal(
            balance_bop, collat_after, oc_target(deal.overcollateralisation, collat, init),
            all_due=all_due, pro_rata=pro_rata, revolving=revolving)
        outstanding = (balance_bop.sum(axis=0) + writedown_outstanding.sum(axis=0)) > 0
        m = MonthState(
            balance_bop=balance_bop, pool_bop=cash.balance_bop, collateral=collat_after,
            live=outstanding & alive, final=final, trap=trig.trap_cash & ~accel,  # reserve released
            principal_due=principal_due, purchase_due=purchase_due,
            reserve_target=np.where(accel, 0.0, reserve_target(deal.reserve, cash.balance_bop,
                                                                 init, final)),
            available=cash.collections + call_proceeds + reserve,  # one pot; see open_accounts
            balance=balance, interest_shortfall=interest_shortfall,
            writedown_outstanding=writedown_outstanding, fee_shortfall=fee_shortfall,
            accrual_base=balance_bop + writedown_outstanding if terms.full_accrual else None,
            support_left=support_left, rows=tape.month_rows(t))
        accounts_in = open_accounts(m, deal.accounts, cash, call_proceeds=call_proceeds,
                                    reserve=reserve, merged=final | accel, sweep=all_due)
        pay_tax(m, deal.tax, cash.interest, cover=terms.cover_expenses)
        advances = recover_advances(m, advances)
        advances = make_advance(m, deal.advances, advances, delinquent=metrics.dpd30_balance,
                                pool_interest=cash.interest, initial_balance=init)
        terms_t = terms.for_month(t)  # the first coupons accrue from closing
        if accel.any():
            m = run_accelerated(m, accel, deal.waterfall, accelerated_steps, terms_t)
        else:
            for k, step in enumerate(deal.waterfall):
                pay_step(step, k, terms_t, m)
        support_at_final(m, terms.covered)
        write_down(m)
        balance, interest_shortfall = m.balance, m.interest_shortfall
        writedown_outstanding, fee_shortfall = m.writedown_outstanding, m.fee_shortfall
        assert m.support_left is not None
        support_left = m.support_left
        # the loans bought this month perform from next month on
        pool.add_purchases(t, m.purchases, collat)
        ended |= call
        tape.write(t, m, cash, reserve_bop=reserve, call_proceeds=call_proceeds,
                   revolving=revolving, metrics=metrics, triggers=trig, accelerated=trig.accelerate,
                   pro_rata=pro_rata, advances=advances, accounts_in=accounts_in)
        reserve = m.reserve
    return tape


def inert_month(ended: np.ndarray, cash: PoolMonth, *ledgers: np.ndarray) -> bool:
    """Whether month t is inert: every path's deal has ended (a clean-up call), the month's
    pool cash is +0.0 on every path (the simulated pool and the loans bought, times s = 0)
    and so is every running ledger at its start (note balances, interest shortfalls, PDLs,
    fee shortfalls, the reserve, servicer advances outstanding).

    Such a month pays nothing and changes no ledger, latch or cumulative figure: every
    path is dead, so no trigger is breached (``breach &= alive``), nothing revolves or is
    called or accelerated, no advance is made; every amount due is 0 (the coupons accrue on
    zero balances and PDLs, the servicer fee on a zero pool, a fixed fee only while live,
    the reserve target is taken from empty accounts) and every take is min(due, +0.0) =
    +0.0. What it records is a function of the carried state (the latched triggers, the
    cumulative net loss, the event of default) and of two month flags only: the last month
    (``final``) and the step-down date (``principal_modes``: the pro-rata flag). So an inert
    month whose flags equal the previous month's, itself inert, records the same rows as that
    month (``Tape.repeat``), bit for bit (+0.0 is checked, not −0.0: ``np.signbit``)."""
    if not ended.all():
        return False
    arrays = (cash.interest, cash.principal, cash.recovery, cash.default, cash.balance_bop,
              cash.balance_eop, *ledgers)
    return not any(a.any() or np.signbit(a).any() for a in arrays)


def open_accounts(m: MonthState, accounts: Accounts | None, cash: PoolMonth, *,
                  call_proceeds: np.ndarray, reserve: np.ndarray,
                  merged: np.ndarray,
                  sweep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Split the month's funds into the interest and principal collection accounts (a deal with
    ``[accounts]``; without, nothing changes and ``None`` is returned): interest collected (+
    recoveries if they go to the interest account) + the reserve released → the interest
    account (``m.available``); the rest of the collections (principal, recoveries) + call
    proceeds → the principal account. Where ``merged`` (a call, the legal final, an event of
    default) the two are one pot; where ``sweep`` (every note due: turbo) the interest account
    covers principal whatever the deal's rule. Returns (collected into the interest account, into the
    principal account)."""
    if accounts is None:
        return None
    interest_in = cash.interest
    if accounts.recoveries is RecoveryAccount.INTEREST:
        interest_in = interest_in + cash.recovery
    principal_in = cash.collections - interest_in + call_proceeds
    m.available = np.where(merged, m.available, interest_in + reserve)
    m.principal_account = np.where(merged, 0.0, principal_in)
    m.merged = merged
    m.sweep = sweep
    return interest_in, principal_in


def run_accelerated(m: MonthState, accel: np.ndarray, steps: tuple[Step, ...],
                    accelerated_steps: tuple[Step, ...], terms: Terms) -> MonthState:
    """The month's steps where some paths are accelerated: the accelerated paths are taken out
    into a state of their own and run in the acceleration order (``acceleration_steps``), the
    others in the deal's order; then the accelerated paths are written back."""
    idx = np.flatnonzero(accel)
    fast = subset_state(m, idx)
    for k, step in enumerate(steps):
        pay_step(step, k, terms, m)
    for step in accelerated_steps:
        pay_step(step, -1, terms, fast)
    scatter_state(m, idx, fast)
    return m


def _per_path(v: object, n_paths: int) -> bool:
    return isinstance(v, np.ndarray) and v.ndim > 0 and v.shape[-1] == n_paths


def subset_state(m: MonthState, idx: np.ndarray) -> MonthState:
    """A copy of the month state holding only the paths ``idx`` (the last axis)."""
    n = m.available.shape[0]
    out = copy.copy(m)
    for f in fields(m):
        v = getattr(m, f.name)
        if _per_path(v, n):
            setattr(out, f.name, v[..., idx])
        elif isinstance(v, dict):
            setattr(out, f.name, {k: x[..., idx] for k, x in v.items()})
    return out


def scatter_state(m: MonthState, idx: np.ndarray, sub: MonthState) -> None:
    """Write ``sub`` (the paths ``idx``) back into ``m``, in place. The facts of the month are
    the same in both; the ledgers and the month's payments come from ``sub``."""
    n = m.available.shape[0]
    for f in fields(m):
        v = getattr(m, f.name)
        if _per_path(v, n):
            v = v.copy()
            v[..., idx] = getattr(sub, f.name)
            setattr(m, f.name, v)
        elif isinstance(v, dict):
            part = getattr(sub, f.name)
            merged = {}
            for k, x in v.items():
                x = x.copy()
                x[..., idx] = part[k]
                merged[k] = x
            setattr(m, f.name, merged)


@dataclass(frozen=True, slots=True)
class PoolMonth:
    """The pool cash the deal holds in one month (per path, CNY)."""

    scale: np.ndarray  # s: multiple of the simulated pool held (0 once called)
    interest: np.ndarray
    principal: np.ndarray  # scheduled principal + prepayments
    recovery: np.ndarray
    default: np.ndarray
    balance_bop: np.ndarray
    balance_eop: np.ndarray  # the collateral C
    collections: np.ndarray  # interest + principal + recovery


class HeldPool:
    """The collateral the deal holds (module doc, steps 1 and 3): the simulated pool times the
    scale ``s``, plus the flows of the loans bought while revolving, month-major
    ((7 flows, n_months, n_paths), in the order of ``FLOWS``); and its cumulative net loss."""

    def __init__(self, deal: Deal, paths: PoolPaths, replenishment: PoolPaths | None) -> None:
        n_paths, n_pool = paths.n_paths, paths.n_months
        check_replenishment(deal, paths, replenishment)
        self.initial_balance = float(paths.initial_balance)
        self.use_profile = replenishment is not None and deal.revolving_months > 0
        self.n_profile = replenishment.n_months if (self.use_profile and replenishment is not None) else 0
        self.n_months = horizon(deal, paths, replenishment)
        # the simulated pool, zero-padded to the horizon
        self.simulated = np.zeros((len(FLOWS), self.n_months, n_paths))
        for i, name in enumerate(FLOWS):
            self.simulated[i, :n_pool] = np.asarray(getattr(paths, name), dtype=np.float64).T
        # the simulated pool's 30+/60+/90+ DPD balances when its paths carry delinquency
        # states (--model delinquency, docs/model.md 5.6), zero-padded to the horizon
        self.dpd: np.ndarray | None = None
        if paths.delinquency is not None:
            self.dpd = np.zeros((3, self.n_months, n_paths))
            sb = paths.delinquency.state_balance
            # the kernel sums in float64; other balances are summed as numpy sums them
            (dpd_months if sb.dtype == np.float64 else dpd_months_np)(self.dpd, sb,
                                                                     DPD_FIRST_STATE)
        # loans bought while revolving: their flows by month, added as purchases happen
        self.bought = np.zeros((len(FLOWS), self.n_months + 1, n_paths))
        # per unit of the profile's balance: one per purchase month for a ReplenishmentProfile
        # (the vintage bought at month s saw the factor of months s + 1 …), else the one
        # profile for every purchase
        self.vintages: list[PoolPaths] = []
        self.unit = 0.0
        self.profile_states: list[np.ndarray] = []
        self.bought_dpd: np.ndarray | None = None
        if self.use_profile and replenishment is not None:
            unit = 1.0 / float(replenishment.initial_balance)
            vintages = ([replenishment.vintage(v) for v in range(replenishment.n_vintages)]
                        if isinstance(replenishment, ReplenishmentProfile) else [replenishment])
            # a purchase reads its vintage's flows when it happens (add_purchases): each
            # vintage of a ReplenishmentProfile is bought once, so nothing is prepared here
            self.vintages = vintages
            self.unit = unit
            # vintages of the delinquency model carry their balances by state (their
            # 30+/60+/90+ DPD balances, read when the vintage is bought)
            if all(v.delinquency is not None for v in vintages):
                self.profile_states = [v.delinquency.state_balance for v in vintages
                                       if v.delinquency is not None]
                self.bought_dpd = np.zeros((3, self.n_months + 1, n_paths))
        self.scale = np.ones(n_paths)  # the scaling approximation's s
        self.cumulative_default = np.zeros(n_paths)
        self.cumulative_recovery = np.zeros(n_paths)
        self.cumulative_purchases = np.zeros(n_paths)

    def month(self, t: int, alive: np.ndarray) -> PoolMonth:
        """Month ``t``'s cash (nothing once called); adds to the cumulative defaults and
        recoveries."""
        s = np.where(alive, self.scale, 0.0)
        interest, sched, prepay, default, recovery, bop, eop = self.simulated[:, t]
        b_int, b_sched, b_prepay, b_def, b_rec, b_bop, b_eop = self.bought[:, t]
        interest = s * (interest + b_int)
        principal = s * (sched + prepay + b_sched + b_prepay)
        recovery = s * (recovery + b_rec)
        default = s * (default + b_def)
        self.cumulative_default += default
        self.cumulative_recovery += recovery
        return PoolMonth(scale=s, interest=interest, principal=principal, recovery=recovery,
                         default=default, balance_bop=s * (bop + b_bop), balance_eop=s * (eop + b_eop),
                         collections=interest + principal + recovery)

    def metrics(self, t: int, cash: PoolMonth) -> PoolMetrics:
        """Month ``t``'s pool performance (module doc, step 2)."""
        net = self.cumulative_default - self.cumulative_recovery
        # delinquency from the default timing (module doc): the defaults of months t+1 and t+2
        # of the loans held. Each source is summed over its own rows (the simulated pool has
        # n_months rows, the bought loans one more; summing them before the rows were added
        # counted the simulated pool's last-month defaults twice in the second-to-last month).
        ahead1, ahead2 = (self._defaults_at(t + 1), self._defaults_at(t + 2))
        s = cash.scale
        collat = cash.balance_eop
        with np.errstate(divide="ignore", invalid="ignore"):
            safe = np.where(collat > 0, collat, 1.0)

            def share(x: np.ndarray) -> np.ndarray:
                return np.where(collat > 0, x / safe, 0.0)

            if self.dpd is None:
                dpd30 = s * (ahead1 + ahead2)
                dpd60, dpd90 = s * ahead1, cash.default
            elif self.bought_dpd is not None:  # the simulated states, the bought loans' too
                dpd30 = s * (self.dpd[0, t] + self.bought_dpd[0, t])
                dpd60 = s * (self.dpd[1, t] + self.bought_dpd[1, t])
                dpd90 = s * (self.dpd[2, t] + self.bought_dpd[2, t])
            else:  # the simulated states; the loans bought (hazard profile) by default timing
                b1, b2 = self._bought_defaults_at(t + 1), self._bought_defaults_at(t + 2)
                dpd30 = s * (self.dpd[0, t] + b1 + b2)
                dpd60 = s * (self.dpd[1, t] + b1)
                dpd90 = s * (self.dpd[2, t] + self._bought_defaults_at(t))
            return PoolMetrics(
                cnl=net / self.initial_balance,
                cnl_purchases=net / (self.initial_balance + self.cumulative_purchases),
                dpd30=share(dpd30), dpd60=share(dpd60), dpd90=share(dpd90),
                dpd30_balance=dpd30)

    def _bought_defaults_at(self, t: int) -> np.ndarray:
        """Month ``t``'s defaults of the loans bought (per unit of s); zero beyond the horizon."""
        if t >= self.n_months:
            return np.zeros(self.scale.shape)
        return self.bought[3, t]

    def _defaults_at(self, t: int) -> np.ndarray:
        """Month ``t``'s defaults of the simulated pool and of the loans bought (per unit of s);
        zero beyond the horizon."""
        if t >= self.n_months:
            return np.zeros(self.scale.shape)
        return self.simulated[3, t] + self.bought[3, t]

    def add_purchases(self, t: int, purchases: np.ndarray, collateral: np.ndarray) -> None:
        """New loans bought in month ``t`` (at par): with a profile, the flows per unit of the
        vintage bought in month t times the purchase from month t+1 on; without one, the pool's
        scale grows by purchase / C."""
        self.cumulative_purchases += purchases
        if self.use_profile:
            k = min(self.n_profile, self.n_months - t - 1)
            if k > 0 and purchases.any():
                v = min(t, len(self.vintages) - 1)
                pur = np.ascontiguousarray(purchases, dtype=np.float64)
                for i, name in enumerate(FLOWS):
                    # purchase × (flow per unit of the profile's balance), months ahead
                    flow = np.asarray(getattr(self.vintages[v], name), dtype=np.float64)
                    add_vintage(self.bought[i], t + 1, flow, k, self.unit, pur)
                if self.bought_dpd is not None:
                    sb = self.profile_states[v]
                    (add_vintage_dpd if sb.dtype == np.float64 else add_vintage_dpd_np)(
                        self.bought_dpd, t + 1, sb, DPD_FIRST_STATE, k, self.unit, pur)
        else:  # the scaling approximation: they perform like the pool
            with np.errstate(divide="ignore", invalid="ignore"):
                grow = np.where(purchases > 0,
                                purchases / np.where(collateral > 0, collateral, 1.0), 0.0)
            self.scale = self.scale * (1.0 + grow)


@dataclass(frozen=True, slots=True)
class PoolMetrics:
    """What the triggers test, per path, for one month (ratios; module doc, step 2).

    With the delinquency-state model's paths (``PoolPaths.delinquency``) the simulated pool's
    buckets are its simulated end-of-month balances more than 30/60/90 days past due. Under
    the hazard model (and for the loans bought while revolving) they are defined from the
    default timing (a loan defaults on reaching 90 DPD, 30 days a month):
    30+ DPD at t = defaults of months t+1 and t+2; 60+ = defaults of month t+1; 90+ = the
    defaults of month t (the loans reaching 90 DPD this month)."""

    cnl: np.ndarray  # cumulative net loss / initial pool
    cnl_purchases: np.ndarray  # cumulative net loss / (initial pool + purchases to date)
    dpd30: np.ndarray  # 30+ DPD balance / collateral (eop)
    dpd60: np.ndarray
    dpd90: np.ndarray
    dpd30_balance: np.ndarray  # CNY

    def value(self, metric: Metric, denominator: Denominator) -> np.ndarray:
        if metric is Metric.CNL:
            return self.cnl if denominator is Denominator.INITIAL else self.cnl_purchases
        if metric in (Metric.DELINQUENCY, Metric.DPD30):
            return self.dpd30
        return self.dpd60 if metric is Metric.DPD60 else self.dpd90


@dataclass(frozen=True, slots=True)
class TriggerMonth:
    """The triggers of one month, per path: each one's test and state, and their effects."""

    breached: dict[str, np.ndarray]  # bool: the test failed this month
    in_force: dict[str, np.ndarray]  # bool: breached (curable) or breached once (not curable)
    oc: np.ndarray | None  # the last OC trigger's ratio (NaN without notes); None without one
    sequential: np.ndarray  # bool: principal allocated sequentially
    turbo: np.ndarray  # bool: all notes due as principal
    trap_cash: np.ndarray  # bool: the residual is kept in the reserve
    accelerate: np.ndarray  # bool: an event of default has accelerated the notes


def mean_rows(rows: list[np.ndarray]) -> np.ndarray:
    """``np.mean(rows, axis=0)`` without stacking the rows: numpy's sum over the first axis
    (from 0.0, a row at a time) divided by the count; the same numbers."""
    total = 0.0 + rows[0]
    for row in rows[1:]:
        total += row
    total /= len(rows)
    return total


class Triggers:
    """The deal's triggers and what they carry from month to month: the latch of each trigger
    (breached once) and the end of the revolving period (module doc, step 2)."""

    def __init__(self, deal: Deal, n_paths: int) -> None:
        self.triggers = deal.triggers
        index = {n: i for i, n in enumerate(deal.tranche_names)}
        self.oc_notes = {t.name: np.array([index[n] for n in (t.tranches or deal.tranche_names)])
                         for t in deal.triggers}
        self.latched = {t.name: np.zeros(n_paths, dtype=bool) for t in deal.triggers}
        self.revolving_ended = np.zeros(n_paths, dtype=bool)
        self.accelerated = np.zeros(n_paths, dtype=bool)
        self.history: dict[str, list[np.ndarray]] = {t.name: [] for t in deal.triggers}
        self.n_paths = n_paths

    def averaged(self, name: str, value: np.ndarray, months: int) -> np.ndarray:
        """The mean of the metric over the last ``months`` months including this one (over
        the months there are, at the start)."""
        hist = self.history[name]
        hist.append(value)
        del hist[:-months]
        return value if months == 1 else mean_rows(hist)

    def test(self, t: int, *, metrics: PoolMetrics, collateral: np.ndarray,
             balance_bop: np.ndarray, alive: np.ndarray) -> TriggerMonth:
        """Test every trigger on month ``t``'s data, before any payment."""
        breached: dict[str, np.ndarray] = {}
        in_force: dict[str, np.ndarray] = {}
        oc = None
        sequential = np.zeros(self.n_paths, dtype=bool)
        turbo = np.zeros(self.n_paths, dtype=bool)
        trap = np.zeros(self.n_paths, dtype=bool)
        for trig in self.triggers:
            level = trig.level_at(t + 1)
            if trig.metric is not Metric.OC:
                value = self.averaged(trig.name, metrics.value(trig.metric, trig.denominator),
                                      trig.average_months)
                breach = value > level
            else:
                notes = balance_bop[self.oc_notes[trig.name]].sum(axis=0)
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.where(notes > 0, collateral / np.where(notes > 0, notes, 1.0), np.inf)
                oc = np.where(np.isfinite(ratio), ratio, np.nan)
                breach = self.averaged(trig.name, ratio, trig.average_months) < level
            breach &= alive
            self.latched[trig.name] |= breach
            state = breach if trig.curable else self.latched[trig.name]
            breached[trig.name] = breach
            in_force[trig.name] = state.copy()
            if trig.effect is Effect.SEQUENTIAL:
                sequential |= state
            elif trig.effect is Effect.TURBO:
                turbo |= state
                self.revolving_ended |= state
            elif trig.effect is Effect.END_REVOLVING:
                self.revolving_ended |= state
            elif trig.effect is Effect.ACCELERATE:
                self.accelerated |= state
                self.revolving_ended |= state
            else:
                trap |= state
        return TriggerMonth(breached=breached, in_force=in_force, oc=oc, sequential=sequential,
                            turbo=turbo, trap_cash=trap, accelerate=self.accelerated.copy())


class Tape:
    """What the run records, one row per month (month-major while running: each month's
    writes are contiguous); after the last month it is written path-major into the result's
    arrays (``allocate``: every path; this tape's paths are ``rows`` of them). (Writing
    blocks of 4, 8 or 16 months path-major as they fill took 65, 33 and 15% more CPU than one
    turn at the end on B1's 10,000 paths, under a load of 3.) The buffers live in the
    result's own memory (``chains``) and are not zeroed up front: a computed month writes
    every row (``write``), its tranche payments into rows ``month_rows`` zeroes first; a
    repeated month's rows are never read."""

    def __init__(self, deal: Deal, n_months: int, out: dict[tuple[str, str], np.ndarray],
                 rows: tuple[int, int]) -> None:
        self.n_months = n_months
        self.source = np.arange(n_months)  # the row each month's values are in (``repeat``)
        self.out, self.rows = out, rows
        self._rows: dict[str, np.ndarray] = {}
        # the buffers, hosted in the result's own memory (``chains``); only the arrays ``out``
        # holds (``allocate``'s ``keep``) are recorded
        bufs: dict[tuple[str, str], np.ndarray] = {}
        for chain in self.chains():
            for key, host in zip(chain, [*chain[1:], None][:len(chain)], strict=True):
                bufs[key] = self._hosted(key, host)

        def group(name: str) -> dict[str, np.ndarray]:
            return {k: v for (g, k), v in bufs.items() if g == name}

        self.tranche, self.pool, self.flags = group("tranche"), group("pool"), group("flag")
        self.fees_due, self.fees_paid = group("fees_due"), group("fees_paid")
        self.triggers, self.breached = group("triggers"), group("breached")
        self.metrics, self.pool_cash = group("metrics"), group("pool_cash")
        self.accounts = group("accounts")

    def chains(self) -> list[list[tuple[str, str]]]:
        """The result's arrays in three chains of equal blocks: the tranche arrays (float,
        (n_tranches, n_paths, n_months)), the other float arrays and the bool arrays ((n_paths,
        n_months)). This tape's buffer of a chain's array is held in the memory of its paths'
        block of the NEXT array of the chain (month-major: the same number of elements), the
        last one's in a buffer of its own; ``flush`` writes the chain in order, so an
        array's block is written once the buffer it held has been read. So the tape needs no
        memory of its own but three arrays', and the result's memory, touched by the run
        already, takes no page faults when it is written (a separate tape of 237 MB, and as
        much again for the result, on B1's 10,000 paths)."""
        keys = list(self.out)
        tranche = [k for k in keys if self.out[k].ndim == 3]
        flat = [k for k in keys if self.out[k].ndim == 2 and self.out[k].dtype != np.bool_]
        flags = [k for k in keys if self.out[k].ndim == 2 and self.out[k].dtype == np.bool_]
        return [tranche, flat, flags]

    def _hosted(self, key: tuple[str, str], host: tuple[str, str] | None) -> np.ndarray:
        """``key``'s buffer, month-major ((n_months, n_tranches, paths) or (n_months,
        paths)), in ``host``'s block of this tape's paths (None: a buffer of its own)."""
        a, b = self.rows
        like = self.out[key]
        shape = ((self.n_months, like.shape[0], b - a) if like.ndim == 3
                 else (self.n_months, b - a))
        if host is None:
            return np.empty(shape, dtype=like.dtype)
        block = self.out[host]
        if block.ndim == 2:  # rows a:b of (n_paths, n_months) are contiguous
            return block[a:b].reshape(shape)
        # one contiguous block per tranche, (b − a) × n_months each, a tranche's stride apart
        part = block[:, a:b]
        return np.lib.stride_tricks.as_strided(
            part, shape=shape, strides=((b - a) * part.itemsize, part.strides[0],
                                        part.itemsize))

    @staticmethod
    def allocate(deal: Deal, n_months: int, n_paths: int,
                 keep: frozenset[str] | None = None) -> dict[tuple[str, str], np.ndarray]:
        """The result's arrays by (group, name) (``arrays``), path-major: (n_tranches,
        n_paths, n_months) or (n_paths, n_months); every element is written by the tapes.
        ``keep``: only the arrays it names (``kept``; None: every one)."""
        for name in keep or ():
            if name.split(".")[0] not in NAMED_GROUPS:
                field_group(name)  # a field of WaterfallResult, else the error naming them
        shape3 = (len(deal.tranches), n_paths, n_months)
        shape2 = (n_paths, n_months)
        layout: list[tuple[tuple[str, str], tuple[int, ...], type]] = []
        layout += [(("tranche", k), shape3, np.float64) for k in TAPE_TRANCHE]
        layout += [(("pool", k), shape2, np.float64) for k in TAPE_POOL]
        for name in ("fees_due", "fees_paid"):
            layout += [((name, f.name), shape2, np.float64) for f in deal.fees]
        for name in ("triggers", "breached"):
            layout += [((name, t.name), shape2, np.bool_) for t in deal.triggers]
        layout += [(("metrics", k), shape2, np.float64) for k in METRICS]
        layout += [(("pool_cash", k), shape2, np.float64) for k in POOL_CASH]
        if deal.accounts is not None:
            layout += [(("accounts", k), shape2, np.float64) for k in ACCOUNTS]
        layout += [(("flag", k), shape2, np.bool_) for k in FLAGS]
        return {key: np.empty(shape, dtype=dtype) for key, shape, dtype in layout
                if kept(key, keep)}

    def arrays(self) -> dict[tuple[str, str], np.ndarray]:
        """The buffers (month-major: month first, paths last) by (group, name), as ``out``."""
        out: dict[tuple[str, str], np.ndarray] = {}
        for group in ("tranche", "pool", "fees_due", "fees_paid", "triggers", "breached",
                      "metrics", "pool_cash", "accounts"):
            for name, v in getattr(self, group).items():
                out[(group, name)] = v
        for name, v in self.flags.items():
            out[("flag", name)] = v
        return out

    def flush(self) -> None:
        """Write every month, path-major, into this tape's paths of ``out``
        (``tranching.kernels.transpose_into``, per tranche for the tranche arrays; a repeated
        month from the row of the month it repeats), each chain in order (``chains``)."""
        a, b = self.rows
        bufs = self.arrays()
        for chain in self.chains():
            for key in chain:
                buf, dst = bufs[key], self.out[key]
                if buf.ndim == 3:  # (n_months, n_tranches, paths) -> (n_tranches, paths, n_months)
                    for j in range(buf.shape[1]):
                        transpose_into(dst[j, a:b], buf[:, j], self.source)
                else:
                    transpose_into(dst[a:b], buf, self.source)

    def repeat(self, t: int) -> None:
        """Month ``t`` records what month t − 1 recorded (an inert month: ``inert_month``):
        its rows are read from that month's when the tape is written out (they are not
        copied; the buffers' rows of such months are never touched)."""
        self.source[t] = self.source[t - 1]
        if t == self.n_months - 1:
            self.flush()

    def month_rows(self, t: int) -> dict[str, np.ndarray]:
        """Month ``t``'s rows of the tranche payments (``steps.OUTPUT_ROWS``), zeroed here,
        for the month's ``MonthState`` to write into: ``write`` then copies only what the
        state holds elsewhere (an acceleration's scatter gives it new arrays)."""
        self._rows = {k: self.tranche[k][t] for k in OUTPUT_ROWS if k in self.tranche}
        for row in self._rows.values():
            row.fill(0.0)
        return self._rows

    def write(self, t: int, m: MonthState, cash: PoolMonth, *, reserve_bop: np.ndarray,
              call_proceeds: np.ndarray, revolving: np.ndarray, metrics: PoolMetrics,
              triggers: TriggerMonth, accelerated: np.ndarray, pro_rata: np.ndarray | None,
              advances: np.ndarray,
              accounts_in: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        r = t
        tr = self.tranche
        for name, row in tr.items():
            value = getattr(m, name)
            if self._rows.get(name) is not value:  # not written in place (month_rows)
                row[r] = value
        per_path = {
            "tax": m.tax, "support": m.support, "advance_made": m.advance_made,
            "advance_recovered": m.advance_recovered, "advances": advances,
            "reserve_bop": reserve_bop, "reserve": m.reserve, "residual": m.residual,
            "collections": cash.collections, "call_proceeds": call_proceeds,
            "purchases": m.purchases, "collateral": m.collateral_end, "pool_scale": cash.scale}
        for name, row in self.pool.items():
            row[r] = per_path[name]
        flags = {"accelerated": accelerated, "pro_rata": False if pro_rata is None else pro_rata,
                 "revolving": revolving}
        for name, row in self.flags.items():
            row[r] = flags[name]
        # every element of the month is written (0 / False where it has no value for it)
        for name, row in self.fees_due.items():
            row[r] = m.fees_due.get(name, 0.0)
        for name, row in self.fees_paid.items():
            row[r] = m.fees_paid.get(name, 0.0)
        for name, row in self.triggers.items():
            row[r] = triggers.in_force.get(name, False)
        for name, row in self.breached.items():
            row[r] = triggers.breached.get(name, False)
        for name, row in self.pool_cash.items():
            row[r] = getattr(cash, name)
        if accounts_in is not None:
            acc = {"interest_in": accounts_in[0], "principal_in": accounts_in[1],
                   "to_interest": m.to_interest, "to_principal": m.to_principal}
            for name, row in self.accounts.items():
                row[r] = acc[name]
        ratios = {"cnl": metrics.cnl, "cnl_purchases": metrics.cnl_purchases,
                  "delinquency": metrics.dpd30, "dpd60": metrics.dpd60, "dpd90": metrics.dpd90,
                  "oc": 0.0 if triggers.oc is None else triggers.oc}
        for name, row in self.metrics.items():
            row[r] = ratios[name]
        if t == self.n_months - 1:
            self.flush()

    def part(self, deal: Deal, amounts: np.ndarray, n_paths: int) -> WaterfallPart:
        """The :class:`WaterfallPart` of ``out`` (the arrays kept; once every tape has
        written its paths)."""
        return WaterfallPart(deal.tranche_names, amounts,
                             tuple(payment_dates(deal, self.n_months)), n_paths, self.out)

    def result(self, deal: Deal, amounts: np.ndarray) -> WaterfallResult:
        """The ``WaterfallResult`` of ``out`` (once every tape has written its paths)."""
        a = self.out

        def group(name: str) -> dict[str, np.ndarray]:
            return {k: v for (g, k), v in a.items() if g == name}

        tr, pool = group("tranche"), group("pool")
        accounts = group("accounts")
        return WaterfallResult(
            tranche_names=deal.tranche_names,
            original_balance=amounts,
            dates=tuple(payment_dates(deal, self.n_months)),
            interest_due=tr["interest_due"],
            interest_paid=tr["interest_paid"],
            interest_shortfall=tr["interest_shortfall"],
            principal_paid=tr["principal_paid"],
            reimbursed=tr["reimbursed"],
            balance=tr["balance"],
            writedown=tr["writedown"],
            writedown_outstanding=tr["writedown_outstanding"],
            reserve_bop=pool["reserve_bop"],
            reserve=pool["reserve"],
            fees_due=group("fees_due"),
            fees_paid=group("fees_paid"),
            triggers=group("triggers"),
            breached=group("breached"),
            residual=pool["residual"],
            collections=pool["collections"],
            call_proceeds=pool["call_proceeds"],
            purchases=pool["purchases"],
            collateral=pool["collateral"],
            revolving=a[("flag", "revolving")],
            pool_scale=pool["pool_scale"],
            metrics=group("metrics"),
            tax=pool["tax"],
            support=pool["support"],
            support_interest=tr["support_interest"],
            support_principal=tr["support_principal"],
            advance_made=pool["advance_made"],
            advance_recovered=pool["advance_recovered"],
            advances=pool["advances"],
            accelerated=a[("flag", "accelerated")],
            pro_rata=a[("flag", "pro_rata")],
            pool_cash=group("pool_cash"),
            accounts=accounts if accounts else None,
        )
