"""The month loop's shortcut for inert months (``tranching.waterfall.inert_month``, ``Tape.repeat``):
once every path's deal has ended at a clean-up call and nothing is left to pay, a month whose
flags (last month, step-down) equal the previous inert month's records that month's rows
instead of running the steps. The oracle is the same run with the shortcut switched off (every
month computed): every array of the result must have the same bytes, on random deals that use
every mechanic (CN tax, shortfall undertaking, servicer advances, collection accounts, events of
default, pro-rata step-down dates, OC / CNL / delinquency triggers, reserves, revolving periods
with and without a replenishment profile) and calls early enough to leave inert months. And
the tape's buffers, which are not zeroed up front: every element the result holds is written
(``np.empty`` poisoned with NaN gives the same bytes)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import waterfall_fingerprint as wfp  # noqa: E402

from tranching import waterfall  # noqa: E402
from tranching.deal import deal_from_dict, load_deal  # noqa: E402
from tranching.waterfall import PoolMonth, WaterfallResult, inert_month  # noqa: E402


def _arrays(result: WaterfallResult) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in result.__dataclass_fields__:
        v = getattr(result, name)
        if isinstance(v, np.ndarray):
            out[name] = v
        elif isinstance(v, dict):
            out.update({f"{name}.{k}": a for k, a in v.items()})
    return out


def _same_bytes(got: WaterfallResult, want: WaterfallResult) -> None:
    a, b = _arrays(got), _arrays(want)
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert np.ascontiguousarray(a[k]).tobytes() == np.ascontiguousarray(b[k]).tobytes(), k


def _with_and_without(monkeypatch: pytest.MonkeyPatch, deal: Any, paths: Any,
                      profile: Any = None, threads: int = 1) -> tuple[WaterfallResult,
                                                                      WaterfallResult, int]:
    """(run with the shortcut, run computing every month, months repeated)."""
    repeated = []
    repeat = waterfall.Tape.repeat

    def counting(self: waterfall.Tape, t: int) -> None:
        repeated.append(t)
        repeat(self, t)

    with monkeypatch.context() as mp:
        mp.setattr(waterfall.Tape, "repeat", counting)
        got = waterfall.run_waterfall(deal, paths, profile, threads=threads)
    with monkeypatch.context() as mp:
        mp.setattr(waterfall, "inert_month", lambda *a: False)
        want = waterfall.run_waterfall(deal, paths, profile, threads=threads)
    return got, want, len(repeated)


def _cn_mechanics(d: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Add the CN deal's mechanics at random: tax, undertaking, advances, accounts, an event
    of default, a step-down date for pro-rata deals; and a clean-up call early enough."""
    d = copy.deepcopy(d)
    names = [t["name"] for t in d["tranches"]]
    d["deal"]["clean_up_call"] = float(rng.uniform(0.1, 0.5))
    if rng.random() < 0.5:
        d["tax"] = {"rate": float(rng.uniform(0, 0.06)), "price_inclusive": bool(rng.random() < 0.5)}
    if rng.random() < 0.5:
        d["shortfall_undertaking"] = {"cap": float(rng.uniform(0, 0.1)), "tranches": names[:1],
                                      "provider": "platform"}
    if rng.random() < 0.5:
        d["advances"] = {"limit": float(rng.uniform(0, 0.02))}
    if rng.random() < 0.5:
        d["accounts"] = {"recoveries": str(rng.choice(["principal", "interest"])),
                         "principal_covers_expenses": bool(rng.random() < 0.5),
                         "principal_covers_interest": names[: int(rng.integers(0, 2))],
                         "interest_covers_principal": bool(rng.random() < 0.5)}
    if rng.random() < 0.4:
        d["triggers"] = [*d.get("triggers", []), {
            "name": "eod", "metric": "cnl", "level": float(rng.uniform(0.0, 0.08)),
            "curable": False, "effect": "accelerate"}]
    if d["deal"]["principal_mode"] == "pro_rata" and rng.random() < 0.7:
        d["deal"]["step_down_month"] = int(rng.integers(2, 30))
    return d


@pytest.mark.parametrize("threads", [1, 2])
def test_inert_months_repeat_exactly_what_computing_them_gives(
        monkeypatch: pytest.MonkeyPatch, threads: int) -> None:
    rng = np.random.default_rng(8)
    hit = 0
    for k in range(48):
        d = _cn_mechanics(wfp.random_deal(rng), rng)
        try:
            deal = deal_from_dict(d)
        except Exception:  # a random combination the deal format refuses (e.g. a cover rule)
            continue
        n_months = int(rng.integers(12, 40))
        # mostly low losses: a deal whose notes are written down keeps a PDL after the call
        # (and accrues interest on it), so its months are not inert
        pd = float(rng.uniform(0.0002, 0.006) if rng.random() < 0.75 else rng.uniform(0.006, 0.06))
        paths = wfp.pool(120, n_months, 300 + k, pd=pd,
                         rho=float(rng.uniform(0.0, 0.5)), term=int(rng.integers(1, 13)),
                         smm=float(rng.uniform(0, 0.1)),
                         recovery_rate=float(rng.uniform(0, 0.9)),
                         lag=int(rng.integers(0, 7)), apr=float(rng.uniform(0, 0.36)))
        profile = None
        if deal.revolving_months and rng.random() < 0.6:
            profile = wfp.pool(120, int(rng.integers(1, 25)), 700 + k,
                               term=int(rng.integers(1, 25)), initial=float(rng.uniform(1, 1e6)))
        got, want, repeated = _with_and_without(monkeypatch, deal, paths, profile, threads)
        _same_bytes(got, want)
        hit += repeated > 0
    # the shortcut was taken in several deals (most others keep a junior PDL after the call)
    assert hit >= 5


@pytest.mark.parametrize(("pd", "inert"), [(0.001, True), (0.002, True), (0.02, False)])
def test_the_cn_deal_with_a_profile_repeats_its_months_after_the_calls(
        monkeypatch: pytest.MonkeyPatch, pd: float, inert: bool) -> None:
    """B1's case: the CN example deal, revolving with a replenishment profile, on a pool that
    every path calls; the months after the last call are repeated, not computed, unless a
    path keeps a PDL after its call (its coupon accrues on it: pd 0.02)."""
    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")
    paths = wfp.pool(500, 30, 11, term=12, pd=pd, rho=0.3, apr=0.3)
    profile = wfp.pool(500, 12, 12, term=9, initial=1e6, apr=0.3)
    got, want, repeated = _with_and_without(monkeypatch, deal, paths, profile)
    _same_bytes(got, want)
    assert got.call_proceeds.any(axis=1).all()  # every path is called
    assert (repeated > 0) == inert
    assert inert == (not got.writedown_outstanding[:, :, -1].any())


def test_a_step_down_date_among_the_inert_months_is_computed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A pro-rata deal whose step-down date falls after every path is called: the pro-rata
    flag of the dead paths turns on at the step-down date and off in the last month, so those
    two months are computed; an OC trigger records NaN (no notes left), a latched non-curable
    trigger stays in force, and the months between are repeated."""
    d = {
        "deal": {"name": "step-down", "closing_date": wfp.dt.date(2026, 1, 15),
                 "first_payment_date": wfp.dt.date(2026, 2, 15), "principal_mode": "pro_rata",
                 "step_down_month": 24, "clean_up_call": 0.2, "initial_oc": 0.1},
        "tranches": [{"name": "A", "size": 0.8, "coupon": 0.04, "holder": "investors"},
                     {"name": "B", "size": 0.1, "coupon": 0.07, "holder": "platform"}],
        "fees": [{"name": "servicer", "kind": "servicer", "rate": 0.01}],
        "reserve": {"target": 0.01, "basis": "initial", "funding": "closing"},
        "triggers": [{"name": "oc", "metric": "oc", "level": 1.05, "curable": True,
                      "effect": "sequential"},
                     {"name": "cnl", "metric": "cnl", "level": 0.0005, "curable": False,
                      "effect": "trap_cash"}],
        "waterfall": [{"step": "fee", "fee": "servicer"}, {"step": "interest", "tranche": "A"},
                      {"step": "interest", "tranche": "B"}, {"step": "reserve"},
                      {"step": "principal", "tranches": ["A", "B"]}, {"step": "residual"}],
    }
    deal = deal_from_dict(d)
    paths = wfp.pool(300, 36, 21, term=16, pd=0.0005, rho=0.2, apr=0.3)
    got, want, repeated = _with_and_without(monkeypatch, deal, paths)
    _same_bytes(got, want)
    first = int(got.call_month.max()) + 1  # every path called before this month (index)
    assert got.call_month.min() >= 0 and first < 20
    # months first … 35 inert; computed: the first (its predecessor held calls), the
    # step-down month (index 23) and the last
    assert repeated == (36 - first) - 3
    assert not got.pro_rata[:, 21].any() and got.pro_rata[:, 23:35].all()
    assert not got.pro_rata[:, 35].any()
    assert np.isnan(got.metrics["oc"][:, 30]).all()
    assert got.triggers["cnl"][:, 30].any()  # latched before the calls, still in force


def _cash(n: int, value: float = 0.0) -> PoolMonth:
    z = np.full(n, value)
    return PoolMonth(scale=np.zeros(n), interest=z, principal=z.copy(), recovery=z.copy(),
                     default=z.copy(), balance_bop=z.copy(), balance_eop=z.copy(),
                     collections=z.copy())


def test_inert_month_needs_every_path_ended_and_every_amount_plus_zero() -> None:
    ended = np.ones(4, dtype=bool)
    ledger = np.zeros((3, 4))
    assert inert_month(ended, _cash(4), ledger, np.zeros(4))
    assert not inert_month(np.array([True, True, False, True]), _cash(4), ledger)
    assert not inert_month(ended, _cash(4, 1e-300), ledger)  # pool cash left
    assert not inert_month(ended, _cash(4, -0.0), ledger)  # −0.0 is not +0.0
    owed = ledger.copy()
    owed[2, 1] = 5.0
    assert not inert_month(ended, _cash(4), owed)  # a balance, shortfall or PDL left
    signed = ledger.copy()
    signed[0, 3] = -0.0
    assert not inert_month(ended, _cash(4), signed)
    assert not inert_month(ended, _cash(4), ledger, np.array([0.0, np.nan, 0.0, 0.0]))


class _PoisonedNumpy:
    """numpy, except that ``empty`` fills its arrays with NaN (True for bool): a buffer
    element the run reads or returns without writing it shows."""

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    @staticmethod
    def empty(shape: Any, dtype: Any = float, **kw: Any) -> np.ndarray:
        return np.full(shape, True if np.dtype(dtype) == np.bool_ else np.nan, dtype=dtype, **kw)


@pytest.mark.parametrize("threads", [1, 3])
def test_every_element_of_the_unzeroed_buffers_is_written(monkeypatch: pytest.MonkeyPatch,
                                                          threads: int) -> None:
    """The tape's buffers and the result's arrays come from ``np.empty``: with every such
    buffer filled with NaN / True first, the results have the same bytes (random deals with
    the CN mechanics, inert months among them, accelerated paths, and the CN deal)."""
    rng = np.random.default_rng(21)
    runs = [(load_deal(ROOT / "examples" / "deal_cn_consumer.toml"),
             wfp.pool(300, 30, 11, term=12, pd=0.02, rho=0.3, apr=0.3),
             wfp.pool(300, 12, 12, term=9, initial=1e6, apr=0.3))]
    while len(runs) < 16:
        try:
            deal = deal_from_dict(_cn_mechanics(wfp.random_deal(rng), rng))
        except Exception:  # a combination the deal format refuses
            continue
        paths = wfp.pool(90, int(rng.integers(6, 36)), len(runs), pd=float(rng.uniform(0.0005, 0.05)),
                         term=int(rng.integers(1, 20)), rho=0.3)
        profile = (wfp.pool(90, int(rng.integers(1, 20)), 50 + len(runs), term=8, initial=1e5)
                   if deal.revolving_months and rng.random() < 0.5 else None)
        runs.append((deal, paths, profile))
    for deal, paths, profile in runs:
        want = waterfall.run_waterfall(deal, paths, profile, threads=threads)
        with monkeypatch.context() as mp:
            mp.setattr(waterfall, "np", _PoisonedNumpy())
            got = waterfall.run_waterfall(deal, paths, profile, threads=threads)
        _same_bytes(got, want)
