"""Writes and reads of the book: ``loans``, ``loan_performance``, ingestion records.

Bulk writes go through Arrow (``con.register``) inside the caller's transaction, never row
by row. Column lists are spelled out so that a frame's extra columns never reach a table.
"""

from __future__ import annotations

import contextlib

import duckdb
import pandas as pd
import pyarrow as pa

from portfolio.loans.types import RepaymentType

_TYPE_NAMES = ", ".join(f"'{t.value}'" for t in RepaymentType)


def loans_ddl(table: str = "loans") -> str:
    """The ``loans`` table (schema version 3: five repayment types, ``disclosed_apr``), under
    ``table``: the schema and the 2 → 3 migration create it from the same text."""
    return f"""CREATE TABLE IF NOT EXISTS {table} (
        loan_id VARCHAR PRIMARY KEY,
        borrower_id VARCHAR NOT NULL,
        origination_date DATE NOT NULL,
        principal DECIMAL(18,2) NOT NULL CHECK (principal > 0 AND principal <= 200000),
        apr DOUBLE NOT NULL CHECK (apr >= 0 AND apr <= 1),
        term_months SMALLINT NOT NULL CHECK (term_months IN (3, 6, 9, 12, 18, 24)),
        repayment_type VARCHAR NOT NULL CHECK (repayment_type IN ({_TYPE_NAMES})),
        credit_score SMALLINT NOT NULL CHECK (credit_score BETWEEN 350 AND 950),
        region VARCHAR,
        channel VARCHAR,
        product VARCHAR,
        credit_limit DECIMAL(18,2),
        batch_id BIGINT,
        disclosed_apr DOUBLE CHECK (disclosed_apr IS NULL OR
                                    (disclosed_apr >= 0 AND disclosed_apr <= 1))
    )"""


LOAN_COLUMNS: tuple[str, ...] = (
    "loan_id",
    "borrower_id",
    "origination_date",
    "principal",
    "apr",
    "term_months",
    "repayment_type",
    "credit_score",
    "region",
    "channel",
    "product",
    "credit_limit",
    "batch_id",
    "disclosed_apr",
)

PERFORMANCE_COLUMNS: tuple[str, ...] = (
    "loan_id",
    "as_of",
    "months_on_book",
    "balance",
    "paid_principal",
    "paid_interest",
    "prepaid_principal",
    "dpd",
    "status",
    "charge_off",
    "recovery",
    "batch_id",
)


def _insert(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: tuple[str, ...],
    data: pd.DataFrame | pa.Table,
) -> int:
    present = set(data.column_names if isinstance(data, pa.Table) else data.columns)
    cols = [c for c in columns if c in present]
    view = f"_incoming_{table}"
    con.register(view, data)
    try:
        col_list = ", ".join(cols)
        con.execute(f"INSERT INTO {table} ({col_list}) SELECT {col_list} FROM {view}")
    finally:
        # After a failed INSERT the transaction is aborted and unregister fails too;
        # keep the original (constraint) error as the one raised.
        with contextlib.suppress(duckdb.Error):
            con.unregister(view)
    return len(data)


def insert_loans(con: duckdb.DuckDBPyConnection, data: pd.DataFrame | pa.Table) -> int:
    """Append loans (columns of ``LOAN_COLUMNS``; missing optional ones become NULL)."""
    return _insert(con, "loans", LOAN_COLUMNS, data)


def insert_performance(con: duckdb.DuckDBPyConnection, data: pd.DataFrame | pa.Table) -> int:
    """Append month-end performance rows (columns of ``PERFORMANCE_COLUMNS``)."""
    return _insert(con, "loan_performance", PERFORMANCE_COLUMNS, data)


def count_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    if table not in {"loans", "loan_performance", "ingest_batches", "ingest_rejects", "runs",
                     "pools", "pool_loans", "allocations", "allocation_shares", "partners"}:
        raise ValueError(f"unknown table {table!r}")
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0
