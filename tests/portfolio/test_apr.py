"""Flat-fee schedules (等本等息) and the APR of a borrower's cash flows (R8's annualised rate).

Independent references: hand calculations written out below, numpy-financial's ``rate`` (the
IRR of a level payment stream) and SciPy's ``brentq`` root-finder on the net present value.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy_financial as npf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from portfolio.errors import ValidationError
from portfolio.loans.schedules import apr, loan_apr, product_apr, schedule, schedule_matrix
from portfolio.loans.types import RepaymentType

START = dt.date(2024, 1, 15)
FF = RepaymentType.FLAT_FEE


def _npv(m: float, received: float, pays: np.ndarray) -> float:
    return -received + float(sum(p / (1 + m) ** (k + 1) for k, p in enumerate(pays)))


# --------------------------------------------------------------------------- the type itself
def test_flat_fee_code_is_appended_and_parses_its_chinese_label() -> None:
    # existing codes keep their values; the new one is 4
    assert [t.code for t in RepaymentType] == [0, 1, 2, 3, 4]
    assert RepaymentType.from_code(4) is FF
    assert RepaymentType.parse("等本等息") is FF and RepaymentType.parse(" flat_fee ") is FF
    assert FF.label == "等本等息"


def test_flat_fee_schedule_by_hand_1200_at_9pct_flat_12_months() -> None:
    # 1,200 over 12 months at a flat 0.75% a month (9% a year nominal flat):
    #   principal 1200 / 12 = 100.00 each month
    #   fee 1200 * 0.0075 = 9.00 each month, on the ORIGINAL principal
    #   payment 109.00 every month; total fee 12 * 9 = 108.00
    df = schedule(1200, 0.09, 12, FF, START)
    assert df["principal"].tolist() == [100.0] * 12
    assert df["interest"].tolist() == [9.0] * 12
    assert df["payment"].tolist() == [109.0] * 12
    assert df["balance"].tolist() == [1200.0 - 100.0 * k for k in range(1, 13)]
    assert df["interest"].sum() == pytest.approx(108.0, abs=1e-9)


def test_flat_fee_last_instalment_absorbs_the_rounding() -> None:
    # 1,000 over 3 months at 9% flat: 100,000 cents / 3 = 33,333.33 -> 33,333 cents a month,
    # the last 100,000 - 2 * 33,333 = 33,334 cents; fee 100,000 * 0.0075 = 750 cents = 7.50.
    # 5,000.05 over 6 at 0.1 flat: fee 500,005 * 0.1 / 12 = 4,166.708 -> 4,167 cents = 41.67;
    # principal 500,005 / 6 = 83,334.17 -> 83,334, last 500,005 - 5 * 83,334 = 83,335 cents.
    df = schedule(1000, 0.09, 3, FF, START)
    assert df["principal"].tolist() == [333.33, 333.33, 333.34]
    assert df["interest"].tolist() == [7.5, 7.5, 7.5]
    df = schedule(5000.05, 0.1, 6, FF, START)
    assert df["principal"].tolist() == [833.34] * 5 + [833.35]
    assert df["interest"].tolist() == [41.67] * 6
    assert df["balance"].iloc[-1] == 0.0


def test_flat_fee_matrix_of_a_seasoned_loan_keeps_the_fee_on_the_original_principal() -> None:
    # 1,200 at 9% flat, 12 months, 4 months on book: balance 800 over 8 months,
    # principal 800 / 8 = 100, fee still 1200 * 0.0075 = 9.00 (not 800 * 0.0075 = 6.00).
    m = schedule_matrix(np.array([800.0]), np.array([0.09]), np.array([8]),
                        np.array([FF.code], dtype=np.int8),
                        np.array(["2024-01-15"], dtype="datetime64[D]"),
                        months_on_book=np.array([4]), original_principal=np.array([1200.0]))
    assert m.principal[0].tolist() == [100.0] * 8
    assert m.interest[0].tolist() == [9.0] * 8


# --------------------------------------------------------------------------- APR by hand
def test_flat_fee_apr_against_numpy_financial_and_brentq() -> None:
    # The borrower receives 1,200 and pays 109.00 for 12 months: a level stream, so
    # numpy-financial's rate(nper=12, pmt=-109, pv=1200) is its monthly IRR:
    #   m = 0.0135137353...; APR = 12 m = 16.2165%; EAR = (1 + m)^12 - 1 = 17.478%.
    # The stated flat rate is 9%: the true annualised rate is 1.80 times it.
    got = loan_apr(1200, 0.09, 12, FF, START)
    m_npf = float(npf.rate(12, -109.0, 1200.0, 0.0, tol=1e-14))
    m_brent = brentq(_npv, 1e-9, 1.0, args=(1200.0, np.full(12, 109.0)), xtol=1e-15)
    assert got.basis == "monthly"
    assert got.periodic == pytest.approx(m_npf, abs=1e-12)
    assert got.periodic == pytest.approx(m_brent, abs=1e-12)
    assert got.nominal == pytest.approx(0.162164824, abs=1e-9)
    assert got.effective == pytest.approx((1 + m_npf) ** 12 - 1, abs=1e-12)
    assert got.effective == pytest.approx(0.174777621, abs=1e-9)
    # the vectorised product APR (no cent rounding; here the schedule is whole cents anyway)
    assert product_apr(0.09, 12, FF.code)[0] == pytest.approx(12 * m_npf, abs=1e-12)


def test_flat_fee_apr_with_an_uneven_last_instalment_against_brentq() -> None:
    # 1,000 over 3 at 9% flat: payments 340.83, 340.83, 340.84 (333.33 + 7.50, last 333.34 +
    # 7.50): not a level stream, so only the root-finder is a reference.
    pays = np.array([340.83, 340.83, 340.84])
    m_brent = brentq(_npv, 1e-9, 1.0, args=(1000.0, pays), xtol=1e-15)
    got = loan_apr(1000, 0.09, 3, FF, START)
    assert got.periodic == pytest.approx(m_brent, abs=1e-12)
    assert got.nominal == pytest.approx(12 * m_brent, abs=1e-11)


def test_level_annuity_at_18pct_comes_back_as_18pct() -> None:
    # Exact terms (no rounding): the IRR of an annuity at r = 1.5% a month is 1.5%: 18.000%.
    assert product_apr(0.18, 12, RepaymentType.LEVEL_ANNUITY.code)[0] == pytest.approx(
        0.18, abs=1e-12)
    # 10,000 over 12 months at 18%: payment 10000 * 0.015 / (1 - 1.015^-12) = 916.7999...,
    # 916.80 to the cent, each month's interest rounded half up, the last instalment
    # absorbing the rest. The APR of those cent payments is brentq's root of their NPV, and
    # 18% to within the rounding bound 12 * 12 * 0.01 * 1.015^13 / 10000 = 1.75e-4 (see the
    # property test below); it is 18.0002%.
    sched = schedule(10_000, 0.18, 12, RepaymentType.LEVEL_ANNUITY, START)
    pays = sched["payment"].to_numpy()
    assert pays[0] == 916.80
    got = loan_apr(10_000, 0.18, 12, RepaymentType.LEVEL_ANNUITY, START)
    m_brent = brentq(_npv, 1e-9, 1.0, args=(10_000.0, pays), xtol=1e-15)
    assert got.periodic == pytest.approx(m_brent, abs=1e-12)
    assert got.nominal == pytest.approx(0.18, abs=1e-5)
    assert got.effective == pytest.approx(1.015 ** 12 - 1, abs=2e-5)  # 19.5618%


def test_upfront_fee_by_hand() -> None:
    # One month: the borrower receives 1,000 - 10 = 990 and repays 1,010 a month later:
    # m = 1010 / 990 - 1 = 0.0202020...; APR = 12 m = 24.2424%.
    got = apr(990.0, [1010.0])
    assert got.periodic == pytest.approx(1010 / 990 - 1, abs=1e-14)
    assert got.nominal == pytest.approx(12 * (1010 / 990 - 1), abs=1e-13)
    # through loan_apr: a 1,000 interest-only loan at 12% for 1 month pays 1,010.00
    via_loan = loan_apr(1000, 0.12, 1, RepaymentType.INTEREST_ONLY, START, upfront_fee=10.0)
    assert via_loan.nominal == pytest.approx(got.nominal, abs=1e-13)


def test_monthly_fee_against_numpy_financial_and_brentq() -> None:
    # 12,000 over 12 months at 12%: payment 12000 * 0.01 / (1 - 1.01^-12) = 1,066.1854...
    # (1,066.19 to the cent); a monthly account fee of 20 adds 20 to every payment.
    got = loan_apr(12_000, 0.12, 12, RepaymentType.LEVEL_ANNUITY, START, monthly_fee=20.0)
    pays = schedule(12_000, 0.12, 12, RepaymentType.LEVEL_ANNUITY, START)["payment"].to_numpy()
    m_brent = brentq(_npv, 1e-9, 1.0, args=(12_000.0, pays + 20.0), xtol=1e-15)
    assert got.periodic == pytest.approx(m_brent, abs=1e-12)
    # the product APR with the fee as a rate of principal (20 / 12000), exact terms: a level
    # stream of 12000 * (0.01 / (1 - 1.01^-12)) + 20 = 1,086.1854...: numpy-financial
    level = 12_000 * 0.01 / (1 - 1.01 ** -12)
    ref = 12 * float(npf.rate(12, -(level + 20), 12_000, 0, tol=1e-12))
    assert product_apr(0.12, 12, 0, monthly_fee_rate=20 / 12_000)[0] == pytest.approx(
        ref, abs=1e-10)
    assert ref == pytest.approx(0.15545, abs=1e-5)  # 12% stated, 15.545% with the fee
    assert got.nominal == pytest.approx(ref, abs=1e-5)  # the cent schedule, within rounding


def test_act365_basis_by_hand_and_for_daily_interest() -> None:
    # Received 1,000 on 2024-01-01, repaid 1,015 on 2024-01-31 (30 days):
    # 1000 * (1 + i * 30/365) = 1015 -> i = 0.015 * 365 / 30 = 0.1825.
    got = apr(1000.0, [1015.0], dates=["2024-01-31"], start_date=dt.date(2024, 1, 1))
    assert got.basis == "act365"
    assert got.nominal == pytest.approx(0.1825, abs=1e-13)
    assert got.effective == pytest.approx((1 + 0.1825 / 365) ** 365 - 1, abs=1e-13)
    # A daily-interest loan pays B * apr * days/365 each period: its Act/365 rate is its apr
    # (cent rounding of each interest payment aside: 10,000 at 18.25% a month of 31 days is
    # 10000 * 0.1825 * 31/365 = 155.0000 exactly).
    d = loan_apr(10_000, 0.1825, 6, RepaymentType.DAILY_INTEREST, START)
    assert d.nominal == pytest.approx(0.1825, abs=1e-6)


def test_act365_two_periods_by_hand() -> None:
    # 2,000 received on 2024-03-01; pays 1,015.20 on 2024-03-31 (30 days) and 1,007.80 on
    # 2024-04-30 (30 days). At i = 0.1825: interest 2000*0.015 = 30 -> 2030 owed, 1015.20 paid,
    # 1014.80 left; interest 1014.80 * 0.015 = 15.222 -> 1030.022 owed, not 1007.80: so the
    # rate is lower. Solve with brentq on the period-by-period discount and compare.
    pays = np.array([1015.20, 1007.80])
    days = np.array([30.0, 30.0])

    def npv(i: float) -> float:
        disc = 1 / np.cumprod(1 + i * days / 365)
        return float((pays * disc).sum()) - 2000.0

    ref = brentq(npv, 0.0, 5.0, xtol=1e-15)
    got = apr(2000.0, pays, dates=["2024-03-31", "2024-04-30"], start_date="2024-03-01")
    assert got.nominal == pytest.approx(ref, abs=1e-12)
    assert got.nominal < 0.1825


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"received": 0.0, "payments": [1.0]}, "received"),
        ({"received": 100.0, "payments": []}, "payments"),
        ({"received": 100.0, "payments": [50.0, -1.0]}, "payments"),
        ({"received": 100.0, "payments": [50.0, 40.0]}, "payments"),  # less than received
        ({"received": 100.0, "payments": [101.0], "dates": ["2024-01-31"]}, "start_date"),
        ({"received": 100.0, "payments": [101.0], "dates": ["2023-12-31"],
          "start_date": "2024-01-01"}, "dates"),
    ],
)
def test_apr_rejects_bad_flows_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=f"`{field}`"):
        apr(**kwargs)


# --------------------------------------------------------------------------- properties
_INTEREST_BEARING = [RepaymentType.LEVEL_ANNUITY, RepaymentType.EQUAL_PRINCIPAL,
                     RepaymentType.INTEREST_ONLY, RepaymentType.DAILY_INTEREST]
rates = st.floats(min_value=0.001, max_value=0.36)
terms = st.sampled_from([3, 6, 9, 12, 18, 24])


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(_INTEREST_BEARING), rates, terms)
def test_without_fees_the_apr_of_an_interest_bearing_type_is_its_rate(rtype, rate, term) -> None:
    # Exact terms: interest r*B on the outstanding balance B is by definition an IRR of r.
    # product_apr returns the rate for these (no solve); the solve on the exact (unrounded)
    # cash flows must agree: monthly for three types, Act/365 over the real dates for daily
    # interest (interest B * apr * days/365).
    assert product_apr(rate, term, rtype.code)[0] == rate
    m = schedule_matrix(np.array([10_000.0]), np.array([rate]), np.array([term]),
                        np.array([rtype.code], dtype=np.int8),
                        np.array(["2024-01-31"], dtype="datetime64[D]"), round_cents=False)
    pays = m.payment[0]
    if rtype is RepaymentType.DAILY_INTEREST:
        got = apr(10_000.0, pays, dates=m.due_dates[0], start_date="2024-01-31")
    else:
        got = apr(10_000.0, pays)
    assert got.nominal == pytest.approx(rate, abs=1e-10)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(_INTEREST_BEARING), rates, terms,
       st.floats(min_value=2_000, max_value=200_000))
def test_without_fees_a_cent_schedules_apr_is_its_rate_within_the_rounding(
        rtype, rate, term, principal) -> None:
    # Each instalment is rounded by at most half a cent and the last absorbs the rest, so
    # |NPV error| <= term * 0.01; the NPV's slope is at least principal/(1+m)^(term+1) in
    # size, so |m error| <= term*0.01*(1+m)^(term+1)/principal (x12 for the nominal rate).
    got = loan_apr(principal, rate, term, rtype, START)
    m = rate / 12
    bound = 12 * term * 0.01 * (1 + m) ** (term + 1) / principal
    assert abs(got.nominal - rate) <= bound


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(list(RepaymentType)), rates, terms,
       st.floats(min_value=0.001, max_value=0.05), st.floats(min_value=0.0, max_value=0.005))
def test_a_fee_raises_the_apr_above_the_stated_rate(rtype, rate, term, upfront, monthly) -> None:
    with_fee = product_apr(rate, term, rtype.code, upfront_fee_rate=upfront,
                           monthly_fee_rate=monthly)[0]
    without = product_apr(rate, term, rtype.code)[0]
    assert with_fee > without >= rate - 1e-10


@settings(max_examples=60, deadline=None)
@given(rates, terms)
def test_a_flat_fee_products_flat_rate_is_below_its_true_apr(rate, term) -> None:
    true = product_apr(rate, term, FF.code)[0]
    assert true > rate
    # cross-check with numpy-financial: payment per unit 1/n + rate/12, a level stream
    ref = 12 * float(npf.rate(term, -(1 / term + rate / 12), 1.0, 0.0, guess=rate / 12,
                                 tol=1e-12, maxiter=1000))
    assert true == pytest.approx(ref, abs=1e-9)


def test_product_apr_vectorises_and_solves_identical_products_once() -> None:
    rate = np.array([0.09, 0.18, 0.09, 0.12])
    term = np.array([12, 12, 12, 6])
    code = np.array([FF.code, 0, FF.code, 1])
    out = product_apr(rate, term, code)
    assert out[0] == out[2]
    assert out[1] == pytest.approx(0.18, abs=1e-12) and out[3] == pytest.approx(0.12, abs=1e-12)
    assert product_apr(np.zeros(0), np.zeros(0), np.zeros(0)).shape == (0,)
