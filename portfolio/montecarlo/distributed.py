"""Monte Carlo on a Dask cluster: the same numbers as a local run (docs/architecture.md, "The Dask driver").

``simulate_distributed(loans, assumptions, n_paths, seed, client=...)`` prepares the pool once
(cells, schedules, probability tables: :func:`portfolio.montecarlo.simulation.prepare_pool`), sends it to
every worker, and submits one task per group of the engine's canonical path blocks. A task
runs :func:`portfolio.montecarlo.simulation.simulate_batch` on each of its blocks with that block's own
child seed (:func:`portfolio.montecarlo.simulation.block_seed`: ``SeedSequence(entropy,
spawn_key=(b,))``), so a block's numbers depend on the seed and the block index only — not on
which worker ran it, how blocks were grouped into tasks, or how many workers there were. The
client puts every block's flows at its fixed path offset and assembles
:class:`~portfolio.montecarlo.paths.PoolPaths` once, exactly as the local engine does: the result is
bit-identical to :func:`portfolio.montecarlo.simulation.simulate` with the same seed.

Work on the paths themselves can run on the workers too: ``per_paths`` is a picklable
:class:`PathsReducer` that each task calls on its own paths and whose parts the client joins
once in path order. The deal waterfall is one (``tranching.distributed.WaterfallOnWorkers``,
given by the layer above; this module knows nothing of deals). A path-wise computation does
not depend on the grouping either. With ``shares`` the party split is done on the workers too
(the engine carries per-party flows in every block).

The delinquency-state model runs the same way: ``prep`` may be
:func:`portfolio.montecarlo.delinquency.prepare_delinquency`'s pool (``simulate_distributed(...,
model="delinquency")``). Its blocks are ``delinquency.dq_block`` (the same canonical blocks and
child seeds as ``delinquency.run_dq_blocks`` on local threads) and a task's paths are assembled
by ``delinquency.assemble_blocks``, the balances by state and cures included, so every flow,
state balance and reducer result (the deal's DPD triggers read the states) is bit-identical to
the local run's; the quantile paths are recomputed by ``delinquency.dq_paths_at``.

Summaries instead of flows: :func:`run_summary` runs the blocks with ``keep_flows=False`` and a
``portfolio.montecarlo.summaries.PathSummaryReducer``, so the client holds each path's loss and
the monthly moments per block (and the paths at requested loss quantiles, recomputed from their
blocks), never the (paths × months) flow arrays. A book too large for one process:
:func:`prepare_on_workers` has each worker read and prepare partitions of a loan tape and send
back only their cells (``summaries.PartCells``), merged in partition order; for a revolving
deal :func:`prepare_with_new_loans_on_workers` also sends back the cells of the same loans as
new loans (merged, ``replenishment.profile_from_cells``: each waterfall task computes the
replenishment profile of its own blocks from them).

A worker lost mid-run (process killed, machine gone): the scheduler re-runs its tasks
elsewhere; tasks that raise are retried ``retries`` times. Either way a block is recomputed
from its own seed, so the result is unchanged.

Clusters: :func:`open_client` starts a ``LocalCluster`` of worker processes bound to
127.0.0.1 (no dashboard, nothing beyond loopback) or connects to an existing scheduler.
Dask is an optional dependency (``pip install 'riskpool[distributed]'``); without it
:func:`require_dask` raises :class:`DistributedUnavailable` (a ``RiskpoolError``: the CLI
prints it and exits with code 2).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from portfolio.errors import RiskpoolError, ValidationError, must_be
from portfolio.loans.arrays import LoanArrays
from portfolio.montecarlo import engines
from portfolio.montecarlo import simulation as sim
from portfolio.montecarlo.assumptions import Assumptions
from portfolio.montecarlo.delinquency import (
    MODELS,
    DqPrepared,
    assemble_blocks,
    dq_block,
    dq_paths_at,
    prepare_delinquency,
    prepare_delinquency_from_parts,
)
from portfolio.montecarlo.dq_kernels import N_DQ
from portfolio.montecarlo.paths import (
    FLOW_NAMES,
    PoolPaths,
    slice_paths,
)
from portfolio.montecarlo.replenishment import replenishment_part_cells
from portfolio.montecarlo.summaries import (
    PartCells,
    PathSummary,
    PathSummaryReducer,
    merge_cells,
    part_cells,
    paths_at,
    quantile_path_index,
)

__all__ = [
    "check_cluster_flags",
    "DistributedRun",
    "DistributedUnavailable",
    "PathsReducer",
    "SummaryRun",
    "prepare_delinquency_on_workers",
    "prepare_on_workers",
    "prepare_with_new_loans_on_workers",
    "run_summary",
    "open_client",
    "require_dask",
    "run_distributed",
    "simulate_distributed",
    "slice_paths",
    "task_groups",
]

INSTALL_HINT = "install riskpool[distributed] (pip install 'riskpool[distributed]')"
MAX_WORKERS = 256


class DistributedUnavailable(RiskpoolError):
    """Dask (``distributed``) is not installed."""


def require_dask() -> Any:
    """Import and return ``distributed``; a clear error naming the extra when it is missing."""
    try:
        import distributed
    except ImportError as exc:
        raise DistributedUnavailable(
            f"the distributed engine (--workers / --scheduler) needs Dask: {INSTALL_HINT}"
        ) from exc
    return distributed


def check_cluster_flags(workers: int | None, scheduler: str | None,
                        deterministic: str | None = None) -> None:
    """Validate ``--workers`` / ``--scheduler`` (before any work) and that Dask is there."""
    if workers is not None and scheduler is not None:
        raise ValidationError(must_be("--workers/--scheduler", "one of them, not both",
                                      f"--workers {workers} --scheduler {scheduler}"))
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or not 1 <= workers <= MAX_WORKERS):
        raise ValidationError(must_be("--workers", f"an integer in [1, {MAX_WORKERS}]", workers))
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise ValidationError(must_be("--scheduler", "a scheduler address such as "
                                      "tcp://127.0.0.1:8786", scheduler))
    if deterministic is not None and (workers is not None or scheduler is not None):
        raise ValidationError(must_be("--deterministic", "used without --workers/--scheduler "
                                      "(a single expected path needs no cluster)",
                                      deterministic))
    require_dask()


@contextlib.contextmanager
def open_client(workers: int | None = None, scheduler: str | None = None,
                threads_per_worker: int = 1, memory_limit: str | int = 0) -> Iterator[Any]:
    """A ``distributed.Client``: to ``scheduler`` (an address such as ``tcp://10.0.0.5:8786``)
    when given, else to a new ``LocalCluster`` of ``workers`` processes on 127.0.0.1 with
    ``threads_per_worker`` threads each, no dashboard (the scheduler's HTTP routes on a free
    loopback port, not 8787) and ``memory_limit`` per worker (Dask's form: ``"2GiB"``, bytes,
    or 0 for none; a worker over it is restarted and its tasks run again). Closed (and the
    local cluster shut down) on exit."""
    if workers is None and scheduler is None:
        raise ValidationError(must_be("--workers/--scheduler", "one of them", "neither"))
    check_cluster_flags(workers, scheduler)
    distributed = require_dask()
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise ValidationError(must_be("--scheduler", "the address of a running Dask "
                                          "scheduler", scheduler) + f" ({exc})") from exc
        try:
            yield client
        finally:
            client.close()
        return
    cluster = distributed.LocalCluster(
        n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
        host="127.0.0.1", dashboard_address=None, memory_limit=memory_limit, silence_logs=40,
        # dashboard_address=None turns the dashboard off, but the scheduler still starts its
        # HTTP server (health, info, metrics) and, given no address, binds the dashboard's
        # default port 8787 (dask/distributed issue 7207): give it a free loopback port
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )
    try:
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


# ------------------------------------------------------------------------------------------
# Results


class PathsReducer(Protocol):
    """Work on each task's paths, run on the workers, joined once on the client.

    ``check(n_paths)`` validates it against the run before anything is submitted;
    ``__call__(paths, first_path)`` runs on a worker on the paths
    ``first_path : first_path + paths.n_paths`` of the run; ``combine(parts)`` joins the parts
    (given in path order) on the client."""

    def check(self, n_paths: int) -> None: ...

    def __call__(self, paths: PoolPaths, first_path: int) -> Any: ...

    def combine(self, parts: Sequence[Any]) -> Any: ...


@dataclass(frozen=True, slots=True)
class DistributedRun:
    """``paths``: the same :class:`PoolPaths` as a local run (None when the run kept no flows:
    ``keep_flows=False``); ``reduced``: the joined result of ``per_paths`` when one was given;
    ``n_workers`` / ``n_tasks``: the cluster's worker count and the tasks submitted;
    ``timings`` in seconds (prepare, scatter, compute, assemble)."""

    paths: PoolPaths | None
    reduced: Any
    n_workers: int
    n_tasks: int
    timings: dict[str, float]


# ------------------------------------------------------------------------------------------
# Tasks


def task_groups(n_blocks: int, blocks_per_task: int) -> list[tuple[int, int]]:
    """Consecutive block ranges ``[b0, b1)`` of at most ``blocks_per_task`` blocks."""
    return [(b0, min(n_blocks, b0 + blocks_per_task))
            for b0 in range(0, n_blocks, blocks_per_task)]


@dataclass(frozen=True, slots=True)
class _TaskResult:
    first_path: int
    n_paths: int
    flows: np.ndarray | None  # (n_b, n_months, 5); None without keep_flows
    party_flows: np.ndarray | None  # (n_parties, n_b, n_months, 5)
    reduced: Any


Prepared = sim.PreparedPool | DqPrepared
"""A pool prepared for the hazard model (``simulation.prepare_pool``) or for the
delinquency-state model (``delinquency.prepare_delinquency``): the Dask driver runs either's
canonical blocks."""


def _base(prep: Prepared) -> sim.PreparedPool:
    return prep.base if isinstance(prep, DqPrepared) else prep


def _block_shape(prep: Prepared) -> tuple[int, int, int]:
    """(parties, months, accumulator columns) of one block's arrays (:func:`_block_arrays`):
    the hazard engine's (n_months, ``engines.N_ACC``), the delinquency engine's over its
    first H months (``dq_kernels.N_DQ``)."""
    if isinstance(prep, DqPrepared):
        return prep.base.n_parties, prep.H, N_DQ
    return prep.n_parties, prep.n_months, engines.N_ACC


def _block_arrays(prep: Prepared, root: np.random.SeedSequence, b: int, n_b: int,
                  engine: str) -> tuple[np.ndarray, np.ndarray]:
    """Canonical block ``b``'s accumulators and per-party accumulators, from its own child
    seed (``simulation.simulate_batch`` / ``delinquency.dq_block``)."""
    if isinstance(prep, DqPrepared):
        return dq_block(prep, root, b, n_b, engine)  # type: ignore[arg-type]
    res = sim.simulate_batch(prep, b, sim.block_seed(root, b), n_b, engine)  # type: ignore[arg-type]
    return res.flows, res.party_flows


def _assemble(prep: Prepared, flows: np.ndarray, pflows: np.ndarray,
              entropy: int | None) -> PoolPaths:
    """``PoolPaths`` of consecutive blocks' arrays joined in path order (the local engines'
    own assembly: ``simulation._assemble`` / ``delinquency.assemble_blocks``)."""
    if isinstance(prep, DqPrepared):
        return assemble_blocks(prep, flows, pflows, entropy)
    return sim._assemble(prep, flows, pflows, entropy)


def _run_task(prep: Prepared, root: np.random.SeedSequence, n_paths: int,
              block_range: tuple[int, int], engine: str, per_paths: PathsReducer | None,
              on_task_start: Callable[[int], None] | None, keep_flows: bool = True
              ) -> _TaskResult:
    """On a worker: the blocks ``[b0, b1)``, each from its own child seed, concatenated in
    path order; then ``per_paths`` on those paths when given. Without ``keep_flows`` only
    the reduction goes back."""
    b0, b1 = block_range
    if on_task_start is not None:
        on_task_start(b0)
    layout = sim.block_layout(n_paths)
    first = layout[b0][0]
    n_b = sum(layout[b][1] for b in range(b0, b1))
    n_q, n_m, n_c = _block_shape(prep)
    flows = np.empty((n_b, n_m, n_c))
    pflows = np.empty((n_q, n_b, n_m, n_c))
    for b in range(b0, b1):
        start, n = layout[b]
        f, pf = _block_arrays(prep, root, b, n, engine)
        flows[start - first:start - first + n] = f
        pflows[:, start - first:start - first + n] = pf
    reduced = None
    if per_paths is not None:
        reduced = per_paths(_assemble(prep, flows, pflows, None), first)
    if not keep_flows:
        return _TaskResult(first, n_b, None, None, reduced)
    return _TaskResult(first, n_b, flows, pflows, reduced)


def _identity(obj: Any) -> Any:
    return obj


def _held(client: Any, obj: Any, retries: int) -> Any:
    """A future of ``obj`` for the tasks that read it: the result of a task returning it,
    not scattered data. The scheduler's active memory manager keeps one copy of a key once
    no more than one task waits for it, and a scattered key whose last holder is lost cannot
    be recovered: the run would fail. A task's result is computed again instead (its argument
    is kept with the task), so a worker lost at any point leaves the run as it was. The
    object travels with the task once (the size warning for that is lifted here)."""
    import dask.config  # optional dependency: only where a cluster runs

    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1TiB"}):
        return client.submit(_identity, obj, retries=retries, pure=False)


def _default_blocks_per_task(n_blocks: int, n_threads: int) -> int:
    # about four tasks per worker thread: balance, while keeping per-task overhead small
    return max(1, math.ceil(n_blocks / max(1, 4 * n_threads)))


def run_distributed(
    client: Any,
    prep: Prepared,
    root: np.random.SeedSequence,
    n_paths: int,
    engine: str = "granular",
    per_paths: PathsReducer | None = None,
    blocks_per_task: int | None = None,
    retries: int = 3,
    on_task_start: Callable[[int], None] | None = None,
    progress: Callable[[float], None] | None = None,
    keep_flows: bool = True,
) -> DistributedRun:
    """Run a prepared pool's blocks on ``client``'s cluster and reduce once.

    ``prep``: ``simulation.prepare_pool`` (the hazard model) or
    ``delinquency.prepare_delinquency`` (the delinquency-state model: the same numbers as
    ``delinquency.run_dq_blocks``, its balances by state in ``.paths.delinquency``).
    ``per_paths``: work on each task's paths (see :class:`PathsReducer`).
    ``keep_flows=False``: the workers send back only ``per_paths``' parts (required then)
    and the client never holds the (paths × months) flow arrays; ``.paths`` is None.

    ``on_task_start(first_block)`` is called on the worker at the start of every task
    attempt (logging, fault injection in tests)."""
    distributed = require_dask()
    if engine not in sim.ENGINES:
        raise ValidationError(must_be("engine", "'granular' or 'loan'", engine))
    if engine == "loan" and _base(prep).sched is None:
        raise ValidationError(must_be("prep", "prepared for the loan engine (prepare_pool(..., "
                                      "loan_level=True) or prepare_delinquency(..., "
                                      "engine='loan'))", "a granular-only preparation"))
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValidationError(must_be("retries", "an integer >= 0", retries))
    if per_paths is not None:
        per_paths.check(n_paths)
    elif not keep_flows:
        raise ValidationError(must_be("per_paths", "a reducer when keep_flows is False "
                                      "(else nothing comes back)", None))
    timings: dict[str, float] = {}
    info = client.scheduler_info()
    workers = info.get("workers", {})
    n_workers = len(workers)
    if n_workers == 0:
        client.wait_for_workers(1, timeout=60)
        workers = client.scheduler_info().get("workers", {})
        n_workers = len(workers)
    n_threads = sum(int(w.get("nthreads", 1)) for w in workers.values()) or 1
    layout = sim.block_layout(n_paths)
    if blocks_per_task is None:
        blocks_per_task = _default_blocks_per_task(len(layout), n_threads)
    if isinstance(blocks_per_task, bool) or not isinstance(blocks_per_task, int) \
            or blocks_per_task < 1:
        raise ValidationError(must_be("blocks_per_task", "an integer >= 1", blocks_per_task))
    groups = task_groups(len(layout), blocks_per_task)

    t = time.perf_counter()
    prep_f = _held(client, prep, retries)
    root_f = _held(client, root, retries)
    per_f = _held(client, per_paths, retries) if per_paths is not None else None
    timings["scatter_s"] = time.perf_counter() - t

    t = time.perf_counter()
    futures = [client.submit(_run_task, prep_f, root_f, n_paths, g, engine, per_f,
                             on_task_start, keep_flows, retries=retries, pure=False)
               for g in groups]
    n_q, n_m, n_c = _block_shape(prep)
    acc = np.zeros((n_paths, n_m, n_c)) if keep_flows else None
    pacc = np.zeros((n_q, n_paths, n_m, n_c)) if keep_flows else None
    parts: dict[int, Any] = {}
    done = 0
    try:
        for fut in distributed.as_completed(futures):
            res: _TaskResult = fut.result()
            n_b = res.n_paths
            if acc is not None and pacc is not None:
                acc[res.first_path:res.first_path + n_b] = res.flows
                pacc[:, res.first_path:res.first_path + n_b] = res.party_flows
            if per_paths is not None:
                parts[res.first_path] = res.reduced
            done += n_b
            fut.release()
            if progress is not None:
                progress(done / n_paths)
    finally:
        for fut in futures:
            fut.release()
    timings["compute_s"] = time.perf_counter() - t

    t = time.perf_counter()
    entropy = int(root.entropy) if isinstance(root.entropy, int | np.integer) else None
    paths = _assemble(prep, acc, pacc, entropy) if acc is not None and pacc is not None \
        else None
    reduced = None if per_paths is None else per_paths.combine([parts[k] for k in sorted(parts)])
    timings["assemble_s"] = time.perf_counter() - t
    return DistributedRun(paths, reduced, n_workers, len(groups), timings)


def simulate_distributed(
    loans: LoanArrays,
    assumptions: Assumptions,
    n_paths: int,
    seed: int | np.random.SeedSequence,
    *,
    engine: str = "granular",
    shares: np.ndarray | None = None,
    party_ids: tuple[str, ...] = (),
    per_paths: PathsReducer | None = None,
    client: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
    blocks_per_task: int | None = None,
    retries: int = 3,
    on_task_start: Callable[[int], None] | None = None,
    progress: Callable[[float], None] | None = None,
    model: str = "hazard",
    charge_off_dpd: int | None = None,
) -> DistributedRun:
    """:func:`portfolio.montecarlo.simulation.simulate` on a Dask cluster, bit-identical to it;
    with ``model="delinquency"`` (``charge_off_dpd``: the charge-off point, default the
    assumptions') :func:`portfolio.montecarlo.delinquency.simulate_delinquency`, bit-identical
    to it.

    Use ``client`` (an open ``distributed.Client``), or ``workers`` (a new local cluster of
    that many processes) or ``scheduler`` (an existing cluster's address). ``per_paths``: work
    on each task's paths on the workers, joined in ``.reduced`` (for a deal's waterfall:
    ``tranching.distributed.WaterfallOnWorkers``). ``shares`` / ``party_ids``: the party split
    (per-party flows in ``.paths.party_flows``)."""
    if engine not in sim.ENGINES:
        raise ValidationError(must_be("engine", "'granular' or 'loan'", engine))
    sim.check_count("n_paths", n_paths)
    if model not in MODELS:
        raise ValidationError(must_be("model", "one of " + ", ".join(MODELS), model))
    if model == "hazard" and charge_off_dpd is not None:
        raise ValidationError(must_be("charge_off_dpd", "not given with the hazard model",
                                      charge_off_dpd))
    require_dask()
    root = sim.root_seed(seed)
    t = time.perf_counter()
    prep: Prepared
    if model == "delinquency":
        prep = prepare_delinquency(loans, assumptions, shares, party_ids, engine,  # type: ignore[arg-type]
                                   charge_off_dpd)
    else:
        prep = sim.prepare_pool(loans, assumptions, shares, party_ids,
                                loan_level=engine == "loan")
    prepare_s = time.perf_counter() - t
    if client is not None:
        run = run_distributed(client, prep, root, int(n_paths), engine, per_paths,
                              blocks_per_task, retries, on_task_start, progress)
    else:
        with open_client(workers=workers, scheduler=scheduler) as own:
            run = run_distributed(own, prep, root, int(n_paths), engine, per_paths,
                                  blocks_per_task, retries, on_task_start, progress)
    run.timings["prepare_s"] = prepare_s
    return run


# ------------------------------------------------------------------------------------------
# A book read by the workers, and runs that bring back summaries only


def _part_task(load: Callable[[], LoanArrays], assumptions: Assumptions) -> PartCells:
    """On a worker: read one partition and prepare its cells."""
    return part_cells(load(), assumptions)


def _part_and_new_task(load: Callable[[], LoanArrays], assumptions: Assumptions,
                       cutoff: dt.date) -> tuple[PartCells, PartCells]:
    """On a worker: read one partition; its cells and the cells of its loans as new loans
    bought at ``cutoff`` (``replenishment.replenishment_part_cells``)."""
    loans = load()
    return part_cells(loans, assumptions), replenishment_part_cells(loans, assumptions, cutoff)


def _on_partitions(client: Any, loaders: Sequence[Callable[[], LoanArrays]],
                   task: Callable[..., Any], args: tuple[Any, ...], retries: int,
                   progress: Callable[[float], None] | None) -> list[Any]:
    """``task(load, *args)`` for every partition on the workers, results in ``loaders``'
    order (``args`` sent once, each the result of a task: :func:`_held`)."""
    distributed = require_dask()
    if not loaders:
        raise ValidationError(must_be("book", "at least one partition", "none"))
    args_f = [_held(client, a, retries) for a in args]
    futures = [client.submit(task, load, *args_f, retries=retries, pure=False)
               for load in loaders]
    parts: list[Any] = [None] * len(futures)
    position = {f.key: i for i, f in enumerate(futures)}
    done = 0
    for fut in distributed.as_completed(futures):
        parts[position[fut.key]] = fut.result()
        fut.release()
        done += 1
        if progress is not None:
            progress(done / len(parts))
    return parts


def prepare_on_workers(client: Any, loaders: Sequence[Callable[[], LoanArrays]],
                       assumptions: Assumptions, retries: int = 3,
                       progress: Callable[[float], None] | None = None) -> sim.PreparedPool:
    """The pool made of the partitions ``loaders`` return (picklable callables, e.g.
    ``portfolio.store.parquet_book.LoanPart``), each read and prepared on a worker; only the
    partitions' cells (``portfolio.montecarlo.summaries.PartCells``: cells × months) come back,
    joined in the order of ``loaders``: the same bytes as
    ``portfolio.montecarlo.summaries.prepare_from_parts`` in one process. A partition whose
    worker is lost is read again elsewhere. ``progress(fraction)``: on the client as
    partitions complete."""
    parts = _on_partitions(client, loaders, _part_task, (assumptions,), retries, progress)
    return merge_cells(parts, assumptions)


def prepare_delinquency_on_workers(client: Any, loaders: Sequence[Callable[[], LoanArrays]],
                                   assumptions: Assumptions, charge_off_dpd: int | None = None,
                                   retries: int = 3,
                                   progress: Callable[[float], None] | None = None
                                   ) -> DqPrepared:
    """:func:`prepare_on_workers` for the delinquency-state model: the workers send back the
    partitions' cells and the client adds each cell's transition tables
    (``delinquency.prepare_delinquency_from_parts``: the same bytes as in one process;
    granular engine)."""
    parts = _on_partitions(client, loaders, _part_task, (assumptions,), retries, progress)
    return prepare_delinquency_from_parts(parts, assumptions, charge_off_dpd)


def prepare_with_new_loans_on_workers(
    client: Any, loaders: Sequence[Callable[[], LoanArrays]], assumptions: Assumptions,
    cutoff: dt.date, retries: int = 3, progress: Callable[[float], None] | None = None,
) -> tuple[sim.PreparedPool, list[PartCells]]:
    """:func:`prepare_on_workers` for a revolving deal: each worker reads its partition once
    and sends back its cells and the cells of the same loans as NEW loans bought at
    ``cutoff`` (``replenishment.replenishment_part_cells``: balance = original principal,
    months on book 0, remaining term = term). Returns the merged pool and the new-loan cells
    in partition order, for ``replenishment.replenishment_from_cells`` (the revolving deal's
    profile without the loans)."""
    got = _on_partitions(client, loaders, _part_and_new_task, (assumptions, cutoff), retries,
                         progress)
    return merge_cells([g[0] for g in got], assumptions), [g[1] for g in got]


@dataclass(frozen=True, slots=True)
class SummaryRun:
    """A run that brought back per-path summaries, not flows.

    ``summary``: :class:`~portfolio.montecarlo.summaries.PathSummary` of every path (loss per
    path, party losses, monthly moments); ``reduced``: the joined result of the inner reducer
    (e.g. the deal waterfall's per-path summary) or None; ``quantile_paths``: the full flows
    of the paths at the requested loss quantiles (``quantile_index`` their path numbers, in
    the order of the levels) or None; ``bytes_back``: bytes of the arrays the workers sent."""

    summary: PathSummary
    reduced: Any
    quantile_levels: tuple[float, ...]
    quantile_index: np.ndarray
    quantile_paths: PoolPaths | None
    n_workers: int
    n_tasks: int
    timings: dict[str, float]
    bytes_back: int


def _block_task(prep: sim.PreparedPool, root: np.random.SeedSequence, b: int, n_b: int,
                engine: str) -> sim.PathBatch:
    return sim.simulate_batch(prep, b, sim.block_seed(root, b), n_b, engine)  # type: ignore[arg-type]


def run_summary(
    client: Any,
    prep: Prepared,
    seed: int | np.random.SeedSequence,
    n_paths: int,
    *,
    engine: str = "granular",
    inner: PathsReducer | None = None,
    quantiles: Sequence[float] = (),
    blocks_per_task: int | None = None,
    retries: int = 3,
    on_task_start: Callable[[int], None] | None = None,
    progress: Callable[[float], None] | None = None,
) -> SummaryRun:
    """Run ``prep``'s paths on the cluster keeping only summaries on the client
    (:class:`SummaryRun`); ``inner``: another reducer on the same paths (e.g.
    ``tranching.distributed.WaterfallOnWorkers``); ``quantiles``: loss levels whose path is
    recomputed (only its block) and returned with every flow (and, for the delinquency
    model's ``prep``, its balances by state)."""
    sim.check_count("n_paths", n_paths)
    root = sim.root_seed(seed)
    levels = tuple(float(q) for q in quantiles)
    reducer = PathSummaryReducer(inner)
    run = run_distributed(client, prep, root, int(n_paths), engine, reducer, blocks_per_task,
                          retries, on_task_start, progress, keep_flows=False)
    summary, reduced = run.reduced
    bytes_back = summary.nbytes + _nbytes(reduced)
    index = np.zeros(0, dtype=np.int64)
    qpaths = None
    t = time.perf_counter()
    if levels:
        index = quantile_path_index(summary.loss, levels)
        layout = sim.block_layout(int(n_paths))
        prep_f = _held(client, prep, retries)
        root_f = _held(client, root, retries)

        # every block that holds a quantile path submitted at once (they run side by side)
        task = _block_arrays if isinstance(prep, DqPrepared) else _block_task
        pending = {b: client.submit(task, prep_f, root_f, b, layout[b][1], engine,
                                    retries=retries, pure=False)
                   for b in sorted({int(i) // sim.BLOCK_PATHS for i in index})}

        def on_cluster(b: int) -> Any:
            fut = pending.pop(b)
            try:
                return fut.result()
            finally:
                fut.release()

        try:
            if isinstance(prep, DqPrepared):
                qpaths = dq_paths_at(prep, root, int(n_paths), index, engine,  # type: ignore[arg-type]
                                     run_block=on_cluster)
                assert qpaths.delinquency is not None
                bytes_back += qpaths.delinquency.state_balance.nbytes \
                    + qpaths.delinquency.cures.nbytes
            else:
                qpaths = paths_at(prep, root, int(n_paths), index, engine,  # type: ignore[arg-type]
                                  run_block=on_cluster)
        finally:
            for fut in pending.values():
                fut.release()
        bytes_back += sum(np.asarray(getattr(qpaths, k)).nbytes for k in FLOW_NAMES)
    run.timings["quantile_paths_s"] = time.perf_counter() - t
    return SummaryRun(summary, reduced, levels, index, qpaths, run.n_workers, run.n_tasks,
                      run.timings, bytes_back)


def _nbytes(obj: Any) -> int:
    """Bytes of the numpy arrays held by a (dataclass) result, for reporting."""
    if obj is None:
        return 0
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_nbytes(v) for v in obj)
    names = getattr(obj, "__dataclass_fields__", None)
    if names:
        return sum(_nbytes(getattr(obj, n)) for n in names)
    return 0
