"""Every page under AppTest as a treasury user: no exception, and the key numbers on the page
equal the library function's output for the same inputs (computed here straight from the
library on the same database, not through the dashboard's access layer)."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from pages_helpers import (
    APP,
    assert_tranches_shown,
    frame_with,
    metric,
    metric_help,
    no_errors,
    page,
)
from streamlit.testing.v1 import AppTest

from dashboards import ui

pytestmark = pytest.mark.usefixtures("dashboard_env")


def _store(db):
    from portfolio.store import open_store

    return open_store(db, read_only=True)


def test_login_then_book(dashboard_env) -> None:
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.text_input(key="login_user").input("treasury")
    at.text_input(key="login_password").input("wrong password")
    at.button(key="login_submit").click().run()
    assert [e.value for e in at.error] == ["Unknown user or wrong password."]
    assert "viewer" not in at.session_state
    at.text_input(key="login_password").input(dashboard_env.passwords["treasury"])
    at.button(key="login_submit").click().run()
    no_errors(at)
    assert at.session_state["viewer"].role == "treasury"
    assert at.title[0].value == "Book"  # the default page after login


def test_book_headline_equals_book_summary(dashboard_env) -> None:
    from portfolio.book.analytics import book_summary

    at = page("book", "treasury")
    no_errors(at)
    con = duckdb.connect(str(dashboard_env.db), read_only=True)
    try:
        groups = book_summary(con).groups
    finally:
        con.close()
    row = groups[groups["dimension"] == "all"].iloc[0]
    assert metric(at, "Loans outstanding") == f"{int(row['loans']):,}"
    # the balance short enough for its column ("7.73 m", not "7,728,1…"), to the cent in its
    # tooltip
    assert metric(at, "Balance (CNY)") == ui.money_short(float(row["balance"]))
    assert metric(at, "Balance (CNY)").endswith(" m")
    assert metric_help(at, "Balance (CNY)") == f"{float(row['balance']):,.2f} CNY"
    assert metric(at, "90+ DPD") == f"{float(row['dpd90_ratio']) * 100:.2f}%"


def test_book_as_of_widget_recomputes(dashboard_env) -> None:
    import datetime as dt

    from portfolio.book.analytics import book_summary

    earlier = dt.date(2025, 12, 31)
    at = page("book", "treasury", widgets={"book_as_of": earlier})
    no_errors(at)
    con = duckdb.connect(str(dashboard_env.db), read_only=True)
    try:
        groups = book_summary(con, earlier).groups
    finally:
        con.close()
    row = groups[groups["dimension"] == "all"].iloc[0]
    assert metric(at, "Loans outstanding") == f"{int(row['loans']):,}"


def test_pools_page_lists_pools_and_strats(dashboard_env) -> None:
    from portfolio.book.pools import list_pools, strats

    at = page("pools", "treasury")
    no_errors(at)
    shown = frame_with(at, "pool_id")
    with _store(dashboard_env.db) as store:
        pools = list_pools(store)
        score = strats(store, dashboard_env.pool_id)["score_band"]
    assert shown["n_loans"].tolist() == [p.n_loans for p in pools]
    assert shown["balance"].tolist() == pytest.approx([p.balance for p in pools])
    total = [d.value for d in at.dataframe if "wa_score" in d.value.columns][0]
    assert total["balance"].tolist() == pytest.approx(score["balance"].tolist())
    assert not at.metric  # the form's criteria selected no saved pool: Preview first
    at.button(key="elig_preview").click().run()
    no_errors(at)
    assert at.metric[0].label == "Eligible loans"


def test_simulation_page_loss_measures_equal_library(dashboard_env) -> None:
    from portfolio.montecarlo.simulation import loss_distribution
    from portfolio.store.runs import load_paths

    at = page("simulation", "treasury")
    no_errors(at)
    with _store(dashboard_env.db) as store:
        stats = loss_distribution(load_paths(store, dashboard_env.run_id))
    assert metric(at, "EL (CNY)") == ui.money_short(stats.el)
    assert metric(at, "VaR 99.9%") == ui.money_short(stats.var[-1])
    assert metric(at, "ES 99.9%") == ui.money_short(stats.es[-1])
    assert metric_help(at, "ES 99.9%") == f"{stats.es[-1]:,.2f} CNY"
    shown = frame_with(at, "measure")
    assert shown["loss"].tolist() == pytest.approx([r["loss"] for r in stats.rows()])


def test_tranches_page_equals_tranche_table(dashboard_env) -> None:
    from portfolio.store.runs import load_paths
    from tranching.analytics import tranche_table
    from tranching.deal import load_deal
    from tranching.revolving import run_replenishment
    from tranching.waterfall import run_waterfall

    at = page("tranches", "treasury", widgets={"tr_deal": "deal_cn_consumer.toml"})
    no_errors(at)
    shown = frame_with(at, "wal_mean")
    assert shown["tranche"].iloc[-1] == "total"  # the classes, then the notes' total row
    from riskpool.commands.demo import EXAMPLES

    deal = load_deal(EXAMPLES / "deal_cn_consumer.toml")
    with _store(dashboard_env.db) as store:
        paths = load_paths(store, dashboard_env.run_id)
        # revolving purchases as new loans: the run's replenishment profile
        profile = run_replenishment(store, dashboard_env.run_id, deal)
    expected = tranche_table(deal, run_waterfall(deal, paths, replenishment=profile), paths,
                             discount=0.05)
    assert_tranches_shown(shown, expected, ("size", "el", "pd", "wal_mean", "price", "ce"))
    # the residual holder (cash including the residual) and a reconciliation that closes
    from tranching.reconcile import residual_table

    result = run_waterfall(deal, paths, replenishment=profile)
    residual = frame_with(at, "money_multiple")
    assert residual["irr"].iloc[0] == pytest.approx(
        residual_table(deal, result).iloc[0]["irr"], rel=1e-12)
    assert residual["irr"].iloc[0] > 0
    recon = frame_with(at, "section")
    assert recon.loc[recon["item"].str.startswith("difference"), "max"].abs().max() <= 1e-6
    assert frame_with(at, "class_interest")["period"].tolist()[0] == 1
    # a rating table fills the rating column
    at = page("tranches", "treasury", widgets={"tr_deal": "deal_cn_consumer.toml",
                                               "tr_rating": "rating_table_illustrative.toml"})
    no_errors(at)
    shown = frame_with(at, "wal_mean")
    assert shown.loc[shown["tranche"] != "total", "rating"].notna().all()


def test_partners_page_exposure_equals_allocation(dashboard_env) -> None:
    from partners.records import load_allocation

    at = page("partners", "treasury")
    no_errors(at)
    shown = frame_with(at, "party_id").set_index("party_id")
    with _store(dashboard_env.db) as store:
        stored = load_allocation(store, dashboard_env.allocation_id)
    expected = dict(zip(stored.party_ids, (stored.shares * stored.balance[:, None]).sum(axis=0),
                        strict=True))
    for pid, amount in expected.items():
        if amount > 0:
            assert shown.loc[pid, "balance"] == pytest.approx(amount, rel=1e-9)
    assert [b.label for b in at.get("download_button")][0].startswith("Download bank_east")


def test_dispersion_page_equals_disperse_paths(dashboard_env) -> None:
    from partners.dispersion import disperse_paths
    from partners.records import load_allocation
    from portfolio.store.runs import load_paths
    from portfolio.store.tranches import load_run_deal
    from tranching.deal import deal_from_dict
    from tranching.revolving import run_replenishment

    at = page("dispersion", "treasury")
    no_errors(at)
    shown = frame_with(at, "party").set_index("party")
    import tomllib

    with _store(dashboard_env.db) as store:
        stored = load_allocation(store, dashboard_env.allocation_id)
        paths = load_paths(store, dashboard_env.run_id)
        deal = deal_from_dict(tomllib.loads(load_run_deal(store, dashboard_env.run_id)
                                            ["deal_toml"]))
        profile = run_replenishment(store, dashboard_env.run_id, deal)
    assert profile is not None  # the example deal revolves: the page uses its profile
    result = disperse_paths(paths, stored.balance, stored.shares, stored.risk.annual_pd,
                            stored.risk.lgd, deal, replenishment=profile)
    expected = pd.DataFrame(result.table()).set_index("party")
    for col in ("exposure", "el", "capital"):
        np.testing.assert_allclose(shown.loc[expected.index, col].to_numpy(float),
                                   expected[col].to_numpy(float), rtol=1e-12)
    # VaR does not add: the total row leaves it empty, so the column is the table's text
    # (ui.with_missing_shown) of the library's numbers, "—" in the total row
    from dashboards import ui
    from dashboards.access import DISPERSION_ADDITIVE, with_total_row

    as_shown = ui.with_missing_shown(with_total_row(expected.reset_index(), "party",
                                                    DISPERSION_ADDITIVE)).set_index("party")
    assert shown["var_999"].tolist() == as_shown["var_999"].tolist()
    assert shown.loc["total", "var_999"] == ui.MISSING
    heads = frame_with(at, "el_share_left")
    assert heads["el_share_left"].tolist() == pytest.approx(
        [h.el_share_left for h in result.headlines])
    # SRT per securitisation scenario: the demo deal fails it, so nothing is released by
    # securitisation alone
    assert heads.set_index("scenario").loc["securitisation", "srt"] == "fail"
    assert heads.set_index("scenario").loc["securitisation", "capital_released"] == 0.0
    srt = frame_with(at, "test")
    assert "CRE40 (1)" in set(srt["test"])
    # the reconciliation: labelled lines whose ELs close (the holders' lines add up to the
    # loss to be borne), and the parties' lines equal the party table's EL
    from partners.reconciliation import reconcile

    rec = frame_with(at, "line")
    combined = rec[rec["scenario"] == "combined"]
    to_bear = combined.loc[combined["line"] == "= loss to be borne", "el"].item()
    assert combined.loc[combined["kind"] == "holder", "el"].sum() == pytest.approx(to_bear, abs=0.01)
    assert abs(combined.loc[combined["kind"] == "difference", "el"].item()) < 0.005
    for pid, el in combined[combined["kind"] == "holder"].groupby("party")["el"].sum().items():
        assert el == pytest.approx(expected.loc[pid, "el"], abs=0.01)
    assert all(r.closes for r in reconcile(result))
    # every line labelled; both pictures close on screen; the pool line is the metric's EL
    assert rec["line"].map(lambda x: isinstance(x, str) and len(x) > 3).all()
    assert (rec.loc[rec["kind"] == "holder", "party"].str.len() > 0).all()
    assert set(rec["scenario"]) == {"combined", "securitisation"}
    for _, sc in rec.groupby("scenario"):
        bear = sc.loc[sc["line"] == "= loss to be borne", "el"].item()
        pool_plus = sc.loc[sc["kind"].isin(["pool", "add"]), "el"].sum()
        assert pool_plus == pytest.approx(bear, abs=0.01)
        assert sc.loc[sc["kind"] == "holder", "el"].sum() == pytest.approx(bear, abs=0.01)
        assert sc.loc[sc["line"] == "= borne by the parties", "el"].item() == pytest.approx(
            bear, abs=0.01)
    views = frame_with(at, "economic_el").set_index("party")
    assert views.loc["platform", "credit_el"] == pytest.approx(expected.loc["platform", "el"])
    # each party's credit view is its row of the party table
    for pid in expected.index:
        assert views.loc[pid, "credit_el"] == pytest.approx(expected.loc[pid, "el"], rel=1e-12)
    # the economic result line by line: each party's lines add up to its economic EL
    econ = frame_with(at, "economic_line")
    assert econ["economic_line"].map(lambda x: isinstance(x, str) and len(x) > 3).all()
    assert set(econ["party"]) == set(views.index) - {"total"}
    for pid, rows in econ.groupby("party"):
        lines = rows.loc[rows["kind"] == "line", "el"].sum()
        total = rows.loc[rows["kind"] == "total", "el"].item()
        assert lines == pytest.approx(total, abs=1e-4)
        assert total == pytest.approx(views.loc[pid, "economic_el"], abs=1e-5)
    # one VaR definition: the pool's figures are the Simulation page's (loss_distribution)
    from portfolio.montecarlo.simulation import loss_distribution

    stats = loss_distribution(paths)
    assert metric(at, "Pool EL (CNY)") == ui.money_short(stats.el)
    assert metric(at, "Pool 99.9% VaR (CNY)") == ui.money_short(stats.var[-1])


def test_reports_page_offers_each_file(dashboard_env) -> None:
    at = page("reports", "treasury")
    no_errors(at)
    hist = frame_with(at, "as_of")
    assert len(hist) >= 2
    labels = [b.label for b in at.get("download_button")]
    assert any(label.endswith(".html") for label in labels)
    assert any(label.endswith(".xlsx") for label in labels)


def test_locked_database_says_data_is_being_updated(demo_book, tmp_path, monkeypatch) -> None:
    """A writer in another process holds the file: the page says so instead of failing."""
    import shutil
    import subprocess
    import sys
    import time

    db = tmp_path / "locked.duckdb"
    shutil.copy(demo_book.db, db)
    monkeypatch.setenv("RISKPOOL_DB", str(db))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); time.sleep(60)", str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        at = page("book", "treasury")
        assert not at.exception
        assert any("data is being updated" in w.value for w in at.warning)
    finally:
        holder.kill()
        holder.wait()
        time.sleep(0.1)


def test_pools_page_saves_a_pool(writable_book, monkeypatch) -> None:
    """Treasury saves the form's selection as a pool (a short write to the database)."""
    from portfolio.book.pools import list_pools

    monkeypatch.setenv("RISKPOOL_DB", str(writable_book.db))
    at = page("pools", "treasury")
    at.number_input(key="elig_obligor").set_value(0.05).run()
    eligible = metric(at, "Eligible loans")
    at.text_input(key="pool_name").input("dashboard pool").run()
    at.button(key="pool_save").click().run()
    no_errors(at)
    with _store(writable_book.db) as store:
        pools = {p.name: p for p in list_pools(store)}
    assert f"{pools['dashboard pool'].n_loans:,}" == eligible
    assert any("Saved pool" in s.value for s in at.success)


def test_cancel_stops_the_simulation_at_the_next_progress_update(dashboard_env) -> None:
    """Streamlit cancels a run by raising from the next st call — here the progress bar. The
    run must stop there, not finish the remaining batches first."""
    from dashboards import access
    from dashboards.auth import Viewer

    class Cancelled(Exception):
        pass

    calls: list[float] = []

    def progress(fraction: float) -> None:
        calls.append(fraction)
        if len(calls) == 2:
            raise Cancelled

    a = access.pool_assumptions(str(dashboard_env.db), Viewer("t", "treasury"),
                                dashboard_env.pool_id)
    with pytest.raises(Cancelled):
        access.simulate_pool(str(dashboard_env.db), Viewer("t", "treasury"),
                             dashboard_env.pool_id, a, n_paths=2560, seed=1, progress=progress)
    assert len(calls) == 2 and calls[-1] < 1.0


def test_tranches_cash_flow_table_shows_gaps_as_a_dash_not_none(dashboard_env) -> None:
    """The cash-flow tape has structural gaps (a fee has no balance, an account no writedown):
    the table shows them as "—", never None/NaN, and every other cell as the number to the
    cent (the tape's own values, formatted by dashboards.ui.with_missing_shown)."""
    from dashboards import access, ui
    from dashboards.auth import Viewer

    at = page("tranches", "treasury")
    no_errors(at)
    viewer = Viewer("tester", "treasury")
    deal = access.stored_deal_toml(str(dashboard_env.db), viewer, dashboard_env.run_id)
    tape = access.tranches(str(dashboard_env.db), viewer, dashboard_env.run_id, deal,
                           0.05).tape.dropna(axis=1, how="all").reset_index(drop=True)
    tables = [d.value for d in at.dataframe if isinstance(d.value, pd.DataFrame)
              and list(d.value.columns) == list(tape.columns)]
    assert len(tables) == 1
    shown = tables[0]
    assert not shown.isna().any().any()
    assert not shown.map(lambda x: x is None or str(x) in ("None", "nan")).any().any()
    gaps = tape["balance_bop"].isna()
    assert gaps.any() and (~gaps).any()
    assert (shown.loc[gaps, "balance_bop"] == ui.MISSING).all()
    for got, want in zip(shown.loc[~gaps, "balance_bop"], tape.loc[~gaps, "balance_bop"],
                         strict=True):
        assert got == f"{want:,.2f}"  # the amount to the cent, with separators
    assert (shown["item"] == tape["item"]).all()


def test_tranche_table_shows_an_undefined_lgl_as_a_dash_not_none(dashboard_env) -> None:
    """A class no path loses on has no loss given loss: the tranche table shows "—" there
    (dashboards.ui.with_missing_shown), never None/NaN; its defined cells are the view's
    numbers as the table formats them."""
    from dashboards import access, ui
    from dashboards.auth import Viewer

    at = page("tranches", "treasury")
    no_errors(at)
    viewer = Viewer("tester", "treasury")
    deal = access.stored_deal_toml(str(dashboard_env.db), viewer, dashboard_env.run_id)
    table = access.tranches(str(dashboard_env.db), viewer, dashboard_env.run_id, deal,
                            0.05).class_table().reset_index(drop=True)
    shown = [d.value for d in at.dataframe if isinstance(d.value, pd.DataFrame)
             and list(d.value.columns) == list(table.columns)]
    assert len(shown) == 1
    got = shown[0].reset_index(drop=True)
    assert not got.isna().any().any()
    gaps = table["lgl"].isna()
    assert gaps.any()  # the test book's senior class loses on no path
    assert (got.loc[gaps, "lgl"] == ui.MISSING).all()
    for col in table.columns:
        if not table[col].isna().any():  # columns without a gap keep the library's values
            assert list(got[col]) == list(table[col])
