"""The Book page's tables of a book at a month-end, computed once and stored with the book.

:func:`head_tables` (size and mix by dimension, the calibration anchors, default by score
band) and :func:`detail_tables` (delinquency buckets and their history, vintage curves, roll
rates, monthly CDR/CPR) are what the dashboard's Book page shows
(``dashboards.access.book_head`` / ``book_detail``). On a million-loan book they take seconds
of aggregation, so the commands that write the book call :func:`store_book_summaries`: the
tables at the latest month-end go to ``book_summaries`` (``portfolio.store.summaries``), and
:func:`stored_book_tables` gives them back while the book and the code are as they were
(else ``None``: the caller computes live). The stored tables are these functions' DataFrames
exactly (tests/dashboards/test_stored_summaries.py).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd

from portfolio.book import analytics as an
from portfolio.store import Store, open_store
from portfolio.store import analytics as book_sql
from portfolio.store import summaries as sql
from portfolio.store.reports import open_partner_scope
from portfolio.version import code_version

HEAD_TABLES: tuple[str, ...] = ("summary", "anchors", "default_by_score_band")
DETAIL_TABLES: tuple[str, ...] = ("delinquency", "delinquency_by_month", "cumulative_default",
                                  "roll_rates", "rates", "delinquency_shares",
                                  "incomplete_months")


def head_tables(con: duckdb.DuckDBPyConnection,
                as_of: dt.date | None = None) -> tuple[dt.date, dict[str, pd.DataFrame]]:
    """The month-end (default: the latest) and the book's size and mix there
    (``portfolio.book.analytics.book_summary``): ``HEAD_TABLES``."""
    summary = an.book_summary(con, as_of)
    return summary.as_of, {"summary": summary.groups, "anchors": summary.anchors.table(),
                           "default_by_score_band": summary.default_by_score_band}


def detail_tables(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> dict[str, pd.DataFrame]:
    """Delinquency over time, vintage curves, roll rates and CDR/CPR up to ``as_of``:
    ``DETAIL_TABLES``. The bucket table ends its open buckets with their total
    (``analytics.with_open_total``, as ``riskpool book delinquency``); a month-end reported
    for part of the book (``MonthlyRates.incomplete``) has its rates, delinquent balances and
    delinquency shares blank, not the 0 of the loans that did not report; those month-ends
    are ``incomplete_months`` (``MonthlyRates.incomplete_table``), so a page at one can say
    its figures cover the reported loans only."""
    ends = book_sql.month_ends(con)
    dq = an.delinquency(con, as_of, over_time=True)
    vint = an.vintage_curves(con, as_of).tables()
    earlier = [d for d in ends if d < as_of]
    # roll rates need the month-end before as_of in this book (none at its first one)
    rolls = (an.roll_rates(con, from_date=earlier[-1], to_date=as_of).tables()
             if earlier else {"roll_rates": pd.DataFrame(columns=["from_bucket"])})
    monthly = an.monthly_rates(con, as_of)
    rates = monthly.tables()
    over_time = (an.blank_incomplete_months(dq.over_time, monthly.incomplete)
                 if dq.over_time is not None else pd.DataFrame())
    return {"delinquency": an.with_open_total(dq.buckets), "delinquency_by_month": over_time,
            "cumulative_default": vint.get("cumulative_default", next(iter(vint.values()))),
            "roll_rates": next(iter(rolls.values())), "rates": next(iter(rates.values())),
            "delinquency_shares": (an.delinquency_shares(over_time) if len(over_time)
                                   else pd.DataFrame()),
            "incomplete_months": monthly.incomplete_table()}


def store_book_summaries(store: Store) -> dt.date | None:
    """Compute the Book page's tables at the book's latest month-end and store them (one
    short transaction after the aggregation); returns that month-end, or ``None`` for a book
    without performance history (nothing stored)."""
    if not book_sql.month_ends(store.con):
        return None
    key = sql.book_key(store.con, code_version())
    as_of, tables = head_tables(store.con, None)
    tables = {**tables, **detail_tables(store.con, as_of)}
    with store.transaction() as con:
        sql.write_summaries(con, as_of, key, tables)
    return as_of


MONTH_ENDS = "month_ends"


def store_party_book_summaries(db_path: str | Path,
                               party_ids: tuple[str, ...]) -> dict[str, dt.date]:
    """Compute each partner's Book-page tables on its scope (``open_partner_scope``: its
    allocated loans, money scaled by its share) at its latest month-end, with its month-ends,
    and store them under its party id; returns the month-end stored per party (a partner
    without performance history is not stored). Called once an allocation is saved (the
    scopes changed) and its writer has closed the book at ``db_path``."""
    computed: dict[str, tuple[str, dt.date, dict[str, pd.DataFrame]]] = {}
    with open_store(db_path, read_only=True) as store:
        keys = {pid: sql.party_book_key(store.con, pid, code_version()) for pid in party_ids}
    for pid in party_ids:
        scope = open_partner_scope(db_path, pid, detached=True)
        try:
            ends = book_sql.month_ends(scope)
            if not ends:
                continue
            as_of, tables = head_tables(scope, None)
            tables = {**tables, **detail_tables(scope, as_of),
                      MONTH_ENDS: pd.DataFrame({"as_of": pd.Series(ends, dtype=object)})}
        finally:
            scope.close()
        computed[pid] = (keys[pid], as_of, tables)
    with open_store(db_path) as store, store.transaction() as con:
        for pid, (key, as_of, tables) in computed.items():
            sql.write_summaries(con, as_of, key, tables, scope=pid)
    return {pid: as_of for pid, (_, as_of, _) in computed.items()}


def stored_party_book_tables(con: duckdb.DuckDBPyConnection, party_id: str,
                             as_of: dt.date | None = None
                             ) -> tuple[dt.date, tuple[dt.date, ...],
                                        dict[str, pd.DataFrame]] | None:
    """A partner's stored Book-page tables (read on the whole book ``con``, only under the
    partner's own id): their month-end, the partner's month-ends and the tables, if they
    were computed on the book and the partner's shares as they are now, by this code version
    (and at ``as_of`` when given); else ``None``."""
    found = sql.read_summaries(con, sql.party_book_key(con, party_id, code_version()), as_of,
                               scope=party_id)
    if found is None or not set(HEAD_TABLES + DETAIL_TABLES + (MONTH_ENDS,)) <= set(found[1]):
        return None
    day, tables = found
    ends = tuple(tables.pop(MONTH_ENDS)["as_of"])
    return day, ends, tables


def stored_book_tables(con: duckdb.DuckDBPyConnection, as_of: dt.date | None = None
                       ) -> tuple[dt.date, dict[str, pd.DataFrame]] | None:
    """The stored tables (``HEAD_TABLES`` + ``DETAIL_TABLES``) and their month-end if they
    were computed on the book as it is now, by this code version (and at ``as_of`` when
    given); else ``None``."""
    found = sql.read_summaries(con, sql.book_key(con, code_version()), as_of)
    if found is None or not set(HEAD_TABLES + DETAIL_TABLES) <= set(found[1]):
        return None
    return found
