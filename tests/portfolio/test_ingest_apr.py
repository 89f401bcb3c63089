"""Ingest of flat-fee loans (等本等息) and R8/R9 on the cash-flow APR: R9's cap applies to the
APR of the loan's cash flows, and R8 wants the disclosed APR (the ``disclosed_apr`` column, or
the stated ``apr`` when it is blank or absent) to be that APR within 0.05 percentage point.

References: numpy-financial's ``rate`` for the APR of a flat-fee loan (a level stream of
principal/n + principal·flat/12 a month)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy_financial as npf
import pytest

from portfolio.book.ingest import ingest
from portfolio.errors import TapeRejected
from portfolio.store import open_store
from portfolio.store.ingest import fetch_rejects

TODAY = date.today()
COLUMNS = ["loan_id", "borrower_id", "origination_date", "principal", "apr", "term_months",
           "repayment_type", "credit_score", "disclosed_apr"]


def _flat_fee_apr(flat: float, n: int) -> float:
    """12 × numpy-financial's monthly rate of paying 1/n + flat/12 per unit for n months."""
    return 12 * float(npf.rate(n, -(1 / n + flat / 12), 1.0, 0.0, tol=1e-12))


# 9% flat over 12 months: 1/12 + 0.0075 = 0.0908333 a month per unit -> APR 16.2165%;
# 14% flat over 12: 1/12 + 0.011667 = 0.095 a month -> APR 24.91%, above the 24% cap.
APR_9_12 = _flat_fee_apr(0.09, 12)
APR_14_12 = _flat_fee_apr(0.14, 12)


def loan(i: int, **over: str) -> dict[str, str]:
    row = {"loan_id": f"F{i:04d}", "borrower_id": f"b{i:04d}x", "origination_date": "2024-03-15",
           "principal": "12000.00", "apr": "0.18", "term_months": "12",
           "repayment_type": "level_annuity", "credit_score": "720", "disclosed_apr": ""}
    row.update(over)
    return row


def write(tmp_path: Path, rows: list[dict[str, str]], columns: list[str] = COLUMNS) -> Path:
    lines = [",".join(columns)] + [",".join(r.get(c, "") for c in columns) for r in rows]
    path = tmp_path / "tape.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_references() -> None:
    assert APR_9_12 == pytest.approx(0.162165, abs=1e-6)
    assert APR_14_12 == pytest.approx(0.2491, abs=1e-4) and APR_14_12 > 0.24


def test_a_flat_fee_loan_with_its_true_apr_disclosed_loads(tmp_path: Path, db_path: Path) -> None:
    rows = [loan(1, repayment_type="等本等息", apr="0.09", disclosed_apr="0.1622"),
            loan(2)]  # a level annuity at 18%, nothing disclosed beside its stated rate
    with open_store(db_path) as store:
        result = ingest(store, write(tmp_path, rows), today=TODAY)
        got = store.con.execute("SELECT loan_id, repayment_type, apr, disclosed_apr FROM loans "
                                "ORDER BY 1").fetchall()
    assert result.n_loaded == 2
    assert got == [("F0001", "flat_fee", 0.09, 0.1622), ("F0002", "level_annuity", 0.18, None)]


def test_r8_a_flat_rate_shown_as_the_apr_is_refused_naming_both_rates(
        tmp_path: Path, db_path: Path) -> None:
    rows = [loan(1, repayment_type="flat_fee", apr="0.09"),  # nothing but the flat 9% shown
            loan(2, repayment_type="flat_fee", apr="0.09", disclosed_apr="0.12"),
            loan(3, disclosed_apr="0.20")]  # an 18% annuity sold as 20%
    with open_store(db_path) as store, pytest.raises(TapeRejected) as info:
        ingest(store, write(tmp_path, rows), today=TODAY)
    problems = info.value.problems  # one message per problem
    assert len(problems) == 3 and all("[rule R8_apr_disclosure]" in p for p in problems)
    assert any("loan F0001: stated rate 9.0000% is not its cash-flow APR 16.2165%" in p
               for p in problems)
    assert any("loan F0002: disclosed APR 12.0000% is not its cash-flow APR 16.2165%" in p
               for p in problems)
    assert any("loan F0003: disclosed APR 20.0000% is not its cash-flow APR 18.0000%" in p
               for p in problems)


def test_r9_caps_the_cash_flow_apr_not_the_flat_rate(tmp_path: Path, db_path: Path) -> None:
    # 14% flat is below the 24% cap, its APR 24.91% is not
    rows = [loan(1, repayment_type="flat_fee", apr="0.14", disclosed_apr=f"{APR_14_12:.4f}")]
    with open_store(db_path) as store, pytest.raises(TapeRejected) as info:
        ingest(store, write(tmp_path, rows), today=TODAY)
    (problem,) = info.value.problems
    assert "[rule R9_apr_cap]" in problem
    assert "loan F0001: the cash-flow APR 24.9089%" in problem
    assert "(stated rate 14.0000%, flat_fee) is above the cap 24.00%" in problem
    # at a 36% cap it loads
    with open_store(db_path) as store:
        assert ingest(store, write(tmp_path, rows), today=TODAY, apr_cap=0.36).n_loaded == 1


def test_allow_rejects_keeps_the_good_rows_and_records_the_breaches(
        tmp_path: Path, db_path: Path) -> None:
    rows = [loan(1, repayment_type="flat_fee", apr="0.09"),
            loan(2, repayment_type="flat_fee", apr="0.14", disclosed_apr="0.2491"),
            loan(3, repayment_type="flat_fee", apr="0.09", disclosed_apr="0.1622"),
            loan(4, disclosed_apr="x"),
            loan(5)]
    with open_store(db_path) as store:
        result = ingest(store, write(tmp_path, rows), today=TODAY, allow_rejects=True)
        loaded = store.con.execute("SELECT loan_id FROM loans ORDER BY 1").fetchall()
        rejects = fetch_rejects(store.con, result.batch_id)
    assert (result.n_loaded, result.n_rejected) == (2, 3)
    assert loaded == [("F0003",), ("F0005",)]
    assert {(r[0], r[1], r[2]) for r in rejects} == {
        (1, "disclosed_apr", "R8_apr_disclosure"), (2, "apr", "R9_apr_cap"),
        (4, "disclosed_apr", "numeric")}


def test_without_the_column_the_stated_rate_is_the_disclosed_one(
        tmp_path: Path, db_path: Path) -> None:
    columns = [c for c in COLUMNS if c != "disclosed_apr"]
    rows = [loan(1), loan(2, repayment_type="flat_fee", apr="0.09")]
    with open_store(db_path) as store, pytest.raises(TapeRejected) as info:
        ingest(store, write(tmp_path, rows, columns), today=TODAY)
    (problem,) = info.value.problems
    assert "loan F0002: stated rate 9.0000%" in problem and "row 2" in problem
    assert "[rule R8_apr_disclosure]" in problem


def test_cli_ingest_names_the_breach_and_exits_2_then_allow_rejects(
        cli, tmp_path: Path, db_path: Path) -> None:
    path = write(tmp_path, [loan(1, repayment_type="flat_fee", apr="0.09"), loan(2)])
    r = cli("ingest", path, "--db", db_path)
    assert r.code == 2 and "Traceback" not in r.err
    assert "loan F0001: stated rate 9.0000% is not its cash-flow APR 16.2165%" in r.err + r.out
    r = cli("ingest", path, "--allow-rejects", "--db", db_path)
    assert r.code == 0, r.err
    with open_store(db_path, read_only=True) as store:
        assert store.con.execute("SELECT loan_id FROM loans").fetchall() == [("F0002",)]
