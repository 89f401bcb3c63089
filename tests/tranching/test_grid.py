"""Deterministic grids and breakeven CDRs (tranching.grid).

Hand-checkable breakevens: a pool at 0% rate, no prepayment, 100% severity, a 90/10 sequential
deal with zero coupons and no fees. The senior loses nothing exactly while cumulative defaults
≤ the 10% subordination.
- WAM 1: defaults = MDR·B₀, so MDR* = 0.10 and CDR* = 1 − 0.9¹² = 0.717570463519.
- WAM 2: defaults = d·B₀ + d·(1 − d)·B₀/2 (month 2's balance is half the performing balance),
  so d(3 − d)/2 = 0.1 → d* = (3 − √8.2)/2 and CDR* = 1 − (1 − d*)¹².
Invariant (hypothesis): breakeven CDR is non-decreasing in seniority.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tranching.deal import deal_from_dict
from tranching.errors import DealError
from tranching.grid import breakeven_cdr, breakeven_table, grid, scenario_paths

TOL = 1e-7


def _deal(shares=(0.9, 0.1), coupons=(0.0, 0.0), mode="sequential", fee=0.0) -> dict:
    names = [f"T{i}" for i in range(len(shares))]
    d: dict = {"deal": {"name": "g", "closing_date": dt.date(2026, 1, 15),
                        "first_payment_date": dt.date(2026, 2, 15), "principal_mode": mode},
               "tranches": [{"name": n, "size": s, "coupon": c}
                            for n, s, c in zip(names, shares, coupons, strict=True)]}
    if fee:
        d["fees"] = [{"name": "servicer", "kind": "servicer", "rate": fee}]
    return d


@pytest.mark.parametrize("wam, mdr", [(1, 0.1), (2, (3 - math.sqrt(8.2)) / 2)])
def test_hand_worked_breakeven(wam: int, mdr: float) -> None:
    deal = deal_from_dict(_deal())
    be = breakeven_cdr(deal, 1_000_000.0, 0.0, wam, severity=1.0, cpr=0.0, tol=TOL)
    assert be["T0"] == pytest.approx(1 - (1 - mdr) ** 12, abs=2 * TOL)
    assert be["T1"] <= TOL  # the zero-coupon sub has no excess spread: any default hits it
    # the grid at the breakeven ± a little: T0 loses nothing just below, something just above
    cdr = 1 - (1 - mdr) ** 12
    g = grid(deal, 1_000_000.0, 0.0, wam, cdrs=[cdr - 1e-4, cdr + 1e-4], severities=[1.0],
             cprs=[0.0])
    t0 = g[g["tranche"] == "T0"]["loss"].tolist()
    assert t0[0] == 0.0 and t0[1] > 0


def test_scenario_path_by_hand() -> None:
    # WAM 2 at 12% a year (1% a month), CDR 0, CPR 0: level annuity of 1,000,000 over 2 months,
    # payment = 1,000,000 × 0.01 / (1 − 1.01⁻²) = 507,512.4378; interest 10,000 then 5,075.124378
    p = scenario_paths(1_000_000.0, 0.12, 2, cdr=0.0, severity=0.5, cpr=0.0)
    pay = 1_000_000 * 0.01 / (1 - 1.01 ** -2)
    np.testing.assert_allclose(p.interest[0], [10_000.0, 0.01 * (1_000_000 - (pay - 10_000))])
    np.testing.assert_allclose(p.scheduled_principal[0] + p.interest[0], [pay, pay])
    assert p.balance_eop[0, -1] == pytest.approx(0.0, abs=1e-6)
    # CDR 12%: MDR = 1 − 0.88^(1/12); a 2-month lag and 40% severity: recovery = 0.6 × default
    p = scenario_paths(1_000_000.0, 0.12, 2, cdr=0.12, severity=0.4, cpr=0.1, lag=2)
    mdr = 1 - 0.88 ** (1 / 12)
    assert p.default[0, 0] == pytest.approx(mdr * 1_000_000)
    np.testing.assert_allclose(p.recovery[0, 2:], 0.6 * p.default[0, :2])
    with pytest.raises(DealError, match="cdr"):
        scenario_paths(1e6, 0.1, 12, cdr=1.5, severity=0.5, cpr=0.0)


@st.composite
def structures(draw: st.DrawFn) -> dict:
    n = draw(st.integers(2, 4))
    w = [draw(st.floats(0.05, 1.0)) for _ in range(n)]
    shares = [x / sum(w) for x in w]
    shares[-1] = 1 - sum(shares[:-1])
    coupons = [draw(st.floats(0.0, 0.12)) for _ in range(n)]
    d = _deal(tuple(shares), tuple(coupons), draw(st.sampled_from(["sequential", "pro_rata"])),
              draw(st.sampled_from([0.0, 0.01])))
    # the default priority of payments without its `reimburse` step: a written-down junior's
    # PDL refilled from later recoveries while a senior is outstanding can leave the junior
    # whole and the senior short after later defaults (test below), so monotonicity in
    # seniority is claimed for deals that do not refill PDLs (docs/model.md 9.2)
    names = [t["name"] for t in d["tranches"]]
    d["waterfall"] = ([{"step": "fee", "fee": "servicer"}] if "fees" in d else []) + [
        {"step": "interest", "tranche": t["name"]} for t in d["tranches"] if t["coupon"] > 0] + [
        {"step": "principal", "tranches": names}, {"step": "residual"}]
    return d


@settings(max_examples=15, deadline=None)
@given(d=structures(), wac=st.floats(0.0, 0.36), wam=st.integers(1, 18),
       sev=st.floats(0.2, 1.0), cpr=st.floats(0.0, 0.3), lag=st.integers(0, 3))
def test_breakeven_is_monotone_in_seniority(d: dict, wac: float, wam: int, sev: float,
                                            cpr: float, lag: int) -> None:
    deal = deal_from_dict(d)
    be = breakeven_cdr(deal, 1_000_000.0, wac, wam, severity=sev, cpr=cpr, lag=lag, tol=1e-5)
    values = [be[n] for n in deal.tranche_names]
    assert all(a >= b - 1e-5 for a, b in zip(values, values[1:], strict=False))


def test_a_pdl_refill_can_make_breakeven_non_monotone_in_seniority() -> None:
    # Found by hypothesis: a 0% pool (WAM 10, no prepayment, severity 25%, recoveries 2
    # months later), T0/T1/T2 zero-coupon, T3 47% at 6.25% accruing on balance + PDL, the
    # default priority (interest T3, principal, reimburse, residual). At CDR = 1 − 1e-5 month 1
    # writes T3, T2 and part of T1 down; month 3's recoveries (75% of month 1's defaults) pay
    # T0 down to the collateral and refill T1's PDL, so T1 ends whole; T3's coupon on its PDL
    # and the later defaults then leave T0 short at the legal final (breakeven 0.99990 < 1).
    # With the reimburse step left out T0 still loses there, but T1 and T2 lose first
    # (breakevens 0.99989 >= 0.9951 >= 0.9817): monotone again.
    d = {"deal": {"name": "g", "closing_date": dt.date(2026, 1, 15),
                  "first_payment_date": dt.date(2026, 2, 15), "principal_mode": "sequential"},
         "tranches": [{"name": "T0", "size": 0.23572841170414516, "coupon": 0.0},
                      {"name": "T1", "size": 0.19431962413528148, "coupon": 0.0},
                      {"name": "T2", "size": 0.09849514075228305, "coupon": 0.0},
                      {"name": "T3", "size": 0.4714568234082903, "coupon": 0.0625}]}
    kw = {"severity": 0.25, "cpr": 0.0, "lag": 2, "tol": 1e-5}
    be = breakeven_cdr(deal_from_dict(d), 1_000_000.0, 0.0, 10, **kw)
    assert be["T1"] == 1.0 and be["T0"] < 1.0 - 5e-5
    d["waterfall"] = [{"step": "interest", "tranche": "T3"},
                      {"step": "principal", "tranches": ["T0", "T1", "T2", "T3"]},
                      {"step": "residual"}]
    be = breakeven_cdr(deal_from_dict(d), 1_000_000.0, 0.0, 10, **kw)
    assert be["T0"] >= be["T1"] >= be["T2"] and be["T1"] < 1.0


def test_breakeven_table_shape() -> None:
    deal = deal_from_dict(_deal(coupons=(0.04, 0.0), fee=0.01))
    t = breakeven_table(deal, 1e6, 0.2, 6, severities=[0.5, 0.9], cprs=[0.0, 0.2], tol=1e-4)
    assert len(t) == 8 and t["breakeven_cdr"].between(0, 1).all()
    # a higher severity never raises the breakeven (same CPR)
    s = t.set_index(["tranche", "cpr", "severity"])["breakeven_cdr"]
    for tr in ("T0", "T1"):
        for cpr in (0.0, 0.2):
            assert s[(tr, cpr, 0.9)] <= s[(tr, cpr, 0.5)] + 1e-4


def test_grid_cli(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd
    import tomli_w

    deal_file = tmp_path / "d.toml"
    deal_file.write_text(tomli_w.dumps(_deal()), encoding="utf-8")
    out = tmp_path / "g.xlsx"
    r = cli("tranche", "grid", "--structure", deal_file, "--balance", "1000000", "--wac", "0",
            "--wam", "1", "--cdr", "0,0.5,0.8", "--severity", "1", "--cpr", "0",
            "--recovery-lag", "0", "--tol", "1e-7", "--out", out)
    assert r.code == 0, r.err
    be = pd.read_excel(out, sheet_name="breakeven_cdr").set_index("tranche")["breakeven_cdr"]
    assert be["T0"] == pytest.approx(1 - 0.9 ** 12, abs=2e-7)  # the WAM-1 hand case
    g = pd.read_excel(out, sheet_name="grid")
    # CDR 0.8 > 0.7176: MDR = 1 − 0.2^(1/12) = 0.1255 > 0.10, so the senior loses in month 1
    row = g[(g["tranche"] == "T0") & (g["cdr"] == 0.8)].iloc[0]
    assert row["loss"] > 0 and row["first_loss_month"] == 1
    r = cli("tranche", "grid", "--structure", deal_file, "--balance", "1e6", "--wac", "0",
            "--wam", "1", "--cdr", "0,x")
    assert r.code == 2 and "--cdr" in r.err


@pytest.mark.parametrize("cdr, sev, cpr, lag", [(0.1, 0.6, 0.15, 3), (0.3, 1.0, 0.0, 0),
                                                (0.05, 0.25, 0.4, 5)])
def test_base_scenario_round_trip(cdr: float, sev: float, cpr: float, lag: int) -> None:
    # A path the scenario model made gives its own inputs back: default = MDR · bop so
    # Σ default / Σ bop = MDR exactly; prepayment = SMM · (bop − default − scheduled);
    # interest = WAC/12 · (bop − default); recovery = (1 − severity) · default lag months earlier
    # (all land within WAM + lag), so the recovery- and default-weighted mean months differ by
    # exactly the lag. Two identical paths average to the same.
    from portfolio.montecarlo.paths import PoolPaths
    from tranching.grid import base_scenario

    one = scenario_paths(1_000_000.0, 0.18, 12, cdr=cdr, severity=sev, cpr=cpr, lag=lag)
    two = PoolPaths(dates=one.dates, initial_balance=one.initial_balance,
                    **{k: np.repeat(getattr(one, k), 2, axis=0) for k in (
                        "balance_bop", "interest", "scheduled_principal", "prepayment",
                        "default", "recovery", "balance_eop")})
    for paths in (one, two):
        b = base_scenario(paths, 12)
        assert b.balance == 1_000_000.0 and b.wam == 12 and b.lag == lag
        assert b.cdr == pytest.approx(cdr, abs=1e-12)
        assert b.severity == pytest.approx(sev, abs=1e-12)
        assert b.cpr == pytest.approx(cpr, abs=1e-12)
        assert b.wac == pytest.approx(0.18, abs=1e-12)
