"""SQL of assumption calibration: month-to-month transitions and recoveries after default.

A *transition* is a pair of consecutive month-end rows of one loan (ages a−1 → a). The loan is
*at risk* in it when its row at age a−1 is open and not yet defaulted — status ``current`` or
``delinquent``, dpd ≤ 90, balance > 0, and no earlier row with status ``default`` or
dpd > 90 — or when the row at age a = 1 is the loan's first row (at risk from origination).
In the transition it *defaults* when its row at age a has status ``default`` or dpd > 90 (the
first such row), and *prepays* when that row has status ``prepaid``.

Went-bad timing (``wb_*`` columns) dates each default at the month its final delinquency
began instead: go-bad age g = d − ceil(dpd_d / 30) + 1 (at least 1), d and dpd_d the age and
days past due of the first default row (dpd 91–120 → g = d − 3). A loan is at risk of going
bad up to and including age g; it goes bad at age g. Only transitions ending on or before
``known_until`` (three month-ends before the as-of) count, so every spell that started in the
window has had time to reach default or cure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import duckdb
import pandas as pd


def last_as_of(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    row = con.execute("SELECT max(as_of) FROM loan_performance").fetchone()
    return None if row is None or row[0] is None else row[0]


def transition_counts(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    score_edges: Sequence[int],
    n_age: int,
    known_until: dt.date | None = None,
) -> pd.DataFrame:
    """Counts of transitions ending on or before ``as_of``, by cell and calendar month.

    Columns: band (index into the score bands given by ``score_edges``, the lower edges of
    bands 1..), term_months, age (1.., ages above ``n_age`` pooled into ``n_age``), as_of (the
    month-end the transition ends), at_risk, defaults, prepays (loan counts), and for
    daily-interest loans di_balance_bop (balance at the start) and di_principal_repaid
    (scheduled + prepaid principal in the month); wb_at_risk, wb_defaults, wb_prepays: the
    same with went-bad timing (0 after ``known_until``, default: ``as_of``).
    """
    whens = " ".join(f"WHEN l.credit_score < ? THEN {i}" for i in range(len(score_edges)))
    band = f"CASE {whens} ELSE {len(score_edges)} END"
    sql = f"""
        WITH fd AS (
            SELECT loan_id,
                   greatest(1, arg_min(months_on_book, as_of)
                               - CAST(ceil(arg_min(dpd, as_of) / 30.0) AS INTEGER) + 1)
                       AS go_bad_age
            FROM loan_performance
            WHERE (status = 'default' OR dpd > 90) AND as_of <= ?
            GROUP BY loan_id
        ),
        r AS (
            SELECT loan_id, as_of, months_on_book AS age, status, dpd,
                   CAST(balance AS DOUBLE) AS balance,
                   CAST(paid_principal AS DOUBLE) + CAST(prepaid_principal AS DOUBLE)
                       AS principal_repaid,
                   (status = 'default' OR dpd > 90) AS is_def,
                   lag(status) OVER w AS prev_status,
                   lag(dpd) OVER w AS prev_dpd,
                   lag(CAST(balance AS DOUBLE)) OVER w AS prev_balance,
                   lag(months_on_book) OVER w AS prev_age,
                   coalesce(bool_or(status = 'default' OR dpd > 90) OVER (
                       w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), false) AS was_def
            FROM loan_performance
            WHERE as_of <= ?
            WINDOW w AS (PARTITION BY loan_id ORDER BY as_of)
        ),
        t AS (
            SELECT r.*, {band} AS band, l.term_months,
                   l.repayment_type = 'daily_interest' AS is_di,
                   coalesce(r.prev_balance, CAST(l.principal AS DOUBLE)) AS balance_bop,
                   r.as_of <= ? AND (fd.go_bad_age IS NULL OR r.age <= fd.go_bad_age)
                       AS wb_risk,
                   coalesce(fd.go_bad_age = r.age, false) AS wb_event
            FROM r JOIN loans l USING (loan_id) LEFT JOIN fd USING (loan_id)
            WHERE r.age >= 1 AND NOT r.was_def AND (
                (r.prev_age = r.age - 1 AND r.prev_status IN ('current', 'delinquent')
                 AND r.prev_dpd <= 90 AND r.prev_balance > 0)
                OR (r.prev_age IS NULL AND r.age = 1))
        )
        SELECT band, term_months, least(age, ?) AS age, as_of,
               count(*) AS at_risk,
               sum(CAST(is_def AS INTEGER)) AS defaults,
               sum(CAST(status = 'prepaid' AND NOT is_def AS INTEGER)) AS prepays,
               sum(CASE WHEN is_di THEN balance_bop ELSE 0 END) AS di_balance_bop,
               sum(CASE WHEN is_di THEN principal_repaid ELSE 0 END) AS di_principal_repaid,
               sum(CAST(is_di AS INTEGER)) AS di_at_risk,
               sum(CAST(wb_risk AS INTEGER)) AS wb_at_risk,
               sum(CAST(wb_risk AND wb_event AS INTEGER)) AS wb_defaults,
               sum(CAST(wb_risk AND NOT wb_event AND status = 'prepaid' AS INTEGER))
                   AS wb_prepays
        FROM t
        GROUP BY ALL
    """
    until = as_of if known_until is None else known_until
    return con.execute(sql, [as_of, as_of, *score_edges, until, n_age]).df()


def recovery_counts(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> tuple[pd.DataFrame,
                                                                             pd.DataFrame]:
    """Defaulted balances by default month and recoveries by (default month, lag).

    A loan's default month is its first row with status ``default`` or dpd > 90 (on or before
    ``as_of``); its defaulted balance is the balance on that row. Recoveries are the
    ``recovery`` amounts on its rows from that month on (lag 0 = the default month itself).
    Returns (frame default_month, n_defaults, defaulted_balance;
             frame default_month, lag, recovered).
    """
    first = """
        WITH f AS (
            SELECT loan_id, min(as_of) AS d
            FROM loan_performance
            WHERE (status = 'default' OR dpd > 90) AND as_of <= ?
            GROUP BY loan_id
        )
    """
    balances = con.execute(
        first + """
        SELECT f.d AS default_month, count(*) AS n_defaults,
               sum(CAST(p.balance AS DOUBLE)) AS defaulted_balance
        FROM f JOIN loan_performance p ON p.loan_id = f.loan_id AND p.as_of = f.d
        GROUP BY f.d ORDER BY f.d
        """,
        [as_of],
    ).df()
    recoveries = con.execute(
        first + """
        SELECT f.d AS default_month, datediff('month', f.d, p.as_of) AS lag,
               sum(CAST(p.recovery AS DOUBLE)) AS recovered
        FROM f JOIN loan_performance p ON p.loan_id = f.loan_id
        WHERE p.as_of >= f.d AND p.as_of <= ? AND p.recovery > 0
        GROUP BY ALL ORDER BY 1, 2
        """,
        [as_of, as_of],
    ).df()
    return balances, recoveries
