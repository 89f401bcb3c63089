"""Partner tapes as XLSX (``riskpool allocate export --format xlsx`` or ``--out x.xlsx``, the
Partners page's second download) beside the BOM CSV: read back with openpyxl (an independent
reader), every balance equals the CSV's to the cent, dates are Excel dates, headers are the
workbooks' labels, and the masked borrower ids (``partners.masking``, the mechanism the CSV
uses) never equal a raw id and are stable per partner."""

from __future__ import annotations

import datetime as dt
import io
import shutil
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from dashboards import access
from dashboards.auth import Viewer
from dashboards.labels import internal_name
from dashboards.xlsx import tape_xlsx
from portfolio.store import open_store
from portfolio.synthetic.generate import generate_book

ROOT = Path(__file__).resolve().parents[2]
PARTNERS = ROOT / "examples" / "partners.toml"
TWO = ("bank_east", "hangzhou_city")


@pytest.fixture(scope="module")
def allocated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from riskpool.cli import main

    path = tmp_path_factory.mktemp("tapes") / "book.duckdb"
    with open_store(path) as store:
        generate_book(store, 3000, 6, seed=4, as_of=dt.date(2026, 10, 31))
    try:
        main(["allocate", "--db", str(path), "--partners", str(PARTNERS), "--originated",
              "2026-10-01", "2026-10-31"])
    except SystemExit as exc:
        assert not exc.code
    return path


@pytest.fixture
def db(allocated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("RISKPOOL_PARTNER_KEYS", raising=False)
    dst = tmp_path / "db.duckdb"
    shutil.copy(allocated, dst)
    return dst


def _sheet(source: Path | bytes) -> tuple[list[str], list[tuple], openpyxl.Workbook]:
    data = source if isinstance(source, bytes) else source.read_bytes()
    book = openpyxl.load_workbook(io.BytesIO(data))
    ws = book["tape"]
    rows = list(ws.iter_rows())
    return [c.value for c in rows[0]], rows[1:], book


def _column(head: list[str], rows: list[tuple], name: str) -> list:
    j = [internal_name(h) for h in head].index(name)
    return [r[j] for r in rows]


def _export(cli, db: Path, party: str, out: Path, *extra: str) -> None:
    r = cli("allocate", "export", "--db", db, "--allocation", "1", "--partner", party,
            "--out", out, *extra)
    assert r.code == 0, r.err


def test_xlsx_tape_equals_the_csv_to_the_cent_with_dates(cli, db: Path, tmp_path: Path) -> None:
    csv, xlsx = tmp_path / "east.csv", tmp_path / "east.xlsx"
    _export(cli, db, "bank_east", csv, "--borrower-ids", "raw")
    _export(cli, db, "bank_east", xlsx, "--borrower-ids", "raw")
    text = pd.read_csv(csv, encoding="utf-8-sig", dtype=str)
    head, rows, book = _sheet(xlsx)
    assert book.sheetnames == ["tape", "Glossary"]
    assert head == ["Loan id", "Borrower id", "Origination date", "APR, %",
                    "Original term, months", "Repayment type", "Credit score", "Region",
                    "Share, %", "Balance, CNY"]
    assert len(rows) == len(text) > 20
    # every balance: the CSV's decimal text, as a number, to the cent
    cents = [round(float(b) * 100) for b in text["balance"]]
    cells = _column(head, rows, "balance")
    assert [round(c.value * 100) for c in cells] == cents
    assert [c.value for c in cells] == [float(b) for b in text["balance"]]
    assert all(c.number_format == "#,##0.00" for c in cells)
    shares = _column(head, rows, "share")
    assert [c.value for c in shares] == [float(s) for s in text["share"]]
    assert all("%" in c.number_format for c in shares)
    # dates are dates (an Excel date serial with a date format), equal to the CSV's text
    dates = _column(head, rows, "origination_date")
    assert all(isinstance(c.value, dt.datetime) and c.number_format == "yyyy-mm-dd"
               for c in dates)
    assert [c.value.date().isoformat() for c in dates] == [t[:10] for t in
                                                           text["origination_date"]]
    assert [c.value for c in _column(head, rows, "loan_id")] == list(text["loan_id"])
    assert [c.value for c in _column(head, rows, "region")] == list(text["region"])


def test_masked_ids_never_raw_and_stable_per_partner(cli, db: Path, tmp_path: Path) -> None:
    raw: dict[str, list[str]] = {}
    masked: dict[str, list[str]] = {}
    for party in TWO:
        _export(cli, db, party, tmp_path / f"{party}_raw.csv", "--borrower-ids", "raw")
        raw[party] = list(pd.read_csv(tmp_path / f"{party}_raw.csv", encoding="utf-8-sig",
                                      dtype=str)["borrower_id"])
        runs = []
        for n in range(2):  # two exports: by suffix, then by --format with another name
            out = tmp_path / (f"{party}_{n}.xlsx" if n == 0 else f"{party}_{n}.tape")
            _export(cli, db, party, out, *(["--format", "xlsx"] if n else []))
            head, rows, _book = _sheet(out)
            runs.append([c.value for c in _column(head, rows, "borrower_id")])
        assert runs[0] == runs[1]  # stable for the partner
        masked[party] = runs[0]
        assert len(masked[party]) == len(raw[party]) > 0
        assert all(m.startswith("bk_") for m in masked[party])
        everyone = set(raw[TWO[0]]) | set(raw[party])
        assert not set(masked[party]) & everyone  # never a raw pseudonymous id
        assert all(m != r for m, r in zip(masked[party], raw[party], strict=True))
        # the CSV of the same export holds the same masked ids (one mechanism)
        _export(cli, db, party, tmp_path / f"{party}_m.csv")
        csv_ids = list(pd.read_csv(tmp_path / f"{party}_m.csv", encoding="utf-8-sig",
                                   dtype=str)["borrower_id"])
        assert csv_ids == masked[party]
    # two partners never share a masked id (the tapes cannot be joined on it)
    assert set(masked[TWO[0]]).isdisjoint(masked[TWO[1]])


def test_borrower_ids_none_leaves_the_column_out(cli, db: Path, tmp_path: Path) -> None:
    out = tmp_path / "east.xlsx"
    _export(cli, db, "bank_east", out, "--borrower-ids", "none")
    head, rows, _book = _sheet(out)
    assert "Borrower id" not in head and len(rows) > 0


@pytest.mark.parametrize(("out", "extra", "message"), [
    ("east.csv", ["--format", "xlsx"], "--out"),  # the suffix says another format
    ("east.txt", [], "--out"),
    ("east.xlsx", ["--format", "pdf"], "--format"),
])
def test_a_bad_format_is_refused_before_writing(cli, db: Path, tmp_path: Path, out: str,
                                                extra: list[str], message: str) -> None:
    target = tmp_path / out
    r = cli("allocate", "export", "--db", db, "--allocation", "1", "--partner", "bank_east",
            "--out", target, *extra)
    assert r.code == 2 and message in r.err and "Traceback" not in r.err, r.err
    assert not target.exists()


def test_dashboard_xlsx_download_is_the_masked_tape(db: Path) -> None:
    """The Partners page's XLSX: the same rows as its CSV (``access.partner_tape``)."""
    tape = access.partner_tape(db, Viewer("east", "partner:bank_east"), 1, "bank_east")
    head, rows, _book = _sheet(tape_xlsx(tape))
    assert [c.value for c in _column(head, rows, "borrower_id")] == list(tape["borrower_id"])
    assert [c.value for c in _column(head, rows, "balance")] == list(tape["balance"])
