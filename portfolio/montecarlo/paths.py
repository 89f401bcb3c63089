"""``PoolPaths``: the Monte Carlo engine's output, the waterfall's and the dispersion's input.

Every flow array is shaped ``(n_paths, n_months)``; month ``t`` (0-based) is the period that
ends on ``dates[t]``, the first month after the cut-off. Flows are in CNY (float64).

Per month and path, by construction (tested):
    balance_bop[t] − scheduled_principal[t] − prepayment[t] − default[t] = balance_eop[t]
    balance_bop[t+1] = balance_eop[t]
    cumulative recovery ≤ cumulative default

``party_*`` arrays, present when the run carries an allocation, are shaped
``(n_parties, n_paths, n_months)`` and sum over parties to the pool arrays on every path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from portfolio.risk import mean_and_se


@dataclass(frozen=True, slots=True)
class PoolPaths:
    dates: np.ndarray  # (n_months,) datetime64[D], period end dates
    balance_bop: np.ndarray  # (n_paths, n_months) performing balance at month start
    interest: np.ndarray  # interest collected
    scheduled_principal: np.ndarray  # scheduled principal collected
    prepayment: np.ndarray  # unscheduled principal collected (full prepayments)
    default: np.ndarray  # principal balance that defaulted (> 90 DPD) in the month
    recovery: np.ndarray  # recoveries collected on earlier defaults
    balance_eop: np.ndarray  # performing balance at month end
    initial_balance: float  # pool balance at cut-off
    seed_entropy: int | None = None
    party_ids: tuple[str, ...] = ()
    party_flows: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (n_parties, n_paths, n_months)

    @property
    def n_paths(self) -> int:
        return int(self.interest.shape[0])

    @property
    def n_months(self) -> int:
        return int(self.interest.shape[1])

    @property
    def loss(self) -> np.ndarray:
        """(n_paths,) pool credit loss over the whole horizon: defaults − recoveries."""
        return self.default.sum(axis=1) - self.recovery.sum(axis=1)

    @property
    def collections(self) -> np.ndarray:
        """(n_paths, n_months) cash collected: interest + principal + prepayment + recovery."""
        return self.interest + self.scheduled_principal + self.prepayment + self.recovery

    def mean_se(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(n_months,) Monte Carlo mean of flow ``name`` (one of ``FLOW_NAMES``, or
        ``collections``) over paths, and its standard error."""
        if name not in (*FLOW_NAMES, "collections"):
            raise ValueError(f"`name` must be one of {(*FLOW_NAMES, 'collections')}; got {name!r}")
        return mean_and_se(getattr(self, name), axis=0)


FLOW_NAMES: tuple[str, ...] = (
    "balance_bop",
    "interest",
    "scheduled_principal",
    "prepayment",
    "default",
    "recovery",
    "balance_eop",
)
