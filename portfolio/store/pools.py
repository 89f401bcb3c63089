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
import warnings
from collections.abc import Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from portfolio.loans.arrays import remember_value_codes
from portfolio.loans.types import RepaymentType


def book_regions(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Distinct non-null regions in ``loans`` (sorted)."""
    rows = con.execute(
        "SELECT DISTINCT region FROM loans WHERE region IS NOT NULL ORDER BY region"
    ).fetchall()
    return [str(r[0]) for r in rows]


def _numpy(result: dict[str, Any]) -> dict[str, np.ndarray]:
    """``fetchnumpy`` output without masks (the SQL coalesces every nullable column)."""
    out = {}
    for key, value in result.items():
        arr = np.ma.getdata(value)
        if arr.dtype.kind == "M":
            arr = arr.astype("datetime64[D]")
        out[key] = np.asarray(arr)
    return out


def fetch_arrow(con: duckdb.DuckDBPyConnection, query: str,
                params: list[Any] | dict[str, Any]) -> pa.Table:
    """A query's rows as an Arrow table. Through ``execute`` (``con.sql`` refuses to run while
    a caller's earlier ``execute`` result is unfinished, e.g. after a ``fetchone``); DuckDB
    warns that this path copies the rows once more, which costs little next to the strings
    it spares."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)
        return con.execute(query, params).to_arrow_table()


def _arrow_numpy(table: pa.Table, few_values: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Columns of an Arrow result as numpy arrays (strings as object arrays, dates as
    ``datetime64[D]``). A string column in ``few_values`` (e.g. region) is dictionary-encoded
    first, so each distinct value becomes one Python string rather than one per row."""
    out = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if name in few_values:
            enc = col.dictionary_encode()  # codes in order of first appearance
            names = enc.dictionary.to_numpy(zero_copy_only=False)
            codes = enc.indices.to_numpy()
            out[name] = names[codes]
            if not enc.indices.null_count:  # pd.factorize of the column: known
                remember_value_codes(out[name], codes, names)
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    return out


def snapshot_candidates(con: duckdb.DuckDBPyConnection, cutoff: dt.date) -> dict[str, np.ndarray]:
    """Every loan in the book with its performance row at ``cutoff``, as numpy arrays.

    Keys: loan_id, borrower_id, origination_date, principal, apr, term_months,
    repayment_type, credit_score, region ('' when null), balance, dpd, status, charge_off
    (0 / '' when the loan has no row at the cut-off), disclosed_apr (NaN when not
    disclosed), has_row. Ordered by loan_id.
    """
    result = fetch_arrow(
        con,
        """
        SELECT l.loan_id, l.borrower_id, l.origination_date,
               CAST(l.principal AS DOUBLE) AS principal, l.apr, l.term_months,
               l.repayment_type, l.credit_score, coalesce(l.region, '') AS region,
               coalesce(CAST(p.balance AS DOUBLE), 0.0) AS balance,
               coalesce(p.dpd, 0) AS dpd, coalesce(p.status, '') AS status,
               coalesce(l.disclosed_apr, 'NaN'::DOUBLE) AS disclosed_apr,
               coalesce(CAST(p.charge_off AS DOUBLE), 0.0) AS charge_off,
               p.loan_id IS NOT NULL AS has_row
        FROM loans l
        LEFT JOIN loan_performance p ON p.loan_id = l.loan_id AND p.as_of = ?
        ORDER BY l.loan_id
        """,
        [cutoff],
    )
    # through Arrow: the few-valued text columns become one Python string per value
    return _arrow_numpy(result, few_values=("repayment_type", "region", "status"))


def pool_name_taken(con: duckdb.DuckDBPyConnection, name: str) -> int | None:
    row = con.execute("SELECT pool_id FROM pools WHERE name = ? LIMIT 1", [name]).fetchone()
    return int(row[0]) if row else None


POOL_LOAN_COLUMNS: tuple[str, ...] = (
    "loan_id", "cutoff_balance", "remaining_term", "months_on_book", "apr", "credit_score",
    "term_months", "repayment_type", "region", "origination_date", "principal",
    "disclosed_apr",
)


def insert_pool(
    con: duckdb.DuckDBPyConnection,
    *,
    pool_id: int,
    name: str,
    cutoff: dt.date,
    criteria: dict[str, Any],
    exclusions: list[dict[str, Any]],
    loans: dict[str, np.ndarray],
) -> None:
    """Write one immutable pool snapshot (call inside ``store.transaction()``).

    ``loans`` maps each of ``POOL_LOAN_COLUMNS`` to an array: the cut-off state plus a copy
    of the loan's static fields, so the snapshot reads back without a join.
    """
    n_loans = len(loans["loan_id"])
    balance = float(np.sum(loans["cutoff_balance"])) if n_loans else 0.0
    con.execute(
        """
        INSERT INTO pools (pool_id, name, cutoff_date, criteria, created_at, n_loans, balance,
                           exclusions)
        VALUES (?, ?, ?, ?, now()::TIMESTAMP, ?, ?, ?)
        """,
        [pool_id, name, cutoff, json.dumps(criteria, default=str, ensure_ascii=False), n_loans,
         round(balance, 2), json.dumps(exclusions, default=str)],
    )
    arrays = {"pool_id": pa.array(np.full(n_loans, pool_id, dtype=np.int64))}
    for col in POOL_LOAN_COLUMNS:
        value = loans[col]
        if value.dtype == object:
            arrays[col] = pa.array(value, type=pa.string())
        elif col == "disclosed_apr":
            arrays[col] = pa.array(value, from_pandas=True)  # NaN (not disclosed) -> NULL
        else:
            arrays[col] = pa.array(value)
    table = pa.table(arrays)
    cols = ", ".join(POOL_LOAN_COLUMNS)
    con.register("_incoming_pool_loans", table)
    try:
        con.execute(
            f"INSERT INTO pool_loans (pool_id, {cols}) SELECT pool_id, {cols} "
            "FROM _incoming_pool_loans"
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


def pool_loan_arrays(con: duckdb.DuckDBPyConnection, pool_id: int) -> dict[str, np.ndarray]:
    """The pool's loans from the snapshot, ordered by loan_id, as numpy arrays.

    ``repayment_type`` comes back as the int8 ``RepaymentType.code`` (the order of ``codes``).
    A snapshot is written in loan_id order (``insert_pool`` keeps the candidates' order) and
    DuckDB scans a table in insertion order (its ``preserve_insertion_order`` setting), so the
    rows are read without an ``ORDER BY`` (a sort of a million strings) and their order
    checked (:func:`ascending`); only rows not in strictly ascending loan_id order are read
    again, sorted.
    """
    select = (f"SELECT {POOL_ARRAY_SELECT.format(p='')} FROM pool_loans "
              "WHERE pool_id = $pool_id")
    params = {"repayment_names": list(REPAYMENT_NAMES), "pool_id": pool_id}
    table = fetch_arrow(con, select, params)
    if not ascending(table.column("loan_id")):
        table = fetch_arrow(con, select + " ORDER BY loan_id", params)
    # Arrow, then numpy: no masked arrays, one string per distinct region
    return _arrow_numpy(table, few_values=("region",))


def ascending(ids: pa.ChunkedArray | pa.Array) -> bool:
    """Whether the strings ``ids`` are in strictly ascending order as DuckDB sorts VARCHAR
    (bytewise: its default binary collation), without nulls: what ``ORDER BY`` of a unique
    column would give."""
    arr = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    if arr.null_count:
        return False
    n = len(arr)
    return n < 2 or bool(pc.all(pc.less(arr.slice(0, n - 1), arr.slice(1))).as_py())


POOL_ARRAY_SELECT = """
    {p}loan_id AS loan_id, CAST({p}cutoff_balance AS DOUBLE) AS balance, {p}apr AS apr,
    {p}term_months AS term_months, {p}remaining_term AS remaining_term,
    {p}months_on_book AS months_on_book,
    CAST(list_position($repayment_names, {p}repayment_type) - 1 AS TINYINT) AS repayment_type,
    {p}credit_score AS credit_score, coalesce({p}region, '') AS region,
    {p}origination_date AS origination_date, CAST({p}principal AS DOUBLE) AS principal,
    coalesce({p}disclosed_apr, 'NaN'::DOUBLE) AS disclosed_apr
"""
"""The columns of :func:`pool_loan_arrays` from ``pool_loans`` (``p`` its alias and a dot, or
empty); parameters ``$repayment_names`` (:data:`REPAYMENT_NAMES`)."""


def pool_loan_arrays_from(table: pa.Table) -> dict[str, np.ndarray]:
    """:func:`pool_loan_arrays` of a query result selecting :data:`POOL_ARRAY_SELECT` (and
    possibly more columns)."""
    return _arrow_numpy(table, few_values=("region",))


REPAYMENT_NAMES = tuple(t.value for t in RepaymentType)  # in code order


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
) -> dict[str, list[tuple[Any, ...]]]:
    """All stratifications of a pool: one small ``GROUP BY`` per dimension over the snapshot
    (each scans ``pool_loans`` only; no join — the snapshot carries the static fields).

    Returns dimension -> rows ``(key, n_loans, balance, bal_apr, bal_score, bal_rem)`` where
    the ``bal_*`` are balance-weighted sums and the key is a bucket index for bucketed
    dimensions, the value itself otherwise; ``total`` has one row with key ``None``.
    Dimensions: score_band, apr_bucket, term_months, remaining_term_bucket, balance_bucket,
    repayment_type, region, vintage (origination year·10 + quarter), mob_bucket.
    """
    bucketed = {
        "score_band": ("credit_score", score_edges),
        "apr_bucket": ("apr", apr_edges),
        "remaining_term_bucket": ("remaining_term", remaining_edges),
        "balance_bucket": ("CAST(cutoff_balance AS DOUBLE)", balance_edges),
        "mob_bucket": ("months_on_book", mob_edges),
    }
    plain = {
        "term_months": "term_months",
        "repayment_type": "repayment_type",
        "region": "coalesce(nullif(region, ''), '(none)')",
        "vintage": "year(origination_date) * 10 + quarter(origination_date)",
    }
    aggregates = (
        "count(*), sum(CAST(cutoff_balance AS DOUBLE)),"
        " sum(CAST(cutoff_balance AS DOUBLE) * apr),"
        " sum(CAST(cutoff_balance AS DOUBLE) * credit_score),"
        " sum(CAST(cutoff_balance AS DOUBLE) * remaining_term)"
    )
    out: dict[str, list[tuple[Any, ...]]] = {}
    for name in ("score_band", "apr_bucket", "term_months", "remaining_term_bucket",
                 "balance_bucket", "repayment_type", "region", "vintage", "mob_bucket"):
        if name in bucketed:
            column, edges = bucketed[name]
            key = _case(column, len(edges))
            params: list[Any] = [*edges, pool_id]
        else:
            key = plain[name]
            params = [pool_id]
        out[name] = con.execute(
            f"SELECT {key} AS k, {aggregates} FROM pool_loans WHERE pool_id = ? GROUP BY k",
            params,
        ).fetchall()
    out["total"] = [(None, *row) for row in con.execute(
        f"SELECT {aggregates} FROM pool_loans WHERE pool_id = ?", [pool_id]).fetchall()]
    return out


def _pricing_source(pool_id: int | None) -> tuple[str, list[Any]]:
    if pool_id is None:
        return ("SELECT loan_id, credit_score, term_months, apr, repayment_type, "
                "CAST(principal AS DOUBLE) AS w FROM loans", [])
    return ("SELECT loan_id, credit_score, term_months, apr, repayment_type, "
            "CAST(cutoff_balance AS DOUBLE) AS w FROM pool_loans WHERE pool_id = ?", [pool_id])


def distinct_terms(con: duckdb.DuckDBPyConnection, pool_id: int | None = None
                   ) -> dict[str, np.ndarray]:
    """The distinct (apr, term_months, repayment_type) of the pool's (or the book's) loans;
    ``repayment_type`` as its name (``code`` as the int8 ``RepaymentType.code``)."""
    source, params = _pricing_source(pool_id)
    table = fetch_arrow(
        con,
        f"SELECT DISTINCT apr, term_months, repayment_type, "
        f"CAST(list_position(?, repayment_type) - 1 AS TINYINT) AS code FROM ({source}) s",
        [list(REPAYMENT_NAMES), *params])
    return _arrow_numpy(table)


def _with_cashflow(con: duckdb.DuckDBPyConnection, cashflow: pa.Table | None) -> str:
    """The source's ``apr`` replaced by the cash-flow APR of (apr, term, type) when given."""
    if cashflow is None:
        return "s.apr"
    con.register("_cashflow_apr", cashflow)
    return "coalesce(c.cashflow_apr, s.apr)"


_JOIN_CASHFLOW = (" LEFT JOIN _cashflow_apr c ON c.apr = s.apr AND c.term_months = s.term_months"
                  " AND c.repayment_type = s.repayment_type")


def segment_apr(
    con: duckdb.DuckDBPyConnection,
    score_edges: Sequence[int],
    apr_cap: float,
    pool_id: int | None = None,
    cashflow: pa.Table | None = None,
) -> pd.DataFrame:
    """Balance-weighted APR per (score band index, original term).

    With ``pool_id``: the pool's cut-off balances; without: every loan of the book weighted by
    its original principal. With ``cashflow`` (columns apr, term_months, repayment_type,
    cashflow_apr: the cash-flow APR of each distinct term, ``distinct_terms``) each loan's
    APR is its cash-flow APR. Columns: band, term_months, n_loans, balance, wa_apr, max_apr,
    n_above_cap (loans with that APR > ``apr_cap``).
    """
    whens = " ".join(f"WHEN credit_score < ? THEN {i}" for i in range(len(score_edges)))
    band = f"CASE {whens} ELSE {len(score_edges)} END"
    source, params = _pricing_source(pool_id)
    rate = _with_cashflow(con, cashflow)
    join = _JOIN_CASHFLOW if cashflow is not None else ""
    try:
        return con.execute(
            f"""
            SELECT {band} AS band, term_months, count(*) AS n_loans, sum(w) AS balance,
                   sum(w * apr) / nullif(sum(w), 0) AS wa_apr, max(apr) AS max_apr,
                   count(*) FILTER (WHERE apr > ?) AS n_above_cap
            FROM (SELECT s.credit_score, s.term_months, {rate} AS apr, s.w
                  FROM ({source}) s{join}) t
            GROUP BY ALL
            """,
            [*score_edges, apr_cap, *params],
        ).df()
    finally:
        if cashflow is not None:
            con.unregister("_cashflow_apr")


def above_cap(
    con: duckdb.DuckDBPyConnection,
    apr_cap: float,
    cashflow: pa.Table,
    pool_id: int | None = None,
    limit: int = 20,
) -> pd.DataFrame:
    """The loans whose cash-flow APR is above ``apr_cap`` (the highest first, at most
    ``limit``): loan_id, repayment_type, apr (stated), cashflow_apr."""
    source, params = _pricing_source(pool_id)
    rate = _with_cashflow(con, cashflow)
    try:
        return con.execute(
            f"""
            SELECT s.loan_id, s.repayment_type, s.apr, {rate} AS cashflow_apr
            FROM ({source}) s{_JOIN_CASHFLOW}
            WHERE {rate} > ?
            ORDER BY cashflow_apr DESC, s.loan_id
            LIMIT ?
            """,
            [*params, apr_cap, limit],
        ).df()
    finally:
        con.unregister("_cashflow_apr")


def pool_summary_row(con: duckdb.DuckDBPyConnection, pool_id: int) -> dict[str, Any]:
    """One-row characteristics of a pool: counts, balances, balance-weighted averages and
    the largest obligor and region shares of the cut-off balance."""
    row = con.execute(
        """
        WITH p AS (
            SELECT pl.*, CAST(pl.cutoff_balance AS DOUBLE) AS b, l.borrower_id
            FROM pool_loans pl JOIN loans l USING (loan_id)
            WHERE pl.pool_id = ?
        ),
        tot AS (SELECT sum(b) AS total FROM p)
        SELECT count(*) AS n_loans,
               sum(b) AS balance,
               avg(b) AS average_balance,
               max(b) AS largest_balance,
               sum(CAST(principal AS DOUBLE)) AS original_principal,
               sum(b * apr) / sum(b) AS wa_apr,
               sum(b * credit_score) / sum(b) AS wa_score,
               sum(b * term_months) / sum(b) AS wa_original_term,
               sum(b * remaining_term) / sum(b) AS wa_remaining_term,
               sum(b * months_on_book) / sum(b) AS wa_months_on_book,
               (SELECT max(s) FROM (SELECT sum(b) AS s FROM p GROUP BY borrower_id))
                   / (SELECT total FROM tot) AS largest_obligor_share,
               (SELECT max(s) FROM (SELECT sum(b) AS s FROM p GROUP BY region))
                   / (SELECT total FROM tot) AS largest_region_share,
               count(DISTINCT borrower_id) AS n_borrowers
        FROM p
        """,
        [pool_id],
    ).fetchone()
    assert row is not None
    cols = ("n_loans", "balance", "average_balance", "largest_balance", "original_principal",
            "wa_apr", "wa_score", "wa_original_term", "wa_remaining_term", "wa_months_on_book",
            "largest_obligor_share", "largest_region_share", "n_borrowers")
    return dict(zip(cols, row, strict=True))
