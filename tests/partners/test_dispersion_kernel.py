"""``partners.dispersion.party_sums`` (each party's IRB capital and exposure in one pass over
the shares) against its numpy twin, bit for bit, and against a hand calculation."""

from __future__ import annotations

import numpy as np
import pytest

from partners.dispersion import exposure_sums, party_sums, party_sums_np


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
