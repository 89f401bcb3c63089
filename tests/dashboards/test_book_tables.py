"""What the Book page and the report's book section hold, read from the data behind their
tables (``dashboards.access.book``, ``dashboards.reports.collect_sections``), not the
rendered text:

- a month-end whose tape covers only part of the book (the README tour's 2026-07-31: its 700
  new loans, none of the loans performing at June's end) has blank — not 0 — MDR/CDR,
  SMM/CPR, MPR, delinquent balances and delinquency shares, and is named with the CLI's note
  (``portfolio.book.analytics.partial_month_note``, the same function ``riskpool book summary``
  prints), for the treasury and for a partner;
- every table that splits a total shows the total and closes to it: the delinquency buckets
  (``total outstanding`` = the book summary's balance, as ``riskpool book delinquency``), the
  mix by each dimension (its groups, then the whole book), the default rate by score band
  (its bands, then all seasoned loans).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from pages_helpers import PARTNER, page

from dashboards import access, reports
from dashboards.auth import Viewer
from portfolio.book.analytics import BAND_TOTAL, TOTAL_OUTSTANDING

TREASURY = Viewer("t", "treasury")
PARTNER_VIEWER = Viewer("p", f"partner:{PARTNER}")
KEEP_EVERY = 3  # one loan in three of the latest month's tape kept; the others do not report
RATES = ["mdr", "cdr", "smm", "cpr", "mpr"]


def _day(x: object) -> dt.date:
    return pd.Timestamp(x).date()  # type: ignore[arg-type]


@pytest.fixture
def partial_book(writable_book) -> tuple[Path, dt.date, dt.date]:
    """The demo book with its latest month-end's tape cut to one loan in ``KEEP_EVERY`` (a
    month loaded for part of the book; the partner's loans too); returns the database, that
    month-end and the one before."""
    con = duckdb.connect(str(writable_book.db))
    try:
        ends = [r[0] for r in con.execute(
            "SELECT DISTINCT as_of FROM loan_performance ORDER BY as_of").fetchall()]
        latest = ends[-1]
        con.execute("""DELETE FROM loan_performance WHERE as_of = ? AND hash(loan_id) % ? <> 0""",
                    [latest, KEEP_EVERY])
    finally:
        con.close()
    return writable_book.db, latest, ends[-2]


def _row(frame: pd.DataFrame, day: dt.date) -> pd.Series:
    rows = frame[[_day(d) == day for d in frame["as_of"]]]
    assert len(rows) == 1, (day, frame["as_of"].tolist())
    return rows.iloc[0]


@pytest.mark.parametrize("viewer", [TREASURY, PARTNER_VIEWER], ids=["treasury", "partner"])
def test_a_month_reported_for_part_of_the_book_is_blank_and_named(partial_book, cli,
                                                                  viewer) -> None:
    db, latest, before = partial_book
    view = access.book(db, viewer)
    assert view.as_of == latest
    # named: (month-end, loans performing a month before, of which reported), as the CLI's
    # MonthlyRates.incomplete, and the CLI's note with the latest complete month-end
    assert [m for m, _, _ in view.incomplete] == [latest]
    (_, start, reported), = view.incomplete
    assert reported < start
    note = view.partial_note()
    assert note is not None and f"only {reported:,} of the {start:,} loans" in note
    assert f"the latest complete month-end is {before.isoformat()}" in note
    # blank, not 0: the month's rates, delinquent balances and delinquency shares
    detail = access.book_detail(db, viewer, latest)
    assert _row(detail.rates, latest)[RATES].isna().all()
    assert _row(detail.delinquency_shares, latest)[
        ["M1", "M2", "M3", "default", "dpd30"]].isna().all()
    assert _row(detail.delinquency_by_month, latest).drop("as_of").isna().all()
    # the month before is complete: its figures are the book's, and it is not named
    assert np.isfinite(_row(detail.rates, before)[["mdr", "cdr", "smm", "cpr"]]
                       .to_numpy(dtype=float)).all()
    assert np.isfinite(_row(detail.delinquency_shares, before)["dpd30"])
    assert access.book(db, viewer, before).partial_note() is None
    if viewer.is_treasury:  # the CLI prints the same note for the same month-end
        out = cli("book", "summary", "--db", db)
        assert out.code == 0, out.err
        assert note in out.out


def test_the_report_names_the_partial_month_and_leaves_it_blank(partial_book) -> None:
    db, latest, _ = partial_book
    sections = {s.key: s for s in reports.collect_sections(
        db, TREASURY, latest, reports.ReportTarget(None, None, "given"))}
    book = sections["book"]
    view = access.book(db, TREASURY, latest)
    note = view.partial_note()
    assert note is not None and note[1:] in book.note  # the CLI's note, capitalised
    assert f"{latest.isoformat()} ({view.incomplete[0][2]:,} of" in book.note
    assert _row(book.tables["rates"], latest)[RATES].isna().all()
    assert _row(book.tables["delinquency_by_month"], latest).drop("as_of").isna().all()


def test_the_book_page_warns_at_a_partial_month(partial_book, monkeypatch) -> None:
    db, latest, before = partial_book
    monkeypatch.setenv("RISKPOOL_DB", str(db))
    at = page("book", "treasury")
    warnings = [str(w.value) for w in at.warning]
    assert any(f"performing a month before {latest.isoformat()}" in w
               and f"latest complete month-end is {before.isoformat()}" in w
               for w in warnings), warnings


@pytest.mark.parametrize("viewer", [TREASURY, PARTNER_VIEWER], ids=["treasury", "partner"])
def test_book_tables_that_split_a_total_show_it(demo_book, viewer) -> None:
    view = access.book(demo_book.db, viewer)
    overall = view.summary[view.summary["dimension"] == "all"].iloc[0]
    # delinquency buckets: current .. default, then their total (= the book summary's),
    # then written off (cumulative, apart)
    dq = view.delinquency.set_index("bucket")
    assert list(dq.index) == ["current", "M1", "M2", "M3", "default", TOTAL_OUTSTANDING,
                              "written_off"]
    is_open = ["current", "M1", "M2", "M3", "default"]
    total = dq.loc[TOTAL_OUTSTANDING]
    assert total["loans"] == dq.loc[is_open, "loans"].sum() == overall["loans"]
    assert total["balance"] == pytest.approx(dq.loc[is_open, "balance"].sum(), rel=1e-12)
    assert total["balance"] == pytest.approx(overall["balance"], rel=1e-12)
    assert total["balance_share"] == pytest.approx(1.0)
    # the mix by each dimension ends with the whole book, which its groups add up to, and
    # whose balance-weighted averages they give
    for dim in [d for d in view.summary["dimension"].unique() if d != "all"]:
        mix = view.mix(dim)
        groups, last = mix.iloc[:-1], mix.iloc[-1]
        assert last["group"] == access.MIX_TOTAL and (groups["dimension"] == dim).all()
        assert last["loans"] == groups["loans"].sum() == overall["loans"]
        assert last["balance"] == pytest.approx(groups["balance"].sum(), rel=1e-9)
        assert groups["balance_share"].sum() == pytest.approx(1.0)
        w = groups["balance"] / groups["balance"].sum()
        assert last["wa_apr"] == pytest.approx(float((w * groups["wa_apr"]).sum()), rel=1e-9)
        assert last["dpd30_ratio"] == pytest.approx(
            float((w * groups["dpd30_ratio"]).sum()), rel=1e-9, abs=1e-12)
    # default by score band: the bands, then all seasoned loans (their sums; the rate of
    # the sums)
    bands = view.default_by_score_band
    assert bands["score_band"].iloc[-1] == BAND_TOTAL
    body, last = bands.iloc[:-1], bands.iloc[-1]
    for col in ("loans", "principal", "defaulted_loans", "defaulted_balance"):
        assert last[col] == pytest.approx(body[col].sum(), rel=1e-12)
    if last["principal"] > 0:
        assert last["default_rate"] == pytest.approx(
            last["defaulted_balance"] / last["principal"], rel=1e-12)
