"""A deal structure as data: TOML in, frozen dataclasses out, validated once at the boundary.

The priority of payments is an ordered tuple of typed steps (``FeeStep``, ``InterestStep``,
``PrincipalStep``, ``ReserveStep``, ``ReimburseStep``, ``ResidualStep``) that a reader can check
line by line against a prospectus; ``Deal.describe_waterfall()`` prints it numbered.

TOML schema (every field is checked; an error names the field, the allowed values and what
was received)::

    [deal]
    name = "CN Consumer 2026-1"
    closing_date = 2026-01-15            # TOML date
    first_payment_date = 2026-02-26      # then monthly, same day (clamped to month end)
    principal_mode = "sequential"        # sequential | pro_rata | turbo
    initial_oc = 0.0                     # share of the pool not issued as notes (default 0)
    clean_up_call = 0.10                 # optional: call when the pool < this share of initial

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
    metric = "cnl"                       # cnl | oc | delinquency
    schedule = [[1, 0.03], [13, 0.05]]   # [from month (1-based), level] step-up; or `level = x`
    curable = false
    effect = "turbo"                     # sequential | turbo | end_revolving | trap_cash
    # metric = "oc" may name `tranches = ["A", "B"]` (the notes in the ratio; default all)

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
    #   step = "reimburse"  tranches = [..]     written-down principal, senior first (default all)
    #   step = "residual"                       everything left, to the subordinated holder; last
    # Without [[waterfall]] the default is: fees, interest (seniority order), reserve,
    # principal (all), reimburse, residual.

Rules checked: at least two tranches with unique names; sizes (shares, or amounts against the
pool balance at run time) plus ``initial_oc`` add up to the pool (tolerance 1e-6); every fee
paid by exactly one ``fee`` step; every tranche with a coupon has exactly one ``interest`` step;
every tranche sits in exactly one ``principal`` step, in seniority order; a ``reserve`` step if
and only if there is a reserve; ``residual`` exactly once and last; triggers name a known
metric and effect; ``trap_cash`` needs a reserve; first-loss retention must be covered by
junior tranches held by the retention holder.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from portfolio.validation import read_toml
from tranching.errors import DealError, must_be

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
    CNL = "cnl"  # (cum. defaults − cum. recoveries) / initial pool; breach when above level
    OC = "oc"  # pool balance (eop) / notes balance (bop); breach when below level
    DELINQUENCY = "delinquency"  # 30+ DPD balance / pool balance (eop); breach when above level


class Effect(StrEnum):
    SEQUENTIAL = "sequential"  # principal allocated sequentially (pro rata deals switch)
    TURBO = "turbo"  # all notes due as principal (full turbo); also ends revolving
    END_REVOLVING = "end_revolving"  # the revolving period ends for good
    TRAP_CASH = "trap_cash"  # cash that would go to the residual holder is kept in the reserve


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

    def level_at(self, month: int) -> float:
        """Threshold in force in 1-based ``month`` (before the first step: the first level)."""
        level = self.schedule[0][1]
        for start, value in self.schedule:
            if month >= start:
                level = value
        return level


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
            raise DealError(
                must_be("tranche", "one of " + ", ".join(self.tranche_names), tranche, self.source)
            ) from None

    def tranche_amounts(self, initial_balance: float) -> tuple[float, ...]:
        """Tranche sizes in CNY for a pool of ``initial_balance``; checks that they add up."""
        amounts = tuple(t.amount_for(initial_balance) for t in self.tranches)
        total = sum(amounts) + self.initial_oc * initial_balance
        if abs(total - initial_balance) > SIZE_TOLERANCE * max(initial_balance, 1.0):
            raise DealError(
                must_be(
                    "tranches[].size",
                    f"sizes that with initial_oc={self.initial_oc} add up to the pool balance "
                    f"{initial_balance:,.2f}",
                    f"a total of {total:,.2f}",
                    self.source,
                )
            )
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
        """A copy with the given tranches resized (shares of the pool)."""
        new = tuple(
            dataclasses.replace(t, size=float(sizes[t.name]), amount=None) if t.name in sizes else t
            for t in self.tranches
        )
        return dataclasses.replace(self, tranches=new)

    def describe_waterfall(self) -> str:
        """The priority of payments, numbered, one line per step (to check against a prospectus)."""
        lines = []
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
                    lines.append(f"{i}. reimburse written-down principal of {', '.join(ts)}, senior first")
                case ResidualStep():
                    lines.append(f"{i}. residual to {self.tranches[-1].holder} "
                                 f"(holder of {self.tranches[-1].name})")
        return "\n".join(lines)


# --------------------------------------------------------------------------- validation


def _fail(field: str, allowed: str, got: object, where: str) -> DealError:
    return DealError(must_be(field, allowed, got, where))


def _check_deal(d: Deal) -> None:
    w = d.source
    names = d.tranche_names
    if len(d.tranches) < 2:
        raise _fail("tranches", "at least two tranches in order of seniority", list(names), w)
    if len(set(names)) != len(names):
        raise _fail("tranches[].name", "unique names", list(names), w)
    for i, t in enumerate(d.tranches):
        if not t.name:
            raise _fail(f"tranches[{i}].name", "a non-empty string", t.name, w)
        if (t.size is None) == (t.amount is None):
            raise _fail(f"tranches[{i}].size", "exactly one of `size` (share) or `amount` (CNY)",
                        {"size": t.size, "amount": t.amount}, w)
        if t.size is not None and not 0 <= t.size <= 1:
            raise _fail(f"tranches[{i}].size", "in [0, 1] (a share of the pool)", t.size, w)
        if t.amount is not None and not t.amount >= 0:
            raise _fail(f"tranches[{i}].amount", ">= 0 (CNY)", t.amount, w)
        if not 0 <= t.coupon <= 1:
            raise _fail(f"tranches[{i}].coupon", "in [0, 1] (a decimal annual rate)", t.coupon, w)
        if not t.holder:
            raise _fail(f"tranches[{i}].holder", "'platform', a partner id or 'investors'", t.holder, w)
    if not 0 <= d.initial_oc < 1:
        raise _fail("deal.initial_oc", "in [0, 1)", d.initial_oc, w)
    shares = [t.size for t in d.tranches]
    if all(s is not None for s in shares):
        total = sum(s for s in shares if s is not None) + d.initial_oc
        if abs(total - 1.0) > SIZE_TOLERANCE:
            raise _fail("tranches[].size",
                        f"shares that with initial_oc={d.initial_oc} add up to 1",
                        f"a total of {total:.6f}", w)
    if d.first_payment_date <= d.closing_date:
        raise _fail("deal.first_payment_date", f"after closing_date {d.closing_date}",
                    d.first_payment_date, w)
    fee_names = [f.name for f in d.fees]
    if len(set(fee_names)) != len(fee_names):
        raise _fail("fees[].name", "unique names", fee_names, w)
    for i, f in enumerate(d.fees):
        if f.kind is FeeKind.SERVICER and not 0 <= f.rate <= 0.2:
            raise _fail(f"fees[{i}].rate", "in [0, 0.2] (a decimal annual rate)", f.rate, w)
        if f.kind is FeeKind.FIXED and not f.amount >= 0:
            raise _fail(f"fees[{i}].amount", ">= 0 (CNY per period)", f.amount, w)
    if d.reserve is not None:
        r = d.reserve
        if not 0 <= r.target <= 1:
            raise _fail("reserve.target", "in [0, 1] (a share of the pool)", r.target, w)
        if not 0 <= r.floor <= 1:
            raise _fail("reserve.floor", "in [0, 1] (a share of the initial pool)", r.floor, w)
    if d.overcollateralisation is not None:
        o = d.overcollateralisation
        if not 0 <= o.target < 1:
            raise _fail("overcollateralisation.target", "in [0, 1)", o.target, w)
        if not 0 <= o.floor < 1:
            raise _fail("overcollateralisation.floor", "in [0, 1)", o.floor, w)
    if not 0 <= d.revolving_months <= 120:
        raise _fail("revolving.months", "an integer in [0, 120]", d.revolving_months, w)
    if d.clean_up_call is not None and not 0 <= d.clean_up_call < 1:
        raise _fail("deal.clean_up_call", "in [0, 1) (a share of the initial pool)", d.clean_up_call, w)
    trig_names = [t.name for t in d.triggers]
    if len(set(trig_names)) != len(trig_names):
        raise _fail("triggers[].name", "unique names", trig_names, w)
    for i, trig in enumerate(d.triggers):
        if not trig.schedule:
            raise _fail(f"triggers[{i}].schedule", "at least one [month, level] pair", [], w)
        months = [m for m, _ in trig.schedule]
        if months != sorted(set(months)) or months[0] < 1:
            raise _fail(f"triggers[{i}].schedule", "months >= 1 in increasing order", months, w)
        for _, level in trig.schedule:
            if not 0 <= level <= (100 if trig.metric is Metric.OC else 1):
                raise _fail(f"triggers[{i}].level", "a non-negative ratio (<= 1 for cnl and "
                            "delinquency)", level, w)
        for tname in trig.tranches:
            if tname not in names:
                raise _fail(f"triggers[{i}].tranches", "names of tranches: " + ", ".join(names),
                            tname, w)
        if trig.tranches and trig.metric is not Metric.OC:
            raise _fail(f"triggers[{i}].tranches", "given only for metric 'oc'", list(trig.tranches), w)
        if trig.effect is Effect.TRAP_CASH and d.reserve is None:
            raise _fail(f"triggers[{i}].effect", "'trap_cash' only with a [reserve] section",
                        trig.effect.value, w)
        if trig.effect is Effect.END_REVOLVING and d.revolving_months == 0:
            raise _fail(f"triggers[{i}].effect", "'end_revolving' only with a [revolving] section",
                        trig.effect.value, w)
    if d.retention is not None:
        ret = d.retention
        if not 0 < ret.share <= 1:
            raise _fail("retention.share", "in (0, 1]", ret.share, w)
        if ret.kind is RetentionKind.FIRST_LOSS and all(t.size is not None for t in d.tranches):
            held = 0.0
            for tr in reversed(d.tranches):
                if tr.holder != ret.holder:
                    break
                held += tr.size or 0.0
            if held + d.initial_oc < ret.share - SIZE_TOLERANCE:
                raise _fail("retention.share",
                            f"covered by the junior tranches held by {ret.holder!r} "
                            f"(they hold {held + d.initial_oc:.4f} of the pool incl. OC)",
                            ret.share, w)
    _check_waterfall(d)


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
    if sum(isinstance(s, ReimburseStep) for s in steps) > 1:
        raise _fail("waterfall", "at most one 'reimburse' step", [_step_name(s) for s in steps], w)


def _step_name(s: Step) -> str:
    return {FeeStep: "fee", InterestStep: "interest", PrincipalStep: "principal",
            ReserveStep: "reserve", ReimburseStep: "reimburse", ResidualStep: "residual"}[type(s)]


# --------------------------------------------------------------------------- TOML parsing

STEP_KINDS = ("fee", "interest", "principal", "reserve", "reimburse", "residual")


class _Reader:
    """Typed access to one TOML table; every error names the dotted field path."""

    def __init__(self, table: Any, path: str, where: str) -> None:
        if not isinstance(table, Mapping):
            raise _fail(path, "a table", table, where)
        self.t = table
        self.path = path
        self.where = where
        self.used: set[str] = set()

    def _f(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.t

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., allowed: str = "") -> Any:
        self.used.add(key)
        if key not in self.t:
            if default is ...:
                raise _fail(self._f(key), f"present ({allowed or _kind_name(kind)})", "nothing", self.where)
            return default
        v = self.t[key]
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, kind) or (isinstance(v, bool) and kind in (int, float)):
            raise _fail(self._f(key), allowed or _kind_name(kind), v, self.where)
        return v

    def enum(self, key: str, enum: type[Enum], default: Any = ...) -> Any:
        allowed = "one of " + ", ".join(repr(e.value) for e in enum)  # type: ignore[attr-defined]
        raw = self.get(key, str, default if default is ... else default.value, allowed)
        try:
            return enum(raw)
        except ValueError:
            raise _fail(self._f(key), allowed, raw, self.where) from None

    def done(self) -> None:
        extra = sorted(set(self.t) - self.used)
        if extra:
            raise _fail(self._f(extra[0]), "a known key: " + ", ".join(sorted(self.used)),
                        extra[0], self.where)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", float: "a number", int: "an integer", bool: "true or false",
             list: "a list", dt.date: "a date (YYYY-MM-DD)"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)


def deal_from_dict(data: Mapping[str, Any], source: str = "") -> Deal:
    """Build and validate a ``Deal`` from parsed TOML (``source`` names the file in errors)."""
    top = _Reader(data, "", source)
    head = _Reader(top.get("deal", dict, allowed="a [deal] table"), "deal", source)
    name = head.get("name", str)
    closing = head.get("closing_date", dt.date)
    first = head.get("first_payment_date", dt.date)
    mode = head.enum("principal_mode", PrincipalMode, PrincipalMode.SEQUENTIAL)
    initial_oc = head.get("initial_oc", float, 0.0)
    call = head.get("clean_up_call", float, None)
    head.done()

    raw_tranches = top.get("tranches", list, allowed="a list of [[tranches]] tables")
    tranches: list[Tranche] = []
    for i, raw in enumerate(raw_tranches):
        r = _Reader(raw, f"tranches[{i}]", source)
        last = i == len(raw_tranches) - 1
        size = r.get("size", float, None)
        amount = r.get("amount", float, None)
        coupon = r.get("coupon", float, 0.0 if last else ...,
                       allowed="a decimal annual rate (only the subordinated tranche may omit it)")
        tranches.append(Tranche(name=r.get("name", str), size=size, amount=amount, coupon=coupon,
                                holder=r.get("holder", str, "investors")))
        r.done()

    fees: list[Fee] = []
    for i, raw in enumerate(top.get("fees", list, [])):
        r = _Reader(raw, f"fees[{i}]", source)
        kind = r.enum("kind", FeeKind)
        if kind is FeeKind.SERVICER:
            fee = Fee(r.get("name", str), kind, rate=r.get("rate", float))
        else:
            fee = Fee(r.get("name", str), kind, amount=r.get("amount", float))
        r.done()
        fees.append(fee)

    reserve = None
    if top.has("reserve"):
        r = _Reader(top.get("reserve", dict), "reserve", source)
        reserve = Reserve(target=r.get("target", float), basis=r.enum("basis", Basis, Basis.INITIAL),
                          floor=r.get("floor", float, 0.0),
                          funding=r.enum("funding", Funding, Funding.CLOSING))
        r.done()
    oc = None
    if top.has("overcollateralisation"):
        r = _Reader(top.get("overcollateralisation", dict), "overcollateralisation", source)
        oc = Overcollateralisation(target=r.get("target", float),
                                   basis=r.enum("basis", Basis, Basis.CURRENT),
                                   floor=r.get("floor", float, 0.0))
        r.done()
    revolving = 0
    if top.has("revolving"):
        r = _Reader(top.get("revolving", dict), "revolving", source)
        revolving = r.get("months", int)
        r.done()

    triggers: list[Trigger] = []
    for i, raw in enumerate(top.get("triggers", list, [])):
        r = _Reader(raw, f"triggers[{i}]", source)
        metric = r.enum("metric", Metric)
        if r.has("schedule") == r.has("level"):
            raise _fail(f"triggers[{i}].schedule", "exactly one of `level` or `schedule`",
                        {k: raw.get(k) for k in ("level", "schedule")}, source)
        if r.has("level"):
            schedule: tuple[tuple[int, float], ...] = ((1, r.get("level", float)),)
        else:
            pairs = r.get("schedule", list)
            out = []
            for p in pairs:
                if (not isinstance(p, list) or len(p) != 2 or not isinstance(p[0], int)
                        or not isinstance(p[1], int | float) or isinstance(p[0], bool)):
                    raise _fail(f"triggers[{i}].schedule", "a list of [month, level] pairs", p, source)
                out.append((int(p[0]), float(p[1])))
            schedule = tuple(out)
        tranche_list = r.get("tranches", list, [])
        triggers.append(Trigger(name=r.get("name", str), metric=metric, schedule=schedule,
                                curable=r.get("curable", bool, False), effect=r.enum("effect", Effect),
                                tranches=tuple(str(x) for x in tranche_list)))
        r.done()

    retention = None
    if top.has("retention"):
        r = _Reader(top.get("retention", dict), "retention", source)
        retention = Retention(kind=r.enum("kind", RetentionKind), share=r.get("share", float),
                              holder=r.get("holder", str, "platform"))
        r.done()

    names = [t.name for t in tranches]
    if top.has("waterfall"):
        steps = [_parse_step(raw, i, source) for i, raw in enumerate(top.get("waterfall", list))]
    else:
        steps = _default_waterfall(tranches, fees, reserve is not None)
    steps = [
        PrincipalStep(tuple(names)) if isinstance(s, PrincipalStep) and not s.tranches
        else ReimburseStep(tuple(names)) if isinstance(s, ReimburseStep) and not s.tranches
        else s
        for s in steps
    ]
    top.done()
    return Deal(name=name, closing_date=closing, first_payment_date=first, tranches=tuple(tranches),
                fees=tuple(fees), principal_mode=mode, waterfall=tuple(steps), reserve=reserve,
                overcollateralisation=oc, revolving_months=revolving, triggers=tuple(triggers),
                clean_up_call=call, initial_oc=initial_oc, retention=retention, source=source)


def _parse_step(raw: Any, i: int, source: str) -> Step:
    r = _Reader(raw, f"waterfall[{i}]", source)
    kind = r.get("step", str, allowed="one of " + ", ".join(repr(k) for k in STEP_KINDS))
    step: Step
    if kind == "fee":
        step = FeeStep(r.get("fee", str))
    elif kind == "interest":
        step = InterestStep(r.get("tranche", str))
    elif kind == "principal":
        step = PrincipalStep(tuple(str(x) for x in r.get("tranches", list, [])))
    elif kind == "reserve":
        step = ReserveStep()
    elif kind == "reimburse":
        step = ReimburseStep(tuple(str(x) for x in r.get("tranches", list, [])))
    elif kind == "residual":
        step = ResidualStep()
    else:
        raise _fail(f"waterfall[{i}].step", "one of " + ", ".join(repr(k) for k in STEP_KINDS),
                    kind, source)
    r.done()
    return step


def _default_waterfall(tranches: Sequence[Tranche], fees: Sequence[Fee], reserve: bool) -> list[Step]:
    steps: list[Step] = [FeeStep(f.name) for f in fees]
    steps += [InterestStep(t.name) for t in tranches if t.coupon > 0]
    if reserve:
        steps.append(ReserveStep())
    steps += [PrincipalStep(()), ReimburseStep(()), ResidualStep()]
    return steps


def load_deal(path: str | Path) -> Deal:
    """Read and validate a deal TOML file; ``DealError`` names the field on any problem."""
    return deal_from_dict(read_toml(path, "deal file", DealError), source=str(path))


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
