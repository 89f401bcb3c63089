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
``p_t = Φ((thr · s − √ρ·Z_t) / √(1−ρ))`` with ``thr = Φ⁻¹(h)`` and ``s = 1`` for the Gaussian
copula, and ``thr = t_ν⁻¹(h)``, ``s = √(W/ν)`` (W ~ χ²_ν, one per path) for the Student-t
copula — the latent variable ``(√ρ Z_t + √(1−ρ) ε)/√(W/ν)`` is t_ν-distributed, so every
month's unconditional hazard stays ``h`` while one W per path makes bad months cluster.

Flow columns of the accumulators ``out[..., k]``: 0 balance_bop, 1 interest,
2 scheduled_principal, 3 prepayment, 4 default.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic
from scipy.special import erfc

N_ACC = 5  # bop, interest, scheduled principal, prepayment, default
BOP, INTEREST, PRINCIPAL, PREPAY, DEFAULT = range(N_ACC)


# ------------------------------------------------------------------------------------------
# Binomial draw from one uniform (numba)

# Acklam's rational approximation of Φ⁻¹ (relative error < 1.2e-9), used for the normal
# branch of the binomial draw.
_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
      1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
      6.680131188771972e+01, -1.328068155288572e+01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
      -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
      3.754408661907416e+00)
_P_LOW = 0.02425
_U_HALF_STEP = 2.0 ** -25  # float32 uniforms are multiples of 2^-24: shift to the midpoint

NORMAL_MIN_VARIANCE = 10.0
"""A binomial with n·p·(1−p) at least this is drawn from its normal approximation
(continuity-corrected, clipped to [0, n]; same mean and variance). Below it the draw is exact.
With a variance of 10 the two CDFs differ by at most about 0.02 (0.016 for n = 100,
p = 0.115; 0.020 for n = 2,300, p = 0.0044), and a cell's count is then
one of hundreds of independent terms of the pool's count, whose conditional distribution is
normal anyway (tested against the exact binomial and the exact finite-pool distribution)."""


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


@numba.njit(cache=True, nogil=True)
def binom_from_uniform(n: int, p: float, u: float, recip: np.ndarray) -> int:
    """Binomial(n, p) from one uniform ``u`` in [0, 1).

    Variance below ``NORMAL_MIN_VARIANCE``: exact inversion of the CDF (searched from 0, or
    for p > 0.5 from n via the failures at 1 − u); monotone in p for a fixed u. Otherwise the
    continuity-corrected normal approximation ``floor(np + √(np(1−p))·Φ⁻¹(u) + ½)`` clipped
    to [0, n]. ``recip[k] = 1/(k+1)`` (a table, to keep divisions out of the loop).
    """
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    var = n * p * (1.0 - p)
    if var >= NORMAL_MIN_VARIANCE:
        x = math.floor(n * p + math.sqrt(var) * norm_ppf(u + _U_HALF_STEP) + 0.5)
        if x < 0.0:
            return 0
        if x > n:
            return n
        return int(x)
    flip = p > 0.5  # count the failures, inverting at 1 − u (still the CDF inversion)
    pp = 1.0 - p if flip else p
    if flip:
        u = 1.0 - u
    if u < 1.0 - n * pp:  # u < 1 − np ≤ (1 − p)^n: no success (exact; skips exp/log)
        return n if flip else 0
    ratio = pp / (1.0 - pp)
    f = math.exp(n * math.log1p(-pp))
    c = f
    k = 0
    while u >= c and k < n:
        f *= ratio * (n - k) * recip[k]
        k += 1
        c += f
    return n - k if flip else k


def binom_from_uniform_np(n: np.ndarray, p: np.ndarray, u: np.ndarray,
                          recip: np.ndarray) -> np.ndarray:
    """Vectorised twin of :func:`binom_from_uniform` (the same arithmetic on the same u)."""
    n, p, u = np.broadcast_arrays(np.asarray(n, dtype=np.int64), np.asarray(p, dtype=np.float64),
                                  np.asarray(u, dtype=np.float64))
    out = np.zeros(n.shape, dtype=np.int64)
    full = (p >= 1.0) & (n > 0)
    out[full] = n[full]
    active = (n > 0) & (p > 0.0) & (p < 1.0)
    var = n * p * (1.0 - p)
    normal = active & (var >= NORMAL_MIN_VARIANCE)
    i = np.flatnonzero(normal)
    if i.size:
        x = np.floor(n[i] * p[i] + np.sqrt(var[i]) * norm_ppf_np(u[i] + _U_HALF_STEP) + 0.5)
        out[i] = np.clip(x, 0, n[i]).astype(np.int64)
    j = np.flatnonzero(active & ~normal)
    if j.size:
        nj = n[j]
        flip = p[j] > 0.5
        uj = np.where(flip, 1.0 - u[j], u[j])
        pp = np.where(flip, 1.0 - p[j], p[j])
        ratio = pp / (1.0 - pp)
        f = np.exp(nj * np.log1p(-pp))
        c = f.copy()
        k = np.zeros(j.size, dtype=np.int64)
        go = (uj >= c) & (k < nj)
        while go.any():
            g = np.flatnonzero(go)
            f[g] *= ratio[g] * (nj[g] - k[g]) * recip[k[g]]
            k[g] += 1
            c[g] += f[g]
            go = (uj >= c) & (k < nj)
        out[j] = np.where(flip, nj - k, k)
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
def _cond_pd(thr_s: float, scale: float, zb: float) -> float:
    return 0.5 * math.erfc(zb - thr_s * scale)


def cond_pd_np(thr_s: np.ndarray, scale: np.ndarray | float, zb: np.ndarray) -> np.ndarray:
    """Twin of the numba conditional PD (the same arithmetic on pre-scaled inputs)."""
    with np.errstate(invalid="ignore"):
        return 0.5 * erfc(zb - thr_s * scale)


# ------------------------------------------------------------------------------------------
# Granular engine: binomial counts per cell


@numba.njit(cache=True, nogil=True)
def granular_block(zb, scale, u, cell_n, cell_r, cell_slot, thr_s, cell_smm, cell_flows,
                   cell_pflows, recip, out, pout):
    """Draw default and prepayment counts per cell, month and path; accumulate cell flows.

    zb (n_b, T) scaled factor and thr_s (n_cells, T) scaled thresholds (``scaled_inputs``);
    scale (n_b,) t-copula mixing (1 for Gaussian); u (n_b, n_slots, 2)
    float32 uniforms, slot ``cell_slot[c] + t`` for cell c in month t; cell_n (n_cells,)
    loan counts; cell_r remaining terms; cell_smm (n_cells, T); recip[k] = 1/(k+1); cell_flows
    (n_cells, T, 3) summed scheduled (bop, interest, principal) of the cell's loans;
    cell_pflows (n_cells, n_parties, T, 3) the same weighted by party shares (n_parties may
    be 0). out (n_b, T, 5) and pout (n_parties, n_b, T, 5) are accumulated into.

    Granular approximation: a cell's loans are exchangeable, so with ``a`` of ``N`` loans
    alive the cell's flows are ``a/N`` of its scheduled totals, and ``d`` defaults take
    ``d/N`` of its scheduled balance. Exact in expectation (all loans in a cell share every
    probability); the variance ignores the spread of loan sizes within a cell.
    """
    n_b = zb.shape[0]
    n_cells = cell_n.shape[0]
    n_parties = cell_pflows.shape[1]
    pds = np.empty(zb.shape[1])
    for p in range(n_b):
        sc = scale[p]
        for c in range(n_cells):
            n_tot = cell_n[c]
            inv_n = 1.0 / n_tot
            alive = n_tot
            slot = cell_slot[c]
            # the cell's conditional PDs first: independent erfc calls overlap in the CPU
            for t in range(cell_r[c]):
                pds[t] = _cond_pd(thr_s[c, t], sc, zb[p, t])
            for t in range(cell_r[c]):
                if alive == 0:
                    break
                pd = pds[t]
                d = binom_from_uniform(alive, pd, u[p, slot + t, 0], recip)
                s = binom_from_uniform(alive - d, cell_smm[c, t], u[p, slot + t, 1], recip)
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


def granular_block_np(zb, scale, u, cell_n, cell_r, cell_slot, thr_s, cell_smm, cell_flows,
                      cell_pflows, recip, out, pout):
    """Plain-numpy twin of :func:`granular_block` (vectorised over the block's paths)."""
    n_b = zb.shape[0]
    n_parties = cell_pflows.shape[1]
    for c in range(cell_n.shape[0]):
        n_tot = int(cell_n[c])
        alive = np.full(n_b, n_tot, dtype=np.int64)
        for t in range(int(cell_r[c])):
            pd = cond_pd_np(thr_s[c, t], scale, zb[:, t])
            uu = u[:, cell_slot[c] + t, :].astype(np.float64)
            d = binom_from_uniform_np(alive, pd, uu[:, 0], recip)
            s = binom_from_uniform_np(alive - d, np.full(n_b, cell_smm[c, t]), uu[:, 1], recip)
            fa, fperf, fd, fs = alive / n_tot, (alive - d) / n_tot, d / n_tot, s / n_tot
            flows = [(cell_flows[c, t], out[:, t, :])]
            flows += [(cell_pflows[c, q, t], pout[q, :, t, :]) for q in range(n_parties)]
            for (b, i, pr), acc in flows:
                acc[:, 0] += fa * b
                acc[:, 1] += fperf * i
                acc[:, 2] += fperf * pr
                acc[:, 3] += fs * (b - pr)
                acc[:, 4] += fd * b
            alive = alive - d - s


# ------------------------------------------------------------------------------------------
# Loan engine: one uniform per loan and path, inverted over the loan's event-time distribution


@numba.njit(cache=True, nogil=True)
def event_cdfs(zb, scale, cell_r, thr_s, cell_smm, cum, total):
    """Cumulative probability of each cell's competing events on each path of the block.

    cum (n_cells, n_b, 2·T): event j = 2t is "default in month t", j = 2t + 1 "prepay in
    month t"; total (n_cells, n_b) the probability of any event before maturity.
    """
    n_b = zb.shape[0]
    for c in range(cell_r.shape[0]):
        for p in range(n_b):
            surv = 1.0
            acc = 0.0
            sc = scale[p]
            for t in range(cell_r[c]):
                pd = _cond_pd(thr_s[c, t], sc, zb[p, t])
                acc += surv * pd
                cum[c, p, 2 * t] = acc
                surv *= 1.0 - pd
                sp = surv * cell_smm[c, t]
                acc += sp
                cum[c, p, 2 * t + 1] = acc
                surv -= sp
            total[c, p] = acc


def event_cdfs_np(zb, scale, cell_r, thr_s, cell_smm, cum, total):
    """Twin of :func:`event_cdfs` (same accumulation order)."""
    for c in range(cell_r.shape[0]):
        surv = np.ones(zb.shape[0])
        acc = np.zeros(zb.shape[0])
        for t in range(int(cell_r[c])):
            pd = cond_pd_np(thr_s[c, t], scale, zb[:, t])
            acc = acc + surv * pd
            cum[c, :, 2 * t] = acc
            surv = surv * (1.0 - pd)
            sp = surv * cell_smm[c, t]
            acc = acc + sp
            cum[c, :, 2 * t + 1] = acc
            surv = surv - sp
        total[c] = acc


# ------------------------------------------------------------------------------------------
# numpy's PCG64 float32 stream in numba (the loan engine's uniforms)


@intrinsic
def _mulhi64(typingctx, a, b):
    """High 64 bits of the 128-bit product of two uint64 (one LLVM i128 multiply)."""
    sig = types.uint64(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        i128 = ir.IntType(128)
        prod = builder.mul(builder.zext(args[0], i128), builder.zext(args[1], i128))
        return builder.trunc(builder.lshr(prod, ir.Constant(i128, 64)), ir.IntType(64))

    return sig, codegen


_PCG_MUL_HI = np.uint64(2549297995355413924)  # PCG_DEFAULT_MULTIPLIER_128 of numpy's PCG64
_PCG_MUL_LO = np.uint64(4865540595714422341)


@numba.njit(cache=True, nogil=True, inline="always")
def _pcg64_next(hi, lo, ihi, ilo):
    """One PCG64 (XSL-RR 128/64) step: new state (hi, lo) and the 64-bit output."""
    nlo = lo * _PCG_MUL_LO
    nhi = _mulhi64(lo, _PCG_MUL_LO) + hi * _PCG_MUL_LO + lo * _PCG_MUL_HI
    lo = nlo + ilo
    hi = nhi + ihi + np.uint64(lo < nlo)
    x = hi ^ lo
    rot = hi >> np.uint64(58)
    return hi, lo, (x >> rot) | (x << ((np.uint64(64) - rot) & np.uint64(63)))


@numba.njit(cache=True, nogil=True)
def pcg64_random_f32(out, st):
    """Fill the C-contiguous float32 array ``out`` exactly as ``Generator(PCG64).random(out=out,
    dtype=np.float32)`` does, from and back into the state ``st`` (uint64[6]: state high,
    state low, increment high, increment low, has_uint32, uinteger — see
    ``portfolio.montecarlo.simulation._pcg_state``): each 64-bit output gives two uniforms, its
    low then its high 32 bits, each ``(bits >> 8) · 2⁻²⁴``; an odd count leaves the high half
    buffered, as numpy's ``next_uint32`` does. Tested equal to numpy's stream and state."""
    hi = st[0]
    lo = st[1]
    ihi = st[2]
    ilo = st[3]
    has = st[4] != np.uint64(0)
    buf = st[5]
    flat = out.reshape(-1)
    n = flat.shape[0]
    scale = np.float32(1.0 / 16777216.0)
    s8 = np.uint64(8)
    i = 0
    if has and n > 0:
        flat[0] = np.float32(buf >> s8) * scale
        i = 1
        has = False
    while i + 1 < n:
        hi, lo, v = _pcg64_next(hi, lo, ihi, ilo)
        flat[i] = np.float32((v & np.uint64(0xFFFFFFFF)) >> s8) * scale
        flat[i + 1] = np.float32(v >> np.uint64(40)) * scale
        buf = v >> np.uint64(32)
        i += 2
    if i < n:
        hi, lo, v = _pcg64_next(hi, lo, ihi, ilo)
        flat[i] = np.float32((v & np.uint64(0xFFFFFFFF)) >> s8) * scale
        buf = v >> np.uint64(32)
        has = True
    st[0] = hi
    st[1] = lo
    st[4] = np.uint64(1) if has else np.uint64(0)
    st[5] = buf


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
# Scheduled cash flows summed per cell (the same arithmetic as schedules.schedule_matrix)


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
    """
    half = 0.5 + 1e-9
    n_parties = shares.shape[1]
    keep = sched.shape[0] > 0
    for li in range(cell_first[c_lo], cell_first[c_hi]):
        c = cell_of[li]
        b = b0[li]
        start = start0[li]
        r_i = rem[li]
        for j in range(r_i):
            k = idx0[li] + j + 1
            end = month_start[k] + min(dom0[li], month_last[k])
            if is_di[li]:
                rate = apr_di[li] * float(end - start) / 365.0
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
            start = end
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
