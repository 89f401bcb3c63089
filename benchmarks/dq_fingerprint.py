"""Fingerprint of the delinquency-state model's numbers on the B1 book: a sha256 per result
(every array of the paths, the party flows, the balances by state and the replenishment
profile), so that a speed-up of the delinquency kernels can be checked array for array.

The book, pool and assumptions are B1's (``bench_b1.setup``, cached in bench_out/; the
delinquency model's transitions from ``riskpool calibrate``). Cases:

* small (default): the pool's first 100,000 loans, 1,000 paths, a fixed four-party split,
  ``simulate_delinquency`` (granular engine) with the catch-up and the re-age cure rules and
  charge-off at 90 and 180 days past due, and the delinquency-model replenishment profile
  (12 purchase months);
* ``--full``: B1's delinquency pipeline (``bench_b1.pipeline_delinquency``): 1,000,000 loans,
  10,000 paths, the three-bank allocation's shares, the CN deal's replenishment profile.

    python benchmarks/dq_fingerprint.py --check benchmarks/fingerprints/dq_small.json
    python benchmarks/dq_fingerprint.py --full --check benchmarks/fingerprints/dq_full.json
    python benchmarks/dq_fingerprint.py [--full] --out FILE                  # record one
    python benchmarks/dq_fingerprint.py --arrays FILE.npz        # keep every array
    python benchmarks/dq_fingerprint.py --close-to FILE.npz      # largest relative difference

``--close-to`` is for a change that only reorders floating-point sums: it reports, per array,
the largest ``|new − old| / max(|old|, tiny)`` against arrays saved by ``--arrays``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from portfolio import settings

settings.before_numpy_import()  # numpy reads its huge-page switch once, at its import

import numpy as np
from b1_fingerprint import check, digest
from bench_b1 import OUT, _take, _three_partner_registry, dq_assumptions_path, setup, sizes

from partners.allocation import allocate, loan_risk_from_assumptions
from partners.records import pool_loans
from portfolio.book.pools import get_pool, list_pools
from portfolio.montecarlo.assumptions import load_assumptions
from portfolio.montecarlo.delinquency import project, simulate_delinquency
from portfolio.montecarlo.replenishment import simulate_replenishment
from portfolio.store.core import open_store
from tranching.deal import load_deal
from tranching.revolving import replenishment_for

SMALL = {"pool_loans": 100_000, "paths": 1_000, "purchase_months": 12}


def _arrays(prefix: str, obj: Any, out: dict[str, np.ndarray]) -> None:
    """Every array of a result (dataclasses walked, tuples numbered) under a dotted name."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fiub":
            out[prefix] = obj
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            _arrays(f"{prefix}.{f.name}", getattr(obj, f.name), out)
    elif isinstance(obj, (list, tuple)):
        for i, x in enumerate(obj):
            _arrays(f"{prefix}.{i}", x, out)


def _book() -> tuple[Path, int, Path]:
    """B1's book, pool and delinquency assumptions: read from bench_out/ when cached (read
    only, so that other runs may hold the database), else made by ``bench_b1.setup``."""
    sz = sizes(False)
    tag = f"{sz['book_loans'] // 1000}k_{sz['book_months']}m"
    db, a_path = OUT / f"b1_book_{tag}.duckdb", OUT / f"b1_assumptions_{tag}.toml"
    if db.exists() and dq_assumptions_path(a_path).exists():
        with open_store(db, read_only=True, wait=300.0) as store:
            pools = [p for p in list_pools(store) if p.name == "b1 all current"]
        if pools:
            return db, pools[0].pool_id, dq_assumptions_path(a_path)
    info = setup(sz, log=lambda *_: None)
    return Path(info["db"]), int(info["pool_id"]), dq_assumptions_path(info["assumptions"])


def small_results() -> dict[str, Any]:
    db, pool_id, a_path = _book()
    with open_store(db, read_only=True, wait=300.0) as store:
        pool = get_pool(store, pool_id)
        loans = _take(pool_loans(store, pool_id).loans, SMALL["pool_loans"])
    a = load_assumptions(a_path)
    shares = np.tile(np.array([0.4, 0.3, 0.2, 0.1]), (len(loans), 1))
    parties = ("platform", "p1", "p2", "p3")
    out: dict[str, Any] = {}
    for rule in ("catch_up", "re_age"):
        for co in (90, 180):
            out[f"paths {rule} {co}"] = simulate_delinquency(
                loans, a, SMALL["paths"], 2026, shares=shares, party_ids=parties,
                charge_off_dpd=co, cure_rule=rule)
    out["replenishment"] = simulate_replenishment(
        loans, a, SMALL["paths"], 2026, cutoff=pool.cutoff_date,
        purchase_months=SMALL["purchase_months"], model="delinquency")
    return out


def full_results() -> dict[str, Any]:
    db, pool_id, a_path = _book()
    sz = sizes(False)
    with open_store(db, read_only=True, wait=300.0) as store:
        pool = get_pool(store, pool_id)
        batch = pool_loans(store, pool_id)
    loans = _take(batch.loans, sz["pool_loans"])
    borrower = batch.borrowers[:len(loans)]
    a = load_assumptions(a_path)
    risk = loan_risk_from_assumptions(loans, a)
    alloc = allocate(loans, _three_partner_registry(), risk=risk, as_of=pool.cutoff_date,
                     borrower_id=borrower)
    paths = project(loans, a, sz["paths"], 2026, model="delinquency", shares=alloc.shares,
                    party_ids=alloc.party_ids)
    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")
    profile = replenishment_for(deal, loans, a, sz["paths"], 2026, cutoff=pool.cutoff_date,
                                model="delinquency")
    return {"paths": paths, "replenishment": profile}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="B1's delinquency pipeline sizes")
    ap.add_argument("--out", type=Path, help="write the fingerprint (JSON) here")
    ap.add_argument("--check", type=Path, help="compare with a stored fingerprint (JSON)")
    ap.add_argument("--arrays", type=Path, help="save every array here (.npz)")
    ap.add_argument("--close-to", type=Path, help="largest relative difference to saved arrays")
    args = ap.parse_args()
    results = full_results() if args.full else small_results()
    fp = {name: digest(obj) for name, obj in results.items()}
    text = json.dumps(fp, indent=2, sort_keys=True) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text, end="")
    arrays: dict[str, np.ndarray] = {}
    for name, obj in results.items():
        _arrays(name, obj, arrays)
    if args.arrays:
        np.savez(args.arrays, **cast(dict[str, Any], arrays))
    status = 0
    if args.close_to:
        old = np.load(args.close_to)
        worst = 0.0
        for key in sorted(set(old.files) | set(arrays)):
            if key not in old.files or key not in arrays or old[key].shape != arrays[key].shape:
                print(f"{key}: missing or reshaped")
                status = 1
                continue
            a, b = old[key].astype(np.float64), arrays[key].astype(np.float64)
            rel = float(np.max(np.abs(b - a) / np.maximum(np.abs(a), 1e-300), initial=0.0))
            worst = max(worst, rel)
            if rel > 0.0:
                print(f"{key}: largest relative difference {rel:.3g}")
        print(f"largest relative difference over {len(arrays)} arrays: {worst:.3g}")
    if args.check and check(fp, args.check):
        return 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
