"""Tranche analytics on a waterfall result: losses, WAL, IRR, price/yield/duration, CE, triggers.

Conventions (one set, used everywhere in this module):

- Times are year fractions from the deal's closing date, Actual/365 Fixed, to each payment date.
- Rates (IRR, yield, flat discount rate, zero rates) are annually compounded, Actual/365 Fixed —
  the same convention is handed to QuantLib, so the IRR of the expected cash flows equals the
  QuantLib yield at the same price.
- Loss = principal loss (``WaterfallResult.tranche_loss``) as a share of the tranche's original
  balance. EL = its mean (with its SE); PD = P(loss > 1e-8 of the balance); LGL (loss given
  loss) = EL / PD; ``loss_q…`` = numpy's linear quantile of the loss share (measures from
  ``portfolio.risk``).
- WAL (per path) = Σ τ·principal received / Σ principal received (principal + reimbursements).
- Expected IRR = mean over paths of the per-path IRR of the cash flows bought at ``price``
  (a share of the original balance, 1.0 = par); a path that returns nothing has IRR −100%.
- Price, yield and modified duration are computed by QuantLib (``ql.CashFlows``) on the
  *expected* cash flows (mean over paths), each a ``ql.SimpleCashFlow`` on its payment date;
  price is the NPV at closing as a share of the original balance. QuantLib's evaluation date is
  global: it is set inside ``evaluation_date()`` and restored afterwards.
- Credit enhancement at closing = (balance of junior tranches + initial OC + reserve funded at
  closing) / initial pool balance.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import QuantLib as ql

from portfolio.montecarlo.paths import PoolPaths
from portfolio.risk import interpolated_quantile, mean_and_se
from tranching.deal import Deal, Denominator, Funding, Metric
from tranching.errors import DealError, must_be
from tranching.ratings import RatingTable, implied_rating
from tranching.waterfall import WaterfallResult

LOSS_TOLERANCE = 1e-8  # a loss below this share of the tranche balance counts as none
QUANTILES = (0.95, 0.99, 0.999)
DAY_COUNT = ql.Actual365Fixed()


@dataclass(frozen=True, slots=True)
class ZeroCurve:
    """Zero rates (annually compounded, Act/365F) at dates; linear interpolation in QuantLib."""

    dates: tuple[dt.date, ...]
    rates: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.dates) != len(self.rates) or len(self.dates) < 1:
            raise DealError(must_be("discount.rates", "one rate per date (at least one)",
                                    f"{len(self.dates)} dates, {len(self.rates)} rates"))
        if list(self.dates) != sorted(set(self.dates)):
            raise DealError(must_be("discount.dates", "increasing dates", list(self.dates)))


Discount = float | ZeroCurve


def _qd(d: dt.date) -> ql.Date:
    return ql.Date(d.day, d.month, d.year)


@contextlib.contextmanager
def evaluation_date(d: dt.date) -> Iterator[ql.Date]:
    """Set QuantLib's global evaluation date to ``d`` for the block, then restore it."""
    settings = ql.Settings.instance()
    old = settings.evaluationDate
    settings.evaluationDate = _qd(d)
    try:
        yield _qd(d)
    finally:
        settings.evaluationDate = old


def year_fractions(closing: dt.date, dates: Sequence[dt.date]) -> np.ndarray:
    """Act/365F year fractions from ``closing`` to each date."""
    return np.array([(d - closing).days / 365.0 for d in dates], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class PriceYield:
    price: float  # NPV at closing / original balance
    yield_: float  # annual compounding, Act/365F
    modified_duration: float  # years


def price_yield_duration(
    amounts: Sequence[float],
    dates: Sequence[dt.date],
    closing: dt.date,
    face: float,
    discount: Discount,
) -> PriceYield:
    """QuantLib price (share of ``face``), yield and modified duration of a cash-flow leg."""
    with evaluation_date(closing) as today:
        leg = [ql.SimpleCashFlow(float(a), _qd(d)) for a, d in zip(amounts, dates, strict=True)
               if a > 0 and d > closing]
        if not leg or face <= 0:
            return PriceYield(float("nan"), float("nan"), float("nan"))
        if isinstance(discount, ZeroCurve):
            qdates = [today] + [_qd(d) for d in discount.dates if d > closing]
            rates = [discount.rates[0]] + [r for d, r in zip(discount.dates, discount.rates,
                                                              strict=True) if d > closing]
            curve = ql.ZeroCurve(qdates, rates, DAY_COUNT, ql.NullCalendar(), ql.Linear(),
                                 ql.Compounded, ql.Annual)
            curve.enableExtrapolation()
            npv = ql.CashFlows.npv(leg, ql.YieldTermStructureHandle(curve), False, today, today)
        else:
            rate = ql.InterestRate(float(discount), DAY_COUNT, ql.Compounded, ql.Annual)
            npv = ql.CashFlows.npv(leg, rate, False, today, today)
        y = ql.CashFlows.yieldRate(leg, npv, DAY_COUNT, ql.Compounded, ql.Annual, False, today,
                                   today, 1e-12, 1000, 0.05)
        dur = ql.CashFlows.duration(leg, y, DAY_COUNT, ql.Compounded, ql.Annual,
                                    ql.Duration.Modified, False, today, today)
    return PriceYield(npv / face, y, dur)


def path_irr(cashflows: np.ndarray, times: np.ndarray, price: np.ndarray | float) -> np.ndarray:
    """Per-path annual IRR y solving Σ cf·(1+y)^−τ = price, by bisection (vectorised).

    ``cashflows`` (n_paths, n_months), ``times`` (n_months,) in years, ``price`` per path or
    scalar (CNY). Paths with no cash get −1; a root is searched in (−1, 100]."""
    cf = np.asarray(cashflows, dtype=np.float64)
    n = cf.shape[0]
    target = np.broadcast_to(np.asarray(price, dtype=np.float64), (n,))
    lo = np.full(n, -0.999999)
    hi = np.full(n, 100.0)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        pv = (cf * np.power(1.0 + mid[:, None], -times[None, :])).sum(axis=1)
        too_low_rate = pv > target  # PV decreases with the rate
        lo = np.where(too_low_rate, mid, lo)
        hi = np.where(too_low_rate, hi, mid)
    irr = 0.5 * (lo + hi)
    return np.where(cf.sum(axis=1) <= 0, -1.0, irr)


def loss_shares(result: WaterfallResult) -> np.ndarray:
    """(n_tranches, n_paths) principal loss as a share of each tranche's original balance."""
    orig = result.original_balance
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(orig[:, None] > 0, result.tranche_loss / np.where(orig > 0, orig, 1.0)[:, None],
                        0.0)


def wal_per_path(result: WaterfallResult, closing: dt.date) -> np.ndarray:
    """(n_tranches, n_paths) WAL in years; NaN on paths where the tranche received no principal."""
    tau = year_fractions(closing, result.dates)
    prin = result.principal_paid + result.reimbursed
    total = prin.sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (prin * tau).sum(axis=2) / np.where(total > 0, total, 1.0), np.nan)


def credit_enhancement(deal: Deal, initial_balance: float) -> np.ndarray:
    """(n_tranches,) CE at closing: (junior tranches + initial OC + closing reserve) / pool."""
    amounts = np.asarray(deal.tranche_amounts(initial_balance))
    junior = np.cumsum(amounts[::-1])[::-1] - amounts
    reserve = 0.0
    if deal.reserve is not None and deal.reserve.funding is Funding.CLOSING:
        reserve = max(deal.reserve.target, deal.reserve.floor) * initial_balance
    return (junior + deal.initial_oc * initial_balance + reserve) / initial_balance


def tranche_table(
    deal: Deal,
    result: WaterfallResult,
    paths: PoolPaths,
    discount: Discount = 0.05,
    price: float = 1.0,
    rating_table: RatingTable | None = None,
    quantiles: Sequence[float] = QUANTILES,
) -> pd.DataFrame:
    """One row per tranche (seniority order) with the analytics listed in the module doc.

    ``discount``: a flat annual rate or a ``ZeroCurve``; ``price``: purchase price for the IRR
    as a share of par; ``rating_table``: a ``ratings.RatingTable`` (no default table is shipped;
    without one the ``rating`` column is empty)."""
    check_discount(discount)  # before the per-path IRRs are computed
    cfs = result.tranche_cashflows
    return tranche_table_from(deal, float(paths.initial_balance), result.dates,
                              result.original_balance, result.tranche_loss,
                              wal_per_path(result, deal.closing_date),
                              irr_per_path(deal, result, price, cfs),
                              np.stack([cfs[j].mean(axis=0) for j in range(cfs.shape[0])]),
                              discount=discount, rating_table=rating_table, quantiles=quantiles)


DISCOUNT_RATES = (-0.5, 1.0)
"""The annual discount rates the tables take (a flat rate or each rate of a ``ZeroCurve``):
QuantLib's yield solver finds no root from about -0.9, and a rate above 100% a year is a typo
for a percent."""


def check_discount(discount: Discount) -> None:
    """``discount``: a flat annual rate in :data:`DISCOUNT_RATES`, or a ``ZeroCurve`` of such
    rates; else a ``DealError`` naming ``discount``."""
    lo, hi = DISCOUNT_RATES
    rates = discount.rates if isinstance(discount, ZeroCurve) else (discount,)
    for rate in rates:
        if (isinstance(rate, bool) or not isinstance(rate, int | float | np.floating)
                or not lo <= float(rate) <= hi):
            raise DealError(must_be("discount", f"an annual rate in [{lo:g}, {hi:g}] (0.05 = "
                                    "5%), or a ZeroCurve of such rates", rate))


def check_price(price: float) -> None:
    """``price``: a finite purchase price > 0 as a share of par (1.0 = par)."""
    if (isinstance(price, bool) or not isinstance(price, int | float | np.floating)
            or not (math.isfinite(float(price)) and float(price) > 0)):
        raise DealError(must_be("price", "a finite purchase price > 0 as a share of par "
                                "(1.0 = par)", price))


def irr_per_path(deal: Deal, result: WaterfallResult, price: float = 1.0,
                 cashflows: np.ndarray | None = None) -> np.ndarray:
    """(n_tranches, n_paths) each path's IRR of a tranche's cash flows bought at ``price``
    (a share of par; NaN for a tranche of size 0), path by path (``path_irr``);
    ``cashflows``: ``result.tranche_cashflows`` when already at hand."""
    check_price(price)
    tau = year_fractions(deal.closing_date, result.dates)
    cfs = result.tranche_cashflows if cashflows is None else cashflows
    n = result.n_paths
    return np.stack([path_irr(cfs[j], tau, price * float(face)) if face > 0
                     else np.full(n, np.nan)
                     for j, face in enumerate(result.original_balance)])


def tranche_table_from(
    deal: Deal,
    initial_balance: float,
    dates: Sequence[dt.date],
    original_balance: np.ndarray,
    tranche_loss: np.ndarray,
    wal: np.ndarray,
    irr: np.ndarray,
    expected_cashflows: np.ndarray,
    discount: Discount = 0.05,
    rating_table: RatingTable | None = None,
    quantiles: Sequence[float] = QUANTILES,
) -> pd.DataFrame:
    """:func:`tranche_table` from per-path figures, wherever they were computed (e.g. on Dask
    workers: ``tranching.distributed.TranchesOnWorkers``): ``tranche_loss``, ``wal``
    (``wal_per_path``) and ``irr`` (``irr_per_path``) are (n_tranches, n_paths),
    ``expected_cashflows`` (n_tranches, n_months) each tranche's mean cash flow by month."""
    check_discount(discount)
    init = float(initial_balance)
    orig = np.asarray(original_balance, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        losses = np.where(orig[:, None] > 0,
                          tranche_loss / np.where(orig > 0, orig, 1.0)[:, None], 0.0)
    el, el_se = mean_and_se(losses, axis=1)
    hit = losses > LOSS_TOLERANCE
    pd_ = hit.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        lgl = np.where(pd_ > 0, el / np.where(pd_ > 0, pd_, 1.0), np.nan)
    ce = credit_enhancement(deal, init)
    rows = []
    for j, tr in enumerate(deal.tranches):
        face = float(orig[j])
        py = price_yield_duration(expected_cashflows[j], dates, deal.closing_date, face,
                                  discount)
        w = wal[j]
        wal_mean = float(np.nanmean(w)) if np.isfinite(w).any() else float("nan")
        row = {
            "tranche": tr.name,
            "holder": tr.holder,
            "size": face,
            "size_share": face / init,
            "coupon": tr.coupon,
            "el": float(el[j]),
            "el_se": float(el_se[j]),
            "pd": float(pd_[j]),
            "lgl": float(lgl[j]),
        }
        for q in quantiles:
            row[f"loss_q{_qname(q)}"] = interpolated_quantile(losses[j], q)
        row.update({
            "wal_mean": wal_mean,
            "wal_p5": float(np.nanquantile(w, 0.05)) if np.isfinite(w).any() else float("nan"),
            "wal_p95": float(np.nanquantile(w, 0.95)) if np.isfinite(w).any() else float("nan"),
            "irr": float(irr[j].mean()),
            "price": py.price,
            "yield": py.yield_,
            "mod_duration": py.modified_duration,
            "ce": float(ce[j]),
            "rating": None,
        })
        if rating_table is not None and np.isfinite(wal_mean):
            row["rating"] = implied_rating(rating_table, float(el[j]), wal_mean)
        rows.append(row)
    return pd.DataFrame(rows)


CLASS_TOTAL = "total"


def with_class_total(table: pd.DataFrame) -> pd.DataFrame:
    """A tranche table (:func:`tranche_table`) with its classes' total row, ``CLASS_TOTAL``:
    the notes' size (CNY) and share of the pool summed, their coupon and EL weighted by size
    (the notes' average coupon, and their expected loss as a share of the notes: Σ EL × size
    / Σ size, so the total's loss in CNY is the classes'); every other column empty (PD,
    quantiles, WAL, IRR, price and CE do not add). A table of one class (a partner's
    position) is returned as it is. ``riskpool tranche report``, the Tranches page and the
    report show it."""
    if len(table) < 2 or "size" not in table or CLASS_TOTAL in set(table["tranche"]):
        return table
    size = table["size"].to_numpy(dtype=np.float64)
    notes = float(size.sum())
    out = table.copy()
    row: dict[str, object] = {}
    for col in table.columns:
        if col == "tranche":
            row[col] = CLASS_TOTAL
        elif col in ("size", "size_share"):
            row[col] = float(table[col].to_numpy(dtype=np.float64).sum())
        elif col in ("coupon", "el"):
            row[col] = (float((table[col].to_numpy(dtype=np.float64) * size).sum()) / notes
                        if notes > 0 else float("nan"))
        elif pd.api.types.is_numeric_dtype(table[col]) and not pd.api.types.is_bool_dtype(
                table[col]):
            out[col] = out[col].astype("float64")
            row[col] = float("nan")
        else:
            row[col] = None if col == "rating" else ""
    out.loc[len(out)] = row
    return out


def _qname(q: float) -> str:
    text = f"{q * 100:.1f}".rstrip("0").rstrip(".")
    return text.replace(".", "")


def trigger_table(deal: Deal, result: WaterfallResult) -> pd.DataFrame:
    """Per trigger: probability it is ever breached / ever in force, and the mean first month."""
    ever = {t.name: np.asarray(result.breached[t.name].any(axis=1)) for t in deal.triggers}
    first = {t.name: np.where(ever[t.name], result.breached[t.name].argmax(axis=1) + 1, 0)
             for t in deal.triggers}
    in_force = {t.name: np.asarray(result.triggers[t.name].any(axis=1)) for t in deal.triggers}
    return trigger_table_from(deal, ever, in_force, first)


def trigger_table_from(deal: Deal, breached_ever: Mapping[str, np.ndarray],
                       in_force_ever: Mapping[str, np.ndarray],
                       first_breach: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """:func:`trigger_table` from per-path figures (trigger name → (n_paths,)): whether the
    trigger's test ever failed, whether it was ever in force, and the first month it failed
    (1-based; 0 when never)."""
    rows = []
    for trig in deal.triggers:
        ever = np.asarray(breached_ever[trig.name], dtype=bool)
        first = np.asarray(first_breach[trig.name])
        rows.append({
            "trigger": trig.name,
            "metric": trig.metric.value,
            "effect": trig.effect.value,
            "curable": trig.curable,
            "p_breach": float(ever.mean()),
            "p_in_force": float(np.asarray(in_force_ever[trig.name]).mean()),
            "mean_first_month": float(first[ever].mean()) if ever.any() else float("nan"),
        })
    return pd.DataFrame(rows, columns=["trigger", "metric", "effect", "curable", "p_breach",
                                       "p_in_force", "mean_first_month"])


def credit_enhancement_by_month(deal: Deal, result: WaterfallResult) -> pd.DataFrame:
    """Each class's credit enhancement over time: (pool balance + reserve − the class and the
    classes senior to it) / pool balance, as ``credit_enhancement`` at closing (period 0: the
    balances before the first month) and then after each month's payments (``collateral``,
    ``reserve``, class ``balance``). Mean, 5th and 95th percentiles over the
    paths whose pool still has a balance. Columns: class, period, date, mean, p5, p95."""
    # the collateral the deal holds after each month (its revolving purchases included)
    pool = np.concatenate([result.pool_cash["balance_bop"][:, :1], result.collateral],
                          axis=1)  # (n_paths, n_months + 1)
    reserve = np.concatenate([result.reserve_bop[:, :1], result.reserve], axis=1)
    n_paths = result.n_paths
    notes = np.concatenate([np.broadcast_to(result.original_balance[:, None, None],
                                            (len(result.tranche_names), n_paths, 1)),
                            result.balance], axis=2)  # (n_tranches, n_paths, n_months + 1)
    senior = np.cumsum(notes, axis=0)
    alive = pool > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ce = np.where(alive, (pool + reserve - senior) / np.where(alive, pool, 1.0), np.nan)
    defined = alive.any(axis=0)
    dates = [deal.closing_date, *result.dates]
    frames = [pd.DataFrame({
        "class": name, "period": np.arange(len(dates)), "date": dates,
        "mean": _by_month(np.nanmean, ce[j], defined),
        "p5": _by_month(lambda v, axis: np.nanquantile(v, 0.05, axis=axis), ce[j], defined),
        "p95": _by_month(lambda v, axis: np.nanquantile(v, 0.95, axis=axis), ce[j], defined),
    }) for j, name in enumerate(result.tranche_names)]
    return pd.concat(frames, ignore_index=True)


def trigger_metrics(deal: Deal, result: WaterfallResult) -> pd.DataFrame:
    """Per trigger and month: the level in force and the metric it tests, as recorded in
    ``result.metrics`` (one month's value, before any ``average_months`` averaging; OC: the
    ratio of the deal's last OC trigger, so an earlier OC trigger is left out) — its mean, 5th
    and 95th percentiles over the paths where the metric is defined — and the share of paths
    on which the trigger is in force. Columns: trigger, metric, breach ("above" or "below"
    the level), period, date, level, mean, p5, p95, in_force."""
    last_oc = [t.name for t in deal.triggers if t.metric is Metric.OC][-1:]
    keys = {Metric.CNL: "cnl", Metric.DELINQUENCY: "delinquency", Metric.DPD30: "delinquency",
            Metric.DPD60: "dpd60", Metric.DPD90: "dpd90", Metric.OC: "oc"}
    frames = []
    for trig in deal.triggers:
        if trig.metric is Metric.OC and trig.name not in last_oc:
            continue
        key = keys[trig.metric]
        if trig.metric is Metric.CNL and trig.denominator is not Denominator.INITIAL:
            key = "cnl_purchases"
        values = np.asarray(result.metrics[key], dtype=np.float64)  # (n_paths, n_months)
        values = np.where(np.isfinite(values), values, np.nan)
        months = np.arange(1, values.shape[1] + 1)
        defined = np.isfinite(values).any(axis=0)
        frames.append(pd.DataFrame({
            "trigger": trig.name, "metric": trig.metric.value,
            "breach": "below" if trig.metric is Metric.OC else "above",
            "period": months, "date": list(result.dates),
            "level": [trig.level_at(int(m)) for m in months],
            "mean": _by_month(np.nanmean, values, defined),
            "p5": _by_month(lambda v, axis: np.nanquantile(v, 0.05, axis=axis), values, defined),
            "p95": _by_month(lambda v, axis: np.nanquantile(v, 0.95, axis=axis), values, defined),
            "in_force": result.triggers[trig.name].mean(axis=0),
        }))
    cols = ["trigger", "metric", "breach", "period", "date", "level", "mean", "p5", "p95",
            "in_force"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def _by_month(fn: Callable[..., np.ndarray], values: np.ndarray,
              defined: np.ndarray | np.bool_) -> np.ndarray:
    """``fn`` over the paths of each month with a value (NaN for the others)."""
    out = np.full(values.shape[1], np.nan)
    if defined.any():
        out[defined] = fn(values[:, defined], axis=0)
    return out


def losses_by_holder(deal: Deal, result: WaterfallResult) -> dict[str, np.ndarray]:
    """(n_paths,) principal loss in CNY per holder ("platform", a partner id, "investors").

    Each tranche's ``tranche_loss`` is split by ``Deal.holdings()`` (vertical retention gives the
    retention holder its share of every tranche); the holders' losses add up to the tranches'."""
    loss = result.tranche_loss
    out: dict[str, np.ndarray] = {}
    for h in deal.holdings():
        j = deal.index(h.tranche)
        out[h.holder] = out.get(h.holder, np.zeros(result.n_paths)) + h.share * loss[j]
    return out
