"""The monthly performance simulator: the month-end rows of originated loans.

Performance (one row per loan per month-end from the origination month, months_on_book = 0)
--------------------------------------------------------------------------------------------
Instalment ``a`` of a loan is due in its ``a``-th month on book (schedules from
``portfolio.loans.schedules.schedule_matrix``); the month-end row of age ``a`` shows it paid or
missed. In month ``a`` (1 ≤ a ≤ term) a *performing* loan (not gone bad, not closed):

1. **goes bad** with probability ``Φ((Φ⁻¹(h) − √ρ·Z_t) / √(1−ρ))``, ``h = go_bad_hazard[band,
   term, a]`` and ``Z_t`` the macro factor of the calendar month (AR(1), persistence
   ``factor_persistence``, unit variance, shared by all loans). It pays any arrears but misses
   instalment ``a`` and every later one: M1 (dpd 1–30) at age a, M2 at a+1, M3 at a+2 and
   **default** (dpd > 90, status ``default``) at a+3, with ``dpd = 30·(k−1) + r`` in its k-th
   month of delinquency (r ∈ [1, 30] = days from the missed due date to that month-end). The
   balance stays frozen; recoveries (``recovery_rate`` × the balance at default, spread over
   ``recovery_lag`` = shares 1, 2, … months after default) reduce it; at ``writeoff_dpd`` it is
   written off (``charge_off`` = the balance left, balance 0). Rows continue (status
   ``default``) until the later of write-off and the last recovery.
2. otherwise **prepays in full** with probability ``prepay_smm[band, term, a]`` (status
   ``prepaid``, ``prepaid_principal`` = the balance left after the month's instalment);
3. otherwise may start a **transient delinquency** (probability ``cure_episode_prob[band]``):
   it misses L = 1, 2 or 3 instalments (``cure_episode_months``) and then pays all arrears,
   back to current, by its maturity — so roll and cure rates are non-trivial. An episode
   never changes the go-bad or prepayment draws of the loan;
4. a daily-interest loan may repay part of its balance (probability ``partial_repay_prob``,
   a uniform fraction) — counted in ``prepaid_principal``, status stays ``current``;
5. otherwise pays its instalment; the last one leaves status ``matured`` (balance 0).

Daily-interest interest is balance × apr × days/365 over the actual days of the period (on the
balance after partial repayments); the other types pay the schedule.

The macro factor Z_t is an AR(1) path (``draw_factor``); the go-bad probabilities given it
are computed once per request (``portfolio.synthetic.generate``).
"""

from __future__ import annotations

import numpy as np

from portfolio.loans.schedules import schedule_matrix
from portfolio.loans.types import LoanStatus, RepaymentType
from portfolio.synthetic.originations import Originations
from portfolio.synthetic.params import GeneratorParams

STATUS_NAMES: tuple[str, ...] = tuple(s.value for s in LoanStatus)
_S_CURRENT = STATUS_NAMES.index("current")
_S_DELINQUENT = STATUS_NAMES.index("delinquent")
_S_DEFAULT = STATUS_NAMES.index("default")
_S_PREPAID = STATUS_NAMES.index("prepaid")
_S_MATURED = STATUS_NAMES.index("matured")
_DI = RepaymentType.DAILY_INTEREST.code


def draw_factor(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    """AR(1) with unit stationary variance: Z_0 ~ N(0,1), Z_t = φZ_{t−1} + √(1−φ²)ε_t."""
    eps = rng.standard_normal(n)
    z = np.empty(n)
    z[0] = eps[0]
    scale = np.sqrt(1.0 - phi * phi)
    for t in range(1, n):
        z[t] = phi * z[t - 1] + scale * eps[t]
    return z


def _round2(x: np.ndarray) -> np.ndarray:
    """Round non-negative amounts to the cent, half up (the schedules' convention)."""
    return np.floor(np.asarray(x, dtype=np.float64) * 100.0 + (0.5 + 1e-9)) / 100.0


ROW_COLUMNS: tuple[str, ...] = (
    "loan", "as_of", "mob", "balance", "paid_principal", "paid_interest", "prepaid", "dpd",
    "status", "charge_off", "recovery")
"""The columns of a chunk's month-end rows (both credit modes: this one and ``markov``)."""


def new_rows() -> dict[str, list[np.ndarray]]:
    """An empty collector of month-end rows (:func:`add_month`, :func:`finish_rows`)."""
    return {k: [] for k in ROW_COLUMNS}


def month_arrays(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                  np.ndarray, np.ndarray]:
    """A month's zeroed rows for ``m`` open loans: paid principal, paid interest, prepaid,
    charge-off, recovery (float64), dpd (int64) and status (int8, all current)."""
    return (np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m),
            np.zeros(m, dtype=np.int64), np.full(m, _S_CURRENT, dtype=np.int8))


def add_month(out: dict[str, list[np.ndarray]], idx: np.ndarray, month_end: np.datetime64,
              age: np.ndarray, balance: np.ndarray, paid_principal: np.ndarray,
              paid_interest: np.ndarray, prepaid: np.ndarray, dpd: np.ndarray,
              status: np.ndarray, charge_off: np.ndarray, recovery: np.ndarray) -> None:
    """The month-end rows of the open loans ``idx`` (chunk indices) at ``month_end``, in the
    table's dtypes; ``balance`` is copied (the caller goes on updating it)."""
    m = idx.size
    out["loan"].append(idx.astype(np.int32))
    out["as_of"].append(np.full(m, month_end.astype(np.int64), dtype=np.int32))
    out["mob"].append(age.astype(np.int16))
    out["balance"].append(balance.copy())
    out["paid_principal"].append(paid_principal)
    out["paid_interest"].append(paid_interest)
    out["prepaid"].append(prepaid)
    out["dpd"].append(dpd.astype(np.int16))
    out["status"].append(status)
    out["charge_off"].append(charge_off)
    out["recovery"].append(recovery)


def finish_rows(out: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """Each column's months joined (an empty array where no loan was open)."""
    return {k: np.concatenate(v) if v else np.empty(0) for k, v in out.items()}


def simulate_chunk(
    params: GeneratorParams,
    book: Originations,
    sl: slice,
    month_ends: np.ndarray,
    hazard_by_month: np.ndarray,  # (n_months, bands, terms, n_age) conditional go-bad
    smm: np.ndarray,  # (bands, terms, n_age)
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Month-end rows of one chunk of loans; ``loan`` indexes within the chunk."""
    vint = book.vintage[sl].astype(np.int64)
    n = len(vint)
    n_months = len(month_ends)
    principal = book.principal[sl]
    apr = book.apr[sl]
    term = book.term[sl].astype(np.int64)
    rtype = book.rtype[sl]
    band = book.band[sl].astype(np.int64)
    term_idx = book.term_idx[sl].astype(np.int64)
    is_di = rtype == _DI
    n_cols = max(0, min(int(term.max()) if n else 0, n_months - 1))
    sched = schedule_matrix(principal, apr, term, rtype, book.origination_date[sl],
                            n_months=n_cols)
    # cumulative principal/interest/days after k instalments, k = 0..n_cols (column k)
    cum_p = np.zeros((n, n_cols + 1), order="F")
    cum_i = np.zeros((n, n_cols + 1), order="F")
    cum_d = np.zeros((n, n_cols + 1), order="F")
    if n_cols:
        np.cumsum(sched.principal, axis=1, out=cum_p[:, 1:])
        np.cumsum(sched.interest, axis=1, out=cum_i[:, 1:])
        np.cumsum(sched.days, axis=1, out=cum_d[:, 1:])
    flat_p = cum_p.ravel(order="F")
    flat_i = cum_i.ravel(order="F")
    flat_d = cum_d.ravel(order="F")
    due_flat = sched.due_dates.ravel(order="F")

    def at(flat: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return flat[cols * n + rows]

    # state
    closed = np.zeros(n, dtype=bool)
    bal = principal.copy()
    paid_through = np.zeros(n, dtype=np.int64)
    bad_age = np.zeros(n, dtype=np.int64)  # 0 = performing
    ep_end = np.zeros(n, dtype=np.int64)  # cure age of a transient delinquency, 0 = none
    r_bad = np.zeros(n, dtype=np.int64)
    rec_total = np.zeros(n)
    rec_done = np.zeros(n)
    pipe = params.pipeline_months
    k_wo = params.writeoff_month
    lag_cum = np.concatenate([[0.0], np.cumsum(params.recovery_lag)])
    n_lag = len(params.recovery_lag)
    k_last = max(k_wo, pipe + 1 + n_lag)  # last row of a defaulted loan
    ep_p = np.asarray(params.cure_episode_prob)
    ep_len_cdf = np.cumsum(params.cure_episode_months)
    lo_f, hi_f = params.partial_repay_fraction

    out = new_rows()

    for t in range(n_months):
        idx = np.flatnonzero((vint <= t) & ~closed)
        if idx.size == 0:
            continue
        age = t - vint[idx]
        paid_p, paid_i, prepaid, charge, recov, dpd, status = month_arrays(idx.size)

        # --- loans already bad: k-th month of delinquency (k >= 2)
        sel_b = np.flatnonzero((bad_age[idx] > 0) & (age > 0))
        if sel_b.size:
            li = idx[sel_b]
            k = age[sel_b] - bad_age[li] + 1
            dpd[sel_b] = 30 * (k - 1) + r_bad[li]
            status[sel_b] = np.where(k <= pipe, _S_DELINQUENT, _S_DEFAULT)
            first_def = k == pipe + 1
            rec_total[li[first_def]] = _round2(params.recovery_rate * bal[li[first_def]])
            j = np.clip(k - (pipe + 1), 0, n_lag)  # recovery months elapsed after default
            target = _round2(rec_total[li] * lag_cum[j])
            r = _round2(np.maximum(target - rec_done[li], 0.0))
            recov[sel_b] = r
            rec_done[li] += r
            bal[li] = np.maximum(_round2(bal[li] - r), 0.0)
            wo = k == k_wo
            charge[sel_b[wo]] = bal[li[wo]]
            bal[li[wo]] = 0.0
            closed[li[k >= k_last]] = True

        # --- performing loans, age >= 1 (age <= term by construction)
        sel_p = np.flatnonzero((bad_age[idx] == 0) & (age > 0))
        if sel_p.size:
            li = idx[sel_p]
            a = age[sel_p]
            mp = li.size
            bnd, trm = band[li], term_idx[li]
            u = rng.random((6, mp))
            go_bad = u[0] < hazard_by_month[t, bnd, trm, a - 1]
            prepay = ~go_bad & (u[1] < smm[bnd, trm, a - 1])
            in_ep = ep_end[li] > a  # still missing (episode started earlier, cure later)
            cure_now = ep_end[li] == a
            ep_len = 1 + np.searchsorted(ep_len_cdf, u[3] * ep_len_cdf[-1], side="right")
            ep_len = np.minimum(ep_len, 3)
            start_ep = (~go_bad & ~prepay & ~in_ep & ~cure_now & (u[2] < ep_p[bnd])
                        & (a + ep_len <= term[li]))
            ep_end[li[start_ep]] = a[start_ep] + ep_len[start_ep]
            missing = (in_ep | start_ep) & ~go_bad & ~prepay
            old = paid_through[li]
            new = np.where(go_bad, a - 1, np.where(missing, old, a))
            ep_end[li[go_bad | prepay | cure_now]] = 0
            # scheduled amounts paid this month
            di = is_di[li]
            pp = at(flat_p, li, new) - at(flat_p, li, old)
            ip = at(flat_i, li, new) - at(flat_i, li, old)
            days = at(flat_d, li, new) - at(flat_d, li, old)
            b0 = bal[li]
            di_int = _round2(b0 * apr[li] * days / 365.0)
            di_prin = np.where(new >= term[li], b0, 0.0)
            pp = np.where(di, di_prin, _round2(pp))
            ip = np.where(di, di_int, _round2(ip))
            b1 = np.maximum(_round2(b0 - pp), 0.0)
            # full prepayment: the balance left after the month's instalment
            pre = np.where(prepay, b1, 0.0)
            # partial repayment of daily-interest loans
            part = (di & ~go_bad & ~prepay & ~missing & (a < term[li])
                    & (u[4] < params.partial_repay_prob))
            frac = lo_f + (hi_f - lo_f) * u[5]
            pre = np.where(part, _round2(b1 * frac), pre)
            b1 = np.maximum(_round2(b1 - pre), 0.0)
            bal[li] = b1
            paid_through[li] = new
            paid_p[sel_p], paid_i[sel_p], prepaid[sel_p] = pp, ip, pre
            # delinquency of the first unpaid instalment (new + 1, due in month vint + new + 1)
            late = new < a
            if late.any():
                ll, nl = li[late], new[late]
                due = at(due_flat.view(np.int64), ll, nl)
                month_end = month_ends.astype(np.int64)[vint[ll] + nl + 1]
                r = np.clip(month_end - due, 1, 30)
                dpd[sel_p[late]] = 30 * (a[late] - nl - 1) + r
                status[sel_p[late]] = _S_DELINQUENT
                gb = go_bad[late]
                r_bad[ll[gb]] = r[gb]
            bad_age[li[go_bad]] = a[go_bad]
            matured = ~go_bad & ~prepay & (new >= term[li])
            status[sel_p[prepay]] = _S_PREPAID
            status[sel_p[matured]] = _S_MATURED
            closed[li[prepay | matured]] = True

        add_month(out, idx, month_ends[t], age, bal[idx], paid_p, paid_i, prepaid, dpd, status,
                  charge, recov)
    return finish_rows(out)
