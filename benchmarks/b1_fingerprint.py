"""Fingerprint of the B1 pipeline's numbers: a sha256 per result, so that a change meant to
leave every number alone (a refactor, a speed-up) can be checked array for array.

The pipeline is B1's (``bench_b1.pipeline``): pool load → allocation over three banks →
granular simulation with the party split → replenishment profile → the Chinese example
deal's waterfall → tranche table → dispersion; and the hazard loan engine (its current
sampler) on the same pool and party split, ``LOAN_ENGINE_PATHS`` paths. Each result is hashed
field by field (dtype, shape and bytes of every array; the repr of every scalar), so two
fingerprints are equal only if every array is bit-identical.

    python benchmarks/b1_fingerprint.py                  # small book (60k loans), 2,000 paths
    python benchmarks/b1_fingerprint.py --full           # the B1 book and sizes (bench_out/)
    python benchmarks/b1_fingerprint.py --demo --out DIR # the demo's report tables as CSVs
    python benchmarks/b1_fingerprint.py --demo --check benchmarks/fingerprints/demo_tables
    python benchmarks/b1_fingerprint.py --check FILE     # compare with a stored fingerprint

``tests/test_fingerprint.py`` runs the small case against ``tests/golden/b1_fingerprint_small.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import io
import json
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from portfolio import settings

settings.before_numpy_import()  # numpy reads its huge-page switch once, at its import

import numpy as np
import pandas as pd
from bench_b1 import _three_partner_registry, setup, sizes

from dashboards.access import Viewer
from dashboards.reports import collect_sections, report_viewer
from partners.allocation import allocate, loan_risk_from_assumptions
from partners.dispersion import Dispersion, disperse_paths, party_paths, waterfall_totals
from partners.records import pool_loans
from partners.registry import PLATFORM_ID
from portfolio.book.calibration import calibrate_from_store
from portfolio.book.pools import create_pool, get_pool, parse_criteria
from portfolio.montecarlo.assumptions import load_assumptions, save_assumptions
from portfolio.montecarlo.simulation import simulate
from portfolio.store.core import open_store
from portfolio.synthetic.generate import generate_book
from riskpool.commands.demo import DemoParams, build_demo
from tranching.analytics import tranche_table, trigger_table
from tranching.deal import load_deal
from tranching.revolving import replenishment_for
from tranching.waterfall import run_waterfall

SMALL = {"book_loans": 60_000, "book_months": 12, "pool_loans": 40_000, "paths": 2_000}
LOAN_ENGINE_PATHS = 512
"""Paths of the hazard loan engine's run (entry ``loan_engine``; small and full size)."""


ADDED_OPTIONAL = {("PoolPaths", "delinquency"), ("Assumptions", "delinquency"),
                  ("WaterfallResult", "accounts"), ("Deal", "accounts"),
                  ("Securitisation", "totals")}
"""Optional fields added to hashed records after the fingerprints were recorded: left out of
the digest when they are None (the hazard model's records), so the numbers' digests stay."""


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
            if (type(obj).__name__, f.name) in ADDED_OPTIONAL and getattr(obj, f.name) is None:
                continue  # a field added after the fingerprints were recorded, not set
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


def differing(fp: Mapping[str, str], stored: Path) -> list[str]:
    """The names whose digest in ``fp`` is not the one in the fingerprint stored at ``stored``
    (JSON), or that only one of them has."""
    want = json.loads(stored.read_text())
    return sorted(k for k in set(want) | set(fp) if want.get(k) != fp.get(k))


def check(fp: Mapping[str, str], stored: Path) -> int:
    """Print whether ``fp`` is the fingerprint stored at ``stored``; 0 if so, else 1."""
    diff = differing(fp, stored)
    if diff:
        print(f"DIFFERENT from {stored}: {', '.join(diff)}")
        return 1
    print(f"identical to {stored}: {len(fp)} results")
    return 0


def _registry() -> Any:
    return _three_partner_registry()


def with_retained_waterfall(disp: Dispersion, deal: Any, paths: Any, profile: Any) -> Dispersion:
    """The dispersion as the fingerprints were recorded: the platform's retained
    securitisation ("both") with its whole waterfall. ``disperse_paths`` keeps that
    waterfall's per-path totals only (``securitise_totals``); it is run again here in full
    and must give exactly those totals (else ``RuntimeError``), then stands in for them."""
    s = disp.securitisations.get("both")
    if s is None:
        return disp
    full = run_waterfall(deal, party_paths(paths, PLATFORM_ID), replenishment=profile)
    if s.totals is None or digest(waterfall_totals(full)) != digest(s.totals):
        raise RuntimeError("the retained securitisation's totals are not its waterfall's")
    both = dataclasses.replace(s, waterfall=full, totals=None)
    return dataclasses.replace(disp, securitisations={**disp.securitisations, "both": both})


def fingerprint(db: Path, pool_id: int, a_path: Path, pool_loans_n: int, n_paths: int) -> dict[str, str]:
    with open_store(db, read_only=True) as store:
        pool = get_pool(store, pool_id)
        batch = pool_loans(store, pool_id)
    loans = batch.loans.take(np.arange(min(pool_loans_n, len(batch.loans))))
    borrower = batch.borrowers[:len(loans)]  # codes when stored with the pool
    a = load_assumptions(a_path)
    risk = loan_risk_from_assumptions(loans, a)
    alloc = allocate(loans, _registry(), risk=risk, as_of=pool.cutoff_date, borrower_id=borrower)
    paths = simulate(loans, a, n_paths, 2026, shares=alloc.shares, party_ids=alloc.party_ids)
    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")
    profile = replenishment_for(deal, loans, a, n_paths, 2026, cutoff=pool.cutoff_date)
    wf = run_waterfall(deal, paths, replenishment=profile)
    table = tranche_table(deal, wf, paths)
    disp = with_retained_waterfall(
        disperse_paths(paths, alloc.balance, alloc.shares, risk.annual_pd, risk.lgd, deal,
                       replenishment=profile, waterfall=wf), deal, paths, profile)
    pool_arrays = {f.name: getattr(paths, f.name) for f in dataclasses.fields(paths)
                   if f.name != "party_flows"
                   and ("PoolPaths", f.name) not in ADDED_OPTIONAL}
    # the hazard loan engine (sampler subset-binomial-v1) on the same pool with the party split
    lpaths = simulate(loans, a, LOAN_ENGINE_PATHS, 2026, engine="loan", shares=alloc.shares,
                      party_ids=alloc.party_ids)
    loan_arrays = {f.name: getattr(lpaths, f.name) for f in dataclasses.fields(lpaths)
                   if ("PoolPaths", f.name) not in ADDED_OPTIONAL}
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
        "loan_engine": digest(loan_arrays),
    }


def build_small(workdir: Path) -> tuple[Path, int, Path]:
    """A 60k-loan book (seed 13), a pool of every current loan, calibrated assumptions."""
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

        a = load_assumptions(a_path)  # its provenance (timestamps) left out
        # provenance (timestamps) left out, and the optional [delinquency] record when absent
        # (a field added after the fingerprint was recorded)
        out = {"assumptions": digest({f.name: getattr(a, f.name) for f in dataclasses.fields(a)
                                      if f.name != "provenance" and not (
                                          ("Assumptions", f.name) in ADDED_OPTIONAL
                                          and getattr(a, f.name) is None)})}
        out.update(fingerprint(db, pool_id, a_path, SMALL["pool_loans"], SMALL["paths"]))
        return out


def full_fingerprint() -> dict[str, str]:
    sz = sizes(False)
    info = setup(sz)
    return fingerprint(Path(info["db"]), info["pool_id"], Path(info["assumptions"]),
                       sz["pool_loans"], sz["paths"])


def demo_tables() -> dict[str, pd.DataFrame]:
    """The demo (``riskpool demo``'s pipeline at its default sizes, no dashboard): every report
    table, for the treasury and the demo partner, keyed "viewer section table"."""
    params = DemoParams()
    out: dict[str, pd.DataFrame] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "demo.duckdb"
        build_demo(db, params, users_file=Path(tmp) / "users.toml", report_dir=Path(tmp) / "r")
        as_of = dt.date.fromisoformat(params.as_of)
        viewers: dict[str, Viewer] = {"treasury": report_viewer(None),
                                      params.demo_partner: report_viewer(params.demo_partner)}
        for who, viewer in viewers.items():
            for section in collect_sections(db, viewer, as_of):
                for name, table in section.tables.items():
                    out[f"{who} {section.key} {name}"] = table
    return out


def compare_tables(got: dict[str, pd.DataFrame], want_dir: Path, rtol: float = 1e-9) -> list[str]:
    """The names of the tables in ``got`` that differ from the CSVs in ``want_dir``: same
    columns, same text cells, float cells equal within ``rtol`` (relative, with an absolute
    floor of ``rtol``): DuckDB's parallel float sums may differ in the last bits between two
    runs of the same code on the same data, so the demo's book tables are compared this way
    rather than by hash."""
    bad = []
    files = {p.stem: p for p in want_dir.glob("*.csv")}
    for key in sorted(set(files) | {k.replace(" ", "__") for k in got}):
        name = key.replace("__", " ")
        if key not in files or name not in got:
            bad.append(f"{name} (missing on one side)")
            continue
        want = pd.read_csv(files[key])
        have = pd.read_csv(io.StringIO(got[name].to_csv(index=False)))
        if list(want.columns) != list(have.columns) or len(want) != len(have):
            bad.append(f"{name} (shape or columns)")
            continue
        for col in want.columns:
            a, b = want[col].to_numpy(), have[col].to_numpy()
            if pd.api.types.is_numeric_dtype(want[col]) and pd.api.types.is_numeric_dtype(have[col]):
                if not np.allclose(a.astype(float), b.astype(float), rtol=rtol, atol=rtol,
                                   equal_nan=True):
                    bad.append(f"{name}.{col}")
            elif not np.array_equal(want[col].fillna("").astype(str),
                                    have[col].fillna("").astype(str)):
                bad.append(f"{name}.{col}")
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="the B1 book and sizes")
    ap.add_argument("--demo", action="store_true", help="the demo's report tables")
    ap.add_argument("--check", type=Path,
                    help="a stored fingerprint (JSON), or with --demo a folder of CSVs")
    ap.add_argument("--out", type=Path,
                    help="write the fingerprint (JSON) here, or with --demo the CSVs")
    args = ap.parse_args()
    if args.demo:
        tables = demo_tables()
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            for name, table in tables.items():
                table.to_csv(args.out / (name.replace(" ", "__") + ".csv"), index=False)
        if args.check:
            bad = compare_tables(tables, args.check)
            if bad:
                print(f"DIFFERENT from {args.check}: {', '.join(bad)}")
                return 1
            print(f"identical to {args.check}: {len(tables)} tables (floats within 1e-9)")
        return 0
    fp = full_fingerprint() if args.full else small_fingerprint()
    text = json.dumps(fp, indent=2, sort_keys=True) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text, end="")
    return check(fp, args.check) if args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
