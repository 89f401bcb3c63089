"""Writes and reads of the book: ``loans``, ``loan_performance``, ingestion records.

Bulk writes go through Arrow (``con.register``) inside the caller's transaction, never row
by row. Column lists are spelled out so that a frame's extra columns never reach a table.
"""

from __future__ import annotations

import contextlib

import duckdb
import pandas as pd
import pyarrow as pa

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
