"""The data-access layer of the dashboard and the reports: every read goes through here.

Who may see what is decided in this module, not in the pages:

- ``treasury`` reads the whole book (the database opened read-only).
- ``partner:<id>`` reads through :func:`portfolio.store.reports.open_partner_scope`: a
  connection whose ``loans``, ``loan_performance``, ``pools``, ``pool_loans``,
  ``allocations``… hold only that partner's allocated loans, money columns scaled by its share.
  Every analytics function therefore computes over the partner's own loans. Results built
  from Monte Carlo paths (runs, tranches, dispersion) are cut to the partner's own party
  flows, tranche holdings and dispersion row here, before anything is returned. A partner
  asking for another partner's tape, or for a run that does not carry its party, gets
  ``AccessDenied``.

Each call opens the database for the call and closes it afterwards (one short read-only
connection per session run), so a nightly writer can take the file between page loads. An open
that finds a writer holding the file retries for a short while (``portfolio.store.open_store``'s ``wait``: a page
``PAGE_LOCK_WAIT_S``, a scheduled report or a write longer), then gives ``DataUpdating``
("data is being updated"), not a crash. The only writes are treasury's: saving a pool and
recording a simulation run (:func:`record_pool_run`), each one short transaction.

Results are plain frozen dataclasses and DataFrames, so ``st.cache_data`` can cache them by
(database version, scope, run id). No borrower identifier leaves this module except the
pseudonymous ``loan_id`` (and, only in a partner's own tape export, the borrower id masked with
that partner's key: ``partners.masking``).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import re
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import tomli_w

from dashboards.auth import Viewer, check_role
from partners.dispersion import Dispersion, disperse_paths, party_paths
from partners.distributed import check_run_for_workers, disperse_on_cluster
from partners.reconciliation import economic_views
from partners.reconciliation import reconcile as reconcile_parties
from partners.records import (
    dispersion_on_workers_message,
    load_allocation,
    masked_tape,
    rounded_tape,
    run_party_paths,
    run_party_split,
)
from portfolio import settings
from portfolio.book import analytics as book_an
from portfolio.book import summaries
from portfolio.book.compare import MIN_TAIL_PATHS, compare_runs, results_table, tail_paths
from portfolio.book.pools import (
    create_pool,
    get_pool,
    list_pools,
    load_pool_loans,
    parse_criteria,
    select_pool,
    strats,
)
from portfolio.errors import NotFound, RiskpoolError, StoreLocked, ValidationError
from portfolio.montecarlo.assumptions import Assumptions, load_assumptions
from portfolio.montecarlo.distributed import open_client
from portfolio.montecarlo.paths import PoolPaths
from portfolio.montecarlo.records import SimulationInputs, Stress, loan_sampler_for
from portfolio.montecarlo.simulation import loss_distribution, simulate
from portfolio.store import Store, open_store
from portfolio.store import allocations as alloc_sql
from portfolio.store import analytics as book_sql
from portfolio.store import pools as pool_sql
from portfolio.store import reports as sql
from portfolio.store import runs as run_sql
from portfolio.store import scenarios as scenario_sql
from portfolio.store import summaries as summary_sql
from portfolio.store.tranches import load_tranche_results
from portfolio.validation import SchemaError, parse_toml
from portfolio.version import code_version
from tranching.analytics import (
    credit_enhancement_by_month,
    loss_shares,
    trigger_metrics,
    trigger_table,
    with_class_total,
)
from tranching.analytics import tranche_table as table_fn
from tranching.deal import SIZE_TOLERANCE, Deal, deal_from_dict
from tranching.errors import DealError, RatingTableError
from tranching.ratings import RatingTable, parse_rating_table
from tranching.reconcile import excess_spread_table, reconcile, residual_table
from tranching.revolving import load_deal_record, run_replenishment_profile
from tranching.tape import cashflow_tape
from tranching.waterfall import run_waterfall

FAN_QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
# the inputs a page opens a run with (the Tranches page's discount slider and rating table)
DEFAULT_DISCOUNT = 0.05
TRANCHES_VIEW = "tranches"
DISPERSION_VIEW = "dispersion"
PLATFORM_ID = "platform"
POOL_BASIS = "the whole pool's paths"
OWN_SHARE_BASIS = "your own share of the run's paths (no other party's loans)"


class DataUpdating(RiskpoolError):
    """The database is held by a writer (a nightly load, a run): try again shortly."""


class AccessDenied(RiskpoolError):
    """The viewer asked for data outside its scope."""


def db_version(db: str | Path) -> str:
    """A key that changes whenever the database file changes (cache invalidation)."""
    p = Path(db)
    parts = []
    for f in (p, p.with_name(p.name + ".wal")):
        if f.exists():
            st = f.stat()
            parts.append(f"{st.st_mtime_ns}:{st.st_size}")
    return "|".join(parts) or "missing"


def _updating(db: str | Path) -> DataUpdating:
    return DataUpdating(
        f"data is being updated: {db} is in use by a writer (a load or a run). "
        "The page will work again when it has finished — reload in a minute.")


# A DuckDB file has one writer process or any number of reader processes, never both. Writers
# (the dashboard recording a run, a report recording itself) hold it for one short transaction,
# so an open that finds it locked retries for a while before it gives up with DataUpdating:
# pages wait PAGE_LOCK_WAIT_S, a scheduled report (``waiting``) and a run being saved longer.
PAGE_LOCK_WAIT_S = 2.0
WRITE_LOCK_WAIT_S = 30.0
_LOCK_WAIT: contextvars.ContextVar[float] = contextvars.ContextVar("lock_wait",
                                                                   default=PAGE_LOCK_WAIT_S)


@contextlib.contextmanager
def waiting(seconds: float) -> Iterator[None]:
    """Within the block, an open of the database that finds it held by a writer retries for up
    to ``seconds`` (the scheduled report waits out a dashboard's short write)."""
    token = _LOCK_WAIT.set(float(seconds))
    try:
        yield
    finally:
        _LOCK_WAIT.reset(token)


def lock_wait() -> float:
    """Seconds an open of the database waits for a writer here (see :func:`waiting`)."""
    return _LOCK_WAIT.get()


def _open(db: str | Path, *, read_only: bool, wait: float | None = None) -> Store:
    """``open_store`` waiting ``wait`` seconds (default :func:`lock_wait`) for a writer;
    then ``DataUpdating``."""
    try:
        return open_store(db, read_only=read_only,
                          wait=lock_wait() if wait is None else float(wait))
    except StoreLocked:
        raise _updating(db) from None


# DuckDB sums floats in parallel in an order that varies from run to run (last-bit
# differences); the scheduled reports set one thread so the same inputs give the same bytes.
_ONE_THREAD: contextvars.ContextVar[bool] = contextvars.ContextVar("one_thread", default=False)


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """Within the block, every connection of this module runs DuckDB on one thread."""
    token = _ONE_THREAD.set(True)
    try:
        yield
    finally:
        _ONE_THREAD.reset(token)


def _configure(store: Store) -> Store:
    if _ONE_THREAD.get():
        store.set_threads(1)
    return store


@contextlib.contextmanager
def connect(db: str | Path, viewer: Viewer,
            only: tuple[str, ...] | None = None) -> Iterator[Store]:
    """A read-only store for ``viewer``: the whole book or the partner's scope (``only``:
    just those tables of it, ``open_partner_scope``'s ``only``)."""
    check_viewer(viewer)
    if viewer.is_treasury:
        store = _open(db, read_only=True)
    else:
        store = _partner_store(db, viewer, only)
    try:
        yield _configure(store)
    finally:
        store.close()


def _partner_store(db: str | Path, viewer: Viewer,
                   only: tuple[str, ...] | None = None) -> Store:
    """The partner's scope (``open_partner_scope``), retried while a writer holds the file
    for :func:`lock_wait` seconds, then ``DataUpdating``. The scope built for a database
    version is kept (detached from the file: :func:`_scope_cached`) and each call gets its
    own cursor on it, so a page's several reads copy the partner's rows once; under
    :func:`deterministic` (one DuckDB thread) a fresh scope is built for the call."""
    pid = viewer.partner_id
    assert pid is not None
    if not Path(db).exists():
        raise RiskpoolError(f"database {db} does not exist; run `riskpool demo`")
    deadline = time.monotonic() + lock_wait()
    pause = 0.02
    while True:
        try:
            if _ONE_THREAD.get():
                return Store(Path(db), sql.open_partner_scope(db, pid, threads=1, only=only),
                             True)
            scope = _scope_cached(str(Path(db).resolve()), db_version(db), pid, only)
            with _SCOPE_LOCK:
                return Store(Path(db), scope.cursor(), True)
        except duckdb.Error as exc:
            text = str(exc).lower()
            if "lock" not in text and "configuration" not in text:
                raise
            if time.monotonic() >= deadline:
                raise _updating(db) from None
        time.sleep(min(pause, max(deadline - time.monotonic(), 0.0)))
        pause = min(pause * 2, 0.25)


_SCOPE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4)
def _scope_cached(db: str, version: str, party_id: str,
                  only: tuple[str, ...] | None = None) -> duckdb.DuckDBPyConnection:
    """The partner's scope of database version ``version`` (or ``only`` those tables of it),
    detached from the file (it holds only that partner's rows); the last four kept. A new
    version of the file builds anew."""
    with _SCOPE_LOCK:
        return sql.open_partner_scope(db, party_id, detached=True, only=only)


@contextlib.contextmanager
def _full(db: str | Path) -> Iterator[Store]:
    """The whole book, read-only — only for results that are cut to the viewer's scope below."""
    store = _open(db, read_only=True)
    try:
        yield _configure(store)
    finally:
        store.close()


def check_viewer(viewer: object) -> Viewer:
    """``viewer`` if it is a ``Viewer`` with a valid role (``treasury`` or ``partner:<id>``);
    else ``AccessDenied``. Every access function calls it first (through ``connect``,
    ``_require_treasury`` or directly), so no read happens for a malformed or missing viewer."""
    if not isinstance(viewer, Viewer):
        raise AccessDenied(f"no viewer (got {type(viewer).__name__}): log in first")
    try:
        check_role(viewer.role)
    except ValidationError:
        raise AccessDenied(f"{viewer.username!r} has no valid role ({viewer.role!r}); "
                           "log in again") from None
    return viewer


def _require_treasury(viewer: Viewer, what: str) -> None:
    check_viewer(viewer)
    if not viewer.is_treasury:
        raise AccessDenied(f"{what} is for treasury users; {viewer.username} "
                           f"({viewer.role}) sees its own loans and positions only")


# --------------------------------------------------------------------------- book


@dataclass(frozen=True, slots=True, eq=False)
class BookView:
    as_of: dt.date
    month_ends: tuple[dt.date, ...]
    summary: pd.DataFrame  # by dimension (portfolio.book.analytics.book_summary groups)
    anchors: pd.DataFrame
    default_by_score_band: pd.DataFrame
    delinquency: pd.DataFrame  # buckets at as_of
    delinquency_by_month: pd.DataFrame  # <bucket>_loans / <bucket>_balance per month-end
    cumulative_default: pd.DataFrame  # vintage × months on book
    roll_rates: pd.DataFrame
    rates: pd.DataFrame  # monthly MDR/CDR, SMM/CPR, MPR
    # month-ends up to as_of reported for part of the book (analytics.MonthlyRates.incomplete)
    incomplete: tuple[tuple[dt.date, int, int], ...] = ()

    def headline(self) -> dict[str, float]:
        return _headline(self.summary)

    def mix(self, dimension: str) -> pd.DataFrame:
        """The book's mix by one dimension with its total row (:func:`mix_table`)."""
        return mix_table(self.summary, dimension)

    def partial_note(self, choose: str = "--as-of") -> str | None:
        """The CLI's note when ``as_of`` was reported for part of the book, else ``None``."""
        return book_an.partial_month_note(self.as_of, self.incomplete, self.month_ends, choose)


@dataclass(frozen=True, slots=True, eq=False)
class BookHead:
    """The fast part of the book view: size and mix at ``as_of`` and the anchors."""

    as_of: dt.date
    month_ends: tuple[dt.date, ...]
    summary: pd.DataFrame
    anchors: pd.DataFrame
    default_by_score_band: pd.DataFrame

    def headline(self) -> dict[str, float]:
        return _headline(self.summary)

    def mix(self, dimension: str) -> pd.DataFrame:
        """The book's mix by one dimension with its total row (:func:`mix_table`)."""
        return mix_table(self.summary, dimension)


@dataclass(frozen=True, slots=True, eq=False)
class BookDetail:
    """The history part: delinquency over time, vintages, roll rates, monthly rates."""

    delinquency: pd.DataFrame
    delinquency_by_month: pd.DataFrame
    cumulative_default: pd.DataFrame
    roll_rates: pd.DataFrame
    rates: pd.DataFrame
    # each delinquent bucket's share of the outstanding balance by month-end
    # (portfolio.book.analytics.delinquency_shares)
    delinquency_shares: pd.DataFrame = field(default_factory=pd.DataFrame)
    # month-ends up to as_of reported for part of the book (analytics.MonthlyRates.incomplete):
    # (month-end, loans performing a month before, of which with a row then)
    incomplete: tuple[tuple[dt.date, int, int], ...] = ()

    def partial_note(self, head: BookHead, choose: str = "--as-of") -> str | None:
        """The CLI's note when ``head``'s month-end was reported for part of the book."""
        return book_an.partial_month_note(head.as_of, self.incomplete, head.month_ends, choose)


MIX_TOTAL = "total"


def mix_table(summary: pd.DataFrame, dimension: str) -> pd.DataFrame:
    """The groups of one ``dimension`` of the book summary (product, region, …) followed by
    their total: the summary's ``all`` row (loans and balance their sums, share 1, the
    weighted averages and DPD ratios the whole book's, which the groups' weighted by balance
    give), as ``group`` ``MIX_TOTAL``. The Book page shows it."""
    groups = summary[summary["dimension"] == dimension]
    total = summary[summary["dimension"] == "all"].assign(dimension=dimension, group=MIX_TOTAL)
    return pd.concat([groups, total], ignore_index=True)


def _headline(summary: pd.DataFrame) -> dict[str, float]:
    row = summary[summary["dimension"] == "all"].iloc[0]
    return {"loans": int(row["loans"]), "balance": float(row["balance"]),
            "wa_apr": float(row["wa_apr"]), "dpd30_ratio": float(row["dpd30_ratio"]),
            "dpd90_ratio": float(row["dpd90_ratio"])}


def book_head(db: str | Path, viewer: Viewer, as_of: dt.date | None = None) -> BookHead:
    """Size and mix of the viewer's book at ``as_of`` (default: the latest month-end): for
    treasury, the tables stored with the book when they are current
    (``portfolio.book.summaries``), else computed."""
    party = _stored_party_book(db, viewer, as_of)
    if party is not None:
        day, ends, tables = party
        return BookHead(day, ends, tables["summary"], tables["anchors"],
                        tables["default_by_score_band"])
    with connect(db, viewer) as store:
        ends = tuple(book_sql.month_ends(store.con))
        if not ends:
            raise NotFound("the book is empty for this user (no loans to show)")
        found = _stored_book(store, viewer, as_of)
        day, tables = found if found is not None else summaries.head_tables(store.con, as_of)
    return BookHead(day, ends, tables["summary"], tables["anchors"],
                    tables["default_by_score_band"])


def _stored_book(store: Store, viewer: Viewer,
                 as_of: dt.date | None) -> tuple[dt.date, dict[str, pd.DataFrame]] | None:
    """The whole book's stored Book-page tables (treasury only: a partner's scope has its
    own loans, computed on it), or ``None``."""
    return summaries.stored_book_tables(store.con, as_of) if viewer.is_treasury else None


def _stored_party_book(db: str | Path, viewer: Viewer, as_of: dt.date | None
                       ) -> tuple[dt.date, tuple[dt.date, ...], dict[str, pd.DataFrame]] | None:
    """A partner's own Book-page tables stored when its allocation was saved
    (``portfolio.book.summaries.store_party_book_summaries``; read under the viewer's own
    party id only) while its shares and the book are as they were; else ``None``."""
    check_viewer(viewer)
    if viewer.is_treasury or viewer.partner_id is None:
        return None
    with _full(db) as store:
        return summaries.stored_party_book_tables(store.con, viewer.partner_id, as_of)


def book_detail(db: str | Path, viewer: Viewer, as_of: dt.date) -> BookDetail:
    """Delinquency over time, vintage curves, roll rates and CDR/CPR up to ``as_of`` (stored
    with the book or computed, as :func:`book_head`)."""
    party = _stored_party_book(db, viewer, as_of)
    if party is not None:
        t = party[2]
        return BookDetail(t["delinquency"], t["delinquency_by_month"], t["cumulative_default"],
                          t["roll_rates"], t["rates"], t["delinquency_shares"],
                          book_an.incomplete_from_frame(t["incomplete_months"]))
    with connect(db, viewer) as store:
        found = _stored_book(store, viewer, as_of)
        t = found[1] if found is not None else summaries.detail_tables(store.con, as_of)
    return BookDetail(t["delinquency"], t["delinquency_by_month"], t["cumulative_default"],
                      t["roll_rates"], t["rates"], t["delinquency_shares"],
                      book_an.incomplete_from_frame(t["incomplete_months"]))


def book(db: str | Path, viewer: Viewer, as_of: dt.date | None = None) -> BookView:
    """Size and mix, delinquency, vintages, roll rates and CDR/CPR of the viewer's book."""
    head = book_head(db, viewer, as_of)
    d = book_detail(db, viewer, head.as_of)
    return BookView(head.as_of, head.month_ends, head.summary, head.anchors,
                    head.default_by_score_band, d.delinquency, d.delinquency_by_month,
                    d.cumulative_default, d.roll_rates, d.rates, d.incomplete)


# --------------------------------------------------------------------------- pools


def pools(db: str | Path, viewer: Viewer) -> pd.DataFrame:
    """Pools the viewer can see: pool id, name, cut-off, loans and balance (its own share)."""
    with connect(db, viewer, sql.POOL_SCOPE) as store:
        infos = list_pools(store)
    return pd.DataFrame([{"pool_id": p.pool_id, "name": p.name, "cutoff_date": p.cutoff_date,
                          "n_loans": p.n_loans, "balance": p.balance} for p in infos],
                        columns=["pool_id", "name", "cutoff_date", "n_loans", "balance"])


def pool_strats(db: str | Path, viewer: Viewer, pool_id: int) -> dict[str, pd.DataFrame]:
    """Stratification tables of a stored pool (over the viewer's loans in it); a partner
    with no loan in the pool is refused."""
    with connect(db, viewer, sql.POOL_SCOPE) as store:
        if not viewer.is_treasury and int(pool_id) not in {p.pool_id for p in list_pools(store)}:
            raise AccessDenied(f"pool {pool_id} is not visible to {viewer.username}")
        return strats(store, int(pool_id))


@dataclass(frozen=True, slots=True, eq=False)
class PoolPreview:
    n_loans: int
    balance: float
    exclusions: pd.DataFrame  # reason, loans, balance
    strats: dict[str, pd.DataFrame]


def preview_pool(db: str | Path, viewer: Viewer, criteria: dict[str, Any],
                 cutoff: dt.date) -> PoolPreview:
    """Live stratification of an eligibility form, without storing anything.

    The selection is ``portfolio.book.pools.select_pool`` on the viewer's candidates at the
    cut-off; the tables are ``portfolio.book.pools.strats`` run on that selection held in an
    in-memory copy of the pool tables."""
    crit = parse_criteria(criteria, "eligibility form")
    with connect(db, viewer) as store:
        candidates = pool_sql.snapshot_candidates(store.con, cutoff)
    selection = select_pool(candidates, crit, cutoff)
    excl = pd.DataFrame([dataclasses.asdict(e) for e in selection.exclusions])
    n = selection.n_loans
    total = float(pd.Series(selection.loans["cutoff_balance"]).sum()) if n else 0.0
    mem = sql.pool_preview_connection(selection.loans, cutoff)
    try:
        tables = strats(Store(Path(":memory:"), mem, True), 0)
    finally:
        mem.close()
    return PoolPreview(int(n), total, excl, tables)


def saved_pool_preview(db: str | Path, viewer: Viewer, criteria: dict[str, Any],
                       cutoff: dt.date) -> tuple[int, PoolPreview] | None:
    """The saved pool these criteria selected at ``cutoff`` (treasury: the criteria of a
    stored pool, the same cut-off) and its figures as the preview shows them — its loans,
    balance, exclusions and strats as stored — without selecting again; else ``None``. A
    partner's preview selects from its own loans, which is not a saved pool's cut: ``None``."""
    check_viewer(viewer)
    if not viewer.is_treasury:
        return None
    crit = parse_criteria(criteria, "eligibility form")
    with connect(db, viewer) as store:
        for info in list_pools(store):
            if info.criteria == crit and info.cutoff_date == cutoff:
                excl = pd.DataFrame([dataclasses.asdict(e) for e in info.exclusions])
                return info.pool_id, PoolPreview(int(info.n_loans), float(info.balance), excl,
                                                 strats(store, info.pool_id))
    return None


def save_pool(db: str | Path, viewer: Viewer, name: str, criteria: dict[str, Any],
              cutoff: dt.date) -> int:
    """Store the pool (treasury only): a short write transaction; returns the pool id."""
    _require_treasury(viewer, "saving a pool")
    crit = parse_criteria(criteria, "eligibility form")
    store = _open(db, read_only=False, wait=WRITE_LOCK_WAIT_S)
    try:
        return create_pool(store, name, crit, cutoff).pool_id
    finally:
        store.close()


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True, slots=True, eq=False)
class RunView:
    """One simulation run as the viewer may see it: the pool's paths (treasury) or the
    viewer's own party's paths (partner)."""

    run_id: int | str
    label: str
    party: str | None  # None: the whole pool
    n_paths: int
    initial_balance: float
    loss: np.ndarray  # (n_paths,)
    stats: pd.DataFrame  # portfolio.montecarlo.simulation.LossStats.rows()
    el: float
    var: dict[float, float]
    es: dict[float, float]
    dates: tuple[dt.date, ...]
    balance_fan: pd.DataFrame  # month × quantile of balance_eop
    loss_fan: pd.DataFrame  # month × quantile of monthly net loss (default − recovery)
    # why the view is partial: a run recorded from summaries on Dask workers keeps each
    # path's loss and the monthly means, not the paths (its fans are the means only)
    note: str = ""


def fan(x: np.ndarray, dates: tuple[dt.date, ...],
        quantiles: tuple[float, ...] = FAN_QUANTILES) -> pd.DataFrame:
    """(n_paths, n_months) → month × quantile table (the fan chart's bands) plus the mean."""
    q = np.quantile(x, quantiles, axis=0)
    out = pd.DataFrame(q.T, columns=[f"p{int(round(v * 100))}" for v in quantiles])
    out.insert(0, "date", list(dates))
    out["mean"] = x.mean(axis=0)
    return out


def run_view_from_paths(paths: PoolPaths, run_id: int | str, label: str,
                        party: str | None) -> RunView:
    """Summarise a ``PoolPaths`` (already cut to the viewer's scope)."""
    stats = loss_distribution(paths)
    dates = tuple(pd.Timestamp(d).date() for d in np.asarray(paths.dates))
    net = paths.default - paths.recovery
    return RunView(run_id, label, party, paths.n_paths, float(paths.initial_balance),
                   np.asarray(paths.loss, dtype=np.float64), pd.DataFrame(stats.rows()),
                   stats.el, dict(zip(stats.levels, stats.var, strict=True)),
                   dict(zip(stats.levels, stats.es, strict=True)), dates,
                   fan(paths.balance_eop, dates), fan(net, dates))


def runs(db: str | Path, viewer: Viewer) -> pd.DataFrame:
    """Simulation runs the viewer may open: run id, label, tags, pool, paths, seed, engine,
    started, parties (from the runs' typed records). A partner sees the runs whose paths carry its
    party only."""
    cols = ["run_id", "label", "tags", "pool_id", "n_paths", "seed", "engine", "started_at",
            "parties"]
    check_viewer(viewer)
    with _full(db) as store:
        frame = run_sql.list_runs(store, "simulation")
    if not viewer.is_treasury:
        frame = frame[frame["parties"].map(lambda p: viewer.partner_id in p)].copy()
        frame["parties"] = [(viewer.partner_id,)] * len(frame)  # not who else is in the run
    return frame.reindex(columns=cols).reset_index(drop=True)


def _load_paths(db: str | Path, run_id: int) -> PoolPaths:
    """The run's full paths (never returned to a viewer as they are: see ``run_paths_for``).
    The last two loaded runs are kept in memory per database version: pages on the same run
    (simulation, tranches, dispersion) read the Parquet files once."""
    return _load_paths_cached(str(Path(db).resolve()), db_version(db), int(run_id))


@functools.lru_cache(maxsize=2)
def _load_paths_cached(db: str, version: str, run_id: int) -> PoolPaths:
    with _full(db) as store:
        paths = run_sql.load_paths(store, run_id)
    for name in ("balance_bop", "interest", "scheduled_principal", "prepayment", "default",
                 "recovery", "balance_eop"):
        getattr(paths, name).flags.writeable = False
    for arr in paths.party_flows.values():
        arr.flags.writeable = False
    return paths


def _load_replenishment(db: str | Path, run_id: int, deal: Deal) -> PoolPaths | None:
    """The replenishment profile of a revolving deal's purchases on the run (None if the deal
    does not revolve), rebuilt from the run's inputs (``tranching.revolving``) so the page
    gives the tranche table stored with the run; the last two kept in memory like the paths."""
    if deal.revolving_months <= 0:
        return None
    return _load_replenishment_cached(str(Path(db).resolve()), db_version(db), int(run_id),
                                      int(deal.revolving_months))


@functools.lru_cache(maxsize=2)
def _load_replenishment_cached(db: str, version: str, run_id: int,
                               purchase_months: int) -> PoolPaths:
    with _full(db) as store:
        return run_replenishment_profile(store, run_id, purchase_months)


def _require_party(viewer: Viewer, run_id: int, paths: PoolPaths) -> str:
    """The partner's id if the run carries its party flows; else ``AccessDenied``. A partner
    is party to a run only through an allocation treasury recorded with the run."""
    pid = viewer.partner_id
    if pid is None or pid not in tuple(paths.party_ids):
        raise AccessDenied(f"run {run_id} does not carry partner {viewer.partner_id}'s "
                           "positions; a partner sees its own positions only")
    return pid


def _require_run_party(db: str | Path, viewer: Viewer, run_id: int) -> str:
    """:func:`_require_party` on the party ids the run's stored paths carry, read from their
    files' metadata (the arrays are not loaded)."""
    with _full(db) as store:
        party_ids = run_sql.stored_party_ids(store, int(run_id))
    pid = viewer.partner_id
    if pid is None or pid not in party_ids:
        raise AccessDenied(f"run {run_id} does not carry partner {viewer.partner_id}'s "
                           "positions; a partner sees its own positions only")
    return pid


def run_paths_for(db: str | Path, viewer: Viewer, run_id: int) -> PoolPaths:
    """The run's ``PoolPaths`` cut to the viewer: the pool (treasury) or its party."""
    check_viewer(viewer)
    paths = _load_paths(db, run_id)
    if viewer.is_treasury:
        return paths
    return party_paths(paths, _require_party(viewer, run_id, paths))


def paths_kept(db: str | Path, viewer: Viewer, run_id: int) -> bool:
    """Whether the run kept its paths' flows (False: recorded from summaries on Dask
    workers, ``portfolio.store.runs.record_simulation_summary``). A partner asks only of a
    run carrying its own positions (else ``AccessDenied``, as for the run itself)."""
    check_viewer(viewer)
    if not viewer.is_treasury:
        _require_run_party(db, viewer, run_id)
    return _paths_kept(db, run_id)


def _paths_kept(db: str | Path, run_id: int) -> bool:
    """:func:`paths_kept` for callers that have checked the viewer themselves."""
    return _paths_kept_cached(str(Path(db).resolve()), db_version(db), int(run_id))


@functools.lru_cache(maxsize=32)
def _paths_kept_cached(db: str, version: str, run_id: int) -> bool:
    with _full(db) as store:
        return run_sql.paths_stored(store, run_id)


SUMMARY_RUN_NOTE = ("Run {run_id} was recorded from summaries on Dask workers (`riskpool "
                    "simulate --workers/--scheduler`): it kept each path's loss, the monthly "
                    "means and the paths at the VaR levels, not every path's month-by-month "
                    "flows. The loss distribution is complete; the fan charts show the monthly "
                    "means only (their percentile bands need every path: rerun without "
                    "--workers, the same seed gives the same numbers).")


def _summary_run_view(db: str | Path, run_id: int) -> RunView:
    """A run recorded from summaries: every path's loss (its distribution exactly as from the
    paths) and the monthly means as one-line fans."""
    with _full(db) as store:
        loss = run_sql.load_path_losses(store, run_id)
        monthly = run_sql.run_monthly(store, run_id)
        initial = float(run_sql.get_run(store, run_id).summary["initial_balance"])
    stats = loss_distribution(loss, initial_balance=initial)
    dates = tuple(pd.Timestamp(d).date() for d in monthly["period_end"])
    balance = pd.DataFrame({"date": list(dates), "mean": monthly["balance_eop"].to_numpy()})
    net = pd.DataFrame({"date": list(dates), "mean": (monthly["default"]
                                                      - monthly["recovery"]).to_numpy()})
    return RunView(int(run_id), f"run {run_id}", None, int(loss.shape[0]), initial,
                   np.asarray(loss, dtype=np.float64), pd.DataFrame(stats.rows()), stats.el,
                   dict(zip(stats.levels, stats.var, strict=True)),
                   dict(zip(stats.levels, stats.es, strict=True)), dates, balance, net,
                   note=SUMMARY_RUN_NOTE.format(run_id=int(run_id)))


def run_view(db: str | Path, viewer: Viewer, run_id: int) -> RunView:
    check_viewer(viewer)
    if not _paths_kept(db, run_id):
        if not viewer.is_treasury:
            _require_run_party(db, viewer, run_id)  # such a run carries no party flows
        return _summary_run_view(db, int(run_id))
    paths = run_paths_for(db, viewer, run_id)
    party = None if viewer.is_treasury else viewer.partner_id
    label = f"run {run_id}" + (f" ({party})" if party else "")
    return run_view_from_paths(paths, int(run_id), label, party)


@dataclass(frozen=True, slots=True, eq=False)
class CompareView:
    """Two runs side by side: their inputs and the delta table of their loss measures
    (``portfolio.book.compare``: the numbers of ``riskpool runs diff``), cut to the viewer."""

    a: str
    b: str
    inputs: pd.DataFrame  # input, a, b, differs
    results: pd.DataFrame  # party, measure, level, a, a_se, b, b_se, delta, ..., note
    few_paths: tuple[str, ...]  # one line per measure whose tail has < MIN_TAIL_PATHS paths


# the inputs a partner sees of a run it is party to: how it was run, not the pool or the others
PARTNER_INPUTS = ("n_paths", "seed", "engine", "model", "label", "code_version")


def _few_paths(results: pd.DataFrame) -> tuple[str, ...]:
    flagged = results[results["note"] != ""]
    return tuple(f"{r.party} {r.measure} {r.level:.1%}: {r.note}"
                 for r in flagged.itertuples(index=False))


def compare(db: str | Path, viewer: Viewer, run_a: int, run_b: int) -> CompareView:
    """Two recorded runs compared (``portfolio.book.compare.compare_runs``). A partner must
    be party to both; it gets its own party's rows and how each run was made (n_paths, seed,
    engine, model, label, code version, stresses), nothing about the pool or other parties."""
    check_viewer(viewer)
    if not viewer.is_treasury:
        for rid in (run_a, run_b):
            _require_run_party(db, viewer, int(rid))  # from the path files' metadata
    with _full(db) as store:
        cmp = compare_runs(store, int(run_a), int(run_b))
    inputs, results = cmp.inputs, cmp.results
    if not viewer.is_treasury:
        keep = inputs["input"].map(lambda k: k in PARTNER_INPUTS or k.startswith("stress."))
        inputs = inputs[keep].reset_index(drop=True)
        results = results[results["party"] == viewer.partner_id].reset_index(drop=True)
    return CompareView(f"run {run_a}", f"run {run_b}", inputs, results, _few_paths(results))


def _stats_frame(view: RunView) -> pd.DataFrame:
    """A run view's loss measures as the store keeps them (``run_loss_stats``)."""
    stats = view.stats.copy()
    stats["level"] = stats["level"].astype(float).fillna(0.0)
    stats.insert(0, "party_id", view.party or "")
    return stats


def compare_views(viewer: Viewer, a: RunView, b: RunView) -> CompareView:
    """Two run views compared with the same arithmetic as recorded runs
    (``portfolio.book.compare.results_table``) — for runs made in the session, which have no
    stored inputs (the inputs table holds their labels)."""
    check_viewer(viewer)
    results = results_table(_stats_frame(a), _stats_frame(b), a.n_paths, b.n_paths)
    inputs = pd.DataFrame([{"input": "label", "a": a.label, "b": b.label,
                            "differs": a.label != b.label},
                           {"input": "n_paths", "a": str(a.n_paths), "b": str(b.n_paths),
                            "differs": a.n_paths != b.n_paths}])
    return CompareView(a.label, b.label, inputs, results, _few_paths(results))


def thin_tails(view: RunView) -> tuple[str, ...]:
    """The VaR/ES levels of a run whose tail holds fewer than ``MIN_TAIL_PATHS`` paths."""
    return tuple(f"VaR and ES {level:.1%} rest on {tail_paths(view.n_paths, level)} path(s) "
                 f"beyond the quantile (fewer than {MIN_TAIL_PATHS}); their SE says nothing"
                 for level in view.var if tail_paths(view.n_paths, level) < MIN_TAIL_PATHS)


def simulate_pool(db: str | Path, viewer: Viewer, pool_id: int, assumptions: Assumptions, *,
                  n_paths: int, seed: int, pd_mult: float = 1.0, rho: float | None = None,
                  prepay_mult: float = 1.0, recovery_mult: float = 1.0,
                  progress: Callable[[float], None] | None = None) -> RunView:
    """Run the Monte Carlo on a stored pool under stressed assumptions (treasury only; not
    recorded — the Simulation page records its runs with :func:`record_pool_run`)."""
    _require_treasury(viewer, "running a pool simulation")
    stressed = stress(assumptions, pd_mult=pd_mult, rho=rho, prepay_mult=prepay_mult,
                      recovery_mult=recovery_mult)
    with connect(db, viewer) as store:
        loans = load_pool_loans(store, int(pool_id))
    # small batches in the calling thread: the progress bar moves every 256 paths, and an
    # exception raised by ``progress`` (Streamlit stopping the script when the user clicks
    # Cancel or leaves the page) ends the run at once. Results depend on neither.
    paths = simulate(loans, stressed, int(n_paths), int(seed), batch_size=256,
                     progress=progress, threads=1)
    label = (f"pool {pool_id}: PD×{pd_mult:g}, ρ {stressed.rho:.3f}, prepay×{prepay_mult:g}, "
             f"recovery×{recovery_mult:g}, {n_paths:,} paths, seed {seed}")
    return run_view_from_paths(paths, label, label, None)


def record_pool_run(db: str | Path, viewer: Viewer, pool_id: int, assumptions_name: str, *,
                    n_paths: int, seed: int, pd_mult: float = 1.0, rho: float | None = None,
                    prepay_mult: float = 1.0, recovery_mult: float = 1.0,
                    label: str | None = None, tags: tuple[str, ...] = (),
                    progress: Callable[[float], None] | None = None) -> RunView:
    """Run the Monte Carlo on a stored pool under stressed assumptions and record it as an
    ordinary simulation run (treasury only), as ``riskpool simulate`` records one:
    ``portfolio.store.runs.record_simulation`` (paths and assumptions written to a temporary
    folder named after this process, then the ``runs`` rows, summary tables and the label and
    tags in one transaction, the folder renamed into place before it commits; on any failure
    neither rows nor files remain). The simulation runs before the database is opened for
    writing, so the write lock is held for that one short transaction only; an open that finds
    the file held retries for ``WRITE_LOCK_WAIT_S``, then ``DataUpdating`` (nothing recorded).
    ``assumptions_name``: a key of :func:`assumption_files`."""
    _require_treasury(viewer, "recording a simulation run")
    text, clean = run_sql.clean_label(label, tags)  # refused before any work
    files = assumption_files(db, viewer)
    if assumptions_name not in files:
        raise NotFound(f"no assumption set {assumptions_name!r}; there are {sorted(files)}")
    source = files[assumptions_name]
    stressed = stress(load_assumptions(source), pd_mult=pd_mult, rho=rho,
                      prepay_mult=prepay_mult, recovery_mult=recovery_mult)
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    t0 = time.perf_counter()
    with connect(db, viewer) as store:
        pool = get_pool(store, int(pool_id))
        loans = load_pool_loans(store, int(pool_id))
    if len(loans) == 0:
        raise ValidationError(f"pool {pool_id} has no loan to simulate")
    t1 = time.perf_counter()
    # small batches in the calling thread, as simulate_pool (progress, Cancel)
    paths = simulate(loans, stressed, int(n_paths), int(seed), batch_size=256,
                     progress=progress, threads=1)
    timings = {"load_s": t1 - t0, "simulate_s": time.perf_counter() - t1}
    inputs = SimulationInputs(
        pool_id=int(pool_id), n_paths=paths.n_paths, seed=int(seed), engine="granular",
        assumptions=str(Path(source).resolve()),
        stress=Stress(pd_mult=float(pd_mult), rho=float(stressed.rho),
                      smm_mult=float(prepay_mult), recovery_mult=float(recovery_mult)),
        batch_size=256, pool_name=pool.name, n_loans=len(loans), cutoff_date=pool.cutoff_date,
        source="dashboard", model="hazard",
        loan_sampler=loan_sampler_for("granular", "hazard", None))

    def with_label(store: Store, run_id: int) -> None:
        run_sql.label_run(store, run_id, text, clean)

    store = _open(db, read_only=False, wait=WRITE_LOCK_WAIT_S)
    try:
        run_id = run_sql.record_simulation(store, paths, inputs, code_version(),
                                           timings=timings, assumptions=stressed,
                                           started_at=started, on_record=with_label)
    finally:
        store.close()
    return run_view_from_paths(paths, run_id, f"run {run_id}" + (f" — {text}" if text else ""),
                               None)


def stress(assumptions: Assumptions, *, pd_mult: float = 1.0, rho: float | None = None,
           prepay_mult: float = 1.0, recovery_mult: float = 1.0) -> Assumptions:
    """``Assumptions.stressed`` with the dashboard's four sliders."""
    return assumptions.stressed(pd_multiplier=pd_mult, rho=rho, smm_multiplier=prepay_mult,
                                recovery_multiplier=recovery_mult)


def assumption_files(db: str | Path, viewer: Viewer) -> dict[str, str]:
    """Assumption sets on file: ``assumptions*.toml`` beside the database (``riskpool
    calibrate`` / ``riskpool demo``) and the set each recorded run used. Treasury only: they
    are calibrated on the whole book, and a run's set belongs to a run a partner may not be
    party to."""
    _require_treasury(viewer, "the assumption files")
    base = Path(db).resolve().parent
    found = {p.name: str(p) for p in sorted(base.glob("assumptions*.toml"))}
    for p in sorted(settings.runs_dir(db).glob("*/assumptions.toml"),
                    key=lambda q: int(q.parent.name) if q.parent.name.isdigit() else 0):
        found[f"run {p.parent.name}"] = str(p)
    return found


def load_assumptions_file(db: str | Path, viewer: Viewer, name: str) -> Assumptions:
    """The assumption set ``name`` (a key of :func:`assumption_files`; treasury only). Only
    the files listed there can be read: a path is never taken from the page."""
    files = assumption_files(db, viewer)
    if name not in files:
        raise NotFound(f"no assumption set {name!r}; there are {sorted(files)}")
    return load_assumptions(files[name])


def pool_assumptions(db: str | Path, viewer: Viewer, pool_id: int) -> Assumptions:
    """Assumptions for a pool: the demo's saved file beside the database if present, else
    ``NotFound`` (treasury only: calibrated on the whole book)."""
    _require_treasury(viewer, "a pool's assumptions")
    for candidate in (Path(db).with_name(f"assumptions_pool{pool_id}.toml"),
                      Path(db).with_name("assumptions.toml")):
        if candidate.exists():
            return load_assumptions(candidate)
    raise NotFound(f"no assumptions file beside {db} (assumptions_pool{pool_id}.toml); "
                   "make one with `riskpool calibrate`")


# --------------------------------------------------------------------------- tranches


@dataclass(frozen=True, slots=True, eq=False)
class TrancheView:
    deal_name: str
    table: pd.DataFrame  # tranching.analytics.tranche_table (viewer's tranches only)
    triggers: pd.DataFrame  # tranching.analytics.trigger_table (empty for stored positions)
    loss_shares: dict[str, np.ndarray]  # tranche -> (n_paths,) loss / original balance
    cashflow_fans: dict[str, pd.DataFrame]  # tranche -> fan of monthly cash to the tranche
    # the residual holder (tranching.reconcile.residual_table): treasury, or the partner that
    # holds the subordinated tranche; empty else
    residual: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    # the cash and loss reconciliation and excess spread by period: treasury only
    reconciliation: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    excess_spread: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    basis: str = POOL_BASIS  # what the waterfall ran on (POOL_BASIS or OWN_SHARE_BASIS)
    # the expected path's cash-flow tape (tranching.tape.cashflow_tape; a partner's stored
    # positions: its classes' rows only) and each trigger's metric against its level by month
    # (tranching.analytics.trigger_metrics; empty where triggers are)
    tape: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    trigger_metrics: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    # each class's credit enhancement by month (tranching.analytics.credit_enhancement_by_month)
    credit_enhancement: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    # why the view is partial (a run recorded from summaries: the tables stored with it only)
    note: str = ""

    def class_table(self) -> pd.DataFrame:
        """``table`` with its classes' total row (``tranching.analytics.with_class_total``,
        as ``riskpool tranche report`` prints it); the Tranches page and the report show it."""
        return with_class_total(self.table)

    def class_shares(self) -> list[str]:
        """The class table's losses: shares of each class's original balance
        (``tranching.analytics``: EL, its SE, PD, LGL, the loss quantiles) whatever their
        values — a column of zeros (no path loses on a class) reads 0.00%, as the others."""
        return [c for c in self.table.columns
                if c in ("el", "el_se", "pd", "lgl") or str(c).startswith("loss_q")]


def rating_table_from_text(text: str, source: str = "rating table") -> RatingTable:
    """A rating table from its TOML text (``tranching.ratings``; ``RatingTableError`` naming
    the field otherwise)."""
    return parse_rating_table(parse_toml(text, source, RatingTableError), source)


def example_rating_tables(viewer: Viewer, root: str | Path | None = None) -> dict[str, str]:
    """The shipped rating table files by name (``examples/rating_table_*.toml``; labelled
    illustrative): any logged-in viewer."""
    check_viewer(viewer)
    base = Path(root) if root else Path(__file__).resolve().parent.parent / "examples"
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(base.glob("rating_table_*.toml"))}


def deal_from_text(text: str, source: str = "deal editor") -> Deal:
    return deal_from_dict(parse_toml(text, source, DealError), source)


def _same_deal(a: Deal, b: Deal) -> bool:
    return dataclasses.replace(a, source="") == dataclasses.replace(b, source="")


def _stored_deal(db: str | Path, run_id: int) -> Deal | None:
    text = _stored_deal_text(db, run_id)
    return deal_from_text(text, f"deal stored with run {run_id}") if text else None


def tranches(db: str | Path, viewer: Viewer, run_id: int, deal_toml: str,
             discount: float = 0.05, rating_toml: str | None = None) -> TrancheView:
    """The deal's waterfall on the run's paths, as the viewer may see it.

    Treasury: on the whole pool's paths (with the run's replenishment profile if the deal
    revolves), every tranche, the trigger table, the residual holder, the reconciliation and
    the excess spread. ``rating_toml``: a rating table's TOML text for the implied ratings.

    A partner (who must be party to the run) never names holders and never sees a waterfall
    on loans that are not its own:

    - the deal stored with the run by treasury gives the tranches treasury recorded as the
      partner's (``holder`` = its id) and nothing else — its positions as stored (the
      residual only if it holds the last class; no reconciliation or excess spread);
    - any other deal (uploaded, edited, an example) is an exploration: the waterfall runs on
      the partner's own share of the paths (its party flows), every class of the deal over
      that share, without a replenishment profile (a revolving deal's purchases perform like
      the partner's remaining share: ``tranching.waterfall``'s approximation without one).
      The ``holder`` column is dropped: the classes are all over the partner's own loans.
    """
    check_viewer(viewer)
    deal = deal_from_text(deal_toml)
    ratings = rating_table_from_text(rating_toml) if rating_toml else None
    if viewer.is_treasury:
        return _pool_tranche_view(db, run_id, deal, deal_toml, discount, ratings, rating_toml)
    pid = _require_run_party(db, viewer, run_id)
    stored_text = _stored_deal_text(db, run_id)
    stored = (deal_from_text(stored_text, f"deal stored with run {run_id}") if stored_text
              else None)
    if stored is not None and stored_text is not None and _same_deal(deal, stored):
        view = _pool_tranche_view(db, run_id, stored, stored_text, discount, ratings,
                                  rating_toml)
        mine = view.table["holder"] == pid
        keep = set(view.table.loc[mine, "tranche"])
        residual = view.residual if stored.tranche_names[-1] in keep else view.residual.iloc[0:0]
        return TrancheView(view.deal_name, view.table[mine].reset_index(drop=True),
                           view.triggers.iloc[0:0],
                           {k: v for k, v in view.loss_shares.items() if k in keep},
                           {k: v for k, v in view.cashflow_fans.items() if k in keep},
                           residual, view.reconciliation.iloc[0:0],
                           view.excess_spread.iloc[0:0], POOL_BASIS,
                           view.tape[view.tape["item"].isin(keep)].reset_index(drop=True),
                           view.trigger_metrics.iloc[0:0],
                           view.credit_enhancement[view.credit_enhancement["class"].isin(keep)]
                           .reset_index(drop=True))
    view = _tranche_view(deal, party_paths(_load_paths(db, run_id), pid), None, discount,
                         ratings, OWN_SHARE_BASIS)
    return dataclasses.replace(view, table=view.table.drop(columns=["holder"],
                                                           errors="ignore"))


def _view_key(view: str, run_id: int, *inputs: object) -> str:
    """What a stored view of a run was computed on: the run, the page's inputs (the deal's
    text, the discount rate, the rating table's text; the allocation) and the code version."""
    text = json.dumps([view, int(run_id), *inputs, code_version()])
    return hashlib.sha256(text.encode()).hexdigest()


def _stored_view(db: str | Path, run_id: int, view: str,
                 key: str) -> dict[str, pd.DataFrame] | None:
    with _full(db) as store:
        return summary_sql.read_run_view(store.con, int(run_id), view, key)


def _tranche_key(run_id: int, deal_toml: str, discount: float, rating_toml: str | None) -> str:
    return _view_key(TRANCHES_VIEW, run_id, deal_toml, float(discount), rating_toml or "")


def _pool_tranche_view(db: str | Path, run_id: int, deal: Deal, deal_toml: str,
                       discount: float, ratings: RatingTable | None,
                       rating_toml: str | None) -> TrancheView:
    """The deal's waterfall on the whole pool's paths: the view stored with the run for these
    inputs (:func:`store_run_views`) if there is one, else computed."""
    stored = _stored_view(db, run_id, TRANCHES_VIEW,
                          _tranche_key(run_id, deal_toml, discount, rating_toml))
    if stored is not None:
        return _tranche_from_tables(stored)
    if not _paths_kept(db, run_id):
        return _summary_tranche_view(db, run_id, deal, discount, rating_toml)
    return _tranche_view(deal, _load_paths(db, run_id), _load_replenishment(db, run_id, deal),
                         discount, ratings, POOL_BASIS)


def _summary_tranche_view(db: str | Path, run_id: int, deal: Deal, discount: float,
                          rating_toml: str | None) -> TrancheView:
    """A run recorded from summaries on Dask workers: the tranche and trigger tables its
    workers' waterfall gave (stored with the run) for the stored deal at the default 5%
    discount without a rating table; anything else needs every path (``NotFound`` saying
    so)."""
    stored_text = _stored_deal_text(db, run_id)
    stored = (deal_from_text(stored_text, f"deal stored with run {run_id}") if stored_text
              else None)
    if stored is None or not _same_deal(deal, stored) or discount != DEFAULT_DISCOUNT \
            or rating_toml is not None:
        raise NotFound(run_sql.summaries_only_message(run_id) + "; its stored tranche table "
                       "(the deal stored with it, a 5% discount, no rating table) is in "
                       f"`riskpool tranche report --run {run_id}`")
    with _full(db) as store:
        table = load_tranche_results(store, run_id)
        triggers = load_deal_record(store, run_id).triggers
    return TrancheView(stored.name, table, triggers, {}, {},
                       note=f"Run {run_id} was recorded from summaries on Dask workers "
                       "(`riskpool simulate --structure --workers`): the deal's waterfall ran "
                       "there, and the tranche and trigger tables are the ones stored with "
                       "the run. Loss distributions, cash-flow fans, the residual holder, the "
                       "reconciliation and the cash-flow table need every path's waterfall: "
                       "rerun without --workers (the same seed gives the same numbers).")


_TRANCHE_FRAMES = ("table", "triggers", "residual", "reconciliation", "excess_spread", "tape",
                   "trigger_metrics", "credit_enhancement")


def _tranche_tables(view: TrancheView) -> dict[str, pd.DataFrame]:
    """A ``TrancheView`` as named tables (``_tranche_from_tables`` gives it back)."""
    meta = {"deal_name": view.deal_name, "basis": view.basis,
            "losses": list(view.loss_shares), "fans": list(view.cashflow_fans)}
    tables = {name: getattr(view, name) for name in _TRANCHE_FRAMES}
    tables["meta"] = pd.DataFrame({"json": [json.dumps(meta)]})
    tables["loss_shares"] = pd.DataFrame({f"c{j}": np.asarray(x, dtype=np.float64)
                                          for j, x in enumerate(view.loss_shares.values())})
    for j, frame in enumerate(view.cashflow_fans.values()):
        tables[f"fan_{j}"] = frame
    return tables


def _tranche_from_tables(tables: dict[str, pd.DataFrame]) -> TrancheView:
    meta = json.loads(tables["meta"]["json"].iloc[0])
    losses = tables["loss_shares"]
    return TrancheView(
        meta["deal_name"], tables["table"], tables["triggers"],
        {n: losses[f"c{j}"].to_numpy() for j, n in enumerate(meta["losses"])},
        {n: tables[f"fan_{j}"] for j, n in enumerate(meta["fans"])},
        tables["residual"], tables["reconciliation"], tables["excess_spread"], meta["basis"],
        tables["tape"], tables["trigger_metrics"], tables["credit_enhancement"])


def _tranche_view(deal: Deal, paths: PoolPaths, replenishment: PoolPaths | None,
                  discount: float, ratings: RatingTable | None, basis: str) -> TrancheView:
    result = run_waterfall(deal, paths, replenishment=replenishment)
    table = table_fn(deal, result, paths, discount=discount, rating_table=ratings)
    shares = loss_shares(result)
    names = list(result.tranche_names)
    dates = tuple(result.dates)
    fans = {n: fan(result.tranche_cashflows[j], dates) for j, n in enumerate(names)}
    losses = {n: shares[j] for j, n in enumerate(names)}
    return TrancheView(deal.name, table, trigger_table(deal, result), losses, fans,
                       residual_table(deal, result, discount=discount),
                       reconcile(deal, result).table(), excess_spread_table(result), basis,
                       cashflow_tape(result), trigger_metrics(deal, result),
                       credit_enhancement_by_month(deal, result))


def deal_tranche_frame(viewer: Viewer, deal_toml: str) -> pd.DataFrame:
    """The deal's tranches as an editable table (name, size, coupon, holder). A partner's
    has no ``holder`` column: it never names holders, and the stored deal's holders (other
    parties) are not shown to it."""
    check_viewer(viewer)
    deal = deal_from_text(deal_toml)
    rows = []
    for t in deal.tranches:
        rows.append({f.name: getattr(t, f.name) for f in dataclasses.fields(t)})
    frame = pd.DataFrame(rows)
    return frame if viewer.is_treasury else frame.drop(columns=["holder"], errors="ignore")


# --------------------------------------------------------------------------- partners


@dataclass(frozen=True, slots=True, eq=False)
class AllocationView:
    allocation_id: int
    mode: str
    objective: str
    pool_id: int | None
    parties: pd.DataFrame  # party_id, loans, balance, share_of_pool (the viewer's rows)
    checks: pd.DataFrame  # every re-check item (name, party, value, limit, ok)
    breaches: pd.DataFrame
    # the pool's loans breaking a loan rule, kept by the platform (treasury only; R8/R9 name
    # the worst loan with both rates)
    findings: pd.DataFrame = field(default_factory=pd.DataFrame)
    pool_loans: int | None = None  # the allocated pool's loans (treasury only)

    def party_table(self) -> pd.DataFrame:
        """``parties`` with their total row, as ``riskpool allocate show`` prints it: balance
        and share of the pool summed (they close to the pool's balance and 1), loans the
        pool's (a joint loan is held by several parties, so the rows do not add up to it).
        A partner's own row alone is returned as it is. The Partners page and the report
        show this table."""
        table = with_total_row(self.parties, "party_id", ("balance", "share_of_pool"))
        if len(table) > len(self.parties) and "loans" in table:
            if self.pool_loans is None:
                return table
            table.loc[len(table) - 1, "loans"] = self.pool_loans
            table["loans"] = table["loans"].astype("int64")
        return table

    def check_units(self) -> list[str]:
        """The unit of each re-check item's value and limit (``checks``' rows), which one
        column mixes: :func:`_check_unit`."""
        return [_check_unit(str(name)) for name in self.checks.get("check", [])]


# the unit of a re-check item's value and limit (partners.allocation's report): an amount
# in CNY, a share or rate, or else a number of loans (or of breaches) counted
_CHECK_UNITS = {"capacity": "CNY", "commitment": "CNY", "R2": "CNY", "R3": "CNY", "R4": "CNY",
                "minimum transfer": "CNY", "R1 platform share of joint loans": "share",
                "yield floor": "share"}


def _check_unit(name: str) -> str:
    """``CNY``, ``share`` or ``count``: the unit of re-check item ``name``'s value and limit
    (the shares' range and sum, the loan rules, forward flow, eligibility and R7 count loans
    or breaches; capacity, commitment, R2-R4 and the minimum transfer are amounts; R1, the
    concentrations and the yield floor are shares)."""
    if name in _CHECK_UNITS:
        return _CHECK_UNITS[name]
    return "share" if name.startswith("concentration.") else "count"


def _own_party(viewer: Viewer) -> str | None:
    """``None`` for treasury (every party), else the partner's id: the filter of the
    allocation reads below, which select the same rows as the partner's scope's
    ``allocations`` / ``allocation_shares`` without copying its loans into a scope."""
    return None if check_viewer(viewer).is_treasury else viewer.partner_id


def allocations(db: str | Path, viewer: Viewer) -> pd.DataFrame:
    """The allocations the viewer may open: every one (treasury), or those giving the partner
    a positive share of some loan."""
    party = _own_party(viewer)
    with _full(db) as store:
        return sql.allocation_list(store.con, party)


def _require_allocation(db: str | Path, viewer: Viewer, allocation_id: int) -> None:
    """``AccessDenied`` unless the allocation gives the viewer a position (treasury: any)."""
    if check_viewer(viewer).is_treasury:
        return
    listed = set(allocations(db, viewer)["allocation_id"].astype(int))
    if int(allocation_id) not in listed:
        raise AccessDenied(f"allocation {allocation_id} is not visible to {viewer.username}")


def allocation(db: str | Path, viewer: Viewer, allocation_id: int) -> AllocationView:
    """An allocation's parties and rule checks; a partner sees its own row and checks."""
    party = _own_party(viewer)
    with _full(db) as store:
        listed = sql.allocation_list(store.con, party)
        if int(allocation_id) not in set(listed["allocation_id"].astype(int)):
            raise AccessDenied(f"allocation {allocation_id} is not visible to {viewer.username}")
        parties = sql.party_shares(store.con, int(allocation_id), party)
    with _full(db) as store:  # the allocation's record and balances, not its share matrix
        row = alloc_sql.allocation_row(store.con, int(allocation_id))
        if row is None:
            raise NotFound(f"allocation {allocation_id} does not exist")
        mode, objective, pool_id = row["mode"], row["objective"], row["pool_id"]
        stored_checks = row["checks"]
        # the sum over the loans in loan-id order, as over load_allocation's balance array
        balances = (alloc_sql.allocation_balances(store.con, int(allocation_id))
                    if viewer.is_treasury else None)
        pool_balance = float(balances.sum()) if balances is not None else 0.0
    if viewer.is_treasury:
        parties["share_of_pool"] = parties["balance"] / pool_balance if pool_balance else np.nan
    checks = pd.DataFrame(stored_checks.get("checks", []))
    breaches = pd.DataFrame(stored_checks.get("breaches", []))
    findings = pd.DataFrame(stored_checks.get("loan_rule_findings", []))
    if not viewer.is_treasury:
        findings = findings.iloc[0:0]
        pid = viewer.partner_id
        checks = checks[checks["party"] == pid] if "party" in checks else checks.iloc[0:0]
        breaches = (breaches[breaches["party"] == pid] if "party" in breaches
                    else breaches.iloc[0:0])
    return AllocationView(int(allocation_id), mode, objective, pool_id,
                          parties.reset_index(drop=True), checks.reset_index(drop=True),
                          breaches.reset_index(drop=True), findings.reset_index(drop=True),
                          len(balances) if balances is not None else None)


def partner_tape(db: str | Path, viewer: Viewer, allocation_id: int,
                 party_id: str) -> pd.DataFrame:
    """One party's loan tape (pseudonymous loan ids, its share and balance), the borrower ids
    masked with that party's own key (``partners.masking``; the keys file is
    ``settings.partner_keys_path``). A partner may export its own tape only."""
    check_viewer(viewer)
    if not viewer.is_treasury and party_id != viewer.partner_id:
        raise AccessDenied(f"{viewer.username} ({viewer.role}) may export its own tape only, "
                           f"not {party_id!r}")
    allowed = set(allocations(db, viewer)["allocation_id"].astype(int))
    if int(allocation_id) not in allowed:
        raise AccessDenied(f"allocation {allocation_id} is not visible to {viewer.username}")
    with _full(db) as store:
        tape = alloc_sql.partner_tape(store.con, int(allocation_id), party_id)
    return rounded_tape(masked_tape(tape, party_id, settings.partner_keys_path(db)))


# --------------------------------------------------------------------------- dispersion


@dataclass(frozen=True, slots=True, eq=False)
class DispersionView:
    parties: pd.DataFrame  # partners.dispersion.PartyRisk.row() per visible party
    headlines: pd.DataFrame  # treasury only (empty for a partner)
    pool_el: float | None
    pool_var_999: float | None
    hhi_partners: float | None
    # treasury only: each securitisation scenario's SRT tests and its positions as charged
    srt: pd.DataFrame = field(default_factory=pd.DataFrame)
    positions: pd.DataFrame = field(default_factory=pd.DataFrame)
    # the pool's loss walked to each party (treasury only) and each visible party's credit and
    # economic views side by side
    reconciliation: pd.DataFrame = field(default_factory=pd.DataFrame)
    views: pd.DataFrame = field(default_factory=pd.DataFrame)
    # each visible party's economic lines (means) and their total, the economic EL of ``views``
    economic_lines: pd.DataFrame = field(default_factory=pd.DataFrame)

    def party_table(self) -> pd.DataFrame:
        """``parties`` with their total row, as ``riskpool dispersion`` prints it: exposures,
        EL, capital and RWA summed; VaR and ES empty (quantiles do not add). A partner's own
        row alone is returned as it is. The Dispersion page and the report show it."""
        return with_total_row(self.parties, "party", DISPERSION_ADDITIVE)

    def views_table(self) -> pd.DataFrame:
        """``views`` with their total row (credit EL and economic EL summed; VaR and ES
        empty), as ``riskpool dispersion`` prints it."""
        return with_total_row(self.views, "party", ("credit_el", "economic_el"))


DISPERSION_ADDITIVE: tuple[str, ...] = ("exposure", "loan_exposure", "tranche_exposure", "el",
                                        "capital_irb", "capital_sec", "capital", "rwa")
TOTAL_LABEL = "total"


def with_total_row(parties: pd.DataFrame, label: str, additive: tuple[str, ...]
                   ) -> pd.DataFrame:
    """A party table with its ``total`` row: the sums of the ``additive`` columns (what the
    parties split: balances, shares, exposures, EL, capital), the others empty (loans: a joint
    loan is held by several parties; VaR and ES do not add). A table of one party (a partner's
    own view) is returned as it is."""
    if len(parties) < 2:
        return parties
    out = parties.copy()
    row: dict[str, object] = {}
    for col in parties.columns:
        if col == label:
            row[col] = TOTAL_LABEL
        elif col in additive:
            row[col] = float(parties[col].sum())
        elif pd.api.types.is_numeric_dtype(parties[col]):
            out[col] = out[col].astype("float64")  # an empty cell (NaN) in the total row
            row[col] = float("nan")
        else:
            row[col] = ""
    out.loc[len(out)] = row
    return out


def dispersion(db: str | Path, viewer: Viewer, run_id: int, allocation_id: int,
               deal_toml: str | None = None) -> DispersionView:
    """Risk per party from the run's paths and the allocation (and the deal if given).

    A partner must be party to the run and to the allocation, and its tranche positions are
    those treasury stored with the run: ``deal_toml`` is ``None`` or the run's stored deal
    (any other deal would let it name holders), else ``AccessDenied``."""
    check_viewer(viewer)
    if viewer.is_treasury:
        return _pool_dispersion(db, run_id, allocation_id, deal_toml)
    pid = _require_run_party(db, viewer, run_id)
    _require_allocation(db, viewer, allocation_id)
    if deal_toml is not None:
        stored_deal = _stored_deal(db, run_id)
        if stored_deal is None or not _same_deal(deal_from_text(deal_toml), stored_deal):
            raise AccessDenied(f"{pid}'s dispersion uses the deal treasury stored with run "
                               f"{run_id} (or none); a partner cannot name tranche holders")
    full = _pool_dispersion(db, run_id, allocation_id, deal_toml)
    mine = full.parties[full.parties["party"] == pid].reset_index(drop=True)
    if mine.empty:
        raise AccessDenied(f"allocation {allocation_id} gives {pid} no position")
    own = full.views[full.views["party"] == pid].reset_index(drop=True)
    own_lines = full.economic_lines[full.economic_lines["party"] == pid].reset_index(drop=True)
    return DispersionView(mine, full.headlines.iloc[0:0], None, None, None, views=own,
                          economic_lines=own_lines)


def _dispersion_key(run_id: int, allocation_id: int, deal_toml: str | None) -> str:
    return _view_key(DISPERSION_VIEW, run_id, int(allocation_id), deal_toml or "")


def _pool_dispersion(db: str | Path, run_id: int, allocation_id: int,
                     deal_toml: str | None) -> DispersionView:
    """Every party's dispersion (treasury's view; a partner's is cut from it by the caller):
    the view stored with the run for this allocation and deal (:func:`store_run_views`) if
    there is one, else computed."""
    stored_view = _stored_view(db, run_id, DISPERSION_VIEW,
                               _dispersion_key(run_id, allocation_id, deal_toml))
    if stored_view is not None:
        return _dispersion_from_tables(stored_view)
    deal = deal_from_text(deal_toml) if deal_toml else None
    if not _paths_kept(db, run_id):  # no paths here: the workers simulate them again
        scheduler = settings.dask_scheduler()
        if scheduler is None:
            raise NotFound(dispersion_on_workers_message(run_id, allocation_id)
                           + f"; or set {settings.SCHEDULER_ENV} to a Dask scheduler's address "
                           "for the dashboard to compute it there")
        return _dispersion_view(_dispersion_on_cluster(db, run_id, allocation_id, deal,
                                                       scheduler))
    paths = _load_paths(db, run_id)
    with _full(db) as store:
        stored = load_allocation(store, int(allocation_id))
        inputs = run_sql.get_run(store, int(run_id)).simulation_inputs()
    if tuple(paths.party_ids) != stored.party_ids or not paths.party_flows:
        # the run lacks this split: re-simulate it exactly, on the dashboard's cluster when
        # it has one and the run is Monte Carlo (either model; the Dask driver runs no
        # deterministic projection)
        scheduler = settings.dask_scheduler()
        if scheduler is not None and inputs.deterministic_z is None:
            return _dispersion_view(_dispersion_on_cluster(db, run_id, allocation_id, deal,
                                                           scheduler))
        with _full(db) as store:
            paths, _how = run_party_paths(store, int(run_id), stored)
    # a revolving deal buys new loans: the run's replenishment profile, as the tranche table
    profile = _load_replenishment(db, run_id, deal) if deal is not None else None
    # the stored allocation is sorted by loan id, as are the pool loans the run simulated
    result = disperse_paths(paths, stored.balance, stored.shares, stored.risk.annual_pd,
                            stored.risk.lgd, deal, replenishment=profile)
    return _dispersion_view(result)


def _dispersion_on_cluster(db: str | Path, run_id: int, allocation_id: int, deal: Deal | None,
                           scheduler: str) -> Dispersion:
    """The dispersion of a run recorded from summaries, or of one whose paths lack the
    allocation's party split, computed on the Dask cluster at ``scheduler``
    (``settings.dask_scheduler``) as ``riskpool dispersion --scheduler`` computes it
    (``partners.distributed.disperse_on_cluster``: the run's paths simulated again there from
    its inputs with the allocation's shares; the same figures as from its paths)."""
    with _full(db) as store:
        stored = load_allocation(store, int(allocation_id))
        split = run_party_split(store, int(run_id), stored)
    check_run_for_workers(split)
    profile = _load_replenishment(db, run_id, deal) if deal is not None else None
    with open_client(scheduler=scheduler) as client:
        return disperse_on_cluster(client, split, stored.balance, stored.shares,
                                   stored.risk.annual_pd, stored.risk.lgd, deal,
                                   replenishment=profile).dispersion


def _dispersion_view(result: Dispersion) -> DispersionView:
    """The page's tables of a dispersion (treasury's view)."""
    table = pd.DataFrame(result.table())
    heads = pd.DataFrame([h.row() for h in result.headlines])
    econ = economic_views(result)
    views = pd.DataFrame([v.row() for v in econ])
    econ_lines = pd.DataFrame([r for v in econ for r in v.line_rows()])
    srt = pd.DataFrame([{"scenario": h.scenario, **r} for h in result.headlines
                        if h.srt is not None for r in h.srt.rows()])
    positions = pd.DataFrame([
        {"scenario": h.scenario, "tranche": c.tranche, "holder": c.holder,
         "approach": c.approach.value, "attachment": c.attachment,
         "detachment": c.detachment, "p": c.p, "k": c.k, "risk_weight": c.risk_weight,
         "amount": c.amount, "capital": c.capital} for h in result.headlines
        for c in h.positions])
    recon = pd.DataFrame([r for rec in reconcile_parties(result) for r in rec.rows()])
    return DispersionView(table, heads, result.pool_measures.el,
                          result.pool_measures.var_999, result.hhi_partners, srt, positions,
                          recon, views, econ_lines)


_DISPERSION_FRAMES = ("parties", "headlines", "srt", "positions", "reconciliation", "views",
                      "economic_lines")


def _dispersion_tables(view: DispersionView) -> dict[str, pd.DataFrame]:
    """A ``DispersionView`` as named tables (``_dispersion_from_tables`` gives it back; the
    pool's figures as JSON, which gives a float back exactly)."""
    meta = {"pool_el": view.pool_el, "pool_var_999": view.pool_var_999,
            "hhi_partners": view.hhi_partners}
    return {**{name: getattr(view, name) for name in _DISPERSION_FRAMES},
            "meta": pd.DataFrame({"json": [json.dumps(meta)]})}


def _dispersion_from_tables(tables: dict[str, pd.DataFrame]) -> DispersionView:
    meta = json.loads(tables["meta"]["json"].iloc[0])
    return DispersionView(tables["parties"], tables["headlines"], meta["pool_el"],
                          meta["pool_var_999"], meta["hhi_partners"], tables["srt"],
                          tables["positions"], tables["reconciliation"], tables["views"],
                          tables["economic_lines"])


def store_run_views(db: str | Path, viewer: Viewer, run_id: int) -> tuple[str, ...]:
    """Compute the Tranches and Dispersion pages' first views of a run once and store them
    with the run (``run_view_summaries``): the waterfall of the deal stored with the run at
    the page's default discount rate without a rating table, and the dispersion of the run's
    allocation with that deal. The pages read them while their inputs and the code version
    are these (a partner's view cut from them here, as when computed); any other input is
    computed live. Returns the views stored (none for a run without a deal or allocation)."""
    _require_treasury(viewer, "storing a run's page views")
    with _full(db) as store:
        inputs = run_sql.get_run(store, int(run_id)).inputs
    deal_toml = _stored_deal_text(db, run_id)
    allocation_id = getattr(inputs, "allocation_id", None)
    views: dict[str, tuple[str, dict[str, pd.DataFrame]]] = {}
    if deal_toml is not None:
        view = _tranche_view(deal_from_text(deal_toml), _load_paths(db, run_id),
                             _load_replenishment(db, run_id, deal_from_text(deal_toml)),
                             DEFAULT_DISCOUNT, None, POOL_BASIS)
        views[TRANCHES_VIEW] = (_tranche_key(run_id, deal_toml, DEFAULT_DISCOUNT, None),
                                _tranche_tables(view))
    if allocation_id is not None:
        disp = _pool_dispersion(db, run_id, int(allocation_id), deal_toml)
        views[DISPERSION_VIEW] = (_dispersion_key(run_id, int(allocation_id), deal_toml),
                                  _dispersion_tables(disp))
    if views:
        with open_store(db) as store, store.transaction() as con:
            for name, (key, tables) in views.items():
                summary_sql.write_run_view(con, int(run_id), name, key, tables)
    return tuple(views)


# --------------------------------------------------------------------------- reports


def report_history(db: str | Path, viewer: Viewer) -> pd.DataFrame:
    """Report runs: every one for treasury, the partner's own for a partner."""
    check_viewer(viewer)
    with _full(db) as store:
        if viewer.is_treasury:
            return sql.report_runs(store.con, every_partner=True)
        return sql.report_runs(store.con, partner=viewer.partner_id)


def report_file(db: str | Path, viewer: Viewer, run_id: int, name: str) -> bytes:
    """The bytes of one file of a report run the viewer may see."""
    check_viewer(viewer)
    hist = report_history(db, viewer)
    row = hist[hist["run_id"] == int(run_id)]
    if row.empty:
        raise AccessDenied(f"report {run_id} is not visible to {viewer.username}")
    raw = row.iloc[0]["summary"]
    summary = (json.loads(raw) if isinstance(raw, str) else raw) or {}
    files = summary.get("files", {})
    if name not in files:
        raise NotFound(f"report {run_id} has no file {name!r}; it has {sorted(files)}")
    path = Path(files[name])
    if not path.exists():
        raise NotFound(f"{path} is gone (report {run_id})")
    return path.read_bytes()


def stored_deal_toml(db: str | Path, viewer: Viewer, run_id: int) -> str | None:
    """The deal TOML stored with a run (by ``riskpool simulate --structure``), if any; a
    partner must be party to the run."""
    check_viewer(viewer)
    if not viewer.is_treasury:
        _require_run_party(db, viewer, int(run_id))
    return _stored_deal_text(db, run_id)


def _stored_deal_text(db: str | Path, run_id: int) -> str | None:
    with _full(db) as store:
        try:
            record = load_deal_record(store, int(run_id))
        except NotFound:
            return None
    return record.deal_toml or None


def example_deals(viewer: Viewer, root: str | Path | None = None) -> dict[str, str]:
    """The shipped example deal files by name (``examples/deal_*.toml``): any logged-in viewer
    (they hold no book data; a partner's waterfall on one runs on its own share)."""
    check_viewer(viewer)
    base = Path(root) if root else Path(__file__).resolve().parent.parent / "examples"
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(base.glob("deal_*.toml"))}


def deal_with_tranches(viewer: Viewer, deal_toml: str, edited: pd.DataFrame) -> str:
    """The deal TOML with its tranches' size, amount, coupon and holder taken from the
    edited table (validated when the deal is loaded). A partner's holder edits are ignored
    (the deal's holders are kept; its waterfall runs on its own share anyway)."""
    check_viewer(viewer)
    if not viewer.is_treasury:
        edited = edited.drop(columns=["holder"], errors="ignore")
    data = tomllib.loads(deal_toml)
    rows = edited.to_dict("records")
    old = data.get("tranches", [])
    if len(rows) != len(old):
        raise DealError(f"the tranche table must keep {len(old)} rows; got {len(rows)}")
    new = []
    for raw, row in zip(old, rows, strict=True):
        entry = dict(raw)
        for key in ("size", "amount", "coupon", "holder"):
            value = row.get(key)
            if value is None or (isinstance(value, float) and np.isnan(value)):
                entry.pop(key, None) if key in ("size", "amount") else None
            else:
                entry[key] = value.item() if hasattr(value, "item") else value
        new.append(entry)
    data["tranches"] = new
    return tomli_w.dumps(data)


@dataclass(frozen=True, slots=True)
class TrancheEdit:
    """The outcome of applying the tranche editor: the deal TOML to analyse, or the reasons
    it is refused (each naming the class and the field), never both."""

    deal_toml: str | None
    errors: tuple[str, ...] = ()


def _class_error(exc: SchemaError, names: list[str]) -> str:
    """A deal-file error re-worded for the editor: which class (row) and which field."""
    text = str(exc)
    if exc.where and text.startswith(f"{exc.where}: "):
        text = text[len(exc.where) + 2:]
    found = re.fullmatch(r"tranches\[(\d+)\]\.?(\w*)", exc.field_path)
    if found and int(found[1]) < len(names):
        return f"Class {names[int(found[1])]}, {found[2] or 'row'}: {text}"
    if exc.field_path.startswith("tranches[]"):
        return (f"Classes {', '.join(names)}, size: {text} (or tick Auto-balance to size "
                f"{names[-1]} as 1 − the others)")
    return f"Deal, {exc.field_path or 'file'}: {text}"


def _balanced(deal_toml: str) -> tuple[str | None, str | None]:
    """The deal with its junior (last) class sized to 1 − the other classes − initial OC;
    or the reason it cannot be (a class sized in CNY, or the others already exceed 1)."""
    data = tomllib.loads(deal_toml)
    rows = data.get("tranches", [])
    names = [str(r.get("name", i)) for i, r in enumerate(rows)]
    if len(rows) < 2:
        return None, "Auto-balance needs at least two classes."
    in_cny = [n for n, r in zip(names, rows, strict=True) if r.get("size") is None]
    if in_cny:
        return None, (f"Auto-balance works on shares of the pool: class {in_cny[0]}, size is "
                      "empty (sized in CNY or left blank); give every class a size.")
    oc = float(data.get("deal", {}).get("initial_oc", 0.0))
    others = float(sum(float(r["size"]) for r in rows[:-1])) + oc
    if others > 1.0 + SIZE_TOLERANCE:
        senior = ", ".join(names[:-1])
        with_oc = f" with initial OC {oc:.4f}" if oc else ""
        return None, (f"Auto-balance refused: classes {senior}, size add up to {others:.6f}"
                      f"{with_oc}, more than 1, so the junior class {names[-1]} cannot be "
                      "sized; lower a senior class's size.")
    rows[-1]["size"] = round(1.0 - others, 12)
    rows[-1].pop("amount", None)
    return tomli_w.dumps(data), None


def apply_tranche_edit(viewer: Viewer, deal_toml: str, edited: pd.DataFrame,
                       auto_balance: bool = False) -> TrancheEdit:
    """The tranche editor's Apply: the edited table merged into the deal
    (``deal_with_tranches``), the junior class optionally set to 1 − the others (initial OC
    counted with the others), and the result validated as a deal file. Refusals come back as
    messages naming the class and the field, so the page keeps its last good analysis."""
    check_viewer(viewer)
    names = [str(t.name) for t in deal_from_text(deal_toml).tranches]
    try:
        text = deal_with_tranches(viewer, deal_toml, edited)
    except DealError as exc:
        return TrancheEdit(None, (str(exc),))
    if auto_balance:
        balanced, why = _balanced(text)
        if balanced is None:
            return TrancheEdit(None, (str(why),))
        text = balanced
    try:
        deal_from_text(text)
    except SchemaError as exc:
        return TrancheEdit(None, (_class_error(exc, names),))
    except DealError as exc:
        return TrancheEdit(None, (str(exc),))
    return TrancheEdit(text)


# --------------------------------------------------------------------------- scenario sets


def scenario_sets(db: str | Path, viewer: Viewer) -> pd.DataFrame:
    """Every stored scenario set, newest first (treasury only: sets are pool-wide)."""
    _require_treasury(viewer, "scenario sets")
    with _full(db) as store:
        return scenario_sql.list_scenario_sets(store)


def scenario_set(db: str | Path, viewer: Viewer, set_id: int) -> scenario_sql.ScenarioSetRecord:
    """One stored scenario set with its members and result table (treasury only)."""
    _require_treasury(viewer, "scenario sets")
    with _full(db) as store:
        return scenario_sql.get_scenario_set(store, int(set_id))
