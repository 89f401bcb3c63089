"""Compiled loops of the waterfall (numba), each beside its numpy twin (``*_np``), the oracle
its tests compare it with bit for bit.

:func:`add_vintage` adds the flows of the loans a revolving deal bought in one month to the
held pool's month-major flows: ``dst[t0 + a, p] += src[p, a] * unit * purchases[p]`` for the
first ``k`` months ``a`` of the vintage (``src`` path-major, one row per path). The numpy twin
reads ``src`` transposed, a column at a time (a strided read of every path's row for each
month); the kernel runs a path at a time, reading its row in order and writing its column
of ``dst``, whose few cache lines the next paths share. Each element is the same ``dst + ((src × unit) × purchases)`` in
both, so the numbers are identical.
"""

from __future__ import annotations

import numba
import numpy as np

PATH_BLOCK = 256  # paths per block of the DPD kernels: 256 rows of a 31-month vintage are 63 KB (L2)


@numba.njit(cache=True, nogil=True)
def add_vintage(dst: np.ndarray, t0: int, src: np.ndarray, k: int, unit: float,
                purchases: np.ndarray) -> None:
    """``dst[t0 + a, p] += src[p, a] * unit * purchases[p]`` for ``a < k``, every path ``p``
    (``dst`` (months, n_paths), ``src`` (n_paths, >= k), ``purchases`` (n_paths,)).

    A path at a time: its row of ``src`` is read in order and its ``k`` elements of ``dst``
    written down a column; the ``k`` cache lines of ``dst`` that consecutive paths share
    stay in L1. (Over blocks of 256 paths, a month at a time, it took 2.5 times as long on
    B1's 12 vintages: each month read the block's rows strided.)"""
    n = src.shape[0]
    for p in range(n):
        pp = purchases[p]
        for a in range(k):
            dst[t0 + a, p] += src[p, a] * unit * pp


def add_vintage_np(dst: np.ndarray, t0: int, src: np.ndarray, k: int, unit: float,
                   purchases: np.ndarray) -> None:
    """The numpy twin of :func:`add_vintage` (its oracle): the same arithmetic, a month
    (column of ``src``) at a time."""
    tmp = np.multiply(src[:, :k].T, unit)
    tmp *= purchases
    dst[t0 : t0 + k] += tmp


@numba.njit(cache=True, nogil=True, inline="always")
def _past_due(sb: np.ndarray, p: int, a: int, first: int) -> float:
    """The balance in the states ``first`` … of path ``p``, month ``a``, summed as numpy's
    ``sum(axis=-1)`` sums a short last axis: 0.0 + each in order."""
    s = 0.0
    for j in range(first, sb.shape[2]):
        s += sb[p, a, j]
    return s


@numba.njit(cache=True, nogil=True)
def dpd_months(dst: np.ndarray, state_balance: np.ndarray, firsts: np.ndarray) -> None:
    """``dst[i, a, p]`` (month-major) = the end-of-month balance of path ``p``, month ``a``
    in the states ``firsts[i]`` … (``DelinquencyPaths.dpd_balance(30 × (firsts[i] − 1))``),
    for every month ``a`` of ``state_balance`` (n_paths, n_months, n_states)."""
    n, m = state_balance.shape[0], state_balance.shape[1]
    for j0 in range(0, n, PATH_BLOCK):
        j1 = min(n, j0 + PATH_BLOCK)
        for a in range(m):
            for p in range(j0, j1):
                for i in range(firsts.shape[0]):
                    dst[i, a, p] = _past_due(state_balance, p, a, firsts[i])


def dpd_months_np(dst: np.ndarray, state_balance: np.ndarray, firsts: np.ndarray) -> None:
    """The numpy twin of :func:`dpd_months`."""
    m = state_balance.shape[1]
    for i, first in enumerate(firsts):
        if first >= state_balance.shape[2]:
            dst[i, :m] = np.zeros((state_balance.shape[0], m)).T
        else:
            dst[i, :m] = state_balance[..., first:].sum(axis=-1).T


@numba.njit(cache=True, nogil=True)
def add_vintage_dpd(dst: np.ndarray, t0: int, state_balance: np.ndarray, firsts: np.ndarray,
                    k: int, unit: float, purchases: np.ndarray) -> None:
    """``dst[i, t0 + a, p] += past_due_i[p, a] * unit * purchases[p]`` for ``a < k``: the
    30+/60+/… DPD balances (the states ``firsts[i]`` …) of the loans bought, per unit of the
    vintage's balance (``state_balance`` (n_paths, >= k, n_states))."""
    n = state_balance.shape[0]
    for j0 in range(0, n, PATH_BLOCK):
        j1 = min(n, j0 + PATH_BLOCK)
        for a in range(k):
            for p in range(j0, j1):
                for i in range(firsts.shape[0]):
                    dst[i, t0 + a, p] += _past_due(state_balance, p, a, firsts[i]) * unit \
                        * purchases[p]


def add_vintage_dpd_np(dst: np.ndarray, t0: int, state_balance: np.ndarray,
                       firsts: np.ndarray, k: int, unit: float, purchases: np.ndarray) -> None:
    """The numpy twin of :func:`add_vintage_dpd`."""
    for i, first in enumerate(firsts):
        past_due = (np.zeros(state_balance.shape[:2]) if first >= state_balance.shape[2]
                    else state_balance[..., first:].sum(axis=-1))
        dst[i, t0 : t0 + k] += purchases[None, :] * (past_due.T * unit)[:k]


TRANSPOSE_BLOCK = 64  # paths per block of the tape's transposition


@numba.njit(cache=True, nogil=True)
def transpose_into(dst: np.ndarray, src: np.ndarray, months: np.ndarray) -> None:
    """``dst[p, t] = src[months[t], p]`` (``dst`` (n_paths, n_months), ``src`` (>= n_months,
    n_paths), ``months`` (n_months,) the row of ``src`` each month reads: the month itself, or
    an earlier month it repeats): the month-major tape written path-major, a block of paths
    at a time (each block's columns of ``src`` stay in the cache while its rows of ``dst``
    are written in full)."""
    m, n = months.shape[0], src.shape[1]
    for p0 in range(0, n, TRANSPOSE_BLOCK):
        for p in range(p0, min(n, p0 + TRANSPOSE_BLOCK)):
            for t in range(m):
                dst[p, t] = src[months[t], p]


def transpose_into_np(dst: np.ndarray, src: np.ndarray, months: np.ndarray) -> None:
    """The numpy twin of :func:`transpose_into`."""
    dst[...] = src[months].T
