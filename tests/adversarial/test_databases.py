"""Adversarial database files given as ``--db``: a `schema_info` whose version is not a number,
a DuckDB file without riskpool's tables, a path that does not exist for a command that needs a
book, a tape refused into a new database, a truncated file. Each case exits 2 with a message
naming the file (no traceback) and leaves the file byte for byte as it was — or, for a path
that did not exist, still absent."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.adversarial("databases")
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GOLDEN = ROOT / "tests" / "golden" / "tapes"


def _bytes(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _refused(r, *said: str) -> None:  # type: ignore[no-untyped-def]
    assert r.code == 2, r.out + r.err
    assert "Traceback" not in r.err, r.err
    for text in said:
        assert text in r.err, (text, r.err)


READERS = [
    ["runs", "list"],
    ["scenarios", "list"],
    ["tranche", "report", "--run", "1"],
    ["calibrate", "--out", "OUT/a.toml"],
    ["users", "add", "bob", "--role", "treasury", "--users", "OUT/users.toml"],
    ["book", "summary"],
    ["pool", "list"],
    ["report", "--as-of", "2024-03-31", "--out", "OUT/reports"],
]
WRITERS_NEEDING_A_BOOK = [
    ["runs", "label", "1", "--label", "x"],
    ["pool", "create", "--name", "p", "--criteria", str(EXAMPLES / "criteria.toml"),
     "--cutoff", "2024-03-31"],
    ["allocate", "--partners", str(EXAMPLES / "partners.toml"), "--pool", "1"],
]


def _argv(argv: list[str], out: Path) -> list[str]:
    return [a.replace("OUT/", f"{out}/") for a in argv]


# ---------------------------------------------------------------- schema_info not a number


@pytest.mark.parametrize("value", ["abc", "", "6.0", "6; DROP TABLE loans"])
@pytest.mark.parametrize("argv", [["runs", "list"], ["book", "summary"], ["migrate"],
                                  ["ingest", str(GOLDEN / "loans_small.csv")]],
                         ids=["runs list", "book summary", "migrate", "ingest"])
def test_schema_version_that_is_not_a_number(cli, seeded_db: Path, value: str,
                                             argv: list[str]) -> None:
    """was: ValueError "invalid literal for int()" from every command (exit 1, a traceback)."""
    con = duckdb.connect(str(seeded_db))
    con.execute("UPDATE schema_info SET value = ? WHERE key = 'schema_version'", [value])
    con.close()
    before = _bytes(seeded_db)
    r = cli(*argv, "--db", seeded_db)
    _refused(r, "`schema_info.schema_version` must be", str(seeded_db))
    assert _bytes(seeded_db) == before


# ---------------------------------------------------------------- a DuckDB file without tables


@pytest.fixture
def empty_duckdb(tmp_path: Path) -> Path:
    """A valid DuckDB file with no table (made by another tool, or `duckdb book.duckdb`)."""
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    return path


@pytest.mark.parametrize("argv", READERS, ids=[" ".join(a[:2]) for a in READERS])
def test_reader_on_a_duckdb_file_without_tables(cli, empty_duckdb: Path, tmp_path: Path,
                                               argv: list[str]) -> None:
    """was: a DuckDB CatalogException ("Table with name runs does not exist") from runs list,
    scenarios list, tranche report, calibrate, users add and report (exit 1, a traceback)."""
    before = _bytes(empty_duckdb)
    r = cli(*_argv(argv, tmp_path), "--db", empty_duckdb)
    _refused(r, "holds no riskpool tables", str(empty_duckdb))
    assert _bytes(empty_duckdb) == before


@pytest.mark.parametrize("argv", WRITERS_NEEDING_A_BOOK,
                         ids=[" ".join(a[:2]) for a in WRITERS_NEEDING_A_BOOK])
def test_writer_needing_a_book_on_a_duckdb_file_without_tables(cli, empty_duckdb: Path,
                                                               argv: list[str]) -> None:
    """was: refused (no run, no pool) after creating riskpool's whole schema in the file."""
    before = _bytes(empty_duckdb)
    r = cli(*argv, "--db", empty_duckdb)
    _refused(r, "holds no riskpool tables", str(empty_duckdb))
    assert _bytes(empty_duckdb) == before


# ---------------------------------------------------------------- a path that does not exist


@pytest.mark.parametrize("argv", WRITERS_NEEDING_A_BOOK,
                         ids=[" ".join(a[:2]) for a in WRITERS_NEEDING_A_BOOK])
def test_writer_needing_a_book_on_a_new_path(cli, tmp_path: Path, argv: list[str]) -> None:
    """was: exit 2 (no run, no pool) with a new empty database left at the path."""
    db = tmp_path / "typo.duckdb"
    r = cli(*argv, "--db", db)
    _refused(r, "does not exist", str(db))
    assert sorted(tmp_path.iterdir()) == []


def test_refused_tape_into_a_new_database_leaves_no_file(cli, tmp_path: Path) -> None:
    """was: "refused ... nothing was loaded", and a new (empty) database at --db."""
    bad = tmp_path / "bad.csv"
    bad.write_text((GOLDEN / "loans_small.csv").read_text(encoding="utf-8")
                   .replace("0.18", "1.8", 1), encoding="utf-8")
    db = tmp_path / "new.duckdb"
    r = cli("ingest", bad, "--db", db)
    _refused(r, "refused", "nothing was loaded")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]
    r = cli("ingest", GOLDEN / "loans_small.csv", "--db", db)  # a good tape makes the database
    assert r.code == 0 and db.exists(), r.err


def test_a_load_after_a_good_one_keeps_the_new_database(cli, tmp_path: Path) -> None:
    """Two files into a new path, the second refused: the first file stays loaded."""
    bad = tmp_path / "bad.csv"
    bad.write_text("loan_id\nX\n", encoding="utf-8")
    db = tmp_path / "new.duckdb"
    r = cli("ingest", GOLDEN / "loans_small.csv", bad, "--db", db)
    assert r.code == 2 and db.exists(), r.err
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM loans").fetchone()[0] == 5
    con.close()


# ---------------------------------------------------------------- a damaged file


@pytest.mark.parametrize("argv", [["runs", "list"], ["book", "summary"], ["pool", "list"],
                                  ["ingest", str(GOLDEN / "performance_small.csv"),
                                   "--kind", "performance"]],
                         ids=["runs list", "book summary", "pool list", "ingest"])
def test_truncated_database(cli, seeded_db: Path, argv: list[str]) -> None:
    """A file cut short (a copy interrupted, a full disk): DuckDB opens it and fails when it
    reads a missing block. was: its IOException as a traceback (exit 1); now exit 2 naming
    the file."""
    raw = seeded_db.read_bytes()
    seeded_db.write_bytes(raw[: len(raw) // 3])
    r = cli(*argv, "--db", seeded_db)
    if r.code == 0:  # the blocks this command read were all before the cut
        return
    _refused(r, str(seeded_db))
