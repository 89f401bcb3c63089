"""Monte Carlo projection of a pool's cash flows and credit losses (docs/model.md, "Monte Carlo projection").

``simulate(loans, assumptions, n_paths, seed)`` returns :class:`~portfolio.montecarlo.paths.PoolPaths`:
every month's start balance, interest, scheduled principal, prepayment, defaulted principal,
recovery and end balance on every path, plus the same per party when ``shares`` are given.

Model
-----
* Monthly grid: month t (0-based) is the t-th instalment period after the cut-off, to the
  last loan's maturity plus the recovery lag. ``PoolPaths.dates[t]`` is the month end of that
  period (the cut-off is taken as the month end before the earliest next due date).
* Scheduled interest and principal are those of :func:`portfolio.loans.schedules.schedule_matrix`
  (all four repayment types, cent-rounded), computed in one pass per loan and summed per cell
  by ``engines.schedule_sums`` (bit-identical to ``schedule_matrix``; tested).
* Each performing loan, each month, in this order (both engines): defaults with the
  conditional hazard (its whole start-of-month balance; no interest or principal that
  month); otherwise pays its scheduled interest and principal; then prepays the rest in full
  with the SMM. Hazards and SMMs are by score band × term × age (``Assumptions`` docstring).
* Systematic factor: one AR(1) path per Monte Carlo path, ``Z_1 = ε_1``,
  ``Z_t = φ·Z_{t−1} + √(1−φ²)·ε_t`` (unit variance in every month). Conditional hazard
  ``Φ((Φ⁻¹(h) − √ρ·Z_t)/√(1−ρ))``; with ``copula = "t"`` a loan's default time is a t_ν
  latent variable mapped through its lifetime default curve (one ``W ~ χ²_ν`` per path; the
  month's factor acts on the hazard given W; see ``engines.t_copula_pds``), which keeps the
  lifetime curve exactly.
* Recovery: ``recovery_rate`` × defaulted balance, collected ``recovery_lag[k]`` of it
  ``k + 1`` months after the default.

Engines
-------
* ``loan`` — exact reference: every loan drawn on every path from its conditional
  distribution of (event month, default or prepay) on that path — per cell, run of
  ``engines.LOAN_TILE`` loans and path a binomial count of the loans with an event, which ones,
  and their months (``engines.loan_subset_block``, sampler ``engines.LOAN_SAMPLER``).
* ``granular`` (default) — loans grouped into cells with identical probabilities (score band,
  term, months on book, remaining term); per cell, month and path the default count is
  Binomial(alive, p_t(Z_t)) and the prepayment count Binomial(alive − d, smm_t), drawn
  exactly (``engines.binomial_draw``: inversion for a small mode, Hörmann's BTRD above it,
  uniforms from the block's idiosyncratic PCG64 stream). A cell's flows are split pro rata to the
  counts (exchangeable loans): exact in expectation; the within-cell spread of loan sizes is
  the only thing left out of the variance. Cells with fewer loans than ``SMALL_CELL_FACTOR``
  × their remaining term are cheaper to draw loan by loan, so the granular engine draws them
  so (``engines.loan_block``: one float32 uniform per loan and path inverted over the loan's
  event probabilities; ``prepare_pool(small_cells=0)`` turns this off).

Deterministic scenarios (``deterministic_z``): the factor path is fixed (a number or one
value per month) and the result is the single-path conditional expectation (no
idiosyncratic noise), with the Gaussian conditional hazard whatever the copula.
``DETERMINISTIC_Z`` names base (Z = 0), adverse (Z = Φ⁻¹(0.05) every month, a 1-in-20
factor held for the whole life) and severe (Φ⁻¹(0.01)). Both engines give the same numbers.

Randomness and batches
----------------------
One root ``SeedSequence(seed)`` per run. Paths are laid out in canonical blocks of
``BLOCK_PATHS`` = 256; block b draws from the child ``SeedSequence(entropy,
spawn_key=root.spawn_key + (b,))`` (what ``root.spawn`` would return), itself split into a
factor stream (ε, shape (paths, T)), a t-mixing stream (W) and an idiosyncratic stream
(granular: the doubles the exact binomial draws take, path by path, cell by cell, month by
month, then the small cells' per-loan float32 uniforms, per canonical chunk of
``LOAN_CHUNK`` loans an array (paths, loans); loan: the doubles ``engines.loan_subset_block``
takes, cell by cell, run by run, path by path). The factor paths are the same in both engines for the same
seed (common random numbers). ``batch_size`` only groups
blocks into progress steps on one thread (on several, each block is a task), so the numbers
depend on the seed alone. A Dask worker (issue
7) runs :func:`simulate_batch` on a :class:`PreparedPool` with a block index and its seed.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import special, stats

from portfolio import settings
from portfolio.errors import ValidationError, must_be
from portfolio.loans.arrays import LoanArrays
from portfolio.loans.schedules import (
    _HALF_UP_NUDGE,
    _annuity_payment,
    _round_half_up,
    flat_fee_cents,
    schedule_matrix,
)
from portfolio.loans.types import RepaymentType
from portfolio.montecarlo import engines, lanes
from portfolio.montecarlo.assumptions import Assumptions
from portfolio.montecarlo.paths import FLOW_NAMES, PoolPaths
from portfolio.risk import LOSS_LEVELS, LossStats, loss_stats

__all__ = [
    "BLOCK_PATHS",
    "DETERMINISTIC_Z",
    "LOSS_LEVELS",
    "LossStats",
    "PathBatch",
    "PreparedPool",
    "assemble_paths",
    "block_layout",
    "block_seed",
    "check_count",
    "loss_distribution",
    "prepare_pool",
    "run_block_tasks",
    "simulate",
    "simulate_batch",
]

Engine = Literal["granular", "loan"]
ENGINES: tuple[str, ...] = ("granular", "loan")
BLOCK_PATHS = 256
DETERMINISTIC_Z: dict[str, float] = {
    "base": 0.0,
    "adverse": float(special.ndtri(0.05)),
    "severe": float(special.ndtri(0.01)),
}
SMALL_CELL_FACTOR = 6.0  # a cell with fewer loans than 6 × its remaining term: drawn per loan
_SCHEDULE_CHUNK = 125_000  # loans per schedule_matrix call (bounds peak memory)
SCHEDULE_CHUNK = 1 << 16  # loans per chunk of the schedule kernels' inputs (whole cells)
_SHARES_TOL = 1e-9  # |row sum - 1| allowed in shares
LOAN_CHUNK = 16_384  # loans per canonical uniform chunk of the small cells' per-loan draws
LEGACY_LOAN_SAMPLER = "float32-per-loan-v0"
"""The loan engine's draw before ``engines.LOAN_SAMPLER``: one float32 uniform per loan and
path (``engines.loan_block``, in chunks of ``LOAN_CHUNK`` loans), kept so that a loan-engine
run recorded without ``loan_sampler`` replays to its numbers."""
LOAN_SAMPLERS: tuple[str, ...] = (engines.LOAN_SAMPLER, LEGACY_LOAN_SAMPLER)
HAZARD_SAMPLERS: tuple[str, ...] = (*LOAN_SAMPLERS, *lanes.GRANULAR_SAMPLERS)
"""Every versioned draw of the hazard model: the loan engine's (``LOAN_SAMPLERS``) and the
granular engine's (``lanes.GRANULAR_SAMPLERS``). A run records the one its engine used."""


# ------------------------------------------------------------------------------------------
# Preparation: cells, schedules, thresholds


@dataclass(frozen=True, slots=True)
class PreparedPool:
    """Everything a block of paths needs, computed once per (loans, assumptions, shares).

    Cells (loans with the same score band, term, months on book and remaining term) are in a
    fixed order; ``order`` maps cell-major position → row of the original ``LoanArrays``.
    Shapes: ``T`` = months to the last maturity, ``n_months`` = T + recovery lag.
    """

    n_loans: int
    T: int
    n_months: int
    dates: np.ndarray  # (n_months,) datetime64[D]
    initial_balance: float
    cell_n: np.ndarray  # (n_cells,) int64 loan count
    cell_r: np.ndarray  # (n_cells,) int64 remaining term
    n_binomial_cells: int  # granular: cells [0, n) by binomial counts, the rest per loan
    # (n_cells, T) float64 default threshold: Gaussian copula Φ⁻¹(h_t); t copula
    # t_ν⁻¹(F_t), F_t = 1 − Π_{j≤t}(1 − h_j) the lifetime default curve from the cut-off
    cell_thr: np.ndarray
    cell_thr_gauss: np.ndarray  # (n_cells, T) Φ⁻¹(h) (deterministic projections)
    cell_smm: np.ndarray  # (n_cells, T) float64 prepayment probability
    cell_flows: np.ndarray  # (n_cells, T, 3) scheduled bop, interest, principal (sums)
    cell_pflows: np.ndarray  # (n_cells, n_parties, T, 3)
    cell_first: np.ndarray  # (n_cells + 1,) cell-major loan offsets
    order: np.ndarray  # (n_loans,) cell-major position -> original row
    rho: float
    factor_persistence: float
    copula: str
    t_dof: float
    recovery_rate: float
    recovery_lag: np.ndarray
    party_ids: tuple[str, ...] = ()
    # loan-level draws (loan engine; granular small cells), else None
    cell_of: np.ndarray | None = None  # (n_loans,) int32 cell of each cell-major loan
    loan_base: np.ndarray | None = None  # (n_loans,) int64 offset of the loan's rows in sched
    sched: np.ndarray | None = None  # flat float64 (bop, interest, principal) per loan-month
    shares: np.ndarray | None = None  # (n_loans, n_parties) in cell-major order
    loan_sampler: str = engines.LOAN_SAMPLER  # the loan engine's draw (LOAN_SAMPLERS)
    granular_sampler: str = lanes.GRANULAR_SAMPLER  # the granular engine's (GRANULAR_SAMPLERS)

    @property
    def n_cells(self) -> int:
        return int(self.cell_n.shape[0])

    @property
    def n_parties(self) -> int:
        return int(self.cell_pflows.shape[1])

    @property
    def base_flows(self) -> np.ndarray:
        """(T, 3) scheduled pool totals if nothing defaulted or prepaid."""
        return self.cell_flows.sum(axis=0)


def _validate_loans(loans: LoanArrays, assumptions: Assumptions) -> np.ndarray:
    """Checks at the engine boundary; returns the term index of each loan.

    Each check first on the column's extremes (a reduction); the elementwise test, which
    names the first bad loan, runs only when they fail. The term index is read from a table
    over the integers from the shortest term to the longest (when under 2¹⁶ of them), the
    term check then on that table's entries."""
    n = len(loans)
    if n == 0:
        raise ValidationError(must_be("loans", "a pool with at least one loan", "0 loans"))
    terms = np.asarray(assumptions.terms)
    term = np.asarray(loans.term_months, dtype=np.int64)
    lo, hi = int(term.min()), int(term.max())
    if hi - lo < 1 << 16:
        values = np.arange(lo, hi + 1, dtype=np.int64)
        table = np.minimum(np.searchsorted(terms, values), len(terms) - 1)
        term_idx = table[term - lo]
        check_terms = bool((terms[table] != values).any())  # a non-term in the range
    else:
        term_idx = np.minimum(np.searchsorted(terms, term), len(terms) - 1)
        check_terms = True
    if check_terms:
        loans.require(terms[term_idx] == term, "term_months",
                      f"one of the assumption terms {tuple(terms)}", term)
    rem = np.asarray(loans.remaining_term, dtype=np.int64)
    if rem.min() < 1:
        loans.require(rem >= 1, "remaining_term", "an integer >= 1", rem)
    bal = np.asarray(loans.balance, dtype=np.float64)
    if not (bal.min() > 0 and bal.max() < np.inf):  # NaN propagates to both and fails
        loans.require(np.isfinite(bal) & (bal > 0), "balance", "a positive amount", bal)
    mob = np.asarray(loans.months_on_book, dtype=np.int64)
    if mob.min() < 0:
        loans.require(mob >= 0, "months_on_book", "an integer >= 0", mob)
    return term_idx


def _validate_shares(shares: np.ndarray | None, party_ids: tuple[str, ...],
                     n_loans: int) -> tuple[np.ndarray, tuple[str, ...]]:
    if shares is None:
        if party_ids:
            raise ValidationError(must_be("party_ids", "empty when no shares are given",
                                          party_ids))
        return np.zeros((n_loans, 0)), ()
    s = np.asarray(shares, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != n_loans or s.shape[1] < 1:
        raise ValidationError(must_be("shares", f"an array shaped (n_loans={n_loans}, n_parties)",
                                      f"shape {s.shape}"))
    # one compiled pass first (entries in [0, 1], rows summed left to right as numpy's row
    # sums of these few columns are); the array checks below only when it fails, to name the
    # first bad entry or row
    if not engines.shares_valid(s, _SHARES_TOL):
        bad = ~((s >= 0.0) & (s <= 1.0))  # NaN fails both comparisons, ±inf one
        if bad.any():
            i, j = (int(v) for v in np.argwhere(bad)[0])
            raise ValidationError(must_be("shares", "in [0, 1]", float(s[i, j]),
                                          f"loan row {i}, party {j}"))
        row_sum = s.sum(axis=1)
        bad = np.abs(row_sum - 1.0) > _SHARES_TOL
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValidationError(must_be("shares", "rows that sum to 1", float(row_sum[i]),
                                          f"loan row {i}"))
    if not party_ids:
        party_ids = tuple(f"party_{j + 1}" for j in range(s.shape[1]))
    party_ids = tuple(str(p) for p in party_ids)
    if len(party_ids) != s.shape[1] or len(set(party_ids)) != len(party_ids):
        raise ValidationError(must_be("party_ids", f"{s.shape[1]} distinct names (one per "
                                      "shares column)", party_ids))
    return s, party_ids


def _pool_dates(loans: LoanArrays, n_months: int) -> np.ndarray:
    """Month ends of the projection periods: the cut-off is the month end before the
    earliest next due date; period t ends at the month end t + 1 months later."""
    # the earliest month: the month of the earliest date (truncation to months is monotone)
    first_due = np.asarray(loans.next_due_date).min().astype("datetime64[M]")
    months = first_due + np.arange(n_months + 1)
    return (months[1:].astype("datetime64[D]") - np.timedelta64(1, "D")).astype("datetime64[D]")


def cell_probabilities(c_band: np.ndarray, c_term: np.ndarray, c_mob: np.ndarray,
                       c_rem: np.ndarray, T: int, assumptions: Assumptions
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each cell's prepayment SMM and default thresholds by projection month, (n_cells, T):
    the cell's (score band, term column, months on book, remaining term), its month t at age
    a = mob + t + 1 reading column min(a, n_age) − 1 of the hazard and SMM tables; no hazard
    after the last instalment and no prepayment in it (nothing left to prepay). Returns
    (smm, thr, thr_gauss): thr_gauss = Φ⁻¹(h) (−inf where h = 0), thr the copula's
    thresholds (``lifetime_t_quantiles`` under the t copula, else thr_gauss)."""
    t_idx = np.arange(T)
    age_col = np.minimum(c_mob[:, None] + t_idx[None, :] + 1, assumptions.n_age) - 1
    h = assumptions.default_hazard[c_band[:, None], c_term[:, None], age_col]
    smm = assumptions.prepay_smm[c_band[:, None], c_term[:, None], age_col].copy()
    alive = t_idx[None, :] < c_rem[:, None]
    h = np.where(alive, h, 0.0)
    smm[~alive | (t_idx[None, :] == c_rem[:, None] - 1)] = 0.0  # nothing left to prepay
    with np.errstate(divide="ignore"):
        thr_gauss = np.where(h > 0, special.ndtri(h), -np.inf)
    if assumptions.copula == "t":
        thr = lifetime_t_quantiles(h, assumptions.t_dof)
    else:
        thr = thr_gauss
    return smm, thr, thr_gauss


def prepare_pool(
    loans: LoanArrays,
    assumptions: Assumptions,
    shares: np.ndarray | None = None,
    party_ids: tuple[str, ...] = (),
    loan_level: bool = False,
    schedules: Literal["numba", "numpy"] = "numba",
    small_cells: float = SMALL_CELL_FACTOR,
    loan_sampler: str = engines.LOAN_SAMPLER,
) -> PreparedPool:
    """Group the pool into cells, compute schedules and per-cell probability tables.

    ``loan_level=True`` also keeps every loan's schedule (needed by the ``loan`` engine);
    ``loan_sampler`` (``HAZARD_SAMPLERS``) is the draw of the engine it names: one of
    ``LOAN_SAMPLERS`` the loan engine's (the granular engine then draws with the current
    ``lanes.GRANULAR_SAMPLER``), one of ``lanes.GRANULAR_SAMPLERS`` the granular engine's (the
    loan engine then draws with the current ``engines.LOAN_SAMPLER``).
    Cells with fewer than ``small_cells`` × (remaining term) loans are put last and the
    granular engine draws them loan by loan, exactly like the loan engine (``small_cells=0``:
    every cell by binomial counts).
    ``schedules="numpy"`` sums :func:`portfolio.loans.schedules.schedule_matrix` (the oracle of the
    numba kernel ``engines.schedule_sums``, which gives the same numbers in one pass).
    """
    if loan_sampler not in HAZARD_SAMPLERS:
        raise ValidationError(must_be("loan_sampler", "one of " + ", ".join(HAZARD_SAMPLERS),
                                      loan_sampler))
    granular_sampler = lanes.GRANULAR_SAMPLER
    if loan_sampler in lanes.GRANULAR_SAMPLERS:
        granular_sampler, loan_sampler = loan_sampler, engines.LOAN_SAMPLER
    term_idx = _validate_loans(loans, assumptions)
    n = len(loans)
    s, party_ids = _validate_shares(shares, party_ids, n)
    band = np.asarray(loans.score_band, dtype=np.int64)
    mob = np.asarray(loans.months_on_book, dtype=np.int64)
    rem = np.asarray(loans.remaining_term, dtype=np.int64)
    T = int(rem.max())
    lag = np.asarray(assumptions.recovery_lag, dtype=np.float64)
    n_months = T + len(lag)

    # cells: (band, term, mob, remaining term) — identical probabilities in every month
    key, bound = _cell_key(band, term_idx, mob, rem)
    order, starts, cell_n = _cells(key, bound)
    small = cell_n < small_cells * rem[order[starts]]
    if 0 < int(small.sum()) < len(starts):  # small cells last (granular: drawn per loan)
        small_loan = np.empty(n, dtype=np.int64)
        small_loan[order] = np.repeat(small, cell_n)  # back in pool order
        key = key + small_loan * bound  # (small, cell) in lexicographic order
        order, starts, cell_n = _cells(key, 2 * bound)
        small = np.sort(small)
    n_binomial = int((~small).sum())
    cell_first = np.r_[starts, n].astype(np.int64)
    lead = order[starts]
    c_band, c_term, c_mob, c_rem = band[lead], term_idx[lead], mob[lead], rem[lead]
    n_cells = len(starts)

    smm, thr, thr_gauss = cell_probabilities(c_band, c_term, c_mob, c_rem, T, assumptions)

    cell_of = np.repeat(np.arange(n_cells, dtype=np.int32), cell_n)
    loan_level = loan_level or n_binomial < n_cells
    # the offsets of the loans' rows in sched: only for loan-level draws
    loan_base = np.r_[0, np.cumsum(3 * c_rem[cell_of])[:-1]].astype(np.int64) if loan_level \
        else np.zeros(0, dtype=np.int64)
    if schedules == "numba":
        cell_flows, cell_pflows, cell_init, sched, s_sorted = _schedules_numba(
            loans, order, cell_first, cell_of, mob, rem, s, T, loan_base, loan_level)
    else:
        s_sorted = np.take(s, order, axis=0)  # a new C-ordered array; 4x faster than s[order]
        cell_flows, cell_pflows, cell_init, sched = _schedules_numpy(
            loans, order, cell_first, c_rem, mob, rem, s_sorted, T, loan_level)
    initial = float(cell_init.sum())

    return PreparedPool(
        n_loans=n,
        T=T,
        n_months=n_months,
        dates=_pool_dates(loans, n_months),
        initial_balance=initial,
        cell_n=cell_n.astype(np.int64),
        cell_r=c_rem.astype(np.int64),
        n_binomial_cells=n_binomial,
        cell_thr=np.ascontiguousarray(thr, dtype=np.float64),
        cell_thr_gauss=np.ascontiguousarray(thr_gauss, dtype=np.float64),
        cell_smm=np.ascontiguousarray(smm, dtype=np.float64),
        cell_flows=cell_flows,
        cell_pflows=cell_pflows,
        cell_first=cell_first,
        order=order,
        rho=float(assumptions.rho),
        factor_persistence=float(assumptions.factor_persistence),
        copula=assumptions.copula,
        t_dof=float(assumptions.t_dof),
        recovery_rate=float(assumptions.recovery_rate),
        recovery_lag=lag,
        party_ids=party_ids,
        cell_of=cell_of if loan_level else None,
        loan_base=loan_base if loan_level else None,
        sched=sched if loan_level else None,
        shares=s_sorted if loan_level else None,
        loan_sampler=loan_sampler,
        granular_sampler=granular_sampler,
    )


def lifetime_t_quantiles(h: np.ndarray, dof: float) -> np.ndarray:
    """t_ν⁻¹ of the lifetime default curves ``F_t = 1 − Π_{j≤t}(1 − h_j)`` of hazards
    ``h`` (n_cells, T) from the cut-off (−inf before the first default probability, +inf
    once F reaches 1): the t copula's thresholds (``engines.t_copula_pds``). F is taken as
    −expm1(Σ log1p(−h)), accurate for tiny hazards."""
    with np.errstate(divide="ignore"):
        cum = -np.expm1(np.cumsum(np.log1p(-np.minimum(h, 1.0)), axis=1))
        q = stats.t.ppf(cum, dof)
    q = np.where(cum <= 0.0, -np.inf, np.where(cum >= 1.0, np.inf, q))
    return np.ascontiguousarray(q, dtype=np.float64)


def _cell_key(band: np.ndarray, term_idx: np.ndarray, mob: np.ndarray, rem: np.ndarray
              ) -> tuple[np.ndarray, int]:
    """A key per loan whose order is the lexicographic order of (band, term, mob, remaining
    term), and a bound above every key (0 ≤ key < bound).

    Dense (ranges from their minimum) when that bound is small: the same order as the radix
    key ``((band·64 + term)·4096 + mob)·4096 + rem`` (lexicographic while term spans < 64 and
    mob, rem < 4096 values), so the same stable sort and the same cells, but sortable as
    uint16 (:func:`_stable_argsort`)."""
    lo = [int(x.min()) for x in (band, term_idx, mob, rem)]
    width = [int(x.max()) - m + 1 for x, m in zip((band, term_idx, mob, rem), lo, strict=True)]
    if width[1] <= 64 and width[2] <= 4096 and width[3] <= 4096 and \
            math.prod(width) * 2 <= 1 << 16:
        key = (((band - lo[0]) * width[1] + (term_idx - lo[1])) * width[2]
               + (mob - lo[2])) * width[3] + (rem - lo[3])
        return key.astype(np.int64), math.prod(width)
    key = ((band * 64 + term_idx) * 4096 + mob) * 4096 + rem
    return key - int(key.min()), 1 << 40


def _cells(key: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The loans grouped by ``key`` (integers in [0, bound)): ``np.argsort(key,
    kind="stable")`` and the first position and loan count of each distinct key in that
    order. A counting sort (``engines.stable_counting_order``, one pass to count, one to
    place) when the bound is under 2²⁰; else the sort, and the groups where the sorted key
    changes."""
    n = key.shape[0]
    if bound <= 1 << 20:
        order, count = engines.stable_counting_order(key, bound)
        cell_n = count[count > 0]
        return order, np.r_[0, np.cumsum(cell_n)[:-1]].astype(np.int64), cell_n
    order = _stable_argsort(key, bound)
    skey = key[order]
    starts = np.flatnonzero(np.r_[True, skey[1:] != skey[:-1]])
    return order, starts, np.diff(np.r_[starts, n])


def _stable_argsort(key: np.ndarray, bound: int) -> np.ndarray:
    """``np.argsort(key, kind="stable")`` of keys in [0, bound): the same permutation (a
    stable sort depends only on the keys' order), as a radix sort of uint16 when they fit."""
    if bound <= 1 << 16:
        return np.argsort(key.astype(np.uint16), kind="stable")
    return np.argsort(key, kind="stable")


def _month_tables(orig: np.ndarray, mob: np.ndarray, n_months: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Due-date arithmetic of ``schedule_matrix``: per loan the month-table index of its
    period start, the origination day of month − 1 and the period start (days since
    1970); the table of month starts and of month lengths − 1."""
    days = np.asarray(orig).astype("datetime64[D]").astype(np.int64)
    lo = int(days.min())
    span = np.arange(lo, int(days.max()) + 1, dtype=np.int64)  # a lookup table over the dates
    span_month = span.astype("datetime64[D]").astype("datetime64[M]")
    span_dom0 = span - span_month.astype("datetime64[D]").astype(np.int64)
    month0 = span_month.astype(np.int64)[days - lo]
    dom0 = span_dom0[days - lo]
    base = month0 + mob
    first = int(base.min())
    months = np.arange(first, int(base.max()) + n_months + 2, dtype=np.int64)
    table = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    month_start = table[:-1]
    month_last = np.diff(table) - 1
    idx0 = base - first
    start0 = month_start[idx0] + np.minimum(dom0, month_last[idx0])
    return idx0, dom0, start0, month_start, month_last


def _month_table_of(orig: np.ndarray, mob: np.ndarray, n_months: int
                    ) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, int, np.ndarray,
                               np.ndarray]:
    """The tables of :func:`_month_tables` for every loan at once, for
    ``engines.schedule_inputs`` to read per loan: the origination days (days since 1970),
    the first of them, per day from it its month index and day of month − 1; the first
    month of the month table and per month its first day and its length − 1. The month table
    runs from the earliest origination month + the fewest months on book to the latest + the
    most + ``n_months`` + 1, a range holding every loan's (its entries are absolute days, so
    a loan's period starts and due dates are those of :func:`_month_tables` on any subset)."""
    days = np.asarray(orig).astype("datetime64[D]").astype(np.int64)
    lo = int(days.min())
    span = np.arange(lo, int(days.max()) + 1, dtype=np.int64)
    span_m = span.astype("datetime64[D]").astype("datetime64[M]")
    span_dom0 = span - span_m.astype("datetime64[D]").astype(np.int64)
    span_month = span_m.astype(np.int64)
    first = int(span_month[0]) + int(mob.min())
    months = np.arange(first, int(span_month[-1]) + int(mob.max()) + n_months + 2,
                       dtype=np.int64)
    table = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    return days, lo, span_month, span_dom0, first, table[:-1], np.diff(table) - 1


def _schedule_inputs_np(rows: np.ndarray, bal: np.ndarray, apr_all: np.ndarray,
                        p0: np.ndarray, code_all: np.ndarray, rem: np.ndarray, mob: np.ndarray,
                        orig: np.ndarray, n_months: int) -> dict[str, np.ndarray]:
    """The numpy twin of ``engines.schedule_inputs`` (the oracle; the level payment
    included): the per-loan inputs of ``engines.schedule_sums`` for the loans ``rows``, with
    the due-date tables of :func:`_month_tables` of those loans alone."""
    rem_s = rem[rows]
    code = code_all[rows].astype(np.int64)
    apr = apr_all[rows]
    b0 = _round_half_up(bal[rows] * 100.0)
    r = apr / 12.0
    rem_f = np.maximum(rem_s, 1).astype(np.float64)
    is_la = code == RepaymentType.LEVEL_ANNUITY.code
    is_ff = code == RepaymentType.FLAT_FEE.code
    is_ep = (code == RepaymentType.EQUAL_PRINCIPAL.code) | is_ff
    is_di = code == RepaymentType.DAILY_INTEREST.code
    level = np.where(is_la, _round_half_up(_annuity_payment(b0, r, rem_f)), 0.0)
    flat = np.where(is_ep, np.floor(b0 / rem_f), 0.0)
    apr_di = np.where(is_di, apr, 0.0)
    # a flat-fee loan's income is a fixed fee on its original principal (schedule_matrix)
    fee = np.where(is_ff, flat_fee_cents(p0[rows], apr), 0.0) if is_ff.any() \
        else np.zeros(len(apr))
    idx0, dom0, start0, month_start, _ = _month_tables(orig[rows], mob[rows], n_months)
    # the first day of each loan's period-start month (absolute days: the kernel's table
    # starts at another month, its idx0 counts from there)
    return {"b0": b0, "rate_raw": r, "rate_m": np.where(is_ff, 0.0, r), "apr_di": apr_di,
            "is_la": is_la, "is_di": is_di, "level": level, "flat": flat, "fee": fee,
            "rem_s": rem_s, "rem_f": rem_f, "dom0": dom0, "start0": start0,
            "period_start_day": month_start[idx0]}


def _schedules_numba(loans: LoanArrays, order: np.ndarray, cell_first: np.ndarray,
                     cell_of: np.ndarray, mob: np.ndarray, rem: np.ndarray, s: np.ndarray,
                     T: int, loan_base: np.ndarray, loan_level: bool
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``engines.schedule_sums`` on two halves of the cells, each on its own thread from the
    gather of its loans (cell-major order) to its sums, a chunk of whole cells of about
    ``SCHEDULE_CHUNK`` loans at a time: the per-loan inputs are elementwise, so a chunk's are
    those rows of the whole's, and every cell's sums receive its loans in order (the same
    numbers; disjoint cells, no shared writes). Also returns the shares in cell-major order
    (``s`` is in pool order) when ``loan_level`` (else an empty array)."""
    n_cells = cell_first.shape[0] - 1
    n_parties = s.shape[1]
    code_all = np.asarray(loans.repayment_type)
    apr_all = np.asarray(loans.apr, dtype=np.float64)
    bal_all = np.asarray(loans.balance, dtype=np.float64)
    p0_all = np.asarray(loans.principal, dtype=np.float64)
    days, day_lo, span_month, span_dom0, first, month_start, month_last = _month_table_of(
        np.asarray(loans.origination_date), mob, T)
    codes = (RepaymentType.LEVEL_ANNUITY.code, RepaymentType.FLAT_FEE.code,
             RepaymentType.EQUAL_PRINCIPAL.code, RepaymentType.DAILY_INTEREST.code)
    cell_flows = np.zeros((n_cells, T, 3))
    cell_pflows = np.zeros((n_cells, n_parties, T, 3))
    cell_init = np.zeros(n_cells)
    sched = np.zeros(int(3 * rem.sum()) if loan_level else 0)
    # the shares in cell-major order: kept for loan-level draws, else only a chunk's at a time
    s_sorted = np.empty((order.shape[0] if loan_level else 0, n_parties))
    split = int(np.searchsorted(cell_first, cell_first[-1] // 2))
    ranges = [(0, split), (split, n_cells)] if 0 < split < n_cells else [(0, n_cells)]

    def run(c_range: tuple[int, int]) -> None:
        # chunks of whole cells of about SCHEDULE_CHUNK loans, their inputs in buffers
        # reused from chunk to chunk (in the cache while the sums read them; no fresh pages
        # for a million loans' temporaries)
        c_lo, c_hi = c_range
        size = min(int(cell_first[c_hi] - cell_first[c_lo]),
                   max(SCHEDULE_CHUNK, int(np.diff(cell_first[c_lo:c_hi + 1]).max(initial=0))))
        f64 = [np.empty(size) for _ in range(7)]
        i64 = [np.empty(size, dtype=np.int64) for _ in range(4)]
        flags = [np.empty(size, dtype=np.bool_) for _ in range(2)]
        s_buf = np.empty((0 if loan_level else size, n_parties))
        c = c_lo
        while c < c_hi:
            # the cells from c whose loans fit in the chunk (at least cell c)
            c_end = max(c + 1, min(c_hi, int(np.searchsorted(
                cell_first, cell_first[c] + size, side="right")) - 1))
            lo, hi = int(cell_first[c]), int(cell_first[c_end])
            rows = order[lo:hi]
            n_rows = hi - lo
            s_rows = s_sorted[lo:hi] if loan_level else s_buf[:n_rows]
            # C-ordered rows (4x faster than s[rows]); "clip" leaves out unbuffered (rows are
            # valid)
            np.take(s, rows, axis=0, out=s_rows, mode="clip")
            b0, r_raw, r, apr_di, flat, fee, rem_f = (a[:n_rows] for a in f64)
            rem_s, start0, dom0, idx0 = (a[:n_rows] for a in i64)
            is_la, is_di = (a[:n_rows] for a in flags)
            # the gathers and elementwise inputs in one pass (schedule_inputs; its numpy twin
            # _schedule_inputs_np), the level payment with numpy's expm1/log1p
            engines.schedule_inputs(rows, bal_all, apr_all, p0_all, code_all, rem, mob, days,
                                    day_lo, span_month, span_dom0, first, month_start,
                                    month_last, *codes, 0.5 + _HALF_UP_NUDGE, b0, r_raw, r,
                                    apr_di, is_la, is_di, flat, fee, rem_s, rem_f, start0, dom0,
                                    idx0)
            level = np.where(is_la, _round_half_up(_annuity_payment(b0, r_raw, rem_f)), 0.0)
            engines.schedule_sums(c, c_end, cell_first - lo, cell_of[lo:hi], b0, r, apr_di,
                                  is_di, level, flat, fee, rem_s, start0, dom0, idx0,
                                  month_start, month_last, True, s_rows, cell_flows,
                                  cell_pflows, sched, loan_base[lo:hi], cell_init)
            c = c_end

    if len(ranges) == 1:
        run(ranges[0])
    else:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(run, ranges))
    return cell_flows, cell_pflows, cell_init, sched, s_sorted


def _schedules_numpy(loans: LoanArrays, order: np.ndarray, cell_first: np.ndarray,
                     c_rem: np.ndarray, mob: np.ndarray, rem: np.ndarray, s_sorted: np.ndarray,
                     T: int, loan_level: bool
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The oracle: ``schedule_matrix`` on chunks of cells, summed per cell."""
    n_cells = cell_first.shape[0] - 1
    n_parties = s_sorted.shape[1]
    cell_flows = np.zeros((n_cells, T, 3))
    cell_pflows = np.zeros((n_cells, n_parties, T, 3))
    cell_init = np.zeros(n_cells)
    columns = (np.asarray(loans.balance, dtype=np.float64), np.asarray(loans.apr, dtype=np.float64),
               rem, np.asarray(loans.repayment_type), np.asarray(loans.origination_date), mob,
               np.asarray(loans.principal, dtype=np.float64))
    sched_parts: list[np.ndarray] = []
    c0 = 0
    while c0 < n_cells:
        c1 = c0 + 1
        while c1 < n_cells and cell_first[c1 + 1] - cell_first[c0] <= _SCHEDULE_CHUNK:
            c1 += 1
        lo, hi = cell_first[c0], cell_first[c1]
        rows = order[lo:hi]
        t_chunk = int(c_rem[c0:c1].max())
        bal, apr, rem_, rtype, orig, mob_, p0 = (col[rows] for col in columns)
        sm = schedule_matrix(bal, apr, rem_, rtype, orig, months_on_book=mob_, n_months=t_chunk,
                             original_principal=p0)
        flows = np.empty((hi - lo, t_chunk, 3))
        flows[:, :, 0] = sm.principal + sm.balance
        flows[:, :, 1] = sm.interest
        flows[:, :, 2] = sm.principal
        seg = cell_first[c0:c1] - lo
        cell_flows[c0:c1, :t_chunk] = np.add.reduceat(flows, seg, axis=0)
        cell_init[c0:c1] = np.add.reduceat(flows[:, 0, 0], seg)
        for q in range(n_parties):
            w = s_sorted[lo:hi, q][:, None, None]
            cell_pflows[c0:c1, q, :t_chunk] = np.add.reduceat(flows * w, seg, axis=0)
        if loan_level:
            for c in range(c0, c1):
                a, b = cell_first[c] - lo, cell_first[c + 1] - lo
                sched_parts.append(np.ascontiguousarray(flows[a:b, : c_rem[c]]).ravel())
        c0 = c1
    sched = np.concatenate(sched_parts) if loan_level else np.zeros(0)
    return cell_flows, cell_pflows, cell_init, sched


# ------------------------------------------------------------------------------------------
# Seeds and blocks


def root_seed(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValidationError(must_be("seed", "a non-negative integer or a SeedSequence", seed))
    return np.random.SeedSequence(int(seed))


def check_count(name: str, value: object) -> None:
    """``value`` (``n_paths``, ``batch_size``...) must be an integer >= 1 (not a bool); else a
    :class:`ValidationError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValidationError(must_be(name, "an integer >= 1", value))


def block_layout(n_paths: int) -> list[tuple[int, int]]:
    """Canonical blocks ``(first path, n paths)`` of ``BLOCK_PATHS`` (the last may be short)."""
    return [(s, min(BLOCK_PATHS, n_paths - s)) for s in range(0, n_paths, BLOCK_PATHS)]


def run_block_tasks(n_paths: int, run_block: Callable[[int, int, int], None],
                    batch_size: int = 1000, threads: int | None = None,
                    progress: Callable[[float], None] | None = None) -> None:
    """``run_block(block_index, first_path, n_paths_of_block)`` once for every canonical block
    of ``n_paths`` (:func:`block_layout`), on local threads.

    On threads a task per block: each thread takes the next block, so both stay busy to the
    end (batches of several blocks left one thread idle for up to a batch); one thread runs
    batches of ``batch_size`` paths rounded up to whole blocks, ``progress`` (the share of
    paths done) called after each batch. Each block has its own seed and writes only its own
    rows of the result, so the grouping never changes a number."""
    blocks = block_layout(n_paths)
    n_workers = max(1, min(threads or settings.threads(), len(blocks)))
    per_batch = 1 if n_workers > 1 else max(1, -(-batch_size // BLOCK_PATHS))
    batches = [list(range(i, min(i + per_batch, len(blocks))))
               for i in range(0, len(blocks), per_batch)]
    done = [0]
    lock = threading.Lock()

    def run(batch: Sequence[int]) -> None:
        for b in batch:
            run_block(b, *blocks[b])
        if progress is not None:
            with lock:
                done[0] += sum(blocks[b][1] for b in batch)
                progress(done[0] / n_paths)

    if n_workers == 1:
        for batch in batches:
            run(batch)
    else:
        with ThreadPoolExecutor(n_workers) as pool:
            for fut in [pool.submit(run, batch) for batch in batches]:
                fut.result()


def block_seed(root: np.random.SeedSequence, block_index: int) -> np.random.SeedSequence:
    """The child seed of block ``block_index`` (same as ``root.spawn``'s, without mutating)."""
    return np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, int(block_index)),
                                  pool_size=root.pool_size)


def _block_streams(seed: np.random.SeedSequence) -> tuple[np.random.Generator, ...]:
    factor, mixing, idio = (
        np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, k),
                               pool_size=seed.pool_size)
        for k in range(3)
    )
    return tuple(np.random.Generator(np.random.PCG64(s)) for s in (factor, mixing, idio))


def factor_paths(prep: PreparedPool, gen_factor: np.random.Generator,
                 gen_mixing: np.random.Generator, n_b: int) -> tuple[np.ndarray, np.ndarray]:
    """(Z (n_b, T), scale (n_b,)): AR(1) unit-variance factor; t-copula √(W/ν) or ones."""
    T = prep.T
    eps = gen_factor.standard_normal((n_b, T))
    phi = prep.factor_persistence
    z = np.empty_like(eps)
    if T:
        z[:, 0] = eps[:, 0]
        c = math.sqrt(1.0 - phi * phi)
        for t in range(1, T):
            z[:, t] = phi * z[:, t - 1] + c * eps[:, t]
    if prep.copula == "t":
        scale = np.sqrt(gen_mixing.chisquare(prep.t_dof, n_b) / prep.t_dof)
    else:
        scale = np.ones(n_b)
    return z, scale


# ------------------------------------------------------------------------------------------
# One block of paths


@dataclass(frozen=True, slots=True)
class PathBatch:
    """One block's result: ``flows`` (n_b, n_months, 5) columns bop, interest, scheduled
    principal, prepayment, default (recoveries and end balances are derived when assembling);
    ``party_flows`` (n_parties, n_b, n_months, 5)."""

    block_index: int
    flows: np.ndarray
    party_flows: np.ndarray


def simulate_batch(
    prep: PreparedPool,
    block_index: int,
    seed: np.random.SeedSequence,
    n_paths: int,
    engine: Engine = "granular",
    backend: Literal["numba", "numpy"] = "numba",
    factor: tuple[np.ndarray, np.ndarray] | None = None,
) -> PathBatch:
    """Paths of one canonical block: a pure function of (prepared pool, block index, its
    child seed, number of paths). ``backend="numpy"`` runs the plain-numpy twin (the
    oracle; slow). ``factor`` = (Z (n_paths, prep.T), scale (n_paths,)) replaces the block's
    own factor draws (``portfolio.montecarlo.replenishment`` reuses a run's factor paths); the
    idiosyncratic stream is the seed's either way."""
    acc, pacc = block_accumulators(prep, seed, n_paths, engine, backend, factor)
    T, n_q = prep.T, prep.n_parties
    flows = np.zeros((n_paths, prep.n_months, engines.N_ACC))
    flows[:, :T] = acc
    pflows = np.zeros((n_q, n_paths, prep.n_months, engines.N_ACC))
    pflows[:, :, :T] = pacc
    return PathBatch(block_index, flows, pflows)


def block_accumulators(
    prep: PreparedPool,
    seed: np.random.SeedSequence,
    n_paths: int,
    engine: Engine = "granular",
    backend: Literal["numba", "numpy"] = "numba",
    factor: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One block's accumulators (n_paths, T, 5) and per party (n_parties, n_paths, T, 5):
    what :func:`simulate_batch` returns before padding them to ``prep.n_months`` (same
    arguments; the block index is only the result's label)."""
    if engine not in ENGINES:
        raise ValidationError(must_be("engine", "'granular' or 'loan'", engine))
    gen_factor, gen_mixing, gen_idio = _block_streams(seed)
    if factor is None:
        z, scale = factor_paths(prep, gen_factor, gen_mixing, n_paths)
    else:
        z, scale = (np.ascontiguousarray(a, dtype=np.float64) for a in factor)
    T, n_q = prep.T, prep.n_parties
    acc = np.zeros((n_paths, T, engines.N_ACC))
    pacc = np.zeros((n_q, n_paths, T, engines.N_ACC))
    thr_s, zb = engines.scaled_inputs(prep.cell_thr, z, prep.rho)
    t_q = prep.cell_thr if prep.copula == "t" else engines.NO_T
    kf = 1.0 / (math.sqrt(1.0 - prep.rho) * math.sqrt(2.0))
    if engine == "granular":
        nb = prep.n_binomial_cells
        cells = (prep.cell_n[:nb], prep.cell_r[:nb], thr_s[:nb], prep.cell_smm[:nb],
                 prep.cell_flows[:nb], prep.cell_pflows[:nb], acc, pacc, t_q[:nb], kf)
        if prep.granular_sampler == lanes.GRANULAR_SAMPLER:
            if nb > 0:  # no binomial cells: no streams drawn for them
                _granular_lanes(zb, scale, gen_idio, cells, backend)
        elif backend == "numba":
            engines.granular_block(zb, scale, gen_idio, *cells)
        else:
            engines.granular_block_np(zb, scale, gen_idio, *cells)
        if nb < prep.n_cells:
            _loan_level_draws(prep, nb, zb, scale, thr_s, t_q, kf, gen_idio, acc, pacc,
                              backend)
    elif prep.loan_sampler == LEGACY_LOAN_SAMPLER:
        _loan_level_draws(prep, 0, zb, scale, thr_s, t_q, kf, gen_idio, acc, pacc, backend)
    else:
        _loan_engine_draws(prep, zb, scale, thr_s, t_q, kf, gen_idio, acc, pacc, backend)
    return acc, pacc


def _granular_lanes(zb: np.ndarray, scale: np.ndarray, gen_idio: np.random.Generator,
                    cells: tuple, backend: str) -> None:
    """The binomial cells' draws with the paths side by side (``lanes.granular_lanes_block``,
    sampler ``lanes.GRANULAR_SAMPLER``): every path its own SFC64 stream, the next 4 words of
    the block's idiosyncratic stream, path after path; the small cells' loan-level draws
    then continue from that stream."""
    n = zb.shape[0]
    seeds = lanes.lane_seeds(gen_idio, n)
    n_pad = seeds.shape[1]
    args = (seeds, n, lanes.padded(zb, n_pad, 0.0), lanes.padded(scale, n_pad, 1.0), *cells,
            lanes.PD_TABLE_MAX_BYTES)
    if backend == "numba":
        lanes.granular_lanes_block(*args)
    else:
        lanes.granular_lanes_block_np(*args)


def _loan_level_draws(prep: PreparedPool, c0: int, zb: np.ndarray, scale: np.ndarray,
                      thr_s: np.ndarray, t_q: np.ndarray, kf: float,
                      gen_idio: np.random.Generator, acc: np.ndarray, pacc: np.ndarray,
                      backend: str) -> None:
    """Loan-by-loan draws for the cells ``c0 ..`` (the granular engine's small cells), one
    float32 uniform per loan and path (``engines.loan_block``), accumulated into
    ``acc``/``pacc``."""
    if prep.sched is None or prep.loan_base is None or prep.shares is None \
            or prep.cell_of is None:
        raise ValueError("loan-level draws need prepare_pool(..., loan_level=True)")
    n_paths, T = acc.shape[0], prep.T
    cum = np.zeros((prep.n_cells - c0, n_paths, 2 * max(T, 1)))
    total = np.zeros((prep.n_cells - c0, n_paths))
    cdf_args = (zb, scale, prep.cell_r[c0:], thr_s[c0:], prep.cell_smm[c0:], cum, total,
                t_q[c0:], kf)
    if backend == "numba":
        engines.event_cdfs(*cdf_args)
    else:
        engines.event_cdfs_np(*cdf_args)
    # one uniform per (path, loan): canonical chunks of LOAN_CHUNK loans from the first loan
    # of cell c0, each drawn as an (n_paths, chunk) array from the idiosyncratic stream
    # into one reused buffer (numpy's Generator.random(out=..., dtype=np.float32))
    first = int(prep.cell_first[c0])
    u = np.empty((n_paths, min(LOAN_CHUNK, prep.n_loans - first)), dtype=np.float32)
    for l0 in range(first, prep.n_loans, LOAN_CHUNK):
        l1 = min(prep.n_loans, l0 + LOAN_CHUNK)
        uu = u[:, : l1 - l0] if l1 - l0 == u.shape[1] else np.empty((n_paths, l1 - l0),
                                                                     dtype=np.float32)
        gen_idio.random(out=uu, dtype=np.float32)
        largs = (uu, l0, c0, prep.cell_of, prep.loan_base, prep.cell_r[c0:], cum, total,
                 prep.sched, prep.shares, acc, pacc)
        if backend == "numba":
            engines.loan_block(*largs)
        else:
            engines.loan_block_np(*largs)
    acc[:, :, :3] += prep.cell_flows[c0:].sum(axis=0)[None]
    if prep.n_parties:
        pacc[:, :, :, :3] += prep.cell_pflows[c0:].sum(axis=0)[:, None]


def _loan_engine_draws(prep: PreparedPool, zb: np.ndarray, scale: np.ndarray,
                       thr_s: np.ndarray, t_q: np.ndarray, kf: float,
                       gen_idio: np.random.Generator, acc: np.ndarray, pacc: np.ndarray,
                       backend: str) -> None:
    """The loan engine: every loan drawn on every path of the block by
    ``engines.loan_subset_block`` (a binomial count of the loans with an event per run of
    ``engines.LOAN_TILE`` loans of a cell, then which ones and their event months),
    accumulated into ``acc``/``pacc``."""
    if prep.sched is None or prep.loan_base is None or prep.shares is None:
        raise ValueError("the loan engine needs prepare_pool(..., loan_level=True)")
    n_paths, T = acc.shape[0], prep.T
    cum = np.zeros((prep.n_cells, n_paths, 2 * max(T, 1)))
    total = np.zeros((prep.n_cells, n_paths))
    cdf_args = (zb, scale, prep.cell_r, thr_s, prep.cell_smm, cum, total, t_q, kf)
    if backend == "numba":
        engines.event_cdfs(*cdf_args)
    else:
        engines.event_cdfs_np(*cdf_args)
    args = (gen_idio, engines.LOAN_TILE, prep.cell_first, prep.cell_r, cum, total, prep.sched,
            prep.loan_base, prep.shares, acc, pacc)
    if backend == "numba":
        engines.loan_subset_block(*args)
    else:
        engines.loan_subset_block_np(*args)
    acc[:, :, :3] += prep.cell_flows.sum(axis=0)[None]
    if prep.n_parties:
        pacc[:, :, :, :3] += prep.cell_pflows.sum(axis=0)[:, None]


# ------------------------------------------------------------------------------------------
# Assembling PoolPaths


def _finish(acc: np.ndarray, recovery_rate: float, lag: np.ndarray) -> dict[str, np.ndarray]:
    """From (..., n_months, 5) accumulators to the PoolPaths flow arrays."""
    flows = finish_flows(*(acc[..., k] for k in range(engines.N_ACC)),
                         recovery_rate=recovery_rate, lag=lag)
    return {k: np.ascontiguousarray(v) for k, v in flows.items()}


def finish_flows(bop: np.ndarray, interest: np.ndarray, princ: np.ndarray, prepay: np.ndarray,
                 default: np.ndarray, *, recovery_rate: float, lag: np.ndarray
                 ) -> dict[str, np.ndarray]:
    """The PoolPaths flow arrays from the accumulated bop, interest, scheduled principal,
    prepayment and default (any leading shape, months last; the inputs are returned as they
    are): recoveries ``recovery_rate × lag[k]`` of each default k + 1 months later, and the
    end balance, with float dust below 1e-6 set to 0."""
    recovery = np.zeros_like(default)
    n_months = default.shape[-1]
    for k, share in enumerate(lag):
        if share > 0 and k + 1 < n_months:
            recovery[..., k + 1:] += (recovery_rate * share) * default[..., : n_months - k - 1]
    eop = bop - princ  # then minus prepay, minus default: (bop - princ - prepay) - default
    eop -= prepay
    eop -= default
    # exact zeros where float cancellation leaves dust (e.g. 1e-10 after a full payoff)
    eop[np.abs(eop) < 1e-6] = 0.0
    return {
        "balance_bop": bop,
        "interest": interest,
        "scheduled_principal": princ,
        "prepayment": prepay,
        "default": default,
        "recovery": recovery,
        "balance_eop": eop,
    }


def _assemble(prep: PreparedPool, acc: np.ndarray, pacc: np.ndarray,
              entropy: int | None) -> PoolPaths:
    flows: dict[str, Any] = _finish(acc, prep.recovery_rate, prep.recovery_lag)
    party_flows = _finish(pacc, prep.recovery_rate, prep.recovery_lag) if prep.n_parties else {}
    return PoolPaths(dates=prep.dates, initial_balance=prep.initial_balance,
                     seed_entropy=entropy, party_ids=prep.party_ids, party_flows=party_flows,
                     **flows)


def expected_projection(prep: PreparedPool, z_path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Conditional expectation given a fixed factor path (Gaussian hazard): (1, n_months, 5)
    and (n_parties, 1, n_months, 5) accumulators."""
    T = prep.T
    thr_s, zb = engines.scaled_inputs(prep.cell_thr_gauss, z_path[None, :T], prep.rho)
    pd = engines.cond_pd_np(thr_s, 1.0, zb)
    pd = np.where(np.isfinite(prep.cell_thr_gauss), pd, 0.0)
    frac = np.ones(prep.n_cells)
    f = np.zeros((prep.n_cells, T, engines.N_ACC))
    for t in range(T):
        p, s = pd[:, t], prep.cell_smm[:, t]
        perf = frac * (1 - p)
        f[:, t, engines.BOP] = frac
        f[:, t, engines.INTEREST] = perf
        f[:, t, engines.PRINCIPAL] = perf
        f[:, t, engines.DEFAULT] = frac * p
        f[:, t, engines.PREPAY] = perf * s
        frac = perf * (1 - s)
    def apply(flows: np.ndarray) -> np.ndarray:  # flows (n_cells, T, 3)
        out = np.zeros((1, prep.n_months, engines.N_ACC))
        b, i, pr = flows[..., 0], flows[..., 1], flows[..., 2]
        out[0, :T, engines.BOP] = (f[..., 0] * b).sum(0)
        out[0, :T, engines.INTEREST] = (f[..., 1] * i).sum(0)
        out[0, :T, engines.PRINCIPAL] = (f[..., 2] * pr).sum(0)
        out[0, :T, engines.PREPAY] = (f[..., 3] * (b - pr)).sum(0)
        out[0, :T, engines.DEFAULT] = (f[..., 4] * b).sum(0)
        return out
    acc = apply(prep.cell_flows)
    pacc = np.zeros((prep.n_parties, 1, prep.n_months, engines.N_ACC))
    for q in range(prep.n_parties):
        pacc[q] = apply(prep.cell_pflows[:, q])
    return acc, pacc


def _z_path(deterministic_z: np.ndarray | float, T: int) -> np.ndarray:
    z = np.asarray(deterministic_z, dtype=np.float64)
    if z.ndim == 0:
        z = np.full(T, float(z))
    if z.ndim != 1 or z.shape[0] < T or not np.all(np.isfinite(z)):
        raise ValidationError(must_be("deterministic_z", f"a finite number or {T} finite "
                                      "monthly values", f"shape {z.shape}"))
    return z[:T]


def simulate(
    loans: LoanArrays,
    assumptions: Assumptions,
    n_paths: int,
    seed: int | np.random.SeedSequence,
    engine: Engine = "granular",
    batch_size: int = 1000,
    shares: np.ndarray | None = None,
    party_ids: tuple[str, ...] = (),
    deterministic_z: np.ndarray | float | None = None,
    progress: Callable[[float], None] | None = None,
    threads: int | None = None,
    loan_sampler: str = engines.LOAN_SAMPLER,
) -> PoolPaths:
    """Project ``loans`` under ``assumptions`` on ``n_paths`` correlated scenarios.

    ``shares`` (n_loans, n_parties) splits every loan between parties (rows sum to 1); the
    result then carries ``party_flows`` that sum to the pool flows on every path.
    ``deterministic_z`` gives the single-path conditional expectation for that factor path
    (``n_paths`` and ``seed`` then only get validated). ``threads`` (default: the
    CPU count) run blocks in parallel; the numbers do not depend on it nor on ``batch_size``.
    ``loan_sampler``: the loan engine's draw (``LOAN_SAMPLERS``; a replay of a run recorded
    with the earlier one passes ``LEGACY_LOAN_SAMPLER``).
    """
    if engine not in ENGINES:
        raise ValidationError(must_be("engine", "'granular' or 'loan'", engine))
    check_count("n_paths", n_paths)
    check_count("batch_size", batch_size)
    root = root_seed(seed)
    entropy = _entropy(root)
    loan_level = engine == "loan" and deterministic_z is None
    prep = prepare_pool(loans, assumptions, shares, party_ids, loan_level=loan_level,
                        loan_sampler=loan_sampler)
    if deterministic_z is not None:
        acc, pacc = expected_projection(prep, _z_path(deterministic_z, prep.T))
        if progress is not None:
            progress(1.0)
        return _assemble(prep, acc, pacc, entropy)
    return run_blocks(prep, root, int(n_paths), engine, int(batch_size), progress, threads)


def run_blocks(
    prep: PreparedPool,
    root: np.random.SeedSequence,
    n_paths: int,
    engine: Engine,
    batch_size: int = 1000,
    progress: Callable[[float], None] | None = None,
    threads: int | None = None,
) -> PoolPaths:
    """Run every canonical block locally (threads: :func:`run_block_tasks`) and assemble the
    paths."""
    # each block's flows are finished (recoveries, end balance) on its thread, straight into
    # its rows of the result: elementwise per path, so the same numbers as finishing the whole
    flows: dict[str, Any] = {k: np.empty((n_paths, prep.n_months)) for k in FLOW_NAMES}
    party_flows = {k: np.empty((prep.n_parties, n_paths, prep.n_months)) for k in FLOW_NAMES} \
        if prep.n_parties else {}

    def run_block(b: int, start: int, n_b: int) -> None:
        acc, pacc = block_accumulators(prep, block_seed(root, b), n_b, engine)
        finish_block_rows(flows, start, acc, prep)
        for q in range(prep.n_parties):
            finish_block_rows({k: v[q] for k, v in party_flows.items()}, start, pacc[q], prep)

    run_block_tasks(n_paths, run_block, batch_size, threads, progress)
    return PoolPaths(dates=prep.dates, initial_balance=prep.initial_balance,
                     seed_entropy=_entropy(root), party_ids=prep.party_ids,
                     party_flows=party_flows, **flows)


def finish_block_rows(out: dict[str, np.ndarray], start: int, acc: np.ndarray, prep: PreparedPool,
                backend: Literal["numba", "numpy"] = "numba") -> None:
    """Finish one block's accumulators ``acc`` (n_b, T, 5) into rows ``start .. start + n_b``
    of the result's flow arrays ``out`` (``FLOW_NAMES``, (n_paths, n_months) each): the
    numbers :func:`finish_flows` gives for the accumulators zero-padded to n_months
    (``engines.finish_block``, one pass, each row written once; ``backend="numpy"``: that
    padding and :func:`finish_flows`, its twin)."""
    if backend == "numba":
        engines.finish_block(acc, float(prep.recovery_rate), prep.recovery_lag, int(start),
                             *(out[k] for k in FLOW_NAMES))
        return
    padded = np.zeros((acc.shape[0], prep.n_months, engines.N_ACC))
    padded[:, :acc.shape[1]] = acc
    flows = finish_flows(*(padded[..., k] for k in range(engines.N_ACC)),
                         recovery_rate=prep.recovery_rate, lag=prep.recovery_lag)
    for k, v in flows.items():
        out[k][start:start + acc.shape[0]] = v


def _entropy(root: np.random.SeedSequence) -> int | None:
    return int(root.entropy) if isinstance(root.entropy, int | np.integer) else None


def assemble_paths(prep: PreparedPool, batches: Sequence[PathBatch], n_paths: int,
                   root: np.random.SeedSequence) -> PoolPaths:
    """``PoolPaths`` from the block results of a run (any order; e.g. gathered from Dask
    workers that ran :func:`simulate_batch` for every block of ``block_layout(n_paths)``
    with ``block_seed(root, b)``). The same numbers as :func:`simulate` with that seed."""
    blocks = block_layout(n_paths)
    seen = sorted(b.block_index for b in batches)
    if seen != list(range(len(blocks))):
        raise ValueError(f"need one result per block 0..{len(blocks) - 1}; got {seen}")
    acc = np.zeros((n_paths, prep.n_months, engines.N_ACC))
    pacc = np.zeros((prep.n_parties, n_paths, prep.n_months, engines.N_ACC))
    for res in batches:
        start, n_b = blocks[res.block_index]
        acc[start:start + n_b] = res.flows
        pacc[:, start:start + n_b] = res.party_flows
    return _assemble(prep, acc, pacc, _entropy(root))


# ------------------------------------------------------------------------------------------
# Loss distribution


def loss_distribution(paths: PoolPaths | np.ndarray, levels: Sequence[float] = LOSS_LEVELS,
                      initial_balance: float | None = None) -> LossStats:
    """EL, VaR and ES of the pool loss at ``levels``, each with its Monte Carlo SE
    (``portfolio.risk.loss_stats`` of ``paths.loss``)."""
    if isinstance(paths, PoolPaths):
        loss = paths.loss
        initial = paths.initial_balance
    else:
        loss = np.asarray(paths, dtype=np.float64)
        initial = 0.0
    if initial_balance is not None:
        initial = initial_balance
    return loss_stats(loss, levels, initial)


FLOWS: tuple[str, ...] = FLOW_NAMES
