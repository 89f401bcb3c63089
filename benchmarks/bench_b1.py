"""B1, the headline benchmark: book → pool → paths → deal → partners → dispersion.

Set-up (once, cached in ``bench_out/``; not part of the timed pipeline):
  ``riskpool generate`` of a 1,500,000-loan book with 12 monthly vintages (seed 13, as-of
  2025-12-31) into ``bench_out/b1_book_1500k_12m.duckdb``, a pool of every current loan at
  the as-of (1,029,214 loans) with each loan's borrower and household limit stored with it
  (``portfolio.book.households.ensure_pool_households``, which ``create_pool`` does for a new
  pool: stored again whenever the book or the code version changed), and assumptions
  calibrated from that book (``bench_out/b1_assumptions_1500k_12m.toml``). Quick mode: a
  150,000-loan book.

Timed pipeline (in a fresh child process, so that its peak RSS is its own), after the pool is
built: load the assumptions → load the pool with its borrower ids (the first 1,000,000 loans
by loan_id) and allocate it over three partners (``examples/partners.toml`` without its
trust; ``partners.records.pool_loans_then``: the allocation runs on the households stored
with the pool while their key is checked) →
10,000 paths to maturity plus the recovery lag, granular engine, with the allocation's party
split → the Chinese example deal (``examples/deal_cn_consumer.toml``: 3 tranches, reserve,
CNL trigger, revolving period; the revolving purchases use the replenishment profile, itself
a 10,000-path projection of the pool's loans as new loans) → dispersion per party (with the
same profile). Goal: at most 5 s and 3 GB. Timed twice, each in its own child: stage by
stage, one after another (``pipeline``: each stage's time beside its bound), and as ``riskpool
simulate --structure`` runs it (``pipeline_overlap``: the profile, which needs the pool's loans
but not the run's paths, begun on a thread of its own as soon as the pool is loaded
(``tranching.revolving.replenishment_started``), so it takes what the allocation and the
projection leave of the two cores). The two give the same bytes; the second's end-to-end time
is B1's.

Also measured: the loan engine's throughput (loan-paths per second) on the B1 pool, the
naive loan-level baseline (``bench_simulation.naive_simulate``: a Bernoulli draw per loan,
month and path) on the same pool in the same run (on fewer paths), the 2-worker vs
1-worker speed-up of the loan engine on a Dask ``LocalCluster`` (127.0.0.1), and how the
granular engine's time grows with loans, paths and months (three sizes each).

B1 also runs with the delinquency-state model (``pipeline_delinquency``, on assumptions from
``riskpool calibrate`` of the same book with its ``[delinquency]`` transitions, cached as
``bench_out/b1_assumptions_dq_1500k_12m.toml``), and each stage is
printed next to its bound (``rates``, measured in the same run): the bytes it must move ÷ the
machine's copy bandwidth (pool load: the columns its query reads; allocation: the loan arrays
and the shares; waterfall and dispersion: their per-path input and output arrays), or its
kernel's units ÷ that kernel's own one-thread rate × 2 threads (simulation: cell-path-months of
the granular kernel, exact binomial draws; replenishment: vintage-cell-path-months of the
expected-vintages kernel; each model its own kernels). The generator's rate (numpy's PCG64, float64 and float32) bounds the
delinquency model's loan engine: one uniform per loan-path-month. The hazard model's loan
engine (sampler subset-binomial-v1) draws about one uniform per loan-path *with an event*
(16 % of B1's); its work per event (finding the month, removing the loan's scheduled flows
from the event on) is what it costs.

    python benchmarks/bench_b1.py            # RISKPOOL_BENCH_QUICK=1: smaller sizes
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import resource
import subprocess
import sys
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from portfolio import settings

settings.before_numpy_import()  # numpy reads its huge-page switch once, at its import

import numpy as np
from bench_simulation import naive_simulate
from run_all import machine

from partners.allocation import allocate, loan_risk_from_assumptions
from partners.dispersion import disperse_paths, exposure_sums
from partners.lookup import float_codes
from partners.records import pool_loans_then
from partners.registry import PLATFORM_ID, parse_registry
from portfolio.book.calibration import calibrate_from_store
from portfolio.book.households import ensure_pool_households, stored_pool_households
from portfolio.book.pools import create_pool, get_pool, list_pools, load_pool_loans, parse_criteria
from portfolio.errors import StoreLocked
from portfolio.loans.arrays import LoanArrays
from portfolio.montecarlo import engines
from portfolio.montecarlo.assumptions import load_assumptions, save_assumptions
from portfolio.montecarlo.delinquency import (
    expected_dq_tables,
    expected_dq_vintages_into,
    new_accumulators,
    prepare_delinquency,
    project,
    run_dq_blocks,
    simulate_delinquency,
)
from portfolio.montecarlo.distributed import open_client, run_distributed
from portfolio.montecarlo.replenishment import replenishment_loans, simulate_replenishment
from portfolio.montecarlo.simulation import (
    loss_distribution,
    prepare_pool,
    root_seed,
    run_blocks,
    simulate,
)
from portfolio.store.core import open_store
from portfolio.synthetic.generate import generate_book
from tranching.deal import load_deal
from tranching.revolving import replenishment_for, replenishment_started
from tranching.waterfall import run_waterfall

OUT = ROOT / "bench_out"
AS_OF = "2025-12-31"
GOAL_S = 5.0
GOAL_GIB = 3.0


def sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {"book_loans": 150_000, "book_months": 12, "pool_loans": 100_000,
                "paths": 2_000, "loan_engine_paths": 256,
                "loan_engine_paths_dq": 16,
                "naive_paths": 4, "dask_paths": 512,
                "scale_loans": (10_000, 30_000, 100_000), "scale_paths": (250, 500, 1_000),
                "scale_months": (3, 6, 12), "scale_base_loans": 30_000,
                "scale_base_paths": 500}
    return {"book_loans": 1_500_000, "book_months": 12, "pool_loans": 1_000_000,
            "paths": 10_000, "loan_engine_paths": 1_024,
            "loan_engine_paths_dq": 64,
            "naive_paths": 8, "dask_paths": 1_024,
            "scale_loans": (100_000, 300_000, 1_000_000), "scale_paths": (1_000, 3_000, 10_000),
            "scale_months": (6, 12, 24), "scale_base_loans": 200_000, "scale_base_paths": 2_000}


# ------------------------------------------------------------------------------------------
# Peak memory of this process


class PeakRss:
    """Peak resident set size: the kernel's high-water mark (VmHWM) when readable, else a
    sampler thread (psutil) every 20 ms, else ``ru_maxrss``."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._peak = 0
        self._thread: threading.Thread | None = None

    @staticmethod
    def hwm_bytes() -> int | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def start(self) -> PeakRss:
        if self.hwm_bytes() is None:
            try:
                import psutil

                proc = psutil.Process()

                def sample() -> None:
                    while not self._stop.wait(0.02):
                        self._peak = max(self._peak, proc.memory_info().rss)

                self._thread = threading.Thread(target=sample, daemon=True)
                self._thread.start()
            except ImportError:
                pass
        return self

    def peak_gib(self) -> float:
        hwm = self.hwm_bytes()
        if hwm is not None:
            return hwm / 2**30
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            return self._peak / 2**30
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# ------------------------------------------------------------------------------------------
# Set-up (cached)


def _three_partner_registry() -> Any:
    path = ROOT / "examples" / "partners.toml"
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    doc["partner"] = [p for p in doc["partner"] if p.get("kind") == "bank"][:3]
    return parse_registry(doc, f"{path} (the three banks)")


def setup(sz: dict[str, Any], log: Any = print) -> dict[str, Any]:
    """Generate the book, cut the pool and calibrate, once; returns paths and set-up times."""
    OUT.mkdir(exist_ok=True)
    tag = f"{sz['book_loans'] // 1000}k_{sz['book_months']}m"
    db = OUT / f"b1_book_{tag}.duckdb"
    a_path = OUT / f"b1_assumptions_{tag}.toml"
    info: dict[str, Any] = {"db": str(db), "assumptions": str(a_path)}
    as_of = dt.date.fromisoformat(AS_OF)
    if not db.exists():
        partial = db.with_suffix(".partial.duckdb")
        partial.unlink(missing_ok=True)
        t = time.perf_counter()
        with open_store(partial) as store:
            generate_book(store, sz["book_loans"], sz["book_months"], 13, as_of=as_of)
        partial.rename(db)
        info["setup generate s"] = time.perf_counter() - t
        log(f"   generated {sz['book_loans']:,} loans into {db} "
            f"({info['setup generate s']:.0f} s)")
    with open_store(db) as store:
        pools = [p for p in list_pools(store) if p.name == "b1 all current"]
        if pools:
            pool = pools[0]
        else:
            t = time.perf_counter()
            pool = create_pool(store, "b1 all current",
                               parse_criteria({"eligibility": {"dpd_max": 0}}, "b1"), as_of)
            info["setup pool s"] = time.perf_counter() - t
        # each loan's borrower and household limit, stored with the pool when it is created
        # (pool_loans reads them instead of aggregating the book): a pool cached before they
        # were stored, or stored on another book state or code version, gets them here
        t = time.perf_counter()
        if ensure_pool_households(store, pool.pool_id):
            info["setup pool households s"] = time.perf_counter() - t
        if not a_path.exists():
            t = time.perf_counter()
            calib = calibrate_from_store(store, pool_id=pool.pool_id)
            save_assumptions(calib.assumptions, a_path, calib.exposure_tables())
            info["setup calibrate s"] = time.perf_counter() - t
    dq_path = dq_assumptions_path(a_path)
    if not dq_path.exists():  # the delinquency model's transitions: riskpool calibrate
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "riskpool", "calibrate", "--db", str(db), "--pool",
                        str(pool.pool_id), "--out", str(dq_path)], check=True, cwd=str(ROOT),
                       capture_output=True)
        info["setup calibrate delinquency s"] = time.perf_counter() - t
    info["pool_id"] = pool.pool_id
    info["pool loans in store"] = pool.n_loans
    return info


def dq_assumptions_path(a_path: str | Path) -> Path:
    """The delinquency model's assumptions beside the hazard model's: ``riskpool calibrate``
    of the same book and pool, with its calibrated ``[delinquency]`` transitions (the hazard
    file predates them; without the section the model's rolls are certain and its cures
    impossible, a degenerate case)."""
    p = Path(a_path)
    return p.with_name(p.name.replace("b1_assumptions_", "b1_assumptions_dq_"))


# ------------------------------------------------------------------------------------------
# The timed pipeline (child process)


def warm_up(a_path: str) -> None:
    """Both engines of both models, the replenishment profile and the allocation once on a
    12-loan pool:
    numba kernels are loaded from their on-disk cache (or compiled) before anything is
    timed."""
    a = load_assumptions(Path(a_path))
    n = 12
    terms = np.array([3, 6, 12, 24] * 3, dtype=np.int16)
    orig = np.full(n, np.datetime64("2025-10-15"))
    loans = LoanArrays(
        loan_id=np.array([f"W{i:03d}" for i in range(n)], dtype=object),
        balance=np.full(n, 5000.0), apr=np.full(n, 0.18), term_months=terms,
        remaining_term=(terms - 2).astype(np.int16), months_on_book=np.full(n, 2, np.int16),
        repayment_type=np.array([0, 1, 3] * 4, dtype=np.int8),
        credit_score=np.linspace(500, 900, n).astype(np.int16),
        region=np.array(["north"] * n, dtype=object), origination_date=orig,
        next_due_date=np.full(n, np.datetime64("2026-01-15")), principal=np.full(n, 6000.0))
    for engine in ("granular", "loan"):
        simulate(loans, a, 300, 0, engine=engine, shares=np.full((n, 3), 1.0 / 3.0))
        simulate_delinquency(loans, a, 300, 0, engine=engine)
    for model in ("hazard", "delinquency"):
        simulate_replenishment(loans, a, 300, 0, purchase_months=2, model=model)
    # the waterfall's kernels (tranching.kernels: revolving purchases, DPD balances) on the
    # CN deal with its profile, both models, and the dispersion's (partners.dispersion)
    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")
    shares = np.full((n, 3), 1.0 / 3.0)
    for model in ("hazard", "delinquency"):
        paths = project(loans, a, 300, 0, model=model)
        profile = replenishment_for(deal, loans, a, 300, 0, cutoff=dt.date.fromisoformat(AS_OF),
                                    model=model)
        run_waterfall(deal, paths, replenishment=profile)
        # the dispersion as the pipeline runs it: the platform's retained share's totals-only
        # waterfall and the loans' capital (compiled on a fresh machine's first run otherwise:
        # 2.2 s inside the timed stage)
        party = simulate(loans, a, 300, 0, shares=shares, party_ids=(PLATFORM_ID, "p1", "p2"))
        risk = loan_risk_from_assumptions(loans, a)  # read-only arrays, as in the pipeline
        disperse_paths(party, loans.balance, shares, risk.annual_pd, risk.lgd, deal,
                       replenishment=profile)
    exposure_sums(shares, np.ones(n), np.ones(n))
    # the capital's distinct PDs and LGDs (partners.lookup.float_codes) on read-only and on
    # writable arrays: numba compiles each kind once
    ro = np.linspace(0.01, 0.2, n)
    float_codes(ro.copy())
    ro.flags.writeable = False
    float_codes(ro)
    # the allocation's kernels (projected loss rate, re-check passes, party totals)
    allocate(loans, _three_partner_registry(), risk=loan_risk_from_assumptions(loans, a),
             as_of=dt.date.fromisoformat(AS_OF), borrower_id=np.arange(n))


def _take(loans: Any, n: int) -> Any:
    """The first ``n`` loans: views of the arrays (a slice), not copies."""
    return loans.take(slice(0, min(n, len(loans))))


def ensure_households(db: str, pool_id: int) -> None:
    """Set-up, not timed: the pool's stored borrowers and household limits made current
    (``ensure_pool_households``; their key holds the code version, so a child run straight
    after a commit, without :func:`setup`, would otherwise time the live computation). When
    another process holds the database, nothing is stored and the pool load computes live
    (the figures say which: ``pool load households``)."""
    with open_store(Path(db), read_only=True) as store:
        if stored_pool_households(store.con, pool_id) is not None:
            return
    try:
        with open_store(Path(db), wait=10.0) as store:
            ensure_pool_households(store, pool_id)
    except StoreLocked:
        pass


def pipeline(db: str, pool_id: int, a_path: str, sz: dict[str, Any],
             model: str = "hazard", overlap: bool = False) -> dict[str, Any]:
    """B1 end to end after the pool is built; every stage timed. Runs in a fresh process."""
    ensure_households(db, pool_id)
    rss = PeakRss().start()
    warm_up(a_path)  # numba kernels loaded from their cache before timing (not B1 work)
    out: dict[str, Any] = {}
    st: dict[str, float] = {}
    cpu: dict[str, float] = {}  # process CPU seconds per stage (every thread; a shared box's
    # wall times swing with the other jobs, its CPU times much less)
    t_all, c_all = time.perf_counter(), time.process_time()

    t, c = time.perf_counter(), time.process_time()
    a = load_assumptions(Path(a_path))
    st["assumptions load"] = time.perf_counter() - t
    cpu["assumptions load"] = time.process_time() - c

    # the pool load ends when its snapshot and stored households are read; the allocation
    # runs on them at once, while the households' key is still being computed on a second
    # connection (``pool_loans_then``: its result kept only if they prove current, else
    # allocated again on the live ones), so the key's pass ends inside the allocation stage
    allocating: list[tuple[float, float]] = []

    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")
    started: list[Any] = []

    def allocate_pool(batch: Any) -> tuple[Any, Any, Any]:
        allocating.append((time.perf_counter(), time.process_time()))
        loans = _take(batch.loans, sz["pool_loans"])
        if overlap and not started:  # once, even if allocated again on live households
            started.append(replenishment_started(deal, loans, a, sz["paths"], 2026,
                                                 cutoff=batch.cutoff, model=model))
        borrower = batch.borrowers[:len(loans)]  # codes when stored with the pool
        registry = _three_partner_registry()
        risk = loan_risk_from_assumptions(loans, a)
        return loans, risk, allocate(loans, registry, risk=risk, as_of=batch.cutoff,
                                     borrower_id=borrower)

    t, c = time.perf_counter(), time.process_time()
    with open_store(Path(db), read_only=True) as store:
        pool = get_pool(store, pool_id)
        # loans ordered by loan_id, with borrower ids, and their allocation
        batch, (loans, risk, alloc) = pool_loans_then(store, pool_id, allocate_pool)
    # the allocation's rows are the pool's (the same array), else compared id by id
    if alloc.loan_id is not loans.loan_id and not np.array_equal(alloc.loan_id, loans.loan_id):
        raise RuntimeError("allocation rows are not in pool order")
    t_read, c_read = allocating[0]
    st["pool load"] = t_read - t
    cpu["pool load"] = c_read - c
    st["allocation (3 partners)"] = time.perf_counter() - t_read
    cpu["allocation (3 partners)"] = time.process_time() - c_read

    t, c = time.perf_counter(), time.process_time()
    paths = project(loans, a, sz["paths"], 2026, model=model, shares=alloc.shares,
                    party_ids=alloc.party_ids)
    st["simulation (granular, party split)"] = time.perf_counter() - t
    cpu["simulation (granular, party split)"] = time.process_time() - c

    t, c = time.perf_counter(), time.process_time()
    if overlap:
        profile = started[0]()
    else:
        profile = replenishment_for(deal, loans, a, sz["paths"], 2026, cutoff=pool.cutoff_date,
                                    model=model)  # the run's model, as riskpool simulate does
    st["replenishment profile (revolving purchases)"] = time.perf_counter() - t
    cpu["replenishment profile (revolving purchases)"] = time.process_time() - c

    t, c = time.perf_counter(), time.process_time()
    wf = run_waterfall(deal, paths, replenishment=profile)
    st["waterfall (CN deal)"] = time.perf_counter() - t
    cpu["waterfall (CN deal)"] = time.process_time() - c

    t, c = time.perf_counter(), time.process_time()
    disp = disperse_paths(paths, alloc.balance, alloc.shares, risk.annual_pd, risk.lgd, deal,
                          replenishment=profile, waterfall=wf)  # the waterfall run above
    stats = loss_distribution(paths)
    st["dispersion per party"] = time.perf_counter() - t
    cpu["dispersion per party"] = time.process_time() - c
    total = time.perf_counter() - t_all
    total_cpu = time.process_time() - c_all
    peak = rss.peak_gib()  # before anything below allocates

    out["pool loans"] = len(loans)
    out["pool load households"] = (
        "stored with the pool (their key checked during the allocation)"
        if batch.borrower_code is not None else "computed live")
    out["pool balance CNY"] = float(paths.initial_balance)
    out["paths"] = paths.n_paths
    out["months"] = paths.n_months
    out["parties"] = ", ".join(alloc.party_ids)
    for k, v in st.items():
        out[f"{k} s"] = v
    for k, v in cpu.items():
        out[f"{k} CPU s"] = v
    out["B1 end to end s (goal <= 5)"] = total
    out["B1 end to end CPU s"] = total_cpu
    out["B1 peak RSS GiB (goal <= 3)"] = peak
    # the work of the bandwidth-bound stages (their bounds: bytes / measured bandwidth)
    out["work: allocation bytes"] = _allocation_bytes(loans, alloc.shares)
    out["work: waterfall bytes"] = _nbytes(paths, exclude=("party_flows",)) + _nbytes(profile) \
        + _nbytes(wf)
    out["work: dispersion bytes"] = out["work: waterfall bytes"] + _nbytes(paths.party_flows)
    out["pool EL % of balance"] = stats.el / paths.initial_balance * 100
    out["pool VaR 99.9% % of balance"] = stats.var[-1] / paths.initial_balance * 100
    out["results digest"] = _results_digest(paths, profile, wf)
    out["tranche EL % (A, B, Sub)"] = ", ".join(
        f"{x:.4f}" for x in wf.tranche_loss.mean(axis=1) / wf.original_balance * 100)
    for h in disp.headlines:
        out[f"dispersion {h.scenario}: EL / 99.9% tail off platform"] = \
            f"{h.el_share_left:.1%} / {h.tail_share_left:.1%}"
    return out


def _results_digest(*results: Any) -> str:
    """SHA-256 of every array of the run's paths, profile and waterfall (dataclass fields and
    dict values, in field order): equal digests, the same bytes."""
    h = hashlib.sha256()

    def feed(x: Any) -> None:
        if isinstance(x, np.ndarray):
            h.update(f"{x.dtype}{x.shape}".encode())
            h.update(np.ascontiguousarray(x).tobytes())
        elif dataclasses.is_dataclass(x) and not isinstance(x, type):
            for f in dataclasses.fields(x):
                feed(getattr(x, f.name))
        elif isinstance(x, dict):
            for k in sorted(x):
                h.update(str(k).encode())
                feed(x[k])
        elif isinstance(x, (tuple, list)):
            for v in x:
                feed(v)

    for r in results:
        feed(r)
    return h.hexdigest()


def pipeline_overlap(db: str, pool_id: int, a_path: str, sz: dict[str, Any]
                     ) -> dict[str, Any]:
    """B1 as ``riskpool simulate --structure`` runs it: the revolving purchases' profile
    begun beside the allocation and the projection (``replenishment_started``); only the
    end-to-end figures (its stages overlap)."""
    return _overlapped(pipeline(db, pool_id, a_path, sz, overlap=True))


OVERLAP = "as riskpool simulate runs it: "  # the key prefix of pipeline_overlap's figures
OVERLAP_KEYS = ("B1 end to end s (goal <= 5)", "B1 end to end CPU s",
                "B1 peak RSS GiB (goal <= 3)", "results digest")


def _overlapped(figures: dict[str, Any]) -> dict[str, Any]:
    return {f"{OVERLAP}{k}": figures[k] for k in OVERLAP_KEYS}


def pipeline_delinquency(db: str, pool_id: int, a_path: str, sz: dict[str, Any]
                         ) -> dict[str, Any]:
    """B1 with the delinquency-state model (``--model delinquency``): the same pipeline,
    the pool's paths from ``simulate_delinquency`` (granular engine) and the revolving
    purchases' profile from the delinquency kernels' expected vintages."""
    figures = pipeline(db, pool_id, str(dq_assumptions_path(a_path)), sz, model="delinquency")
    return {f"delinquency model: {k}": v for k, v in figures.items()}


def pipeline_delinquency_overlap(db: str, pool_id: int, a_path: str, sz: dict[str, Any]
                                 ) -> dict[str, Any]:
    """:func:`pipeline_delinquency` as ``riskpool simulate --structure`` runs it (the profile
    beside the allocation and the projection)."""
    figures = pipeline(db, pool_id, str(dq_assumptions_path(a_path)), sz, model="delinquency",
                       overlap=True)
    return {f"delinquency model: {k}": v for k, v in _overlapped(figures).items()}


def loan_engine_delinquency(db: str, pool_id: int, a_path: str, sz: dict[str, Any]
                            ) -> dict[str, Any]:
    """The delinquency model's loan engine on the B1 pool: loan-paths per second (one
    uniform per loan, month and path), beside the hazard model's (``loan_engine``)."""
    a_path = str(dq_assumptions_path(a_path))
    warm_up(a_path)
    with open_store(Path(db), read_only=True) as store:
        loans = _take(load_pool_loans(store, pool_id), sz["pool_loans"])
    a = load_assumptions(Path(a_path))
    n, p = len(loans), sz["loan_engine_paths_dq"]
    t = time.perf_counter()
    prep = prepare_delinquency(loans, a, engine="loan")
    w_prep = time.perf_counter() - t
    t = time.perf_counter()
    run_dq_blocks(prep, root_seed(7), p, "loan")
    w = time.perf_counter() - t
    return {"delinquency model loan engine: loans x paths x months": f"{n:,} x {p:,} x {prep.H}",
            "delinquency model loan engine preparation s": w_prep,
            "delinquency model loan engine paths s": w,
            "delinquency model loan engine loan-paths/s": n * p / w}


def loan_engine(db: str, pool_id: int, a_path: str, sz: dict[str, Any]) -> dict[str, Any]:
    """Loan-engine throughput on the B1 pool, the naive baseline on the same pool, and the
    2-worker vs 1-worker speed-up of the loan engine on a local Dask cluster."""
    warm_up(a_path)
    out: dict[str, Any] = {}
    with open_store(Path(db), read_only=True) as store:
        loans = _take(load_pool_loans(store, pool_id), sz["pool_loans"])
    a = load_assumptions(Path(a_path))
    n = len(loans)
    p = sz["loan_engine_paths"]
    t = time.perf_counter()
    prep = prepare_pool(loans, a, loan_level=True)
    w_prep = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    run_blocks(prep, root_seed(7), p, "loan")  # the default splits 1,024 paths over the threads
    w_loan, c_loan = time.perf_counter() - t, time.process_time() - c
    out["loan engine: loans x paths"] = f"{n:,} x {p:,}"
    out["loan engine preparation s (schedules, once per pool)"] = w_prep
    out["loan engine paths s"] = w_loan
    out["loan engine paths CPU s"] = c_loan  # every thread (a shared box: wall swings, CPU less)
    out["loan engine loan-paths/s"] = n * p / w_loan

    # the naive baseline on the same pool (numpy on one thread: a Bernoulli draw per loan,
    # month and path, the pool's loss only), on fewer paths: each of its paths costs the same
    # (every loan, every month), so its loan-paths per second are the rate it would have on
    # the engine's 1,024; the best of two tries. (A slice of the pool's first loans, used
    # before, held its oldest loans — remaining terms of 3.7 months against the pool's 8.0,
    # 13 months to the last maturity against 24 — which flattered the engine on the slice and
    # the baseline's rate against the whole pool: docs/performance.md.)
    pn = sz["naive_paths"]
    lp = n * pn
    naive_t: dict[str, float] = {}
    w_naive = float("inf")
    for _ in range(2):
        tries: dict[str, float] = {}
        t = time.perf_counter()
        naive_simulate(loans, a, pn, 5, tries)
        w = time.perf_counter() - t
        if w < w_naive:
            w_naive, naive_t = w, tries
    out["naive baseline: loans x paths"] = f"{n:,} x {pn}"
    out["naive preparation s"] = naive_t["prep_s"]
    out["naive paths s"] = naive_t["paths_s"]
    out["naive loan-paths/s (paths only)"] = lp / naive_t["paths_s"]
    out["loan engine speed-up over naive (B1 pool, paths only)"] = \
        out["loan engine loan-paths/s"] / out["naive loan-paths/s (paths only)"]
    # with each one's preparation, for the engine's 1,024 paths (the baseline's paths at its
    # measured rate: its cost is the same for every path)
    naive_1024 = naive_t["prep_s"] + naive_t["paths_s"] * p / pn
    out["loan engine speed-up over naive (B1 pool, 1,024 paths incl. preparation; the "
        "baseline's paths at its measured time a path)"] = \
        naive_1024 / (w_prep + w_loan)

    # Dask: the same loan-engine run on 1 and on 2 worker processes (cluster started and
    # warmed first; times include sending the prepared pool to the workers)
    pd_ = sz["dask_paths"]
    pg = sz["paths"]
    prep_g = prepare_pool(loans, a)
    root = root_seed(11)
    times: dict[tuple[str, int], float] = {}
    for w in (1, 2):
        with open_client(workers=w) as client:
            client.run(warm_up, a_path)
            for engine, pr, n_p in (("loan", prep, pd_), ("granular", prep_g, pg)):
                best = float("inf")
                for _ in range(2):  # best of two: the machine is shared
                    t = time.perf_counter()
                    run = run_distributed(client, pr, root, n_p, engine, blocks_per_task=1)
                    best = min(best, time.perf_counter() - t)
                times[engine, w] = best
                out[f"dask {engine} {w} worker(s) s (best of 2; scatter "
                    f"{run.timings['scatter_s']:.2f} s)"] = best
    out["dask loan engine: loans x paths"] = f"{n:,} x {pd_:,}"
    out["dask 2-worker vs 1-worker speed-up (loan engine)"] = times["loan", 1] / times["loan", 2]
    out["dask granular engine: loans x paths"] = f"{n:,} x {pg:,}"
    out["dask 2-worker vs 1-worker speed-up (granular engine)"] = \
        times["granular", 1] / times["granular", 2]
    # the same comparison with local threads (no Dask)
    for th in (1, 2):
        t = time.perf_counter()
        run_blocks(prep, root, pd_, "loan", threads=th)
        times["threads", th] = time.perf_counter() - t
    out["local threads 2 vs 1 speed-up (loan engine)"] = times["threads", 1] / times["threads", 2]
    return out


def scaling(db: str, pool_id: int, a_path: str, sz: dict[str, Any]) -> dict[str, Any]:
    """Granular engine time at three sizes each of loans, paths and months."""
    warm_up(a_path)
    with open_store(Path(db), read_only=True) as store:
        loans = load_pool_loans(store, pool_id)
    a = load_assumptions(Path(a_path))
    out: dict[str, Any] = {}

    def timed(ls: Any, paths: int) -> tuple[float, int]:
        t = time.perf_counter()
        res = simulate(ls, a, paths, 3)
        return time.perf_counter() - t, res.n_months

    base_l, base_p = sz["scale_base_loans"], sz["scale_base_paths"]
    for n in sz["scale_loans"]:
        s, m = timed(_take(loans, n), base_p)
        out[f"scale loans {n:,} ({base_p:,} paths, {m} months) s"] = s
    for p in sz["scale_paths"]:
        s, m = timed(_take(loans, base_l), p)
        out[f"scale paths {p:,} ({base_l:,} loans, {m} months) s"] = s
    sub = _take(loans, base_l)
    for months in sz["scale_months"]:
        # the same loans, their remaining term capped (shorter schedules): the horizon is
        # the cap plus the recovery lag
        rem = np.minimum(np.asarray(sub.remaining_term), months).astype(sub.remaining_term.dtype)
        capped = dataclasses.replace(sub, remaining_term=rem)
        s, m = timed(capped, base_p)
        out[f"scale months {m} (remaining term <= {months}; {base_l:,} loans, "
            f"{base_p:,} paths) s"] = s
    return out


# ------------------------------------------------------------------------------------------
# Bounds: what each stage would take at the machine's measured rates


def _nbytes(obj: Any, exclude: tuple[str, ...] = ()) -> int:
    """Bytes of the numeric arrays in a result (dataclass fields, dicts, tuples)."""
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes) if obj.dtype != object else 0
    if dataclasses.is_dataclass(obj):
        return sum(_nbytes(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                   if f.name not in exclude)
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, tuple | list):
        return sum(_nbytes(v) for v in obj)
    return 0


def _allocation_bytes(loans: Any, shares: np.ndarray) -> int:
    """The allocation's minimum traffic: every numeric loan field read once, the shares
    written once and read once by the re-check."""
    return _nbytes(loans) + 2 * int(shares.nbytes)


def machine_rates() -> dict[str, float]:
    """Memory bandwidth (a 256 MiB float64 copy counts 512 MiB moved; one thread, and two
    threads copying halves) and numpy's PCG64 rate (``Generator.random`` into a buffer of 10⁷,
    float64 and float32, one thread); best of five each."""
    out: dict[str, float] = {}
    a = np.ones(1 << 25)
    b = np.empty_like(a)
    half = len(a) // 2

    def best(fn: Any, k: int = 5) -> float:
        t_best = float("inf")
        for _ in range(k):
            t = time.perf_counter()
            fn()
            t_best = min(t_best, time.perf_counter() - t)
        return t_best

    out["memory bandwidth 1 thread GB/s"] = 2 * a.nbytes / best(lambda: np.copyto(b, a)) / 1e9

    def two() -> None:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda sl: np.copyto(b[sl], a[sl]),
                          (slice(0, half), slice(half, None))))

    out["memory bandwidth 2 threads GB/s"] = 2 * a.nbytes / best(two) / 1e9
    gen = np.random.Generator(np.random.PCG64(1))
    u64 = np.empty(10_000_000)
    u32 = np.empty(10_000_000, dtype=np.float32)
    out["PCG64 float64 uniforms/s (1 thread)"] = u64.size / best(lambda: gen.random(out=u64))
    out["PCG64 float32 uniforms/s (1 thread)"] = u32.size / best(
        lambda: gen.random(out=u32, dtype=np.float32))
    return out


def rates(db: str, pool_id: int, a_path: str, sz: dict[str, Any]) -> dict[str, Any]:
    """The machine's rates and the kernels' own rates on the B1 pool's cells (one thread
    each, kernel only), and the work of each B1 stage in those units: the bounds."""
    warm_up(a_path)
    out: dict[str, Any] = machine_rates()
    with open_store(Path(db), read_only=True) as store:
        loans = _take(load_pool_loans(store, pool_id), sz["pool_loans"])
        pool = get_pool(store, pool_id)
        # bytes the pool load reads: the columns of its query, at their in-memory widths
        q = store.con.execute
        (perf_rows, perf_ids), = q("SELECT count(*), sum(strlen(loan_id)) FROM loan_performance "
                                   "WHERE as_of <= ?", [pool.cutoff_date]).fetchall()
        (book_rows, book_ids), = q("SELECT count(*), sum(strlen(loan_id) + strlen(borrower_id)) "
                                   "FROM loans").fetchall()
        (pool_rows, pool_ids), = q("SELECT count(*), sum(strlen(loan_id)) FROM pool_loans "
                                   "WHERE pool_id = ?", [pool_id]).fetchall()
    out["work: pool load bytes"] = int(perf_ids + 12 * perf_rows + book_ids + 20 * book_rows
                                       + pool_ids + 60 * pool_rows)
    a = load_assumptions(Path(a_path))
    n = len(loans)
    paths = sz["paths"]
    parties = ("platform", "p1", "p2", "p3")  # B1's four parties (a fixed split)
    shares = np.tile(np.array([0.4, 0.3, 0.2, 0.1]), (n, 1))
    root = root_seed(5)
    kp = 256  # paths for the kernel rates (one block)

    def best_of_2(fn: Any) -> float:
        t_best = float("inf")
        for _ in range(2):
            t = time.perf_counter()
            fn()
            t_best = min(t_best, time.perf_counter() - t)
        return t_best

    prep = prepare_pool(loans, a, shares, parties)
    steps = int(prep.cell_r[:prep.n_binomial_cells].sum())  # cell-months of one path
    w = best_of_2(lambda: run_blocks(prep, root, kp, "granular", threads=1))
    out["granular kernel cell-path-months/s (1 thread)"] = steps * kp / w
    out["work: simulation cell-path-months"] = steps * paths

    dq = prepare_delinquency(loans, load_assumptions(dq_assumptions_path(a_path)), shares,
                             parties, engine="granular")
    dq_steps = int(dq.cell_h.sum())
    w = best_of_2(lambda: run_dq_blocks(dq, root, kp, "granular", threads=1))
    out["delinquency granular kernel cell-path-months/s (1 thread)"] = dq_steps * kp / w
    out["work: delinquency simulation cell-path-months"] = dq_steps * paths

    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")
    new = replenishment_loans(loans, pool.cutoff_date)
    rprep = prepare_pool(new, a)
    n_v = max(1, int(deal.revolving_months))
    rsteps = int(rprep.cell_r.sum())
    gen = np.random.Generator(np.random.PCG64(3))
    length = n_v + rprep.T
    z = gen.standard_normal((kp, length))
    thr_s, zb = engines.scaled_inputs(rprep.cell_thr, z, rprep.rho)
    acc = np.empty((n_v, engines.N_ACC, kp, rprep.n_months))
    rec, eop = np.empty((2, n_v, kp, rprep.n_months))
    kf = 1.0 / (np.sqrt(1.0 - rprep.rho) * np.sqrt(2.0))
    vid, pidx, pair_thr, pair_m = engines.vintage_pairs(thr_s, rprep.cell_r, n_v, length)
    lag = np.asarray(rprep.recovery_lag, dtype=np.float64)
    w = best_of_2(lambda: engines.vintage_block(  # the profile's kernel, finished vintages
        zb, np.ones(kp), rprep.cell_r, thr_s, rprep.cell_smm, rprep.cell_flows, engines.NO_T,
        kf, vid, pidx, pair_thr, pair_m, rprep.recovery_rate, lag, acc, rec, eop))
    out["replenishment kernel vintage-cell-path-months/s (1 thread)"] = n_v * rsteps * kp / w
    out["work: replenishment vintage-cell-path-months"] = n_v * rsteps * paths
    # the delinquency model's expected vintages (its own kernel, catch-up: r + K months a cell)
    dprep = prepare_delinquency(new, load_assumptions(dq_assumptions_path(a_path)))
    tables = expected_dq_tables(dprep)
    # B1's call: every vintage of a block at once, vintage s on the factor from month s + 1
    dzb = gen.standard_normal((kp, n_v + dprep.H)) * (np.sqrt(dprep.loading) / (
        np.sqrt(1.0 - dprep.loading) * np.sqrt(2.0)))
    dout, dstates = new_accumulators(dprep, (n_v,), kp)
    w = best_of_2(lambda: expected_dq_vintages_into(dprep, tables, dzb, 1, dout, dstates))
    dsteps = int(dprep.cell_h.sum())
    out["delinquency replenishment kernel vintage-cell-path-months/s (1 thread)"] = \
        n_v * dsteps * kp / w
    out["work: delinquency replenishment vintage-cell-path-months"] = n_v * dsteps * paths
    out["work: replenishment new loan-months (schedules)"] = int(np.asarray(
        new.remaining_term, dtype=np.int64).sum())
    out["work: simulation uniforms (at least one per binomial draw, 2 per cell-month)"] = \
        2 * steps * paths
    return out


BOUNDS = (  # stage, its work, the rate it is bound by (bytes/s or units/s), threads
    ("pool load", "work: pool load bytes", "bandwidth"),
    ("allocation (3 partners)", "work: allocation bytes", "bandwidth"),
    ("simulation (granular, party split)", "work: simulation cell-path-months",
     "granular kernel cell-path-months/s (1 thread)"),
    ("replenishment profile (revolving purchases)",
     "work: replenishment vintage-cell-path-months",
     "replenishment kernel vintage-cell-path-months/s (1 thread)"),
    ("waterfall (CN deal)", "work: waterfall bytes", "bandwidth"),
    ("dispersion per party", "work: dispersion bytes", "bandwidth"),
)


def stage_bounds(figures: dict[str, Any], prefix: str = "", threads: int = 2
                 ) -> list[tuple[str, float, float, str]]:
    """(stage, measured s, bound s, what bounds it) for one pipeline's figures: bytes ÷ the
    2-thread copy bandwidth, or the kernel's units ÷ (its 1-thread rate × ``threads``)."""
    bw = figures["memory bandwidth 2 threads GB/s"] * 1e9
    rows = []
    dq = prefix.startswith("delinquency")
    for stage, work, rate in BOUNDS:
        key = f"{prefix}{stage} s"
        if key not in figures:
            continue
        if dq and work == "work: simulation cell-path-months":
            work = "work: delinquency simulation cell-path-months"
            rate = "delinquency granular kernel cell-path-months/s (1 thread)"
        if dq and work.startswith("work: replenishment"):  # its own kernel
            work = "work: delinquency replenishment vintage-cell-path-months"
            rate = "delinquency replenishment kernel vintage-cell-path-months/s (1 thread)"
        w = float(figures.get(f"{prefix}{work}", figures.get(work, 0.0)))
        if rate == "bandwidth":
            rows.append((stage, figures[key], w / bw, f"{w / 1e6:,.0f} MB / {bw / 1e9:.1f} GB/s"))
        else:
            r = float(figures[rate]) * threads
            rows.append((stage, figures[key], w / r,
                         f"{w:.3g} {work.split(' ')[-1]} / ({figures[rate]:.3g}/s x {threads})"))
    return rows


# ------------------------------------------------------------------------------------------
# Driver


def _child(stage: str, db: str, pool_id: int, a_path: str, quick: bool) -> dict[str, Any]:
    """Run one stage in a fresh interpreter; its figures come back as JSON on stdout."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", stage, db, str(pool_id),
           a_path, "quick" if quick else "full"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
    if res.returncode != 0:
        raise RuntimeError(f"{stage} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run(quick: bool | None = None) -> dict[str, Any]:
    quick = settings.bench_quick() if quick is None else quick
    sz = sizes(quick)
    out: dict[str, Any] = {"sizes": "quick" if quick else "full"}
    info = setup(sz)
    for k in ("setup generate s", "setup pool s", "setup pool households s", "setup calibrate s",
              "setup calibrate delinquency s"):
        if k in info:
            out[k] = info[k]
    out["pool loans in store"] = info["pool loans in store"]
    args = (info["db"], info["pool_id"], info["assumptions"])
    out.update(_child("rates", *args, quick))
    out.update(_child("pipeline", *args, quick))
    out.update(_child("pipeline_overlap", *args, quick))
    out.update(_child("pipeline_delinquency", *args, quick))
    out.update(_child("pipeline_delinquency_overlap", *args, quick))
    for prefix in ("", "delinquency model: "):  # the same bytes either way
        key = "results digest"
        if out[f"{prefix}{key}"] != out[f"{prefix}{OVERLAP}{key}"]:
            raise RuntimeError(f"{prefix}B1 with the profile beside the projection gave other "
                               "paths, profile or waterfall bytes than with the stages in turn")
    out.update(_child("loan_engine", *args, quick))
    out.update(_child("loan_engine_delinquency", *args, quick))
    out["delinquency loan engine speed-up over naive (B1 pool, paths only)"] = \
        out["delinquency model loan engine loan-paths/s"] / out["naive loan-paths/s (paths only)"]
    out.update(_child("scaling", *args, quick))
    return out


def print_report(out: dict[str, Any]) -> None:
    """B1 stage by stage next to its bound, for both models, and the loan engine's rates
    (``run_all.py`` prints it after the figures)."""
    for title, prefix in (("hazard model", ""), ("delinquency model", "delinquency model: ")):
        rows = stage_bounds(out, prefix)
        if not rows:
            continue
        print(f"\n   B1 by stage, {title}: measured s | CPU s | bound s | bound from")
        nan = float("nan")
        for stage, measured, bound, what in rows:
            cpu = out.get(f"{prefix}{stage} CPU s", nan)
            print(f"   {stage:<46} {measured:7.2f} | {cpu:6.2f} | {bound:7.3f} | {what}")
        total = out.get(f"{prefix}B1 end to end s (goal <= 5)")
        if total is not None:
            bounds = [r[2] for r in rows if r[2] == r[2]]  # measured bounds only (no NaN)
            cpu = out.get(f"{prefix}B1 end to end CPU s", nan)
            print(f"   {'end to end, stages one after another':<46} {total:7.2f} | {cpu:6.2f} | "
                  f"{sum(bounds):7.3f} |")
        both = out.get(f"{prefix}{OVERLAP}B1 end to end s (goal <= 5)")
        if both is not None:
            cpu = out.get(f"{prefix}{OVERLAP}B1 end to end CPU s", nan)
            print(f"   {'end to end, profile beside the projection':<46} {both:7.2f} | "
                  f"{cpu:6.2f} |         | as riskpool simulate --structure runs it")
    u = out.get("work: simulation uniforms (at least one per binomial draw, 2 per cell-month)")
    g32 = out.get("PCG64 float32 uniforms/s (1 thread)")
    g64 = out.get("PCG64 float64 uniforms/s (1 thread)")
    if u and g64:
        print(f"   granular draws' uniforms: >= {u:.3g} float64 / ({g64:.3g}/s x 2) = "
              f"{u / (2 * g64):.3f} s (the generator is not what bounds the stage)")
    if g32 and "loan engine loan-paths/s" in out:
        print(f"\n   loan engine, hazard model: {out['loan engine loan-paths/s']:.3g} loan-paths/s "
              f"(about one uniform per event, not per loan-path: a float32 uniform per "
              f"loan-path alone would cap it at {2 * g32:.3g}/s on 2 threads); "
              f"{out['loan engine speed-up over naive (B1 pool, paths only)']:.0f}x "
              "the naive baseline on the same pool (paths only); "
              f"{out.get('loan engine paths CPU s', float('nan')):.2f} CPU s")
    if "delinquency model loan engine loan-paths/s" in out:
        months = out["delinquency model loan engine: loans x paths x months"].split(" x ")[-1]
        dq_bound = f"; bound {2 * g32 / int(months):.3g}/s, one uniform per month" if g32 else ""
        print(f"   loan engine, delinquency model: "
              f"{out['delinquency model loan engine loan-paths/s']:.3g} loan-paths/s "
              f"({months} months{dq_bound}); "
              f"{out['delinquency loan engine speed-up over naive (B1 pool, paths only)']:.1f}x "
              "the naive baseline")


def _main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        stage, db, pool_id, a_path = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
        sz = sizes(sys.argv[6] == "quick")
        fn = {"pipeline": pipeline,
              "pipeline_overlap": pipeline_overlap, "loan_engine": loan_engine, "scaling": scaling,
              "rates": rates,
              "pipeline_delinquency": pipeline_delinquency,
              "pipeline_delinquency_overlap": pipeline_delinquency_overlap,
              "loan_engine_delinquency": loan_engine_delinquency}[stage]
        figures = fn(db, pool_id, a_path, sz)
        print(json.dumps(figures, default=float))
        return 0

    print(f"machine: {machine()}")
    out = run()
    for key, value in out.items():
        shown = f"{value:,.4g}" if isinstance(value, float) else value
        print(f"   {key:<60} {shown}")
    print_report(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
