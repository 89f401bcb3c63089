"""A partner user sees its own loans and positions only — through every page, widget value and
query parameter, and through the data-access layer itself.

Independent source for "its own": the partner's rows of ``allocation_shares`` read here with
plain SQL on the database file.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from pages_helpers import (
    OTHER_PARTNER,
    PAGES,
    PARTNER,
    all_text,
    frame_with,
    metric,
    metric_help,
    no_errors,
    page,
)

from dashboards import access, ui
from dashboards.auth import Viewer

pytestmark = pytest.mark.usefixtures("dashboard_env")
ME = Viewer("bank_user", f"partner:{PARTNER}")
OTHERS = ("bank_north", "west_trust", "hangzhou_city")


def _own(db) -> pd.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "SELECT s.loan_id, s.share, CAST(p.balance AS DOUBLE) AS balance "
            "FROM allocation_shares s JOIN loan_performance p ON p.loan_id = s.loan_id "
            "WHERE s.party_id = ? AND s.share > 0 AND p.as_of = (SELECT max(as_of) FROM "
            "loan_performance)", [PARTNER]).df()
    finally:
        con.close()


def _other_figures(db, allocation_id: int) -> list[str]:
    """Other partners' balances in the allocation, as the pages would format them."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT s.party_id, sum(a.balance * s.share) FROM allocation_shares s "
            "JOIN allocation_loans a USING (allocation_id, loan_id) WHERE allocation_id = ? "
            "AND s.party_id <> ? AND s.party_id <> 'platform' GROUP BY 1",
            [allocation_id, PARTNER]).fetchall()
    finally:
        con.close()
    # to the yuan (tables' text, the CLI) and to the cent (a metric's tooltip)
    return [f"{float(b):,{fmt}}" for _, b in rows if b > 1000 for fmt in (".0f", ".2f")]


@pytest.mark.parametrize("name", PAGES)
def test_no_page_shows_another_partner(dashboard_env, name: str) -> None:
    """Query parameters naming another partner, the pool, the run and the allocation."""
    query = {"partner": OTHER_PARTNER, "run": str(dashboard_env.run_id),
             "allocation": str(dashboard_env.allocation_id), "pool": str(dashboard_env.pool_id)}
    at = page(name, ME.role, query=query)
    no_errors(at)
    text = all_text(at)
    for other in OTHERS:
        assert other not in text, f"{name} shows {other}"
    for figure in _other_figures(dashboard_env.db, dashboard_env.allocation_id):
        assert figure not in text, f"{name} shows another partner's balance {figure}"


def test_book_page_counts_only_own_loans(dashboard_env) -> None:
    """The pool was cut at the book's as-of from current loans, so at that date every one of
    the partner's loans is outstanding: the headline is its loan count and the sum of its
    share × balance, computed here with plain SQL."""
    own = _own(dashboard_env.db)
    at = page("book", ME.role)
    no_errors(at)
    expected_balance = float((own["balance"] * own["share"]).sum())
    assert metric(at, "Loans outstanding") == f"{len(own):,}"
    assert metric(at, "Balance (CNY)") == ui.money_short(expected_balance)
    assert metric_help(at, "Balance (CNY)") == f"{expected_balance:,.2f} CNY"
    assert access.book(dashboard_env.db, ME).headline()["balance"] == pytest.approx(
        expected_balance, rel=1e-12)


def test_partners_page_export_is_own_tape_only(dashboard_env) -> None:
    at = page("partners", ME.role, query={"partner": OTHER_PARTNER})
    no_errors(at)
    assert at.selectbox(key="export_party").options == [PARTNER]
    parties = frame_with(at, "party_id")
    assert parties["party_id"].tolist() == [PARTNER]
    checks = frame_with(at, "check") if any("check" in d.value.columns for d in at.dataframe
                                            if isinstance(d.value, pd.DataFrame)) else None
    if checks is not None:
        assert set(checks["party"]) <= {PARTNER}


def test_tranches_and_dispersion_only_own_positions(dashboard_env) -> None:
    at = page("dispersion", ME.role)
    no_errors(at)
    assert frame_with(at, "party")["party"].tolist() == [PARTNER]
    assert not any("el_share_left" in d.value.columns for d in at.dataframe)
    at = page("tranches", ME.role)
    no_errors(at)
    assert all(d.value.get("holder", pd.Series([PARTNER])).eq(PARTNER).all()
               for d in at.dataframe if "wal_mean" in d.value.columns)
    # the deal's reconciliation and excess spread are the treasury's; the residual holder's
    # return only for the holder of the subordinated tranche (the platform)
    assert not any("section" in d.value.columns or "money_multiple" in d.value.columns
                   for d in at.dataframe)


def test_simulation_shows_own_party_losses(dashboard_env) -> None:
    from partners.dispersion import party_paths
    from portfolio.montecarlo.simulation import loss_distribution
    from portfolio.store import open_store
    from portfolio.store.runs import load_paths

    at = page("simulation", ME.role, query={"run": str(dashboard_env.run_id)})
    no_errors(at)
    with open_store(dashboard_env.db, read_only=True) as store:
        mine = party_paths(load_paths(store, dashboard_env.run_id), PARTNER)
        pool = load_paths(store, dashboard_env.run_id)
    assert metric(at, "EL (CNY)") == ui.money_short(loss_distribution(mine).el)
    assert metric_help(at, "EL (CNY)") == f"{loss_distribution(mine).el:,.2f} CNY"
    assert metric_help(at, "EL (CNY)") != f"{loss_distribution(pool).el:,.2f} CNY"


def test_access_layer_refuses_other_partner(dashboard_env) -> None:
    db = dashboard_env.db
    with pytest.raises(access.AccessDenied, match="own tape"):
        access.partner_tape(db, ME, dashboard_env.allocation_id, OTHER_PARTNER)
    tape = access.partner_tape(db, ME, dashboard_env.allocation_id, PARTNER)
    assert set(tape["loan_id"]) <= set(_own(db)["loan_id"])
    with pytest.raises(access.AccessDenied, match="treasury"):
        access.save_pool(db, ME, "mine", {"eligibility": {}}, pd.Timestamp("2026-06-30").date())
    # through the cached wrapper too (the cache key carries the role)
    from dashboards import ui

    with pytest.raises(access.AccessDenied):
        ui.partner_tape_csv(str(db), "v", ME.username, ME.role, dashboard_env.allocation_id,
                            OTHER_PARTNER)


def test_scoped_connection_holds_only_own_loans(dashboard_env) -> None:
    with access.connect(dashboard_env.db, ME) as store:
        loan_ids = {r[0] for r in store.con.execute("SELECT loan_id FROM loans").fetchall()}
        tables = set(r[0] for r in store.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = "
            "current_database()").fetchall())
        partners_rows = store.con.execute("SELECT partner_id FROM partners").fetchall()
    assert loan_ids == set(_own(dashboard_env.db)["loan_id"])
    assert "runs" not in tables and "ingest_batches" not in tables
    assert partners_rows == [(PARTNER,)]


@pytest.mark.parametrize("name", ["pools", "simulation", "tranches", "partners", "dispersion",
                                  "book"])
def test_every_widget_value_stays_in_scope(dashboard_env, name: str) -> None:
    """Each selectbox of the page set to each of its options (up to three; the book's as-of
    list only at its ends): nothing of another partner shows."""
    at = page(name, ME.role)
    keys = [sb.key for sb in at.selectbox if sb.key]
    for key in keys:
        options = list(at.selectbox(key=key).options)
        sample = options[:1] + options[-1:] if key == "book_as_of" else options[:3]
        for option in sample:
            at.selectbox(key=key).select(option).run()
            no_errors(at)
            text = all_text(at)
            for other in OTHERS:
                assert other not in text, f"{name}: {key}={option} shows {other}"


def test_partner_cannot_download_treasury_report(dashboard_env) -> None:
    hist = access.report_history(dashboard_env.db, Viewer("t", "treasury"))
    treasury_runs = hist[hist["partner"].isna()]["run_id"].tolist()
    own = access.report_history(dashboard_env.db, ME)
    assert set(own["partner"]) == {PARTNER}
    assert not set(treasury_runs) & set(own["run_id"])
    with pytest.raises(access.AccessDenied, match="not visible"):
        access.report_file(dashboard_env.db, ME, int(treasury_runs[0]),
                           f"riskpool_report_{dashboard_env.as_of}.html")


def test_partner_deal_runs_on_own_share_only(dashboard_env) -> None:
    """A deal the partner uploads or edits runs on its own share of the run's paths: the
    classes' sizes add up to the partner's own pool balance, computed here with plain SQL
    (sum of share × cut-off balance over its loans in the pool) times the 90% the example
    deal issues, and no holder is shown."""
    from pathlib import Path

    deal = (Path(__file__).resolve().parents[2] / "examples" / "deal_us_consumer.toml"
            ).read_text().replace('holder = "investors"', f'holder = "{PARTNER}"', 1)
    view = access.tranches(dashboard_env.db, ME, dashboard_env.run_id, deal)
    assert view.basis == access.OWN_SHARE_BASIS
    assert "holder" not in view.table.columns
    con = duckdb.connect(str(dashboard_env.db), read_only=True)
    try:
        own = con.execute(
            "SELECT sum(CAST(p.cutoff_balance AS DOUBLE) * s.share) FROM pool_loans p "
            "JOIN allocation_shares s USING (loan_id) WHERE p.pool_id = ? AND "
            "s.allocation_id = ? AND s.party_id = ?",
            [dashboard_env.pool_id, dashboard_env.allocation_id, PARTNER]).fetchone()[0]
    finally:
        con.close()
    # the example's classes are 0.70 + 0.12 + 0.08 of the pool (initial_oc = 0.10 not issued)
    assert float(view.table["size"].sum()) == pytest.approx(0.90 * float(own), rel=1e-9)
    treasury = access.tranches(dashboard_env.db, Viewer("t", "treasury"), dashboard_env.run_id,
                               deal)
    assert float(treasury.table["size"].sum()) > 2 * float(own)


def test_partner_dispersion_only_with_the_stored_deal(dashboard_env) -> None:
    """A partner cannot bring its own deal (and so its own holders) to the dispersion."""
    from pathlib import Path

    deal = (Path(__file__).resolve().parents[2] / "examples" / "deal_us_consumer.toml"
            ).read_text()
    with pytest.raises(access.AccessDenied, match="cannot name tranche holders"):
        access.dispersion(dashboard_env.db, ME, dashboard_env.run_id,
                          dashboard_env.allocation_id, deal)
    stored = access.stored_deal_toml(dashboard_env.db, ME, dashboard_env.run_id)
    assert stored is not None
    view = access.dispersion(dashboard_env.db, ME, dashboard_env.run_id,
                             dashboard_env.allocation_id, stored)
    assert view.parties["party"].tolist() == [PARTNER]


def test_allocation_reads_filtered_by_party_equal_the_partners_scope(dashboard_env) -> None:
    """The allocation list and party row a partner gets (read on the book with its id as the
    filter, without building its scope) are exactly what its scope's views give."""
    from portfolio.store import reports as sql

    db = str(dashboard_env.db)
    con = sql.open_partner_scope(db, PARTNER)
    try:
        scoped = sql.allocation_list(con)
        scoped_parties = sql.party_shares(con, dashboard_env.allocation_id)
    finally:
        con.close()
    mine = access.allocations(db, ME)
    pd.testing.assert_frame_equal(mine, scoped)
    assert len(mine) >= 1
    view = access.allocation(db, ME, dashboard_env.allocation_id)
    assert view.parties["party_id"].tolist() == [PARTNER] == scoped_parties["party_id"].tolist()
    assert int(view.parties["loans"].iloc[0]) == int(scoped_parties["loans"].iloc[0])
    assert view.parties["balance"].iloc[0] == pytest.approx(scoped_parties["balance"].iloc[0],
                                                            rel=1e-12)
    treasury = access.allocation(db, Viewer("t", "treasury"), dashboard_env.allocation_id)
    assert len(treasury.parties) > 1  # the partner's is one row of several


def test_the_pool_scope_holds_the_whole_scopes_pool_rows(demo_book) -> None:
    """The Pools page reads a partner's pools through the scope's pool tables only
    (``POOL_SCOPE``, without copying its loans and performance): the same pool list and strats
    as the whole scope, and the same rows in pool_loans (its own loans, its share)."""
    from portfolio.book.pools import list_pools, strats
    from portfolio.store import Store
    from portfolio.store.reports import POOL_SCOPE, open_partner_scope, scope_tables

    db = demo_book.db
    whole = open_partner_scope(db, PARTNER, threads=1)
    part = open_partner_scope(db, PARTNER, threads=1, only=POOL_SCOPE)
    try:
        assert set(scope_tables(part)) == set(POOL_SCOPE)
        query = "SELECT * FROM pool_loans ORDER BY pool_id, loan_id"
        pd.testing.assert_frame_equal(whole.execute(query).df(), part.execute(query).df())
        a, b = Store(db, whole, True), Store(db, part, True)
        assert list_pools(a) == list_pools(b) and len(list_pools(b)) >= 1
        for info in list_pools(b):
            for name, frame in strats(a, info.pool_id).items():
                pd.testing.assert_frame_equal(frame, strats(b, info.pool_id)[name],
                                              check_exact=False, rtol=1e-12)
        other = open_partner_scope(db, OTHER_PARTNER, threads=1, only=POOL_SCOPE)
        try:  # another partner's pool rows are not this partner's
            assert set(other.execute("SELECT loan_id FROM pool_loans").df()["loan_id"]) != \
                set(part.execute("SELECT loan_id FROM pool_loans").df()["loan_id"])
        finally:
            other.close()
    finally:
        whole.close()
        part.close()
