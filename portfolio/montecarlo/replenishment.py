"""Replenishment profile of a revolving deal: how one unit of NEW loans bought at par performs.

During a revolving period the principal collections buy new loans "from the same criteria and
cell mix" (issue 4 §1). A short-tenor consumer pool (3–12-month loans) has almost fully
amortised after a 12-month revolving period, so the purchased loans cannot be modelled as more
of the seasoned pool: they are fresh loans with full schedules. This module builds them and
projects them on the run's factor paths; ``tranching.waterfall.run_waterfall(deal, paths,
replenishment=profile)`` then adds, for a purchase of P at month s, P × (flow per unit of
initial balance of the vintage bought at month s, at age t − s − 1) to every pool flow of
month t > s, path by path.

* :func:`replenishment_loans` — every pool loan as a new loan of the same cell: months on book
  0, **balance = its original principal** (the loan as it was originated, so the mix by
  score band × term × repayment type × APR is the pool's origination mix; the cut-off balance
  would over-weight the longest, least seasoned loans), remaining term = original term,
  originated at the cut-off, first instalment one month later.
* :func:`simulate_replenishment` — projects those loans with the main run's assumptions on
  its factor paths (as many paths), one vintage per revolving month: each vintage's flows
  on a path are their **conditional expectation given that path's factor** (and t mixing
  value), ``engines.expected_vintages`` (run as ``engines.vintage_block``, which also
  finishes each block's recoveries and end balances). The new loans are prepared by
  :func:`prepare_new_loans`: ``prepare_pool``'s cells and sums, each distinct schedule
  computed once (a new loan's schedule depends on its balance, APR, term, repayment type
  and principal alone).
* Without the loans (a loan tape read by Dask workers): :func:`replenishment_part_cells` turns
  one partition into its new loans' cells, and :func:`replenishment_from_cells` projects the
  merged cells as :func:`simulate_replenishment` does (equal to float rounding: the cells'
  schedules are summed partition by partition); :func:`profile_from_cells` keeps the merged
  cells and computes any range of the run's canonical blocks on demand
  (:class:`ProfileFromCells`, the same bytes as those rows of the whole).

Under the delinquency-state model (``model="delinquency"``) the vintages are the
delinquency kernels' conditional expectation (``delinquency.expected_dq_vintage``) and carry
their balances by state (docs/model.md section 7); a numba loop over cells, months and
paths (paths innermost), written column first into one array per profile, blocks on threads.

Randomness (the same seed gives the same numbers, and the main run's numbers are untouched):

* **Factor paths are the run's, on the calendar.** Block b of the profile uses the systematic
  factor (and, with a t copula, the mixing variable) that block b of the main run drew from
  ``block_seed(root, b)``. The profile has **one vintage per purchase month** s = 0 … R − 1
  (R = the deal's revolving months; :class:`~portfolio.montecarlo.paths.ReplenishmentProfile`):
  the loans bought at the end of month s live from month s + 1 on, so vintage s's month a is
  driven by the run's Z_{s+1+a} — a purchase sees the factor of the calendar months it lives
  through, not of its age. Where the run's factor ends (its longest remaining term), the
  AR(1) is continued with fresh innovations to month R + the new loans' longest term. Every
  vintage uses the same new loans and schedules (those of the loans bought at the cut-off;
  a daily-interest loan's day counts are the cut-off vintage's).
* **No idiosyncratic draws.** A vintage is projected at its conditional expectation given
  the path's factor — the large-pool limit of the engines' draws (the mean of the granular
  engine's exact binomial counts given the factor, tested). The systematic risk of the
  purchases, which is what moves a deal's tranches, is kept month by month; the
  idiosyncratic spread of the bought loans (of order 1/√N for a purchase of N loans, and
  unknown before the waterfall sizes the purchases) is left out. Drawing it would cost a
  full simulation per revolving month (12 for a 12-month revolving period). Both engines
  give the same profile. The AR(1) continuation draws its innovations from a dedicated
  child of the run's seed, ``SeedSequence(entropy, spawn_key=root.spawn_key +
  (REPLENISHMENT_KEY, b))`` for block b (the main run's blocks use ``spawn_key + (b,)``
  with b < 3,907 for at most 1,000,000 paths, so the streams never collide).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import mmap
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np

from portfolio import settings
from portfolio.errors import ValidationError, must_be
from portfolio.loans.arrays import LoanArrays
from portfolio.loans.schedules import add_months
from portfolio.montecarlo import engines
from portfolio.montecarlo.assumptions import Assumptions
from portfolio.montecarlo.delinquency import (
    accumulator_shapes,
    assemble_delinquency,
    dq_shapes,
    expected_dq_tables,
    expected_dq_vintages_into,
    new_accumulators,
    prepare_delinquency,
)
from portfolio.montecarlo.paths import PoolPaths, ReplenishmentProfile
from portfolio.montecarlo.simulation import (
    BLOCK_PATHS,
    ENGINES,
    SMALL_CELL_FACTOR,
    Engine,
    PreparedPool,
    _assemble,
    _block_streams,
    _cell_key,
    _cells,
    _entropy,
    _pool_dates,
    _schedules_numba,
    _validate_loans,
    _z_path,
    block_layout,
    block_seed,
    cell_probabilities,
    expected_projection,
    factor_paths,
    finish_flows,
    prepare_pool,
    root_seed,
)
from portfolio.montecarlo.summaries import PartCells, merge_cells, part_cells

__all__ = ["REPLENISHMENT_KEY", "ProfileFromCells", "ReplenishmentProfile", "default_cutoff",
           "prepare_new_loans", "profile_from_cells", "replenishment_from_cells",
           "replenishment_loans", "replenishment_part_cells", "simulate_replenishment"]

REPLENISHMENT_KEY = 0x7265706C  # "repl": the spawn-key slot of the profile's child seeds


def default_cutoff(loans: LoanArrays) -> dt.date:
    """The cut-off the engine assumes: the month end before the earliest next due date."""
    first_due = np.asarray(loans.next_due_date).astype("datetime64[M]").min()
    day = first_due.astype("datetime64[D]") - np.timedelta64(1, "D")
    return dt.date.fromisoformat(str(day))


def replenishment_loans(loans: LoanArrays, cutoff: dt.date | np.datetime64 | str) -> LoanArrays:
    """The pool's loans as NEW loans originated at ``cutoff`` (see the module doc).

    Same loan count, score, APR, term, repayment type and region; balance = principal = the
    loan's original principal; months on book 0; remaining term = term; first instalment one
    calendar month after ``cutoff``. Loan ids are the pool's prefixed with ``new:``."""
    return _new_loans(loans, cutoff, _new_ids(loans.loan_id))


def _new_loans(loans: LoanArrays, cutoff: dt.date | np.datetime64 | str,
               loan_id: np.ndarray) -> LoanArrays:
    n = len(loans)
    if n == 0:
        raise ValidationError(must_be("loans", "a pool with at least one loan", "0 loans"))
    try:
        cut = np.asarray(cutoff).astype("datetime64[D]")[()]
    except ValueError:
        raise ValidationError(must_be("cutoff", "a date (YYYY-MM-DD)", cutoff)) from None
    if np.isnat(cut):
        raise ValidationError(must_be("cutoff", "a date (YYYY-MM-DD)", cutoff))
    principal = np.asarray(loans.principal, dtype=np.float64)
    loans.require(np.isfinite(principal) & (principal > 0), "principal", "a positive amount",
                  principal)
    term = np.asarray(loans.term_months, dtype=np.int16)
    origination = np.full(n, cut, dtype="datetime64[D]")
    first_due = np.full(n, add_months(origination[:1], 1)[0], dtype="datetime64[D]")
    # the pool's columns themselves, not copies: LoanArrays is frozen and its arrays read-only
    return LoanArrays(
        loan_id=loan_id,
        balance=principal,
        apr=np.asarray(loans.apr, dtype=np.float64),
        term_months=term,
        remaining_term=term,
        months_on_book=np.zeros(n, dtype=np.int16),
        repayment_type=np.asarray(loans.repayment_type, dtype=np.int8),
        credit_score=np.asarray(loans.credit_score, dtype=np.int16),
        region=np.asarray(loans.region, dtype=object),
        origination_date=origination,
        next_due_date=first_due,  # one cut-off date: one month later for every loan
        principal=principal,
    )


def prepare_new_loans(new: LoanArrays, assumptions: Assumptions,
                      small_cells: float = SMALL_CELL_FACTOR) -> PreparedPool:
    """``simulation.prepare_pool(new, assumptions, small_cells=small_cells)`` of NEW loans
    (:func:`replenishment_loans`: months on book 0, remaining term = term, one origination
    date): the same ``PreparedPool``, field for field and bit for bit, with each distinct
    schedule computed once. A new loan's schedule is a function of its balance, APR, term,
    repayment type and principal alone (``engines.distinct_rows``; on B1's pool about
    93,000 distinct of 1,000,000 loans): the distinct rows' schedules come from the same
    preparation and kernel as every loan's (``simulation._schedules_numba``, loan level), and
    ``engines.scatter_schedules`` adds each loan's into its cell's sums in row order, which
    is the order ``prepare_pool`` adds them in (its cells keep their loans in row order).
    Pools whose cells are not all drawn by binomial counts (small cells, loan-level draws)
    and loans that are not new go to ``prepare_pool`` itself."""
    mob = np.asarray(new.months_on_book, dtype=np.int64)
    rem = np.asarray(new.remaining_term, dtype=np.int64)
    orig = np.asarray(new.origination_date)
    n = len(new)
    if n == 0 or mob.max() != 0 or mob.min() != 0 or orig.min() != orig.max() \
            or not np.array_equal(rem, np.asarray(new.term_months, dtype=np.int64)):
        return prepare_pool(new, assumptions, small_cells=small_cells)
    # the distinct rows (a serial hash pass over the loans' bits) on a second thread while
    # the loans are checked and their cells and thresholds computed
    with ThreadPoolExecutor(1) as pool:
        rows = pool.submit(_distinct_rows, new, rem)
        term_idx = _validate_loans(new, assumptions)
        band = np.asarray(new.score_band, dtype=np.int64)
        T = int(rem.max())
        lag = np.asarray(assumptions.recovery_lag, dtype=np.float64)
        n_months = T + len(lag)
        key, bound = _cell_key(band, term_idx, mob, rem)
        order, starts, cell_n = _cells(key, bound)
        lead = order[starts]
        if (cell_n < small_cells * rem[lead]).any():  # small cells: loan-level draws
            return prepare_pool(new, assumptions, small_cells=small_cells)
        n_cells = len(starts)
        c_band, c_term, c_mob, c_rem = band[lead], term_idx[lead], mob[lead], rem[lead]

        # as prepare_pool: SMM and thresholds per cell and month
        smm, thr, thr_gauss = cell_probabilities(c_band, c_term, c_mob, c_rem, T, assumptions)
        distinct = rows.result()
    cell_flows, cell_init = _distinct_schedule_sums(new, key, bound, lead, rem, mob, n_cells, T,
                                                    distinct)
    return PreparedPool(
        n_loans=n, T=T, n_months=n_months, dates=_pool_dates(new, n_months),
        initial_balance=float(cell_init.sum()), cell_n=cell_n.astype(np.int64),
        cell_r=c_rem.astype(np.int64), n_binomial_cells=n_cells,
        cell_thr=np.ascontiguousarray(thr, dtype=np.float64),
        cell_thr_gauss=np.ascontiguousarray(thr_gauss, dtype=np.float64),
        cell_smm=np.ascontiguousarray(smm, dtype=np.float64), cell_flows=cell_flows,
        cell_pflows=np.zeros((n_cells, 0, T, 3)),
        cell_first=np.r_[starts, n].astype(np.int64), order=order,
        rho=float(assumptions.rho), factor_persistence=float(assumptions.factor_persistence),
        copula=assumptions.copula, t_dof=float(assumptions.t_dof),
        recovery_rate=float(assumptions.recovery_rate), recovery_lag=lag, party_ids=())


def _distinct_rows(new: LoanArrays, rem: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``engines.distinct_rows`` of the new loans' (balance, APR, remaining term, repayment
    type, principal): each loan's distinct row and each distinct row's first loan."""
    bal = np.ascontiguousarray(new.balance, dtype=np.float64)
    apr = np.ascontiguousarray(new.apr, dtype=np.float64)
    p0 = np.ascontiguousarray(new.principal, dtype=np.float64)
    code = np.asarray(new.repayment_type, dtype=np.int64)
    uid, first = engines.distinct_rows(bal.view(np.int64), apr.view(np.int64), rem, code,
                                       p0.view(np.int64))
    return uid, first


def _distinct_schedule_sums(new: LoanArrays, key: np.ndarray, bound: int, lead: np.ndarray,
                            rem: np.ndarray, mob: np.ndarray, n_cells: int, T: int,
                            distinct: tuple[np.ndarray, np.ndarray]
                            ) -> tuple[np.ndarray, np.ndarray]:
    """The cells' scheduled flows and cut-off balances of new loans from their distinct
    rows' schedules (:func:`prepare_new_loans`; ``distinct``: :func:`_distinct_rows`); the
    loans scattered on two threads (half of the cells each: disjoint sums)."""
    uid, first = distinct
    n_d = first.shape[0]
    reps = new.take(first)
    rem_d = rem[first]
    base = np.r_[0, np.cumsum(3 * rem_d)[:-1]].astype(np.int64)
    half = n_d // 2  # two groups of distinct rows: prepared on two threads
    groups = np.array([0, half, n_d] if 0 < half < n_d else [0, n_d], dtype=np.int64)
    group_of = np.repeat(np.arange(len(groups) - 1, dtype=np.int32), np.diff(groups))
    sched = _schedules_numba(reps, np.arange(n_d, dtype=np.int64), groups, group_of,
                             mob[first], rem_d, np.zeros((n_d, 0)), T, base, True)[3]
    cell_of_key = np.full(bound, -1, dtype=np.int64)
    cell_of_key[key[lead]] = np.arange(n_cells)
    cell = cell_of_key[key]
    cell_flows = np.zeros((n_cells, T, 3))
    cell_init = np.zeros(n_cells)
    split = n_cells // 2
    ranges = [(0, split), (split, n_cells)] if 0 < split else [(0, n_cells)]

    def run(c_range: tuple[int, int]) -> None:
        engines.scatter_schedules(c_range[0], c_range[1], cell, uid, rem, base, sched,
                                  cell_flows, cell_init)

    if len(ranges) == 1:
        run(ranges[0])
    else:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(run, ranges))
    return cell_flows, cell_init


def _new_ids(loan_id: np.ndarray) -> np.ndarray:
    """``"new:" + str(id)`` per loan, as an object array: one ``np.add`` over string ids
    (the same strings), a Python loop over ids of other types."""
    ids = np.asarray(loan_id)
    if ids.dtype == object:
        try:
            return np.add("new:", ids)
        except TypeError:  # not all str (e.g. integers or None): str() each
            pass
    return np.array(["new:" + str(x) for x in ids], dtype=object)


def simulate_replenishment(
    loans: LoanArrays,
    assumptions: Assumptions,
    n_paths: int,
    seed: int | np.random.SeedSequence,
    engine: Engine = "granular",
    horizon: int | None = None,
    *,
    cutoff: dt.date | None = None,
    deterministic_z: float | np.ndarray | None = None,
    purchase_months: int = 1,
    backend: Literal["numba", "numpy"] = "numba",
    model: str = "hazard",
    charge_off_dpd: int | None = None,
) -> ReplenishmentProfile:
    """The replenishment profile of a pool: :func:`replenishment_loans` projected on the main
    run's factor paths (module doc), in CNY of the new-loan pool (``initial_balance`` = the sum
    of the principals; the waterfall divides by it), one vintage per purchase month
    ``s = 0 … purchase_months − 1`` (a deal's revolving months): vintage s's month a is month
    s + 1 + a of the run and sees that month's factor. A vintage's flows on a path are their
    conditional expectation given the path's factor (module doc).

    ``loans``/``assumptions``/``n_paths``/``seed``/``engine`` are the main run's (the profile
    must have its path count; either engine gives the same profile). ``backend="numpy"``
    runs the plain-numpy twin of the kernel. ``cutoff`` defaults to :func:`default_cutoff` of ``loans``.
    ``horizon``: pad the profile with zero months to at least this many months (it is never
    cut short: the new loans' longest term + the recovery lag). ``deterministic_z``: the
    single-path conditional expectation at that factor level (as ``simulate``; a number, or
    one value per month of the run from month 0, at least ``purchase_months`` + the new loans'
    longest term long).

    ``model="delinquency"``: the vintages follow the delinquency-state model
    (:func:`_delinquency_profile`: the expected flows and balances by state given the run's
    factor, charge-offs at the charge-off point ``charge_off_dpd``, default the assumptions')
    instead of the hazard model."""
    if model not in ("hazard", "delinquency"):
        raise ValidationError(must_be("model", "hazard or delinquency", model))
    if engine not in ENGINES:
        raise ValidationError(must_be("engine", "'granular' or 'loan'", engine))
    if backend not in ("numba", "numpy"):
        raise ValidationError(must_be("backend", "'numba' or 'numpy'", backend))
    if isinstance(n_paths, bool) or not isinstance(n_paths, int | np.integer) or n_paths < 1:
        raise ValidationError(must_be("n_paths", "an integer >= 1", n_paths))
    if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int | np.integer)
                                or horizon < 0):
        raise ValidationError(must_be("horizon", "an integer >= 0 (months)", horizon))
    if isinstance(purchase_months, bool) or not isinstance(purchase_months, int | np.integer) \
            or purchase_months < 1:
        raise ValidationError(must_be("purchase_months", "an integer >= 1 (the revolving "
                                      "months)", purchase_months))
    n_v = int(purchase_months)
    root = root_seed(seed)
    # the new loans keep the pool's ids here (prepare_pool does not read them; renaming a
    # million ids cost more than the projection's preparation)
    new = _new_loans(loans, cutoff if cutoff is not None else default_cutoff(loans),
                     loans.loan_id)
    if model == "delinquency":
        if deterministic_z is not None:
            raise ValidationError(must_be("deterministic", "not given with the delinquency "
                                          "model (Monte Carlo paths only)", deterministic_z))
        return _delinquency_profile(loans, new, assumptions, int(n_paths), root, n_v, horizon,
                                    charge_off_dpd)
    n_m = _profile_months(new, assumptions) if deterministic_z is None \
        and backend == "numba" else None
    if n_m is None:
        prep = prepare_new_loans(new, assumptions)  # the same profile for either engine
        buffers = None
    else:  # the profile's first pages touched on a second thread while the loans are prepared
        buffers = zeroed_pages((n_v, N_FLOWS, int(n_paths), n_m))
        done = threading.Event()
        with ThreadPoolExecutor(1) as pool:
            touching = pool.submit(_touch_until, buffers.reshape(-1), done)
            try:
                prep = prepare_new_loans(new, assumptions)
            finally:
                done.set()
            touching.result()
    if deterministic_z is not None:
        z_cal = _z_path(deterministic_z, n_v + prep.T) if np.ndim(deterministic_z) else None
        vintages = []
        for s in range(n_v):
            z = np.full(prep.T, float(deterministic_z)) if z_cal is None \
                else z_cal[s + 1: s + 1 + prep.T]
            acc, pacc = expected_projection(prep, z)
            vintages.append(_pad(_assemble(prep, acc, pacc, _entropy(root)), horizon))
        return _profile(vintages)
    t_main = int(np.asarray(loans.remaining_term, dtype=np.int64).max())
    return _hazard_profile(prep, t_main, int(n_paths), root, n_v, horizon, backend,
                           buffers=buffers)


N_FLOWS = engines.N_ACC + 2
"""Flows of a profile's buffers (:func:`_hazard_profile`): the kernel's accumulators
(``engines.N_ACC``), then the recoveries and the end balances."""


def _new_term(new: LoanArrays, assumptions: Assumptions) -> int | None:
    """The longest remaining term of the new loans ``new`` (the T of their preparation), or
    None when it is not within the assumptions' terms (the preparation then says why)."""
    term = np.asarray(new.remaining_term, dtype=np.int64)
    terms = np.asarray(assumptions.terms, dtype=np.int64)
    if len(term) == 0 or len(terms) == 0 or term.min() < 1 or term.max() > terms.max():
        return None
    return int(term.max())


def _profile_months(new: LoanArrays, assumptions: Assumptions) -> int | None:
    """The months of the hazard profile of the new loans ``new`` (their longest term + the
    recovery lag), or None (:func:`_new_term`)."""
    t_new = _new_term(new, assumptions)
    return None if t_new is None else t_new + len(np.asarray(assumptions.recovery_lag))


def zeroed_pages(shape: tuple[int, ...]) -> np.ndarray:
    """A float64 array of ``shape``, zeros, in private anonymous memory (``mmap``) that the
    operating system maps in its ordinary pages as it is first written: numpy asks for
    transparent huge pages for an array of 4 MiB or more, and on this project's benchmark
    virtual machine a huge page of memory not recently used costs several times what its
    512 ordinary pages cost (about 0.3 against 0.07 s of system time for a B1 profile's
    209 MB; 0.02 against 0.07 s when recently freed). ``np.zeros`` where ``mmap`` has no
    private mappings."""
    n_bytes = math.prod(shape) * 8
    if n_bytes == 0 or not hasattr(mmap, "MAP_PRIVATE"):
        return np.zeros(shape)
    return np.frombuffer(mmap.mmap(-1, n_bytes, flags=mmap.MAP_PRIVATE),
                         dtype=np.float64).reshape(shape)


TOUCH_CHUNK = 1 << 18  # float64s (2 MiB, one transparent huge page) touched between checks


def _touch_until(flats: np.ndarray | tuple[np.ndarray, ...], done: threading.Event) -> None:
    """Touch the pages of ``flats`` (1-d float64 arrays, in order; ``engines.touch_pages``
    writes 0.0 to one element a page) from their start, a chunk of :data:`TOUCH_CHUNK` at a
    time, until ``done`` is set: while the new loans are prepared (serial), the other core
    maps the profile's first pages (fresh memory is slow to map on a virtual machine); the
    kernels fault in the rest, on every thread, as before. Any page touched is one the
    kernels do not fault; a zero array stays zeros (the hazard kernel writes every
    element)."""
    for flat in flats if isinstance(flats, tuple) else (flats,):
        for i in range(0, flat.shape[0], TOUCH_CHUNK):
            if done.is_set():
                return
            engines.touch_pages(flat[i:i + TOUCH_CHUNK])


def replenishment_part_cells(loans: LoanArrays, assumptions: Assumptions,
                             cutoff: dt.date | np.datetime64 | str) -> PartCells:
    """One partition's NEW loans (:func:`replenishment_loans` of its loans, their ids kept) as
    cells (``summaries.part_cells``: key, count, scheduled flows): what a Dask worker reading a
    loan tape sends back for a revolving deal's profile (:func:`replenishment_from_cells`)."""
    if len(loans) == 0:
        return part_cells(loans, assumptions)
    return part_cells(_new_loans(loans, cutoff, loans.loan_id), assumptions)


def replenishment_from_cells(
    parts: Sequence[PartCells],
    assumptions: Assumptions,
    main_term: int,
    n_paths: int,
    seed: int | np.random.SeedSequence,
    *,
    purchase_months: int = 1,
    horizon: int | None = None,
    backend: Literal["numba", "numpy"] = "numba",
) -> ReplenishmentProfile:
    """The hazard-model profile of :func:`simulate_replenishment` from the partitions' new-loan
    cells (:func:`replenishment_part_cells`, merged in the order given by
    ``summaries.merge_cells``): no loan is needed. ``main_term``: the pool's longest remaining
    term (the main run's factor length, ``PreparedPool.T`` of the merged pool). Equals
    :func:`simulate_replenishment` on the loans to float rounding: the cells' scheduled flows
    are summed partition by partition and the kernel adds the cells in lexicographic order
    (one preparation of every loan puts its small cells last), so a vintage's monthly flow
    may differ in its last bits (tests/portfolio/test_replenishment_cells.py measures it)."""
    _check_cells_args(n_paths, main_term, purchase_months, horizon, backend)
    prep = merge_cells(parts, assumptions)
    return _hazard_profile(prep, int(main_term), int(n_paths), root_seed(seed),
                           int(purchase_months), horizon, backend)


def _check_cells_args(n_paths: int, main_term: int, purchase_months: int,
                      horizon: int | None, backend: str) -> None:
    if isinstance(n_paths, bool) or not isinstance(n_paths, int | np.integer) or n_paths < 1:
        raise ValidationError(must_be("n_paths", "an integer >= 1", n_paths))
    if isinstance(main_term, bool) or not isinstance(main_term, int | np.integer) \
            or main_term < 1:
        raise ValidationError(must_be("main_term", "an integer >= 1 (months)", main_term))
    if isinstance(purchase_months, bool) or not isinstance(purchase_months, int | np.integer) \
            or purchase_months < 1:
        raise ValidationError(must_be("purchase_months", "an integer >= 1 (the revolving "
                                      "months)", purchase_months))
    if horizon is not None and (isinstance(horizon, bool)
                                or not isinstance(horizon, int | np.integer) or horizon < 0):
        raise ValidationError(must_be("horizon", "an integer >= 0 (months)", horizon))
    if backend not in ("numba", "numpy"):
        raise ValidationError(must_be("backend", "'numba' or 'numpy'", backend))


@dataclass(frozen=True, slots=True)
class ProfileFromCells:
    """A revolving deal's hazard-model profile held as its new loans' merged cells (cells ×
    months, whatever the number of loans or paths) and computed where it is used, for any
    range of the run's canonical blocks (:meth:`paths`): what a Dask worker running the deal's
    waterfall on its paths needs (``tranching.distributed.TranchesOnWorkers``), instead of the
    whole profile (paths × months × vintages) shipped from the client. Each block is a pure
    function of its seeds, so a range's paths are those rows of
    :func:`replenishment_from_cells` bit for bit. Build with :func:`profile_from_cells`."""

    prep: PreparedPool
    main_term: int
    n_paths: int
    root: np.random.SeedSequence
    purchase_months: int

    @property
    def n_months(self) -> int:
        return int(self.prep.n_months)

    @property
    def nbytes_cells(self) -> int:
        """Bytes of the cells' arrays (what is shipped instead of the profile)."""
        p = self.prep
        return int(p.cell_thr.nbytes + p.cell_thr_gauss.nbytes + p.cell_smm.nbytes
                   + p.cell_flows.nbytes + p.cell_r.nbytes + p.cell_n.nbytes)

    def paths(self, first_path: int, n_paths: int, threads: int | None = 1
              ) -> ReplenishmentProfile:
        """The profile of the run's paths ``first_path : first_path + n_paths`` (canonical
        block boundaries, or the run's end), on ``threads`` threads (1: a Dask worker runs as
        many tasks as it has threads)."""
        stop = first_path + n_paths
        if first_path % BLOCK_PATHS or n_paths < 1 or stop > self.n_paths \
                or (stop % BLOCK_PATHS and stop != self.n_paths):
            raise ValidationError(must_be("paths", f"a range of whole blocks of {BLOCK_PATHS} "
                                          f"paths within the run's {self.n_paths}",
                                          f"{first_path}:{stop}"))
        return _hazard_profile(self.prep, self.main_term, self.n_paths, self.root,
                               self.purchase_months, None, "numba",
                               (first_path // BLOCK_PATHS, -(-stop // BLOCK_PATHS)), threads)


def profile_from_cells(parts: Sequence[PartCells], assumptions: Assumptions, main_term: int,
                       n_paths: int, seed: int | np.random.SeedSequence, *,
                       purchase_months: int = 1) -> ProfileFromCells:
    """:func:`replenishment_from_cells`' profile, not computed: the merged cells and the
    run's seed (:class:`ProfileFromCells`; its paths on demand, block range by block range)."""
    _check_cells_args(n_paths, main_term, purchase_months, None, "numba")
    return ProfileFromCells(merge_cells(parts, assumptions), int(main_term), int(n_paths),
                            root_seed(seed), int(purchase_months))


def _hazard_profile(prep: PreparedPool, t_main: int, n_paths: int,
                    root: np.random.SeedSequence, n_v: int, horizon: int | None,
                    backend: Literal["numba", "numpy"],
                    block_range: tuple[int, int] | None = None,
                    threads: int | None = None,
                    buffers: np.ndarray | None = None) -> ReplenishmentProfile:
    """The vintages of the new loans ``prep`` (their cells only: thresholds, SMMs, scheduled
    flows) on the main run's factor paths of ``t_main`` months (module doc). ``block_range``
    ``(b0, b1)``: only the run's canonical blocks b0 … b1 − 1 (their paths, in order; each
    block a pure function of its seeds: the same numbers as those rows of the whole);
    ``threads``: blocks on at most this many threads (default ``settings.threads()``);
    ``buffers``: where the numba backend writes the profile, (n_v, ``N_FLOWS``, paths,
    months) of any content (:func:`_touch_until`; allocated here if None or another
    shape)."""
    main_like = dataclasses.replace(prep, T=t_main)  # factor_paths reads T, φ, copula, ν only
    blocks = block_layout(int(n_paths))
    b0, b1 = (0, len(blocks)) if block_range is None else block_range
    first = blocks[b0][0]
    n_here = sum(blocks[b][1] for b in range(b0, b1))

    length = n_v + prep.T  # calendar months 0 … n_v + T − 1 of the factor
    # flow-major: each vintage's flow is a contiguous (paths, months) block; the numba
    # kernel writes every element of its block's rows once (engines.vintage_block)
    shape = (n_v, N_FLOWS, n_here, prep.n_months)
    if backend == "numpy":
        buffers = np.zeros(shape)
    elif buffers is None or buffers.shape != shape:
        buffers = np.empty(shape)
    acc = buffers[:, :engines.N_ACC]
    phi = prep.factor_persistence
    c = math.sqrt(1.0 - phi * phi)
    t_q = prep.cell_thr if prep.copula == "t" else engines.NO_T
    kf = 1.0 / (math.sqrt(1.0 - prep.rho) * math.sqrt(2.0))

    # recoveries and end balances, finished block by block on the blocks' threads (elementwise
    # per path: the same numbers as finishing the whole at once)
    recovery = buffers[:, engines.N_ACC]
    eop = buffers[:, engines.N_ACC + 1]
    lag = np.asarray(prep.recovery_lag, dtype=np.float64)
    # the distinct (threshold, calendar month) pairs of the vintages' cell-months: the same
    # for every block (the scaled thresholds do not depend on the factor)
    vid, pidx, pair_thr, pair_m = engines.vintage_pairs(
        engines.scaled_inputs(prep.cell_thr, np.zeros((0, length)), prep.rho)[0], prep.cell_r,
        n_v, length)

    def run(b: int) -> None:  # one block: its own seeds and its own rows of acc
        start, n_b = blocks[b]
        start -= first
        gen_factor, gen_mixing, _ = _block_streams(block_seed(root, b))
        z_main, scale = factor_paths(main_like, gen_factor, gen_mixing, n_b)
        own = np.random.SeedSequence(root.entropy,
                                     spawn_key=(*root.spawn_key, REPLENISHMENT_KEY, b),
                                     pool_size=root.pool_size)
        z = np.empty((n_b, length))
        k0 = min(t_main, length)
        z[:, :k0] = z_main[:, :k0]
        if length > t_main:  # t_main >= 1: continue the AR(1) with the profile's own draws
            extra = _block_streams(own)[0].standard_normal((n_b, length - t_main))
            for k in range(t_main, length):
                z[:, k] = phi * z[:, k - 1] + c * extra[:, k - t_main]
        thr_s, zb = engines.scaled_inputs(prep.cell_thr, z, prep.rho)
        rows = acc[:, :, start:start + n_b]
        if backend == "numba":
            engines.vintage_block(zb, scale, prep.cell_r, thr_s, prep.cell_smm,
                                  prep.cell_flows, t_q, kf, vid, pidx, pair_thr, pair_m,
                                  prep.recovery_rate, lag, rows,
                                  recovery[:, start:start + n_b], eop[:, start:start + n_b])
            return
        engines.expected_vintages_np(zb, scale, prep.cell_r, thr_s, prep.cell_smm,
                                     prep.cell_flows, rows, t_q, kf)
        fin = finish_flows(*(rows[:, k] for k in range(engines.N_ACC)),
                           recovery_rate=prep.recovery_rate, lag=prep.recovery_lag)
        recovery[:, start:start + n_b] = fin["recovery"]
        eop[:, start:start + n_b] = fin["balance_eop"]

    # blocks on threads as simulate's run_blocks (the kernels release the GIL); every block
    # is a pure function of its seeds, so the numbers do not depend on the thread count
    n_workers = max(1, min(settings.threads() if threads is None else threads, b1 - b0))
    if n_workers == 1:
        for b in range(b0, b1):
            run(b)
    else:
        with ThreadPoolExecutor(n_workers) as pool:
            for fut in [pool.submit(run, b) for b in range(b0, b1)]:
                fut.result()
    flows = {"balance_bop": acc[:, engines.BOP], "interest": acc[:, engines.INTEREST],
             "scheduled_principal": acc[:, engines.PRINCIPAL],
             "prepayment": acc[:, engines.PREPAY], "default": acc[:, engines.DEFAULT],
             "recovery": recovery, "balance_eop": eop}
    entropy = _entropy(root)
    return _profile([_pad(PoolPaths(dates=prep.dates, initial_balance=prep.initial_balance,
                                    seed_entropy=entropy, **{k: v[s] for k, v in flows.items()}),
                          horizon) for s in range(n_v)])


def _delinquency_profile(loans: LoanArrays, new: LoanArrays, assumptions: Assumptions,
                         n_paths: int, root: np.random.SeedSequence, n_v: int,
                         horizon: int | None, charge_off_dpd: int | None
                         ) -> ReplenishmentProfile:
    """The vintages under the delinquency-state model: each vintage's accumulators are their
    expectation given the path's factor (``delinquency.expected_dq_vintage``). The factor is
    the main delinquency run's, block by block: its first months are those of
    ``factor_paths`` (as the hazard profile), the next K months continue the AR(1) with the
    block's factor stream as ``delinquency.dq_factor`` does, and later months with the
    profile's own stream."""
    # the accumulators' first pages touched on a second thread while the new loans are
    # prepared, in private anonymous memory (zeroed_pages: zeros, as new_accumulators)
    t_new = _new_term(new, assumptions)
    shapes = None if t_new is None else dq_shapes(t_new, assumptions, charge_off_dpd, (n_v,),
                                                  n_paths)
    if shapes is None:
        prep = prepare_delinquency(new, assumptions, charge_off_dpd=charge_off_dpd,
                                   base=prepare_new_loans(new, assumptions, small_cells=0))
        acc, states = new_accumulators(prep, (n_v,), n_paths)
    else:
        acc, states = zeroed_pages(shapes[0]), zeroed_pages(shapes[1])
        done = threading.Event()
        with ThreadPoolExecutor(1) as pool:
            touching = pool.submit(_touch_until, (acc.reshape(-1), states.reshape(-1)), done)
            try:
                prep = prepare_delinquency(new, assumptions, charge_off_dpd=charge_off_dpd,
                                           base=prepare_new_loans(new, assumptions,
                                                                  small_cells=0))
            finally:
                done.set()
            touching.result()
        if (acc.shape, states.shape) != accumulator_shapes(prep, (n_v,), n_paths):
            acc, states = new_accumulators(prep, (n_v,), n_paths)
    t_main = int(np.asarray(loans.remaining_term, dtype=np.int64).max())
    main_like = dataclasses.replace(prep.base, T=t_main)
    h_main = t_main + prep.n_buckets  # the main run's horizon (catch-up)
    length = n_v + prep.H
    phi = prep.base.factor_persistence
    c = math.sqrt(1.0 - phi * phi)
    rho = prep.loading
    kz = math.sqrt(rho) / (math.sqrt(1.0 - rho) * math.sqrt(2.0))
    # column first: each vintage's flow a contiguous (paths, months) block, viewed as is;
    # acc: flows (FLOW_COLUMNS, n_v, …)
    tables = expected_dq_tables(prep)
    blocks = block_layout(n_paths)

    def run(b: int) -> None:  # one block: its own seeds and its own rows of acc
        start, n_b = blocks[b]
        gen_factor, gen_mixing, _ = _block_streams(block_seed(root, b))
        z_main, _ = factor_paths(main_like, gen_factor, gen_mixing, n_b)
        z = np.empty((n_b, max(length, h_main)))
        z[:, :t_main] = z_main
        cont = gen_factor.standard_normal((n_b, h_main - t_main))  # as dq_factor
        for k in range(t_main, h_main):
            z[:, k] = phi * z[:, k - 1] + c * cont[:, k - t_main]
        if z.shape[1] > h_main:
            own = np.random.SeedSequence(root.entropy,
                                         spawn_key=(*root.spawn_key, REPLENISHMENT_KEY, b),
                                         pool_size=root.pool_size)
            extra = _block_streams(own)[0].standard_normal((n_b, z.shape[1] - h_main))
            for k in range(h_main, z.shape[1]):
                z[:, k] = phi * z[:, k - 1] + c * extra[:, k - h_main]
        zb = z * kz
        # vintage s's month t sees the factor of the run's month s + 1 + t
        expected_dq_vintages_into(prep, tables, zb, 1, acc[:, :, start:start + n_b],
                                  states[:, start:start + n_b])

    n_workers = max(1, min(settings.threads(), len(blocks)))  # the kernel releases the GIL
    if n_workers == 1:
        for b in range(len(blocks)):
            run(b)
    else:
        with ThreadPoolExecutor(n_workers) as pool:
            for fut in [pool.submit(run, b) for b in range(len(blocks))]:
                fut.result()
    entropy = _entropy(root)
    return _profile([_pad(assemble_delinquency(prep, acc[:, s], states[s], None, None, entropy),
                          horizon)
                     for s in range(n_v)])


def _profile(vintages: list[PoolPaths]) -> ReplenishmentProfile:
    first = vintages[0]
    return ReplenishmentProfile(
        dates=first.dates, balance_bop=first.balance_bop, interest=first.interest,
        scheduled_principal=first.scheduled_principal, prepayment=first.prepayment,
        default=first.default, recovery=first.recovery, balance_eop=first.balance_eop,
        initial_balance=first.initial_balance, seed_entropy=first.seed_entropy,
        delinquency=first.delinquency, later=tuple(vintages[1:]))


def _pad(profile: PoolPaths, horizon: int | None) -> PoolPaths:
    if horizon is None or horizon <= profile.n_months:
        return profile
    extra = horizon - profile.n_months
    last = profile.dates[-1].astype("datetime64[M]")
    dates = ((last + np.arange(2, extra + 2)).astype("datetime64[D]")
             - np.timedelta64(1, "D")).astype("datetime64[D]")
    def pad(a: np.ndarray) -> np.ndarray:
        return np.pad(a, ((0, 0), (0, extra)))

    dq = profile.delinquency
    if dq is not None:
        dq = dataclasses.replace(
            dq, state_balance=np.pad(dq.state_balance, ((0, 0), (0, extra), (0, 0))),
            cures=pad(dq.cures))
    return PoolPaths(dates=np.concatenate([profile.dates, dates]),
                     balance_bop=pad(profile.balance_bop), interest=pad(profile.interest),
                     scheduled_principal=pad(profile.scheduled_principal),
                     prepayment=pad(profile.prepayment), default=pad(profile.default),
                     recovery=pad(profile.recovery), balance_eop=pad(profile.balance_eop),
                     initial_balance=profile.initial_balance, seed_entropy=profile.seed_entropy,
                     delinquency=dq)
