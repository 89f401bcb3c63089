"""The cash-flow tape (tranching.tape): the hand-worked two-month case of test_reconcile on the
tape, the tape's own cash identity per date, and the choice of path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import test_reconcile as rc
from tranching_pathgen import paths_from_arrays, synthetic_paths

from tranching.deal import deal_from_dict, load_deal
from tranching.errors import DealError
from tranching.tape import COLUMNS, cashflow_tape, choose_path
from tranching.waterfall import run_waterfall


def _hand():
    paths = paths_from_arrays(initial_balance=1_000_000.0,
                              interest=np.array([[15_000.0, 6_000.0]]),
                              scheduled_principal=np.array([[500_000.0, 380_000.0]]),
                              default=np.array([[100_000.0, 20_000.0]]),
                              recovery=np.array([[0.0, 30_000.0]]))
    deal = deal_from_dict(rc._hand_deal())
    return deal, run_waterfall(deal, paths)


def test_hand_worked_tape() -> None:
    # the figures of test_reconcile.test_hand_worked_two_months, row by row
    _, r = _hand()
    tape = cashflow_tape(r, 0)
    assert list(tape.columns) == list(COLUMNS)
    assert tape["item"].tolist()[:7] == ["A", "Z", "trustee", "reserve", "residual",
                                         "residual holder", "pool"]
    row = tape.set_index(["period", "item"])
    a1, z1, a2 = row.loc[(1, "A")], row.loc[(1, "Z")], row.loc[(2, "A")]
    assert (a1["balance_bop"], a1["due"], a1["paid"], a1["principal"], a1["balance_eop"]) == (
        800_000.0, 4_000.0, 4_000.0, 510_900.0, 289_100.0)
    assert (z1["writedown"], z1["pdl"], z1["balance_eop"]) == (89_100.0, 89_100.0, 110_900.0)
    assert (a2["due"], a2["principal"], a2["balance_eop"]) == (1_445.5, 289_100.0, 0.0)
    assert row.loc[(2, "residual"), "cash"] == 14_454.5
    assert row.loc[(2, "residual"), "excess_spread"] == 4_454.5
    assert row.loc[(2, "residual holder"), "cash"] == 110_900.0 + 14_454.5
    assert row.loc[(1, "pool"), "cash"] == 515_000.0 and row.loc[(2, "pool"), "cash"] == 416_000.0


@pytest.mark.parametrize("which", [None, 0, 7])
def test_tape_cash_identity_each_date(which) -> None:  # type: ignore[no-untyped-def]
    # pool cash = classes' cash + fees + reserve movement + residual + purchases, every date
    deal = load_deal(rc.ROOT / "examples" / "deal_us_consumer.toml")
    r = run_waterfall(deal, synthetic_paths(n_paths=40, n_months=30, seed=2, monthly_pd=0.01))
    tape = cashflow_tape(r, which)
    kinds = ["class", "fee", "reserve", "residual", "tax", "advances", "undertaking"]
    paid = tape[tape["kind"].isin(kinds)].groupby("period")["cash"].sum()
    pool = tape[tape["kind"] == "pool"].set_index("period")["cash"]
    purchases = r.purchases.mean(axis=0) if which is None else r.purchases[which]
    np.testing.assert_allclose(pool.to_numpy(), paid.to_numpy() + purchases, atol=1e-6)


def test_choose_path() -> None:
    deal = load_deal(rc.ROOT / "examples" / "deal_us_consumer.toml")
    r = run_waterfall(deal, synthetic_paths(n_paths=40, n_months=30, seed=2, monthly_pd=0.01,
                                            rho=0.3))
    loss = r.pool_cash["default"].sum(axis=1) - r.pool_cash["recovery"].sum(axis=1)
    assert choose_path(r, "expected") is None
    # p95 of 40 paths: the ceil(40 × 0.95) = 38th smallest pool loss
    assert loss[choose_path(r, "p95")] == np.sort(loss)[math.ceil(40 * 0.95) - 1]
    assert loss[choose_path(r, "p100")] == loss.max()
    assert choose_path(r, "3") == 3
    for bad in ("p0", "p101", "40", "worst", "-1"):
        with pytest.raises(DealError, match="--path"):
            choose_path(r, bad)
