"""Risk-based pricing check (docs/model.md, "Risk-based pricing check"): break-even APR per segment against the actual APR.

For each segment (score band × original term):

    break-even APR = funding cost + expected loss + operating cost + capital × hurdle + margin
    expected loss  = annual PD × LGD
    annual PD      = 1 − (1 − m)^12, m = the segment's average monthly default rate over its
                     term: lifetime defaults per loan-month at risk, from the assumptions'
                     hazards h_a (a = 1..term, survival from default only; use assumptions
                     calibrated with went-bad default timing, which keeps every default
                     inside the term):
                     m = Σ S(a−1)·h_a / Σ S(a−1),  S(a) = Π_{i ≤ a} (1 − h_i)
                     (for a constant hazard h, m = h and annual PD = 1 − (1 − h)^12)
    LGD            = 1 − recovery rate of the assumptions (or ``lgd`` in the pricing file)
    capital        = ``capital_ratio`` of the balance (``capital_method = "fixed"``), or the
                     Basel retail IRB requirement K(annual PD, LGD) ("other retail",
                     docs/model.md, "Capital"; ``capital_method = "basel_retail_irb"``)

All rates are annual decimals of the outstanding balance. A loan's APR here is its cash-flow
APR (``portfolio.loans.schedules.product_apr`` of its rate, term and repayment type: its
stated rate for the four interest-bearing types, above its stated flat rate for a flat-fee
loan), so that a flat-fee product's yield is neither understated nor compared with the cap as
its flat rate. The actual APR of a segment is the balance-weighted cash-flow APR of its loans:
the pool's cut-off balances with ``pool_id``, else the book's original principals (the
pricing decided at origination). A segment is *under-priced* when its actual WA APR is below
its break-even APR; every loan with a cash-flow APR above the cap (``apr_cap``, 0.24 by
default: rule R9) is counted, and the highest are listed with both rates (``above_cap``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.special import ndtr, ndtri

from portfolio.book.pools import get_pool
from portfolio.loans.schedules import product_apr
from portfolio.loans.types import APR_CAP_DEFAULT
from portfolio.montecarlo.assumptions import Assumptions
from portfolio.store import pools as sql
from portfolio.store.core import Store
from portfolio.validation import Field, Interval, Str, StrOptions, Table, read_toml, validate

CAPITAL_METHODS = ("fixed", "basel_retail_irb")
_RATE = Interval(float, 0, 1, unit="an annual rate (decimal)")
PRICING_SCHEMA = Table({
    "funding_cost": Field.optional(_RATE),
    "operating_cost": Field.optional(_RATE),
    "capital_method": Field.optional(StrOptions(CAPITAL_METHODS)),
    "capital_ratio": Field.optional(_RATE),
    "hurdle_rate": Field.optional(_RATE),
    "margin": Field.optional(_RATE),
    # a cap of 0 would flag every loan: (0, 1]
    "apr_cap": Field.optional(Interval(float, 0, 1, closed="right",
                                       unit="an annual rate (decimal)")),
    "lgd": Field.optional(Interval(float, 0, 1, unit="a share")),
    "description": Field.optional(Str()),
})


@dataclass(frozen=True, slots=True)
class PricingInputs:
    """Annual decimals of the outstanding balance (defaults = examples/pricing.toml)."""

    funding_cost: float = 0.030
    operating_cost: float = 0.025
    capital_method: Literal["fixed", "basel_retail_irb"] = "fixed"
    capital_ratio: float = 0.08
    hurdle_rate: float = 0.15
    margin: float = 0.030
    apr_cap: float = APR_CAP_DEFAULT
    lgd: float | None = None  # None: 1 − the assumptions' recovery rate
    description: str = ""

    def __post_init__(self) -> None:
        # the same rules as the file (PRICING_SCHEMA), for inputs built in code
        for name, f in PRICING_SCHEMA.fields.items():
            value = getattr(self, name)
            if not (name == "lgd" and value is None):
                validate(f.spec, value, path=name)


def parse_pricing(data: dict[str, Any], source: str = "pricing") -> PricingInputs:
    """Pricing inputs from the TOML layout (``PRICING_SCHEMA``); a left-out key keeps the
    default of ``PricingInputs``. Errors are ``SchemaError`` naming the key and ``source``."""
    doc = validate(PRICING_SCHEMA, data, source)
    return PricingInputs(**{k: v for k, v in doc.items() if k in data})


def load_pricing(path: str | Path) -> PricingInputs:
    return parse_pricing(read_toml(path, "pricing file"), str(path))


# ---------------------------------------------------------------- formulas (pure)


def average_monthly_default_rate(hazard: np.ndarray, term: int) -> np.ndarray:
    """m = Σ S(a−1)·h_a / Σ S(a−1) over a = 1..term; ``hazard`` (..., n_age)."""
    h = np.asarray(hazard, dtype=np.float64)[..., : min(term, hazard.shape[-1])]
    survival = np.cumprod(1.0 - h, axis=-1)
    before = np.concatenate([np.ones(h.shape[:-1] + (1,)), survival[..., :-1]], axis=-1)
    return (before * h).sum(axis=-1) / before.sum(axis=-1)


def annual_pd(monthly: np.ndarray | float) -> np.ndarray:
    """1 − (1 − m)^12 (CDR from MDR)."""
    return -np.expm1(12.0 * np.log1p(-np.asarray(monthly, dtype=np.float64)))


def basel_retail_capital(pd_: np.ndarray | float, lgd: float) -> np.ndarray:
    """Basel retail IRB "other retail" capital requirement K per unit of exposure (docs/model.md, "Capital").

    R = 0.03·f + 0.16·(1 − f), f = (1 − e^(−35·PD)) / (1 − e^(−35));
    K = LGD·[Φ((Φ⁻¹(PD) + √R·Φ⁻¹(0.999)) / √(1 − R)) − PD]. PD is floored at 0.03 % (Basel).
    """
    p = np.maximum(np.asarray(pd_, dtype=np.float64), 0.0003)
    f = -np.expm1(-35.0 * p) / -np.expm1(-35.0)
    r = 0.03 * f + 0.16 * (1.0 - f)
    return lgd * (ndtr((ndtri(p) + np.sqrt(r) * ndtri(0.999)) / np.sqrt(1.0 - r)) - p)


@dataclass(frozen=True, slots=True)
class PricingReport:
    table: pd.DataFrame  # one row per segment (``PRICING_COLUMNS``)
    inputs: PricingInputs
    scope: str  # "pool N" or "book"
    notes: tuple[str, ...] = ()
    # the loans with a cash-flow APR above the cap, highest first (at most 20): loan_id,
    # repayment_type, apr (stated), cashflow_apr
    above_cap: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def under_priced(self) -> pd.DataFrame:
        return self.table[self.table["under_priced"]]

    def to_text(self) -> str:
        shown = self.table.copy()
        for col in ("wa_apr", "max_apr", "annual_pd", "expected_loss", "capital",
                    "break_even_apr", "headroom"):
            shown[col] = shown[col].map(lambda v: "-" if pd.isna(v) else f"{v * 100:.2f}%")
        shown["lgd"] = shown["lgd"].map(lambda v: f"{v:.2f}")
        shown["balance"] = shown["balance"].map(lambda v: f"{v:,.0f}")
        shown["under_priced"] = shown["under_priced"].map(lambda v: "UNDER" if v else "")
        return shown.rename(columns={"balance": self.weight}).to_string(index=False)

    @property
    def weight(self) -> str:
        """What the ``balance`` column holds, and the WA APR is weighted by: a pool's cut-off
        balances, or (the whole book) each loan's original principal."""
        return "principal" if self.scope == "book" else "balance"

    def summary_text(self) -> str:
        t = self.table
        under = t[t["under_priced"]]
        above = int(t["n_above_cap"].sum())
        lines = [
            f"pricing check ({self.scope}): {len(t)} segments, {len(under)} under-priced "
            f"({under['balance'].sum():,.0f} of {t['balance'].sum():,.0f} {self.weight}); "
            f"{above:,} loans above the APR cap {self.inputs.apr_cap:.2%}",
        ]
        for _, row in self.above_cap.iterrows():
            lines.append(f"  above the cap: loan {row['loan_id']} ({row['repayment_type']}): "
                         f"cash-flow APR {row['cashflow_apr']:.4%}, stated rate {row['apr']:.4%}")
        for _, row in under.iterrows():
            lines.append(f"  under-priced: {row['score_band']} × {row['term_months']}m: "
                         f"WA APR {row['wa_apr']:.2%} < break-even {row['break_even_apr']:.2%}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


PRICING_COLUMNS = (
    "score_band", "term_months", "n_loans", "balance", "wa_apr", "max_apr", "annual_pd", "lgd",
    "expected_loss", "capital", "break_even_apr", "headroom", "under_priced", "n_above_cap",
)


def break_even_table(a: Assumptions, inputs: PricingInputs) -> pd.DataFrame:
    """Break-even APR per segment from the assumptions and the pricing inputs (pure)."""
    lgd = inputs.lgd if inputs.lgd is not None else 1.0 - a.recovery_rate
    rows = []
    for i, (lo, hi) in enumerate(a.score_bands):
        for j, term in enumerate(a.terms):
            m = float(average_monthly_default_rate(a.default_hazard[i, j], term))
            pd_year = float(annual_pd(m))
            capital = (inputs.capital_ratio if inputs.capital_method == "fixed"
                       else float(basel_retail_capital(pd_year, lgd)))
            el = pd_year * lgd
            rows.append({
                "band_index": i,
                "score_band": f"{lo}-{min(hi, 951) - 1}",
                "term_months": int(term),
                "annual_pd": pd_year,
                "lgd": lgd,
                "expected_loss": el,
                "capital": capital,
                "break_even_apr": inputs.funding_cost + el + inputs.operating_cost
                + capital * inputs.hurdle_rate + inputs.margin,
            })
    return pd.DataFrame(rows)


def pricing_check(store: Store, a: Assumptions, inputs: PricingInputs,
                  pool_id: int | None = None) -> PricingReport:
    """Break-even APR against the actual WA APR of the pool's (or the book's) segments."""
    if pool_id is not None:
        get_pool(store, pool_id)
    edges = [lo for lo, _ in a.score_bands[1:]]
    cashflow = cashflow_apr_table(sql.distinct_terms(store.con, pool_id))
    actual = sql.segment_apr(store.con, edges, inputs.apr_cap, pool_id, cashflow)
    above = sql.above_cap(store.con, inputs.apr_cap, cashflow, pool_id)
    be = break_even_table(a, inputs)
    table = be.merge(actual, how="left", left_on=["band_index", "term_months"],
                     right_on=["band", "term_months"])
    table["n_loans"] = table["n_loans"].fillna(0).astype(np.int64)
    table["n_above_cap"] = table["n_above_cap"].fillna(0).astype(np.int64)
    table["balance"] = table["balance"].fillna(0.0)
    table["headroom"] = table["wa_apr"] - table["break_even_apr"]
    table["under_priced"] = (table["n_loans"] > 0) & (table["wa_apr"] < table["break_even_apr"])
    table = table[list(PRICING_COLUMNS)].reset_index(drop=True)
    notes = []
    if a.provenance.get("default_timing") == "recorded":
        notes.append("the assumptions date defaults at the first > 90 dpd month (recorded "
                     "timing): defaults after a loan's term are not in its annual PD, which "
                     "understates short terms; calibrate with --default-timing went-bad")
    return PricingReport(table, inputs, f"pool {pool_id}" if pool_id is not None else "book",
                         tuple(notes), above.reset_index(drop=True))


def cashflow_apr_table(terms: dict[str, np.ndarray]) -> pa.Table:
    """The cash-flow APR of each distinct (apr, term_months, repayment_type)."""
    true = product_apr(terms["apr"], terms["term_months"], terms["code"])
    return pa.table({"apr": pa.array(terms["apr"], pa.float64()),
                     "term_months": pa.array(terms["term_months"], pa.int16()),
                     "repayment_type": pa.array(terms["repayment_type"].astype(str), pa.string()),
                     "cashflow_apr": pa.array(true, pa.float64())})
