"""Separate interest and principal collection accounts (收入分账户 / 本金分账户) worked by hand,
to the cent: which account pays which step, the cover rules in each direction, where recoveries
go, the one pot at the legal final; and the reconciliation closing with the transfers on.

Pool 1,000,000.00; A 800,000.00 at 12% (1% a month), Z 200,000.00 (subordinated, no coupon);
a fixed trustee fee of 1,000.00 a month. Priority: fee, interest A, principal A→Z, residual.
Two months; month 2 is the legal final (the accounts are one pot then), month 1 is checked:

              bop         interest   principal   default   eop
  month 1   1,000,000.00   I1       100,000.00  50,000.00  850,000.00
  month 2     850,000.00  10,000.00 850,000.00       0.00        0.00

PDA in month 1 (sequential, no OC target) = notes 1,000,000 − pool 850,000 = 150,000, all to A.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tranching_pathgen import paths_from_arrays, realistic_pool_paths

from tranching.deal import Accounts, deal_from_dict, load_deal
from tranching.errors import DealError
from tranching.reconcile import reconcile
from tranching.tape import cashflow_tape
from tranching.waterfall import run_waterfall

ROOT = Path(__file__).resolve().parents[2]
CENT = 0.005


def _deal(accounts: dict[str, Any] | None) -> Any:
    d: dict[str, Any] = {
        "deal": {"name": "accounts", "closing_date": dt.date(2026, 1, 1),
                 "first_payment_date": dt.date(2026, 2, 1)},
        "tranches": [{"name": "A", "size": 0.8, "coupon": 0.12}, {"name": "Z", "size": 0.2}],
        "fees": [{"name": "trustee", "kind": "fixed", "amount": 1000.0}],
        "waterfall": [{"step": "fee", "fee": "trustee"}, {"step": "interest", "tranche": "A"},
                      {"step": "principal", "tranches": ["A", "Z"]}, {"step": "residual"}]}
    if accounts is not None:
        d["accounts"] = accounts
    return deal_from_dict(d)


def _run(accounts: dict[str, Any] | None, interest1: float, recovery1: float = 0.0):
    paths = paths_from_arrays(initial_balance=1_000_000.0,
                              interest=np.array([[interest1, 10_000.0]]),
                              scheduled_principal=np.array([[100_000.0, 850_000.0]]),
                              default=np.array([[50_000.0, 0.0]]),
                              recovery=np.array([[recovery1, 0.0]]))
    return run_waterfall(_deal(accounts), paths)


def _month1(r) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return {"fee": float(r.fees_paid["trustee"][0, 0]),
            "int_A": float(r.interest_paid[0, 0, 0]),
            "short_A": float(r.interest_shortfall[0, 0, 0]),
            "prin_A": float(r.principal_paid[0, 0, 0]),
            "wd_Z": float(r.writedown[1, 0, 0]),
            "residual": float(r.residual[0, 0]),
            "to_interest": float(r.accounts["to_interest"][0, 0]) if r.accounts else 0.0,
            "to_principal": float(r.accounts["to_principal"][0, 0]) if r.accounts else 0.0}


def _close(got: dict[str, float], want: dict[str, float]) -> None:
    for k, v in want.items():
        assert abs(got[k] - v) <= CENT, (k, got[k], v)


def test_principal_account_covers_senior_interest() -> None:
    # I1 = 5,000. Interest account 5,000: fee 1,000 → 4,000; A's interest 800,000 × 1% = 8,000:
    # 4,000 from the interest account, 4,000 from the principal account (A is covered) →
    # principal account 100,000 − 4,000 = 96,000 → A's principal 96,000 of the 150,000 due
    # (the interest account is empty, nothing to cover). Residual 0. Write-down: notes
    # 704,000 + 200,000 − pool 850,000 = 54,000 on Z (the 50,000 default + the 4,000 of
    # principal spent on interest).
    acc = {"principal_covers_interest": ["A"], "interest_covers_principal": True}
    _close(_month1(_run(acc, 5_000.0)),
           {"fee": 1_000.0, "int_A": 8_000.0, "short_A": 0.0, "prin_A": 96_000.0,
            "wd_Z": 54_000.0, "residual": 0.0, "to_interest": 4_000.0, "to_principal": 0.0})


def test_without_cover_the_senior_interest_shortfall_is_carried() -> None:
    # The same month, A not covered: A is paid the 4,000 the interest account has, 4,000 is
    # carried; the principal account's 100,000 all go to A's principal; write-down
    # 700,000 + 200,000 − 850,000 = 50,000 on Z.
    acc = {"principal_covers_interest": [], "interest_covers_principal": True}
    _close(_month1(_run(acc, 5_000.0)),
           {"fee": 1_000.0, "int_A": 4_000.0, "short_A": 4_000.0, "prin_A": 100_000.0,
            "wd_Z": 50_000.0, "residual": 0.0, "to_interest": 0.0, "to_principal": 0.0})


def test_interest_account_covers_the_period_defaults() -> None:
    # I1 = 20,000. Interest account: fee 1,000, A's interest 8,000 → 11,000 left. Principal
    # step: the principal account's 100,000, then 11,000 from the interest account (the deal's
    # "amount equal to the period's defaults" moved to the principal account) → A's principal
    # 111,000, residual 0; write-down 689,000 + 200,000 − 850,000 = 39,000 on Z.
    # One pot gives the same month: 120,000 − 1,000 − 8,000 = 111,000 to A's principal.
    acc = {"interest_covers_principal": True}
    r = _run(acc, 20_000.0)
    want = {"fee": 1_000.0, "int_A": 8_000.0, "prin_A": 111_000.0, "wd_Z": 39_000.0,
            "residual": 0.0, "to_interest": 0.0, "to_principal": 11_000.0}
    _close(_month1(r), want)
    one_pot = _month1(_run(None, 20_000.0))
    _close(one_pot, {k: v for k, v in want.items() if not k.startswith("to_")})


def test_without_cover_excess_interest_goes_to_the_residual() -> None:
    # The same month, interest_covers_principal = false: A gets only the principal account's
    # 100,000; the interest account's 11,000 goes to the residual holder; write-down
    # 700,000 + 200,000 − 850,000 = 50,000 on Z.
    acc = {"interest_covers_principal": False}
    _close(_month1(_run(acc, 20_000.0)),
           {"prin_A": 100_000.0, "wd_Z": 50_000.0, "residual": 11_000.0, "to_principal": 0.0})


@pytest.mark.parametrize(("where", "interest_in", "principal_in"),
                         [("principal", 5_000.0, 110_000.0), ("interest", 15_000.0, 100_000.0)])
def test_recoveries_go_to_the_account_the_deal_names(where: str, interest_in: float,
                                                     principal_in: float) -> None:
    # I1 = 5,000, recoveries 10,000. To the principal account: interest 5,000, principal
    # 110,000; A's interest 8,000 = 4,000 + 4,000 from principal (covered) → A's principal
    # 106,000. To the interest account: 15,000: fee 1,000, A's interest 8,000 → 6,000 left,
    # moved to the principal step → A's principal 100,000 + 6,000 = 106,000. Either way the
    # month's total to A is the same (one pot of 115,000).
    acc = {"recoveries": where, "principal_covers_interest": ["A"]}
    r = _run(acc, 5_000.0, recovery1=10_000.0)
    assert abs(r.accounts["interest_in"][0, 0] - interest_in) <= CENT
    assert abs(r.accounts["principal_in"][0, 0] - principal_in) <= CENT
    m1 = _month1(r)
    _close(m1, {"int_A": 8_000.0, "prin_A": 106_000.0})
    if where == "interest":
        _close(m1, {"to_interest": 0.0, "to_principal": 6_000.0})
    else:
        _close(m1, {"to_interest": 4_000.0, "to_principal": 0.0})


def test_the_legal_final_is_one_pot_and_the_tape_shows_the_accounts() -> None:
    # Month 2 (legal final) of the covered case: one pot of 10,000 + 850,000 = 860,000: fee
    # 1,000; A's interest 704,000 × 1% = 7,040; A's principal 704,000; Z's principal 146,000
    # (its balance after the 54,000 write-down); residual 860,000 − 1,000 − 7,040 − 704,000
    # − 146,000 = 1,960. No transfers are recorded in a merged month.
    acc = {"principal_covers_interest": ["A"]}
    r = _run(acc, 5_000.0)
    assert abs(r.principal_paid[0, 0, 1] - 704_000.0) <= CENT
    assert abs(r.principal_paid[1, 0, 1] - 146_000.0) <= CENT
    assert abs(r.residual[0, 1] - 1_960.0) <= CENT
    assert r.accounts["to_interest"][0, 1] == 0.0 and r.accounts["to_principal"][0, 1] == 0.0
    tape = cashflow_tape(r, 0).set_index(["period", "item"])
    assert tape.loc[(1, "interest account"), "due"] == 5_000.0
    assert tape.loc[(1, "interest account"), "transfer_in"] == 4_000.0
    assert tape.loc[(1, "principal account"), "transfer_in"] == -4_000.0
    assert abs(np.abs(r.conservation_error()).max()) <= 1e-9


def test_cn_example_with_accounts_reconciles_on_every_path() -> None:
    # The CN example with the two accounts as Chinese trusts state them (the principal account
    # covering the tax, fees and A's and B's interest; the interest account the principal
    # distribution) at 4x default rates: transfers happen, cash is conserved and the
    # reconciliation closes on every path.
    deal = dataclasses.replace(load_deal(ROOT / "examples" / "deal_cn_consumer.toml"),
                               accounts=Accounts(principal_covers_interest=("A", "B")))
    r = run_waterfall(deal, realistic_pool_paths(pd_scale=4.0))
    assert r.accounts["to_principal"].sum() > 0
    assert np.abs(r.conservation_error()).max() <= 1e-6
    rec = reconcile(deal, r)
    assert np.abs(rec.cash_error).max() <= 1e-6 and np.abs(rec.loss_error).max() <= 1e-6


def test_accounts_field_errors_name_the_field() -> None:
    with pytest.raises(DealError, match="accounts.principal_covers_interest"):
        _deal({"principal_covers_interest": ["X"]})
    with pytest.raises(DealError, match="recoveries"):
        _deal({"recoveries": "reserve"})
    with pytest.raises(DealError, match="accounts"):
        _deal({"interest_covers": True})
