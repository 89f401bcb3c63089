"""The generator's flat-fee option (``GeneratorParams.flat_fee_share``): a share of the
amortising loans sold as flat-fee instalments (等本等息), priced to the same risk-based APR
and disclosing it (R8), paying exactly their schedule; the default (0) leaves the book as it
was. References: numpy-financial's ``rate`` for the APR of the flat-fee terms, and
``portfolio.loans.schedules.schedule`` (tested by hand) for the payments."""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy_financial as npf
import pandas as pd
import pytest

from portfolio.errors import ValidationError
from portfolio.loans.schedules import product_apr, schedule
from portfolio.loans.types import APR_DISCLOSURE_TOL, RepaymentType
from portfolio.synthetic.generate import GeneratorParams, simulate_book
from portfolio.synthetic.originations import flat_fee_rate

AS_OF = dt.date(2025, 12, 31)
FF = RepaymentType.FLAT_FEE


@pytest.fixture(scope="module")
def books() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    plain = simulate_book(6_000, 18, 4, AS_OF)
    flat = simulate_book(6_000, 18, 4, AS_OF, GeneratorParams(flat_fee_share=0.3))
    loans = flat.loans.to_pandas()
    loans["repayment_type"] = loans["repayment_type"].astype(str)
    perf = flat.performance.to_pandas()
    perf["loan_id"] = perf["loan_id"].astype(str)
    perf["status"] = perf["status"].astype(str)
    return plain.loans.to_pandas(), loans, perf


def test_flat_fee_rate_inverts_the_apr_by_hand() -> None:
    # APR 18% over 12 months: m = 0.015, level payment per unit 0.015/(1 - 1.015^-12)
    # = 0.0916799929..., fee f = 0.0916799929 - 1/12 = 0.0083466596 -> 0.00834 (rounded down
    # to 0.001 % a month); stated flat rate 12 * 0.00834 = 0.10008.
    assert flat_fee_rate(np.array([0.18]), np.array([12]))[0] == pytest.approx(0.10008, abs=1e-12)
    # its cash-flow APR, by numpy-financial on the level stream 1/12 + 0.00834, is just below
    # 18% (the fee was rounded down)
    ref = 12 * float(npf.rate(12, -(1 / 12 + 0.00834), 1.0, 0.0, tol=1e-12))
    assert product_apr(0.10008, 12, FF.code)[0] == pytest.approx(ref, abs=1e-10)
    assert 0.18 - 0.0005 < ref <= 0.18


def test_flat_fee_loans_are_priced_to_the_risk_based_apr_and_disclose_it(books) -> None:
    plain, loans, _ = books
    ff = loans[loans.repayment_type == "flat_fee"]
    amortising = plain.repayment_type.astype(str).isin(["level_annuity", "equal_principal"])
    # about 30% of the amortising loans, chosen by a draw after every other one
    assert abs(len(ff) / amortising.sum() - 0.3) < 0.03
    assert (plain.loc[ff.index, "repayment_type"].astype(str)
            .isin(["level_annuity", "equal_principal"])).all()
    same = ["loan_id", "principal", "term_months", "credit_score", "origination_date"]
    pd.testing.assert_frame_equal(plain[same], loans[same])
    true = product_apr(ff.apr.to_numpy(), ff.term_months.to_numpy(),
                       np.full(len(ff), FF.code))
    target = plain.loc[ff.index, "apr"].to_numpy()  # what the loan would have been priced at
    assert (true <= target + 1e-12).all() and (target - true < 0.0005).all()
    assert (ff.apr.to_numpy() < true).all()  # the flat rate understates the cost
    assert np.abs(ff.disclosed_apr.to_numpy() - true).max() <= APR_DISCLOSURE_TOL
    assert loans.loc[loans.repayment_type != "flat_fee", "disclosed_apr"].isna().all()
    assert (true <= 0.24).all()


def test_flat_fee_loans_pay_their_schedule(books) -> None:
    _, loans, perf = books
    ids = perf.groupby("loan_id").status.apply(lambda s: set(s) == {"current", "matured"})
    done = set(ids[ids].index)
    ff = loans[(loans.repayment_type == "flat_fee") & loans.loan_id.astype(str).isin(done)]
    assert len(ff) >= 5
    for _, ln in ff.head(5).iterrows():
        rows = perf[(perf.loan_id == str(ln.loan_id)) & (perf.months_on_book > 0)]
        rows = rows.sort_values("months_on_book")
        ref = schedule(float(ln.principal), float(ln.apr), int(ln.term_months), FF,
                       pd.Timestamp(ln.origination_date).date())
        assert np.allclose(rows.paid_interest.to_numpy(), ref.interest.to_numpy(), atol=1e-9)
        assert np.allclose(rows.paid_principal.to_numpy(), ref.principal.to_numpy(), atol=1e-9)
        assert len(set(ref.interest)) == 1  # the same fee every month


def test_default_book_has_no_flat_fee_and_no_disclosed_column() -> None:
    book = simulate_book(2_000, 12, 5, AS_OF)
    assert "disclosed_apr" not in book.loans.column_names
    assert "flat_fee" not in set(book.loans.column("repayment_type").to_pylist())
    with pytest.raises(ValidationError, match="flat_fee_share"):
        GeneratorParams(flat_fee_share=1.5)
