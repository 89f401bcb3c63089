"""Synthetic pools and assumption sets for the simulation tests (built with numpy, no DB)."""

from __future__ import annotations

import numpy as np

from portfolio.loans.arrays import LoanArrays
from portfolio.loans.schedules import add_months
from portfolio.loans.types import ALLOWED_TERMS, SCORE_BANDS
from portfolio.montecarlo.assumptions import Assumptions

CUTOFF = np.datetime64("2024-06-30")


def mixed_pool(n: int, seed: int = 7, flat_fee_share: float = 0.0) -> LoanArrays:
    """A realistic mix: every band, term and repayment type, seasoned 0..term-1 months.
    ``flat_fee_share`` of the loans (drawn from a separate stream, so 0 leaves the pool as
    it always was) become flat-fee loans (code 4)."""
    rng = np.random.default_rng(seed)
    terms = np.array(ALLOWED_TERMS)
    term = rng.choice(terms, n, p=[0.15, 0.25, 0.15, 0.25, 0.1, 0.1])
    rtype = rng.choice(4, n, p=[0.5, 0.2, 0.1, 0.2]).astype(np.int8)
    rtype[(rtype == 2) & (term > 12)] = 0  # bullets are capped at 12 months
    if flat_fee_share > 0:
        rtype[np.random.default_rng(seed + 10_000).random(n) < flat_fee_share] = 4
    mob = np.floor(rng.random(n) * term).astype(np.int16)
    score = rng.integers(450, 950, n).astype(np.int16)
    apr = np.round(0.24 - (score - 450) / 500 * 0.16 + rng.normal(0, 0.01, n), 4).clip(0.05, 0.24)
    principal = np.round(rng.lognormal(np.log(6000), 0.6, n).clip(500, 200_000), 2)
    amort = np.where(np.isin(rtype, [0, 1, 4]), 1 - mob / term, 1.0)
    balance = np.round(principal * amort, 2)
    orig_day = rng.integers(1, 29, n)
    # cut-off month end minus mob months, origination on day orig_day of that month
    orig_month = (CUTOFF.astype("datetime64[M]") - mob.astype(np.int64)).astype("datetime64[D]")
    origination = orig_month + (orig_day - 1).astype("timedelta64[D]")
    next_due = add_months(origination, mob.astype(np.int64) + 1)
    return LoanArrays(
        loan_id=np.array([f"L{i:07d}" for i in range(n)], dtype=object),
        balance=balance,
        apr=apr,
        term_months=term.astype(np.int16),
        remaining_term=(term - mob).astype(np.int16),
        months_on_book=mob,
        repayment_type=rtype,
        credit_score=score,
        region=np.array(["north"] * n, dtype=object),
        origination_date=origination,
        next_due_date=next_due,
        principal=principal,
    )


def homogeneous_pool(n: int, balance: float = 10_000.0, term: int = 3, mob: int = 2,
                     score: int = 700, rtype: int = 2) -> LoanArrays:
    """n identical loans; with mob = term - 1 a single remaining month (one period)."""
    origination = np.full(n, np.datetime64("2024-04-15"))
    return LoanArrays(
        loan_id=np.array([f"H{i:06d}" for i in range(n)], dtype=object),
        balance=np.full(n, balance),
        apr=np.full(n, 0.18),
        term_months=np.full(n, term, dtype=np.int16),
        remaining_term=np.full(n, term - mob, dtype=np.int16),
        months_on_book=np.full(n, mob, dtype=np.int16),
        repayment_type=np.full(n, rtype, dtype=np.int8),
        credit_score=np.full(n, score, dtype=np.int16),
        region=np.array(["east"] * n, dtype=object),
        origination_date=origination,
        next_due_date=add_months(origination, np.full(n, mob + 1)),
        principal=np.full(n, balance),
    )


def assumptions(pd_scale: float = 1.0, smm: float = 0.03, rho: float = 0.08,
                phi: float = 0.6, recovery_rate: float = 0.25, copula: str = "gaussian",
                n_age: int = 24) -> Assumptions:
    """Hazards falling with the score band and hump-shaped in age; flat SMM."""
    nb, nt = len(SCORE_BANDS), len(ALLOWED_TERMS)
    band_pd = np.array([0.012, 0.008, 0.005, 0.003, 0.002, 0.001])[:, None, None]
    age = np.arange(1, n_age + 1)
    shape = (0.5 + np.minimum(age, 6) / 6.0) * np.exp(-np.maximum(age - 8, 0) / 20.0)
    term_f = np.linspace(0.9, 1.2, nt)[None, :, None]
    hazard = np.minimum(band_pd * term_f * shape[None, None, :] * pd_scale, 0.5)
    prepay = np.full((nb, nt, n_age), smm)
    return Assumptions(default_hazard=hazard, prepay_smm=prepay, recovery_rate=recovery_rate,
                       recovery_lag=(0.2, 0.3, 0.3, 0.2), rho=rho, factor_persistence=phi,
                       copula=copula)  # type: ignore[arg-type]


def flat_assumptions(hazard: float, smm: float = 0.0, rho: float = 0.1, phi: float = 0.0,
                     recovery_rate: float = 0.0, copula: str = "gaussian",
                     lag: tuple[float, ...] = (1.0,)) -> Assumptions:
    nb, nt = len(SCORE_BANDS), len(ALLOWED_TERMS)
    return Assumptions(default_hazard=np.full((nb, nt, 24), hazard),
                       prepay_smm=np.full((nb, nt, 24), smm), recovery_rate=recovery_rate,
                       recovery_lag=lag, rho=rho, factor_persistence=phi,
                       copula=copula)  # type: ignore[arg-type]
