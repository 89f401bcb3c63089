"""Paths side by side: the lane kernels' random numbers and exact binomial draws, and the hazard
model's granular engine run on them (sampler ``granular-lanes-v1``).

A lane kernel takes the paths of a block ``LANES`` at a time and runs each cell's months for
all of them at once: every path is a lane of the same arrays, every draw is made in every lane
by the same steps (so the loops vectorise), and every path draws from its own SFC64 stream,
seeded with 4 words of the block's idiosyncratic stream (:func:`lane_seeds`). A lane with
nothing to draw does not advance its stream, so a path's numbers depend on its factor path,
its stream and the pool alone — not on the paths beside it, the block size, threads or
workers. docs/model.md, "Samplers: paths side by side".

* :func:`lane_uniforms`: one uniform double per lane (numpy's ``Generator(SFC64).random()``
  from the lane's state, draw for draw — a test sets the state through numpy's documented
  ``state`` property);
* :func:`lane_binomial`: Binomial(n, p) in every lane by inversion of the exact CDF searched
  from 0 (from the mode, :func:`mode_inversion`, when n·p'/(1 − p') > ``LANE_BIG``): the draw
  of ``dq-lanes-v1``; :func:`lane_binomial_btrd` the same search, with Hörmann's BTRD from the
  lane's own stream when n·p'/(1 − p') > ``LANE_BTRD`` (O(1) a draw however large the cell):
  the draw of ``granular-lanes-v1``;
* :func:`granular_lanes_block`: the hazard model's granular engine — per cell, month and path
  the default count then the prepayment count of the loans alive, as
  ``engines.granular_block`` (``granular-binomial-v0``, path by path from one PCG64 stream,
  kept for replaying runs recorded with it) — on these draws.
  ``dq_kernels.dq_lanes_block`` is the delinquency model's on the same draws.

Every kernel has a plain-numpy twin (``*_np``) that does the same arithmetic lane by lane:
the oracle, compared bit for bit in tests/portfolio/test_granular_lanes.py and
tests/portfolio/test_dq_lanes.py.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from portfolio.montecarlo import engines

LANES = 64
"""Paths a lane kernel runs side by side (the arrays of one chunk; a block's paths are padded
to a multiple with paths that hold no loans)."""
LANE_BIG = 600.0
"""In :func:`lane_binomial` (``dq-lanes-v1``) a lane whose n·p'/(1 − p') exceeds this inverts its
uniform from the mode instead (:func:`mode_inversion`): the search's start (1 − p')ⁿ ≥
exp(−n·p'/(1 − p')) would come near the floating-point floor."""
LANE_BTRD = 150.0
"""In :func:`lane_binomial_btrd` (``granular-lanes-v1``) a lane whose n·p'/(1 − p') exceeds this
draws by BTRD from its own stream instead: about 75 ns a draw on one core, what 64 lanes'
search of about 190 steps costs (0.4 ns a lane-step)."""

_U1, _U3, _U11, _U24, _U40, _TWO53 = (engines._U1, engines._U3, engines._U11, engines._U24,
                                    engines._U40, engines._TWO53)  # SFC64's (engines.sfc64_next)


@numba.njit(cache=True, nogil=True, inline="always")
def lane_uniforms(s, st):
    """One uniform double into ``st[2]`` for every lane with loans to draw for (``st[0]`` >
    0), each from its lane's own SFC64 stream (Doty-Humphrey's Small Fast Chaotic generator,
    64-bit: state a, b, c and a counter in ``s[0:4, lane]``; the top 53 bits of the output
    over 2⁵³, as ``numpy.random.Generator(SFC64).random()``). A lane with nothing to draw
    keeps its stream where it is, so a path's draws depend on its own counts alone."""
    for lane in range(LANES):
        a = s[0, lane]
        b = s[1, lane]
        c = s[2, lane]
        d = s[3, lane]
        tmp = a + b + d
        go = st[0, lane] > 0.0
        s[3, lane] = d + _U1 if go else d
        s[0, lane] = b ^ (b >> _U11) if go else a
        s[1, lane] = c + (c << _U3) if go else b
        s[2, lane] = ((c << _U24) | (c >> _U40)) + tmp if go else c
        st[2, lane] = np.float64(tmp >> _U11) * _TWO53


@numba.njit(cache=True, nogil=True)
def mode_inversion(n, p, u):
    """Binomial(n, p) for p ≤ ½ from one uniform u by inversion started from the mode
    m = ⌊(n + 1)·p⌋: f(m) from log-gamma, then the support visited m, m + 1, m − 1, m + 2, …
    (each f from its neighbour's ratio), k the first point where the running sum passes u
    (an exact sampler whatever the order: the inversion of the CDF of the support in that
    order). About 2·√(n·p·q) steps; for the lanes whose n·p is too large for
    :func:`lane_binomial`'s search from 0. Should rounding leave the whole sum at or below u
    (about 10⁻¹² of the draws at most), the mode."""
    if n <= 0.0 or p <= 0.0:
        return 0.0
    q = 1.0 - p
    m = math.floor((n + 1.0) * p)
    f = math.exp(math.lgamma(n + 1.0) - math.lgamma(m + 1.0) - math.lgamma(n - m + 1.0)
                 + m * math.log(p) + (n - m) * math.log1p(-p))
    total = f
    if u < total:
        return m
    r = p / q
    lo = m
    hi = m
    f_lo = f
    f_hi = f
    while lo > 0.0 or hi < n:
        if hi < n:
            f_hi = f_hi * r * (n - hi) / (hi + 1.0)
            hi += 1.0
            total += f_hi
            if u < total:
                return hi
        if lo > 0.0:
            f_lo = f_lo * lo / (r * (n - lo + 1.0))
            lo -= 1.0
            total += f_lo
            if u < total:
                return lo
    return m


@numba.njit(cache=True, nogil=True, inline="always")
def _lane_search(st, big_at):
    """The inversion of :func:`lane_binomial` in every lane whose n·p'/(1 − p') is at most
    ``big_at``: ``st[3]`` the draw for p' (not yet flipped), ``st[8]`` 1 where p > ½; the other
    lanes' ``st[3]`` is 0 and left to the caller. Returns how many lanes are above."""
    big = 0
    for lane in range(LANES):
        p = st[1, lane]
        pp = 1.0 - p if p > 0.5 else p
        q = 1.0 - pp
        st[8, lane] = 1.0 if p > 0.5 else 0.0
        st[6, lane] = pp / q
        st[4, lane] = q  # q^(2^i)
        st[5, lane] = 1.0  # the power so far
        st[7, lane] = st[0, lane]  # n, halved each step
        big += 1 if st[0, lane] * st[6, lane] > big_at else 0
    while True:
        left = 0
        for lane in range(LANES):
            m = st[7, lane]
            half = math.floor(m * 0.5)
            st[5, lane] = st[5, lane] * st[4, lane] if m - 2.0 * half > 0.5 else st[5, lane]
            st[4, lane] = st[4, lane] * st[4, lane]
            st[7, lane] = half
            left += 1 if half > 0.0 else 0
        if left == 0:
            break
    for lane in range(LANES):
        st[4, lane] = st[5, lane]  # f(0) = F(0)
        st[3, lane] = 0.0
    if big > 0:  # those lanes draw apart: F = 2 stops their search at once
        for lane in range(LANES):
            if st[0, lane] * st[6, lane] > big_at:
                st[4, lane] = 0.0
                st[5, lane] = 2.0
    j = 0
    while True:
        moved = 0
        rinv = 1.0 / (j + 1.0)
        for lane in range(LANES):
            n = st[0, lane]
            go = (st[2, lane] >= st[5, lane]) & (st[3, lane] < n)
            st[3, lane] += 1.0 if go else 0.0
            fac = n - j
            fac = fac if fac > 0.0 else 0.0
            st[4, lane] *= st[6, lane] * fac * rinv
            st[5, lane] += st[4, lane]
            moved += 1 if go else 0
        if moved == 0:
            break
        j += 1
    return big


@numba.njit(cache=True, nogil=True, inline="always")
def lane_binomial(st):
    """Binomial(n, p) in every lane at once: ``st[0]`` n (a whole number as a double),
    ``st[1]`` p, ``st[2]`` the lane's uniform u; the draw into ``st[3]`` (rows 4–8 scratch).

    Inversion of the CDF searched from 0 on p' = min(p, 1 − p) (a draw for 1 − p is n minus a
    draw for p): k = the number of j with F(j) ≤ u, F(0) = (1 − p')ⁿ by repeated squaring,
    f(j + 1) = f(j)·p'/(1 − p')·(n − j)/(j + 1); every lane takes the same steps, the loop
    stops when no lane's F has yet to pass its u. Exact in law (the inversion of the exact
    CDF, to rounding: a u above the computed F(n), about 2⁻⁵³, gives n). A lane whose
    n·p'/(1 − p') exceeds ``LANE_BIG`` inverts the same u from its mode instead
    (:func:`mode_inversion`). Each lane's draw depends on its own n, p and u alone. The draw
    of ``dq-lanes-v1``."""
    big = _lane_search(st, LANE_BIG)
    for lane in range(LANES):
        n = st[0, lane]
        if big > 0 and n * st[6, lane] > LANE_BIG:
            p = st[1, lane]
            st[3, lane] = mode_inversion(n, 1.0 - p if p > 0.5 else p, st[2, lane])
        if st[8, lane] != 0.0:
            st[3, lane] = n - st[3, lane]


@numba.njit(cache=True, nogil=True, inline="always")
def lane_binomial_btrd(st, s):
    """:func:`lane_binomial`, except that a lane whose n·p'/(1 − p') exceeds ``LANE_BTRD``
    draws by Hörmann's BTRD (``engines.binomial_draw``'s, O(1) whatever n) with further
    uniforms of its own stream (``s[:, lane]``, after the one in ``st[2]``, which it leaves
    unused): the search from 0 costs about n·p' steps, the draw from the mode about √(n·p'),
    and a book's cells grow with it. Each lane's draw still depends on its own n, p and
    stream alone. The draw of ``granular-lanes-v1``."""
    big = _lane_search(st, LANE_BTRD)
    for lane in range(LANES):
        n = st[0, lane]
        if big > 0 and n * st[6, lane] > LANE_BTRD:
            p = st[1, lane]
            st[3, lane] = engines._binomial_btrd(np.int64(n), 1.0 - p if p > 0.5 else p,
                                                 (s, lane))
        if st[8, lane] != 0.0:
            st[3, lane] = n - st[3, lane]


GRANULAR_SAMPLER = "granular-lanes-v1"
"""The hazard model's granular draw since it runs paths side by side
(:func:`granular_lanes_block`), recorded with every run of that engine (``inputs.loan_sampler``)."""
GRANULAR_LEGACY_SAMPLER = "granular-binomial-v0"
"""The hazard model's earlier granular draw (``engines.granular_block``: path by path, BTRD or
inversion from the block's PCG64 stream); a run recorded without a sampler replays with it."""
GRANULAR_SAMPLERS: tuple[str, ...] = (GRANULAR_SAMPLER, GRANULAR_LEGACY_SAMPLER)

PD_TABLE_MAX_BYTES = 4 << 20
""":func:`granular_lanes_block` keeps a chunk's conditional PDs per distinct (month,
threshold) pair when that table (pairs × ``LANES`` doubles) fits in this many bytes, and
computes each cell's months' PDs as it reaches the cell otherwise: the same erfc of the same
numbers either way, so the same draws."""


def lane_seeds(gen: np.random.Generator, n_paths: int) -> np.ndarray:
    """(4, n_pad) uint64: every path's SFC64 state, the next 4 words of ``gen`` path after
    path, for ``n_paths`` padded to a multiple of ``LANES`` (the padding paths hold no
    loans, draw nothing and write nothing)."""
    n_pad = -(-n_paths // LANES) * LANES
    return np.ascontiguousarray(gen.integers(
        0, np.iinfo(np.uint64).max, size=(n_pad, 4), dtype=np.uint64, endpoint=True).T)


def padded(a: np.ndarray, n_pad: int, fill: float) -> np.ndarray:
    """``a``'s rows followed by rows of ``fill`` up to ``n_pad`` rows (float64, C order)."""
    out = np.full((n_pad, *a.shape[1:]), fill, dtype=np.float64)
    out[:a.shape[0]] = a
    return out


def lane_uniforms_np(s: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Twin of :func:`lane_uniforms` for the lanes' counts ``n`` (numpy's uint64
    arithmetic wraps as the kernel's)."""
    a, b, c, d = s[0].copy(), s[1].copy(), s[2].copy(), s[3].copy()
    tmp = a + b + d
    go = n > 0.0
    s[3] = np.where(go, d + _U1, d)
    s[0] = np.where(go, b ^ (b >> _U11), a)
    s[1] = np.where(go, c + (c << _U3), b)
    s[2] = np.where(go, ((c << _U24) | (c >> _U40)) + tmp, c)
    return (tmp >> _U11).astype(np.float64) * _TWO53


class _LaneStream:
    """One lane's SFC64 stream, ``s[:, lane]``, as an object with ``random()``: what
    ``engines.sfc64_next`` draws, in Python integers (the twin's BTRD takes its uniforms so)."""

    def __init__(self, s: np.ndarray, lane: int) -> None:
        self.s, self.lane = s, lane

    def random(self) -> float:
        mask = (1 << 64) - 1
        a, b, c, d = (int(x) for x in self.s[:, self.lane])
        tmp = (a + b + d) & mask
        self.s[0, self.lane] = b ^ (b >> 11)
        self.s[1, self.lane] = (c + (c << 3)) & mask
        self.s[2, self.lane] = ((((c << 24) | (c >> 40)) & mask) + tmp) & mask
        self.s[3, self.lane] = (d + 1) & mask
        return (tmp >> 11) * _TWO53


def lane_binomial_np(n: np.ndarray, p: np.ndarray, u: np.ndarray,
                     s: np.ndarray | None = None) -> np.ndarray:
    """Twin of :func:`lane_binomial` (``s`` None: a lane drawn from its mode calls the compiled
    :func:`mode_inversion`, whose law a test checks against scipy's pmf) and, given the lanes'
    streams ``s``, of :func:`lane_binomial_btrd` (a big lane draws with ``engines``' BTRD twin
    from its stream): the same steps on arrays of lanes."""
    flip = p > 0.5
    pp = np.where(flip, 1.0 - p, p)
    q = 1.0 - pp
    ratio = pp / q
    big = n * ratio > (LANE_BIG if s is None else LANE_BTRD)
    base, power, m = q.copy(), np.ones_like(q), n.copy()
    while True:
        half = np.floor(m * 0.5)
        power = np.where(m - 2.0 * half > 0.5, power * base, power)
        base = base * base
        m = half
        if not (half > 0.0).any():
            break
    f, cdf, k = power.copy(), power.copy(), np.zeros_like(n)
    f[big] = 0.0
    cdf[big] = 2.0
    j = 0
    while True:
        go = (u >= cdf) & (k < n)
        k = k + np.where(go, 1.0, 0.0)
        fac = np.maximum(n - j, 0.0)
        f = f * (ratio * fac * (1.0 / (j + 1.0)))
        cdf = cdf + f
        if not go.any():
            break
        j += 1
    for lane in np.flatnonzero(big):
        if s is None:
            k[lane] = mode_inversion(float(n[lane]), float(pp[lane]), float(u[lane]))
        else:
            k[lane] = engines._binomial_btrd_np(int(n[lane]), float(pp[lane]),
                                                _LaneStream(s, int(lane)))
    return np.where(flip, n - k, k)


# ------------------------------------------------------------------------------------------
# The hazard model's granular engine, paths side by side


@numba.njit(cache=True, nogil=True, inline="always")
def _cell_amounts(cell_flows, cell_pflows, c, t, inv, v):
    """``v[k, 0]`` = the cell's scheduled column k (bop, interest, principal) in month t per
    loan (sum ÷ loan count), ``v[k, 1 + i]`` the same for party i."""
    for k in range(3):
        v[k, 0] = cell_flows[c, t, k] * inv
        for i in range(cell_pflows.shape[1]):
            v[k, 1 + i] = cell_pflows[c, i, t, k] * inv


@numba.njit(cache=True, nogil=True)
def granular_lanes_block(lane_seeds, n_paths, zb, scale, cell_n, cell_r, thr_s, cell_smm,
                         cell_flows, cell_pflows, out, pout, t_q, kf, pd_table_bytes):
    """The hazard model's granular engine (``engines.granular_block``'s model: per cell, month
    and path, d ~ Binomial(alive, p_t(Z)) defaults, then s ~ Binomial(alive − d, smm_t)
    prepayments; the cell's scheduled flows in proportion to its loans alive, performing,
    prepaying and defaulting) with the paths side by side, ``LANES`` at a time: for each
    chunk of paths, cell and month, every path's default count at once, then every path's
    prepayment count (:func:`lane_binomial_btrd`: one uniform a draw from the path's own
    stream, more for a BTRD draw).

    Path p draws from the SFC64 state ``lane_seeds[:, p]``; ``zb`` (n_pad, T) and ``scale``
    (n_pad,) padded to a multiple of ``LANES`` paths (the padding holds no loans); only the
    first ``n_paths`` rows of ``out`` (n_paths, T, 5) and ``pout`` (n_parties, n_paths, T, 5)
    are added to. The other arguments as ``engines.granular_block``'s. Gaussian copula: the
    chunk's conditional PDs are kept per distinct (month, threshold) pair
    (``engines.threshold_ids``) when that table takes at most ``pd_table_bytes``, else each
    cell's are computed as it is reached — the same erfc of the same numbers either way.

    A path's accumulators receive, month by month, the terms of the cells in cell order: per
    loan of the cell and party (amount ÷ loan count) times the path's count."""
    n_pad, n_t = zb.shape
    n_cells = cell_n.shape[0]
    n_q = cell_pflows.shape[1]
    n_col = out.shape[2]
    use_t = t_q.shape[0] > 0
    if use_t:
        uid = np.empty((0, 0), dtype=np.int64)
        u_t = np.empty(0, dtype=np.int64)
        u_thr = np.empty(0)
        n_u = 0
    else:
        uid, u_t, u_thr, n_u = engines.threshold_ids(thr_s, cell_r)
    table = not use_t and n_u * LANES * 8 <= pd_table_bytes
    pdt = np.empty((n_u if table else n_t, LANES))
    pds = np.empty(n_t)
    st = np.empty((9, LANES))
    alive = np.empty(LANES)
    dd = np.empty(LANES)
    valid = np.empty(LANES)
    v = np.empty((3, n_q + 1))
    acc = np.empty((n_t, n_col, n_q + 1, LANES))
    for p0 in range(0, n_pad, LANES):
        s = lane_seeds[:, p0:p0 + LANES].copy()
        acc[:] = 0.0
        for lane in range(LANES):
            valid[lane] = 1.0 if p0 + lane < n_paths else 0.0
        if table:
            for j in range(n_u):
                th = u_thr[j]
                tt = u_t[j]
                for lane in range(LANES):
                    pdt[j, lane] = engines.cond_pd(th, scale[p0 + lane], zb[p0 + lane, tt])
        for c in range(n_cells):
            r = cell_r[c]
            if use_t:
                for lane in range(LANES):
                    engines.t_copula_pds(t_q[c], r, scale[p0 + lane], zb[p0 + lane], kf, pds)
                    for t in range(r):
                        pdt[t, lane] = pds[t]
            elif not table:
                for t in range(r):
                    th = thr_s[c, t]
                    for lane in range(LANES):
                        pdt[t, lane] = engines.cond_pd(th, scale[p0 + lane], zb[p0 + lane, t])
            n_tot = np.float64(cell_n[c])
            inv = 1.0 / n_tot
            for lane in range(LANES):
                alive[lane] = n_tot * valid[lane]
            for t in range(r):
                held = 0
                for lane in range(LANES):
                    held += 1 if alive[lane] > 0.0 else 0
                if held == 0:
                    break
                row = pdt[uid[c, t]] if table else pdt[t]
                for lane in range(LANES):
                    st[0, lane] = alive[lane]
                    st[1, lane] = row[lane]
                lane_uniforms(s, st)
                lane_binomial_btrd(st, s)  # defaults
                sm = cell_smm[c, t]
                for lane in range(LANES):
                    dd[lane] = st[3, lane]
                    st[0, lane] = alive[lane] - st[3, lane]
                    st[1, lane] = sm
                lane_uniforms(s, st)
                lane_binomial_btrd(st, s)  # prepayments, st[3]
                _cell_amounts(cell_flows, cell_pflows, c, t, inv, v)
                for q in range(n_q + 1):
                    b = v[0, q]
                    i = v[1, q]
                    pr = v[2, q]
                    bp = b - pr
                    a0 = acc[t, 0, q]
                    a1 = acc[t, 1, q]
                    a2 = acc[t, 2, q]
                    a3 = acc[t, 3, q]
                    a4 = acc[t, 4, q]
                    for lane in range(LANES):
                        perf = alive[lane] - dd[lane]
                        a0[lane] += alive[lane] * b
                        a1[lane] += perf * i
                        a2[lane] += perf * pr
                        a3[lane] += st[3, lane] * bp
                        a4[lane] += dd[lane] * b
                for lane in range(LANES):
                    alive[lane] -= dd[lane] + st[3, lane]
        for lane in range(min(LANES, n_paths - p0)):
            p = p0 + lane
            for t in range(n_t):
                for col in range(n_col):
                    out[p, t, col] += acc[t, col, 0, lane]
                    for q in range(n_q):
                        pout[q, p, t, col] += acc[t, col, q + 1, lane]


def granular_lanes_block_np(lane_seeds, n_paths, zb, scale, cell_n, cell_r, thr_s, cell_smm,
                            cell_flows, cell_pflows, out, pout, t_q, kf, pd_table_bytes):
    """Plain-numpy twin of :func:`granular_lanes_block`: the same chunks, cells and months in
    the same order, each lane's arithmetic the same operations (the PDs' erfc from scipy, as
    ``engines.cond_pd_np`` and ``engines.t_copula_pds_np``), so the same draws and sums.
    ``pd_table_bytes`` changes nothing here (the PDs are the same numbers either way)."""
    n_pad, n_t = zb.shape
    n_q = cell_pflows.shape[1]
    use_t = t_q.shape[0] > 0
    for p0 in range(0, n_pad, LANES):
        s = lane_seeds[:, p0:p0 + LANES].copy()
        acc = np.zeros((n_t, out.shape[2], n_q + 1, LANES))
        valid = np.where(np.arange(p0, p0 + LANES) < n_paths, 1.0, 0.0)
        z, sc = zb[p0:p0 + LANES], scale[p0:p0 + LANES]
        for c in range(cell_n.shape[0]):
            r = int(cell_r[c])
            if use_t:
                pd = engines.t_copula_pds_np(t_q[c], r, sc, z, kf).T  # (r, LANES)
            else:
                pd = engines.cond_pd_np(thr_s[c, :r, None], sc[None, :], z[:, :r].T)
            n_tot = float(cell_n[c])
            inv = 1.0 / n_tot
            alive = n_tot * valid
            for t in range(r):
                if not (alive > 0.0).any():
                    break
                d = lane_binomial_np(alive, pd[t], lane_uniforms_np(s, alive), s)
                perf = alive - d
                y = lane_binomial_np(perf, np.full(LANES, cell_smm[c, t]),
                                     lane_uniforms_np(s, perf), s)
                v = np.array([[cell_flows[c, t, k] * inv]
                              + [cell_pflows[c, i, t, k] * inv for i in range(n_q)]
                              for k in range(3)])
                b, i, pr = v[0][:, None], v[1][:, None], v[2][:, None]
                acc[t, 0] += alive[None, :] * b
                acc[t, 1] += perf[None, :] * i
                acc[t, 2] += perf[None, :] * pr
                acc[t, 3] += y[None, :] * (b - pr)
                acc[t, 4] += d[None, :] * b
                alive = alive - (d + y)
        m = min(LANES, n_paths - p0)
        out[p0:p0 + m] += np.moveaxis(acc[:, :, 0, :m], -1, 0)
        for i in range(n_q):
            pout[i, p0:p0 + m] += np.moveaxis(acc[:, :, i + 1, :m], -1, 0)
