"""Invariants of the analyst-workflow helpers, with hypothesis: scenario grids expand to every
combination once, mapped percents are the exact decimal division, mapped dates are the same
calendar day, and a partner tape's rounded amounts are within half a cent of the exact ones."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from partners.records import rounded_tape
from portfolio.book.ingest.mapping import convert_date, convert_percent
from portfolio.book.scenarios import FACTORS, parse_scenario_set

MULTS = st.lists(st.sampled_from([0.5, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0]), min_size=1, max_size=4,
                 unique=True)
RHOS = st.lists(st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.2, 0.5]), min_size=1, max_size=4,
                unique=True)


@given(pd=MULTS, rho=RHOS, rec=st.none() | MULTS)
def test_a_grid_expands_to_every_combination_once(pd, rho, rec) -> None:
    grid = {"name": "g", "pd_mult": pd, "rho": rho}
    if rec is not None:
        grid["recovery_mult"] = rec
    sset = parse_scenario_set({"set": {"name": "s", "seed": 1}, "grid": [grid]}, "test")
    n = len(pd) * len(rho) * (len(rec) if rec is not None else 1)
    assert len(sset.members) == n == len({m.name for m in sset.members})
    combos = {tuple(sorted(m.changes.items())) for m in sset.members}
    assert len(combos) == n
    for m in sset.members:
        assert set(m.changes) <= set(FACTORS) and m.group == "g"
        assert m.changes["pd_mult"] in pd and m.changes["rho"] in rho


@given(st.decimals(min_value=0, max_value=100, places=4, allow_nan=False),
       st.sampled_from(["", "%", " %"]))
def test_a_mapped_percent_is_the_exact_division(d: Decimal, suffix: str) -> None:
    out = convert_percent(f"{d}{suffix}")
    assert out is not None and Decimal(out) == d / 100


@given(st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2100, 12, 31)))
def test_a_mapped_date_is_the_same_day(day: dt.date) -> None:
    assert convert_date(f"{day.year}/{day.month}/{day.day}", "%Y/%m/%d") == day.isoformat()
    assert convert_date(day.strftime("%Y%m%d"), "%Y%m%d") == day.isoformat()


@given(st.lists(st.floats(min_value=0, max_value=1e9, allow_nan=False), min_size=1,
                max_size=20),
       st.lists(st.floats(min_value=0, max_value=1, allow_nan=False), min_size=1, max_size=20))
def test_rounded_tape_amounts_are_within_half_a_cent(balances, shares) -> None:
    import pandas as pd

    n = min(len(balances), len(shares))
    tape = pd.DataFrame({"share": shares[:n], "balance": balances[:n]})
    out = rounded_tape(tape)
    for exact, cents in zip(tape["balance"], out["balance"], strict=True):
        assert abs(cents - exact) <= 0.005 + 1e-9 * max(1.0, exact)
        assert math.isclose(cents * 100, round(cents * 100), abs_tol=1e-6 * max(1.0, cents))
    for exact, s in zip(tape["share"], out["share"], strict=True):
        assert abs(s - exact) <= 0.5e-8 + 1e-15
    assert rounded_tape(out).equals(out)  # rounding twice changes nothing
