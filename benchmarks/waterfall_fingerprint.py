"""Fingerprint of the waterfall's numbers: a sha256 of every ``WaterfallResult`` array for the
two example deals and for many seeded random structures, so that a change meant to leave every
number alone (a reshaping of ``tranching/waterfall.py``) can be checked bit for bit.

Cases (every option of the deal format appears in some random structure):

- the CN and US example deals on 3,000 synthetic paths (base and stressed defaults), the CN
  deal also with a replenishment profile (revolving purchases with their own schedule);
- ``N_RANDOM`` random deals (seeded): 2–4 tranches, each principal mode, servicer and fixed
  fees, reserves of every basis and funding, OC targets, revolving periods with and without a
  profile, clean-up calls, CNL / OC / delinquency triggers with every effect, curable or not,
  level or step schedule, and priorities of payments in varied but valid orders (interest and
  principal interleaved, split principal steps, reserve before or after principal, a partial
  reimburse step, zero-coupon tranches with or without an interest step).

    python benchmarks/waterfall_fingerprint.py                 # print the fingerprint
    python benchmarks/waterfall_fingerprint.py --record FILE   # write it
    python benchmarks/waterfall_fingerprint.py --check FILE    # compare; exit 1 on a change
    python benchmarks/waterfall_fingerprint.py --threads 3 --check FILE  # paths on 3 threads
    python benchmarks/waterfall_fingerprint.py --part          # run_waterfall_part's arrays

``--threads N`` runs every case with ``run_waterfall(..., threads=N)`` (its paths cut into N
ranges, one thread each; default: the library's own choice): the fingerprint must not change.
``--part`` runs every case again with ``run_waterfall_part`` keeping a random half of the
arrays (seeded per case) and compares each kept array's bytes with the full run's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from portfolio import settings

settings.before_numpy_import()  # numpy reads its huge-page switch once, at its import

import numpy as np
from b1_fingerprint import differing, digest
from pool_paths import pool

from portfolio.montecarlo.paths import PoolPaths
from tranching import waterfall
from tranching.deal import deal_from_dict, load_deal

N_RANDOM = 160


def random_deal(rng: np.random.Generator) -> dict[str, Any]:
    """A valid random deal (as parsed TOML)."""
    def coin(p: float = 0.5) -> bool:
        return bool(rng.random() < p)

    n = int(rng.integers(2, 5))
    oc0 = float(rng.choice([0.0, 0.0, 0.05, 0.1]))
    w = rng.uniform(0.05, 1.0, n)
    shares = [float(x) for x in w / w.sum() * (1 - oc0)]
    shares[-1] = 1 - oc0 - sum(shares[:-1])
    tranches: list[dict[str, Any]] = []
    for i, s in enumerate(shares):
        t: dict[str, Any] = {"name": f"T{i}", "size": s, "holder": "investors"}
        if i < n - 1 or coin():
            t["coupon"] = float(rng.choice([0.0, rng.uniform(0.0, 0.15)], p=[0.15, 0.85]))
        tranches.append(t)
    fees = []
    if coin(0.7):
        fees.append({"name": "servicer", "kind": "servicer", "rate": float(rng.uniform(0, 0.03))})
    if coin(0.6):
        fees.append({"name": "trustee", "kind": "fixed", "amount": float(rng.uniform(0, 3e5))})
    d: dict[str, Any] = {
        "deal": {"name": "random", "closing_date": dt.date(2026, 1, 15),
                 "first_payment_date": dt.date(2026, 2, 15),
                 "principal_mode": str(rng.choice(["sequential", "pro_rata", "turbo"])),
                 "initial_oc": oc0},
        "tranches": tranches, "fees": fees,
    }
    if coin(0.4):
        d["deal"]["clean_up_call"] = float(rng.uniform(0.0, 0.3))
    has_reserve = coin(0.6)
    if has_reserve:
        d["reserve"] = {"target": float(rng.uniform(0, 0.05)),
                        "basis": str(rng.choice(["initial", "current"])),
                        "floor": float(rng.uniform(0, 0.01)),
                        "funding": str(rng.choice(["closing", "excess_spread"]))}
    if coin(0.5):
        d["overcollateralisation"] = {"target": float(rng.uniform(0, 0.3)),
                                      "basis": str(rng.choice(["initial", "current"])),
                                      "floor": float(rng.uniform(0, 0.02))}
    revolving = int(rng.integers(0, 13)) if coin(0.5) else 0
    if revolving:
        d["revolving"] = {"months": revolving}
    effects = ["sequential", "turbo"] + (["trap_cash"] if has_reserve else []) + (
        ["end_revolving"] if revolving else [])
    triggers = []
    for k in range(int(rng.integers(0, 4))):
        metric = str(rng.choice(["cnl", "oc", "delinquency"]))
        lo, hi = (0.8, 1.3) if metric == "oc" else (0.0, 0.12)
        trig: dict[str, Any] = {"name": f"g{k}", "metric": metric, "curable": coin(),
                                "effect": str(rng.choice(effects))}
        if coin():
            trig["level"] = float(rng.uniform(lo, hi))
        else:
            trig["schedule"] = [[1, float(rng.uniform(lo, hi))], [int(rng.integers(2, 12)),
                                                                  float(rng.uniform(lo, hi))]]
        if metric == "oc" and coin():
            trig["tranches"] = [t["name"] for t in tranches[: int(rng.integers(1, n + 1))]]
        triggers.append(trig)
    d["triggers"] = triggers
    d["waterfall"] = random_priority(rng, tranches, fees, has_reserve)
    return d


def random_priority(rng: np.random.Generator, tranches: list[dict[str, Any]],
                    fees: list[dict[str, Any]], has_reserve: bool) -> list[dict[str, Any]]:
    """Fees, then interest and principal in groups (interest of a group before its principal),
    the reserve and a reimburse step at random places, the residual last."""
    names = [t["name"] for t in tranches]
    n = len(names)
    cuts = sorted(set(int(c) for c in rng.integers(1, n, int(rng.integers(0, n)))))
    groups = [names[a:b] for a, b in zip([0, *cuts], [*cuts, n], strict=True)]
    interleave = bool(rng.random() < 0.4)
    steps: list[dict[str, Any]] = [{"step": "fee", "fee": f["name"]} for f in fees]
    rng.shuffle(steps)  # type: ignore[arg-type]

    def interest(group: list[str]) -> list[dict[str, Any]]:
        out = []
        for t in tranches:
            if t["name"] in group and (t.get("coupon", 0) > 0 or ("coupon" in t and rng.random() < 0.5)):
                out.append({"step": "interest", "tranche": t["name"]})
        return out

    body: list[dict[str, Any]] = []
    if interleave:
        for g in groups:
            body += interest(g) + [{"step": "principal", "tranches": g}]
    else:
        body += interest(names) + [{"step": "principal", "tranches": g} for g in groups]
    if has_reserve:
        body.insert(int(rng.integers(0, len(body) + 1)), {"step": "reserve"})
    if rng.random() < 0.7:
        reimb: dict[str, Any] = {"step": "reimburse"}
        if rng.random() < 0.4:
            reimb["tranches"] = names[int(rng.integers(0, n)):]
        body.insert(int(rng.integers(0, len(body) + 1)), reimb)
    return steps + body + [{"step": "residual"}]


Case = tuple[str, Any, PoolPaths, PoolPaths | None]  # label, deal, paths, replenishment


def cases() -> Iterator[Case]:
    """Every case of the fingerprint, in order: (label, deal, paths, replenishment)."""
    base = pool(3000, 30, 2026)
    stressed = pool(3000, 30, 2027, pd=0.02, rho=0.3)
    profile = pool(3000, 18, 99, term=12, initial=1e6)
    for label, file in (("cn", "deal_cn_consumer.toml"), ("us", "deal_us_consumer.toml")):
        deal = load_deal(ROOT / "examples" / file)
        yield f"{label}/base", deal, base, None
        yield f"{label}/stressed", deal, stressed, None
        yield f"{label}/base+profile", deal, base, profile
        yield f"{label}/stressed+profile", deal, stressed, profile
    rng = np.random.default_rng(20260115)
    for k in range(N_RANDOM):
        d = random_deal(rng)
        deal = deal_from_dict(d)
        n_months = int(rng.integers(3, 37))
        paths = pool(200, n_months, 1000 + k, pd=float(rng.uniform(0.0005, 0.06)),
                     rho=float(rng.uniform(0.0, 0.5)), term=int(rng.integers(1, 37)),
                     smm=float(rng.uniform(0, 0.1)), recovery_rate=float(rng.uniform(0, 0.9)),
                     lag=int(rng.integers(0, 7)), apr=float(rng.uniform(0, 0.36)))
        prof = None
        if deal.revolving_months and rng.random() < 0.5:
            prof = pool(200, int(rng.integers(1, 25)), 5000 + k, term=int(rng.integers(1, 25)),
                        initial=float(rng.uniform(1, 1e6)))
        yield f"random/{k:03d}", deal, paths, prof


def fingerprint(threads: int | None = None) -> dict[str, str]:
    return {label: digest(waterfall.run_waterfall(deal, paths, prof, threads=threads))
            for label, deal, paths, prof in cases()}


def part_mismatches(threads: int | None = None) -> list[str]:
    """Every case run again with ``run_waterfall_part`` keeping a random half of the
    result's arrays (seeded per case): the cases where a kept array's bytes differ from the
    full run's (or a kept array is missing, or one not kept is there)."""
    bad = []
    for k, (label, deal, paths, prof) in enumerate(cases()):
        full = waterfall.run_waterfall(deal, paths, prof, threads=threads)
        every = waterfall.Tape.allocate(deal, 1, 1)  # every array's key (group, name)
        pick = np.random.default_rng(k).random(len(every)) < 0.5
        keep = {name if group in ("tranche", "pool", "flag") else f"{group}.{name}"
                for (group, name), p in zip(every, pick, strict=True) if p}
        part = waterfall.run_waterfall_part(deal, paths, prof, keep=keep, threads=threads)
        want = {key: (getattr(full, key[1]) if key[0] in ("tranche", "pool", "flag")
                      else getattr(full, key[0])[key[1]])
                for key, p in zip(every, pick, strict=True) if p}
        if set(part.arrays) != set(want) or any(
                digest(part.arrays[key]) != digest(v) for key, v in want.items()):
            bad.append(label)
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--record", type=Path)
    ap.add_argument("--check", type=Path)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--part", action="store_true",
                    help="check run_waterfall_part on every case (a random half of the arrays "
                    "kept, bytes as the full run's); exit 1 on a difference")
    args = ap.parse_args()
    if args.part:
        bad = part_mismatches(args.threads)
        print(f"run_waterfall_part: {N_RANDOM + 8} cases, {len(bad)} differ"
              + (": " + ", ".join(bad) if bad else ""))
        return 1 if bad else 0
    got = fingerprint(args.threads)
    if args.record:
        args.record.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    if args.check:
        diff = differing(got, args.check)
        print(f"{len(got)} cases, {len(diff)} differ" + (": " + ", ".join(diff) if diff else ""))
        return 1 if diff else 0
    if not args.record:
        print(json.dumps(got, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
