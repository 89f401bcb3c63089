"""Monte Carlo kernels of the projection engine: numba loops and their plain-numpy twins.

Pure array functions, no I/O. ``portfolio.montecarlo.simulation`` prepares the inputs (cells, schedules,
random numbers) and calls one kernel per canonical block of paths. Every numba kernel has a
numpy twin that follows the same arithmetic on the same random numbers; tests compare them
(the twins are the oracle, the numba versions are what runs). The twin of ``schedule_sums``
is ``portfolio.loans.schedules.schedule_matrix`` itself (``prepare_pool(schedules="numpy")``).

Shapes: ``n_b`` paths in the block, ``T`` projection months (to the last maturity, without the
recovery lag), cells ``c`` (loans with the same score band, term, months on book and remaining
term — hence identical default and prepayment probabilities in every month on every path).

Intra-month order (both engines, every month t of a loan still performing at month start):
1. default first: with the conditional probability ``p_t(Z_t)`` the whole start-of-month
   balance defaults; the loan pays neither interest nor principal that month;
2. otherwise the loan pays its scheduled interest (on the start-of-month balance) and
   scheduled principal;
3. then a survivor prepays in full with probability ``smm_t``: the prepayment is the balance
   left after the scheduled principal. In a loan's last month the prepayment would be zero,
   so ``smm`` is set to 0 there.

Conditional default probability (one-factor copula, docs/model.md, "Monte Carlo projection"):
``p_t = Φ((thr − √ρ·Z_t) / √(1−ρ))`` with ``thr = Φ⁻¹(h)`` for the Gaussian copula. The
Student-t copula maps each loan's t_ν latent variable through its lifetime default curve
(``t_copula_pds``): given the path's mixing value, the month's hazard comes from the
conditional curve and the factor acts on it as in the Gaussian case, so the lifetime curve is
kept exactly.

Flow columns of the accumulators ``out[..., k]``: 0 balance_bop, 1 interest,
2 scheduled_principal, 3 prepayment, 4 default.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba.core import types
from numba.extending import overload
from scipy.special import erfc

N_ACC = 5  # bop, interest, scheduled principal, prepayment, default
BOP, INTEREST, PRINCIPAL, PREPAY, DEFAULT = range(N_ACC)


# ------------------------------------------------------------------------------------------
# Normal quantile (numba)

# Acklam's rational approximation of Φ⁻¹ (relative error < 1.2e-9).
_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
      1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
      6.680131188771972e+01, -1.328068155288572e+01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
      -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
      3.754408661907416e+00)
_P_LOW = 0.02425


@numba.njit(cache=True, nogil=True)
def norm_ppf(u: float) -> float:
    """Φ⁻¹(u) for u in (0, 1) (Acklam)."""
    if u < _P_LOW:
        q = math.sqrt(-2.0 * math.log(u))
        return ((((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5])
                / ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0))
    if u > 1.0 - _P_LOW:
        q = math.sqrt(-2.0 * math.log1p(-u))
        return -((((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5])
                 / ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0))
    q = u - 0.5
    r = q * q
    return ((((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
            / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0))


def norm_ppf_np(u: np.ndarray) -> np.ndarray:
    """Vectorised twin of :func:`norm_ppf`."""
    u = np.asarray(u, dtype=np.float64)
    out = np.empty_like(u)
    lo = u < _P_LOW
    hi = u > 1.0 - _P_LOW
    mid = ~lo & ~hi
    with np.errstate(divide="ignore", invalid="ignore"):
        for mask, sign, q in ((lo, 1.0, np.sqrt(-2.0 * np.log(np.where(lo, u, 0.5)))),
                              (hi, -1.0, np.sqrt(-2.0 * np.log1p(-np.where(hi, u, 0.5))))):
            num = (((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5])
            den = ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0)
            out[mask] = (sign * num / den)[mask]
    q = u - 0.5
    r = q * q
    num = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
    den = (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)
    out[mid] = (num / den)[mid]
    return out


# ------------------------------------------------------------------------------------------
# Conditional default probability


def scaled_inputs(thr: np.ndarray, z: np.ndarray, rho: float) -> tuple[np.ndarray, np.ndarray]:
    """Pre-scale thresholds and factor values so that the conditional PD is one erfc:
    ``p = Φ((thr·s − √ρ·Z)/√(1−ρ)) = ½·erfc(zb − thr_s·s)`` with
    ``thr_s = thr/(√(1−ρ)·√2)`` and ``zb = Z·√ρ/(√(1−ρ)·√2)``."""
    k = 1.0 / (math.sqrt(1.0 - rho) * math.sqrt(2.0))
    with np.errstate(invalid="ignore"):
        thr_s = np.ascontiguousarray(thr * k, dtype=np.float64)
    return thr_s, np.ascontiguousarray(z * (math.sqrt(rho) * k), dtype=np.float64)


@numba.njit(cache=True, nogil=True, inline="always")
def cond_pd(thr_s: float, scale: float, zb: float) -> float:
    return 0.5 * math.erfc(zb - thr_s * scale)


def cond_pd_np(thr_s: np.ndarray, scale: np.ndarray | float, zb: np.ndarray) -> np.ndarray:
    """Twin of the numba conditional PD (the same arithmetic on pre-scaled inputs)."""
    with np.errstate(invalid="ignore"):
        return 0.5 * erfc(zb - thr_s * scale)


# ------------------------------------------------------------------------------------------
# Student-t copula that keeps each loan's lifetime default curve

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
NO_T = np.zeros((0, 0))
"""The ``t_q`` argument of the kernels for the Gaussian copula (no rows: not used)."""


@numba.njit(cache=True, nogil=True)
def norm_ppf_exact(u: float) -> float:
    """Φ⁻¹(u) to double precision: Acklam's approximation refined by one Halley step on
    Φ(x) − u (Acklam's own refinement; Φ through erfc), on the lower half: u > ½ is
    −Φ⁻¹(1 − u) (1 − u is exact there). 0 → −inf, 1 → +inf."""
    if u <= 0.0:
        return -math.inf
    if u >= 1.0:
        return math.inf
    sign = 1.0
    if u > 0.5:
        u = 1.0 - u
        sign = -1.0
    x = norm_ppf(u)
    if x > -37.5:  # exp(x²/2) finite
        e = 0.5 * math.erfc(-x * _INV_SQRT2) - u
        v = e * _SQRT_2PI * math.exp(0.5 * x * x)
        x = x - v / (1.0 + 0.5 * x * v)
    return sign * x


def norm_ppf_exact_np(u: np.ndarray) -> np.ndarray:
    """Vectorised twin of :func:`norm_ppf_exact`."""
    u = np.asarray(u, dtype=np.float64)
    inner = (u > 0.0) & (u < 1.0)
    upper = u > 0.5
    lo = np.where(inner, np.where(upper, 1.0 - u, u), 0.5)
    x = norm_ppf_np(lo)
    with np.errstate(over="ignore", invalid="ignore"):
        e = 0.5 * erfc(-x * _INV_SQRT2) - lo
        v = e * _SQRT_2PI * np.exp(0.5 * x * x)
        refined = x - v / (1.0 + 0.5 * x * v)
    x = np.where(x > -37.5, refined, x) * np.where(upper, -1.0, 1.0)
    return np.where(u <= 0.0, -np.inf, np.where(u >= 1.0, np.inf, x))


@numba.njit(cache=True, nogil=True, inline="always")
def t_copula_pds(q, r, s, zb, kf, pds):
    """Monthly conditional default probabilities of one cell on one path under the t copula.

    q[t] = t_ν⁻¹(F(t)), the t quantile of the cell's lifetime default curve
    F(t) = 1 − Π_{j ≤ t}(1 − h_j) (from the cut-off); s = √(W/ν) the path's mixing value.
    Given s, a loan's latent variable X = ε/s (ε standard normal: X is t_ν) is below q[t]
    with probability F_s(t) = Φ(q[t]·s), so its default time has the conditional curve F_s
    and the monthly hazard h_t(s) = (F_s(t) − F_s(t−1)) / (1 − F_s(t−1)); E_s F_s(t) = F(t)
    exactly. The month's factor then acts as in the Gaussian copula on h_t(s):
    p_t = Φ((Φ⁻¹(h_t(s)) − √ρ·Z_t)/√(1−ρ)) = ½·erfc(zb[t] − Φ⁻¹(h_t(s))·kf), with
    kf = 1/(√(1−ρ)·√2) and zb the scaled factor (``scaled_inputs``). F_s and 1 − F_s are each
    taken from erfc on the side where they are small (no cancellation)."""
    f_prev = 0.0
    s_prev = 1.0
    for t in range(r):
        x = q[t] * s
        if x < 0.0:
            f = 0.5 * math.erfc(-x * _INV_SQRT2)
            sv = 1.0 - f
            num = f - f_prev
        else:
            sv = 0.5 * math.erfc(x * _INV_SQRT2)
            f = 1.0 - sv
            num = s_prev - sv
        if num <= 0.0 or s_prev <= 0.0:
            pds[t] = 0.0
        elif num >= s_prev:
            pds[t] = 1.0
        else:
            pds[t] = 0.5 * math.erfc(zb[t] - norm_ppf_exact(num / s_prev) * kf)
        f_prev = f
        s_prev = sv


def t_copula_pds_np(q: np.ndarray, r: int, s: np.ndarray, zb: np.ndarray,
                    kf: float) -> np.ndarray:
    """Twin of the numba t-copula PDs, vectorised over paths: q (T,), s (n_b,), zb (n_b, T)
    → (n_b, r)."""
    n_b = s.shape[0]
    out = np.zeros((n_b, r))
    f_prev = np.zeros(n_b)
    s_prev = np.ones(n_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        for t in range(r):
            x = q[t] * s
            neg = x < 0.0
            f_lo = 0.5 * erfc(-x * _INV_SQRT2)
            s_hi = 0.5 * erfc(x * _INV_SQRT2)
            f = np.where(neg, f_lo, 1.0 - s_hi)
            sv = np.where(neg, 1.0 - f_lo, s_hi)
            num = np.where(neg, f - f_prev, s_prev - sv)
            zero = (num <= 0.0) | (s_prev <= 0.0)
            one = ~zero & (num >= s_prev)
            h = np.where(zero | one, 0.5, num / np.where(s_prev > 0, s_prev, 1.0))
            p = 0.5 * erfc(zb[:, t] - norm_ppf_exact_np(h) * kf)
            out[:, t] = np.where(zero, 0.0, np.where(one, 1.0, p))
            f_prev, s_prev = f, sv
    return out


# ------------------------------------------------------------------------------------------
# Granular engine: binomial counts per cell


@numba.njit(cache=True, nogil=True)
def threshold_ids(thr_s, cell_r):
    """The distinct (month, threshold) pairs of the cells' months t < r: ``uid`` (n_cells, T)
    the index of cell c's month t among them (−1 past its remaining term), ``u_t`` and
    ``u_thr`` each pair's month and scaled threshold, ``n_u`` their number. Cells with equal
    thresholds in a month have equal conditional PDs on every path (the same erfc of the
    same numbers), so a block computes each distinct one once per path."""
    n_cells, n_t = thr_s.shape
    uid = np.full((n_cells, n_t), -1, dtype=np.int64)
    u_t = np.empty(n_cells * n_t, dtype=np.int64)
    u_thr = np.empty(n_cells * n_t)
    col = np.empty(n_cells)
    idx = np.empty(n_cells, dtype=np.int64)
    n_u = 0
    for t in range(n_t):
        m = 0
        for c in range(n_cells):
            if t < cell_r[c]:
                col[m] = thr_s[c, t]
                idx[m] = c
                m += 1
        order = np.argsort(col[:m])
        for j in range(m):
            v = col[order[j]]
            if j == 0 or not v == u_thr[n_u - 1]:  # NaN: a pair of its own
                u_t[n_u] = t
                u_thr[n_u] = v
                n_u += 1
            uid[idx[order[j]], t] = n_u - 1
    return uid, u_t[:n_u], u_thr[:n_u], n_u


@numba.njit(cache=True, nogil=True, inline="always")
def _draw_consts(p, row):
    """``row[:4]`` = (p, p', p'/(1 − p'), log1p(−p')) with p' = min(p, 1 − p): what
    :func:`binomial_draw` computes from p on every call (the same operations), once."""
    pp = 1.0 - p if p > 0.5 else p
    row[0] = p
    row[1] = pp
    row[2] = pp / (1.0 - pp)
    row[3] = math.log1p(-pp)


@numba.njit(cache=True, nogil=True, inline="always")
def _binomial_inversion_pre(n, p, ratio, l1p, gen):
    # _binomial_inversion with ratio = p/(1 − p) and l1p = log1p(−p) given
    lim = 1.0 - n * p
    while True:
        u = gen.random()
        if u < lim:
            return 0
        f = math.exp(n * l1p)
        c = f
        k = 0
        while u >= c and k < n:
            f *= ratio * (n - k) * (_RECIP[k] if k < 64 else 1.0 / (k + 1.0))
            k += 1
            c += f
        if u < c:
            return k


@numba.njit(cache=True, nogil=True, inline="always")
def _binomial_draw_pre(n, row, gen):
    """:func:`binomial_draw` (n, p) with ``row`` = :func:`_draw_consts` of p: the same draw
    from the same uniforms, without recomputing p's constants."""
    p = row[0]
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    pp = row[1]
    if math.floor((n + 1) * pp) <= BINOMIAL_INVERSION_MAX_MODE:
        k = _binomial_inversion_pre(n, pp, row[2], row[3], gen)
    else:
        k = _binomial_btrd(n, pp, gen)
    return n - k if p > 0.5 else k


@numba.njit(cache=True, nogil=True)
def granular_block(zb, scale, gen, cell_n, cell_r, thr_s, cell_smm, cell_flows, cell_pflows,
                   out, pout, t_q, kf):
    """Draw default and prepayment counts per cell, month and path; accumulate cell flows.

    zb (n_b, T) scaled factor and thr_s (n_cells, T) scaled thresholds (``scaled_inputs``);
    scale (n_b,) t-copula mixing (1 for Gaussian); gen the block's idiosyncratic
    ``numpy.random.Generator``, advanced by the exact binomial draws
    (:func:`binomial_draw`), taken path by path, cell by cell, month by month, default count
    then prepayment count; cell_n (n_cells,) loan counts; cell_r remaining terms; cell_smm
    (n_cells, T); cell_flows (n_cells, T, 3) summed scheduled (bop, interest, principal) of
    the cell's loans; cell_pflows (n_cells, n_parties, T, 3) the same weighted by party
    shares (n_parties may be 0). out (n_b, T, 5) and pout (n_parties, n_b, T, 5) are
    accumulated into. t copula: t_q (n_cells, T) the t quantiles of the cells' lifetime
    default curves and kf = 1/(√(1−ρ)·√2) (:func:`t_copula_pds`); Gaussian: t_q = ``NO_T``.

    Granular approximation: a cell's loans are exchangeable, so with ``a`` of ``N`` loans
    alive the cell's flows are ``a/N`` of its scheduled totals, and ``d`` defaults take
    ``d/N`` of its scheduled balance. Exact in expectation (all loans in a cell share every
    probability); the variance ignores the spread of loan sizes within a cell.

    The draws are :func:`binomial_draw`'s (the same uniforms, the same counts) with each
    probability's constants computed once (:func:`_draw_consts`): the prepayment
    probabilities' once per block, the conditional PDs' once per path and distinct
    (month, threshold) pair (:func:`threshold_ids`; Gaussian copula).
    """
    n_b = zb.shape[0]
    n_cells = cell_n.shape[0]
    n_t = zb.shape[1]
    n_parties = cell_pflows.shape[1]
    use_t = t_q.shape[0] > 0
    pds = np.empty(n_t)
    # the prepayment draws' constants, per cell and month (the same on every path)
    s_row = np.empty((n_cells, n_t, 4))
    for c in range(n_cells):
        for t in range(cell_r[c]):
            _draw_consts(cell_smm[c, t], s_row[c, t])
    if use_t:  # every cell's own PDs (its lifetime curve): one row per cell-month
        uid = np.empty((n_cells, n_t), dtype=np.int64)
        for c in range(n_cells):
            for t in range(n_t):
                uid[c, t] = c * n_t + t
        n_u = n_cells * n_t
        u_t = np.empty(0, dtype=np.int64)
        u_thr = np.empty(0)
    else:
        uid, u_t, u_thr, n_u = threshold_ids(thr_s, cell_r)
    d_row = np.empty((n_u, 4))
    for p in range(n_b):
        sc = scale[p]
        if use_t:
            for c in range(n_cells):
                t_copula_pds(t_q[c], cell_r[c], sc, zb[p], kf, pds)
                for t in range(cell_r[c]):
                    _draw_consts(pds[t], d_row[c * n_t + t])
        else:
            for j in range(n_u):
                _draw_consts(cond_pd(u_thr[j], sc, zb[p, u_t[j]]), d_row[j])
        for c in range(n_cells):
            n_tot = cell_n[c]
            inv_n = 1.0 / n_tot
            alive = n_tot
            for t in range(cell_r[c]):
                if alive == 0:
                    break
                d = _binomial_draw_pre(alive, d_row[uid[c, t]], gen)
                s = _binomial_draw_pre(alive - d, s_row[c, t], gen)
                fa = alive * inv_n
                fperf = (alive - d) * inv_n
                fd = d * inv_n
                fs = s * inv_n
                b = cell_flows[c, t, 0]
                i = cell_flows[c, t, 1]
                pr = cell_flows[c, t, 2]
                out[p, t, 0] += fa * b
                out[p, t, 1] += fperf * i
                out[p, t, 2] += fperf * pr
                out[p, t, 3] += fs * (b - pr)
                out[p, t, 4] += fd * b
                for q in range(n_parties):
                    b = cell_pflows[c, q, t, 0]
                    i = cell_pflows[c, q, t, 1]
                    pr = cell_pflows[c, q, t, 2]
                    pout[q, p, t, 0] += fa * b
                    pout[q, p, t, 1] += fperf * i
                    pout[q, p, t, 2] += fperf * pr
                    pout[q, p, t, 3] += fs * (b - pr)
                    pout[q, p, t, 4] += fd * b
                alive -= d + s


def granular_block_np(zb, scale, gen, cell_n, cell_r, thr_s, cell_smm, cell_flows,
                      cell_pflows, out, pout, t_q, kf):
    """Plain-numpy twin of :func:`granular_block`: the same draws in the same order from the
    generator ``gen`` (:func:`binomial_draw_np`), the accumulation vectorised over months
    of one path and cell."""
    n_b = zb.shape[0]
    n_parties = cell_pflows.shape[1]
    for p in range(n_b):
        for c in range(cell_n.shape[0]):
            n_tot = int(cell_n[c])
            r = int(cell_r[c])
            if t_q.shape[0]:
                pd = t_copula_pds_np(t_q[c], r, scale[p:p + 1], zb[p:p + 1], kf)[0]
            else:
                pd = cond_pd_np(thr_s[c, :r], scale[p], zb[p, :r])
            counts = np.zeros((r, 3))  # alive at start, defaults, prepayments
            alive = n_tot
            for t in range(r):
                if alive == 0:
                    break
                d = binomial_draw_np(alive, pd[t], gen)
                s = binomial_draw_np(alive - d, cell_smm[c, t], gen)
                counts[t] = (alive, d, s)
                alive -= d + s
            fa, fd, fs = counts[:, 0] / n_tot, counts[:, 1] / n_tot, counts[:, 2] / n_tot
            fperf = (counts[:, 0] - counts[:, 1]) / n_tot
            flows = [(cell_flows[c, :r], out[p, :r])]
            flows += [(cell_pflows[c, q, :r], pout[q, p, :r]) for q in range(n_parties)]
            for fl, acc in flows:
                b, i, pr = fl[:, 0], fl[:, 1], fl[:, 2]
                acc[:, 0] += fa * b
                acc[:, 1] += fperf * i
                acc[:, 2] += fperf * pr
                acc[:, 3] += fs * (b - pr)
                acc[:, 4] += fd * b


# ------------------------------------------------------------------------------------------
# Event tables of the loan-level draws, and the per-loan draw of the granular engine's small cells


@numba.njit(cache=True, nogil=True)
def event_cdfs(zb, scale, cell_r, thr_s, cell_smm, cum, total, t_q, kf):
    """Cumulative probability of each cell's competing events on each path of the block.

    cum (n_cells, n_b, 2·T): event j = 2t is "default in month t", j = 2t + 1 "prepay in
    month t"; total (n_cells, n_b) the probability of any event before maturity. t_q, kf:
    as in :func:`granular_block` (the t copula's lifetime-curve quantiles, or ``NO_T``).
    """
    n_b = zb.shape[0]
    use_t = t_q.shape[0] > 0
    pds = np.empty(zb.shape[1])
    for c in range(cell_r.shape[0]):
        for p in range(n_b):
            surv = 1.0
            acc = 0.0
            sc = scale[p]
            if use_t:
                t_copula_pds(t_q[c], cell_r[c], sc, zb[p], kf, pds)
            else:
                for t in range(cell_r[c]):
                    pds[t] = cond_pd(thr_s[c, t], sc, zb[p, t])
            for t in range(cell_r[c]):
                pd = pds[t]
                acc += surv * pd
                cum[c, p, 2 * t] = acc
                surv *= 1.0 - pd
                sp = surv * cell_smm[c, t]
                acc += sp
                cum[c, p, 2 * t + 1] = acc
                surv -= sp
            total[c, p] = acc


def event_cdfs_np(zb, scale, cell_r, thr_s, cell_smm, cum, total, t_q, kf):
    """Twin of :func:`event_cdfs` (same accumulation order)."""
    for c in range(cell_r.shape[0]):
        surv = np.ones(zb.shape[0])
        acc = np.zeros(zb.shape[0])
        r = int(cell_r[c])
        pds = t_copula_pds_np(t_q[c], r, scale, zb, kf) if t_q.shape[0] else None
        for t in range(r):
            pd = pds[:, t] if pds is not None else cond_pd_np(thr_s[c, t], scale, zb[:, t])
            acc = acc + surv * pd
            cum[c, :, 2 * t] = acc
            surv = surv * (1.0 - pd)
            sp = surv * cell_smm[c, t]
            acc = acc + sp
            cum[c, :, 2 * t + 1] = acc
            surv = surv - sp
        total[c] = acc


# ------------------------------------------------------------------------------------------
# Replenishment vintages: conditional expectation given the factor path


@numba.njit(cache=True, nogil=True, inline="always")
def _vintage_cell(out, s, p, r, pds, smm, flows):
    # one cell's expected flows on path p of vintage s (pds its r conditional PDs)
    frac = 1.0
    for t in range(r):
        pd = pds[t]
        perf = frac * (1.0 - pd)
        sm = smm[t]
        b = flows[t, 0]
        i = flows[t, 1]
        pr = flows[t, 2]
        out[s, 0, p, t] += frac * b
        out[s, 1, p, t] += perf * i
        out[s, 2, p, t] += perf * pr
        out[s, 3, p, t] += perf * sm * (b - pr)
        out[s, 4, p, t] += frac * pd * b
        frac = perf * (1.0 - sm)


VINTAGE_TILE = 32
"""Paths a tile of :func:`expected_vintages` carries side by side (its conditional PDs and
accumulators stay in the core's caches; the innermost loop runs over them)."""


@numba.njit(cache=True, nogil=True)
def vintage_pairs(thr_s, cell_r, n_v, n_m):
    """The distinct (scaled threshold, calendar month) pairs the vintages' cell-months need:
    ``vid`` (n_cells, T) the index of cell c's month-t threshold among the distinct ones,
    ``pidx`` (n_u, n_m) the pair of (threshold, calendar month) (−1 where none needs it),
    and each pair's threshold and calendar month. Vintage s's month t is calendar month
    s + 1 + t."""
    vid, _, u_thr, n_u = threshold_ids(thr_s.reshape((thr_s.size, 1)),
                                       np.ones(thr_s.size, dtype=np.int64))
    vid = vid.reshape(thr_s.shape)
    n_cells = cell_r.shape[0]
    pidx = np.full((n_u, n_m), -1, dtype=np.int64)
    for s in range(n_v):
        for c in range(n_cells):
            for t in range(cell_r[c]):
                pidx[vid[c, t], s + 1 + t] = 0
    pair_thr = np.empty(n_u * n_m)
    pair_m = np.empty(n_u * n_m, dtype=np.int64)
    n_pairs = 0
    for v in range(n_u):
        for m in range(n_m):
            if pidx[v, m] == 0:
                pidx[v, m] = n_pairs
                pair_thr[n_pairs] = u_thr[v]
                pair_m[n_pairs] = m
                n_pairs += 1
    return vid, pidx, pair_thr[:n_pairs], pair_m[:n_pairs]


@numba.njit(cache=True, nogil=True, inline="always")
def _tile_pds(tab, pair_thr, pair_m, scale, zb, p0, w):
    """A tile's PD table: ``tab[j, q]`` the conditional PD of pair j (:func:`vintage_pairs`)
    on path p0 + q, q < w (the tile's other columns are left as they are, unused)."""
    for j in range(pair_thr.shape[0]):
        thr = pair_thr[j]
        m = pair_m[j]
        for q in range(w):
            tab[j, q] = cond_pd(thr, scale[p0 + q], zb[p0 + q, m])


@numba.njit(cache=True, nogil=True, inline="always")
def _tile_vintage(loc, tab, pidx, vid, s, cell_r, cell_smm, cell_flows, frac):
    """Vintage s's expected flows of a tile's paths added into ``loc`` (flow, month, path):
    cell by cell, month by month, the innermost loop over the tile's paths (the alive
    fraction A, then A·b, A(1 − p)·i, A(1 − p)·pr, A(1 − p)·smm·(b − pr), A·p·b;
    A ← A(1 − p)(1 − smm)). The one accumulation of :func:`expected_vintages` and
    :func:`vintage_block`."""
    tile = frac.shape[0]
    for c in range(cell_r.shape[0]):
        frac[:] = 1.0
        for t in range(cell_r[c]):
            pdt = tab[pidx[vid[c, t], s + 1 + t]]
            sm = cell_smm[c, t]
            keep = 1.0 - sm
            b = cell_flows[c, t, 0]
            i = cell_flows[c, t, 1]
            pr = cell_flows[c, t, 2]
            bp = b - pr
            l0 = loc[0, t]
            l1 = loc[1, t]
            l2 = loc[2, t]
            l3 = loc[3, t]
            l4 = loc[4, t]
            for q in range(tile):
                pd = pdt[q]
                f = frac[q]
                perf = f * (1.0 - pd)
                l0[q] += f * b
                l1[q] += perf * i
                l2[q] += perf * pr
                l3[q] += perf * sm * bp
                l4[q] += f * pd * b
                frac[q] = perf * keep


@numba.njit(cache=True, nogil=True)
def expected_vintages(zb, scale, cell_r, thr_s, cell_smm, cell_flows, out, t_q, kf):
    """Each replenishment vintage's expected flows given the block's factor paths.

    zb (n_b, L) the scaled factor (``scaled_inputs``) by calendar month of the run from
    month 0; vintage s (bought at the end of month s, s = 0 … n_v − 1 with n_v = out.shape[0])
    lives from month s + 1, so its month a sees ``zb[:, s + 1 + a]`` (L ≥ n_v + T). scale,
    cell_r, thr_s, cell_smm, cell_flows, t_q, kf as in :func:`granular_block`. out
    (n_v, 5, n_b, ≥ T), flow-major (each vintage's flow a contiguous (paths, months) block),
    is accumulated into: for every cell the expected fractions of its loans alive (A),
    defaulting (A·p_t), performing (A·(1 − p_t)) and prepaying (A·(1 − p_t)·smm_t) times its
    scheduled flows, A ← A·(1 − p_t)·(1 − smm_t): the same month order as the engines, in
    expectation over the idiosyncratic draws.

    Gaussian copula: a cell's month-t PD on a path depends only on its threshold and the
    calendar month's factor, so each distinct (threshold, calendar month) pair of all the
    vintages' cell-months (:func:`vintage_pairs`; on the B1 pool 3,114 of 5,184) is computed
    once per path and the vintages read them. The paths run in tiles of
    :data:`VINTAGE_TILE`, the innermost loop over a tile's paths (the PD table and the
    accumulators of a tile are (pairs, paths) and (flow, month, paths) arrays, copied into
    ``out`` after the tile): each output element gets the same operations in the same order
    (over the cells, then its months) as cell by cell and path by path, so the same numbers."""
    n_v = out.shape[0]
    n_b = zb.shape[0]
    n_cells = cell_r.shape[0]
    use_t = t_q.shape[0] > 0
    if use_t:
        pds = np.empty(cell_flows.shape[1])
        for s in range(n_v):
            for p in range(n_b):
                sc = scale[p]
                zrow = zb[p, s + 1:]
                for c in range(n_cells):
                    r = cell_r[c]
                    t_copula_pds(t_q[c], r, sc, zrow, kf, pds)
                    _vintage_cell(out, s, p, r, pds, cell_smm[c], cell_flows[c])
        return
    n_m = zb.shape[1]
    vid, pidx, pair_thr, pair_m = vintage_pairs(thr_s, cell_r, n_v, n_m)
    n_pairs = pair_thr.shape[0]
    n_t = 0
    for c in range(n_cells):
        n_t = max(n_t, cell_r[c])
    tile = VINTAGE_TILE
    tab = np.zeros((n_pairs, tile))  # a partial tile's last columns: stale numbers, unused
    loc = np.empty((N_ACC, n_t, tile))
    frac = np.empty(tile)
    for p0 in range(0, n_b, tile):
        w = min(tile, n_b - p0)
        _tile_pds(tab, pair_thr, pair_m, scale, zb, p0, w)
        for s in range(n_v):
            for k in range(N_ACC):
                for t in range(n_t):
                    for q in range(w):
                        loc[k, t, q] = out[s, k, p0 + q, t]
            _tile_vintage(loc, tab, pidx, vid, s, cell_r, cell_smm, cell_flows, frac)
            for k in range(N_ACC):
                for t in range(n_t):
                    for q in range(w):
                        out[s, k, p0 + q, t] = loc[k, t, q]


@numba.njit(cache=True, nogil=True)
def finish_vintages(acc, recovery_rate, lag, recovery, eop):
    """Recoveries and end balances of vintage accumulators, as
    ``simulation.finish_flows`` computes them (its twin), element by element with the same
    operations in the same order: acc (n_v, 5, n_b, M) flow-major (:func:`expected_vintages`);
    recovery and eop (n_v, n_b, M) are written. Month m recovers ``recovery_rate × lag[k]``
    of month m − k − 1's default, summed over k in order (from 0.0); the end balance is
    ((bop − principal) − prepayment) − default, 0 where below 1e-6 in absolute value. The
    loops run lag by lag over a row's months (independent elements side by side)."""
    n_v, _, n_b, n_m = acc.shape
    rec = np.empty(n_m)
    for s in range(n_v):
        for p in range(n_b):
            d = acc[s, DEFAULT, p]
            rec[:] = 0.0
            for k in range(lag.shape[0]):
                share = lag[k]
                if share > 0 and k + 1 < n_m:
                    f = recovery_rate * share
                    for m in range(k + 1, n_m):
                        rec[m] += f * d[m - k - 1]
            recovery[s, p, :] = rec
            bop = acc[s, BOP, p]
            pr = acc[s, PRINCIPAL, p]
            pp = acc[s, PREPAY, p]
            e_row = eop[s, p]
            for m in range(n_m):
                e = bop[m] - pr[m]
                e -= pp[m]
                e -= d[m]
                e_row[m] = 0.0 if abs(e) < 1e-6 else e



@numba.njit(cache=True, nogil=True)
def vintage_block(zb, scale, cell_r, thr_s, cell_smm, cell_flows, t_q, kf, vid, pidx, pair_thr,
                  pair_m, recovery_rate, lag, acc, recovery, eop):
    """One block's replenishment vintages, finished: :func:`expected_vintages` into zeroed
    accumulators, then :func:`finish_vintages`, the same numbers bit for bit, with every
    element of ``acc`` (n_v, 5, n_b, M), ``recovery`` and ``eop`` (n_v, n_b, M) written once
    and none read (they may be ``np.empty``; M ≥ the cells' longest remaining term).
    ``vid``, ``pidx``, ``pair_thr``, ``pair_m``: :func:`vintage_pairs` of ``thr_s`` and
    ``cell_r`` (the same for every block of a run: computed once).

    Gaussian copula: a tile of :data:`VINTAGE_TILE` paths at a time, as
    :func:`expected_vintages`, its accumulators starting from 0.0 (what adding into zeros
    does: 0.0 + x is x's bits, −0.0 included), its recoveries and end balances from them
    while they are in the core's caches (each element the same operations in the same order
    as :func:`finish_vintages`), then its rows written. Student-t copula: the block's rows
    zeroed, then the two kernels."""
    n_v, _, n_b, n_m = acc.shape
    if t_q.shape[0] > 0:
        acc[...] = 0.0
        expected_vintages(zb, scale, cell_r, thr_s, cell_smm, cell_flows, acc, t_q, kf)
        finish_vintages(acc, recovery_rate, lag, recovery, eop)
        return
    n_pairs = pair_thr.shape[0]
    tile = VINTAGE_TILE
    tab = np.zeros((n_pairs, tile))  # a partial tile's last columns: stale numbers, unused
    loc = np.empty((N_ACC, n_m, tile))
    rec = np.empty((n_m, tile))
    frac = np.empty(tile)
    for p0 in range(0, n_b, tile):
        w = min(tile, n_b - p0)
        _tile_pds(tab, pair_thr, pair_m, scale, zb, p0, w)
        for s in range(n_v):
            loc[...] = 0.0
            _tile_vintage(loc, tab, pidx, vid, s, cell_r, cell_smm, cell_flows, frac)
            # finish_vintages on the tile: recoveries lag by lag, then the end balances
            rec[...] = 0.0
            d = loc[DEFAULT]
            for k in range(lag.shape[0]):
                share = lag[k]
                if share > 0 and k + 1 < n_m:
                    f = recovery_rate * share
                    for m in range(k + 1, n_m):
                        r_m = rec[m]
                        d_m = d[m - k - 1]
                        for q in range(tile):
                            r_m[q] += f * d_m[q]
            for q in range(w):
                p = p0 + q
                for k in range(N_ACC):
                    row = acc[s, k, p]
                    for m in range(n_m):
                        row[m] = loc[k, m, q]
                r_row = recovery[s, p]
                e_row = eop[s, p]
                for m in range(n_m):
                    r_row[m] = rec[m, q]
                    e = loc[BOP, m, q] - loc[PRINCIPAL, m, q]
                    e -= loc[PREPAY, m, q]
                    e -= loc[DEFAULT, m, q]
                    e_row[m] = 0.0 if abs(e) < 1e-6 else e



PAGE_FLOATS = 512  # float64 in a 4 KiB page


@numba.njit(cache=True, nogil=True)
def touch_pages(flat):
    """Write 0.0 to one element in every ``PAGE_FLOATS`` of ``flat`` (1-d float64): every
    4 KiB page of a fresh ``np.empty`` is then mapped by the operating system (the first
    write to a page faults it in), on the thread that calls this (the GIL released)."""
    for i in range(0, flat.shape[0], PAGE_FLOATS):
        flat[i] = 0.0

_HASH_MULT = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing (2^64 / golden ratio)


@numba.njit(cache=True, nogil=True, inline="always")
def _mix(h, x):
    return (h ^ x) * _HASH_MULT


@numba.njit(cache=True, nogil=True)
def distinct_rows(b_bits, a_bits, term, code, p_bits):
    """Each row's index among the distinct rows of the columns (balance, APR, term,
    repayment type, principal), numbered in order of first appearance, and the first row of
    each: floats compared by their bits (``ndarray.view(np.int64)``), in an open-addressing
    hash table that doubles when half full. New loans (months on book 0, one origination
    date) with equal rows have the same schedule (``replenishment``'s preparation computes
    each once)."""
    n = b_bits.shape[0]
    size = 1 << 12
    table = np.full(size, -1, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    keys = np.empty((n, 5), dtype=np.uint64)
    uid = np.empty(n, dtype=np.int64)
    n_d = 0
    for i in range(n):
        k0 = np.uint64(b_bits[i])
        k1 = np.uint64(a_bits[i])
        k2 = np.uint64(term[i])
        k3 = np.uint64(code[i])
        k4 = np.uint64(p_bits[i])
        h = _mix(_mix(_mix(_mix(_mix(np.uint64(0), k0), k1), k2), k3), k4)
        mask = size - 1
        slot = np.int64(h >> np.uint64(40)) & mask
        while True:
            d = table[slot]
            if d < 0:
                table[slot] = n_d
                keys[n_d, 0] = k0
                keys[n_d, 1] = k1
                keys[n_d, 2] = k2
                keys[n_d, 3] = k3
                keys[n_d, 4] = k4
                first[n_d] = i
                uid[i] = n_d
                n_d += 1
                break
            if keys[d, 0] == k0 and keys[d, 1] == k1 and keys[d, 2] == k2 \
                    and keys[d, 3] == k3 and keys[d, 4] == k4:
                uid[i] = d
                break
            slot = (slot + 1) & mask
        if 2 * n_d > size:  # rehash into a table twice the size
            size *= 2
            mask = size - 1
            table = np.full(size, -1, dtype=np.int64)
            for d in range(n_d):
                h = _mix(_mix(_mix(_mix(_mix(np.uint64(0), keys[d, 0]), keys[d, 1]),
                                    keys[d, 2]), keys[d, 3]), keys[d, 4])
                slot = np.int64(h >> np.uint64(40)) & mask
                while table[slot] >= 0:
                    slot = (slot + 1) & mask
                table[slot] = d
    return uid, first[:n_d].copy()


SCATTER_RUN = 64  # loans whose schedules scatter_schedules reads ahead together


@numba.njit(cache=True, nogil=True)
def scatter_schedules(c_lo, c_hi, cell, uid, rem, base, sched, cell_flows, initial):
    """Loan by loan in row order, the schedule of its distinct row (``sched`` from offset
    ``base[uid[i]]``: (bop, interest, principal) per month) added into its cell's sums
    ``cell_flows`` (n_cells, T, 3) and its first bop into ``initial``, for the cells
    ``c_lo ≤ cell < c_hi``: each sum receives its terms in row order, as
    ``schedule_sums`` adds them in cell-major order (a cell's loans in row order).

    The distinct schedules are read in no particular order (tens of MB on a large pool), so
    for a run of ``SCATTER_RUN`` loans each schedule's cache lines are read first (loads
    independent of each other, which the core overlaps), then the run's sums are added.
    Returns the sum of the values read ahead (no meaning; it keeps those reads)."""
    n = cell.shape[0]
    off = np.empty(SCATTER_RUN, dtype=np.int64)
    ahead = 0.0
    for i0 in range(0, n, SCATTER_RUN):
        m = min(SCATTER_RUN, n - i0)
        for k in range(m):
            c = cell[i0 + k]
            if c < c_lo or c >= c_hi:
                off[k] = -1
                continue
            o = base[uid[i0 + k]]
            off[k] = o
            for q in range(0, 3 * rem[i0 + k], 8):  # 8 float64: one 64-byte line
                ahead += sched[o + q]
        for k in range(m):
            o = off[k]
            if o < 0:
                continue
            i = i0 + k
            c = cell[i]
            for j in range(rem[i]):
                bop = sched[o + 3 * j]
                if j == 0:
                    initial[c] += bop
                cell_flows[c, j, 0] += bop
                cell_flows[c, j, 1] += sched[o + 3 * j + 1]
                cell_flows[c, j, 2] += sched[o + 3 * j + 2]
    return ahead


def expected_vintages_np(zb, scale, cell_r, thr_s, cell_smm, cell_flows, out, t_q, kf):
    """Plain-numpy twin of :func:`expected_vintages` (vectorised over the block's paths)."""
    n_v = out.shape[0]
    for s in range(n_v):
        zs = zb[:, s + 1:]
        for c in range(cell_r.shape[0]):
            r = int(cell_r[c])
            if t_q.shape[0]:
                pds = t_copula_pds_np(t_q[c], r, scale, zs, kf)
            else:
                pds = cond_pd_np(thr_s[c, :r][None, :], scale[:, None], zs[:, :r])
            frac = np.ones(zb.shape[0])
            for t in range(r):
                pd = pds[:, t]
                perf = frac * (1.0 - pd)
                sm = cell_smm[c, t]
                b, i, pr = cell_flows[c, t]
                out[s, 0, :, t] += frac * b
                out[s, 1, :, t] += perf * i
                out[s, 2, :, t] += perf * pr
                out[s, 3, :, t] += perf * sm * (b - pr)
                out[s, 4, :, t] += frac * pd * b
                frac = perf * (1.0 - sm)


# ------------------------------------------------------------------------------------------
# Exact binomial draws from the block's Generator (granular engines; reusable)


_U1 = np.uint64(1)
_U3 = np.uint64(3)
_U11 = np.uint64(11)
_U24 = np.uint64(24)
_U40 = np.uint64(40)
_TWO53 = 1.0 / 9007199254740992.0


@numba.njit(cache=True, nogil=True, inline="always")
def sfc64_next(s, lane):
    """The next uniform double of the SFC64 stream whose state (a, b, c, counter) is
    ``s[0:4, lane]`` (Doty-Humphrey's Small Fast Chaotic generator, 64-bit; the top 53 bits of
    the output over 2⁵³, as ``numpy.random.Generator(SFC64).random()``), advancing it: one lane
    of ``lanes.lane_uniforms``."""
    a = s[0, lane]
    b = s[1, lane]
    c = s[2, lane]
    d = s[3, lane]
    tmp = a + b + d
    s[3, lane] = d + _U1
    s[0, lane] = b ^ (b >> _U11)
    s[1, lane] = c + (c << _U3)
    s[2, lane] = ((c << _U24) | (c >> _U40)) + tmp
    return np.float64(tmp >> _U11) * _TWO53


def next_uniform(src):
    """The next uniform double of ``src``: ``src.random()`` of a ``numpy.random.Generator``
    (or, in Python, of any object with that method); in compiled code also a lane's SFC64
    stream given as the tuple (states, lane) (:func:`sfc64_next`). The exact binomial draws
    take their uniforms through it, so that one algorithm serves both sources."""
    return src.random()


@overload(next_uniform, inline="always")
def _next_uniform_compiled(src):
    if isinstance(src, types.NumPyRandomGeneratorType):
        return lambda src: src.random()
    if isinstance(src, types.BaseTuple) and len(src) == 2:
        return lambda src: sfc64_next(src[0], src[1])
    return None


BINOMIAL_INVERSION_MAX_MODE = 10
"""``binomial_draw`` inverts the CDF from 0 when the mode ⌊(n+1)·min(p, 1−p)⌋ is at most
this (about that many steps), else uses Hörmann's BTRD (valid for a mode of at least 10)."""


def _stirling_tail_table() -> np.ndarray:
    # fc(k) = ln k! − ((k + ½)·ln(k + 1) − (k + 1) + ½·ln 2π), k = 0..9 (Hörmann's table)
    return np.array([math.lgamma(k + 1.0) - ((k + 0.5) * math.log(k + 1.0) - (k + 1.0)
                                             + 0.5 * math.log(2.0 * math.pi))
                     for k in range(10)])


_FC_TABLE = _stirling_tail_table()


@numba.njit(cache=True, nogil=True, inline="always")
def stirling_tail(k):
    """fc(k) = ln k! − ((k + ½)·ln(k + 1) − (k + 1) + ½·ln 2π), the remainder of Stirling's
    formula: a table for k < 10, else the series 1/(12x) − 1/(360x³) + 1/(1260x⁵), x = k + 1
    (truncation error below 1/(1680x⁷) < 3e-11)."""
    if k < 10:
        return _FC_TABLE[k]
    x = k + 1.0
    x2 = x * x
    return (1.0 / 12.0 - (1.0 / 360.0 - 1.0 / 1260.0 / x2) / x2) / x


_RECIP = 1.0 / np.arange(1.0, 65.0)  # 1/(k + 1) for the first steps of the inversion


@numba.njit(cache=True, nogil=True, inline="always")
def _binomial_inversion(n, p, gen):
    # P(K = 0) = (1 − p)^n, P(K = k + 1) = P(K = k)·(n − k)/(k + 1)·p/(1 − p); search from 0.
    # u < 1 − np ≤ (1 − p)^n means K = 0 (skips the exp/log). A uniform beyond the
    # accumulated total (rounding, ~1e-16) is redrawn, never clipped.
    ratio = p / (1.0 - p)
    lim = 1.0 - n * p
    while True:
        u = next_uniform(gen)
        if u < lim:
            return 0
        f = math.exp(n * math.log1p(-p))
        c = f
        k = 0
        while u >= c and k < n:
            f *= ratio * (n - k) * (_RECIP[k] if k < 64 else 1.0 / (k + 1.0))
            k += 1
            c += f
        if u < c:
            return k


@numba.njit(cache=True, nogil=True)
def _binomial_btrd_rest(n, p, gen, v, a, b, c, v_r, npq):
    # BTRD after the first uniform ``v`` missed the box (steps 2-5; step 1 again for every
    # later uniform). Not inlined: about one draw in four comes here.
    q = 1.0 - p
    m = math.floor((n + 1) * p)
    r = p / q
    nr = (n + 1) * r
    alpha = (2.83 + 5.1 / b) * math.sqrt(npq)
    urvr = 0.86 * v_r
    fresh = False
    while True:
        if fresh:
            v = next_uniform(gen)
            if v <= urvr:
                u = v / v_r - 0.43
                k = math.floor((2.0 * a / (0.5 - abs(u)) + b) * u + c)
                if 0 <= k <= n:
                    return k
                continue  # (not reached for m ≥ 10: the box lies inside [0, n])
        fresh = True
        if v <= urvr:  # only the very first uniform, when its box k fell outside [0, n]
            continue
        if v >= v_r:
            u = next_uniform(gen) - 0.5
        else:
            u = v / v_r - 0.93
            u = math.copysign(0.5, u) - u
            v = next_uniform(gen) * v_r
        us = 0.5 - abs(u)
        if us <= 0.0:
            continue
        k = math.floor((2.0 * a / us + b) * u + c)
        if k < 0 or k > n:
            continue
        v = v * alpha / (a / (us * us) + b)
        km = abs(k - m)
        if km <= 15:
            # accept when v ≤ f(k)/f(m) = Π (nr − r·i)/i over i = m+1..k (k > m), or
            # 1 / Π over i = k+1..m (k < m): f(i)/f(i − 1) = (n + 1 − i)·r/i
            num = 1.0
            den = 1.0
            i = min(k, m) + 1
            while i <= max(k, m):
                num *= nr - r * i
                den *= i
                i += 1
            if (v * den <= num) if k >= m else (v * num <= den):
                return k
            continue
        # squeeze on log f(k)/f(m) (normal approximation with a bound on its error)
        v = math.log(v) if v > 0.0 else -math.inf
        rho = (km / npq) * (((km / 3.0 + 0.625) * km + 1.0 / 6.0) / npq + 0.5)
        t = -km * km / (2.0 * npq)
        if v < t - rho:
            return k
        if v > t + rho:
            continue
        # final test: log f(k)/f(m) from Stirling's formula with the fc corrections
        nm = n - m + 1.0
        h = (m + 0.5) * math.log((m + 1.0) / (r * nm)) + stirling_tail(m) + stirling_tail(n - m)
        nk = n - k + 1.0
        if v <= (h + (n + 1.0) * math.log(nm / nk) + (k + 0.5) * math.log(nk * r / (k + 1.0))
                 - stirling_tail(k) - stirling_tail(n - k)):
            return k


@numba.njit(cache=True, nogil=True, inline="always")
def _binomial_btrd(n, p, gen):
    # Hörmann (1993), algorithm BTRD, for p ≤ ½ and mode m ≥ 10: transformed rejection with
    # a table-free squeeze, a recursive evaluation of f(k)/f(m) near the mode and a
    # Stirling-series test in the tails. Only what step 1 needs is set up here (one sqrt,
    # two divisions): most draws end in step 1 with their first uniform; the rest of the
    # algorithm is :func:`_binomial_btrd_rest`.
    npq = n * p * (1.0 - p)
    b = 1.15 + 2.53 * math.sqrt(npq)
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    v_r = 0.92 - 4.2 / b
    v = next_uniform(gen)
    if v <= 0.86 * v_r:
        u = v / v_r - 0.43
        k = math.floor((2.0 * a / (0.5 - abs(u)) + b) * u + c)
        if 0 <= k <= n:
            return k
    return _binomial_btrd_rest(n, p, gen, v, a, b, c, v_r, npq)


@numba.njit(cache=True, nogil=True, inline="always")
def binomial_draw(n, p, gen):
    """An exact Binomial(n, p) draw whose uniforms are ``gen.random()`` doubles of the
    ``numpy.random.Generator`` ``gen`` (numba compiles a Generator's documented methods in
    nopython code; they read and advance the same bit generator as numpy's own calls):
    deterministic for a given generator state.

    ``n ≤ 0`` or ``p ≤ 0`` gives 0 and ``p ≥ 1`` gives n, without drawing. Otherwise, with
    p' = min(p, 1 − p) (a draw for 1 − p is n minus a draw for p) and mode
    m = ⌊(n + 1)·p'⌋: m ≤ ``BINOMIAL_INVERSION_MAX_MODE``, inversion of the CDF searched
    from 0 (one uniform, about m steps); larger, Hörmann's BTRD (W. Hörmann, "The
    generation of binomial random variates", J. Statist. Comput. Simul. 46, 1993), a
    transformed rejection whose acceptance test uses the exact probability ratio (Stirling's
    series to 3e-11): on average 1.1–1.3 uniforms a draw, O(1) time whatever n. No normal
    approximation anywhere. The twin is :func:`binomial_draw_np`."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    flip = p > 0.5
    pp = 1.0 - p if flip else p
    if math.floor((n + 1) * pp) <= BINOMIAL_INVERSION_MAX_MODE:
        k = _binomial_inversion(n, pp, gen)
    else:
        k = _binomial_btrd(n, pp, gen)
    return n - k if flip else k


def binomial_draw_np(n: int, p: float, gen: np.random.Generator) -> int:
    """Plain-Python twin of :func:`binomial_draw`: the same algorithm, its uniforms from
    ``gen.random()`` called from Python, so that it returns the same draws and leaves
    ``gen`` where the kernel leaves it (tested)."""
    n = int(n)
    p = float(p)
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    flip = p > 0.5
    pp = 1.0 - p if flip else p
    if math.floor((n + 1) * pp) <= BINOMIAL_INVERSION_MAX_MODE:
        k = _binomial_inversion_np(n, pp, gen)
    else:
        k = _binomial_btrd_np(n, pp, gen)
    return n - k if flip else k


def _binomial_inversion_np(n: int, p: float, gen: np.random.Generator) -> int:
    ratio = p / (1.0 - p)
    lim = 1.0 - n * p
    while True:
        u = float(gen.random())
        if u < lim:
            return 0
        f = c = math.exp(n * math.log1p(-p))
        k = 0
        while u >= c and k < n:
            f *= ratio * (n - k) * (float(_RECIP[k]) if k < 64 else 1.0 / (k + 1.0))
            k += 1
            c += f
        if u < c:
            return k


def _fc_np(k: int) -> float:
    if k < 10:
        return float(_FC_TABLE[k])
    x = k + 1.0
    x2 = x * x
    return (1.0 / 12.0 - (1.0 / 360.0 - 1.0 / 1260.0 / x2) / x2) / x


def _binomial_btrd_np(n: int, p: float, gen: np.random.Generator) -> int:
    npq = n * p * (1.0 - p)
    b = 1.15 + 2.53 * math.sqrt(npq)
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    v_r = 0.92 - 4.2 / b
    q = 1.0 - p
    m = math.floor((n + 1) * p)
    r = p / q
    nr = (n + 1) * r
    alpha = (2.83 + 5.1 / b) * math.sqrt(npq)
    urvr = 0.86 * v_r
    while True:
        v = float(gen.random())
        if v <= urvr:
            u = v / v_r - 0.43
            k = math.floor((2.0 * a / (0.5 - abs(u)) + b) * u + c)
            if 0 <= k <= n:
                return k
            continue
        if v >= v_r:
            u = float(gen.random()) - 0.5
        else:
            u = v / v_r - 0.93
            u = math.copysign(0.5, u) - u
            v = float(gen.random()) * v_r
        us = 0.5 - abs(u)
        if us <= 0.0:
            continue
        k = math.floor((2.0 * a / us + b) * u + c)
        if k < 0 or k > n:
            continue
        v = v * alpha / (a / (us * us) + b)
        km = abs(k - m)
        if km <= 15:
            num = den = 1.0
            for i in range(min(k, m) + 1, max(k, m) + 1):
                num *= nr - r * i
                den *= i
            if (v * den <= num) if k >= m else (v * num <= den):
                return k
            continue
        v = math.log(v) if v > 0.0 else -math.inf
        rho = (km / npq) * (((km / 3.0 + 0.625) * km + 1.0 / 6.0) / npq + 0.5)
        t = -km * km / (2.0 * npq)
        if v < t - rho:
            return k
        if v > t + rho:
            continue
        nm = n - m + 1.0
        h = (m + 0.5) * math.log((m + 1.0) / (r * nm)) + _fc_np(m) + _fc_np(n - m)
        nk = n - k + 1.0
        if v <= (h + (n + 1.0) * math.log(nm / nk) + (k + 0.5) * math.log(nk * r / (k + 1.0))
                 - _fc_np(k) - _fc_np(n - k)):
            return k


@numba.njit(cache=True, nogil=True, inline="always")
def _ceil_f32(x):
    """The smallest float32 >= x: for a float32 u, ``u >= x`` ⟺ ``u >= _ceil_f32(x)``."""
    f = np.float32(x)
    if np.float64(f) < x:
        f = np.nextafter(f, np.float32(np.inf))
    return f


@numba.njit(cache=True, nogil=True)
def loan_block(u, l0, c0, cell_of, loan_base, cell_r, cum, total, sched, shares, out, pout):
    """Exact loan-level draw for the loans ``l0 .. l0 + u.shape[1]`` (cell-major order).

    ``cell_r``, ``cum`` and ``total`` start at cell ``c0`` (loan li is in cell
    ``cell_of[li] − c0`` of them).

    u (n_b, n_l) float32: one uniform per path and loan, inverted over the loan's event
    distribution ``cum[cell, path]``. ``sched`` is flat float64, the scheduled
    (bop, interest, principal) of loan li in month t at ``loan_base[li] + 3t``; shares
    (n_loans, n_parties). ``out`` (n_b, T, 5) / ``pout`` (n_parties, n_b, T, 5) receive the
    *corrections* to the no-event scheduled flows (the caller adds the scheduled totals), so
    a loan with no event before maturity — most of them — costs one comparison. Loops run
    cell → path → loan so that a cell's event table and schedules stay in cache; the loans
    with an event are first gathered (branch-free), then resolved: the event index is the
    number of ``cum`` entries <= u (``cum`` is non-decreasing, and u < total = its last
    entry), counted branch-free over the cell's 2·r entries, and a default (``is_def`` = 1) or
    prepayment applied without branching. The comparisons run in float32 against
    ``_ceil_f32`` of the float64 thresholds — the same outcome for every float32 u.
    """
    n_b, n_l = u.shape
    n_parties = shares.shape[1]
    ev = np.empty(n_l, dtype=np.int64)
    c32 = np.empty(cum.shape[2], dtype=np.float32)
    k = 0
    while k < n_l:
        c_abs = cell_of[l0 + k]
        c = c_abs - c0
        k_end = k
        while k_end < n_l and cell_of[l0 + k_end] == c_abs:
            k_end += 1
        r = cell_r[c]
        r2 = 2 * r
        for p in range(n_b):
            tot = _ceil_f32(total[c, p])
            n_ev = 0
            for kk in range(k, k_end):
                ev[n_ev] = kk
                n_ev += u[p, kk] < tot
            if n_ev == 0:
                continue
            for j in range(r2):
                c32[j] = _ceil_f32(cum[c, p, j])
            for e in range(n_ev):
                kk = ev[e]
                ui = u[p, kk]
                lo = 0
                for j in range(r2):
                    lo += c32[j] <= ui
                li = l0 + kk
                tau = lo >> 1
                base = loan_base[li]
                k0 = base + 3 * tau
                b = sched[k0]
                i = sched[k0 + 1]
                pr = sched[k0 + 2]
                is_def = 1.0 - (lo & 1)
                out[p, tau, 1] -= is_def * i
                out[p, tau, 2] -= is_def * pr
                out[p, tau, 4] += is_def * b
                out[p, tau, 3] += (1.0 - is_def) * (b - pr)
                for q in range(n_parties):
                    w = shares[li, q]
                    pout[q, p, tau, 1] -= w * is_def * i
                    pout[q, p, tau, 2] -= w * is_def * pr
                    pout[q, p, tau, 4] += w * is_def * b
                    pout[q, p, tau, 3] += w * (1.0 - is_def) * (b - pr)
                for t in range(tau + 1, r):
                    kt = base + 3 * t
                    out[p, t, 0] -= sched[kt]
                    out[p, t, 1] -= sched[kt + 1]
                    out[p, t, 2] -= sched[kt + 2]
                    for q in range(n_parties):
                        w = shares[li, q]
                        pout[q, p, t, 0] -= w * sched[kt]
                        pout[q, p, t, 1] -= w * sched[kt + 1]
                        pout[q, p, t, 2] -= w * sched[kt + 2]
        k = k_end


def loan_block_np(u, l0, c0, cell_of, loan_base, cell_r, cum, total, sched, shares, out,
                  pout):
    """Plain-numpy twin of :func:`loan_block` (vectorised over the loans, path by path)."""
    n_b, n_l = u.shape
    idx = np.arange(l0, l0 + n_l)
    c = cell_of[idx] - c0
    r = cell_r[c]
    t_max = cum.shape[2] // 2
    months = np.arange(t_max)
    # dense (n_l, t_max, 3) schedule
    pos = loan_base[idx][:, None] + 3 * np.minimum(months[None, :], r[:, None] - 1)
    valid = months[None, :] < r[:, None]
    dense = np.stack([np.where(valid, sched[pos + k], 0.0) for k in range(3)], axis=2)
    for p in range(n_b):
        ui = u[p].astype(np.float64)
        cols = np.arange(2 * t_max)[None, :]
        cum_l = np.where(cols < 2 * r[:, None], cum[c, p, :], np.inf)  # (n_l, 2 t_max)
        j = (ui[:, None] >= cum_l).sum(axis=1)
        event = (ui < total[c, p]) & (j < 2 * r)
        tau = np.where(event, j // 2, r)
        is_def = (event & (j % 2 == 0))[:, None]
        is_pre = (event & (j % 2 == 1))[:, None]
        after = months[None, :] > tau[:, None]
        at = months[None, :] == tau[:, None]
        corr = np.zeros((n_l, t_max, N_ACC))
        corr[:, :, 0] = -np.where(after, dense[:, :, 0], 0.0)
        gone = after | (at & is_def)
        corr[:, :, 1] = -np.where(gone, dense[:, :, 1], 0.0)
        corr[:, :, 2] = -np.where(gone, dense[:, :, 2], 0.0)
        corr[:, :, 3] = np.where(at & is_pre, dense[:, :, 0] - dense[:, :, 2], 0.0)
        corr[:, :, 4] = np.where(at & is_def, dense[:, :, 0], 0.0)
        corr[~event] = 0.0
        out[p, :t_max] += corr.sum(axis=0)
        for q in range(shares.shape[1]):
            pout[q, p, :t_max] += np.einsum("l,ltk->tk", shares[idx, q], corr)


# ------------------------------------------------------------------------------------------
# Loan engine: the loans with an event drawn as a binomial count and a uniform random subset

LOAN_SAMPLER = "subset-binomial-v1"
"""Identity of the loan engine's draw (recorded with every loan-engine run): see
:func:`loan_subset_block`."""
LOAN_TILE = 1024
"""Loans per sampling unit of :func:`loan_subset_block` (a cell's loans in runs of this many;
part of the draw's definition: another value gives other, equally exact, numbers)."""

_U1 = np.uint64(1)
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_SHIFT = np.uint64(58)


def _debruijn_table() -> np.ndarray:
    table = np.zeros(64, dtype=np.int64)
    for i in range(64):
        table[((1 << i) * 0x03F79D71B4CB0A89 & 0xFFFFFFFFFFFFFFFF) >> 58] = i
    return table


_DEBRUIJN_TABLE = _debruijn_table()  # index of the lowest set bit from its de Bruijn hash


LOAN_GROUP = 8
"""Events whose rows :func:`loan_subset_block` subtracts from a path's corrections in one pass
over the row (a run's last group padded with events that subtract nothing)."""


@numba.njit(cache=True, nogil=True)
def loan_subset_block(gen, tile, cell_first, cell_r, cum, total, sched, loan_base, shares, out,
                      pout):
    """Exact loan-level draw of every loan of the pool on the block's paths (the loan engine).

    Every loan of cell c has, on path p, the same probability ``q = total[c, p]`` of an event
    before maturity and the same event distribution ``cum[c, p] / q`` (event j = 2t:
    default in month t; 2t + 1: prepayment in month t), independently of the other loans
    given the factor path. So, per cell, per run of ``tile`` loans of the cell (in cell-major
    order) and per path, in that order, the draw is:

    1. the number of loans with an event, ``N ~ Binomial(n, q)`` (:func:`binomial_draw`);
    2. which ones: a uniform random N-subset of the n loans, marked one uniform ``u`` at a
       time (loan ⌊u·n⌋, redrawn if already marked or if u·n rounds to n). When N > n/2 the
       n − N loans *without* an event are marked instead;
    3. each event's kind and month by inversion of ``cum[c, p] / q``: with the fraction
       ``u·n − ⌊u·n⌋`` left over from the uniform that picked the loan (uniform and
       independent of the loan, on a grid of n·2⁻⁵³), or — when the loans without an event
       were marked — with one more uniform per event, in loan order.

    Together: independent Bernoulli(q) events per loan with the right conditional month
    distribution — the same law as one uniform per loan inverted over ``cum`` — from about
    one uniform per *event* (B1: 16 % of the loan-paths) instead of one per loan-path.
    Uniforms are ``gen.random()`` doubles of the block's idiosyncratic stream.

    Events are applied in loan order within a run: ``out`` (n_b, T, 5) / ``pout``
    (n_parties, n_b, T, 5) receive the *corrections* to the scheduled flows (the caller adds
    the scheduled totals): the default (bop) or prepayment (bop − principal) in the event
    month; the loan's scheduled (bop, interest, principal) from the event onwards (from the
    interest of the default month, from the month after a prepayment) are subtracted in a
    per-path buffer laid out like ``sched`` and added to ``out`` at the end.
    ``cell_first`` (n_cells + 1,) cell-major loan offsets; other arguments as in
    :func:`loan_block`. The twin is :func:`loan_subset_block_np`.

    Per run and path the kernel works in passes over the run's events: the subset's uniforms
    drawn as a batch (as many as loans still to mark: each marks at most one, so the stream
    is read exactly as one call per uniform would), then marked; the events' loans from the
    bit map, their uniforms, their event indices (the count of ``cum / q`` entries <= f,
    vectorised over the events, four entries a pass), their own flows; then their rows come
    off the path's corrections ``LOAN_GROUP`` events at a time: one pass over the row
    positions subtracts the group's rows in loan order, each row's entries before its event
    masked (a trip count fixed per cell, no branch on the event month; a run's last group
    padded with rows masked whole, which subtract +0.0: nothing). Each accumulator receives
    the same terms in the same order as in the twin."""
    n_cells, n_b = total.shape
    T = out.shape[1]
    n_q = shares.shape[1]
    corr = np.zeros((n_b, 3 * T))
    pcorr = np.zeros((n_q, n_b, 3 * T))
    ncum = np.empty((n_b, max(cum.shape[2], 1)))
    n_words = (tile + 63) // 64
    bits = np.zeros(n_words, dtype=np.uint64)
    frac = np.zeros(tile)
    ubuf = np.zeros(tile)  # the subset's uniforms, a batch at a time
    ev_k = np.zeros(tile, dtype=np.int64)  # a run's events on one path: loan in the run,
    ev_f = np.zeros(tile)  # uniform of its kind and month,
    ev_j = np.zeros(tile, dtype=np.int64)  # its event index j,
    ev_a = np.zeros(tile)  # its own flow (default or prepayment),
    n_pad = tile + LOAN_GROUP
    ev_s = np.zeros(n_pad, dtype=np.int64)  # its row's first position removed,
    ev_b = np.zeros(n_pad, dtype=np.int64)  # its row's offset in sched,
    ev_w = np.zeros(n_pad)  # and its share of one party
    for c in range(n_cells):
        r = cell_r[c]
        r2 = 2 * r
        r3 = 3 * r
        first = cell_first[c]
        end = cell_first[c + 1]
        for p in range(n_b):
            q = total[c, p]
            if q > 0.0:
                inv = 1.0 / q
                for j in range(r2):
                    ncum[p, j] = cum[c, p, j] * inv
                ncum[p, r2 - 1] = 1.0
        for t0 in range(first, end, tile):
            n_t = min(end - t0, tile)
            n_w = (n_t + 63) // 64
            for p in range(n_b):
                q = total[c, p]
                n_e = binomial_draw(n_t, q, gen) if q > 0.0 else 0
                if n_e == 0:
                    continue
                comp = 2 * n_e > n_t
                n_mark = n_t - n_e if comp else n_e
                for w in range(n_w):
                    bits[w] = 0
                m = 0
                while m < n_mark:
                    need = n_mark - m  # uniforms this batch: each marks at most one loan
                    for i in range(need):
                        ubuf[i] = gen.random()
                    for i in range(need):
                        x = ubuf[i] * n_t
                        k = int(x)
                        if k >= n_t:
                            continue
                        bit = _U1 << np.uint64(k & 63)
                        word = bits[k >> 6]
                        if word & bit:
                            continue
                        bits[k >> 6] = word | bit
                        frac[k] = x - k
                        m += 1
                # the loans with an event, in loan order (the unmarked ones when comp)
                e = 0
                for w in range(n_w):
                    word = bits[w]
                    if comp:
                        left = n_t - 64 * w
                        valid = ~np.uint64(0) if left >= 64 else (_U1 << np.uint64(left)) - _U1
                        word = ~word & valid
                    while word:
                        low = word & (np.uint64(0) - word)
                        word ^= low
                        ev_k[e] = 64 * w + _DEBRUIJN_TABLE[(low * _DEBRUIJN) >> _DEBRUIJN_SHIFT]
                        e += 1
                if comp:  # one more uniform per event, in loan order
                    for i in range(n_e):
                        ev_f[i] = gen.random()
                else:
                    for i in range(n_e):
                        ev_f[i] = frac[ev_k[i]]
                # event index j = the number of entries of cum / q <= f (all events at once,
                # four entries a pass)
                nrow = ncum[p]
                jj = 0
                if r2 >= 4:  # the first four entries set the counts
                    th0 = nrow[0]
                    th1 = nrow[1]
                    th2 = nrow[2]
                    th3 = nrow[3]
                    for i in range(n_e):
                        f = ev_f[i]
                        ev_j[i] = ((np.int64(th0 <= f) + np.int64(th1 <= f))
                                   + (np.int64(th2 <= f) + np.int64(th3 <= f)))
                    jj = 4
                else:
                    for i in range(n_e):
                        ev_j[i] = 0
                while jj + 4 <= r2:
                    th0 = nrow[jj]
                    th1 = nrow[jj + 1]
                    th2 = nrow[jj + 2]
                    th3 = nrow[jj + 3]
                    for i in range(n_e):
                        f = ev_f[i]
                        ev_j[i] += ((np.int64(th0 <= f) + np.int64(th1 <= f))
                                    + (np.int64(th2 <= f) + np.int64(th3 <= f)))
                    jj += 4
                while jj < r2:
                    th = nrow[jj]
                    for i in range(n_e):
                        ev_j[i] += th <= ev_f[i]
                    jj += 1
                # each event's own flow, and where its row's removal starts
                for i in range(n_e):
                    j = ev_j[i]
                    tau = j >> 1
                    isd = 1 - (j & 1)
                    base = loan_base[t0 + ev_k[i]]
                    k0 = base + 3 * tau
                    amt = sched[k0] - (1 - isd) * sched[k0 + 2]
                    out[p, tau, 3 + isd] += amt
                    ev_a[i] = amt
                    ev_s[i] = 3 * tau + 3 - 2 * isd
                    ev_b[i] = base
                # row[start:] of each event off the path's corrections, LOAN_GROUP events a
                # pass (in loan order at every position); padding rows masked whole
                n_g = (n_e + LOAN_GROUP - 1) // LOAN_GROUP * LOAN_GROUP
                for i in range(n_e, n_g):
                    ev_s[i] = r3
                    ev_b[i] = ev_b[0]
                acc = corr[p]
                for g in range(0, n_g, LOAN_GROUP):
                    s0 = ev_s[g]
                    s1 = ev_s[g + 1]
                    s2 = ev_s[g + 2]
                    s3 = ev_s[g + 3]
                    s4 = ev_s[g + 4]
                    s5 = ev_s[g + 5]
                    s6 = ev_s[g + 6]
                    s7 = ev_s[g + 7]
                    w0 = sched[ev_b[g]:ev_b[g] + r3]
                    w1 = sched[ev_b[g + 1]:ev_b[g + 1] + r3]
                    w2 = sched[ev_b[g + 2]:ev_b[g + 2] + r3]
                    w3 = sched[ev_b[g + 3]:ev_b[g + 3] + r3]
                    w4 = sched[ev_b[g + 4]:ev_b[g + 4] + r3]
                    w5 = sched[ev_b[g + 5]:ev_b[g + 5] + r3]
                    w6 = sched[ev_b[g + 6]:ev_b[g + 6] + r3]
                    w7 = sched[ev_b[g + 7]:ev_b[g + 7] + r3]
                    for x in range(r3):
                        a = acc[x] - (w0[x] if x >= s0 else 0.0)
                        a = a - (w1[x] if x >= s1 else 0.0)
                        a = a - (w2[x] if x >= s2 else 0.0)
                        a = a - (w3[x] if x >= s3 else 0.0)
                        a = a - (w4[x] if x >= s4 else 0.0)
                        a = a - (w5[x] if x >= s5 else 0.0)
                        a = a - (w6[x] if x >= s6 else 0.0)
                        acc[x] = a - (w7[x] if x >= s7 else 0.0)
                # the parties: each event's own flow times its share, and its row times its
                # share off the party's corrections in the same groups (a zero share adds and
                # subtracts +0.0: nothing, flows being >= 0)
                for qq in range(n_q):
                    for i in range(n_e):
                        w = shares[t0 + ev_k[i], qq]
                        ev_w[i] = w
                        if w != 0.0:
                            j = ev_j[i]
                            pout[qq, p, j >> 1, 4 - (j & 1)] += w * ev_a[i]
                    for i in range(n_e, n_g):
                        ev_w[i] = 0.0
                    pacc = pcorr[qq, p]
                    for g in range(0, n_g, LOAN_GROUP):
                        s0 = ev_s[g]
                        s1 = ev_s[g + 1]
                        s2 = ev_s[g + 2]
                        s3 = ev_s[g + 3]
                        s4 = ev_s[g + 4]
                        s5 = ev_s[g + 5]
                        s6 = ev_s[g + 6]
                        s7 = ev_s[g + 7]
                        v0 = ev_w[g]
                        v1 = ev_w[g + 1]
                        v2 = ev_w[g + 2]
                        v3 = ev_w[g + 3]
                        v4 = ev_w[g + 4]
                        v5 = ev_w[g + 5]
                        v6 = ev_w[g + 6]
                        v7 = ev_w[g + 7]
                        w0 = sched[ev_b[g]:ev_b[g] + r3]
                        w1 = sched[ev_b[g + 1]:ev_b[g + 1] + r3]
                        w2 = sched[ev_b[g + 2]:ev_b[g + 2] + r3]
                        w3 = sched[ev_b[g + 3]:ev_b[g + 3] + r3]
                        w4 = sched[ev_b[g + 4]:ev_b[g + 4] + r3]
                        w5 = sched[ev_b[g + 5]:ev_b[g + 5] + r3]
                        w6 = sched[ev_b[g + 6]:ev_b[g + 6] + r3]
                        w7 = sched[ev_b[g + 7]:ev_b[g + 7] + r3]
                        for x in range(r3):
                            a = pacc[x] - (v0 * w0[x] if x >= s0 else 0.0)
                            a = a - (v1 * w1[x] if x >= s1 else 0.0)
                            a = a - (v2 * w2[x] if x >= s2 else 0.0)
                            a = a - (v3 * w3[x] if x >= s3 else 0.0)
                            a = a - (v4 * w4[x] if x >= s4 else 0.0)
                            a = a - (v5 * w5[x] if x >= s5 else 0.0)
                            a = a - (v6 * w6[x] if x >= s6 else 0.0)
                            pacc[x] = a - (v7 * w7[x] if x >= s7 else 0.0)
    for p in range(n_b):
        for t in range(T):
            for k in range(3):
                out[p, t, k] += corr[p, 3 * t + k]
                for q in range(n_q):
                    pout[q, p, t, k] += pcorr[q, p, 3 * t + k]


def loan_subset_block_np(gen, tile, cell_first, cell_r, cum, total, sched, loan_base, shares,
                         out, pout):
    """Plain-Python twin of :func:`loan_subset_block`: the same draws from the same
    generator calls (``binomial_draw_np``, ``gen.random()``), the same arithmetic in the same
    order, the marked loans kept in a set and visited in loan order."""
    n_cells, n_b = total.shape
    T = out.shape[1]
    n_q = shares.shape[1]
    corr = np.zeros((n_b, 3 * T))
    pcorr = np.zeros((n_q, n_b, 3 * T))
    for c in range(n_cells):
        r = int(cell_r[c])
        r2, r3 = 2 * r, 3 * r
        first, end = int(cell_first[c]), int(cell_first[c + 1])
        ncum = np.ones((n_b, r2))
        for p in range(n_b):
            q = float(total[c, p])
            if q > 0.0:
                ncum[p] = cum[c, p, :r2] * (1.0 / q)
                ncum[p, r2 - 1] = 1.0
        for t0 in range(first, end, tile):
            n_t = min(end - t0, tile)
            for p in range(n_b):
                q = float(total[c, p])
                n_e = binomial_draw_np(n_t, q, gen) if q > 0.0 else 0
                if n_e == 0:
                    continue
                comp = 2 * n_e > n_t
                n_mark = n_t - n_e if comp else n_e
                marked: dict[int, float] = {}
                while len(marked) < n_mark:
                    x = float(gen.random()) * n_t
                    k = int(x)
                    if k >= n_t or k in marked:
                        continue
                    marked[k] = x - k
                events = [k for k in range(n_t) if k not in marked] if comp else sorted(marked)
                for k in events:
                    f = float(gen.random()) if comp else marked[k]
                    j = int(np.count_nonzero(ncum[p] <= f))
                    tau, isd = j >> 1, 1 - (j & 1)
                    li = t0 + k
                    base = int(loan_base[li])
                    k0 = base + 3 * tau
                    amt = sched[k0] - (1 - isd) * sched[k0 + 2]
                    out[p, tau, 3 + isd] += amt
                    start = 3 * tau + 3 - 2 * isd
                    row = sched[base + start: base + r3]
                    corr[p, start:r3] -= row
                    for qq in range(n_q):
                        w = shares[li, qq]
                        pout[qq, p, tau, 3 + isd] += w * amt
                        pcorr[qq, p, start:r3] -= w * row
    out[:, :T, :3] += corr.reshape(n_b, T, 3)
    if n_q:
        pout[:, :, :T, :3] += pcorr.reshape(n_q, n_b, T, 3)


# ------------------------------------------------------------------------------------------
# Shares: one pass over the allocation


@numba.njit(cache=True, nogil=True)
def shares_valid(s, tol):
    """True when every entry of ``s`` (n_loans, n_parties) is in [0, 1] (NaN is not) and every
    row's sum, added left to right, is within ``tol`` of 1; one pass, no temporaries."""
    for i in range(s.shape[0]):
        total = 0.0
        for j in range(s.shape[1]):
            v = s[i, j]
            if not (v >= 0.0 and v <= 1.0):
                return False
            total = v if j == 0 else total + v
        if not abs(total - 1.0) <= tol:
            return False
    return True


# ------------------------------------------------------------------------------------------
# Cells: loans grouped by an integer key


@numba.njit(cache=True, nogil=True)
def stable_counting_order(key, bound):
    """``(np.argsort(key, kind="stable"), np.bincount(key, minlength=bound))`` of integer keys
    in [0, bound), by a counting sort: loans with equal keys keep their order, so it is the
    stable sort's permutation (a stable sort's result depends on the keys' order alone)."""
    n = key.shape[0]
    count = np.zeros(bound, dtype=np.int64)
    for i in range(n):
        count[key[i]] += 1
    pos = np.empty(bound, dtype=np.int64)
    acc = 0
    for k in range(bound):
        pos[k] = acc
        acc += count[k]
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        k = key[i]
        order[pos[k]] = i
        pos[k] += 1
    return order, count


# ------------------------------------------------------------------------------------------
# Scheduled cash flows summed per cell (the same arithmetic as schedules.schedule_matrix)


SCHEDULE_LANES = 4  # loans whose schedules schedule_sums runs side by side


@numba.njit(cache=True, nogil=True)
def schedule_sums(c_lo, c_hi, cell_first, cell_of, b0, rate_m, apr_di, is_di, level, flat, fee, rem,
                  start0, dom0, idx0, month_start, month_last, round_cents, shares, cell_flows,
                  cell_pflows, sched, loan_base, initial):
    """Scheduled (bop, interest, principal) of the loans of cells ``c_lo .. c_hi`` (cell-major
    order), summed into ``cell_flows`` (n_cells, T, 3) and, weighted by ``shares``, into
    ``cell_pflows`` (n_cells, n_parties, T, 3); per loan into the flat ``sched`` when it is
    not empty. ``initial[c]`` receives the cell's balance at cut-off.

    Per loan, the month loop of ``portfolio.loans.schedules.schedule_matrix`` operation for
    operation, on amounts in cents (b0 = balance, level payment and equal-principal amount
    prepared by the caller with the schedules module's rounding): interest = round(B·rate)
    with rate = apr/12, or apr·days/365 for daily interest, plus ``fee`` (a flat-fee loan's
    fixed fee in cents, its rate 0; 0 for the other types); principal = min(max(level −
    interest, 0), B) + flat, the whole balance at the last instalment, never more than B.
    Tested equal to ``schedule_matrix`` to the last bit.

    ``SCHEDULE_LANES`` consecutive loans run side by side, month by month (a loan's month
    depends on its previous month, so one loan at a time waits on that chain; independent
    loans fill the wait). Each month the lanes add into the sums in loan order, so every
    sum receives its terms in cell-major loan order, as one loan after the other would.
    """
    half = 0.5 + 1e-9
    n_parties = shares.shape[1]
    keep = sched.shape[0] > 0
    lanes = SCHEDULE_LANES
    bal = np.empty(lanes)
    start = np.empty(lanes, dtype=np.int64)
    lo = cell_first[c_lo]
    hi = cell_first[c_hi]
    for g in range(lo, hi, lanes):
        m = min(lanes, hi - g)
        r_max = 0
        for u in range(m):
            bal[u] = b0[g + u]
            start[u] = start0[g + u]
            r_max = max(r_max, rem[g + u])
        for j in range(r_max):
            for u in range(m):
                li = g + u
                r_i = rem[li]
                if j >= r_i:
                    continue
                c = cell_of[li]
                b = bal[u]
                k = idx0[li] + j + 1
                end = month_start[k] + min(dom0[li], month_last[k])
                if is_di[li]:
                    rate = apr_di[li] * float(end - start[u]) / 365.0
                else:
                    rate = rate_m[li]
                i = b * rate
                if round_cents:
                    i = math.floor(i + half)
                i += fee[li]
                p = level[li] - i
                if p < 0.0:
                    p = 0.0
                if p > b:
                    p = b
                p += flat[li]
                if r_i == j + 1:
                    p = b
                if p > b:
                    p = b
                b -= p
                bal[u] = b
                start[u] = end
                interest = i / 100.0
                principal = p / 100.0
                bop = principal + b / 100.0
                if j == 0:
                    initial[c] += bop
                cell_flows[c, j, 0] += bop
                cell_flows[c, j, 1] += interest
                cell_flows[c, j, 2] += principal
                for q in range(n_parties):
                    w = shares[li, q]
                    cell_pflows[c, q, j, 0] += w * bop
                    cell_pflows[c, q, j, 1] += w * interest
                    cell_pflows[c, q, j, 2] += w * principal
                if keep:
                    kk = loan_base[li] + 3 * j
                    sched[kk] = bop
                    sched[kk + 1] = interest
                    sched[kk + 2] = principal


@numba.njit(cache=True, nogil=True)
def schedule_inputs(rows, bal, apr, p0, code, rem, mob, days, day_lo, span_month, span_dom0,
                    first_month, month_start, month_last, la, ff, ep, di, half, b0, rate_raw,
                    rate_m, apr_di, is_la, is_di, flat, fee, rem_s, rem_f, start0, dom0, idx0):
    """The per-loan inputs of :func:`schedule_sums` for the loans ``rows`` (positions in the
    pool's columns), in one pass: the gathers and elementwise formulas the caller would
    otherwise make with numpy (``simulation._schedules_numba``'s numpy twin, its oracle),
    operation for operation: amounts in cents ``b0 = ⌊balance·100 + half⌋``; ``rate_raw =
    apr/12`` and ``rate_m`` the same but 0 for flat-fee loans; equal-principal (and flat-fee)
    amount ``⌊b0 / max(rem, 1)⌋``; a flat-fee loan's fee ``⌊⌊p0·100 + half⌋·apr/12 + half⌋``;
    the type flags of codes ``la``, ``ff``, ``ep`` (with ``ff``) and ``di``. The due-date
    arithmetic of ``simulation._month_tables`` from its tables: ``span_month`` and
    ``span_dom0`` per day from ``day_lo`` (month index and day of month − 1), ``month_start``
    and ``month_last`` per month from ``first_month``: the month index of each loan's period
    start ``idx0`` (its origination month + months on book − ``first_month``), ``dom0`` and
    the period start ``start0`` (days). The level payment (numpy's ``expm1``/``log1p``) is
    left to the caller, from ``b0``, ``rate_raw`` and ``rem_f``."""
    for i in range(rows.shape[0]):
        li = rows[i]
        c = code[li]
        a = apr[li]
        r_i = rem[li]
        rem_s[i] = r_i
        b = math.floor(bal[li] * 100.0 + half)
        b0[i] = b
        r = a / 12.0
        rate_raw[i] = r
        n = float(max(r_i, 1))
        rem_f[i] = n
        is_la[i] = c == la
        is_di[i] = c == di
        apr_di[i] = a if c == di else 0.0
        flat[i] = math.floor(b / n) if (c == ep or c == ff) else 0.0
        if c == ff:
            fee[i] = math.floor(math.floor(p0[li] * 100.0 + half) * r + half)
            rate_m[i] = 0.0
        else:
            fee[i] = 0.0
            rate_m[i] = r
        d = days[li] - day_lo
        m0 = span_month[d]
        d0 = span_dom0[d]
        k = m0 + mob[li] - first_month
        dom0[i] = d0
        idx0[i] = k
        start0[i] = month_start[k] + min(d0, month_last[k])


# ------------------------------------------------------------------------------------------
# A block's accumulators finished into the result's rows


@numba.njit(cache=True, nogil=True)
def finish_block(acc, recovery_rate, lag, row0, bop, interest, principal, prepay, default,
                 recovery, eop):
    """One block's accumulators ``acc`` (n_b, T, :data:`N_ACC`) finished into rows
    ``row0 .. row0 + n_b`` of the flow arrays (n_paths, n_months each, n_months ≥ T; the
    months from T on are zeros), as ``simulation.finish_flows`` of the accumulators
    zero-padded to n_months computes them (its twin), element by element with the same
    operations in the same order: the five accumulated flows copied; month m recovers
    ``recovery_rate × lag[k]`` of month m − k − 1's default, summed over k in order from 0.0
    (a lag whose share is 0, or that reaches past the last month, left out); the end balance
    ((bop − principal) − prepayment) − default, 0 where below 1e-6 in absolute value. Every
    element of the rows is written."""
    n_b, n_t = acc.shape[0], acc.shape[1]
    n_m = bop.shape[1]
    d = np.empty(n_m)
    rec = np.empty(n_m)
    for p in range(n_b):
        row = row0 + p
        for m in range(n_m):
            if m < n_t:
                b, i, pr, pp, dd = (acc[p, m, BOP], acc[p, m, INTEREST], acc[p, m, PRINCIPAL],
                                    acc[p, m, PREPAY], acc[p, m, DEFAULT])
            else:
                b = i = pr = pp = dd = 0.0
            bop[row, m] = b
            interest[row, m] = i
            principal[row, m] = pr
            prepay[row, m] = pp
            default[row, m] = dd
            d[m] = dd
            e = b - pr
            e -= pp
            e -= dd
            eop[row, m] = 0.0 if abs(e) < 1e-6 else e
        rec[:] = 0.0
        for k in range(lag.shape[0]):
            share = lag[k]
            if share > 0 and k + 1 < n_m:
                f = recovery_rate * share
                for m in range(k + 1, n_m):
                    rec[m] += f * d[m - k - 1]
        for m in range(n_m):
            recovery[row, m] = rec[m]
