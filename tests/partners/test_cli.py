"""``riskpool allocate`` end to end on a small generated book (a real DuckDB file)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from portfolio.store import open_store
from portfolio.synthetic.generate import generate_book

ROOT = Path(__file__).resolve().parents[2]
PARTNERS = ROOT / "examples" / "partners.toml"
WINDOW = ("2026-10-01", "2026-10-31")


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("book") / "book.duckdb"
    with open_store(path) as store:
        generate_book(store, 3000, 6, seed=4, as_of=dt.date(2026, 10, 31))
    return path


@pytest.fixture
def db(book: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "db.duckdb"
    shutil.copy(book, dst)
    return dst


def _count(db: Path, table: str) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        con.close()


def test_allocate_records_and_export_holds_only_the_partner(cli, db, tmp_path):
    r = cli("allocate", "--db", db, "--partners", PARTNERS, "--originated", *WINDOW)
    assert r.code == 0, r.err
    assert "allocation 1" in r.out and "all passed" in r.out
    con = duckdb.connect(str(db), read_only=True)
    sums = con.execute("SELECT loan_id, sum(share) FROM allocation_shares GROUP BY loan_id").df()
    checks = con.execute("SELECT checks FROM allocations WHERE allocation_id = 1").fetchone()[0]
    con.close()
    assert (sums.iloc[:, 1] == 1.0).all()
    assert '"ok": true' in checks
    out = tmp_path / "bank_east.parquet"
    r = cli("allocate", "export", "--db", db, "--allocation", "1", "--partner", "bank_east", "--out", out)
    assert r.code == 0, r.err
    tape = pd.read_parquet(out)
    assert set(tape.columns) == {"loan_id", "borrower_id", "origination_date", "apr", "term_months",
                                 "repayment_type", "credit_score", "region", "share", "balance"}
    assert (tape["share"] > 0).all() and len(tape) > 0
    assert not any("platform" in c or "party" in c for c in tape.columns)
    csv = tmp_path / "local.csv"
    r = cli("allocate", "export", "--db", db, "--allocation", "1", "--partner", "hangzhou_city", "--out", csv)
    assert r.code == 0
    assert set(pd.read_csv(csv)["region"]) <= {"浙江"}


def test_dry_run_writes_nothing(cli, db):
    r = cli("allocate", "--db", db, "--partners", PARTNERS, "--originated", *WINDOW,
            "--mode", "forward-flow", "--objective", "min-retained-el", "--dry-run")
    assert r.code == 0, r.err
    assert "dry run" in r.out
    assert _count(db, "allocations") == 0


@pytest.mark.parametrize(("edit", "field"), [
    (("kind = \"trust\"", "kind = \"hedge_fund\""), "kind"),
    (("capacity = 1.5e8", "capacity = -1"), "capacity"),
    (("registered_region = \"浙江\"", ""), "registered_region"),
    (("score_floor = 560", "score_floor = 100"), "score_floor"),
    (("max_term_months = 12", "max_term_months = 7"), "max_term_months"),
])
def test_bad_partner_file_exit_2_nothing_written(cli, db, tmp_path, edit, field):
    bad = tmp_path / "partners.toml"
    bad.write_text(PARTNERS.read_text(encoding="utf-8").replace(*edit), encoding="utf-8")
    r = cli("allocate", "--db", db, "--partners", bad, "--originated", *WINDOW)
    assert r.code == 2
    assert field in r.err and "error:" in r.err
    assert _count(db, "allocations") == 0 and _count(db, "allocation_shares") == 0


def test_infeasible_request_exit_2_names_the_binding_rule(cli, db, tmp_path):
    bad = tmp_path / "partners.toml"
    text = PARTNERS.read_text(encoding="utf-8").replace(
        "capacity = 6.0e7", "capacity = 6.0e7\ncommitment = 5.5e7")  # R2 headroom is 5.0e7
    bad.write_text(text, encoding="utf-8")
    r = cli("allocate", "--db", db, "--partners", bad, "--originated", *WINDOW)
    assert r.code == 2
    assert "infeasible" in r.err and "hangzhou_city" in r.err
    assert _count(db, "allocations") == 0


def test_flag_errors(cli, db):
    r = cli("allocate", "--db", db, "--partners", PARTNERS)
    assert r.code == 2 and "--pool / --originated" in r.err
    r = cli("allocate", "--db", db, "--partners", PARTNERS, "--originated", *WINDOW, "--mode", "x")
    assert r.code == 2 and "mode" in r.err
    r = cli("allocate", "export", "--db", db, "--allocation", "99", "--partner", "bank_east",
            "--out", "x.parquet")
    assert r.code == 2 and "--allocation" in r.err


def test_allocate_a_stored_pool_and_read_it_back(cli, db):
    from partners.records import load_allocation
    from portfolio.book.pools import create_pool, parse_criteria

    with open_store(db) as store:
        info = create_pool(store, "p1", parse_criteria({"eligibility": {"dpd_max": 0}}),
                           dt.date(2026, 10, 31))
    r = cli("allocate", "--db", db, "--partners", PARTNERS, "--pool", str(info.pool_id),
            "--mode", "forward-flow")
    assert r.code == 0, r.err
    with open_store(db, read_only=True) as store:
        stored = load_allocation(store, 1)
    assert stored.pool_id == info.pool_id and stored.mode == "forward-flow"
    assert len(stored.loan_id) == info.n_loans
    assert (stored.shares.sum(axis=1) == 1.0).all()
    assert ((stored.shares == 0) | (stored.shares == 1)).all()
    assert stored.checks["ok"] is True
    r = cli("allocate", "show", "--db", db, "--allocation", "1")
    assert r.code == 0 and "forward-flow" in r.out


def test_example_script_allocates_and_exports(db, tmp_path, monkeypatch):
    import runpy
    import sys

    out = tmp_path / "exports"
    monkeypatch.setattr(sys, "argv", ["allocate_month.py", "--db", str(db), "--partners", str(PARTNERS),
                                      "--month", "2026-10", "--out", str(out)])
    runpy.run_path(str(ROOT / "examples" / "allocate_month.py"), run_name="__main__")
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"2026-10_{p}.parquet" for p in ("bank_east", "bank_north", "hangzhou_city", "west_trust")]


def test_allocate_with_assumptions_file_for_the_expected_loss(cli, db, tmp_path):
    from portfolio.montecarlo.assumptions import save_assumptions
    from portfolio.synthetic.generate import GeneratorParams, true_assumptions

    ass = save_assumptions(true_assumptions(GeneratorParams(), 24), tmp_path / "ass.toml")
    r = cli("allocate", "--db", db, "--partners", PARTNERS, "--originated", *WINDOW,
            "--objective", "min-retained-el", "--assumptions", ass)
    assert r.code == 0, r.err
    con = duckdb.connect(str(db), read_only=True)
    summary = con.execute("SELECT summary FROM allocations WHERE allocation_id = 1").fetchone()[0]
    con.close()
    assert '"risk_source": "assumptions"' in summary
    r = cli("allocate", "--db", db, "--partners", PARTNERS, "--originated", *WINDOW,
            "--assumptions", tmp_path / "missing.toml")
    assert r.code == 2 and "assumptions" in r.err


def _party_rows(out: str) -> tuple[list[list[str]], list[str]]:
    """The party table's rows (split) and its total row, as printed."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("party ")) + 1
    rows = []
    for line in lines[start:]:
        cells = line.split()
        if cells[0] == "total":
            return rows, cells
        rows.append(cells)
    raise AssertionError(f"no total row under the party table:\n{out}")


def _num(cell: str) -> float:
    return float(cell.replace(",", "").rstrip("%"))


def test_allocate_and_show_print_the_party_total_that_the_pool_closes_to(cli, db, tmp_path):
    # the party table splits the pool: its total row holds the sums of balance, share,
    # lifetime EL and projected EL, and the pool's balance and loan count (a joint loan is
    # held by several parties, so the loans column does not add up)
    from partners.records import load_allocation
    from portfolio.montecarlo.assumptions import save_assumptions
    from portfolio.synthetic.generate import GeneratorParams, true_assumptions

    ass = save_assumptions(true_assumptions(GeneratorParams(), 24), tmp_path / "ass.toml")
    r = cli("allocate", "--db", db, "--partners", PARTNERS, "--originated", *WINDOW,
            "--assumptions", ass)
    assert r.code == 0, r.err
    with open_store(db, read_only=True) as store:
        stored = load_allocation(store, 1)
    rows, total = _party_rows(r.out)
    assert len(rows) == len(stored.party_ids) and len(total) == 6
    for col in (1, 4, 5):  # balance, lifetime EL, projected EL
        assert _num(total[col]) == pytest.approx(sum(_num(row[col]) for row in rows), abs=0.02)
    assert _num(total[1]) == pytest.approx(float(stored.balance.sum()), abs=0.01)
    assert _num(total[2]) == pytest.approx(100.0, abs=0.01)
    assert int(_num(total[3])) == len(stored.loan_id)
    assert "do NOT add up" not in r.out

    r = cli("allocate", "show", "--db", db, "--allocation", "1")
    assert r.code == 0, r.err
    rows, shown = _party_rows(r.out)
    assert shown == total[:4]


def test_export_prints_the_tapes_balance_beside_the_allocations(cli, db, tmp_path):
    # the tape's balances (each loan's share rounded half up to the cent) add up to what the
    # command prints, and the allocation's unrounded figure is the party table's balance
    r = cli("allocate", "--db", db, "--partners", PARTNERS, "--originated", *WINDOW)
    assert r.code == 0, r.err
    rows, _ = _party_rows(r.out)
    held = next(_num(row[1]) for row in rows if row[0] == "bank_east")
    out = tmp_path / "bank_east.csv"
    r = cli("allocate", "export", "--db", db, "--allocation", "1", "--partner", "bank_east",
            "--out", out)
    assert r.code == 0, r.err
    line = next(x for x in r.out.splitlines() if x.startswith("balance on the tape"))
    on_tape = float(line.split()[4].replace(",", ""))
    assert on_tape == pytest.approx(float(pd.read_csv(out)["balance"].sum()), abs=0.005)
    assert float(line.split("the allocation's ")[1].split()[0].replace(",", "")) == \
        pytest.approx(held, abs=0.005)
    # rounding each loan moves the total by at most half a cent a loan
    assert abs(on_tape - held) <= 0.005 * len(pd.read_csv(out))
