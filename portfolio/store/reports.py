"""SQL of the dashboards and scheduled reports: partner-scoped views and report run records.

Partner scope: a partner user's connection is an in-memory DuckDB database that attaches the
book read-only as ``src`` and defines, in its own ``main`` schema, views with the names of the
book's tables (``loans``, ``loan_performance``, ``pools``, ``pool_loans``, ``allocations``,
``allocation_shares``, ``allocation_loans``, ``partners``) that hold only the partner's own
loans — the loans with a positive share for ``party_id`` in ``allocation_shares`` (the share
of the latest allocation that holds the loan) — with every money column multiplied by that
share (``loans``, ``loan_performance`` and ``pool_loans`` are copied into the in-memory
database once per connection, so the analytics run on the partner's rows only): the partner's position, not the whole loan. Unqualified table names in the library's
SQL resolve to these views, so every analytics function computes over the partner's loans
only. Tables not listed (runs, ingest records, other areas' results) do not exist in the
scope: a query that needs them fails instead of leaking.

Report runs are rows of ``runs`` with ``kind = 'report'``; ``inputs`` holds as_of and the
partner (or null for the treasury report), ``summary`` the files written and their content
hash.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from portfolio.store.core import DDL
from portfolio.store.records import ReportInputs

# --------------------------------------------------------------------------- partner scope

_SCOPE_DDL: tuple[str, ...] = (
    """CREATE TABLE me AS SELECT CAST($party AS VARCHAR) AS party_id""",
    # the partner's loans and its share in each (latest allocation that holds the loan)
    """CREATE TABLE mine AS
        SELECT loan_id, arg_max(share, allocation_id) AS share
        FROM src.allocation_shares
        WHERE party_id = $party AND share > 0
        GROUP BY loan_id""",
    """CREATE TABLE loans AS
        SELECT l.* REPLACE (CAST(l.principal AS DOUBLE) * m.share AS principal,
                            CAST(l.credit_limit AS DOUBLE) * m.share AS credit_limit)
        FROM src.loans l JOIN mine m ON l.loan_id = m.loan_id""",
    """CREATE TABLE loan_performance AS
        SELECT p.* REPLACE (CAST(p.balance AS DOUBLE) * m.share AS balance,
                            CAST(p.paid_principal AS DOUBLE) * m.share AS paid_principal,
                            CAST(p.paid_interest AS DOUBLE) * m.share AS paid_interest,
                            CAST(p.prepaid_principal AS DOUBLE) * m.share AS prepaid_principal,
                            CAST(p.charge_off AS DOUBLE) * m.share AS charge_off,
                            CAST(p.recovery AS DOUBLE) * m.share AS recovery)
        FROM src.loan_performance p JOIN mine m ON p.loan_id = m.loan_id""",
    """CREATE TABLE pool_loans AS
        SELECT q.* REPLACE (CAST(q.cutoff_balance AS DOUBLE) * m.share AS cutoff_balance,
                            CAST(q.principal AS DOUBLE) * m.share AS principal)
        FROM src.pool_loans q JOIN mine m ON q.loan_id = m.loan_id""",
    """CREATE VIEW pools AS
        SELECT p.pool_id, p.name, p.cutoff_date, p.criteria, p.created_at,
               c.n_loans, CAST(c.balance AS DECIMAL(18, 2)) AS balance,
               CAST(NULL AS JSON) AS exclusions
        FROM src.pools p
        JOIN (SELECT pool_id, count(*) AS n_loans, sum(cutoff_balance) AS balance
              FROM pool_loans GROUP BY pool_id) c ON p.pool_id = c.pool_id""",
    """CREATE VIEW allocation_shares AS
        SELECT * FROM src.allocation_shares
        WHERE party_id = (SELECT party_id FROM me) AND share > 0""",
    """CREATE VIEW allocations AS
        SELECT allocation_id, mode, objective, pool_id, created_at
        FROM src.allocations
        WHERE allocation_id IN (SELECT allocation_id FROM allocation_shares)""",
    # the loan's cut-off balance (the partner's part is balance × share)
    """CREATE VIEW allocation_loans AS
        SELECT a.*
        FROM src.allocation_loans a
        JOIN allocation_shares s
          ON a.allocation_id = s.allocation_id AND a.loan_id = s.loan_id""",
    """CREATE VIEW partners AS
        SELECT * FROM src.partners WHERE partner_id = (SELECT party_id FROM me)""",
)


POOL_SCOPE: tuple[str, ...] = ("me", "mine", "pool_loans", "pools")


def _created(statement: str) -> str:
    """The name a scope statement creates (``CREATE TABLE|VIEW <name> AS ...``)."""
    return statement.split()[2]


def open_partner_scope(db_path: str | Path, party_id: str, threads: int | None = None,
                       detached: bool = False,
                       only: tuple[str, ...] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory connection that sees only ``party_id``'s loans (see the module doc).
    ``threads``: DuckDB threads, set before the partner's rows are copied (1 gives the same
    row order and float sums on every run). ``detached``: every view is copied too and the
    book detached, so the connection holds no handle on the file (a writer can take it) and
    can be kept while the file is unchanged, its cursors (``con.cursor()``) serving later
    reads of the same scope. ``only``: just these of the scope's tables and views (and what
    they are built from: ``POOL_SCOPE`` for the pools and their loans), the same rows as in the
    whole scope, without copying the rest."""
    con = duckdb.connect(":memory:")
    try:
        if threads is not None:
            con.execute(f"SET threads TO {int(threads)}")
        con.execute("ATTACH ? AS src (READ_ONLY)", [str(db_path)])
        for statement in _SCOPE_DDL:
            if only is not None and _created(statement) not in only:
                continue
            if detached:
                statement = statement.replace("CREATE VIEW", "CREATE TABLE", 1)
            if "$party" in statement:
                con.execute(statement, {"party": party_id})
            else:
                con.execute(statement)
        if detached:
            con.execute("DETACH src")
    except BaseException:
        con.close()
        raise
    return con


def scope_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Names of the tables and views the connection resolves without a catalog prefix."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_catalog = current_database() AND table_schema = 'main' ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def party_loan_ids(con: duckdb.DuckDBPyConnection, allocation_id: int, party_id: str) -> list[str]:
    rows = con.execute(
        "SELECT loan_id FROM allocation_shares WHERE allocation_id = ? AND party_id = ? "
        "AND share > 0 ORDER BY loan_id",
        [int(allocation_id), party_id],
    ).fetchall()
    return [r[0] for r in rows]


def party_shares(con: duckdb.DuckDBPyConnection, allocation_id: int,
                 party_id: str | None = None) -> pd.DataFrame:
    """Every party's loan count, balance and share of an allocation (treasury view), or only
    ``party_id``'s row."""
    where = ""
    params: list[int | str] = [int(allocation_id)]
    if party_id is not None:
        where = " AND s.party_id = ?"
        params = [int(allocation_id), str(party_id)]
    return con.execute(
        f"""SELECT s.party_id, count(*) AS loans, sum(a.balance * s.share) AS balance
            FROM allocation_shares s
            JOIN allocation_loans a
              ON a.allocation_id = s.allocation_id AND a.loan_id = s.loan_id
            WHERE s.allocation_id = ? AND s.share > 0{where}
            GROUP BY s.party_id ORDER BY s.party_id""",
        params,
    ).df()


def allocation_list(con: duckdb.DuckDBPyConnection,
                    party_id: str | None = None) -> pd.DataFrame:
    """The allocations (id, mode, objective, pool, created), or only those giving
    ``party_id`` a positive share of some loan (what its scope's ``allocations`` holds)."""
    where, params = "", []
    if party_id is not None:
        where = (" WHERE allocation_id IN (SELECT allocation_id FROM allocation_shares "
                 "WHERE party_id = ? AND share > 0)")
        params = [str(party_id)]
    return con.execute(
        "SELECT allocation_id, mode, objective, pool_id, created_at FROM allocations"
        + where + " ORDER BY allocation_id", params
    ).df()


# --------------------------------------------------------------------------- report runs


def insert_report_run(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: int,
    status: str,
    inputs: ReportInputs,
    code_version: str,
    started_at: dt.datetime,
    finished_at: dt.datetime,
    timings: dict[str, float],
    summary: dict[str, Any],
    out_dir: str,
) -> None:
    con.execute(
        """INSERT INTO runs (run_id, kind, status, inputs, seed_entropy, code_version,
                             started_at, finished_at, timings, summary, artifact_path)
           VALUES (?, 'report', ?, ?, NULL, ?, ?, ?, ?, ?, ?)""",
        [run_id, status, json.dumps(inputs.to_json(), sort_keys=True), code_version, started_at,
         finished_at, json.dumps(timings), json.dumps(summary, sort_keys=True), out_dir],
    )


def report_runs(con: duckdb.DuckDBPyConnection, partner: str | None = None,
                every_partner: bool = False) -> pd.DataFrame:
    """Report runs, newest first: the treasury's (``every_partner``: all of them) or one
    partner's own."""
    params: list[object] = []
    if every_partner:
        where = ""
    elif partner is None:
        where = " AND json_extract_string(inputs, '$.partner') IS NULL"
    else:
        where, params = " AND json_extract_string(inputs, '$.partner') = ?", [partner]
    return con.execute(
        "SELECT run_id, status, json_extract_string(inputs, '$.as_of') AS as_of, "
        "json_extract_string(inputs, '$.partner') AS partner, started_at, finished_at, "
        "artifact_path, summary FROM runs WHERE kind = 'report'" + where
        + " ORDER BY run_id DESC",
        params,
    ).df()


def report_pins(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The inputs of every successful report run, oldest first (each a dict with ``as_of``,
    ``partner`` and, when the report recorded them, ``run_id`` and ``allocation_id``)."""
    rows = con.execute("SELECT inputs FROM runs WHERE kind = 'report' AND status = 'ok' "
                       "ORDER BY run_id").fetchall()
    return [json.loads(raw) if isinstance(raw, str) else dict(raw) for (raw,) in rows]


def allocated_parties(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every party id with a share in some allocation (empty for a book without any)."""
    has = con.execute("SELECT count(*) FROM information_schema.tables "
                      "WHERE table_name = 'allocation_shares'").fetchone()
    if not has or not has[0]:
        return []
    return [r[0] for r in con.execute(
        "SELECT DISTINCT party_id FROM allocation_shares ORDER BY 1").fetchall()]


def _arrow_columns(loans: Mapping[str, np.ndarray]) -> pa.Table:
    """Selection arrays as an Arrow table (text as strings; the few-valued ones encoded)."""
    cols: dict[str, pa.Array] = {}
    for name, values in loans.items():
        values = np.asarray(values)
        if values.dtype == object and name in ("repayment_type", "region"):
            codes, uniques = pd.factorize(values)
            cols[name] = pa.DictionaryArray.from_arrays(
                pa.array(codes.astype(np.int32)), pa.array([str(u) for u in uniques],
                                                           type=pa.string()))
        elif values.dtype == object:
            cols[name] = pa.array(values, type=pa.string())
        else:
            cols[name] = pa.array(values)
    return pa.table(cols)


def pool_preview_connection(loans: Mapping[str, np.ndarray] | pd.DataFrame,
                            cutoff: dt.date) -> duckdb.DuckDBPyConnection:
    """An in-memory database holding one unsaved pool (id 0) with ``loans`` (the columns of
    ``pool_loans`` without ``pool_id``: a selection's arrays or a frame), so the pool strats
    run on a selection that is not stored. Its ``pool_loans`` has the stored table's column
    types (DECIMAL cut-off balances) but not its key and checks: the rows are a selection the
    library made, and building a key over a million loan ids is most of a preview's cost.
    The caller closes it."""
    con = duckdb.connect(":memory:")
    try:
        for statement in DDL:
            if "TABLE IF NOT EXISTS pools " in statement:
                con.execute(statement)
            elif "TABLE IF NOT EXISTS pool_loans " in statement:
                con.execute(statement.replace("TABLE IF NOT EXISTS pool_loans ",
                                              "TABLE pool_loans_typed ", 1))
                con.execute("CREATE TABLE pool_loans AS SELECT * FROM pool_loans_typed LIMIT 0")
                con.execute("DROP TABLE pool_loans_typed")
        frame = loans if isinstance(loans, pd.DataFrame) else None
        n = len(loans) if frame is not None else len(next(iter(loans.values()), []))
        total = (float(frame["cutoff_balance"].sum()) if frame is not None and n
                 else float(pd.Series(loans["cutoff_balance"]).sum()) if n else 0.0)
        con.execute("INSERT INTO pools VALUES (0, 'preview', ?, '{}', CAST(? AS TIMESTAMP), ?, "
                    "?, NULL)", [cutoff, cutoff, n, total])
        if n:
            data = frame if frame is not None else _arrow_columns(loans)
            con.register("selection_data", data)
            con.execute("INSERT INTO pool_loans BY NAME "
                        "SELECT 0 AS pool_id, * FROM selection_data")
            con.unregister("selection_data")
    except BaseException:
        con.close()
        raise
    return con
