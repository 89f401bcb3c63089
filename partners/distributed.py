"""Risk dispersion per party on Dask workers (``portfolio.montecarlo.distributed``'s
``per_paths`` hook).

``DispersionOnWorkers(deal, replenishment)`` runs, on each task's paths of a run that carries
the allocation's party split, what :func:`partners.dispersion.disperse_paths` needs of them:
the pool's and each party's loss per path, each party's collections per path and — with a
deal — the securitisation of the whole pool and of the platform's retained share
(:func:`partners.dispersion.securitise`, the waterfall on those paths). All of it is path-wise,
so the client joins the parts in path order and :func:`disperse_joined` gives the same
:class:`~partners.dispersion.Dispersion` as ``disperse_paths`` on the full paths, bit for bit,
without the (paths × months) flow arrays: each task sends back a few vectors of its paths
(pool loss, n_parties losses and collections, and per securitisation one loss vector per
position and four more); the ``Securitisation.waterfall`` (every month of the deal) stays on
the worker (None in the joined result).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from partners.capital import RETAIL_K_SA, RetailIrb, SecuritisationCapital
from partners.dispersion import (
    Dispersion,
    Securitisation,
    disperse,
    party_path_losses,
    party_paths,
    path_loss,
    securitise,
)
from partners.errors import DispersionError
from partners.registry import PLATFORM_ID
from partners.srt import SrtPolicy
from portfolio.errors import must_be
from portfolio.montecarlo.distributed import slice_paths
from portfolio.montecarlo.paths import PoolPaths

COLLECTED = ("interest", "scheduled_principal", "prepayment", "recovery")


@dataclass(frozen=True, slots=True)
class DispersionPart:
    """What one task's paths contribute (see the module doc); ``party_ids`` platform first."""

    party_ids: tuple[str, ...]
    pool_loss: np.ndarray  # (n,)
    party_loss: np.ndarray  # (n_parties, n)
    collected: np.ndarray  # (n_parties, n)
    whole: Securitisation | None = None
    retained: Securitisation | None = None

    @property
    def nbytes(self) -> int:
        total = self.pool_loss.nbytes + self.party_loss.nbytes + self.collected.nbytes
        for s in (self.whole, self.retained):
            if s is not None:
                total += sum(a.nbytes for a in (s.pool_loss, s.collateral_loss, s.called_loss,
                                                s.purchased_loss))
                total += sum(p.loss.nbytes for p in s.positions)
        return int(total)


def _light(s: Securitisation) -> Securitisation:
    """The securitisation without its month-by-month waterfall (stays on the worker)."""
    return dataclasses.replace(s, waterfall=None)


def _join_securitisations(parts: Sequence[Securitisation]) -> Securitisation:
    first = parts[0]
    positions = tuple(
        dataclasses.replace(pos, loss=np.concatenate([p.positions[k].loss for p in parts]))
        for k, pos in enumerate(first.positions))
    return dataclasses.replace(
        first, positions=positions,
        pool_loss=np.concatenate([p.pool_loss for p in parts]),
        collateral_loss=np.concatenate([p.collateral_loss for p in parts]),
        called_loss=np.concatenate([p.called_loss for p in parts]),
        purchased_loss=np.concatenate([p.purchased_loss for p in parts]), waterfall=None)


@dataclass(frozen=True, slots=True)
class DispersionOnWorkers:
    """A ``PathsReducer``: each task's paths → :class:`DispersionPart`; ``combine`` joins them
    in path order. ``replenishment``: the revolving deal's profile for the whole run."""

    deal: Any | None = None
    replenishment: PoolPaths | None = None

    def check(self, n_paths: int) -> None:
        if self.replenishment is not None and self.replenishment.n_paths != n_paths:
            raise DispersionError(must_be("replenishment", f"a profile of {n_paths} paths "
                                          "(the run's)", f"{self.replenishment.n_paths} paths"))

    def __call__(self, paths: PoolPaths, first_path: int) -> DispersionPart:
        pf = paths.party_flows
        collected = sum(pf[name].sum(axis=2) for name in COLLECTED)
        whole = retained = None
        if self.deal is not None:
            rep = None if self.replenishment is None else slice_paths(
                self.replenishment, first_path, first_path + paths.n_paths)
            whole = _light(securitise(self.deal, paths, rep))
            retained = _light(securitise(self.deal, party_paths(paths, PLATFORM_ID), rep))
        return DispersionPart(tuple(paths.party_ids), path_loss(paths), party_path_losses(paths),
                              np.asarray(collected, dtype=np.float64), whole, retained)

    def combine(self, parts: Sequence[DispersionPart]) -> DispersionPart:
        first = parts[0]
        return DispersionPart(
            first.party_ids, np.concatenate([p.pool_loss for p in parts]),
            np.concatenate([p.party_loss for p in parts], axis=1),
            np.concatenate([p.collected for p in parts], axis=1),
            None if first.whole is None else _join_securitisations(
                [p.whole for p in parts if p.whole is not None]),
            None if first.retained is None else _join_securitisations(
                [p.retained for p in parts if p.retained is not None]))


def disperse_joined(part: DispersionPart, balance: np.ndarray, shares: np.ndarray,
                    pd: np.ndarray, lgd: np.ndarray, *, k_sa: float = RETAIL_K_SA,
                    w: float = 0.0, irb: RetailIrb = RetailIrb(),
                    sec: SecuritisationCapital | None = None,
                    srt: SrtPolicy = SrtPolicy()) -> Dispersion:
    """:func:`partners.dispersion.disperse` of the joined parts: the same figures as
    ``disperse_paths`` on the run's full paths (same arguments)."""
    return disperse(pool_loss=part.pool_loss, party_ids=part.party_ids,
                    party_loss=part.party_loss, balance=balance, shares=shares, pd=pd, lgd=lgd,
                    securitisation_whole=part.whole, securitisation_retained=part.retained,
                    k_sa=k_sa, w=w, irb=irb, sec=sec, srt=srt,
                    party_collections=part.collected)
