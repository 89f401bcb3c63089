"""SQL of partner allocations: ``partners``, ``allocations``, ``allocation_shares``,
``allocation_loans``, and the loan reads the allocation needs.

An allocation is written once, inside the caller's transaction, and never updated.
``allocation_shares`` holds one row per loan and party with a positive share (a loan's shares
sum to exactly 1); ``allocation_loans`` holds each loan's cut-off balance and the PD/LGD the
optimiser used, so that exports and the dispersion read the allocation alone.
All values reach SQL as ``?`` parameters; bulk rows go through Arrow.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from portfolio.store.pools import (
    POOL_ARRAY_SELECT,
    REPAYMENT_NAMES,
    fetch_arrow,
    pool_loan_arrays_from,
)
from portfolio.store.summaries import book_digest

_LOAN_FRAME_SQL = """
    SELECT l.loan_id, l.borrower_id, l.origination_date,
           CAST(l.principal AS DOUBLE) AS principal,
           CAST(l.principal AS DOUBLE) AS balance,
           l.apr, l.term_months, l.term_months AS remaining_term,
           CAST(0 AS SMALLINT) AS months_on_book, l.repayment_type, l.credit_score,
           coalesce(l.region, '') AS region,
           coalesce(l.disclosed_apr, 'NaN'::DOUBLE) AS disclosed_apr
    FROM loans l
"""


def originated_loans(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Loans originated in [start, end] as new loans (a ``LoanArrays.from_frame`` frame plus
    ``borrower_id``): balance = principal, remaining_term = term_months, months_on_book = 0;
    ``next_due_date`` is left to the caller. Ordered by loan_id."""
    return con.execute(
        _LOAN_FRAME_SQL + " WHERE l.origination_date BETWEEN ? AND ? ORDER BY l.loan_id",
        [start, end],
    ).df()


def latest_origination(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    """The latest origination date in the book (None: no loan)."""
    rows = con.execute("SELECT max(origination_date) FROM loans").fetchall()
    value = rows[0][0] if rows else None
    return value if isinstance(value, dt.date) else None


def allocated_loans(con: duckdb.DuckDBPyConnection, loan_ids: list[str]) -> pd.DataFrame:
    """The loans of ``loan_ids`` that an earlier allocation holds: loan_id and the latest
    allocation_id holding it, ordered by loan_id."""
    if not loan_ids:
        return pd.DataFrame({"loan_id": pd.Series(dtype=object),
                             "allocation_id": pd.Series(dtype="int64")})
    con.register("_wanted_loans", pd.DataFrame({"loan_id": list(loan_ids)}))
    try:
        return con.execute(
            "SELECT a.loan_id, max(a.allocation_id) AS allocation_id FROM allocation_loans a "
            "JOIN _wanted_loans w ON w.loan_id = a.loan_id GROUP BY a.loan_id "
            "ORDER BY a.loan_id").df()
    finally:
        con.unregister("_wanted_loans")


def pool_borrower_ids(con: duckdb.DuckDBPyConnection, pool_id: int) -> np.ndarray:
    """Borrower id of each loan of a pool, ordered by loan_id (the order of
    ``portfolio.store.pools.pool_loan_arrays``); a loan missing from the book keeps its loan_id."""
    table = fetch_arrow(
        con,
        """
        SELECT coalesce(l.borrower_id, p.loan_id) AS borrower_id
        FROM pool_loans p LEFT JOIN loans l ON l.loan_id = p.loan_id
        WHERE p.pool_id = ?
        ORDER BY p.loan_id
        """,
        [pool_id],
    )
    return np.asarray(table.column("borrower_id").to_numpy(), dtype=object)


def partner_ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The ids of the partners recorded in the database (by allocations), sorted."""
    return [r[0] for r in con.execute("SELECT partner_id FROM partners ORDER BY 1").fetchall()]


_HOUSEHOLD_TOTALS_SQL = """
closed AS (
    -- loans whose last performance row on or before the as-of has a zero balance: one
    -- group-by over the performance table (no join before it)
    SELECT loan_id FROM loan_performance WHERE as_of <= $as_of
    GROUP BY loan_id HAVING arg_max(balance, as_of) <= 0
),
totals AS (
    SELECT l.borrower_id,
           -- summed in DECIMAL (exact, whatever order DuckDB's threads add in), then cast once:
           -- the same limits to the last bit on every run
           CAST(sum(coalesce(l.credit_limit, l.principal)) AS DOUBLE) AS household_limit
    FROM loans l
    WHERE l.origination_date <= $as_of
      AND l.borrower_id IN (SELECT borrower_id FROM target)
      AND NOT EXISTS (SELECT 1 FROM closed c WHERE c.loan_id = l.loan_id)
    GROUP BY l.borrower_id
)
"""

_HOUSEHOLD_LIMIT_SQL = """
WITH target AS ({target}),
""" + _HOUSEHOLD_TOTALS_SQL + """
SELECT t.loan_id, coalesce(totals.household_limit, t.own_limit, 0.0) AS household_limit
FROM target t LEFT JOIN totals ON totals.borrower_id = t.borrower_id
ORDER BY t.loan_id
"""


def household_credit_limits(con: duckdb.DuckDBPyConnection, as_of: dt.date, *,
                            pool_id: int | None = None,
                            window: tuple[dt.date, dt.date] | None = None) -> np.ndarray:
    """Per loan of a pool (or of the loans originated in ``window``), ordered by loan_id: the
    total credit limit of its household (its ``borrower_id``) across the book at ``as_of`` —
    the sum of ``credit_limit`` (the principal where none is recorded) over the borrower's
    loans originated by then and not closed (last balance on or before ``as_of`` > 0, or no
    performance row yet). R5 in ``partners.rules``."""
    if (pool_id is None) == (window is None):
        raise ValueError("household_credit_limits needs exactly one of pool_id and window")
    if pool_id is not None:
        target = ("SELECT p.loan_id, l.borrower_id, CAST(coalesce(l.credit_limit, p.principal) "
                  "AS DOUBLE) AS own_limit FROM pool_loans p LEFT JOIN loans l "
                  "ON l.loan_id = p.loan_id WHERE p.pool_id = $pool_id")
        params: dict[str, Any] = {"as_of": as_of, "pool_id": int(pool_id)}
    else:
        target = ("SELECT l.loan_id, l.borrower_id, CAST(coalesce(l.credit_limit, l.principal) "
                  "AS DOUBLE) AS own_limit FROM loans l "
                  "WHERE l.origination_date BETWEEN $start AND $end")
        assert window is not None
        params = {"as_of": as_of, "start": window[0], "end": window[1]}
    table = fetch_arrow(con, _HOUSEHOLD_LIMIT_SQL.format(target=target), params)
    return np.asarray(table.column("household_limit").to_numpy(), dtype=np.float64)


_POOL_FOR_ALLOCATION_SQL = """
WITH target AS (
    SELECT p.*, l.borrower_id,
           CAST(coalesce(l.credit_limit, p.principal) AS DOUBLE) AS own_limit
    FROM pool_loans p LEFT JOIN loans l ON l.loan_id = p.loan_id
    WHERE p.pool_id = $pool_id
),
""" + _HOUSEHOLD_TOTALS_SQL + """
SELECT {columns},
       coalesce(t.borrower_id, t.loan_id) AS borrower_id,
       coalesce(totals.household_limit, t.own_limit, 0.0) AS household_limit
FROM target t LEFT JOIN totals ON totals.borrower_id = t.borrower_id
ORDER BY t.loan_id
"""


def pool_loans_for_allocation(con: duckdb.DuckDBPyConnection, pool_id: int,
                              as_of: dt.date) -> dict[str, np.ndarray]:
    """In one query, ordered by loan_id: the pool's loan arrays
    (``portfolio.store.pools.pool_loan_arrays``), each loan's ``borrower_id``
    (:func:`pool_borrower_ids`) and ``household_limit`` at ``as_of``
    (:func:`household_credit_limits`): the snapshot is joined to the book once."""
    table = fetch_arrow(
        con, _POOL_FOR_ALLOCATION_SQL.format(columns=POOL_ARRAY_SELECT.format(p="t.")),
        {"repayment_names": list(REPAYMENT_NAMES), "pool_id": int(pool_id), "as_of": as_of})
    out = pool_loan_arrays_from(table)
    out["borrower_id"] = np.asarray(out["borrower_id"], dtype=object)
    out["household_limit"] = np.asarray(out["household_limit"], dtype=np.float64)
    return out


_POOL_HOUSEHOLDS_SQL = """
WITH target AS (
    SELECT p.loan_id, l.borrower_id,
           CAST(coalesce(l.credit_limit, p.principal) AS DOUBLE) AS own_limit
    FROM pool_loans p LEFT JOIN loans l ON l.loan_id = p.loan_id
    WHERE p.pool_id = $pool_id
),
""" + _HOUSEHOLD_TOTALS_SQL + """
SELECT coalesce(t.borrower_id, t.loan_id) AS borrower_id,
       coalesce(totals.household_limit, t.own_limit, 0.0) AS household_limit
FROM target t LEFT JOIN totals ON totals.borrower_id = t.borrower_id
ORDER BY t.loan_id
"""


def pool_households(con: duckdb.DuckDBPyConnection, pool_id: int,
                    as_of: dt.date) -> dict[str, np.ndarray]:
    """The ``borrower_id`` (object) and ``household_limit`` columns of
    :func:`pool_loans_for_allocation` alone (the same SQL for them), ordered by loan_id."""
    table = fetch_arrow(con, _POOL_HOUSEHOLDS_SQL, {"pool_id": int(pool_id), "as_of": as_of})
    return {"borrower_id": np.asarray(table.column("borrower_id").to_numpy(), dtype=object),
            "household_limit": np.asarray(table.column("household_limit").to_numpy(),
                                          dtype=np.float64)}


# ------------------------------------------------------------ a pool's stored households
# Derived data (``pool_households``): each pool loan's borrower, as a code into the pool's
# distinct borrower ids, and its household limit at the pool's cut-off, computed once when
# the pool is created; read back only while :func:`pool_household_key` still matches. A
# database without the table has none stored (its readers compute live), so the table is
# created by the first write, not by a schema step.

# the two Arrow IPC blobs (about 27 MB on B1's million loans) stored as they are: read back
# without DuckDB's general-purpose decompression of them (0.09 -> 0.03 CPU s on B1)
_POOL_HOUSEHOLDS_COLUMNS = """(
    pool_id BIGINT NOT NULL PRIMARY KEY,
    as_of DATE NOT NULL,
    household_key VARCHAR NOT NULL,
    loans BLOB NOT NULL USING COMPRESSION uncompressed,
    borrowers BLOB NOT NULL USING COMPRESSION uncompressed,
    computed_at TIMESTAMP NOT NULL
)"""
POOL_HOUSEHOLDS_DDL = "CREATE TABLE IF NOT EXISTS pool_households " + _POOL_HOUSEHOLDS_COLUMNS


_HOUSEHOLDS_FORMAT = "Arrow IPC: code int32, household_limit float64; borrower_id string"


# what the households read (``_POOL_HOUSEHOLDS_SQL``, ``_HOUSEHOLD_TOTALS_SQL``): of
# ``loan_performance`` each row's loan, month-end and balance (a loan is closed when its last
# balance on or before the cut-off is zero), of ``loans`` each loan's borrower, origination
# date, principal and credit limit (the household's total limit)
_HOUSEHOLD_PERFORMANCE_COLUMNS = "loan_id, as_of, balance"
_HOUSEHOLD_LOAN_COLUMNS = "loan_id, borrower_id, origination_date, principal, credit_limit"


def pool_household_key(con: duckdb.DuckDBPyConnection, code_version: str) -> str:
    """What a pool's stored households were computed on: the book's last ingest batch, an
    exact digest of the book's columns the households are computed from, the code version and
    the layout the values are stored in.

    The households (``_POOL_HOUSEHOLDS_SQL``) read, besides the pool's own snapshot (written
    once, never updated) and its cut-off: of ``loan_performance`` the columns loan_id, as_of
    and balance (which loans are closed at the cut-off: the balance of each loan's last row on
    or before it), of ``loans`` loan_id, borrower_id, origination_date, principal and
    credit_limit (each open loan's limit, added per borrower). No other column of either table
    enters the query, so a value changed in any other column (a region, days past due, a paid
    amount) cannot change them; the digest is of these columns alone (``book_key`` digests
    every column, for the Book page's tables, which read them all): each table's row count
    and an xor over its rows of a hash of the row's hashed columns
    (``portfolio.store.summaries.book_digest``: the row's combined hash hashed once more, so
    that a value swapped between two rows changes it). A new batch, a value of one of these columns changed in place or swapped between two
    rows, a row added or removed gives another key
    (tests/partners/test_pool_households.py, column by column); it costs about a quarter
    less than ``book_key`` on B1's 8.1 M performance rows (most of it is their loan ids)."""
    return (f"{book_digest(con, _HOUSEHOLD_PERFORMANCE_COLUMNS, _HOUSEHOLD_LOAN_COLUMNS)}; "
            f"code {code_version}; {_HOUSEHOLDS_FORMAT}")


def household_key_of_version(key: str, code_version: str) -> bool:
    """Whether ``key`` (a stored households' key) was computed by ``code_version`` in this
    layout: if not, it cannot equal :func:`pool_household_key` now, whatever the book."""
    return key.endswith(f"; code {code_version}; {_HOUSEHOLDS_FORMAT}")


def _has_pool_households(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = "
                      "'main' AND table_name = 'pool_households'").fetchone()
    return bool(row and row[0])


def _ipc_bytes(table: pa.Table) -> bytes:
    """An Arrow IPC stream of ``table``: read back without decoding (a third of Parquet's
    time on a million loans; the arrays exactly)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _ipc_table(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


def _store_blobs_uncompressed(con: duckdb.DuckDBPyConnection) -> None:
    """A ``pool_households`` table created before its blobs were stored uncompressed is
    rebuilt with them so (its rows copied; the caller holds the transaction)."""
    row = con.execute("SELECT sql FROM duckdb_tables() WHERE schema_name = 'main' AND "
                      "table_name = 'pool_households'").fetchone()
    if row is None or "USING COMPRESSION" in str(row[0]).upper():
        return
    con.execute("CREATE TABLE pool_households_rebuilt " + _POOL_HOUSEHOLDS_COLUMNS)
    con.execute("INSERT INTO pool_households_rebuilt SELECT pool_id, as_of, household_key, "
                "loans, borrowers, computed_at FROM pool_households")
    con.execute("DROP TABLE pool_households")
    con.execute("ALTER TABLE pool_households_rebuilt RENAME TO pool_households")


def write_pool_households(con: duckdb.DuckDBPyConnection, pool_id: int, as_of: dt.date,
                          key: str, code: np.ndarray, borrowers: np.ndarray,
                          household_limit: np.ndarray) -> None:
    """Replace the pool's stored households (the caller holds the transaction): per loan in
    loan_id order its borrower's ``code`` (a position in ``borrowers``, the distinct ids) and
    ``household_limit`` at ``as_of``, computed on the book ``key`` describes (Arrow IPC
    bytes: the arrays exactly)."""
    con.execute(POOL_HOUSEHOLDS_DDL)
    _store_blobs_uncompressed(con)
    con.execute("DELETE FROM pool_households WHERE pool_id = ?", [int(pool_id)])
    if len(borrowers) >= 2**31:
        raise ValueError("more distinct borrowers than int32 codes hold")
    loans = pa.table({"code": pa.array(np.asarray(code, dtype=np.int32)),
                      "household_limit": pa.array(np.asarray(household_limit, np.float64))})
    ids = pa.table({"borrower_id": pa.array(np.asarray(borrowers, dtype=object),
                                            type=pa.string())})
    con.execute("INSERT INTO pool_households (pool_id, as_of, household_key, loans, borrowers, "
                "computed_at) VALUES (?, ?, ?, ?, ?, ?)",
                [int(pool_id), as_of, key, _ipc_bytes(loans), _ipc_bytes(ids),
                 dt.datetime.now(dt.UTC).replace(tzinfo=None)])


def read_pool_households(con: duckdb.DuckDBPyConnection, pool_id: int, as_of: dt.date,
                         key: str | None) -> dict[str, Any] | None:
    """The pool's stored households (``code`` int64 and ``household_limit`` float64 per loan,
    ``borrowers`` the distinct ids as an Arrow string array: Python strings only if the
    caller needs them, and ``key``, the key they were stored under) if they were computed at
    ``as_of`` on the book ``key`` describes (any key: ``None``, the caller compares it); else
    ``None`` (none stored, another book state or code version, or a database without the
    table)."""
    if not _has_pool_households(con):
        return None
    rows = con.execute("SELECT household_key, loans, borrowers FROM pool_households "
                       "WHERE pool_id = ? AND as_of = ? AND household_key = coalesce(?, "
                       "household_key)", [int(pool_id), as_of, key]).fetchall()
    if not rows:
        return None
    loans, ids = _ipc_table(rows[0][1]), _ipc_table(rows[0][2])
    return {"key": str(rows[0][0]),
            "code": np.asarray(loans.column("code").to_numpy(), dtype=np.int64),
            "household_limit": np.asarray(loans.column("household_limit").to_numpy(),
                                          dtype=np.float64),
            "borrowers": ids.column("borrower_id").combine_chunks()}


def upsert_partners(con: duckdb.DuckDBPyConnection, partners: list[dict[str, Any]]) -> None:
    """Record each partner's spec as used (``partners`` keeps the latest spec per id)."""
    for p in partners:
        con.execute("DELETE FROM partners WHERE partner_id = ?", [p["id"]])
        con.execute("INSERT INTO partners (partner_id, name, kind, spec) VALUES (?, ?, ?, ?)",
                    [p["id"], p["name"], p["kind"], json.dumps(p)])


def insert_allocation(
    con: duckdb.DuckDBPyConnection,
    *,
    allocation_id: int,
    mode: str,
    objective: str,
    pool_id: int | None,
    inputs: dict[str, Any],
    checks: dict[str, Any],
    summary: dict[str, Any],
    shares: pa.Table,
    loans: pa.Table,
) -> None:
    """Write one allocation (Arrow tables). ``shares``: loan_id, party_id, share (positive
    shares only); ``loans``: loan_id, balance, annual_pd, lgd, lifetime_pd."""
    con.execute(
        """INSERT INTO allocations (allocation_id, mode, objective, pool_id, inputs, checks,
                                    created_at, summary)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        [allocation_id, mode, objective, pool_id, json.dumps(inputs, default=str),
         json.dumps(checks, default=str), dt.datetime.now(dt.UTC).replace(tzinfo=None),
         json.dumps(summary, default=str)],
    )
    con.register("_alloc_shares", shares.select(["loan_id", "party_id", "share"]))
    try:
        con.execute("INSERT INTO allocation_shares (allocation_id, loan_id, party_id, share) "
                    "SELECT ?, loan_id, party_id, share FROM _alloc_shares", [allocation_id])
    finally:
        con.unregister("_alloc_shares")
    con.register("_alloc_loans", loans.select(["loan_id", "balance", "annual_pd", "lgd", "lifetime_pd"]))
    try:
        con.execute("INSERT INTO allocation_loans (allocation_id, loan_id, balance, annual_pd, lgd, "
                    "lifetime_pd) SELECT ?, loan_id, balance, annual_pd, lgd, lifetime_pd "
                    "FROM _alloc_loans", [allocation_id])
    finally:
        con.unregister("_alloc_loans")


def allocation_row(con: duckdb.DuckDBPyConnection, allocation_id: int) -> dict[str, Any] | None:
    row = con.execute(
        "SELECT allocation_id, mode, objective, pool_id, inputs, checks, created_at, summary "
        "FROM allocations WHERE allocation_id = ?", [allocation_id]).fetchone()
    if row is None:
        return None
    keys = ("allocation_id", "mode", "objective", "pool_id", "inputs", "checks", "created_at", "summary")
    out = dict(zip(keys, row, strict=True))
    for k in ("inputs", "checks", "summary"):
        out[k] = json.loads(out[k]) if isinstance(out[k], str) else out[k]
    return out


def allocation_ids(con: duckdb.DuckDBPyConnection) -> list[int]:
    return [int(r[0]) for r in con.execute(
        "SELECT allocation_id FROM allocations ORDER BY allocation_id").fetchall()]


def allocation_loans(con: duckdb.DuckDBPyConnection, allocation_id: int) -> pd.DataFrame:
    """loan_id, balance, annual_pd, lgd, lifetime_pd — ordered by loan_id."""
    return con.execute(
        "SELECT loan_id, balance, annual_pd, lgd, lifetime_pd FROM allocation_loans "
        "WHERE allocation_id = ? ORDER BY loan_id", [allocation_id]).df()


def allocation_loan_arrays(con: duckdb.DuckDBPyConnection,
                           allocation_id: int) -> dict[str, np.ndarray]:
    """loan_id (object), balance, annual_pd, lgd, lifetime_pd as arrays, ordered by loan_id."""
    return con.execute(
        "SELECT loan_id, balance, annual_pd, lgd, lifetime_pd FROM allocation_loans "
        "WHERE allocation_id = ? ORDER BY loan_id", [allocation_id]).fetchnumpy()


def allocation_share_cells(con: duckdb.DuckDBPyConnection, allocation_id: int,
                           party_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """The allocation's positive shares as cells of its (loan, party) matrix: ``row`` the
    loan's position in loan_id order (:func:`allocation_loan_arrays`), ``col`` the party's
    position in ``party_ids`` (−1 for a party not in it), ``share``."""
    return con.execute(
        """WITH lo AS (
               SELECT loan_id, row_number() OVER (ORDER BY loan_id) - 1 AS r
               FROM allocation_loans WHERE allocation_id = $a)
           SELECT CAST(lo.r AS BIGINT) AS row,
                  CAST(list_position($parties, s.party_id) - 1 AS BIGINT) AS col, s.share
           FROM allocation_shares s JOIN lo ON lo.loan_id = s.loan_id
           WHERE s.allocation_id = $a""",
        {"a": int(allocation_id), "parties": [str(p) for p in party_ids]}).fetchnumpy()


def allocation_balances(con: duckdb.DuckDBPyConnection, allocation_id: int) -> np.ndarray:
    """Each allocated loan's cut-off balance, ordered by loan_id."""
    return con.execute("SELECT balance FROM allocation_loans WHERE allocation_id = ? "
                       "ORDER BY loan_id", [allocation_id]).fetchnumpy()["balance"]


def allocation_shares(con: duckdb.DuckDBPyConnection, allocation_id: int) -> pd.DataFrame:
    """loan_id, party_id, share (positive shares) — ordered by loan_id, party_id."""
    return con.execute(
        "SELECT loan_id, party_id, share FROM allocation_shares WHERE allocation_id = ? "
        "ORDER BY loan_id, party_id", [allocation_id]).df()


def partner_tape(con: duckdb.DuckDBPyConnection, allocation_id: int, party_id: str) -> pd.DataFrame:
    """One party's loans in an allocation: pseudonymous loan and borrower ids, the loan's
    terms, the party's share and its balance (share × cut-off balance). Nothing about any other
    party is selected."""
    return con.execute(
        """
        SELECT s.loan_id, l.borrower_id, l.origination_date, l.apr, l.term_months,
               l.repayment_type, l.credit_score, l.region,
               s.share, a.balance * s.share AS balance
        FROM allocation_shares s
        JOIN allocation_loans a ON a.allocation_id = s.allocation_id AND a.loan_id = s.loan_id
        JOIN loans l ON l.loan_id = s.loan_id
        WHERE s.allocation_id = ? AND s.party_id = ? AND s.share > 0
        ORDER BY s.loan_id
        """,
        [allocation_id, party_id],
    ).df()

