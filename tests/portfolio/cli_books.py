"""Small generated books with a pool, made through the CLI: with the pool's calibration for the
tests of runs on Dask workers (``test_distributed*.py``, ``tests/riskpool/*_on_workers.py``),
with given assumptions for the tests of recorded runs."""

from __future__ import annotations

from pathlib import Path

from portfolio.book.pools import create_pool, parse_criteria
from portfolio.montecarlo.assumptions import Assumptions, save_assumptions
from portfolio.store.core import open_store
from riskpool.cli import main

AS_OF = "2025-08-31"
CRITERIA = "[eligibility]\nscore_min = 600\ndpd_max = 0\nterms = [3, 6, 9, 12]\n"
"""Current loans scoring 600+ (no concentration limit: the test books are tiny)."""


def run_cli(*args: str | Path | int) -> None:
    """``riskpool ARGS`` in-process; fails the test unless it exits 0."""
    try:
        main([str(a) for a in args])
    except SystemExit as exc:  # typer exits 0 on success
        assert not exc.code, args


def calibrated_pool(tmp: Path, n_loans: int, seed: int, months: int = 8) -> tuple[Path, Path]:
    """``riskpool generate`` (``n_loans`` loans over ``months`` months to :data:`AS_OF`, seed
    ``seed``) into ``tmp/b.duckdb``, pool 1 ``p`` of :data:`CRITERIA` at that cut-off, and its
    ``riskpool calibrate`` into ``tmp/a.toml``: (database, assumptions file)."""
    db, criteria, a_path = tmp / "b.duckdb", tmp / "criteria.toml", tmp / "a.toml"
    criteria.write_text(CRITERIA, encoding="utf-8")
    run_cli("generate", "--db", db, "--loans", n_loans, "--months", months, "--seed", seed,
            "--as-of", AS_OF, "--quiet")
    run_cli("pool", "create", "--db", db, "--name", "p", "--criteria", criteria,
            "--cutoff", AS_OF)
    run_cli("calibrate", "--db", db, "--pool", "1", "--out", a_path)
    return db, a_path


def pooled_book(tmp: Path, assumptions: Assumptions, n_loans: int = 1500
                ) -> tuple[Path, Path]:
    """``riskpool generate`` (``n_loans`` loans, 12 months to 2025-06-30) into
    ``tmp/book.duckdb``,
    pool 1 ``all`` (every loan scoring 350+) at that cut-off, and ``assumptions`` saved to
    ``tmp/a.toml``: (database, assumptions file)."""
    db = tmp / "book.duckdb"
    run_cli("generate", "--db", db, "--loans", n_loans, "--months", 12, "--as-of",
            "2025-06-30")
    with open_store(db) as store:
        create_pool(store, "all", parse_criteria({"eligibility": {"score_min": 350}}),
                    "2025-06-30")
    return db, save_assumptions(assumptions, tmp / "a.toml")
