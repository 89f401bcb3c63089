"""``partners.dispersion.party_sums`` (each party's IRB capital and exposure in one pass over
the shares) against its numpy twin, bit for bit, and against a hand calculation; the IRB K
computed once per distinct (PD, LGD) pair (``partners.capital.irb_retail_k_distinct``)
against K loan by loan (``irb_retail_k``), bit for bit, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest

from partners.capital import Framework, RetailClass, RetailIrb, irb_retail_k, irb_retail_k_distinct
from partners.dispersion import exposure_sums, party_sums, party_sums_np
from partners.errors import DispersionError


@pytest.mark.parametrize("n_loans", [1, 2, 9, 8_193, 100_003])
@pytest.mark.parametrize("n_parties", [1, 2, 3, 4, 7])
def test_party_sums_equal_the_numpy_column_sums(n_loans: int, n_parties: int) -> None:
    """Two or more parties: the kernel adds each column in loan order from 0.0, as numpy
    does; one party: numpy sums the single column pairwise, and ``exposure_sums`` (what
    ``disperse`` calls) then computes it with numpy."""
    rng = np.random.default_rng(n_loans + n_parties)
    shares = rng.dirichlet(np.ones(n_parties), n_loans)
    shares[rng.random(shares.shape) < 0.1] = 0.0
    capital = rng.random(n_loans) * 10.0 ** rng.integers(-5, 8, n_loans)
    capital[rng.random(n_loans) < 0.05] = -0.0
    balance = rng.random(n_loans) * 1e5
    want = party_sums_np(shares, capital, balance)
    results = [exposure_sums(shares, capital, balance)]
    if n_parties >= 2:
        results.append(party_sums(shares, capital, balance))
    for got in results:
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g.view(np.int64), w.view(np.int64))


def test_party_sums_signed_zeros() -> None:
    """A party with nothing: +0.0 as numpy's sum gives it (its sum starts from 0.0)."""
    shares = np.array([[1.0, -0.0], [1.0, -0.0]])
    got = party_sums(shares, np.array([2.0, 3.0]), np.array([5.0, 7.0]))
    want = party_sums_np(shares, np.array([2.0, 3.0]), np.array([5.0, 7.0]))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g.view(np.int64), w.view(np.int64))


def test_party_sums_by_hand() -> None:
    """Two loans (balances 100 and 300, K 0.1 and 0.2), split 60/40 and 25/75:
    exposure 60 + 75 = 135 and 40 + 225 = 265; capital 6 + 15 = 21 and 4 + 45 = 49."""
    shares = np.array([[0.6, 0.4], [0.25, 0.75]])
    balance = np.array([100.0, 300.0])
    irb, exposure = party_sums(shares, np.array([0.1, 0.2]) * balance, balance)
    np.testing.assert_allclose(exposure, [135.0, 265.0], rtol=1e-15)
    np.testing.assert_allclose(irb, [21.0, 49.0], rtol=1e-15)


@pytest.mark.parametrize("framework", list(Framework))
@pytest.mark.parametrize("sub_class", list(RetailClass))
@pytest.mark.parametrize("n_pd, n_lgd", [(1, 1), (266, 1), (9, 3), (40, 25), (5_000, 1)])
def test_irb_k_by_distinct_pair_equals_loan_by_loan(framework: Framework, sub_class: RetailClass,
                                                     n_pd: int, n_lgd: int) -> None:
    """K computed once per distinct (PD, LGD) and gathered is K loan by loan, bit for bit
    (PDs below the floors, at 1 (in default) and in between; one LGD or several; many
    distinct PDs fall back to the loan-by-loan computation)."""
    rng = np.random.default_rng(n_pd * 31 + n_lgd)
    pd_values = np.concatenate([[0.0, 1e-5, 1.0], rng.random(n_pd) ** 3])[:max(n_pd, 3)]
    lgd_values = rng.uniform(0.05, 1.0, n_lgd)
    n = 20_000
    pd = pd_values[rng.integers(0, len(pd_values), n)]
    lgd = lgd_values[rng.integers(0, n_lgd, n)]
    method = RetailIrb(framework, sub_class)
    got = irb_retail_k_distinct(pd, lgd, method)
    want = irb_retail_k(pd, lgd, method)
    np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))


@pytest.mark.parametrize("bad", [np.nan, -0.1, 1.5])
def test_irb_k_by_distinct_pair_refuses_what_loan_by_loan_refuses(bad: float) -> None:
    pd = np.full(4_096, 0.02)
    pd[1_000] = bad
    lgd = np.full(4_096, 0.6)
    with pytest.raises(DispersionError) as want:
        irb_retail_k(pd, lgd)
    with pytest.raises(DispersionError) as got:
        irb_retail_k_distinct(pd, lgd)
    assert str(got.value) == str(want.value)
    with pytest.raises(DispersionError) as want_lgd:
        irb_retail_k(lgd, pd)
    with pytest.raises(DispersionError) as got_lgd:
        irb_retail_k_distinct(lgd, pd)
    assert str(got_lgd.value) == str(want_lgd.value)
