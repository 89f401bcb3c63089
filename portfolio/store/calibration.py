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


def bucket_transitions(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    score_edges: Sequence[int],
    n_age: int,
    charge_off_dpd: int,
) -> pd.DataFrame:
    """Month-to-month moves between delinquency buckets, by cell and calendar month.

    A move is a pair of consecutive month-end rows of one loan (ages a−1 → a, a ≥ 1, ending on
    or before ``as_of``), or a loan's first row at age 1 (from current: at origination). The
    *from* state is the bucket of the row at a−1: 0 when dpd = 0, else ceil(dpd / 30) (1 =
    1–30, 2 = 31–60, …), for a row that is open (balance > 0, status current, delinquent or
    default) and not charged off. A loan is *charged off* on its first row with
    ``charge_off > 0`` or dpd > ``charge_off_dpd``; that row's *to* state is ``K + 1``
    (K = charge_off_dpd / 30), and no move starts from it or later. Otherwise the *to* state is
    ``K + 2`` for status prepaid, ``K + 3`` for matured, else the row's bucket.

    Columns: band, term_months, age (ages above ``n_age`` pooled), as_of, s_from, s_to, n
    (loans), and for daily-interest loans moving current → current: di_balance_bop (balance
    at the start), di_partial (prepaid principal of the month: partial repayments), di_n.
    """
    k = int(charge_off_dpd) // 30
    whens = " ".join(f"WHEN l.credit_score < ? THEN {i}" for i in range(len(score_edges)))
    band = f"CASE {whens} ELSE {len(score_edges)} END"
    sql = f"""
        WITH co AS (
            SELECT loan_id, min(as_of) AS co_month
            FROM loan_performance
            WHERE (charge_off > 0 OR dpd > $co_dpd) AND as_of <= $as_of
            GROUP BY loan_id
        ),
        r AS (
            SELECT p.loan_id, p.as_of, p.months_on_book AS age, p.status, p.dpd,
                   CAST(p.balance AS DOUBLE) AS balance,
                   CAST(p.prepaid_principal AS DOUBLE) AS prepaid,
                   co.co_month,
                   lag(p.status) OVER w AS prev_status,
                   lag(p.dpd) OVER w AS prev_dpd,
                   lag(CAST(p.balance AS DOUBLE)) OVER w AS prev_balance,
                   lag(p.months_on_book) OVER w AS prev_age,
                   lag(p.as_of) OVER w AS prev_as_of
            FROM loan_performance p LEFT JOIN co USING (loan_id)
            WHERE p.as_of <= $as_of
            WINDOW w AS (PARTITION BY p.loan_id ORDER BY p.as_of)
        ),
        t AS (
            SELECT r.*, {band} AS band, l.term_months,
                   l.repayment_type = 'daily_interest' AS is_di,
                   CASE WHEN r.prev_age IS NULL THEN 0
                        ELSE CAST(ceil(r.prev_dpd / 30.0) AS INTEGER) END AS s_from,
                   CASE WHEN r.as_of = r.co_month THEN $k + 1
                        WHEN r.status = 'prepaid' THEN $k + 2
                        WHEN r.status = 'matured' THEN $k + 3
                        ELSE least(CAST(ceil(r.dpd / 30.0) AS INTEGER), $k) END AS s_to,
                   coalesce(r.prev_balance, CAST(l.principal AS DOUBLE)) AS balance_bop
            FROM r JOIN loans l USING (loan_id)
            WHERE r.age >= 1
              AND (r.co_month IS NULL OR r.as_of <= r.co_month)
              AND ((r.prev_age = r.age - 1
                    AND r.prev_status IN ('current', 'delinquent', 'default')
                    AND r.prev_balance > 0)
                   OR (r.prev_age IS NULL AND r.age = 1))
        )
        SELECT band, term_months, least(age, $n_age) AS age, as_of, s_from, s_to,
               count(*) AS n,
               sum(CASE WHEN is_di AND s_from = 0 AND s_to = 0 THEN balance_bop ELSE 0 END)
                   AS di_balance_bop,
               sum(CASE WHEN is_di AND s_from = 0 AND s_to = 0 THEN prepaid ELSE 0 END)
                   AS di_partial,
               sum(CAST(is_di AND s_from = 0 AND s_to = 0 AS INTEGER)) AS di_n
        FROM t
        GROUP BY ALL
    """
    params: dict[str, object] = {"as_of": as_of, "co_dpd": int(charge_off_dpd), "k": k,
                                 "n_age": int(n_age)}
    # the band's CASE uses positional markers: number them as named ones instead
    for i, edge in enumerate(score_edges):
        sql = sql.replace("l.credit_score < ?", f"l.credit_score < $e{i}", 1)
        params[f"e{i}"] = int(edge)
    return con.execute(sql, params).df()


def charge_off_recoveries(con: duckdb.DuckDBPyConnection, as_of: dt.date, charge_off_dpd: int
                          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Charged-off amounts by charge-off month and recoveries by (charge-off month, lag).

    A loan's charge-off month is its first row with ``charge_off > 0`` or dpd >
    ``charge_off_dpd`` (on or before ``as_of``). Its amount at charge-off is the balance plus
    the charge-off on that row plus any recoveries it paid before that month (so that a book
    that recovers before writing off is measured on the same base). Recoveries are every
    ``recovery`` of the loan with lag = calendar months from the charge-off month (lag ≤ 0:
    collected in or before the charge-off month).
    Returns (frame co_month, n_charge_offs, amount; frame co_month, lag, recovered).
    """
    first = """
        WITH co AS (
            SELECT loan_id, min(as_of) AS co_month
            FROM loan_performance
            WHERE (charge_off > 0 OR dpd > $co_dpd) AND as_of <= $as_of
            GROUP BY loan_id
        )
    """
    amounts = con.execute(first + """
        , pre AS (
            SELECT co.loan_id, sum(CAST(p.recovery AS DOUBLE)) AS before_co
            FROM co JOIN loan_performance p ON p.loan_id = co.loan_id AND p.as_of < co.co_month
            GROUP BY co.loan_id
        )
        SELECT co.co_month, count(*) AS n_charge_offs,
               sum(CAST(p.balance AS DOUBLE) + CAST(p.charge_off AS DOUBLE)
                   + coalesce(pre.before_co, 0)) AS amount
        FROM co JOIN loan_performance p ON p.loan_id = co.loan_id AND p.as_of = co.co_month
        LEFT JOIN pre ON pre.loan_id = co.loan_id
        GROUP BY co.co_month ORDER BY co.co_month
        """, {"co_dpd": int(charge_off_dpd), "as_of": as_of}).df()
    recoveries = con.execute(first + """
        SELECT co.co_month, datediff('month', co.co_month, p.as_of) AS lag,
               sum(CAST(p.recovery AS DOUBLE)) AS recovered
        FROM co JOIN loan_performance p ON p.loan_id = co.loan_id
        WHERE p.as_of <= $as_of AND p.recovery > 0
        GROUP BY ALL ORDER BY 1, 2
        """, {"co_dpd": int(charge_off_dpd), "as_of": as_of}).df()
    return amounts, recoveries
