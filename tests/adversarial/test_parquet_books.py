"""Adversarial Parquet datasets: a book folder (``riskpool book export``, read by ``pool create
--book`` and ``simulate --book``) and a pool's loan tape (``riskpool pool export``, read by
``simulate --tape`` on Dask workers) with a file cut short, a stray file, a column dropped, a
column of another type or a key column of nulls. Each is refused before anything is computed:
exit 2 naming the flag, the file and the column (no traceback), every table's row count
unchanged, and no Dask cluster started for a tape. A hypothesis property checks any such
damage to a book: exit 0 or 2, never a traceback, nothing written when refused."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from adversarial_helpers import row_counts
from cli_books import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.adversarial("parquet")
AS_OF = "2025-06-30"
CRITERIA = "[eligibility]\nscore_min = 600\ndpd_max = 0\nterms = [3, 6, 9, 12]\n"


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 600-loan book with pool 1 and assumptions, its `book export` (book/) and its pool's
    `pool export` (tape/)."""
    root = tmp_path_factory.mktemp("adv_parquet")
    db = root / "book.duckdb"
    (root / "criteria.toml").write_text(CRITERIA, encoding="utf-8")
    run_cli("generate", "--db", db, "--loans", 600, "--months", 12, "--seed", 11, "--as-of",
            AS_OF, "--quiet")
    run_cli("pool", "create", "--db", db, "--name", "p", "--criteria", root / "criteria.toml",
            "--cutoff", AS_OF)
    run_cli("calibrate", "--db", db, "--pool", 1, "--out", root / "a.toml")
    run_cli("book", "export", "--db", db, "--out", root / "book")
    run_cli("pool", "export", "--db", db, "--pool", 1, "--out", root / "tape")
    return root


@pytest.fixture
def work(exported: Path, tmp_path: Path) -> Path:
    for item in exported.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, tmp_path / item.name)
    return tmp_path


def _first(folder: Path) -> Path:
    return sorted(folder.rglob("*.parquet"))[0]


def _cut(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _rewrite(path: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    table = pq.read_table(path, partitioning=None)
    pq.write_table(change(table), path)


def _drop(col: str) -> Callable[[Path], None]:
    return lambda p: _rewrite(p, lambda t: t.drop_columns([col]))


def _as_text(col: str) -> Callable[[Path], None]:
    return lambda p: _rewrite(p, lambda t: t.set_column(
        t.schema.get_field_index(col), col, pa.array(["x"] * t.num_rows)))


def _nulls(col: str) -> Callable[[Path], None]:
    return lambda p: _rewrite(p, lambda t: t.set_column(
        t.schema.get_field_index(col), col, pa.nulls(t.num_rows, t.schema.field(col).type)))


def _stray(path: Path) -> None:
    (path.parent / "notes.parquet").write_bytes(b"hello")


BOOK_DAMAGE: dict[str, tuple[str, Callable[[Path], None], str]] = {
    # name: (folder, damage to its first file, text the message names) — was, for each: a
    # DuckDB or pyarrow exception as a traceback (exit 1), or for a null balance a pool cut
    # from rows the database would never have held
    "loans file cut short": ("book/loans", _cut, "data_0.parquet"),
    "performance file cut short": ("book/loan_performance", _cut, "data_0.parquet"),
    "a stray file": ("book/loans", _stray, "notes.parquet"),
    "loans without apr": ("book/loans", _drop("apr"), "`apr`"),
    "performance without balance": ("book/loan_performance", _drop("balance"), "`balance`"),
    "apr as text": ("book/loans", _as_text("apr"), "`apr`"),
    "null loan ids": ("book/loans", _nulls("loan_id"), "`loan_id`"),
    "null balances": ("book/loan_performance", _nulls("balance"), "`balance`"),
}


@pytest.mark.parametrize("case", sorted(BOOK_DAMAGE))
@pytest.mark.parametrize("command", ["pool create", "simulate"])
def test_damaged_book(cli, work: Path, case: str, command: str) -> None:
    folder, damage, named = BOOK_DAMAGE[case]
    damage(_first(work / folder))
    db = work / "book.duckdb"
    before = row_counts(db)
    if command == "pool create":
        argv = ["pool", "create", "--name", "pb", "--criteria", work / "criteria.toml",
                "--cutoff", AS_OF]
    else:
        argv = ["simulate", "--pool", "1", "--assumptions", work / "a.toml", "--seed", "1",
                "--paths", "50", "--quiet"]
    r = cli(*argv, "--book", work / "book", "--db", db)
    assert r.code == 2, r.out + r.err
    assert "Traceback" not in r.err
    assert "`--book` must be" in r.err and named in r.err, r.err
    assert row_counts(db) == before


TAPE_DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "cut short": (_cut, "part-00000.parquet"),
    "not Parquet": (lambda p: p.write_bytes(b"xx"), "part-00000.parquet"),
    "without apr": (_drop("apr"), "`apr`"),
    "apr as text": (_as_text("apr"), "`apr`"),
    "null balances": (_nulls("balance"), "`balance`"),
    "null loan ids": (_nulls("loan_id"), "`loan_id`"),
}


@pytest.mark.parametrize("case", sorted(TAPE_DAMAGE))
def test_damaged_loan_tape(cli, work: Path, case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused from the files' footers before a cluster is started (was: ArrowInvalid on the
    client or on a worker, a traceback)."""
    import riskpool.commands.simulation as simulation

    def no_cluster(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cluster was started for a damaged tape")

    monkeypatch.setattr(simulation, "open_client", no_cluster)
    damage, named = TAPE_DAMAGE[case]
    damage(work / "tape" / "part-00000.parquet")
    db = work / "book.duckdb"
    before = row_counts(db)
    r = cli("simulate", "--pool", "1", "--assumptions", work / "a.toml", "--seed", "1",
            "--paths", "50", "--quiet", "--tape", work / "tape", "--workers", "1", "--db", db)
    assert r.code == 2, r.out + r.err
    assert "Traceback" not in r.err
    assert "`--tape` must be" in r.err and named in r.err, r.err
    assert row_counts(db) == before


def test_the_undamaged_book_is_read(cli, work: Path) -> None:
    """The base of the cases is good: the export cuts the same pool as the database."""
    r = cli("pool", "create", "--name", "pb", "--criteria", work / "criteria.toml",
            "--cutoff", AS_OF, "--book", work / "book", "--db", work / "book.duckdb")
    assert r.code == 0, r.err
    assert row_counts(work / "book.duckdb")["pools"] == 2


# ---------------------------------------------------------------- property

COLUMNS = {"book/loans": ["loan_id", "borrower_id", "origination_date", "principal", "apr",
                          "term_months", "repayment_type", "credit_score", "region"],
           "book/loan_performance": ["loan_id", "as_of", "months_on_book", "balance", "dpd",
                                     "status"]}
ACTIONS = ["drop", "text", "nulls", "cut", "stray", "none"]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_damage_to_a_book_is_refused_or_read(cli, exported: Path,
                                                  tmp_path_factory: pytest.TempPathFactory,
                                                  data: st.DataObject) -> None:
    work = tmp_path_factory.mktemp("book_fuzz")
    for item in exported.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, work / item.name)
    for _ in range(data.draw(st.integers(1, 3))):
        folder = data.draw(st.sampled_from(sorted(COLUMNS)))
        files = sorted((work / folder).rglob("*.parquet"))
        target = data.draw(st.sampled_from(files))
        action = data.draw(st.sampled_from(ACTIONS))
        col = data.draw(st.sampled_from(COLUMNS[folder]))
        try:
            {"drop": _drop(col), "text": _as_text(col), "nulls": _nulls(col), "cut": _cut,
             "stray": _stray, "none": lambda p: None}[action](target)
        except (pa.ArrowException, KeyError, OSError):
            pass  # an earlier damage left nothing to rewrite: the file stays as it is
    db = work / "book.duckdb"
    before = row_counts(db)
    r = cli("pool", "create", "--name", "pb", "--criteria", work / "criteria.toml",
            "--cutoff", AS_OF, "--book", work / "book", "--db", db)
    assert r.code in (0, 2), r.err
    assert "Traceback" not in r.err
    if r.code == 2:
        assert row_counts(db) == before
