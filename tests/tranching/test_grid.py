"""Deterministic grids and breakeven CDRs (tranching.grid).

Hand-checkable breakevens: a pool at 0% rate, no prepayment, 100% severity, a 90/10 sequential
deal with zero coupons and no fees. The senior loses nothing exactly while cumulative defaults
≤ the 10% subordination.
- WAM 1: defaults = MDR·B₀, so MDR* = 0.10 and CDR* = 1 − 0.9¹² = 0.717570463519.
- WAM 2: defaults = d·B₀ + d·(1 − d)·B₀/2 (month 2's balance is half the performing balance),
  so d(3 − d)/2 = 0.1 → d* = (3 − √8.2)/2 and CDR* = 1 − (1 − d*)¹².
Invariants (hypothesis): the breakeven CDR on the first write-down is non-decreasing in
seniority for every deal the schema accepts (the random structures of the waterfall invariants:
every principal mode, step-down, triggers, PDL refills, accounts, revolving, calls); on the
final loss, for deals without a PDL refill; a class's first write-down never comes after its
final loss (writedown basis <= final basis). A PDL refill can make the final-loss breakeven fall
with seniority: a hand case shows the path.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_waterfall_invariants import deals as random_deals

from dashboards.xlsx import read_tables
from tranching.analytics import loss_shares
from tranching.deal import deal_from_dict
from tranching.errors import DealError
from tranching.grid import (
    breakeven_cdr,
    breakeven_table,
    grid,
    roll_grid,
    roll_rate_paths,
    scenario_paths,
)
from tranching.waterfall import run_waterfall

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
    for basis in ("final", "writedown"):
        be = breakeven_cdr(deal, 1_000_000.0, wac, wam, severity=sev, cpr=cpr, lag=lag, tol=1e-5,
                           basis=basis)
        values = [be[n] for n in deal.tranche_names]
        assert all(a >= b - 1e-5 for a, b in zip(values, values[1:], strict=False))


@settings(max_examples=15, deadline=None)
@given(d=random_deals(), wac=st.floats(0.0, 0.36), wam=st.integers(1, 18),
       sev=st.floats(0.2, 1.0), cpr=st.floats(0.0, 0.3), lag=st.integers(0, 3))
def test_first_writedown_breakeven_is_monotone_for_every_deal(d: dict, wac: float, wam: int,
                                                              sev: float, cpr: float,
                                                              lag: int) -> None:
    # every option of the deal format (PDL refills included): on the first write-down the
    # breakeven never falls with seniority, and never exceeds the final-loss breakeven
    deal = deal_from_dict(d)
    kw = {"severity": sev, "cpr": cpr, "lag": lag, "tol": 1e-5}
    first = breakeven_cdr(deal, 1_000_000.0, wac, wam, basis="writedown", **kw)
    final = breakeven_cdr(deal, 1_000_000.0, wac, wam, **kw)
    values = [first[n] for n in deal.tranche_names]
    assert all(a >= b - 1e-5 for a, b in zip(values, values[1:], strict=False))
    assert all(first[n] <= final[n] + 1e-5 for n in deal.tranche_names)


def test_a_pdl_refill_can_make_the_final_loss_breakeven_fall_with_seniority() -> None:
    # Found by hypothesis: a 0% pool (WAM 10, no prepayment, severity 25%, recoveries 2
    # months later), T0/T1/T2 zero-coupon, T3 47% at 6.25% accruing on balance + PDL, the
    # default priority (interest T3, principal, reimburse, residual).
    d = {"deal": {"name": "g", "closing_date": dt.date(2026, 1, 15),
                  "first_payment_date": dt.date(2026, 2, 15), "principal_mode": "sequential"},
         "tranches": [{"name": "T0", "size": 0.23572841170414516, "coupon": 0.0},
                      {"name": "T1", "size": 0.19431962413528148, "coupon": 0.0},
                      {"name": "T2", "size": 0.09849514075228305, "coupon": 0.0},
                      {"name": "T3", "size": 0.4714568234082903, "coupon": 0.0625}]}
    deal = deal_from_dict(d)
    # The waterfall, not the search: one path at CDR = 1 − 1e-5 (MDR 61.7%). Month 1 writes
    # T3, T2 and part of T1 down; month 2's defaults write off the rest of T1 and part of T0.
    # Month 3's recoveries (75% of month 1's defaults, 462,661) pay T0 down to the pool and
    # refill the PDLs of T0, T1 and T2 in cash; T1 and T2 keep a zero balance, so nothing is
    # junior to T0 any more, and months 9-10's defaults write T0 down for good.
    r = run_waterfall(deal, scenario_paths(1_000_000.0, 0.0, 10, cdr=1 - 1e-5, severity=0.25,
                                           cpr=0.0, lag=2))
    final = loss_shares(r)[:, 0]
    assert final[1] == 0.0 and final[2] == 0.0 and final[0] > 3e-4  # T1, T2 whole; T0 short
    assert abs(r.reimbursed[1, 0, 2] - 0.19431962413528148e6) < 1e-6  # T1 refilled in full
    assert r.balance[1, 0, 2:].max() == 0.0 and r.writedown[0, 0, 8:10].sum() > 90.0
    # T1's final loss is not monotone in the CDR: it loses at CDR 0.9995 (T0 whole) but not at
    # 1 − 1e-5 (T0 short). A bisection on [0, 1 − tol] alone saw no loss at the top and
    # reported 1.0 for T1; the scan finds its first loss, at 0.99933.
    def final_at(cdr: float) -> np.ndarray:
        return loss_shares(run_waterfall(deal, scenario_paths(
            1_000_000.0, 0.0, 10, cdr=cdr, severity=0.25, cpr=0.0, lag=2)))[:, 0]

    assert final_at(0.9995)[1] > 1e-4 and final_at(0.9995)[0] == 0.0
    kw = {"severity": 0.25, "cpr": 0.0, "lag": 2, "tol": 1e-5}
    final_be = breakeven_cdr(deal, 1_000_000.0, 0.0, 10, **kw)
    assert 0.9993 < final_be["T1"] < 0.9994 < final_be["T0"] < 1.0 - 5e-5
    # T2 loses nothing at any CDR scanned: its breakeven (1.0) is above T1's and T0's
    assert final_be["T2"] == 1.0
    # on the first write-down the order holds: T2 (month 1 at ~98.5% CDR), then T1, then T0
    first = breakeven_cdr(deal, 1_000_000.0, 0.0, 10, basis="writedown", **kw)
    assert first["T0"] >= first["T1"] >= first["T2"] >= first["T3"] and first["T2"] < 0.99
    # without the reimburse step T1 and T2 keep their losses: monotone on both bases
    d["waterfall"] = [{"step": "interest", "tranche": "T3"},
                      {"step": "principal", "tranches": ["T0", "T1", "T2", "T3"]},
                      {"step": "residual"}]
    be = breakeven_cdr(deal_from_dict(d), 1_000_000.0, 0.0, 10, **kw)
    assert be["T0"] >= be["T1"] >= be["T2"] and be["T1"] < 1.0


def test_breakeven_basis_is_checked() -> None:
    with pytest.raises(DealError, match="basis"):
        breakeven_cdr(deal_from_dict(_deal()), 1e6, 0.0, 1, severity=1.0, cpr=0.0, basis="net")


def test_breakeven_table_shape() -> None:
    deal = deal_from_dict(_deal(coupons=(0.04, 0.0), fee=0.01))
    t = breakeven_table(deal, 1e6, 0.2, 6, severities=[0.5, 0.9], cprs=[0.0, 0.2], tol=1e-4)
    assert len(t) == 8 and t["breakeven_cdr"].between(0, 1).all()
    # no PDL refill in the default priority? (it has one; nothing is refilled here before the
    # loss is final): the first write-down never comes later than the final loss
    assert (t["breakeven_cdr_writedown"] <= t["breakeven_cdr"] + 1e-4).all()
    # a higher severity never raises the breakeven (same CPR)
    s = t.set_index(["tranche", "cpr", "severity"])["breakeven_cdr"]
    for tr in ("T0", "T1"):
        for cpr in (0.0, 0.2):
            assert s[(tr, cpr, 0.9)] <= s[(tr, cpr, 0.5)] + 1e-4


def test_grid_cli(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import tomli_w

    deal_file = tmp_path / "d.toml"
    deal_file.write_text(tomli_w.dumps(_deal()), encoding="utf-8")
    out = tmp_path / "g.xlsx"
    r = cli("tranche", "grid", "--structure", deal_file, "--balance", "1000000", "--wac", "0",
            "--wam", "1", "--cdr", "0,0.5,0.8", "--severity", "1", "--cpr", "0",
            "--recovery-lag", "0", "--tol", "1e-7", "--out", out)
    assert r.code == 0, r.err
    be = read_tables(out, sheet_name="breakeven_cdr").set_index("tranche")["breakeven_cdr"]
    assert be["T0"] == pytest.approx(1 - 0.9 ** 12, abs=2e-7)  # the WAM-1 hand case
    g = read_tables(out, sheet_name="grid")
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


# --------------------------------------------------------------------------- roll-rate grids


def test_roll_rate_grid_cure_free_chain_by_hand() -> None:
    # A 0%-rate line of 1,000,000 maturing in 1 month, no prepayment, 100% severity; every
    # roll 1 and every cure 0 over K = 3 buckets; roll_current 5%. With multiplier m the month
    # misses a = min(0.05·m, 1) of the balance: the rest (1 − a)·1,000,000 repays in month 1,
    # the missed balance goes 1-30 → 31-60 → 61-90 DPD and is charged off in month 4 (index 3).
    # The 90/10 zero-coupon deal: the senior loses nothing iff a ≤ 0.10, i.e. m ≤ 2; at m = 2.1,
    # a = 0.105: Sub loses all 100,000, the senior 5,000 = 0.5556% of 900,000, both in month 4.
    p = roll_rate_paths(1_000_000.0, 0.0, 1, roll_current=0.05, roll=[1, 1, 1], cure=[0, 0, 0])
    np.testing.assert_allclose(p.default[0], [0, 0, 0, 50_000.0, 0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(p.scheduled_principal[0, 0], 950_000.0)
    np.testing.assert_allclose(p.delinquency.state_balance[0, :3, 1:],
                               np.diag([50_000.0] * 3), atol=1e-9)  # one bucket a month
    deal = deal_from_dict(_deal())
    g = roll_grid(deal, 1_000_000.0, 0.0, 1, roll_current=0.05, roll=[1, 1, 1],
                  cure=[0, 0, 0], multipliers=[1.0, 2.0, 2.1, 30.0], severities=[1.0],
                  cprs=[0.0]).set_index(["roll_multiplier", "tranche"])
    assert g.loc[(1.0, "T0"), "loss"] == 0.0 and g.loc[(2.0, "T0"), "loss"] <= 1e-12
    assert g.loc[(2.1, "T0"), "loss"] == pytest.approx(5_000.0 / 900_000.0, abs=1e-12)
    assert g.loc[(2.1, "T1"), "loss"] == pytest.approx(1.0, abs=1e-12)
    assert g.loc[(2.1, "T0"), "first_loss_month"] == 4 and g.loc[(1.0, "T1"), "first_loss_month"] == 4
    assert g.loc[(2.1, "T0"), "pool_cdl"] == pytest.approx(0.105, abs=1e-12)
    assert g.loc[(30.0, "T0"), "pool_cdl"] == pytest.approx(1.0, abs=1e-12)  # a capped at 1


def test_roll_rate_path_matches_the_markov_chain() -> None:
    # An independent check with cures: on a 0%-rate line maturing in 1 month (no prepayment) a
    # balance in current repays unless it misses, so the balances move as a Markov chain on
    # (current, 1-30, 31-60, 61-90, charged off, repaid) with the scaled rates; month t's
    # charge-off is the chain's charged-off mass added in step t, up to the last month of the
    # horizon (WAM + 2K = 7 months), when whatever is still delinquent is charged off and a
    # balance curing repays.
    rc, roll, cure, m = 0.2, np.array([0.3, 0.5, 0.6]), np.array([0.5, 0.3, 0.2]), 1.5
    a, r = min(m * rc, 1.0), np.minimum(m * roll, 1 - cure)  # 0.3; 0.45, 0.7, 0.8 (capped)
    P = np.zeros((6, 6))
    P[0, 1], P[0, 5] = a, 1 - a
    for k in range(3):
        P[1 + k, 0] = cure[k]
        P[1 + k, 2 + k if k < 2 else 4] = r[k]
        P[1 + k, 1 + k] = 1 - r[k] - cure[k]
    P[4, 4] = P[5, 5] = 1.0
    x, charged = np.array([1_000_000.0, 0, 0, 0, 0, 0]), []
    for _ in range(6):
        nxt = x @ P
        charged.append(nxt[4] - x[4])
        x = nxt
    p = roll_rate_paths(1_000_000.0, 0.0, 1, roll_current=rc, roll=roll, cure=cure,
                        multiplier=m, severity=0.4, lag=1)
    np.testing.assert_allclose(p.default[0, :6], charged, rtol=1e-12, atol=1e-9)
    # month 7 (the last): every delinquent balance that does not cure is charged off (a cure
    # repays), and so is the current balance that misses
    np.testing.assert_allclose(p.default[0, 6], (x[1:4] * (1 - cure)).sum() + a * x[0],
                               rtol=1e-12)
    np.testing.assert_allclose(p.recovery[0, 1:], 0.6 * p.default[0, :-1])
    np.testing.assert_allclose(p.balance_bop - p.default - p.scheduled_principal
                               - p.prepayment, p.balance_eop, atol=1e-6)
    assert p.default.sum() + p.scheduled_principal.sum() == pytest.approx(1_000_000.0)


def test_roll_rate_multiplier_moves_losses_and_dpd_triggers() -> None:
    # A 24% line over 12 months at CPR 10%: a higher multiplier never lowers the pool's
    # cumulative charge-offs or a class's loss; the paths' 30+ DPD states reach the deal's
    # trigger (the waterfall's delinquency metric is the 31+ DPD balance over the collateral)
    d = _deal(shares=(0.8, 0.2), coupons=(0.05, 0.0))
    d["reserve"] = {"target": 0.01}
    d["triggers"] = [{"name": "dq", "metric": "dpd30", "level": 0.05, "curable": True,
                      "effect": "trap_cash"}]
    deal = deal_from_dict(d)
    kw = {"roll_current": 0.02, "roll": [0.4, 0.6, 0.8], "cure": [0.4, 0.2, 0.1]}
    g = roll_grid(deal, 1_000_000.0, 0.24, 12, multipliers=[0.0, 1.0, 2.0, 4.0],
                  severities=[0.7], cprs=[0.1], lag=2, **kw)
    cdl = g.groupby("roll_multiplier")["pool_cdl"].first().to_numpy()
    assert cdl[0] == 0.0 and np.all(np.diff(cdl) > 0)
    for _, rows in g.groupby("tranche"):
        assert np.all(np.diff(rows.sort_values("roll_multiplier")["loss"].to_numpy()) >= -1e-12)
    breached = []
    for m in (0.0, 4.0):
        p = roll_rate_paths(1_000_000.0, 0.24, 12, multiplier=m, severity=0.7, cpr=0.1, lag=2,
                            **kw)
        r = run_waterfall(deal, p)
        dpd = p.delinquency.dpd_balance(30)[0]
        np.testing.assert_allclose(r.metrics["delinquency"][0, :12],
                                   (dpd / np.maximum(p.balance_eop[0], 1e-9))[:12], rtol=1e-9)
        breached.append(bool(r.breached["dq"].any()))
    assert breached == [False, True]
    with pytest.raises(DealError, match="roll, cure"):
        roll_rate_paths(1e6, 0.1, 12, roll_current=0.02, roll=[0.5, 0.6], cure=[0.1, 0.1])
    with pytest.raises(DealError, match="roll, cure"):
        roll_rate_paths(1e6, 0.1, 12, roll_current=0.02, roll=[0.5, 0.6, 0.7],
                        cure=[0.6, 0.1, 0.1])


def test_grid_cli_roll_multipliers(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import tomli_w

    deal_file = tmp_path / "d.toml"
    deal_file.write_text(tomli_w.dumps(_deal()), encoding="utf-8")
    out = tmp_path / "g.xlsx"
    base = ["tranche", "grid", "--structure", deal_file, "--balance", "1000000", "--wac", "0",
            "--wam", "1", "--cdr", "0", "--severity", "1", "--cpr", "0", "--recovery-lag", "0",
            "--tol", "1e-4"]
    r = cli(*base, "--roll-multipliers", "1,2.1", "--roll-current", "0.05", "--roll", "1,1,1",
            "--cure", "0,0,0", "--out", out)
    assert r.code == 0, r.err
    g = read_tables(out, sheet_name="roll_grid").set_index(["roll_multiplier", "tranche"])
    assert g.loc[(1.0, "T0"), "loss"] == 0.0  # the hand case above
    assert g.loc[(2.1, "T0"), "loss"] == pytest.approx(5_000.0 / 900_000.0, abs=1e-9)
    r = cli(*base, "--roll-multipliers", "1,2")
    assert r.code == 2 and "--roll-current" in r.err and "--cure" in r.err
    r = cli(*base, "--roll-multipliers", "1", "--roll-current", "0.05", "--roll", "0.9,1,1",
            "--cure", "0.2,0,0")
    assert r.code == 2 and "roll + cure" in r.err
    r = cli(*base, "--roll-multipliers", "1,-1", "--roll-current", "0.05", "--roll", "1,1,1",
            "--cure", "0,0,0")
    assert r.code == 2 and "--roll-multipliers" in r.err


def test_a_revolving_deal_buys_new_loans_of_the_line_hand_worked() -> None:
    # A 90/10 sequential zero-coupon deal on 1,000,000 at 0%, WAM 2, no defaults or
    # prepayments, revolving for 1 month; closing 2026-01-15, payments on the 15th. By hand,
    # the purchases being new loans of the line (a fresh 2-month schedule, as simulate buys
    # new loans, docs/model.md section 7): month 1 collects 500,000 and buys 500,000 of new
    # loans, which repay 250,000 in months 2 and 3; month 2 collects 500,000 + 250,000 = 750,000
    # for T0, month 3 the last 250,000: 150,000 to T0 and 100,000 to T1. Act/365F from closing:
    # 2026-03-15 is 59 days, 2026-04-15 90 days, so WAL(T0) = (59·750,000 + 90·150,000) /
    # (365·900,000) and WAL(T1) = 90/365. (The scaling approximation doubled the old pool and
    # repaid both classes in month 2: WAL 59/365 each.)
    d = _deal()
    d["revolving"] = {"months": 1}
    deal = deal_from_dict(d)
    out = grid(deal, 1_000_000.0, 0.0, 2, cdrs=[0.0], severities=[1.0], cprs=[0.0]).set_index(
        "tranche")
    assert out.loc["T0", "wal"] == pytest.approx((59 * 750_000 + 90 * 150_000) / (365 * 900_000),
                                                 rel=1e-12)
    assert out.loc["T1", "wal"] == pytest.approx(90 / 365, rel=1e-12)
    assert (out["loss"] == 0.0).all()


def test_a_revolving_deal_in_the_roll_grid_loses_more_only_as_rolls_rise() -> None:
    # The CN example deal (revolving 12 months) on the README's roll-rate chain: a class's loss
    # never falls as the roll-forward rates rise (the STYLE invariant: losses rise with the
    # default rate), and while the deal's whole net collateral loss (initial pool and purchases,
    # the waterfall's CNL x initial) stays below Sub's 7% no note above it can lose (at 0.5x:
    # the CNL is checked, then A's and B's losses). The scaling
    # approximation, which grew the seasoned pool's delinquent remainder into the collateral,
    # had A lose 5% at 0.5x the rolls and nothing at 2x.
    from tranching.deal import load_deal

    deal = load_deal("examples/deal_cn_consumer.toml")
    chain = dict(roll_current=0.02, roll=[0.4, 0.6, 0.8], cure=[0.4, 0.2, 0.1])
    out = roll_grid(deal, 1e8, 0.2, 12, **chain, multipliers=[0.5, 1.0, 2.0, 4.0],
                    severities=[0.8], cprs=[0.1])
    for name in ("A", "B", "Sub"):
        losses = out[out["tranche"] == name].sort_values("roll_multiplier")["loss"].to_numpy()
        assert np.all(np.diff(losses) >= -1e-12), (name, losses)
    for m in (0.5,):
        from tranching.grid import revolving_profile

        paths = roll_rate_paths(1e8, 0.2, 12, **chain, multiplier=m, severity=0.8, cpr=0.1)
        res = run_waterfall(deal, paths, replenishment=revolving_profile(
            deal, lambda b, m=m: roll_rate_paths(b, 0.2, 12, **chain, multiplier=m, severity=0.8,
                                                 cpr=0.1)))
        assert res.metrics["cnl"][0, -1] < 0.07
        rows = out[out["roll_multiplier"] == m].set_index("tranche")
        assert rows.loc["A", "loss"] == 0.0 and rows.loc["B", "loss"] == 0.0
