"""Synthetic, internally consistent ``PoolPaths`` for the tranching tests.

A homogeneous amortising pool (level annuity, remaining term ``term`` months) with a
one-factor Gaussian default rate per path and month, a constant prepayment SMM and recoveries
of ``recovery_rate`` of each default ``lag`` months later. By construction on every path and
month: bop − scheduled − prepayment − default = eop, bop[t+1] = eop[t], recoveries ≤ defaults.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from scipy.stats import norm

from portfolio.montecarlo.paths import PoolPaths


def synthetic_paths(
    n_paths: int = 200,
    n_months: int = 30,
    *,
    seed: int = 0,
    initial_balance: float = 1_000_000.0,
    apr: float = 0.18,
    term: int = 24,
    monthly_pd: float = 0.01,
    rho: float = 0.1,
    smm: float = 0.02,
    recovery_rate: float = 0.3,
    lag: int = 3,
) -> PoolPaths:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_paths, n_months))
    if rho > 0:
        pd_t = norm.cdf((norm.ppf(monthly_pd) - np.sqrt(rho) * z) / np.sqrt(1 - rho))
    else:
        pd_t = np.full((n_paths, n_months), monthly_pd)
    r = apr / 12.0
    bop = np.zeros((n_paths, n_months))
    interest = np.zeros_like(bop)
    sched = np.zeros_like(bop)
    prepay = np.zeros_like(bop)
    default = np.zeros_like(bop)
    eop = np.zeros_like(bop)
    bal = np.full(n_paths, float(initial_balance))
    for t in range(n_months):
        bop[:, t] = bal
        default[:, t] = pd_t[:, t] * bal
        perf = bal - default[:, t]
        interest[:, t] = r * perf
        remaining = term - t
        if remaining <= 1:
            sched[:, t] = perf
        else:
            annuity = -np.expm1(-remaining * np.log1p(r))  # 1 − (1 + r)^−n, exact for tiny r
            payment = perf * r / annuity if r > 1e-12 else perf / remaining
            sched[:, t] = payment - r * perf
        prepay[:, t] = smm * (perf - sched[:, t])
        eop[:, t] = perf - sched[:, t] - prepay[:, t]
        bal = eop[:, t]
    recovery = np.zeros_like(bop)
    if lag < n_months:
        recovery[:, lag:] = recovery_rate * default[:, : n_months - lag]
    start = np.datetime64("2026-01-31")
    dates = np.array([start + np.timedelta64(31 * (k + 1), "D") for k in range(n_months)],
                     dtype="datetime64[D]")
    return PoolPaths(dates=dates, balance_bop=bop, interest=interest, scheduled_principal=sched,
                     prepayment=prepay, default=default, recovery=recovery, balance_eop=eop,
                     initial_balance=float(initial_balance))


def paths_from_arrays(**arrays: np.ndarray) -> PoolPaths:
    """PoolPaths from explicit (n_paths, n_months) arrays (balance_bop/eop derived)."""
    sched = np.atleast_2d(np.asarray(arrays["scheduled_principal"], dtype=float))
    prepay = np.atleast_2d(np.asarray(arrays.get("prepayment", np.zeros_like(sched)), dtype=float))
    default = np.atleast_2d(np.asarray(arrays.get("default", np.zeros_like(sched)), dtype=float))
    recovery = np.atleast_2d(np.asarray(arrays.get("recovery", np.zeros_like(sched)), dtype=float))
    interest = np.atleast_2d(np.asarray(arrays["interest"], dtype=float))
    initial = float(arrays["initial_balance"])
    out = sched + prepay + default
    eop = initial - np.cumsum(out, axis=1)
    bop = np.concatenate([np.full((eop.shape[0], 1), initial), eop[:, :-1]], axis=1)
    n_months = sched.shape[1]
    dates = np.array([np.datetime64(dt.date(2026, 2, 28)) + np.timedelta64(30 * k, "D")
                      for k in range(n_months)], dtype="datetime64[D]")
    return PoolPaths(dates=dates, balance_bop=bop, interest=interest, scheduled_principal=sched,
                     prepayment=prepay, default=default, recovery=recovery, balance_eop=eop,
                     initial_balance=initial)


def realistic_pool_paths(n_loans: int = 2000, n_paths: int = 400, seed: int = 3,
                         pd_scale: float = 1.0) -> PoolPaths:
    """Monte Carlo paths (``portfolio.montecarlo.simulation.simulate``, granular engine) of a mixed pool:
    level-annuity loans of every allowed term, seasoned 0..term−1 months, scores 450–950, APR
    falling with the score; hazards falling with the score band, flat SMM 3%, recovery 25%
    over four months, ρ = 0.08, factor persistence 0.6."""
    from portfolio.loans.arrays import LoanArrays
    from portfolio.loans.schedules import add_months
    from portfolio.loans.types import ALLOWED_TERMS, SCORE_BANDS
    from portfolio.montecarlo.assumptions import Assumptions
    from portfolio.montecarlo.simulation import simulate

    rng = np.random.default_rng(seed)
    term = rng.choice(np.array(ALLOWED_TERMS), n_loans)
    mob = np.floor(rng.random(n_loans) * term).astype(np.int16)
    score = rng.integers(450, 950, n_loans).astype(np.int16)
    apr = np.round(0.24 - (score - 450) / 500 * 0.16, 4)
    principal = np.round(rng.lognormal(np.log(6000), 0.6, n_loans).clip(500, 200_000), 2)
    balance = np.round(principal * (1 - mob / term), 2)
    origination = (np.datetime64("2024-06", "M") - mob.astype(np.int64)).astype("datetime64[D]") + 9
    loans = LoanArrays(
        loan_id=np.array([f"R{i:07d}" for i in range(n_loans)], dtype=object), balance=balance,
        apr=apr, term_months=term.astype(np.int16), remaining_term=(term - mob).astype(np.int16),
        months_on_book=mob, repayment_type=np.zeros(n_loans, dtype=np.int8), credit_score=score,
        region=np.array(["north"] * n_loans, dtype=object), origination_date=origination,
        next_due_date=add_months(origination, mob.astype(np.int64) + 1), principal=principal)
    nb, nt, n_age = len(SCORE_BANDS), len(ALLOWED_TERMS), 24
    band_pd = np.array([0.012, 0.008, 0.005, 0.003, 0.002, 0.001])[:, None, None]
    hazard = np.minimum(np.broadcast_to(band_pd * pd_scale, (nb, nt, n_age)), 0.5)
    assumptions = Assumptions(default_hazard=np.array(hazard), prepay_smm=np.full((nb, nt, n_age), 0.03),
                              recovery_rate=0.25, recovery_lag=(0.2, 0.3, 0.3, 0.2), rho=0.08,
                              factor_persistence=0.6)
    return simulate(loans, assumptions, n_paths=n_paths, seed=seed)
