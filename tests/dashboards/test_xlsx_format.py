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
from hypothesis import assume, given
from hypothesis import strategies as hyp

from dashboards import labels
from dashboards.labels import internal_name
from dashboards.reports import Section, write_xlsx
from dashboards.xlsx import column_kind, display_width, read_tables
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
    # human headers with units; internal_name reads each back to the column's name
    assert head == ["As of", "Cutoff text", "Region", "Share of pool, %",
                    "Loss share, % of balance", "Balance, CNY", "EL, CNY", "Loans", "Run",
                    "A rather long column header name"]
    col = {internal_name(name): i + 1 for i, name in enumerate(head)}
    assert list(col) == list(FRAME.columns)

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
    assert width["a_rather_long_column_header_name"] >= len("A rather long column header name")
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
    ("p_breach", [0.0, 0.0], "percent"),  # all zero: its name says it is a share
    ("dpd30_ratio", [0.0, float("nan")], "percent"),
    ("el", [0.0, 0.0], "number"),  # an EL of zeros may be CNY: nothing says it is a share
    ("el", [0.0, 0.01], "percent"),
    ("balance", [0.0, 0.0], "number"),
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


# a tranche table as the deal commands write it: shares, years, a rate, a rating
TRANCHES = pd.DataFrame({
    "tranche": ["A", "B"], "size": [224_781_895.16, 10_102_557.09], "size_share": [0.89, 0.04],
    "coupon": [0.032, 0.045], "el": [0.0001, 0.0213], "pd": [0.001, 0.08],
    "lgl": [0.1, 0.27], "wal_mean": [1.35, 1.78], "ce": [0.12, 0.08],
    "var_999": [0.002, 0.31], "cdr": [0.05, 0.05], "rating": ["AAA", None],
})
TRANCHE_HEADERS = ["Class", "Size, CNY", "Size share, % of the pool", "Coupon, %",
                   "EL, % of balance", "PD, %", "LGL, %", "WAL mean, years", "CE, %",
                   "VaR 99.9%, % of balance", "CDR, %", "Rating"]


def _glossary(path: Path) -> dict[str, str]:
    ws = openpyxl.load_workbook(path)["Glossary"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == ("Term", "Definition")
    return {term: text for term, text in rows[1:]}


def _headers_and_glossary(path: Path, sheet: str) -> None:
    ws = openpyxl.load_workbook(path)[sheet]
    head = [c.value for c in ws[1]]
    assert head == TRANCHE_HEADERS
    fmt = {h: ws.cell(row=2, column=i + 1).number_format for i, h in enumerate(head)}
    for h in head:  # every column whose header is a percent carries a % number format
        assert ("%" in fmt[h]) == (", %" in h or ", % of" in h), (h, fmt[h])
    assert fmt["WAL mean, years"] == "General" and fmt["Size, CNY"] == "#,##0.00"
    glossary = _glossary(path)
    # every glossary term a header uses is defined, in one plain line
    used = {t for t in labels.GLOSSARY for h in head if t in h.replace(",", " ").split()}
    assert used == {"EL", "PD", "LGL", "WAL", "CE", "VaR", "CDR"}
    assert used <= set(glossary)
    for term, text in glossary.items():
        assert text == labels.GLOSSARY[term] and "\n" not in text and 20 < len(text) < 200
    assert read_tables(path, sheet_name=sheet).columns.tolist() == list(TRANCHES.columns)


def test_cli_workbook_has_human_headers_and_a_glossary(tmp_path: Path) -> None:
    out = tmp_path / "t.xlsx"
    write_tables({"tranches": TRANCHES}, out)
    assert openpyxl.load_workbook(out).sheetnames == ["tranches", "Glossary"]
    _headers_and_glossary(out, "tranches")


def test_report_workbook_has_human_headers_and_a_glossary(tmp_path: Path) -> None:
    out = tmp_path / "r.xlsx"
    write_xlsx([Section("tranches", "Tranches", {"tranches": TRANCHES})], out,
               dt.date(2026, 6, 30), "2026-07-01T00:00:00")
    assert openpyxl.load_workbook(out).sheetnames[-1] == "Glossary"
    _headers_and_glossary(out, "tranches")


def test_a_glossary_without_terms_lists_them_all(tmp_path: Path) -> None:
    out = tmp_path / "t.xlsx"
    write_tables({"plain": pd.DataFrame({"region": ["浙江"], "loans": [3]})}, out)
    assert list(_glossary(out)) == list(labels.GLOSSARY)


def test_every_glossary_abbreviation_in_a_label_is_defined() -> None:
    """Each label the mapping can produce names only defined abbreviations (words in
    capitals of two or more letters), and reads back to its column name."""
    for name in labels.LABELS:
        for kind in ("percent", "money", "number", "text"):
            text = labels.label(name, kind)
            assert labels.internal_name(text) == name, (name, kind, text)
            caps = {w for w in re.findall(r"[A-Za-z]+", text) if w.isupper() and len(w) > 1}
            assert caps <= set(labels.GLOSSARY) | {"CNY"}, (name, text)
    bases = [b for b, _unit in labels.LABELS.values()]
    assert len(bases) == len(set(bases))  # one base, one column name


_WORDS = hyp.sampled_from(["el", "var", "es", "99", "999", "wa", "apr", "balance", "share",
                           "loss", "m1", "id", "dq", "x", "rate", "mean", "p5", "term"]) | \
    hyp.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)


@given(hyp.lists(_WORDS, min_size=1, max_size=4),
       hyp.sampled_from(["percent", "money", "integer", "number", "text", "date"]))
def test_every_generated_label_reads_back_to_its_name(words: list[str], kind: str) -> None:
    """``internal_name`` reverses ``label`` for any snake_case column name (a name whose
    generated header is another column's fixed label excepted: that clash keeps the column
    name in the workbook, ``write_table``)."""
    name = "_".join(words)
    assume(name in labels.LABELS or labels.base_label(name) not in {
        base for base, _unit in labels.LABELS.values()})
    assert labels.internal_name(labels.label(name, kind)) == name


@pytest.mark.parametrize("name", ["M1", "M1_balance", "M3_loans", "0", "23", "dpd30_ratio",
                                  "credit_var_999", "economic_es_999", "capital_irb"])
def test_the_book_tables_names_read_back(name: str) -> None:
    for kind in ("percent", "money", "text"):
        assert labels.internal_name(labels.label(name, kind)) == name
