"""A deal run on a simulation, with the revolving period's replenishment profile.

The one place that decides whether a deal needs a replenishment profile and builds it, so the
CLI (``riskpool simulate --structure``), the demo and the dashboards run a deal the same way:

* :func:`replenishment_for` — the profile of the loans bought while revolving
  (``portfolio.montecarlo.replenishment.simulate_replenishment``, on the run's factor paths and seed), or
  ``None`` for a deal without a revolving period.
* :func:`run_deal` — waterfall + tranche table + trigger table.
* :func:`run_replenishment` / :func:`run_replenishment_profile` — the profile of a *recorded*
  run, rebuilt from its inputs (pool, stored assumptions, seed, paths, engine, deterministic
  scenario): the same numbers as when the run was made, so pages and commands that rerun the
  waterfall on stored paths agree with the tranche table stored with the run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd

from portfolio.montecarlo.assumptions import Assumptions
from portfolio.loans.arrays import LoanArrays
from portfolio.montecarlo.paths import PoolPaths
from tranching.analytics import Discount, tranche_table, trigger_table
from tranching.deal import Deal
from tranching.waterfall import WaterfallResult, run_waterfall

__all__ = ["DealRun", "replenishment_for", "run_deal", "run_replenishment",
           "run_replenishment_profile"]


@dataclass(frozen=True, slots=True)
class DealRun:
    deal: Deal
    replenishment: PoolPaths | None  # None: no revolving period
    result: WaterfallResult
    tranches: pd.DataFrame  # tranching.analytics.tranche_table
    triggers: pd.DataFrame  # tranching.analytics.trigger_table

    def settings(self) -> dict[str, Any]:
        """What to store beside the tranche table (``run_deals.settings``)."""
        rep = self.replenishment
        return {
            "replenishment": "new-loan profile" if rep is not None else "none",
            "replenishment_months": rep.n_months if rep is not None else 0,
            "waterfall_months": len(self.result.dates),
        }


def replenishment_for(
    deal: Deal,
    loans: LoanArrays,
    assumptions: Assumptions,
    n_paths: int,
    seed: int,
    engine: str = "granular",
    *,
    cutoff: dt.date | None = None,
    deterministic_z: float | None = None,
) -> PoolPaths | None:
    """The replenishment profile a run of ``loans`` needs for ``deal`` (None if not revolving)."""
    if deal.revolving_months <= 0:
        return None
    from portfolio.montecarlo.replenishment import simulate_replenishment
    from portfolio.montecarlo.simulation import Engine

    eng: Engine = "loan" if engine == "loan" else "granular"
    return simulate_replenishment(loans, assumptions, int(n_paths), int(seed), eng,
                                  cutoff=cutoff, deterministic_z=deterministic_z)


def run_deal(deal: Deal, paths: PoolPaths, replenishment: PoolPaths | None = None,
             discount: Discount = 0.05, price: float = 1.0) -> DealRun:
    """The waterfall on ``paths`` (with ``replenishment`` while revolving) and its tables."""
    result = run_waterfall(deal, paths, replenishment=replenishment)
    return DealRun(deal, replenishment if deal.revolving_months > 0 else None, result,
                   tranche_table(deal, result, paths, discount=discount, price=price),
                   trigger_table(deal, result))


def run_replenishment(store: Any, run_id: int, deal: Deal) -> PoolPaths | None:
    """The replenishment profile of recorded simulation run ``run_id`` for ``deal``: ``None``
    when the deal does not revolve, else :func:`run_replenishment_profile`."""
    if deal.revolving_months <= 0:
        return None
    return run_replenishment_profile(store, run_id)


def run_replenishment_profile(store: Any, run_id: int) -> PoolPaths:
    """The replenishment profile of recorded simulation run ``run_id`` (any revolving deal).

    Rebuilt from the run's inputs: its pool's loans and cut-off, the assumptions file stored
    with the run, its seed, path count, engine and deterministic factor level. ``NotFound`` if
    the run, its pool or one of these inputs is missing."""
    from portfolio.montecarlo.assumptions import load_assumptions
    from portfolio.errors import NotFound
    from portfolio.book.pools import get_pool, load_pool_loans
    from portfolio.montecarlo.replenishment import simulate_replenishment
    from portfolio.montecarlo.simulation import Engine
    from portfolio.store.runs import get_run

    rec = get_run(store, run_id)
    inputs = rec.inputs
    for key in ("pool_id", "assumptions", "n_paths", "seed"):
        if inputs.get(key) is None:
            raise NotFound(f"run {run_id} does not record its {key}; the replenishment profile "
                           "of a revolving deal cannot be rebuilt")
    pool = get_pool(store, int(inputs["pool_id"]))
    loans = load_pool_loans(store, int(inputs["pool_id"]))
    assumptions = load_assumptions(inputs["assumptions"])
    z = inputs.get("deterministic_z")
    eng: Engine = "loan" if inputs.get("engine") == "loan" else "granular"
    return simulate_replenishment(loans, assumptions, int(inputs["n_paths"]), int(inputs["seed"]),
                                  eng, cutoff=pool.cutoff_date,
                                  deterministic_z=None if z is None else float(z))
