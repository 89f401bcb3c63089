"""Fingerprint of the B1 pipeline's numbers: a sha256 per result, so that a change meant to
leave every number alone (a refactor, a speed-up) can be checked array for array.

The pipeline is B1's (``bench_b1.pipeline``): pool load → allocation over three banks →
granular simulation with the party split → replenishment profile → the Chinese example
deal's waterfall → tranche table → dispersion. Each result is hashed field by field (dtype,
shape and bytes of every array; the repr of every scalar), so two fingerprints are equal only
if every array is bit-identical.

    python benchmarks/b1_fingerprint.py                  # small book (60k loans), 2,000 paths
    python benchmarks/b1_fingerprint.py --full           # the B1 book and sizes (bench_out/)
    python benchmarks/b1_fingerprint.py --demo           # the demo's report tables
    python benchmarks/b1_fingerprint.py --check FILE     # compare with a stored fingerprint

``tests/test_fingerprint.py`` runs the small case against ``tests/golden/b1_fingerprint_small.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import sys
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

SMALL = {"book_loans": 60_000, "book_months": 12, "pool_loans": 40_000, "paths": 2_000}


def _feed(h: Any, obj: Any) -> None:
    """Feed ``obj`` into the hash in a canonical order (field names included)."""
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        h.update(f"nd:{arr.dtype.str}:{arr.shape}:".encode())
        if arr.dtype == object:
            for x in arr.ravel():
                _feed(h, x)
        else:
            h.update(arr.tobytes())
    elif isinstance(obj, pd.DataFrame):
        h.update(b"df:")
        _feed(h, list(map(str, obj.columns)))
        for col in obj.columns:
            _feed(h, obj[col].to_numpy())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(f"dc:{type(obj).__name__}:".encode())
        for f in dataclasses.fields(obj):
            h.update(f.name.encode())
            _feed(h, getattr(obj, f.name))
    elif isinstance(obj, Mapping):
        h.update(b"map:")
        for k in sorted(obj, key=str):
            _feed(h, str(k))
            _feed(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(f"seq:{len(obj)}:".encode())
        for x in obj:
            _feed(h, x)
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


def digest(obj: Any) -> str:
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _registry() -> Any:
    from bench_b1 import _three_partner_registry

    return _three_partner_registry()


def fingerprint(db: Path, pool_id: int, a_path: Path, pool_loans_n: int, n_paths: int) -> dict[str, str]:
    from partners.allocation import allocate, loan_risk_from_assumptions
    from partners.dispersion import disperse_paths
    from partners.records import pool_loans
    from portfolio.montecarlo.assumptions import load_assumptions
    from portfolio.book.pools import get_pool
    from portfolio.store.core import open_store
    from portfolio.montecarlo.simulation import simulate
    from tranching.analytics import tranche_table, trigger_table
    from tranching.deal import load_deal
    from tranching.revolving import replenishment_for
    from tranching.waterfall import run_waterfall

    with open_store(db, read_only=True) as store:
        pool = get_pool(store, pool_id)
        batch = pool_loans(store, pool_id)
    loans = batch.loans.take(np.arange(min(pool_loans_n, len(batch.loans))))
    borrower = batch.borrower_id[:len(loans)]
    a = load_assumptions(a_path)
    risk = loan_risk_from_assumptions(loans, a)
    alloc = allocate(loans, _registry(), risk=risk, as_of=pool.cutoff_date, borrower_id=borrower)
    paths = simulate(loans, a, n_paths, 2026, shares=alloc.shares, party_ids=alloc.party_ids)
    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")
    profile = replenishment_for(deal, loans, a, n_paths, 2026, cutoff=pool.cutoff_date)
    wf = run_waterfall(deal, paths, replenishment=profile)
    table = tranche_table(deal, wf, paths)
    disp = disperse_paths(paths, alloc.balance, alloc.shares, risk.annual_pd, risk.lgd, deal,
                          replenishment=profile, waterfall=wf)
    pool_arrays = {f.name: getattr(paths, f.name) for f in dataclasses.fields(paths)
                   if f.name != "party_flows"}
    return {
        "loans": digest(loans),
        "allocation": digest({"loan_id": alloc.loan_id, "party_ids": alloc.party_ids,
                              "shares": alloc.shares, "balance": alloc.balance}),
        "risk": digest(risk),
        "paths": digest(pool_arrays),
        "party_flows": digest(paths.party_flows),
        "replenishment": digest(profile),
        "waterfall": digest(wf),
        "tranche_table": digest(table),
        "trigger_table": digest(trigger_table(deal, wf)),
        "dispersion": digest(disp),
    }


def build_small(workdir: Path) -> tuple[Path, int, Path]:
    """A 60k-loan book (seed 13), a pool of every current loan, calibrated assumptions."""
    from portfolio.montecarlo.assumptions import save_assumptions
    from portfolio.book.calibration import calibrate_from_store
    from portfolio.synthetic.generate import generate_book
    from portfolio.book.pools import create_pool, parse_criteria
    from portfolio.store.core import open_store

    db = workdir / "fp.duckdb"
    a_path = workdir / "fp_assumptions.toml"
    as_of = dt.date(2025, 12, 31)
    with open_store(db) as store:
        generate_book(store, SMALL["book_loans"], SMALL["book_months"], 13, as_of=as_of)
        pool = create_pool(store, "fp all current",
                           parse_criteria({"eligibility": {"dpd_max": 0}}, "fp"), as_of)
        calib = calibrate_from_store(store, pool_id=pool.pool_id)
        save_assumptions(calib.assumptions, a_path, calib.exposure_tables())
    return db, pool.pool_id, a_path


def small_fingerprint() -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        db, pool_id, a_path = build_small(Path(tmp))
        from portfolio.montecarlo.assumptions import load_assumptions

        a = load_assumptions(a_path)  # its provenance (timestamps) left out
        out = {"assumptions": digest({f.name: getattr(a, f.name) for f in dataclasses.fields(a)
                                      if f.name != "provenance"})}
        out.update(fingerprint(db, pool_id, a_path, SMALL["pool_loans"], SMALL["paths"]))
        return out


def full_fingerprint() -> dict[str, str]:
    from bench_b1 import setup, sizes

    sz = sizes(False)
    info = setup(sz)
    return fingerprint(Path(info["db"]), info["pool_id"], Path(info["assumptions"]),
                       sz["pool_loans"], sz["paths"])


def demo_fingerprint() -> dict[str, str]:
    """The demo (``riskpool demo``'s pipeline at its default sizes, no dashboard): a sha256 of
    every report table, for the treasury and the demo partner."""
    from dashboards.access import Viewer
    from dashboards.reports import collect_sections, report_viewer
    from riskpool.commands.demo import DemoParams, build_demo

    params = DemoParams()
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "demo.duckdb"
        build_demo(db, params, users_file=Path(tmp) / "users.toml", report_dir=Path(tmp) / "r")
        as_of = dt.date.fromisoformat(params.as_of)
        viewers: dict[str, Viewer] = {"treasury": report_viewer(None),
                                      params.demo_partner: report_viewer(params.demo_partner)}
        for who, viewer in viewers.items():
            for section in collect_sections(db, viewer, as_of):
                for name, table in section.tables.items():
                    out[f"demo {who} {section.key} {name}"] = digest(table)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="the B1 book and sizes")
    ap.add_argument("--demo", action="store_true", help="the demo's report tables")
    ap.add_argument("--check", type=Path, help="a stored fingerprint (JSON) to compare with")
    ap.add_argument("--out", type=Path, help="write the fingerprint (JSON) here")
    args = ap.parse_args()
    fp = (demo_fingerprint() if args.demo else full_fingerprint() if args.full
          else small_fingerprint())
    text = json.dumps(fp, indent=2, sort_keys=True) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text, end="")
    if args.check:
        want = json.loads(args.check.read_text())
        diff = sorted(k for k in set(want) | set(fp) if want.get(k) != fp.get(k))
        if diff:
            print(f"DIFFERENT from {args.check}: {', '.join(diff)}")
            return 1
        print(f"identical to {args.check}: {len(fp)} results")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
