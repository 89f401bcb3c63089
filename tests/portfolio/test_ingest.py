"""Strict tape ingestion (issue 2 §3): one test per rule, all-or-nothing, rejects, reloads.

Row convention in every message: row N is the N-th data line, file line N + 1.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolio.book.ingest import (
    LOAN_REQUIRED,
    TapeKind,
    check_loans,
    ingest,
    read_tape,
)
from portfolio.errors import TapeRejected, ValidationError
from portfolio.store import open_store
from portfolio.store.ingest import book_fingerprint, fetch_rejects, list_batches

# The CLI checks "not in the future" against the real date, so the tests use it too.
TODAY = date.today()
TOMORROW = (TODAY + timedelta(days=1)).isoformat()
GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "tapes"
HEADER = (
    "loan_id,borrower_id,origination_date,principal,apr,term_months,repayment_type,"
    "credit_score,region,channel,product"
)
COLUMNS = HEADER.split(",")


def loan(i: int, **over: str) -> dict[str, str]:
    row = {
        "loan_id": f"L{i:05d}",
        "borrower_id": f"b{i:05d}x",
        "origination_date": "2024-03-15",
        "principal": "8000.00",
        "apr": "0.18",
        "term_months": "12",
        "repayment_type": "level_annuity",
        "credit_score": "720",
        "region": "浙江",
        "channel": "app",
        "product": "jiebei",
    }
    row.update(over)
    return row


def csv_text(rows: list[dict[str, str]], columns: list[str] = COLUMNS) -> str:
    lines = [",".join(columns)]
    lines += [",".join(r.get(c, "") for c in columns) for r in rows]
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, text: str, name: str = "tape.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def load(db: Path, path: Path, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("today", TODAY)
    with open_store(db) as store:
        return ingest(store, path, **kw)


def fingerprint(db: Path) -> dict[str, tuple[int, int]]:
    with open_store(db, read_only=True) as store:
        return book_fingerprint(store.con)


def query(db: Path, sql: str, params: list[object] | None = None) -> list[tuple]:
    with open_store(db, read_only=True) as store:
        return store.con.execute(sql, params or []).fetchall()


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("seeded") / "seeded.duckdb"
    load(db, GOLDEN / "loans_small.csv")
    return db


@pytest.fixture(scope="module")
def seeded_fingerprint(seeded_template: Path) -> dict[str, tuple[int, int]]:
    """The seeded book's content fingerprint (each ``seeded_db`` is a byte copy of it)."""
    return fingerprint(seeded_template)


@pytest.fixture
def seeded_db(seeded_template: Path, db_path: Path) -> Path:
    """A database with the 5 golden loans already loaded (batch 1); a copy per test."""
    shutil.copyfile(seeded_template, db_path)
    return db_path


# ------------------------------------------------------------------ a good tape


def test_golden_tape_loads_every_field_as_given(db_path: Path) -> None:
    result = load(db_path, GOLDEN / "loans_small.csv")
    assert (result.n_rows, result.n_loaded, result.n_rejected, result.n_duplicates) == (5, 5, 0, 0)
    rows = query(
        db_path,
        "SELECT loan_id, borrower_id, origination_date, principal, apr, term_months, "
        "repayment_type, credit_score, region, channel, product, batch_id FROM loans ORDER BY 1",
    )
    assert rows[0] == (
        "JB-0001", "u7f3a91", date(2024, 1, 15), Decimal("8000.00"), 0.18, 12,
        "level_annuity", 720, "浙江", "app", "jiebei", result.batch_id,
    )
    # Chinese labels stored as English names; blank optional text is NULL; money exact.
    assert [r[6] for r in rows] == [
        "level_annuity", "level_annuity", "equal_principal", "interest_only", "daily_interest",
    ]
    assert rows[3][8] is None and rows[4][10] is None
    assert rows[4][3] == Decimal("12000.99") and rows[1][3] == Decimal("1500.50")
    assert rows[2][2] == date(2024, 2, 29)
    (batch,) = list_batches(open_store(db_path, read_only=True).con)
    assert batch.kind == "loans" and batch.n_rows == 5 and batch.n_loaded == 5
    assert batch.source.endswith("loans_small.csv") and len(batch.sha256) == 64
    assert batch.started_at <= batch.finished_at


# ------------------------------------------------------------------ one test per rule

RULES = [
    # (field overrides for data row 2, column, rule, fragment of the message)
    ({"principal": "0"}, "principal", "R5_principal_cap", "(0, 200,000]"),
    ({"principal": "200000.01"}, "principal", "R5_principal_cap", "(0, 200,000]"),
    ({"principal": "-5"}, "principal", "R5_principal_cap", "got '-5'"),
    ({"principal": "8000.005"}, "principal", "cents", "whole cents"),
    ({"principal": ""}, "principal", "required", "required"),
    ({"principal": "\"8,000\""}, "principal", "numeric", "got '8,000'"),
    ({"apr": "0.2401"}, "apr", "R9_apr_cap", "[0, 0.24]"),
    ({"apr": "-0.01"}, "apr", "R9_apr_cap", "[0, 0.24]"),
    ({"apr": "18.5"}, "apr", "R9_apr_cap", "looks like a percent: use 0.185"),
    ({"apr": "NaN"}, "apr", "numeric", "got 'NaN'"),
    ({"apr": "inf"}, "apr", "numeric", "finite number"),
    ({"apr": "abc"}, "apr", "numeric", "got 'abc'"),
    ({"term_months": "7"}, "term_months", "allowed_term", "one of 3, 6, 9, 12, 18, 24"),
    ({"term_months": "12.5"}, "term_months", "integer", "whole number"),
    ({"term_months": " "}, "term_months", "required", "required"),
    ({"repayment_type": "interest_only", "term_months": "18"}, "term_months", "R6_bullet_term",
     "at most 12 for interest_only"),
    ({"repayment_type": "先息后本", "term_months": "24"}, "term_months", "R6_bullet_term",
     "先息后本"),
    ({"origination_date": "2024-02-30"}, "origination_date", "iso_date", "ISO date"),
    ({"origination_date": "2024/03/15"}, "origination_date", "iso_date", "YYYY-MM-DD"),
    ({"origination_date": "2024-3-5"}, "origination_date", "iso_date", "got '2024-3-5'"),
    ({"origination_date": TOMORROW}, "origination_date", "not_future", "on or before today"),
    ({"credit_score": "349"}, "credit_score", "score_range", "[350, 950]"),
    ({"credit_score": "951"}, "credit_score", "score_range", "[350, 950]"),
    ({"credit_score": "720.5"}, "credit_score", "integer", "whole number"),
    ({"repayment_type": "balloon"}, "repayment_type", "repayment_type", "等额本息"),
    ({"repayment_type": ""}, "repayment_type", "required", "required"),
    ({"loan_id": ""}, "loan_id", "required", "required"),
    ({"borrower_id": "  "}, "borrower_id", "required", "required"),
    ({"borrower_id": "13912345678"}, "borrower_id", "no_pii", "pseudonymous"),
    ({"borrower_id": "33010619900101123X"}, "borrower_id", "no_pii", "ID-card"),
]


@pytest.mark.parametrize(("over", "column", "rule", "fragment"), RULES)
def test_each_rule_refuses_the_whole_tape_and_leaves_the_db_unchanged(  # type: ignore[no-untyped-def]
    cli,
    tmp_path: Path,
    seeded_db: Path,
    seeded_fingerprint: dict[str, tuple[int, int]],
    over: dict[str, str],
    column: str,
    rule: str,
    fragment: str,
) -> None:
    """Through the command line: exit 2, the row/column/rule/value named, nothing written.
    (The library raises the same ``TapeRejected``; see the tests below.)"""
    before = seeded_fingerprint
    path = write(tmp_path, csv_text([loan(1), loan(2, **over), loan(3)]))
    r = cli("ingest", path, "--db", seeded_db)
    assert r.code == 2 and "Traceback" not in r.err
    assert r.err.startswith("error: tape.csv: refused, 1 bad row(s); nothing was loaded")
    (problem,) = [line for line in r.err.splitlines() if f"[rule {rule}]" in line]
    assert f"`{column}`" in problem and "at row 2 (line 3)" in problem
    assert fragment in problem
    assert fingerprint(seeded_db) == before


def test_each_rule_lands_in_ingest_rejects_with_allow_rejects(
    tmp_path: Path, db_path: Path
) -> None:
    rows = [loan(i, **over) for i, (over, *_rest) in enumerate(RULES, start=1)]
    rows.append(loan(999))
    path = write(tmp_path, csv_text(rows))
    result = load(db_path, path, allow_rejects=True)
    assert (result.n_rows, result.n_loaded, result.n_rejected) == (len(RULES) + 1, 1, len(RULES))
    assert query(db_path, "SELECT loan_id FROM loans") == [("L00999",)]
    rejects = fetch_rejects(open_store(db_path, read_only=True).con, result.batch_id)
    found = {(r[0], r[1], r[2]) for r in rejects}
    for row, (_over, column, rule, _) in enumerate(RULES, start=1):
        assert (row, column, rule) in found, (row, column, rule)
    by_row = {r[0]: r for r in rejects if r[2] == "R9_apr_cap" and r[3] == "18.5"}
    (row_number, column, rule, value, message, raw_row) = next(iter(by_row.values()))
    assert column == "apr" and value == "18.5" and "looks like a percent" in message
    assert '"apr": "18.5"' in raw_row and '"region": "浙江"' in raw_row
    (batch,) = list_batches(open_store(db_path, read_only=True).con)
    assert (batch.n_rows, batch.n_loaded, batch.n_rejected) == (len(RULES) + 1, 1, len(RULES))


def test_every_bad_row_is_listed(tmp_path: Path, db_path: Path) -> None:
    rows = [loan(1), loan(2, apr="0.3"), loan(3), loan(4, principal="0", credit_score="1"),
            loan(5, term_months="5")]
    with pytest.raises(TapeRejected) as info:
        load(db_path, write(tmp_path, csv_text(rows)))
    err = info.value
    assert err.n_bad_rows == 3
    assert len(err.problems) == 4
    text = str(err)
    for where in ("row 2 (line 3)", "row 4 (line 5)", "row 5 (line 6)"):
        assert where in text
    assert not db_path.exists() or fingerprint(db_path)["loans"][0] == 0


def test_custom_apr_cap(tmp_path: Path, db_path: Path) -> None:
    path = write(tmp_path, csv_text([loan(1, apr="0.30")]))
    with pytest.raises(TapeRejected, match=r"\[0, 0.24\]"):
        load(db_path, path)
    assert load(db_path, path, apr_cap=0.36).n_loaded == 1
    with pytest.raises(ValidationError, match="apr_cap"):
        load(db_path, path, apr_cap=24)


def test_interest_only_at_twelve_months_and_edges_pass(tmp_path: Path, db_path: Path) -> None:
    rows = [
        loan(1, repayment_type="interest_only", term_months="12"),
        loan(2, principal="200000", apr="0.24", credit_score="950"),
        loan(3, principal="0.01", apr="0", credit_score="350", origination_date=TODAY.isoformat()),
        loan(4, apr="1e-1"),
    ]
    result = load(db_path, write(tmp_path, csv_text(rows)))
    assert result.n_loaded == 4


def test_duplicate_loan_id_in_file_lists_all_rows(tmp_path: Path, db_path: Path) -> None:
    rows = [loan(1), loan(2), loan(1, principal="500"), loan(3)]
    with pytest.raises(TapeRejected, match="unique_loan_id") as info:
        load(db_path, write(tmp_path, csv_text(rows)))
    problems = info.value.problems
    assert info.value.n_bad_rows == 2
    assert any("at row 1 (line 2) [rule unique_loan_id] (also on rows 3)" in p for p in problems)
    assert any("at row 3 (line 4) [rule unique_loan_id] (also on rows 1)" in p for p in problems)


def test_truncated_last_line_is_refused(tmp_path: Path, db_path: Path) -> None:
    text = csv_text([loan(1), loan(2)]) + "L00003,b3,2024-03-15,800"  # no newline, 4 fields
    with pytest.raises(TapeRejected, match="truncated") as info:
        load(db_path, write(tmp_path, text))
    (problem,) = info.value.problems
    assert "row 3 (line 4, the last line) has 4 of 11 fields" in problem
    assert "[rule truncated_last_line]" in problem


def test_wrong_field_count_inside_the_file(tmp_path: Path, db_path: Path) -> None:
    text = csv_text([loan(1)]) + "L2,b2,2024-03-15,800,0.1,12,level_annuity,700,x,y,z,extra\n"
    text += csv_text([loan(3)]).split("\n", 1)[1]
    with pytest.raises(TapeRejected, match="field_count") as info:
        load(db_path, write(tmp_path, text))
    (problem,) = info.value.problems
    assert "row 2 (line 3) has 12 fields; the header has 11" in problem
    # With --allow-rejects the two good rows load and the raw line is kept.
    result = load(db_path, write(tmp_path, text), allow_rejects=True)
    assert (result.n_rows, result.n_loaded, result.n_rejected) == (3, 2, 1)
    rejects = fetch_rejects(open_store(db_path, read_only=True).con, result.batch_id)
    assert rejects[0][0] == 2 and rejects[0][2] == "field_count" and "extra" in rejects[0][5]


def test_empty_lines(tmp_path: Path, db_path: Path) -> None:
    inner = csv_text([loan(1)]) + "\n" + csv_text([loan(2)]).split("\n", 1)[1]
    with pytest.raises(TapeRejected, match=r"empty line at row 2 \(line 3\) \[rule empty_row\]"):
        load(db_path, write(tmp_path, inner))
    trailing = csv_text([loan(1), loan(2)]) + "\n\n"
    result = load(db_path, write(tmp_path, trailing, "trailing.csv"))
    assert result.n_loaded == 2
    assert any("empty line(s) at the end" in n for n in result.notes)


def test_missing_required_column_names_it(tmp_path: Path, db_path: Path) -> None:
    for column in LOAN_REQUIRED:
        cols = [c for c in COLUMNS if c != column]
        path = write(tmp_path, csv_text([loan(1)], cols))
        with pytest.raises(ValidationError, match=f"missing required column.*`{column}`"):
            load(db_path, path)
    assert not db_path.exists() or fingerprint(db_path)["ingest_batches"][0] == 0


def test_wrong_delimiter_and_wrong_format_get_a_hint(tmp_path: Path, db_path: Path) -> None:
    semicolons = csv_text([loan(1)]).replace(",", ";")
    with pytest.raises(ValidationError, match="separated by commas"):
        load(db_path, write(tmp_path, semicolons))
    with pytest.raises(ValidationError, match="must be CSV or Parquet; got a .xlsx file"):
        load(db_path, write(tmp_path, "PK\x03\x04", "tape.xlsx"))


def test_performance_tape_under_kind_loans_gets_a_hint(db_path: Path) -> None:
    with pytest.raises(ValidationError, match="use --kind performance"):
        load(db_path, GOLDEN / "performance_small.csv")


def test_unknown_columns_are_ignored_with_a_note(tmp_path: Path, db_path: Path) -> None:
    cols = ["note", *COLUMNS, "phone_hash"]
    result = load(db_path, write(tmp_path, csv_text([loan(1)], cols)))
    assert result.n_loaded == 1
    assert any("ignored unknown column(s): 'note', 'phone_hash'" in n for n in result.notes)
    (batch,) = list_batches(open_store(db_path, read_only=True).con)
    assert "phone_hash" in (batch.note or "")


def test_header_names_are_trimmed_and_columns_may_come_in_any_order(
    tmp_path: Path, db_path: Path
) -> None:
    cols = list(reversed(COLUMNS))
    text = csv_text([loan(1)], cols).replace("loan_id", " loan_id ", 1)
    assert load(db_path, write(tmp_path, text)).n_loaded == 1


# ------------------------------------------------------------------ encodings and formats


def test_utf8_with_bom(tmp_path: Path, db_path: Path) -> None:
    path = write(tmp_path, "\ufeff" + csv_text([loan(1, region="广东")]))
    result = load(db_path, path)
    assert result.n_loaded == 1
    assert query(db_path, "SELECT region FROM loans") == [("广东",)]


def test_gbk_file_is_decoded_and_chinese_survives(tmp_path: Path, db_path: Path) -> None:
    rows = [loan(1, region="浙江", repayment_type="等额本金"), loan(2, region="黑龙江")]
    path = write(tmp_path, csv_text(rows), encoding="gbk")
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    # not UTF-8: refused without --encoding, the message showing each encoding's reading
    with pytest.raises(ValidationError, match="tried gb18030: '等额本金'.*cp1252.*--encoding"):
        load(db_path, path)
    result = load(db_path, path, encoding="gbk")
    assert result.n_loaded == 2
    assert any("decoded as gbk" in n for n in result.notes)
    assert query(db_path, "SELECT region, repayment_type FROM loans ORDER BY loan_id") == [
        ("浙江", "equal_principal"),
        ("黑龙江", "level_annuity"),
    ]


def test_undecodable_bytes_are_refused_with_an_encoding_message(
    tmp_path: Path, db_path: Path
) -> None:
    data = csv_text([loan(1)]).encode("utf-8") + ",".join(loan(2).values()).encode() + b"\xff\n"
    path = tmp_path / "bad.csv"
    path.write_bytes(data)
    with pytest.raises(ValidationError, match="encoding must be UTF-8.*re-save the file as UTF-8"):
        load(db_path, path)


def test_utf16_is_refused_with_an_encoding_message(tmp_path: Path, db_path: Path) -> None:
    path = write(tmp_path, csv_text([loan(1)]), encoding="utf-16")
    with pytest.raises(ValidationError, match="looks like UTF-16.*re-save the file as CSV UTF-8"):
        load(db_path, path)


def test_parquet_tape(tmp_path: Path, db_path: Path) -> None:
    frame = pd.DataFrame([loan(1), loan(2), loan(3)])
    typed = frame.assign(
        principal=frame["principal"].astype(float),
        apr=frame["apr"].astype(float),
        term_months=frame["term_months"].astype(int),
        credit_score=frame["credit_score"].astype(int),
        origination_date=pd.to_datetime(frame["origination_date"]).dt.date,
    )
    path = tmp_path / "tape.parquet"
    pq.write_table(pa.Table.from_pandas(typed, preserve_index=False), path)
    assert load(db_path, path).n_loaded == 3
    assert query(db_path, "SELECT sum(principal) FROM loans") == [(Decimal("24000.00"),)]

    bad = typed.assign(apr=[0.18, 18.0, np.nan])
    bad_path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pandas(bad, preserve_index=False), bad_path)
    with pytest.raises(TapeRejected) as info:
        load(db_path, bad_path)
    problems = info.value.problems
    assert any("got '18.0' at row 2 [rule R9_apr_cap]; looks like a percent: use 0.18" in p for p in problems)
    assert any("`apr` must be present" in p and "got None at row 3 " in p for p in problems)


# ------------------------------------------------------------------ reloads, overlaps, literal ids


def test_same_file_twice_is_a_reported_no_op(seeded_db: Path) -> None:
    before = fingerprint(seeded_db)
    again = load(seeded_db, GOLDEN / "loans_small.csv")
    assert again.already_loaded and again.n_loaded == 0
    assert "already loaded as batch 1" in again.summary()
    assert fingerprint(seeded_db) == before


def test_overlapping_tape_skips_identical_rows_and_loads_new_ones(
    tmp_path: Path, seeded_db: Path
) -> None:
    golden = (GOLDEN / "loans_small.csv").read_text(encoding="utf-8").splitlines()
    # Same two loans (one written differently: trailing zeros, English name) plus a new one.
    text = "\n".join([
        golden[0],
        golden[1].replace("8000.00", "8000").replace("等额本息", "level_annuity"),
        golden[2],
        "JB-0006,u1,2024-04-01,100.00,0.1,3,level_annuity,700,上海,app,jiebei",
    ]) + "\n"
    result = load(seeded_db, write(tmp_path, text))
    assert (result.n_loaded, result.n_duplicates, result.n_rejected) == (1, 2, 0)
    assert any("skipped 2 row(s) identical" in n for n in result.notes)
    assert query(seeded_db, "SELECT count(*) FROM loans") == [(6,)]


def test_a_different_row_under_an_existing_id_is_refused(tmp_path: Path, seeded_db: Path) -> None:
    before = fingerprint(seeded_db)
    golden = (GOLDEN / "loans_small.csv").read_text(encoding="utf-8").splitlines()
    text = "\n".join([golden[0], golden[3].replace("200000.00", "150000.00")]) + "\n"
    with pytest.raises(TapeRejected, match="book_conflict") as info:
        load(seeded_db, write(tmp_path, text))
    (problem,) = info.value.problems
    assert "got 'JB-0003' at row 1 (line 2)" in problem
    assert "principal 200000.00 in the book vs 150000.00 here" in problem
    assert fingerprint(seeded_db) == before


def test_sql_looking_id_is_stored_literally(tmp_path: Path, db_path: Path) -> None:
    evil = "1'; DROP TABLE loans;--"
    rows = [loan(1, loan_id=f'"{evil}"', borrower_id="Robert'); --"), loan(2)]
    result = load(db_path, write(tmp_path, csv_text(rows)))
    assert result.n_loaded == 2
    assert query(db_path, "SELECT borrower_id FROM loans WHERE loan_id = ?", [evil]) == [
        ("Robert'); --",)
    ]


# ------------------------------------------------------------------ performance tapes

PERF_HEADER = (
    "loan_id,as_of,months_on_book,balance,paid_principal,paid_interest,prepaid_principal,"
    "dpd,status,charge_off,recovery"
)


def perf(loan_id: str = "JB-0002", **over: str) -> dict[str, str]:
    row = {
        "loan_id": loan_id, "as_of": "2024-03-31", "months_on_book": "2", "balance": "1000.50",
        "paid_principal": "500.00", "paid_interest": "9.13", "prepaid_principal": "0",
        "dpd": "0", "status": "current", "charge_off": "0", "recovery": "0",
    }
    row.update(over)
    return row


def test_performance_golden_tape_loads(seeded_db: Path) -> None:
    result = load(seeded_db, GOLDEN / "performance_small.csv", kind=TapeKind.PERFORMANCE)
    assert (result.n_loaded, result.n_rejected) == (5, 0)
    assert query(
        seeded_db,
        "SELECT balance, paid_principal, dpd, status FROM loan_performance "
        "WHERE loan_id = 'JB-0001' AND as_of = DATE '2024-02-29'",
    ) == [(Decimal("7386.56"), Decimal("613.44"), 0, "current")]


PERF_RULES = [
    ({"loan_id": "NOPE-1"}, "loan_id", "unknown_loan", "load the loan tape first"),
    ({"as_of": "2024-03-30"}, "as_of", "month_end", "month-end"),
    ({"as_of": "2024-04-31"}, "as_of", "iso_date", "ISO date"),
    ({"as_of": "2099-12-31"}, "as_of", "not_future", "on or before today"),
    ({"as_of": "2023-12-31"}, "as_of", "before_origination", "origination_date 2024-01-31"),
    ({"balance": "-1"}, "balance", "non_negative", ">= 0"),
    ({"balance": ""}, "balance", "required", "required"),
    ({"paid_interest": "-0.01"}, "paid_interest", "non_negative", ">= 0"),
    ({"recovery": "x"}, "recovery", "numeric", "finite number"),
    ({"dpd": "-3"}, "dpd", "non_negative", ">= 0"),
    ({"dpd": "2.5"}, "dpd", "integer", "whole number"),
    ({"months_on_book": "-1"}, "months_on_book", "non_negative", ">= 0"),
    ({"status": "late"}, "status", "status", "current, delinquent, default, prepaid, matured"),
    ({"status": "current", "dpd": "5"}, "dpd", "status_dpd", "0 for status current"),
    ({"status": "delinquent", "dpd": "0"}, "dpd", "status_dpd", "in [1, 90] for status"),
    ({"status": "delinquent", "dpd": "91"}, "dpd", "status_dpd", "in [1, 90] for status"),
    ({"status": "default", "dpd": "90"}, "dpd", "status_dpd", "> 90 for status default"),
    ({"balance": "1500.51"}, "balance", "balance_above_principal", "principal 1500.50"),
]


@pytest.mark.parametrize(("over", "column", "rule", "fragment"), PERF_RULES)
def test_each_performance_rule(  # type: ignore[no-untyped-def]
    cli,
    tmp_path: Path,
    seeded_db: Path,
    seeded_fingerprint: dict[str, tuple[int, int]],
    over: dict[str, str],
    column: str,
    rule: str,
    fragment: str,
) -> None:
    before = seeded_fingerprint
    rows = [perf(as_of="2024-02-29", months_on_book="1"), perf(**over)]
    path = write(tmp_path, csv_text(rows, PERF_HEADER.split(",")))
    r = cli("ingest", path, "--db", seeded_db, "--kind", "performance")
    assert r.code == 2 and "refused, 1 bad row(s)" in r.err
    (problem,) = [line for line in r.err.splitlines() if "[rule " in line]
    assert f"`{column}`" in problem
    assert f"[rule {rule}]" in problem and "at row 2 (line 3)" in problem and fragment in problem
    assert fingerprint(seeded_db) == before


def test_performance_key_unique_in_file_and_against_the_book(
    tmp_path: Path, seeded_db: Path
) -> None:
    cols = PERF_HEADER.split(",")
    dup = write(tmp_path, csv_text([perf(), perf(balance="900.00")], cols), "dup.csv")
    with pytest.raises(TapeRejected, match="unique_loan_month") as info:
        load(seeded_db, dup, kind="performance")
    assert info.value.n_bad_rows == 2
    assert (
        "`(loan_id, as_of)` must be unique in the file; got 'JB-0002, 2024-03-31' at row 2 "
        "(line 3) [rule unique_loan_month] (also on rows 1)" in info.value.problems
    )

    first = write(tmp_path, csv_text([perf()], cols), "first.csv")
    assert load(seeded_db, first, kind="performance").n_loaded == 1
    # The same month again with identical values (a different file) is skipped …
    same = write(tmp_path, csv_text([perf(), perf(as_of="2024-04-30", months_on_book="3")], cols),
                 "same.csv")
    result = load(seeded_db, same, kind="performance")
    assert (result.n_loaded, result.n_duplicates) == (1, 1)
    # … and with a different balance it is refused.
    other = write(tmp_path, csv_text([perf(balance="999.99")], cols), "other.csv")
    with pytest.raises(TapeRejected, match="book_conflict.*balance 1000.50 in the book vs 999.99 here"):
        load(seeded_db, other, kind="performance")


# ------------------------------------------------------------------ invariants


@given(
    bad=st.lists(
        st.sampled_from([
            {"apr": "0.5"}, {"principal": "0"}, {"term_months": "5"}, {"credit_score": "100"},
            {"origination_date": "2024-13-01"}, {"repayment_type": "x"}, {"apr": ""},
            {"loan_id": ""}, {}, {}, {},
        ]),
        min_size=1,
        max_size=30,
    )
)
def test_checks_split_rows_exactly_into_good_and_bad(bad: list[dict[str, str]]) -> None:
    """Invariant: the good rows are exactly the rows without a planted fault, in order,
    and every planted fault is reported on its own row."""
    rows = [loan(i, **over) for i, over in enumerate(bad, start=1)]
    with tempfile.TemporaryDirectory() as tmp:
        raw = read_tape(write(Path(tmp), csv_text(rows)))
        checked = check_loans(raw, today=TODAY)
    good_rows = [i for i, over in enumerate(bad, start=1) if not over]
    assert checked.good.column("_row").to_pylist() == good_rows
    assert checked.good.column("loan_id").to_pylist() == [rows[i - 1]["loan_id"] for i in good_rows]
    assert sorted({p.row for p in checked.problems}) == [
        i for i, over in enumerate(bad, start=1) if over
    ]
    assert raw.n_rows == len(rows)


def test_allow_rejects_loads_exactly_the_good_rows(tmp_path: Path, db_path: Path) -> None:
    faults = [{}, {"apr": "0.5"}, {}, {"principal": ""}, {"term_months": "5"}, {}]
    rows = [loan(i, **over) for i, over in enumerate(faults)]
    path = write(tmp_path, csv_text(rows))
    result = load(db_path, path, allow_rejects=True)
    assert (result.n_rows, result.n_loaded, result.n_rejected) == (6, 3, 3)
    loaded = {r[0] for r in query(db_path, "SELECT loan_id FROM loans")}
    assert loaded == {r["loan_id"] for r, over in zip(rows, faults, strict=True) if not over}


def test_check_loans_is_pure_and_reports_rows_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, csv_text([loan(1, apr="2"), loan(2), loan(3, principal="0")]))
    checked = check_loans(read_tape(path), today=TODAY)
    assert [p.row for p in checked.problems] == [1, 3]
    assert checked.good.column("loan_id").to_pylist() == ["L00002"]
    assert checked.good.column("_row").to_pylist() == [2]


def test_row_numbers_stay_exact_across_parse_blocks(tmp_path: Path) -> None:
    """Row numbers survive multi-block (multi-threaded) parsing and skipped malformed lines."""
    lines = [HEADER] + [",".join(loan(i).values()) for i in range(1, 30_001)]
    lines[20_000] = "L20000,b,2024-01-01,100"  # row 20000 = file line 20001: 4 fields
    lines[25_000] = lines[25_000].replace(",0.18,", ",0.5,")  # row 25000: apr above the cap
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert path.stat().st_size > 2 * 2**20  # several of pyarrow's 1 MiB blocks
    raw = read_tape(path)
    checked = check_loans(raw, today=TODAY)
    assert [(p.row, p.rule) for p in checked.problems] == [
        (20_000, "field_count"),
        (25_000, "R9_apr_cap"),
    ]
    assert "at row 25000 (line 25001)" in checked.problems[1].message
    rows = checked.good.column("_row").to_numpy()
    ids = checked.good.column("loan_id").to_pylist()
    assert rows.size == 29_998 and ids[rows.tolist().index(29_999)] == "L29999"
    assert all(ids[k] == f"L{r:05d}" for k, r in enumerate(rows.tolist()))


def test_money_is_stored_to_the_cent_exactly_as_written(tmp_path: Path, db_path: Path) -> None:
    """DECIMAL(18,2) in the book equals the tape's text for every amount (no float drift):
    the reference is Python's ``Decimal`` of the same text."""
    rng = np.random.default_rng(7)
    cents = np.concatenate([
        rng.integers(1, 20_000_000, 3000),  # (0.01, 200000.00)
        [1, 29, 435, 1005, 100_115, 19_999_999, 20_000_000],  # binary-awkward and edge values
    ])
    texts = [f"{c // 100}.{c % 100:02d}" for c in cents.tolist()]
    rows = [loan(i, principal=t) for i, t in enumerate(texts)]
    result = load(db_path, write(tmp_path, csv_text(rows)))
    assert result.n_loaded == len(texts)
    stored = dict(query(db_path, "SELECT loan_id, principal FROM loans"))
    assert all(stored[r["loan_id"]] == Decimal(r["principal"]) for r in rows)


def test_gbk_sample_tape_loads_the_same_book_as_its_utf8_twin(tmp_path: Path) -> None:
    utf8_db, gbk_db = tmp_path / "utf8.duckdb", tmp_path / "gbk.duckdb"
    load(utf8_db, GOLDEN / "loans_small.csv")
    result = load(gbk_db, GOLDEN / "loans_small_gbk.csv", encoding="gb18030")
    assert any("decoded as gb18030" in n for n in result.notes)
    sql = "SELECT * EXCLUDE (batch_id) FROM loans ORDER BY loan_id"
    assert query(gbk_db, sql) == query(utf8_db, sql)
    assert query(gbk_db, "SELECT region FROM loans WHERE loan_id = 'JB-0001'") == [("浙江",)]
