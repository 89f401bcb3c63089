"""R5's household credit limit read from the book (portfolio.store.allocations), checked
against the same definition computed with pandas from the raw tables."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from portfolio.store import open_store


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory):
    from portfolio.book.pools import create_pool, parse_criteria
    from portfolio.synthetic.generate import generate_book

    db = tmp_path_factory.mktemp("hh") / "db.duckdb"
    cut = dt.date(2026, 10, 31)
    with open_store(db) as store:
        generate_book(store, 4000, 8, seed=3, as_of=cut)
        info = create_pool(store, "p", parse_criteria({"eligibility": {"dpd_max": 0}}), cut)
    return db, info.pool_id, cut


def test_household_limit_is_the_borrowers_open_limits_across_the_book(book):
    from partners.records import pool_loans
    from portfolio.store.allocations import household_credit_limits

    db, pool_id, cut = book
    with open_store(db, read_only=True) as store:
        got = household_credit_limits(store.con, cut, pool_id=pool_id)
        loans = store.con.execute("SELECT loan_id, borrower_id, origination_date, "
                                  "CAST(credit_limit AS DOUBLE) AS lim, CAST(principal AS DOUBLE) "
                                  "AS principal FROM loans").df()
        perf = store.con.execute("SELECT loan_id, as_of, CAST(balance AS DOUBLE) AS balance "
                                 "FROM loan_performance").df()
        pool = store.con.execute("SELECT loan_id FROM pool_loans WHERE pool_id = ? ORDER BY loan_id",
                                 [pool_id]).df()
        batch = pool_loans(store, pool_id)
    # the definition in pandas: loans originated by the cut-off whose last balance on or before
    # it is positive (or with no row yet), credit_limit summed per borrower
    perf = perf[pd.to_datetime(perf["as_of"]) <= pd.Timestamp(cut)]
    last = perf.sort_values("as_of").groupby("loan_id")["balance"].last()
    loans["open"] = loans["loan_id"].map(last).fillna(1.0) > 0
    loans["lim"] = loans["lim"].fillna(loans["principal"])
    live = loans[(pd.to_datetime(loans["origination_date"]) <= pd.Timestamp(cut)) & loans["open"]]
    per_borrower = live.groupby("borrower_id")["lim"].sum()
    want = pool.merge(loans[["loan_id", "borrower_id"]], on="loan_id")["borrower_id"] \
        .map(per_borrower).to_numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    # the pool batch carries them, in its loan order
    np.testing.assert_array_equal(batch.household_limit, got)
    # a household's limit is at least the loan's own
    own = pool.merge(loans, on="loan_id")["lim"].to_numpy()
    assert np.all(got >= own - 1e-6)


def test_household_limit_is_the_exact_decimal_sum_rounded_once(book):
    # Reproducibility: DuckDB adds a group's values on several threads in no fixed order; a
    # DOUBLE sum could differ in its last bit from run to run. The limits are summed in DECIMAL
    # (exact) and cast once, so each equals the exact sum of the cents (Python's decimal, an
    # independent reference) as the nearest double — bit for bit, on every run.
    import shutil
    from decimal import Decimal

    from portfolio.store.allocations import household_credit_limits

    src, pool_id, cut = book
    db = src.with_name("cents.duckdb")
    shutil.copyfile(src, db)
    with open_store(db) as store:  # limits with odd cents: their double sums are inexact
        store.con.execute("UPDATE loans SET credit_limit = coalesce(credit_limit, principal) "
                          "+ CAST((hash(loan_id) % 97) / 100 AS DECIMAL(18, 2)) + 0.01")
    with open_store(db, read_only=True) as store:
        got = household_credit_limits(store.con, cut, pool_id=pool_id)
        rows = store.con.execute(
            "SELECT p.loan_id, l.borrower_id FROM pool_loans p JOIN loans l USING (loan_id) "
            "WHERE p.pool_id = ? ORDER BY p.loan_id", [pool_id]).fetchall()
        lims = store.con.execute(
            "SELECT l.borrower_id, CAST(coalesce(l.credit_limit, l.principal) AS VARCHAR) "
            "FROM loans l WHERE l.origination_date <= ? AND NOT EXISTS ("
            " SELECT 1 FROM (SELECT loan_id FROM loan_performance WHERE as_of <= ?"
            "  GROUP BY loan_id HAVING arg_max(balance, as_of) <= 0) c"
            " WHERE c.loan_id = l.loan_id)", [cut, cut]).fetchall()
    exact: dict[str, Decimal] = {}
    for borrower, text in lims:
        exact[borrower] = exact.get(borrower, Decimal(0)) + Decimal(text)
    want = np.array([float(exact[b]) for _, b in rows])
    np.testing.assert_array_equal(got, want)
