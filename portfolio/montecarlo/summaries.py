"""What a run on a cluster sends back instead of every path's flows, and a pool prepared from
book partitions (docs/architecture.md, "The Dask driver").

Per-path summaries
------------------
A run of ``n_paths`` paths over ``n_months`` months holds 7 flow arrays of
``n_paths × n_months`` float64 (and as many per party): 10,000 paths × 60 months is 34 MB, and
a per-path reduction is all most consumers need. :class:`PathSummaryReducer` (a
``portfolio.montecarlo.distributed.PathsReducer``) turns each task's paths into a
:class:`PathSummary`: the pool loss of every path (``n_paths`` float64), each party's loss of
every path (``n_parties × n_paths``), and per month and flow the sum over the paths and the sum
of squared deviations from the block's mean (``2 × 7 × n_months`` per block of 256 paths; the
sums per party too) — the monthly means and their Monte Carlo standard errors, the deviations
joined by Chan, Golub and LeVeque's pairwise update (no cancellation for a flow that is the same
on every path). Both are taken per canonical block (``BLOCK_PATHS`` paths) and the blocks
joined in block order, so the result does not depend on how blocks were grouped into tasks or
how many workers ran them: the same seed gives the same bytes on one process and on any
cluster.

Paths at loss quantiles (the "requested percentile paths"): :func:`quantile_path_index` picks,
for each level α, the path whose loss is the VaR estimator of ``portfolio.risk`` (the
⌈nα⌉-th smallest loss; ties by path index); :func:`paths_at` recomputes only the canonical
blocks that hold those paths (each block is a pure function of the prepared pool, its index
and the run's seed) and returns their full flows: the same numbers as those rows of the full
run.

A pool prepared from partitions
-------------------------------
:func:`part_cells` prepares one partition of the pool (e.g. one origination month of a
Parquet book) with :func:`portfolio.montecarlo.simulation.prepare_pool` and keeps what the
granular engine needs of it: each cell's key (score band, term, months on book, remaining
term), loan count and scheduled flows (summed over the partition's loans), the partition's
balance and earliest due date. :func:`merge_cells` joins the partitions (in partition order)
into one :class:`~portfolio.montecarlo.simulation.PreparedPool`: counts add, scheduled flows
add (float sums in partition order, so they may differ from one pass over all loans in the
last bits), probability tables are those of each cell's key (from ``prepare_pool`` on one
representative loan per cell). Every cell is drawn by binomial counts — what
``prepare_pool(small_cells=0)`` does; the loan-by-loan draws of small cells would need every
loan in one place. The merged pool holds no per-loan array (``order`` is empty): its size is
cells × months, whatever the number of loans.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from portfolio.errors import ValidationError, must_be
from portfolio.loans.arrays import LoanArrays
from portfolio.loans.types import SCORE_BANDS, RepaymentType
from portfolio.montecarlo import simulation as sim
from portfolio.montecarlo.assumptions import Assumptions
from portfolio.montecarlo.paths import FLOW_NAMES, PoolPaths
from portfolio.risk import LOSS_LEVELS

__all__ = [
    "PartCells",
    "PathSummary",
    "PathSummaryReducer",
    "merge_cells",
    "merged_keys",
    "part_cells",
    "paths_at",
    "prepare_from_parts",
    "quantile_path_index",
    "summarise",
]


BLOCK = sim.BLOCK_PATHS

# ------------------------------------------------------------------------------------------
# Per-path summaries


@dataclass(frozen=True, slots=True)
class PathSummary:
    """Per-path losses and per-month moments of a run's paths ``first_path :
    first_path + n_paths``.

    ``loss`` (n_paths,): pool loss (defaults − recoveries over the horizon);
    ``party_loss`` (n_parties, n_paths); ``block_sum`` / ``block_m2``
    (n_blocks, 7, n_months): per canonical block, the sum over its paths of each flow of
    ``FLOW_NAMES`` and the sum of squared deviations from the block's mean; ``party_block_sum`` (n_blocks, n_parties, 7,
    n_months) the sums of the party flows."""

    first_path: int
    loss: np.ndarray
    party_loss: np.ndarray
    block_sum: np.ndarray
    block_m2: np.ndarray
    party_block_sum: np.ndarray
    initial_balance: float
    dates: np.ndarray
    party_ids: tuple[str, ...] = ()

    @property
    def n_paths(self) -> int:
        return int(self.loss.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays (what a worker sends back for these paths)."""
        return int(sum(a.nbytes for a in (self.loss, self.party_loss, self.block_sum,
                                          self.block_m2, self.party_block_sum)))

    def flow_sum(self) -> np.ndarray:
        """(7, n_months) sum over every path of each flow (blocks added in block order)."""
        return _ordered_sum(self.block_sum)

    def flow_mean(self) -> dict[str, np.ndarray]:
        """Each flow's mean over the paths, by month."""
        total = self.flow_sum() / self.n_paths
        return {name: total[k] for k, name in enumerate(FLOW_NAMES)}

    def flow_se(self) -> dict[str, np.ndarray]:
        """Each flow's Monte Carlo standard error of the monthly mean (sample s.d. / √n;
        0 for one path)."""
        n = self.n_paths
        m = self.block_sum.shape[2]
        if n < 2:
            return {name: np.zeros(m) for name in FLOW_NAMES}
        # Chan et al.: (n_a, mean_a, M2_a) ⊕ (n_b, mean_b, M2_b), blocks in order
        sizes = [min(BLOCK, n - b * BLOCK) for b in range(self.block_sum.shape[0])]
        n_a, mean_a, m2_a = sizes[0], self.block_sum[0] / sizes[0], self.block_m2[0].copy()
        for b in range(1, len(sizes)):
            n_b = sizes[b]
            mean_b = self.block_sum[b] / n_b
            delta = mean_b - mean_a
            tot = n_a + n_b
            m2_a = m2_a + self.block_m2[b] + delta * delta * (n_a * n_b / tot)
            mean_a = mean_a + delta * (n_b / tot)
            n_a = tot
        se = np.sqrt(m2_a / (n - 1) / n)
        return {name: se[k] for k, name in enumerate(FLOW_NAMES)}

    @classmethod
    def concat(cls, parts: Sequence[PathSummary]) -> PathSummary:
        """Summaries of consecutive path ranges, joined in path order."""
        first = parts[0]
        return cls(
            first_path=first.first_path,
            loss=np.concatenate([p.loss for p in parts]),
            party_loss=np.concatenate([p.party_loss for p in parts], axis=1),
            block_sum=np.concatenate([p.block_sum for p in parts]),
            block_m2=np.concatenate([p.block_m2 for p in parts]),
            party_block_sum=np.concatenate([p.party_block_sum for p in parts]),
            initial_balance=first.initial_balance, dates=first.dates,
            party_ids=first.party_ids,
        )


def _ordered_sum(blocks: np.ndarray) -> np.ndarray:
    total = np.zeros(blocks.shape[1:])
    for b in range(blocks.shape[0]):  # block order: the same sum whatever the task grouping
        total += blocks[b]
    return total


def summarise(paths: PoolPaths, first_path: int = 0) -> PathSummary:
    """The :class:`PathSummary` of ``paths``, which are the run's paths ``first_path …``;
    ``first_path`` must be a block boundary (tasks always start on one)."""
    if first_path % sim.BLOCK_PATHS:
        raise ValidationError(must_be("first_path", f"a multiple of {sim.BLOCK_PATHS}",
                                      first_path))
    n, m = paths.n_paths, paths.n_months
    flows = [np.asarray(getattr(paths, name)) for name in FLOW_NAMES]
    cuts = list(range(0, n, sim.BLOCK_PATHS))
    n_q = len(paths.party_ids)
    bsum = np.empty((len(cuts), len(FLOW_NAMES), m))
    bsq = np.empty_like(bsum)
    pbsum = np.empty((len(cuts), n_q, len(FLOW_NAMES), m))
    for i, c in enumerate(cuts):
        sl = slice(c, min(n, c + sim.BLOCK_PATHS))
        for k, arr in enumerate(flows):
            part = arr[sl]
            bsum[i, k] = part.sum(axis=0)
            dev = part - bsum[i, k] / part.shape[0]
            bsq[i, k] = (dev * dev).sum(axis=0)
            for q in range(n_q):
                pbsum[i, q, k] = paths.party_flows[FLOW_NAMES[k]][q, sl].sum(axis=0)
    if n_q:
        pf = paths.party_flows
        party_loss = pf["default"].sum(axis=2) - pf["recovery"].sum(axis=2)
    else:
        party_loss = np.zeros((0, n))
    return PathSummary(int(first_path), paths.loss, party_loss, bsum, bsq, pbsum,
                       float(paths.initial_balance), paths.dates, tuple(paths.party_ids))


@dataclass(frozen=True, slots=True)
class PathSummaryReducer:
    """A ``PathsReducer``: each task's paths → :class:`PathSummary`; ``inner`` (optional)
    another reducer run on the same paths (e.g. the deal waterfall), whose joined result is
    returned beside the summary: ``combine`` gives ``(PathSummary, inner's result or None)``."""

    inner: object | None = None

    def check(self, n_paths: int) -> None:
        if self.inner is not None:
            self.inner.check(n_paths)  # type: ignore[attr-defined]

    def __call__(self, paths: PoolPaths, first_path: int) -> tuple[PathSummary, object]:
        inner = None if self.inner is None else self.inner(paths, first_path)  # type: ignore[operator]
        return summarise(paths, first_path), inner

    def combine(self, parts: Sequence[tuple[PathSummary, object]]) -> tuple[PathSummary, object]:
        summary = PathSummary.concat([p[0] for p in parts])
        inner = None if self.inner is None else \
            self.inner.combine([p[1] for p in parts])  # type: ignore[attr-defined]
        return summary, inner


def quantile_path_index(loss: np.ndarray, levels: Sequence[float] = LOSS_LEVELS) -> np.ndarray:
    """For each level α the index of the path whose loss is the ⌈nα⌉-th smallest (the VaR
    estimator of ``portfolio.risk``; ties broken by path index): ``loss[i] = VaR_α``."""
    loss = np.asarray(loss, dtype=np.float64)
    n = loss.shape[0]
    if n == 0:
        raise ValidationError(must_be("loss", "at least one path", "none"))
    lv = np.asarray(levels, dtype=np.float64)
    if lv.ndim != 1 or not np.all((lv > 0) & (lv < 1)):
        raise ValidationError(must_be("levels", "numbers in (0, 1)", tuple(levels)))
    order = np.argsort(loss, kind="stable")
    k = np.clip(np.ceil(n * lv).astype(np.int64) - 1, 0, n - 1)
    return order[k]


def paths_at(prep: sim.PreparedPool, root: np.random.SeedSequence, n_paths: int,
             index: Sequence[int] | np.ndarray, engine: sim.Engine = "granular",
             run_block: Callable[[int], sim.PathBatch] | None = None) -> PoolPaths:
    """The run's paths ``index`` (in that order) with every flow, recomputing only the
    canonical blocks that hold them: the same numbers as those rows of the full run of
    ``n_paths`` paths with ``root``. ``run_block(b)``: how block ``b`` is computed (e.g. on a
    cluster); default here."""
    idx = np.asarray(index, dtype=np.int64)
    if idx.ndim != 1 or idx.size == 0 or idx.min() < 0 or idx.max() >= n_paths:
        raise ValidationError(must_be("index", f"path numbers in [0, {n_paths})",
                                      idx.tolist()))
    layout = sim.block_layout(n_paths)
    blocks = sorted({int(i) // sim.BLOCK_PATHS for i in idx})
    if run_block is None:
        def run_block(b: int) -> sim.PathBatch:
            return sim.simulate_batch(prep, b, sim.block_seed(root, b), layout[b][1], engine)
    got = {b: run_block(b) for b in blocks}
    acc = np.stack([got[int(i) // sim.BLOCK_PATHS].flows[int(i) % sim.BLOCK_PATHS]
                    for i in idx])
    pacc = np.stack([got[int(i) // sim.BLOCK_PATHS].party_flows[:, int(i) % sim.BLOCK_PATHS]
                     for i in idx], axis=1)
    entropy = int(root.entropy) if isinstance(root.entropy, int | np.integer) else None
    return sim._assemble(prep, acc, pacc, entropy)


# ------------------------------------------------------------------------------------------
# A pool prepared from partitions


@dataclass(frozen=True, slots=True)
class PartCells:
    """One partition's cells: ``keys`` (n_cells, 4) int64 score band, term (months), months on
    book, remaining term in lexicographic order; ``cell_n`` (n_cells,) loan counts;
    ``cell_flows`` (n_cells, T_part, 3) scheduled bop, interest, principal summed over the
    partition's loans; ``initial_balance``; ``first_due``: the earliest next due date."""

    keys: np.ndarray
    cell_n: np.ndarray
    cell_flows: np.ndarray
    initial_balance: float
    first_due: np.datetime64
    n_loans: int

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.cell_n.nbytes + self.cell_flows.nbytes)


def part_cells(loans: LoanArrays, assumptions: Assumptions) -> PartCells:
    """Prepare one partition (every cell by binomial counts) and keep its cells (module doc)."""
    if len(loans) == 0:
        return PartCells(np.zeros((0, 4), dtype=np.int64), np.zeros(0, dtype=np.int64),
                         np.zeros((0, 0, 3)), 0.0, np.datetime64("NaT", "D"), 0)
    prep = sim.prepare_pool(loans, assumptions, small_cells=0.0)
    lead = prep.order[prep.cell_first[:-1]]
    keys = np.stack([np.asarray(loans.score_band, dtype=np.int64)[lead],
                     np.asarray(loans.term_months, dtype=np.int64)[lead],
                     np.asarray(loans.months_on_book, dtype=np.int64)[lead],
                     np.asarray(loans.remaining_term, dtype=np.int64)[lead]], axis=1)
    return PartCells(keys, prep.cell_n.copy(), prep.cell_flows, prep.initial_balance,
                     np.asarray(loans.next_due_date).min().astype("datetime64[D]"), len(loans))


def _representatives(keys: np.ndarray, first_due: np.datetime64) -> LoanArrays:
    """One loan per cell key, due first on ``first_due`` (their probability tables and the
    pool's dates are the merged pool's)."""
    n = keys.shape[0]
    score = np.array([SCORE_BANDS[int(b)][0] for b in keys[:, 0]], dtype=np.int16)
    due = np.full(n, first_due, dtype="datetime64[D]")
    return LoanArrays(
        loan_id=np.array([f"cell_{i}" for i in range(n)], dtype=object),
        balance=np.ones(n), apr=np.full(n, 0.1), term_months=keys[:, 1].astype(np.int16),
        remaining_term=keys[:, 3].astype(np.int16), months_on_book=keys[:, 2].astype(np.int16),
        repayment_type=np.full(n, RepaymentType.LEVEL_ANNUITY.code, dtype=np.int8),
        credit_score=score, region=np.full(n, "", dtype=object),
        origination_date=due - np.timedelta64(31, "D"), next_due_date=due,
        principal=np.ones(n))


def merged_keys(parts: Sequence[PartCells]) -> tuple[np.ndarray, np.datetime64]:
    """The merged pool's cell keys (n_cells, 4), in its cells' order (lexicographic rows:
    :func:`merge_cells`), and its earliest next due date."""
    parts = [p for p in parts if p.n_loans > 0]
    if not parts:
        raise ValidationError(must_be("book", "at least one loan in its partitions", "0 loans"))
    keys = np.unique(np.concatenate([p.keys for p in parts]), axis=0)  # lexicographic rows
    return keys, min(p.first_due for p in parts)


def merge_cells(parts: Sequence[PartCells], assumptions: Assumptions) -> sim.PreparedPool:
    """One prepared pool from partitions' cells, joined in the order given (module doc)."""
    keys, first_due = merged_keys(parts)
    parts = [p for p in parts if p.n_loans > 0]
    n_cells = keys.shape[0]
    T = int(keys[:, 3].max())
    counts = np.zeros(n_cells, dtype=np.int64)
    flows = np.zeros((n_cells, T, 3))
    initial = 0.0
    for p in parts:
        at = _rows_of(keys, p.keys)
        counts[at] += p.cell_n
        flows[at, : p.cell_flows.shape[1]] += p.cell_flows
        initial += p.initial_balance
    rep = sim.prepare_pool(_representatives(keys, first_due), assumptions, small_cells=0.0)
    if rep.n_cells != n_cells or not np.array_equal(rep.cell_r, keys[:, 3]):
        raise AssertionError("representative cells out of order")  # a bug, not bad input
    return dataclasses.replace(
        rep, n_loans=int(counts.sum()), initial_balance=float(initial), cell_n=counts,
        cell_flows=flows, cell_pflows=np.zeros((n_cells, 0, T, 3)),
        cell_first=np.r_[0, np.cumsum(counts)].astype(np.int64),
        order=np.empty(0, dtype=np.int64), n_binomial_cells=n_cells, party_ids=(),
        cell_of=None, loan_base=None, sched=None, shares=None)


def _scalar_keys(keys: np.ndarray) -> np.ndarray:
    """One int64 per (band, term, months on book, remaining term) row, in the rows'
    lexicographic order (band < 100, term and the others < 10,000)."""
    k = keys.astype(np.int64)
    return ((k[:, 0] * 10_000 + k[:, 1]) * 10_000 + k[:, 2]) * 10_000 + k[:, 3]


def _rows_of(keys: np.ndarray, sub: np.ndarray) -> np.ndarray:
    """Row of each ``sub`` key in the sorted unique ``keys``."""
    kv, sv = _scalar_keys(keys), _scalar_keys(sub)
    at = np.searchsorted(kv, sv)
    if not np.array_equal(kv[np.minimum(at, len(kv) - 1)], sv):
        raise AssertionError("a partition's cell is missing from the merged keys")
    return at


def prepare_from_parts(loaders: Sequence[Callable[[], LoanArrays]],
                       assumptions: Assumptions) -> sim.PreparedPool:
    """The merged pool of the partitions ``loaders`` return, prepared in this process one
    partition at a time (the one-process twin of the cluster's preparation: same bytes)."""
    return merge_cells([part_cells(load(), assumptions) for load in loaders], assumptions)
