"""Delinquency transition matrices estimated from the book's own history, with intervals.

States (``portfolio.store.calibration.bucket_transitions``): bucket 0 = current, bucket k =
(30(k−1), 30k] days past due for k = 1..K (K = charge-off DPD / 30; the deal's definition,
90 by default), then the absorbing outcomes *charged off* (first row with a charge-off or
dpd > the charge-off DPD), *prepaid* and *matured*. A move is counted from the bucket of a
loan's row at age a−1 to its state at age a, in cell (score band, original term, age a).

Estimator (count-weighted, per from-state)
    p̂(i → j) = n_ij / n_i, the multinomial maximum-likelihood estimate, where n_i is the
    number of loan-months starting in bucket i (the exposure) and n_ij those ending in j.

Pooling where exposure is thin
    A cell whose from-state exposure n_i is below ``min_exposure`` (30 loan-months by default)
    borrows the counts of a wider group, the first of these levels that reaches it:
    1 the cell's age group within its band × term (ages 1–3, 4–6, 7–12, 13+), 2 all ages of
    the band × term, 3 the band over all terms and ages, 4 the whole book. Ages past a loan's
    term (only loans still delinquent after their last instalment, which roll on rather than
    cure) pool only with ages past the term: their age group is "past the term", and levels
    2–4 sum past-term cells for them and in-term cells for the others (the book level falls
    back to all ages where no loan was ever seen in that state past its term). ``level`` records
    which one each cell used (0: its own counts); the interval is that of the counts used.

Intervals (per transition probability, binomial margin of the multinomial)
    Wilson score interval (Wilson, E. B. (1927), "Probable inference, the law of succession,
    and statistical inference", JASA 22, 209–212):
        (p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n),   z = Φ⁻¹(1 − α/2);
    or Clopper–Pearson (Clopper, C. J. and Pearson, E. S. (1934), Biometrika 26, 404–413):
        [B(α/2; x, n−x+1), B(1−α/2; x+1, n−x)] with B the beta quantile (0 and 1 at the ends).
    Both equal ``scipy.stats.binomtest(x, n).proportion_ci(method="wilson" | "exact")``
    (tested). With many cells, about α of them miss their truth by chance: a test of the whole
    matrix reads the share of cells inside (≥ 90% at 95%) or a joint χ² statistic.

Partial repayments (MPR of daily-interest loans)
    Σ prepaid principal of daily-interest loans current in both months / Σ their balance at
    the start of the month — the monthly partial repayment rate (full prepayments excluded).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import ndtri

from portfolio.book.calibration import CellCounts, RecoveryCounts, in_term_mask, recovery_curve
from portfolio.book.factor_fit import FactorCounts, FactorFit, RhoChoice, fit_factor
from portfolio.errors import ValidationError, must_be
from portfolio.loans.types import ALLOWED_TERMS, SCORE_BAND_LABELS, SCORE_BANDS
from portfolio.montecarlo.assumptions import DelinquencyAssumptions
from portfolio.store import calibration as sql
from portfolio.store.core import Store

AGE_GROUPS: tuple[tuple[int, int], ...] = ((1, 3), (4, 6), (7, 12), (13, 10_000))
POOL_LEVELS: tuple[str, ...] = ("cell", "age group", "band x term", "band", "book")
INTERVAL_METHODS: tuple[str, ...] = ("wilson", "clopper-pearson")


def state_names(charge_off_dpd: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(from-states, to-states) labels for a charge-off point."""
    k = charge_off_dpd // 30
    buckets = ("current",) + tuple(f"{30 * i + 1}-{30 * (i + 1)}" for i in range(k))
    return buckets, buckets + ("charged_off", "prepaid", "matured")


@dataclass(frozen=True, slots=True)
class TransitionCounts:
    """Move counts, ``n`` shaped (bands, terms, n_age, n_months, K+1 from, K+4 to)."""

    months: np.ndarray  # (n_months,) datetime64[D]: month-end the move ends on
    n: np.ndarray
    di_balance_bop: np.ndarray  # (bands, terms, n_age, n_months)
    di_partial: np.ndarray
    di_n: np.ndarray
    charge_off_dpd: int
    terms: tuple[int, ...] = ALLOWED_TERMS

    @property
    def n_age(self) -> int:
        return int(self.n.shape[2])

    def window(self, months: np.ndarray) -> TransitionCounts:
        """The counts of the months where ``months`` (bool over self.months) is True."""
        return TransitionCounts(self.months[months], self.n[:, :, :, months],
                                self.di_balance_bop[..., months], self.di_partial[..., months],
                                self.di_n[..., months], self.charge_off_dpd, self.terms)


@dataclass(frozen=True, slots=True)
class TransitionEstimate:
    """Estimated monthly transition probabilities with their intervals and exposures.

    Arrays are (bands, terms, n_age, K+1 from[, K+4 to]); ``level`` indexes POOL_LEVELS.
    """

    prob: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    exposure: np.ndarray  # n_i the estimate used (after pooling)
    own_exposure: np.ndarray  # the cell's own n_i
    level: np.ndarray
    charge_off_dpd: int
    confidence: float
    method: str
    min_exposure: int
    partial_repayment_rate: float  # daily-interest MPR (module docstring)
    partial_repayment_exposure: int
    terms: tuple[int, ...] = ALLOWED_TERMS

    @property
    def states(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return state_names(self.charge_off_dpd)

    def table(self) -> pd.DataFrame:
        """Long table: one row per (band, term, age, from, to) with exposure > 0 or a
        probability > 0: probability, interval, exposure used, own exposure, pooling level."""
        fr, to = self.states
        b, t, a, i, j = np.nonzero((self.exposure[..., None] > 0) & np.ones_like(self.prob,
                                                                                 dtype=bool))
        return pd.DataFrame({
            "band": np.asarray(SCORE_BAND_LABELS)[b],
            "term": np.asarray(self.terms)[t],
            "age": a + 1,
            "from": np.asarray(fr)[i],
            "to": np.asarray(to)[j],
            "prob": self.prob[b, t, a, i, j],
            "lo": self.lo[b, t, a, i, j],
            "hi": self.hi[b, t, a, i, j],
            "exposure": self.exposure[b, t, a, i].astype(np.int64),
            "own_exposure": self.own_exposure[b, t, a, i].astype(np.int64),
            "pooled": np.asarray(POOL_LEVELS)[self.level[b, t, a, i]],
        })


def binomial_interval(x: np.ndarray, n: np.ndarray, confidence: float = 0.95,
                      method: str = "wilson") -> tuple[np.ndarray, np.ndarray]:
    """Vectorised two-sided interval for x successes in n trials (module docstring).

    n = 0 gives (0, 1). Matches ``scipy.stats.binomtest(x, n).proportion_ci``.
    """
    if method not in INTERVAL_METHODS:
        raise ValidationError(must_be("interval method", " or ".join(INTERVAL_METHODS), method))
    if not 0 < confidence < 1:
        raise ValidationError(must_be("confidence", "in (0, 1)", confidence))
    x = np.asarray(x, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    alpha = 1.0 - confidence
    ok = n > 0
    nn = np.where(ok, n, 1.0)
    if method == "wilson":
        z = float(ndtri(1.0 - alpha / 2))
        p = x / nn
        denom = 1.0 + z * z / nn
        centre = (p + z * z / (2 * nn)) / denom
        half = z * np.sqrt(p * (1 - p) / nn + z * z / (4 * nn * nn)) / denom
        lo = np.where(x > 0, centre - half, 0.0)  # exact ends at x = 0 and x = n
        hi = np.where(x < nn, centre + half, 1.0)
    else:
        with np.errstate(invalid="ignore"):
            lo = np.where(x > 0, stats.beta.ppf(alpha / 2, x, nn - x + 1), 0.0)
            hi = np.where(x < nn, stats.beta.ppf(1 - alpha / 2, x + 1, nn - x), 1.0)
    lo = np.where(ok, np.clip(lo, 0.0, 1.0), 0.0)
    hi = np.where(ok, np.clip(hi, 0.0, 1.0), 1.0)
    return lo, hi


def _age_group_index(n_age: int) -> np.ndarray:
    ages = np.arange(1, n_age + 1)
    return np.array([next(g for g, (lo, hi) in enumerate(AGE_GROUPS) if lo <= a <= hi)
                     for a in ages])


def estimate_transitions(counts: TransitionCounts, *, min_exposure: int = 30,
                         confidence: float = 0.95, method: str = "wilson"
                         ) -> TransitionEstimate:
    """Transition probabilities per cell with pooling and intervals (module docstring)."""
    if isinstance(min_exposure, bool) or not isinstance(min_exposure, (int, np.integer)) \
            or min_exposure < 1:
        raise ValidationError(must_be("min exposure", "an integer >= 1", min_exposure))
    n = counts.n.sum(axis=3)  # (bands, terms, age, from, to)
    nb, nt, na, nf, nto = n.shape
    # ages past the term (only loans still delinquent after their last instalment) pool
    # among themselves at every level: their rolls and cures are not those of in-term ages
    past = np.arange(1, na + 1)[None, :] > np.asarray(counts.terms)[:, None]  # (terms, age)
    groups = np.where(past, len(AGE_GROUPS), _age_group_index(na)[None, :])
    # candidate counts per level, broadcast back to cells
    g_counts = np.zeros_like(n)
    for j in range(nt):
        for g in np.unique(groups[j]):
            cols = groups[j] == g
            g_counts[:, j, cols] = n[:, j, cols].sum(axis=1, keepdims=True)
    side = past[None, :, :, None, None]
    n_past = np.where(side, n, 0.0)
    n_in = n - n_past

    def same_side(axes: tuple[int, ...]) -> np.ndarray:
        return np.where(side, n_past.sum(axis=axes, keepdims=True),
                        n_in.sum(axis=axes, keepdims=True))

    book = same_side((0, 1, 2))
    # a from-state never seen past the term anywhere: the whole book's counts
    empty = book.sum(axis=4, keepdims=True) == 0
    book = np.where(empty, n.sum(axis=(0, 1, 2), keepdims=True), book)
    levels = [n, g_counts, same_side((2,)), same_side((1, 2)), book]
    used = np.array(levels[-1], dtype=np.float64)
    level = np.full((nb, nt, na, nf), len(levels) - 1, dtype=np.int64)
    for lv in range(len(levels) - 2, -1, -1):  # the narrowest level with enough exposure wins
        ok = levels[lv].sum(axis=4) >= min_exposure
        used = np.where(ok[..., None], levels[lv], used)
        level = np.where(ok, lv, level)
    exposure = used.sum(axis=4)
    with np.errstate(invalid="ignore", divide="ignore"):
        prob = np.where(exposure[..., None] > 0, used / exposure[..., None], 0.0)
    lo, hi = binomial_interval(used, np.broadcast_to(exposure[..., None], used.shape),
                               confidence, method)
    bop = counts.di_balance_bop.sum()
    mpr = float(counts.di_partial.sum() / bop) if bop > 0 else 0.0
    return TransitionEstimate(prob, lo, hi, exposure, n.sum(axis=4), level,
                              counts.charge_off_dpd, confidence, method, int(min_exposure),
                              mpr, int(counts.di_n.sum()), counts.terms)


def load_transition_counts(store: Store, as_of: dt.date, *, charge_off_dpd: int = 90,
                           n_age: int = 24,
                           score_bands: tuple[tuple[int, int], ...] = SCORE_BANDS,
                           terms: tuple[int, ...] = ALLOWED_TERMS) -> TransitionCounts:
    """Move counts of the book up to ``as_of`` (a month-end date) on the grid."""
    if isinstance(charge_off_dpd, bool) or not isinstance(charge_off_dpd, int) \
            or charge_off_dpd % 30 or not 60 <= charge_off_dpd <= 360:
        raise ValidationError(must_be("charge-off DPD", "a multiple of 30 in [60, 360]",
                                      charge_off_dpd))
    edges = [lo for lo, _ in score_bands[1:]]
    raw = sql.bucket_transitions(store.con, as_of, edges, n_age, charge_off_dpd)
    k = charge_off_dpd // 30
    months = (np.array(sorted(pd.to_datetime(raw["as_of"]).unique()), dtype="datetime64[D]")
              if len(raw) else np.array([], dtype="datetime64[D]"))
    cell = (len(score_bands), len(terms), n_age, len(months))
    n = np.zeros(cell + (k + 1, k + 4))
    extra = {key: np.zeros(cell) for key in ("di_balance_bop", "di_partial", "di_n")}
    if len(raw):
        term_index = {t: j for j, t in enumerate(terms)}
        ti = raw["term_months"].map(term_index)
        raw = raw[ti.notna().to_numpy()]
        ti = ti[ti.notna()].astype(int).to_numpy()
        bi = raw["band"].to_numpy(dtype=np.int64)
        ai = raw["age"].to_numpy(dtype=np.int64) - 1
        mi = np.searchsorted(months, pd.to_datetime(raw["as_of"]).to_numpy()
                             .astype("datetime64[D]"))
        fi = np.minimum(raw["s_from"].to_numpy(dtype=np.int64), k)
        si = raw["s_to"].to_numpy(dtype=np.int64)
        np.add.at(n, (bi, ti, ai, mi, fi, si), raw["n"].to_numpy(dtype=np.float64))
        for key, arr in extra.items():
            np.add.at(arr, (bi, ti, ai, mi), raw[key].to_numpy(dtype=np.float64))
    return TransitionCounts(months, n, extra["di_balance_bop"], extra["di_partial"],
                            extra["di_n"], charge_off_dpd, terms)


def load_charge_off_recoveries(store: Store, as_of: dt.date, charge_off_dpd: int = 90
                               ) -> RecoveryCounts:
    """Charged-off amounts and recoveries by lag *from the charge-off month*
    (``portfolio.store.calibration.charge_off_recoveries``); a recovery collected in or before
    the charge-off month counts at lag 0, which ``recovery_curve`` folds into lag 1."""
    amounts, recs = sql.charge_off_recoveries(store.con, as_of, charge_off_dpd)
    if not len(amounts):
        return RecoveryCounts(np.array([], dtype="datetime64[D]"), np.zeros(0),
                              np.zeros(0, dtype=np.int64), np.zeros((0, 1)), as_of)
    months = pd.to_datetime(amounts["co_month"]).to_numpy().astype("datetime64[D]")
    lags = np.maximum(recs["lag"].to_numpy(dtype=np.int64), 0) if len(recs) else np.zeros(0, int)
    recovered = np.zeros((len(months), int(lags.max()) + 1 if lags.size else 1))
    if len(recs):
        ri = np.searchsorted(months, pd.to_datetime(recs["co_month"]).to_numpy()
                             .astype("datetime64[D]"))
        np.add.at(recovered, (ri, lags), recs["recovered"].to_numpy(dtype=np.float64))
    return RecoveryCounts(months, amounts["amount"].to_numpy(dtype=np.float64),
                          amounts["n_charge_offs"].to_numpy(dtype=np.int64), recovered, as_of)


def factor_counts(counts: TransitionCounts) -> FactorCounts:
    """The transitions as factor-fit groups (``portfolio.book.factor_fit``): per score band ×
    term × age group (``AGE_GROUPS``) and move — entry (current → 1–30), roll from bucket k
    (to k+1, or charged off from the last bucket) with sign +1, cure from bucket k (to current
    or matured) with sign −1 — the events and the exposure from that state in each month."""
    n = counts.n  # (bands, terms, age, months, from, to)
    k = counts.charge_off_dpd // 30
    groups = _age_group_index(counts.n_age)
    events, exposure, signs = [], [], []
    for g in np.unique(groups):
        cols = groups == g
        sub = n[:, :, cols].sum(axis=2)  # (bands, terms, months, from, to)
        from_n = sub.sum(axis=4)
        moves = [(0, sub[..., 0, 1], 1.0)]
        for i in range(1, k + 1):
            moves.append((i, sub[..., i, i + 1], 1.0))
            moves.append((i, sub[..., i, 0] + sub[..., i, k + 3], -1.0))
        for i, x, s in moves:
            events.append(x.reshape(-1, x.shape[-1]))
            exposure.append(from_n[..., i].reshape(-1, x.shape[-1]))
            signs.append(np.full(events[-1].shape[0], s))
    month_index = counts.months.astype("datetime64[M]").astype(np.int64)
    return FactorCounts.of(np.concatenate(events), np.concatenate(exposure),
                           np.concatenate(signs), month_index)


@dataclass(frozen=True, slots=True)
class DelinquencyCalibration:
    """Everything ``riskpool calibrate`` estimates for the delinquency-state model."""

    counts: TransitionCounts
    estimate: TransitionEstimate
    factor: FactorFit
    recovery_rate: float
    recovery_lag: tuple[float, ...]
    n_charge_offs: int
    as_of: dt.date

    def band_table(self) -> pd.DataFrame:
        """Per score band, pooled over terms and ages: the exposure from current and each
        monthly move with its interval (the readable summary; cells are in ``table()``)."""
        n = self.counts.n.sum(axis=(1, 2, 3))  # (bands, from, to)
        k = self.counts.charge_off_dpd // 30
        fr, _ = state_names(self.counts.charge_off_dpd)
        conf, method = self.estimate.confidence, self.estimate.method
        cols: dict[str, list[object]] = {"band": list(SCORE_BAND_LABELS),
                                         "loan_months_current": n[:, 0].sum(axis=1).astype(int)
                                         .tolist()}
        moves = [("entry current->1-30", 0, n[:, 0, 1])]
        for i in range(1, k + 1):
            to = "charged_off" if i == k else fr[i + 1]
            moves.append((f"roll {fr[i]}->{to}", i, n[:, i, i + 1]))
        for i in range(1, k + 1):
            moves.append((f"cure {fr[i]}->current", i, n[:, i, 0] + n[:, i, k + 3]))
        for name, i, x in moves:
            tot = n[:, i].sum(axis=1)
            lo, hi = binomial_interval(x, tot, conf, method)
            with np.errstate(invalid="ignore", divide="ignore"):
                p = np.where(tot > 0, x / np.maximum(tot, 1), np.nan)
            cols[name] = [f"{pi:.2%} [{a:.2%}, {b:.2%}] of {int(t):,}" if t > 0 else "-"
                          for pi, a, b, t in zip(p, lo, hi, tot, strict=True)]
        return pd.DataFrame(cols)

    def summary_text(self, choice: RhoChoice | None = None) -> str:
        f = self.factor
        e = self.estimate
        pooled = np.bincount(e.level.ravel()[e.own_exposure.ravel() > 0],
                             minlength=len(POOL_LEVELS))
        lines = [
            f"delinquency transitions (charge-off past {self.counts.charge_off_dpd} DPD) from "
            f"{int(self.counts.n.sum()):,} loan-months over {len(self.counts.months)} months; "
            f"{e.method} {e.confidence:.0%} intervals; cells with data pooled: "
            + ", ".join(f"{name} {int(c):,}" for name, c in zip(POOL_LEVELS, pooled,
                                                                 strict=True)),
            self.band_table().to_string(index=False),
            f"factor loading of the transitions: rho {f.rho:.4f} [{f.rho_interval[0]:.4f}, "
            f"{f.rho_interval[1]:.4f}], "
            f"persistence {f.persistence:.3f} [{f.persistence_interval[0]:.3f}, "
            f"{f.persistence_interval[1]:.3f}] ({f.confidence:.0%} profile likelihood, "
            f"{f.n_months} months, {f.n_groups} groups)",
            f"recovery from the charge-off month: rate {self.recovery_rate:.4f} over "
            f"{len(self.recovery_lag)} months ({self.n_charge_offs:,} charge-offs)",
            f"daily-interest partial repayment rate (MPR) {e.partial_repayment_rate:.4f} a "
            f"month over {e.partial_repayment_exposure:,} loan-months",
        ]
        if choice is not None:
            extra = f" (through-the-cycle {choice.rho_ttc})" if choice.rho_ttc is not None else ""
            lines.append(f"rho for the run: {choice.rho_used:.4f} ({choice.choice}{extra})")
        return "\n".join(lines)


def calibrate_delinquency(store: Store, as_of: dt.date, *, charge_off_dpd: int = 90,
                          n_age: int = 24, min_exposure: int = 30, confidence: float = 0.95,
                          method: str = "wilson") -> DelinquencyCalibration:
    """Transition matrices, the factor fit and recoveries from charge-off, up to ``as_of``."""
    counts = load_transition_counts(store, as_of, charge_off_dpd=charge_off_dpd, n_age=n_age)
    if counts.n.sum() == 0:
        raise ValidationError("no month-to-month move in the history up to "
                              f"{as_of.isoformat()}: calibration needs at least two "
                              "consecutive month-end rows per loan")
    est = estimate_transitions(counts, min_exposure=min_exposure, confidence=confidence,
                               method=method)
    fit = fit_factor(factor_counts(counts), confidence=confidence)
    rc = load_charge_off_recoveries(store, as_of, charge_off_dpd)
    rate, lag = recovery_curve(rc)
    return DelinquencyCalibration(counts, est, fit, rate, lag, int(np.sum(rc.n_defaults)),
                                  as_of)


DQ_BUCKETS = 6  # 1–30 … 151–180: the bucket axis of the assumptions' [delinquency] section


def delinquency_arrays(est: TransitionEstimate) -> dict[str, np.ndarray]:
    """The estimates on the projection's delinquency grid: ``roll_current`` = p(current →
    1–30) (bands, terms, age), capped below 1; ``roll`` and ``cure`` (bands, terms, age, 6):
    p(k → k+1) (from the last bucket: charged off) and p(k → current) + p(k → matured) for the
    first K buckets (below bucket K a move to charged off — the book wrote the loan off
    before the point — counts as a roll; a bucket with no exposure at any pooling level rolls
    1); buckets past the charge-off point roll 1 and cure 0 (never reached).
    Each row keeps roll + cure ≤ 1 (disjoint outcomes of one multinomial row)."""
    k = est.charge_off_dpd // 30
    p = est.prob
    shape = p.shape[:3] + (DQ_BUCKETS,)
    roll = np.ones(shape)
    cure = np.zeros(shape)
    for i in range(1, min(k, DQ_BUCKETS) + 1):
        # below the last bucket a charge-off by the book (a charge-off amount before the
        # point) is a roll towards it
        roll[..., i - 1] = p[..., i, i + 1] + (p[..., i, k + 1] if i < k else 0.0)
        cure[..., i - 1] = p[..., i, 0] + p[..., i, k + 3]
        # a state never seen at any pooling level (e.g. 91–120 on a book that charges off
        # at 90 DPD): roll on, as the charge-off point's definition says
        unseen = est.exposure[..., i] == 0
        roll[..., i - 1] = np.where(unseen, 1.0, roll[..., i - 1])
        cure[..., i - 1] = np.where(unseen, 0.0, cure[..., i - 1])
    # a row without any exposure (p all 0) stays: roll 0, cure 0 would trap; keep them as the
    # estimate says (all zero = stay) — the pooling gives every row the book's counts anyway
    return {"roll_current": np.minimum(p[..., 0, 1], 0.999), "roll": roll, "cure": cure}


def delinquency_assumptions(dq: DelinquencyCalibration, choice: RhoChoice
                            ) -> DelinquencyAssumptions:
    """The ``[delinquency]`` record of a calibration: the transitions on the projection's
    grid (``delinquency_arrays``), the charge-off point of the counts, the cure rule
    ``catch_up`` (a cure is counted when every missed instalment is paid: the book's rows go
    back to 0 DPD) and the factor loading ``choice.rho_used`` (a choice on the transitions' own
    fit, ``dq.factor``); the provenance records the fit, the choice and the exposure."""
    arr = delinquency_arrays(dq.estimate)
    e = dq.estimate
    return DelinquencyAssumptions(
        roll_current=arr["roll_current"], roll=arr["roll"], cure=arr["cure"],
        charge_off_dpd=dq.counts.charge_off_dpd, cure_rule="catch_up",
        factor_loading=round(float(choice.rho_used), 6),
        provenance={
            "source": "calibrated transitions (portfolio/book/transitions.py)",
            "as_of": dq.as_of.isoformat(),
            "loan_months": int(dq.counts.n.sum()),
            "months": len(dq.counts.months),
            "interval": f"{e.method} {e.confidence:.0%}",
            "min_exposure": e.min_exposure,
            "factor_loading_choice": choice.to_json(),
            "transitions_factor_fit": dq.factor.to_json(),
        })


def default_factor_counts(counts: CellCounts) -> FactorCounts:
    """The hazard model's defaults as factor-fit groups: per score band × term × age group
    (in-term ages), the defaults and the loan-months at risk each month (sign +1; the
    default timing is that of ``counts``). Their fit is the ``[factor]`` ρ of the hazard
    model; the transitions' fit (``factor_counts``) is the loading of the delinquency-state
    model's moves, which differs when the book's delinquencies are not all factor-driven."""
    groups = _age_group_index(counts.n_age)
    inside = in_term_mask(counts.terms, counts.n_age)[None, :, :, None]
    d = counts.defaults * inside
    e = counts.at_risk * inside
    events, exposure = [], []
    for g in np.unique(groups):
        cols = groups == g
        events.append(d[:, :, cols].sum(axis=2).reshape(-1, len(counts.months)))
        exposure.append(e[:, :, cols].sum(axis=2).reshape(-1, len(counts.months)))
    x = np.concatenate(events)
    month_index = counts.months.astype("datetime64[M]").astype(np.int64)
    return FactorCounts.of(x, np.concatenate(exposure), np.ones(x.shape[0]), month_index)
