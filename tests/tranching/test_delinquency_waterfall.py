"""The waterfall on the delinquency-state model's paths (docs/model.md 5.6, 8): the
delinquency triggers read the simulated 30+/60+/90+ DPD balances, the CNL trigger the
charge-offs and the recoveries that follow them. References: the paths' own state balances
and flows, summed by hand here."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from simulation_pools import assumptions, mixed_pool

from portfolio.montecarlo.assumptions import DelinquencyAssumptions
from portfolio.montecarlo.delinquency import simulate_delinquency
from tranching.deal import load_deal
from tranching.waterfall import run_waterfall

ROOT = Path(__file__).resolve().parents[2]


def _paths(co: int = 120):
    loans = mixed_pool(600, seed=21)
    a = assumptions(rho=0.15, recovery_rate=0.3)
    shape = a.default_hazard.shape
    dq = DelinquencyAssumptions(roll_current=np.full(shape, 0.04),
                                roll=np.full((*shape, 6), 0.5), cure=np.full((*shape, 6), 0.3),
                                charge_off_dpd=co)
    return simulate_delinquency(loans, dataclasses.replace(a, delinquency=dq),
                                400, 9, engine="loan")


def test_delinquency_triggers_read_the_simulated_dpd_balances_and_cnl_the_charge_offs() -> None:
    p = _paths()
    deal = load_deal(ROOT / "examples" / "deal_us_consumer.toml")
    wf = run_waterfall(deal, p)
    dq = p.delinquency
    assert dq is not None
    months = 6  # before any clean-up call
    eop = p.balance_eop[:, :months]
    for name, days in (("delinquency", 30), ("dpd60", 60), ("dpd90", 90)):
        want = dq.dpd_balance(days)[:, :months] / eop
        np.testing.assert_allclose(wf.metrics[name][:, :months], want, rtol=1e-12, atol=1e-15)
    # a pool current at the cut-off: nothing past 30 days in month 1 on any path
    assert np.all(wf.metrics["delinquency"][:, 0] == 0.0)
    assert wf.metrics["delinquency"][:, 3].mean() > 0  # 31-60 from month 2 on
    # with charge-off at 120 DPD the 90+ bucket (91-120) is not empty
    assert wf.metrics["dpd90"][:, 4].mean() > 0
    net = np.cumsum(p.default - p.recovery, axis=1)[:, :months] / p.initial_balance
    np.testing.assert_allclose(wf.metrics["cnl"][:, :months], net, rtol=1e-12, atol=1e-15)


def test_charge_off_at_90_leaves_no_90_plus_balance() -> None:
    p = _paths(co=90)
    wf = run_waterfall(load_deal(ROOT / "examples" / "deal_us_consumer.toml"), p)
    assert np.all(wf.metrics["dpd90"] == 0.0)
    assert wf.metrics["dpd60"][:, 3].mean() > 0


def test_float32_state_balances_are_summed_as_numpy_sums_them() -> None:
    """Balances by state held in float32 (not what the simulation gives, but what a caller
    may pass) take the numpy path: the 30+/60+ DPD ratios are float32 sums of the states, as
    ``dpd_balance`` gives them, over the collateral."""
    p = _paths()
    assert p.delinquency is not None
    sb32 = p.delinquency.state_balance.astype(np.float32)
    p32 = dataclasses.replace(p, delinquency=dataclasses.replace(p.delinquency,
                                                                 state_balance=sb32))
    wf = run_waterfall(load_deal(ROOT / "examples" / "deal_us_consumer.toml"), p32)
    months = 6
    eop = p.balance_eop[:, :months]
    dq32 = p32.delinquency
    assert dq32 is not None
    for name, days in (("delinquency", 30), ("dpd60", 60)):
        want = dq32.dpd_balance(days)[:, :months].astype(np.float64) / eop
        np.testing.assert_allclose(wf.metrics[name][:, :months], want, rtol=1e-12, atol=1e-15)
