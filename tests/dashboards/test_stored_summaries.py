"""What the demo writes for the pages to read, instead of recomputing it at first render, is
what recomputing gives: the revolving deal's replenishment profile stored with the run, and the
Book page's tables stored with the book."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from dashboards import access
from dashboards.auth import Viewer
from portfolio.book.replay import replay_run
from portfolio.book.summaries import (
    DETAIL_TABLES,
    HEAD_TABLES,
    detail_tables,
    head_tables,
    stored_book_tables,
)
from portfolio.montecarlo.paths import FLOW_NAMES
from portfolio.store import summaries as summary_sql
from portfolio.store.analytics import month_ends
from portfolio.store.core import open_store
from portfolio.store.runs import load_replenishment
from tranching.revolving import recorded_deal


def test_demo_stores_the_replenishment_profile_a_replay_rebuilds(demo_book) -> None:
    with open_store(demo_book.db, read_only=True) as store:
        deal = recorded_deal(store, demo_book.run_id)
        assert deal.revolving_months > 0  # the CN example deal revolves
        stored = load_replenishment(store, demo_book.run_id, deal.revolving_months)
        rebuilt = replay_run(store, demo_book.run_id).replenishment(deal.revolving_months)
    assert stored is not None
    assert stored.n_vintages == rebuilt.n_vintages == deal.revolving_months
    for s in range(stored.n_vintages):
        a, b = stored.vintage(s), rebuilt.vintage(s)
        for name in FLOW_NAMES:
            assert np.array_equal(getattr(a, name), getattr(b, name)), (s, name)
        assert np.array_equal(a.dates, b.dates) and a.initial_balance == b.initial_balance


def _frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """The same columns, dtypes and values: every amount to the cent, and closer — within a
    relative 1e-12 (DuckDB sums floats in parallel in an order that varies from run to run,
    so two live computations already differ in the last bits; dashboards.access says so)."""
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12, atol=1e-9)
    for col in a.columns:
        if pd.api.types.is_float_dtype(a[col]) and a[col].abs().max() >= 100:  # amounts
            assert (a[col].round(2).fillna(-1) == b[col].round(2).fillna(-1)).all(), col


def test_demo_stores_the_book_tables_the_page_computes(demo_book) -> None:
    """`riskpool demo` stores the Book page's tables at the latest month-end; read back they
    equal the tables computed live on the book, to the cent."""
    with open_store(demo_book.db, read_only=True) as store:
        found = stored_book_tables(store.con)
        assert found is not None
        as_of, stored = found
        live_as_of, head = head_tables(store.con, None)
        detail = detail_tables(store.con, live_as_of)
    assert as_of == live_as_of == max(month_ends_of(demo_book))
    assert set(stored) == set(HEAD_TABLES + DETAIL_TABLES)
    for name, frame in {**head, **detail}.items():
        _frames_equal(stored[name], frame)
    assert float(stored["summary"].loc[stored["summary"]["dimension"] == "all",
                                       "balance"].iloc[0]) > 0


def month_ends_of(book) -> list:  # type: ignore[no-untyped-def]
    with open_store(book.db, read_only=True) as store:
        return month_ends(store.con)


def test_the_page_reads_the_stored_tables_and_a_partner_never_does(demo_book) -> None:
    """Treasury's Book view is the stored tables (equal to the live ones); a partner's is
    computed on its own scope (the stored tables are the whole book's)."""
    treasury = Viewer("t", "treasury")
    partner = Viewer("p", "partner:bank_east")
    head = access.book_head(str(demo_book.db), treasury)
    with open_store(demo_book.db, read_only=True) as store:
        _, live = head_tables(store.con, None)
    _frames_equal(head.summary, live["summary"])
    mine = access.book_head(str(demo_book.db), partner)
    whole = float(head.summary.loc[head.summary["dimension"] == "all", "balance"].iloc[0])
    own = float(mine.summary.loc[mine.summary["dimension"] == "all", "balance"].iloc[0])
    assert 0 < own < whole


def test_a_stale_or_missing_summary_is_not_read(writable_book) -> None:
    """Another book state (a new batch), another code version or a database without the
    table: nothing stored is returned, and the page computes live."""
    with open_store(writable_book.db) as store:
        con = store.con
        key = summary_sql.book_key(con, "v1")
        assert summary_sql.read_summaries(con, summary_sql.book_key(con, "v2")) is None
        summary_sql.write_summaries(con, dt.date(2026, 6, 30), key,
                                    {"t": pd.DataFrame({"x": [1.005, 2.0]})})
        day, tables = summary_sql.read_summaries(con, key)
        assert day == dt.date(2026, 6, 30)
        _frames_equal(tables["t"], pd.DataFrame({"x": [1.005, 2.0]}))
        assert summary_sql.read_summaries(con, key, dt.date(2026, 5, 31)) is None
        con.execute("UPDATE loan_performance SET balance = balance + 0.01 "
                    "WHERE loan_id = (SELECT min(loan_id) FROM loans)")
        assert summary_sql.book_key(con, "v1") != key  # a cent changed in place
        assert summary_sql.read_summaries(con, summary_sql.book_key(con, "v1")) is None
        con.execute("UPDATE loan_performance SET balance = balance - 0.01 "
                    "WHERE loan_id = (SELECT min(loan_id) FROM loans)")
        assert summary_sql.book_key(con, "v1") == key
        con.execute("INSERT INTO ingest_batches VALUES (999, 'loans', 'x', 'x', 0, 0, 0, "
                    "now()::TIMESTAMP, now()::TIMESTAMP, NULL)")
        assert summary_sql.book_key(con, "v1") != key  # the book moved on
        assert summary_sql.read_summaries(con, summary_sql.book_key(con, "v1")) is None
        assert stored_book_tables(con) is None
        con.execute("DROP TABLE book_summaries")
        assert summary_sql.read_summaries(con, key) is None
        assert stored_book_tables(con) is None


def test_pool_preview_equals_the_saved_pool(demo_book) -> None:
    """The live preview of the demo pool's criteria (its selection held in an in-memory table
    with the stored table's types) gives the demo pool's count, balance and stratification."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    criteria = tomllib.loads((root / "examples" / "criteria.toml").read_text(encoding="utf-8"))
    criteria.setdefault("concentration", {})["max_obligor_share"] = 0.05  # as the demo's
    treasury = Viewer("t", "treasury")
    db = str(demo_book.db)
    preview = access.preview_pool(db, treasury, criteria, dt.date.fromisoformat(demo_book.as_of))
    pools = access.pools(db, treasury)
    pool = pools[pools["pool_id"] == demo_book.pool_id].iloc[0]
    assert preview.n_loans == int(pool["n_loans"]) > 0
    assert round(preview.balance, 2) == round(float(pool["balance"]), 2)
    saved = access.pool_strats(db, treasury, demo_book.pool_id)
    assert list(preview.strats) == list(saved)
    for name, frame in saved.items():
        _frames_equal(preview.strats[name], frame)
