"""Risk dispersion per party on Dask workers (``portfolio.montecarlo.distributed``'s
``per_paths`` hook).

``DispersionOnWorkers(deal, replenishment)`` runs, on each task's paths of a run that carries
the allocation's party split, what :func:`partners.dispersion.disperse_paths` needs of them:
the pool's and each party's loss per path, each party's collections per path and — with a
deal — the securitisation of the whole pool and of the platform's retained share
(:func:`partners.dispersion.securitise_totals`, the waterfall on those paths, recording only
what the positions and the waterfall's per-path totals are made of). All of it is path-wise,
so the client joins the parts in path order and :func:`disperse_joined` gives the same
:class:`~partners.dispersion.Dispersion` as ``disperse_paths`` on the full paths, bit for bit,
without the (paths × months) flow arrays: each task sends back a few vectors of its paths
(pool loss, n_parties losses and collections, and per securitisation one loss vector per
position, four more and the waterfall's per-path totals,
:class:`~partners.dispersion.WaterfallTotals`, which the reconciliation and the economic view
read); the month-by-month waterfall is not kept (``Securitisation.waterfall`` is None).

:func:`disperse_on_cluster` is ``riskpool dispersion --workers/--scheduler``: a recorded
run's paths simulated again on the workers from its inputs with the allocation's shares
(``portfolio.montecarlo.distributed.run_distributed`` with ``keep_flows=False``), this
reducer on each task's paths, only its parts back.
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
    WaterfallTotals,
    disperse,
    party_path_losses,
    party_paths,
    path_loss,
    securitise_totals,
)
from partners.errors import DispersionError
from partners.records import RunSplit, check_replayed_losses
from partners.registry import PLATFORM_ID
from partners.srt import SrtPolicy
from portfolio.errors import ValidationError, must_be
from portfolio.montecarlo.delinquency import DqPrepared, dq_sampler, prepare_delinquency
from portfolio.montecarlo.distributed import DistributedRun, run_distributed, slice_paths
from portfolio.montecarlo.paths import PoolPaths
from portfolio.montecarlo.records import SimulationInputs, replay_loan_sampler
from portfolio.montecarlo.simulation import (
    SMALL_CELL_FACTOR,
    PreparedPool,
    prepare_pool,
    root_seed,
)
from portfolio.store.parquet_book import loan_parts

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
                total += 0 if s.totals is None else s.totals.nbytes
        return int(total)


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
        purchased_loss=np.concatenate([p.purchased_loss for p in parts]), waterfall=None,
        totals=None if first.totals is None else WaterfallTotals.concat(
            [p.totals for p in parts if p.totals is not None]))


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
            mine = party_paths(paths, PLATFORM_ID)
            # one thread: a Dask worker runs as many tasks as it has threads already
            whole = securitise_totals(self.deal, paths, rep, threads=1)
            retained = securitise_totals(self.deal, mine, rep, threads=1)
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


# ------------------------------------------------------------------------------------------
# A recorded run's dispersion on a cluster (``riskpool dispersion --workers/--scheduler``)


def check_run_for_workers(split: RunSplit) -> None:
    """Refuse, before any cluster work, a run the Dask driver cannot simulate again: a
    deterministic projection (one path)."""
    inputs, run_id = split.replay.inputs, split.replay.run_id
    if inputs.deterministic_z is not None:
        raise ValidationError(must_be("--workers/--scheduler", "used with a Monte Carlo run",
                                      f"run {run_id}, a deterministic projection "
                                      f"({inputs.deterministic}: one path)",
                                      "drop --workers/--scheduler"))


def from_loan_tape(inputs: SimulationInputs) -> bool:
    """Whether a run was simulated on Dask workers from a loan tape (``riskpool simulate
    --tape``: its record's ``book`` is a folder of loan partitions)."""
    if inputs.dask is None or inputs.book is None:
        return False
    try:
        loan_parts(inputs.book)
    except ValidationError:
        return False
    return True


@dataclass(frozen=True, slots=True, eq=False)
class ClusterDispersion:
    """``dispersion``: the same :class:`~partners.dispersion.Dispersion` as ``disperse_paths``
    on the run's paths (its securitisations without their month-by-month waterfall);
    ``n_workers`` / ``n_tasks`` of the cluster run; ``bytes_back``: bytes of the per-path
    vectors the workers sent (:attr:`DispersionPart.nbytes`)."""

    dispersion: Dispersion
    n_paths: int
    n_workers: int
    n_tasks: int
    bytes_back: int
    timings: dict[str, float]


def disperse_on_cluster(client: Any, split: RunSplit, balance: np.ndarray, shares: np.ndarray,
                        pd: np.ndarray, lgd: np.ndarray, deal: Any | None = None, *,
                        replenishment: PoolPaths | None = None, irb: RetailIrb = RetailIrb(),
                        sec: SecuritisationCapital | None = None,
                        srt: SrtPolicy = SrtPolicy(),
                        blocks_per_task: int | None = None) -> ClusterDispersion:
    """The dispersion of a recorded run (``split``: :func:`partners.records.run_party_split`)
    with its paths simulated again on ``client``'s workers from the run's inputs (seed,
    assumptions, pool, engine) and the allocation's shares as the party split;
    :class:`DispersionOnWorkers` runs on each task's paths and only its parts come back. The
    re-simulated pool loss must equal the run's recorded loss on every path
    (:func:`partners.records.check_replayed_losses`). ``balance`` … ``srt``: as for
    ``disperse_paths`` (``replenishment``: a revolving deal's profile for the whole run,
    shipped to the workers with the deal). The same figures as ``disperse_paths`` on the
    run's paths, bit for bit. A run from a loan tape (:func:`from_loan_tape`; its tape still
    there) is prepared with every cell drawn by binomial counts, as it was: its pool loss
    to float rounding (the tape's cells summed partition by partition), the party split
    exact on those paths. A run of the delinquency-state model is prepared for it
    (``prepare_delinquency`` with the run's charge-off point: every cell by binomial counts,
    as it ran)."""
    check_run_for_workers(split)
    replay = split.replay
    inputs = replay.inputs
    prep: PreparedPool | DqPrepared
    if inputs.model == "delinquency":
        prep = prepare_delinquency(replay.loans, replay.assumptions, split.shares,
                                   split.party_ids, inputs.engine,
                                   charge_off_dpd=inputs.charge_off_dpd,
                                   sampler=dq_sampler(replay_loan_sampler(inputs)))
        run = run_distributed(client, prep, root_seed(inputs.seed), int(inputs.n_paths),
                              inputs.engine, DispersionOnWorkers(deal, replenishment),
                              blocks_per_task=blocks_per_task, keep_flows=False)
        return _dispersed(run, split, balance, shares, pd, lgd, irb, sec, srt)
    # a run from a loan tape drew every cell by binomial counts (its cells were merged from
    # the tape's partitions): the pool's loans prepared so give its paths to float rounding
    small = 0.0 if from_loan_tape(inputs) else SMALL_CELL_FACTOR
    prep = prepare_pool(replay.loans, replay.assumptions, split.shares, split.party_ids,
                        loan_level=inputs.engine == "loan", small_cells=small,
                        loan_sampler=replay_loan_sampler(inputs))
    run = run_distributed(client, prep, root_seed(inputs.seed), int(inputs.n_paths),
                          inputs.engine, DispersionOnWorkers(deal, replenishment),
                          blocks_per_task=blocks_per_task, keep_flows=False)
    return _dispersed(run, split, balance, shares, pd, lgd, irb, sec, srt)


def _dispersed(run: DistributedRun, split: RunSplit, balance: np.ndarray, shares: np.ndarray,
               pd: np.ndarray, lgd: np.ndarray, irb: RetailIrb,
               sec: SecuritisationCapital | None, srt: SrtPolicy) -> ClusterDispersion:
    """The joined parts checked against the run's recorded losses, then dispersed."""
    part: DispersionPart = run.reduced
    check_replayed_losses(split.replay.run_id, part.pool_loss, split.loss)
    d = disperse_joined(part, balance, shares, pd, lgd, irb=irb, sec=sec, srt=srt)
    return ClusterDispersion(d, int(split.replay.inputs.n_paths), run.n_workers, run.n_tasks,
                             part.nbytes, run.timings)
