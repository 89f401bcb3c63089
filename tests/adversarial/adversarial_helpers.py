"""Helpers of the adversarial suite: every table's row count, so each case checks that a
refused input changed nothing."""

from __future__ import annotations

from pathlib import Path

import duckdb


def row_counts(db: Path) -> dict[str, int]:
    """Every table of the database and its row count (plain DuckDB, independent of riskpool)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_type = 'BASE TABLE' ORDER BY 1").fetchall()]
        return {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        con.close()
