"""The delinquency-state projection (``--model delinquency``; docs/model.md, "The
delinquency-state model").

Each loan moves monthly between current, the 30-day delinquency buckets (1–30, 31–60, …, up to
the charge-off point) and the exits charged off, prepaid and matured, with the transition
probabilities of ``Assumptions.delinquency_model()`` (score band × term × age) made
conditional on the same AR(1) factor as the hazard model: in a bad month rolls rise and cures
fall (``portfolio.montecarlo.dq_kernels``). A delinquent loan pays nothing in a month it
rolls; a loan that stays pays one instalment; a cure catches up (or re-ages). Charge-offs are
the principal outstanding; recoveries ``recovery_rate · lag[k]`` of a charge-off in month t
arrive in month t + k + 1.

``simulate_delinquency`` returns ``PoolPaths`` whose ``default`` is the charge-offs and whose
``delinquency`` (``DelinquencyPaths``) holds the end-of-month balances by state and the cured
balances, per path and month (and per party). Engines: ``loan`` (one uniform per loan, month
and path over its transition row) and ``granular`` (per cell exact multinomial transitions
as binomial chains). Blocks of ``BLOCK_PATHS`` paths with their own seeds, as the hazard
model's, so the numbers depend on the seed alone; the first T months of the factor are the
hazard model's (common random numbers), the months after the last maturity continue it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np
from scipy import special

from portfolio.errors import ValidationError, must_be
from portfolio.loans.arrays import LoanArrays
from portfolio.montecarlo import dq_kernels as K
from portfolio.montecarlo.assumptions import CHARGE_OFF_DPD, CURE_RULES, Assumptions
from portfolio.montecarlo.engines import LOAN_SAMPLER
from portfolio.montecarlo.lanes import lane_seeds, padded
from portfolio.montecarlo.paths import DelinquencyPaths, PoolPaths
from portfolio.montecarlo.simulation import (
    BLOCK_PATHS,
    ENGINES,
    Engine,
    PreparedPool,
    _block_streams,
    _entropy,
    block_layout,
    block_seed,
    check_count,
    factor_paths,
    prepare_pool,
    root_seed,
    run_block_tasks,
    simulate,
)
from portfolio.montecarlo.summaries import PartCells, merge_cells, merged_keys

__all__ = ["DQ_LOAN_CHUNK", "FLOW_COLUMNS", "MODELS", "DqPrepared", "accumulator_shapes", "assemble_blocks",
           "assemble_delinquency", "dq_block", "dq_horizon", "dq_sampler", "dq_paths_at", "dq_shapes", "draw_given_factor", "expected_dq_into", "expected_dq_tables",
           "expected_dq_vintages_into", "expected_dq_vintage",
           "new_accumulators", "prepare_delinquency", "prepare_delinquency_from_parts", "project", "simulate_delinquency",
           "simulate_dq_batch"]

Model = Literal["hazard", "delinquency"]
MODELS: tuple[str, ...] = ("hazard", "delinquency")
"""The credit models: ``hazard`` (a loan defaults in the month it goes bad; the default) and
``delinquency`` (the delinquency states of this module)."""

DQ_LOAN_CHUNK = 1024  # loans per canonical uniform chunk (n_paths, loans, months) of the loan engine


@dataclass(frozen=True, slots=True)
class DqPrepared:
    """A prepared pool (cells, schedules) with the delinquency model's per-cell tables.

    ``H`` months can carry a live loan: the last maturity plus K (catch-up) or 2K (re-age)
    months of delinquency; ``n_months`` = H + the recovery lag."""

    base: PreparedPool
    H: int
    n_months: int
    dates: np.ndarray
    n_buckets: int
    charge_off_dpd: int
    cure_rule: str
    loading: float
    cell_h: np.ndarray  # (n_cells,) months a cell's loans can live
    thr_rc: np.ndarray  # (n_cells, H) scaled Φ⁻¹(roll_current)
    thr_roll: np.ndarray  # (n_cells, H, K) scaled Φ⁻¹(roll)
    thr_cure: np.ndarray  # (n_cells, H, K) scaled Φ⁻¹(cure)
    smm: np.ndarray  # (n_cells, H) prepayment probability of a current loan that paid
    cell_cum: np.ndarray  # (n_cells, T + 1, 2) cumulated interest, principal by position
    cell_pcum: np.ndarray  # (n_cells, n_parties, T + 1, 2)
    sampler: str = K.DQ_SAMPLER  # the granular engine's draw (``DQ_SAMPLERS``)

    @property
    def re_age(self) -> bool:
        return self.cure_rule == "re_age"


def prepare_delinquency(
    loans: LoanArrays,
    assumptions: Assumptions,
    shares: np.ndarray | None = None,
    party_ids: tuple[str, ...] = (),
    engine: Engine = "granular",
    charge_off_dpd: int | None = None,
    cure_rule: str | None = None,
    base: PreparedPool | None = None,
    sampler: str = K.DQ_SAMPLER,
) -> DqPrepared:
    """Cells and schedules (``prepare_pool``) and the per-cell transition thresholds.

    ``charge_off_dpd`` / ``cure_rule`` override the assumptions' (a deal's definition).
    ``base``: these loans already prepared as ``prepare_pool(loans, assumptions, shares,
    party_ids, loan_level=engine == "loan", small_cells=0)`` would prepare them (the
    replenishment's new loans, ``replenishment.prepare_new_loans``), used instead.
    ``sampler``: the granular engine's draw (``DQ_SAMPLERS``; a replay of a run recorded with
    the earlier one passes ``DQ_LEGACY_SAMPLER``)."""
    if engine not in ENGINES:
        raise ValidationError(must_be("engine", "'granular' or 'loan'", engine))
    _check_sampler(sampler)
    co, rule = _definition(assumptions, charge_off_dpd, cure_rule)
    if base is None:
        base = prepare_pool(loans, assumptions, shares, party_ids,
                            loan_level=engine == "loan", small_cells=0)
    lead = base.order[base.cell_first[:-1]]
    prep = _with_tables(base, assumptions, co, rule,
                        np.asarray(loans.score_band, dtype=np.int64)[lead],
                        np.asarray(loans.term_months, dtype=np.int64)[lead],
                        np.asarray(loans.months_on_book, dtype=np.int64)[lead],
                        np.asarray(loans.next_due_date).min())
    return prep if sampler == prep.sampler else dataclasses.replace(prep, sampler=sampler)


def _check_sampler(sampler: str) -> None:
    if sampler not in K.DQ_SAMPLERS:
        raise ValidationError(must_be("sampler", "one of " + ", ".join(K.DQ_SAMPLERS), sampler))


def dq_sampler(loan_sampler: str | None) -> str:
    """The granular engine's draw for a run's recorded sampler (``inputs.loan_sampler`` or
    ``records.replay_loan_sampler``): a sampler of ``DQ_SAMPLERS`` itself, None or the hazard
    model's loan-engine draw (which the delinquency model has no use for) the current one."""
    if loan_sampler is None or loan_sampler not in K.DQ_SAMPLERS:
        return K.DQ_SAMPLER
    return loan_sampler


def prepare_delinquency_from_parts(parts: Sequence[PartCells], assumptions: Assumptions,
                                   charge_off_dpd: int | None = None,
                                   cure_rule: str | None = None,
                                   sampler: str = K.DQ_SAMPLER) -> DqPrepared:
    """:func:`prepare_delinquency` of a pool given as partitions' cells
    (``summaries.part_cells``, e.g. sent back by Dask workers that read a loan tape): the
    merged pool (``summaries.merge_cells``: every cell by binomial counts, as
    :func:`prepare_delinquency` draws every cell) with the transition tables of each cell's
    key. The same numbers as :func:`prepare_delinquency` on the pool's loans but for the
    cells' scheduled flows, summed partition by partition (float rounding); granular engine
    only (no loan is kept)."""
    _check_sampler(sampler)
    co, rule = _definition(assumptions, charge_off_dpd, cure_rule)
    base = merge_cells(parts, assumptions)
    keys, first_due = merged_keys(parts)
    prep = _with_tables(base, assumptions, co, rule, keys[:, 0], keys[:, 1], keys[:, 2],
                        first_due)
    return prep if sampler == prep.sampler else dataclasses.replace(prep, sampler=sampler)


def _definition(assumptions: Assumptions, charge_off_dpd: int | None,
                cure_rule: str | None) -> tuple[int, str]:
    """The charge-off point and cure rule (the assumptions' unless overridden), checked."""
    if assumptions.copula != "gaussian":
        raise ValidationError(must_be("copula", "'gaussian' for the delinquency model (the "
                                      "Student-t copula is the hazard model's)",
                                      assumptions.copula))
    dq = assumptions.delinquency_model()
    co = dq.charge_off_dpd if charge_off_dpd is None else charge_off_dpd
    if isinstance(co, bool) or co not in CHARGE_OFF_DPD:
        raise ValidationError(must_be("charge_off_dpd", "one of "
                                      + ", ".join(map(str, CHARGE_OFF_DPD)), co))
    rule = dq.cure_rule if cure_rule is None else cure_rule
    if rule not in CURE_RULES:
        raise ValidationError(must_be("cure_rule", "one of " + ", ".join(CURE_RULES), rule))
    return int(co), rule


def dq_horizon(T: int, charge_off_dpd: int, cure_rule: str) -> int:
    """H, the months the delinquency model projects loans of at most ``T`` months: their
    last instalment can still be missed and roll to charge-off (one month per bucket,
    twice that when a cure re-ages the loan)."""
    return T + charge_off_dpd // 30 * (2 if cure_rule == "re_age" else 1)


def dq_shapes(T: int, assumptions: Assumptions, charge_off_dpd: int | None,
              lead: tuple[int, ...], n_paths: int
              ) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """The shapes :func:`new_accumulators` (:func:`accumulator_shapes`) gives loans of at
    most ``T`` months prepared with ``assumptions`` (charge-off point ``charge_off_dpd``,
    default theirs), known before they are prepared; None when the definition is not valid
    (the preparation says why)."""
    try:
        co, rule = _definition(assumptions, charge_off_dpd, None)
    except ValidationError:
        return None
    n_months = dq_horizon(T, co, rule) + len(np.asarray(assumptions.recovery_lag))
    return ((FLOW_COLUMNS, *lead, n_paths, n_months),
            (*lead, n_paths, n_months, co // 30 + 1))


def _month_ends(first_due: np.datetime64, n_months: int) -> np.ndarray:
    """The projection's period ends given the pool's earliest next due date, as
    ``simulation.prepare_pool`` dates them: the month end of the first due date's month is
    period 1's, then one month end a period."""
    months = np.asarray(first_due).astype("datetime64[M]") + np.arange(n_months + 1)
    return (months[1:].astype("datetime64[D]") - np.timedelta64(1, "D")).astype("datetime64[D]")


def _with_tables(base: PreparedPool, assumptions: Assumptions, co: int, rule: str,
                 band: np.ndarray, term_months: np.ndarray, mob: np.ndarray,
                 first_due: np.datetime64) -> DqPrepared:
    """``base`` with the per-cell transition tables of each cell's score band, term (months)
    and months on book; the pool's dates from its earliest next due date."""
    dq = assumptions.delinquency_model()
    n_buckets = co // 30
    T = base.T
    H = dq_horizon(T, co, rule)
    n_months = H + len(base.recovery_lag)

    band = np.asarray(band, dtype=np.int64)
    terms = np.asarray(assumptions.terms)
    term = np.minimum(np.searchsorted(terms, np.asarray(term_months, dtype=np.int64)),
                      len(terms) - 1)
    mob = np.asarray(mob, dtype=np.int64)
    age_col = np.minimum(mob[:, None] + np.arange(H)[None, :] + 1, assumptions.n_age) - 1
    bi, ti = band[:, None], term[:, None]
    rc = dq.roll_current[bi, ti, age_col]
    roll = dq.roll[bi, ti, age_col][:, :, :n_buckets]
    cure = dq.cure[bi, ti, age_col][:, :, :n_buckets]
    smm = assumptions.prepay_smm[bi, ti, age_col]
    rho = dq.loading(assumptions.rho)
    scale = 1.0 / (math.sqrt(1.0 - rho) * math.sqrt(2.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        thr = [np.ascontiguousarray(special.ndtri(q) * scale) for q in (rc, roll, cure)]
    cell_h = np.minimum(base.cell_r + n_buckets * (2 if rule == "re_age" else 1), H)

    flows = base.cell_flows  # (n_cells, T, 3)
    cum = np.zeros((base.n_cells, T + 1, 2))
    cum[:, 1:] = np.cumsum(flows[:, :, 1:], axis=1)
    pcum = np.zeros((base.n_cells, base.n_parties, T + 1, 2))
    if base.n_parties:
        pcum[:, :, 1:] = np.cumsum(base.cell_pflows[:, :, :, 1:], axis=2)
    return DqPrepared(
        base=base, H=H, n_months=n_months, dates=_month_ends(first_due, n_months),
        n_buckets=n_buckets, charge_off_dpd=co, cure_rule=rule, loading=rho,
        cell_h=cell_h.astype(np.int64), thr_rc=thr[0], thr_roll=thr[1], thr_cure=thr[2],
        smm=np.ascontiguousarray(smm, dtype=np.float64), cell_cum=cum, cell_pcum=pcum)


def dq_factor(prep: DqPrepared, gen_factor: np.random.Generator,
              gen_mixing: np.random.Generator, n_b: int) -> np.ndarray:
    """Z (n_b, H): the hazard model's factor for the first T months (the same draws), the
    AR(1) continued with further draws of the factor stream for the months after."""
    base = prep.base
    z_t, _ = factor_paths(base, gen_factor, gen_mixing, n_b)
    extra = prep.H - base.T
    if extra <= 0:
        return z_t
    eps = gen_factor.standard_normal((n_b, extra))
    z = np.empty((n_b, prep.H))
    z[:, : base.T] = z_t
    phi = base.factor_persistence
    c = math.sqrt(1.0 - phi * phi)
    prev = z_t[:, -1]
    for i in range(extra):
        prev = phi * prev + c * eps[:, i]
        z[:, base.T + i] = prev
    return z


@dataclass(frozen=True, slots=True)
class DqBatch:
    """One block's accumulators: flows (n_b, n_months, N_DQ), party_flows (n_parties, n_b,
    n_months, N_DQ) (``dq_kernels`` module doc for the columns)."""

    block_index: int
    flows: np.ndarray
    party_flows: np.ndarray


def simulate_dq_batch(prep: DqPrepared, block_index: int, seed: np.random.SeedSequence,
                      n_paths: int, engine: Engine = "granular",
                      backend: Literal["numba", "numpy"] = "numba") -> DqBatch:
    """Paths of one canonical block: a pure function of (prepared pool, block, its seed,
    number of paths). ``backend="numpy"`` runs the numpy twins (the oracle; slow)."""
    flows, pflows = _block_draws(prep, seed, n_paths, engine, backend)
    return DqBatch(block_index, *_all_months(prep, flows, pflows))


def _all_months(prep: DqPrepared, flows: np.ndarray, pflows: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """The accumulators of the first H months padded with zeros to ``n_months``."""
    full = np.zeros((flows.shape[0], prep.n_months, K.N_DQ))
    full[:, :prep.H] = flows
    pfull = np.zeros((pflows.shape[0], flows.shape[0], prep.n_months, K.N_DQ))
    pfull[:, :, :prep.H] = pflows
    return full, pfull


def _block_draws(prep: DqPrepared, seed: np.random.SeedSequence, n_paths: int,
                 engine: Engine, backend: Literal["numba", "numpy"]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """One block's accumulators over the first H months: (n_paths, H, N_DQ) and per party
    (n_parties, n_paths, H, N_DQ)."""
    gen_factor, gen_mixing, gen_idio = _block_streams(seed)
    z = dq_factor(prep, gen_factor, gen_mixing, n_paths)
    zb = np.ascontiguousarray(z * (math.sqrt(prep.loading) / (math.sqrt(1.0 - prep.loading)
                                                             * math.sqrt(2.0))))
    return _draws(prep, zb, gen_idio, engine, backend)


def draw_given_factor(prep: DqPrepared, zb: np.ndarray, gen_idio: np.random.Generator,
                      engine: Engine = "granular",
                      backend: Literal["numba", "numpy"] = "numba"
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The loans' moves on paths whose factor is given: ``zb`` (n_paths, H) is the scaled
    factor of the kernels (``dq_kernels`` module doc: the transition probabilities are
    ½·erfc(±zb − thr)), the idiosyncratic draws come from ``gen_idio``. Returns the
    accumulators (n_paths, n_months, N_DQ) and per party (n_parties, n_paths, n_months, N_DQ)
    (months after H are 0: no loan is left). ``simulate_dq_batch`` calls it with the model's
    own factor; a caller with its own factor scenarios (``portfolio.book.backtest``) passes
    them here."""
    return _all_months(prep, *_draws(prep, zb, gen_idio, engine, backend))


def _draws(prep: DqPrepared, zb: np.ndarray, gen_idio: np.random.Generator,
           engine: Engine, backend: Literal["numba", "numpy"]
           ) -> tuple[np.ndarray, np.ndarray]:
    """The kernels' accumulators over the first H months (:func:`draw_given_factor`)."""
    zb = np.ascontiguousarray(zb, dtype=np.float64)
    n_paths, H, n_q = zb.shape[0], prep.H, prep.base.n_parties
    if zb.ndim != 2 or zb.shape[1] != H:
        raise ValueError(f"zb must be shaped (paths, {H}), got {zb.shape}")
    acc = np.zeros((n_paths, H, K.N_DQ))
    pacc = np.zeros((n_q, n_paths, H, K.N_DQ))
    if engine == "loan":
        _loan_draws(prep, zb, gen_idio, acc, pacc, backend)
    else:
        _granular_draws(prep, zb, gen_idio, acc, pacc, backend)
    return acc, pacc


def _loan_draws(prep: DqPrepared, zb: np.ndarray, gen_idio: np.random.Generator,
                acc: np.ndarray, pacc: np.ndarray, backend: str) -> None:
    base = prep.base
    if base.sched is None or base.loan_base is None or base.shares is None \
            or base.cell_of is None:
        raise ValueError("the loan engine needs prepare_delinquency(..., engine='loan')")
    n_paths, H = acc.shape[0], prep.H
    for l0 in range(0, base.n_loans, DQ_LOAN_CHUNK):
        l1 = min(base.n_loans, l0 + DQ_LOAN_CHUNK)
        u = np.empty((n_paths, l1 - l0, H), dtype=np.float32)
        gen_idio.random(out=u, dtype=np.float32)
        args = (u, l0, base.cell_of, base.loan_base, base.sched, base.shares, base.cell_r,
                prep.cell_h, prep.n_buckets, prep.re_age, zb, prep.thr_rc, prep.thr_roll,
                prep.thr_cure, prep.smm, acc, pacc)
        if backend == "numba":
            K.dq_loan_block(*args)
        else:
            K.dq_loan_block_np(*args)


def _granular_draws(prep: DqPrepared, zb: np.ndarray, gen_idio: np.random.Generator,
                    acc: np.ndarray, pacc: np.ndarray, backend: str) -> None:
    base = prep.base
    if prep.sampler == K.DQ_SAMPLER:
        # every path its own SFC64 stream: the next 4 words of the block's idiosyncratic
        # stream, path after path (the padding paths hold no loans, draw nothing and write
        # nothing)
        n = zb.shape[0]
        seeds = lane_seeds(gen_idio, n)
        zp = padded(zb, seeds.shape[1], 0.0)
        largs = (seeds, n, base.cell_n, base.cell_r, prep.cell_h, prep.n_buckets,
                 prep.re_age, zp, prep.thr_rc, prep.thr_roll, prep.thr_cure, prep.smm,
                 base.cell_flows, base.cell_pflows, prep.cell_cum, prep.cell_pcum, acc, pacc)
        if backend == "numba":
            K.dq_lanes_block(*largs)
        else:
            K.dq_lanes_block_np(*largs)
        return
    args = (base.cell_n, base.cell_r, prep.cell_h, prep.n_buckets, prep.re_age, zb,
            prep.thr_rc, prep.thr_roll, prep.thr_cure, prep.smm, base.cell_flows,
            base.cell_pflows, prep.cell_cum, prep.cell_pcum, acc, pacc)
    if backend == "numba":
        K.dq_granular_block(gen_idio, *args)
    else:
        K.dq_granular_block_np(gen_idio, *args)


# ------------------------------------------------------------------------------------------
# assembling PoolPaths


FLOW_COLUMNS = K.EOP_BUCKET0
"""The accumulator columns of the flows (balance, interest, principal, prepayment,
charge-off, cured balance: ``dq_kernels`` module doc); the end balances by state are kept
apart, (…, paths, months, K + 1) as ``DelinquencyPaths`` holds them."""


def new_accumulators(prep: DqPrepared, lead: tuple[int, ...], n_paths: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Zeroed column-first flows (FLOW_COLUMNS, *lead, n_paths, n_months) and balances by
    state (*lead, n_paths, n_months, K + 1) for :func:`assemble_delinquency`."""
    flows, states = accumulator_shapes(prep, lead, n_paths)
    return np.zeros(flows), np.zeros(states)


def accumulator_shapes(prep: DqPrepared, lead: tuple[int, ...], n_paths: int
                       ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The shapes of :func:`new_accumulators`."""
    return ((FLOW_COLUMNS, *lead, n_paths, prep.n_months),
            (*lead, n_paths, prep.n_months, prep.n_buckets + 1))


def _recoveries(charge_off: np.ndarray, rate: float, lag: np.ndarray) -> np.ndarray:
    """``rate · lag[k]`` of month t's charge-off in month t + k + 1 (last axis = months)."""
    co = np.ascontiguousarray(charge_off)
    rec = np.zeros_like(co)
    factors = np.array([rate * share for share in lag], dtype=np.float64)
    _add_lagged(co.reshape(-1, co.shape[-1]), factors, rec.reshape(-1, co.shape[-1]))
    return rec


@numba.njit(cache=True, nogil=True)
def _add_lagged(co, factors, rec):
    """``rec[i, t + k + 1] += factors[k] · co[i, t]``, lag by lag (k = 0, 1, …; a factor of 0
    skipped), per row."""
    n = co.shape[1]
    for i in range(co.shape[0]):
        for k in range(factors.shape[0]):
            f = factors[k]
            if f > 0.0 and k + 1 < n:
                for t in range(k + 1, n):
                    rec[i, t] += f * co[i, t - k - 1]


def _flows(acc: np.ndarray, prep: DqPrepared) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The flows and cures of column-first accumulators ``acc`` (FLOW_COLUMNS, …, n_months):
    each flow is a view of its column (no copy)."""
    bop = acc[K.BOP]
    princ = acc[K.PRINCIPAL]
    prepay = acc[K.PREPAY]
    co = acc[K.CHARGE_OFF]
    eop = bop - princ - prepay - co
    eop[np.abs(eop) < 1e-6] = 0.0
    flows = {
        "balance_bop": bop,
        "interest": acc[K.INTEREST],
        "scheduled_principal": princ,
        "prepayment": prepay,
        "default": co,
        "recovery": _recoveries(co, prep.base.recovery_rate, prep.base.recovery_lag),
        "balance_eop": eop,
    }
    return flows, acc[K.CURE]


def assemble_delinquency(prep: DqPrepared, acc: np.ndarray, states: np.ndarray,
                         pacc: np.ndarray | None, p_states: np.ndarray | None,
                         entropy: int | None) -> PoolPaths:
    """``PoolPaths`` of the accumulators of :func:`new_accumulators`: ``acc`` (FLOW_COLUMNS,
    n_paths, n_months) and ``states`` (n_paths, n_months, K + 1); per party ``pacc``
    (FLOW_COLUMNS, n_parties, n_paths, n_months) and ``p_states`` (n_parties, n_paths,
    n_months, K + 1) (None or no parties: no party split)."""
    flows, cures = _flows(acc, prep)
    party_flows: dict[str, np.ndarray] = {}
    p_cures = None
    if prep.base.n_parties and pacc is not None:
        party_flows, p_cures = _flows(pacc, prep)
    else:
        p_states = None
    dq = DelinquencyPaths(charge_off_dpd=prep.charge_off_dpd, cure_rule=prep.cure_rule,
                          state_balance=states, cures=cures, party_state_balance=p_states,
                          party_cures=p_cures)
    return PoolPaths(dates=prep.dates, initial_balance=prep.base.initial_balance,
                     seed_entropy=entropy, party_ids=prep.base.party_ids,
                     party_flows=party_flows, delinquency=dq, **flows)


def simulate_delinquency(
    loans: LoanArrays,
    assumptions: Assumptions,
    n_paths: int,
    seed: int | np.random.SeedSequence,
    engine: Engine = "granular",
    batch_size: int = 1000,
    shares: np.ndarray | None = None,
    party_ids: tuple[str, ...] = (),
    progress: Callable[[float], None] | None = None,
    threads: int | None = None,
    charge_off_dpd: int | None = None,
    cure_rule: str | None = None,
    sampler: str = K.DQ_SAMPLER,
) -> PoolPaths:
    """Project ``loans`` with the delinquency-state model on ``n_paths`` paths (module doc).
    The numbers depend on the seed alone (not on ``batch_size`` or ``threads``);
    ``sampler``: the granular engine's draw (``DQ_SAMPLERS``)."""
    check_count("n_paths", n_paths)
    check_count("batch_size", batch_size)
    root = root_seed(seed)
    prep = prepare_delinquency(loans, assumptions, shares, party_ids, engine, charge_off_dpd,
                               cure_rule, sampler=sampler)
    return run_dq_blocks(prep, root, int(n_paths), engine, int(batch_size), progress, threads)


def run_dq_blocks(prep: DqPrepared, root: np.random.SeedSequence, n_paths: int,
                  engine: Engine, batch_size: int = 1000,
                  progress: Callable[[float], None] | None = None,
                  threads: int | None = None) -> PoolPaths:
    """Every canonical block on local threads (``simulation.run_block_tasks``, as
    ``simulation.run_blocks``). Each block has its own seed and its own rows of the result, so
    the grouping never changes a number."""
    # column first: each flow a contiguous (paths, months) block, viewed by PoolPaths as is;
    # the balances by state apart, in their final layout
    acc, states = new_accumulators(prep, (), n_paths)
    pacc, p_states = new_accumulators(prep, (prep.base.n_parties,), n_paths)

    def run_block(b: int, start: int, n_b: int) -> None:
        f, pf = dq_block(prep, root, b, n_b, engine)
        _place(prep, f, pf, start, acc, states, pacc, p_states)

    run_block_tasks(n_paths, run_block, batch_size, threads, progress)
    return assemble_delinquency(prep, acc, states, pacc, p_states, _entropy(root))


def dq_block(prep: DqPrepared, root: np.random.SeedSequence, block_index: int, n_b: int,
             engine: Engine = "granular") -> tuple[np.ndarray, np.ndarray]:
    """Canonical block ``block_index`` (``n_b`` paths) of a run seeded by ``root``: its
    accumulators over the first H months, (n_b, H, N_DQ) and per party (n_parties, n_b, H,
    N_DQ) — a pure function of the prepared pool, the block index and ``block_seed(root,
    block_index)``, whichever thread or process draws it (:func:`run_dq_blocks` locally,
    ``portfolio.montecarlo.distributed`` on Dask workers)."""
    return _block_draws(prep, block_seed(root, block_index), n_b, engine, "numba")


def _place(prep: DqPrepared, f: np.ndarray, pf: np.ndarray, start: int, acc: np.ndarray,
           states: np.ndarray, pacc: np.ndarray, p_states: np.ndarray) -> None:
    """Block accumulators ``f`` / ``pf`` (:func:`dq_block`) into the rows ``start …`` of the
    column-first accumulators of :func:`new_accumulators`."""
    n_b = f.shape[0]
    n_f, s0, s1 = FLOW_COLUMNS, K.EOP_BUCKET0, K.EOP_BUCKET0 + prep.n_buckets + 1
    acc[:, start:start + n_b, :prep.H] = np.moveaxis(f[..., :n_f], -1, 0)
    states[start:start + n_b, :prep.H] = f[..., s0:s1]
    pacc[:, :, start:start + n_b, :prep.H] = np.moveaxis(pf[..., :n_f], -1, 0)
    p_states[:, start:start + n_b, :prep.H] = pf[..., s0:s1]


def assemble_blocks(prep: DqPrepared, flows: np.ndarray, pflows: np.ndarray,
                    entropy: int | None) -> PoolPaths:
    """``PoolPaths`` of consecutive paths' block accumulators (:func:`dq_block`'s arrays, the
    blocks joined in path order along the paths axis: (n, H, N_DQ), (n_parties, n, H, N_DQ)).
    Every step after the draws is path by path (the end balance, the lagged recoveries row
    by row), so these are the same numbers as those rows of :func:`run_dq_blocks`."""
    n = flows.shape[0]
    acc, states = new_accumulators(prep, (), n)
    pacc, p_states = new_accumulators(prep, (prep.base.n_parties,), n)
    _place(prep, flows, pflows, 0, acc, states, pacc, p_states)
    return assemble_delinquency(prep, acc, states, pacc, p_states, entropy)


def dq_paths_at(prep: DqPrepared, root: np.random.SeedSequence, n_paths: int,
                index: Sequence[int] | np.ndarray, engine: Engine = "granular",
                run_block: Callable[[int], tuple[np.ndarray, np.ndarray]] | None = None
                ) -> PoolPaths:
    """The run's paths ``index`` (in that order) with every flow and balance by state,
    recomputing only the canonical blocks that hold them (as
    ``portfolio.montecarlo.summaries.paths_at`` for the hazard model): the same numbers as
    those rows of the full run of ``n_paths`` paths seeded by ``root``. ``run_block(b)``:
    block ``b``'s :func:`dq_block` arrays computed elsewhere (e.g. on a cluster)."""
    idx = np.asarray(index, dtype=np.int64)
    if idx.ndim != 1 or idx.size == 0 or idx.min() < 0 or idx.max() >= n_paths:
        raise ValidationError(must_be("index", f"path numbers in [0, {n_paths})",
                                      idx.tolist()))
    layout = block_layout(n_paths)
    if run_block is None:
        def run_block(b: int) -> tuple[np.ndarray, np.ndarray]:
            return dq_block(prep, root, b, layout[b][1], engine)
    got = {b: run_block(b) for b in sorted({int(i) // BLOCK_PATHS for i in idx})}
    flows = np.stack([got[int(i) // BLOCK_PATHS][0][int(i) % BLOCK_PATHS] for i in idx])
    pflows = np.stack([got[int(i) // BLOCK_PATHS][1][:, int(i) % BLOCK_PATHS] for i in idx],
                      axis=1)
    return assemble_blocks(prep, flows, pflows, _entropy(root))


def project(
    loans: LoanArrays,
    assumptions: Assumptions,
    n_paths: int,
    seed: int | np.random.SeedSequence,
    model: str = "hazard",
    engine: Engine = "granular",
    batch_size: int = 1000,
    shares: np.ndarray | None = None,
    party_ids: tuple[str, ...] = (),
    deterministic_z: np.ndarray | float | None = None,
    progress: Callable[[float], None] | None = None,
    threads: int | None = None,
    charge_off_dpd: int | None = None,
    loan_sampler: str = LOAN_SAMPLER,
) -> PoolPaths:
    """The projection of ``model`` (``MODELS``): ``simulation.simulate`` for ``hazard``
    (``loan_sampler``: its loan engine's draw), :func:`simulate_delinquency` for
    ``delinquency`` (no deterministic projection; the charge-off point ``charge_off_dpd``
    only there; ``loan_sampler``, when one of ``DQ_SAMPLERS``, the granular engine's draw:
    :func:`dq_sampler`)."""
    if model not in MODELS:
        raise ValidationError(must_be("model", "one of " + ", ".join(MODELS), model))
    if model == "hazard":
        if charge_off_dpd is not None:
            raise ValidationError(must_be("charge_off_dpd", "not given with the hazard model "
                                          "(a loan defaults when it goes bad)", charge_off_dpd))
        return simulate(loans, assumptions, n_paths, seed, engine=engine, batch_size=batch_size,
                        shares=shares, party_ids=party_ids, deterministic_z=deterministic_z,
                        progress=progress, threads=threads, loan_sampler=loan_sampler)
    if deterministic_z is not None:
        raise ValidationError(must_be("deterministic", "not given with the delinquency model "
                                      "(Monte Carlo paths only)", "a deterministic level"))
    return simulate_delinquency(loans, assumptions, n_paths, seed, engine=engine,
                                batch_size=batch_size, shares=shares, party_ids=party_ids,
                                progress=progress, threads=threads,
                                charge_off_dpd=charge_off_dpd, sampler=dq_sampler(loan_sampler))


# ------------------------------------------------------------------------------------------
# expected flows of a fresh vintage given the factor (revolving purchases)


def expected_dq_vintage(prep: DqPrepared, zb: np.ndarray,
                        backend: Literal["numba", "numpy"] = "numba") -> np.ndarray:
    """The accumulators (n_b, n_months, N_DQ) of ``prep``'s loans in expectation over the
    idiosyncratic draws, given each path's scaled factor ``zb`` (n_b, ≥ H) (``dq_kernels``
    module doc). Loans of a cell start at schedule position 0 (new loans: months on book 0)
    and follow the ``catch_up`` rule, so a loan in bucket b at month t has paid t − b
    instalments and the state of a cell is the share of its loans in each bucket. Per month,
    in the kernels' order: from current, miss with rc (→ 1–30) or pay instalment t (the last:
    matured) and then prepay the balance left with smm; from bucket b (position j = t − b),
    roll (→ b + 1; from K charged off with the balance at j), cure (pay positions j … t;
    current, or matured after the last) or stay (pay position j). Tested against the mean of
    the loan engine's paths; ``backend="numpy"`` is the plain-numpy twin (vectorised over
    cells and paths), the numba loop the one that runs."""
    base = prep.base
    n_c, k_b, horizon = base.n_cells, prep.n_buckets, prep.H
    n_b = zb.shape[0]
    flows, cum, r = expected_dq_tables(prep)
    size = flows.shape[1]
    if backend == "numba":
        out, states = new_accumulators(prep, (), n_b)
        expected_dq_into(prep, (flows, cum, r), zb, out, states)
        acc = np.zeros((n_b, prep.n_months, K.N_DQ))
        acc[..., :FLOW_COLUMNS] = np.moveaxis(out, 0, -1)
        acc[..., K.EOP_BUCKET0: K.EOP_BUCKET0 + k_b + 1] = states
        return acc
    cells = np.arange(n_c)
    m = np.zeros((n_c, n_b, k_b + 1))
    m[:, :, 0] = 1.0
    acc = np.zeros((n_b, prep.n_months, K.N_DQ))
    with np.errstate(invalid="ignore"):
        for t in range(horizon):
            z = zb[None, :, t]
            rc = 0.5 * special.erfc(z - prep.thr_rc[:, t, None])
            ro = 0.5 * special.erfc(z[..., None] - prep.thr_roll[:, t, None, :])
            cu = 0.5 * special.erfc(-z[..., None] - prep.thr_cure[:, t, None, :])
            cu = np.where(ro + cu > 1.0, 1.0 - ro, cu)
            new = np.zeros_like(m)
            out = np.zeros((n_c, n_b, K.N_DQ))
            for b in range(k_b + 1):
                j = t - b
                valid = (j >= 0) & (j < r)  # (n_c,)
                if not valid.any():
                    continue
                jj = np.clip(j, 0, size - 1)
                bop, intr, prin = (np.where(valid, flows[:, jj, q], 0.0)[:, None]
                                   for q in range(3))
                mb = np.where(valid[:, None], m[:, :, b], 0.0)
                out[..., K.BOP] += mb * bop
                last = np.equal(r - 1, j)[:, None]
                if b == 0:
                    pay = mb * (1.0 - rc)
                    new[:, :, 1] += mb * rc
                    out[..., K.INTEREST] += pay * intr
                    out[..., K.PRINCIPAL] += pay * prin
                    smm = prep.smm[:, t, None]
                    pre = np.where(last, 0.0, pay * smm)
                    out[..., K.PREPAY] += pre * (bop - prin)
                    new[:, :, 0] += np.where(last, 0.0, pay - pre)
                    continue
                rolled = mb * ro[..., b - 1]
                cured = mb * cu[..., b - 1]
                stay = mb - rolled - cured
                if b == k_b:
                    out[..., K.CHARGE_OFF] += rolled * bop
                else:
                    new[:, :, b + 1] += rolled
                upto = np.minimum(t, r - 1) + 1  # catch-up: positions j … min(t, r − 1)
                ci = (cum[cells, np.clip(upto, 0, size), 0]
                      - cum[cells, jj, 0])[:, None]
                cp = (cum[cells, np.clip(upto, 0, size), 1]
                      - cum[cells, jj, 1])[:, None]
                out[..., K.INTEREST] += cured * ci + stay * intr
                out[..., K.PRINCIPAL] += cured * cp + stay * prin
                out[..., K.CURE] += cured * bop
                done = (t >= r - 1)[:, None]  # a cure pays the last instalment: matured
                new[:, :, 0] += np.where(done, 0.0, cured)
                new[:, :, b] += np.where(last, 0.0, stay)
            for b in range(k_b + 1):  # end-of-month balance: position t + 1 − b
                jj = t + 1 - b
                if jj < 0:
                    continue
                bal = np.where(jj < r, flows[:, min(jj, size - 1), 0], 0.0)[:, None]
                out[..., K.EOP_BUCKET0 + b] += new[:, :, b] * bal
            acc[:, t] = out.sum(axis=0)
            m = new
    return acc


def expected_dq_tables(prep: DqPrepared) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-position tables of :func:`expected_dq_vintage`: flows (n_cells, T + K + 2, 3)
    and cum (n_cells, T + K + 3, 2) padded past the last position, instalments left. The
    expected vintages follow the catch-up rule (a re-aging model is refused)."""
    if prep.re_age:
        raise ValidationError(must_be("cure_rule", "catch_up for the replenishment profile "
                                      "(re-aged purchases are not projected in expectation)",
                                      prep.cure_rule))
    base = prep.base
    size = base.T + prep.n_buckets + 2
    flows = np.zeros((base.n_cells, size, 3))
    flows[:, : base.T] = base.cell_flows
    cum = np.zeros((base.n_cells, size + 1, 2))
    cum[:, : base.T + 1] = prep.cell_cum
    cum[:, base.T + 1:] = prep.cell_cum[:, -1:]
    return flows, cum, base.cell_r.astype(np.int64)


def expected_dq_into(prep: DqPrepared, tables: tuple[np.ndarray, np.ndarray, np.ndarray],
                      zb: np.ndarray, out: np.ndarray, states: np.ndarray) -> None:
    """The numba kernel of :func:`expected_dq_vintage` added into column-first flows ``out``
    (FLOW_COLUMNS, n_b, ≥ H) and balances by state ``states`` (n_b, ≥ H, K + 1)
    (:func:`new_accumulators`); ``tables`` from :func:`expected_dq_tables`."""
    expected_dq_vintages_into(prep, tables, zb[:, :prep.H], 0, out[:, None], states[None])


def expected_dq_vintages_into(prep: DqPrepared,
                              tables: tuple[np.ndarray, np.ndarray, np.ndarray],
                              zb: np.ndarray, first: int, out: np.ndarray,
                              states: np.ndarray) -> None:
    """:func:`expected_dq_into` of ``out.shape[1]`` vintages at once: vintage s sees the
    scaled factor ``zb[:, first + s + t]`` in its month t (``zb`` (n_b, ≥ first + n_v − 1 +
    H)) and is added into ``out[:, s]`` (FLOW_COLUMNS, n_v, n_b, ≥ H) and ``states[s]`` (n_v,
    n_b, ≥ H, K + 1). The same numbers as one :func:`expected_dq_into` per vintage on
    ``zb[:, first + s:]``; each transition probability is computed once per factor month and
    threshold (:func:`_expected_dq_kernel`)."""
    flows, cum, r = tables
    n_v = out.shape[1]
    if zb.shape[1] < first + n_v - 1 + prep.H:
        raise ValueError(f"zb must have at least {first + n_v - 1 + prep.H} months, got "
                         f"{zb.shape[1]}")
    _expected_dq_kernel(np.ascontiguousarray(zb[:, :first + n_v - 1 + prep.H],
                                             dtype=np.float64),
                        first, prep.thr_rc, prep.thr_roll, prep.thr_cure, prep.smm, flows, cum,
                        r, prep.n_buckets, out, states)


EXPECTED_CHUNK = 64  # paths of a block projected together by _expected_dq_kernel


@numba.njit(cache=True, nogil=True, inline="always")
def _add_scaled(out, x, f):
    """``out[i] += x[i] · f`` over the row (one output array: the loop vectorises)."""
    for i in range(out.shape[0]):
        out[i] += x[i] * f


@numba.njit(cache=True, nogil=True, inline="always")
def _add_row(out, x):
    for i in range(out.shape[0]):
        out[i] += x[i]


@numba.njit(cache=True, nogil=True, inline="always")
def _add_product(out, x, y):
    for i in range(out.shape[0]):
        out[i] += x[i] * y[i]


@numba.njit(cache=True, nogil=True, inline="always")
def _add_two_scaled(out, x, f, y, g):
    for i in range(out.shape[0]):
        out[i] += x[i] * f + y[i] * g


@numba.njit(cache=True, nogil=True, inline="always")
def _add_difference(out, x, y):
    for i in range(out.shape[0]):
        out[i] += x[i] - y[i]


@numba.njit(cache=True, nogil=True, inline="always")
def _any_zero(x, n):
    zeros = 0  # counted without an early exit: the loop vectorises
    for i in range(n):
        zeros += x[i] == 0.0
    return zeros > 0


@numba.njit(cache=True, nogil=True)
def _expected_dq_kernel(zb, first, thr_rc, thr_roll, thr_cure, smm, flows, cum, cell_r,
                        n_buckets, out, states):
    """The numba loop of :func:`expected_dq_vintage` for ``out.shape[1]`` vintages: vintage s
    reads the factor ``zb[:, first + s + t]`` in its month t and is added into the flows
    ``out[:, s]`` (FLOW_COLUMNS, n_v, n_b, ≥ H) (column first) and the end balances by state
    ``states[s]`` (n_v, n_b, ≥ H, K + 1).

    Per chunk of ``EXPECTED_CHUNK`` paths, per cell, vintage and month, for every bucket the
    shares by bucket of every path of the chunk, paths innermost: the chunk's accumulators
    are kept apart with the paths contiguous (vintage, month, column, path; copied in and
    back once per chunk), so that the arithmetic runs over contiguous rows. Each accumulator
    receives its terms in the order cell → bucket, as a loop path → cell → month → bucket
    would add them. A bucket's step runs as loops over the chunk's paths that each write
    one row (the transitions' shares into scratch rows first, then each accumulator from
    them), so that they vectorise; a path whose bucket holds nothing adds nothing, so a
    step where some path's bucket is exactly empty runs path by path, skipping those paths
    (every number as one path at a time). A transition probability ½·erfc(±zb − thr) is
    computed once per factor month and threshold: the chunk's values are kept per row (rc,
    roll b, cure b) and factor month with the threshold they were computed for, and a later
    vintage (or cell) that needs the same threshold in the same factor month reads them (a
    vintage's month t + 1 is the next vintage's month t; the thresholds change with age in
    steps)."""
    n_b = zb.shape[0]
    n_v = out.shape[1]
    n_f = out.shape[0]
    n_c = flows.shape[0]
    horizon = thr_rc.shape[1]
    nk = n_buckets
    n_u = zb.shape[1]
    P = EXPECTED_CHUNK
    # zeros: a part chunk's last columns hold finite numbers (never copied out)
    acc = np.zeros((n_v, horizon, n_f + nk + 1, P))
    m = np.zeros((nk + 1, P))
    new = np.zeros((nk + 1, P))
    key = np.empty((1 + 2 * nk, n_u))  # the threshold each cached row was computed for
    val = np.zeros((1 + 2 * nk, n_u, P))
    s1 = np.zeros(P)  # scratch rows of a step: paid / rolled, prepaid / cured, stayed
    s2 = np.zeros(P)
    s3 = np.zeros(P)
    for p0 in range(0, n_b, P):
        n_p = min(P, n_b - p0)
        for s in range(n_v):
            for t in range(horizon):
                for col in range(n_f):
                    for i in range(n_p):
                        acc[s, t, col, i] = out[col, s, p0 + i, t]
                for b in range(nk + 1):
                    for i in range(n_p):
                        acc[s, t, n_f + b, i] = states[s, p0 + i, t, b]
        key[:, :] = np.nan
        for c in range(n_c):
            r = cell_r[c]
            for s in range(n_v):
                m[:, :] = 0.0
                m[0, :] = 1.0
                for t in range(horizon):
                    if t - nk >= r:
                        break  # every loan of the cell has left
                    u = first + s + t
                    a = acc[s, t]
                    new[:, :] = 0.0
                    for b in range(nk + 1):
                        j = t - b
                        if j < 0 or j >= r:
                            continue
                        bop = flows[c, j, 0]
                        intr = flows[c, j, 1]
                        prin = flows[c, j, 2]
                        last = j == r - 1
                        if b == 0:
                            th = thr_rc[c, t]
                            if not key[0, u] == th:
                                for i in range(n_p):
                                    val[0, u, i] = 0.5 * math.erfc(zb[p0 + i, u] - th)
                                key[0, u] = th
                            sm = smm[c, t]
                            mb_row = m[0]
                            rc_row = val[0, u]
                            if _any_zero(mb_row, n_p):
                                for i in range(n_p):
                                    mb = m[0, i]
                                    if mb == 0.0:
                                        continue
                                    rc = val[0, u, i]
                                    a[K.BOP, i] += mb * bop
                                    pay = mb * (1.0 - rc)
                                    new[1, i] += mb * rc
                                    a[K.INTEREST, i] += pay * intr
                                    a[K.PRINCIPAL, i] += pay * prin
                                    if not last:
                                        pre = pay * sm
                                        a[K.PREPAY, i] += pre * (bop - prin)
                                        new[0, i] += pay - pre
                                continue
                            for i in range(P):
                                s1[i] = mb_row[i] * (1.0 - rc_row[i])
                            _add_scaled(a[K.BOP], mb_row, bop)
                            _add_product(new[1], mb_row, rc_row)
                            _add_scaled(a[K.INTEREST], s1, intr)
                            _add_scaled(a[K.PRINCIPAL], s1, prin)
                            if not last:
                                for i in range(P):
                                    s2[i] = s1[i] * sm
                                _add_scaled(a[K.PREPAY], s2, bop - prin)
                                _add_difference(new[0], s1, s2)
                            continue
                        th_r = thr_roll[c, t, b - 1]
                        th_c = thr_cure[c, t, b - 1]
                        if not key[b, u] == th_r:
                            for i in range(n_p):
                                val[b, u, i] = 0.5 * math.erfc(zb[p0 + i, u] - th_r)
                            key[b, u] = th_r
                        if not key[nk + b, u] == th_c:
                            for i in range(n_p):
                                val[nk + b, u, i] = 0.5 * math.erfc(-zb[p0 + i, u] - th_c)
                            key[nk + b, u] = th_c
                        upto = min(t, r - 1) + 1
                        ci = cum[c, upto, 0] - cum[c, j, 0]
                        cp = cum[c, upto, 1] - cum[c, j, 1]
                        charge = b == nk
                        matured = t >= r - 1
                        mb_row = m[b]
                        if _any_zero(mb_row, n_p):
                            for i in range(n_p):
                                mb = m[b, i]
                                if mb == 0.0:
                                    continue
                                a[K.BOP, i] += mb * bop
                                ro = val[b, u, i]
                                cu = val[nk + b, u, i]
                                if ro + cu > 1.0:
                                    cu = 1.0 - ro
                                rolled = mb * ro
                                cured = mb * cu
                                stay = mb - rolled - cured
                                if charge:
                                    a[K.CHARGE_OFF, i] += rolled * bop
                                else:
                                    new[b + 1, i] += rolled
                                a[K.INTEREST, i] += cured * ci + stay * intr
                                a[K.PRINCIPAL, i] += cured * cp + stay * prin
                                a[K.CURE, i] += cured * bop
                                if not matured:
                                    new[0, i] += cured
                                if not last:
                                    new[b, i] += stay
                            continue
                        ro_row = val[b, u]
                        cu_row = val[nk + b, u]
                        for i in range(P):
                            mb = mb_row[i]
                            ro = ro_row[i]
                            cu = cu_row[i]
                            if ro + cu > 1.0:
                                cu = 1.0 - ro
                            rolled = mb * ro
                            cured = mb * cu
                            s1[i] = rolled
                            s2[i] = cured
                            s3[i] = mb - rolled - cured
                        _add_scaled(a[K.BOP], mb_row, bop)
                        if charge:
                            _add_scaled(a[K.CHARGE_OFF], s1, bop)
                        else:
                            _add_row(new[b + 1], s1)
                        _add_two_scaled(a[K.INTEREST], s2, ci, s3, intr)
                        _add_two_scaled(a[K.PRINCIPAL], s2, cp, s3, prin)
                        _add_scaled(a[K.CURE], s2, bop)
                        if not matured:
                            _add_row(new[0], s2)
                        if not last:
                            _add_row(new[b], s3)
                    for b in range(nk + 1):
                        jj = t + 1 - b
                        if 0 <= jj < r:
                            _add_scaled(a[n_f + b], new[b], flows[c, jj, 0])
                    m[:, :] = new[:, :]
        for s in range(n_v):
            for t in range(horizon):
                for col in range(n_f):
                    for i in range(n_p):
                        out[col, s, p0 + i, t] = acc[s, t, col, i]
                for b in range(nk + 1):
                    for i in range(n_p):
                        states[s, p0 + i, t, b] = acc[s, t, n_f + b, i]
