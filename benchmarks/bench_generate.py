"""Synthetic book generation speed: ``generate_book`` of N loans with M months of history.

Target: 1,000,000 loans with 24 months of history in at most 2 minutes and 8 GB
on a 2-core machine. The generation runs in a fresh child process (so the peak resident set
size is that of the generation alone, not of whatever ran before in ``make bench``) writing a
fresh database file in a temporary directory; figures are the child's own wall time of
``generate_book`` (originations, schedules, month-by-month performance and the DuckDB writes,
committed) and its peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``).

    python benchmarks/bench_generate.py [--loans N] [--months M]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from portfolio import settings

settings.before_numpy_import()  # numpy reads its huge-page switch once, at its import

from portfolio.store.core import open_store
from portfolio.synthetic.generate import generate_book

TARGET_SECONDS = 120.0
TARGET_RSS_MB = 8 * 1024.0
AS_OF = "2025-12-31"


def _child(loans: int, months: int, db: Path) -> dict[str, object]:
    """Runs inside the child process: one generation, its own figures."""
    started = time.perf_counter()
    with open_store(db) as store:
        summary = generate_book(store, loans, months, seed=7,
                                as_of=dt.date.fromisoformat(AS_OF))
    wall = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "loans": loans,
        "months": months,
        "performance_rows": summary.n_performance_rows,
        "seconds": round(wall, 2),
        "generate_seconds": round(summary.seconds, 2),
        "peak_rss_mb": round(peak_kb / 1024.0, 1),
        "db_size_mb": round(db.stat().st_size / 2**20, 1),
    }


def run(loans: int | None = None, months: int = 24) -> dict[str, object]:
    """Generate ``loans`` loans (default 1,000,000; 200,000 with RISKPOOL_BENCH_QUICK=1) with
    ``months`` months of history in a child process; returns seconds and peak RSS."""
    if loans is None:
        loans = 200_000 if settings.bench_quick() else 1_000_000
    with tempfile.TemporaryDirectory(prefix="riskpool-bench-gen-") as tmp:
        db = Path(tmp) / "book.duckdb"
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", "--loans", str(loans),
             "--months", str(months), "--db", str(db)],
            capture_output=True, text=True, check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"generation child failed (exit {proc.returncode}): {proc.stderr}")
    figures: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = int(figures["performance_rows"])  # type: ignore[call-overload]
    seconds = float(figures["seconds"])  # type: ignore[arg-type]
    figures["rows_per_second"] = round(rows / seconds) if seconds > 0 else None
    figures["target"] = f"1,000,000 loans x 24 months <= {TARGET_SECONDS:.0f} s and <= 8 GB"
    if loans >= 1_000_000 and months >= 24:
        figures["meets_target"] = (seconds <= TARGET_SECONDS
                                   and float(figures["peak_rss_mb"]) <= TARGET_RSS_MB)  # type: ignore[arg-type]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=None)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.loans, args.months, args.db)))
        return
    for key, value in run(args.loans, args.months).items():
        print(f"{key:<20} {value}")


if __name__ == "__main__":
    main()
