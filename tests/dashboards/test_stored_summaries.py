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


def test_the_form_shows_the_saved_pool_its_criteria_selected(demo_book) -> None:
    """Criteria a saved pool was selected with (at its cut-off) show that pool's figures as
    saved: the live selection's count, balance to the cent, exclusions and strats; other
    criteria, another cut-off or a partner (who selects from its own loans) get none."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    criteria = tomllib.loads((root / "examples" / "criteria.toml").read_text(encoding="utf-8"))
    criteria.setdefault("concentration", {})["max_obligor_share"] = 0.05  # as the demo's
    treasury = Viewer("t", "treasury")
    db, cutoff = str(demo_book.db), dt.date.fromisoformat(demo_book.as_of)
    found = access.saved_pool_preview(db, treasury, criteria, cutoff)
    assert found is not None and found[0] == demo_book.pool_id
    saved, live = found[1], access.preview_pool(db, treasury, criteria, cutoff)
    assert saved.n_loans == live.n_loans > 0
    assert round(saved.balance, 2) == round(live.balance, 2)
    pd.testing.assert_frame_equal(saved.exclusions, live.exclusions)
    assert list(saved.strats) == list(live.strats)
    for name, frame in saved.strats.items():
        _frames_equal(live.strats[name], frame)
    other = {**criteria, "concentration": {**criteria["concentration"],
                                           "max_obligor_share": 0.04}}
    assert access.saved_pool_preview(db, treasury, other, cutoff) is None
    assert access.saved_pool_preview(db, treasury, criteria,
                                     cutoff - dt.timedelta(days=31)) is None
    assert access.saved_pool_preview(db, Viewer("p", "partner:bank_east"), criteria,
                                     cutoff) is None


def _tranche_views_equal(a: access.TrancheView, b: access.TrancheView) -> None:
    assert (a.deal_name, a.basis) == (b.deal_name, b.basis)
    for name in ("table", "triggers", "residual", "reconciliation", "excess_spread", "tape",
                 "trigger_metrics", "credit_enhancement"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True,
                                      check_index_type=False, check_column_type=False,
                                      obj=name)
    assert list(a.loss_shares) == list(b.loss_shares)
    for k in a.loss_shares:
        assert np.array_equal(a.loss_shares[k], b.loss_shares[k]), k
    assert list(a.cashflow_fans) == list(b.cashflow_fans)
    for k in a.cashflow_fans:
        pd.testing.assert_frame_equal(a.cashflow_fans[k], b.cashflow_fans[k], check_exact=True)


def _dispersion_views_equal(a: access.DispersionView, b: access.DispersionView) -> None:
    assert (a.pool_el, a.pool_var_999, a.hhi_partners) == \
        (b.pool_el, b.pool_var_999, b.hhi_partners)
    for name in ("parties", "headlines", "srt", "positions", "reconciliation", "views",
                 "economic_lines"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True,
                                      check_index_type=False, check_column_type=False,
                                      obj=name)


def _clear_access_caches() -> None:
    access._load_paths_cached.cache_clear()
    access._load_replenishment_cached.cache_clear()
    access._scope_cached.cache_clear()


def test_demo_stores_the_tranche_and_dispersion_views_the_pages_compute(writable_book) -> None:
    """`riskpool demo` stores the Tranches and Dispersion pages' first views of its run (the
    deal stored with the run, the default discount rate, no rating table; the run's
    allocation): read back — by treasury and, cut to its own rows, by a partner — they equal
    the views computed live once the stored ones are gone, exactly (every float bit, so every
    cent)."""
    db, rid, aid = writable_book.db, writable_book.run_id, writable_book.allocation_id
    treasury, partner = Viewer("t", "treasury"), Viewer("p", "partner:bank_east")
    deal = access.stored_deal_toml(db, treasury, rid)
    assert deal is not None
    with open_store(db, read_only=True) as store:
        stored = {r[0] for r in store.con.execute(
            "SELECT DISTINCT view FROM run_view_summaries WHERE run_id = ?", [rid]).fetchall()}
    assert stored == {"tranches", "dispersion"}

    def views() -> list:
        _clear_access_caches()
        return [access.tranches(db, treasury, rid, deal, access.DEFAULT_DISCOUNT, None),
                access.tranches(db, partner, rid, deal, access.DEFAULT_DISCOUNT, None),
                access.dispersion(db, treasury, rid, aid, deal),
                access.dispersion(db, partner, rid, aid, deal)]

    read = views()
    with open_store(db) as store:
        store.con.execute("DROP TABLE run_view_summaries")
    live = views()
    _tranche_views_equal(read[0], live[0])
    _tranche_views_equal(read[1], live[1])
    _dispersion_views_equal(read[2], live[2])
    _dispersion_views_equal(read[3], live[3])
    # the partner's views hold its own rows only
    assert set(read[1].table["holder"]) <= {"bank_east"}
    assert set(read[3].parties["party"]) == {"bank_east"}
    assert read[3].srt.empty and read[3].pool_el is None


def test_a_stored_run_view_is_read_only_for_its_inputs(writable_book) -> None:
    """Another discount rate, another deal text or another code version's key is computed
    live, never served the stored view."""
    db, rid = writable_book.db, writable_book.run_id
    treasury = Viewer("t", "treasury")
    deal = access.stored_deal_toml(db, treasury, rid)
    key = access._tranche_key(rid, deal, access.DEFAULT_DISCOUNT, None)
    with open_store(db, read_only=True) as store:
        assert summary_sql.read_run_view(store.con, rid, "tranches", key) is not None
        for other in (access._tranche_key(rid, deal, 0.06, None),
                      access._tranche_key(rid, deal + "\n", access.DEFAULT_DISCOUNT, None),
                      access._tranche_key(rid, deal, access.DEFAULT_DISCOUNT, "x")):
            assert summary_sql.read_run_view(store.con, rid, "tranches", other) is None
    _clear_access_caches()
    at_six = access.tranches(db, treasury, rid, deal, 0.06, None)
    at_five = access.tranches(db, treasury, rid, deal, access.DEFAULT_DISCOUNT, None)
    # the discount rate changes the tranches' values: the stored 5% view was not served
    assert not at_six.table.equals(at_five.table)


def test_demo_stores_each_partners_book_tables_the_page_computes(writable_book) -> None:
    """`riskpool demo` stores each partner's Book-page tables once its allocation is saved;
    the partner's book_head/book_detail read them (under its own id) and they equal the
    tables computed live on its scope, to the cent; treasury's stay the whole book's."""
    from portfolio.book.summaries import stored_party_book_tables

    db = writable_book.db
    partner = Viewer("p", "partner:bank_east")
    with open_store(db, read_only=True) as store:
        scopes = {r[0] for r in store.con.execute(
            "SELECT DISTINCT scope FROM book_summaries").fetchall()}
        assert {"", "bank_east"} <= scopes
        assert stored_party_book_tables(store.con, "bank_east") is not None
    _clear_access_caches()
    head = access.book_head(db, partner, None)
    detail = access.book_detail(db, partner, head.as_of)
    with open_store(db) as store:  # no stored partner tables: the scope is computed live
        store.con.execute("DELETE FROM book_summaries WHERE scope <> ''")
    _clear_access_caches()
    live_head = access.book_head(db, partner, None)
    live_detail = access.book_detail(db, partner, head.as_of)
    assert head.as_of == live_head.as_of and head.month_ends == live_head.month_ends
    for name in ("summary", "anchors", "default_by_score_band"):
        _frames_equal(getattr(head, name), getattr(live_head, name))
    for name in ("delinquency", "delinquency_by_month", "cumulative_default", "roll_rates",
                 "rates", "delinquency_shares"):
        _frames_equal(getattr(detail, name), getattr(live_detail, name))
    # the partner's own loans, not the book's
    whole = access.book_head(db, Viewer("t", "treasury"), None)
    assert head.headline()["loans"] < whole.headline()["loans"]


def test_a_partners_stored_book_tables_follow_its_shares(writable_book) -> None:
    """A share changed in any allocation of the partner's changes its key: the stored tables
    are not read (its Book is computed live); another partner's are still read."""
    from portfolio.book.summaries import stored_party_book_tables

    db = writable_book.db
    with open_store(db) as store:
        assert stored_party_book_tables(store.con, "bank_east") is not None
        other = {r[0] for r in store.con.execute(
            "SELECT DISTINCT scope FROM book_summaries WHERE scope NOT IN ('', 'bank_east')")
            .fetchall()}
        store.con.execute(
            "UPDATE allocation_shares SET share = share * 0.5 WHERE party_id = 'bank_east' "
            "AND loan_id = (SELECT min(loan_id) FROM allocation_shares "
            "WHERE party_id = 'bank_east' AND share > 0)")
        assert stored_party_book_tables(store.con, "bank_east") is None
        assert other and all(stored_party_book_tables(store.con, p) is not None for p in other)


def test_a_value_swapped_between_two_rows_changes_the_book_key(writable_book) -> None:
    """A region swapped between two loans, or days past due swapped between two performance
    rows, leaves every count and sum as it was but changes what the Book page's tables show
    (balance by region, delinquency buckets): the key must change, or a stale table would be
    read. (An xor over rows of DuckDB's multi-column ``hash(a, b, …)`` does not see such a
    swap: the columns' hashes combine so that the xor cancels.)"""
    with open_store(writable_book.db) as store:
        con = store.con
        key = summary_sql.book_key(con, "v1")
        a, b = con.execute("SELECT loan_id, region FROM loans WHERE region IS NOT NULL "
                           "ORDER BY loan_id LIMIT 1").fetchone()
        c, d = con.execute("SELECT loan_id, region FROM loans WHERE region IS NOT NULL "
                           "AND region <> ? ORDER BY loan_id LIMIT 1", [b]).fetchone()
        con.execute("UPDATE loans SET region = ? WHERE loan_id = ?", [d, a])
        con.execute("UPDATE loans SET region = ? WHERE loan_id = ?", [b, c])
        assert summary_sql.book_key(con, "v1") != key  # regions swapped between two loans
        con.execute("UPDATE loans SET region = ? WHERE loan_id = ?", [b, a])
        con.execute("UPDATE loans SET region = ? WHERE loan_id = ?", [d, c])
        assert summary_sql.book_key(con, "v1") == key
        rows = con.execute("SELECT loan_id, as_of, dpd FROM loan_performance WHERE as_of = "
                           "(SELECT max(as_of) FROM loan_performance) AND dpd > 0 "
                           "ORDER BY loan_id LIMIT 1").fetchall()
        (l1, day, dpd1), = rows
        (l2, dpd2), = con.execute("SELECT loan_id, dpd FROM loan_performance WHERE as_of = ? "
                                  "AND dpd <> ? ORDER BY loan_id LIMIT 1",
                                  [day, dpd1]).fetchall()
        con.execute("UPDATE loan_performance SET dpd = ? WHERE loan_id = ? AND as_of = ?",
                    [dpd2, l1, day])
        con.execute("UPDATE loan_performance SET dpd = ? WHERE loan_id = ? AND as_of = ?",
                    [dpd1, l2, day])
        assert summary_sql.book_key(con, "v1") != key  # days past due swapped between rows
