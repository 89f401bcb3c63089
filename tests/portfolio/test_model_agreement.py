"""The hazard model and the delinquency-state model, calibrated from the same book, agree on
the pool's lifetime charge-off share and loss within Monte Carlo error.

The book: the demo's generator settings (the default synthetic book, seed 13, 24 months to
2026-06-30, the pool cut with ``examples/criteria.toml``) with 30,000 loans instead of the
demo's 200,000 (the full demo book takes minutes to build; the obligor cap is relaxed to 1%
as ``riskpool demo`` does for small books). The hazard model is the demo's calibration
(``calibrate_from_store``: went-bad hazards, which count only the moves that ended three
month-ends before the as-of, so that every delinquency spell has resolved); the delinquency
model's transitions are calibrated from the same months (``calibrate_delinquency`` up to that
month-end), with ``riskpool calibrate``'s defaults otherwise (charge-off past 90 DPD, pooling
below 30 loan-months, the transitions' point estimate of the loading). Measured on this book:
with the transitions up to the as-of itself (three more months) the delinquency model's
lifetime charge-off is 2.3% higher — a difference of information, not of the models.

Tolerance: 4 standard errors of the difference of two independent Monte Carlo means
(2,000 paths each, seeds 7 and 8): |m_d − m_h| ≤ 4·√(s_d²/n + s_h²/n).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib
from pathlib import Path

import numpy as np
import pytest

from portfolio.book import transitions as tr
from portfolio.book.calibration import calibrate_from_store
from portfolio.book.factor_fit import choose_rho
from portfolio.book.pools import create_pool, load_pool_loans, parse_criteria
from portfolio.montecarlo.delinquency import project
from portfolio.store.core import open_store
from portfolio.synthetic.generate import generate_book

ROOT = Path(__file__).resolve().parents[2]
AS_OF = dt.date(2026, 6, 30)
PATHS = 2000


@pytest.mark.slow
def test_hazard_and_delinquency_models_agree_on_lifetime_charge_off_and_loss(
        tmp_path: Path) -> None:
    db = tmp_path / "demo_like.duckdb"
    with open_store(db) as store:
        generate_book(store, 30_000, 24, 13, as_of=AS_OF)
        doc = tomllib.loads((ROOT / "examples" / "criteria.toml").read_text(encoding="utf-8"))
        doc.setdefault("concentration", {})["max_obligor_share"] = 0.01
        info = create_pool(store, "demo-like", parse_criteria(doc), AS_OF)
        hazard = calibrate_from_store(store, pool_id=info.pool_id).assumptions
        window_end = dt.date(2026, 3, 31)  # the went-bad hazards' last month-end: AS_OF − 3
        dq = tr.calibrate_delinquency(store, window_end)
        loans = load_pool_loans(store, info.pool_id)
    assert info.n_loans > 5000
    a = dataclasses.replace(hazard, delinquency=tr.delinquency_assumptions(
        dq, choose_rho(dq.factor, "point")))
    balance = float(np.sum(loans.balance))
    out = {}
    for model, seed in (("hazard", 7), ("delinquency", 8)):
        p = project(loans, a, PATHS, seed, model=model, engine="granular")
        charge_off = p.default.sum(axis=1) / balance
        loss = (p.default.sum(axis=1) - p.recovery.sum(axis=1)) / balance
        out[model] = (charge_off, loss)
    for i, name in enumerate(("lifetime charge-off share", "lifetime loss")):
        h, d = out["hazard"][i], out["delinquency"][i]
        se = np.sqrt(h.var(ddof=1) / PATHS + d.var(ddof=1) / PATHS)
        print(f"{name}: hazard {h.mean():.5f}, delinquency {d.mean():.5f}, "
              f"z {(d.mean() - h.mean()) / se:.2f}")
        assert abs(d.mean() - h.mean()) <= 4 * se, (name, h.mean(), d.mean(), se)
        assert h.mean() > 0.005  # a pool that loses something
