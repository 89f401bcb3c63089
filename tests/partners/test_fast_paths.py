"""The vectorised paths of the allocation give the same numbers as the plain definitions:
seasoned loans' lifetime PD (hand product over the remaining ages), R5 household totals from
factorised borrower codes, and an allocation with string vs pre-factorised borrower ids."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from partners_fixtures import make_loans

from partners.allocation import allocate, loan_risk_from_assumptions
from partners.rules import DEFAULT_RULES, loan_rule_excess

R5 = next(r for r in DEFAULT_RULES if r.id == "R5")


def test_lifetime_pd_of_seasoned_loans_by_hand():
    from portfolio.synthetic.generate import GeneratorParams, true_assumptions

    ass = true_assumptions(GeneratorParams(), 8)  # n_age = 8: ages beyond reuse the last column
    loans = make_loans(60, seed=3)
    rng = np.random.default_rng(3)
    mob = rng.integers(0, 11, len(loans)).astype(np.int16)
    rem = np.maximum(loans.term_months - mob, 1).astype(np.int16)
    loans = dataclasses.replace(loans, months_on_book=mob, remaining_term=rem)
    risk = loan_risk_from_assumptions(loans, ass)
    terms = list(ass.terms)
    for i in range(len(loans)):
        # hand calculation: survival over ages mob+1 … mob+rem, column min(age, 8) − 1
        b, t = int(loans.score_band[i]), terms.index(int(loans.term_months[i]))
        surv = 1.0
        for age in range(int(mob[i]) + 1, int(mob[i]) + int(rem[i]) + 1):
            surv *= 1 - ass.default_hazard[b, t, min(age, 8) - 1]
        assert risk.lifetime_pd[i] == pytest.approx(1 - surv, rel=1e-10)
    # the annual PD, worked out once per distinct (band, term, age, remaining term), is the
    # per-loan formula 1 − (1 − PD_life)^(12 / rem) in its expm1/log1p form, bit for bit
    per_loan = -np.expm1(np.log1p(-np.minimum(risk.lifetime_pd, 1 - 1e-12)) * 12.0
                         / np.maximum(rem.astype(np.int64), 1))
    assert risk.annual_pd.tobytes() == per_loan.tobytes()
    assert len(np.unique(risk.annual_pd)) < len(loans)  # keys repeat: looked up, not recomputed


@given(st.lists(st.integers(0, 6), min_size=1, max_size=40), st.integers(0, 2**31))
def test_r5_totals_from_codes_equal_those_from_strings(owner, seed):
    n = len(owner)
    loans = make_loans(n, seed=seed % 1000)
    balance = np.random.default_rng(seed).uniform(1_000, 150_000, n)
    loans = dataclasses.replace(loans, balance=balance)
    names = np.array([f"B{k:03d}" for k in owner], dtype=object)
    by_name = loan_rule_excess(R5, loans, names)
    codes = pd.factorize(names)[0]
    assert np.array_equal(loan_rule_excess(R5, loans, codes), by_name)
    # other integers (not codes 0 … n−1) group as their strings
    assert np.array_equal(loan_rule_excess(R5, loans, np.asarray(owner) * 1000 - 7), by_name)
    # the household total by hand: the sum of the borrower's balances
    for i in range(n):
        total = balance[names == names[i]].sum()
        assert by_name[i] == pytest.approx(max(total - float(R5.params["max_household_credit"]), 0.0))


def test_allocation_same_with_string_or_integer_borrower_ids(registry):
    import datetime as dt

    loans = make_loans(400, seed=5)
    names = np.array([f"B{i % 150:04d}" for i in range(len(loans))], dtype=object)
    names[:40] = "B9999"  # one household over the R5 cap
    as_of = dt.date(2026, 11, 1)
    by_name = allocate(loans, registry, as_of=as_of, borrower_id=names)
    by_code = allocate(loans, registry, as_of=as_of, borrower_id=pd.factorize(names)[0])
    assert np.array_equal(by_name.shares, by_code.shares)
    assert by_name.checks.as_dict() == by_code.checks.as_dict()
    assert by_name.checks.excluded["R5"] == 40  # the household is over the cap


_ID_CHARS = "0123456789abcdefABx"


@given(st.lists(st.text(_ID_CHARS, min_size=0, max_size=4), min_size=1, max_size=60),
       st.sampled_from(["B", "", "Bé", "B00"]), st.integers(0, 14))
def test_borrower_codes_equal_string_factorisation(tails, prefix, pad):
    from partners.allocation import _borrower_codes, _hex_tail_keys

    # ids of one length and one prefix with a hex tail (the packed fast path), and any others
    ids = np.array([prefix + t.rjust(pad + 4, "0") for t in tails], dtype=object)
    assert np.array_equal(_borrower_codes(ids), pd.factorize(ids)[0])
    loose = np.array([prefix + t for t in tails], dtype=object)
    assert np.array_equal(_borrower_codes(loose), pd.factorize(loose)[0])
    # the generator's form packs: B + 16 lowercase hex digits
    gen = np.array([f"B{abs(hash(t)) % 16**16:016x}" for t in tails], dtype=object)
    assert _hex_tail_keys(gen) is not None
    assert np.array_equal(_borrower_codes(gen), pd.factorize(gen)[0])
    # same hex tail, different leading bytes: not packed (the tail alone would merge them)
    assert _hex_tail_keys(np.array(["A" + "0" * 16, "B" + "0" * 16], dtype=object)) is None
