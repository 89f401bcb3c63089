"""Scripts that work as documented and progress bars on the long commands.

``examples/allocate_month.py`` is run as its docstring says (a subprocess from the project's
root): it takes the latest month with originations, refuses a bad ``--month`` with exit 2 and
a message (no traceback), refuses to allocate loans an earlier allocation holds unless
``--supersede`` (which the new allocation records). ``allocate show`` prints the re-check
table. Progress bars go to stderr, only on a terminal, never with ``--quiet``."""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from simulation_pools import assumptions

from partners.records import load_allocation
from portfolio.book.pools import create_pool, parse_criteria
from portfolio.montecarlo.assumptions import save_assumptions
from portfolio.store import open_store
from portfolio.synthetic.generate import generate_book
from riskpool.commands.progress import progress_bar, working
from riskpool.commands.simulation import run_simulation

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("month") / "book.duckdb"
    with open_store(path) as store:
        generate_book(store, 3000, 6, seed=4, as_of=dt.date(2026, 10, 31))
    return path


@pytest.fixture
def db(book: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "db.duckdb"
    shutil.copy(book, dst)
    return dst


def _script(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "examples/allocate_month.py", *map(str, args)], cwd=ROOT,
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)


def _allocations(db: Path) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return int(con.execute("SELECT count(*) FROM allocations").fetchall()[0][0])
    finally:
        con.close()


def test_allocate_month_as_documented_then_refuses_then_supersedes(db: Path, tmp_path: Path,
                                                                     cli) -> None:
    out = tmp_path / "exports"
    r = _script("--db", db, "--partners", "examples/partners.toml", "--out", out)
    assert r.returncode == 0, r.stderr
    # the latest month with originations in a book generated to 2026-10-31
    assert "loans originated 2026-10-01..2026-10-31" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        f"2026-10_{p}.parquet" for p in ("bank_east", "bank_north", "hangzhou_city", "west_trust")]
    again = _script("--db", db, "--partners", "examples/partners.toml", "--out", out)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "already have an allocation (allocation 1:" in again.stderr
    assert "--supersede" in again.stderr and "nothing was written" in again.stderr
    assert _allocations(db) == 1
    sup = _script("--db", db, "--partners", "examples/partners.toml", "--out", out,
                  "--supersede")
    assert sup.returncode == 0, sup.stderr
    assert "supersedes allocation 1" in sup.stdout
    with open_store(db, read_only=True) as store:
        first, second = load_allocation(store, 1), load_allocation(store, 2)
    assert second.inputs.request.supersedes == (1,)
    assert first.inputs.request.supersedes is None  # recorded without the key
    assert set(second.loan_id) == set(first.loan_id)
    shown = cli("allocate", "show", "--db", db, "--allocation", "2")
    assert shown.code == 0 and "supersedes allocation 1" in shown.out


@pytest.mark.parametrize("month, words", [
    ("2026-13", ["--month", "YYYY-MM", "'2026-13'"]),
    ("july", ["--month", "'july'"]),
    ("2020-01", ["--month", "a month with originations", "2026-10", "'2020-01'"]),
])
def test_allocate_month_refuses_a_bad_month(db: Path, tmp_path: Path, month: str,
                                            words: list[str]) -> None:
    r = _script("--db", db, "--partners", "examples/partners.toml", "--month", month,
                "--out", tmp_path / "x")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ")
    for w in words:
        assert w in r.stderr, r.stderr
    assert _allocations(db) == 0 and not (tmp_path / "x").exists()


def test_allocate_show_prints_the_recheck_table(db: Path, cli) -> None:
    r = cli("allocate", "--db", db, "--partners", ROOT / "examples" / "partners.toml",
            "--originated", "2026-10-01", "2026-10-31")
    assert r.code == 0, r.err
    shown = cli("allocate", "show", "--db", db, "--allocation", "1")
    assert shown.code == 0, shown.err
    with open_store(db, read_only=True) as store:
        items = load_allocation(store, 1).checks["checks"]
    assert f"re-check ({len(items)} checks" in shown.out and "re-check passed" in shown.out
    lines = shown.out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["check", "party"])
    rows = lines[header + 1:header + 1 + len(items)]
    assert len(rows) == len(items) >= 10
    for item, row in zip(items, rows, strict=True):  # one row per stored check, in order
        assert row.strip().startswith(item["check"]) and row.rstrip().endswith("ok")
    capacity = next(i for i in items if i["check"] == "capacity")
    assert f"{capacity['limit']:,.0f}" in shown.out


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_is_drawn_on_a_terminal_only_and_not_with_quiet() -> None:
    tty = _Tty()
    with progress_bar("simulating 10 paths", stream=tty) as update:
        assert update is not None
        update(0.5)
    assert "simulating 10 paths" in tty.getvalue()
    quiet = _Tty()
    with progress_bar("x", stream=quiet, quiet=True) as update:
        assert update is None
    assert quiet.getvalue() == ""
    pipe = io.StringIO()  # not a terminal: cron, a pipe, a test
    with progress_bar("x", stream=pipe) as update, working("y", stream=pipe):
        assert update is None
    assert pipe.getvalue() == ""


def test_simulate_reports_progress_up_to_one_and_the_cli_draws_nothing_off_a_terminal(
        db: Path, tmp_path: Path, cli) -> None:
    with open_store(db) as store:
        create_pool(store, "all", parse_criteria({"eligibility": {"score_min": 350}}),
                    "2026-10-31")
    a = save_assumptions(assumptions(), tmp_path / "a.toml")
    seen: list[float] = []
    run_simulation(db, 1, a, 3000, 5, batch_size=500, record=False, progress=seen.append)
    assert seen and seen[-1] == pytest.approx(1.0)
    assert all(x <= y + 1e-12 for x, y in zip(seen, seen[1:], strict=False))
    for extra in ([], ["--quiet"]):
        r = cli("simulate", "--db", db, "--pool", "1", "--assumptions", a, "--paths", "200",
                "--seed", "1", *extra)
        assert r.code == 0 and r.err == "", r.err
    r = cli("generate", "--db", tmp_path / "new.duckdb", "--loans", "500", "--months", "3",
            "--as-of", "2026-10-31", "--quiet")
    assert r.code == 0 and r.err == ""
