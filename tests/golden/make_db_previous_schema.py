"""How tests/golden/db_previous_schema.tar.gz was built: a small database written by riskpool
at commit fa342f8 (schema version 1: untyped run inputs, absolute file paths), for the
migration test (tests/riskpool/test_migration.py).

Run it with the OLD code on the path, from the old checkout (it reads its examples/), never
with the current tree:

    mkdir /tmp/oldcode && git archive fa342f8 | tar -x -C /tmp/oldcode
    cd /tmp/oldcode && PYTHONPATH=/tmp/oldcode python \
        <this repo>/tests/golden/make_db_previous_schema.py /tmp/riskpool_v1
    cd /tmp/riskpool_v1 && tar -czf <this repo>/tests/golden/db_previous_schema.tar.gz \
        riskpool.duckdb runs assumptions_pool1.toml

It runs the demo pipeline on 2,000 loans and 150 paths (book, pool, calibration, allocation,
a simulation carrying the partners' shares, the revolving example deal, two reports), then
three `riskpool simulate` runs through the CLI — a stressed run on the loan engine with the
revolving deal structure, a deterministic severe projection, a plain granular run with a PD
multiplier — and one `riskpool allocate`. Runs 1 and 4-6 are simulations, 2 and 3 reports;
allocations 1 (demo) and 2 (CLI).
"""

from __future__ import annotations

import sys
from pathlib import Path

from riskpool.cli import main
from riskpool.commands.demo import DemoParams, build_demo


def run(*args: str) -> None:
    try:
        main(list(args))
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise


def build(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=False)
    db = out / "riskpool.duckdb"
    root = Path.cwd()  # the old checkout (examples/)
    params = DemoParams(n_loans=2000, n_paths=150, max_obligor_share=0.05)
    res = build_demo(db, params, users_file=out / "users.toml", report_dir=out / "reports")
    a = str(db.with_name(f"assumptions_pool{res.pool_id}.toml"))
    deal = str(root / "examples" / "deal_cn_consumer.toml")
    pool = str(res.pool_id)
    run("simulate", "--db", str(db), "--pool", pool, "--assumptions", a, "--seed", "7",
        "--paths", "260", "--engine", "loan", "--scenario", "adverse", "--rho", "0.2",
        "--batch-size", "256", "--structure", deal)
    run("simulate", "--db", str(db), "--pool", pool, "--assumptions", a, "--seed", "8",
        "--deterministic", "severe")
    run("simulate", "--db", str(db), "--pool", pool, "--assumptions", a, "--seed", "9",
        "--paths", "200", "--pd-mult", "1.5")
    run("allocate", "--db", str(db), "--pool", pool, "--partners",
        str(root / "examples" / "partners.toml"), "--assumptions", a)


if __name__ == "__main__":
    build(Path(sys.argv[1]))
