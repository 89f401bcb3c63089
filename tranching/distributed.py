"""The deal waterfall on Dask workers (``portfolio.montecarlo.distributed``'s ``per_paths`` hook).

``WaterfallOnWorkers(deal, replenishment)`` runs :func:`tranching.waterfall.run_waterfall` on
each task's paths (with the same paths of a revolving deal's replenishment profile) and keeps
per-path summaries; the client joins them in path order. The waterfall is path-wise, so the
joined summary equals the summary of one local run on all the paths, bit for bit.

``TranchesOnWorkers(deal, replenishment)`` keeps less: what the tranche and trigger tables
need (each path's tranche losses, WAL and IRR, each trigger's breach flags, and per block of
256 paths the tranches' cash flow by month summed over its paths: the same bytes whatever the
task grouping or worker count); :func:`deal_tables` builds both tables
from it on the client (``riskpool simulate --structure --workers``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from portfolio.errors import ValidationError, must_be
from portfolio.montecarlo.distributed import slice_paths
from portfolio.montecarlo.paths import PoolPaths
from portfolio.montecarlo.replenishment import ProfileFromCells
from portfolio.montecarlo.simulation import BLOCK_PATHS
from tranching.analytics import (
    Discount,
    irr_per_path,
    tranche_table_from,
    trigger_table_from,
    wal_per_path,
)
from tranching.deal import Deal
from tranching.ratings import RatingTable
from tranching.waterfall import WaterfallResult, run_waterfall


@dataclass(frozen=True, slots=True)
class WaterfallSummary:
    """Per-path results of a deal's waterfall, in seniority order.

    ``tranche_loss`` / ``interest_paid`` / ``principal_received``: (n_tranches, n_paths) CNY
    over the deal's life (principal received includes reimbursed write-downs; loss = original
    balance − principal received, as :attr:`WaterfallResult.tranche_loss`);
    ``tranche_cashflows``: (n_tranches, n_paths, n_months) interest + principal paid;
    ``residual``: (n_paths,) cash to the subordinated holder; ``trigger_months``: trigger name
    → (n_paths,) number of months the trigger was in force; ``breached_ever``: trigger name →
    (n_paths,) whether its test failed in any month (``tranching.analytics.trigger_table``'s
    ``p_breach`` is its mean).
    """

    tranche_names: tuple[str, ...]
    original_balance: np.ndarray
    tranche_loss: np.ndarray
    interest_paid: np.ndarray
    principal_received: np.ndarray
    tranche_cashflows: np.ndarray
    residual: np.ndarray
    trigger_months: dict[str, np.ndarray] = field(default_factory=dict)
    breached_ever: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_paths(self) -> int:
        return int(self.residual.shape[0])

    @classmethod
    def from_result(cls, result: WaterfallResult) -> WaterfallSummary:
        return cls(
            tranche_names=tuple(result.tranche_names),
            original_balance=np.asarray(result.original_balance, dtype=np.float64),
            tranche_loss=result.tranche_loss,
            interest_paid=result.interest_paid.sum(axis=2),
            principal_received=result.principal_received,
            tranche_cashflows=result.tranche_cashflows,
            residual=result.residual.sum(axis=1),
            trigger_months={k: v.sum(axis=1).astype(np.int64) for k, v in result.triggers.items()},
            breached_ever={k: np.asarray(v.any(axis=1)) for k, v in result.breached.items()},
        )

    def loss_shares(self) -> np.ndarray:
        """(n_tranches, n_paths) principal loss as a share of each tranche's original balance
        (``tranching.analytics.loss_shares`` of the waterfall result, the same formula)."""
        orig = self.original_balance
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(orig[:, None] > 0,
                            self.tranche_loss / np.where(orig > 0, orig, 1.0)[:, None], 0.0)

    @classmethod
    def concat(cls, parts: Sequence[WaterfallSummary]) -> WaterfallSummary:
        """Summaries of consecutive path ranges, joined in path order."""
        first = parts[0]
        return cls(
            tranche_names=first.tranche_names,
            original_balance=first.original_balance,
            tranche_loss=np.concatenate([p.tranche_loss for p in parts], axis=1),
            interest_paid=np.concatenate([p.interest_paid for p in parts], axis=1),
            principal_received=np.concatenate([p.principal_received for p in parts], axis=1),
            tranche_cashflows=np.concatenate([p.tranche_cashflows for p in parts], axis=1),
            residual=np.concatenate([p.residual for p in parts]),
            trigger_months={k: np.concatenate([p.trigger_months[k] for p in parts])
                            for k in first.trigger_months},
            breached_ever={k: np.concatenate([p.breached_ever[k] for p in parts])
                           for k in first.breached_ever},
        )


@dataclass(frozen=True, slots=True)
class WaterfallOnWorkers:
    """A ``portfolio.montecarlo.distributed.PathsReducer``: the deal's waterfall on each task's paths.

    ``replenishment``: the revolving deal's replenishment profile for the whole run
    (``tranching.revolving.replenishment_for`` with the run's seed and path count)."""

    deal: Deal
    replenishment: PoolPaths | None = None

    def check(self, n_paths: int) -> None:
        if self.replenishment is not None and self.replenishment.n_paths != n_paths:
            raise ValidationError(must_be("replenishment", f"a profile of {n_paths} paths "
                                          "(the run's)", f"{self.replenishment.n_paths} paths"))

    def __call__(self, paths: PoolPaths, first_path: int) -> WaterfallSummary:
        rep = None if self.replenishment is None else slice_paths(
            self.replenishment, first_path, first_path + paths.n_paths)
        # one thread: a Dask worker runs as many tasks as it has threads already
        return WaterfallSummary.from_result(run_waterfall(self.deal, paths, replenishment=rep,
                                                          threads=1))

    def combine(self, parts: Sequence[WaterfallSummary]) -> WaterfallSummary:
        return WaterfallSummary.concat(parts)


@dataclass(frozen=True, slots=True)
class TrancheSummary:
    """What the tranche and trigger tables need of a deal's waterfall, per path (path order)
    except ``block_cashflow``.

    ``tranche_loss`` / ``wal`` / ``irr``: (n_tranches, n_paths) principal loss in CNY, WAL in
    years (``tranching.analytics.wal_per_path``) and the IRR at the reducer's price
    (``irr_per_path``); ``block_cashflow``: (n_blocks, n_tranches, n_months) each tranche's
    cash flow by month summed over each canonical block of paths
    (``portfolio.montecarlo.simulation.BLOCK_PATHS``), so that their sum in block order
    (:meth:`cashflow_sum`) does not depend on how blocks were grouped into tasks or how many
    workers ran them; ``breached_ever`` /
    ``in_force_ever`` / ``first_breach``: trigger name → (n_paths,) whether its test ever
    failed, whether it was ever in force, the first month it failed (0: never)."""

    tranche_names: tuple[str, ...]
    original_balance: np.ndarray
    dates: tuple[dt.date, ...]
    tranche_loss: np.ndarray
    wal: np.ndarray
    irr: np.ndarray
    block_cashflow: np.ndarray
    breached_ever: dict[str, np.ndarray] = field(default_factory=dict)
    in_force_ever: dict[str, np.ndarray] = field(default_factory=dict)
    first_breach: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_paths(self) -> int:
        return int(self.tranche_loss.shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays (what the workers send back)."""
        arrays = [self.original_balance, self.tranche_loss, self.wal, self.irr,
                  self.block_cashflow]
        for d in (self.breached_ever, self.in_force_ever, self.first_breach):
            arrays += list(d.values())
        return int(sum(a.nbytes for a in arrays))

    def cashflow_sum(self) -> np.ndarray:
        """(n_tranches, n_months) each tranche's cash by month summed over every path (the
        blocks' sums added in block order)."""
        total = np.zeros(self.block_cashflow.shape[1:])
        for b in range(self.block_cashflow.shape[0]):
            total += self.block_cashflow[b]
        return total

    @classmethod
    def concat(cls, parts: Sequence[TrancheSummary]) -> TrancheSummary:
        """Summaries of consecutive path ranges, joined in path order."""
        first = parts[0]
        return cls(
            tranche_names=first.tranche_names, original_balance=first.original_balance,
            dates=first.dates,
            tranche_loss=np.concatenate([p.tranche_loss for p in parts], axis=1),
            wal=np.concatenate([p.wal for p in parts], axis=1),
            irr=np.concatenate([p.irr for p in parts], axis=1),
            block_cashflow=np.concatenate([p.block_cashflow for p in parts]),
            breached_ever={k: np.concatenate([p.breached_ever[k] for p in parts])
                           for k in first.breached_ever},
            in_force_ever={k: np.concatenate([p.in_force_ever[k] for p in parts])
                           for k in first.in_force_ever},
            first_breach={k: np.concatenate([p.first_breach[k] for p in parts])
                          for k in first.first_breach})


@dataclass(frozen=True, slots=True)
class TranchesOnWorkers:
    """A ``PathsReducer``: the deal's waterfall on each task's paths, reduced to what its
    tranche and trigger tables need (:class:`TrancheSummary`: a few numbers per path and
    tranche, one month-by-month sum per block of paths) — not the waterfall's month-by-month arrays.

    ``replenishment``: the revolving deal's replenishment profile for the whole run, as for
    :class:`WaterfallOnWorkers`, or its new loans' cells
    (``portfolio.montecarlo.replenishment.ProfileFromCells``: each task computes the profile of
    its own blocks, the same numbers as those rows of the whole, and no paths-sized profile is
    shipped); ``price``: the purchase price (share of par) of the IRR."""

    deal: Deal
    replenishment: PoolPaths | ProfileFromCells | None = None
    price: float = 1.0

    def check(self, n_paths: int) -> None:
        if isinstance(self.replenishment, ProfileFromCells):
            if self.replenishment.n_paths != n_paths:
                raise ValidationError(must_be("replenishment", f"a profile of {n_paths} paths "
                                              "(the run's)",
                                              f"{self.replenishment.n_paths} paths"))
            return
        WaterfallOnWorkers(self.deal, self.replenishment).check(n_paths)

    def __call__(self, paths: PoolPaths, first_path: int) -> TrancheSummary:
        if first_path % BLOCK_PATHS:  # tasks always start on a block boundary
            raise ValidationError(must_be("first_path", f"a multiple of {BLOCK_PATHS}",
                                          first_path))
        if isinstance(self.replenishment, ProfileFromCells):
            rep: PoolPaths | None = self.replenishment.paths(first_path, paths.n_paths)
        else:
            rep = None if self.replenishment is None else slice_paths(
                self.replenishment, first_path, first_path + paths.n_paths)
        result = run_waterfall(self.deal, paths, replenishment=rep, threads=1)  # as above
        cfs = result.tranche_cashflows
        names = [t.name for t in self.deal.triggers]
        ever = {k: np.asarray(result.breached[k].any(axis=1)) for k in names}
        return TrancheSummary(
            tranche_names=tuple(result.tranche_names),
            original_balance=np.asarray(result.original_balance, dtype=np.float64),
            dates=tuple(result.dates),
            tranche_loss=result.tranche_loss,
            wal=wal_per_path(result, self.deal.closing_date),
            irr=irr_per_path(self.deal, result, self.price, cfs),
            block_cashflow=np.stack([cfs[:, b:b + BLOCK_PATHS].sum(axis=1)
                                     for b in range(0, paths.n_paths, BLOCK_PATHS)]),
            breached_ever=ever,
            in_force_ever={k: np.asarray(result.triggers[k].any(axis=1)) for k in names},
            first_breach={k: np.where(ever[k], result.breached[k].argmax(axis=1) + 1, 0)
                          for k in names})

    def combine(self, parts: Sequence[TrancheSummary]) -> TrancheSummary:
        return TrancheSummary.concat(parts)


def deal_tables(deal: Deal, summary: TrancheSummary, initial_balance: float,
                discount: Discount = 0.05, rating_table: RatingTable | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tranche table and the trigger table (``tranching.analytics``) from the workers'
    :class:`TrancheSummary`. Every column equals the table of one local run on all the
    paths bit for bit (the same per-path numbers, the same reductions over the joined
    vectors) except ``price``, ``yield`` and ``mod_duration``: they price the mean cash flow
    by month, here the per-block sums added in block order over the path count rather than
    numpy's one mean over every path — equal to float rounding (relative 1e-12), and the
    same bytes whatever the task grouping or worker count."""
    expected = summary.cashflow_sum() / summary.n_paths
    tranches = tranche_table_from(deal, initial_balance, summary.dates,
                                  summary.original_balance, summary.tranche_loss, summary.wal,
                                  summary.irr, expected, discount=discount,
                                  rating_table=rating_table)
    triggers = trigger_table_from(deal, summary.breached_ever, summary.in_force_ever,
                                  summary.first_breach)
    return tranches, triggers
