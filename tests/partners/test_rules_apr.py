"""R8 (the disclosed APR is the annualised rate of the cash flows) and R9 (the cap applies to
that rate) on flat-fee loans (等本等息).

Reference: numpy-financial's ``rate`` on the level stream a flat-fee loan pays per unit of
principal, 1/n + flat/12 a month: 9% flat over 12 months is an APR of 16.2165%, 14% flat over
12 months 24.9089%."""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy_financial as npf
import pytest
from partners_fixtures import make_loans

from partners.rules import DEFAULT_RULES, check_loan_rule, loan_rule_excess, rules_with_overrides
from portfolio.loans.types import RepaymentType

RULES = {r.id: r for r in DEFAULT_RULES}
FF = RepaymentType.FLAT_FEE.code


def _true(flat: float, n: int) -> float:
    return 12 * float(npf.rate(n, -(1 / n + flat / 12), 1.0, 0.0, tol=1e-12))


def _loans(apr, rtype, term, disclosed):
    loans = make_loans(len(apr), seed=3)
    arrays = {f.name: np.array(getattr(loans, f.name)) for f in dataclasses.fields(loans)}
    arrays.update(apr=np.array(apr, dtype=np.float64), repayment_type=np.array(rtype, np.int8),
                  term_months=np.array(term, np.int16), remaining_term=np.array(term, np.int16),
                  disclosed_apr=np.array(disclosed, dtype=np.float64))
    return type(loans)(**arrays)


def test_cashflow_apr_of_the_pool() -> None:
    loans = _loans([0.18, 0.09, 0.14], [0, FF, FF], [12, 12, 12], [np.nan] * 3)
    np.testing.assert_allclose(loans.cashflow_apr, [0.18, _true(0.09, 12), _true(0.14, 12)],
                               atol=1e-10)
    assert _true(0.09, 12) == pytest.approx(0.162165, abs=1e-6)


def test_r9_caps_the_cash_flow_apr() -> None:
    # 14% flat is under the 24% cap; its APR 24.9089% is 0.9089 point above it
    loans = _loans([0.18, 0.09, 0.14], [0, FF, FF], [12, 12, 12], [0.18, 0.1622, 0.2491])
    excess = loan_rule_excess(RULES["R9"], loans)
    np.testing.assert_allclose(excess, [0.0, 0.0, _true(0.14, 12) - 0.24], atol=1e-12)
    (breach,) = check_loan_rule(RULES["R9"], loans)
    assert breach.loan_ids == (str(loans.loan_id[2]),)
    assert (f"loan {loans.loan_id[2]}: cash-flow APR 24.9089%, stated rate 14.0000%, cap 24.00%"
            in breach.message)


def test_r8_disclosed_apr_against_the_cash_flow_apr() -> None:
    loans = _loans([0.18, 0.09, 0.09, 0.18, 0.12],
                   [0, FF, FF, 1, 0], [12, 12, 12, 6, 6],
                   [np.nan,   # stated 18% annuity: its own APR
                    0.1622,   # flat fee disclosed within 0.05 point of 16.2165%
                    np.nan,   # flat fee shown only its flat 9%: 7.2165 points off
                    0.20,     # equal principal at 18% sold as 20%: 2 points off
                    0.1204])  # 0.04 point off: inside the tolerance
    excess = loan_rule_excess(RULES["R8"], loans)
    np.testing.assert_allclose(
        excess, [0.0, 0.0, _true(0.09, 12) - 0.09 - 0.0005, 0.02 - 0.0005, 0.0], atol=1e-12)
    (breach,) = check_loan_rule(RULES["R8"], loans)
    assert breach.n_loans == 2
    assert (f"loan {loans.loan_id[2]}: stated rate 9.0000%, cash-flow APR 16.2165%"
            in breach.message)
    # the tolerance is a rule parameter (partners.toml [rules.R8] tolerance = ...)
    loose = rules_with_overrides({"R8": {"tolerance": 0.03}})
    r8 = next(r for r in loose if r.id == "R8")
    assert np.count_nonzero(loan_rule_excess(r8, loans)) == 1  # only the flat 9%


@pytest.mark.parametrize("disclosed", ["none", "some"])
def test_loan_rule_passes_equal_the_numpy_formulation(disclosed) -> None:
    """Each loan rule's compiled pass gives loan_rule_excess_np's bytes. R8: disclosed APRs
    missing, NaN or inf (the stated rate shown instead), far off or inside the tolerance,
    shown rates outside the range; R6: bullets of every length; R5: borrower codes (several
    loans each), ids, none, and household limits."""
    from partners.rules import loan_rule_excess_np

    rng = np.random.default_rng(4)
    n = 2000
    apr = rng.choice([0.0, 0.05, 0.09, 0.18, 0.24, 0.36, 0.5], n)
    shown = apr + rng.choice([0.0, 0.0004, -0.0005, 0.02, -0.1], n)
    shown[::7] = np.nan
    shown[::11] = np.inf
    loans = _loans(apr, rng.choice([0, 1, 2, 3, FF], n).astype(np.int8),
                   rng.choice([3, 6, 12, 24], n).astype(np.int16), shown)
    if disclosed == "none":
        loans = dataclasses.replace(loans, disclosed_apr=None)
    codes = rng.integers(0, 600, n)
    # a cap a borrower's few loans can pass (the default is far above the test loans')
    r5 = next(r for r in rules_with_overrides({"R5": {"max_household_credit": 30_000.0}})
              if r.id == "R5")
    cap = float(r5.params["max_household_credit"])
    cases = [(RULES["R8"], None, None), (RULES["R6"], None, None), (RULES["R9"], None, None),
             (r5, codes, None), (r5, codes.astype(str), None), (r5, None, None),
             (r5, codes, rng.uniform(0, 2 * cap, n))]
    for rule, ids, limit in cases:
        got = loan_rule_excess(rule, loans, ids, limit)
        want = loan_rule_excess_np(rule, loans, ids, limit)
        assert got.tobytes() == want.tobytes(), rule.id
        assert (got > 0).any() and (got == 0).any(), rule.id
        # the loans' cash-flow APRs given (as allocate computes them once): the same bytes
        given = loans.cashflow_apr
        for fn in (loan_rule_excess, loan_rule_excess_np):
            assert fn(rule, loans, ids, limit, given).tobytes() == want.tobytes(), rule.id
    # and they are what R9 reads: every loan over the cap by a whole unit
    for fn in (loan_rule_excess, loan_rule_excess_np):
        assert (fn(RULES["R9"], loans, None, None, loans.cashflow_apr + 1.0) > 0).all()
