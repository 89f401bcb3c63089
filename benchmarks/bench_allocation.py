"""Allocation speed: 1,000,000 loans across 10 partners (target ≤ 10 s).

A synthetic pool (numpy, seeded: 31 provinces, six terms, four repayment types, scores
450–950) and ten partners — national and local banks, trusts, a consumer finance company and an
insurer — with score floors, APR caps, term and repayment-type limits, region lists,
concentration limits, yield floors, R2/R3 figures and capacities that bind. Times
``partners.allocation.allocate`` end to end (eligibility, segments, HiGHS LP, split to loans,
independent re-check) for joint lending and forward flow, and recording the joint allocation
in DuckDB (``partners.records.save_allocation``) separately.

Run standalone: ``.venv/bin/python benchmarks/bench_allocation.py [n_loans]``.
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

from partners.allocation import allocate, loan_risk_from_table
from partners.records import AllocationRequest, save_allocation
from partners.registry import parse_registry
from portfolio.loans.arrays import LoanArrays
from portfolio.store import open_store

REGIONS = ("广东", "江苏", "浙江", "山东", "河南", "四川", "河北", "湖北", "湖南", "安徽", "福建",
           "上海", "北京", "广西", "江西", "辽宁", "陕西", "云南", "重庆", "山西", "贵州", "黑龙江",
           "吉林", "天津", "内蒙古", "新疆", "甘肃", "海南", "宁夏", "青海", "西藏")
AS_OF = dt.date(2026, 10, 31)


def synthetic_pool(n: int, seed: int = 2026) -> LoanArrays:
    rng = np.random.default_rng(seed)
    term = rng.choice(np.array([3, 6, 9, 12, 18, 24]), size=n, p=[0.12, 0.22, 0.10, 0.38, 0.09, 0.09])
    rt = rng.choice(np.arange(4), size=n, p=[0.55, 0.12, 0.1, 0.23]).astype(np.int8)
    term = np.where((rt >= 2) & (term > 12), 12, term)
    score = np.clip(rng.normal(705, 55, n), 450, 950).astype(np.int16)
    apr = np.clip(0.30 - (score - 450) / 500 * 0.22 + rng.normal(0, 0.01, n), 0.073, 0.24)
    principal = np.round(np.clip(rng.lognormal(np.log(7100), 0.75, n), 500, 150_000), 2)
    w = np.linspace(12, 0.2, len(REGIONS))
    region = np.asarray(REGIONS, dtype=object)[rng.choice(len(REGIONS), size=n, p=w / w.sum())]
    orig = np.datetime64("2026-10-01") + rng.integers(0, 31, n).astype("timedelta64[D]")
    return LoanArrays(
        loan_id=np.array([f"L{i:09d}" for i in range(n)], dtype=object), balance=principal.copy(),
        apr=apr, term_months=term.astype(np.int16), remaining_term=term.astype(np.int16),
        months_on_book=np.zeros(n, dtype=np.int16), repayment_type=rt, credit_score=score,
        region=region, origination_date=orig, next_due_date=orig + np.timedelta64(30, "D"),
        principal=principal)


def registry(pool_balance: float):
    cap = pool_balance / 10  # ten partners could take ~ the whole pool; limits bind
    partners = []
    kinds = ["bank", "bank", "bank", "bank", "bank", "trust", "trust", "consumer_finance", "insurer", "bank"]
    for i, kind in enumerate(kinds):
        p = {"id": f"p{i}", "name": f"Partner {i}", "kind": kind, "capacity": cap * (0.6 + 0.1 * i),
             "required_yield": 0.04 + 0.005 * i,
             "eligibility": {"score_floor": 560 + 10 * i, "apr_cap": 0.24,
                             "max_term_months": [24, 12, 24, 18, 24, 24, 12, 24, 24, 24][i]},
             "concentration": {"max_region_share": 0.25 + 0.02 * i, "max_score_band_share": 0.5}}
        if kind == "bank":
            p["regulatory"] = {"net_tier1_capital": 8 * cap, "total_loans": 50 * cap}
            if i in (3, 9):
                p["bank_scope"] = "local"
                p["regulatory"]["registered_region"] = REGIONS[i % 5]
                p["regulatory"]["net_tier1_capital"] = 0.4 * cap
                p.pop("concentration")
        if i == 1:
            p["eligibility"]["repayment_types"] = ["level_annuity", "equal_principal"]
        if i == 6:
            p["eligibility"]["regions"] = list(REGIONS[:10])
        partners.append(p)
    doc = {"platform": {"name": "bench", "net_assets": 1e12},
           "expected_loss": {"annual_pd_by_score_band": [0.15, 0.072, 0.045, 0.027, 0.015, 0.007],
                             "lgd": 0.85},
           "partner": partners}
    return parse_registry(doc, "bench")


def run(n_loans: int | None = None) -> dict:
    n = n_loans or (100_000 if settings.bench_quick() else 1_000_000)
    loans = synthetic_pool(n)
    reg = registry(float(loans.balance.sum()))
    risk = loan_risk_from_table(loans, reg.expected_loss)
    out: dict[str, object] = {"loans": n, "partners": len(reg.partners)}
    for mode in ("joint", "forward-flow"):
        t0 = time.perf_counter()
        a = allocate(loans, reg, mode=mode, objective="max-transfer", risk=risk, as_of=AS_OF)
        out[f"{mode} allocate s"] = time.perf_counter() - t0
        t = a.summary["timings_s"]
        out[f"{mode} segments / LP / split / re-check s"] = (
            f"{t['segments']:.2f} / {t['lp']:.2f} / {t['split']:.2f} / {t['recheck']:.2f}")
        out[f"{mode} segments, LP vars x rows"] = (
            f"{a.summary['n_segments']}, {a.summary['lp']['variables']} x {a.summary['lp']['rows']}")
        out[f"{mode} moved off platform"] = f"{a.summary['moved_off_platform'] / a.summary['pool_balance']:.1%}"
        if mode == "joint":
            joint = a
    with tempfile.TemporaryDirectory() as tmp:
        with open_store(Path(tmp) / "bench.duckdb") as store:
            t0 = time.perf_counter()
            save_allocation(store, joint, reg, risk, pool_id=None,
                            request=AllocationRequest(source="benchmarks/bench_allocation.py"))
            out["joint record in DuckDB s"] = time.perf_counter() - t0
            out["allocation_shares rows"] = int(store.con.execute(
                "SELECT count(*) FROM allocation_shares").fetchone()[0])
    return out


if __name__ == "__main__":
    figures = run(int(sys.argv[1]) if len(sys.argv) > 1 else None)
    for k, v in figures.items():
        print(f"{k:<44} {v:,.3f}" if isinstance(v, float) else f"{k:<44} {v}")
