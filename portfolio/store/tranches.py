"""SQL for tranche results stored with a simulation run (tables ``run_deals``, ``run_tranches``).

``record_tranche_results`` replaces whatever was stored for the run (one deal per run) inside
its own transaction; ``insert_tranche_results`` does the same on a connection the caller already
holds in a transaction (e.g. the run that produced the paths). Parameterised SQL only.

The table is the DataFrame of ``tranching.analytics.tranche_table`` (one row per tranche in
seniority order); the column ``yield`` is stored as ``yield_rate`` and read back as ``yield``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pandas as pd

from portfolio.errors import NotFound
from portfolio.store.core import Store
from portfolio.store.runs import require_run

COLUMNS: tuple[str, ...] = (
    "tranche", "holder", "size", "size_share", "coupon", "el", "el_se", "pd", "lgl",
    "loss_q95", "loss_q99", "loss_q999", "wal_mean", "wal_p5", "wal_p95", "irr", "price",
    "yield", "mod_duration", "ce", "rating",
)
_SQL_COLUMNS = tuple("yield_rate" if c == "yield" else c for c in COLUMNS)


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    return value


def _run_exists(con: duckdb.DuckDBPyConnection, run_id: int) -> bool:
    return con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone() is not None


def insert_tranche_results(
    con: duckdb.DuckDBPyConnection,
    run_id: int,
    deal_name: str,
    table: pd.DataFrame,
    *,
    deal_source: str = "",
    deal_toml: str | None = None,
    settings: Mapping[str, Any] | None = None,
    triggers: Sequence[Mapping[str, Any]] | None = None,
) -> int:
    """Replace the run's tranche rows on ``con`` (caller holds the transaction); returns the count."""
    if not _run_exists(con, run_id):
        raise NotFound(f"run {run_id} does not exist; list runs with `riskpool runs list`")
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"tranche table lacks columns {missing}")
    con.execute("DELETE FROM run_tranches WHERE run_id = ?", [run_id])
    con.execute("DELETE FROM run_deals WHERE run_id = ?", [run_id])
    con.execute(
        "INSERT INTO run_deals (run_id, deal_name, deal_source, deal_toml, settings, triggers, "
        "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [run_id, deal_name, deal_source, deal_toml, json.dumps(dict(settings or {}), default=str),
         json.dumps([{k: _clean(v) for k, v in row.items()} for row in (triggers or [])], default=str),
         dt.datetime.now(dt.UTC).replace(tzinfo=None)],
    )
    placeholders = ", ".join("?" for _ in range(len(_SQL_COLUMNS) + 2))
    sql = (f"INSERT INTO run_tranches (run_id, position, {', '.join(_SQL_COLUMNS)}) "
           f"VALUES ({placeholders})")
    rows = [
        [run_id, position] + [_clean(row[c]) for c in COLUMNS]
        for position, (_, row) in enumerate(table.iterrows())
    ]
    con.executemany(sql, rows)
    return len(rows)


def record_tranche_results(
    store: Store,
    run_id: int,
    deal: Any,
    table: pd.DataFrame,
    *,
    triggers: pd.DataFrame | None = None,
    settings: Mapping[str, Any] | None = None,
) -> int:
    """Store ``table`` (from ``tranche_table``) with run ``run_id``, replacing earlier results.

    ``deal`` is the ``tranching.deal.Deal`` (its name and source file are kept, and the file's
    TOML text when it can be read); ``triggers`` the ``trigger_table`` DataFrame."""
    deal_toml = None
    source = getattr(deal, "source", "") or ""
    if source:
        try:
            with open(source, encoding="utf-8") as fh:
                deal_toml = fh.read()
        except OSError:
            deal_toml = None
    trig_rows = triggers.to_dict("records") if triggers is not None else None
    with store.transaction() as con:
        return insert_tranche_results(con, run_id, deal.name, table, deal_source=source,
                                      deal_toml=deal_toml, settings=settings, triggers=trig_rows)


def load_tranche_results(store: Store, run_id: int) -> pd.DataFrame:
    """The stored tranche table of run ``run_id`` (seniority order); ``NotFound`` if none."""
    cols = ", ".join(_SQL_COLUMNS)
    try:
        frame = store.con.execute(
            f"SELECT {cols} FROM run_tranches WHERE run_id = ? ORDER BY position", [run_id]
        ).fetchdf()
    except duckdb.CatalogException:  # a database created before tranche results existed
        frame = pd.DataFrame()
    if frame.empty:
        require_run(store, run_id)  # a run that does not exist is named as such
        raise NotFound(f"run {run_id} has no tranche results; run `riskpool simulate ... "
                       "--structure DEAL.toml` first")
    return frame.rename(columns={"yield_rate": "yield"})


def load_run_deal(store: Store, run_id: int) -> dict[str, Any]:
    """The deal recorded with run ``run_id``: name, source, TOML text, settings, triggers."""
    try:
        row = store.con.execute(
            "SELECT deal_name, deal_source, deal_toml, settings, triggers, recorded_at "
            "FROM run_deals WHERE run_id = ?", [run_id]
        ).fetchone()
    except duckdb.CatalogException:
        row = None
    if row is None:
        require_run(store, run_id)
        raise NotFound(f"run {run_id} has no tranche results")
    return {"deal_name": row[0], "deal_source": row[1], "deal_toml": row[2],
            "settings": json.loads(row[3]) if row[3] else {},
            "triggers": json.loads(row[4]) if row[4] else [], "recorded_at": row[5]}
