"""End to end: a generated book with flat-fee loans (等本等息, ``flat_fee_share`` 0.3) goes
through the whole pipeline — pool → calibration → allocation → simulation → deal →
dispersion → report (``riskpool.commands.demo.build_demo``) — with no special case outside
``portfolio/``.

Checks that can fail: the pool holds flat-fee loans with their disclosed APR; the allocation
passes its re-check with flat-fee loans funded by partners (their disclosed APR is their
cash-flow APR: R8; below the cap: R9); the simulation's month-1 interest includes the fees
(reference: the pool's scheduled month-1 interest by ``schedule_matrix``, which the fee
arithmetic tests check by hand; the Monte Carlo mean lies between that minus the month's
defaults and prepayments and that); the deal's tranche table, the dispersion and the report
are written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from partners.records import load_allocation
from portfolio.book.pools import load_pool_loans
from portfolio.loans.schedules import schedule_matrix
from portfolio.loans.types import RepaymentType
from portfolio.store import open_store
from portfolio.store.runs import load_paths
from riskpool.commands.demo import DemoParams, build_demo

FF = RepaymentType.FLAT_FEE.code
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_book_with_flat_fee_loans_flows_through_the_pipeline(tmp_path: Path) -> None:
    # the example criteria with flat_fee among the eligible repayment types
    text = (ROOT / "examples" / "criteria.toml").read_text(encoding="utf-8")
    line = 'repayment_types = ["level_annuity", "等额本金", "daily_interest"]'
    assert line in text
    criteria = tmp_path / "criteria.toml"
    criteria.write_text(text.replace(line, line[:-1] + ', "等本等息"]'), encoding="utf-8")
    params = DemoParams(n_loans=4_000, n_paths=400, max_obligor_share=0.05,
                        demo_partner="bank_east", flat_fee_share=0.3, criteria=str(criteria))
    result = build_demo(tmp_path / "ff.duckdb", params, users_file=tmp_path / "users.toml",
                        report_dir=tmp_path / "reports")
    with open_store(result.db, read_only=True) as store:
        loans = load_pool_loans(store, result.pool_id)
        stored = load_allocation(store, result.allocation_id)
        paths = load_paths(store, result.run_id)
        n_tranches = store.con.execute("SELECT count(*) FROM run_tranches WHERE run_id = ?",
                                       [result.run_id]).fetchone()[0]
    ff = loans.repayment_type == FF
    assert ff.sum() > 100
    # the pool carries what each flat-fee loan disclosed: its cash-flow APR, above its flat rate
    assert np.isfinite(loans.disclosed_apr[ff]).all() and np.isnan(loans.disclosed_apr[~ff]).all()
    assert (loans.cashflow_apr[ff] > loans.apr[ff]).all()
    assert np.abs(loans.disclosed_apr[ff] - loans.cashflow_apr[ff]).max() <= 0.0005

    # allocation: re-check clean, no loan rule broken by a flat-fee loan, some funded by partners
    assert stored.checks["ok"] and stored.checks["breaches"] == []
    findings = {f["rule"]: f for f in stored.checks["loan_rule_findings"]}
    assert "R8" not in findings and "R9" not in findings
    order = np.searchsorted(stored.loan_id.astype(str), np.asarray(loans.loan_id).astype(str))
    partner_share = stored.shares[order, 1:].sum(axis=1)
    assert (partner_share[ff] > 0).sum() > 20

    # the simulation collects the fees as interest: month 1 against the schedule
    sched = schedule_matrix(loans.balance, loans.apr, loans.remaining_term,
                            loans.repayment_type, loans.origination_date,
                            months_on_book=loans.months_on_book, n_months=1,
                            original_principal=loans.principal)
    scheduled = float(sched.interest[:, 0].sum())
    fee_part = float(sched.interest[ff, 0].sum())
    assert fee_part > 0.1 * scheduled  # the fees are a sizeable part of the income (~20%)
    mean_interest = float(paths.interest[:, 0].mean())
    assert mean_interest <= scheduled + 1e-6
    assert mean_interest >= 0.9 * scheduled  # month 1: ~3% prepay, well under 1% default

    # the deal, the dispersion (inside the report) and the report files
    assert n_tranches >= 3
    assert result.report_files and all(Path(f).exists() for f in result.report_files)
