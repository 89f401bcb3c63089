"""Synthetic loans and a small registry for the partners tests (numpy only, seeded)."""

from __future__ import annotations

import datetime as dt

import numpy as np

from partners.allocation import Allocation, LoanRisk, allocate, loan_risk_from_table
from partners.registry import parse_registry
from portfolio.loans.arrays import LoanArrays
from portfolio.loans.types import ALLOWED_TERMS
from portfolio.montecarlo.assumptions import Assumptions
from portfolio.montecarlo.paths import PoolPaths
from portfolio.montecarlo.simulation import simulate
from portfolio.synthetic.generate import GeneratorParams, true_assumptions

REGIONS = ("Zhejiang", "Guangdong", "Sichuan", "Henan")


def make_loans(n: int = 2000, seed: int = 7, regions: tuple[str, ...] = REGIONS,
               bullet_long: int = 0) -> LoanArrays:
    """A synthetic pool: new loans (months on book 0) with realistic ranges."""
    rng = np.random.default_rng(seed)
    term = rng.choice(np.array(ALLOWED_TERMS), size=n)
    rt = rng.choice(np.array([0, 0, 0, 1, 2, 3]), size=n).astype(np.int8)
    # bullet loans (interest-only / daily-interest) are kept within 12 months unless asked
    long_bullet = (rt >= 2) & (term > 12)
    term = np.where(long_bullet, 12, term)
    if bullet_long:
        rt[:bullet_long] = 2
        term[:bullet_long] = 24
    score = rng.integers(450, 951, size=n)
    apr = np.clip(0.30 - (score - 450) / 500 * 0.22 + rng.normal(0, 0.01, n), 0.06, 0.24)
    principal = np.round(rng.lognormal(np.log(8000), 0.6, n), 2).clip(500, 150_000)
    start = np.datetime64("2026-10-01")
    orig = start + rng.integers(0, 31, n).astype("timedelta64[D]")
    return LoanArrays(
        loan_id=np.array([f"L{i:07d}" for i in range(n)], dtype=object),
        balance=principal.copy(), apr=apr, term_months=term.astype(np.int16),
        remaining_term=term.astype(np.int16), months_on_book=np.zeros(n, dtype=np.int16),
        repayment_type=rt, credit_score=score.astype(np.int16),
        region=rng.choice(np.array(regions, dtype=object), size=n),
        origination_date=orig.astype("datetime64[D]"),
        next_due_date=(orig + np.timedelta64(30, "D")).astype("datetime64[D]"),
        principal=principal,
    )


def registry_doc(**overrides: object) -> dict:
    """Four partners (two national banks, a local bank, a trust) as a parsed-TOML dict."""
    doc = {
        "platform": {"name": "Test Microcredit", "net_assets": 5e9, "abs_bond_funding": 1e10,
                     "other_borrowing": 1e9},
        "expected_loss": {"annual_pd_by_score_band": [0.09, 0.05, 0.03, 0.016, 0.009, 0.004],
                          "lgd": 0.85, "source": "test"},
        "partner": [
            {"id": "bank_a", "name": "A National Bank", "kind": "bank", "bank_scope": "national",
             "capacity": 4e6, "required_yield": 0.06,
             "eligibility": {"score_floor": 600, "apr_cap": 0.24, "max_term_months": 24},
             "regulatory": {"net_tier1_capital": 1e11, "total_loans": 1e12},
             "concentration": {"max_region_share": 0.4}},
            {"id": "bank_b", "name": "B National Bank", "kind": "bank",
             "capacity": 3e6, "required_yield": 0.05,
             "eligibility": {"score_floor": 650, "max_term_months": 12,
                             "repayment_types": ["level_annuity", "equal_principal"]},
             "regulatory": {"net_tier1_capital": 8e10, "total_loans": 9e11},
             "concentration": {"max_score_band_share": 0.5}},
            {"id": "local_zj", "name": "Zhejiang Rural Bank", "kind": "bank", "bank_scope": "local",
             "capacity": 2e6, "required_yield": 0.04,
             "eligibility": {"score_floor": 550},
             "regulatory": {"net_tier1_capital": 6e6, "total_loans": 5e9,
                            "registered_region": "Zhejiang"}},
            {"id": "trust_x", "name": "X Trust", "kind": "trust", "capacity": 5e6,
             "required_yield": 0.03, "eligibility": {"score_floor": 500, "apr_cap": 0.24}},
        ],
    }
    doc.update(overrides)
    return doc


def allocated_paths(n_loans: int, n_paths: int, seed: int, as_of: dt.date
                    ) -> tuple[LoanArrays, Allocation, LoanRisk, Assumptions, PoolPaths]:
    """``make_loans(n_loans, seed=5)`` allocated among :func:`registry_doc`'s partners with an
    eighth of their capacities (a small pool: keep the capacities binding), each loan's risk
    from the registry's EL table, and ``n_paths`` paths (``seed``) under the generator's true
    assumptions (30 ages) carrying the allocation's shares: (loans, allocation, risk,
    assumptions, paths)."""
    doc = registry_doc()
    for p in doc["partner"]:
        p["capacity"] /= 8
    reg = parse_registry(doc)
    loans = make_loans(n_loans, seed=5)
    a = allocate(loans, reg, as_of=as_of)
    assert reg.expected_loss is not None  # registry_doc has its EL table
    risk = loan_risk_from_table(loans, reg.expected_loss)
    ass = true_assumptions(GeneratorParams(), 30)
    paths = simulate(loans, ass, n_paths, seed, shares=a.shares, party_ids=a.party_ids)
    return loans, a, risk, ass, paths
