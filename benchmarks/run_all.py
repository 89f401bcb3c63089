"""Run every benchmark and print its figures (``make bench``).

Each ``benchmarks/bench_*.py`` exposes ``run(...) -> dict`` and can also run on its own.
Figures go to the README's benchmark table; they are measurements, never test asserts.
Set ``RISKPOOL_BENCH_QUICK=1`` for a smaller, faster pass (same code paths).
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from portfolio import settings

settings.before_numpy_import()  # numpy reads its huge-page switch once, at its import

BENCHES = (
    "bench_ingest",
    "bench_generate",
    "bench_strats",
    "bench_simulation",
    "bench_waterfall",
    "bench_allocation",
    "bench_b1",
    "bench_pages",
    "bench_scale",
)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores, {cpu}{mem}, Python {platform.python_version()}"


def main() -> int:
    only = set(sys.argv[1:])
    print(f"machine: {machine()}")
    results: dict[str, object] = {"machine": machine()}
    failed = []
    for name in BENCHES:
        if only and name not in only:
            continue
        if not (HERE / f"{name}.py").exists():
            print(f"\n== {name}: not present")
            continue
        print(f"\n== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(name)
            figures = module.run()
        except Exception as exc:  # a broken benchmark must not hide the others
            failed.append(name)
            print(f"   FAILED: {type(exc).__name__}: {exc}")
            continue
        results[name] = figures
        for key, value in figures.items():
            shown = f"{value:,.4g}" if isinstance(value, float) else value
            print(f"   {key:<44} {shown}")
        if hasattr(module, "print_report"):  # e.g. B1's stages next to their bounds
            module.print_report(figures)
        print(f"   (wall {time.perf_counter() - t0:.1f} s)", flush=True)
    out = HERE.parent / "bench_out"
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nfigures written to {out / 'results.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
