"""partners.lookup: table lookups equal to the numpy / pandas calls they replace, on any
integer input (hypothesis), narrow or wide."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from partners import lookup

DTYPES = st.sampled_from([np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16])


@st.composite
def int_arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = np.dtype(draw(DTYPES))
    info = np.iinfo(dtype)
    # narrow ranges (a table) and the whole range of the dtype (the fallback)
    lo = draw(st.integers(int(info.min), int(info.max)))
    hi = draw(st.integers(lo, min(int(info.max), lo + draw(st.sampled_from([3, 40, 10**12])))))
    return draw(hnp.arrays(dtype, st.integers(0, 300), elements=st.integers(lo, hi)))


@given(int_arrays(), st.lists(st.integers(-300, 300), max_size=8))
def test_isin_is_numpys(values: np.ndarray, members: list[int]) -> None:
    got = lookup.isin(values, members)
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, np.isin(values, members))


@given(int_arrays(), st.lists(st.integers(-300, 300), max_size=8), st.sampled_from(["left", "right"]))
def test_searchsorted_is_numpys(values: np.ndarray, edges: list[int], side: str) -> None:
    e = np.sort(np.asarray(edges, dtype=np.int64))
    got = lookup.searchsorted(e, values, side=side)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.searchsorted(e, values, side=side))


@given(int_arrays())
def test_factorize_sorted_is_pandas(key: np.ndarray) -> None:
    codes, uniq = lookup.factorize_sorted(key)
    want_codes, want_uniq = pd.factorize(key, sort=True)
    np.testing.assert_array_equal(codes, want_codes)
    np.testing.assert_array_equal(uniq, want_uniq)
    assert codes.dtype == np.int64 and uniq.dtype == key.dtype


def test_a_worked_example() -> None:
    # by hand: keys 7, 3, 7, 9 -> sorted distinct 3, 7, 9 -> codes 1, 0, 1, 2
    codes, uniq = lookup.factorize_sorted(np.array([7, 3, 7, 9], dtype=np.int16))
    assert codes.tolist() == [1, 0, 1, 2] and uniq.tolist() == [3, 7, 9]
    assert lookup.isin(np.array([0, 1, 3], dtype=np.int8), (1, 2)).tolist() == [False, True, False]
    # terms 3, 6, 12 against allowed (3, 6, 9, 12, 18, 24): positions 0, 1, 3
    assert lookup.searchsorted((3, 6, 9, 12, 18, 24), np.array([3, 6, 12], dtype=np.int16)
                               ).tolist() == [0, 1, 3]
