"""Per-loan lookups over small integer ranges: membership, bucket index, factorisation.

A pool's repayment-type codes, terms, region codes and segment keys take few distinct values
over a million loans. ``np.isin``, ``np.searchsorted`` and ``pd.factorize`` sort or hash every
loan; here the answer is worked out once per value from the smallest to the largest and read
per loan from that table (one gather). Each function gives exactly what the numpy or pandas
call it replaces gives (tests/partners/test_lookup.py compares them on arbitrary inputs), and
falls back to that call when the values span too wide a range for a table.
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd

_MAX_TABLE = 1 << 22  # entries of a lookup table (32 MiB of int64 at most)


def span(values: np.ndarray) -> tuple[int, int] | None:
    """(min, max) of an integer array small enough a range for a table (at most 2^22
    values, and not much wider than the array is long); else None."""
    if values.dtype.kind not in "iu" or values.size == 0:
        return None
    lo, hi = int(values.min()), int(values.max())
    if hi - lo >= _MAX_TABLE or hi - lo > 4 * values.size + 1024:
        return None
    return lo, hi


def _gather(table: np.ndarray, values: np.ndarray, lo: int) -> np.ndarray:
    """``table[values - lo]`` without widening values that index the table as they are."""
    if lo == 0:
        return table[values]
    return table[values.astype(np.int64) - lo]


def isin(values: np.ndarray, members: np.ndarray | list[int] | tuple[int, ...]) -> np.ndarray:
    """``np.isin(values, members)`` for an integer array."""
    values = np.asarray(values)
    found = span(values)
    if found is None:
        return np.isin(values, members)
    lo, hi = found
    table = np.isin(np.arange(lo, hi + 1, dtype=np.int64), np.asarray(members))
    return _gather(table, values, lo)


def searchsorted(edges: np.ndarray | tuple[int, ...], values: np.ndarray,
                 side: str = "left") -> np.ndarray:
    """``np.searchsorted(edges, values, side)`` (int64) for an integer array ``values``."""
    values = np.asarray(values)
    edges = np.asarray(edges)
    found = span(values)
    if found is None:
        return np.searchsorted(edges, values, side=side).astype(np.int64)  # type: ignore[call-overload]
    lo, hi = found
    table = np.searchsorted(edges, np.arange(lo, hi + 1, dtype=np.int64),
                            side=side).astype(np.int64)  # type: ignore[call-overload]
    return _gather(table, values, lo)


def factorize_sorted(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize(key, sort=True)`` of an integer array: (codes int64, the distinct keys
    in ascending order). The keys present are marked in a table from the smallest to the
    largest and numbered in order."""
    key = np.asarray(key)
    found = span(key)
    if found is None:
        codes, uniq = pd.factorize(key, sort=True)
        return np.asarray(codes, dtype=np.int64), np.asarray(uniq)
    lo, hi = found
    at = key if lo == 0 else key.astype(np.int64) - lo
    present = np.zeros(hi - lo + 1, dtype=bool)
    present[at] = True
    uniq = (np.flatnonzero(present) + lo).astype(key.dtype)
    rank = np.cumsum(present, dtype=np.int64) - 1
    return rank[at], uniq


@numba.njit(cache=True, nogil=True)
def float_codes(x):  # pragma: no cover - numba
    """(codes, values): ``values[codes[i]]`` is ``x[i]`` bit for bit, each distinct bit
    pattern once (first-appearance order); an open-addressing hash table on the bits."""
    n = x.shape[0]
    bits = x.view(np.uint64)
    cap = 64
    slots = np.full(cap, -1, dtype=np.int64)
    found = np.empty(16, dtype=np.uint64)
    u = 0
    codes = np.empty(n, dtype=np.int64)
    mult = np.uint64(0x9E3779B97F4A7C15)
    shift = np.uint64(29)
    for i in range(n):
        v = bits[i]
        h = np.int64(((v ^ (v >> shift)) * mult) >> np.uint64(40))
        j = h & (cap - 1)
        while slots[j] >= 0 and found[slots[j]] != v:
            j = (j + 1) & (cap - 1)
        if slots[j] >= 0:
            codes[i] = slots[j]
            continue
        if u == found.shape[0]:
            grown = np.empty(2 * u, dtype=np.uint64)
            grown[:u] = found
            found = grown
        found[u] = v
        slots[j] = u
        codes[i] = u
        u += 1
        if 2 * u > cap:  # keep the table at most half full: rebuild it twice as large
            cap *= 2
            slots = np.full(cap, -1, dtype=np.int64)
            for k in range(u):
                w = found[k]
                jj = np.int64(((w ^ (w >> shift)) * mult) >> np.uint64(40)) & (cap - 1)
                while slots[jj] >= 0:
                    jj = (jj + 1) & (cap - 1)
                slots[jj] = k
    return codes, found[:u].view(np.float64)
