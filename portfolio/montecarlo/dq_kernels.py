"""Kernels of the delinquency-state model (``--model delinquency``): numba loops and their
plain-numpy twins (the twins are the oracle, the numba versions are what runs; tests compare
them on the same random numbers). ``portfolio.montecarlo.delinquency`` prepares the inputs and
calls one kernel per canonical block of paths. docs/model.md, "The delinquency-state model".

A loan's state at the start of projection month t: bucket ``b`` (0 = current, k = k
instalments unpaid: 1–30, 31–60, … days past due), its re-age shift ``d0`` (instalments moved
to the end of the schedule by a re-age; 0 without one) and its schedule position
``j = t − b − d0`` (instalments paid). Per month, from the loan's conditional transition row
on the path (``cond_rows``), in this order:

* current: misses the instalment (→ 1–30, pays nothing) with ``rc``; otherwise pays instalment
  j; if that was its last it matures, else it prepays the balance left with ``(1 − rc)·smm``.
* bucket b: rolls with ``roll_b`` (pays nothing; → b + 1, or charged off from the last bucket
  K with its principal outstanding, the start-of-month balance); cures with ``cure_b``
  (``catch_up``: pays every instalment due, positions j … t − d0; ``re_age`` when not yet
  re-aged: pays instalment j and d0 becomes b); else stays (pays instalment j, b unchanged).
  A loan that has paid its last instalment matures.

Conditional rows (``thr_*`` pre-scaled by 1/(√(1−ρ)·√2), ``zb = Z·√ρ/(√(1−ρ)·√2)``):
``rc(Z) = roll(Z) = ½·erfc(zb − thr) = Φ((Φ⁻¹(q) − √ρ·Z)/√(1−ρ))`` and
``cure(Z) = ½·erfc(−zb − thr) = Φ((Φ⁻¹(q) + √ρ·Z)/√(1−ρ))``; when roll + cure > 1 the cure is
cut to 1 − roll.

The granular engine has two draws (``DQ_SAMPLERS``): :func:`dq_lanes_block` (``dq-lanes-v1``,
the default: 64 paths side by side, one SFC64 stream a path, inversion in every lane at
once) and :func:`dq_granular_block` (``dq-binomial-v0``: path by path from the block's PCG64
stream; kept for replaying the runs recorded with it). docs/model.md, "Sampler dq-lanes-v1".

Accumulator columns ``out[..., k]`` (``N_DQ``): 0 balance at month start (every loan not yet
charged off, prepaid or matured: current and delinquent), 1 interest, 2 scheduled principal
(a cure's catch-up included), 3 prepayment, 4 charge-off, 5 cured balance (start-of-month
balance of the loans that cured), 6 end-of-month balance of current loans, 7 + k − 1 end-of-
month balance in bucket k (k = 1 … 6).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.special import erfc

from portfolio.montecarlo import engines
from portfolio.montecarlo.lanes import (
    LANES,
    lane_binomial,
    lane_binomial_np,
    lane_uniforms,
    lane_uniforms_np,
)

N_DQ = 13
BOP, INTEREST, PRINCIPAL, PREPAY, CHARGE_OFF, CURE, EOP_CURRENT = range(7)
EOP_BUCKET0 = 6  # column of bucket b's end balance: EOP_BUCKET0 + b (b = 0 is current)


# ------------------------------------------------------------------------------------------
# conditional transition rows of one cell on one path


@numba.njit(cache=True, nogil=True)
def cond_rows(c, p, h, n_buckets, zb, thr_rc, thr_roll, thr_cure, rc_z, roll_z, cure_z):
    """Fill ``rc_z[t]``, ``roll_z[t, b]``, ``cure_z[t, b]`` (t < h, b < n_buckets) of cell c
    on path p."""
    for t in range(h):
        z = zb[p, t]
        rc_z[t] = 0.5 * math.erfc(z - thr_rc[c, t])
        for b in range(n_buckets):
            ro = 0.5 * math.erfc(z - thr_roll[c, t, b])
            cu = 0.5 * math.erfc(-z - thr_cure[c, t, b])
            if ro + cu > 1.0:
                cu = 1.0 - ro
            roll_z[t, b] = ro
            cure_z[t, b] = cu


def cond_rows_np(cells, zb, thr_rc, thr_roll, thr_cure):
    """Twin of :func:`cond_rows` for many (cell, path) pairs at once: ``cells`` (n,) cell of
    each row, ``zb`` (n, H) its path's scaled factor; returns rc (n, H), roll and cure
    (n, H, K)."""
    z = zb[:, :, None]
    with np.errstate(invalid="ignore"):
        rc = 0.5 * erfc(zb - thr_rc[cells])
        ro = 0.5 * erfc(z - thr_roll[cells])
        cu = 0.5 * erfc(-z - thr_cure[cells])
    cu = np.where(ro + cu > 1.0, 1.0 - ro, cu)
    return rc, ro, cu


# ------------------------------------------------------------------------------------------
# loan engine: one uniform per loan, month and path over the loan's transition row


@numba.njit(cache=True, nogil=True, inline="always")
def _add(out, pout, shares, li, p, t, col, x):
    out[p, t, col] += x
    for q in range(pout.shape[0]):
        pout[q, p, t, col] += shares[li, q] * x


@numba.njit(cache=True, nogil=True)
def dq_loan_block(u, l0, cell_of, loan_base, sched, shares, cell_r, cell_h, n_buckets, re_age,
                  zb, thr_rc, thr_roll, thr_cure, smm, out, pout):
    """Loan-level delinquency paths of the loans ``l0 .. l0 + u.shape[1]`` (cell-major order).

    u (n_b, n_l, H) float32: the uniform of loan l in month t on path p at ``u[p, l, t]``;
    ``sched`` flat (bop, interest, principal) of loan li at schedule position j at
    ``loan_base[li] + 3j``; shares (n_loans, n_parties); cell_r (n_cells,) instalments left,
    cell_h (n_cells,) months the cell's loans can live (r + K, or r + 2K with re-ageing);
    thr_* and smm per cell and month (module doc); out (n_b, H, N_DQ), pout
    (n_parties, n_b, H, N_DQ) accumulated into.
    """
    n_b, n_l, H = u.shape
    rc_z = np.empty(H)
    roll_z = np.empty((H, max(n_buckets, 1)))
    cure_z = np.empty((H, max(n_buckets, 1)))
    k = 0
    while k < n_l:
        c = cell_of[l0 + k]
        k_end = k
        while k_end < n_l and cell_of[l0 + k_end] == c:
            k_end += 1
        r = cell_r[c]
        h = min(cell_h[c], H)
        for p in range(n_b):
            cond_rows(c, p, h, n_buckets, zb, thr_rc, thr_roll, thr_cure, rc_z, roll_z, cure_z)
            for kk in range(k, k_end):
                li = l0 + kk
                base = loan_base[li]
                b = 0
                d0 = 0
                j = 0
                for t in range(h):
                    x = np.float64(u[p, kk, t])
                    k0 = base + 3 * j
                    bop = sched[k0]
                    _add(out, pout, shares, li, p, t, BOP, bop)
                    alive = True
                    if b == 0:
                        pr = rc_z[t]
                        if x < pr:
                            b = 1
                        else:
                            _add(out, pout, shares, li, p, t, INTEREST, sched[k0 + 1])
                            _add(out, pout, shares, li, p, t, PRINCIPAL, sched[k0 + 2])
                            j += 1
                            if j == r:
                                alive = False
                            elif x < pr + (1.0 - pr) * smm[c, t]:
                                _add(out, pout, shares, li, p, t, PREPAY, sched[base + 3 * j])
                                alive = False
                    else:
                        ro = roll_z[t, b - 1]
                        cu = cure_z[t, b - 1]
                        if x < ro:
                            if b == n_buckets:
                                _add(out, pout, shares, li, p, t, CHARGE_OFF, bop)
                                alive = False
                            else:
                                b += 1
                        else:
                            if x < ro + cu:
                                _add(out, pout, shares, li, p, t, CURE, bop)
                                if re_age and d0 == 0:
                                    last = j
                                    d0 = b
                                else:
                                    last = min(t - d0, r - 1)
                                b = 0
                            else:
                                last = j
                            for jj in range(j, last + 1):
                                kj = base + 3 * jj
                                _add(out, pout, shares, li, p, t, INTEREST, sched[kj + 1])
                                _add(out, pout, shares, li, p, t, PRINCIPAL, sched[kj + 2])
                            j = last + 1
                            if j == r:
                                alive = False
                    if not alive:
                        break
                    _add(out, pout, shares, li, p, t, EOP_BUCKET0 + b, sched[base + 3 * j])
        k = k_end


def dq_loan_block_np(u, l0, cell_of, loan_base, sched, shares, cell_r, cell_h, n_buckets,
                     re_age, zb, thr_rc, thr_roll, thr_cure, smm, out, pout):
    """Plain-numpy twin of :func:`dq_loan_block`: every (path, loan) of the chunk at once,
    month by month, on the same uniforms (the same decisions; sums in another order)."""
    n_b, n_l, H = u.shape
    li = np.arange(l0, l0 + n_l)
    c = cell_of[li]
    r = cell_r[c][None, :].repeat(n_b, 0)
    h = np.minimum(cell_h[c], H)[None, :]
    base = loan_base[li][None, :]
    pp = np.repeat(np.arange(n_b), n_l)
    cc = np.tile(c, n_b)
    rc, ro_all, cu_all = cond_rows_np(cc, zb[pp], thr_rc, thr_roll, thr_cure)
    rc = rc.reshape(n_b, n_l, -1)
    ro_all = ro_all.reshape(n_b, n_l, H, -1)
    cu_all = cu_all.reshape(n_b, n_l, H, -1)
    b = np.zeros((n_b, n_l), dtype=np.int64)
    d0 = np.zeros_like(b)
    j = np.zeros_like(b)
    alive = np.ones((n_b, n_l), dtype=bool)
    sh = shares[li]  # (n_l, n_parties)

    def sched_at(pos, k):
        return sched[base + 3 * np.minimum(pos, r - 1) + k]

    def add(t, col, mask, x):
        v = np.where(mask, x, 0.0)
        out[:, t, col] += v.sum(axis=1)
        for q in range(sh.shape[1]):
            pout[q, :, t, col] += (v * sh[None, :, q]).sum(axis=1)

    for t in range(H):
        alive &= t < h
        if not alive.any():
            continue
        x = u[:, :, t].astype(np.float64)
        bop = sched_at(j, 0)
        add(t, BOP, alive, bop)
        cur = alive & (b == 0)
        pr = rc[:, :, t]
        roll_cur = cur & (x < pr)
        pay_cur = cur & ~roll_cur
        add(t, INTEREST, pay_cur, sched_at(j, 1))
        add(t, PRINCIPAL, pay_cur, sched_at(j, 2))
        j_next = np.where(pay_cur, j + 1, j)
        matured = pay_cur & (j_next == r)
        smm_t = smm[c, t][None, :]
        prepay = pay_cur & ~matured & (x < pr + (1.0 - pr) * smm_t)
        add(t, PREPAY, prepay, sched_at(j_next, 0))
        gone = matured | prepay
        b = np.where(roll_cur, 1, b)

        dq = alive & (b >= 1) & ~roll_cur
        bi = np.clip(b - 1, 0, ro_all.shape[3] - 1)
        ro = np.take_along_axis(ro_all[:, :, t, :], bi[:, :, None], axis=2)[:, :, 0]
        cu = np.take_along_axis(cu_all[:, :, t, :], bi[:, :, None], axis=2)[:, :, 0]
        roll = dq & (x < ro)
        co = roll & (b == n_buckets)
        add(t, CHARGE_OFF, co, bop)
        cure = dq & ~roll & (x < ro + cu)
        stay = dq & ~roll & ~cure
        add(t, CURE, cure, bop)
        reage = cure & bool(re_age) & (d0 == 0)
        catch = cure & ~reage
        last = np.where(catch, np.minimum(t - d0, r - 1), j)
        pays = (cure | stay)
        n_pay = np.where(pays, last - j + 1, 0)
        for step in range(int(n_pay.max()) if n_pay.size else 0):
            m = pays & (step < n_pay)
            add(t, INTEREST, m, sched_at(j + step, 1))
            add(t, PRINCIPAL, m, sched_at(j + step, 2))
        j_next = np.where(pays, last + 1, j_next)
        d0 = np.where(reage, b, d0)
        b = np.where(roll & ~co, b + 1, np.where(cure, 0, b))
        gone |= co | (pays & (j_next == r))
        alive &= ~gone
        j = j_next
        eop = sched_at(j, 0)
        for bb in range(n_buckets + 1):
            add(t, EOP_BUCKET0 + bb, alive & (b == bb), eop)


# ------------------------------------------------------------------------------------------
# granular engine: per cell, exact multinomial transitions as binomial chains


@numba.njit(cache=True, nogil=True)
def granular_tables(cell_r, cell_h, H, thr_rc, thr_roll, thr_cure, smm, flows, pflows, cum,
                    pcum):
    """The inputs of :func:`dq_granular_block` packed per cell, so that a path's sweep over
    the cells reads a few contiguous lines per state and month (copies: the same numbers).

    ``tab[pos_of[c] + j, k, q]``: the scheduled column k (bop, interest, principal) of cell c
    at position j < r, summed over its loans (q = 0) and per party (q = 1 + i:
    ``pflows[c, i, j, k]``); ``ctab[cpos_of[c] + j, k, q]``: the cumulated (interest,
    principal) of positions before j ≤ r, the same way; ``rows[row_of[c] + t]`` for the months
    t < h of the cell: (rc threshold, smm, roll thresholds b = 1 … K, cure thresholds)."""
    n_c = cell_r.shape[0]
    n_q = pflows.shape[1]
    K = thr_roll.shape[2]
    pos_of = np.zeros(n_c + 1, dtype=np.int64)
    cpos_of = np.zeros(n_c + 1, dtype=np.int64)
    row_of = np.zeros(n_c + 1, dtype=np.int64)
    for c in range(n_c):
        pos_of[c + 1] = pos_of[c] + cell_r[c]
        cpos_of[c + 1] = cpos_of[c] + cell_r[c] + 1
        row_of[c + 1] = row_of[c] + min(cell_h[c], H)
    tab = np.empty((pos_of[n_c], 3, n_q + 1))
    ctab = np.empty((cpos_of[n_c], 2, n_q + 1))
    rows = np.empty((row_of[n_c], 2 + 2 * K))
    for c in range(n_c):
        for j in range(cell_r[c]):
            i = pos_of[c] + j
            for k in range(3):
                tab[i, k, 0] = flows[c, j, k]
                for q in range(n_q):
                    tab[i, k, q + 1] = pflows[c, q, j, k]
        for j in range(cell_r[c] + 1):
            i = cpos_of[c] + j
            for k in range(2):
                ctab[i, k, 0] = cum[c, j, k]
                for q in range(n_q):
                    ctab[i, k, q + 1] = pcum[c, q, j, k]
        for t in range(row_of[c + 1] - row_of[c]):
            i = row_of[c] + t
            rows[i, 0] = thr_rc[c, t]
            rows[i, 1] = smm[c, t]
            for b in range(K):
                rows[i, 2 + b] = thr_roll[c, t, b]
                rows[i, 2 + K + b] = thr_cure[c, t, b]
    return pos_of, tab, cpos_of, ctab, row_of, rows


@numba.njit(cache=True, nogil=True, inline="always")
def _ladd(acc, t, col, tab, i, k, w):
    """``w`` loans' worth (a count over the cell's loan count) of the packed scheduled column
    k at row i, into the path's accumulators of month t, column col (pool and parties)."""
    for q in range(acc.shape[2]):
        acc[t, col, q] += w * tab[i, k, q]


@numba.njit(cache=True, nogil=True, inline="always")
def _ladd_span(acc, t, ctab, i0, i1, w):
    """``w`` loans' worth of the interest and principal of the positions from row i0 up to
    (not including) row i1 of the packed cumulated table (a cure's catch-up)."""
    for q in range(acc.shape[2]):
        acc[t, INTEREST, q] += w * (ctab[i1, 0, q] - ctab[i0, 0, q])
    for q in range(acc.shape[2]):
        acc[t, PRINCIPAL, q] += w * (ctab[i1, 1, q] - ctab[i0, 1, q])


@numba.njit(cache=True, nogil=True, inline="always")
def _cured_to(re_age, d, b, j, t, r):
    """A cure from bucket b with re-age shift d at position j in month t (r instalments):
    (the last position it pays, its re-age shift after) — re-aged once (pays instalment j,
    shift b) or caught up (pays every instalment due, positions j … t − d, shift kept)."""
    if re_age and d == 0:
        return j, b
    return min(t - d, r - 1), d


@numba.njit(cache=True, nogil=True)
def dq_granular_block(gen, cell_n, cell_r, cell_h, n_buckets, re_age, zb, thr_rc, thr_roll,
                      thr_cure, smm, flows, pflows, cum, pcum, out, pout):
    """Counts of each cell's loans by state (re-age shift d0, bucket b), month by month on
    every path of the block, with exact binomial draws (``engines.binomial_draw``, from the
    block's ``numpy.random.Generator`` ``gen``, in the order path → cell → month → d0 → b):

    current (n loans): missed ~ Bin(n, rc(Z)); of the n − missed that paid, prepaid ~
    Bin(·, smm) unless it was their last instalment (then they mature);
    bucket b (n loans): rolled ~ Bin(n, roll(Z)); cured ~ Bin(n − rolled, cure/(1 − roll));
    the rest stay — together an exact multinomial draw of the transition row.

    flows (n_cells, T, 3) and pflows (n_cells, n_parties, T, 3): the cell's scheduled (bop,
    interest, principal) by position, summed over its loans (per party weighted by the
    shares); cum / pcum their cumulated (interest, principal) by position (n_cells, T + 1, 2).
    A cell's loans are exchangeable, so m loans at position j carry m/N of the cell's sums
    there (the granular approximation of the hazard model's engine).

    The work of a path is done on its own accumulators (month, column, pool and parties side
    by side; a few kB, in L1) and on the inputs packed per cell (:func:`granular_tables`);
    a state's transition row (``cond_rows``' formulas) is computed only in a month the state
    holds loans. Every accumulator receives the same terms in the same order as a loop adding
    straight into ``out`` / ``pout`` would (the numpy twin's order)."""
    n_b, H = zb.shape
    K = n_buckets
    D = K + 1 if re_age else 1
    n_q = pout.shape[0]
    pos_of, tab, cpos_of, ctab, row_of, rows = granular_tables(
        cell_r, cell_h, H, thr_rc, thr_roll, thr_cure, smm, flows, pflows, cum, pcum)
    acc = np.empty((H, out.shape[2], n_q + 1))
    cnt = np.zeros((D, K + 1), dtype=np.int64)
    nxt = np.zeros((D, K + 1), dtype=np.int64)
    pr = np.zeros(K + 1)  # this month's rc (b = 0) and roll (b ≥ 1) of the occupied states
    pc = np.zeros(K + 1)  # cure (b ≥ 1)
    for p in range(n_b):
        for t in range(H):
            for col in range(out.shape[2]):
                acc[t, col, 0] = out[p, t, col]
                for q in range(n_q):
                    acc[t, col, q + 1] = pout[q, p, t, col]
        for c in range(cell_n.shape[0]):
            n_tot = cell_n[c]
            inv = 1.0 / n_tot
            r = cell_r[c]
            h = min(cell_h[c], H)
            g = pos_of[c]
            g1 = cpos_of[c]
            cnt[:, :] = 0
            cnt[0, 0] = n_tot
            for t in range(h):
                i = row_of[c] + t
                z = zb[p, t]
                for b in range(K + 1):
                    held = False
                    for d in range(D):
                        if cnt[d, b] > 0:
                            held = True
                    if not held:
                        continue
                    if b == 0:
                        pr[0] = 0.5 * math.erfc(z - rows[i, 0])
                    else:
                        ro = 0.5 * math.erfc(z - rows[i, 1 + b])
                        cu = 0.5 * math.erfc(-z - rows[i, 1 + K + b])
                        if ro + cu > 1.0:
                            cu = 1.0 - ro
                        pr[b] = ro
                        pc[b] = cu
                nxt[:, :] = 0
                for d in range(D):
                    for b in range(K + 1):
                        n = cnt[d, b]
                        if n == 0:
                            continue
                        j = t - b - d
                        _ladd(acc, t, BOP, tab, g + j, 0, n * inv)
                        if b == 0:
                            x = engines.binomial_draw(n, pr[0], gen)
                            nxt[d, 1] += x
                            pay = n - x
                            if pay > 0:
                                _ladd(acc, t, INTEREST, tab, g + j, 1, pay * inv)
                                _ladd(acc, t, PRINCIPAL, tab, g + j, 2, pay * inv)
                                if j + 1 < r:
                                    s = engines.binomial_draw(pay, rows[i, 1], gen)
                                    if s > 0:
                                        _ladd(acc, t, PREPAY, tab, g + j + 1, 0, s * inv)
                                    nxt[d, 0] += pay - s
                        else:
                            ro = pr[b]
                            cu = pc[b]
                            x = engines.binomial_draw(n, ro, gen)
                            rest = n - x
                            y = 0
                            if rest > 0 and ro < 1.0:
                                y = engines.binomial_draw(rest, cu / (1.0 - ro), gen)
                            zz = rest - y
                            if x > 0:
                                if b == K:
                                    _ladd(acc, t, CHARGE_OFF, tab, g + j, 0, x * inv)
                                else:
                                    nxt[d, b + 1] += x
                            if y > 0:
                                _ladd(acc, t, CURE, tab, g + j, 0, y * inv)
                                last, dn = _cured_to(re_age, d, b, j, t, r)
                                _ladd_span(acc, t, ctab, g1 + j, g1 + last + 1, y * inv)
                                if last + 1 < r:
                                    nxt[dn, 0] += y
                            if zz > 0:
                                _ladd(acc, t, INTEREST, tab, g + j, 1, zz * inv)
                                _ladd(acc, t, PRINCIPAL, tab, g + j, 2, zz * inv)
                                if j + 1 < r:
                                    nxt[d, b] += zz
                left = 0
                for d in range(D):
                    for b in range(K + 1):
                        m = nxt[d, b]
                        cnt[d, b] = m
                        if m > 0:
                            left += m
                            _ladd(acc, t, EOP_BUCKET0 + b, tab, g + t + 1 - b - d, 0, m * inv)
                if left == 0:
                    break
        for t in range(H):
            for col in range(out.shape[2]):
                out[p, t, col] = acc[t, col, 0]
                for q in range(n_q):
                    pout[q, p, t, col] = acc[t, col, q + 1]


def dq_granular_block_np(gen, cell_n, cell_r, cell_h, n_buckets, re_age, zb, thr_rc, thr_roll,
                         thr_cure, smm, flows, pflows, cum, pcum, out, pout):
    """Plain-Python twin of :func:`dq_granular_block`: the same draws in the same order from
    ``gen`` (``engines.binomial_draw_np``), the same counts; rows from :func:`cond_rows_np`."""
    n_b, H = zb.shape
    K = n_buckets
    D = K + 1 if re_age else 1
    n_q = pout.shape[0]

    def add(p, t, col, k, j, w):
        out[p, t, col] += w * flows[c, j, k]
        for q in range(n_q):
            pout[q, p, t, col] += w * pflows[c, q, j, k]

    def add_span(p, t, j, last, w):
        for k, col in ((0, INTEREST), (1, PRINCIPAL)):
            out[p, t, col] += w * (cum[c, last + 1, k] - cum[c, j, k])
            for q in range(n_q):
                pout[q, p, t, col] += w * (pcum[c, q, last + 1, k] - pcum[c, q, j, k])

    for p in range(n_b):
        for c in range(cell_n.shape[0]):
            n_tot = int(cell_n[c])
            inv = 1.0 / n_tot
            r = int(cell_r[c])
            h = min(int(cell_h[c]), H)
            rc_z, roll_z, cure_z = (a[0] for a in cond_rows_np(np.array([c]), zb[p:p + 1],
                                                               thr_rc, thr_roll, thr_cure))
            cnt = np.zeros((D, K + 1), dtype=np.int64)
            cnt[0, 0] = n_tot
            for t in range(h):
                nxt = np.zeros_like(cnt)
                for d in range(D):
                    for b in range(K + 1):
                        n = int(cnt[d, b])
                        if n == 0:
                            continue
                        j = t - b - d
                        add(p, t, BOP, 0, j, n * inv)
                        if b == 0:
                            x = engines.binomial_draw_np(n, rc_z[t], gen)
                            nxt[d, 1] += x
                            pay = n - x
                            if pay > 0:
                                add(p, t, INTEREST, 1, j, pay * inv)
                                add(p, t, PRINCIPAL, 2, j, pay * inv)
                                if j + 1 < r:
                                    s = engines.binomial_draw_np(pay, smm[c, t], gen)
                                    if s > 0:
                                        add(p, t, PREPAY, 0, j + 1, s * inv)
                                    nxt[d, 0] += pay - s
                        else:
                            ro, cu = roll_z[t, b - 1], cure_z[t, b - 1]
                            x = engines.binomial_draw_np(n, ro, gen)
                            rest = n - x
                            y = 0
                            if rest > 0 and ro < 1.0:
                                y = engines.binomial_draw_np(rest, cu / (1.0 - ro), gen)
                            z = rest - y
                            if x > 0:
                                if b == K:
                                    add(p, t, CHARGE_OFF, 0, j, x * inv)
                                else:
                                    nxt[d, b + 1] += x
                            if y > 0:
                                add(p, t, CURE, 0, j, y * inv)
                                if re_age and d == 0:
                                    last, dn = j, b
                                else:
                                    last, dn = min(t - d, r - 1), d
                                add_span(p, t, j, last, y * inv)
                                if last + 1 < r:
                                    nxt[dn, 0] += y
                            if z > 0:
                                add(p, t, INTEREST, 1, j, z * inv)
                                add(p, t, PRINCIPAL, 2, j, z * inv)
                                if j + 1 < r:
                                    nxt[d, b] += z
                cnt = nxt
                for d in range(D):
                    for b in range(K + 1):
                        if cnt[d, b] > 0:
                            add(p, t, EOP_BUCKET0 + b, 0, t + 1 - b - d, cnt[d, b] * inv)
                if cnt.sum() == 0:
                    break


# ------------------------------------------------------------------------------------------
# granular engine, paths side by side (sampler ``dq-lanes-v1``)

DQ_SAMPLER = "dq-lanes-v1"
"""The granular engine's draw since it runs paths side by side (:func:`dq_lanes_block`),
recorded with every run of the delinquency model's granular engine (``inputs.loan_sampler``)."""
DQ_LEGACY_SAMPLER = "dq-binomial-v0"
"""The granular engine's earlier draw (:func:`dq_granular_block`: path by path, Hörmann's
BTRD or inversion from one PCG64 stream); a run recorded without a sampler replays with it."""
DQ_SAMPLERS: tuple[str, ...] = (DQ_SAMPLER, DQ_LEGACY_SAMPLER)

@numba.njit(cache=True, nogil=True, inline="always")
def _lanes_add(acc, t, col, w, v):
    """``acc[t, col, q, lane] += w[lane] · v[q]`` (a count in every lane times the packed
    per-loan amount of the pool, q = 0, and of each party)."""
    for q in range(v.shape[0]):
        row = acc[t, col, q]
        x = v[q]
        for lane in range(LANES):
            row[lane] += w[lane] * x


@numba.njit(cache=True, nogil=True, inline="always")
def _lanes_pack(flows, pflows, c, j, k, inv, v):
    """``v[0]`` = the cell's scheduled column k at position j per loan (sum ÷ loan count),
    ``v[1 + i]`` the same for party i."""
    v[0] = flows[c, j, k] * inv
    for i in range(pflows.shape[1]):
        v[1 + i] = pflows[c, i, j, k] * inv


@numba.njit(cache=True, nogil=True)
def dq_lanes_block(lane_seeds, n_paths, cell_n, cell_r, cell_h, n_buckets, re_age, zb,
                   thr_rc, thr_roll, thr_cure, smm, flows, pflows, cum, pcum, out, pout):
    """:func:`dq_granular_block`'s model — counts of each cell's loans by state (d, b), exact
    binomial transitions — with the paths side by side, ``LANES`` at a time: for each chunk of
    paths, cell, month and state, every path's draw at once (:func:`lane_binomial`, one
    uniform a draw from the path's own stream). Path ``p`` draws from the SFC64 state
    ``lane_seeds[:, p]`` (4 words; ``zb`` and ``lane_seeds`` padded to a multiple of
    ``LANES`` paths, the padding holding no loans; only the first ``n_paths`` rows are
    written); its numbers depend on its factor, its stream and the pool alone, not on the
    paths beside it. The same transitions, rows and amounts as :func:`dq_granular_block` (module
    doc), in the order chunk → cell → month → d → b; each accumulator of a path receives its
    terms in that order."""
    n_pad, H = zb.shape
    K = n_buckets
    D = K + 1 if re_age else 1
    n_q = pout.shape[0]
    Q = n_q + 1
    st = np.empty((9, LANES))
    cnt = np.zeros((D, K + 1, LANES))
    nxt = np.zeros((D, K + 1, LANES))
    x = np.empty(LANES)
    y = np.empty(LANES)
    w = np.empty(LANES)
    v = np.empty(Q)
    v1 = np.empty(Q)
    v2 = np.empty(Q)
    valid = np.empty(LANES)
    acc = np.empty((H, out.shape[2], Q, LANES))
    for p0 in range(0, n_pad, LANES):
        s = lane_seeds[:, p0:p0 + LANES].copy()
        acc[:] = 0.0
        for lane in range(LANES):
            valid[lane] = 1.0 if p0 + lane < n_paths else 0.0
        for c in range(cell_n.shape[0]):
            n_tot = np.float64(cell_n[c])
            inv = 1.0 / n_tot
            r = cell_r[c]
            h = min(cell_h[c], H)
            cnt[:] = 0.0
            for lane in range(LANES):
                cnt[0, 0, lane] = n_tot * valid[lane]
            for t in range(h):
                nxt[:] = 0.0
                for d in range(D):
                    for b in range(K + 1):
                        held = 0
                        for lane in range(LANES):
                            held += 1 if cnt[d, b, lane] > 0.0 else 0
                        if held == 0:
                            continue
                        j = t - b - d
                        nb = cnt[d, b]
                        _lanes_pack(flows, pflows, c, j, 0, inv, v)
                        _lanes_add(acc, t, BOP, nb, v)
                        if b == 0:
                            thr = thr_rc[c, t]
                            for lane in range(LANES):
                                st[0, lane] = nb[lane]
                                st[1, lane] = 0.5 * math.erfc(zb[p0 + lane, t] - thr)
                            lane_uniforms(s, st)
                            lane_binomial(st)
                            for lane in range(LANES):
                                x[lane] = st[3, lane]
                                nxt[d, 1, lane] += x[lane]
                                w[lane] = nb[lane] - x[lane]  # paid
                            _lanes_pack(flows, pflows, c, j, 1, inv, v)
                            _lanes_add(acc, t, INTEREST, w, v)
                            _lanes_pack(flows, pflows, c, j, 2, inv, v)
                            _lanes_add(acc, t, PRINCIPAL, w, v)
                            if j + 1 < r:
                                sm = smm[c, t]
                                for lane in range(LANES):
                                    st[0, lane] = w[lane]
                                    st[1, lane] = sm
                                lane_uniforms(s, st)
                                lane_binomial(st)
                                for lane in range(LANES):
                                    y[lane] = st[3, lane]
                                    nxt[d, 0, lane] += w[lane] - y[lane]
                                _lanes_pack(flows, pflows, c, j + 1, 0, inv, v)
                                _lanes_add(acc, t, PREPAY, y, v)
                        else:
                            t_ro = thr_roll[c, t, b - 1]
                            t_cu = thr_cure[c, t, b - 1]
                            for lane in range(LANES):
                                z = zb[p0 + lane, t]
                                ro = 0.5 * math.erfc(z - t_ro)
                                cu = 0.5 * math.erfc(-z - t_cu)
                                if ro + cu > 1.0:
                                    cu = 1.0 - ro
                                st[0, lane] = nb[lane]
                                st[1, lane] = ro
                                y[lane] = cu / (1.0 - ro) if ro < 1.0 else 0.0
                            lane_uniforms(s, st)
                            lane_binomial(st)
                            for lane in range(LANES):
                                x[lane] = st[3, lane]  # rolled
                                st[0, lane] = nb[lane] - x[lane]
                                st[1, lane] = y[lane]
                            lane_uniforms(s, st)
                            lane_binomial(st)
                            for lane in range(LANES):
                                y[lane] = st[3, lane]  # cured
                                w[lane] = nb[lane] - x[lane] - y[lane]  # stayed
                            _lanes_pack(flows, pflows, c, j, 0, inv, v)
                            if b == K:
                                _lanes_add(acc, t, CHARGE_OFF, x, v)
                            else:
                                for lane in range(LANES):
                                    nxt[d, b + 1, lane] += x[lane]
                            _lanes_add(acc, t, CURE, y, v)
                            last, dn = _cured_to(re_age, d, b, j, t, r)
                            for q in range(Q):  # a cure's catch-up: positions j … last
                                if q == 0:
                                    v1[0] = (cum[c, last + 1, 0] - cum[c, j, 0]) * inv
                                    v2[0] = (cum[c, last + 1, 1] - cum[c, j, 1]) * inv
                                else:
                                    v1[q] = (pcum[c, q - 1, last + 1, 0] - pcum[c, q - 1, j, 0]) \
                                        * inv
                                    v2[q] = (pcum[c, q - 1, last + 1, 1] - pcum[c, q - 1, j, 1]) \
                                        * inv
                            _lanes_add(acc, t, INTEREST, y, v1)
                            _lanes_add(acc, t, PRINCIPAL, y, v2)
                            if last + 1 < r:
                                for lane in range(LANES):
                                    nxt[dn, 0, lane] += y[lane]
                            _lanes_pack(flows, pflows, c, j, 1, inv, v)
                            _lanes_add(acc, t, INTEREST, w, v)
                            _lanes_pack(flows, pflows, c, j, 2, inv, v)
                            _lanes_add(acc, t, PRINCIPAL, w, v)
                            if j + 1 < r:
                                for lane in range(LANES):
                                    nxt[d, b, lane] += w[lane]
                left = 0
                for d in range(D):
                    for b in range(K + 1):
                        held = 0
                        for lane in range(LANES):
                            cnt[d, b, lane] = nxt[d, b, lane]
                            held += 1 if nxt[d, b, lane] > 0.0 else 0
                        if held > 0:
                            left += held
                            _lanes_pack(flows, pflows, c, t + 1 - b - d, 0, inv, v)
                            _lanes_add(acc, t, EOP_BUCKET0 + b, cnt[d, b], v)
                if left == 0:
                    break
        for lane in range(min(LANES, n_paths - p0)):
            p = p0 + lane
            for t in range(H):
                for col in range(out.shape[2]):
                    out[p, t, col] += acc[t, col, 0, lane]
                    for q in range(n_q):
                        pout[q, p, t, col] += acc[t, col, q + 1, lane]


def dq_lanes_block_np(lane_seeds, n_paths, cell_n, cell_r, cell_h, n_buckets, re_age, zb,
                      thr_rc, thr_roll, thr_cure, smm, flows, pflows, cum, pcum, out, pout):
    """Plain-numpy twin of :func:`dq_lanes_block`: the same chunks, cells, months and states
    in the same order, each lane's arithmetic the same operations (the rows' erfc from
    scipy), so the same draws and the same sums."""
    n_pad, H = zb.shape
    K = n_buckets
    D = K + 1 if re_age else 1
    n_q = pout.shape[0]

    def pack(c, j, k, inv):
        return np.array([flows[c, j, k] * inv] + [pflows[c, i, j, k] * inv for i in range(n_q)])

    for p0 in range(0, n_pad, LANES):
        s = lane_seeds[:, p0:p0 + LANES].copy()
        acc = np.zeros((H, out.shape[2], n_q + 1, LANES))
        valid = np.where(np.arange(p0, p0 + LANES) < n_paths, 1.0, 0.0)
        z_all = zb[p0:p0 + LANES]

        def add(t, col, w, v, acc=acc):
            acc[t, col] += w[None, :] * v[:, None]

        for c in range(cell_n.shape[0]):
            n_tot = float(cell_n[c])
            inv = 1.0 / n_tot
            r = int(cell_r[c])
            h = min(int(cell_h[c]), H)
            cnt = np.zeros((D, K + 1, LANES))
            cnt[0, 0] = n_tot * valid
            for t in range(h):
                nxt = np.zeros_like(cnt)
                for d in range(D):
                    for b in range(K + 1):
                        nb = cnt[d, b]
                        if not (nb > 0.0).any():
                            continue
                        j = t - b - d
                        add(t, BOP, nb, pack(c, j, 0, inv))
                        if b == 0:
                            with np.errstate(invalid="ignore"):
                                pr = 0.5 * erfc(z_all[:, t] - thr_rc[c, t])
                            x = lane_binomial_np(nb, pr, lane_uniforms_np(s, nb))
                            nxt[d, 1] += x
                            paid = nb - x
                            add(t, INTEREST, paid, pack(c, j, 1, inv))
                            add(t, PRINCIPAL, paid, pack(c, j, 2, inv))
                            if j + 1 < r:
                                y = lane_binomial_np(paid, np.full(LANES, smm[c, t]),
                                                      lane_uniforms_np(s, paid))
                                nxt[d, 0] += paid - y
                                add(t, PREPAY, y, pack(c, j + 1, 0, inv))
                        else:
                            z = z_all[:, t]
                            ro = 0.5 * erfc(z - thr_roll[c, t, b - 1])
                            cu = 0.5 * erfc(-z - thr_cure[c, t, b - 1])
                            cu = np.where(ro + cu > 1.0, 1.0 - ro, cu)
                            with np.errstate(divide="ignore", invalid="ignore"):
                                pc = np.where(ro < 1.0, cu / (1.0 - ro), 0.0)
                            x = lane_binomial_np(nb, ro, lane_uniforms_np(s, nb))
                            y = lane_binomial_np(nb - x, pc, lane_uniforms_np(s, nb - x))
                            w = nb - x - y
                            v = pack(c, j, 0, inv)
                            if b == K:
                                add(t, CHARGE_OFF, x, v)
                            else:
                                nxt[d, b + 1] += x
                            add(t, CURE, y, v)
                            if re_age and d == 0:
                                last, dn = j, b
                            else:
                                last, dn = min(t - d, r - 1), d
                            v1 = np.array([(cum[c, last + 1, 0] - cum[c, j, 0]) * inv]
                                          + [(pcum[c, i, last + 1, 0] - pcum[c, i, j, 0]) * inv
                                             for i in range(n_q)])
                            v2 = np.array([(cum[c, last + 1, 1] - cum[c, j, 1]) * inv]
                                          + [(pcum[c, i, last + 1, 1] - pcum[c, i, j, 1]) * inv
                                             for i in range(n_q)])
                            add(t, INTEREST, y, v1)
                            add(t, PRINCIPAL, y, v2)
                            if last + 1 < r:
                                nxt[dn, 0] += y
                            add(t, INTEREST, w, pack(c, j, 1, inv))
                            add(t, PRINCIPAL, w, pack(c, j, 2, inv))
                            if j + 1 < r:
                                nxt[d, b] += w
                cnt = nxt
                left = False
                for d in range(D):
                    for b in range(K + 1):
                        if (cnt[d, b] > 0.0).any():
                            left = True
                            add(t, EOP_BUCKET0 + b, cnt[d, b], pack(c, t + 1 - b - d, 0, inv))
                if not left:
                    break
        m = min(LANES, n_paths - p0)
        out[p0:p0 + m] += np.moveaxis(acc[:, :, 0, :m], -1, 0)
        for i in range(n_q):
            pout[i, p0:p0 + m] += np.moveaxis(acc[:, :, i + 1, :m], -1, 0)
