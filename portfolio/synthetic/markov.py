"""The generator's Markov mode: a book whose truth is a known monthly transition model.

With ``GeneratorParams(credit_model="markov")`` every open loan sits, at each month-end, in one
delinquency bucket k: 0 = current, k = 1..K = ``markov_charge_off_dpd / 30`` = (30(k−1), 30k]
days past due. In its a-th month on book, with Z_t the macro factor of the calendar month
(AR(1), ``factor_persistence``, ``rho``), a loan in band b moves by these probabilities:

* from current (k = 0): to 1–30 with the **entry rate** e_b(Z_t) (misses instalment a);
  otherwise it prepays in full with ``true_prepay_smm[b, term, a]`` (not factor-driven) or
  pays instalment a (the last one: matured). A daily-interest loan that pays may also repay a
  part of its balance (``partial_repay_prob``, a uniform fraction in ``partial_repay_fraction``).
* from bucket k ≥ 1: **roll** to k+1 with r_bk(Z_t) (pays nothing; from k = K: charged off),
  else **cure** with c_bk(Z_t) (pays every instalment due: back to current, or matured when
  nothing is left), else **stay** (pays one instalment, still k months behind; matured when
  that was the last one). So P(k → k+1) = r, P(k → 0) = (1 − r)·c, P(k → k) = (1 − r)(1 − c).

The factor moves rolls and cures in opposite directions (a one-factor Gaussian link, so that
each rate's average over Z ~ N(0, 1) is its base value):

    e_b(z)  = Φ((Φ⁻¹(ē_b) − √ρ·z) / √(1−ρ)),             ē_b  = markov_entry[b]
    r_bk(z) = Φ((Φ⁻¹(r̄_bk) − √ρ·z) / √(1−ρ)),            r̄_bk = markov_roll[k]·markov_band_roll[b]
    c_bk(z) = Φ((Φ⁻¹(c̄_bk) + √ρ·z) / √(1−ρ)),            c̄_bk = markov_cure[k]·markov_band_cure[b]

A low Z (a downturn) raises entries and rolls and lowers cures. A delinquent loan neither
prepays nor repays in part. **Charge-off**: the month a loan rolls out of bucket K its row has
status ``default``, dpd = 30K + r (r ∈ [1, 30], the day offset of its first missed due date),
``charge_off`` = its whole balance and balance 0. **Recoveries** = ``recovery_rate`` × the
charged-off amount, collected at lags 1, 2, … months *after the charge-off month* by the shares
``recovery_lag``; the loan's rows continue (status ``default``, balance 0) until the last one.
Rows with dpd > 90 that are not yet charged off (K > 3) also carry status ``default``, the
book's convention. Cash flows follow the schedules as in ``portfolio.synthetic.performance``.

The truth (``transition_truth``, ``truth_record``) is these probabilities given the realised
factor path, which the generator returns (``GenerateSummary.factor``) and ``riskpool generate
--credit-model markov`` writes next to the book. A pooled estimator over months estimates the
exposure-weighted average of the monthly conditional probabilities; ``transition_truth``
gives them per month so a test can form exactly that average.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

from portfolio.loans.schedules import schedule_matrix
from portfolio.loans.types import SCORE_BAND_LABELS
from portfolio.synthetic.originations import Originations
from portfolio.synthetic.params import GeneratorParams
from portfolio.synthetic.performance import (
    _DI,
    _S_CURRENT,
    _S_DEFAULT,
    _S_DELINQUENT,
    _S_MATURED,
    _S_PREPAID,
    _round2,
    add_month,
    finish_rows,
    month_arrays,
    new_rows,
)


def n_buckets(params: GeneratorParams) -> int:
    """K: delinquency buckets before charge-off (charge-off DPD / 30)."""
    return params.markov_charge_off_dpd // 30


def _link(p: np.ndarray, z: np.ndarray, rho: float, sign: float) -> np.ndarray:
    """Φ((Φ⁻¹(p) − sign·√ρ·z)/√(1−ρ)) for every z (leading axis) and p (trailing axes)."""
    q = ndtri(np.asarray(p, dtype=np.float64))
    zz = np.asarray(z, dtype=np.float64).reshape((-1,) + (1,) * q.ndim)
    return ndtr((q[None] - sign * np.sqrt(rho) * zz) / np.sqrt(1.0 - rho))


def base_rates(params: GeneratorParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ē (bands,), r̄ (bands, K), c̄ (bands, K)): the rates at their average over Z."""
    entry = np.asarray(params.markov_entry, dtype=np.float64)
    roll = np.outer(params.markov_band_roll, params.markov_roll)
    cure = np.outer(params.markov_band_cure, params.markov_cure)
    return entry, roll, cure


def conditional_rates(params: GeneratorParams, z: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Given Z_t per month: entry (T, bands), roll (T, bands, K), cure share (T, bands, K)."""
    entry, roll, cure = base_rates(params)
    return (_link(entry, z, params.rho, +1.0), _link(roll, z, params.rho, +1.0),
            _link(cure, z, params.rho, -1.0))


def transition_truth(params: GeneratorParams, z: np.ndarray) -> np.ndarray:
    """(T, bands, K+1, K+2): P(bucket i → j | Z_t) over j = current, 1..K, charged off.

    Row 0 (current) splits only the entry: P(0 → 1) = e, P(0 → 0) = 1 − e (prepayment and
    maturity are outcomes of the non-entering loans, in the 0 → 0 mass). Row k ≥ 1: roll r to
    k+1 (charge-off from K), cure (1 − r)·c to 0 (matured when nothing is left), stay the rest.
    """
    e, r, c = conditional_rates(params, z)
    k = r.shape[2]
    out = np.zeros(e.shape + (k + 1, k + 2))
    out[:, :, 0, 1] = e
    out[:, :, 0, 0] = 1.0 - e
    for i in range(1, k + 1):
        out[:, :, i, i + 1] = r[:, :, i - 1]
        out[:, :, i, 0] = (1.0 - r[:, :, i - 1]) * c[:, :, i - 1]
        out[:, :, i, i] = (1.0 - r[:, :, i - 1]) * (1.0 - c[:, :, i - 1])
    return out


def truth_record(params: GeneratorParams, factor: np.ndarray, month_ends: np.ndarray
                 ) -> dict[str, object]:
    """The Markov mode's true parameters and realised factor path, as plain JSON values."""
    entry, roll, cure = base_rates(params)
    k = n_buckets(params)
    return {
        "model": "markov delinquency buckets (portfolio.synthetic.markov)",
        "charge_off_dpd": params.markov_charge_off_dpd,
        "buckets": ["current"] + [f"{30 * i + 1}-{30 * (i + 1)}" for i in range(k)],
        "score_bands": list(SCORE_BAND_LABELS),
        "link": "p(z) = Phi((Phi^-1(p) - s*sqrt(rho)*z)/sqrt(1-rho)), s = +1 entry and roll, "
                "-1 cure; P(k->k+1) = r, P(k->0) = (1-r)*c, P(k->k) = (1-r)*(1-c)",
        "entry_rate": entry.tolist(),
        "roll_rate": roll.tolist(),
        "cure_share": cure.tolist(),
        "rho": params.rho,
        "factor_persistence": params.factor_persistence,
        "recovery_rate": params.recovery_rate,
        "recovery_lag_from_charge_off": list(params.recovery_lag),
        "factor": [float(x) for x in factor],
        "factor_months": [str(d) for d in month_ends.astype("datetime64[D]")],
    }


def simulate_chunk_markov(
    params: GeneratorParams,
    book: Originations,
    sl: slice,
    month_ends: np.ndarray,
    factor: np.ndarray,
    smm: np.ndarray,  # (bands, terms, n_age)
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Month-end rows of one chunk of loans under the Markov mode (module docstring)."""
    entry_t, roll_t, cure_t = conditional_rates(params, factor)
    vint = book.vintage[sl].astype(np.int64)
    n = len(vint)
    n_months = len(month_ends)
    principal = book.principal[sl]
    apr = book.apr[sl]
    term = book.term[sl].astype(np.int64)
    band = book.band[sl].astype(np.int64)
    term_idx = book.term_idx[sl].astype(np.int64)
    is_di = book.rtype[sl] == _DI
    n_cols = max(0, min(int(term.max()) if n else 0, n_months - 1))
    sched = schedule_matrix(principal, apr, term, book.rtype[sl], book.origination_date[sl],
                            n_months=n_cols)
    cum_p = np.zeros((n, n_cols + 1))
    cum_i = np.zeros((n, n_cols + 1))
    cum_d = np.zeros((n, n_cols + 1))
    if n_cols:
        np.cumsum(sched.principal, axis=1, out=cum_p[:, 1:])
        np.cumsum(sched.interest, axis=1, out=cum_i[:, 1:])
        np.cumsum(sched.days, axis=1, out=cum_d[:, 1:])
    due = sched.due_dates.astype("datetime64[D]").astype(np.int64)
    month_end_days = month_ends.astype("datetime64[D]").astype(np.int64)

    kmax = n_buckets(params)
    lag_cum = np.concatenate([[0.0], np.cumsum(params.recovery_lag)])
    n_lag = len(params.recovery_lag)
    lo_f, hi_f = params.partial_repay_fraction

    closed = np.zeros(n, dtype=bool)
    bal = principal.copy()
    paid = np.zeros(n, dtype=np.int64)  # instalments paid
    bucket = np.zeros(n, dtype=np.int64)
    r_day = np.zeros(n, dtype=np.int64)
    co_age = np.zeros(n, dtype=np.int64)  # age of the charge-off row, 0 = not charged off
    rec_total = np.zeros(n)
    rec_done = np.zeros(n)

    out = new_rows()
    for t in range(n_months):
        idx = np.flatnonzero((vint <= t) & ~closed)
        if idx.size == 0:
            continue
        age = t - vint[idx]
        paid_p, paid_i, prepaid, charge, recov, dpd, status = month_arrays(idx.size)

        # --- charged off: recoveries at lags 1.. n_lag after the charge-off month
        sel_c = np.flatnonzero(co_age[idx] > 0)
        if sel_c.size:
            li = idx[sel_c]
            j = np.minimum(age[sel_c] - co_age[li], n_lag)
            target = _round2(rec_total[li] * lag_cum[j])
            r = _round2(np.maximum(target - rec_done[li], 0.0))
            recov[sel_c] = r
            rec_done[li] += r
            status[sel_c] = _S_DEFAULT
            dpd[sel_c] = np.minimum(30 * (kmax + age[sel_c] - co_age[li]) + r_day[li], 32000)
            closed[li[j >= n_lag]] = True

        # --- open loans in their a-th month
        sel_o = np.flatnonzero((co_age[idx] == 0) & (age > 0))
        if sel_o.size:
            li = idx[sel_o]
            a = age[sel_o]
            mo = li.size
            b = band[li]
            k = bucket[li]
            u = rng.random((5, mo))
            cur = k == 0
            kk = np.maximum(k - 1, 0)
            enter = cur & (u[0] < entry_t[t, b])
            prepay = cur & ~enter & (u[1] < smm[b, term_idx[li], a - 1])
            roll = ~cur & (u[0] < roll_t[t, b, kk])
            cure = ~cur & ~roll & (u[2] < cure_t[t, b, kk])
            stay = ~cur & ~roll & ~cure
            old = paid[li]
            trm = term[li]
            new = np.where(cur & ~enter, a, old)
            new = np.where(cure, np.minimum(a, trm), new)
            new = np.where(stay, np.minimum(old + 1, trm), new)
            # scheduled amounts paid this month (instalments old+1..new)
            pp = cum_p[li, new] - cum_p[li, old]
            ip = cum_i[li, new] - cum_i[li, old]
            days = cum_d[li, new] - cum_d[li, old]
            b0 = bal[li]
            di = is_di[li]
            pp = np.where(di, np.where((new >= trm) & (new > old), b0, 0.0), _round2(pp))
            ip = np.where(di, _round2(b0 * apr[li] * days / 365.0), _round2(ip))
            b1 = np.maximum(_round2(b0 - pp), 0.0)
            pre = np.where(prepay, b1, 0.0)
            part = (di & cur & ~enter & ~prepay & (a < trm)
                    & (u[3] < params.partial_repay_prob))
            pre = np.where(part, _round2(b1 * (lo_f + (hi_f - lo_f) * u[4])), pre)
            b1 = np.maximum(_round2(b1 - pre), 0.0)
            # new buckets
            k_new = np.where(enter, 1, np.where(roll, k + 1, np.where(cure, 0, k)))
            done = (new >= trm) & ~roll & ~enter & ~prepay  # nothing left to pay: matured
            charged = roll & (k_new > kmax)
            # first missed due date's day offset, fixed when the loan enters 1–30
            if enter.any():
                le = li[enter]
                r_day[le] = np.clip(month_end_days[t] - due[le, a[enter] - 1], 1, 30)
            paid_p[sel_o], paid_i[sel_o], prepaid[sel_o] = pp, ip, pre
            co_amt = np.where(charged, b1, 0.0)
            charge[sel_o] = co_amt
            b1 = np.where(charged, 0.0, b1)
            bal[li] = b1
            paid[li] = new
            bucket[li] = np.where(done, 0, k_new)
            co_age[li[charged]] = a[charged]
            rec_total[li[charged]] = _round2(params.recovery_rate * co_amt[charged])
            delinquent = ~done & (k_new >= 1)
            dpd[sel_o] = np.where(delinquent, 30 * (k_new - 1) + r_day[li], 0)
            st = np.where(delinquent, np.where(k_new > 3, _S_DEFAULT, _S_DELINQUENT),
                          _S_CURRENT)
            st = np.where(prepay, _S_PREPAID, np.where(done, _S_MATURED, st))
            status[sel_o] = st
            closed[li[prepay | done]] = True

        add_month(out, idx, month_ends[t], age, bal[idx], paid_p, paid_i, prepaid, dpd, status,
                  charge, recov)
    return finish_rows(out)
