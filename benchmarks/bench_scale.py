"""Scale-out by simulation: a loan tape of up to 10,000,000 loans in Parquet partitions, read
and prepared by the workers of a 2-worker LocalCluster (one thread and a memory limit each),
10,000 paths whose per-path summaries only come back (``portfolio.montecarlo.distributed``:
``prepare_on_workers`` + ``run_summary``).

For each size: wall time, the client's peak RSS, the workers' peak RSS and loan-paths per
second per worker. Each size runs in a fresh child process (its peak RSS is its own; the
workers are its cluster's). At the smallest size the same run is also done in one process
(``prepare_from_parts`` + ``run_blocks`` + ``summarise``) and on the cluster with a worker
killed (SIGKILL, by its pid) after the first partition is read: the three digests of the
summaries (per-path losses and monthly moments) must be equal; at the largest size the run is
repeated with a worker killed the same way, and its digest must equal the first run's.

The tapes are generated once (numpy, ``bench_simulation.build_pool``'s mix, 250,000 loans per
partition, the columns the engine reads) and cached in ``bench_out/scale/`` (git-ignored).
``RISKPOOL_BENCH_QUICK=1``: 200,000 and 400,000 loans, 1,000 paths. Standalone:
``python benchmarks/bench_scale.py [N_LOANS ...] [--paths P]``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from portfolio import settings

settings.before_numpy_import()  # numpy reads its huge-page switch once, at its import

import numpy as np
from bench_simulation import bench_assumptions, build_pool

from portfolio.montecarlo import simulation as sim
from portfolio.montecarlo.distributed import open_client, prepare_on_workers, run_summary
from portfolio.montecarlo.summaries import PathSummary, prepare_from_parts, summarise
from portfolio.store.parquet_book import loan_parts, write_loan_parts

OUT = HERE.parent / "bench_out" / "scale"
SIZES = (1_000_000, 2_000_000, 5_000_000, 10_000_000)
QUICK_SIZES = (200_000, 400_000)
PATHS, QUICK_PATHS = 10_000, 1_000
PART = 250_000  # loans per partition
WORKERS = 2
MEMORY_LIMIT = "2GiB"  # per worker
SEED = 2027
QUANTILES = (0.5, 0.99, 0.999)


def tape(n: int) -> Path:
    """The cached loan tape of ``n`` loans (generated once; ``complete`` marks a whole one)."""
    path = OUT / f"tape_{n}"
    if (path / "complete").exists():
        return path
    if path.exists():
        for f in path.glob("part-*.parquet"):
            f.unlink()
    for i, lo in enumerate(range(0, n, PART)):
        k = min(PART, n - lo)
        loans = build_pool(k, seed=10_000 + i)
        ids = np.char.add(f"S{i:04d}-", np.arange(k).astype(str)).astype(object)
        write_loan_parts(dataclasses.replace(loans, loan_id=ids), path, i)
    (path / "complete").write_text(f"{n} loans\n")
    return path


def _reset_peak() -> bool:
    """Start this process's peak RSS (VmHWM) afresh from its current RSS (Linux: writing 5
    to /proc/self/clear_refs), so that the peak is the run's, not the imports'."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_mib(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _rss_mib() -> float:
    """Peak RSS (MiB) since the last :func:`_reset_peak` (else since the start)."""
    return _status_mib("VmHWM")


def _now_mib() -> float:
    return _status_mib("VmRSS")


def _digest(s: PathSummary) -> str:
    h = hashlib.sha256()
    for a in (s.loss, s.block_sum, s.block_m2):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def child_cluster(n: int, n_paths: int, kill: bool) -> dict:
    """One size on a fresh 2-worker cluster, in this (fresh) process."""
    parts = loan_parts(tape(n))
    a = bench_assumptions()
    killed: list[int] = []
    with open_client(workers=WORKERS, memory_limit=MEMORY_LIMIT) as client:
        client.wait_for_workers(WORKERS, timeout=120)
        worker_start = client.run(_now_mib)
        client.run(_reset_peak)
        _reset_peak()
        rss_start = _now_mib()

        def kill_one(_fraction: float) -> None:  # after the first partition is read
            if kill and not killed:
                pid = sorted(client.run(os.getpid).values())[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        cpu0 = client.run(time.process_time)
        w0, c0 = time.perf_counter(), time.process_time()
        prep = prepare_on_workers(client, parts, a, progress=kill_one)
        prep_s = time.perf_counter() - w0
        cpu1 = client.run(time.process_time)
        run = run_summary(client, prep, SEED, n_paths, quantiles=QUANTILES)
        wall = time.perf_counter() - w0
        client_cpu = time.process_time() - c0
        cpu2 = client.run(time.process_time)
        if killed:  # the nanny restarts the killed worker; its peak is measured if it is back
            with contextlib.suppress(Exception):
                client.wait_for_workers(WORKERS, timeout=60)
        worker_peak = client.run(_rss_mib)
    return {"n_loans": n, "n_paths": n_paths, "n_partitions": len(parts),
            "n_cells": prep.n_cells, "n_months": prep.n_months, "workers": run.n_workers,
            "wall_s": wall, "prepare_s": prep_s, "simulate_s": wall - prep_s,
            "client_cpu_s": client_cpu, "client_peak_mib": _rss_mib(),
            # CPU seconds of the workers (summed), reading + preparing / simulating: the
            # shared machine's load stretches wall time, not these
            "worker_cpu_prepare_s": sum(cpu1[w] - cpu0[w] for w in cpu1 if w in cpu0),
            "worker_cpu_simulate_s": sum(cpu2[w] - cpu1[w] for w in cpu2 if w in cpu1),
            "client_start_mib": rss_start, "worker_peak_mib": max(worker_peak.values()),
            "worker_start_mib": max(worker_start.values()),
            "loan_paths_per_s_per_worker": n * n_paths / wall / run.n_workers,
            "bytes_back": run.bytes_back, "killed_worker": bool(killed),
            "el": float(run.summary.loss.mean()), "digest": _digest(run.summary),
            "quantile_losses": [float(run.summary.loss[i]) for i in run.quantile_index]}


def child_local(n: int, n_paths: int) -> dict:
    """The same size in one process: partitions one at a time, every path locally."""
    parts = loan_parts(tape(n))
    a = bench_assumptions()
    _reset_peak()
    w0 = time.perf_counter()
    prep = prepare_from_parts(parts, a)
    paths = sim.run_blocks(prep, sim.root_seed(SEED), n_paths, "granular")
    s = summarise(paths)
    return {"n_loans": n, "n_paths": n_paths, "wall_s": time.perf_counter() - w0,
            "client_peak_mib": _rss_mib(), "digest": _digest(s), "el": float(s.loss.mean())}


def _in_child(kind: str, n: int, n_paths: int, kill: bool = False) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(n), str(n_paths),
                          "1" if kill else "0"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} {n}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(sizes: tuple[int, ...] | None = None, n_paths: int | None = None) -> dict:
    quick = settings.bench_quick()
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    n_paths = n_paths or (QUICK_PATHS if quick else PATHS)
    for n in sizes:
        tape(n)  # generated outside the timed children
    rows = []
    for n in sizes:
        rows.append(_in_child("cluster", n, n_paths))
        (OUT / "last_rows.json").write_text(json.dumps(rows, indent=2))
    small = sizes[0]
    local = _in_child("local", small, n_paths)
    killed = _in_child("cluster", small, n_paths, kill=True)
    killed_big = _in_child("cluster", sizes[-1], n_paths, kill=True) if len(sizes) > 1 \
        else killed
    out: dict = {"rows": rows, "one_process": local, "killed_run": killed,
                 "killed_run_largest": killed_big,
                 "same_bytes_1_process_2_workers_killed": local["digest"] == rows[0]["digest"]
                 == killed["digest"] and killed["killed_worker"],
                 "same_bytes_largest_killed": killed_big["digest"] == rows[-1]["digest"]
                 and killed_big["killed_worker"],
                 "load_average": os.getloadavg()}
    return out


def print_report(figures: dict) -> None:
    print(f"   {'loans':>12} {'paths':>7} {'workers':>7} {'wall s':>8} {'prepare s':>9} "
          f"{'CPU prep/sim':>13} {'client MiB':>10} {'worker MiB':>10} {'loan-paths/s/worker':>20}")
    for r in figures["rows"]:
        print(f"   {r['n_loans']:>12,} {r['n_paths']:>7,} {r['workers']:>7} {r['wall_s']:>8.1f} "
              f"{r['prepare_s']:>9.1f} {r['worker_cpu_prepare_s']:>6.1f}/"
              f"{r['worker_cpu_simulate_s']:<6.1f} "
              f"{r['client_start_mib']:>4.0f}→{r['client_peak_mib']:<5.0f} "
              f"{r['worker_start_mib']:>4.0f}→{r['worker_peak_mib']:<5.0f} "
              f"{r['loan_paths_per_s_per_worker']:>20.3g}")
    big = figures["killed_run_largest"]
    print(f"   same bytes (1 process, 2 workers, a worker killed): "
          f"{figures['same_bytes_1_process_2_workers_killed']}; at {big['n_loans']:,} loans "
          f"with a worker killed: {figures['same_bytes_largest_killed']} "
          f"(wall {big['wall_s']:.1f} s); load average "
          f"{', '.join(f'{x:.1f}' for x in figures['load_average'])}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        kind, n, n_paths, kill = argv[1], int(argv[2]), int(argv[3]), argv[4] == "1"
        res = child_local(n, n_paths) if kind == "local" else child_cluster(n, n_paths, kill)
        print(json.dumps(res))
        return 0
    n_paths = None
    if "--paths" in argv:
        i = argv.index("--paths")
        n_paths = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    sizes = tuple(int(x) for x in argv) or None
    figures = run(sizes, n_paths)
    print(json.dumps(figures, indent=2))
    print_report(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
