"""Dashboard pages on a 1,000,000-loan book: each page's first render (cold cache). Goal ≤ 3 s.

Set-up (once, cached in ``bench_out/pages/``; not timed): a copy of B1's generated book
(``bench_b1.setup``: 1,500,000 loans, 12 monthly vintages, the pool of every current loan at
2025-12-31, 1,029,214 loans, and its calibrated assumptions), on which — as ``riskpool demo``
does on its small book — the pool is allocated over three partners (``examples/partners.toml``'s
banks), a 10,000-path run carrying their shares is recorded, and the Chinese example deal's
tranche table and replenishment profile are stored with the run; and, as the commands that
write a book do, the Book page's tables are stored with the book
(``portfolio.book.summaries``; again whenever the code version changes).

Timed: each page script (``dashboards/views/*_page.py``) run by Streamlit's ``AppTest`` as the
treasury user and as a partner, with every cache emptied before the page (``st.cache_data`` and
the access layer's path, replenishment and partner-scope caches), in one warm process (the
modules imported, as in a running
server): the wall time of the page's first complete run, which is an upper bound of its time to
first content in the browser, and the CPU time the process spent meanwhile (on a shared machine
the wall time grows with the load; the CPU time much less). Measurements, never test asserts.

    python benchmarks/bench_pages.py          # RISKPOOL_BENCH_QUICK=1: B1's quick book
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from portfolio import settings

settings.before_numpy_import()  # numpy reads its huge-page switch once, at its import

import numpy as np
from bench_b1 import _three_partner_registry, setup, sizes
from run_all import machine

from dashboards import access
from dashboards.auth import Viewer
from partners.allocation import allocate, loan_risk_from_assumptions
from partners.records import AllocationRequest, load_allocation, pool_loans, save_allocation
from portfolio.book.pools import get_pool, load_pool_loans
from portfolio.book.replay import replay_run
from portfolio.book.summaries import (
    store_book_summaries,
    store_party_book_summaries,
    stored_book_tables,
    stored_party_book_tables,
)
from portfolio.montecarlo.assumptions import load_assumptions
from portfolio.montecarlo.records import SimulationInputs, loan_sampler_for
from portfolio.montecarlo.simulation import simulate
from portfolio.store.core import open_store
from portfolio.store.runs import (
    list_runs,
    load_replenishment,
    record_simulation,
    write_replenishment,
)
from portfolio.store.summaries import read_run_view
from portfolio.store.tranches import record_tranche_results
from portfolio.version import code_version
from tranching.deal import load_deal
from tranching.revolving import recorded_deal, replenishment_for, run_deal

OUT = ROOT / "bench_out" / "pages"


class _BareModeNoise(logging.Filter):
    """Drops Streamlit's bare-mode notices ("No runtime found", "missing ScriptRunContext"),
    logged each time the benchmark empties the caches outside a script run: they say nothing
    about the pages, and hid the figures. Filters on the loggers of the two modules that write
    them (a renamed module only brings the notices back)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return "No runtime found" not in text and "missing ScriptRunContext" not in text


for _name in ("streamlit.runtime.caching.cache_data_api",
              "streamlit.runtime.scriptrunner_utils.script_run_context"):
    logging.getLogger(_name).addFilter(_BareModeNoise())
PAGES = ("book", "pools", "simulation", "scenarios", "tranches", "partners", "dispersion",
         "reports")
GOAL_S = 3.0
PATHS = 10_000
SEED = 20260630
DEAL = ROOT / "examples" / "deal_cn_consumer.toml"


def prepare(quick: bool, log: Any = print) -> dict[str, Any]:
    """The page benchmark's book (cached): B1's book with an allocation, a run and a deal."""
    sz = sizes(quick)
    b1 = setup(sz, log)
    tag = f"{sz['book_loans'] // 1000}k_{sz['book_months']}m"
    OUT.mkdir(parents=True, exist_ok=True)
    db = OUT / f"pages_book_{tag}.duckdb"
    pool_id = int(b1["pool_id"])
    a_path = OUT / f"assumptions_pool{pool_id}.toml"
    if db.exists():
        with open_store(db) as store:  # writable: a cache from an older schema is migrated
            runs = list_runs(store, "simulation")
        if len(runs):
            run_id = int(runs["run_id"].max())
            _store_profile(db, run_id, log)
            _store_book_tables(db, log)
            _store_run_views(db, run_id, log)
            _store_party_books(db, log)
            return {"db": db, "pool_id": pool_id, "run_id": run_id,
                    "partner": _three_partner_registry().partners[0].id}
        db.unlink()
    partial = db.with_suffix(".partial.duckdb")
    shutil.copy(b1["db"], partial)
    shutil.copy(b1["assumptions"], a_path)
    t = time.perf_counter()
    assumptions = load_assumptions(a_path)
    registry = _three_partner_registry()
    with open_store(partial) as store:
        info = get_pool(store, pool_id)
        batch = pool_loans(store, pool_id)
        risk = loan_risk_from_assumptions(batch.loans, assumptions)
        alloc = allocate(batch.loans, registry, risk=risk, as_of=batch.cutoff,
                         borrower_id=batch.borrowers, household_limit=batch.household_limit)
        allocation_id = save_allocation(
            store, alloc, registry, risk, pool_id=pool_id,
            request=AllocationRequest(
                partners_file="examples/partners.toml (the three banks)", pool_id=pool_id,
                mode=alloc.mode.value, objective=alloc.objective.value,
                assumptions=str(a_path), code_version=code_version(), source="bench_pages"))
        stored = load_allocation(store, allocation_id)
        loans = load_pool_loans(store, pool_id)
        index = np.searchsorted(stored.loan_id.astype(str), np.asarray(loans.loan_id).astype(str))
        paths = simulate(loans, assumptions, PATHS, SEED, shares=stored.shares[index],
                         party_ids=stored.party_ids)
        run_id = record_simulation(
            store, paths,
            SimulationInputs(pool_id=pool_id, n_paths=PATHS, seed=SEED, engine="granular",
                             assumptions=str(a_path), allocation_id=allocation_id,
                             party_ids=stored.party_ids, pool_name=info.name,
                             n_loans=len(loans), cutoff_date=info.cutoff_date,
                             source="bench_pages",
                             loan_sampler=loan_sampler_for("granular", "hazard", None)),
            code_version(), assumptions=assumptions)
        deal = load_deal(DEAL)
        profile = replenishment_for(deal, loans, assumptions, PATHS, SEED,
                                    cutoff=info.cutoff_date)
        deal_run = run_deal(deal, paths, profile)
        record_tranche_results(store, run_id, deal, deal_run.tranches,
                               triggers=deal_run.triggers, settings=deal_run.settings().to_json())
        if profile is not None:  # as `riskpool demo` and `simulate --structure` store it
            write_replenishment(store, run_id, deal.revolving_months, profile)
    # the run's files were written beside the partial file: they move with it
    partial.rename(db)
    _store_book_tables(db, log)
    _store_run_views(db, run_id, log)
    _store_party_books(db, log)
    log(f"   set up {db.name}: allocation {allocation_id}, run {run_id} "
        f"({time.perf_counter() - t:.0f} s)")
    return {"db": db, "pool_id": pool_id, "run_id": run_id,
            "partner": registry.partners[0].id}


def _store_profile(db: Path, run_id: int, log: Any) -> None:
    """A book set up before the deal's replenishment profile was stored with the run: store
    it now (the profile a replay of the run builds, as the pages built it before)."""
    with open_store(db, read_only=True) as store:
        deal = recorded_deal(store, run_id)
        if deal.revolving_months <= 0 or \
                load_replenishment(store, run_id, deal.revolving_months) is not None:
            return
    t = time.perf_counter()
    with open_store(db) as store:
        profile = replay_run(store, run_id).replenishment(deal.revolving_months)
        write_replenishment(store, run_id, deal.revolving_months, profile)
    log(f"   stored run {run_id}'s replenishment profile ({time.perf_counter() - t:.0f} s)")


def _store_book_tables(db: Path, log: Any) -> None:
    """The Book page's tables stored with the book, as `riskpool generate`/`ingest`/`demo`
    store them when they write it (again when the code version changed)."""
    with open_store(db, read_only=True) as store:
        if stored_book_tables(store.con) is not None:
            return
    t = time.perf_counter()
    with open_store(db) as store:
        as_of = store_book_summaries(store)
    log(f"   stored the Book page's tables at {as_of} ({time.perf_counter() - t:.0f} s)")


def _store_run_views(db: Path, run_id: int, log: Any) -> None:
    """The Tranches and Dispersion pages' first views of the run, stored with it as `riskpool
    demo` stores them (again when the code version changed)."""
    treasury = Viewer("bench", "treasury")
    deal = access.stored_deal_toml(db, treasury, run_id)
    key = access._tranche_key(run_id, deal, access.DEFAULT_DISCOUNT, None) if deal else None
    with open_store(db, read_only=True) as store:
        if key is None or read_run_view(store.con, run_id, access.TRANCHES_VIEW, key):
            return
    t = time.perf_counter()
    stored = access.store_run_views(db, treasury, run_id)
    log(f"   stored run {run_id}'s {' and '.join(stored)} views "
        f"({time.perf_counter() - t:.0f} s)")


def _store_party_books(db: Path, log: Any) -> None:
    """Each partner's Book-page tables, stored as `riskpool allocate` and `riskpool demo` store
    them once an allocation is saved (again when the code version changed)."""
    parties = tuple(p.id for p in _three_partner_registry().partners)
    with open_store(db, read_only=True) as store:
        if all(stored_party_book_tables(store.con, pid) is not None for pid in parties):
            return
    t = time.perf_counter()
    store_party_book_summaries(db, parties)
    log(f"   stored {len(parties)} partners' Book-page tables ({time.perf_counter() - t:.0f} s)")


def _cold() -> None:
    """Empty every cache a page run fills (as a fresh server would have them)."""
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    access._load_paths_cached.cache_clear()
    access._load_replenishment_cached.cache_clear()
    access._scope_cached.cache_clear()


def time_page(name: str, role: str, query: dict[str, str]) -> tuple[float, float, int]:
    """Seconds of the page's first complete run (wall clock, and the CPU seconds of the
    process's threads meanwhile: the page's cost on a busy machine), and how many errors it
    showed."""
    from streamlit.testing.v1 import AppTest

    _cold()
    at = AppTest.from_file(str(ROOT / "dashboards" / "views" / f"{name}_page.py"),
                           default_timeout=600)
    at.session_state["viewer"] = Viewer("bench", role)
    for k, v in query.items():
        at.query_params[k] = v
    t, cpu = time.perf_counter(), time.process_time()
    at.run()
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    return seconds, cpu, len(at.exception) + len(at.error)


def run(quick: bool | None = None, pages: tuple[str, ...] = PAGES,
        roles: tuple[str, ...] = ("treasury", "partner")) -> dict[str, Any]:
    quick = settings.bench_quick() if quick is None else quick
    book = prepare(quick)
    settings.use_dashboard_files(Path(book["db"]), None)  # the pages read it with db_path()
    with open_store(book["db"], read_only=True) as store:
        n_loans = int(store.con.execute("SELECT count(*) FROM loans").fetchone()[0])
    out: dict[str, Any] = {"machine": machine(), "book loans": n_loans,
                           "pool loans": int(get_pool_n(book)), "run paths": PATHS}
    # warm the process (imports, numba), as a running server is: one untimed page
    time_page("book", "treasury", {})
    query = {"run": str(book["run_id"])}
    worst = 0.0
    for who in roles:
        role = "treasury" if who == "treasury" else f"partner:{book['partner']}"
        for name in pages:
            seconds, cpu, errors = time_page(name, role, query)
            out[f"{who} {name} s"] = round(seconds, 2)
            out[f"{who} {name} cpu s"] = round(cpu, 2)
            if errors:
                out[f"{who} {name} errors"] = errors
            worst = max(worst, seconds)
    out["slowest page s"] = round(worst, 2)
    out["load average"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    out["goal s"] = GOAL_S
    out["as of"] = dt.date.today().isoformat()
    return out


def get_pool_n(book: dict[str, Any]) -> int:
    with open_store(book["db"], read_only=True) as store:
        return get_pool(store, book["pool_id"]).n_loans


def _main(argv: list[str]) -> int:
    """``--pages tranches,dispersion`` / ``--roles treasury`` time those only (default all)."""
    opts = dict(zip(argv[::2], argv[1::2], strict=False))
    unknown = set(opts) - {"--pages", "--roles"}
    if unknown or len(argv) % 2:
        raise SystemExit(f"usage: bench_pages.py [--pages {','.join(PAGES)}] "
                         f"[--roles treasury,partner]; got {argv}")
    pages = tuple(opts.get("--pages", ",".join(PAGES)).split(","))
    roles = tuple(opts.get("--roles", "treasury,partner").split(","))
    bad = [p for p in pages if p not in PAGES] + \
        [r for r in roles if r not in ("treasury", "partner")]
    if bad:
        raise SystemExit(f"--pages takes {','.join(PAGES)}; --roles treasury,partner; got {bad}")
    figures = run(pages=pages, roles=roles)
    for key, value in figures.items():
        print(f"{key:<32} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
