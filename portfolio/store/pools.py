"""SQL of pools: snapshot candidates, immutable snapshots, pool loans and stratifications.

A pool is written once (``insert_pool``) inside the caller's transaction and never updated:
there is deliberately no update or delete here. ``pool_loans`` keeps each loan's cut-off
balance, remaining term and months on book; everything else about a loan is read from
``loans``, which is itself append-only.

All values reach SQL as ``?`` parameters. The bucket edges of the stratifications are code
constants, passed as parameters too.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa


def book_regions(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Distinct non-null regions in ``loans`` (sorted)."""
    rows = con.execute(
        "SELECT DISTINCT region FROM loans WHERE region IS NOT NULL ORDER BY region"
    ).fetchall()
    return [str(r[0]) for r in rows]


def snapshot_candidates(con: duckdb.DuckDBPyConnection, cutoff: dt.date) -> pd.DataFrame:
    """Every loan in the book with its performance row at ``cutoff`` (NULLs when none).

    Columns: loan_id, borrower_id, origination_date, principal, apr, term_months,
    repayment_type, credit_score, region, perf_months_on_book, balance, dpd, status,
    charge_off, has_row. Ordered by loan_id so that downstream tie-breaks are reproducible.
    """
    return con.execute(
        """
        SELECT l.loan_id, l.borrower_id, l.origination_date,
               CAST(l.principal AS DOUBLE) AS principal, l.apr, l.term_months,
               l.repayment_type, l.credit_score, l.region,
               p.months_on_book AS perf_months_on_book,
               CAST(p.balance AS DOUBLE) AS balance, p.dpd, p.status,
               CAST(p.charge_off AS DOUBLE) AS charge_off,
               p.loan_id IS NOT NULL AS has_row
        FROM loans l
        LEFT JOIN loan_performance p ON p.loan_id = l.loan_id AND p.as_of = ?
        ORDER BY l.loan_id
        """,
        [cutoff],
    ).df()


def pool_name_taken(con: duckdb.DuckDBPyConnection, name: str) -> int | None:
    row = con.execute("SELECT pool_id FROM pools WHERE name = ? LIMIT 1", [name]).fetchone()
    return int(row[0]) if row else None


def insert_pool(
    con: duckdb.DuckDBPyConnection,
    *,
    pool_id: int,
    name: str,
    cutoff: dt.date,
    criteria: dict[str, Any],
    exclusions: list[dict[str, Any]],
    loans: pd.DataFrame,
) -> None:
    """Write one immutable pool snapshot (call inside ``store.transaction()``).

    ``loans`` has columns loan_id, cutoff_balance, remaining_term, months_on_book.
    """
    n_loans = len(loans)
    balance = float(loans["cutoff_balance"].sum()) if n_loans else 0.0
    con.execute(
        """
        INSERT INTO pools (pool_id, name, cutoff_date, criteria, created_at, n_loans, balance,
                           exclusions)
        VALUES (?, ?, ?, ?, now()::TIMESTAMP, ?, ?, ?)
        """,
        [pool_id, name, cutoff, json.dumps(criteria, default=str), n_loans, round(balance, 2),
         json.dumps(exclusions, default=str)],
    )
    table = pa.table(
        {
            "pool_id": pa.array([pool_id] * n_loans, type=pa.int64()),
            "loan_id": pa.array(loans["loan_id"].astype(str).tolist(), type=pa.string()),
            "cutoff_balance": pa.array(loans["cutoff_balance"].to_numpy(dtype="float64")),
            "remaining_term": pa.array(loans["remaining_term"].to_numpy(dtype="int16")),
            "months_on_book": pa.array(loans["months_on_book"].to_numpy(dtype="int16")),
        }
    )
    con.register("_incoming_pool_loans", table)
    try:
        con.execute(
            """
            INSERT INTO pool_loans (pool_id, loan_id, cutoff_balance, remaining_term,
                                    months_on_book)
            SELECT pool_id, loan_id, CAST(cutoff_balance AS DECIMAL(18,2)), remaining_term,
                   months_on_book
            FROM _incoming_pool_loans
            """
        )
    finally:
        con.unregister("_incoming_pool_loans")


def pool_rows(con: duckdb.DuckDBPyConnection, pool_id: int | None = None) -> pd.DataFrame:
    """The ``pools`` table (one pool when ``pool_id`` is given), newest id last."""
    if pool_id is None:
        return con.execute(
            "SELECT pool_id, name, cutoff_date, criteria, created_at, n_loans,"
            " CAST(balance AS DOUBLE) AS balance, exclusions FROM pools ORDER BY pool_id"
        ).df()
    return con.execute(
        "SELECT pool_id, name, cutoff_date, criteria, created_at, n_loans,"
        " CAST(balance AS DOUBLE) AS balance, exclusions FROM pools WHERE pool_id = ?",
        [pool_id],
    ).df()


def pool_loan_frame(con: duckdb.DuckDBPyConnection, pool_id: int) -> pd.DataFrame:
    """The pool's loans joined with their static data, ordered by loan_id."""
    return con.execute(
        """
        SELECT pl.loan_id, CAST(pl.cutoff_balance AS DOUBLE) AS balance, l.apr,
               l.term_months, pl.remaining_term, pl.months_on_book, l.repayment_type,
               l.credit_score, l.region, l.origination_date,
               CAST(l.principal AS DOUBLE) AS principal, l.borrower_id
        FROM pool_loans pl JOIN loans l USING (loan_id)
        WHERE pl.pool_id = ?
        ORDER BY pl.loan_id
        """,
        [pool_id],
    ).df()


def _case(expr: str, n_edges: int) -> str:
    """``CASE WHEN expr < ? THEN 0 … ELSE n END`` — bucket index from ascending edges."""
    whens = " ".join(f"WHEN {expr} < ? THEN {i}" for i in range(n_edges))
    return f"CASE {whens} ELSE {n_edges} END"


def pool_strats(
    con: duckdb.DuckDBPyConnection,
    pool_id: int,
    *,
    score_edges: Sequence[float],
    apr_edges: Sequence[float],
    remaining_edges: Sequence[float],
    balance_edges: Sequence[float],
    mob_edges: Sequence[float],
) -> pd.DataFrame:
    """All stratifications of a pool in one scan (``GROUPING SETS``).

    Returns one row per (dimension, key) with columns dimension, key, n_loans, balance,
    wa_apr, wa_score, wa_remaining_term; the key is a bucket index for bucketed dimensions,
    the value itself otherwise (as text), and ``None`` with dimension ``total`` for the total.
    """
    dims = {
        "score_band": _case("credit_score", len(score_edges)),
        "apr_bucket": _case("apr", len(apr_edges)),
        "remaining_term_bucket": _case("remaining_term", len(remaining_edges)),
        "balance_bucket": _case("balance", len(balance_edges)),
        "mob_bucket": _case("months_on_book", len(mob_edges)),
    }
    params: list[Any] = [*score_edges, *apr_edges, *remaining_edges, *balance_edges,
                         *mob_edges, pool_id]
    select_dims = ",\n               ".join(f"{expr} AS {name}" for name, expr in dims.items())
    sql = f"""
        WITH p AS (
            SELECT CAST(pl.cutoff_balance AS DOUBLE) AS balance, l.apr, l.credit_score,
                   pl.remaining_term, pl.months_on_book, l.term_months, l.repayment_type,
                   coalesce(l.region, '(none)') AS region,
                   strftime(l.origination_date, '%Y') || '-Q'
                       || CAST(quarter(l.origination_date) AS VARCHAR) AS vintage,
                   {select_dims}
            FROM pool_loans pl JOIN loans l USING (loan_id)
            WHERE pl.pool_id = ?
        )
        SELECT
            score_band, apr_bucket, term_months, remaining_term_bucket, balance_bucket,
            repayment_type, region, vintage, mob_bucket,
            GROUPING(score_band, apr_bucket, term_months, remaining_term_bucket,
                     balance_bucket, repayment_type, region, vintage, mob_bucket) AS gid,
            count(*) AS n_loans,
            sum(balance) AS balance,
            sum(balance * apr) AS bal_apr,
            sum(balance * credit_score) AS bal_score,
            sum(balance * remaining_term) AS bal_rem
        FROM p
        GROUP BY GROUPING SETS ((score_band), (apr_bucket), (term_months),
                                (remaining_term_bucket), (balance_bucket), (repayment_type),
                                (region), (vintage), (mob_bucket), ())
    """
    return con.execute(sql, params).df()
