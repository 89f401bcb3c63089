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

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from portfolio.risk import mean_and_se

STATE_LABELS: tuple[str, ...] = ("current", "1-30", "31-60", "61-90", "91-120", "121-150",
                                 "151-180")


@dataclass(frozen=True, slots=True)
class DelinquencyPaths:
    """The delinquency-state model's paths beside the flows (``--model delinquency``).

    ``state_balance`` (n_paths, n_months, K + 1): end-of-month principal outstanding of the
    loans current (column 0) and in each delinquency bucket k = 1 … K (1–30, 31–60, … days
    past due; K = charge_off_dpd / 30). ``cures`` (n_paths, n_months): the start-of-month
    balance of the loans that cured in the month. The charge-offs are ``PoolPaths.default``.
    ``party_*``: the same per party (n_parties, …) when the run carries a party split."""

    charge_off_dpd: int
    cure_rule: str
    state_balance: np.ndarray
    cures: np.ndarray
    party_state_balance: np.ndarray | None = None
    party_cures: np.ndarray | None = None

    @property
    def states(self) -> tuple[str, ...]:
        return STATE_LABELS[: self.state_balance.shape[-1]]

    def dpd_balance(self, days: int, party: int | None = None) -> np.ndarray:
        """(n_paths, n_months) end-of-month balance more than ``days`` (0, 30, 60, 90, …, a
        multiple of 30) days past due: the buckets k ≥ days/30 + 1. ``party``: that party's
        share (index into the party axis)."""
        if days < 0 or days % 30:
            raise ValueError(f"`days` must be a non-negative multiple of 30; got {days!r}")
        arr = self.state_balance if party is None else self.party_state_balance
        if arr is None:
            raise ValueError("no party split in these paths")
        if party is not None:
            arr = arr[party]
        first = days // 30 + 1
        if first >= arr.shape[-1]:
            return np.zeros(arr.shape[:-1])
        return arr[..., first:].sum(axis=-1)


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
    # the delinquency-state model's balances by state and cures (None: the hazard model);
    # with it, ``default`` holds the charge-offs and recoveries follow them
    delinquency: DelinquencyPaths | None = None

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


@dataclass(frozen=True, slots=True)
class ReplenishmentProfile(PoolPaths):
    """The replenishment profile of a revolving deal, one vintage per purchase month.

    The ``PoolPaths`` fields are vintage 0: the new loans bought at the end of month 0, whose
    first month is month 1 of the run; ``later[s − 1]`` is vintage s, bought at the end of
    month s, whose month ``a`` is month ``s + 1 + a`` of the run and sees that month's factor
    (``portfolio.montecarlo.replenishment``). Every vintage has the same loans (at the same
    ``initial_balance``), paths and months; a purchase after the last vintage uses the last."""

    later: tuple[PoolPaths, ...] = ()

    @property
    def n_vintages(self) -> int:
        return 1 + len(self.later)

    def vintage(self, s: int) -> PoolPaths:
        """The profile of the loans bought at the end of month ``s`` (the last vintage for
        ``s`` beyond it)."""
        if s <= 0 or not self.later:
            return self
        return self.later[min(s, len(self.later)) - 1]


def slice_paths(paths: PoolPaths, start: int, stop: int) -> PoolPaths:
    """Paths ``start:stop`` of ``paths`` as views: every flow, every party's flows, the
    delinquency model's balances by state and cures (and their party versions), and every
    vintage of a replenishment profile; dates, initial balance, seed and party ids shared.
    A path-wise computation on the slices (the waterfall on threads or on Dask workers, a
    reducer) sees exactly what it sees on the whole."""
    dq = paths.delinquency
    if dq is not None:
        dq = dataclasses.replace(
            dq, state_balance=dq.state_balance[start:stop], cures=dq.cures[start:stop],
            party_state_balance=None if dq.party_state_balance is None
            else dq.party_state_balance[:, start:stop],
            party_cures=None if dq.party_cures is None else dq.party_cures[:, start:stop])
    flows = {name: getattr(paths, name)[start:stop] for name in FLOW_NAMES}
    party = {name: arr[:, start:stop] for name, arr in paths.party_flows.items()}
    if isinstance(paths, ReplenishmentProfile):
        return dataclasses.replace(paths, **flows, delinquency=dq, party_flows=party,
                                   later=tuple(slice_paths(v, start, stop)
                                               for v in paths.later))
    return dataclasses.replace(paths, **flows, delinquency=dq, party_flows=party)
