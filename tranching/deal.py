"""A deal structure as data: TOML in, frozen dataclasses out, validated once at the boundary.

The priority of payments is an ordered tuple of typed steps (``FeeStep``, ``InterestStep``,
``PrincipalStep``, ``ReserveStep``, ``ReimburseStep``, ``ResidualStep``) that a reader can check
line by line against a prospectus; ``Deal.describe_waterfall()`` prints it numbered.

TOML schema, declared below as ``DEAL`` with ``portfolio.validation`` (every field's type and
bounds; unknown keys refused). An error is a ``DealFileError`` naming the field path
(``tranches[1].coupon``), the allowed values, what was received and the file::

    [deal]
    name = "CN Consumer 2026-1"
    closing_date = 2026-01-15            # TOML date
    first_payment_date = 2026-02-26      # then monthly, same day (clamped to month end)
    principal_mode = "sequential"        # sequential | pro_rata | turbo
    initial_oc = 0.0                     # share of the pool not issued as notes (default 0)
    clean_up_call = 0.10                 # optional: call when the pool < this share of initial
    accrual = "full"                     # full (coupon on balance + PDL) | outstanding
    interest_on_shortfall = false        # unpaid interest bears interest at the coupon
    step_down_month = 13                 # pro_rata only: sequential before this month

    [[tranches]]                         # in order of seniority, at least two
    name = "A"
    size = 0.89                          # share of the initial pool  (or `amount` in CNY)
    coupon = 0.032                       # fixed annual rate, paid monthly (30/360: rate / 12)
    holder = "investors"                 # "platform" | a partner id | "investors"
    # the last tranche is the subordinated tranche: `coupon` optional (default 0); it also
    # takes the residual cash (the `residual` step).

    [[fees]]                             # senior fees
    name = "servicer"
    kind = "servicer"                    # servicer: `rate` a year on the pool balance (bop)
    rate = 0.01
    [[fees]]
    name = "trustee"
    kind = "fixed"                       # fixed: `amount` CNY per period
    amount = 2000.0

    [reserve]                            # optional
    target = 0.005                       # share of the pool
    basis = "initial"                    # initial (non-declining) | current (pool bop)
    floor = 0.0                          # share of the initial pool
    funding = "closing"                  # closing (funded at target) | excess_spread

    [overcollateralisation]              # optional: OC target the notes are paid down to
    target = 0.20
    basis = "current"                    # initial | current (pool eop)
    floor = 0.005                        # share of the initial pool

    [revolving]                          # optional
    months = 12

    [[triggers]]
    name = "cnl"
    metric = "cnl"                       # cnl | oc | delinquency (= dpd30) | dpd30 | dpd60 | dpd90
    denominator = "initial"              # cnl only: initial | initial_plus_purchases
    average_months = 1                   # test the mean over the last n months (1-12)
    schedule = [[1, 0.03], [13, 0.05]]   # [from month (1-based), level] step-up; or `level = x`
    curable = false
    effect = "turbo"                     # sequential | turbo | end_revolving | trap_cash | accelerate
    # metric = "oc" may name `tranches = ["A", "B"]` (the notes in the ratio; default all)

    [tax]                                # optional: tax on the trust's interest income
    rate = 0.03
    price_inclusive = true               # tax = interest × rate / (1 + rate); else × rate

    [shortfall_undertaking]              # optional: the originator's 差额支付承诺
    cap = 0.05                           # share of the initial pool, over the deal's life
    tranches = ["A"]
    provider = "platform"

    [advances]                           # optional: servicer advances of delinquent interest
    limit = 0.005                        # share of the initial pool outstanding

    [accounts]                           # optional: separate interest and principal collection
                                         # accounts (收入分账户 / 本金分账户); without it one pot
    recoveries = "principal"             # principal | interest: the account recoveries go to
    principal_covers_expenses = true     # the principal account pays what the interest account
                                         # cannot of the tax and the fees
    principal_covers_interest = ["A"]    # ... and of these classes' interest
    interest_covers_principal = true     # the interest account pays what the principal account
                                         # cannot of the principal distribution (the period's
                                         # defaults) and of the purchases while revolving

    [retention]                          # optional: originator risk retention
    kind = "vertical"                    # vertical | first_loss
    share = 0.05
    holder = "platform"

    # the priority of payments, in order: one [[waterfall]] table per step, e.g.
    [[waterfall]]
    step = "fee"
    fee = "servicer"
    # the step kinds and their keys:
    #   step = "fee"        fee = NAME          a fee due this period plus any carried unpaid
    #   step = "interest"   tranche = NAME      coupon on the balance plus any shortfall
    #   step = "reserve"                        keep cash in the reserve up to its target
    #   step = "principal"  tranches = [..]     principal distribution (default: all tranches)
    #   step = "reimburse"  tranches = [..]     refill these classes' PDL (default all); one step
    #                                           per class allowed, each class at most once
    #   step = "residual"                       everything left, to the subordinated holder; last
    # Without [[waterfall]] the default is: fees, interest (seniority order), reserve,
    # principal (all), reimburse, residual.

With ``[accounts]`` the interest collected (and the recoveries when ``recoveries =
"interest"``), the advances and the reserve released fund the interest account; the principal
collected, the recoveries and the call proceeds the principal account. ``fee``, ``interest``,
``reserve`` and ``reimburse`` steps and the tax draw on the interest account, ``principal``
steps (and purchases) on the principal account, each covered from the other account as the
rules say; ``residual`` takes what is left in both. At a clean-up call, at the legal final and
after an event of default the two accounts are one pot.

Rules that tie fields together, checked after the schema (``Deal.__post_init__``): at least
two tranches with unique names; sizes (shares, or amounts against the pool balance at run time)
plus ``initial_oc`` add up to the pool (tolerance 1e-6); every fee paid by exactly one ``fee``
step; every tranche with a coupon has exactly one ``interest`` step; every tranche sits in
exactly one ``principal`` step, in seniority order; a ``reserve`` step if and only if there is a
reserve; ``residual`` exactly once and last; trigger levels <= 1 except for ``oc``;
``trap_cash`` needs a reserve; first-loss retention must be covered by
junior tranches held by the retention holder.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from portfolio.validation import (
    Bool,
    Check,
    Date,
    Field,
    Interval,
    ListOf,
    SchemaError,
    Spec,
    Str,
    StrOptions,
    Table,
    child,
    read_toml,
    validate,
    verbatim,
)
from tranching.errors import DealFileError

SIZE_TOLERANCE = 1e-6


class PrincipalMode(StrEnum):
    SEQUENTIAL = "sequential"
    PRO_RATA = "pro_rata"
    TURBO = "turbo"


class FeeKind(StrEnum):
    SERVICER = "servicer"  # annual rate on the pool balance at the start of the month
    FIXED = "fixed"  # a fixed amount per period


class Basis(StrEnum):
    INITIAL = "initial"
    CURRENT = "current"


class Funding(StrEnum):
    CLOSING = "closing"
    EXCESS_SPREAD = "excess_spread"


class Metric(StrEnum):
    CNL = "cnl"  # (cum. defaults − cum. recoveries) / denominator; breach when above level
    OC = "oc"  # pool balance (eop) / notes balance (bop); breach when below level
    DELINQUENCY = "delinquency"  # 30+ DPD balance / pool balance (eop); breach when above level
    DPD30 = "dpd30"  # the same as ``delinquency``
    DPD60 = "dpd60"  # 60+ DPD balance / pool balance (eop)
    DPD90 = "dpd90"  # 90+ DPD balance / pool balance (eop)


class Denominator(StrEnum):
    """What a CNL trigger divides the cumulative net loss by."""

    INITIAL = "initial"  # the initial pool balance
    INITIAL_PLUS_PURCHASES = "initial_plus_purchases"  # plus every loan bought while revolving


class Accrual(StrEnum):
    """The balance a note's coupon accrues on."""

    FULL = "full"  # the balance before write-downs: outstanding balance + its PDL
    OUTSTANDING = "outstanding"  # the outstanding balance only (written-down principal accrues nothing)


class Effect(StrEnum):
    SEQUENTIAL = "sequential"  # principal allocated sequentially (pro rata deals switch)
    TURBO = "turbo"  # all notes due as principal (full turbo); also ends revolving
    END_REVOLVING = "end_revolving"  # the revolving period ends for good
    TRAP_CASH = "trap_cash"  # cash that would go to the residual holder is kept in the reserve
    ACCELERATE = "accelerate"  # event of default: all cash to the senior class's interest, then
    # its principal, then the next class's (also ends revolving); for good once in force


class RetentionKind(StrEnum):
    VERTICAL = "vertical"
    FIRST_LOSS = "first_loss"


@dataclass(frozen=True, slots=True)
class Tranche:
    name: str
    size: float | None  # share of the initial pool (exactly one of size / amount)
    amount: float | None  # CNY
    coupon: float  # fixed annual rate
    holder: str

    def amount_for(self, initial_balance: float) -> float:
        return float(self.amount) if self.amount is not None else float(self.size or 0.0) * initial_balance


@dataclass(frozen=True, slots=True)
class Fee:
    name: str
    kind: FeeKind
    rate: float = 0.0  # servicer: annual rate on pool balance
    amount: float = 0.0  # fixed: CNY per period


@dataclass(frozen=True, slots=True)
class Reserve:
    target: float
    basis: Basis = Basis.INITIAL
    floor: float = 0.0
    funding: Funding = Funding.CLOSING


@dataclass(frozen=True, slots=True)
class Overcollateralisation:
    target: float
    basis: Basis = Basis.CURRENT
    floor: float = 0.0


@dataclass(frozen=True, slots=True)
class Trigger:
    name: str
    metric: Metric
    schedule: tuple[tuple[int, float], ...]  # (from month, 1-based; level), months increasing
    curable: bool
    effect: Effect
    tranches: tuple[str, ...] = ()  # OC: the notes in the denominator (empty = all)
    denominator: Denominator = Denominator.INITIAL  # CNL only
    average_months: int = 1  # the metric averaged over this many months (the latest first)

    def level_at(self, month: int) -> float:
        """Threshold in force in 1-based ``month`` (before the first step: the first level)."""
        level = self.schedule[0][1]
        for start, value in self.schedule:
            if month >= start:
                level = value
        return level


@dataclass(frozen=True, slots=True)
class Tax:
    """Tax on the trust's interest income, paid before any step of the priority of payments.

    ``price_inclusive``: the interest collected includes the tax (VAT on the simplified method:
    tax = interest × rate / (1 + rate)); otherwise tax = interest × rate."""

    rate: float = 0.0
    price_inclusive: bool = True

    def on(self, interest: Any) -> Any:
        return interest * (self.rate / (1.0 + self.rate) if self.price_inclusive else self.rate)


@dataclass(frozen=True, slots=True)
class ShortfallUndertaking:
    """The originator's shortfall payment undertaking (差额支付承诺): it pays the interest
    shortfall of ``tranches`` at their interest step and, when their principal is due in full
    (clean-up call, legal final, acceleration), the principal shortfall at their principal
    step; in all at most ``cap`` × the initial pool over the life of the deal."""

    cap: float  # share of the initial pool
    tranches: tuple[str, ...]
    provider: str = "platform"


@dataclass(frozen=True, slots=True)
class Advances:
    """Servicer advances of delinquent interest: each month the servicer advances the interest
    due on the 30+ DPD balance (the pool's interest rate that month times that balance), up to
    ``limit`` × the initial pool outstanding; advances are recovered first, before any step."""

    limit: float  # share of the initial pool


class RecoveryAccount(StrEnum):
    """The collection account recoveries go to (separate accounts only)."""

    PRINCIPAL = "principal"
    INTEREST = "interest"


@dataclass(frozen=True, slots=True)
class Accounts:
    """Separate interest and principal collection accounts (收入分账户 / 本金分账户) and the
    deal's rules for moving cash between them (module doc)."""

    recoveries: RecoveryAccount = RecoveryAccount.PRINCIPAL
    principal_covers_expenses: bool = True  # tax and fees
    principal_covers_interest: tuple[str, ...] = ()  # classes whose interest it covers
    interest_covers_principal: bool = True  # the principal distribution and purchases


@dataclass(frozen=True, slots=True)
class Retention:
    kind: RetentionKind
    share: float
    holder: str = "platform"


@dataclass(frozen=True, slots=True)
class FeeStep:
    fee: str


@dataclass(frozen=True, slots=True)
class InterestStep:
    tranche: str


@dataclass(frozen=True, slots=True)
class PrincipalStep:
    tranches: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReserveStep:
    pass


@dataclass(frozen=True, slots=True)
class ReimburseStep:
    tranches: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResidualStep:
    pass


Step = FeeStep | InterestStep | PrincipalStep | ReserveStep | ReimburseStep | ResidualStep


@dataclass(frozen=True, slots=True)
class Holding:
    tranche: str
    holder: str
    share: float  # of the tranche


@dataclass(frozen=True, slots=True)
class Deal:
    name: str
    closing_date: dt.date
    first_payment_date: dt.date
    tranches: tuple[Tranche, ...]
    fees: tuple[Fee, ...]
    principal_mode: PrincipalMode
    waterfall: tuple[Step, ...]
    reserve: Reserve | None = None
    overcollateralisation: Overcollateralisation | None = None
    revolving_months: int = 0
    triggers: tuple[Trigger, ...] = ()
    clean_up_call: float | None = None
    initial_oc: float = 0.0
    retention: Retention | None = None
    accrual: Accrual = Accrual.FULL
    interest_on_shortfall: bool = False  # unpaid interest itself accrues at the coupon
    step_down_month: int | None = None  # pro_rata deals: sequential before this 1-based month
    tax: Tax | None = None
    shortfall_undertaking: ShortfallUndertaking | None = None
    advances: Advances | None = None
    accounts: Accounts | None = None
    source: str = ""

    def __post_init__(self) -> None:
        _check_deal(self)

    @property
    def tranche_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tranches)

    def index(self, tranche: str) -> int:
        try:
            return self.tranche_names.index(tranche)
        except ValueError:
            raise DealFileError("tranche", "one of " + ", ".join(self.tranche_names), tranche,
                                self.source) from None

    def tranche_amounts(self, initial_balance: float) -> tuple[float, ...]:
        """Tranche sizes in CNY for a pool of ``initial_balance``; checks that they add up."""
        amounts = tuple(t.amount_for(initial_balance) for t in self.tranches)
        total = sum(amounts) + self.initial_oc * initial_balance
        if abs(total - initial_balance) > SIZE_TOLERANCE * max(initial_balance, 1.0):
            raise DealFileError("tranches[].size", f"sizes that with initial_oc={self.initial_oc} "
                                f"add up to the pool balance {initial_balance:,.2f}",
                                verbatim(f"a total of {total:,.2f}"), self.source)
        return amounts

    def holdings(self) -> tuple[Holding, ...]:
        """Who holds what share of each tranche, after risk retention.

        Vertical retention: the retention holder keeps ``share`` of every tranche. First-loss
        retention: the junior tranches the retention holder already holds (checked to cover
        ``share`` of the pool)."""
        out: list[Holding] = []
        ret = self.retention
        for t in self.tranches:
            if ret is not None and ret.kind is RetentionKind.VERTICAL and t.holder != ret.holder:
                out.append(Holding(t.name, ret.holder, ret.share))
                out.append(Holding(t.name, t.holder, 1.0 - ret.share))
            else:
                out.append(Holding(t.name, t.holder, 1.0))
        return tuple(out)

    def with_sizes(self, sizes: Mapping[str, float]) -> Deal:
        """A copy with the given tranches resized (shares of the pool, each within ``_SHARE``)."""
        for name, size in sizes.items():
            _SHARE.check(size, f"tranches[{self.index(name)}].size", self.source, DealFileError)
        new = tuple(
            dataclasses.replace(t, size=float(sizes[t.name]), amount=None) if t.name in sizes else t
            for t in self.tranches
        )
        return dataclasses.replace(self, tranches=new)

    def describe_waterfall(self) -> str:
        """The priority of payments, numbered, one line per step (to check against a prospectus)."""
        lines = []
        if self.tax is not None:
            lines.append(f"first: tax at {self.tax.rate:.2%} on the interest collected"
                         + (" (price-inclusive)" if self.tax.price_inclusive else ""))
        if self.advances is not None:
            lines.append("first: servicer advances repaid")
        acc = self.accounts
        if acc is not None:
            lines.append(f"two collection accounts: interest (interest collected"
                         f"{', recoveries' if acc.recoveries is RecoveryAccount.INTEREST else ''}"
                         f", advances, the reserve released) pays tax, fees, interest, the reserve "
                         f"and PDL refills; principal (principal collected"
                         f"{', recoveries' if acc.recoveries is RecoveryAccount.PRINCIPAL else ''}"
                         ", call proceeds) pays principal and purchases")
            covers = (["tax", "fees"] if acc.principal_covers_expenses else []) + [
                f"{n} interest" for n in acc.principal_covers_interest]
            if covers:
                lines.append("the principal account covers the interest account's shortfall of: "
                             + ", ".join(covers))
            if acc.interest_covers_principal:
                lines.append("the interest account covers the principal account's shortfall of "
                             "the principal distribution and purchases, at the principal step")
        for i, step in enumerate(self.waterfall, 1):
            match step:
                case FeeStep(fee=f):
                    fee = next(x for x in self.fees if x.name == f)
                    what = (f"{fee.rate:.4%} a year on the pool balance" if fee.kind is FeeKind.SERVICER
                            else f"{fee.amount:,.2f} per period")
                    lines.append(f"{i}. fee {f} ({what}), plus any unpaid fee carried forward")
                case InterestStep(tranche=n):
                    c = self.tranches[self.index(n)].coupon
                    lines.append(f"{i}. interest on {n} ({c:.4%} a year, 30/360), plus any shortfall")
                case PrincipalStep(tranches=ts):
                    lines.append(f"{i}. principal to {', '.join(ts)} ({self.principal_mode.value}; "
                                 "buys new loans while revolving)")
                case ReserveStep():
                    lines.append(f"{i}. reserve account up to its target")
                case ReimburseStep(tranches=ts):
                    lines.append(f"{i}. refill the PDL (written-down principal) of {', '.join(ts)}")
                case ResidualStep():
                    lines.append(f"{i}. residual to {self.tranches[-1].holder} "
                                 f"(holder of {self.tranches[-1].name})")
        su = self.shortfall_undertaking
        if su is not None:
            lines.append(f"shortfall undertaking by {su.provider}: interest and final principal of "
                         f"{', '.join(su.tranches)}, up to {su.cap:.2%} of the initial pool")
        if any(t.effect is Effect.ACCELERATE for t in self.triggers):
            lines.append("after an event of default: fees, then each class's interest, principal "
                         "and PDL in seniority, then the residual")
        return "\n".join(lines)


# --------------------------------------------------------------------------- validation


def _fail(field: str, allowed: str, got: object, where: str) -> DealFileError:
    return DealFileError(field, allowed, got, where)


def _unique(table: str, names: Sequence[str], where: str) -> None:
    for i, name in enumerate(names):
        if name in names[:i]:
            raise _fail(f"{table}[{i}].name", "unique (a repeat of an earlier name)", name, where)


def _check_deal(d: Deal) -> None:
    """The rules that tie a deal's fields together (each field's own type and bounds are in
    ``DEAL``): unique names, sizes that add up, dates in order, triggers and retention that fit
    the rest, a complete priority of payments."""
    w = d.source
    names = d.tranche_names
    if len(d.tranches) < 2:
        raise _fail("tranches", "at least two tranches in order of seniority", list(names), w)
    _unique("tranches", names, w)
    for i, t in enumerate(d.tranches):
        if (t.size is None) == (t.amount is None):
            raise _fail(f"tranches[{i}].size", "exactly one of `size` (share) or `amount` (CNY)",
                        {"size": t.size, "amount": t.amount}, w)
    if all(t.size is not None for t in d.tranches):
        total = sum(t.size or 0.0 for t in d.tranches) + d.initial_oc
        if abs(total - 1.0) > SIZE_TOLERANCE:
            raise _fail("tranches[].size", f"shares that with initial_oc={d.initial_oc} add up to 1",
                        verbatim(f"a total of {total:.6f}"), w)
    if d.first_payment_date <= d.closing_date:
        raise _fail("deal.first_payment_date", f"after closing_date {d.closing_date}",
                    d.first_payment_date, w)
    _unique("fees", [f.name for f in d.fees], w)
    _unique("triggers", [t.name for t in d.triggers], w)
    for i, trig in enumerate(d.triggers):
        _check_trigger(d, trig, f"triggers[{i}]")
    ret = d.retention
    if ret is not None and ret.kind is RetentionKind.FIRST_LOSS and all(
            t.size is not None for t in d.tranches):
        held = d.initial_oc
        for tr in reversed(d.tranches):
            if tr.holder != ret.holder:
                break
            held += tr.size or 0.0
        if held < ret.share - SIZE_TOLERANCE:
            raise _fail("retention.share", f"covered by the junior tranches held by {ret.holder!r} "
                        f"(they hold {held:.4f} of the pool incl. OC)", ret.share, w)
    _check_waterfall(d)


def _check_trigger(d: Deal, trig: Trigger, path: str) -> None:
    w = d.source
    months = [m for m, _ in trig.schedule]
    if not months or months != sorted(set(months)):
        raise _fail(f"{path}.schedule", "months in increasing order", months, w)
    for name in trig.tranches:
        if name not in d.tranche_names:
            raise _fail(f"{path}.tranches", "names of tranches: " + ", ".join(d.tranche_names),
                        name, w)
    if trig.tranches and trig.metric is not Metric.OC:
        raise _fail(f"{path}.tranches", "given only for metric 'oc'", list(trig.tranches), w)
    if trig.denominator is not Denominator.INITIAL and trig.metric is not Metric.CNL:
        raise _fail(f"{path}.denominator", "given only for metric 'cnl'", trig.denominator.value, w)
    if trig.effect is Effect.TRAP_CASH and d.reserve is None:
        raise _fail(f"{path}.effect", "'trap_cash' only with a [reserve] section",
                    trig.effect.value, w)
    if trig.effect is Effect.END_REVOLVING and d.revolving_months == 0:
        raise _fail(f"{path}.effect", "'end_revolving' only with a [revolving] section",
                    trig.effect.value, w)


def _check_waterfall(d: Deal) -> None:
    w = d.source
    names = d.tranche_names
    steps = d.waterfall
    fees_paid = [s.fee for s in steps if isinstance(s, FeeStep)]
    for i, s in enumerate(steps):
        if isinstance(s, FeeStep) and s.fee not in {f.name for f in d.fees}:
            raise _fail(f"waterfall[{i}].fee", "a fee name: " + ", ".join(f.name for f in d.fees),
                        s.fee, w)
        if isinstance(s, InterestStep) and s.tranche not in names:
            raise _fail(f"waterfall[{i}].tranche", "a tranche name: " + ", ".join(names), s.tranche, w)
        if isinstance(s, PrincipalStep | ReimburseStep):
            for n in s.tranches:
                if n not in names:
                    raise _fail(f"waterfall[{i}].tranches", "tranche names: " + ", ".join(names), n, w)
    if not steps or not isinstance(steps[-1], ResidualStep):
        raise _fail("waterfall", "a list ending with the step 'residual'",
                    [_step_name(s) for s in steps], w)
    if sum(isinstance(s, ResidualStep) for s in steps) != 1:
        raise _fail("waterfall", "exactly one 'residual' step", [_step_name(s) for s in steps], w)
    for f in d.fees:
        if fees_paid.count(f.name) != 1:
            raise _fail("waterfall", f"exactly one 'fee' step for fee {f.name!r}",
                        f"{fees_paid.count(f.name)} step(s)", w)
    interest = [s.tranche for s in steps if isinstance(s, InterestStep)]
    for t in d.tranches:
        count = interest.count(t.name)
        if count > 1 or (t.coupon > 0 and count != 1):
            raise _fail("waterfall", f"exactly one 'interest' step for tranche {t.name!r}",
                        f"{count} step(s)", w)
    principal = [n for s in steps if isinstance(s, PrincipalStep) for n in s.tranches]
    if principal != list(names):
        raise _fail("waterfall", "'principal' steps that name every tranche once, in seniority "
                    "order: " + ", ".join(names), principal, w)
    n_reserve = sum(isinstance(s, ReserveStep) for s in steps)
    if n_reserve != (1 if d.reserve is not None else 0):
        raise _fail("waterfall", "one 'reserve' step if and only if there is a [reserve] section",
                    f"{n_reserve} step(s), reserve {'present' if d.reserve else 'absent'}", w)
    for i, s in enumerate(steps):
        if isinstance(s, ReimburseStep) and list(s.tranches) != sorted(s.tranches, key=names.index):
            raise _fail(f"waterfall[{i}].tranches", "tranches in seniority order: " + ", ".join(names),
                        list(s.tranches), w)
    refilled = [n for s in steps if isinstance(s, ReimburseStep) for n in s.tranches]
    for n in refilled:
        if refilled.count(n) > 1:
            raise _fail("waterfall", f"each tranche's PDL refilled by at most one 'reimburse' step "
                        f"({n!r} is named more than once)", [_step_name(s) for s in steps], w)
    if d.step_down_month is not None and d.principal_mode is not PrincipalMode.PRO_RATA:
        raise _fail("deal.step_down_month", "given only with principal_mode = 'pro_rata'",
                    d.step_down_month, w)
    su = d.shortfall_undertaking
    if su is not None:
        for n in su.tranches:
            if n not in names:
                raise _fail("shortfall_undertaking.tranches", "tranche names: " + ", ".join(names),
                            n, w)
    if d.accounts is not None:
        for n in d.accounts.principal_covers_interest:
            if n not in names:
                raise _fail("accounts.principal_covers_interest",
                            "tranche names: " + ", ".join(names), n, w)


def _step_name(s: Step) -> str:
    return {FeeStep: "fee", InterestStep: "interest", PrincipalStep: "principal",
            ReserveStep: "reserve", ReimburseStep: "reimburse", ResidualStep: "residual"}[type(s)]


# --------------------------------------------------------------------------- TOML schema


@dataclass(frozen=True)
class _Tagged(Spec):
    """A table whose ``tag`` key picks the schema of its other keys (``kind = "fixed"`` → a
    fixed fee's keys); the result keeps the tag."""

    tag: str
    variants: Mapping[str, Table]

    def describe(self) -> str:
        return f"a table with `{self.tag}` one of " + ", ".join(repr(k) for k in self.variants)

    def check(self, value: Any, path: str, where: str, error: type[SchemaError]) -> Any:
        if not isinstance(value, dict):
            raise self.fail(value, path, where, error)
        options = StrOptions(tuple(self.variants))
        if self.tag not in value:
            raise error(child(path, self.tag), f"given ({options.describe()})", _NOTHING, where)
        kind = options.check(value[self.tag], child(path, self.tag), where, error)
        variant = self.variants[kind]
        for key in value:
            if key != self.tag and key not in variant.fields:
                allowed = ", ".join((self.tag, *variant.fields))
                raise error(child(path, str(key)), f"a known key for {self.tag} = {kind!r} "
                            f"(allowed keys: {allowed})", verbatim("an unknown key"), where)
        rest = {k: v for k, v in value.items() if k != self.tag}
        return {self.tag: kind, **variant.check(rest, path, where, error)}


_NOTHING = verbatim("nothing")  # "got nothing": a field that must be given is missing


def _options(enum: type[StrEnum]) -> StrOptions:
    return StrOptions(tuple(e.value for e in enum))


_MONTH = Interval(int, 1, None)
_LEVEL = Interval(float, 0, 100, unit="a ratio")  # <= 1 for cnl and delinquency (checked after)


def _schedule_pair(value: Any) -> tuple[int, float]:
    """``[month, level]`` → ``(month, level)``; ``ValueError`` (a ``SchemaError``) otherwise."""
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError(value)
    return (_MONTH.check(value[0], "", "", SchemaError),
            _LEVEL.check(value[1], "", "", SchemaError))


_SHARE = Interval(float, 0, 1, unit="a share of the pool")
_RATE = Interval(float, 0, 1, unit="a decimal annual rate")
_CNY = Interval(float, 0, None, unit="a finite amount in CNY")
_NAME = Str(nonempty=True)
_NAMES = ListOf(Str(nonempty=True))
_BELOW_ONE = Interval(float, 0, 1, closed="left", unit="a share of the pool")

TRANCHE = Table({
    "name": Field(_NAME),
    "size": Field.optional(_SHARE),  # exactly one of size / amount (checked after)
    "amount": Field.optional(_CNY),
    # only the subordinated (last) tranche may leave the coupon out (checked after)
    "coupon": Field.optional(_RATE),
    "holder": Field.optional(Str(nonempty=True, what="'platform', a partner id or 'investors'"),
                             "investors"),
}, name="[[tranches]]")

TRIGGER = Table({
    "name": Field(_NAME),
    "metric": Field(_options(Metric)),
    "level": Field.optional(_LEVEL),  # or a schedule
    "schedule": Field.optional(ListOf(
        Check(_schedule_pair, "a [month, level] pair: an integer month >= 1, a level in [0, 100]"),
        min_len=1, what="a list of [month, level] pairs")),
    "curable": Field.optional(Bool(), False),
    "effect": Field(_options(Effect)),
    "tranches": Field.optional(_NAMES, []),  # metric "oc" only
    "denominator": Field.optional(_options(Denominator), Denominator.INITIAL.value),  # cnl only
    "average_months": Field.optional(Interval(int, 1, 12), 1),
}, name="[[triggers]]")

STEP = _Tagged("step", {
    "fee": Table({"fee": Field(_NAME)}),
    "interest": Table({"tranche": Field(_NAME)}),
    "reserve": Table({}),
    "principal": Table({"tranches": Field.optional(_NAMES, [])}),  # empty: every tranche
    "reimburse": Table({"tranches": Field.optional(_NAMES, [])}),
    "residual": Table({}),
})

DEAL = Table({
    "deal": Field(Table({
        "name": Field(Str()),
        "closing_date": Field(Date()),
        "first_payment_date": Field(Date()),
        "principal_mode": Field.optional(_options(PrincipalMode), PrincipalMode.SEQUENTIAL.value),
        "initial_oc": Field.optional(_BELOW_ONE, 0.0),
        "clean_up_call": Field.optional(_BELOW_ONE),
        "accrual": Field.optional(_options(Accrual), Accrual.FULL.value),
        "interest_on_shortfall": Field.optional(Bool(), False),
        "step_down_month": Field.optional(_MONTH),
    }, name="[deal]")),
    "tranches": Field(ListOf(TRANCHE, min_len=2,
                             what="a list of at least two [[tranches]], in order of seniority")),
    "fees": Field.optional(ListOf(_Tagged("kind", {
        "servicer": Table({"name": Field(_NAME),
                           "rate": Field(Interval(float, 0, 0.2, unit="a decimal annual rate"))}),
        "fixed": Table({"name": Field(_NAME),
                        "amount": Field(Interval(float, 0, None, unit="a finite amount in CNY "
                                                 "per period"))}),
    })), []),
    "reserve": Field.optional(Table({
        "target": Field(_SHARE),
        "basis": Field.optional(_options(Basis), Basis.INITIAL.value),
        "floor": Field.optional(_SHARE, 0.0),
        "funding": Field.optional(_options(Funding), Funding.CLOSING.value),
    }, name="[reserve]")),
    "overcollateralisation": Field.optional(Table({
        "target": Field(_BELOW_ONE),
        "basis": Field.optional(_options(Basis), Basis.CURRENT.value),
        "floor": Field.optional(_BELOW_ONE, 0.0),
    }, name="[overcollateralisation]")),
    "revolving": Field.optional(Table({"months": Field(Interval(int, 0, 120))}, name="[revolving]")),
    "triggers": Field.optional(ListOf(TRIGGER), []),
    "retention": Field.optional(Table({
        "kind": Field(_options(RetentionKind)),
        "share": Field(Interval(float, 0, 1, closed="right", unit="a share")),
        "holder": Field.optional(_NAME, "platform"),
    }, name="[retention]")),
    "tax": Field.optional(Table({
        "rate": Field(Interval(float, 0, 0.5, unit="a decimal tax rate")),
        "price_inclusive": Field.optional(Bool(), True),
    }, name="[tax]")),
    "shortfall_undertaking": Field.optional(Table({
        "cap": Field(_SHARE),
        "tranches": Field(ListOf(Str(nonempty=True), min_len=1)),
        "provider": Field.optional(_NAME, "platform"),
    }, name="[shortfall_undertaking]")),
    "advances": Field.optional(Table({"limit": Field(_SHARE)}, name="[advances]")),
    "accounts": Field.optional(Table({
        "recoveries": Field.optional(_options(RecoveryAccount), "principal"),
        "principal_covers_expenses": Field.optional(Bool(), True),
        "principal_covers_interest": Field.optional(ListOf(Str(nonempty=True)), []),
        "interest_covers_principal": Field.optional(Bool(), True),
    }, name="[accounts]")),
    "waterfall": Field.optional(ListOf(STEP)),  # default: _default_waterfall
}, name="deal file")


# --------------------------------------------------------------------------- TOML parsing


def _tranches(raw: list[dict[str, Any]], where: str) -> tuple[Tranche, ...]:
    out = []
    for i, t in enumerate(raw):
        if t["coupon"] is None and i < len(raw) - 1:
            raise DealFileError(f"tranches[{i}].coupon", "given (a decimal annual rate; only the "
                                "subordinated tranche may leave it out)", _NOTHING, where)
        out.append(Tranche(t["name"], t["size"], t["amount"], t["coupon"] or 0.0, t["holder"]))
    return tuple(out)


def _trigger(t: dict[str, Any], i: int, where: str) -> Trigger:
    if (t["level"] is None) == (t["schedule"] is None):
        raise DealFileError(f"triggers[{i}].schedule", "exactly one of `level` or `schedule`",
                            {"level": t["level"], "schedule": t["schedule"]}, where)
    metric = Metric(t["metric"])
    schedule = ((1, t["level"]),) if t["level"] is not None else tuple(t["schedule"])
    for k, (month, level) in enumerate(schedule):
        if metric is not Metric.OC and level > 1:
            field, got = ((f"triggers[{i}].level", level) if t["level"] is not None
                          else (f"triggers[{i}].schedule[{k}]", [month, level]))
            raise DealFileError(field, f"a level in [0, 1] for metric {metric.value!r}", got, where)
    return Trigger(t["name"], metric, schedule, t["curable"], Effect(t["effect"]),
                   tuple(t["tranches"]), Denominator(t["denominator"]), t["average_months"])


def _step(s: dict[str, Any]) -> Step:
    match s["step"]:
        case "fee":
            return FeeStep(s["fee"])
        case "interest":
            return InterestStep(s["tranche"])
        case "principal":
            return PrincipalStep(tuple(s["tranches"]))
        case "reimburse":
            return ReimburseStep(tuple(s["tranches"]))
        case "reserve":
            return ReserveStep()
    return ResidualStep()


def _default_waterfall(tranches: Sequence[Tranche], fees: Sequence[Fee], reserve: bool) -> list[Step]:
    steps: list[Step] = [FeeStep(f.name) for f in fees]
    steps += [InterestStep(t.name) for t in tranches if t.coupon > 0]
    if reserve:
        steps.append(ReserveStep())
    steps += [PrincipalStep(()), ReimburseStep(()), ResidualStep()]
    return steps


def _all_tranches(steps: Sequence[Step], names: tuple[str, ...]) -> tuple[Step, ...]:
    """A ``principal`` or ``reimburse`` step that names no tranche covers all of them."""
    return tuple(PrincipalStep(names) if isinstance(s, PrincipalStep) and not s.tranches
                 else ReimburseStep(names) if isinstance(s, ReimburseStep) and not s.tranches
                 else s for s in steps)


def deal_from_dict(data: Mapping[str, Any], source: str = "") -> Deal:
    """A ``Deal`` from parsed TOML: checked against ``DEAL`` (types, bounds, unknown keys), then
    the rules that tie fields together (``Deal.__post_init__``). ``source`` names the file."""
    d = validate(DEAL, data, source, error=DealFileError)
    head = d["deal"]
    tranches = _tranches(d["tranches"], source)
    fees = tuple(Fee(f["name"], FeeKind(f["kind"]), rate=f.get("rate", 0.0),
                     amount=f.get("amount", 0.0)) for f in d["fees"])
    r, oc, ret = d["reserve"], d["overcollateralisation"], d["retention"]
    su, acc = d["shortfall_undertaking"], d["accounts"]
    reserve = None if r is None else Reserve(r["target"], Basis(r["basis"]), r["floor"],
                                             Funding(r["funding"]))
    steps = ([_step(s) for s in d["waterfall"]] if d["waterfall"] is not None
             else _default_waterfall(tranches, fees, reserve is not None))
    return Deal(
        name=head["name"], closing_date=head["closing_date"],
        first_payment_date=head["first_payment_date"], tranches=tranches, fees=fees,
        principal_mode=PrincipalMode(head["principal_mode"]),
        waterfall=_all_tranches(steps, tuple(t.name for t in tranches)), reserve=reserve,
        overcollateralisation=None if oc is None else Overcollateralisation(
            oc["target"], Basis(oc["basis"]), oc["floor"]),
        revolving_months=0 if d["revolving"] is None else d["revolving"]["months"],
        triggers=tuple(_trigger(t, i, source) for i, t in enumerate(d["triggers"])),
        clean_up_call=head["clean_up_call"], initial_oc=head["initial_oc"],
        retention=None if ret is None else Retention(RetentionKind(ret["kind"]), ret["share"],
                                                     ret["holder"]),
        accrual=Accrual(head["accrual"]), interest_on_shortfall=head["interest_on_shortfall"],
        step_down_month=head["step_down_month"],
        tax=None if d["tax"] is None else Tax(d["tax"]["rate"], d["tax"]["price_inclusive"]),
        shortfall_undertaking=None if su is None else ShortfallUndertaking(
            su["cap"], tuple(su["tranches"]), su["provider"]),
        advances=None if d["advances"] is None else Advances(d["advances"]["limit"]),
        accounts=None if acc is None else Accounts(
            RecoveryAccount(acc["recoveries"]), acc["principal_covers_expenses"],
            tuple(acc["principal_covers_interest"]), acc["interest_covers_principal"]),
        source=source)


def load_deal(path: str | Path) -> Deal:
    """Read and validate a deal TOML file; ``DealError`` names the field on any problem."""
    return deal_from_dict(read_toml(path, "deal file", DealFileError), source=str(path))


def payment_dates(deal: Deal, n_months: int) -> list[dt.date]:
    """Monthly payment dates from ``first_payment_date`` (day clamped to the month's end)."""
    first = deal.first_payment_date
    out = []
    for k in range(n_months):
        y, m = divmod(first.month - 1 + k, 12)
        year, month = first.year + y, m + 1
        nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
        last_day = (nxt - dt.timedelta(days=1)).day
        out.append(dt.date(year, month, min(first.day, last_day)))
    return out
