"""The residual as a cash flow, excess spread, and the deal's cash and loss reconciliation.

Everything here reads a ``WaterfallResult`` (per path and month) and adds nothing to the
waterfall. Definitions (all per path; sums over the payment dates; CNY):

**Cash.** Cash in = pool interest I + pool principal P (scheduled + prepaid) + recoveries R
+ clean-up call proceeds + the originator's shortfall-undertaking payments S + servicer advances
received A⁺. Cash out = tax on the interest collected T + servicer advances repaid A⁻ + Σ fees
paid + Σ each class's interest paid + Σ each class's principal paid + Σ each class's PDL refills
(written-down principal reimbursed) + revolving purchases of new loans + the reserve movement
(reserve at the end − reserve at closing) + the residual. The two are equal (the waterfall pays
only cash it has: ``WaterfallResult.conservation_error`` month by month, telescoped here).

**Excess spread** of a month = pool interest − tax − fees paid − all classes' interest paid (the
interest the pool earns beyond what the tax and the deal's senior claims on interest take;
negative when they exceed it).

**Loss.** Pool loss borne by the deal = defaults D − recoveries R + the collateral left at the
legal final (the pool balance at the end of the last month when the deal was not called: the
notes are due in full then, so what the pool still owes is not cash of the deal). The collateral
left is taken as the pool's flows leave it, B₀ + purchases − P − D − call proceeds: the
simulation sums each month's start and end balances over the loans separately from its flows,
so its stored end balance differs from that by float round-off (about 10⁻¹⁴ of the pool, a few
10⁻⁶ CNY on a pool of 10⁸ that revolves; ``collateral_left`` is the stored figure, and the
tests hold the two within 10⁻¹² of the pool). It is borne by

* each class: its principal loss = original balance − principal received (unrounded);
* the residual holder's cushion: excess spread + initial overcollateralisation B₀ − N₀ + the
  reserve run down (reserve at closing − reserve at the end) − the residual paid. This is what
  the residual holder would have received had the pool lost nothing, less what it received;
* the originator, under its shortfall undertaking: all it paid, S (never repaid);
* the servicer: its advances not repaid by the end, A⁺ − A⁻ (zero once all are recovered).

The identity pool loss = Σ class losses + cushion follows from the cash identity above and the
pool's balance roll-forward B₀ + purchases = P + D + call proceeds + collateral left at the end
(``PoolPaths``: balance_bop − scheduled − prepaid − default = balance_eop, and next month's
balance_bop = this month's balance_eop plus the loans bought):
I + P + R + call + S + A⁺ = T + A⁻ + fees + interest + (N₀ − Σ losses) + purchases + ΔRS
+ residual, so D − R + left = Σ losses + (I − T − fees − interest) + (B₀ − N₀) − ΔRS − residual
+ S + (A⁺ − A⁻).
The cushion is split by a stated convention: excess spread absorbs first (up to the positive
excess spread of the path), the initial OC and the reserve the rest.

**The residual holder** is the holder of the subordinated (last) tranche. Its cash each month is
that tranche's interest, principal and reimbursements plus the residual. Its investment at
closing = price × the tranche's face + the initial overcollateralisation + the reserve funded at
closing (the originator puts up the pool in excess of the notes and the cash reserve; both come
back to it only through the residual). IRR (``irr``) = mean over paths of the per-path IRR,
annual compounding, Act/365F from the closing date (``tranching.analytics.path_irr``, as for the
tranche table); ``irr_tape`` = the IRR of the expected (mean) cash flows with one period per
payment date from closing (the convention of a per-period tape and of numpy-financial's ``irr``),
annualised as (1 + r)¹² − 1; money multiple = expected cash received / investment; present
value = the QuantLib NPV of the expected cash at the discount rate, in CNY, and its ratio to
the investment (above 1: the position is worth more than it cost at that rate). The position
is the tranche, the initial OC and the reserve together, so it has no price per unit of the
tranche's face: that ratio would divide the value of all three by the face of one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tranching.analytics import Discount, path_irr, price_yield_duration, year_fractions
from tranching.deal import Deal
from tranching.waterfall import WaterfallResult


def excess_spread(result: WaterfallResult) -> np.ndarray:
    """(n_paths, n_months) pool interest − tax − fees paid − all classes' interest paid."""
    fees = sum(result.fees_paid.values()) if result.fees_paid else 0.0
    return (result.pool_cash["interest"] - result.tax - fees
            - result.interest_paid.sum(axis=0))


def collateral_left(result: WaterfallResult) -> np.ndarray:
    """(n_paths,) the pool balance at the end of the last month that the deal did not sell
    (zero when the deal was called)."""
    return result.pool_cash["balance_eop"][:, -1] - result.call_proceeds[:, -1]


def class_losses(result: WaterfallResult) -> np.ndarray:
    """(n_tranches, n_paths) original balance − principal received, unrounded (the tranche
    table's ``tranche_loss`` sets round-off below 1e-9 of the balance to zero)."""
    return result.original_balance[:, None] - result.principal_received


def initial_oc(result: WaterfallResult) -> np.ndarray:
    """(n_paths,) pool balance at closing − the notes' original balances."""
    return result.pool_cash["balance_bop"][:, 0] - result.original_balance.sum()


@dataclass(frozen=True, slots=True, eq=False)
class Reconciliation:
    """Per-path lines of the cash and loss reconciliation (module doc), each (n_paths,) CNY in
    extended precision (``numpy.longdouble``), in display order; ``cash_in``/``cash_out`` and ``pool_loss``/``borne`` are the sides."""

    cash_in: dict[str, np.ndarray]
    cash_out: dict[str, np.ndarray]
    pool_loss: dict[str, np.ndarray]
    borne: dict[str, np.ndarray]

    @property
    def cash_error(self) -> np.ndarray:
        """(n_paths,) cash in − cash out (zero up to rounding), float64."""
        diff = sum(self.cash_in.values()) - sum(self.cash_out.values())
        return np.asarray(diff, dtype=np.float64)

    @property
    def loss_error(self) -> np.ndarray:
        """(n_paths,) pool loss − losses borne (zero up to rounding), float64."""
        diff = sum(self.pool_loss.values()) - sum(self.borne.values())
        return np.asarray(diff, dtype=np.float64)

    def table(self) -> pd.DataFrame:
        """The reconciliation as rows (section, item, mean over paths, min, max, CNY) with each
        side's total and the closing difference (the largest over paths, in absolute value)."""
        rows: list[dict[str, object]] = []

        def add(section: str, item: str, x: np.ndarray) -> None:
            rows.append({"section": section, "item": item, "mean": float(np.mean(x)),
                         "min": float(np.min(x)), "max": float(np.max(x))})

        for section, lines in (("cash in", self.cash_in), ("cash out", self.cash_out)):
            for k, v in lines.items():
                add(section, k, v)
            add(section, "total " + section, sum(lines.values()))  # type: ignore[arg-type]
        err = np.abs(self.cash_error)
        rows.append({"section": "cash", "item": "difference (max |in − out| over paths)",
                     "mean": float(np.mean(self.cash_error)), "min": 0.0, "max": float(err.max())})
        for section, lines in (("pool loss", self.pool_loss), ("borne by", self.borne)):
            for k, v in lines.items():
                add(section, k, v)
            add(section, "total " + section, sum(lines.values()))  # type: ignore[arg-type]
        err = np.abs(self.loss_error)
        rows.append({"section": "loss", "item": "difference (max |loss − borne| over paths)",
                     "mean": float(np.mean(self.loss_error)), "min": 0.0, "max": float(err.max())})
        return pd.DataFrame(rows, columns=["section", "item", "mean", "min", "max"])


def _total(a: np.ndarray) -> np.ndarray:
    """(n_paths,) the sum over months of a (n_paths, n_months) array, in extended precision."""
    return np.asarray(a, dtype=np.longdouble).sum(axis=1)


def reconcile(deal: Deal, result: WaterfallResult) -> Reconciliation:
    """The cash and loss reconciliation of ``result`` on every path (module doc).

    The lines are summed in extended precision (``numpy.longdouble``): on a pool of hundreds of
    millions of CNY, adding some twenty float64 lines of up to 10⁹ CNY each loses up to a few
    10⁻⁷ CNY per addition, so the closing difference would measure the table's own round-off
    rather than the waterfall's. The differences are what the waterfall's float64 arithmetic
    leaves."""
    pc = result.pool_cash
    cash_in = {
        "pool interest": _total(pc["interest"]),
        "pool principal (scheduled + prepaid)": _total(pc["principal"]),
        "recoveries": _total(pc["recovery"]),
        "clean-up call proceeds": _total(result.call_proceeds),
        "originator's shortfall undertaking": _total(result.support),
        "servicer advances received": _total(result.advance_made),
    }
    cash_out: dict[str, np.ndarray] = {
        "tax on interest income": _total(result.tax),
        "servicer advances repaid": _total(result.advance_recovered),
    }
    for name, paid in result.fees_paid.items():
        cash_out[f"fee {name}"] = _total(paid)
    for j, name in enumerate(result.tranche_names):
        cash_out[f"{name} interest"] = _total(result.interest_paid[j])
        cash_out[f"{name} principal"] = _total(result.principal_paid[j])
        cash_out[f"{name} PDL refilled"] = _total(result.reimbursed[j])
    cash_out["purchases of new loans"] = _total(result.purchases)
    ld = np.longdouble
    reserve_change = result.reserve[:, -1].astype(ld) - result.reserve_bop[:, 0].astype(ld)
    cash_out["reserve movement (end − closing)"] = reserve_change
    residual = _total(result.residual)
    cash_out["residual"] = residual
    left = (pc["balance_bop"][:, 0].astype(ld) + cash_out["purchases of new loans"]
            - cash_in["pool principal (scheduled + prepaid)"] - _total(pc["default"])
            - cash_in["clean-up call proceeds"])
    pool_loss = {
        "defaults": _total(pc["default"]),
        "less recoveries": -_total(pc["recovery"]),
        "collateral left at the legal final": left,
    }
    borne: dict[str, np.ndarray] = {}
    for j, name in enumerate(result.tranche_names):
        borne[f"{name} principal loss"] = (ld(result.original_balance[j])
                                           - cash_out[f"{name} principal"]
                                           - cash_out[f"{name} PDL refilled"])
    spread = (cash_in["pool interest"] - cash_out["tax on interest income"]
              - sum((cash_out[f"fee {f}"] for f in result.fees_paid), ld(0))
              - sum((cash_out[f"{n} interest"] for n in result.tranche_names), ld(0)))
    oc = (pc["balance_bop"][:, 0].astype(ld)
          - sum((ld(x) for x in result.original_balance), ld(0)))
    cushion = spread + oc - reserve_change - residual
    by_spread = np.clip(cushion, ld(0), np.maximum(spread, ld(0)))
    holder = deal.tranches[-1].holder
    borne[f"excess spread (residual holder {holder})"] = by_spread
    borne[f"initial OC and reserve (residual holder {holder})"] = cushion - by_spread
    borne["originator's shortfall undertaking"] = cash_in["originator's shortfall undertaking"]
    borne["servicer advances not recovered"] = (cash_in["servicer advances received"]
                                                - cash_out["servicer advances repaid"])
    return Reconciliation(cash_in, cash_out, pool_loss, borne)


def residual_holder_cashflows(result: WaterfallResult) -> np.ndarray:
    """(n_paths, n_months) the residual holder's cash: the subordinated (last) tranche's
    interest, principal and reimbursements plus the residual."""
    return result.tranche_cashflows[-1] + result.residual


def residual_investment(deal: Deal, result: WaterfallResult, price: float = 1.0) -> float:
    """The residual holder's outlay at closing: price × its tranche's face + the initial
    overcollateralisation + the reserve funded at closing (module doc)."""
    face = float(result.original_balance[-1])
    return price * face + float(initial_oc(result).mean()) + float(result.reserve_bop[:, 0].mean())


def periodic_irr(cashflows: np.ndarray, investment: float) -> float:
    """The per-period IRR r solving −investment + Σ_k cf_k (1 + r)^−k = 0, k = 1, 2, …
    (bisection on (−1, 100]; NaN when the cash received is not positive). The independent
    reference is numpy-financial's ``irr`` on [−investment, cf_1, cf_2, …]."""
    cf = np.asarray(cashflows, dtype=np.float64)
    if not cf.sum() > 0 or not investment > 0:
        return float("nan")
    k = np.arange(1, cf.size + 1, dtype=np.float64)
    lo, hi = -0.999999, 100.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if (cf * np.power(1.0 + mid, -k)).sum() > investment:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def residual_table(deal: Deal, result: WaterfallResult, discount: Discount = 0.05,
                   price: float = 1.0) -> pd.DataFrame:
    """One row: the residual holder's investment, cash received (of which residual), money
    multiple, IRRs, and the present value of its expected cash at ``discount`` in CNY beside
    the investment (module doc)."""
    cf = residual_holder_cashflows(result)
    invest = residual_investment(deal, result, price)
    tau = year_fractions(deal.closing_date, result.dates)
    irr = path_irr(cf, tau, invest)
    expected = cf.mean(axis=0)
    face = float(result.original_balance[-1])
    # the expected cash's present value in CNY (QuantLib's NPV: the price of a face of 1)
    value = price_yield_duration(expected, result.dates, deal.closing_date, 1.0, discount).price
    r = periodic_irr(expected, invest)
    total = cf.sum(axis=1)
    return pd.DataFrame([{
        "holder": deal.tranches[-1].holder,
        "tranche": deal.tranche_names[-1],
        "face": face,
        "investment": invest,
        "cash_received": float(total.mean()),
        "of_which_residual": float(result.residual.sum(axis=1).mean()),
        "money_multiple": float(total.mean()) / invest if invest > 0 else float("nan"),
        "irr": float(irr.mean()),
        "irr_tape": (1.0 + r) ** 12 - 1.0 if np.isfinite(r) else float("nan"),
        "present_value": value,
        "pv_to_investment": value / invest if invest > 0 else float("nan"),
        "excess_spread": float(excess_spread(result).sum(axis=1).mean()),
    }])


def excess_spread_table(result: WaterfallResult) -> pd.DataFrame:
    """By payment date, means over paths (CNY): pool interest, fees, the classes' interest,
    excess spread, the residual, and the residual holder's cash."""
    fees = sum(result.fees_paid.values()) if result.fees_paid else np.zeros_like(result.residual)
    return pd.DataFrame({
        "period": np.arange(1, len(result.dates) + 1),
        "date": list(result.dates),
        "pool_interest": result.pool_cash["interest"].mean(axis=0),
        "fees": np.asarray(fees).mean(axis=0),
        "class_interest": result.interest_paid.sum(axis=0).mean(axis=0),
        "excess_spread": excess_spread(result).mean(axis=0),
        "residual": result.residual.mean(axis=0),
        "residual_holder_cash": residual_holder_cashflows(result).mean(axis=0),
    })
