"""SQL and files of simulation runs: the ``runs`` row, summary tables and path arrays.

A run is recorded in one transaction: its ``runs`` row (typed inputs as JSON —
``SimulationInputs`` or ``ReportInputs``, ``portfolio.store.records`` — seed entropy, code
version, status, timings, summary), the mean and standard error of every flow in every month
(``run_monthly``; ``party_id = ''`` is the pool, other rows one party each) and the loss
distribution (``run_loss_stats``: EL, VaR and ES with their standard errors). The path
arrays go to Parquet beside the database::

    <db dir>/runs/<run_id>/paths.parquet        path, month, the seven flows (float64)
    <db dir>/runs/<run_id>/party_paths.parquet  party, path, month, the seven flows

and for a run of the delinquency-state model the end-of-month balance by state (``state_0``
current, ``state_k`` bucket k = 1 … K) and the cured balance (``cured``) beside the flows, in
both files (``PoolPaths.delinquency``; charge-off point and cure rule in the metadata).
    <db dir>/runs/<run_id>/assumptions.toml     the assumptions the run used (stress applied)
    <db dir>/runs/<run_id>/assumptions.json     the same, exactly (what a replay reads)
    <db dir>/runs/<run_id>/replenishment_<m>m/  a revolving deal's replenishment profile for
                                                m purchase months (``v<s>/paths.parquet`` per
                                                vintage s, as above),
                                                stored with the deal's results so a page or a
                                                command reads it instead of re-simulating it

``paths.parquet`` carries the run's metadata (period end dates, initial balance, seed entropy,
party ids) in its schema metadata under ``riskpool``. Files are written to a temporary
directory and renamed into place before the database transaction commits; if anything fails,
neither the rows nor the directory remain. The run's directory and its assumptions file are
named relative to the database's directory (``runs/4``), so a database moved together with its
``runs/`` directory still finds them. All SQL values are ``?`` parameters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
import shutil
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from portfolio import settings
from portfolio.errors import NotFound, StoredFileDamaged, ValidationError, must_be
from portfolio.montecarlo.assumptions import Assumptions, save_assumptions
from portfolio.montecarlo.paths import FLOW_NAMES, DelinquencyPaths, PoolPaths, ReplenishmentProfile
from portfolio.montecarlo.records import SimulationInputs, assumptions_to_json
from portfolio.montecarlo.summaries import PathSummary
from portfolio.risk import loss_stats, mean_and_se
from portfolio.store import liveness
from portfolio.store.core import Store
from portfolio.store.migrations import file_sha256
from portfolio.store.records import RunInputs, parse_run_inputs, run_kind
from portfolio.validation import Anything, OrNull, normalise_id, validate

__all__ = [
    "RunRecord",
    "clean_label",
    "finish_run",
    "get_run",
    "label_run",
    "list_runs",
    "load_path_losses",
    "load_paths",
    "load_quantile_paths",
    "paths_stored",
    "read_paths",
    "record_run",
    "record_simulation",
    "record_simulation_summary",
    "resolve_run_file",
    "run_dir",
    "run_loss_stats",
    "run_monthly",
    "runs_root",
    "summaries_only_message",
    "write_paths",
]

POOL_PARTY = ""  # party_id of the pool's own rows in run_monthly / run_loss_stats
_META_KEY = b"riskpool"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _json(value: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, dt.date | dt.datetime | Path):
            return str(o)
        raise TypeError(f"cannot store {type(o).__name__} as JSON")

    return json.dumps(value, default=default, sort_keys=True)


def _loads(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return json.loads(value)
    return value


def runs_root(store: Store) -> Path:
    """``runs/`` beside the database (``portfolio.settings.runs_dir``)."""
    return settings.runs_dir(store.path)


TMP_PREFIX = ".tmp-"
TMP_MAX_AGE = 24 * 3600.0  # seconds: a run writes its files in minutes


def remove_stale_tmp(root: Path) -> list[Path]:
    """Remove the temporary run folders (``runs/.tmp-*``) of runs that were killed before
    they finished: each folder's name records its writer (``portfolio.store.liveness``:
    hostname, pid, process start time, creation time); a folder whose writer is gone (dead,
    replaced, older than a day, or a name without a writer) is removed. A live run's folder is
    kept. Called at the start of every run; returns the folders removed."""
    removed = []
    for folder in sorted(root.glob(f"{TMP_PREFIX}*")):
        holder = liveness.parse_folder_tag(folder.name[len(TMP_PREFIX):])
        if liveness.stale(holder, TMP_MAX_AGE):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def run_dir(store: Store, run_id: int) -> Path:
    return runs_root(store) / str(int(run_id))


def _relative_run_dir(run_id: int) -> str:
    return f"runs/{int(run_id)}"


def resolve_run_file(store: Store, location: str) -> Path:
    """A path recorded with a run: relative ones (``runs/4/assumptions.toml``) are under the
    database's directory, absolute ones are as they are."""
    p = Path(location)
    return p if p.is_absolute() else Path(store.path).resolve().parent / p


# ------------------------------------------------------------------------------------------
# runs rows


def record_run(
    store: Store,
    inputs: RunInputs,
    seed_entropy: int | None,
    code_version: str,
    status: str = "running",
    timings: Mapping[str, float] | None = None,
    summary: Mapping[str, Any] | None = None,
    artifact_path: str | None = None,
    run_id: int | None = None,
    started_at: dt.datetime | None = None,
) -> int:
    """Insert a ``runs`` row of the kind of ``inputs`` and return its id (on the store's
    connection: call it inside ``store.transaction()`` to group it with the run's results)."""
    kind = run_kind(inputs)
    rid = store.next_id("run_seq") if run_id is None else int(run_id)
    finished = None if status == "running" else _now()
    store.con.execute(
        """INSERT INTO runs (run_id, kind, status, inputs, seed_entropy, code_version,
                             started_at, finished_at, timings, summary, artifact_path)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [rid, kind, status, _json(inputs.to_json()),
         None if seed_entropy is None else str(int(seed_entropy)), code_version,
         started_at or _now(), finished, _json(dict(timings or {})), _json(dict(summary or {})), artifact_path],
    )
    return rid


def finish_run(
    store: Store,
    run_id: int,
    status: str = "done",
    timings: Mapping[str, float] | None = None,
    summary: Mapping[str, Any] | None = None,
    artifact_path: str | None = None,
) -> None:
    """Set a run's final status, timings, summary (and artifact directory)."""
    require_run(store, run_id)
    store.con.execute(
        """UPDATE runs SET status = ?, finished_at = ?, timings = coalesce(?, timings),
                          summary = coalesce(?, summary),
                          artifact_path = coalesce(?, artifact_path)
           WHERE run_id = ?""",
        [status, _now(), None if timings is None else _json(dict(timings)),
         None if summary is None else _json(dict(summary)), artifact_path, int(run_id)],
    )


MAX_LABEL = 200


def _has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (Unicode category Cc: a line break, a tab,
    an escape that would redraw the terminal showing `riskpool runs list`)."""
    return any(unicodedata.category(c) == "Cc" for c in text)


def clean_label(label: str | None, tags: Sequence[str] = ()) -> tuple[str | None, list[str]]:
    """A run's label and tags as stored: trimmed, NFC; empty label → None; tags without
    duplicates in the order given. A label or tag over 200 characters, or a tag with a comma or
    blank, or a control character in either, is refused naming it."""
    text = None if label is None else normalise_id(label)
    if text is not None and len(text) > MAX_LABEL:
        raise ValidationError(must_be("--label", f"at most {MAX_LABEL} characters",
                                      f"{len(text)} characters"))
    if text is not None and _has_control(text):
        raise ValidationError(must_be("--label", "one line of text without control "
                                      "characters (line breaks, tabs, escapes)", text))
    out: list[str] = []
    for tag in tags:
        t = normalise_id(tag)
        if (not t or len(t) > MAX_LABEL or "," in t or any(c.isspace() for c in t)
                or _has_control(t)):
            raise ValidationError(must_be("--tag", "a word without spaces or commas, at most "
                                          f"{MAX_LABEL} characters", tag))
        if t not in out:
            out.append(t)
    return (text or None), out


def label_run(store: Store, run_id: int, label: str | None, tags: Sequence[str] = ()) -> None:
    """Set a run's label and tags (replacing what it had; see :func:`clean_label`)."""
    text, clean = clean_label(label, tags)
    require_run(store, run_id)
    store.con.execute("UPDATE runs SET label = ?, tags = ? WHERE run_id = ?",
                      [text, json.dumps(clean, ensure_ascii=False), int(run_id)])


def require_run(store: Store, run_id: int) -> None:
    """``NotFound`` naming the run ids on file unless run ``run_id`` exists."""
    row = store.con.execute("SELECT 1 FROM runs WHERE run_id = ?", [int(run_id)]).fetchone()
    if row is None:
        known = [r[0] for r in store.con.execute(
            "SELECT run_id FROM runs ORDER BY run_id DESC LIMIT 20").fetchall()]
        raise NotFound(must_be("run", "an existing run id " + (str(sorted(known)) if known else
                               "(no run yet: `riskpool simulate`)"), run_id))


# ------------------------------------------------------------------------------------------
# summary tables


def _monthly_frame(paths: PoolPaths) -> pd.DataFrame:
    frames = []
    parties = [(POOL_PARTY, {n: getattr(paths, n) for n in FLOW_NAMES})]
    parties += [(pid, {n: paths.party_flows[n][q] for n in FLOW_NAMES})
                for q, pid in enumerate(paths.party_ids)] if paths.party_flows else []
    for pid, flows in parties:
        cols: dict[str, Any] = {
            "party_id": pid,
            "month": np.arange(1, paths.n_months + 1, dtype=np.int16),
            "period_end": pd.to_datetime(paths.dates).date,
        }
        for name in FLOW_NAMES:
            mean, se = mean_and_se(flows[name], axis=0)
            cols[name] = mean
            cols[f"{name}_se"] = se
        frames.append(pd.DataFrame(cols))
    return pd.concat(frames, ignore_index=True)


def _loss_frame(paths: PoolPaths) -> pd.DataFrame:
    targets = [(POOL_PARTY, paths.loss, paths.initial_balance)]
    if paths.party_flows:
        party_loss = (paths.party_flows["default"] - paths.party_flows["recovery"]).sum(axis=2)
        party_init = paths.party_flows["balance_bop"][:, :, 0].mean(axis=1)
        targets += [(pid, party_loss[q], float(party_init[q]))
                    for q, pid in enumerate(paths.party_ids)]
    return pd.concat([_stats_rows(pid, loss, initial) for pid, loss, initial in targets],
                     ignore_index=True)


def _stats_rows(party_id: str, loss: np.ndarray, initial: float) -> pd.DataFrame:
    rows = []
    stats = loss_stats(loss, initial_balance=initial)
    for row in stats.rows():
        level = row["level"]
        rows.append({"party_id": party_id, "measure": row["measure"],
                     "level": 0.0 if isinstance(level, float) and math.isnan(level) else level,
                     "loss": row["loss"], "se": row["se"],
                     "loss_pct": row["loss_pct"] if initial else None})
    return pd.DataFrame(rows)


def _insert_frame(store: Store, table: str, run_id: int, frame: pd.DataFrame) -> None:
    frame = frame.copy()
    frame.insert(0, "run_id", int(run_id))
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    store.con.register("_run_rows", arrow)
    try:
        columns = ", ".join(f'"{c}"' for c in frame.columns)
        # table and column names are code constants; values come from the registered relation
        store.con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _run_rows")
    finally:
        store.con.unregister("_run_rows")


# ------------------------------------------------------------------------------------------
# path arrays as Parquet


def _flow_table(flows: Mapping[str, np.ndarray], n_paths: int, n_months: int) -> dict[str, Any]:
    cols: dict[str, Any] = {
        "path": np.repeat(np.arange(n_paths, dtype=np.int32), n_months),
        "month": np.tile(np.arange(1, n_months + 1, dtype=np.int16), n_paths),
    }
    for name in FLOW_NAMES:
        cols[name] = np.ascontiguousarray(flows[name], dtype=np.float64).ravel()
    return cols


def _state_columns(states: np.ndarray, cures: np.ndarray) -> dict[str, np.ndarray]:
    """(n_paths, n_months, K + 1) balances and (n_paths, n_months) cures as flat columns."""
    cols = {f"state_{k}": np.ascontiguousarray(states[..., k], dtype=np.float64).ravel()
            for k in range(states.shape[-1])}
    cols["cured"] = np.ascontiguousarray(cures, dtype=np.float64).ravel()
    return cols


def _read_states(table: pa.Table, n_states: int, n_paths: int, n_months: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    states = np.stack([table.column(f"state_{k}").to_numpy().reshape(n_paths, n_months)
                       for k in range(n_states)], axis=-1)
    return states, table.column("cured").to_numpy().reshape(n_paths, n_months)


def write_paths(paths: PoolPaths, directory: str | Path) -> Path:
    """Write ``paths`` as Parquet files in ``directory`` (created); returns the directory."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    meta = {
        "dates": [str(x) for x in np.asarray(paths.dates).astype("datetime64[D]")],
        "initial_balance": float(paths.initial_balance),
        "seed_entropy": None if paths.seed_entropy is None else str(paths.seed_entropy),
        "party_ids": list(paths.party_ids),
        "n_paths": paths.n_paths,
        "n_months": paths.n_months,
    }
    dq = paths.delinquency
    cols = _flow_table({n: getattr(paths, n) for n in FLOW_NAMES}, paths.n_paths, paths.n_months)
    if dq is not None:
        meta["delinquency"] = {"charge_off_dpd": dq.charge_off_dpd, "cure_rule": dq.cure_rule,
                               "n_states": int(dq.state_balance.shape[-1])}
        cols.update(_state_columns(dq.state_balance, dq.cures))
    table = pa.table(cols)
    table = table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
    pq.write_table(table, d / "paths.parquet", compression="zstd")
    if paths.party_flows:
        parts = []
        for q, pid in enumerate(paths.party_ids):
            cols = _flow_table({n: paths.party_flows[n][q] for n in FLOW_NAMES}, paths.n_paths,
                               paths.n_months)
            if dq is not None and dq.party_state_balance is not None \
                    and dq.party_cures is not None:
                cols.update(_state_columns(dq.party_state_balance[q], dq.party_cures[q]))
            t = pa.table(cols)
            parts.append(t.add_column(0, "party", pa.array([pid] * t.num_rows).dictionary_encode()))
        pq.write_table(pa.concat_tables(parts), d / "party_paths.parquet", compression="zstd")
    return d


def _by_path_month(table: pa.Table) -> pa.Table:
    """The rows in (path, month) order: as written (checked in one pass), else sorted."""
    path = table.column("path").to_numpy()
    month = table.column("month").to_numpy()
    if len(path) < 2 or bool(np.all((path[1:] > path[:-1])
                                    | ((path[1:] == path[:-1]) & (month[1:] > month[:-1])))):
        return table
    return table.sort_by([("path", "ascending"), ("month", "ascending")])


def _read_flows(table: pa.Table, n_paths: int, n_months: int) -> dict[str, np.ndarray]:
    return {n: table.column(n).to_numpy().reshape(n_paths, n_months) for n in FLOW_NAMES}


def require_simulation(store: Store, run_id: int) -> None:
    """``NotFound`` unless run ``run_id`` exists, ``ValidationError`` unless it is a
    simulation (a report run keeps no paths)."""
    require_run(store, run_id)
    kind = store.con.execute("SELECT kind FROM runs WHERE run_id = ?",
                             [int(run_id)]).fetchone()[0]  # type: ignore[index]
    if kind != "simulation":
        raise ValidationError(must_be("run", "a simulation run", f"run {int(run_id)} "
                                      f"(a {kind} run)"))


@contextlib.contextmanager
def _reading(run_id: int, path: Path) -> Iterator[None]:
    """Turn what a damaged run file raises (pyarrow, a missing metadata key, arrays of the
    wrong length) into ``StoredFileDamaged`` naming the run and the file."""
    try:
        yield
    except (pa.ArrowException, OSError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            raise
        raise StoredFileDamaged(
            f"run {int(run_id)}: its file {path} cannot be read as riskpool wrote it "
            f"({type(exc).__name__}: {exc}); it was changed or cut short after the run was "
            "recorded. Simulate the run again (the same inputs and seed give the same paths), "
            "or restore the runs/ folder from a copy") from None


def load_paths(store: Store, run_id: int) -> PoolPaths:
    """The stored path arrays of a run as ``PoolPaths`` (party flows included); a report run
    is refused, a damaged file is ``StoredFileDamaged``."""
    require_simulation(store, run_id)
    row = store.con.execute("SELECT artifact_path FROM runs WHERE run_id = ?",
                            [int(run_id)]).fetchone()
    d = resolve_run_file(store, row[0]) if row and row[0] else run_dir(store, run_id)
    if not (d / "paths.parquet").is_file():
        if not paths_stored(store, run_id):
            raise NotFound(summaries_only_message(run_id))
        raise NotFound(f"run {run_id} has no stored paths (expected {d / 'paths.parquet'})")
    with _reading(run_id, d / "paths.parquet"):
        return read_paths(d)


def stored_party_ids(store: Store, run_id: int) -> tuple[str, ...]:
    """The party ids ``load_paths`` gives the run's paths (their ``party_ids``: empty when no
    party flows are stored), read from the path files' metadata without the arrays."""
    require_run(store, run_id)
    d = _stored_run_dir(store, run_id)
    if not (d / "paths.parquet").is_file():
        if not paths_stored(store, run_id):
            return ()  # a run recorded from summaries carries no party flows
        raise NotFound(f"run {run_id} has no stored paths (expected {d / 'paths.parquet'})")
    with _reading(run_id, d / "paths.parquet"):
        meta = json.loads(pq.read_schema(d / "paths.parquet").metadata[_META_KEY])
        party_ids = tuple(meta["party_ids"])
    return party_ids if party_ids and (d / "party_paths.parquet").is_file() else ()


def _stored_run_dir(store: Store, run_id: int) -> Path:
    row = store.con.execute("SELECT artifact_path FROM runs WHERE run_id = ?",
                            [int(run_id)]).fetchone()
    return resolve_run_file(store, row[0]) if row and row[0] else run_dir(store, run_id)


def replenishment_dir(directory: str | Path, purchase_months: int) -> Path:
    """Where a run's replenishment profile for ``purchase_months`` purchase months lives."""
    return Path(directory) / f"replenishment_{int(purchase_months)}m"


def write_replenishment(store: Store, run_id: int, purchase_months: int,
                        profile: PoolPaths) -> Path:
    """Store a revolving deal's replenishment profile with recorded run ``run_id`` (the
    profile the deal's tables were computed with): written to a temporary folder in the run's
    directory, then renamed into place (an earlier profile for the same months is replaced).
    ``NotFound`` if the run does not exist."""
    require_run(store, run_id)
    d = _stored_run_dir(store, run_id)
    target = replenishment_dir(d, purchase_months)
    tmp = d / f"{TMP_PREFIX}{target.name}-{uuid.uuid4().hex}"
    try:
        write_profile(profile, tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def write_profile(profile: PoolPaths, directory: str | Path) -> Path:
    """Write a replenishment profile in ``directory``: one folder of :func:`write_paths` per
    vintage (``v0``, ``v1``, …; a plain ``PoolPaths`` is one vintage)."""
    d = Path(directory)
    later = profile.later if isinstance(profile, ReplenishmentProfile) else ()
    for s, vintage in enumerate((profile, *later)):
        write_paths(vintage, d / f"v{s}")
    return d


def read_profile(directory: str | Path) -> PoolPaths:
    """The profile :func:`write_profile` wrote (a ``ReplenishmentProfile`` with its vintages)."""
    d = Path(directory)
    n = len([p for p in d.glob("v*") if (p / "paths.parquet").is_file()])
    vintages = [read_paths(d / f"v{s}") for s in range(n)]
    first = vintages[0]
    return ReplenishmentProfile(**{f.name: getattr(first, f.name)
                                   for f in dataclasses.fields(PoolPaths)},
                                later=tuple(vintages[1:]))


def load_replenishment(store: Store, run_id: int, purchase_months: int) -> PoolPaths | None:
    """The replenishment profile stored with run ``run_id`` for ``purchase_months`` purchase
    months (:func:`write_replenishment`), or ``None`` if none was stored."""
    require_run(store, run_id)
    d = replenishment_dir(_stored_run_dir(store, run_id), purchase_months)
    if not (d / "v0" / "paths.parquet").is_file():
        return None
    with _reading(run_id, d):
        return read_profile(d)


def read_paths(directory: str | Path) -> PoolPaths:
    """The path arrays ``write_paths`` wrote in ``directory`` (the delinquency states too)."""
    d = Path(directory)
    table = pq.read_table(d / "paths.parquet")
    meta = json.loads(table.schema.metadata[_META_KEY])
    n_paths, n_months = int(meta["n_paths"]), int(meta["n_months"])
    table = _by_path_month(table)
    flows = _read_flows(table, n_paths, n_months)
    party_ids = tuple(meta["party_ids"])
    party_flows: dict[str, np.ndarray] = {}
    dq_meta = meta.get("delinquency")
    party_states: list[tuple[np.ndarray, np.ndarray]] = []
    pf = d / "party_paths.parquet"
    if party_ids and pf.is_file():
        ptable = pq.read_table(pf)
        per = []
        for pid in party_ids:
            t = ptable.filter(pa.compute.equal(ptable.column("party").cast(pa.string()), pid))
            t = _by_path_month(t)
            per.append(_read_flows(t, n_paths, n_months))
            if dq_meta is not None and "cured" in t.column_names:
                party_states.append(_read_states(t, int(dq_meta["n_states"]), n_paths,
                                                 n_months))
        party_flows = {n: np.stack([p[n] for p in per]) for n in FLOW_NAMES}
    delinquency = None
    if dq_meta is not None:
        states, cures = _read_states(table, int(dq_meta["n_states"]), n_paths, n_months)
        delinquency = DelinquencyPaths(
            charge_off_dpd=int(dq_meta["charge_off_dpd"]), cure_rule=str(dq_meta["cure_rule"]),
            state_balance=states, cures=cures,
            party_state_balance=(np.stack([p[0] for p in party_states]) if party_states
                                 else None),
            party_cures=np.stack([p[1] for p in party_states]) if party_states else None)
    entropy = meta.get("seed_entropy")
    return PoolPaths(
        dates=np.array(meta["dates"], dtype="datetime64[D]"),
        initial_balance=float(meta["initial_balance"]),
        seed_entropy=None if entropy is None else int(entropy),
        party_ids=party_ids if party_flows else (),
        party_flows=party_flows,
        delinquency=delinquency,
        **flows,
    )


# ------------------------------------------------------------------------------------------
# a whole simulation run, all or nothing


def record_simulation(
    store: Store,
    paths: PoolPaths,
    inputs: SimulationInputs,
    code_version: str,
    timings: Mapping[str, float] | None = None,
    assumptions: Assumptions | None = None,
    started_at: dt.datetime | None = None,
    on_record: Callable[[Store, int], None] | None = None,
    replenishment: tuple[int, PoolPaths] | None = None,
) -> int:
    """Record a finished simulation: runs row, summary tables, Parquet paths (and the
    assumptions it used, written beside the paths as TOML for people and as exact JSON for a
    replay: ``inputs.assumptions`` becomes ``runs/<id>/assumptions.toml``,
    ``inputs.assumptions_exact`` ``runs/<id>/assumptions.json``, each with its sha256, and
    ``inputs.assumptions_source`` the file the caller named). ``inputs.n_paths`` must be the
    paths' count; ``inputs.party_ids``, when given, their party ids (else they are taken from
    the paths). Returns the id.
    ``on_record(store, run_id)`` runs inside the same transaction after the run's rows (e.g.
    tranche results stored with the run): if it raises, nothing is recorded.
    ``replenishment``: (purchase months, profile) of the revolving deal whose results
    ``on_record`` stores, written with the paths (:func:`load_replenishment` reads it)."""
    if inputs.n_paths != paths.n_paths:
        raise ValidationError(must_be("inputs.n_paths", f"{paths.n_paths:,} (the paths' count)",
                                      inputs.n_paths))
    if inputs.party_ids and tuple(inputs.party_ids) != tuple(paths.party_ids):
        raise ValidationError(must_be("inputs.party_ids", f"{list(paths.party_ids)} (the paths' "
                                      "parties)", list(inputs.party_ids)))
    monthly = _monthly_frame(paths)
    losses = _loss_frame(paths)
    summary = _summary_json(paths.loss, paths.initial_balance, paths.n_months, paths.party_ids)

    def write(tmp: Path) -> None:
        write_paths(paths, tmp)
        if replenishment is not None:
            write_profile(replenishment[1], replenishment_dir(tmp, replenishment[0]))

    return _record(store, dataclasses.replace(inputs, party_ids=tuple(paths.party_ids)),
                   paths.seed_entropy, code_version, summary, monthly, losses, write, timings,
                   assumptions, started_at, on_record)


def _summary_json(loss: np.ndarray, initial_balance: float, n_months: int,
                  party_ids: Sequence[str]) -> dict[str, Any]:
    stats = loss_stats(loss, initial_balance=initial_balance)
    return {
        "n_paths": int(loss.shape[0]),
        "n_months": int(n_months),
        "initial_balance": initial_balance,
        "el": stats.el, "el_se": stats.el_se,
        **{f"var_{lv:g}": v for lv, v in zip(stats.levels, stats.var, strict=True)},
        **{f"es_{lv:g}": v for lv, v in zip(stats.levels, stats.es, strict=True)},
        "party_ids": list(party_ids),
    }


def _record(store: Store, inputs: SimulationInputs, seed_entropy: int | None,
            code_version: str, summary: Mapping[str, Any], monthly: pd.DataFrame,
            losses: pd.DataFrame, write: Callable[[Path], None],
            timings: Mapping[str, float] | None, assumptions: Assumptions | None,
            started_at: dt.datetime | None,
            on_record: Callable[[Store, int], None] | None) -> int:
    """A simulation run's rows and files, all or nothing: ``write(tmp)`` writes its files in
    a temporary folder renamed into place inside the transaction (module doc)."""
    root = runs_root(store)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(root)
    tmp = root / f"{TMP_PREFIX}{liveness.folder_tag(liveness.me(), uuid.uuid4().hex)}"
    final: Path | None = None
    try:
        write(tmp)
        with store.transaction():
            run_id = store.next_id("run_seq")
            final = run_dir(store, run_id)
            record = inputs
            if assumptions is not None:
                rel = _relative_run_dir(run_id)
                save_assumptions(assumptions, tmp / "assumptions.toml")
                (tmp / "assumptions.json").write_text(
                    json.dumps(assumptions_to_json(assumptions), default=str, indent=1),
                    encoding="utf-8")
                record = dataclasses.replace(
                    record, assumptions=f"{rel}/assumptions.toml",
                    assumptions_sha256=file_sha256(tmp / "assumptions.toml"),
                    assumptions_exact=f"{rel}/assumptions.json",
                    assumptions_exact_sha256=file_sha256(tmp / "assumptions.json"),
                    assumptions_source=inputs.assumptions_source or inputs.assumptions)
            store.con.execute(
                """INSERT INTO runs (run_id, kind, status, inputs, seed_entropy, code_version,
                                     started_at, finished_at, timings, summary, artifact_path)
                   VALUES (?, 'simulation', 'done', ?, ?, ?, ?, ?, ?, ?, ?)""",
                [run_id, _json(record.to_json()),
                 None if seed_entropy is None else str(seed_entropy), code_version,
                 started_at or _now(), _now(), _json(dict(timings or {})), _json(dict(summary)),
                 _relative_run_dir(run_id)],
            )
            _insert_frame(store, "run_monthly", run_id, monthly)
            _insert_frame(store, "run_loss_stats", run_id, losses)
            if on_record is not None:
                on_record(store, run_id)
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if final is not None and final.exists() and not _run_committed(store, run_id):
            shutil.rmtree(final, ignore_errors=True)
        raise
    return run_id


# ------------------------------------------------------------------------------------------
# a run recorded from summaries (Dask workers): no path flows stored

LOSSES_FILE = "losses.parquet"
QUANTILE_DIR = "quantile_paths"


def record_simulation_summary(
    store: Store,
    summary: PathSummary,
    inputs: SimulationInputs,
    code_version: str,
    seed_entropy: int | None,
    timings: Mapping[str, float] | None = None,
    assumptions: Assumptions | None = None,
    started_at: dt.datetime | None = None,
    on_record: Callable[[Store, int], None] | None = None,
    quantile_paths: tuple[Sequence[float], np.ndarray, PoolPaths] | None = None,
    bytes_back: int | None = None,
) -> int:
    """Record a run whose flows stayed on the Dask workers, from its
    :class:`~portfolio.montecarlo.summaries.PathSummary`: the runs row (summary marked
    ``paths_stored: false``), the loss distribution (from every path's loss: the same numbers
    as :func:`record_simulation` of the full paths), the monthly means and standard errors
    (from the per-block moments: equal to the full paths' to float rounding, the sums being
    taken block by block), ``runs/<id>/losses.parquet`` (path, loss) and, with
    ``quantile_paths`` (levels, path numbers, their ``PoolPaths``), those paths' full flows in
    ``runs/<id>/quantile_paths/`` (:func:`load_quantile_paths`). No ``paths.parquet``:
    :func:`load_paths` says the run kept summaries only. A summary with party flows is
    refused (their monthly standard errors are not kept). ``bytes_back``: what the workers
    sent, kept in the run's summary."""
    if inputs.n_paths != summary.n_paths:
        raise ValidationError(must_be("inputs.n_paths", f"{summary.n_paths:,} (the summary's "
                                      "path count)", inputs.n_paths))
    if summary.party_ids:
        raise ValidationError(must_be("summary", "a pool summary without party flows",
                                      f"parties {list(summary.party_ids)}"))
    n_months = int(summary.block_sum.shape[2])
    dates = np.asarray(summary.dates).astype("datetime64[D]")
    mean, se = summary.flow_mean(), summary.flow_se()
    cols: dict[str, Any] = {"party_id": POOL_PARTY,
                            "month": np.arange(1, n_months + 1, dtype=np.int16),
                            "period_end": pd.to_datetime(dates).date}
    for name in FLOW_NAMES:
        cols[name] = mean[name]
        cols[f"{name}_se"] = se[name]
    monthly = pd.DataFrame(cols)
    losses = _stats_rows(POOL_PARTY, summary.loss, summary.initial_balance)
    info = _summary_json(summary.loss, summary.initial_balance, n_months, ())
    info["paths_stored"] = False
    if bytes_back is not None:
        info["bytes_back"] = int(bytes_back)
    if quantile_paths is not None:
        levels, index, _ = quantile_paths
        info["quantile_paths"] = {"levels": [float(v) for v in levels],
                                  "path": [int(i) for i in index]}

    def write(tmp: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        meta = {"dates": [str(x) for x in dates], "initial_balance": summary.initial_balance,
                "seed_entropy": None if seed_entropy is None else str(seed_entropy),
                "n_paths": summary.n_paths, "n_months": n_months}
        table = pa.table({"path": np.arange(summary.n_paths, dtype=np.int32),
                          "loss": np.asarray(summary.loss, dtype=np.float64)})
        table = table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
        pq.write_table(table, tmp / LOSSES_FILE, compression="zstd")
        if quantile_paths is not None:
            write_paths(quantile_paths[2], tmp / QUANTILE_DIR)

    return _record(store, dataclasses.replace(inputs, party_ids=()), seed_entropy,
                   code_version, info, monthly, losses, write, timings, assumptions,
                   started_at, on_record)


def paths_stored(store: Store, run_id: int) -> bool:
    """Whether run ``run_id`` kept its paths' flows (False for a run recorded from summaries
    by :func:`record_simulation_summary`)."""
    return bool(_run_summary(store, run_id).get("paths_stored", True))


def _run_summary(store: Store, run_id: int) -> dict[str, Any]:
    require_run(store, run_id)
    row = store.con.execute("SELECT summary FROM runs WHERE run_id = ?",
                            [int(run_id)]).fetchone()
    return (_loads(row[0]) if row is not None else None) or {}


def summaries_only_message(run_id: int) -> str:
    """What a reader of a run recorded from summaries is told it cannot have."""
    return (f"run {int(run_id)} was recorded from summaries on Dask workers (riskpool simulate "
            "--workers/--scheduler): its paths' month-by-month flows were not kept, only each "
            "path's loss, the monthly means and the paths at the loss quantiles. This needs "
            "every path: rerun the pool without --workers/--scheduler (the same seed gives the "
            "same numbers)")


def load_path_losses(store: Store, run_id: int) -> np.ndarray:
    """Every path's pool loss of run ``run_id`` (from its paths, or from ``losses.parquet``
    for a run recorded from summaries)."""
    require_run(store, run_id)
    d = _stored_run_dir(store, run_id)
    if (d / LOSSES_FILE).is_file():
        with _reading(run_id, d / LOSSES_FILE):
            return pq.read_table(d / LOSSES_FILE).column("loss").to_numpy()
    return load_paths(store, run_id).loss


def load_quantile_paths(store: Store, run_id: int
                        ) -> tuple[tuple[float, ...], np.ndarray, PoolPaths]:
    """The loss levels, path numbers and full flows of the loss-quantile paths stored with a
    run recorded from summaries; ``NotFound`` if the run kept none."""
    info = _run_summary(store, run_id).get("quantile_paths")
    d = _stored_run_dir(store, run_id) / QUANTILE_DIR
    if not info or not (d / "paths.parquet").is_file():
        raise NotFound(f"run {int(run_id)} has no stored loss-quantile paths")
    with _reading(run_id, d / "paths.parquet"):
        return (tuple(float(v) for v in info["levels"]),
                np.asarray(info["path"], dtype=np.int64), read_paths(d))


def _run_committed(store: Store, run_id: int) -> bool:
    try:
        row = store.con.execute("SELECT 1 FROM runs WHERE run_id = ?", [int(run_id)]).fetchone()
    except Exception:  # the connection itself failed: nothing was committed
        return False
    return row is not None


# ------------------------------------------------------------------------------------------
# reading back


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: int
    kind: str  # simulation or report
    status: str
    inputs: RunInputs  # SimulationInputs (simulation) or ReportInputs (report)
    seed_entropy: int | None
    code_version: str | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    timings: dict[str, Any]
    summary: dict[str, Any]
    artifact_path: str | None  # absolute (a recorded relative path is resolved)
    label: str | None = None
    tags: tuple[str, ...] = ()

    def simulation_inputs(self) -> SimulationInputs:
        """The inputs of a simulation run; a run of another kind is refused."""
        if not isinstance(self.inputs, SimulationInputs):
            raise ValidationError(must_be("run", "a simulation run", f"run {self.run_id} "
                                          f"(a {self.kind} run)"))
        return self.inputs


def get_run(store: Store, run_id: int) -> RunRecord:
    """A run's row with its typed inputs (an unknown kind, key or value is refused)."""
    require_run(store, run_id)
    row = store.con.execute(
        """SELECT run_id, kind, status, inputs, seed_entropy, code_version, started_at,
                  finished_at, timings, summary, artifact_path, label, tags
           FROM runs WHERE run_id = ?""",
        [int(run_id)],
    ).fetchone()
    assert row is not None
    entropy = row[4]
    for column, value in (("timings", row[8]), ("summary", row[9])):  # free-form, read with .get
        validate(OrNull(Anything(table=True)), _loads(value), f"run {int(row[0])}",
                 f"runs.{column}")
    return RunRecord(
        run_id=int(row[0]), kind=row[1], status=row[2],
        inputs=parse_run_inputs(row[1], _loads(row[3]), f"run {int(row[0])}"),
        seed_entropy=None if entropy in (None, "") else int(entropy), code_version=row[5],
        started_at=row[6], finished_at=row[7], timings=_loads(row[8]) or {},
        summary=_loads(row[9]) or {},
        artifact_path=None if row[10] is None else str(resolve_run_file(store, row[10])),
        label=row[11], tags=tuple(_loads(row[12]) or ()),
    )


def list_runs(store: Store, kind: str | None = None) -> pd.DataFrame:
    """Runs, newest first: run_id, label, tags (comma-separated), kind, status, started_at,
    finished_at, pool_id, n_paths, seed, engine, parties (simulation runs; empty for others),
    el (pool expected loss of a simulation run), inputs (the typed record)."""
    sql = ("SELECT run_id, kind, status, started_at, finished_at, inputs, summary, label, tags "
           "FROM runs"
           + (" WHERE kind = ?" if kind else "") + " ORDER BY run_id DESC")
    frame = store.con.execute(sql, [kind] if kind else []).df()
    records = [parse_run_inputs(k, _loads(v), f"run {int(r)}")
               for r, k, v in zip(frame["run_id"], frame["kind"], frame["inputs"], strict=True)]
    sims = [r if isinstance(r, SimulationInputs) else None for r in records]
    frame["inputs"] = pd.Series(records, index=frame.index, dtype=object)
    frame["pool_id"] = pd.Series([s.pool_id if s else None for s in sims], index=frame.index,
                                 dtype=object)
    frame["n_paths"] = pd.Series([s.n_paths if s else None for s in sims], index=frame.index,
                                 dtype=object)
    frame["seed"] = pd.Series([s.seed if s else None for s in sims], index=frame.index,
                              dtype=object)
    frame["engine"] = pd.Series([s.engine if s else None for s in sims], index=frame.index,
                                dtype=object)
    frame["parties"] = pd.Series([s.party_ids if s else () for s in sims], index=frame.index,
                                 dtype=object)
    frame["el"] = frame["summary"].map(lambda v: (_loads(v) or {}).get("el"))
    frame["label"] = frame["label"].map(lambda v: "" if v is None or pd.isna(v) else str(v))
    frame["tags"] = frame["tags"].map(lambda v: ",".join(_loads(v) or ()) if isinstance(v, str) else "")
    return frame[["run_id", "label", "tags", "kind", "status", "started_at", "finished_at", "pool_id", "n_paths",
                  "seed", "engine", "parties", "el", "inputs"]]


def run_monthly(store: Store, run_id: int, party_id: str = POOL_PARTY) -> pd.DataFrame:
    """Mean and standard error of every flow per month (the pool, or one party)."""
    require_run(store, run_id)
    return store.con.execute(
        "SELECT * EXCLUDE (run_id, party_id) FROM run_monthly WHERE run_id = ? AND party_id = ? "
        "ORDER BY month", [int(run_id), party_id]).df()


def run_loss_stats(store: Store, run_id: int, party_id: str | None = POOL_PARTY) -> pd.DataFrame:
    """EL, VaR and ES with standard errors (the pool, one party, or all with ``None``)."""
    require_run(store, run_id)
    if party_id is None:
        return store.con.execute(
            "SELECT * EXCLUDE (run_id) FROM run_loss_stats WHERE run_id = ? "
            "ORDER BY party_id, measure = 'EL' DESC, level, measure DESC", [int(run_id)]).df()
    return store.con.execute(
        "SELECT * EXCLUDE (run_id, party_id) FROM run_loss_stats WHERE run_id = ? AND "
        "party_id = ? ORDER BY measure = 'EL' DESC, level, measure DESC",
        [int(run_id), party_id]).df()
