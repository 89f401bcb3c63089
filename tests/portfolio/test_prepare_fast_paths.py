"""The fast paths of ``prepare_pool`` and ``replenishment_loans`` give what the plain code
gives: the dense cell key sorts loans into the same order as the radix key
``((band·64 + term)·4096 + mob)·4096 + rem`` (with small cells last), and the new loans' ids
and first due dates are the per-loan ``"new:" + str(id)`` and ``add_months(cut-off, 1)``."""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from replenishment_pools import short_tenor_loans

from portfolio.loans.schedules import add_months
from portfolio.montecarlo import engines
from portfolio.montecarlo.replenishment import _new_ids, replenishment_loans
from portfolio.montecarlo.simulation import _cell_key, _cells, _stable_argsort


def _radix_order(band, term, mob, rem, small_loan=None):
    """The reference: the radix key, small flag at bit 40, numpy's stable argsort."""
    key = ((band * 64 + term) * 4096 + mob) * 4096 + rem
    if small_loan is not None:
        key = key + (small_loan.astype(np.int64) << 40)
    return np.argsort(key, kind="stable")


@given(st.integers(0, 2**32 - 1), st.integers(1, 400), st.sampled_from([4, 40, 400, 4000]))
def test_cell_key_orders_loans_like_the_radix_key(seed, n, mob_span):
    rng = np.random.default_rng(seed)
    band = rng.integers(0, 6, n)
    term = rng.integers(0, 6, n)
    mob = rng.integers(0, mob_span, n)
    rem = rng.integers(1, 37, n)
    key, bound = _cell_key(band, term, mob, rem)
    assert 0 <= key.min() and key.max() < bound
    order = _stable_argsort(key, bound)
    assert np.array_equal(order, _radix_order(band, term, mob, rem))
    # same cells: equal keys exactly for equal (band, term, mob, rem)
    tup = np.stack([band, term, mob, rem], axis=1)[order]
    assert np.array_equal(key[order][1:] != key[order][:-1], (tup[1:] != tup[:-1]).any(axis=1))
    # small cells last, as prepare_pool adds them
    small_loan = rng.integers(0, 2, n)
    order2 = _stable_argsort(key + small_loan * bound, 2 * bound)
    assert np.array_equal(order2, _radix_order(band, term, mob, rem, small_loan))


@given(st.integers(0, 2**32 - 1), st.integers(1, 500), st.sampled_from([1, 3, 300, 70_000, 1 << 21]))
def test_cells_are_the_stable_sort_and_its_runs_of_equal_keys(seed, n, bound):
    # _cells: a counting sort (engines.stable_counting_order) below 2**20, numpy's stable
    # argsort above; both must give numpy's stable argsort and, in that order, the first
    # position and length of every run of equal keys
    key = np.random.default_rng(seed).integers(0, bound, n).astype(np.int64)
    order, starts, cell_n = _cells(key, bound)
    ref = np.argsort(key, kind="stable")
    assert order.dtype == np.int64 and np.array_equal(order, ref)
    skey = key[ref]
    ref_starts = np.flatnonzero(np.r_[True, skey[1:] != skey[:-1]])
    assert np.array_equal(starts, ref_starts)
    assert np.array_equal(cell_n, np.diff(np.r_[ref_starts, n]))
    if bound <= 1 << 20:
        _, count = engines.stable_counting_order(key, bound)
        assert np.array_equal(count, np.bincount(key, minlength=bound))


def test_new_ids_are_new_prefix_and_str_of_every_id():
    for ids in (np.array(["L1", "L22", np.str_("L3")], dtype=object),
                np.array([1, 22, 3], dtype=object), np.array(["L1", 7, None], dtype=object),
                np.array(["a", "b"]), np.arange(3)):
        expected = np.array(["new:" + str(x) for x in ids], dtype=object)
        got = _new_ids(ids)
        assert got.dtype == object and got.tolist() == expected.tolist()
        assert all(type(x) is str for x in got)


def test_first_due_is_one_calendar_month_after_each_cutoff():
    tiny_loans = short_tenor_loans(n=20)
    for cut in (dt.date(2026, 1, 31), dt.date(2024, 1, 31), dt.date(2025, 12, 31),
                dt.date(2026, 3, 15)):
        new = replenishment_loans(tiny_loans, cut)
        expected = add_months(np.full(len(new), np.datetime64(cut, "D")), 1)
        assert np.array_equal(new.next_due_date, expected)
        assert new.next_due_date.dtype == np.dtype("datetime64[D]")


def test_replenishment_profile_is_the_same_on_one_thread_or_several(monkeypatch):
    from replenishment_pools import simple_assumptions

    from portfolio.montecarlo.replenishment import simulate_replenishment

    loans = short_tenor_loans(n=60)
    a = simple_assumptions()
    cut = dt.date(2026, 6, 30)
    monkeypatch.setenv("RISKPOOL_THREADS", "3")  # portfolio.settings.threads()
    # 3 blocks, 4 calendar vintages (engines.expected_vintages on every block)
    several = simulate_replenishment(loans, a, 700, 11, cutoff=cut, purchase_months=4)
    monkeypatch.setenv("RISKPOOL_THREADS", "1")
    one = simulate_replenishment(loans, a, 700, 11, cutoff=cut, purchase_months=4)
    assert one.n_vintages == several.n_vintages == 4
    for s in range(4):
        for name in ("balance_bop", "interest", "scheduled_principal", "prepayment", "default",
                     "recovery", "balance_eop"):
            assert np.array_equal(getattr(one.vintage(s), name),
                                  getattr(several.vintage(s), name)), (s, name)
    assert one.initial_balance == several.initial_balance


@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.sampled_from(
    [None, "nan", "inf", "negative", "above_one", "sum_high", "sum_low", "sum_edge"]))
def test_shares_pass_exactly_when_the_array_checks_pass(seed, parties, defect):
    # engines.shares_valid (one compiled pass) against the array checks it stands in front of
    # in prepare_pool: every entry in [0, 1] and |row sum - 1| <= 1e-9 (numpy's row sums)
    rng = np.random.default_rng(seed)
    s = rng.dirichlet(np.ones(parties), size=50)
    i, j = int(rng.integers(50)), int(rng.integers(parties))
    if defect == "nan":
        s[i, j] = np.nan
    elif defect == "inf":
        s[i, j] = np.inf
    elif defect == "negative":
        s[i, j] = -1e-12
    elif defect == "above_one":
        s[i, j] = 1.5
    elif defect == "sum_high":
        s[i] *= 1 + 1e-8
    elif defect == "sum_low":
        s[i] *= 1 - 1e-8
    elif defect == "sum_edge":
        s[i] *= 1 + 5e-10  # within the tolerance: accepted
    expected = bool(((s >= 0.0) & (s <= 1.0)).all()
                    and (np.abs(s.sum(axis=1) - 1.0) <= 1e-9).all())
    assert engines.shares_valid(s, 1e-9) == expected
    assert expected == (defect in (None, "sum_edge"))  # the defects do what they say
