"""Connection, lock handling and the schema of the riskpool database.

One database file (``--db PATH``, else ``portfolio.settings.db_path()``).
Writers use short transactions (``with store.transaction():``); readers may open the file
read-only while no writer holds it. A writer that finds the file locked gets
``StoreLocked`` naming the file, never a DuckDB stack trace.

The schema is a list of DDL statements applied in order; ``SCHEMA_VERSION`` is recorded in
``schema_info``. Area modules may append their own tables to ``DDL`` (idempotent
``CREATE TABLE IF NOT EXISTS``). A writer that opens a database of an older version migrates
it (``portfolio.store.migrations``: all or nothing, or refused with how to rebuild it); a
reader refuses it with the command that migrates it; a newer one is refused by both.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import duckdb

from portfolio import settings
from portfolio.errors import RiskpoolError, SchemaMismatch, StoreLocked, ValidationError, must_be
from portfolio.store.book import loans_ddl
from portfolio.store.migrations import SCENARIO_DDL, SCHEMA_VERSION, check_steps, migrate

__all__ = ["DDL", "SCHEMA_VERSION", "Store", "open_store"]

T = TypeVar("T")
U = TypeVar("U")

DDL: list[str] = [
    """CREATE TABLE IF NOT EXISTS schema_info (
        key VARCHAR PRIMARY KEY,
        value VARCHAR NOT NULL
    )""",
    loans_ddl(),
    """CREATE TABLE IF NOT EXISTS loan_performance (
        loan_id VARCHAR NOT NULL,
        as_of DATE NOT NULL,
        months_on_book SMALLINT NOT NULL CHECK (months_on_book >= 0),
        balance DECIMAL(18,2) NOT NULL CHECK (balance >= 0),
        paid_principal DECIMAL(18,2) NOT NULL DEFAULT 0 CHECK (paid_principal >= 0),
        paid_interest DECIMAL(18,2) NOT NULL DEFAULT 0 CHECK (paid_interest >= 0),
        prepaid_principal DECIMAL(18,2) NOT NULL DEFAULT 0 CHECK (prepaid_principal >= 0),
        dpd SMALLINT NOT NULL CHECK (dpd >= 0),
        status VARCHAR NOT NULL CHECK (status IN
            ('current', 'delinquent', 'default', 'prepaid', 'matured')),
        charge_off DECIMAL(18,2) NOT NULL DEFAULT 0 CHECK (charge_off >= 0),
        recovery DECIMAL(18,2) NOT NULL DEFAULT 0 CHECK (recovery >= 0),
        batch_id BIGINT,
        PRIMARY KEY (loan_id, as_of)
    )""",
    "CREATE SEQUENCE IF NOT EXISTS batch_seq START 1",
    """CREATE TABLE IF NOT EXISTS ingest_batches (
        batch_id BIGINT PRIMARY KEY,
        kind VARCHAR NOT NULL,
        source VARCHAR NOT NULL,
        sha256 VARCHAR NOT NULL,
        n_rows BIGINT NOT NULL,
        n_loaded BIGINT NOT NULL,
        n_rejected BIGINT NOT NULL,
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP NOT NULL,
        note VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS ingest_rejects (
        batch_id BIGINT NOT NULL,
        row_number BIGINT NOT NULL,
        column_name VARCHAR,
        rule VARCHAR NOT NULL,
        value VARCHAR,
        message VARCHAR NOT NULL,
        raw_row VARCHAR
    )""",
    "CREATE SEQUENCE IF NOT EXISTS run_seq START 1",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id BIGINT PRIMARY KEY,
        kind VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        inputs JSON,
        seed_entropy VARCHAR,
        code_version VARCHAR,
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP,
        timings JSON,
        summary JSON,
        artifact_path VARCHAR,
        label VARCHAR,
        tags JSON
    )""",
    "CREATE SEQUENCE IF NOT EXISTS pool_seq START 1",
    """CREATE TABLE IF NOT EXISTS pools (
        pool_id BIGINT PRIMARY KEY,
        name VARCHAR NOT NULL,
        cutoff_date DATE NOT NULL,
        criteria JSON NOT NULL,
        created_at TIMESTAMP NOT NULL,
        n_loans BIGINT NOT NULL,
        balance DECIMAL(18,2) NOT NULL,
        exclusions JSON
    )""",
    """CREATE TABLE IF NOT EXISTS pool_loans (
        pool_id BIGINT NOT NULL,
        loan_id VARCHAR NOT NULL,
        cutoff_balance DECIMAL(18,2) NOT NULL CHECK (cutoff_balance >= 0),
        remaining_term SMALLINT NOT NULL CHECK (remaining_term >= 0),
        months_on_book SMALLINT NOT NULL CHECK (months_on_book >= 0),
        apr DOUBLE,
        credit_score SMALLINT,
        term_months SMALLINT,
        repayment_type VARCHAR,
        region VARCHAR,
        origination_date DATE,
        principal DECIMAL(18,2),
        disclosed_apr DOUBLE,
        PRIMARY KEY (pool_id, loan_id)
    )""",
    """CREATE TABLE IF NOT EXISTS partners (
        partner_id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        spec JSON NOT NULL
    )""",
    "CREATE SEQUENCE IF NOT EXISTS allocation_seq START 1",
    """CREATE TABLE IF NOT EXISTS allocations (
        allocation_id BIGINT PRIMARY KEY,
        mode VARCHAR NOT NULL,
        objective VARCHAR NOT NULL,
        pool_id BIGINT,
        inputs JSON,
        checks JSON,
        created_at TIMESTAMP NOT NULL,
        summary JSON
    )""",
    """CREATE TABLE IF NOT EXISTS allocation_shares (
        allocation_id BIGINT NOT NULL,
        loan_id VARCHAR NOT NULL,
        party_id VARCHAR NOT NULL,
        share DOUBLE NOT NULL CHECK (share >= 0 AND share <= 1),
        PRIMARY KEY (allocation_id, loan_id, party_id)
    )""",
    """CREATE TABLE IF NOT EXISTS allocation_loans (
        allocation_id BIGINT NOT NULL,
        loan_id VARCHAR NOT NULL,
        balance DOUBLE NOT NULL CHECK (balance >= 0),
        annual_pd DOUBLE NOT NULL,
        lgd DOUBLE NOT NULL,
        lifetime_pd DOUBLE NOT NULL,
        PRIMARY KEY (allocation_id, loan_id)
    )""",
    """CREATE TABLE IF NOT EXISTS run_deals (
        run_id BIGINT PRIMARY KEY,
        deal_name VARCHAR NOT NULL,
        deal_source VARCHAR,
        deal_toml VARCHAR,
        settings JSON,
        triggers JSON,
        recorded_at TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS run_tranches (
        run_id BIGINT NOT NULL,
        tranche VARCHAR NOT NULL,
        position SMALLINT NOT NULL,
        holder VARCHAR NOT NULL,
        size DOUBLE NOT NULL CHECK (size >= 0),
        size_share DOUBLE NOT NULL,
        coupon DOUBLE NOT NULL,
        el DOUBLE, el_se DOUBLE, pd DOUBLE, lgl DOUBLE,
        loss_q95 DOUBLE, loss_q99 DOUBLE, loss_q999 DOUBLE,
        wal_mean DOUBLE, wal_p5 DOUBLE, wal_p95 DOUBLE,
        irr DOUBLE, price DOUBLE, yield_rate DOUBLE, mod_duration DOUBLE, ce DOUBLE,
        rating VARCHAR,
        PRIMARY KEY (run_id, tranche)
    )""",
    """CREATE TABLE IF NOT EXISTS run_monthly (
        run_id BIGINT NOT NULL,
        party_id VARCHAR NOT NULL,
        month SMALLINT NOT NULL,
        period_end DATE NOT NULL,
        balance_bop DOUBLE NOT NULL, balance_bop_se DOUBLE NOT NULL,
        interest DOUBLE NOT NULL, interest_se DOUBLE NOT NULL,
        scheduled_principal DOUBLE NOT NULL, scheduled_principal_se DOUBLE NOT NULL,
        prepayment DOUBLE NOT NULL, prepayment_se DOUBLE NOT NULL,
        "default" DOUBLE NOT NULL, default_se DOUBLE NOT NULL,
        recovery DOUBLE NOT NULL, recovery_se DOUBLE NOT NULL,
        balance_eop DOUBLE NOT NULL, balance_eop_se DOUBLE NOT NULL,
        PRIMARY KEY (run_id, party_id, month)
    )""",
    """CREATE TABLE IF NOT EXISTS run_loss_stats (
        run_id BIGINT NOT NULL,
        party_id VARCHAR NOT NULL,
        measure VARCHAR NOT NULL,
        level DOUBLE NOT NULL,
        loss DOUBLE NOT NULL,
        se DOUBLE NOT NULL,
        loss_pct DOUBLE,
        PRIMARY KEY (run_id, party_id, measure, level)
    )""",
    *SCENARIO_DDL,
]


@dataclass
class Store:
    """An open riskpool database. Not shared across threads: open one per thread/session."""

    path: Path
    con: duckdb.DuckDBPyConnection
    read_only: bool
    in_transaction: bool = False  # inside :meth:`transaction`

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """BEGIN … COMMIT, or ROLLBACK on any exception: all or nothing."""
        self.con.execute("BEGIN TRANSACTION")
        self.in_transaction = True
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            self.con.execute("COMMIT")
        finally:
            self.in_transaction = False

    def concurrently(self, side: Callable[[duckdb.DuckDBPyConnection], T],
                     main: Callable[[], U]) -> tuple[T, U]:
        """``side(con)`` on a second connection to the database (DuckDB's ``cursor()``: one
        connection per thread) in a worker thread while ``main()`` runs in this one; returns
        both results (an exception of either is raised once both are done). DuckDB runs a
        query without holding Python's GIL, so two reads overlap. Inside :meth:`transaction`
        both run here, one after the other, on this connection: a second connection would not
        see the transaction's writes."""
        if self.in_transaction:
            return side(self.con), main()

        def run_side() -> T:
            cur = self.con.cursor()
            try:
                return side(cur)
            finally:
                cur.close()

        with ThreadPoolExecutor(1) as pool:  # its exit waits for the side
            pending = pool.submit(run_side)
            got = main()
        return pending.result(), got

    def next_id(self, sequence: str) -> int:
        if sequence not in {"batch_seq", "run_seq", "pool_seq", "allocation_seq",
                            "scenario_set_seq"}:
            raise ValueError(f"unknown sequence {sequence!r}")
        # fetchall, not fetchone: DuckDB leaves a fetchone() result open, which blocks a
        # following con.register() in the same transaction.
        rows = self.con.execute(f"SELECT nextval('{sequence}')").fetchall()
        return int(rows[0][0])

    def set_threads(self, n: int) -> None:
        """DuckDB worker threads of this connection (1: parallel float sums are reproducible
        to the last bit)."""
        self.con.execute(f"SET threads TO {int(n)}")

    def schema_version(self) -> int:
        """The version recorded in ``schema_info`` (0: none recorded)."""
        return _stored_version(self.con, str(self.path))


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("SELECT table_name FROM duckdb_tables() "
                       "WHERE database_name = current_database()").fetchall()
    return {r[0] for r in rows}


def _stored_version(con: duckdb.DuckDBPyConnection, where: str = "") -> int:
    if "schema_info" not in _tables(con):
        return 0
    rows = con.execute(
        "SELECT value FROM schema_info WHERE key = 'schema_version'"
    ).fetchall()
    if not rows:
        return 0
    value = rows[0][0]
    if not (isinstance(value, str) and value.isascii() and value.isdigit()):
        raise SchemaMismatch(must_be(
            "schema_info.schema_version", "a whole number, the schema version riskpool wrote "
            f"(this version reads {SCHEMA_VERSION}); the file was not written by riskpool or "
            "was changed by hand", value, where))
    return int(value)


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text or "already open" in text


def open_store(path: str | Path | None = None, *, read_only: bool = False,
               wait: float = 0.0, create: bool = True) -> Store:
    """Open (and for writers, create and migrate) the database at ``path``.

    ``create=False``: a writer that needs a book already there (``pool create``,
    ``allocate``, ``runs label``) refuses a path that does not exist, or a DuckDB file without
    riskpool's tables, as a reader does, instead of creating the database first.

    A DuckDB file has one writer process or any number of reader processes. When another
    process holds it (or, in this process, a connection opened in the other mode), the open
    is retried for up to ``wait`` seconds (a writer's short transaction ends), then
    ``StoreLocked``."""
    deadline = time.monotonic() + float(wait)
    pause = 0.02
    while True:
        try:
            return _open_once(path, read_only, create)
        except StoreLocked:
            if time.monotonic() >= deadline:
                raise
        time.sleep(min(pause, max(deadline - time.monotonic(), 0.0)))
        pause = min(pause * 2, 0.25)


def _open_once(path: str | Path | None, read_only: bool, create: bool = True) -> Store:
    db_path = Path(path) if path is not None else settings.db_path()
    _require_duckdb_file(db_path)
    if (read_only or not create) and not db_path.exists():
        raise RiskpoolError(
            f"database {db_path} does not exist; build one with `riskpool generate` or "
            "`riskpool ingest` (or `make demo`)"
        )
    if not read_only:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(db_path), read_only=read_only)
    except duckdb.IOException as exc:
        if _is_lock_error(exc):
            raise StoreLocked(
                f"database {db_path} is in use by another process (a load or a run is "
                "writing to it); data is being updated — try again when it has finished"
            ) from None
        raise RiskpoolError(f"cannot open database {db_path}: {exc}") from None
    except duckdb.ConnectionException as exc:
        if "configuration" in str(exc).lower():  # this process holds it in the other mode
            raise StoreLocked(
                f"database {db_path} is in use by another connection of this process (a "
                "write is in progress); data is being updated — try again when it has "
                "finished") from None
        raise
    con.execute("SET enable_progress_bar = false")  # no progress bars in CLI output / logs
    store = Store(path=db_path, con=con, read_only=read_only)
    try:
        if read_only:
            _check_readable(store)
        else:
            if not create and not _tables(con):
                raise _no_tables(db_path)
            _migrate(store)
    except BaseException:
        con.close()
        raise
    return store


DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file (after an 8-byte checksum)


def _require_duckdb_file(db_path: Path) -> None:
    """The database path must be a DuckDB file or a new path: an existing directory, or a file
    that is not a DuckDB database (a CSV or Parquet tape given as ``--db`` by mistake), is
    refused before DuckDB sees it. An empty file counts as new."""
    if not db_path.exists():
        return
    if not db_path.is_file():
        raise ValidationError(must_be("--db", "a DuckDB database file or a new path",
                                      f"{db_path} (a directory)"))
    try:
        with db_path.open("rb") as f:
            head = f.read(12)
    except OSError as exc:
        raise ValidationError(must_be("--db", "a readable DuckDB database file",
                                      f"{db_path} ({exc.strerror})")) from None
    if head and head[8:12] != DUCKDB_MAGIC:
        raise ValidationError(must_be(
            "--db", "a DuckDB database file or a new path",
            f"{db_path}, which is not a DuckDB database (starts {head[:8]!r})"))


def _no_tables(db_path: Path) -> RiskpoolError:
    return RiskpoolError(
        f"database {db_path} holds no riskpool tables (an empty DuckDB file, or one another "
        "program made); build one with `riskpool generate` or `riskpool ingest` (or `make "
        "demo`), or give the riskpool database as --db")


def _check_readable(store: Store) -> None:
    version = _stored_version(store.con, str(store.path))
    if version == SCHEMA_VERSION:
        return
    if version == 0 and not _tables(store.con):
        raise _no_tables(store.path)  # else every query would fail on a missing table
    check_steps(store.path, version)  # newer, or older without a migration: refused
    raise SchemaMismatch(
        f"database {store.path} was written by an older riskpool (schema version {version}; "
        f"this version reads {SCHEMA_VERSION}); migrate it once with `riskpool migrate --db "
        f"{store.path}` (keeps every run), or rebuild it: `riskpool demo --rebuild --db "
        f"{store.path}` for a demo database")


def _migrate(store: Store) -> None:
    """Create a new database, or bring an older one to ``SCHEMA_VERSION`` (one transaction)."""
    with store.transaction() as con:
        existing = _tables(con)
        version = _stored_version(con, str(store.path)) if existing else SCHEMA_VERSION
        if version != SCHEMA_VERSION:
            migrate(con, store.path, version)
        for statement in DDL:
            con.execute(statement)
        con.execute(
            "INSERT OR REPLACE INTO schema_info VALUES ('schema_version', ?)",
            [str(SCHEMA_VERSION)],
        )
