"""Scheduled reports: HTML parses and holds every section with inline charts and no external
reference; the XLSX opens with openpyxl and its tables equal the library's; idempotent for an
as-of date; the lock; the run record; the partner report holds only that partner; no
borrower identifier anywhere."""

from __future__ import annotations

import datetime as dt
import os
import re
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import numpy as np
import openpyxl
import pandas as pd
import pytest
from pages_helpers import PARTNER

from dashboards.labels import internal_name
from dashboards.reports import SECTIONS, ReportLocked, report_lock
from portfolio.store import liveness

AS_OF = dt.date(2026, 6, 30)


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.h2: list[str] = []
        self.imgs: list[str] = []
        self.links: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "h2":
            self._in_h2 = True
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for key in ("href", "src"):
            if key in a and tag not in ("img",):
                self.links.append(a[key])
        if tag in ("script", "link"):
            self.links.append(tag)

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data):
        if self._in_h2:
            self.h2.append(data)


def _sheet(path: Path, name: str) -> pd.DataFrame:
    wb = openpyxl.load_workbook(path, read_only=True)
    rows = list(wb[name].iter_rows(values_only=True))
    wb.close()
    # the headers are labels ("Balance, CNY"): read back to the column names
    return pd.DataFrame(rows[1:], columns=[internal_name(c) for c in rows[0]])


@dataclass(frozen=True)
class Written:
    html_path: Path
    xlsx_path: Path
    content_sha256: str


def _recorded(demo_book, partner: str | None) -> Written:
    """A report the demo pipeline wrote (and recorded) when it built the test book."""
    con = duckdb.connect(str(demo_book.db), read_only=True)
    try:
        cond = "IS NULL" if partner is None else "= ?"
        row = con.execute(
            "SELECT json_extract_string(summary, '$.content_sha256') FROM runs "
            "WHERE kind = 'report' AND json_extract_string(inputs, '$.partner') " + cond
            + " ORDER BY run_id LIMIT 1", [] if partner is None else [partner]).fetchone()
    finally:
        con.close()
    stem = f"riskpool_report_{AS_OF.isoformat()}" + (f"_{partner}" if partner else "")
    return Written(demo_book.report_dir / f"{stem}.html", demo_book.report_dir / f"{stem}.xlsx",
                   row[0])


@pytest.fixture
def treasury_report(demo_book) -> Written:
    return _recorded(demo_book, None)


def test_html_is_self_contained_with_every_section(treasury_report) -> None:
    text = treasury_report.html_path.read_text(encoding="utf-8")
    parser = _Collect()
    parser.feed(text)
    assert parser.h2 == [title for _, title in SECTIONS]
    assert parser.imgs and all(src.startswith("data:image/png;base64,") for src in parser.imgs)
    # only in-page anchors: opens offline
    assert all(link.startswith("#") for link in parser.links), parser.links
    assert "http://" not in text and "https://" not in text


def test_xlsx_tables_equal_the_library(treasury_report, demo_book) -> None:
    from portfolio.book.analytics import book_summary, roll_rates
    from portfolio.store import open_store
    from portfolio.store.runs import load_paths
    from portfolio.store.tranches import load_run_deal
    from tranching.analytics import tranche_table
    from tranching.deal import deal_from_dict
    from tranching.revolving import run_replenishment
    from tranching.waterfall import run_waterfall

    path = treasury_report.xlsx_path
    wb = openpyxl.load_workbook(path, read_only=True)
    names = wb.sheetnames
    wb.close()
    for sheet in ("book_summary", "delinquency", "vintage_cumulative_default", "roll_rates",
                  "loss_distribution", "tranches", "allocation_parties", "rule_checks",
                  "dispersion_parties", "dispersion_headline", "residual_holder",
                  "reconciliation", "excess_spread"):
        assert sheet in names
    con = duckdb.connect(str(demo_book.db), read_only=True)
    try:
        summary = book_summary(con, AS_OF).groups
        rolls = roll_rates(con, to_date=AS_OF).matrix
    finally:
        con.close()
    got = _sheet(path, "book_summary")
    np.testing.assert_allclose(got["balance"].astype(float), summary["balance"], rtol=1e-12)
    assert got["loans"].tolist() == summary["loans"].tolist()
    got = _sheet(path, "roll_rates")
    assert got["from_bucket"].iloc[-1] == "total"  # the buckets, then their total
    assert float(got["balance"].iloc[-1]) == pytest.approx(rolls["balance"].sum(), rel=1e-12)
    np.testing.assert_allclose(got["cure_rate"].iloc[:-1].astype(float), rolls["cure_rate"],
                               rtol=1e-12)

    import tomllib

    with open_store(demo_book.db, read_only=True) as store:
        paths = load_paths(store, demo_book.run_id)
        deal = deal_from_dict(tomllib.loads(load_run_deal(store, demo_book.run_id)["deal_toml"]))
        # revolving purchases as new loans: the run's replenishment profile
        profile = run_replenishment(store, demo_book.run_id, deal)
    expected = tranche_table(deal, run_waterfall(deal, paths, replenishment=profile), paths)
    got = _sheet(path, "tranches")
    assert got["tranche"].tolist() == [*expected["tranche"], "total"]  # + the notes' total
    assert float(got["size"].iloc[-1]) == pytest.approx(expected["size"].sum(), rel=1e-12)
    got = got.iloc[:-1]
    for col in ("el", "pd", "wal_mean", "price", "ce"):
        np.testing.assert_allclose(got[col].astype(float), expected[col].astype(float),
                                   rtol=1e-12, equal_nan=True)
    # formatted: frozen header row on every table sheet
    with zipfile.ZipFile(path) as z:
        sheet_xml = z.read("xl/worksheets/sheet2.xml").decode()
    assert 'state="frozen"' in sheet_xml


def test_partner_report_holds_only_that_partner(demo_book) -> None:
    out = _recorded(demo_book, PARTNER)
    text = out.html_path.read_text(encoding="utf-8")
    for other in ("bank_north", "west_trust", "hangzhou_city"):
        assert other not in text
    wb = openpyxl.load_workbook(out.xlsx_path, read_only=True)
    cells = " ".join(str(c) for ws in wb.worksheets for row in ws.iter_rows(values_only=True)
                     for c in row if c is not None)
    wb.close()
    for other in ("bank_north", "west_trust", "hangzhou_city"):
        assert other not in cells
    assert _sheet(out.xlsx_path, "allocation_parties")["party_id"].tolist() == [PARTNER]


def test_no_borrower_identifier_in_reports(treasury_report, demo_book) -> None:
    con = duckdb.connect(str(demo_book.db), read_only=True)
    try:
        borrowers = {r[0] for r in con.execute("SELECT borrower_id FROM loans").fetchall()}
    finally:
        con.close()
    html_text = treasury_report.html_path.read_text(encoding="utf-8")
    with zipfile.ZipFile(treasury_report.xlsx_path) as z:
        xml = " ".join(z.read(n).decode("utf-8", "ignore") for n in z.namelist())
    tokens = set(re.findall(r"[A-Za-z0-9]{12,}", html_text + " " + xml))
    assert not tokens & borrowers


def test_run_record_and_cli_lock_exit_code(writable_book, tmp_path, cli) -> None:
    out = tmp_path / "cron"
    r = cli("report", "--db", writable_book.db, "--as-of", "2026-06-30", "--out", out)
    assert r.code == 0, r.err
    con = duckdb.connect(str(writable_book.db), read_only=True)
    try:
        row = con.execute("SELECT status, json_extract_string(inputs, '$.as_of') FROM runs "
                          "WHERE kind = 'report' ORDER BY run_id DESC LIMIT 1").fetchone()
    finally:
        con.close()
    assert row == ("ok", "2026-06-30")
    # idempotent: the same as-of on the same inputs gives the demo's recorded content again;
    # the files differ only in the generation timestamp line
    recorded = _recorded(writable_book, None)
    con = duckdb.connect(str(writable_book.db), read_only=True)
    try:
        digest = con.execute("SELECT json_extract_string(summary, '$.content_sha256') FROM runs "
                             "WHERE kind = 'report' ORDER BY run_id DESC LIMIT 1").fetchone()[0]
    finally:
        con.close()
    assert digest == recorded.content_sha256

    def strip(p: Path) -> str:
        return "\n".join(x for x in p.read_text().splitlines() if "generated-at" not in x)

    new_html = out / recorded.html_path.name
    assert strip(new_html) == strip(recorded.html_path)
    assert new_html.read_text() != recorded.html_path.read_text()
    # a live holder: this process (hostname, pid, start time: portfolio.store.liveness)
    (out / ".riskpool-report.lock").write_text(liveness.me().to_json())
    r = cli("report", "--db", writable_book.db, "--as-of", "2026-06-30", "--out", out)
    assert r.code == 3
    assert "another report run" in r.err
    (out / ".riskpool-report.lock").unlink()


def test_stale_lock_is_taken_over(tmp_path) -> None:
    lock = tmp_path / ".riskpool-report.lock"
    lock.write_text("999999999")  # no such process
    with report_lock(tmp_path):
        held = liveness.read_holder(lock)
        assert held is not None and held.pid == os.getpid()
    assert not lock.exists()
    with report_lock(tmp_path), pytest.raises(ReportLocked, match="another report run"), \
            report_lock(tmp_path):
        pass


def test_cli_bad_inputs_exit_2(demo_book, tmp_path, cli) -> None:
    r = cli("report", "--db", demo_book.db, "--as-of", "2026-06-31", "--out", tmp_path)
    assert r.code == 2 and "--as-of" in r.err
    r = cli("report", "--db", demo_book.db, "--as-of", "2026-06-30", "--out", tmp_path,
            "--partner", "nobody")
    assert r.code == 2 and "--partner" in r.err
    r = cli("report", "--db", demo_book.db, "--as-of", "2026-06-15", "--out", tmp_path)
    assert r.code == 2 and "month-end" in r.err


def test_report_workbook_headers_are_labels_defined_in_its_glossary(treasury_report) -> None:
    """Every table sheet of the recorded report: its headers are the labels of its columns
    (read back to the names the library uses), every abbreviation a header uses (a word in
    capitals, such as WAL, CE, DPD, M1) is on the Glossary sheet, and the sheet lists just
    those."""
    import re

    from dashboards import labels

    wb = openpyxl.load_workbook(treasury_report.xlsx_path, read_only=True)
    headers: list[str] = []
    for ws in wb.worksheets:
        if ws.title in ("about", "Glossary"):
            continue
        head = [str(c) for c in next(ws.iter_rows(values_only=True))]
        assert len(set(head)) == len(head), ws.title  # one header, one column
        assert [labels.internal_name(h) for h in head] != head or all(
            h.isdigit() for h in head), ws.title  # labels, not the internal names
        headers += head
    glossary = {row[0]: row[1] for row in list(wb["Glossary"].iter_rows(values_only=True))[1:]}
    wb.close()
    caps = {w for h in headers for w in re.findall(r"[A-Za-z][A-Za-z0-9]*", h)
            if len(w) > 1 and w.upper() == w}
    assert caps - {"CNY"} <= set(glossary), caps - set(glossary)
    assert list(glossary) == labels.glossary_terms(headers)
    for term in ("EL", "VaR", "ES", "WAL", "CE", "DPD", "CDR", "SRT", "M1"):
        assert term in glossary, term
    assert "Balance, CNY" in headers and "WAL mean, years" in headers


def test_report_party_tables_show_their_total_and_close_to_it(treasury_report, demo_book
                                                              ) -> None:
    # the allocation's party table splits the pool, the dispersion's splits the exposure, the
    # loss to be borne and the capital: each ends with a "total" row of the column sums, which
    # close to the pool's balance (share 1) and to the party rows; VaR and ES are left empty
    # (quantiles do not add), loans is the pool's (a joint loan is held by several parties),
    # as `riskpool allocate show` prints it
    from partners.records import load_allocation
    from portfolio.store import open_store

    path = treasury_report.xlsx_path
    with open_store(demo_book.db, read_only=True) as store:
        stored = load_allocation(store, 1)
        pool, pool_loans = float(stored.balance.sum()), len(stored.balance)
    alloc = _sheet(path, "allocation_parties")
    assert alloc["party_id"].iloc[-1] == "total"
    body, total = alloc.iloc[:-1], alloc.iloc[-1]
    assert float(total["balance"]) == pytest.approx(body["balance"].astype(float).sum(), abs=0.01)
    assert float(total["balance"]) == pytest.approx(pool, abs=0.01)
    assert float(total["share_of_pool"]) == pytest.approx(1.0, abs=1e-9)
    assert int(total["loans"]) == pool_loans
    assert body["loans"].astype(int).sum() > pool_loans  # joint loans: rows do not add up
    disp = _sheet(path, "dispersion_parties")
    assert disp["party"].iloc[-1] == "total"
    body, total = disp.iloc[:-1], disp.iloc[-1]
    for col in ("exposure", "el", "capital"):
        assert float(total[col]) == pytest.approx(body[col].astype(float).sum(), rel=1e-12)
    assert float(total["exposure"]) == pytest.approx(pool, abs=0.01)
    assert pd.isna(total["var_999"]) and pd.isna(total["es_999"])
