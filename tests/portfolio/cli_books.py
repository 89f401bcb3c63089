"""A small generated book, a pool of it and the pool's calibration, made through the CLI, for
the tests of runs on Dask workers (``test_distributed*.py``, ``tests/riskpool/*_on_workers.py``).
"""

from __future__ import annotations

from pathlib import Path

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
