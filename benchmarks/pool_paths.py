"""Synthetic pool paths for the waterfall's benchmark and fingerprint: a homogeneous
level-annuity pool whose monthly default rate on each path is one-factor Gaussian
(Vasicek), internally consistent (each month's balance is the last one's less its flows).
Imported by ``bench_waterfall.py`` and ``waterfall_fingerprint.py`` (run from benchmarks/,
or with it on ``sys.path``)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portfolio import settings

settings.before_numpy_import()  # numpy reads its huge-page switch once, at its import

import numpy as np
from scipy.special import ndtr, ndtri

from portfolio.montecarlo.paths import PoolPaths


def pool(n_paths: int, n_months: int, seed: int, *, pd: float = 0.004, rho: float = 0.15,
         term: int = 24, smm: float = 0.02, recovery_rate: float = 0.3, lag: int = 3,
         apr: float = 0.18, initial: float = 1e8) -> PoolPaths:
    """A level-annuity pool with a one-factor Gaussian monthly default rate per path."""
    rng = np.random.default_rng(seed)
    p = ndtr((ndtri(pd) - np.sqrt(rho) * rng.standard_normal((n_paths, n_months)))
             / np.sqrt(1 - rho))
    r = apr / 12
    arr = {k: np.zeros((n_paths, n_months)) for k in
           ("bop", "interest", "sched", "prepay", "default", "eop", "recovery")}
    bal = np.full(n_paths, initial)
    for t in range(n_months):
        arr["bop"][:, t] = bal
        arr["default"][:, t] = p[:, t] * bal
        perf = bal - arr["default"][:, t]
        arr["interest"][:, t] = r * perf
        n_left = term - t
        arr["sched"][:, t] = perf if n_left <= 1 else perf * r / (1 - (1 + r) ** -n_left) - r * perf
        arr["prepay"][:, t] = smm * (perf - arr["sched"][:, t])
        bal = perf - arr["sched"][:, t] - arr["prepay"][:, t]
        arr["eop"][:, t] = bal
    if lag < n_months:
        arr["recovery"][:, lag:] = recovery_rate * arr["default"][:, : n_months - lag]
    dates = np.datetime64("2026-02-28") + np.arange(n_months) * np.timedelta64(30, "D")
    return PoolPaths(dates=dates, balance_bop=arr["bop"], interest=arr["interest"],
                     scheduled_principal=arr["sched"], prepayment=arr["prepay"],
                     default=arr["default"], recovery=arr["recovery"], balance_eop=arr["eop"],
                     initial_balance=initial)
