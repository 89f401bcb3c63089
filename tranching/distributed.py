"""The deal waterfall on Dask workers (``portfolio.montecarlo.distributed``'s ``per_paths`` hook).

``WaterfallOnWorkers(deal, replenishment)`` runs :func:`tranching.waterfall.run_waterfall` on
each task's paths (with the same paths of a revolving deal's replenishment profile) and keeps
per-path summaries; the client joins them in path order. The waterfall is path-wise, so the
joined summary equals the summary of one local run on all the paths, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from portfolio.errors import ValidationError, must_be
from portfolio.montecarlo.distributed import slice_paths
from portfolio.montecarlo.paths import PoolPaths
from tranching.deal import Deal
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
        return WaterfallSummary.from_result(run_waterfall(self.deal, paths, replenishment=rep))

    def combine(self, parts: Sequence[WaterfallSummary]) -> WaterfallSummary:
        return WaterfallSummary.concat(parts)
