"""Repayment schedules (portfolio/loans/schedules.py) against independent sources.

Sources used below, each named where it is used:
* numpy-financial ``pmt`` / ``ipmt`` / ``ppmt`` / ``fv`` (level annuity);
* QuantLib ``sinkingNotionals`` (level-annuity balances) and ``Actual365Fixed``;
* closed forms written out in the test (equal principal r·P·(n+1)/2, B·apr·days/365);
* ``dateutil.relativedelta`` (calendar-month arithmetic with end-of-month clipping);
* hand calculations written out in comments.

Rounding facts the tests rely on (P, B in cents; r = apr/12; all amounts rounded half up):
* level annuity: our payment A is npf.pmt rounded to the cent, so |A − pmt| ≤ ½ cent. Each
  interest is round(r·B) of OUR balance. With e = A − pmt (|e| ≤ ½ cent) and δ_k the interest
  rounding (|δ_k| ≤ ½ cent), the balance gap D_k = B_k − B*_k to the exact schedule obeys
  D_k = (1+r)·D_{k−1} + δ_k − e, so |D_k| ≤ 1 cent · ((1+r)^k − 1)/r, and per instalment
  |interest − ipmt| ≤ ½ cent + r·|D_{k−1}|, |principal − ppmt| ≤ 1 cent·(1+r)^(k−1) for k < n
  (≈ 1 cent for microloan terms), while the last principal is off by D_{n−1}. Without rounding
  (``round_cents=False``) the schedule equals numpy-financial to float precision.
* equal principal: with q = floor(P/n) and remainder ρ = P − n·q (0 ≤ ρ < n cents, paid at
  month n) the unrounded interest total is r·(P·(n+1)/2 + ρ·(n−1)/2); each instalment's
  interest is rounded by at most ½ cent, so the rounded total is within n/2 cents of it. When n
  divides P (ρ = 0) that is r·P·(n+1)/2 within n/2 cents; unrounded it is r·P·(n+1)/2 exactly.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy_financial as npf
import pandas as pd
import pytest
import QuantLib as ql
from dateutil.relativedelta import relativedelta
from hypothesis import given
from hypothesis import strategies as st

from portfolio.errors import ValidationError
from portfolio.loans.schedules import (
    ScheduleMatrix,
    add_months,
    interest_to_date,
    schedule,
    schedule_matrix,
)
from portfolio.loans.types import RepaymentType

TYPES = list(RepaymentType)
HALF_CENT = 0.005
FLOAT_EPS = 1e-9  # float noise on amounts that are whole cents / 100


def cents(x: pd.Series | np.ndarray) -> np.ndarray:
    """Amounts in currency units (whole cents by construction) as exact integer cents."""
    return np.rint(np.asarray(x, dtype=np.float64) * 100.0).astype(np.int64)


def half_up(x: float) -> float:
    """Round half up to the cent, written independently of the module (hand rule)."""
    return float(np.floor(x * 100.0 + 0.5 + 1e-9) / 100.0)


# ---------------------------------------------------------------- strategies

principal_cents = st.integers(min_value=100_00, max_value=200_000_00)  # 100 .. 200,000 CNY
# APRs are 0 or at least 0.1%: numpy-financial's pmt computes ((1+r)^n − 1)/r by plain
# subtraction and loses digits when r < ~1e-8 (the module uses expm1/log1p), so an APR of
# 1e-11 would test numpy-financial's round-off rather than our schedule.
aprs = st.one_of(
    st.just(0.0),
    st.sampled_from([0.0365, 0.072, 0.12, 0.18, 0.2399, 0.24]),
    st.floats(min_value=0.001, max_value=0.36, allow_nan=False, allow_infinity=False),
)
terms = st.one_of(st.sampled_from([3, 6, 9, 12, 18, 24]), st.integers(min_value=1, max_value=36))
start_dates = st.dates(min_value=dt.date(2015, 1, 1), max_value=dt.date(2035, 12, 31))
rtypes = st.sampled_from(TYPES)


@st.composite
def loans(draw: st.DrawFn, types: st.SearchStrategy[RepaymentType] = rtypes) -> dict:
    return {
        "principal": draw(principal_cents) / 100.0,
        "apr": draw(aprs),
        "term_months": draw(terms),
        "repayment_type": draw(types),
        "start_date": draw(start_dates),
    }


# ---------------------------------------------------------------- golden values


def test_level_annuity_golden_10000_at_18pct_12_months() -> None:
    # The 916.80 check of docs/model.md. Hand: r = 0.015, A = 10000·0.015/(1 − 1.015^−12) = 916.7999… → 916.80;
    # numpy-financial: -npf.pmt(0.015, 12, 10000) = 916.7999290622946.
    df = schedule(10_000, 0.18, 12, "level_annuity", dt.date(2024, 1, 15))
    assert -npf.pmt(0.015, 12, 10_000) == pytest.approx(916.7999290622946, abs=1e-9)
    assert (df["payment"].iloc[:-1] == 916.80).all()
    assert df["interest"].iloc[0] == 150.00  # 10000 · 0.015
    assert df["principal"].iloc[0] == pytest.approx(766.80, abs=FLOAT_EPS)
    # the last instalment absorbs the rounding: 903.26 principal + 13.55 interest (hand:
    # balance 903.26 · 0.015 = 13.5489 → 13.55)
    assert df["principal"].iloc[-1] == pytest.approx(903.26, abs=FLOAT_EPS)
    assert df["payment"].iloc[-1] == pytest.approx(916.81, abs=FLOAT_EPS)
    assert cents(df["principal"]).sum() == 1_000_000


def test_level_annuity_balances_agree_with_quantlib_sinking_notionals() -> None:
    # QuantLib sinkingNotionals: the outstanding notional of a level-pay (mortgage-style)
    # amortising bond, 12 monthly periods at 18% → 10000, 9233.2000709…, …, 903.25116…, 0.
    notionals = ql.sinkingNotionals(ql.Period(12, ql.Months), ql.Monthly, 0.18, 10_000.0)
    df = schedule(10_000, 0.18, 12, "level_annuity", dt.date(2024, 1, 15))
    ql_balance = np.array(notionals[1:])
    ql_payment = -np.diff(np.array(notionals)) + 0.015 * np.array(notionals[:-1])
    assert half_up(ql_payment[0]) == 916.80
    # bound from the module docstring of this file: |D_k| ≤ 1 cent·((1+r)^k − 1)/r
    k = np.arange(1, 13)
    bound = 0.01 * ((1.015**k) - 1) / 0.015
    assert np.all(np.abs(df["balance"].to_numpy() - ql_balance) <= bound + FLOAT_EPS)
    assert np.abs(df["balance"].to_numpy() - ql_balance).max() < 0.01  # in fact to the cent


@pytest.mark.parametrize("term", [3, 6, 9, 12, 18, 24])
@pytest.mark.parametrize("apr", [0.0365, 0.12, 0.18, 0.24])
def test_level_annuity_payment_and_balances_match_quantlib(term: int, apr: float) -> None:
    # QuantLib sinkingNotionals (level-pay amortisation of 100,000 at apr/12 monthly):
    # payment = notional drop + interest on the previous notional; balances within the
    # rounding-gap bound of this file's docstring (in practice within a cent or so).
    p, r = 100_000.0, apr / 12
    notionals = np.array(ql.sinkingNotionals(ql.Period(term, ql.Months), ql.Monthly, apr, p))
    ql_payment = -np.diff(notionals) + r * notionals[:-1]
    df = schedule(p, apr, term, "level_annuity", dt.date(2025, 8, 31))
    assert df["payment"].iloc[0] == pytest.approx(half_up(ql_payment[0]), abs=FLOAT_EPS)
    k = np.arange(1, term + 1)
    bound = 0.01 * ((1 + r) ** k - 1) / r
    assert np.all(np.abs(df["balance"].to_numpy() - notionals[1:]) <= bound + 1e-6)


def test_equal_principal_hand_example_total_interest_is_closed_form() -> None:
    # 1200 at 12% over 12 months: r = 0.01, principal 100 a month; interest 12, 11, …, 1
    # (hand: 0.01 · (1200 − 100(k − 1))) → total 78 = r·P·(n+1)/2 = 0.01·1200·13/2 exactly.
    df = schedule(1200, 0.12, 12, "equal_principal", dt.date(2024, 3, 10))
    assert list(cents(df["interest"])) == [1200 - 100 * k for k in range(12)]
    assert cents(df["principal"]).tolist() == [100_00] * 12
    assert df["interest"].sum() == pytest.approx(0.01 * 1200 * 13 / 2, abs=FLOAT_EPS)


def test_equal_principal_remainder_goes_to_the_last_instalment() -> None:
    # 1000.00 over 3 months: 333.33, 333.33, 333.34 (hand); interest at 2% a month:
    # 20.00, 13.3334 → 13.33, 6.6668 → 6.67.
    df = schedule(1000, 0.24, 3, "equal_principal", dt.date(2024, 1, 31))
    assert cents(df["principal"]).tolist() == [33333, 33333, 33334]
    assert cents(df["interest"]).tolist() == [2000, 1333, 667]


def test_interest_only_hand_example() -> None:
    # 5000 at 18% for 6 months: 75.00 interest a month (5000·0.015), 5000 at month 6.
    df = schedule(5000, 0.18, 6, "先息后本", dt.date(2024, 5, 20))
    assert cents(df["interest"]).tolist() == [7500] * 6
    assert cents(df["principal"]).tolist() == [0] * 5 + [500_000]
    assert cents(df["balance"]).tolist() == [500_000] * 5 + [0]


def test_daily_interest_hand_example_with_leap_february() -> None:
    # 10,000 at 18.25% from 2024-01-31: periods of 29 (to 2024-02-29), 31 (to 03-31) and 30
    # (to 04-30) actual days; interest = 10000·0.1825·days/365 = 5·days → 145, 155, 150.
    df = schedule(10_000, 0.1825, 3, RepaymentType.DAILY_INTEREST, dt.date(2024, 1, 31))
    assert df["due_date"].dt.date.tolist() == [
        dt.date(2024, 2, 29),
        dt.date(2024, 3, 31),
        dt.date(2024, 4, 30),
    ]
    assert df["days"].tolist() == [29, 31, 30]
    assert cents(df["interest"]).tolist() == [14500, 15500, 15000]
    assert cents(df["principal"]).tolist() == [0, 0, 1_000_000]


def test_zero_apr_level_annuity_is_principal_over_n() -> None:
    # apr = 0: A = P/n. 100.00 over 3: 33.33, 33.33, 33.34 (hand), no interest.
    df = schedule(100, 0.0, 3, "level_annuity", dt.date(2024, 1, 1))
    assert cents(df["principal"]).tolist() == [3333, 3333, 3334]
    assert cents(df["interest"]).tolist() == [0, 0, 0]


def test_schedule_frame_columns_and_types() -> None:
    df = schedule(3000, 0.2, 6, "equal_principal", dt.date(2025, 6, 30))
    assert list(df.columns) == [
        "instalment",
        "due_date",
        "days",
        "payment",
        "interest",
        "principal",
        "balance",
    ]
    assert df["instalment"].tolist() == [1, 2, 3, 4, 5, 6]
    assert pd.api.types.is_datetime64_any_dtype(df["due_date"])
    assert pd.api.types.is_integer_dtype(df["days"])


def test_tiny_level_annuity_never_overpays() -> None:
    # 0.06 over 4 months at 0%: A = round(1.5 cents) = 2 cents (half up) → 2, 2, 2, 0:
    # the instalment is capped at the balance left, so the balance never goes below zero.
    df = schedule(0.06, 0.0, 4, "level_annuity", dt.date(2024, 1, 1))
    assert cents(df["principal"]).tolist() == [2, 2, 2, 0]
    assert cents(df["balance"]).tolist() == [4, 2, 0, 0]


# ---------------------------------------------------------------- level annuity vs numpy-financial


@given(loans(types=st.just(RepaymentType.LEVEL_ANNUITY)))
def test_level_annuity_matches_numpy_financial_to_the_cent(loan: dict) -> None:
    # Source: numpy-financial pmt/ipmt/ppmt/fv; tolerances derived in this file's docstring.
    df = schedule(**loan)
    p, n, r = loan["principal"], loan["term_months"], loan["apr"] / 12
    k = np.arange(1, n + 1)
    with np.errstate(divide="ignore", invalid="ignore"):  # npf evaluates its r = 0 branch too
        pmt = -npf.pmt(r, n, p)
        ipmt = -npf.ipmt(r, k, n, p)
        ppmt = -npf.ppmt(r, k, n, p)
    exact_balance = npf.fv(r, k, pmt, -p) if r > 0 else p - pmt * k

    payment = df["payment"].to_numpy()
    if n > 1:
        assert np.all(np.abs(payment[:-1] - pmt) <= HALF_CENT + FLOAT_EPS)  # pmt rounded
        frac = pmt * 100 - np.floor(pmt * 100)
        if abs(frac - 0.5) > 1e-6:  # away from a half-cent tie: exactly npf.pmt half up
            assert cents(payment[:1])[0] == int(np.floor(pmt * 100 + 0.5))
    growth = (1 + r) ** (k - 1)  # (1+r)^(k−1)
    gap_before = np.where(r > 0, 0.01 * (growth - 1) / max(r, 1e-300), 0.01 * (k - 1))
    interest_dev = np.abs(df["interest"].to_numpy() - ipmt)
    assert np.all(interest_dev <= HALF_CENT + r * gap_before + FLOAT_EPS)
    principal_dev = np.abs(df["principal"].to_numpy() - ppmt)[:-1]
    assert np.all(principal_dev <= 0.01 * growth[:-1] + FLOAT_EPS)
    gap_after = np.where(r > 0, 0.01 * ((1 + r) ** k - 1) / max(r, 1e-300), 0.01 * k)
    assert np.all(np.abs(df["balance"].to_numpy() - exact_balance) <= gap_after + FLOAT_EPS)
    # interest is exactly the rounded r·B of our own previous balance
    prev = np.concatenate([[p], df["balance"].to_numpy()[:-1]])
    expected = [half_up(r * b) for b in prev]
    assert df["interest"].tolist() == pytest.approx(expected, abs=FLOAT_EPS)


@given(loans(types=st.just(RepaymentType.LEVEL_ANNUITY)))
def test_unrounded_level_annuity_equals_numpy_financial(loan: dict) -> None:
    # Source: numpy-financial ipmt/ppmt; without cent rounding the schedule is exact.
    p, n, r = loan["principal"], loan["term_months"], loan["apr"] / 12
    m = schedule_matrix(
        np.array([p]),
        np.array([loan["apr"]]),
        np.array([n]),
        np.array([RepaymentType.LEVEL_ANNUITY.code], dtype=np.int8),
        np.array([loan["start_date"]], dtype="datetime64[D]"),
        round_cents=False,
    )
    k = np.arange(1, n + 1)
    with np.errstate(divide="ignore", invalid="ignore"):  # npf evaluates its r = 0 branch too
        ipmt, ppmt = -npf.ipmt(r, k, n, p), -npf.ppmt(r, k, n, p)
    np.testing.assert_allclose(m.interest[0], ipmt, rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(m.principal[0], ppmt, rtol=1e-9, atol=1e-7)


# ---------------------------------------------------------------- equal principal closed form


@given(loans(types=st.just(RepaymentType.EQUAL_PRINCIPAL)))
def test_equal_principal_total_interest_closed_form(loan: dict) -> None:
    # Closed form (see file docstring): rounded total = r·(P(n+1)/2 + ρ(n−1)/2) ± n/2 cents.
    df = schedule(**loan)
    p_c = round(loan["principal"] * 100)
    n, r = loan["term_months"], loan["apr"] / 12
    rho = p_c - n * (p_c // n)
    total_c = cents(df["interest"]).sum()
    assert abs(total_c - r * (p_c * (n + 1) / 2 + rho * (n - 1) / 2)) <= n / 2 + 1e-6
    if rho == 0:
        assert (
            abs(df["interest"].sum() - r * loan["principal"] * (n + 1) / 2) <= n * HALF_CENT + 1e-6
        )
    # flat principal except the last, which takes the remainder
    assert set(cents(df["principal"])[:-1].tolist()) <= {p_c // n}
    assert cents(df["principal"])[-1] == p_c // n + rho


@given(loans(types=st.just(RepaymentType.EQUAL_PRINCIPAL)))
def test_unrounded_equal_principal_total_interest_is_exact(loan: dict) -> None:
    # Closed form: Σ_k r·P·(1 − (k−1)/n) = r·P·(n+1)/2, to the cent (here to 1e-6).
    p, n, r = loan["principal"], loan["term_months"], loan["apr"] / 12
    m = schedule_matrix(
        np.array([p]),
        np.array([loan["apr"]]),
        np.array([n]),
        np.array([RepaymentType.EQUAL_PRINCIPAL.code], dtype=np.int8),
        np.array([loan["start_date"]], dtype="datetime64[D]"),
        round_cents=False,
    )
    assert m.interest.sum() == pytest.approx(r * p * (n + 1) / 2, abs=1e-6)
    np.testing.assert_allclose(m.principal[0], p / n, rtol=1e-12)


# ---------------------------------------------------------------- daily interest


@given(loans(types=st.just(RepaymentType.DAILY_INTEREST)))
def test_daily_interest_is_balance_apr_days_over_365(loan: dict) -> None:
    # Closed form B·apr·days/365 with days counted by Python's date arithmetic (independent of
    # the QuantLib day counter the module uses); rounded to the cent → within ½ cent.
    df = schedule(**loan)
    due = [loan["start_date"], *df["due_date"].dt.date]
    days = np.array([(due[k] - due[k - 1]).days for k in range(1, len(due))])
    assert df["days"].tolist() == days.tolist()
    prev = np.concatenate([[loan["principal"]], df["balance"].to_numpy()[:-1]])
    formula = prev * loan["apr"] * days / 365
    assert np.all(np.abs(df["interest"].to_numpy() - formula) <= HALF_CENT + FLOAT_EPS)
    # QuantLib Actual/365 Fixed year fraction gives the same interest
    dc = ql.Actual365Fixed()
    ql_yf = [
        dc.yearFraction(ql.Date(a.day, a.month, a.year), ql.Date(b.day, b.month, b.year))
        for a, b in zip(due[:-1], due[1:], strict=True)
    ]
    assert formula == pytest.approx(prev * loan["apr"] * np.array(ql_yf), rel=1e-12, abs=1e-9)


def test_interest_to_date_hand_examples() -> None:
    # 10,000 at 18.25% for 10 days: 10000·0.1825·10/365 = 50.00 exactly.
    assert interest_to_date(10_000, 0.1825, dt.date(2024, 3, 1), dt.date(2024, 3, 11)) == 50.00
    # 1,000 at 18% for 31 days: 1000·0.18·31/365 = 15.2876… → 15.29.
    assert interest_to_date(1_000, 0.18, dt.date(2024, 1, 1), dt.date(2024, 2, 1)) == 15.29
    # same day: nothing
    assert interest_to_date(1_000, 0.18, dt.date(2024, 1, 1), dt.date(2024, 1, 1)) == 0.0


@given(loans(types=st.just(RepaymentType.DAILY_INTEREST)), st.data())
def test_interest_to_date_on_a_due_date_equals_scheduled_interest(loan: dict, data) -> None:
    df = schedule(**loan)
    k = data.draw(st.integers(min_value=0, max_value=len(df) - 1))
    due = [loan["start_date"], *df["due_date"].dt.date]
    owed = interest_to_date(loan["principal"], loan["apr"], due[k], due[k + 1])
    assert owed == pytest.approx(df["interest"].iloc[k], abs=FLOAT_EPS)
    # any day inside the period: formula B·apr·days/365 rounded to the cent
    day = data.draw(st.integers(min_value=0, max_value=(due[k + 1] - due[k]).days))
    repay = due[k] + dt.timedelta(days=day)
    owed = interest_to_date(loan["principal"], loan["apr"], due[k], repay)
    assert abs(owed - loan["principal"] * loan["apr"] * day / 365) <= HALF_CENT + FLOAT_EPS


# ---------------------------------------------------------------- invariants, all types


@given(loans())
def test_schedule_invariants(loan: dict) -> None:
    df = schedule(**loan)
    n = loan["term_months"]
    assert len(df) == n
    p_c = round(loan["principal"] * 100)
    # principal sums exactly to the loan (integer cents)
    assert cents(df["principal"]).sum() == p_c
    # balances never rise, never go negative, end at zero
    bal = np.concatenate([[p_c], cents(df["balance"])])
    assert np.all(np.diff(bal) <= 0)
    assert bal.min() == 0 and bal[-1] == 0
    assert np.all(cents(df["principal"]) >= 0) and np.all(cents(df["interest"]) >= 0)
    # payment = interest + principal to the cent; balance = previous − principal
    assert np.all(cents(df["payment"]) == cents(df["interest"]) + cents(df["principal"]))
    assert np.all(bal[1:] == bal[:-1] - cents(df["principal"]))
    # due dates: origination day of month, clipped at month end (dateutil relativedelta)
    expected = [loan["start_date"] + relativedelta(months=k) for k in range(1, n + 1)]
    assert df["due_date"].dt.date.tolist() == expected
    assert np.all(df["days"].to_numpy() >= 28) and np.all(df["days"].to_numpy() <= 31)


@given(loans(types=st.sampled_from([RepaymentType.INTEREST_ONLY, RepaymentType.DAILY_INTEREST])))
def test_bullet_types_repay_principal_only_at_the_end(loan: dict) -> None:
    df = schedule(**loan)
    p_c = round(loan["principal"] * 100)
    assert cents(df["principal"]).tolist() == [0] * (len(df) - 1) + [p_c]
    if loan["repayment_type"] is RepaymentType.INTEREST_ONLY:
        # r·P every month (closed form), rounded to the cent
        assert np.all(
            np.abs(df["interest"] - loan["principal"] * loan["apr"] / 12) <= HALF_CENT + FLOAT_EPS
        )


# ---------------------------------------------------------------- the matrix equals schedule()


def _matrix_of(batch: list[dict], **kw) -> ScheduleMatrix:
    return schedule_matrix(
        np.array([x["principal"] for x in batch]),
        np.array([x["apr"] for x in batch]),
        np.array([x["term_months"] for x in batch], dtype=np.int16),
        np.array([x["repayment_type"].code for x in batch], dtype=np.int8),
        np.array([x["start_date"] for x in batch], dtype="datetime64[D]"),
        **kw,
    )


@given(st.lists(loans(), min_size=1, max_size=12))
def test_matrix_equals_schedule_row_by_row(batch: list[dict]) -> None:
    m = _matrix_of(batch)
    n_months = max(x["term_months"] for x in batch)
    assert m.shape == (len(batch), n_months)
    for i, loan in enumerate(batch):
        df = schedule(**loan)
        n = loan["term_months"]
        for col in ("interest", "principal", "balance"):
            assert cents(getattr(m, col)[i, :n]).tolist() == cents(df[col]).tolist(), col
            assert np.all(getattr(m, col)[i, n:] == 0.0)  # beyond the term: zero
        assert cents(m.payment[i, :n]).tolist() == cents(df["payment"]).tolist()
        assert m.days[i, :n].tolist() == df["days"].tolist()
        assert m.due_dates[i, :n].tolist() == df["due_date"].dt.date.tolist()


def test_matrix_shapes_dtypes_and_truncation() -> None:
    batch = [
        dict(
            principal=1000.0,
            apr=0.18,
            term_months=3,
            repayment_type=RepaymentType.LEVEL_ANNUITY,
            start_date=dt.date(2024, 1, 31),
        ),
        dict(
            principal=2000.0,
            apr=0.12,
            term_months=6,
            repayment_type=RepaymentType.DAILY_INTEREST,
            start_date=dt.date(2024, 2, 29),
        ),
    ]
    m = _matrix_of(batch)
    assert m.interest.shape == m.principal.shape == m.balance.shape == (2, 6)
    assert m.days.shape == m.due_dates.shape == (2, 6)
    assert m.due_dates.dtype == np.dtype("datetime64[D]")
    assert m.interest.dtype == np.float64 and np.issubdtype(m.days.dtype, np.integer)
    short = _matrix_of(batch, n_months=2)
    assert short.shape == (2, 2)
    np.testing.assert_array_equal(short.interest, m.interest[:, :2])
    np.testing.assert_array_equal(short.balance, m.balance[:, :2])
    empty = schedule_matrix(
        np.array([]),
        np.array([]),
        np.array([], dtype=np.int16),
        np.array([], dtype=np.int8),
        np.array([], dtype="datetime64[D]"),
    )
    assert empty.shape == (0, 0)


def test_matrix_loan_with_no_term_left_is_all_zero() -> None:
    m = schedule_matrix(
        np.array([500.0, 500.0]),
        np.array([0.1, 0.1]),
        np.array([0, 2]),
        np.array([0, 0], dtype=np.int8),
        np.array(["2024-01-10"] * 2, dtype="datetime64[D]"),
    )
    assert m.shape == (2, 2)
    assert np.all(m.interest[0] == 0) and np.all(m.principal[0] == 0) and np.all(m.balance[0] == 0)
    assert cents(m.principal[1]).sum() == 50_000


@given(st.lists(loans(), min_size=1, max_size=10), st.data())
def test_matrix_of_a_seasoned_batch_equals_each_loan_alone(batch: list[dict], data) -> None:
    # Vectorisation check: loans with different months on book, terms and types computed
    # together equal each loan computed on its own (no cross-talk between rows).
    mob = np.array(
        [data.draw(st.integers(min_value=0, max_value=x["term_months"] - 1)) for x in batch]
    )
    rem = np.array([x["term_months"] for x in batch]) - mob
    args = dict(
        balance=np.array([x["principal"] for x in batch]),
        apr=np.array([x["apr"] for x in batch]),
        remaining_term=rem,
        repayment_type=np.array([x["repayment_type"].code for x in batch], dtype=np.int8),
        origination_date=np.array([x["start_date"] for x in batch], dtype="datetime64[D]"),
        months_on_book=mob,
    )
    together = schedule_matrix(**args)
    for i in range(len(batch)):
        alone = schedule_matrix(**{k: v[i : i + 1] for k, v in args.items()})
        n = int(rem[i])
        for col in ("interest", "principal", "balance", "days", "due_dates"):
            np.testing.assert_array_equal(getattr(together, col)[i, :n], getattr(alone, col)[0])
        assert np.all(together.principal[i, n:] == 0) and np.all(together.balance[i, n:] == 0)


@given(loans(), st.floats(min_value=0.1, max_value=10.0))
def test_unrounded_matrix_scales_with_the_balance(loan: dict, factor: float) -> None:
    # Invariance: multiplying the balance by c multiplies every exact cash flow by c.
    def flows(scale: float) -> ScheduleMatrix:
        return _matrix_of([{**loan, "principal": loan["principal"] * scale}], round_cents=False)

    base, scaled = flows(1.0), flows(factor)
    for col in ("interest", "principal", "balance"):
        np.testing.assert_allclose(
            getattr(scaled, col), factor * getattr(base, col), rtol=1e-9, atol=1e-6
        )


@given(loans(types=st.just(RepaymentType.DAILY_INTEREST)))
def test_unrounded_daily_interest_is_exactly_the_formula(loan: dict) -> None:
    # Closed form B·apr·days/365, days from Python date arithmetic.
    m = _matrix_of([loan], round_cents=False)
    due = [loan["start_date"], *m.due_dates[0].tolist()]
    days = np.array([(b - a).days for a, b in zip(due[:-1], due[1:], strict=True)])
    np.testing.assert_allclose(
        m.interest[0], loan["principal"] * loan["apr"] * days / 365, rtol=1e-12, atol=1e-9
    )


def test_matrix_columns_beyond_every_term_follow_the_monthly_grid() -> None:
    # n_months larger than any remaining term: zero cash flows, due dates keep the 31st rule.
    m = schedule_matrix(
        np.array([1000.0]),
        np.array([0.18]),
        np.array([2]),
        np.array([RepaymentType.EQUAL_PRINCIPAL.code], dtype=np.int8),
        np.array(["2024-10-31"], dtype="datetime64[D]"),
        n_months=5,
    )
    assert m.due_dates[0].tolist() == [
        dt.date(2024, 11, 30),
        dt.date(2024, 12, 31),
        dt.date(2025, 1, 31),
        dt.date(2025, 2, 28),
        dt.date(2025, 3, 31),
    ]
    assert m.days[0].tolist() == [30, 31, 31, 28, 31]
    assert cents(m.principal[0]).tolist() == [50000, 50000, 0, 0, 0]
    assert cents(m.interest[0]).tolist() == [1500, 750, 0, 0, 0]  # 1000·0.015, 500·0.015
    assert cents(m.balance[0]).tolist() == [50000, 0, 0, 0, 0]


def test_matrix_accepts_months_on_book_and_rounds_sub_cent_balances() -> None:
    # A balance of 999.994 is 999.99 in cents (half up: 99999.4 → 99999).
    m = schedule_matrix(
        np.array([999.994]),
        np.array([0.0]),
        np.array([1]),
        np.array([RepaymentType.INTEREST_ONLY.code], dtype=np.int8),
        np.array(["2024-01-31"], dtype="datetime64[D]"),
        months_on_book=np.array([1]),
    )
    assert cents(m.principal[0]).tolist() == [99999]
    # period runs from add_months(orig, 1) = 2024-02-29 to add_months(orig, 2) = 2024-03-31
    assert m.due_dates[0].tolist() == [dt.date(2024, 3, 31)] and m.days[0].tolist() == [31]


@pytest.mark.parametrize(
    "start",
    [
        dt.date(2024, 1, 31),
        dt.datetime(2024, 1, 31, 9, 30),
        np.datetime64("2024-01-31"),
        pd.Timestamp("2024-01-31"),
        "2024-01-31",
    ],
)
def test_schedule_accepts_common_date_types(start: object) -> None:
    df = schedule(1000, 0.18, 2, "level_annuity", start)  # type: ignore[arg-type]
    assert df["due_date"].dt.date.tolist() == [dt.date(2024, 2, 29), dt.date(2024, 3, 31)]


def test_repayment_type_accepts_chinese_labels() -> None:
    for rt in RepaymentType:
        a = schedule(5000, 0.2, 6, rt.label, dt.date(2024, 6, 1))
        b = schedule(5000, 0.2, 6, rt, dt.date(2024, 6, 1))
        c = schedule(5000, 0.2, 6, np.int8(rt.code), dt.date(2024, 6, 1))  # type: ignore[arg-type]
        pd.testing.assert_frame_equal(a, b)
        pd.testing.assert_frame_equal(a, c)


# ---------------------------------------------------------------- seasoned loans


@given(loans(), st.data())
def test_seasoned_matrix_continues_the_new_loan_schedule(loan: dict, data) -> None:
    n = loan["term_months"]
    mob = data.draw(st.integers(min_value=0, max_value=n - 1))
    df = schedule(**loan)
    bal_now = loan["principal"] if mob == 0 else float(df["balance"].iloc[mob - 1])
    code = loan["repayment_type"].code
    m = schedule_matrix(
        np.array([bal_now]),
        np.array([loan["apr"]]),
        np.array([n - mob]),
        np.array([code], dtype=np.int8),
        np.array([loan["start_date"]], dtype="datetime64[D]"),
        months_on_book=np.array([mob]),
    )
    tail = df.iloc[mob:]
    # same calendar: periods of the seasoned loan are the new loan's remaining periods
    assert m.due_dates[0].tolist() == tail["due_date"].dt.date.tolist()
    assert m.days[0].tolist() == tail["days"].tolist()
    # amortises exactly the current balance, balances never rise
    assert cents(m.principal[0]).sum() == round(bal_now * 100)
    assert np.all(np.diff(np.concatenate([[round(bal_now * 100)], cents(m.balance[0])])) <= 0)
    rt = loan["repayment_type"]
    if rt in (RepaymentType.INTEREST_ONLY, RepaymentType.DAILY_INTEREST):
        # nothing to re-amortise: the tail is reproduced to the cent
        for col in ("interest", "principal", "balance"):
            assert cents(getattr(m, col)[0]).tolist() == cents(tail[col]).tolist()
    elif rt is RepaymentType.LEVEL_ANNUITY and n - mob > 1:
        # the recomputed payment is the same annuity up to the accumulated rounding gap
        r = loan["apr"] / 12
        gap = 0.01 * ((1 + r) ** mob - 1) / r if r > 0 else 0.01 * mob
        assert abs(m.payment[0, 0] - df["payment"].iloc[0]) <= gap / max(n - mob, 1) + 0.01
    elif rt is RepaymentType.EQUAL_PRINCIPAL and n - mob > 1:
        flat = cents(m.principal[0])[:-1]
        assert len(set(flat.tolist())) == 1  # flat principal on the remaining term


@given(loans(), st.data())
def test_unrounded_seasoned_matrix_equals_the_tail(loan: dict, data) -> None:
    # Exact (unrounded) amortisation is time-consistent: re-amortising the balance after mob
    # instalments over n − mob months reproduces the rest of the original schedule.
    n = loan["term_months"]
    mob = data.draw(st.integers(min_value=0, max_value=n - 1))
    args = (
        np.array([loan["apr"]]),
        None,
        np.array([loan["repayment_type"].code], dtype=np.int8),
        np.array([loan["start_date"]], dtype="datetime64[D]"),
    )
    new = schedule_matrix(
        np.array([loan["principal"]]), args[0], np.array([n]), *args[2:], round_cents=False
    )
    bal_now = loan["principal"] if mob == 0 else new.balance[0, mob - 1]
    old = schedule_matrix(
        np.array([bal_now]),
        args[0],
        np.array([n - mob]),
        *args[2:],
        months_on_book=np.array([mob]),
        round_cents=False,
        original_principal=np.array([loan["principal"]]),  # a flat fee is on the original
    )
    for col in ("interest", "principal", "balance"):
        np.testing.assert_allclose(
            getattr(old, col)[0], getattr(new, col)[0, mob:], rtol=1e-9, atol=1e-7
        )


# ---------------------------------------------------------------- add_months


@pytest.mark.parametrize(
    ("start", "k", "expected"),
    [
        ("2024-01-31", 1, "2024-02-29"),  # leap February
        ("2023-01-31", 1, "2023-02-28"),
        ("2024-01-31", 2, "2024-03-31"),  # back to the 31st: computed from the start date
        ("2024-01-30", 1, "2024-02-29"),
        ("2024-01-29", 1, "2024-02-29"),
        ("2023-01-29", 1, "2023-02-28"),
        ("2024-03-31", 1, "2024-04-30"),
        ("2024-03-31", -1, "2024-02-29"),
        ("2024-12-31", 2, "2025-02-28"),
        ("2024-02-29", 12, "2025-02-28"),
        ("2024-02-29", 48, "2028-02-29"),
        ("2024-05-15", 0, "2024-05-15"),
        ("2024-05-15", 24, "2026-05-15"),
    ],
)
def test_add_months_end_of_month_cases(start: str, k: int, expected: str) -> None:
    out = add_months(np.array([start], dtype="datetime64[D]"), k)
    assert out.dtype == np.dtype("datetime64[D]")
    assert out[0] == np.datetime64(expected)


def test_add_months_broadcasts() -> None:
    dates = np.array(["2024-01-31", "2023-01-31"], dtype="datetime64[D]")
    out = add_months(dates[:, None], np.arange(1, 4)[None, :])
    assert out.shape == (2, 3)
    assert out.tolist() == [
        [dt.date(2024, 2, 29), dt.date(2024, 3, 31), dt.date(2024, 4, 30)],
        [dt.date(2023, 2, 28), dt.date(2023, 3, 31), dt.date(2023, 4, 30)],
    ]
    assert add_months(dates, np.array([1, 2])).tolist() == [
        dt.date(2024, 2, 29),
        dt.date(2023, 3, 31),
    ]


@given(st.lists(start_dates, min_size=1, max_size=20), st.integers(min_value=-60, max_value=60))
def test_add_months_matches_dateutil_relativedelta(dates: list[dt.date], k: int) -> None:
    # Source: dateutil.relativedelta(months=k) clips the day to the end of the month.
    out = add_months(np.array(dates, dtype="datetime64[D]"), k)
    assert out.tolist() == [d + relativedelta(months=k) for d in dates]


# ---------------------------------------------------------------- bad input


GOOD = dict(
    principal=1000.0,
    apr=0.18,
    term_months=12,
    repayment_type="level_annuity",
    start_date=dt.date(2024, 1, 1),
)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("principal", 0.0),
        ("principal", -100.0),
        ("principal", float("nan")),
        ("principal", "abc"),
        ("principal", 0.001),  # rounds to zero cents
        ("principal", 1e12),  # beyond exact cent arithmetic
        ("apr", -0.01),
        ("apr", 18.0),  # a percent typed as a number
        ("apr", float("inf")),
        ("term_months", 0),
        ("term_months", -3),
        ("term_months", 2.5),
        ("repayment_type", "balloon"),
        ("repayment_type", ""),
        ("repayment_type", 5),  # not a code (0-4 are the five types)
        ("start_date", "not a date"),
    ],
)
def test_schedule_rejects_bad_input_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=f"`{field}`"):
        schedule(**{**GOOD, field: value})


def test_validation_message_states_allowed_and_received() -> None:
    with pytest.raises(ValidationError, match=r"`apr` must be a decimal in \[0, 1\]; got -0.01"):
        schedule(**{**GOOD, "apr": -0.01})
    with pytest.raises(ValidationError, match="looks like a percent"):
        schedule(**{**GOOD, "apr": 18})


def _matrix_args(**over) -> dict:
    args = dict(
        balance=np.array([1000.0, 2000.0]),
        apr=np.array([0.18, 0.2]),
        remaining_term=np.array([12, 6]),
        repayment_type=np.array([0, 3], dtype=np.int8),
        origination_date=np.array(["2024-01-01", "2024-02-01"], dtype="datetime64[D]"),
    )
    args.update(over)
    return args


@pytest.mark.parametrize(
    ("field", "over"),
    [
        ("repayment_type", {"repayment_type": np.array([0, 7], dtype=np.int8)}),
        ("repayment_type", {"repayment_type": np.array([-1, 0], dtype=np.int8)}),
        ("apr", {"apr": np.array([0.18, -0.2])}),
        ("balance", {"balance": np.array([-1.0, 2000.0])}),
        ("remaining_term", {"remaining_term": np.array([12, -1])}),
        ("months_on_book", {"months_on_book": np.array([0, -2])}),
        ("apr", {"apr": np.array([0.18])}),  # wrong length
        ("balance", {"balance": np.ones((2, 2))}),  # not one value per loan
        (
            "origination_date",
            {"origination_date": np.array(["2024-01-01", "NaT"], dtype="datetime64[D]")},
        ),
    ],
)
def test_schedule_matrix_rejects_bad_input_naming_the_field(field: str, over: dict) -> None:
    with pytest.raises(ValidationError, match=f"`{field}`"):
        schedule_matrix(**_matrix_args(**over))


def test_schedule_matrix_bad_row_is_located() -> None:
    with pytest.raises(ValidationError, match="row 1"):
        schedule_matrix(**_matrix_args(repayment_type=np.array([0, 9], dtype=np.int8)))


@pytest.mark.parametrize(
    ("field", "args"),
    [
        ("balance", (-5.0, 0.18, dt.date(2024, 1, 1), dt.date(2024, 2, 1))),
        ("apr", (100.0, -0.1, dt.date(2024, 1, 1), dt.date(2024, 2, 1))),
        ("to_date", (100.0, 0.18, dt.date(2024, 2, 1), dt.date(2024, 1, 1))),
    ],
)
def test_interest_to_date_rejects_bad_input(field: str, args: tuple) -> None:
    with pytest.raises(ValidationError, match=f"`{field}`"):
        interest_to_date(*args)
