"""A deal run on a simulation, with the revolving period's replenishment profile, and the
typed record of a deal stored with a run.

The one place that decides whether a deal needs a replenishment profile and builds it, so the
CLI (``riskpool simulate --structure``), the demo and the dashboards run a deal the same way:

* :func:`replenishment_for` — the profile of the loans bought while revolving
  (``portfolio.montecarlo.replenishment.simulate_replenishment``, on the run's factor paths and
  seed), or ``None`` for a deal without a revolving period.
* :func:`replenishment_started` — :func:`replenishment_for` on a thread of its own, begun
  before the run's own projection so the two share the machine's cores (the profile needs the
  pool's loans, the assumptions and the seed, not the run's paths); the same bytes.
* :func:`run_deal` — waterfall + tranche table + trigger table.
* :func:`run_replenishment` / :func:`run_replenishment_profile` — the profile of a *recorded*
  run, rebuilt by ``portfolio.book.replay.replay_run`` from the run's typed inputs: the same
  numbers as when the run was made, so pages and commands that rerun the waterfall on stored
  paths agree with the tranche table stored with the run.
* :class:`DealRunRecord` / :func:`load_deal_record` — the deal stored with a run
  (``run_deals``): its name, source file and TOML text, :class:`DealSettings` and trigger
  table. The store keeps these as JSON (it knows no tranching types); they are typed here,
  in the layer that writes them, and a stored value this code does not know is refused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, cast

import pandas as pd

from portfolio.book.replay import replay_run
from portfolio.errors import NotFound
from portfolio.loans.arrays import LoanArrays
from portfolio.montecarlo.assumptions import Assumptions
from portfolio.montecarlo.paths import PoolPaths
from portfolio.montecarlo.records import placed
from portfolio.montecarlo.replenishment import simulate_replenishment
from portfolio.montecarlo.simulation import Engine
from portfolio.store.core import Store
from portfolio.store.runs import load_paths, load_replenishment
from portfolio.store.tranches import load_run_deal
from portfolio.validation import (
    Anything,
    Field,
    Interval,
    ListOf,
    SchemaError,
    StrOptions,
    Table,
    parse_toml,
    validate,
)
from tranching.analytics import Discount, tranche_table, trigger_table
from tranching.deal import Deal, deal_from_dict
from tranching.errors import DealError
from tranching.ratings import RatingTable
from tranching.reconcile import excess_spread_table, reconcile, residual_table
from tranching.waterfall import WaterfallResult, run_waterfall

__all__ = ["DealRun", "DealRunRecord", "DealSettings", "load_deal_record", "replenishment_for",
           "rerun_recorded_deal", "run_deal", "run_replenishment", "run_replenishment_profile"]

Replenishment = Literal["new-loan profile", "none"]
REPLENISHMENT_KINDS: tuple[str, ...] = ("new-loan profile", "none")
TRIGGER_COLUMNS: tuple[str, ...] = ("trigger", "metric", "effect", "curable", "p_breach",
                                    "p_in_force", "mean_first_month")


DEAL_SETTINGS = Table({
    "replenishment": Field(StrOptions(REPLENISHMENT_KINDS)),
    "replenishment_months": Field(Interval(int, 0)),
    "waterfall_months": Field(Interval(int, 0)),
})


@dataclass(frozen=True, slots=True)
class DealSettings:
    """How a deal was run on a simulation (``run_deals.settings``): with or without the
    replenishment profile of a revolving period, its months, and the waterfall's months."""

    replenishment: Replenishment
    replenishment_months: int
    waterfall_months: int

    def __post_init__(self) -> None:
        validate(DEAL_SETTINGS, self.to_json(), path="settings")
        if (self.replenishment == "none") != (self.replenishment_months == 0):
            raise SchemaError("settings.replenishment_months", "0 exactly when "
                              "`settings.replenishment` is 'none'", self.replenishment_months)

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: object, where: str = "") -> DealSettings:
        return placed(cls, validate(DEAL_SETTINGS, data, where, "settings"), where)


@dataclass(frozen=True, slots=True, eq=False)
class DealRunRecord:
    """A deal stored with a simulation run (``run_deals``; its tranche table is
    ``portfolio.store.tranches.load_tranche_results``)."""

    run_id: int
    deal_name: str
    deal_source: str
    deal_toml: str | None  # the deal file's text when it was stored
    settings: DealSettings
    triggers: pd.DataFrame  # tranching.analytics.trigger_table
    recorded_at: dt.datetime | None


TRIGGER_ROWS = ListOf(Table({c: Field(Anything()) for c in TRIGGER_COLUMNS}))


def load_deal_record(store: Store, run_id: int) -> DealRunRecord:
    """The deal stored with run ``run_id``: ``NotFound`` if none, ``SchemaError`` (naming the
    field and the run) if a stored value is not one this code knows."""
    row = load_run_deal(store, int(run_id))
    where = f"run {int(run_id)}'s deal"
    settings = DealSettings.from_json(row["settings"], where)
    triggers = validate(TRIGGER_ROWS, row["triggers"], where, "triggers")
    return DealRunRecord(int(run_id), str(row["deal_name"]), str(row["deal_source"] or ""),
                         row["deal_toml"], settings,
                         pd.DataFrame(triggers, columns=list(TRIGGER_COLUMNS)),
                         row["recorded_at"])


@dataclass(frozen=True, slots=True)
class DealRun:
    deal: Deal
    replenishment: PoolPaths | None  # None: no revolving period
    result: WaterfallResult
    tranches: pd.DataFrame  # tranching.analytics.tranche_table
    triggers: pd.DataFrame  # tranching.analytics.trigger_table
    residual: pd.DataFrame  # tranching.reconcile.residual_table (the residual holder)
    reconciliation: pd.DataFrame  # tranching.reconcile.Reconciliation.table
    excess_spread: pd.DataFrame  # tranching.reconcile.excess_spread_table (by period)

    def settings(self) -> DealSettings:
        """What to store beside the tranche table (``run_deals.settings``)."""
        rep = self.replenishment
        return DealSettings(
            replenishment=cast(Replenishment, "new-loan profile" if rep is not None else "none"),
            replenishment_months=rep.n_months if rep is not None else 0,
            waterfall_months=len(self.result.dates))


def replenishment_for(
    deal: Deal,
    loans: LoanArrays,
    assumptions: Assumptions,
    n_paths: int,
    seed: int,
    engine: Engine = "granular",
    *,
    cutoff: dt.date | None = None,
    deterministic_z: float | None = None,
    model: str = "hazard",
    charge_off_dpd: int | None = None,
) -> PoolPaths | None:
    """The replenishment profile a run of ``loans`` needs for ``deal`` (None if not revolving).
    An engine other than ``granular`` or ``loan`` is refused (``simulate_replenishment``).
    ``model``/``charge_off_dpd``: the run's credit model; under ``delinquency`` the purchases
    follow the delinquency transitions and carry their balances by state."""
    if deal.revolving_months <= 0:
        return None
    return simulate_replenishment(loans, assumptions, int(n_paths), int(seed), engine,
                                  cutoff=cutoff, deterministic_z=deterministic_z,
                                  purchase_months=deal.revolving_months, model=model,
                                  charge_off_dpd=charge_off_dpd)


def replenishment_started(
    deal: Deal,
    loans: LoanArrays,
    assumptions: Assumptions,
    n_paths: int,
    seed: int,
    engine: Engine = "granular",
    **options: Any,
) -> Callable[[], PoolPaths | None]:
    """Begin :func:`replenishment_for` (the same arguments; ``options`` its keyword ones) on a
    background thread and return the function that waits for its profile (and raises its
    error, if it failed). The profile's kernels release the GIL and draw from the run's seeded
    streams alone, so it runs beside the run's projection with the same bytes as when called
    after it: what the projection's threads leave of the two cores (its start, its last
    blocks, the stages between) goes to the profile. A deal without a revolving period starts
    nothing."""
    if deal.revolving_months <= 0:
        return lambda: None
    pool = ThreadPoolExecutor(1, thread_name_prefix="replenishment")
    future = pool.submit(replenishment_for, deal, loans, assumptions, n_paths, seed, engine,
                         **options)
    pool.shutdown(wait=False)  # the thread ends with its one task
    return future.result


def run_deal(deal: Deal, paths: PoolPaths, replenishment: PoolPaths | None = None,
             discount: Discount = 0.05, price: float = 1.0,
             rating_table: RatingTable | None = None) -> DealRun:
    """The waterfall on ``paths`` (with ``replenishment`` while revolving) and its tables
    (``rating_table``: fills the tranche table's implied ratings)."""
    result = run_waterfall(deal, paths, replenishment=replenishment)
    return DealRun(deal, replenishment if deal.revolving_months > 0 else None, result,
                   tranche_table(deal, result, paths, discount=discount, price=price,
                                 rating_table=rating_table),
                   trigger_table(deal, result),
                   residual_table(deal, result, discount=discount),
                   reconcile(deal, result).table(),
                   excess_spread_table(result))


def run_replenishment(store: Store, run_id: int, deal: Deal) -> PoolPaths | None:
    """The replenishment profile of recorded simulation run ``run_id`` for ``deal``: ``None``
    when the deal does not revolve, else :func:`run_replenishment_profile`."""
    if deal.revolving_months <= 0:
        return None
    return run_replenishment_profile(store, run_id, deal.revolving_months)


def run_replenishment_profile(store: Store, run_id: int, purchase_months: int = 1) -> PoolPaths:
    """The replenishment profile of recorded simulation run ``run_id`` for a deal revolving
    ``purchase_months`` months (one vintage per purchase month),
    the one stored with the run when its deal's results were recorded
    (``portfolio.store.runs.load_replenishment``), else rebuilt by
    ``portfolio.book.replay.replay_run`` from the run's typed inputs: its pool's loans and
    cut-off, the assumptions stored with the run, its seed, path count, engine and
    deterministic factor level (the same arrays: tests/dashboards/test_stored_summaries.py).
    ``NotFound`` if the run, its pool or its assumptions file is gone."""
    stored = load_replenishment(store, run_id, purchase_months)
    if stored is not None:
        return stored
    return replay_run(store, run_id).replenishment(purchase_months)


def recorded_deal(store: Store, run_id: int) -> Deal:
    """The deal stored with run ``run_id``, parsed from its TOML text as it was; ``NotFound``
    without a stored deal or its text."""
    record = load_deal_record(store, run_id)
    if not record.deal_toml:
        raise NotFound(f"run {int(run_id)}'s deal text was not stored; rerun `riskpool simulate "
                       "... --structure DEAL.toml`")
    source = record.deal_source or f"run {int(run_id)}'s deal"
    return deal_from_dict(parse_toml(record.deal_toml, source, DealError), source)


def rerun_recorded_deal(store: Store, run_id: int, *, discount: Discount = 0.05,
                        rating_table: RatingTable | None = None) -> DealRun:
    """The deal stored with run ``run_id`` (its TOML text as it was) rerun on the run's stored
    paths, with the run's replenishment profile when it revolves: the same waterfall as when
    the run was made, for the tables the store does not keep (the residual holder, the
    reconciliation, excess spread by period, the cash-flow tape). ``NotFound`` without a
    stored deal text or paths."""
    deal = recorded_deal(store, run_id)
    paths = load_paths(store, run_id)
    return run_deal(deal, paths, run_replenishment(store, run_id, deal), discount=discount,
                    rating_table=rating_table)
