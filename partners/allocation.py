"""The allocation optimiser: who funds which share of which loan, under the rules.

Steps (all deterministic):

1. **Eligibility** per loan and partner (score floor, APR cap, longest term, repayment types,
   allowed regions, R4 for local banks, and the loan rules R5/R6/R8/R9 in force — a loan that
   breaks one stays with the platform).
2. **Segments**: loans grouped by score band × original term × region × repayment type ×
   eligibility pattern (the set of partners that may fund the loan). Loans of one segment are
   interchangeable for every constraint, so the LP over segments is exact for joint lending.
3. **Linear programme** (HiGHS through ``scipy.optimize.linprog``): variable ``x[s, p]`` = CNY
   of segment ``s`` funded by partner ``p`` (only eligible pairs exist). Constraints:
   segment supply (joint: ``Σ_p x ≤ (1 − R1 min platform share)·B_s``; forward flow:
   ``≤ B_s``); per partner capacity, R2 and R3 headroom (banks), commitment (a minimum),
   concentration (``Σ_{s in region r} x ≤ c·Σ_s x``, same per score band) and yield floor
   (``Σ_s x·(APR_s − EL_s − required_yield) ≥ 0``, APR_s and EL_s balance-weighted, EL an
   annual rate); optionally a minimum share of the pool moved off the platform. Objectives:
   ``max-transfer`` (maximise Σ x) or ``min-retained-el`` (maximise the lifetime EL moved,
   i.e. minimise what the platform keeps). Homogeneous rows (concentration, yield) carry a
   safety margin of ``LP_MARGIN`` so that the split to loans cannot tip them over.
4. **Split to loans**.
   *Joint*: every loan of a segment gets the segment's shares ``x[s, p] / B_s``, floored to a
   multiple of 2⁻³² (so partners never get more than the LP gave them); the platform gets the
   rest. All shares are multiples of 2⁻³², so each loan's shares sum to exactly 1.0 in float64.
   *Forward flow*: inside a segment, loans in ``loan_id`` order are laid end to end and cut at
   the partners' cumulative target amounts (partners in registry order, then the platform); a
   loan goes to the party whose interval holds the loan's midpoint (so each party is within
   half a loan of its target per segment). Then a repair pass returns loans to the platform
   until every upper limit holds again (capacity/R2/R3: highest ``loan_id`` first; a region or
   band over its limit: that region's/band's loans, highest ``loan_id`` first; yield floor: the
   lowest-yielding loans first).
5. **Independent re-check** (:func:`verify_allocation`) on the loan-level shares, written
   against the rules and the registry, not the LP matrices. Any breach → ``AllocationCheckFailed``.

Infeasible requests (a commitment or a minimum transfer that the limits cannot allow, an R2
headroom already used up, R7): the LP is solved again with a slack variable on every limit
and the limits whose slack is positive are named (:class:`InfeasibleAllocation`).
"""

from __future__ import annotations

import datetime as dt
import time
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numba
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse
from scipy.optimize import linprog

from partners import lookup
from partners.errors import AllocationCheckFailed, AllocationError, InfeasibleAllocation
from partners.registry import PLATFORM_ID, ExpectedLossTable, Partner, Registry
from partners.rules import (
    AMOUNT_TOL,
    SHARE_TOL,
    Breach,
    check_loan_rule,
    check_local_region,
    check_party_amount,
    check_platform_funding,
    check_platform_share,
    loan_rule_excess,
    loan_rule_excesses,
    loan_rule_ok,
    r2_headroom,
    r3_headroom,
)
from portfolio.errors import must_be
from portfolio.loans.arrays import LoanArrays, value_codes
from portfolio.loans.schedules import (
    _APR_MAX,
    _HALF_UP_NUDGE,
    _N_TYPES,
    _annuity_factor,
    _check_matrix_values,
    _month_start_table,
    _split_dates,
    schedule_matrix,
)
from portfolio.loans.types import ALLOWED_TERMS, SCORE_BAND_LABELS, SCORE_BANDS, RepaymentType

SHARE_GRID = 2.0**-32  # shares are multiples of this: sums of ≤ 2^21 of them are exact
LP_MARGIN = 1e-6  # margin on concentration shares and yield floors inside the LP
REL_TOL = 1e-9  # relative tolerance of the re-check on amounts (float noise only)


class Mode(str, Enum):
    JOINT = "joint"
    FORWARD_FLOW = "forward-flow"


class Objective(str, Enum):
    MAX_TRANSFER = "max-transfer"
    MIN_RETAINED_EL = "min-retained-el"


def parse_mode(value: str | Mode) -> Mode:
    try:
        return Mode(value)
    except ValueError:
        raise AllocationError(must_be("mode", f"one of {[m.value for m in Mode]}", value)) from None


def parse_objective(value: str | Objective) -> Objective:
    try:
        return Objective(value)
    except ValueError:
        raise AllocationError(must_be("objective", f"one of {[o.value for o in Objective]}", value)) from None


# --------------------------------------------------------------------------- loan risk
@dataclass(frozen=True, slots=True)
class LoanRisk:
    """Per loan: annual PD, LGD and lifetime PD over the remaining term (all (n_loans,))."""

    annual_pd: np.ndarray
    lgd: np.ndarray
    lifetime_pd: np.ndarray
    source: str = ""
    # expected loss per unit of cut-off balance as the simulation projects it (prepayment and
    # amortisation; ``projected_loss_rate``), when the risk comes from assumptions
    projected_loss_rate: np.ndarray | None = None

    @property
    def el_rate(self) -> np.ndarray:
        """Annual expected-loss rate (annual PD × LGD)."""
        return self.annual_pd * self.lgd

    def lifetime_el(self, balance: np.ndarray) -> np.ndarray:
        """PD over the remaining term × LGD × the cut-off balance: every loan exposed at its
        cut-off balance until it defaults, no prepayment (the allocation's conservative
        measure)."""
        return self.lifetime_pd * self.lgd * balance

    def projected_el(self, balance: np.ndarray) -> np.ndarray | None:
        """The simulation's expected loss (prepayment, amortisation) or None."""
        return None if self.projected_loss_rate is None else self.projected_loss_rate * balance


def loan_risk_from_table(loans: LoanArrays, table: ExpectedLossTable) -> LoanRisk:
    """Annual PD by score band; lifetime PD = 1 − (1 − PD)^(remaining_term / 12)."""
    pd_a = np.asarray(table.annual_pd_by_score_band)[loans.score_band]
    years = np.maximum(loans.remaining_term, 1) / 12.0
    life = -np.expm1(years * np.log1p(-pd_a))
    return LoanRisk(pd_a, np.full(len(loans), table.lgd), life, "partners file [expected_loss]")


def loan_risk_from_assumptions(loans: LoanArrays, assumptions: Any) -> LoanRisk:
    """From projection assumptions (``portfolio.montecarlo.assumptions.Assumptions``): lifetime PD over the
    remaining term from the monthly hazards (prepayment ignored — conservative),
    ``1 − Π_{a = mob+1}^{mob+rem} (1 − h[band, term, a])``; the annual PD is its annualised
    equivalent ``1 − (1 − PD_life)^(12 / rem)``; LGD = 1 − recovery rate."""
    hz = np.asarray(assumptions.default_hazard, dtype=np.float64)
    terms = tuple(assumptions.terms)
    n_age = hz.shape[2]
    term_idx = lookup.searchsorted(np.asarray(terms), loans.term_months)
    term_idx = np.clip(term_idx, 0, len(terms) - 1)
    band = loans.score_band.astype(np.int64)
    mob = loans.months_on_book.astype(np.int64)
    rem = np.maximum(loans.remaining_term.astype(np.int64), 1)
    # one integer key per (band, term, months on book, remaining term); each distinct key once
    lo = int(mob.min(initial=0))  # the key needs non-negative digits
    span = int(max(mob.max(initial=0) - lo, rem.max(initial=1))) + 1
    key = ((band * len(terms) + term_idx) * span + (mob - lo)) * span + rem
    codes, uniq = lookup.factorize_sorted(key)
    rest, r = np.divmod(uniq, span)
    rest, m = np.divmod(rest, span)
    m = m + lo
    b, t = np.divmod(rest, len(terms))
    log_surv = np.log1p(-np.minimum(hz, 1 - 1e-12))
    cum = np.concatenate([np.zeros(hz.shape[:2] + (1,)), np.cumsum(log_surv, axis=2)], axis=2)
    # ages m+1 … m+r use columns min(age, n_age) − 1; beyond n_age the last column repeats
    a0, a1 = m, m + r  # columns a0 … a1−1 (unclipped)
    inside = cum[b, t, np.minimum(a1, n_age)] - cum[b, t, np.minimum(a0, n_age)]
    beyond = np.maximum(0, a1 - np.maximum(a0, n_age)) * log_surv[b, t, n_age - 1]
    life_u = -np.expm1(inside + beyond)
    # annualised per distinct key too (r is each key's remaining term), then read per loan
    annual_u = -np.expm1(np.log1p(-np.minimum(life_u, 1 - 1e-12)) * 12.0 / r)
    life, annual = life_u[codes], annual_u[codes]
    lgd = np.full(len(loans), 1.0 - float(assumptions.recovery_rate))
    rate = projected_loss_rate(loans, assumptions)
    return LoanRisk(annual, lgd, life, "assumptions", rate)


_PROJECTION_CHUNK = 100_000  # loans per schedule_matrix call (bounds memory)
# LoanArrays.score_band's edges: a score's band is searchsorted(edges, score, side="right")
_BAND_EDGES = np.array([lo for lo, _ in SCORE_BANDS[1:]])


def projected_loss_rate(loans: LoanArrays, assumptions: Any) -> np.ndarray:
    """(n_loans,) expected net loss per unit of cut-off balance with the simulation's monthly
    rules (``portfolio.montecarlo.simulation``, docs/model.md 5.1) and the factor's
    correlation set aside: month t = 0 … rem − 1 of a loan at age a = mob + t + 1 (hazard
    column min(a, n_age) − 1), survival S_0 = 1,

        E[default_t] = S_t · h_t · B_t,   S_{t+1} = S_t · (1 − h_t) · (1 − smm_t)

    with B_t the scheduled balance at the start of month t (``schedule_matrix``; B_0 the cut-off
    balance) and smm = 0 in the last month; loss = (1 − recovery_rate · Σ lag) · Σ_t
    E[default_t]. With ρ = 0 this is the simulation's EL exactly (its mean over paths converges
    to it; tested within the Monte Carlo standard error); with ρ > 0 the paths' defaults are
    correlated across months, which moves the mean slightly.

    One compiled pass per loan (:func:`_projected_loss_sums`) from the loans' own columns:
    its schedule amounts, its terms, and Σ_t added in month order from 0.0 — the order is
    part of the definition (not numpy's pairwise row sum, whose blocking numpy does not
    promise), and :func:`projected_loss_rate_np`, the oracle, adds its (loans × months) matrix
    of terms (chunks of ``_PROJECTION_CHUNK`` loans, rows padded with zeros to the chunk's
    longest remaining term) column by column in the same order: the same numbers to the last
    bit, without the matrix in the kernel. What needs numpy's
    own functions is worked out on small tables first and looked up per loan: the annuity
    factor (``expm1``/``log1p``) per distinct APR and number of months, the score band per
    score, the term's column per term, the month and day per origination day, the first of
    each month. Chunks run on two threads (each writes its own rows)."""
    hz = np.ascontiguousarray(assumptions.default_hazard, dtype=np.float64)
    smm_t = np.ascontiguousarray(assumptions.prepay_smm, dtype=np.float64)
    terms = np.asarray(assumptions.terms)
    n = len(loans)
    out = np.zeros(n)
    if n == 0:
        return out
    lgd = 1.0 - float(assumptions.recovery_rate) * float(np.sum(assumptions.recovery_lag))
    bal = np.ascontiguousarray(loans.balance, dtype=np.float64)
    apr = np.ascontiguousarray(loans.apr, dtype=np.float64)
    rem_raw = np.ascontiguousarray(loans.remaining_term)
    code = np.ascontiguousarray(loans.repayment_type)
    mob = np.ascontiguousarray(loans.months_on_book)
    mob_lo, mob_hi = int(mob.min()), int(mob.max())
    rem_hi = max(int(rem_raw.max()), 1)
    if not (bal.min() >= 0 and np.isfinite(bal.max()) and apr.min() >= 0
            and apr.max() <= _APR_MAX and int(code.min()) >= 0 and int(code.max()) < _N_TYPES
            and mob_lo >= 0):  # the checks on extremes; the elementwise ones name the row
        _check_matrix_values(bal, apr, np.maximum(rem_raw.astype(np.int64), 1),
                             code.astype(np.int64), mob.astype(np.int64))
    orig = np.asarray(loans.origination_date).astype("datetime64[D]")
    if np.isnat(orig).any():
        loans.require(~np.isnat(orig), "origination_date", "a date", orig)
    score_at, score_tab, score_lo = _table_of(
        np.asarray(loans.credit_score),
        lambda v: np.searchsorted(_BAND_EDGES, v, side="right").astype(np.int64))
    term_at, term_tab, term_lo = _table_of(
        np.asarray(loans.term_months),
        lambda v: np.minimum(np.searchsorted(terms, v), len(terms) - 1).astype(np.int64))
    day_at, (month_tab, dom_tab), day_lo = _table_of(orig.view(np.int64), _split_days)
    # the annuity factor 1 − (1 + r)^−m (schedules' own expm1/log1p) per distinct APR and
    # m = 1 … the longest remaining term
    apr_code, apr_values = lookup.float_codes(apr)
    factor = _annuity_factor((apr_values / 12.0)[:, None],
                             np.arange(1, rem_hi + 1, dtype=np.float64)[None, :])
    # the first of every month from the earliest loan's first instalment month to the
    # latest's last, and one more (absolute days: the same entries as any chunk's own table)
    first = int(month_tab.min()) + mob_lo
    table = _month_start_table(first, int(month_tab.max()) + mob_hi + rem_hi)
    codes = np.array([RepaymentType.LEVEL_ANNUITY.code, RepaymentType.EQUAL_PRINCIPAL.code,
                      RepaymentType.FLAT_FEE.code, RepaymentType.DAILY_INTEREST.code],
                     dtype=np.int64)

    def chunk(lo: int) -> None:
        hi = min(lo + _PROJECTION_CHUNK, n)
        _projected_loss_sums(lo, hi, bal, apr, code, rem_raw, mob, score_at, score_tab,
                             score_lo, term_at, term_tab, term_lo, day_at, month_tab, dom_tab,
                             day_lo, apr_code, factor, table, first, hz, smm_t, codes, lgd, out)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(chunk, range(0, n, _PROJECTION_CHUNK)))
    return out


def _table_of(values: np.ndarray, fn: Callable[[np.ndarray], Any]) -> tuple[np.ndarray, Any, int]:
    """``(at, table, lo)`` with ``table[at[i] - lo]`` equal to ``fn(values)[i]`` (``fn``
    elementwise, returning an array or a tuple of arrays): ``fn`` of each value from the
    smallest to the largest when they span a narrow range (``lookup.span``), else of every
    value (``at`` the positions)."""
    found = lookup.span(values)
    if found is None:
        return np.arange(len(values), dtype=np.int64), fn(values), 0
    lo, hi = found
    return values, fn(np.arange(lo, hi + 1, dtype=np.int64).astype(values.dtype)), lo


def _split_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``schedules._split_dates`` of days since 1970-01-01 (int64)."""
    return _split_dates(days.astype(np.int64).astype("datetime64[D]"))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _projected_loss_sums(lo, hi, bal, apr, code, rem_raw, mob, score_at, score_tab, score_lo,
                         term_at, term_tab, term_lo, day_at, month_tab, dom_tab, day_lo,
                         apr_code, factor, table, first, hz, smm, codes, lgd,
                         out):  # pragma: no cover - numba
    """``out[lo:hi]`` of :func:`projected_loss_rate`: per loan its band, term column, month
    and day of origination read from the tables (``table[at[i] - lo]``), the schedule's
    amounts in cents (``schedule_matrix``'s operations: cut-off balance, level payment from
    the annuity factor of its APR and remaining term, flat principal, flat fee, monthly or
    Actual/365 rate), then month by month the term S_t · h_t · B_t added to a sum that starts
    at 0.0, in month order (the order is this function's definition, and the oracle's), times
    ``lgd`` over the cut-off balance. The balance
    after each month is the schedule's (round_cents, operation for operation as
    ``engines.schedule_sums``); h_t = hz[band, term, min(mob + t + 1, n_age) − 1], the SMM
    likewise and 0 in the last month, S_{t+1} = S_t · (1 − h_t)(1 − smm_t)."""
    half = 0.5 + _HALF_UP_NUDGE  # schedules._round_half_up: floor(x + (0.5 + nudge))
    n_age = hz.shape[2]
    la, ep, ff, di = codes[0], codes[1], codes[2], codes[3]
    for li in range(lo, hi):
        c = code[li]
        r_i = max(np.int64(rem_raw[li]), 1)
        bal_i = bal[li]
        b = np.floor(bal_i * 100.0 + half)
        r = apr[li] / 12.0
        is_ff = c == ff
        is_di = c == di
        flat = np.floor(b / float(r_i)) if (c == ep or is_ff) else 0.0
        fee = np.floor(b * r + half) if is_ff else 0.0
        rate_m = 0.0 if is_ff else r
        apr_di = apr[li] if is_di else 0.0
        lev = 0.0
        if c == la:  # schedules._annuity_payment, then rounded half up
            if r > 0.0:
                lev = np.floor(b * r / factor[apr_code[li], r_i - 1] + half)
            else:
                lev = np.floor(b / float(r_i) + half)
        d = day_at[li] - day_lo
        m = np.int64(mob[li])
        idx = month_tab[d] + m - first
        dom0 = dom_tab[d] - 1
        start = table[idx] + min(dom0, table[idx + 1] - table[idx] - 1)
        bb = score_tab[score_at[li] - score_lo]
        tt = term_tab[term_at[li] - term_lo]
        surv = 1.0
        bop = bal_i
        hz_row = hz[bb, tt]
        smm_row = smm[bb, tt]
        rate = rate_m
        res = 0.0
        for j in range(r_i):
            col = min(m + j + 1, n_age) - 1
            h = hz_row[col]
            p = smm_row[col] if j != r_i - 1 else 0.0
            res += surv * h * bop
            surv = surv * ((1.0 - h) * (1.0 - p))
            if is_di:  # Actual/365 on the days from the previous due date to this one
                k = idx + j + 1
                end = table[k] + min(dom0, table[k + 1] - table[k] - 1)
                rate = apr_di * float(end - start) / 365.0
                start = end
            i = np.floor(b * rate + half) + fee
            q = lev - i
            if q < 0.0:
                q = 0.0
            if q > b:
                q = b
            q += flat
            if r_i == j + 1:
                q = b
            if q > b:
                q = b
            b -= q
            bop = b / 100.0
        out[li] = lgd * res / bal_i


def projected_loss_rate_np(loans: LoanArrays, assumptions: Any) -> np.ndarray:
    """The oracle of :func:`projected_loss_rate`: ``schedule_matrix`` on chunks of loans and
    the survival, hazard and balance matrices in numpy."""
    hz = np.asarray(assumptions.default_hazard, dtype=np.float64)
    smm_t = np.asarray(assumptions.prepay_smm, dtype=np.float64)
    terms = np.asarray(assumptions.terms)
    n_age = hz.shape[2]
    n = len(loans)
    out = np.zeros(n)
    lgd = 1.0 - float(assumptions.recovery_rate) * float(np.sum(assumptions.recovery_lag))
    for lo in range(0, n, _PROJECTION_CHUNK):
        sl = slice(lo, min(lo + _PROJECTION_CHUNK, n))
        bal = np.asarray(loans.balance[sl], dtype=np.float64)
        rem = np.maximum(np.asarray(loans.remaining_term[sl], dtype=np.int64), 1)
        mob = np.asarray(loans.months_on_book[sl], dtype=np.int64)
        band = np.asarray(loans.score_band[sl], dtype=np.int64)
        term_idx = np.minimum(np.searchsorted(terms, loans.term_months[sl]), len(terms) - 1)
        sm = schedule_matrix(bal, loans.apr[sl], rem, loans.repayment_type[sl],
                             loans.origination_date[sl], months_on_book=mob)
        T = sm.balance.shape[1]
        t_idx = np.arange(T)
        bop = np.concatenate([bal[:, None], sm.balance[:, :-1]], axis=1)
        age_col = np.minimum(mob[:, None] + t_idx[None, :] + 1, n_age) - 1
        alive = t_idx[None, :] < rem[:, None]
        h = np.where(alive, hz[band[:, None], term_idx[:, None], age_col], 0.0)
        p = smm_t[band[:, None], term_idx[:, None], age_col]
        p = np.where(alive & (t_idx[None, :] != rem[:, None] - 1), p, 0.0)
        step = (1.0 - h) * (1.0 - p)
        surv = np.concatenate([np.ones((len(bal), 1)), np.cumprod(step, axis=1)[:, :-1]], axis=1)
        terms_t = surv * h * bop
        total = np.zeros(len(bal))
        for t in range(T):  # month by month from 0.0, as the kernel adds them
            total += terms_t[:, t]
        out[sl] = lgd * total / bal
    return out


# --------------------------------------------------------------------------- regions
_REGION_CACHE: list[tuple[weakref.ref, np.ndarray, np.ndarray]] = []


def region_codes(region: np.ndarray, sort: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize`` of a pool's region strings: (codes, names), names in order of first
    appearance, or sorted with ``sort=True`` (the same result as ``pd.factorize(...,
    sort=True)``: the names sorted and the codes renumbered). The eligibility matrix, the
    segments and the re-check of one allocation share one factorisation of a read-only array
    (``LoanArrays`` fields are read-only): it is remembered for the last such array."""
    arr = np.asarray(region, dtype=object)
    hit = [(c, n) for ref, c, n in _REGION_CACHE if ref() is arr]
    if hit:
        codes, names = hit[0]
    else:
        known = value_codes(arr)  # read with the pool (dictionary-encoded): not hashed again
        if known is not None:
            codes, names = known
        else:
            codes, names = pd.factorize(pd.Series(arr, dtype=object))
            names = np.asarray(names, dtype=object)
        if not arr.flags.writeable:
            _REGION_CACHE[:] = [(weakref.ref(arr), codes, names)]
    if not sort:
        return codes, names
    if (codes < 0).any():  # missing regions: pandas' own sorted factorisation
        sorted_codes, sorted_names = pd.factorize(pd.Series(arr, dtype=object), sort=True)
        return sorted_codes, np.asarray(sorted_names, dtype=object)
    order = np.argsort(names)
    rank = np.empty(len(order), dtype=codes.dtype)
    rank[order] = np.arange(len(order), dtype=codes.dtype)
    return rank[codes], names[order]


# --------------------------------------------------------------------------- eligibility
def eligibility_matrix(loans: LoanArrays, registry: Registry, as_of: dt.date,
                       borrower_id: np.ndarray | None = None,
                       household_limit: np.ndarray | None = None,
                       excess: Mapping[str, np.ndarray] | None = None,
                       cashflow_apr: np.ndarray | None = None) -> np.ndarray:
    """(n_loans, n_partners) bool: partner may fund the loan. ``excess``: the loan rules'
    ``partners.rules.loan_rule_excesses``, ``cashflow_apr``: ``loans.cashflow_apr``, when the
    caller has them already."""
    ok_rules = loan_rule_ok(registry.rules, loans, borrower_id, as_of, household_limit, excess)
    r4_on = registry.rule("R4").applies_on(as_of)
    out = np.zeros((len(loans), len(registry.partners)), dtype=bool)
    region_code, region_names = region_codes(loans.region)
    code_of = {name: i for i, name in enumerate(region_names)}

    def in_regions(names: tuple[str, ...]) -> np.ndarray:
        codes = [code_of[n] for n in names if n in code_of]
        return lookup.isin(region_code, np.asarray(codes, dtype=region_code.dtype))

    cashflow_apr = loans.cashflow_apr if cashflow_apr is None else cashflow_apr
    for j, p in enumerate(registry.partners):
        e = p.eligibility
        m = ok_rules & (loans.credit_score >= e.score_floor) & (cashflow_apr <= e.apr_cap)
        m &= loans.term_months <= e.max_term_months
        m &= lookup.isin(loans.repayment_type, e.repayment_codes)
        if e.regions:
            m &= in_regions(e.regions)
        if p.is_local_bank and r4_on:
            m &= in_regions((str(p.regulatory.registered_region),))
        out[:, j] = m
    return out


# --------------------------------------------------------------------------- segments
@dataclass(frozen=True, slots=True)
class Segments:
    loan_segment: np.ndarray  # (n_loans,) segment index
    band: np.ndarray  # (n_seg,) score band index
    term: np.ndarray  # (n_seg,) original term (months)
    region: np.ndarray  # (n_seg,) object
    repayment_type: np.ndarray  # (n_seg,) code
    eligible: np.ndarray  # (n_seg, n_partners) bool
    balance: np.ndarray  # (n_seg,) CNY
    n_loans: np.ndarray  # (n_seg,)
    apr: np.ndarray  # (n_seg,) balance-weighted APR
    el_rate: np.ndarray  # (n_seg,) balance-weighted annual EL rate
    lifetime_el: np.ndarray  # (n_seg,) CNY

    def __len__(self) -> int:
        return len(self.balance)

    def label(self, s: int) -> str:
        return (f"score {SCORE_BAND_LABELS[int(self.band[s])]}, {int(self.term[s])}m, {self.region[s]}, "
                f"{RepaymentType.from_code(int(self.repayment_type[s])).value}")


def build_segments(loans: LoanArrays, eligible: np.ndarray, risk: LoanRisk,
                   cashflow_apr: np.ndarray | None = None) -> Segments:
    """Group loans by band × term × region × repayment type × eligibility pattern
    (``cashflow_apr``: ``loans.cashflow_apr`` when the caller has it already).

    Each loan's segment key is ``(((mask · n_regions + region) · 6 + band) · n_terms + term)
    · 4 + repayment type`` (mask: bit j set when partner j may fund it; regions in sorted
    order); segments are numbered in ascending key order. Two compiled passes
    (:func:`_segment_keys`, :func:`_segment_sums`): the keys, then each loan's segment from a
    table of the keys present and the segment sums added in loan order (as ``np.bincount``
    adds them); :func:`build_segments_np` is the oracle."""
    n_p = eligible.shape[1]
    region_code, region_names = region_codes(loans.region, sort=True)
    n = len(loans)
    if n == 0 or n_p > 62 or int(region_code.min()) < 0:
        return build_segments_np(loans, eligible, risk)
    band = loans.score_band
    term_idx = lookup.searchsorted(np.asarray(ALLOWED_TERMS), loans.term_months)
    n_reg = max(len(region_names), 1)
    key = np.empty(n, dtype=np.int64)
    lo, hi = _segment_keys(np.ascontiguousarray(eligible), region_code, band, term_idx,
                           np.asarray(loans.repayment_type), n_reg, len(ALLOWED_TERMS), key)
    if lookup.span(key) is None:  # keys too spread out for a table of them
        return build_segments_np(loans, eligible, risk)
    present = np.zeros(hi - lo + 1, dtype=np.bool_)
    present[key - lo] = True
    rank = np.cumsum(present, dtype=np.int64) - 1
    n_seg = int(rank[-1]) + 1
    inverse = np.empty(n, dtype=np.int64)
    first = np.full(n_seg, -1, dtype=np.int64)
    sums = np.zeros((4, n_seg))
    counts = np.zeros(n_seg, dtype=np.int64)
    _segment_sums(key, lo, rank, np.ascontiguousarray(loans.balance, dtype=np.float64),
                  np.ascontiguousarray(loans.cashflow_apr if cashflow_apr is None
                                       else cashflow_apr, dtype=np.float64),
                  np.ascontiguousarray(risk.annual_pd, dtype=np.float64),
                  np.ascontiguousarray(risk.lgd, dtype=np.float64),
                  np.ascontiguousarray(risk.lifetime_pd, dtype=np.float64),
                  inverse, first, sums, counts)
    bal = sums[0]
    safe = np.where(bal > 0, bal, 1.0)
    return Segments(
        loan_segment=inverse,
        band=band[first].astype(np.int64),
        term=loans.term_months[first].astype(np.int64),
        region=np.asarray(loans.region, dtype=object)[first],
        repayment_type=loans.repayment_type[first].astype(np.int64),
        eligible=eligible[first],
        balance=bal,
        n_loans=counts,
        apr=sums[1] / safe,
        el_rate=sums[2] / safe,
        lifetime_el=sums[3],
    )


@numba.njit(cache=True, nogil=True)
def _segment_keys(eligible, region, band, term, rtype, n_reg, n_terms,
                  key):  # pragma: no cover - numba
    """Each loan's segment key into ``key`` (:func:`build_segments`); returns its smallest
    and largest value."""
    n, n_p = eligible.shape
    lo = np.iinfo(np.int64).max
    hi = np.iinfo(np.int64).min
    for i in range(n):
        mask = 0
        for j in range(n_p):
            if eligible[i, j]:
                mask |= 1 << j
        k = (((mask * n_reg + region[i]) * 6 + band[i]) * n_terms + term[i]) * 4 + rtype[i]
        key[i] = k
        if k < lo:
            lo = k
        if k > hi:
            hi = k
    return lo, hi


@numba.njit(cache=True, nogil=True)
def _segment_sums(key, lo, rank, balance, cashflow_apr, annual_pd, lgd, lifetime_pd, inverse,
                  first, sums, counts):  # pragma: no cover - numba
    """Each loan's segment ``rank[key − lo]`` into ``inverse``, each segment's first loan,
    loan count and sums in loan order: balance, balance × cash-flow APR, balance × annual
    EL rate (annual PD × LGD), lifetime EL (lifetime PD × LGD × balance)."""
    for i in range(key.shape[0]):
        s = rank[key[i] - lo]
        inverse[i] = s
        if first[s] < 0:
            first[s] = i
        b = balance[i]
        counts[s] += 1
        sums[0, s] += b
        sums[1, s] += b * cashflow_apr[i]
        sums[2, s] += b * (annual_pd[i] * lgd[i])
        sums[3, s] += lifetime_pd[i] * lgd[i] * b


def build_segments_np(loans: LoanArrays, eligible: np.ndarray, risk: LoanRisk) -> Segments:
    """:func:`build_segments` in numpy array passes (its oracle, and what runs when the
    segment keys span too wide a range for a table)."""
    n_p = eligible.shape[1]
    region_code, region_names = region_codes(loans.region, sort=True)
    band = loans.score_band.astype(np.int64)
    term_idx = lookup.searchsorted(np.asarray(ALLOWED_TERMS), loans.term_months)
    mask = np.zeros(len(loans), dtype=np.int64)  # bit j: partner j may fund the loan
    for j in range(n_p):
        mask |= eligible[:, j].astype(np.int64) << j
    n_reg = max(len(region_names), 1)
    key = (((mask * n_reg + region_code) * 6 + band) * len(ALLOWED_TERMS) + term_idx) * 4 \
        + loans.repayment_type.astype(np.int64)
    inverse, uniq = lookup.factorize_sorted(key)
    n_seg = len(uniq)
    first = np.empty(n_seg, dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(key) - 1, -1, -1)  # first loan of each segment
    b = loans.balance
    bal = np.bincount(inverse, weights=b, minlength=n_seg)
    safe = np.where(bal > 0, bal, 1.0)
    apr = np.bincount(inverse, weights=b * loans.cashflow_apr, minlength=n_seg) / safe
    el = np.bincount(inverse, weights=b * risk.el_rate, minlength=n_seg) / safe
    life = np.bincount(inverse, weights=risk.lifetime_el(b), minlength=n_seg)
    return Segments(
        loan_segment=inverse.astype(np.int64),
        band=band[first],
        term=loans.term_months[first].astype(np.int64),
        region=np.asarray(loans.region, dtype=object)[first],
        repayment_type=loans.repayment_type[first].astype(np.int64),
        eligible=eligible[first],
        balance=bal,
        n_loans=np.bincount(inverse, minlength=n_seg),
        apr=apr,
        el_rate=el,
        lifetime_el=life,
    )


# --------------------------------------------------------------------------- LP
@dataclass
class _Rows:
    """Sparse ≤ rows with names (for infeasibility reports) and a flag: limit or request."""

    rows: list[np.ndarray] = field(default_factory=list)
    cols: list[np.ndarray] = field(default_factory=list)
    vals: list[np.ndarray] = field(default_factory=list)
    rhs: list[float] = field(default_factory=list)
    names: list[str | Callable[[], str]] = field(default_factory=list)
    is_request: list[bool] = field(default_factory=list)

    def add(self, cols: np.ndarray, vals: np.ndarray, rhs: float, name: str, request: bool = False) -> None:
        i = len(self.rhs)
        self.rows.append(np.full(len(cols), i, dtype=np.int64))
        self.cols.append(np.asarray(cols, dtype=np.int64))
        self.vals.append(np.asarray(vals, dtype=np.float64))
        self.rhs.append(float(rhs))
        self.names.append(name)
        self.is_request.append(request)

    def add_rows(self, sizes: np.ndarray, cols: np.ndarray, rhs: np.ndarray,
                 names: list[Callable[[], str]]) -> None:
        """Limit rows of ones, one per entry of ``sizes`` (its number of columns, taken in
        turn from ``cols``): the same rows as :meth:`add` one by one, their names written
        only if a report needs them."""
        i = len(self.rhs)
        self.rows.append(i + np.repeat(np.arange(len(sizes), dtype=np.int64), sizes))
        self.cols.append(np.asarray(cols, dtype=np.int64))
        self.vals.append(np.ones(len(cols)))
        self.rhs.extend(float(x) for x in rhs)
        self.names.extend(names)
        self.is_request.extend([False] * len(sizes))

    def name(self, i: int) -> str:
        got = self.names[i]
        return got if isinstance(got, str) else got()

    def matrix(self, n_vars: int) -> sparse.csr_matrix:
        if not self.rhs:
            return sparse.csr_matrix((0, n_vars))
        return sparse.csr_matrix(
            (np.concatenate(self.vals), (np.concatenate(self.rows), np.concatenate(self.cols))),
            shape=(len(self.rhs), n_vars))


@dataclass(frozen=True, slots=True)
class LPResult:
    amounts: np.ndarray  # (n_seg, n_partners) CNY
    objective_value: float  # CNY moved (max-transfer) or lifetime EL moved (min-retained-el)
    n_vars: int
    n_rows: int
    status: str


def _partner_limit(p: Partner, registry: Registry, as_of: dt.date) -> list[tuple[str, float]]:
    """Upper limits on a partner's total (name, CNY): capacity, R2, R3 headroom."""
    out = [(f"capacity ({p.id})", p.capacity)]
    for rid, fn in (("R2", r2_headroom), ("R3", r3_headroom)):
        rule = registry.rule(rid)
        if rule.applies_on(as_of):
            head = fn(rule, p)
            if head is not None:
                out.append((f"{rid} ({p.id})", head))
    return out


def solve_segments(seg: Segments, registry: Registry, mode: Mode, objective: Objective,
                   as_of: dt.date, min_transfer_share: float = 0.0) -> LPResult:
    """The LP over segments; raises ``InfeasibleAllocation`` naming the binding limits.

    Variables: ``x[s, p]`` for eligible pairs, then one total ``T_p`` per partner tied by the
    equality ``Σ_s x[s, p] − T_p = 0``; limits on a partner's book are written on ``T_p`` so that
    every row stays sparse (a concentration row holds the region's variables and ``T_p`` only).
    Amounts are in units of 1/1000 of the pool balance.
    """
    n_seg, n_p = seg.eligible.shape
    s_idx, p_idx = np.nonzero(seg.eligible & (seg.balance > 0)[:, None])
    n_x = len(s_idx)
    n_vars = n_x + n_p
    t_col = n_x + np.arange(n_p)  # column of T_p
    unit = max(float(seg.balance.sum()) / 1000.0, 1e-9)  # the pool is 1,000 units
    bal_u = seg.balance / unit
    rows = _Rows()
    var = np.arange(n_x)
    r1 = registry.rule("R1")
    if mode is Mode.JOINT and r1.applies_on(as_of):
        cap_share = 1.0 - float(r1.params["min_platform_share"])
    else:
        cap_share = 1.0
    # segment supply: one row per segment with two or more variables (else the bound does it)
    order = np.argsort(s_idx, kind="stable")
    segs_with_vars, starts, counts = np.unique(s_idx[order], return_index=True, return_counts=True)
    multi = counts > 1
    segs = segs_with_vars[multi]

    def supply_name(s: int) -> Callable[[], str]:
        if cap_share < 1:
            return lambda: f"R1 (platform keeps {1 - cap_share:.0%} of segment {seg.label(s)})"
        return lambda: f"supply (segment {seg.label(s)} balance)"

    rows.add_rows(counts[multi], var[order[np.repeat(multi, counts)]], cap_share * bal_u[segs],
                  [supply_name(int(s)) for s in segs])
    ub_x = cap_share * bal_u[s_idx]
    # partner totals: Σ_s x[s, p] − T_p = 0
    eq_rows = np.concatenate([p_idx, np.arange(n_p)])
    eq_cols = np.concatenate([var, t_col])
    eq_vals = np.concatenate([np.ones(n_x), -np.ones(n_p)])
    A_eq = sparse.csr_matrix((eq_vals, (eq_rows, eq_cols)), shape=(n_p, n_vars))
    net = seg.apr - seg.el_rate
    one = np.ones(1)
    for j, p in enumerate(registry.partners):
        mine = var[p_idx == j]
        tj = np.array([t_col[j]])
        for name, limit in _partner_limit(p, registry, as_of):
            rows.add(tj, one, limit / unit, name)
        if p.commitment > 0:
            rows.add(tj, -one, -p.commitment / unit, f"commitment ({p.id})", request=True)
        if len(mine) == 0:
            continue
        ms = s_idx[mine]
        c = p.concentration
        for label, key, share_cap in (("region", seg.region[ms], c.max_region_share),
                                      ("score band", seg.band[ms], c.max_score_band_share)):
            if share_cap is None or share_cap >= 1:
                continue
            for g in np.unique(key):
                cols = mine[key == g]
                shown = g if label == "region" else SCORE_BAND_LABELS[int(g)]
                rows.add(np.append(cols, tj), np.append(np.ones(len(cols)), -(share_cap - LP_MARGIN)),
                         0.0, f"concentration ({p.id}: {label} {shown} <= {share_cap:.0%})")
        coef = (p.required_yield + LP_MARGIN) - net[ms]
        if np.any(coef > 0):
            rows.add(mine, coef, 0.0, f"yield floor ({p.id}: WA APR - EL >= {p.required_yield:.2%})")
    if min_transfer_share > 0:
        rows.add(t_col, -np.ones(n_p), -min_transfer_share * 1000.0,
                 f"minimum transfer ({min_transfer_share:.0%} of the pool)", request=True)
    if objective is Objective.MAX_TRANSFER:
        c_obj = np.concatenate([-np.ones(n_x), np.zeros(n_p)])
    else:
        el_per = seg.lifetime_el / np.where(seg.balance > 0, seg.balance, 1.0)
        c_obj = np.concatenate([-el_per[s_idx], np.zeros(n_p)])
    A = rows.matrix(n_vars)
    b = np.asarray(rows.rhs)
    ub = np.concatenate([ub_x, np.full(n_p, np.inf)])
    options = {"primal_feasibility_tolerance": 1e-9, "dual_feasibility_tolerance": 1e-9}
    res = linprog(c_obj, A_ub=A, b_ub=b, A_eq=A_eq, b_eq=np.zeros(n_p),
                  bounds=np.column_stack([np.zeros(n_vars), ub]), method="highs", options=options)
    if res.status == 2:
        _explain_infeasible(rows, A, b, A_eq, ub, unit, n_vars)
    if res.status != 0:
        raise AllocationError(f"the allocation LP did not solve: {res.message}")
    x = np.clip(np.asarray(res.x[:n_x], dtype=np.float64), 0.0, ub_x) * unit
    amounts = np.zeros((n_seg, n_p))
    amounts[s_idx, p_idx] = x
    amounts = _enforce_upper_limits(amounts, seg, registry, cap_share, as_of)
    obj = float(amounts.sum()) if objective is Objective.MAX_TRANSFER else float(
        (amounts * (seg.lifetime_el / np.where(seg.balance > 0, seg.balance, 1.0))[:, None]).sum())
    return LPResult(amounts, obj, n_vars, len(b) + n_p, str(res.message))


def _enforce_upper_limits(amounts: np.ndarray, seg: Segments, registry: Registry, cap_share: float,
                          as_of: dt.date) -> np.ndarray:
    """Remove solver float noise on the hard upper limits by scaling down (never up): a segment
    row (keeps partner totals' mix nearly unchanged), then each partner column (keeps its
    concentration shares and yield exactly)."""
    out = amounts.copy()
    row = out.sum(axis=1)
    limit = cap_share * seg.balance
    over = row > limit
    if over.any():
        out[over] *= (limit[over] / row[over])[:, None]
    for j, p in enumerate(registry.partners):
        tot = out[:, j].sum()
        lim = min(v for _, v in _partner_limit(p, registry, as_of))
        if tot > lim:
            out[:, j] *= max(lim, 0.0) / tot
    return out


def _explain_infeasible(rows: _Rows, A: sparse.csr_matrix, b: np.ndarray, A_eq: sparse.csr_matrix,
                        ub: np.ndarray, unit: float, n_vars: int) -> None:
    """Phase-1 LP: a slack on every limit (requests stay hard) and one "eligible supply" slack
    per request; minimise the total slack; name the rows whose slack is positive."""
    limit_rows = [i for i, r in enumerate(rows.is_request) if not r]
    req_rows = [i for i, r in enumerate(rows.is_request) if r]
    n_l, n_r = len(limit_rows), len(req_rows)
    m = len(b)
    S = sparse.csr_matrix((-np.ones(n_l), (limit_rows, np.arange(n_l))), shape=(m, n_l))
    # extra supply for a request (−x ≤ −commit becomes −x − e ≤ −commit): eligibility short
    E = sparse.csr_matrix((-np.ones(n_r), (req_rows, np.arange(n_r))), shape=(m, n_r))
    A2 = sparse.hstack([A, S, E]).tocsr()
    weights = np.concatenate([np.zeros(n_vars), np.ones(n_l), np.full(n_r, 10.0)])
    bounds = np.vstack([np.column_stack([np.zeros(n_vars), ub]),
                        np.column_stack([np.zeros(n_l + n_r), np.full(n_l + n_r, np.inf)])])
    A_eq2 = sparse.hstack([A_eq, sparse.csr_matrix((A_eq.shape[0], n_l + n_r))]).tocsr()
    res = linprog(weights, A_ub=A2, b_ub=b, A_eq=A_eq2, b_eq=np.zeros(A_eq.shape[0]), bounds=bounds,
                  method="highs")
    if res.status != 0:
        raise InfeasibleAllocation(f"allocation infeasible and the diagnosis failed: {res.message}", [])
    slack = res.x[n_vars:]
    parts: list[tuple[float, str]] = []
    for k, i in enumerate(limit_rows):
        if slack[k] * unit > 1e-3:
            parts.append((slack[k] * unit, rows.name(i)))
    for k, i in enumerate(req_rows):
        if slack[n_l + k] * unit > 1e-3:
            parts.append((slack[n_l + k] * unit,
                          f"{rows.name(i)} exceeds the balance eligible for it"))
    parts.sort(key=lambda t: -t[0])
    requests = [rows.name(i) for i in req_rows]
    names = [n for _, n in parts]
    detail = "; ".join(f"{n} (short by {v:,.2f} CNY-equivalent)" for v, n in parts) or "none found"
    raise InfeasibleAllocation(
        f"allocation infeasible: the request ({', '.join(requests) or 'no minimums'}) cannot be met; "
        f"the constraints that bind: {detail}. Nothing was written.", names)


# --------------------------------------------------------------------------- split to loans
def _joint_shares(seg: Segments, amounts: np.ndarray) -> np.ndarray:
    """(n_loans, n_parties): segment shares floored to the 2⁻³² grid; platform gets the rest."""
    bal = np.where(seg.balance > 0, seg.balance, 1.0)
    part = np.floor(amounts / bal[:, None] / SHARE_GRID) * SHARE_GRID
    part = np.clip(part, 0.0, 1.0)
    seg_shares = np.column_stack([1.0 - part.sum(axis=1), part])
    # each loan's row of its segment: ``seg_shares[seg.loan_segment]``, the same rows; np.take
    # copies whole rows (a fifth of fancy indexing's time on B1's million loans)
    return np.take(seg_shares, seg.loan_segment, axis=0)


def _loan_order(loan_id: np.ndarray) -> np.ndarray:
    """Rank of each loan in ``loan_id`` order (the documented forward-flow order)."""
    ids = np.asarray(loan_id).astype(str)
    order = np.argsort(ids, kind="stable")
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))
    return rank


def _forward_flow_owner(seg: Segments, amounts: np.ndarray, balance: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """(n_loans,) owner: partner index or −1 (platform), by the midpoint rule (module doc)."""
    n_p = amounts.shape[1]
    idx = np.lexsort((rank, seg.loan_segment))
    s_sorted = seg.loan_segment[idx]
    b_sorted = balance[idx]
    cum = np.cumsum(b_sorted)
    start = np.concatenate([[0.0], cum])[np.searchsorted(s_sorted, s_sorted, side="left")]
    mid = cum - start - b_sorted / 2.0
    bounds = np.cumsum(amounts, axis=1)[s_sorted]  # (n_loans, n_p)
    k = (mid[:, None] >= bounds).sum(axis=1)
    owner_sorted = np.where(k < n_p, k, -1)
    # a partner with zero target in the segment must not receive loans: k only counts bounds
    # passed, and a zero-width interval is passed together with the previous one
    owner = np.empty(len(balance), dtype=np.int64)
    owner[idx] = owner_sorted
    return owner


def _repair_forward_flow(owner: np.ndarray, loans: LoanArrays, risk: LoanRisk, registry: Registry,
                         as_of: dt.date, rank: np.ndarray) -> np.ndarray:
    owner = owner.copy()
    net = loans.cashflow_apr - risk.el_rate
    band = loans.score_band
    for j, p in enumerate(registry.partners):
        limit = min(v for _, v in _partner_limit(p, registry, as_of))
        for _ in range(1000):
            mine = np.flatnonzero(owner == j)
            if len(mine) == 0:
                break
            b = loans.balance[mine]
            total = b.sum()
            fix: np.ndarray | None = None
            if total > limit + AMOUNT_TOL:
                fix = _drop_until(mine, b, rank[mine], total - limit)
            c = p.concentration
            if fix is None and c.max_region_share is not None:
                fix = _fix_share(mine, b, loans.region[mine], rank[mine], c.max_region_share, total)
            if fix is None and c.max_score_band_share is not None:
                fix = _fix_share(mine, b, band[mine], rank[mine], c.max_score_band_share, total)
            if fix is None:
                contrib = b * (net[mine] - p.required_yield)
                deficit = -contrib.sum()
                if deficit > REL_TOL * total:
                    o = np.argsort(net[mine], kind="stable")
                    gain = np.cumsum(-contrib[o])
                    k = int(np.searchsorted(gain, deficit - 1e-12 * total)) + 1
                    fix = mine[o[:k]]
            if fix is None:
                break
            owner[fix] = -1
    return owner


def _drop_until(mine: np.ndarray, b: np.ndarray, rank: np.ndarray, need: float) -> np.ndarray:
    o = np.argsort(-rank, kind="stable")  # highest loan_id first
    k = int(np.searchsorted(np.cumsum(b[o]), need - 1e-9)) + 1
    return mine[o[:k]]


def _fix_share(mine: np.ndarray, b: np.ndarray, key: np.ndarray, rank: np.ndarray, limit: float,
               total: float) -> np.ndarray | None:
    keys, inv = np.unique(key, return_inverse=True)
    amt = np.bincount(inv, weights=b)
    over = amt - limit * total
    if not np.any(over > REL_TOL * total):
        return None
    g = int(np.argmax(over))
    need = (amt[g] - limit * total) / (1.0 - limit) if limit < 1 else 0.0
    sel = inv == g
    return _drop_until(mine[sel], b[sel], rank[sel], need)


# --------------------------------------------------------------------------- re-check
@dataclass(frozen=True, slots=True)
class CheckReport:
    ok: bool
    breaches: tuple[Breach, ...]
    items: tuple[dict[str, Any], ...]  # every check performed: name, party, value, limit, ok
    excluded: dict[str, Any]  # loans no partner may fund by a loan rule: counts per rule
    # the pool's loans that break a loan rule (kept by the platform), one finding per rule;
    # R8/R9 name the worst loan with its shown and cash-flow APR
    loan_rule_findings: tuple[Breach, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "breaches": [b.as_dict() for b in self.breaches],
                "checks": list(self.items), "excluded_by_loan_rules": self.excluded,
                "loan_rule_findings": [b.as_dict() for b in self.loan_rule_findings]}


@dataclass
class _Report:
    """A re-check's report as its checks run: :func:`verify_allocation` and its oracle
    :func:`verify_allocation_np` find the values their own ways and report each check
    through the one method for it (its item, and its breach worded once), so that the two
    reports agree check for check."""

    loan_id: np.ndarray
    items: list[dict[str, Any]] = field(default_factory=list)
    breaches: list[Breach] = field(default_factory=list)

    def item(self, name: str, party: str | None, value: float, limit: float, ok: bool) -> None:
        self.items.append({"check": name, "party": party, "value": float(value),
                           "limit": float(limit), "ok": bool(ok)})

    def _ids(self, bad: np.ndarray) -> tuple[str, ...]:
        return tuple(map(str, self.loan_id[bad][:20]))

    def shares(self, name: str, n_bad: int, amount: float, bad: np.ndarray | None) -> None:
        """A check on the shares' values: ``n_bad`` rows break it (``bad`` the mask, needed
        only when some do)."""
        self.item(name, None, n_bad, 0, not n_bad)
        if n_bad:
            assert bad is not None
            self.breaches.append(Breach("shares", f"{name}: {n_bad} loan(s) break it", amount,
                                        "share", None, n_bad, self._ids(bad)))

    def forward_flow(self, shares: np.ndarray) -> None:
        """Forward flow: every loan held whole by one party."""
        whole = np.all((shares == 0) | (shares == 1), axis=1)
        n_split = int((~whole).sum())
        self.item("forward flow: whole loans", None, n_split, 0, not n_split)
        if n_split:
            self.breaches.append(Breach("forward-flow", f"forward flow: {n_split} loan(s) are "
                                        "split", float(n_split), "loans", None, n_split,
                                        self._ids(~whole)))

    def loan_rules(self, loans: LoanArrays, registry: Registry, as_of: dt.date,
                   borrower_id: np.ndarray | None, household_limit: np.ndarray | None,
                   excess: Mapping[str, np.ndarray] | None, funded_any: np.ndarray
                   ) -> tuple[dict[str, Any], list[Breach]]:
        """No partner may hold a share of a loan that breaks a loan rule in force: per rule,
        the pool's loans breaking it (``excluded`` counts, the findings) and the
        partner-funded ones among them (breaches); returns (excluded, findings)."""
        excluded: dict[str, Any] = {}
        findings: list[Breach] = []
        for rule in registry.rules:
            if rule.scope == "loan" and rule.applies_on(as_of):
                excess_r = (excess[rule.id] if excess is not None and rule.id in excess
                            else loan_rule_excess(rule, loans, borrower_id, household_limit))
                pool_breach = check_loan_rule(rule, loans, borrower_id, excess=excess_r)
                excluded[rule.id] = pool_breach[0].n_loans if pool_breach else 0
                findings.extend(pool_breach)
                # the partner-funded loans breaking it are among the pool's
                found = (check_loan_rule(rule, loans, borrower_id, funded_by_partner=funded_any,
                                         excess=excess_r) if pool_breach else [])
                self.item(f"{rule.id} on partner-funded loans", None,
                          found[0].n_loans if found else 0, 0, not found)
                self.breaches.extend(found)
        return excluded, findings

    def platform_share(self, found: list[Breach], min_platform: float, floor: float) -> None:
        """R1: ``found`` its breaches, ``min_platform`` the smallest platform share of a
        partner-funded loan (1.0 when none is)."""
        self.item("R1 platform share of joint loans", PLATFORM_ID, min_platform, floor,
                  not found)
        self.breaches.extend(found)

    def platform_funding(self, registry: Registry, as_of: dt.date) -> None:
        """R7, when in force."""
        r7 = registry.rule("R7")
        if r7.applies_on(as_of):
            found = check_platform_funding(r7, registry.platform)
            self.item("R7 platform funding", PLATFORM_ID, len(found), 0, not found)
            self.breaches.extend(found)

    def eligibility(self, p: Partner, cname: str, n_bad: int, bad: np.ndarray | None,
                    amt: np.ndarray) -> None:
        """Partner ``p``'s eligibility criterion ``cname``: ``n_bad`` loans it holds fail it
        (``bad`` the mask, needed only when some do), ``amt`` its amount per loan."""
        self.item(f"eligibility.{cname}", p.id, n_bad, 0, not n_bad)
        if n_bad:
            assert bad is not None
            b = bad
            self.breaches.append(Breach("eligibility", f"eligibility ({p.id}): {int(b.sum())} "
                                        f"loan(s) fail {cname}, {float(amt[b].sum()):,.2f} CNY",
                                        float(amt[b].sum()), "CNY", p.id, int(b.sum()),
                                        self._ids(b)))

    def party_amount(self, p: Partner, funded: float, held: np.ndarray, mode: Mode,
                     balance: np.ndarray, registry: Registry, as_of: dt.date) -> None:
        """Partner ``p`` funding ``funded`` CNY (``held``: the loans it holds a share of):
        its capacity, its commitment and the R2 / R3 limits in force."""
        tol = AMOUNT_TOL + REL_TOL * max(funded, 1.0)
        self.item("capacity", p.id, funded, p.capacity, funded <= p.capacity + tol)
        if funded > p.capacity + tol:
            self.breaches.append(Breach("capacity", f"capacity ({p.id}): funds {funded:,.2f} > "
                                        f"capacity {p.capacity:,.2f}; over by "
                                        f"{funded - p.capacity:,.2f} CNY",
                                        funded - p.capacity, "CNY", p.id))
        if p.commitment > 0:
            slack = _rounding_allowance(mode, balance, held, p.commitment)
            ok = funded >= p.commitment - slack
            self.item("commitment", p.id, funded, p.commitment, ok)
            if not ok:
                self.breaches.append(Breach("commitment", f"commitment ({p.id}): funds "
                                            f"{funded:,.2f} < {p.commitment:,.2f}",
                                            p.commitment - funded, "CNY", p.id))
        for rid in ("R2", "R3"):
            rule = registry.rule(rid)
            if rule.applies_on(as_of):
                found = check_party_amount(rule, p, funded)
                head = r2_headroom(rule, p) if rid == "R2" else r3_headroom(rule, p)
                if head is not None:
                    self.item(rid, p.id, funded, head, not found)
                self.breaches.extend(found)

    def local_region(self, p: Partner, found: list[Breach]) -> None:
        """R4 for local bank ``p``: ``found`` its breaches."""
        self.item("R4", p.id, found[0].amount if found else 0.0, 0.0, not found)
        self.breaches.extend(found)

    def concentration(self, p: Partner, cname: str, by: np.ndarray, labels: Any,
                      limit: float) -> None:
        """Partner ``p``'s largest share of its book in one region or score band: ``by`` the
        shares per code, ``labels[k]`` code k's name."""
        worst = int(np.argmax(by))
        ok = by[worst] <= limit + SHARE_TOL
        self.item(f"concentration.{cname}", p.id, by[worst], limit, ok)
        if not ok:
            self.breaches.append(Breach("concentration", f"concentration ({p.id}): {cname} "
                                        f"{labels[worst]} is {by[worst]:.4%} of its book > "
                                        f"{limit:.2%}", float(by[worst] - limit), "share", p.id))

    def yield_floor(self, p: Partner, wy: float) -> None:
        """Partner ``p``'s balance-weighted APR − EL ``wy`` against its required yield."""
        ok = wy >= p.required_yield - SHARE_TOL
        self.item("yield floor", p.id, wy, p.required_yield, ok)
        if not ok:
            self.breaches.append(Breach("yield", f"yield floor ({p.id}): WA APR - EL {wy:.4%} < "
                                        f"required {p.required_yield:.4%}",
                                        p.required_yield - wy, "apr", p.id))

    def minimum_transfer(self, shares: np.ndarray, balance: np.ndarray, funded_any: np.ndarray,
                         mode: Mode, min_transfer_share: float) -> None:
        """The share of the pool moved off the platform, when a minimum is asked for."""
        if min_transfer_share <= 0:
            return
        moved = float((shares[:, 1:].sum(axis=1) * balance).sum())
        need = min_transfer_share * float(balance.sum())
        slack = _rounding_allowance(mode, balance, funded_any, need)
        self.item("minimum transfer", None, moved, need, moved >= need - slack)
        if moved < need - slack:
            self.breaches.append(Breach("minimum transfer", f"minimum transfer: moved "
                                        f"{moved:,.2f} < {need:,.2f}", need - moved, "CNY"))

    def report(self, excluded: dict[str, Any], findings: list[Breach]) -> CheckReport:
        return CheckReport(not self.breaches, tuple(self.breaches), tuple(self.items),
                           excluded, tuple(findings))


def _checked_shares(loans: LoanArrays, shares: np.ndarray, party_ids: tuple[str, ...],
                    registry: Registry) -> np.ndarray:
    """``shares`` as float64, shaped (n_loans, n_parties) with the registry's parties in its
    order, else ``AllocationError``."""
    n = len(loans)
    shares = np.asarray(shares, dtype=np.float64)
    expected = registry.party_ids
    if tuple(party_ids) != expected or shares.shape != (n, len(expected)):
        raise AllocationError(must_be("shares", f"shaped ({n}, {len(expected)}) with parties {expected}",
                                      f"{shares.shape} with {tuple(party_ids)}"))
    return shares


def verify_allocation_np(loans: LoanArrays, shares: np.ndarray, party_ids: tuple[str, ...],
                      registry: Registry, risk: LoanRisk, mode: Mode | str, as_of: dt.date,
                      borrower_id: np.ndarray | None = None, min_transfer_share: float = 0.0,
                      household_limit: np.ndarray | None = None,
                      excess: Mapping[str, np.ndarray] | None = None) -> CheckReport:
    """:func:`verify_allocation` in numpy array passes (its oracle, and what it runs for more
    than 7 parties or loans without a region)."""
    mode = parse_mode(mode)
    n = len(loans)
    shares = _checked_shares(loans, shares, party_ids, registry)
    out = _Report(loans.loan_id)
    # shares: in [0, 1], rows sum to 1 (exactly, on the 2^-32 grid)
    # whole-array passes first; the per-loan flags only when some value is off (min and max
    # propagate NaN, and ±inf falls outside [0, 1]: within bounds means finite too)
    if shares.size == 0 or (shares.min() >= 0 and shares.max() <= 1):
        bad_range = np.zeros(n, dtype=bool)
    else:
        bad_range = np.any((shares < 0) | (shares > 1) | ~np.isfinite(shares), axis=1)
    # the checks below read the shares party by party: from a column-major copy (one pass),
    # each party's column is contiguous instead of strided across every row
    by_party = np.asfortranarray(shares)
    row_sum = _row_sums(by_party if shares.shape[1] < 8 else shares)
    bad_sum = np.abs(row_sum - 1.0) > 1e-12
    for name, bad, amount in (("shares in [0, 1]", bad_range, 1.0),
                              ("shares sum to 1", bad_sum, float(np.max(np.abs(row_sum - 1.0))) if n else 0.0)):
        out.shares(name, int(bad.sum()), amount, bad)
    if mode is Mode.FORWARD_FLOW:
        out.forward_flow(shares)
    partner_sh = by_party[:, 1:]
    funded_any = np.zeros(n, dtype=bool)
    for j in range(partner_sh.shape[1]):  # column by column: no (n, k) temporary
        funded_any |= partner_sh[:, j] > 0
    excluded, findings = out.loan_rules(loans, registry, as_of, borrower_id, household_limit,
                                        excess, funded_any)
    r1 = registry.rule("R1")
    if mode is Mode.JOINT and r1.applies_on(as_of):
        partner_total = (_row_sums(partner_sh) if partner_sh.shape[1] < 8
                         else shares[:, 1:].sum(axis=1))
        out.platform_share(check_platform_share(r1, loans, by_party[:, 0], partner_total),
                           float(np.min(by_party[funded_any, 0])) if funded_any.any() else 1.0,
                           float(r1.params["min_platform_share"]))
    out.platform_funding(registry, as_of)
    cashflow_apr = loans.cashflow_apr
    net = cashflow_apr - risk.el_rate
    region_code, region_names = region_codes(loans.region)
    band = loans.score_band
    for j, p in enumerate(registry.partners):
        sh = partner_sh[:, j]
        held = sh > 0
        amt = sh * loans.balance
        funded = float(amt.sum())
        # eligibility, criterion by criterion
        e = p.eligibility
        crit = {
            "score_floor": loans.credit_score < e.score_floor,
            "apr_cap": cashflow_apr > e.apr_cap,
            "max_term_months": loans.term_months > e.max_term_months,
            "repayment_types": ~lookup.isin(loans.repayment_type, e.repayment_codes),
        }
        if e.regions:
            crit["regions"] = ~np.isin(region_names, np.asarray(e.regions, dtype=object))[region_code]
        for cname, fails in crit.items():
            bad = held & fails
            out.eligibility(p, cname, int(bad.sum()), bad, amt)
        out.party_amount(p, funded, held, mode, loans.balance, registry, as_of)
        r4 = registry.rule("R4")
        if r4.applies_on(as_of) and p.is_local_bank:
            out.local_region(p, check_local_region(r4, p, loans, sh))
        if funded > 0:
            c = p.concentration
            for cname, key, limit in (("region", region_code, c.max_region_share),
                                      ("score band", band, c.max_score_band_share)):
                if limit is None:
                    continue
                # the held amounts summed per code (region codes, score bands: small
                # integers), each bin in loan order; codes not held sum to 0 and are never
                # the largest (funded > 0), so the worst is the same as over the codes held
                codes = key[held]
                if codes.size and int(codes.min()) >= 0:
                    by = np.bincount(codes, weights=amt[held]) / funded
                    keys = np.arange(len(by))
                else:  # a missing region (code -1): factorise the codes held
                    inv, keys = pd.factorize(codes, sort=True)
                    by = np.bincount(inv, weights=amt[held]) / funded
                names = region_names if cname == "region" else SCORE_BAND_LABELS
                out.concentration(p, cname, by, [names[int(k)] for k in keys], limit)
            out.yield_floor(p, float((amt * net).sum() / funded))
    out.minimum_transfer(shares, loans.balance, funded_any, mode, min_transfer_share)
    return out.report(excluded, findings)


def verify_allocation(loans: LoanArrays, shares: np.ndarray, party_ids: tuple[str, ...],
                      registry: Registry, risk: LoanRisk, mode: Mode | str, as_of: dt.date,
                      borrower_id: np.ndarray | None = None, min_transfer_share: float = 0.0,
                      household_limit: np.ndarray | None = None,
                      excess: Mapping[str, np.ndarray] | None = None,
                      cashflow_apr: np.ndarray | None = None) -> CheckReport:
    """Re-check every rule and constraint on the loan-level shares, from the registry and the
    rules alone (no solver output). ``shares`` is (n_loans, n_parties) in ``party_ids`` order,
    ``"platform"`` first. ``excess``: each loan rule's per-loan excess
    (``partners.rules.loan_rule_excesses``, a function of the loans and the rule alone) when
    the caller has computed it already, as ``allocate`` has for the eligibility (likewise
    ``cashflow_apr``, ``loans.cashflow_apr``).

    The per-loan work is two compiled passes: one over the rows (range, row sums, funded
    loans, R1; :func:`_share_rows`) and one per partner (held loans, each eligibility
    criterion's failures, R4, concentration sums per region and band, the funded amounts and
    yields; :func:`_partner_pass`); a check that finds a breach is worked out again by the
    array expressions of :func:`verify_allocation_np` (its oracle: the same report, tested)
    to name the loans and amounts."""
    mode = parse_mode(mode)
    n = len(loans)
    shares = _checked_shares(loans, shares, party_ids, registry)
    region_code, region_names = region_codes(loans.region)
    if n == 0 or not 2 <= shares.shape[1] <= 7 or int(region_code.min()) < 0:
        return verify_allocation_np(loans, shares, party_ids, registry, risk, mode, as_of,
                                    borrower_id, min_transfer_share, household_limit, excess)
    shares = np.ascontiguousarray(shares)
    out = _Report(loans.loan_id)
    r1 = registry.rule("R1")
    r1_on = mode is Mode.JOINT and r1.applies_on(as_of)
    r1_floor = float(r1.params["min_platform_share"]) if r1_on else 0.0
    funded_any = np.empty(n, dtype=bool)
    counts, stats = _share_rows(shares, r1_floor, SHARE_TOL, funded_any)
    n_bad_range, n_bad_sum, n_r1_bad, n_funded = (int(x) for x in counts)
    if n_bad_range:  # NaN or out of range: the array checks name the rows and the amounts
        return verify_allocation_np(loans, shares, party_ids, registry, risk, mode, as_of,
                                    borrower_id, min_transfer_share, household_limit, excess)
    out.shares("shares in [0, 1]", 0, 1.0, None)
    out.shares("shares sum to 1", n_bad_sum, float(stats[0]),
               np.abs(_row_sums(shares) - 1.0) > 1e-12 if n_bad_sum else None)
    if mode is Mode.FORWARD_FLOW:
        out.forward_flow(shares)
    excluded, findings = out.loan_rules(loans, registry, as_of, borrower_id, household_limit,
                                        excess, funded_any)
    if r1_on:
        out.platform_share(check_platform_share(r1, loans, shares[:, 0],
                                                _row_sums(shares[:, 1:])) if n_r1_bad else [],
                           float(stats[1]) if n_funded else 1.0, r1_floor)
    out.platform_funding(registry, as_of)
    cashflow_apr = loans.cashflow_apr if cashflow_apr is None else cashflow_apr
    net = cashflow_apr - risk.el_rate
    band = loans.score_band
    r4 = registry.rule("R4")
    balance = np.ascontiguousarray(loans.balance, dtype=np.float64)
    amt = np.empty(n)  # per partner: its share × balance, and × (APR − EL), loan by loan
    amt_net = np.empty(n)
    by_region = np.zeros(max(len(region_names), 1))
    by_band = np.zeros(len(SCORE_BAND_LABELS))
    rt_table = np.zeros(256, dtype=np.bool_)
    for j, p in enumerate(registry.partners):
        e = p.eligibility
        rt_table[:] = False
        rt_table[np.asarray(e.repayment_codes, dtype=np.int64) % 256] = True
        region_ok = (np.isin(region_names, np.asarray(e.regions, dtype=object)) if e.regions
                     else np.ones(len(region_names), dtype=bool))
        local = r4.applies_on(as_of) and p.is_local_bank
        home = str(p.regulatory.registered_region) if local else None
        home_code = int(np.flatnonzero(region_names == home)[0]) if (
            home is not None and (region_names == home).any()) else -1
        counts = _partner_pass(shares, j + 1, balance, np.asarray(loans.credit_score),
                               float(e.score_floor), cashflow_apr, float(e.apr_cap),
                               np.asarray(loans.term_months), float(e.max_term_months),
                               np.asarray(loans.repayment_type), rt_table, region_code,
                               region_ok, local, home_code, SHARE_TOL, band, net, amt, amt_net,
                               by_region, by_band)
        funded = float(amt.sum())
        sh = shares[:, j + 1]
        # eligibility, criterion by criterion: counts from the pass; a breach named by arrays
        crit_names = ["score_floor", "apr_cap", "max_term_months", "repayment_types"]
        if e.regions:
            crit_names.append("regions")
        for k, cname in enumerate(crit_names):
            n_bad = int(counts[1 + k])
            out.eligibility(p, cname, n_bad, (sh > 0) & _criterion_fails(
                cname, loans, p, cashflow_apr, region_ok[region_code]) if n_bad else None, amt)
        out.party_amount(p, funded, sh > 0, mode, loans.balance, registry, as_of)
        if local:
            out.local_region(p, check_local_region(r4, p, loans, sh) if counts[6] else [])
        if funded > 0:
            c = p.concentration
            for cname, sums, limit in (("region", by_region, c.max_region_share),
                                       ("score band", by_band, c.max_score_band_share)):
                if limit is None:
                    continue
                # the held amounts summed per code in loan order (the pass); codes not held
                # sum to 0 and are never the largest (funded > 0)
                out.concentration(p, cname, sums / funded,
                                  region_names if cname == "region" else SCORE_BAND_LABELS,
                                  limit)
            out.yield_floor(p, float(amt_net.sum() / funded))
    out.minimum_transfer(shares, loans.balance, funded_any, mode, min_transfer_share)
    return out.report(excluded, findings)


def _criterion_fails(name: str, loans: LoanArrays, p: Partner, cashflow_apr: np.ndarray,
                     in_regions: np.ndarray) -> np.ndarray:
    """(n_loans,) bool: the loans failing partner ``p``'s eligibility criterion ``name``
    (``in_regions``: each loan's region is one the partner allows)."""
    e = p.eligibility
    if name == "score_floor":
        return np.asarray(loans.credit_score < e.score_floor)
    if name == "apr_cap":
        return np.asarray(cashflow_apr > e.apr_cap)
    if name == "max_term_months":
        return np.asarray(loans.term_months > e.max_term_months)
    if name == "repayment_types":
        return ~lookup.isin(loans.repayment_type, e.repayment_codes)
    return ~in_regions


@numba.njit(cache=True, nogil=True)
def _share_rows(shares, r1_floor, share_tol, funded_any):  # pragma: no cover - numba
    """One pass over the rows of ``shares`` (n, k), 2 <= k <= 7, platform first: counts
    (rows with a share outside [0, 1] or not finite, rows whose shares do not sum to 1
    within 1e-12, joint rows whose platform share is short of ``r1_floor`` by more than
    ``share_tol``, rows a partner holds a share of) and stats (the largest |row sum − 1|,
    the smallest platform share of a row a partner holds); ``funded_any[i]``: a partner
    holds a share of row i. Each row is added left to right (``_row_sums``); the oracle is
    :func:`verify_allocation_np`'s array passes."""
    n, k = shares.shape
    n_range = 0
    n_sum = 0
    n_r1 = 0
    n_funded = 0
    worst_dev = 0.0
    min_platform = np.inf
    for i in range(n):
        s0 = shares[i, 0]
        bad = not (0.0 <= s0 <= 1.0)
        total = s0
        partners = shares[i, 1]
        funded = partners > 0.0
        bad = bad or not (0.0 <= partners <= 1.0)
        for j in range(2, k):
            v = shares[i, j]
            bad = bad or not (0.0 <= v <= 1.0)
            partners += v
            funded = funded or v > 0.0
        if bad:
            n_range += 1
        for j in range(1, k):
            total += shares[i, j]
        dev = abs(total - 1.0)
        if dev > 1e-12:
            n_sum += 1
        if dev > worst_dev:
            worst_dev = dev
        funded_any[i] = funded
        if funded:
            n_funded += 1
            if s0 < min_platform:
                min_platform = s0
        if partners > share_tol and r1_floor - s0 > share_tol:
            n_r1 += 1
    counts = np.array([n_range, n_sum, n_r1, n_funded], dtype=np.int64)
    return counts, np.array([worst_dev, min_platform])


@numba.njit(cache=True, nogil=True)
def _partner_pass(shares, col, balance, score, score_floor, cashflow_apr, apr_cap, term,
                  max_term, rtype, rt_ok, region, region_ok, local, home, share_tol, band, net,
                  amt, amt_net, by_region, by_band):  # pragma: no cover - numba
    """One pass over the loans for the partner in column ``col`` of ``shares``: ``amt[i]`` its
    share × balance and ``amt_net[i]`` that × ``net`` (every loan, for numpy to sum as it
    sums those products), ``by_region`` / ``by_band`` the held amounts added per region code
    and score band in loan order (as ``np.bincount`` adds them); returns counts: loans held
    (share > 0), then held loans failing the score floor, the APR cap, the longest term, the
    repayment types, the regions, and (``local``) loans with a share above ``share_tol``
    outside region code ``home`` (R4)."""
    counts = np.zeros(7, dtype=np.int64)
    by_region[:] = 0.0
    by_band[:] = 0.0
    for i in range(shares.shape[0]):
        s = shares[i, col]
        a = s * balance[i]
        amt[i] = a
        amt_net[i] = a * net[i]
        if local and s > share_tol and region[i] != home:
            counts[6] += 1
        if s > 0.0:
            counts[0] += 1
            if score[i] < score_floor:
                counts[1] += 1
            if cashflow_apr[i] > apr_cap:
                counts[2] += 1
            if term[i] > max_term:
                counts[3] += 1
            if not rt_ok[rtype[i] % 256]:
                counts[4] += 1
            if not region_ok[region[i]]:
                counts[5] += 1
            by_region[region[i]] += a
            by_band[band[i]] += a
    return counts


def _row_sums(shares: np.ndarray) -> np.ndarray:
    """``shares.sum(axis=1)``, the same floats: numpy adds a row of fewer than 8 values left to
    right (from 8 on, pairwise), so up to 7 parties the columns are added left to right here,
    one column at a time, rather than by a reduction along the short axis (twice as fast on a
    million loans; tests/partners/test_allocation.py)."""
    if not 0 < shares.shape[1] < 8:
        return shares.sum(axis=1)
    out = shares[:, 0].copy()
    for j in range(1, shares.shape[1]):
        out += shares[:, j]
    return out


@numba.njit(cache=True, nogil=True)
def _party_totals(shares, w0, w1, w2, m, out, held):  # pragma: no cover - numba
    """``out[r, k] = (shares * w_r[:, None]).sum(axis=0)[k]`` for the first ``m`` of the
    weights w0, w1, w2, and ``held[k]`` the loans with a positive share of party k, in one
    pass over the loans: each total added loan by loan from the first, as numpy adds a
    reduction over the rows of a C-ordered array (not pairwise); :func:`_party_totals_np` is
    the oracle."""
    n, k = shares.shape
    for j in range(k):
        held[j] = 0
        if n:
            out[0, j] = shares[0, j] * w0[0]
            if m > 1:
                out[1, j] = shares[0, j] * w1[0]
            if m > 2:
                out[2, j] = shares[0, j] * w2[0]
    for i in range(n):
        for j in range(k):
            s = shares[i, j]
            if s > 0:
                held[j] += 1
            if i:
                out[0, j] += s * w0[i]
                if m > 1:
                    out[1, j] += s * w1[i]
                if m > 2:
                    out[2, j] += s * w2[i]


def party_totals(shares: np.ndarray, *weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(totals (m, k), held (k,)): per weight (1 to 3 arrays of n_loans) the parties' sums of
    share × weight, and per party the loans it holds a positive share of; the same floats
    as :func:`_party_totals_np`."""
    if not 1 <= len(weights) <= 3:
        raise ValueError("party_totals takes 1 to 3 weights")
    shares = np.ascontiguousarray(shares, dtype=np.float64)
    w = [np.ascontiguousarray(x, dtype=np.float64) for x in weights]
    out = np.zeros((len(w), shares.shape[1]))
    held = np.zeros(shares.shape[1], dtype=np.int64)
    if len(shares):
        pad = w + [w[0]] * (3 - len(w))
        _party_totals(shares, pad[0], pad[1], pad[2], len(w), out, held)
    return out, held


def _party_totals_np(shares: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The oracle of :func:`party_totals`: a numpy reduction per weight."""
    out = np.array([(shares * w[:, None]).sum(axis=0) for w in weights]).reshape(
        len(weights), shares.shape[1])
    return out, (shares > 0).sum(axis=0).astype(np.int64)


def _rounding_allowance(mode: Mode, balance: np.ndarray, held: np.ndarray, target: float) -> float:
    """How far a minimum may fall short by the split alone: joint, the 2⁻³² share grid (at most
    one grid step per loan); forward flow, whole loans (at most the largest loan it holds)."""
    if mode is Mode.JOINT:
        return AMOUNT_TOL + SHARE_GRID * float(balance.sum()) + REL_TOL * target
    return AMOUNT_TOL + (float(balance[held].max()) if held.any() else 0.0) + REL_TOL * target


# --------------------------------------------------------------------------- API
@dataclass(frozen=True, slots=True)
class Allocation:
    """The result: shares per loan and party (rows sum to exactly 1), plus how it was made."""

    party_ids: tuple[str, ...]  # ("platform", partners…) — the columns of ``shares``
    loan_id: np.ndarray  # (n_loans,)
    balance: np.ndarray  # (n_loans,) CNY at cut-off
    shares: np.ndarray  # (n_loans, n_parties) float64, multiples of 2^-32
    mode: Mode
    objective: Objective
    as_of: dt.date
    segment_amounts: np.ndarray  # (n_segments, n_partners) CNY from the LP
    checks: CheckReport
    summary: dict[str, Any]

    def party_balance(self) -> dict[str, float]:
        amt = (self.shares * self.balance[:, None]).sum(axis=0)
        return {pid: float(a) for pid, a in zip(self.party_ids, amt, strict=True)}


def _borrower_codes(borrower_id: np.ndarray) -> np.ndarray:
    """One integer per distinct borrower id (compared as strings): the R5 household totals
    group by these codes, in the solver's eligibility and in the re-check alike, instead of
    sorting a million strings each time. Integers in [0, n_loans) are such codes already
    (``partners.records.LoansToAllocate.borrowers``: the codes stored with a pool) and are
    used as they are: equal integers are equal ids, so the groups are the same."""
    codes = np.asarray(borrower_id)
    if (codes.dtype.kind in "iu" and codes.size
            and int(codes.min()) >= 0 and int(codes.max()) < codes.size):
        return codes.astype(np.int64, copy=False)
    ids = np.asarray(borrower_id, dtype=object)
    if pd.api.types.infer_dtype(ids, skipna=False) != "string":
        ids = ids.astype(str).astype(object)
    packed = _hex_tail_keys(ids)
    return pd.factorize(packed if packed is not None else ids)[0]


_HEX_VALUE = np.full(256, 255, dtype=np.uint8)
_HEX_VALUE[np.frombuffer(b"0123456789", dtype=np.uint8)] = np.arange(10, dtype=np.uint8)
_HEX_VALUE[np.frombuffer(b"abcdef", dtype=np.uint8)] = np.arange(10, 16, dtype=np.uint8)


def _hex_tail_keys(ids: np.ndarray) -> np.ndarray | None:
    """One uint64 per id, equal exactly when the ids are, for ids of one byte length whose
    leading bytes are the same in every id and whose last (at most 16) bytes are lowercase hex
    digits (``B`` + 16 hex digits, as the generator writes them): the hex tail read as a number.
    Hashing these integers factorises in the same first-appearance order as hashing the strings,
    several times faster. ``None`` when the ids do not have that form."""
    n = len(ids)
    if n == 0:
        return None
    try:
        arr = pa.array(ids, type=pa.string())
    except (pa.ArrowException, UnicodeError):
        return None
    lengths = pc.binary_length(arr)
    width = int(lengths[0].as_py())
    if width == 0 or arr.null_count or not pc.all(pc.equal(lengths, width)).as_py():
        return None
    offsets, data = arr.buffers()[1], arr.buffers()[2]
    start = int(np.frombuffer(offsets, dtype=np.int32, count=1, offset=arr.offset * 4)[0])
    chars = np.frombuffer(data, dtype=np.uint8, count=n * width, offset=start).reshape(n, width)
    digits = _HEX_VALUE[chars[:, -min(width, 16):]]
    h = digits.shape[1]
    if (digits == 255).any() or not (chars[:, : width - h] == chars[0, : width - h]).all():
        return None
    nibbles = np.zeros((n, 16), dtype=np.uint8)
    nibbles[:, 16 - h:] = digits
    packed = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]  # (n, 8) bytes, most significant first
    return packed.view(">u8").ravel().astype(np.uint64)


def allocate(loans: LoanArrays, registry: Registry, *, mode: Mode | str = Mode.JOINT,
             objective: Objective | str = Objective.MAX_TRANSFER, risk: LoanRisk | None = None,
             as_of: dt.date | None = None, borrower_id: np.ndarray | None = None,
             min_transfer_share: float = 0.0,
             household_limit: np.ndarray | None = None) -> Allocation:
    """Allocate ``loans`` between the platform and the partners (see the module docstring).

    ``risk`` defaults to the registry's ``[expected_loss]`` table. ``as_of`` (default today)
    decides which rules are in force. ``household_limit``: per loan, its household's total
    credit limit across the book (R5; ``partners.records`` reads it with the pool). Raises ``InfeasibleAllocation`` naming the binding limits,
    ``AllocationCheckFailed`` if the re-check finds a breach.
    """
    t0 = time.perf_counter()
    mode, objective = parse_mode(mode), parse_objective(objective)
    as_of = as_of or dt.date.today()
    if not isinstance(as_of, dt.date):
        raise AllocationError(must_be("as_of", "a date (datetime.date)", as_of))
    if len(loans) == 0:
        raise AllocationError(must_be("loans", "at least one loan", 0))
    if not 0 <= min_transfer_share <= 1:
        raise AllocationError(must_be("min_transfer_share", "in [0, 1]", min_transfer_share))
    if risk is None:
        if registry.expected_loss is None:
            raise AllocationError(must_be("expected loss source", "--assumptions FILE or an [expected_loss] "
                                          "table in the partners file", "neither", registry.source))
        risk = loan_risk_from_table(loans, registry.expected_loss)
    r7 = registry.rule("R7")
    if r7.applies_on(as_of):
        r7_breach = check_platform_funding(r7, registry.platform)
        if r7_breach:
            raise InfeasibleAllocation("allocation infeasible: " + "; ".join(b.message for b in r7_breach)
                                       + ". Nothing was written.", ["R7 (platform)"])
    if borrower_id is not None:
        if np.shape(borrower_id) != (len(loans),):
            raise AllocationError(must_be("borrower_id", f"one id per loan ({len(loans)})",
                                          np.shape(borrower_id)))
        borrower_id = _borrower_codes(borrower_id)
    if household_limit is not None:
        household_limit = np.asarray(household_limit, dtype=np.float64)
        if household_limit.shape != (len(loans),):
            raise AllocationError(must_be("household_limit", f"one value per loan ({len(loans)})",
                                          household_limit.shape))
    # the loan rules' per-loan excesses and the loans' cash-flow APRs, once: the
    # eligibility, the segments and the re-check read them
    cashflow_apr = loans.cashflow_apr
    excess = loan_rule_excesses(registry.rules, loans, borrower_id, as_of, household_limit,
                                cashflow_apr)
    elig = eligibility_matrix(loans, registry, as_of, borrower_id, household_limit, excess,
                              cashflow_apr)
    seg = build_segments(loans, elig, risk, cashflow_apr)
    t1 = time.perf_counter()
    lp = solve_segments(seg, registry, mode, objective, as_of, min_transfer_share)
    t2 = time.perf_counter()
    if mode is Mode.JOINT:
        shares = _joint_shares(seg, lp.amounts)
    else:
        rank = _loan_order(loans.loan_id)
        owner = _forward_flow_owner(seg, lp.amounts, loans.balance, rank)
        owner = _repair_forward_flow(owner, loans, risk, registry, as_of, rank)
        shares = np.zeros((len(loans), len(registry.party_ids)))
        shares[np.arange(len(loans)), owner + 1] = 1.0
    t3 = time.perf_counter()
    report = verify_allocation(loans, shares, registry.party_ids, registry, risk, mode, as_of,
                               borrower_id, min_transfer_share, household_limit, excess,
                               cashflow_apr)
    t4 = time.perf_counter()
    if not report.ok:
        raise AllocationCheckFailed("the loan-level re-check found breaches: "
                                    + "; ".join(b.message for b in report.breaches), [b.as_dict() for b in report.breaches])
    total = float(loans.balance.sum())
    life_el = risk.lifetime_el(loans.balance)
    proj = risk.projected_el(loans.balance)
    # per party: its balance, lifetime EL and projected EL, and the loans it holds: one pass
    sums, held = party_totals(shares, loans.balance, life_el, *([] if proj is None else [proj]))
    amt, el_by_party = sums[0], sums[1]
    proj_by_party = None if proj is None else sums[2]
    summary = {
        "n_loans": len(loans), "pool_balance": total, "n_segments": len(seg),
        "lp": {"variables": lp.n_vars, "rows": lp.n_rows, "objective_value": lp.objective_value,
               "status": lp.status},
        "parties": {pid: {"balance": float(a), "share_of_pool": float(a / total) if total else 0.0,
                          "lifetime_el": float(e), "n_loans": int(held[k]),
                          **({} if proj_by_party is None
                             else {"projected_el": float(proj_by_party[k])})}
                    for k, (pid, a, e) in enumerate(zip(registry.party_ids, amt, el_by_party, strict=True))},
        "moved_off_platform": float(total - amt[0]),
        "platform_retained_el": float(el_by_party[0]),
        "risk_source": risk.source,
        "timings_s": {"segments": t1 - t0, "lp": t2 - t1, "split": t3 - t2, "recheck": t4 - t3},
    }
    return Allocation(registry.party_ids, np.asarray(loans.loan_id), loans.balance, shares, mode,
                      objective, as_of, lp.amounts, report, summary)
