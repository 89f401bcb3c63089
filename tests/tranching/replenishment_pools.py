"""A short-tenor consumer pool (3–12-month loans, seasoned) and simple assumptions, for the
replenishment tests: the shape of the demo pool of ``examples/criteria.toml``."""

from __future__ import annotations

import numpy as np

from portfolio.loans.arrays import LoanArrays
from portfolio.loans.schedules import add_months
from portfolio.loans.types import ALLOWED_TERMS, SCORE_BANDS
from portfolio.montecarlo.assumptions import Assumptions


def short_tenor_loans(n: int = 600, seed: int = 5, cutoff_month: str = "2026-06") -> LoanArrays:
    """Level-annuity / equal-principal loans of 3, 6, 9 and 12 months, seasoned 0..term−1
    months at the cut-off (the end of ``cutoff_month``), scores 600–950."""
    rng = np.random.default_rng(seed)
    term = rng.choice(np.array([3, 6, 9, 12]), n)
    mob = np.floor(rng.random(n) * term).astype(np.int16)
    score = rng.integers(600, 950, n).astype(np.int16)
    apr = np.round(0.24 - (score - 450) / 500 * 0.16, 4)
    principal = np.round(rng.lognormal(np.log(6000), 0.6, n).clip(500, 50_000), 2)
    balance = np.round(principal * (1 - mob / term), 2)
    origination = (np.datetime64(cutoff_month, "M") - mob.astype(np.int64)).astype(
        "datetime64[D]") + 9
    return LoanArrays(
        loan_id=np.array([f"S{i:06d}" for i in range(n)], dtype=object), balance=balance,
        apr=apr, term_months=term.astype(np.int16), remaining_term=(term - mob).astype(np.int16),
        months_on_book=mob, repayment_type=rng.choice(np.array([0, 1], dtype=np.int8), n),
        credit_score=score, region=rng.choice(np.array(["north", "south"], dtype=object), n),
        origination_date=origination, next_due_date=add_months(origination, mob.astype(np.int64) + 1),
        principal=principal)


def simple_assumptions(pd_scale: float = 1.0, rho: float = 0.08, smm: float = 0.03) -> Assumptions:
    """Monthly hazards falling with the score band (flat in term and age), flat SMM,
    recovery 25% over four months, factor persistence 0.6."""
    nb, nt, n_age = len(SCORE_BANDS), len(ALLOWED_TERMS), 24
    band_pd = np.array([0.012, 0.008, 0.005, 0.003, 0.002, 0.001])[:, None, None] * pd_scale
    return Assumptions(default_hazard=np.array(np.broadcast_to(np.minimum(band_pd, 0.5),
                                                               (nb, nt, n_age))),
                       prepay_smm=np.full((nb, nt, n_age), smm), recovery_rate=0.25,
                       recovery_lag=(0.2, 0.3, 0.3, 0.2), rho=rho, factor_persistence=0.6)
