"""Adversarial stored records: what riskpool wrote and reads back — a run's path files beside
the database, a run's and an allocation's free-form JSON, a scenario set's row — damaged after
it was written (a copy cut short, a file replaced, a row edited by hand), and a report run
named where a simulation run is meant. Each case exits 2 naming the record and the field or
file (no traceback), and every table's row count is unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from adversarial_helpers import row_counts
from cli_books import run_cli

pytestmark = pytest.mark.adversarial("records")
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DEAL = EXAMPLES / "deal_cn_consumer.toml"
AS_OF = "2025-06-30"
SET = """[set]
name = "two"
seed = 3
paths = 100

[[scenario]]
name = "base"

[[scenario]]
name = "adverse"
pd_mult = 1.5
"""


@pytest.fixture(scope="session")
def recorded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small book with pool 1, allocation 1, simulation run 1 (with the CN deal), scenario
    set 1 and report run 2."""
    root = tmp_path_factory.mktemp("adv_records")
    db = root / "book.duckdb"
    (root / "criteria.toml").write_text(
        "[eligibility]\nscore_min = 600\ndpd_max = 0\nterms = [3, 6, 9, 12]\n", encoding="utf-8")
    (root / "set.toml").write_text(SET, encoding="utf-8")
    run_cli("generate", "--db", db, "--loans", 1500, "--months", 12, "--seed", 5, "--as-of",
            AS_OF, "--quiet")
    run_cli("pool", "create", "--db", db, "--name", "p", "--criteria", root / "criteria.toml",
            "--cutoff", AS_OF)
    run_cli("calibrate", "--db", db, "--pool", 1, "--out", root / "a.toml")
    run_cli("allocate", "--db", db, "--pool", 1, "--partners", EXAMPLES / "partners.toml")
    run_cli("simulate", "--db", db, "--pool", 1, "--assumptions", root / "a.toml", "--seed", 7,
            "--paths", 200, "--structure", DEAL, "--quiet")
    run_cli("scenarios", "run", "--db", db, "--pool", 1, "--assumptions", root / "a.toml",
            "--set", root / "set.toml", "--quiet")
    run_cli("report", "--db", db, "--as-of", AS_OF, "--out", root / "reports", "--run", 1,
            "--allocation", 1, "--quiet")
    return root


@pytest.fixture
def book(recorded_template: Path, tmp_path: Path) -> Path:
    """A copy of the template (database and run files); returns the database."""
    for item in recorded_template.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, tmp_path / item.name)
    return tmp_path / "book.duckdb"


def _exits_2(r, *said: str) -> None:  # type: ignore[no-untyped-def]
    assert r.code == 2, r.out + r.err
    assert "Traceback" not in r.err, r.err
    for text in said:
        assert text in r.err, (text, r.err)


def _sql(db: Path, statement: str, *params: object) -> None:
    con = duckdb.connect(str(db))
    con.execute(statement, list(params))
    con.close()


# ---------------------------------------------------------------- a run's path files


def _cut(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


DAMAGE = {
    "cut short": _cut,
    "not Parquet": lambda p: p.write_bytes(b"PAR1 this is not a parquet file"),
    "another table": lambda p: pq.write_table(pa.table({"x": [1, 2]}), p),
}
READ_PATHS = {
    "tranche cashflows": ["tranche", "cashflows", "--run", "1", "--out", "OUT/t.csv"],
    "tranche size": ["tranche", "size", "--run", "1", "--structure", str(DEAL), "--tranche",
                     "A", "--target-el", "0.001"],
    "tranche grid": ["tranche", "grid", "--run", "1"],
    "dispersion": ["dispersion", "--run", "1", "--allocation", "1"],
    "runs diff": ["runs", "diff", "1", "1"],
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("command", sorted(READ_PATHS))
def test_damaged_paths_file(cli, book: Path, tmp_path: Path, damage: str, command: str) -> None:
    """was: pyarrow's ArrowInvalid ("Parquet magic bytes not found") as a traceback, exit 1."""
    paths = book.parent / "runs" / "1" / "paths.parquet"
    DAMAGE[damage](paths)
    before = row_counts(book)
    argv = [a.replace("OUT/", f"{tmp_path}/") for a in READ_PATHS[command]]
    r = cli(*argv, "--db", book)
    if command == "runs diff":  # reads the stored statistics, not the paths
        assert r.code == 0, r.err
        return
    _exits_2(r, "run 1: its file", "paths.parquet", "cannot be read as riskpool wrote it")
    assert row_counts(book) == before


def test_tranche_report_of_a_damaged_run_shows_the_stored_tables(cli, book: Path) -> None:
    """The stored tranche table does not need the paths: printed, with the reason the
    rerun parts are missing (as when the paths are gone)."""
    _cut(book.parent / "runs" / "1" / "paths.parquet")
    r = cli("tranche", "report", "--run", "1", "--db", book)
    assert r.code == 0, r.err
    assert "cannot be read as riskpool wrote it" in r.out + r.err


@pytest.mark.parametrize("argv", [
    ["tranche", "size", "--run", "2", "--structure", str(DEAL), "--tranche", "A",
     "--target-el", "0.001"],
    ["tranche", "grid", "--run", "2", "--structure", str(DEAL)],
], ids=["tranche size", "tranche grid"])
def test_a_report_run_is_not_a_simulation(cli, book: Path, argv: list[str]) -> None:
    """was: "run 2 has no stored paths (expected <the report's output folder>/paths.parquet)"."""
    r = cli(*argv, "--db", book)
    _exits_2(r, "`run` must be a simulation run", "run 2 (a report run)")


# ---------------------------------------------------------------- free-form JSON columns


@pytest.mark.parametrize("value", ["[]", "[1, 2]", '"x"', "3"])
@pytest.mark.parametrize(("column", "argv"), [
    ("summary", ["allocate", "show", "--allocation", "1"]),
    ("summary", ["dispersion", "--run", "1", "--allocation", "1"]),
    ("checks", ["allocate", "show", "--allocation", "1"]),
], ids=["summary-show", "summary-dispersion", "checks-show"])
def test_allocation_json_that_is_not_a_table(cli, book: Path, value: str, column: str,
                                             argv: list[str]) -> None:
    """was: AttributeError "'list' object has no attribute 'get'" (exit 1, a traceback)."""
    _sql(book, f"UPDATE allocations SET {column} = ?", value)
    before = row_counts(book)
    r = cli(*argv, "--db", book)
    _exits_2(r, "allocation 1", f"`{column}` must be a table")
    assert row_counts(book) == before


@pytest.mark.parametrize("column", ["summary", "timings"])
def test_run_json_that_is_not_a_table(cli, book: Path, column: str) -> None:
    _sql(book, f"UPDATE runs SET {column} = '[1, 2]' WHERE run_id = 1")
    r = cli("runs", "show", "1", "--db", book)
    _exits_2(r, "run 1", f"`runs.{column}` must be a table")


# ---------------------------------------------------------------- a scenario set's row


SET_DAMAGE = [
    # (column, value, field named) — was: ValueError "max() arg is an empty sequence",
    # TypeError "list indices must be integers", or an unknown engine shown as if valid
    ("members", "{}", "scenario_sets.members"),
    ("members", "[]", "scenario_sets.members"),
    ("members", '[{"name": 1, "group": "", "changes": {}}]', "scenario_sets.members[0].name"),
    ("members", '[{"name": "a", "group": "", "changes": {"pd_mult": -1}}, '
                '{"name": "b", "group": "", "changes": {}}]',
     "scenario_sets.members[0].changes.pd_mult"),
    ("results", "[1, 2]", "scenario_sets.results"),
    ("results", '{"columns": ["scenario"], "rows": [{}, {}]}', "scenario_sets.results.columns"),
    ("results", '{"columns": ["scenario", "el", "el_se", "el_pct", "var_999", "var_999_se", '
                '"es_999", "es_999_se", "es_999_pct"], "rows": [{}]}',
     "scenario_sets.results.rows"),
    ("engine", "warp", "scenario_sets.engine"),
    ("model", "markov", "scenario_sets.model"),
    ("loan_sampler", "float32-per-loan-v0", "scenario_sets.loan_sampler"),
]


@pytest.mark.parametrize(("column", "value", "field"), SET_DAMAGE,
                         ids=[f"{c}={v[:20]}" for c, v, _ in SET_DAMAGE])
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_damaged_scenario_set(cli, book: Path, column: str, value: str, field: str,
                              as_json: bool) -> None:
    _sql(book, f"UPDATE scenario_sets SET {column} = ? WHERE set_id = 1", value)
    r = cli("scenarios", "show", "1", "--db", book, *(["--json"] if as_json else []))
    _exits_2(r, "scenario set 1", f"`{field}` must be")


def test_the_undamaged_records_read(cli, book: Path) -> None:
    """The base of the cases is good: every command above reads the template as recorded."""
    for argv in (["scenarios", "show", "1"], ["allocate", "show", "--allocation", "1"],
                 ["runs", "show", "1"], ["tranche", "report", "--run", "1"],
                 ["tranche", "grid", "--run", "1"]):
        r = cli(*argv, "--db", book)
        assert r.code == 0, (argv, r.err)
