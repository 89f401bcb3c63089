"""``LoanArrays.score_band``: the band of every loan's score, computed through a lookup table
over the distinct scores, against ``numpy.searchsorted`` of each score over the bands' lower
edges (``types.SCORE_BANDS``), written out independently here."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from portfolio.loans.arrays import LoanArrays
from portfolio.loans.types import SCORE_BANDS

EDGES = np.array([600, 650, 700, 750, 800])  # the lower edges of bands 1..5 (350-600 is 0)


def _loans(score: np.ndarray) -> LoanArrays:
    n = len(score)
    return LoanArrays(
        loan_id=np.array([f"L{i}" for i in range(n)], dtype=object),
        balance=np.full(n, 1000.0), apr=np.full(n, 0.12),
        term_months=np.full(n, 12, np.int16), remaining_term=np.full(n, 6, np.int16),
        months_on_book=np.full(n, 6, np.int16), repayment_type=np.zeros(n, np.int8),
        credit_score=score.astype(np.int16), region=np.full(n, "north", dtype=object),
        origination_date=np.full(n, np.datetime64("2025-06-30")),
        next_due_date=np.full(n, np.datetime64("2026-01-31")), principal=np.full(n, 2000.0))


def test_edges_are_the_bands_lower_bounds():
    assert [lo for lo, _ in SCORE_BANDS[1:]] == EDGES.tolist()


@given(st.lists(st.integers(350, 950), min_size=1, max_size=300))
def test_score_band_is_the_band_of_each_score(scores):
    score = np.array(scores)
    band = _loans(score).score_band
    assert band.dtype == np.int8
    np.testing.assert_array_equal(band, np.searchsorted(EDGES, score, side="right"))


def test_band_boundaries():
    score = np.array([350, 599, 600, 649, 650, 699, 700, 749, 750, 799, 800, 950])
    np.testing.assert_array_equal(_loans(score).score_band,
                                  [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
