"""Allocations in the database: read the loans to allocate, record a result, read it back,
export one partner's tape. SQL lives in ``portfolio.store.allocations``.

A partner's export holds its own loans only: pseudonymous ``loan_id`` and ``borrower_id``, the
loan's terms, its share and its balance (share × cut-off balance) — nothing about any other
party's share.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from partners.allocation import Allocation, LoanRisk
from partners.errors import AllocationError
from partners.registry import PLATFORM_ID, Registry
from portfolio.errors import NotFound, must_be
from portfolio.loans.arrays import LoanArrays
from portfolio.memory import small_pages
from portfolio.store import Store
from portfolio.store import allocations as sql


@dataclass(frozen=True, slots=True)
class LoansToAllocate:
    loans: LoanArrays
    borrower_id: np.ndarray  # (n_loans,) pseudonymous
    pool_id: int | None
    window: tuple[dt.date, dt.date] | None
    cutoff: dt.date


@small_pages
def pool_loans(store: Store, pool_id: int) -> LoansToAllocate:
    """A stored pool's loans at its cut-off, with borrower ids (for R5)."""
    from portfolio.book.pools import get_pool, load_pool_loans

    info = get_pool(store, pool_id)
    loans = load_pool_loans(store, pool_id)
    borrower = sql.pool_borrower_ids(store.con, int(pool_id))  # in the same loan_id order
    if len(borrower) != len(loans):
        raise AllocationError(must_be("pool loans", f"{len(loans)} borrower ids", len(borrower),
                                      f"pool {pool_id}"))
    return LoansToAllocate(loans, borrower, int(pool_id), None, info.cutoff_date)


def originated_loans(store: Store, start: dt.date, end: dt.date) -> LoansToAllocate:
    """Loans originated in [start, end] as new loans (balance = principal, months on book 0,
    first due date one month after origination)."""
    if end < start:
        raise AllocationError(must_be("--originated", "FROM <= TO", f"{start} {end}"))
    frame = sql.originated_loans(store.con, start, end)
    if frame.empty:
        raise AllocationError(must_be("--originated", "a window with at least one loan in the book",
                                      f"{start} {end}"))
    orig = pd.to_datetime(frame["origination_date"])
    frame["next_due_date"] = orig + pd.DateOffset(months=1)
    return LoansToAllocate(LoanArrays.from_frame(frame),
                           frame["borrower_id"].astype(str).to_numpy(dtype=object), None,
                           (start, end), end)


def save_allocation(store: Store, allocation: Allocation, registry: Registry, risk: LoanRisk,
                    *, pool_id: int | None, inputs: dict[str, Any]) -> int:
    """Record the allocation (one transaction: all or nothing); returns its id."""
    n, k = allocation.shares.shape
    flat = allocation.shares.ravel()
    keep = np.flatnonzero(flat > 0)
    loan_dict = pa.array(np.asarray(allocation.loan_id).astype(str).tolist(), type=pa.string())
    party_dict = pa.array(list(allocation.party_ids), type=pa.string())
    # dictionary-encoded ids: each string converted once, not once per (loan, party) row
    shares = pa.table({
        "loan_id": pa.DictionaryArray.from_arrays(pa.array(keep // k, type=pa.int32()), loan_dict),
        "party_id": pa.DictionaryArray.from_arrays(pa.array(keep % k, type=pa.int32()), party_dict),
        "share": pa.array(flat[keep]),
    })
    loans = pa.table({"loan_id": loan_dict, "balance": pa.array(allocation.balance),
                      "annual_pd": pa.array(risk.annual_pd), "lgd": pa.array(risk.lgd),
                      "lifetime_pd": pa.array(risk.lifetime_pd)})
    full_inputs = {**inputs, "registry": registry.as_dict(), "party_ids": list(allocation.party_ids),
                   "as_of": allocation.as_of.isoformat()}
    with store.transaction() as con:
        allocation_id = store.next_id("allocation_seq")
        sql.upsert_partners(con, [p.as_dict() for p in registry.partners])
        sql.insert_allocation(con, allocation_id=allocation_id, mode=allocation.mode.value,
                              objective=allocation.objective.value, pool_id=pool_id,
                              inputs=full_inputs, checks=allocation.checks.as_dict(),
                              summary=allocation.summary, shares=shares, loans=loans)
    return allocation_id


@dataclass(frozen=True, slots=True)
class StoredAllocation:
    allocation_id: int
    mode: str
    objective: str
    pool_id: int | None
    party_ids: tuple[str, ...]
    loan_id: np.ndarray  # (n_loans,) sorted
    balance: np.ndarray
    shares: np.ndarray  # (n_loans, n_parties)
    risk: LoanRisk
    inputs: dict[str, Any]
    checks: dict[str, Any]
    summary: dict[str, Any]


def load_allocation(store: Store, allocation_id: int) -> StoredAllocation:
    row = sql.allocation_row(store.con, int(allocation_id))
    if row is None:
        known = sql.allocation_ids(store.con)
        raise NotFound(must_be("--allocation", f"an existing allocation id {known[-20:]}", allocation_id))
    inputs = row["inputs"]
    party_ids = tuple(inputs.get("party_ids") or (PLATFORM_ID,))
    lo = sql.allocation_loans(store.con, int(allocation_id))
    sh = sql.allocation_shares(store.con, int(allocation_id))
    loan_index = pd.Index(lo["loan_id"])
    shares = np.zeros((len(lo), len(party_ids)))
    r = loan_index.get_indexer(sh["loan_id"])
    c = pd.Index(party_ids).get_indexer(sh["party_id"])
    shares[r, c] = sh["share"].to_numpy()
    risk = LoanRisk(lo["annual_pd"].to_numpy(), lo["lgd"].to_numpy(), lo["lifetime_pd"].to_numpy(),
                    str(row["summary"].get("risk_source", "")))
    return StoredAllocation(int(allocation_id), row["mode"], row["objective"], row["pool_id"], party_ids,
                            lo["loan_id"].to_numpy(dtype=object), lo["balance"].to_numpy(), shares, risk,
                            inputs, row["checks"], row["summary"])


def export_partner(store: Store, allocation_id: int, party_id: str, out: str | Path) -> int:
    """Write one party's tape as Parquet (``.parquet``) or CSV (``.csv``); returns the row count."""
    stored = load_allocation(store, allocation_id)
    if party_id not in stored.party_ids:
        raise NotFound(must_be("--partner", f"one of {list(stored.party_ids)}", party_id,
                               f"allocation {allocation_id}"))
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise AllocationError(must_be("--out", "a file ending .parquet or .csv", str(out)))
    tape = sql.partner_tape(store.con, int(allocation_id), party_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        tape.to_parquet(path, index=False)
    else:
        tape.to_csv(path, index=False)
    return len(tape)


def run_party_paths(store: Store, run_id: int, stored: StoredAllocation) -> tuple[Any, str]:
    """The run's paths with the allocation's party split, and how they were obtained.

    If the stored run carries ``party_flows`` made from this allocation (its recorded
    ``allocation_id``, or the same party ids when it records none), they are used as stored.
    Otherwise (loan-level paths are not stored) the run is simulated again with its recorded
    pool, assumptions (the TOML saved with the run, stress applied), path count, seed, engine
    and deterministic factor path, plus the allocation's shares; the re-simulated pool loss
    must equal the stored one on every path (same seed, same draws), or the request is refused.
    """
    from portfolio.store.runs import get_run, load_paths

    record = get_run(store, int(run_id))
    inputs = dict(record.inputs)
    paths = load_paths(store, int(run_id))
    run_alloc = inputs.get("allocation_id")
    if (paths.party_flows and tuple(paths.party_ids) == stored.party_ids
            and (run_alloc is None or int(run_alloc) == stored.allocation_id)):
        return paths, "party flows stored with the run"
    pool_id = inputs.get("pool_id")
    if stored.pool_id is not None and pool_id is not None and int(pool_id) != int(stored.pool_id):
        raise AllocationError(must_be("--allocation", f"an allocation of run {run_id}'s pool {pool_id}",
                                      f"allocation {stored.allocation_id} of pool {stored.pool_id}"))
    need = {"pool_id": pool_id, "seed": inputs.get("seed"), "n_paths": inputs.get("n_paths"),
            "assumptions": inputs.get("assumptions")}
    missing = [k for k, v in need.items() if v is None]
    if missing:
        raise AllocationError(must_be("--run", "a run that carries the allocation's party split or "
                                      "records pool_id, seed, n_paths and assumptions to re-simulate it",
                                      f"run {run_id} without {missing}"))
    from portfolio.book.pools import load_pool_loans
    from portfolio.montecarlo.simulation import simulate

    loans = load_pool_loans(store, int(pool_id))  # type: ignore[arg-type]
    index = pd.Index(stored.loan_id.astype(str)).get_indexer(np.asarray(loans.loan_id).astype(str))
    if (index < 0).any() or len(loans) != len(stored.loan_id):
        raise AllocationError(must_be("--allocation", f"an allocation of run {run_id}'s pool {pool_id} "
                                      f"({len(loans):,} loans)",
                                      f"allocation {stored.allocation_id} ({len(stored.loan_id):,} loans)"))
    assumptions = load_assumptions_file(Path(str(need["assumptions"])))
    z = inputs.get("deterministic_z")
    resim = simulate(loans, assumptions, int(paths.n_paths), int(need["seed"]),  # type: ignore[arg-type]
                     engine=inputs.get("engine", "granular"), shares=stored.shares[index],
                     party_ids=stored.party_ids,
                     deterministic_z=None if z is None else np.asarray(z, dtype=np.float64))
    if resim.loss.shape != paths.loss.shape or not np.allclose(resim.loss, paths.loss, rtol=1e-9, atol=1e-6):
        raise AllocationError(f"re-simulating run {run_id} with its recorded seed and inputs did not "
                              "reproduce its stored pool losses; refusing to split them")
    return resim, "re-simulated with the run's seed and inputs plus the allocation's shares"


def load_assumptions_file(path: Path) -> Any:
    """Read an assumptions TOML (``portfolio.montecarlo.assumptions.load_assumptions``; errors name the field)."""
    from portfolio.montecarlo.assumptions import load_assumptions

    return load_assumptions(path)
