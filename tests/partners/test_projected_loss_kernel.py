"""The allocation's fast paths against their references: the projected loss rate's numba
kernel (``allocation._projected_loss_sums``) against its numpy oracle (``projected_loss_rate_np``:
``schedule_matrix`` and the survival matrices), bit for bit, on pools with every repayment
type, seasoned loans, odd dates and several chunks; the shared region factorisation against
``pd.factorize``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from partners_fixtures import make_loans

import partners.allocation as allocation
from partners import lookup
from partners.allocation import projected_loss_rate, projected_loss_rate_np
from portfolio.synthetic.generate import GeneratorParams, true_assumptions


def _seasoned_pool(n: int, seed: int):
    """Every repayment type (flat fee included), months on book 0-20, remaining terms 1 to
    the full term, origination days 28-31 of the month (month-end due dates)."""
    rng = np.random.default_rng(seed)
    loans = make_loans(n, seed=seed)
    term = loans.term_months.astype(np.int64)
    mob = rng.integers(0, 21, n)
    mob = np.minimum(mob, term - 1)
    rem = np.maximum(term - mob - rng.integers(0, 2, n), 1)
    rt = rng.integers(0, 5, n).astype(np.int8)  # 4 = flat fee
    days = rng.choice(np.array([1, 15, 28, 29, 30, 31]), n)
    orig = (np.datetime64("2024-01") + rng.integers(0, 24, n).astype("timedelta64[M]")
            ).astype("datetime64[D]")
    month_len = ((orig.astype("datetime64[M]") + 1).astype("datetime64[D]") - orig).astype(np.int64)
    orig = orig + (np.minimum(days, month_len) - 1).astype(np.int64).astype("timedelta64[D]")
    balance = np.round(loans.principal * rng.uniform(0.05, 1.0, n), 2)
    return dataclasses.replace(loans, balance=balance, months_on_book=mob.astype(np.int16),
                               remaining_term=rem.astype(np.int16), repayment_type=rt,
                               origination_date=orig)


@pytest.mark.parametrize("chunk", [7, 1000, 100_000])
def test_kernel_equals_the_numpy_oracle_bit_for_bit(monkeypatch, chunk):
    ass = true_assumptions(GeneratorParams(), 24)
    loans = _seasoned_pool(3000, seed=11)
    assert set(np.unique(loans.repayment_type)) == {0, 1, 2, 3, 4}
    monkeypatch.setattr(allocation, "_PROJECTION_CHUNK", chunk)
    got = projected_loss_rate(loans, ass)
    want = projected_loss_rate_np(loans, ass)
    assert got.tobytes() == want.tobytes()
    assert (got >= 0).all() and (got > 0).mean() > 0.5  # some ages have no hazard


def test_kernel_equals_the_oracle_for_new_loans_and_one_month_left():
    ass = true_assumptions(GeneratorParams(), 24)
    loans = make_loans(500, seed=4)  # new loans
    one = dataclasses.replace(loans, remaining_term=np.ones(500, dtype=np.int16))
    for pool in (loans, one):
        assert projected_loss_rate(pool, ass).tobytes() == \
            projected_loss_rate_np(pool, ass).tobytes()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_region_codes_are_pandas_factorize(seed):
    """The allocation's shared region factorisation equals pd.factorize, unsorted and sorted
    (names sorted, codes renumbered), for a read-only array (remembered) and a writeable one."""
    import pandas as pd

    from partners.allocation import region_codes

    rng = np.random.default_rng(seed)
    names = np.array(["Zhejiang", "", "Anhui", "beijing", "Jiangsu", "上海", "Guangdong"],
                     dtype=object)
    region = names[rng.integers(0, len(names), 5000)]
    for writeable in (True, False):
        arr = region.copy()
        arr.setflags(write=writeable)
        for sort in (False, True, False, True):
            got_c, got_n = region_codes(arr, sort=sort)
            want_c, want_n = pd.factorize(pd.Series(arr, dtype=object), sort=sort)
            assert np.array_equal(got_c, want_c) and list(got_n) == list(want_n)


def test_region_codes_read_with_the_pool_are_pandas_factorize():
    """A pool's regions read through Arrow (``portfolio.store.pools._arrow_numpy``, which
    dictionary-encodes them and remembers the codes): ``value_codes`` gives pd.factorize of
    the column, and of a leading slice in which every region occurs (what
    ``LoanArrays.take(slice(0, n))`` keeps), else nothing (a slice missing a region, a slice
    not from the start, another array); ``region_codes`` equals pd.factorize in every case."""
    import pandas as pd
    import pyarrow as pa

    from partners.allocation import region_codes
    from portfolio.loans.arrays import value_codes
    from portfolio.store.pools import _arrow_numpy

    rng = np.random.default_rng(5)
    names = np.array(["Zhejiang", "", "Anhui", "beijing", "Jiangsu", "上海", "Guangdong"],
                     dtype=object)
    region = names[rng.integers(0, len(names), 5000)]
    region[4000] = "Hainan"  # first seen late: a prefix before it lacks it
    chunked = pa.chunked_array([pa.array(list(region[:1700])), pa.array(list(region[1700:]))])
    arr = _arrow_numpy(pa.table({"region": chunked}), few_values=("region",))["region"]
    arr.setflags(write=False)
    assert list(arr) == list(region)
    for part, known in ((arr, True), (arr[:4500], True), (arr[:3000], False),
                        (arr[1:], False), (region, False)):
        want_c, want_n = pd.factorize(pd.Series(part, dtype=object))
        got = value_codes(part)
        assert (got is not None) == known
        if got is not None:
            assert np.array_equal(got[0], want_c) and list(got[1]) == list(want_n)
        for sort in (False, True):
            want_c, want_n = pd.factorize(pd.Series(part, dtype=object), sort=sort)
            got_c, got_n = region_codes(part, sort=sort)
            assert np.array_equal(got_c, want_c) and list(got_n) == list(want_n)


def test_float_codes_give_back_every_value_bit_for_bit():
    """The APRs' codes: values[codes] is the input bit for bit (0.0 and -0.0 apart, NaN
    kept), each distinct bit pattern once, across the hash table's growth."""
    rng = np.random.default_rng(3)
    x = np.round(rng.uniform(0, 0.36, 50_000), 4)  # about 3,600 distinct values
    x[:5] = [0.0, -0.0, np.nan, 0.18, 0.18]
    codes, values = lookup.float_codes(x)
    assert values[codes].tobytes() == x.tobytes()
    assert len(values) == len(np.unique(x.view(np.uint64)))


def test_kernel_equals_the_oracle_on_wide_scores_terms_and_dates():
    """Scores, terms and origination days spanning ranges too wide for a table of distinct
    values (every loan looked up by position instead), and many distinct APRs: the same
    rates as the numpy oracle."""
    ass = true_assumptions(GeneratorParams(), 24)
    loans = _seasoned_pool(400, seed=5)
    rng = np.random.default_rng(5)
    wide = loans.origination_date.copy()
    wide[0] = np.datetime64("1975-03-31")  # span of days far wider than 4 × the pool
    score = loans.credit_score.astype(np.int32)
    score[0] = 200_000  # beyond the band table's range
    apr = np.round(rng.uniform(0.0, 0.35, 400), 6)
    apr[1:5] = 0.0  # an APR of 0: the level payment is the balance over the months
    rt = loans.repayment_type.copy()
    rt[1:5] = [0, 1, 3, 4]
    pool = dataclasses.replace(loans, origination_date=wide, credit_score=score, apr=apr,
                               repayment_type=rt)
    assert allocation.lookup.span(pool.origination_date.view(np.int64)) is None
    assert projected_loss_rate(pool, ass).tobytes() == \
        projected_loss_rate_np(pool, ass).tobytes()


def test_kernel_equals_the_oracle_with_signed_zero_hazards():
    """Hazards of -0.0 (they pass a >= 0 check) make terms of -0.0: the kernel, which adds
    a loan's months to 0.0 in month order, as the oracle does, gives the oracle's
    bytes (zero rates 0.0), for chunks whose longest remaining term is under 8, a multiple
    of 8 and neither."""
    ass = true_assumptions(GeneratorParams(), 24)
    hz = np.array(ass.default_hazard, dtype=np.float64)
    hz[:, :, :] = -0.0
    hz[:, :, 17:] = np.asarray(ass.default_hazard)[:, :, 17:]  # new loans: zero terms only
    neg = dataclasses.replace(ass, default_hazard=hz)
    loans = _seasoned_pool(600, seed=8)
    for longest in (5, 8, 16, 13):
        rem = np.minimum(loans.remaining_term, longest).astype(np.int16)
        pool = dataclasses.replace(loans, remaining_term=rem,
                                   months_on_book=np.zeros(len(loans), dtype=np.int16))
        got = projected_loss_rate(pool, neg)
        assert got.tobytes() == projected_loss_rate_np(pool, neg).tobytes()
        zero = got == 0
        assert zero.any() and not np.signbit(got[zero]).any()
