"""Monte Carlo engine benchmarks.

* B1-pool: a 1,000,000-loan synthetic pool (built with numpy to a realistic mix of score
  bands, terms, repayment types and seasoning), 10,000 paths to maturity plus the recovery
  lag, granular engine: wall time, CPU time and peak memory (run in a fresh child process so
  that its peak RSS is its own).
* Loan-engine throughput: loan-paths per second on 100,000 loans × 2,048 paths.
* Naive baseline: a loan-level numpy Monte Carlo with a Bernoulli draw per loan, month and
  path (default, then prepayment), on a 20,000-loan pool; both engines run on the same pool
  in the same process, and the speed-ups are throughput ratios (loan-paths per second),
  with the three mean losses ± SE to show they agree.

Run standalone (``python benchmarks/bench_simulation.py``) or from ``benchmarks/run_all.py``.
``RISKPOOL_BENCH_QUICK=1`` shrinks every size (same code paths).
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from portfolio import settings

settings.before_numpy_import()  # numpy reads its huge-page switch once, at its import

import numpy as np

from portfolio.loans.arrays import LoanArrays
from portfolio.loans.schedules import add_months
from portfolio.loans.types import ALLOWED_TERMS, SCORE_BANDS
from portfolio.montecarlo import engines
from portfolio.montecarlo.assumptions import Assumptions
from portfolio.montecarlo.simulation import loss_distribution, prepare_pool, simulate

CUTOFF = np.datetime64("2025-06-30")


def build_pool(n: int, seed: int = 2025) -> LoanArrays:
    """A realistic synthetic pool: every band, term and repayment type, seasoned loans."""
    rng = np.random.default_rng(seed)
    term = rng.choice(np.array(ALLOWED_TERMS), n, p=[0.12, 0.22, 0.14, 0.30, 0.12, 0.10])
    rtype = rng.choice(4, n, p=[0.55, 0.15, 0.1, 0.2]).astype(np.int8)
    rtype[(rtype == 2) & (term > 12)] = 0
    mob = np.floor(rng.random(n) ** 1.3 * term).astype(np.int16)
    score = np.clip(rng.normal(690, 80, n), 350, 950).astype(np.int16)
    apr = np.clip(0.26 - (score - 350) / 600 * 0.2 + rng.normal(0, 0.01, n), 0.05, 0.24)
    principal = np.round(np.clip(rng.lognormal(np.log(7000), 0.7, n), 500, 200_000), 2)
    amort = np.where(np.isin(rtype, [0, 1]), 1 - mob / term, 1.0)
    balance = np.round(principal * amort, 2)
    day = rng.integers(1, 29, n)
    first = (CUTOFF.astype("datetime64[M]") - mob.astype(np.int64)).astype("datetime64[D]")
    origination = first + (day - 1).astype("timedelta64[D]")
    return LoanArrays(
        loan_id=np.array([f"B{i:08d}" for i in range(n)], dtype=object),
        balance=balance, apr=apr, term_months=term.astype(np.int16),
        remaining_term=(term - mob).astype(np.int16), months_on_book=mob,
        repayment_type=rtype, credit_score=score,
        region=np.full(n, "east", dtype=object), origination_date=origination,
        next_due_date=add_months(origination, mob.astype(np.int64) + 1), principal=principal,
    )


def bench_assumptions() -> Assumptions:
    """Calibration-like curves: lifetime default ≈ 2–12% by band, SMM 1.5%, ρ = 0.08."""
    nb, nt, n_age = len(SCORE_BANDS), len(ALLOWED_TERMS), 24
    band = np.array([0.010, 0.006, 0.004, 0.0025, 0.0015, 0.0008])[:, None, None]
    age = np.arange(1, n_age + 1)
    shape = (0.4 + np.minimum(age, 6) / 6.0) * np.exp(-np.maximum(age - 9, 0) / 18.0)
    hazard = band * np.linspace(0.9, 1.2, nt)[None, :, None] * shape[None, None, :]
    smm = np.full((nb, nt, n_age), 0.015)
    return Assumptions(default_hazard=hazard, prepay_smm=smm, recovery_rate=0.2,
                       recovery_lag=(0.1, 0.2, 0.2, 0.2, 0.15, 0.1, 0.05), rho=0.08,
                       factor_persistence=0.6)


def naive_simulate(loans: LoanArrays, a: Assumptions, n_paths: int, seed: int,
                   timings: dict[str, float] | None = None) -> np.ndarray:
    """The baseline: a Bernoulli draw per loan, month and path (default, then prepayment),
    vectorised over loans with numpy; returns the pool loss per path. ``timings``, when
    given, receives ``prep_s`` (the pool's preparation and dense schedule) and ``paths_s``."""
    t_start = time.perf_counter()
    prep = prepare_pool(loans, a, loan_level=True)
    rng = np.random.default_rng(seed)
    n, T = prep.n_loans, prep.T
    cell_of = prep.cell_of
    dense = np.zeros((n, T))
    assert prep.sched is not None and prep.loan_base is not None
    r = prep.cell_r[cell_of]
    for t in range(T):
        ok = t < r
        dense[ok, t] = prep.sched[prep.loan_base[ok] + 3 * t]  # scheduled bop
    lag = a.recovery_lag
    t_paths = time.perf_counter()
    losses = np.empty(n_paths)
    for p in range(n_paths):
        z = np.empty(T)
        eps = rng.standard_normal(T)
        z[0] = eps[0]
        for t in range(1, T):
            z[t] = a.factor_persistence * z[t - 1] + math.sqrt(1 - a.factor_persistence**2) * eps[t]
        thr_s, zb = engines.scaled_inputs(prep.cell_thr, z[None, :], prep.rho)
        pd = engines.cond_pd_np(thr_s, 1.0, zb)  # (n_cells, T)
        alive = np.ones(n, dtype=bool)
        defaulted = 0.0
        for t in range(T):
            live = alive & (t < r)
            u = rng.random(n)
            d = live & (u < pd[cell_of, t])
            defaulted += dense[d, t].sum()
            alive &= ~d
            u2 = rng.random(n)
            pre = live & ~d & (u2 < prep.cell_smm[cell_of, t])
            alive &= ~pre
        losses[p] = defaulted * (1 - a.recovery_rate * sum(lag))
    if timings is not None:
        timings["prep_s"] = t_paths - t_start
        timings["paths_s"] = time.perf_counter() - t_paths
    return losses


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def b1_child(n_loans: int, n_paths: int) -> dict:
    """B1-pool in this (fresh) process: returns times and peak RSS."""
    loans = build_pool(n_loans)
    a = bench_assumptions()
    rss_pool = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    simulate(build_pool(2000, seed=1), a, 256, seed=0)  # compile/load the kernels first
    paths, wall, cpu = _timed(lambda: simulate(loans, a, n_paths, seed=1))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    stats = loss_distribution(paths)
    prep, prep_wall, _ = _timed(lambda: prepare_pool(loans, a))
    return {"n_loans": n_loans, "n_paths": n_paths, "n_months": paths.n_months,
            "n_cells": prep.n_cells, "wall_s": wall, "cpu_s": cpu, "prep_wall_s": prep_wall,
            "peak_rss_gib": peak, "rss_after_pool_gib": rss_pool,
            "el_pct": stats.el / paths.initial_balance * 100,
            "var99_pct": stats.var[1] / paths.initial_balance * 100}


def run(quick: bool | None = None) -> dict:
    quick = settings.bench_quick() if quick is None else quick
    out: dict[str, object] = {}
    # wall times depend on what else runs on the machine: record the load beside them
    out["load average (1 min) at start"] = os.getloadavg()[0]
    # B1-pool in a child process (its own peak memory)
    n_b1, p_b1 = (100_000, 2_000) if quick else (1_000_000, 10_000)
    child = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--b1-child", str(n_b1), str(p_b1)],
        capture_output=True, text=True, check=True)
    b1 = json.loads(child.stdout.strip().splitlines()[-1])
    out["B1-pool loans x paths"] = f"{b1['n_loans']:,} x {b1['n_paths']:,} ({b1['n_months']} months, {b1['n_cells']} cells)"
    out["B1-pool granular wall (s)"] = b1["wall_s"]
    out["B1-pool granular CPU (s)"] = b1["cpu_s"]
    out["B1-pool of which preparation wall (s)"] = b1["prep_wall_s"]
    out["B1-pool peak RSS (GiB)"] = b1["peak_rss_gib"]
    out["B1-pool granular loan-paths per CPU-second"] = b1["n_loans"] * b1["n_paths"] / b1["cpu_s"]
    out["B1-pool EL / VaR99 (% of balance)"] = f"{b1['el_pct']:.3f} / {b1['var99_pct']:.3f}"

    a = bench_assumptions()
    # loan-engine throughput
    n_l, p_l = (20_000, 512) if quick else (100_000, 2_048)
    loans = build_pool(n_l, seed=3)
    simulate(build_pool(2000, seed=1), a, 256, seed=0, engine="loan")
    _, wall, cpu = _timed(lambda: simulate(loans, a, p_l, seed=2, engine="loan"))
    out["loan engine loans x paths"] = f"{n_l:,} x {p_l:,}"
    out["loan engine loan-paths/s (wall)"] = n_l * p_l / wall
    out["loan engine loan-paths/s (per CPU-second)"] = n_l * p_l / cpu

    # naive baseline vs both engines on one pool
    n_s = 5_000 if quick else 20_000
    p_naive, p_eng = (40, 1024) if quick else (200, 4096)
    pool = build_pool(n_s, seed=4)
    naive, w_naive, _ = _timed(lambda: naive_simulate(pool, a, p_naive, seed=5))
    lo, w_loan, _ = _timed(lambda: simulate(pool, a, p_eng, seed=6, engine="loan"))
    gr, w_gran, _ = _timed(lambda: simulate(pool, a, p_eng, seed=6, engine="granular"))
    thr = {name: n_s * p / w for name, p, w in (("naive", p_naive, w_naive),
                                                ("loan", p_eng, w_loan),
                                                ("granular", p_eng, w_gran))}
    out["same-pool loans"] = n_s
    out["naive loan-paths/s"] = thr["naive"]
    out["loan engine speed-up over naive"] = thr["loan"] / thr["naive"]
    out["granular engine speed-up over naive"] = thr["granular"] / thr["naive"]

    def el(x: np.ndarray) -> str:
        return f"{x.mean():,.0f} ± {x.std(ddof=1) / math.sqrt(x.size):,.0f}"

    out["mean loss naive (paths)"] = f"{el(naive)} ({p_naive})"
    out["mean loss loan engine"] = f"{el(lo.loss)} ({p_eng})"
    out["mean loss granular engine"] = f"{el(gr.loss)} ({p_eng})"
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--b1-child":
        print(json.dumps(b1_child(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        for key, value in run().items():
            shown = f"{value:,.4g}" if isinstance(value, float) else value
            print(f"{key:<44} {shown}")
