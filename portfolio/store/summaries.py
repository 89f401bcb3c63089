"""SQL of the book's stored page summaries (table ``book_summaries``).

The Book page's tables at the book's latest month-end (size and mix, anchors, delinquency over
time, vintage curves, roll rates, CDR/CPR: ``portfolio.book.summaries``) take seconds to
aggregate over a million-loan book, so the command that writes the book (``riskpool generate``,
``riskpool ingest``, ``riskpool demo``) computes them once and stores them here; the dashboard
reads them instead of aggregating at first render. A stored table is used only while its key
still matches: :func:`book_key` — the book's last ingest batch, a digest of its rows and the
code version — so a new batch, rows changed in place or another code version make the
dashboard compute live again (and never show a stale number).

Each table is stored as Parquet bytes (the DataFrame exactly: float64 values, dtypes and
column order as computed). The table is derived data: a database without it (one written
before it existed, or never summarised) simply has none stored, and its readers compute live;
so it is created by the first write (``CREATE TABLE IF NOT EXISTS``), not by a schema step.
The whole book is stored under ``scope = ''``; a partner's Book tables, computed on its own
scope once an allocation is saved, under its party id, keyed by :func:`party_book_key` (the
book's key and a digest of the partner's shares); the dashboard reads a partner's under the
viewer's own id only.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Mapping
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SUMMARY_DDL = """CREATE TABLE IF NOT EXISTS book_summaries (
    scope VARCHAR NOT NULL,
    as_of DATE NOT NULL,
    book_key VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    data BLOB NOT NULL,
    computed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (scope, name)
)"""

WHOLE_BOOK = ""
_LABELS = b"riskpool_columns"


def _one(cursor: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """The one row of an aggregate query (an aggregate without GROUP BY always has one)."""
    row = cursor.fetchone()
    if row is None:  # pragma: no cover - an aggregate without GROUP BY has one row
        raise RuntimeError("an aggregate query returned no row")
    return tuple(row)


_PERFORMANCE_COLUMNS = ("loan_id, as_of, months_on_book, balance, paid_principal, paid_interest, "
                        "prepaid_principal, dpd, status, charge_off, recovery")
_LOAN_COLUMNS = ("loan_id, borrower_id, origination_date, principal, apr, term_months, "
                 "repayment_type, credit_score, region, channel, product, credit_limit, "
                 "disclosed_apr")


def book_key(con: duckdb.DuckDBPyConnection, code_version: str) -> str:
    """What a stored summary was computed on: the last ingest batch, a digest of the book's
    rows and the code version. The digest of each table is its row count and an xor over its
    rows of a hash of the row's every column (order-free, and exact: no float sum, which
    DuckDB adds in parallel in an order that varies from run to run); about 0.3 s on B1's
    8.1 M performance rows and 1.5 M loans. Any write to the book — a new batch, a value
    changed in place, even one swapped between two rows — gives another key."""
    return f"{book_digest(con, _PERFORMANCE_COLUMNS, _LOAN_COLUMNS)}; code {code_version}"


def book_digest(con: duckdb.DuckDBPyConnection, performance_columns: str,
                loan_columns: str) -> str:
    """The last ingest batch and, of ``loan_performance`` and of ``loans``, the row count and
    an xor over the rows of a hash of the named columns (``performance_columns``,
    ``loan_columns``: comma-separated), with the latest month-end: :func:`book_key` of every
    column, ``portfolio.store.allocations.pool_household_key`` of those a pool's households
    are computed from."""
    batch, = _one(con.execute("SELECT coalesce(max(batch_id), 0) FROM ingest_batches"))
    # hash() of the row's combined hash: DuckDB combines the hashes of several columns so
    # that an xor over rows of hash(a, b, …) would not see a value swapped between two rows;
    # hashing the combination once more mixes it
    # (tests/dashboards/test_stored_summaries.py)
    perf = _one(con.execute(
        f"SELECT count(*), max(as_of), bit_xor(hash(hash({performance_columns}))) "
        "FROM loan_performance"))
    loans = _one(con.execute(
        f"SELECT count(*), bit_xor(hash(hash({loan_columns}))) FROM loans"))
    return (f"batch {int(batch)}; performance {'|'.join(map(str, perf))}; "
            f"loans {'|'.join(map(str, loans))}")


def party_book_key(con: duckdb.DuckDBPyConnection, party_id: str, code_version: str) -> str:
    """:func:`book_key` of the whole book (``con``) and a digest of what a partner's scope is
    cut with: its positive shares in every allocation (count and an xor of hashes of
    allocation, loan and share). A new batch, rows changed in place or a new allocation
    giving the partner a loan or another share gives another key."""
    shares = _one(con.execute(
        "SELECT count(*), bit_xor(hash(hash(allocation_id, loan_id, share))) "
        "FROM allocation_shares "
        "WHERE party_id = ? AND share > 0", [party_id]))
    return (f"{book_key(con, code_version)}; party {party_id} shares "
            f"{'|'.join(map(str, shares))}")


def _has_table(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute("SELECT count(*) FROM information_schema.tables "
                      "WHERE table_schema = 'main' AND table_name = 'book_summaries'").fetchone()
    return bool(row and row[0])


def _label(value: object) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | np.integer | str):
        raise ValueError(f"a stored table's column labels are int or str; got {value!r}")
    return value if isinstance(value, str) else int(value)


def _to_bytes(frame: pd.DataFrame) -> bytes:
    """Parquet bytes of ``frame``; its column labels (Parquet names are text: a vintage
    table's month columns are integers) and their index dtype in the file's metadata."""
    labels = [_label(c) for c in frame.columns]
    table = pa.Table.from_pandas(frame.set_axis([str(c) for c in labels], axis=1),
                                 preserve_index=False)
    meta = {**(table.schema.metadata or {}), _LABELS: json.dumps(
        {"labels": labels, "dtype": str(frame.columns.dtype)}).encode()}
    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(meta), buf)
    return buf.getvalue()


def _from_bytes(data: bytes) -> pd.DataFrame:
    table = pq.read_table(io.BytesIO(data))
    info = json.loads(table.schema.metadata[_LABELS])
    frame = table.to_pandas()
    return frame.set_axis(pd.Index(info["labels"], dtype=info["dtype"]), axis=1)


def write_summaries(con: duckdb.DuckDBPyConnection, as_of: dt.date, key: str,
                    tables: Mapping[str, pd.DataFrame], scope: str = WHOLE_BOOK) -> int:
    """Replace the scope's stored tables with ``tables`` computed at ``as_of`` on the book
    ``key`` describes (the caller holds the transaction); returns how many were stored."""
    con.execute(SUMMARY_DDL)
    con.execute("DELETE FROM book_summaries WHERE scope = ?", [scope])
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.executemany(
        "INSERT INTO book_summaries (scope, as_of, book_key, name, data, computed_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [[scope, as_of, key, name, _to_bytes(frame.reset_index(drop=True)), now]
         for name, frame in tables.items()])
    return len(tables)


def read_summaries(con: duckdb.DuckDBPyConnection, key: str, as_of: dt.date | None = None,
                   scope: str = WHOLE_BOOK) -> tuple[dt.date, dict[str, pd.DataFrame]] | None:
    """The scope's stored tables and their month-end if they were computed on the book
    ``key`` describes (and at ``as_of`` when given); else ``None`` (none stored, another
    book state or code version, or a database without the table)."""
    if not _has_table(con):
        return None
    rows = con.execute("SELECT as_of, name, data FROM book_summaries "
                       "WHERE scope = ? AND book_key = ? ORDER BY name", [scope, key]).fetchall()
    if not rows:
        return None
    day = rows[0][0]
    if as_of is not None and day != as_of:
        return None
    return day, {name: _from_bytes(data) for _, name, data in rows}


# --------------------------------------------------------------------------- a run's views

RUN_VIEW_DDL = """CREATE TABLE IF NOT EXISTS run_view_summaries (
    run_id BIGINT NOT NULL,
    view VARCHAR NOT NULL,
    view_key VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    data BLOB NOT NULL,
    computed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, view, name)
)"""


def _has_run_views(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = "
                      "'main' AND table_name = 'run_view_summaries'").fetchone()
    return bool(row and row[0])


def write_run_view(con: duckdb.DuckDBPyConnection, run_id: int, view: str, key: str,
                   tables: Mapping[str, pd.DataFrame]) -> int:
    """Replace the run's stored ``view`` (a page's tables computed once from the run: the
    Tranches and Dispersion pages' views of the deal stored with the run) with ``tables``
    computed on the inputs ``key`` describes (the caller holds the transaction)."""
    con.execute(RUN_VIEW_DDL)
    con.execute("DELETE FROM run_view_summaries WHERE run_id = ? AND view = ?",
                [int(run_id), view])
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.executemany(
        "INSERT INTO run_view_summaries (run_id, view, view_key, name, data, computed_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [[int(run_id), view, key, name, _to_bytes(frame.reset_index(drop=True)), now]
         for name, frame in tables.items()])
    return len(tables)


def read_run_view(con: duckdb.DuckDBPyConnection, run_id: int, view: str,
                  key: str) -> dict[str, pd.DataFrame] | None:
    """The run's stored ``view`` tables if they were computed on the inputs ``key`` describes;
    else ``None`` (none stored, other inputs or code version, or a database without the
    table)."""
    if not _has_run_views(con):
        return None
    rows = con.execute("SELECT name, data FROM run_view_summaries WHERE run_id = ? AND "
                       "view = ? AND view_key = ?", [int(run_id), view, key]).fetchall()
    return {name: _from_bytes(data) for name, data in rows} or None
