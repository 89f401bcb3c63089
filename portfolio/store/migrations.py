"""Schema versions of the riskpool database and the steps between them.

``schema_info`` holds ``schema_version``. A writer that opens an older database runs every
step from its version up to :data:`SCHEMA_VERSION` in one transaction (with the schema's
DDL) and records the new version; if a step cannot convert a row it refuses with
:class:`portfolio.errors.SchemaMismatch`, saying why and how to rebuild, and the database
is left as it was. A reader (read-only) never migrates: an older database is refused with
the command that migrates it. A newer database is refused by both.

Versions:

1. The first schema: ``runs.inputs`` is a free JSON object, file paths are absolute.
2. Typed run records. Every ``runs.inputs`` is a ``SimulationInputs`` or a
   ``ReportInputs`` (``portfolio.store.records``); the assumptions stored with a simulation
   run and its files are named relative to the database's directory (``runs/4/...``), with
   the assumptions file's sha256, so a database moved with its ``runs/`` directory still
   replays. Step 1 → 2 (:func:`v1_to_v2`) reads every v1 run through the typed records:
   a run whose inputs hold a key or value the record does not know is refused, never mapped.
   Allocations keep their inputs (``partners.records.AllocationInputs`` reads them), except
   that the key ``script`` of ``examples/allocate_month.py`` becomes ``source``.
3. The fifth repayment type and the disclosed APR. ``loans.repayment_type`` accepts
   ``flat_fee``; ``loans.disclosed_apr`` and ``pool_loans.disclosed_apr`` hold the APR a loan
   was sold with (NULL: its stated ``apr`` is what was disclosed). Step 2 → 3
   (:func:`v2_to_v3`) rebuilds ``loans`` with the new constraint (DuckDB cannot alter a
   CHECK) keeping every row, and adds the pool column; existing rows get NULL.
4. Runs as named objects: ``runs.label`` (free text) and ``runs.tags`` (a JSON list of
   strings), set by ``--label``/``--tag`` or ``riskpool runs label``. Step 3 → 4
   (:func:`v3_to_v4`) adds both columns; existing runs get NULL (no label, no tags).
5. Scenario sets: ``scenario_sets`` (one row per set run by ``riskpool scenarios run``: its
   members and result table as JSON; ``portfolio.store.scenarios``) and its sequence. Step
   4 → 5 (:func:`v4_to_v5`) creates both, empty; nothing else changes.
6. The loan engine's sampler of a scenario set: ``scenario_sets.loan_sampler``, the draw the
   hazard model's loan engine made the set's numbers with (``simulation.LOAN_SAMPLERS``;
   NULL for a granular-engine or delinquency-model set, which has no such draw), as
   ``inputs.loan_sampler`` of a run. Step 5 → 6 (:func:`v5_to_v6`) adds the column and fills
   it for the sets already stored by :func:`legacy_set_sampler`, from what each row recorded:
   its engine, its model and its ``created_at``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from portfolio.errors import RiskpoolError, SchemaMismatch
from portfolio.montecarlo.records import SimulationInputs
from portfolio.montecarlo.simulation import LEGACY_LOAN_SAMPLER
from portfolio.store.book import LOAN_COLUMNS, loans_ddl
from portfolio.store.records import parse_run_inputs

__all__ = ["MIGRATIONS", "SCENARIO_DDL", "SCHEMA_VERSION", "SUBSET_SAMPLER_SINCE",
           "file_sha256", "legacy_set_sampler", "rebuild_hint", "v1_to_v2", "v2_to_v3",
           "v3_to_v4", "v4_to_v5", "v5_to_v6"]

SCHEMA_VERSION = 6

# the scenario-set tables (``portfolio.store.scenarios``): created by a new database's DDL and
# by the step 4 → 5, the same text (so a version-4 file gets ``loan_sampler`` at once and the
# step 5 → 6 finds it there)
SCENARIO_DDL: tuple[str, ...] = (
    "CREATE SEQUENCE IF NOT EXISTS scenario_set_seq START 1",
    """CREATE TABLE IF NOT EXISTS scenario_sets (
        set_id BIGINT PRIMARY KEY,
        name VARCHAR NOT NULL,
        source VARCHAR,
        set_toml VARCHAR,
        pool_id BIGINT NOT NULL,
        assumptions VARCHAR NOT NULL,
        assumptions_sha256 VARCHAR,
        n_paths BIGINT NOT NULL CHECK (n_paths >= 1),
        seed BIGINT NOT NULL CHECK (seed >= 0),
        model VARCHAR NOT NULL,
        engine VARCHAR NOT NULL,
        deal_name VARCHAR,
        deal_source VARCHAR,
        code_version VARCHAR,
        created_at TIMESTAMP NOT NULL,
        members JSON NOT NULL,
        results JSON NOT NULL,
        loan_sampler VARCHAR
    )""",
)

SUBSET_SAMPLER = "subset-binomial-v1"
SUBSET_SAMPLER_SINCE = dt.datetime(2026, 12, 6, 22, 37, 31)
"""When the loan engine's sampler ``subset-binomial-v1`` was first committed (commit c96faff,
UTC, naive like ``scenario_sets.created_at``): no riskpool before it could draw that way."""

# the keys a version-1 simulation run could hold (riskpool simulate, riskpool demo)
V1_SIMULATION_KEYS: tuple[str, ...] = (
    "pool_id", "pool_name", "n_loans", "cutoff_date", "assumptions", "assumptions_source",
    "n_paths", "seed", "engine", "batch_size", "stress", "deterministic", "deterministic_z",
    "dask", "book", "structure", "party_ids", "allocation_id", "source",
)


def rebuild_hint(db: Path | str) -> str:
    return (f"rebuild it: `riskpool demo --rebuild --db {db}` for a demo database, else a new "
            "database (`riskpool generate` or `riskpool ingest`, then `riskpool pool create`, "
            "`riskpool calibrate`, `riskpool simulate`)")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _run_relative(value: object, run_id: int, name: str = "") -> object:
    """``<any dir>/runs/<run_id>[/<name>]`` → ``runs/<run_id>[/<name>]`` (the run's own
    directory or file, wherever the database was when it was written); anything else
    unchanged."""
    tail = rf"[/\\]{re.escape(name)}" if name else ""
    if isinstance(value, str) and re.search(rf"(^|[/\\])runs[/\\]{run_id}{tail}$", value):
        return f"runs/{run_id}/{name}" if name else f"runs/{run_id}"
    return value


def _v1_simulation(old: Any, run_id: int, db_dir: Path) -> dict[str, Any]:
    where = f"run {run_id}"
    if not isinstance(old, dict):
        raise RiskpoolError(f"run {run_id}'s inputs are not a JSON object ({old!r})")
    unknown = sorted(k for k in old if k not in V1_SIMULATION_KEYS)
    if unknown:
        raise RiskpoolError(f"`inputs.{unknown[0]}` of run {run_id} is not a field of a "
                            f"simulation run (known: {', '.join(V1_SIMULATION_KEYS)})")
    new = dict(old)
    location = _run_relative(old.get("assumptions"), run_id, "assumptions.toml")
    new["assumptions"] = location
    if isinstance(location, str):
        path = Path(location) if Path(location).is_absolute() else db_dir / location
        new["assumptions_sha256"] = file_sha256(path) if path.is_file() else None
    return SimulationInputs.from_json(new, where).to_json()


def v1_to_v2(con: duckdb.DuckDBPyConnection, db_dir: Path) -> None:
    """Every run's inputs through the typed records; the run's own files named relative to
    the database's directory. Raises ``RiskpoolError`` (the reason) on a run it cannot type."""
    rows = con.execute("SELECT run_id, kind, inputs, artifact_path FROM runs "
                       "ORDER BY run_id").fetchall()
    for run_id, kind, raw, artifact in rows:
        rid = int(run_id)
        old = json.loads(raw) if isinstance(raw, str) else raw
        if kind == "simulation":
            inputs = _v1_simulation(old if old is not None else {}, rid, db_dir)
            artifact = _run_relative(artifact, rid) if artifact else f"runs/{rid}"
        else:
            inputs = parse_run_inputs(kind, old, f"run {rid}").to_json()
        con.execute("UPDATE runs SET inputs = ?, artifact_path = ? WHERE run_id = ?",
                    [json.dumps(inputs, sort_keys=True), artifact, rid])
    # allocations keep their JSON (typed by partners.records when read); the one version-1
    # key of another name, the example script's "script", is its "source"
    for allocation_id, raw in con.execute(
            "SELECT allocation_id, inputs FROM allocations ORDER BY allocation_id").fetchall():
        old = json.loads(raw) if isinstance(raw, str) else raw
        if isinstance(old, dict) and "script" in old and "source" not in old:
            new = {("source" if k == "script" else k): v for k, v in old.items()}
            con.execute("UPDATE allocations SET inputs = ? WHERE allocation_id = ?",
                        [json.dumps(new), int(allocation_id)])


# version → the step that takes a database of that version to the next one
def v2_to_v3(con: duckdb.DuckDBPyConnection, db_dir: Path) -> None:
    """``loans`` rebuilt under the version-3 DDL (flat_fee allowed, ``disclosed_apr`` NULL),
    every row copied; ``pool_loans.disclosed_apr`` added (NULL)."""
    del db_dir
    old_columns = [c for c in LOAN_COLUMNS if c != "disclosed_apr"]
    cols = ", ".join(old_columns)
    con.execute("ALTER TABLE loans RENAME TO loans_v2")
    con.execute(loans_ddl("loans"))
    con.execute(f"INSERT INTO loans ({cols}) SELECT {cols} FROM loans_v2")
    con.execute("DROP TABLE loans_v2")
    con.execute("ALTER TABLE pool_loans ADD COLUMN IF NOT EXISTS disclosed_apr DOUBLE")


def v3_to_v4(con: duckdb.DuckDBPyConnection, db_dir: Path) -> None:
    """``runs.label`` and ``runs.tags`` added; existing runs have neither (NULL)."""
    del db_dir
    con.execute("ALTER TABLE runs ADD COLUMN IF NOT EXISTS label VARCHAR")
    con.execute("ALTER TABLE runs ADD COLUMN IF NOT EXISTS tags JSON")


def v4_to_v5(con: duckdb.DuckDBPyConnection, db_dir: Path) -> None:
    """``scenario_sets`` and ``scenario_set_seq`` created (no set yet)."""
    del db_dir
    for statement in SCENARIO_DDL:
        con.execute(statement)


def legacy_set_sampler(engine: str, model: str, created_at: dt.datetime) -> str | None:
    """The loan engine's sampler of a scenario set stored before version 6, from what its row
    holds. Scenario sets came with version 5 (commit 8d79b55, 2026-12-06 14:48 UTC) and ran
    every member through ``delinquency.project`` / ``simulation.prepare_pool`` with the
    sampler of the code that ran them: ``float32-per-loan-v0`` (``LEGACY_LOAN_SAMPLER``, one
    float32 uniform per loan and path) until ``subset-binomial-v1`` was committed
    (:data:`SUBSET_SAMPLER_SINCE`), that one after. Only a hazard-model set of the loan engine
    has such a draw: any other set gets ``None``. The rule reads ``created_at``: a set made
    after that time by a checkout older than commit c96faff (its ``code_version`` names the
    commit) would be labelled ``subset-binomial-v1`` although it drew the legacy way; no riskpool
    version number separates the two (the package version was 0.1.0 throughout)."""
    if engine != "loan" or model != "hazard":
        return None
    return LEGACY_LOAN_SAMPLER if created_at < SUBSET_SAMPLER_SINCE else SUBSET_SAMPLER


def v5_to_v6(con: duckdb.DuckDBPyConnection, db_dir: Path) -> None:
    """``scenario_sets.loan_sampler`` added, each stored set's filled by
    :func:`legacy_set_sampler`."""
    del db_dir
    con.execute("ALTER TABLE scenario_sets ADD COLUMN IF NOT EXISTS loan_sampler VARCHAR")
    rows = con.execute("SELECT set_id, engine, model, created_at FROM scenario_sets "
                       "ORDER BY set_id").fetchall()
    for set_id, engine, model, created_at in rows:
        sampler = legacy_set_sampler(str(engine), str(model), created_at)
        if sampler is not None:
            con.execute("UPDATE scenario_sets SET loan_sampler = ? WHERE set_id = ?",
                        [sampler, int(set_id)])


MIGRATIONS: dict[int, Callable[[duckdb.DuckDBPyConnection, Path], None]] = {
    1: v1_to_v2, 2: v2_to_v3, 3: v3_to_v4, 4: v4_to_v5, 5: v5_to_v6}


def check_steps(db: Path, version: int) -> None:
    """Refuse a version no chain of steps leads from (none, or newer than this code)."""
    if version > SCHEMA_VERSION:
        raise SchemaMismatch(
            f"database {db} was written by a newer riskpool (schema version {version}; this "
            f"version reads {SCHEMA_VERSION}); use that riskpool, or {rebuild_hint(db)}")
    missing = [v for v in range(version, SCHEMA_VERSION) if v not in MIGRATIONS]
    if missing:
        raise SchemaMismatch(
            f"database {db} was written by an older riskpool (schema version {version}; this "
            f"version reads {SCHEMA_VERSION}) and cannot be migrated; {rebuild_hint(db)}")


def migrate(con: duckdb.DuckDBPyConnection, db: Path, version: int) -> None:
    """Run the steps from ``version`` to ``SCHEMA_VERSION`` on ``con`` (the caller holds the
    transaction). A step that refuses becomes ``SchemaMismatch`` with the rebuild hint."""
    check_steps(db, version)
    for v in range(version, SCHEMA_VERSION):
        try:
            MIGRATIONS[v](con, Path(db).resolve().parent)
        except RiskpoolError as exc:
            raise SchemaMismatch(
                f"database {db} was written by an older riskpool (schema version {version}; "
                f"this version reads {SCHEMA_VERSION}) and cannot be migrated: {exc}. Nothing "
                f"was changed; {rebuild_hint(db)}") from None
