"""Waterfall invariants on every path and month, over random structures and random pool cash flows.

- cash in = cash out + change in reserve (to 1e-6 of the pool balance);
- no tranche receives more than it is owed (interest ≤ due, principal ≤ balance, reimbursement ≤
  written-down amount, total principal ≤ original balance);
- write-downs reach tranches bottom-up (a tranche is written down only once every junior
  tranche's balance is zero) and balances never exceed the collateral;
- under sequential pay a junior receives no principal while a senior is outstanding;
- a trigger in force has exactly its documented effect (turbo: all notes due, no residual while
  notes remain unpaid and no revolving; end_revolving: no revolving from then on; trap_cash: no
  residual; sequential: the sequential rule holds; accelerate: sequential, no residual while
  notes remain unpaid, no revolving, the reserve released, for good);
- the PDL is never negative; juniors lose before seniors (a senior loses principal only once
  every junior has lost all of its own, for deals that pay sequentially and refill no PDL);
  the shortfall undertaking never pays more than its cap.
The random structures use every option of the deal format: full or outstanding accrual,
interest on interest, PDL refills per class, step-down dates, DPD and CNL-over-purchases
metrics averaged over months, acceleration, tax, the shortfall undertaking, servicer advances,
separate collection accounts with every transfer rule.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from tranching_pathgen import realistic_pool_paths, synthetic_paths

from tranching.deal import Deal, Effect, PrincipalMode, ReimburseStep, deal_from_dict, load_deal
from tranching.waterfall import WaterfallResult, run_waterfall

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-6


@st.composite
def deals(draw: st.DrawFn) -> dict:
    n = draw(st.integers(2, 4))
    oc0 = draw(st.sampled_from([0.0, 0.0, 0.05, 0.1]))
    weights = [draw(st.floats(0.05, 1.0)) for _ in range(n)]
    shares = [w / sum(weights) * (1 - oc0) for w in weights]
    shares[-1] = 1 - oc0 - sum(shares[:-1])
    tranches = []
    for i, s in enumerate(shares):
        t = {"name": f"T{i}", "size": s, "holder": "investors"}
        if i < n - 1 or draw(st.booleans()):
            t["coupon"] = draw(st.floats(0.0, 0.15))
        tranches.append(t)
    fees = []
    if draw(st.booleans()):
        fees.append({"name": "servicer", "kind": "servicer", "rate": draw(st.floats(0, 0.03))})
    if draw(st.booleans()):
        fees.append({"name": "trustee", "kind": "fixed", "amount": draw(st.floats(0, 3000))})
    d: dict = {
        "deal": {"name": "random", "closing_date": dt.date(2026, 1, 15),
                 "first_payment_date": dt.date(2026, 2, 15),
                 "principal_mode": draw(st.sampled_from(["sequential", "pro_rata", "turbo"])),
                 "initial_oc": oc0},
        "tranches": tranches,
        "fees": fees,
    }
    if draw(st.booleans()):
        d["deal"]["clean_up_call"] = draw(st.floats(0.0, 0.3))
    d["deal"]["accrual"] = draw(st.sampled_from(["full", "outstanding"]))
    d["deal"]["interest_on_shortfall"] = draw(st.booleans())
    if d["deal"]["principal_mode"] == "pro_rata" and draw(st.booleans()):
        d["deal"]["step_down_month"] = draw(st.integers(1, 12))
    if draw(st.booleans()):
        d["tax"] = {"rate": draw(st.floats(0, 0.1)), "price_inclusive": draw(st.booleans())}
    if draw(st.booleans()):
        d["shortfall_undertaking"] = {"cap": draw(st.floats(0, 0.1)),
                                      "tranches": [tranches[0]["name"]]}
    if draw(st.booleans()):
        d["advances"] = {"limit": draw(st.floats(0, 0.02))}
    if draw(st.booleans()):
        names = [t["name"] for t in tranches[:-1]]
        d["accounts"] = {
            "recoveries": draw(st.sampled_from(["principal", "interest"])),
            "principal_covers_expenses": draw(st.booleans()),
            "principal_covers_interest": draw(st.lists(st.sampled_from(names), unique=True)),
            "interest_covers_principal": draw(st.booleans())}
    has_reserve = draw(st.booleans())
    if has_reserve:
        d["reserve"] = {"target": draw(st.floats(0, 0.05)),
                        "basis": draw(st.sampled_from(["initial", "current"])),
                        "floor": draw(st.floats(0, 0.01)),
                        "funding": draw(st.sampled_from(["closing", "excess_spread"]))}
    if draw(st.booleans()):
        d["overcollateralisation"] = {"target": draw(st.floats(0, 0.3)),
                                      "basis": draw(st.sampled_from(["initial", "current"])),
                                      "floor": draw(st.floats(0, 0.02))}
    revolving = draw(st.integers(0, 8))
    if revolving:
        d["revolving"] = {"months": revolving}
    effects = ["sequential", "turbo", "accelerate"] + (["trap_cash"] if has_reserve else []) + (
        ["end_revolving"] if revolving else [])
    triggers = []
    for k in range(draw(st.integers(0, 3))):
        metric = draw(st.sampled_from(["cnl", "oc", "delinquency", "dpd30", "dpd60", "dpd90"]))
        level = draw(st.floats(0.8, 1.3)) if metric == "oc" else draw(st.floats(0.0, 0.15))
        trig = {"name": f"g{k}", "metric": metric, "level": level,
                "curable": draw(st.booleans()), "effect": draw(st.sampled_from(effects)),
                "average_months": draw(st.integers(1, 3))}
        if metric == "cnl":
            trig["denominator"] = draw(st.sampled_from(["initial", "initial_plus_purchases"]))
        triggers.append(trig)
    d["triggers"] = triggers
    # priority of payments: fees, interest, then either reserve-before-principal or after
    steps: list[dict] = [{"step": "fee", "fee": f["name"]} for f in fees]
    steps += [{"step": "interest", "tranche": t["name"]} for t in tranches if t.get("coupon", 0) > 0]
    principal = [{"step": "principal", "tranches": [t["name"] for t in tranches]}]
    reserve = [{"step": "reserve"}] if has_reserve else []
    steps += reserve + principal if draw(st.booleans()) else principal + reserve
    refill = draw(st.sampled_from(["none", "one", "per_class"]))
    if refill == "one":
        steps.append({"step": "reimburse"})
    elif refill == "per_class":  # each class's PDL refilled right after its interest
        out: list[dict] = []
        for s in steps:
            out.append(s)
            if s["step"] == "interest":
                out.append({"step": "reimburse", "tranches": [s["tranche"]]})
        steps = out
    steps.append({"step": "residual"})
    d["waterfall"] = steps
    return d


pools = st.fixed_dictionaries({
    "n_months": st.integers(3, 26),
    "seed": st.integers(0, 2**31),
    "monthly_pd": st.floats(0.0, 0.08),
    "rho": st.floats(0.0, 0.5),
    "smm": st.floats(0.0, 0.1),
    "recovery_rate": st.floats(0.0, 0.9),
    "lag": st.integers(0, 6),
    "apr": st.floats(0.0, 0.36),
    "term": st.integers(1, 24),
})


def check_invariants(deal: Deal, r: WaterfallResult, init: float) -> None:
    tol = TOL * init
    # cash in = cash out + change in reserve, every path and month
    assert np.abs(r.conservation_error()).max() <= tol
    # nothing negative
    for arr in (r.interest_paid, r.principal_paid, r.reimbursed, r.balance, r.writedown,
                r.residual, r.reserve, r.purchases):
        assert arr.min() >= -tol
    for v in r.fees_paid.values():
        assert v.min() >= -tol
    # no tranche receives more than owed
    assert np.all(r.interest_paid <= r.interest_due + tol)
    bal_bop = np.concatenate(
        [np.broadcast_to(r.original_balance[:, None, None], r.balance.shape[:2] + (1,)),
         r.balance[:, :, :-1]], axis=2)
    assert np.all(r.principal_paid <= bal_bop + tol)
    wd_bop = np.concatenate([np.zeros(r.balance.shape[:2] + (1,)), r.writedown_outstanding[:, :, :-1]],
                            axis=2)
    assert np.all(r.reimbursed <= wd_bop + tol)
    assert np.all(r.principal_received <= r.original_balance[:, None] + tol)
    for name, fee in r.fees_paid.items():
        assert np.all(fee <= r.fees_due[name] + tol)
    # everything is repaid or written off by the legal final (last month)
    assert np.abs(r.balance[:, :, -1]).max() <= tol
    np.testing.assert_allclose(r.tranche_loss, r.writedown_outstanding[:, :, -1], atol=tol)
    # write-downs bottom-up: written down in a month only if every junior is at zero after it
    nt = r.balance.shape[0]
    for j in range(nt - 1):
        hit = r.writedown[j] > tol
        assert np.all(r.balance[j + 1:, hit] <= tol)
    # balances never exceed the collateral held (after write-downs)
    assert np.all(r.balance.sum(axis=0) <= r.collateral + tol)
    # sequential pay: a junior gets principal only once every senior is paid off this month
    seq_state = np.full(r.residual.shape, deal.principal_mode is not PrincipalMode.PRO_RATA)
    if deal.step_down_month is not None:
        seq_state[:, :deal.step_down_month - 1] = True
    seq_state |= r.accelerated
    for trig in deal.triggers:
        if trig.effect in (Effect.SEQUENTIAL, Effect.TURBO):
            seq_state |= r.triggers[trig.name]
    after = bal_bop - r.principal_paid
    for j in range(1, nt):
        paid_junior = (r.principal_paid[j] > tol) & seq_state
        assert np.all(after[:j][:, paid_junior] <= tol)
    # trigger effects
    last = np.zeros(r.residual.shape, dtype=bool)
    last[:, -1] = True
    final = last | (r.call_proceeds > 0)
    for trig in deal.triggers:
        state = r.triggers[trig.name]
        if trig.effect is Effect.TURBO:
            assert not np.any(r.revolving & state)
            # full turbo: cash left for the residual only once every note is paid off
            notes_left = after.sum(axis=0) > tol
            assert np.all(r.residual[state & notes_left] <= tol)
        if trig.effect in (Effect.TURBO, Effect.END_REVOLVING):
            ever = np.maximum.accumulate(state, axis=1)
            assert not np.any(r.revolving & ever)
        if trig.effect is Effect.TRAP_CASH:
            # an acceleration releases the reserve and overrides the trap: once every note is
            # paid, what is left goes to the residual holder
            assert np.all(r.residual[state & ~final & ~r.accelerated] <= tol)
        if not trig.curable:
            assert np.all(np.diff(state.astype(int), axis=1) >= 0)
        if trig.effect is Effect.ACCELERATE:
            assert np.all(r.accelerated[state])
    # acceleration: for good, sequential, no revolving, the reserve released, no residual while
    # notes are unpaid
    assert np.all(np.diff(r.accelerated.astype(int), axis=1) >= 0)
    assert not np.any(r.revolving & r.accelerated)
    assert np.all(r.reserve[r.accelerated] <= tol)
    assert np.all(r.residual[r.accelerated & (after.sum(axis=0) > tol)] <= tol)
    # the PDL is never negative; the undertaking pays at most its cap
    assert r.pdl.min() >= -tol
    su = deal.shortfall_undertaking
    assert np.all(r.support_drawn <= (su.cap * init if su else 0.0) + tol)
    # juniors lose before seniors (sequential pay, no PDL refills)
    if deal.principal_mode is not PrincipalMode.PRO_RATA and not any(
            isinstance(s, ReimburseStep) for s in deal.waterfall):
        loss = r.tranche_loss
        for j in range(nt - 1):
            senior_lost = loss[j] > tol
            for k in range(j + 1, nt):
                assert np.all(loss[k, senior_lost] >= r.original_balance[k] - tol)


@given(deal_dict=deals(), pool=pools)
def test_invariants_random_structures_and_pools(deal_dict: dict, pool: dict) -> None:
    deal = deal_from_dict(deal_dict)
    paths = synthetic_paths(n_paths=12, initial_balance=1_000_000.0, **pool)
    r = run_waterfall(deal, paths)
    check_invariants(deal, r, paths.initial_balance)


def test_invariants_on_the_example_deals() -> None:
    for name in ("deal_cn_consumer.toml", "deal_us_consumer.toml"):
        deal = load_deal(ROOT / "examples" / name)
        for pd_ in (0.002, 0.01, 0.04):
            paths = synthetic_paths(n_paths=300, n_months=30, seed=7, monthly_pd=pd_, rho=0.2)
            r = run_waterfall(deal, paths)
            check_invariants(deal, r, paths.initial_balance)


def test_invariants_on_the_example_deals_with_monte_carlo_paths() -> None:
    # the Monte Carlo engine's paths of a mixed 2,000-loan pool, base and 4x hazards
    for pd_scale in (1.0, 4.0):
        paths = realistic_pool_paths(pd_scale=pd_scale)
        for name in ("deal_cn_consumer.toml", "deal_us_consumer.toml"):
            deal = load_deal(ROOT / "examples" / name)
            check_invariants(deal, run_waterfall(deal, paths), paths.initial_balance)


def test_no_defaults_no_fees_pass_through_pays_pool_principal() -> None:
    # A zero-loss pool and a fee-free sequential deal: every note is repaid in full, the notes
    # receive exactly the pool's principal collections in seniority order, and the residual gets
    # the pool interest minus the note coupons (hand identity: cash in = cash out).
    d = {"deal": {"name": "p", "closing_date": dt.date(2026, 1, 1),
                  "first_payment_date": dt.date(2026, 2, 1)},
         "tranches": [{"name": "A", "size": 0.7, "coupon": 0.04}, {"name": "Z", "size": 0.3}]}
    deal = deal_from_dict(d)
    paths = synthetic_paths(n_paths=3, n_months=12, monthly_pd=0.0, smm=0.0, term=12)
    r = run_waterfall(deal, paths)
    assert r.tranche_loss.max() < 1e-6
    pool_principal = paths.scheduled_principal + paths.prepayment
    np.testing.assert_allclose(r.principal_paid.sum(axis=0), pool_principal, atol=1e-6)
    a_done = np.argmax(r.balance[0, 0] <= 1e-9)
    assert np.all(r.principal_paid[1, 0, :a_done] == 0)
    np.testing.assert_allclose(r.residual, paths.interest - r.interest_paid[0], atol=1e-6)
