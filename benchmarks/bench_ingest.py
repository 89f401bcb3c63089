"""Tape ingestion speed: strict ``riskpool ingest`` vs a plain DuckDB ``read_csv``.

Target: a 1,000,000-row loan CSV with all rules takes at most 2× the time of a
plain DuckDB ``read_csv`` of the same file into a table. Both write into a fresh database
file; each is timed ``repeats`` times alternately and the best time is kept (the machine is
shared); CPU seconds of the process are reported too (steadier when other jobs compete
for the cores). Also timed on their own: reading + hashing (``read_tape``) and the rule checks
(``check_loans``).

    python benchmarks/bench_ingest.py [--rows N] [--repeats R]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from portfolio import settings

settings.before_numpy_import()  # numpy reads its huge-page switch once, at its import

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from portfolio.book.ingest import check_loans, ingest, read_tape
from portfolio.store import open_store
from portfolio.store.ingest import read_csv_plain

REGIONS = np.array(["浙江", "广东", "江苏", "北京", "上海", "四川", "山东", "河南"])
TYPES = np.array(["level_annuity", "equal_principal", "daily_interest", "等额本息", "先息后本"])


def write_tape(path: Path, rows: int, seed: int = 20261126) -> None:
    """A clean loan tape of ``rows`` rows (every rule passes), written through Arrow."""
    rng = np.random.default_rng(seed)
    rtype = TYPES[rng.integers(0, TYPES.size, rows)]
    bullet = rtype == "先息后本"
    terms = np.array([3, 6, 9, 12, 18, 24])[rng.integers(0, 6, rows)]
    terms = np.where(bullet, np.minimum(terms, 12), terms)
    principal = np.round(np.clip(rng.lognormal(8.7, 0.7, rows), 100.0, 200_000.0), 2)
    table = pa.table(
        {
            "loan_id": pa.array(np.char.add("L", np.arange(rows).astype(str))),
            "borrower_id": pa.array(np.char.add("B", rng.integers(0, rows, rows).astype(str))),
            "origination_date": pa.array(
                np.datetime64("2023-01-01") + rng.integers(0, 700, rows), type=pa.date32()
            ),
            "principal": pa.array(principal),
            "apr": pa.array(np.round(rng.uniform(0.073, 0.24, rows), 4)),
            "term_months": pa.array(terms),
            "repayment_type": pa.array(rtype),
            "credit_score": pa.array(rng.integers(450, 900, rows)),
            "region": pa.array(REGIONS[rng.integers(0, REGIONS.size, rows)]),
            "channel": pa.array(np.array(["app", "mini_program", "partner"])[rng.integers(0, 3, rows)]),
            "product": pa.array(np.full(rows, "jiebei")),
        }
    )
    pcsv.write_csv(table, path, pcsv.WriteOptions(quoting_style="none"))


def _fresh(path: Path) -> Path:
    for suffix in ("", ".wal"):
        p = Path(str(path) + suffix)
        if p.exists():
            p.unlink()
    return path


def run(rows: int | None = None, repeats: int = 2) -> dict[str, object]:
    if rows is None:
        rows = 200_000 if settings.bench_quick() else 1_000_000
    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        tape = Path(tmp) / "loans.csv"
        t0 = time.perf_counter()
        write_tape(tape, rows)
        t_write = time.perf_counter() - t0

        plain, strict, plain_cpu, strict_cpu = [], [], [], []
        for r in range(repeats):
            db = _fresh(Path(tmp) / f"plain{r}.duckdb")
            with open_store(db) as store:
                t0, c0 = time.perf_counter(), time.process_time()
                n_plain = read_csv_plain(store.con, tape)
                plain.append(time.perf_counter() - t0)
                plain_cpu.append(time.process_time() - c0)
            db = _fresh(Path(tmp) / f"strict{r}.duckdb")
            with open_store(db) as store:
                t0, c0 = time.perf_counter(), time.process_time()
                result = ingest(store, tape, today=date(2026, 1, 1))
                strict.append(time.perf_counter() - t0)
                strict_cpu.append(time.process_time() - c0)
            assert result.n_loaded == rows == n_plain, (result, n_plain)

        t0 = time.perf_counter()
        raw = read_tape(tape)
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        checked = check_loans(raw, today=date(2026, 1, 1))
        t_check = time.perf_counter() - t0
        assert not checked.problems

        best_plain, best_strict = min(plain), min(strict)
        return {
            "rows": rows,
            "file_mb": round(tape.stat().st_size / 2**20, 1),
            "write_tape_s": round(t_write, 3),
            "duckdb_read_csv_s": round(best_plain, 3),
            "strict_ingest_s": round(best_strict, 3),
            "ratio_strict_over_plain": round(best_strict / best_plain, 2),
            "target_ratio": 2.0,
            # CPU seconds of the process (all threads): steadier than wall time on a shared box.
            "duckdb_read_csv_cpu_s": round(min(plain_cpu), 3),
            "strict_ingest_cpu_s": round(min(strict_cpu), 3),
            "cpu_ratio_strict_over_plain": round(min(strict_cpu) / min(plain_cpu), 2),
            "read_and_hash_s": round(t_read, 3),
            "check_rules_s": round(t_check, 3),
            "insert_and_book_checks_s": round(max(best_strict - t_read - t_check, 0.0), 3),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="rows in the tape (1,000,000)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each (best kept)")
    args = parser.parse_args()
    figures = run(args.rows, args.repeats)
    for key, value in figures.items():
        print(f"{key:<28} {value}")


if __name__ == "__main__":
    main()
