"""Each pool loan's borrower and household credit limit, stored with the pool.

Allocating a pool needs, per loan, its ``borrower_id`` and its household's total credit limit
across the book at the pool's cut-off (R5 in ``partners.rules``;
``portfolio.store.allocations.household_credit_limits``). Computing the limits joins the pool
to ``loans`` and groups the performance of the book's closed loans: about a second on a
million-loan pool. So the pool's creation (``portfolio.book.pools.create_pool``, in its own
transaction) computes them once and stores them (``pool_households``) with the pool's distinct
borrower ids and each loan's code into them (``pd.factorize``: first-appearance order, in
loan_id order), which the allocation groups by without factorising a million strings again.

They are used only while their key still matches
(``portfolio.store.allocations.pool_household_key``: the book's last ingest batch, an exact
digest of the book's columns they are computed from — who holds which loan with which limit,
originated when, and each loan's balances month by month — and the code version): a new
batch, a credit limit, a borrower or a balance changed in place, or another code version makes the
reader compute live again (:func:`stored_pool_households` returns ``None``), so a stored
number is never stale. A pool created before the table existed has none stored until
:func:`ensure_pool_households` stores them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from portfolio.errors import NotFound, must_be
from portfolio.store import allocations as sql
from portfolio.store import pools as pool_sql
from portfolio.store.core import Store
from portfolio.version import code_version


@dataclass(frozen=True, slots=True)
class PoolHouseholds:
    """Per pool loan, in loan_id order: ``borrower_code`` (its borrower's position in
    ``borrowers``, the distinct ids in first-appearance order: ``pd.factorize`` of the ids) and
    ``household_limit`` at the pool's cut-off. The distinct ids are kept as read (an Arrow
    string array, when stored) and become Python strings only when asked for: allocating
    groups by the codes and needs no id."""

    borrower_code: np.ndarray  # (n_loans,) int64
    distinct_ids: np.ndarray | pa.Array  # (n_borrowers,) object, or Arrow strings as stored
    household_limit: np.ndarray  # (n_loans,) float64

    @property
    def borrowers(self) -> np.ndarray:
        """(n_borrowers,) the distinct ids (object)."""
        ids = self.distinct_ids
        if isinstance(ids, pa.Array):
            return np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object)
        return np.asarray(ids, dtype=object)

    @property
    def borrower_id(self) -> np.ndarray:
        """(n_loans,) each loan's borrower id (object)."""
        return self.borrowers[self.borrower_code]


def _cutoff(con: duckdb.DuckDBPyConnection, pool_id: int) -> dt.date | None:
    rows = pool_sql.pool_rows(con, int(pool_id))
    return None if rows.empty else pd.Timestamp(rows["cutoff_date"].iloc[0]).date()


def write_pool_households(con: duckdb.DuckDBPyConnection, pool_id: int,
                          cutoff: dt.date) -> PoolHouseholds:
    """Compute the pool's households live (``portfolio.store.allocations.pool_households``, the
    SQL the live read uses) and store them under the current key; call inside the caller's
    transaction (``create_pool`` calls it in the pool's own, so a refused or failed create
    leaves neither)."""
    key = sql.pool_household_key(con, code_version())
    live = sql.pool_households(con, int(pool_id), cutoff)
    codes, uniques = pd.factorize(live["borrower_id"])
    out = PoolHouseholds(np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=object),
                         live["household_limit"])
    sql.write_pool_households(con, int(pool_id), cutoff, key, out.borrower_code, out.borrowers,
                              out.household_limit)
    return out


def stored_pool_households(con: duckdb.DuckDBPyConnection, pool_id: int,
                           cutoff: dt.date | None = None) -> PoolHouseholds | None:
    """The pool's stored households if they were computed on the book as it is now, by this
    code version; else ``None`` (the caller computes live). ``cutoff``: the pool's, when the
    caller has read it already."""
    cutoff = _cutoff(con, pool_id) if cutoff is None else cutoff
    if cutoff is None:
        return None
    found = stored_households_under(con, pool_id, cutoff, current_household_key(con))
    return None if found is None else found[1]


def current_household_key(con: duckdb.DuckDBPyConnection) -> str:
    """The key stored households must carry to be used: ``pool_household_key`` of the book
    as it is now and this code version (a pass over the whole book: the costly part)."""
    return sql.pool_household_key(con, code_version())


def may_be_current(key: str) -> bool:
    """Whether stored households' ``key`` may still match :func:`current_household_key`: it
    was computed by this code version (else it cannot, and nothing needs the book's pass to
    say so)."""
    return sql.household_key_of_version(key, code_version())


def stored_households_under(con: duckdb.DuckDBPyConnection, pool_id: int, cutoff: dt.date,
                            key: str | None = None) -> tuple[str, PoolHouseholds] | None:
    """The pool's households stored at ``cutoff`` under ``key`` (any key when ``None``: the
    caller compares it with :func:`current_household_key`, which it may compute meanwhile),
    with the key they were stored under; ``None`` when none are."""
    found = sql.read_pool_households(con, int(pool_id), cutoff, key)
    if found is None:
        return None
    return found["key"], PoolHouseholds(found["code"], found["borrowers"],
                                        found["household_limit"])


def ensure_pool_households(store: Store, pool_id: int) -> bool:
    """Store the pool's households (:func:`write_pool_households`, in one transaction) unless
    they are stored under the current key already (e.g. for a pool created before they were
    stored, or after the book changed); returns whether it wrote them."""
    if stored_pool_households(store.con, pool_id) is not None:
        return False
    cutoff = _cutoff(store.con, pool_id)
    if cutoff is None:
        raise NotFound(must_be("pool", "an existing pool id", pool_id))
    with store.transaction() as con:
        write_pool_households(con, pool_id, cutoff)
    return True
