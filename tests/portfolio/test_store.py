"""The DuckDB store: schema and version, CHECK constraints, locking between processes."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from portfolio.errors import RiskpoolError, StoreLocked
from portfolio.store import open_store
from portfolio.store.book import count_rows, insert_loans
from portfolio.store.core import SCHEMA_VERSION

TABLES = {
    "schema_info", "loans", "loan_performance", "ingest_batches", "ingest_rejects", "runs",
    "pools", "pool_loans", "partners", "allocations", "allocation_shares",
}
GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "tapes"

# A second process that opens the file (read-write or read-only), says so, and waits.
HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
print("ready", flush=True)
sys.stdin.read()
"""


@contextmanager
def held(path: Path, mode: str) -> Iterator[None]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), mode],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.stderr else ""
        yield
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # the holder exits at end of input
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _one_loan(**over: object) -> pd.DataFrame:
    row: dict[str, object] = {
        "loan_id": "S-1", "borrower_id": "u1", "origination_date": pd.Timestamp("2024-01-31"),
        "principal": 1000.0, "apr": 0.12, "term_months": 12, "repayment_type": "level_annuity",
        "credit_score": 700,
    }
    row.update(over)
    return pd.DataFrame([row])


def test_schema_is_created_with_its_version(db_path: Path) -> None:
    with open_store(db_path) as store:
        names = {r[0] for r in store.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert TABLES <= names
        assert store.schema_version() == SCHEMA_VERSION
        with store.transaction() as con:
            insert_loans(con, _one_loan())
    # Reopening migrates idempotently and keeps the data.
    with open_store(db_path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert count_rows(store.con, "loans") == 1


@pytest.mark.parametrize(
    ("over", "column"),
    [
        ({"principal": 0.0}, "principal"),
        ({"principal": 200_000.01}, "principal"),
        ({"apr": 1.5}, "apr"),
        ({"term_months": 7}, "term_months"),
        ({"credit_score": 300}, "credit_score"),
        ({"repayment_type": "等额本息"}, "repayment_type"),
    ],
)
def test_check_constraints_are_the_last_line_of_defence(
    db_path: Path, over: dict[str, object], column: str
) -> None:
    with open_store(db_path) as store:
        with pytest.raises(duckdb.ConstraintException, match=column):
            with store.transaction() as con:
                insert_loans(con, _one_loan(loan_id="S-0"))
                insert_loans(con, _one_loan(**over))
        assert count_rows(store.con, "loans") == 0  # the good row went too: one transaction


def test_primary_key_refuses_a_second_row_under_the_same_id(db_path: Path) -> None:
    with open_store(db_path) as store:
        with store.transaction() as con:
            insert_loans(con, _one_loan())
        with pytest.raises(duckdb.ConstraintException, match="S-1"):
            with store.transaction() as con:
                insert_loans(con, _one_loan(principal=2000.0))
        assert count_rows(store.con, "loans") == 1


def test_a_writer_holding_the_file_locks_out_others_with_a_clear_message(
    cli, db_path: Path  # type: ignore[no-untyped-def]
) -> None:
    open_store(db_path).close()
    with held(db_path, "rw"):
        for read_only in (False, True):
            with pytest.raises(StoreLocked, match=re.escape(str(db_path))):
                open_store(db_path, read_only=read_only)
        r = cli("ingest", GOLDEN / "loans_small.csv", "--db", db_path)
        assert r.code == 2
        assert r.err.startswith(f"error: database {db_path} is in use by another process")
        assert "Traceback" not in r.err
    # Once the writer is gone the file opens again.
    with open_store(db_path) as store:
        assert count_rows(store.con, "loans") == 0


def test_readers_share_the_file_while_no_writer_holds_it(db_path: Path) -> None:
    with open_store(db_path) as store, store.transaction() as con:
        insert_loans(con, _one_loan())
    with held(db_path, "ro"):
        with open_store(db_path, read_only=True) as reader:
            assert count_rows(reader.con, "loans") == 1
        with pytest.raises(StoreLocked, match="in use by another process"):
            open_store(db_path)


def test_read_only_open_of_a_missing_database_says_how_to_build_one(tmp_path: Path) -> None:
    with pytest.raises(RiskpoolError, match="does not exist; build one with `riskpool generate`"):
        open_store(tmp_path / "nothing.duckdb", read_only=True)


# ---------------------------------------------------------------- two reads at once


def test_concurrently_runs_the_side_on_its_own_connection_and_returns_both(
        db_path: Path) -> None:
    with open_store(db_path) as store:
        store.con.execute("CREATE TABLE t AS SELECT range AS x FROM range(100000)")
        seen: list[object] = []

        def side(con: duckdb.DuckDBPyConnection) -> int:
            seen.append(con)
            return int(con.execute("SELECT sum(x) FROM t").fetchall()[0][0])

        got = store.concurrently(side, lambda: store.con.execute(
            "SELECT count(*) FROM t").fetchall()[0][0])
        # the sum 0 + 1 + … + 99,999 = 99,999 · 100,000 / 2 (written out)
        assert got == (4_999_950_000, 100_000)
        assert seen[0] is not store.con  # a cursor of its own
        with pytest.raises(ZeroDivisionError):  # the side's error, once the main is done
            store.concurrently(lambda con: 1 // 0, lambda: 2)
        with pytest.raises(KeyError):
            store.concurrently(side, lambda: {}["main"])


def test_concurrently_inside_a_transaction_reads_its_uncommitted_rows(db_path: Path) -> None:
    with open_store(db_path) as store:
        store.con.execute("CREATE TABLE t (x INTEGER)")
        with store.transaction() as con:
            con.execute("INSERT INTO t VALUES (1), (2), (3)")
            assert store.in_transaction
            got = store.concurrently(
                lambda c: (c is store.con, c.execute("SELECT count(*) FROM t").fetchall()[0][0]),
                lambda: 0)
            assert got == ((True, 3), 0)  # this connection: a cursor would see 0 rows
        assert not store.in_transaction
        with pytest.raises(RuntimeError), store.transaction():
            raise RuntimeError("rolled back")
        assert not store.in_transaction
