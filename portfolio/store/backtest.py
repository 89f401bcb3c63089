"""SQL of the back-test (``portfolio.book.backtest``): what a cohort of loans actually did.

Definitions match the calibration's (``portfolio.store.calibration.bucket_transitions``): a
loan is *charged off* on its first row with ``charge_off > 0`` or dpd > the charge-off DPD;
the amount charged off is that row's balance plus its charge-off. Before that row, a row that
is open (balance > 0, status current, delinquent or default) is in bucket ceil(dpd / 30)
(0 = current, 1 = 1–30, 2 = 31–60, …).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import duckdb
import pandas as pd


def month_ends(con: duckdb.DuckDBPyConnection) -> list[dt.date]:
    """Every month-end the book has performance rows for, ascending."""
    rows = con.execute("SELECT DISTINCT as_of FROM loan_performance ORDER BY as_of").fetchall()
    return [r[0] for r in rows]


_COHORT = """
    WITH cohort AS (SELECT DISTINCT unnest($ids::VARCHAR[]) AS loan_id),
    co AS (
        SELECT p.loan_id, min(p.as_of) AS co_month
        FROM loan_performance p JOIN cohort USING (loan_id)
        WHERE (p.charge_off > 0 OR p.dpd > $co_dpd) AND p.as_of > $after
        GROUP BY p.loan_id
    ),
    r AS (
        SELECT p.*, co.co_month
        FROM loan_performance p JOIN cohort USING (loan_id) LEFT JOIN co USING (loan_id)
        WHERE p.as_of > $after AND p.as_of <= $until
    )
"""


def cohort_balances(con: duckdb.DuckDBPyConnection, loan_ids: Sequence[str], after: dt.date,
                    until: dt.date, charge_off_dpd: int) -> pd.DataFrame:
    """End-of-month balance of the cohort's open loans by bucket, for the month-ends in
    (after, until]: columns as_of, bucket, balance, n (loans)."""
    return con.execute(_COHORT + """
        SELECT as_of, CAST(ceil(dpd / 30.0) AS INTEGER) AS bucket,
               sum(CAST(balance AS DOUBLE)) AS balance, count(*) AS n
        FROM r
        WHERE (co_month IS NULL OR as_of < co_month) AND balance > 0
          AND status IN ('current', 'delinquent', 'default')
        GROUP BY ALL ORDER BY 1, 2
        """, {"ids": list(loan_ids), "after": after, "until": until,
              "co_dpd": int(charge_off_dpd)}).df()


def cohort_flows(con: duckdb.DuckDBPyConnection, loan_ids: Sequence[str], after: dt.date,
                 until: dt.date, charge_off_dpd: int) -> pd.DataFrame:
    """The cohort's monthly cash and losses for the month-ends in (after, until]: columns
    as_of, interest, principal (scheduled), prepaid (full and partial prepayments), recovery,
    charge_off (amount at the charge-off row, module doc), n_charge_offs."""
    return con.execute(_COHORT + """
        SELECT as_of,
               sum(CAST(paid_interest AS DOUBLE)) AS interest,
               sum(CAST(paid_principal AS DOUBLE)) AS principal,
               sum(CAST(prepaid_principal AS DOUBLE)) AS prepaid,
               sum(CAST(recovery AS DOUBLE)) AS recovery,
               sum(CASE WHEN as_of = co_month
                        THEN CAST(balance AS DOUBLE) + CAST(charge_off AS DOUBLE) ELSE 0 END)
                   AS charge_off,
               sum(CAST(as_of = co_month AS INTEGER)) AS n_charge_offs
        FROM r
        GROUP BY as_of ORDER BY as_of
        """, {"ids": list(loan_ids), "after": after, "until": until,
              "co_dpd": int(charge_off_dpd)}).df()
