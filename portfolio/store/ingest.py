"""SQL of tape ingestion: ``ingest_batches``, ``ingest_rejects`` and the look-ups a load needs.

The rows themselves go in through ``portfolio.store.book.insert_loans`` /
``insert_performance``. Incoming keys are passed as Arrow tables (registered views), never
spliced into SQL text; every value is a ``?`` parameter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from portfolio.store.book import LOAN_COLUMNS, PERFORMANCE_COLUMNS


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """One row of ``ingest_batches``."""

    batch_id: int
    kind: str
    source: str
    sha256: str
    n_rows: int
    n_loaded: int
    n_rejected: int
    started_at: datetime
    finished_at: datetime
    note: str | None


_BATCH_COLUMNS = (
    "batch_id, kind, source, sha256, n_rows, n_loaded, n_rejected, started_at, finished_at, note"
)

REJECT_COLUMNS: tuple[str, ...] = (
    "batch_id",
    "row_number",
    "column_name",
    "rule",
    "value",
    "message",
    "raw_row",
)


@contextlib.contextmanager
def _registered(con: duckdb.DuckDBPyConnection, name: str, data: pa.Table) -> Iterator[str]:
    con.register(name, data)
    try:
        yield name
    finally:
        # After a failed statement the transaction is aborted and unregister raises too;
        # the original error is the one worth seeing.
        with contextlib.suppress(duckdb.Error):
            con.unregister(name)


def find_batch(con: duckdb.DuckDBPyConnection, sha256: str, kind: str) -> BatchRecord | None:
    """The earliest batch that loaded a file with this hash and kind, if any."""
    rows = con.execute(
        f"SELECT {_BATCH_COLUMNS} FROM ingest_batches WHERE sha256 = ? AND kind = ? "
        "ORDER BY batch_id LIMIT 1",
        [sha256, kind],
    ).fetchall()
    return BatchRecord(*rows[0]) if rows else None


def next_batch_id(con: duckdb.DuckDBPyConnection) -> int:
    """``nextval('batch_seq')``, fetched to the end.

    (DuckDB 2 refuses ``register`` while a result is only partly fetched, so a
    ``fetchone()`` here would break the Arrow inserts that follow.)
    """
    rows = con.execute("SELECT nextval('batch_seq')").fetchall()
    return int(rows[0][0])


def list_batches(con: duckdb.DuckDBPyConnection) -> list[BatchRecord]:
    rows = con.execute(f"SELECT {_BATCH_COLUMNS} FROM ingest_batches ORDER BY batch_id").fetchall()
    return [BatchRecord(*r) for r in rows]


def insert_batch(con: duckdb.DuckDBPyConnection, record: BatchRecord) -> None:
    con.execute(
        f"INSERT INTO ingest_batches ({_BATCH_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            record.batch_id,
            record.kind,
            record.source,
            record.sha256,
            record.n_rows,
            record.n_loaded,
            record.n_rejected,
            record.started_at,
            record.finished_at,
            record.note,
        ],
    )


def insert_rejects(con: duckdb.DuckDBPyConnection, rejects: pa.Table) -> int:
    """Append rejected rows (columns of ``REJECT_COLUMNS``)."""
    if rejects.num_rows == 0:
        return 0
    cols = ", ".join(REJECT_COLUMNS)
    with _registered(con, "_incoming_rejects", rejects) as view:
        con.execute(f"INSERT INTO ingest_rejects ({cols}) SELECT {cols} FROM {view}")
    return rejects.num_rows


def fetch_rejects(con: duckdb.DuckDBPyConnection, batch_id: int) -> list[tuple]:
    """``(row_number, column_name, rule, value, message, raw_row)`` of one batch, in row order."""
    return con.execute(
        "SELECT row_number, column_name, rule, value, message, raw_row FROM ingest_rejects "
        "WHERE batch_id = ? ORDER BY row_number, column_name, rule",
        [batch_id],
    ).fetchall()


def existing_loans(con: duckdb.DuckDBPyConnection, loan_ids: pa.Array) -> pa.Table:
    """Rows of ``loans`` whose ``loan_id`` is among ``loan_ids`` (all loan columns)."""
    keys = pa.table({"loan_id": loan_ids})
    cols = ", ".join(f"l.{c}" for c in LOAN_COLUMNS)
    with _registered(con, "_incoming_loan_ids", keys) as view:
        return con.sql(
            f"SELECT {cols} FROM loans l WHERE l.loan_id IN (SELECT loan_id FROM {view})"
        ).to_arrow_table()


def known_loans(con: duckdb.DuckDBPyConnection, loan_ids: pa.Array) -> pa.Table:
    """``loan_id, origination_date, principal`` of the book's loans among ``loan_ids``."""
    keys = pa.table({"loan_id": loan_ids})
    with _registered(con, "_incoming_loan_ids", keys) as view:
        return con.sql(
            "SELECT l.loan_id, l.origination_date, l.principal::DOUBLE AS principal FROM loans l "
            f"WHERE l.loan_id IN (SELECT loan_id FROM {view})"
        ).to_arrow_table()


def existing_performance(con: duckdb.DuckDBPyConnection, keys: pa.Table) -> pa.Table:
    """Rows of ``loan_performance`` whose ``(loan_id, as_of)`` is among ``keys``."""
    cols = ", ".join(f"p.{c}" for c in PERFORMANCE_COLUMNS)
    with _registered(con, "_incoming_perf_keys", keys.select(["loan_id", "as_of"])) as view:
        return con.sql(
            f"SELECT {cols} FROM loan_performance p "
            f"SEMI JOIN {view} k ON p.loan_id = k.loan_id AND p.as_of = k.as_of"
        ).to_arrow_table()


def book_fingerprint(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int]]:
    """``table -> (row count, order-independent content hash)`` for the ingestion tables.

    Used to show that a refused or killed load left the database exactly as it was.
    """
    out: dict[str, tuple[int, int]] = {}
    for table in ("loans", "loan_performance", "ingest_batches", "ingest_rejects"):
        (count, digest), = con.execute(
            f"SELECT count(*), coalesce(sum(hash(t)), 0)::HUGEINT::VARCHAR FROM {table} t"
        ).fetchall()
        out[table] = (int(count), int(digest))
    return out


def read_csv_plain(con: duckdb.DuckDBPyConnection, path: Path, table: str = "plain_read") -> int:
    """The benchmark's reference: DuckDB ``read_csv`` (type sniffing) of a file into a table."""
    if not table.isidentifier():
        raise ValueError(f"bad table name {table!r}")
    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM read_csv(?)", [str(path)])
    ((count,),) = con.execute(f"SELECT count(*) FROM {table}").fetchall()
    return int(count)
