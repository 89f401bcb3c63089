"""One formatting layer for every workbook (``dashboards.xlsx``) and partner tapes as sent.

Workbooks are read back with openpyxl (an independent reader): dates are real dates with a
date format, shares and rates carry a % format while keeping their decimal value, amounts have
separators, missing values are empty cells (never "None"), the header row has an autofilter and
is frozen, and columns are as wide as their content. Partner tapes: balances rounded half up
to the cent (2.675 → 2.68, by hand: the third decimal is 5, so the second goes up), shares to 8
decimals (0.6999999999534339 → 0.7), CSV in UTF-8 with a byte-order mark."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from dashboards.reports import Section, write_xlsx
from dashboards.xlsx import column_kind, display_width
from partners.records import rounded_tape, tape_csv
from riskpool.commands.output import write_tables

FRAME = pd.DataFrame({
    "as_of": [dt.date(2026, 6, 30), dt.date(2026, 7, 31), None],
    "cutoff_text": ["2026-06-30", "2026-07-31", None],
    "region": ["浙江省杭州市西湖区", None, "上海"],
    "share_of_pool": [0.0219296, 0.5, np.nan],
    "loss_pct": [0.00002, 0.0, 0.0001],
    "balance": [12345.678, 1_000_000.0, np.nan],
    "el": [150_000.0, 2.5e6, 0.0],  # an EL in CNY: an amount, though its name is a rate's
    "loans": [10_000, 2, 3],
    "run_id": [12345, 2, 3],
    "a_rather_long_column_header_name": ["x", "y", "z"],
})


def _sheet(path: Path, name: str):  # type: ignore[no-untyped-def]
    return openpyxl.load_workbook(path)[name]


def _check(ws) -> None:  # type: ignore[no-untyped-def]
    head = [c.value for c in ws[1]]
    col = {name: i + 1 for i, name in enumerate(head)}

    def cell(name: str, row: int):  # type: ignore[no-untyped-def]
        return ws.cell(row=row, column=col[name])

    assert cell("as_of", 2).value == dt.datetime(2026, 6, 30)
    assert cell("as_of", 2).number_format == "yyyy-mm-dd"
    assert cell("cutoff_text", 3).value == dt.datetime(2026, 7, 31)
    assert cell("share_of_pool", 2).value == pytest.approx(0.0219296)
    assert cell("share_of_pool", 2).number_format == "0.00%"
    assert cell("loss_pct", 2).number_format == "0.0000%"  # 0.002% needs the extra digits
    assert cell("balance", 2).number_format == "#,##0.00"
    assert cell("el", 2).number_format == "#,##0.00"
    assert cell("loans", 2).number_format == "#,##0" and cell("run_id", 2).number_format == "0"
    for name in ("as_of", "share_of_pool", "balance"):  # empty, not "None"
        assert cell(name, 4).value is None
    assert cell("region", 3).value is None
    assert ws.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(len(head))}4"
    assert ws.freeze_panes == "A2"
    width = {name: ws.column_dimensions[openpyxl.utils.get_column_letter(i)].width
             for name, i in col.items()}
    assert width["a_rather_long_column_header_name"] >= len("a_rather_long_column_header_name")
    assert width["region"] >= display_width("浙江省杭州市西湖区") == 18


def test_cli_tables_are_formatted(tmp_path: Path) -> None:
    out = tmp_path / "t.xlsx"
    assert write_tables({"summary": FRAME}, out) == [out]
    _check(_sheet(out, "summary"))


def test_report_tables_are_formatted(tmp_path: Path) -> None:
    out = tmp_path / "r.xlsx"
    write_xlsx([Section("book", "Book", {"summary": FRAME})], out, dt.date(2026, 6, 30),
               "2026-07-01T00:00:00")
    _check(_sheet(out, "summary"))


@pytest.mark.parametrize("name, values, kind", [
    ("apr", [0.18, 0.24], "percent"),
    ("apr", [18.0, 24.0], "number"),  # percent points are not shares: no % format
    ("p_breach", [0.0, 0.0], "number"),  # all zero: nothing says it is a share
    ("wal_mean", [0.8, 1.2], "number"),
    ("balance", [5.0, 50.0], "number"),
    ("balance", [500.0, 50.0], "money"),
])
def test_column_kinds(name: str, values: list[float], kind: str) -> None:
    assert column_kind(name, pd.Series(values)) == kind


def test_partner_tapes_are_rounded_and_carry_a_bom() -> None:
    tape = pd.DataFrame({"loan_id": ["L1", "L2", "L3"], "region": ["浙江", "上海", "广东"],
                         "share": [0.6999999999534339, 0.3, 1.0],
                         "balance": [2.675, 1234.5650000001, 99.994999]})
    out = rounded_tape(tape)
    assert out["share"].tolist() == [0.7, 0.3, 1.0]
    assert out["balance"].tolist() == [2.68, 1234.57, 99.99]
    assert tape["balance"].tolist()[0] == 2.675  # the input is not changed
    data = tape_csv(out)
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    assert text.splitlines()[0] == "loan_id,region,share,balance"
    assert "L1,浙江,0.7,2.68" in text


def test_an_exported_partner_csv_is_rounded_with_a_bom(tmp_path: Path, cli) -> None:
    from portfolio.store import open_store
    from portfolio.synthetic.generate import generate_book

    db = tmp_path / "book.duckdb"
    with open_store(db) as store:
        generate_book(store, 2000, 4, seed=4, as_of=dt.date(2026, 10, 31))
    partners = Path(__file__).resolve().parents[2] / "examples" / "partners.toml"
    r = cli("allocate", "--db", db, "--partners", partners, "--originated", "2026-10-01",
            "2026-10-31")
    assert r.code == 0, r.err
    out = tmp_path / "bank_east.csv"
    r = cli("allocate", "export", "--db", db, "--allocation", "1", "--partner", "bank_east",
            "--out", out, "--borrower-ids", "raw")
    assert r.code == 0, r.err
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(out, encoding="utf-8-sig", dtype=str)
    assert len(back) > 0
    assert all(re.fullmatch(r"\d+(\.\d{1,2})?", b) for b in back["balance"])
    assert all(len(s.split(".")[-1]) <= 8 for s in back["share"] if "." in s)
    # the rounded balances add up to the unrounded ones within half a cent a loan
    from portfolio.store import allocations as sql

    with open_store(db, read_only=True) as store:
        exact = sql.partner_tape(store.con, 1, "bank_east")["balance"].sum()
    assert abs(back["balance"].astype(float).sum() - exact) <= 0.005 * len(back)
