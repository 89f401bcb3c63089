"""The waterfall's compiled loops (``tranching.kernels``) against their numpy twins, bit for
bit: the revolving purchases' flows added to the held pool (``add_vintage``), the delinquency
model's 30+/60+/90+ DPD balances of the simulated pool (``dpd_months``) and of the loans bought
(``add_vintage_dpd``), and the tape's month-major buffers written path-major into the result
(``transpose_into``); and the month loop's row-wise forms of numpy's cumulative sum over the
tranches and mean over a trigger's months (``cumulative_rows``, ``mean_rows``). The DPD
balances are also checked against the paths' own ``DelinquencyPaths.dpd_balance`` (the public definition: the buckets past 30/60/90 days), and
values that are signed zeros, tiny or huge, on strided (thread-sliced) inputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from portfolio.montecarlo.paths import DelinquencyPaths
from tranching.kernels import (
    PATH_BLOCK,
    add_vintage,
    add_vintage_dpd,
    add_vintage_dpd_np,
    add_vintage_np,
    dpd_months,
    dpd_months_np,
    transpose_into,
    transpose_into_np,
)
from tranching.steps import cumulative_rows
from tranching.waterfall import DPD_FIRST_STATE, mean_rows


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.int64)


def _awkward(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random values with signed zeros, tiny and huge magnitudes mixed in."""
    x = rng.standard_normal(shape) * 10.0 ** rng.integers(-100, 100, shape)
    pick = rng.random(shape)
    x[pick < 0.05] = -0.0
    x[(pick >= 0.05) & (pick < 0.1)] = 0.0
    return x


# paths around the kernel's block size (one block, a part block, several blocks)
SIZES = [1, 7, PATH_BLOCK - 1, PATH_BLOCK, PATH_BLOCK + 1, 3 * PATH_BLOCK + 5]


@pytest.mark.parametrize("n_paths", SIZES)
@pytest.mark.parametrize("k", [1, 5, 12])
def test_add_vintage_equals_its_numpy_twin(n_paths: int, k: int) -> None:
    rng = np.random.default_rng(n_paths * 100 + k)
    src = _awkward(rng, (n_paths, 12))
    purchases = np.abs(_awkward(rng, (n_paths,)))
    start = _awkward(rng, (20, n_paths))
    got, want = start.copy(), start.copy()
    for t0 in (1, 3):  # two purchases, the second adding to the first
        add_vintage(got, t0, src, k, 0.37, purchases)
        add_vintage_np(want, t0, src, k, 0.37, purchases)
    np.testing.assert_array_equal(_bits(got), _bits(want))
    assert not np.array_equal(got, start)  # it added something


def test_add_vintage_on_a_thread_slice_of_the_paths() -> None:
    """Row ranges of a larger array (what each waterfall thread sees) give the same numbers
    as the whole, and only their own columns of the destination change."""
    rng = np.random.default_rng(3)
    src = _awkward(rng, (1_000, 31))
    purchases = rng.random(1_000)
    whole = np.zeros((44, 1_000))
    add_vintage(whole, 2, src, 31, 1.0 / 3.0, purchases)
    parts = np.zeros((44, 1_000))
    for a, b in ((0, 333), (333, 1_000)):
        add_vintage(parts[:, a:b], 2, src[a:b], 31, 1.0 / 3.0, purchases[a:b])
    np.testing.assert_array_equal(_bits(parts), _bits(whole))
    want = np.zeros((44, 1_000))
    add_vintage_np(want, 2, src, 31, 1.0 / 3.0, purchases)
    np.testing.assert_array_equal(_bits(whole), _bits(want))


def _states(rng: np.random.Generator, n_paths: int, n_months: int, n_states: int
            ) -> np.ndarray:
    return np.abs(_awkward(rng, (n_paths, n_months, n_states))) * \
        np.where(rng.random((n_paths, n_months, n_states)) < 0.1, -1.0, 1.0)


@pytest.mark.parametrize("n_paths", SIZES)
@pytest.mark.parametrize("n_states", [3, 4, 5, 7])  # charge-off at 60, 90, 120, 180 DPD
def test_dpd_months_equals_its_twin_and_the_paths_dpd_balance(n_paths: int,
                                                               n_states: int) -> None:
    rng = np.random.default_rng(n_paths * 10 + n_states)
    sb = _states(rng, n_paths, 9, n_states)
    got = np.full((3, 11, n_paths), 5.0)
    want = got.copy()
    dpd_months(got, sb, DPD_FIRST_STATE)
    dpd_months_np(want, sb, DPD_FIRST_STATE)
    np.testing.assert_array_equal(_bits(got), _bits(want))
    # the public definition: DelinquencyPaths.dpd_balance(30/60/90)
    dq = DelinquencyPaths(charge_off_dpd=30 * (n_states - 1), cure_rule="full",
                          state_balance=sb, cures=np.zeros((n_paths, 9)))
    for i, days in enumerate((30, 60, 90)):
        np.testing.assert_array_equal(_bits(got[i, :9].T), _bits(dq.dpd_balance(days)))
    np.testing.assert_array_equal(got[:, 9:], 5.0)  # months past the paths' are left alone


@pytest.mark.parametrize("n_paths", SIZES)
@pytest.mark.parametrize("n_states", [3, 4, 6])
def test_add_vintage_dpd_equals_its_numpy_twin(n_paths: int, n_states: int) -> None:
    rng = np.random.default_rng(n_paths + 7 * n_states)
    sb = _states(rng, n_paths, 10, n_states)
    purchases = np.abs(_awkward(rng, (n_paths,)))
    start = _awkward(rng, (3, 16, n_paths))
    got, want = start.copy(), start.copy()
    for t0, k in ((1, 10), (4, 6)):
        add_vintage_dpd(got, t0, sb, DPD_FIRST_STATE, k, 0.25, purchases)
        add_vintage_dpd_np(want, t0, sb, DPD_FIRST_STATE, k, 0.25, purchases)
    np.testing.assert_array_equal(_bits(got), _bits(want))


def test_add_vintage_dpd_is_the_purchase_times_the_dpd_balance_per_unit() -> None:
    """By hand on one path: a purchase of 200 of a vintage of balance 1,000 adds 0.2 × its
    30+ (states 2…), 60+ (state 3…) and 90+ (none with charge-off at 90) balances."""
    sb = np.array([[[700.0, 100.0, 50.0, 30.0], [600.0, 90.0, 40.0, 20.0]]])  # 1 path, 2 m
    dst = np.zeros((3, 4, 1))
    add_vintage_dpd(dst, 1, sb, DPD_FIRST_STATE, 2, 1.0 / 1000.0, np.array([200.0]))
    np.testing.assert_allclose(dst[0, 1:3, 0], [0.2 * 80.0, 0.2 * 60.0], rtol=1e-15)
    np.testing.assert_allclose(dst[1, 1:3, 0], [0.2 * 30.0, 0.2 * 20.0], rtol=1e-15)
    np.testing.assert_array_equal(dst[2], 0.0)
    np.testing.assert_array_equal(dst[:, 0], 0.0)
    np.testing.assert_array_equal(dst[:, 3], 0.0)


@pytest.mark.parametrize("n_paths", [1, 63, 64, 65, 1_000])
@pytest.mark.parametrize("dtype", [np.float64, np.bool_])
@pytest.mark.parametrize("repeats", [False, True])
def test_transpose_into_equals_its_numpy_twin(n_paths: int, dtype: type, repeats: bool) -> None:
    """A tape buffer (n_months, n_paths), or one tranche of a (n_months, n_tranches,
    n_paths) buffer (a strided source), into a thread's rows of the result; each month from
    its own row, or (``repeats``) some months from the row of an earlier month they repeat."""
    rng = np.random.default_rng(n_paths)
    tape = _awkward(rng, (43, 3, n_paths)) if dtype is np.float64 else \
        rng.random((43, 3, n_paths)) < 0.3
    months = np.arange(43)
    if repeats:  # months 20 … 29 repeat month 19, month 41 repeats month 40
        months[20:30] = 19
        months[41] = 40
    got: np.ndarray = np.zeros((3, n_paths + 10, 43), dtype=dtype)
    want = got.copy()
    for j in range(3):
        transpose_into(got[j, 5 : 5 + n_paths], tape[:, j], months)
        transpose_into_np(want[j, 5 : 5 + n_paths], tape[:, j], months)
    flat = np.ascontiguousarray(tape[:, 1])
    transpose_into(got[0, 5 : 5 + n_paths], flat, months)
    transpose_into_np(want[0, 5 : 5 + n_paths], flat, months)
    np.testing.assert_array_equal(got, want)
    if dtype is np.float64:
        np.testing.assert_array_equal(_bits(got), _bits(want))
    # by definition: month t of a path is the tape's row months[t]
    np.testing.assert_array_equal(got[1, 5 : 5 + n_paths], tape[months, 1].T)
    if repeats:
        np.testing.assert_array_equal(got[1, 5 : 5 + n_paths, 25], tape[19, 1])
    assert not got[:, :5].any() and not got[:, 5 + n_paths :].any()  # other rows untouched


@pytest.mark.parametrize("n_tranches", [1, 2, 3, 5])
def test_cumulative_rows_is_numpys_cumsum_over_tranches(n_tranches: int) -> None:
    """Every combination of signed zeros, infinities, NaN and ordinary values."""
    vals = [0.0, -0.0, 1e-300, 1.5, -1.5, 1e16, np.inf, -np.inf, np.nan]
    reps = min(n_tranches, 3)
    combos = np.array(list(itertools.product(vals, repeat=reps))).T
    a = np.ascontiguousarray(np.resize(combos, (n_tranches, combos.shape[1])))
    with np.errstate(invalid="ignore"):
        got, want = cumulative_rows(a), np.cumsum(a, axis=0)
    np.testing.assert_array_equal(_bits(got), _bits(want))
    assert cumulative_rows(np.zeros((0, 4))).shape == (0, 4)


@pytest.mark.parametrize("n_rows", [1, 2, 3, 6])
def test_mean_rows_is_numpys_mean_over_months(n_rows: int) -> None:
    """The trigger's average over its last months: every combination of signed zeros,
    infinities, NaN and ordinary values in up to three rows, then random rows."""
    vals = [0.0, -0.0, 1e-300, 1.5, -1.5, 1e16, np.inf, -np.inf, np.nan]
    reps = min(n_rows, 3)
    combos = np.array(list(itertools.product(vals, repeat=reps))).T
    a = np.resize(combos, (n_rows, combos.shape[1]))
    rng = np.random.default_rng(n_rows)
    b = rng.standard_normal((n_rows, 5_000)) * 10.0 ** rng.integers(-5, 5, (n_rows, 5_000))
    for x in (a, b):
        rows = [np.ascontiguousarray(r) for r in x]
        with np.errstate(invalid="ignore"):
            got, want = mean_rows(rows), np.mean(rows, axis=0)
        np.testing.assert_array_equal(_bits(got), _bits(want))
        assert all(r is not got for r in rows)  # a new array: the history is left alone
