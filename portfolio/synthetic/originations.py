"""Originations: the loans of a synthetic book as arrays.

``n_months`` monthly vintages end in the month of ``as_of`` (a month-end); vintage volume grows
by ``volume_growth`` a month. Borrowers (pseudonymous ``'B' + 16 hex``, about
``loans_per_borrower`` loans each) carry a region (province, weighted) and a base credit score
(a normal around ~705 plus a sub-prime component, on 350–950); each loan's score is the
borrower's plus a little noise. Credit limit grows exponentially with the score. Term and
repayment type follow ``term_shares`` / ``repayment_mix`` (interest-only and daily-interest only
up to 12 months: rule R6 — both repay principal at maturity). Principal is lognormal (scaled by
term), rounded to 100 CNY, at most the limit and 200,000. APR is risk-based (docs/model.md, "Risk-based pricing check"):
funding cost + annual PD × LGD + operating cost + capital ratio × hurdle + margin (+ a partner
channel mark-up and noise), quoted as a daily rate to 0.001 %/day and clipped to
[``apr_floor``, ``apr_cap``].

Flat-fee loans (``flat_fee_share`` > 0, drawn last so that every other draw is unchanged): that
share of the level-annuity and equal-principal loans become flat-fee instalments (等本等息),
priced to the same risk-based APR: the monthly fee rate f per unit of original principal makes
the level payment 1/n + f an annuity at the APR's monthly rate m = apr/12,
f = m / (1 − (1+m)^−n) − 1/n, quoted to 0.001 % a month rounded down (so the cash-flow APR
never exceeds the target); the stated ``apr`` is the flat rate 12·f and ``disclosed_apr`` the
cash-flow APR of those terms to 0.01 % (R8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from portfolio.loans.schedules import product_apr
from portfolio.loans.types import (
    ALLOWED_TERMS,
    PRINCIPAL_MAX,
    SCORE_BANDS,
    SCORE_MAX,
    SCORE_MIN,
    RepaymentType,
)
from portfolio.synthetic.params import GeneratorParams


@dataclass(frozen=True, slots=True)
class Originations:
    """The originated loans as arrays, in loan_id order (origination date order)."""

    vintage: np.ndarray  # int32, 0 = oldest history month
    origination_date: np.ndarray  # datetime64[D]
    principal: np.ndarray  # float64
    apr: np.ndarray  # float64
    term: np.ndarray  # int16
    term_idx: np.ndarray  # int8
    rtype: np.ndarray  # int8
    score: np.ndarray  # int16
    band: np.ndarray  # int8
    limit: np.ndarray  # float64
    borrower: np.ndarray  # int64 borrower index
    region: np.ndarray  # int16 index into params.regions
    channel: np.ndarray  # int8
    product: np.ndarray  # int8
    disclosed_apr: np.ndarray | None = None  # float64, NaN = the stated apr; None: no flat fee


PRODUCTS: tuple[str, ...] = ("cash_loan", "consumer_instalment", "merchant_finance")


def _categorical(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


def originate(params: GeneratorParams, n_loans: int, month_ends: np.ndarray,
               rng: np.random.Generator) -> Originations:
    n_months = len(month_ends)
    # vintages: volume grows by volume_growth a month
    w = (1.0 + params.volume_growth) ** np.arange(n_months)
    counts = rng.multinomial(n_loans, w / w.sum())
    vintage = np.repeat(np.arange(n_months, dtype=np.int32), counts)
    month_start = (month_ends.astype("datetime64[M]")).astype("datetime64[D]")
    days_in_month = (month_ends - month_start).astype(np.int64) + 1
    day = np.floor(rng.random(n_loans) * days_in_month[vintage]).astype(np.int64)
    orig = month_start[vintage] + day
    order = np.argsort(orig, kind="stable")
    vintage, orig = vintage[order], orig[order]

    # borrowers: region and base score
    n_borrowers = max(1, int(round(n_loans / params.loans_per_borrower)))
    b_sub = rng.random(n_borrowers) < params.subprime_share
    b_score = np.where(b_sub,
                       rng.normal(params.subprime_mean, params.subprime_sd, n_borrowers),
                       rng.normal(params.score_mean, params.score_sd, n_borrowers))
    b_region = _categorical(rng, np.array([wt for _, wt in params.regions]), n_borrowers)
    borrower = rng.integers(0, n_borrowers, n_loans)
    score = np.clip(np.rint(b_score[borrower] + rng.normal(0.0, params.score_noise_sd, n_loans)),
                    SCORE_MIN, SCORE_MAX).astype(np.int16)
    edges = np.array([lo for lo, _ in SCORE_BANDS[1:]])
    band = np.searchsorted(edges, score, side="right").astype(np.int8)

    # limit from score
    limit = params.limit_at_650 * np.exp(params.limit_slope * (score - 650.0) / 100.0)
    limit *= np.exp(rng.normal(0.0, params.limit_noise_sd, n_loans))
    limit = np.clip(np.round(limit / 500.0) * 500.0, 1_000.0, PRINCIPAL_MAX)

    # term, repayment type
    term_idx = _categorical(rng, np.asarray(params.term_shares), n_loans).astype(np.int8)
    term = np.asarray(ALLOWED_TERMS, dtype=np.int16)[term_idx]
    mix_cdf = np.cumsum(np.asarray(params.repayment_mix, dtype=np.float64), axis=1)
    mix_cdf /= mix_cdf[:, -1:]
    u = rng.random(n_loans)
    rtype = np.minimum((u[:, None] >= mix_cdf[term_idx]).sum(axis=1), 3).astype(np.int8)

    # principal: lognormal × term multiplier, rounded to 100, capped by the limit
    mult = np.asarray(params.principal_term_multiplier)[term_idx]
    raw = params.principal_median * mult * np.exp(rng.normal(0.0, params.principal_sigma,
                                                             n_loans))
    principal = np.clip(np.round(raw / 100.0) * 100.0, 500.0, None)
    principal = np.minimum(principal, limit)

    # channel and product
    channel = _categorical(rng, np.array([wt for _, wt in params.channels]), n_loans)
    channel = channel.astype(np.int8)
    names = [c for c, _ in params.channels]
    partner = channel == names.index("partner") if "partner" in names else np.zeros(n_loans, bool)
    u = rng.random(n_loans)
    product = np.where(partner, np.where(u < 0.7, 2, 1), np.where(u < 0.75, 0, 1)).astype(np.int8)

    # risk-based APR: PD from a log-linear scorecard through the band mid-points
    mids = np.array([(lo + min(hi, SCORE_MAX)) / 2.0 for lo, hi in SCORE_BANDS])
    log_pd = np.interp(score.astype(np.float64), mids, np.log(np.asarray(params.pd_12m)))
    annual_pd = np.exp(log_pd)
    apr = (params.funding_cost + annual_pd * (1.0 - params.recovery_rate)
           + params.operating_cost + params.capital_ratio * params.hurdle_rate + params.margin
           + np.where(partner, params.partner_markup, 0.0)
           + rng.normal(0.0, params.apr_noise_sd, n_loans))
    daily = np.round(apr / 365.0, 5)  # quoted as a daily rate to 0.001 %/day
    lo_daily = np.ceil(params.apr_floor / 365.0 * 1e5 - 1e-9) / 1e5
    hi_daily = np.floor(params.apr_cap / 365.0 * 1e5 + 1e-9) / 1e5
    apr = np.round(np.clip(daily, lo_daily, hi_daily) * 365.0, 8)

    disclosed = None
    if params.flat_fee_share > 0:
        amortising = (rtype == RepaymentType.LEVEL_ANNUITY.code) | (
            rtype == RepaymentType.EQUAL_PRINCIPAL.code)
        flat = amortising & (rng.random(n_loans) < params.flat_fee_share)
        rtype, apr, disclosed = _flat_fee_terms(rtype, apr, term, flat)

    return Originations(
        vintage=vintage,
        origination_date=orig,
        principal=principal,
        apr=apr,
        term=term,
        term_idx=term_idx,
        rtype=rtype,
        score=score,
        band=band,
        limit=limit,
        borrower=borrower,
        region=b_region[borrower].astype(np.int16),
        channel=channel,
        product=product,
        disclosed_apr=disclosed,
    )


def flat_fee_rate(apr: np.ndarray, term: np.ndarray) -> np.ndarray:
    """The stated annual flat rate 12·f whose flat-fee schedule over ``term`` months has the
    cash-flow APR ``apr``: f = m/(1 − (1+m)^−n) − 1/n with m = apr/12, rounded down to
    0.001 % a month."""
    m = np.asarray(apr, dtype=np.float64) / 12.0
    n = np.asarray(term, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(m > 0, m / -np.expm1(-n * np.log1p(m)), 1.0 / n)
    fee = np.floor((level - 1.0 / n) * 1e5 + 1e-9) / 1e5
    return np.round(12.0 * np.maximum(fee, 0.0), 8)


def _flat_fee_terms(rtype: np.ndarray, apr: np.ndarray, term: np.ndarray, flat: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The loans in ``flat`` turned flat-fee: type, stated flat rate, disclosed APR."""
    rtype = np.where(flat, RepaymentType.FLAT_FEE.code, rtype).astype(np.int8)
    stated = np.where(flat, flat_fee_rate(apr, term), apr)
    disclosed = np.full(len(apr), np.nan)
    idx = np.flatnonzero(flat)
    disclosed[idx] = np.round(product_apr(stated[idx], term[idx], rtype[idx]), 4)
    return rtype, stated, disclosed
