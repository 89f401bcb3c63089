"""Pool cut and stratification speed on a synthetic 1,000,000-loan book.

Builds the book with numpy (one performance row per loan at the cut-off), loads it through the
store's bulk inserts, then times ``pools.create_pool`` (the whole book as one pool, and a filtered pool with both
concentration limits) and ``pools.strats`` on the whole-book 1,000,000-loan pool (all nine
tables; target ≤ 1 s) and ``pools.load_pool_loans``.

Run standalone: ``.venv/bin/python benchmarks/bench_strats.py [n_loans]``.
``RISKPOOL_BENCH_QUICK=1`` uses 100,000 loans.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portfolio import settings

settings.before_numpy_import()  # numpy reads its huge-page switch once, at its import

import numpy as np
import pandas as pd

from portfolio.book import pools
from portfolio.store.book import insert_loans, insert_performance
from portfolio.store.core import open_store

CUTOFF = dt.date(2025, 6, 30)
REGIONS = np.array(["Beijing", "Shanghai", "Guangdong", "Zhejiang", "Jiangsu", "Sichuan",
                    "Hubei", "Shandong", "Henan", "Fujian"], dtype=object)
TYPES = np.array(["level_annuity", "equal_principal", "interest_only", "daily_interest"],
                 dtype=object)


def _book(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    term = rng.choice(np.array([3, 6, 9, 12, 18, 24]), n)
    mob = rng.integers(0, term)  # months on book at the cut-off, < term
    orig_month = np.datetime64(CUTOFF, "M") - mob
    orig = orig_month.astype("datetime64[D]") + rng.integers(0, 28, n)
    principal = np.round(rng.lognormal(np.log(8000), 0.6, n).clip(500, 200_000), 2)
    balance = np.round(principal * (1 - mob / term), 2)
    rtype = TYPES[rng.integers(0, 4, n)]
    rtype[(rtype == "interest_only") & (term > 12)] = "level_annuity"
    loans = pd.DataFrame({
        "loan_id": np.char.add("L", np.char.zfill(np.arange(n).astype(str), 8)),
        "borrower_id": np.char.add("B", rng.integers(0, n, n).astype(str)),
        "origination_date": orig,
        "principal": principal,
        "apr": np.round(rng.uniform(0.06, 0.26, n), 4),
        "term_months": term.astype(np.int16),
        "repayment_type": rtype,
        "credit_score": rng.integers(350, 951, n).astype(np.int16),
        "region": REGIONS[rng.integers(0, len(REGIONS), n)],
    })
    perf = pd.DataFrame({
        "loan_id": loans["loan_id"],
        "as_of": np.datetime64(CUTOFF, "D"),
        "months_on_book": mob.astype(np.int16),
        "balance": balance,
        "dpd": np.zeros(n, dtype=np.int16),
        "status": "current",
    })
    return loans, perf


def run(n_loans: int | None = None, repeats: int = 3, seed: int = 1) -> dict[str, object]:
    if n_loans is None:
        n_loans = 100_000 if settings.bench_quick() else 1_000_000
    loans, perf = _book(n_loans, seed)
    with tempfile.TemporaryDirectory() as tmp:
        with open_store(Path(tmp) / "bench.duckdb") as store:
            t0 = time.perf_counter()
            with store.transaction() as con:
                insert_loans(con, loans)
                insert_performance(con, perf)
            t_load = time.perf_counter() - t0
            crit = pools.parse_criteria({
                "eligibility": {"score_min": 450, "apr_max": 0.24},
                "concentration": {"max_obligor_share": 0.0005, "max_region_share": 0.2},
            })
            t0 = time.perf_counter()
            filtered = pools.create_pool(store, "filtered", crit, CUTOFF)
            t_create = time.perf_counter() - t0
            t0 = time.perf_counter()
            info = pools.create_pool(store, "whole book", pools.Criteria(), CUTOFF)
            t_create_all = time.perf_counter() - t0
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                tables = pools.strats(store, info.pool_id)
                times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            arrays = pools.load_pool_loans(store, info.pool_id)
            t_arrays = time.perf_counter() - t0
    return {
        "book_loans": n_loans,
        "pool_loans": info.n_loans,
        "load_book_s": round(t_load, 3),
        "pool_create_whole_book_s": round(t_create_all, 3),
        "pool_create_filtered_with_concentration_s": round(t_create, 3),
        "filtered_pool_loans": filtered.n_loans,
        "strats_all_9_tables_s_best": round(min(times), 3),
        "strats_all_9_tables_s_median": round(float(np.median(times)), 3),
        "strats_tables": len(tables),
        "load_pool_loans_s": round(t_arrays, 3),
        "load_pool_loans_rows": len(arrays),
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else None
    for key, value in run(n).items():
        print(f"{key:<32} {value}")
