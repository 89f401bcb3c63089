"""Replay a recorded simulation run: the one place that turns a stored run back into its
inputs and simulates it again.

:func:`replay_run` reads the run's typed record (``SimulationInputs``), its pool's loans at
the cut-off, the exact assumptions stored with the run (checked against their sha256)
and, when the run carried an allocation's party split, that allocation's shares. The result
simulates the run again with the same numbers: :meth:`RunReplay.paths` (the run's paths, or
the same paths split by other shares) and :meth:`RunReplay.replenishment` (the profile of
new loans a revolving deal buys, on the same seed and factor paths). The tranching, partners
and dashboard layers call it instead of reading the record themselves.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from portfolio.book.pools import get_pool, load_pool_loans
from portfolio.errors import NotFound, ValidationError, must_be
from portfolio.loans.arrays import LoanArrays
from portfolio.montecarlo.assumptions import Assumptions, load_assumptions
from portfolio.montecarlo.delinquency import project
from portfolio.montecarlo.paths import PoolPaths
from portfolio.montecarlo.records import (
    SimulationInputs,
    assumptions_from_json,
    replay_loan_sampler,
)
from portfolio.montecarlo.replenishment import simulate_replenishment
from portfolio.store import allocations as allocation_sql
from portfolio.store.core import Store
from portfolio.store.migrations import file_sha256
from portfolio.store.runs import get_run, resolve_run_file

__all__ = ["RunReplay", "replay_run"]


@dataclass(frozen=True, slots=True, eq=False)
class RunReplay:
    """Everything a recorded run needs to be simulated again."""

    run_id: int
    inputs: SimulationInputs
    loans: LoanArrays  # the pool's loans at its cut-off, in loan_id order
    assumptions: Assumptions  # as stored with the run (stress applied)
    cutoff: dt.date
    shares: np.ndarray | None  # (n_loans, n_parties) of the run's allocation, or None

    def paths(self, shares: np.ndarray | None = None,
              party_ids: tuple[str, ...] | None = None) -> PoolPaths:
        """The run's paths, simulated again (the same numbers, array for array). With
        ``shares`` and ``party_ids`` the party flows follow that split instead of the run's
        own allocation (the pool's flows are the same)."""
        if shares is None:
            shares = self.shares
            party_ids = self.inputs.party_ids if shares is not None else ()
        inp = self.inputs
        return project(self.loans, self.assumptions, inp.n_paths, inp.seed, model=inp.model,
                       engine=inp.engine, batch_size=inp.batch_size or 1000, shares=shares,
                       party_ids=tuple(party_ids or ()), deterministic_z=inp.deterministic_z,
                       charge_off_dpd=inp.charge_off_dpd, loan_sampler=replay_loan_sampler(inp))

    def replenishment(self, purchase_months: int = 1) -> PoolPaths:
        """The replenishment profile of a deal revolving ``purchase_months`` months on this
        run: the new loans of the pool's cell mix on the run's factor paths and seed, one
        vintage per purchase month (``simulate_replenishment``)."""
        inp = self.inputs
        return simulate_replenishment(self.loans, self.assumptions, inp.n_paths, inp.seed,
                                      inp.engine, cutoff=self.cutoff,
                                      deterministic_z=inp.deterministic_z,
                                      purchase_months=purchase_months, model=inp.model,
                                      charge_off_dpd=inp.charge_off_dpd)


def replay_run(store: Store, run_id: int) -> RunReplay:
    """The recorded simulation run ``run_id`` ready to be simulated again.

    ``NotFound`` if the run, its pool, its assumptions file or its allocation is gone;
    ``ValidationError`` if the run is not a simulation, its record is not valid, or the
    assumptions file is not the one it used (sha256)."""
    record = get_run(store, run_id)
    inputs = record.simulation_inputs()
    pool = get_pool(store, inputs.pool_id)
    loans = load_pool_loans(store, inputs.pool_id)
    assumptions = _stored_assumptions(store, int(run_id), inputs)
    shares = None
    if inputs.allocation_id is not None:
        shares = _allocation_shares(store, int(run_id), inputs, loans)
    return RunReplay(int(run_id), inputs, loans, assumptions, pool.cutoff_date, shares)


def _stored_assumptions(store: Store, run_id: int, inputs: SimulationInputs) -> Assumptions:
    """The exact copy stored with the run, else (a run migrated from schema version 1) its
    TOML copy; either checked against its recorded sha256."""
    exact = inputs.assumptions_exact is not None
    location = inputs.assumptions_exact if exact else inputs.assumptions
    sha = inputs.assumptions_exact_sha256 if exact else inputs.assumptions_sha256
    assert location is not None
    path = resolve_run_file(store, location)
    if not path.is_file():
        raise NotFound(f"run {run_id}'s assumptions file {path} is missing; the run cannot be "
                       "simulated again")
    if sha is not None and file_sha256(path) != sha:
        raise ValidationError(must_be(
            "inputs.assumptions_exact" if exact else "inputs.assumptions",
            f"the file the run used (sha256 {sha})", str(path),
            f"run {run_id}: the file has changed since"))
    if exact:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValidationError(f"{path}: not JSON ({exc}); run {run_id}") from None
        return assumptions_from_json(data, f"{path} (run {run_id})")
    return load_assumptions(path)


def _allocation_shares(store: Store, run_id: int, inputs: SimulationInputs,
                       loans: LoanArrays) -> np.ndarray:
    """The run's allocation as an (n_loans, n_parties) matrix in the pool's loan order and the
    record's party order (the split the run's party flows were made with)."""
    assert inputs.allocation_id is not None
    rows = allocation_sql.allocation_shares(store.con, inputs.allocation_id)
    if rows.empty:
        raise NotFound(f"run {run_id}'s allocation {inputs.allocation_id} has no shares "
                       "stored; the run cannot be simulated again")
    r = pd.Index(np.asarray(loans.loan_id).astype(str)).get_indexer(rows["loan_id"].astype(str))
    c = pd.Index(list(inputs.party_ids)).get_indexer(rows["party_id"].astype(str))
    if (r < 0).any() or (c < 0).any():
        raise ValidationError(must_be(
            "inputs.allocation_id", f"an allocation of pool {inputs.pool_id} between "
            f"{list(inputs.party_ids)}", inputs.allocation_id, f"run {run_id}"))
    shares = np.zeros((len(loans), len(inputs.party_ids)))
    shares[r, c] = rows["share"].to_numpy()
    return shares
