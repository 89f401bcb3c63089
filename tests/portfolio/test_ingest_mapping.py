"""Column mappings (``riskpool ingest TAPE --mapping FILE``): the shipped bank-style tapes with
Chinese headers end to end into a real DuckDB file, and every refusal naming the mapping field
and the tape's column and row.

The loaded values are checked against the tapes' own source: ``tapes/make_tapes.py`` writes the
bank tapes from the same canonical rows (``loans("B2607", 200, seed=2609)``) it would write as a
riskpool tape, so the book must hold exactly those: ids, dates, principal, the decimal APR (the
percent divided by 100 exactly), the repayment type the code stands for."""

from __future__ import annotations

import datetime as dt
import runpy
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from portfolio.book.ingest import load_mapping
from portfolio.store import open_store

ROOT = Path(__file__).resolve().parents[2]
LOANS_TAPE = ROOT / "tapes" / "bank_tape_cn_2026_07.csv"
PERF_TAPE = ROOT / "tapes" / "bank_perf_cn_2026_07.csv"
LOANS_MAP = ROOT / "examples" / "mappings" / "bank_tape_cn.toml"
PERF_MAP = ROOT / "examples" / "mappings" / "bank_perf_cn.toml"
HEADER = "借据编号,客户编号,放款日期,合同金额(元),年化利率(%),期限(月),还款方式代码,信用评分,所在省份,产品名称\n"
GOOD = "B1,C00000000000000a1,2026/7/6,10000.00,18.36,12,01,700,上海,cash_loan\n"


def _rows(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _count(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    with open_store(db) as store:  # a writer: creates the schema on a new file
        return int(store.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def test_the_chinese_header_tapes_load_end_to_end(cli, tmp_path: Path) -> None:
    db = tmp_path / "bank.duckdb"
    r = cli("ingest", LOANS_TAPE, "--mapping", LOANS_MAP, "--db", db)
    assert r.code == 0, r.err
    assert "loaded 200 loans of 200 rows" in r.out and "借据编号 → loan_id" in r.out
    r = cli("ingest", PERF_TAPE, "--kind", "performance", "--mapping", PERF_MAP, "--db", db)
    assert r.code == 0, r.err
    assert "loaded 200 performance rows" in r.out
    source = runpy.run_path(str(ROOT / "tapes" / "make_tapes.py"))
    want = {row["loan_id"]: row for row in source["loans"]("B2607", 200, seed=2609)}
    got = _rows(db, "SELECT loan_id, borrower_id, origination_date, principal, apr, term_months, "
                    "repayment_type, credit_score, region, product FROM loans ORDER BY loan_id")
    assert len(got) == 200
    for loan_id, borrower, orig, principal, apr, term, rtype, score, region, product in got:
        w = want[loan_id]
        assert borrower == "C" + str(w["borrower_id"])[1:]
        assert orig == dt.date.fromisoformat(str(w["origination_date"]))
        assert Decimal(str(principal)) == Decimal(str(w["principal"]))
        assert Decimal(repr(apr)) == Decimal(str(w["apr"]))  # 23.11 % → 0.2311 exactly
        assert (term, rtype, score, region, product) == (
            w["term_months"], w["repayment_type"], w["credit_score"], w["region"], w["product"])
    perf = _rows(db, "SELECT DISTINCT as_of, status, dpd FROM loan_performance")
    assert perf == [(dt.date(2026, 7, 31), "current", 0)]
    note = _rows(db, "SELECT note FROM ingest_batches WHERE batch_id = 1")[0][0]
    assert "mapped by bank_tape_cn.toml" in note


def _tape(tmp_path: Path, *lines: str) -> Path:
    p = tmp_path / "tape.csv"
    p.write_text(HEADER + "".join(lines), encoding="utf-8")
    return p


@pytest.mark.parametrize("bad, words", [
    ("B2,C00000000000000a2,2026/13/01,10000.00,18.36,12,01,700,上海,cash_loan\n",
     ["row 2 (line 3)", "tape column `放款日期` (origination_date)", "'2026/13/01'",
      "`dates.origination_date` = '%Y/%m/%d'", "[rule mapping]"]),
    ("B2,C00000000000000a2,2026/7/6,10000.00,十八,12,01,700,上海,cash_loan\n",
     ["row 2 (line 3)", "tape column `年化利率(%)` (apr)", "'十八'", "`percent.columns`"]),
    ("B2,C00000000000000a2,2026/7/6,10000.00,18.36,12,09,700,上海,cash_loan\n",
     ["row 2 (line 3)", "tape column `还款方式代码` (repayment_type)", "'09'",
      "`values.repayment_type` (01, 02, 03, 04)"]),
])
def test_a_value_the_mapping_cannot_read_refuses_the_file_naming_field_column_and_row(
        cli, tmp_path: Path, bad: str, words: list[str]) -> None:
    db = tmp_path / "db.duckdb"
    r = cli("ingest", _tape(tmp_path, GOOD, bad), "--mapping", LOANS_MAP, "--db", db)
    assert r.code == 2 and "Traceback" not in r.err
    for w in words:
        assert w in r.err, r.err
    assert _count(db, "loans") == 0 and _count(db, "ingest_batches") == 0
    # with --allow-rejects the good row loads and the bad one is kept with its raw text
    r = cli("ingest", _tape(tmp_path, GOOD, bad), "--mapping", LOANS_MAP, "--db", db,
            "--allow-rejects")
    assert r.code == 0, r.err
    assert _rows(db, "SELECT loan_id FROM loans") == [("B1",)]
    rejects = _rows(db, "SELECT row_number, rule, raw_row FROM ingest_rejects")
    assert len(rejects) == 1 and rejects[0][:2] == (2, "mapping") and "B2" in rejects[0][2]


def test_status_codes_and_compact_dates_map_on_a_performance_tape(cli, tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    assert cli("ingest", _tape(tmp_path, GOOD), "--mapping", LOANS_MAP, "--db", db).code == 0
    perf = tmp_path / "perf.csv"
    perf.write_text("借据编号,数据日期,账龄(月),贷款余额(元),逾期天数,贷款状态代码\n"
                    "B1,20260731,0,10000.00,0,N\nB1,20260831,1,9200.00,15,O\n", encoding="utf-8")
    r = cli("ingest", perf, "--kind", "performance", "--mapping", PERF_MAP, "--db", db)
    assert r.code == 0, r.err
    assert _rows(db, "SELECT as_of, status, dpd FROM loan_performance ORDER BY as_of") == [
        (dt.date(2026, 7, 31), "current", 0), (dt.date(2026, 8, 31), "delinquent", 15)]


@pytest.mark.parametrize("text, words", [
    ('[mapping]\nkind = "loans"\n[columns]\n"借据编号" = "loan_number"\n',
     ['`columns."借据编号"`', "a loans tape column", "'loan_number'"]),
    ('[mapping]\nkind = "loans"\n[columns]\n"a" = "loan_id"\n"b" = "loan_id"\n',
     ["`columns.b`", "maps to loan_id already"]),
    ('[mapping]\nkind = "loans"\n[dates]\nprincipal = "%Y"\n',
     ["`dates.principal`", "a date column of a loans tape"]),
    ('[mapping]\nkind = "loans"\n[dates]\norigination_date = "YYYY"\n',
     ["`dates.origination_date`", "strptime format"]),
    ('[mapping]\nkind = "loans"\n[percent]\ncolumns = ["principal"]\n',
     ["`percent.columns[0]`", "a rate column"]),
    ('[mapping]\nkind = "ledger"\n', ["`mapping.kind`", "'ledger'"]),
    ('[mapping]\nkind = "loans"\n[colums]\n', ["`colums`", "did you mean `columns`"]),
    ('[mapping]\nkind = "performance"\n', ["--mapping", "a mapping for loans tapes"]),
    ('[mapping]\nkind = "loans"\n[columns]\n"借据号" = "loan_id"\n',
     ['`columns."借据号"`', "the tape has no such header", "借据编号"]),
])
def test_a_bad_mapping_file_exits_2_naming_the_field(cli, tmp_path: Path, text: str,
                                                     words: list[str]) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text(text, encoding="utf-8")
    db = tmp_path / "db.duckdb"
    r = cli("ingest", _tape(tmp_path, GOOD), "--mapping", mapping, "--db", db)
    assert r.code == 2 and "Traceback" not in r.err
    for w in words:
        assert w in r.err, r.err
    assert _count(db, "loans") == 0


def test_the_shipped_mappings_read() -> None:
    m = load_mapping(LOANS_MAP)
    assert m.kind.value == "loans" and m.rename["年化利率(%)"] == "apr"
    assert m.percent == ("apr",) and m.dates == {"origination_date": "%Y/%m/%d"}
    p = load_mapping(PERF_MAP)
    assert p.values["status"]["O"] == "delinquent" and p.dates == {"as_of": "%Y%m%d"}


def test_a_parquet_tape_maps_the_same(cli, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    table = pcsv.read_csv(LOANS_TAPE, convert_options=pcsv.ConvertOptions(
        column_types={"还款方式代码": pa.string(), "放款日期": pa.string()}))
    assert table.schema.field("年化利率(%)").type == pa.float64()  # a native number
    pq.write_table(table, tmp_path / "bank.parquet")
    db_csv, db_pq = tmp_path / "csv.duckdb", tmp_path / "pq.duckdb"
    assert cli("ingest", LOANS_TAPE, "--mapping", LOANS_MAP, "--db", db_csv).code == 0
    r = cli("ingest", tmp_path / "bank.parquet", "--mapping", LOANS_MAP, "--db", db_pq)
    assert r.code == 0, r.err
    query = "SELECT * EXCLUDE (batch_id) FROM loans ORDER BY loan_id"
    assert _rows(db_pq, query) == _rows(db_csv, query)
