"""Deterministic scenario grids through a deal (as Intex users run them) and breakeven CDRs.

**The pool** is one representative line: balance B₀, annual rate WAC, remaining term WAM months,
level-annuity amortisation. **A scenario** (CDR, severity, CPR; annual rates, SIFMA
conventions): monthly default rate MDR = 1 − (1 − CDR)^(1/12) and SMM = 1 − (1 − CPR)^(1/12).
Each month t (bop the performing balance at the start):

    default = MDR · bop;  performing = bop − default;  interest = WAC/12 · performing;
    scheduled = annuity payment on the performing balance over the remaining WAM − t months
                − interest;  prepayment = SMM · (performing − scheduled);
    eop = performing − scheduled − prepayment;
    recovery = (1 − severity) · the default of ``lag`` months earlier.

The horizon is WAM + lag months (every recovery lands). One path, run through the deal's
waterfall (``run_waterfall``). A revolving deal buys **new loans of the line**: its
replenishment profile (``revolving_profile``) is the same scenario on a line of balance 1 with a
fresh WAM-month schedule, as ``riskpool simulate`` buys new loans (docs/model.md section 7),
not the waterfall's scaling approximation, which grows the seasoned line — by the end of a
12-month revolving period on a 12-month line mostly its delinquent remainder — into the
collateral and so lost on the senior notes at low roll rates and repaid every class during
the revolving period. Per class: WAL (years, Act/365F from closing), yield (IRR at par,
annual compounding, Act/365F), loss (principal loss / original balance) and the first month a
principal write-down hits it (0: never).

**Roll-rate scenarios** (``roll_rate_paths``, ``roll_grid``; the delinquency-state model's
monthly transitions on the same representative line, as its deterministic expected path): the
balance sits in states current and 30-day buckets k = 1 … K (K = len(roll), charge-off at 30·K
days past due). A multiplier m scales the roll-forward rates and keeps the cures:
a = min(m · roll_current, 1); r_k = min(m · roll_k, 1 − cure_k). Each month t, with C the
current balance and D_k the bucket balances at the start:

    missed = a · C moves to bucket 1 and pays nothing; paying = C − missed pays
    interest = WAC/12 · paying, scheduled = the annuity principal of ``paying`` over the remaining
    WAM − t months, prepayment = SMM · (paying − scheduled);
    from bucket k: r_k · D_k rolls to k + 1 (from K: charged off = the month's default) and pays
    nothing; cure_k · D_k returns to current and stays · D_k = (1 − r_k − cure_k) · D_k stays,
    both paying the month's interest WAC/12 on their balance and no principal (a cured balance
    is re-aged: it amortises on the current schedule from the next month);
    recovery = (1 − severity) · the charge-off of ``lag`` months earlier.

The horizon is WAM + 2K months plus the lag; what is still delinquent at the end of month
WAM + 2K is charged off then, and a balance curing in that month repays in full. The path carries the balances by state
(``PoolPaths.delinquency``), so the deal's 30+/60+/90+ DPD triggers read them. A cure-free chain
(every cure 0, every roll 1) is the hazard model's go-bad: a · C charged off K months later.

**The chain of a stored run** (``representative_chain``; ``tranche grid --run N
--roll-multipliers ...`` without ``--roll-current/--roll/--cure``): the run's delinquency
transitions (``Assumptions.delinquency_model()``: the ``[delinquency]`` record, else the one
derived from the hazard curves, every roll 1 and every cure 0) averaged over the pool's loans
weighted by balance, each loan at its next month on book (age column min(mob + 1, n_age) − 1,
its score band and term): roll_current = Σ w·roll_current[b, τ, a] / Σ w, and likewise each
bucket's roll and cure; K = the run's charge-off point / 30.

**A grid around a stored run** (``base_scenario``): the run's own assumptions read back from its
mean pool flows, as the scenario model above defines them, so that the representative line at
the base point performs like the run's expected path: MDR = Σ default / Σ bop, CDR = 1 − (1 −
MDR)¹²; WAC = 12 · Σ interest / Σ (bop − default); SMM = Σ prepayment / Σ (bop − default −
scheduled), CPR = 1 − (1 − SMM)¹²; severity = 1 − Σ recovery / Σ default; recovery lag = the
months between the default- and recovery-weighted mean months, rounded. Each is exact for a
path the scenario model made (tested by the round trip), and a balance-weighted average for a
simulated one. WAM is the pool's balance-weighted remaining term (from the pool, not the flows).

**Breakeven CDR** of a class (at a severity and CPR) = the largest CDR c such that the class
loses nothing at every CDR up to c, on one of two bases (``basis``):

- ``final`` (the default): no principal loss at the end (write-downs net of the PDL refills,
  ``WaterfallResult.tranche_loss``: a class written down and later refilled in full loses
  nothing), loss ≤ 1e-8 of its balance;
- ``writedown``: never written down, even for a month (the first dollar of principal loss, the
  convention of US market breakeven tables).

The search: ``BREAKEVEN_SCAN`` + 1 CDRs evenly spaced in the monthly default rate, MDR = 0 to
1 − tol^(1/12) (so CDR 0 to 1 − tol), finds the first that loses; bisection between it and the
CDR before it then narrows the edge to ``tol`` (1e-6 CDR by default). The result is the
largest CDR found losing nothing, within ``tol`` of a CDR found losing; a class losing at none
of the scanned CDRs reports 1.0, one losing at CDR 0 reports 0.0. The scan makes the answer
the edge of the first loss even where the loss is not monotone in the CDR (a trigger or a PDL
refill can make it so); a window of losses narrower than the scan's step can be missed.

**Monotone in seniority.** On the ``writedown`` basis the breakeven never falls with
seniority, for every deal the schema accepts: write-downs go bottom-up, so a class is written
down only when every junior class has a zero balance; a junior's balance reaches zero while a
senior class is outstanding only by write-down (sequential and turbo pay it after the senior,
pro rata alongside it), so at every CDR where the senior is written down each junior was too
(property test). On the ``final`` basis this holds for deals without a ``reimburse`` step
(then the final loss is the write-down) but not for every deal with one: a PDL refill pays a
written-down junior its written-down principal in cash while its balance stays at zero, so the
subordination it provided is gone; if the pool keeps defaulting, the next losses reach the
senior, and the junior ends whole while the senior ends short. This is the deal's economics,
not the search's: the tests show the path where it happens (a 75% recovery refilling the
juniors after the senior was paid down to the pool; the refilled junior then loses nothing at
any CDR while the two classes above it do). A structure that applies PDL refills as
principal in order of seniority (the UK RMBS convention) would not pay the junior first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from portfolio.loans.arrays import LoanArrays
from portfolio.montecarlo.assumptions import DelinquencyAssumptions
from portfolio.montecarlo.paths import DelinquencyPaths, PoolPaths
from tranching.analytics import LOSS_TOLERANCE, loss_shares, path_irr, wal_per_path, year_fractions
from tranching.deal import Deal
from tranching.errors import DealError, must_be
from tranching.waterfall import WaterfallResult, run_waterfall

BREAKEVEN_SCAN = 32
"""Intervals of the breakeven search's scan (module doc)."""
BREAKEVEN_BASES = ("final", "writedown")


def _check(name: str, value: float, lo: float, hi: float, closed_hi: bool = True) -> None:
    ok = lo <= value <= hi if closed_hi else lo <= value < hi
    if not (np.isfinite(value) and ok):
        raise DealError(must_be(name, f"in [{lo}, {hi}{']' if closed_hi else ')'}", value))


def _check_line(balance: float, wac: float, wam: int, severity: float, cpr: float,
                lag: int) -> None:
    """The representative line's terms, common to both models' paths."""
    _check("balance", balance, 1e-9, 1e15)
    _check("wac", wac, 0.0, 1.0)
    _check("severity", severity, 0.0, 1.0)
    _check("cpr", cpr, 0.0, 1.0)
    if not 1 <= int(wam) <= 600 or int(wam) != wam:
        raise DealError(must_be("wam", "an integer number of months in [1, 600]", wam))
    if not 0 <= int(lag) <= 60 or int(lag) != lag:
        raise DealError(must_be("recovery lag", "an integer number of months in [0, 60]", lag))


def _scheduled_principal(performing: float, rate: float, remaining: int) -> float:
    """The month's level-annuity principal of a performing balance with ``remaining``
    instalments left at monthly ``rate`` (all of it at the last)."""
    if remaining <= 1:
        return performing
    if rate > 0:
        return performing * rate / -np.expm1(-remaining * np.log1p(rate)) - rate * performing
    return performing / remaining


def _month_ends(start: dt.date, n: int) -> np.ndarray:
    """The ``n`` month-ends after ``start``'s month (datetime64[D])."""
    dates = np.array([np.datetime64(start, "M") + np.timedelta64(k + 1, "M") for k in range(n)])
    return (dates.astype("datetime64[D]") - np.timedelta64(1, "D")).astype("datetime64[D]")


def scenario_paths(balance: float, wac: float, wam: int, *, cdr: float, severity: float,
                   cpr: float, lag: int = 0, start: dt.date = dt.date(2026, 1, 31)) -> PoolPaths:
    """One deterministic path of the representative line (module doc)."""
    _check_line(balance, wac, wam, severity, cpr, lag)
    _check("cdr", cdr, 0.0, 1.0)
    mdr = 1.0 - (1.0 - cdr) ** (1.0 / 12.0)
    smm = 1.0 - (1.0 - cpr) ** (1.0 / 12.0)
    r = wac / 12.0
    n = int(wam) + int(lag)
    bop, interest, sched, prepay, default, recovery, eop = (np.zeros(n) for _ in range(7))
    bal = float(balance)
    for t in range(n):
        bop[t] = bal
        default[t] = mdr * bal
        perf = bal - default[t]
        interest[t] = r * perf
        sched[t] = _scheduled_principal(perf, r, int(wam) - t)
        prepay[t] = smm * (perf - sched[t])
        eop[t] = perf - sched[t] - prepay[t]
        bal = eop[t]
        if t >= lag:
            recovery[t] = (1.0 - severity) * default[t - lag]
    one = lambda a: a[None, :]  # noqa: E731
    return PoolPaths(dates=_month_ends(start, n), balance_bop=one(bop), interest=one(interest),
                     scheduled_principal=one(sched), prepayment=one(prepay),
                     default=one(default), recovery=one(recovery), balance_eop=one(eop),
                     initial_balance=float(balance))


def roll_rate_paths(balance: float, wac: float, wam: int, *, roll_current: float,
                    roll: Sequence[float], cure: Sequence[float], multiplier: float = 1.0,
                    severity: float = 1.0, cpr: float = 0.0, lag: int = 0,
                    start: dt.date = dt.date(2026, 1, 31)) -> PoolPaths:
    """The deterministic expected path of the representative line under the delinquency
    transitions with the roll-forward rates times ``multiplier`` (module doc)."""
    _check_line(balance, wac, wam, severity, cpr, lag)
    _check("roll_current", roll_current, 0.0, 1.0)
    _check("multiplier", multiplier, 0.0, 1e6)
    rolls, cures = np.asarray(roll, dtype=np.float64), np.asarray(cure, dtype=np.float64)
    if not 3 <= rolls.size <= 6 or rolls.shape != cures.shape:
        raise DealError(must_be("roll, cure", "two lists of the same length, 3 to 6 buckets "
                                "(charge-off at 90 to 180 days past due)", (list(roll), list(cure))))
    if not (np.all(np.isfinite(rolls)) and np.all(np.isfinite(cures)) and np.all(rolls >= 0)
            and np.all(cures >= 0) and np.all(rolls + cures <= 1.0 + 1e-12)):
        raise DealError(must_be("roll, cure", "probabilities with roll + cure <= 1 in each "
                                "bucket", (list(roll), list(cure))))
    k_n = int(rolls.size)
    a = min(multiplier * roll_current, 1.0)
    r_k = np.minimum(multiplier * rolls, 1.0 - cures)
    smm = 1.0 - (1.0 - cpr) ** (1.0 / 12.0)
    rate = wac / 12.0
    horizon = int(wam) + 2 * k_n
    n = horizon + int(lag)
    flows = {k: np.zeros(n) for k in ("bop", "interest", "sched", "prepay", "default",
                                      "recovery", "eop", "cures")}
    states = np.zeros((n, k_n + 1))
    cur, dq = float(balance), np.zeros(k_n)
    for t in range(n):
        flows["bop"][t] = cur + dq.sum()
        missed = a * cur
        paying = cur - missed
        sched = _scheduled_principal(paying, rate, int(wam) - t)
        prepay = smm * (paying - sched)
        rolled, cured = r_k * dq, cures * dq
        stays = dq - rolled - cured
        charge_off = rolled[-1]
        flows["interest"][t] = rate * (paying + cured.sum() + stays.sum())
        if t == horizon - 1:  # the end of the horizon: what is still delinquent is charged
            charge_off += stays.sum() + rolled[:-1].sum() + missed  # off, a cure repays
            sched += cured.sum()
            stays, rolled, missed = np.zeros(k_n), np.zeros(k_n), 0.0
        flows["sched"][t], flows["prepay"][t], flows["default"][t] = sched, prepay, charge_off
        flows["cures"][t] = cured.sum()
        cur = paying - sched - prepay + cured.sum() if t < horizon - 1 else 0.0
        dq = np.concatenate([[missed], rolled[:-1]]) + stays
        flows["eop"][t] = cur + dq.sum()
        states[t, 0], states[t, 1:] = cur, dq
        if t >= lag:
            flows["recovery"][t] = (1.0 - severity) * flows["default"][t - lag]
    one = lambda x: x[None, :]  # noqa: E731
    dq_paths = DelinquencyPaths(charge_off_dpd=30 * k_n, cure_rule="re_age",
                                state_balance=states[None], cures=one(flows["cures"]))
    return PoolPaths(dates=_month_ends(start, n), balance_bop=one(flows["bop"]), interest=one(flows["interest"]),
                     scheduled_principal=one(flows["sched"]), prepayment=one(flows["prepay"]),
                     default=one(flows["default"]), recovery=one(flows["recovery"]),
                     balance_eop=one(flows["eop"]), initial_balance=float(balance),
                     delinquency=dq_paths)


@dataclass(frozen=True, slots=True)
class BaseScenario:
    """A run's assumptions as one scenario of the representative line (module doc)."""

    balance: float
    wac: float
    wam: int
    cdr: float
    severity: float
    cpr: float
    lag: int


MEAN_FLOWS = ("balance_bop", "interest", "scheduled_principal", "prepayment", "default",
              "recovery")


def base_scenario(paths: PoolPaths, wam: int) -> BaseScenario:
    """The scenario of the representative line implied by ``paths``' mean flows (module doc);
    ``wam`` the pool's balance-weighted remaining term in months."""
    mean = {k: np.asarray(getattr(paths, k), dtype=np.float64).mean(axis=0) for k in MEAN_FLOWS}
    return base_scenario_from_means(mean, float(paths.initial_balance), wam)


def base_scenario_from_means(mean: dict[str, np.ndarray], initial_balance: float,
                             wam: int) -> BaseScenario:
    """:func:`base_scenario` from the paths' mean monthly flows (``MEAN_FLOWS``), e.g. the
    summaries a Dask run brings back instead of the paths."""
    bop, default = mean["balance_bop"], mean["default"]
    performing = bop - default
    amortising = performing - mean["scheduled_principal"]
    if not bop.sum() > 0 or not performing.sum() > 0:
        raise DealError(must_be("run", "paths with a performing balance", "an empty pool"))
    mdr = default.sum() / bop.sum()
    smm = mean["prepayment"].sum() / amortising.sum() if amortising.sum() > 0 else 0.0
    months = np.arange(len(bop), dtype=np.float64)
    if default.sum() > 0:
        severity = 1.0 - mean["recovery"].sum() / default.sum()
        lag = (int(round(float((months * mean["recovery"]).sum() / mean["recovery"].sum()
                               - (months * default).sum() / default.sum())))
               if mean["recovery"].sum() > 0 else 0)
    else:
        severity, lag = 1.0, 0
    return BaseScenario(
        balance=float(initial_balance), wac=12.0 * float(mean["interest"].sum() / performing.sum()),
        wam=int(wam), cdr=float(1.0 - (1.0 - mdr) ** 12), severity=float(min(max(severity, 0.0), 1.0)),
        cpr=float(1.0 - (1.0 - smm) ** 12), lag=max(lag, 0))


def revolving_profile(deal: Deal, line: Callable[[float], PoolPaths]) -> PoolPaths | None:
    """The loans a revolving ``deal`` buys in a grid scenario: ``line(1.0)``, the scenario's
    line per unit of balance on a fresh schedule (module doc); None for a deal that does not
    revolve."""
    return line(1.0) if deal.revolving_months > 0 else None


def scenario_rows(deal: Deal, paths: PoolPaths, replenishment: PoolPaths | None = None
                  ) -> list[dict[str, float | str | int]]:
    """Per class: WAL, yield at par, loss share and first write-down month on one path
    (``replenishment``: the loans a revolving deal buys, ``revolving_profile``)."""
    result = run_waterfall(deal, paths, replenishment=replenishment)
    losses = loss_shares(result)[:, 0]
    wal = wal_per_path(result, deal.closing_date)[:, 0]
    tau = year_fractions(deal.closing_date, result.dates)
    rows: list[dict[str, float | str | int]] = []
    for j, name in enumerate(result.tranche_names):
        face = float(result.original_balance[j])
        cf = result.tranche_cashflows[j]
        y = float(path_irr(cf, tau, face)[0]) if face > 0 else float("nan")
        hit = np.nonzero(result.writedown[j, 0] > LOSS_TOLERANCE * max(face, 1.0))[0]
        rows.append({"tranche": name, "wal": float(wal[j]), "yield": y,
                     "loss": float(losses[j]),
                     "first_loss_month": int(hit[0]) + 1 if hit.size else 0})
    return rows


def grid(deal: Deal, balance: float, wac: float, wam: int, *, cdrs: Sequence[float],
         severities: Sequence[float], cprs: Sequence[float], lag: int = 0) -> pd.DataFrame:
    """One row per scenario × class (module doc)."""
    rows = []
    for cdr in cdrs:
        for sev in severities:
            for cpr in cprs:
                def line(b: float, cdr: float = cdr, sev: float = sev, cpr: float = cpr
                         ) -> PoolPaths:
                    return scenario_paths(b, wac, wam, cdr=cdr, severity=sev, cpr=cpr, lag=lag)

                for row in scenario_rows(deal, line(balance), revolving_profile(deal, line)):
                    rows.append({"cdr": cdr, "severity": sev, "cpr": cpr, **row})
    return pd.DataFrame(rows, columns=["cdr", "severity", "cpr", "tranche", "wal", "yield",
                                       "loss", "first_loss_month"])


def class_losses(result: WaterfallResult, basis: str = "final") -> np.ndarray:
    """(n_tranches,) the first path's principal loss as a share of each class's original
    balance: ``final`` = the loss at the end net of PDL refills, ``writedown`` = every
    write-down, refilled or not (module doc)."""
    if basis == "final":
        return loss_shares(result)[:, 0]
    orig = np.asarray(result.original_balance, dtype=np.float64)
    gross = np.asarray(result.writedown, dtype=np.float64)[:, 0].sum(axis=1)
    return np.where(orig > 0, gross / np.where(orig > 0, orig, 1.0), 0.0)


def representative_chain(loans: LoanArrays, model: DelinquencyAssumptions, terms: Sequence[int],
                         charge_off_dpd: int | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """(roll_current, roll (K,), cure (K,)): the transitions of ``model`` averaged over
    ``loans`` weighted by balance, each loan in its next month on book (module doc);
    ``terms`` the assumptions' term grid, ``charge_off_dpd`` the run's (default the model's)."""
    k_n = (charge_off_dpd if charge_off_dpd is not None else model.charge_off_dpd) // 30
    w = np.asarray(loans.balance, dtype=np.float64)
    if not w.size or not w.sum() > 0:
        raise DealError(must_be("pool", "loans with a positive balance", "an empty pool"))
    grid_terms = np.asarray(terms)
    term_idx = np.minimum(np.searchsorted(grid_terms, np.asarray(loans.term_months)),
                          len(grid_terms) - 1)
    band = np.asarray(loans.score_band, dtype=np.int64)
    n_age = int(model.roll_current.shape[2])
    age = np.minimum(np.asarray(loans.months_on_book, dtype=np.int64) + 1, n_age) - 1
    total = w.sum()
    rc = float((w * model.roll_current[band, term_idx, age]).sum() / total)
    roll = (w[:, None] * model.roll[band, term_idx, age, :k_n]).sum(axis=0) / total
    cure = (w[:, None] * model.cure[band, term_idx, age, :k_n]).sum(axis=0) / total
    return rc, roll, np.minimum(cure, 1.0 - roll)


def roll_grid(deal: Deal, balance: float, wac: float, wam: int, *, roll_current: float,
              roll: Sequence[float], cure: Sequence[float], multipliers: Sequence[float],
              severities: Sequence[float], cprs: Sequence[float],
              lag: int = 0) -> pd.DataFrame:
    """One row per roll-rate multiplier × severity × CPR × class (module doc), with the pool's
    cumulative charge-offs as a share of its balance (``pool_cdl``)."""
    rows = []
    for m in multipliers:
        for sev in severities:
            for cpr in cprs:
                def line(b: float, m: float = m, sev: float = sev, cpr: float = cpr
                         ) -> PoolPaths:
                    return roll_rate_paths(b, wac, wam, roll_current=roll_current, roll=roll,
                                           cure=cure, multiplier=m, severity=sev, cpr=cpr,
                                           lag=lag)

                paths = line(balance)
                cdl = float(paths.default.sum() / balance)
                for row in scenario_rows(deal, paths, revolving_profile(deal, line)):
                    rows.append({"roll_multiplier": m, "severity": sev, "cpr": cpr,
                                 "pool_cdl": cdl, **row})
    return pd.DataFrame(rows, columns=["roll_multiplier", "severity", "cpr", "pool_cdl",
                                       "tranche", "wal", "yield", "loss", "first_loss_month"])


def breakeven_cdr(deal: Deal, balance: float, wac: float, wam: int, *, severity: float,
                  cpr: float, lag: int = 0, tol: float = 1e-6,
                  basis: str = "final") -> dict[str, float]:
    """Per class, the largest CDR up to which it loses nothing (module doc): a scan, then
    bisection at the first loss."""
    if not 0 < tol < 0.01:
        raise DealError(must_be("tol", "in (0, 0.01)", tol))
    if basis not in BREAKEVEN_BASES:
        raise DealError(must_be("basis", "one of " + ", ".join(BREAKEVEN_BASES), basis))

    def losses(cdr: float) -> np.ndarray:
        def line(b: float) -> PoolPaths:
            return scenario_paths(b, wac, wam, cdr=cdr, severity=severity, cpr=cpr, lag=lag)

        result = run_waterfall(deal, line(balance), replenishment=revolving_profile(deal, line))
        return class_losses(result, basis)

    top_mdr = 1.0 - tol ** (1.0 / 12.0)
    scan = [0.0] + [1.0 - (1.0 - top_mdr * i / BREAKEVEN_SCAN) ** 12
                    for i in range(1, BREAKEVEN_SCAN)] + [1.0 - tol]
    lost = np.array([losses(c) for c in scan]) > LOSS_TOLERANCE  # (scan, tranches)
    out: dict[str, float] = {}
    for j, name in enumerate(deal.tranche_names):
        hits = np.nonzero(lost[:, j])[0]
        if not hits.size:
            out[name] = 1.0
            continue
        if hits[0] == 0:
            out[name] = 0.0
            continue
        lo, hi = scan[hits[0] - 1], scan[hits[0]]
        while hi - lo > tol:
            mid = 0.5 * (lo + hi)
            if losses(mid)[j] <= LOSS_TOLERANCE:
                lo = mid
            else:
                hi = mid
        out[name] = lo
    return out


def breakeven_table(deal: Deal, balance: float, wac: float, wam: int, *,
                    severities: Sequence[float], cprs: Sequence[float], lag: int = 0,
                    tol: float = 1e-6) -> pd.DataFrame:
    """Breakeven CDR per class for every severity × CPR: ``breakeven_cdr`` on the final loss,
    ``breakeven_cdr_writedown`` on the first write-down (module doc)."""
    rows = []
    for sev in severities:
        for cpr in cprs:
            final = breakeven_cdr(deal, balance, wac, wam, severity=sev, cpr=cpr, lag=lag,
                                  tol=tol)
            first = breakeven_cdr(deal, balance, wac, wam, severity=sev, cpr=cpr, lag=lag,
                                  tol=tol, basis="writedown")
            for name, value in final.items():
                rows.append({"severity": sev, "cpr": cpr, "tranche": name, "breakeven_cdr": value,
                             "breakeven_cdr_writedown": first[name]})
    return pd.DataFrame(rows, columns=["severity", "cpr", "tranche", "breakeven_cdr",
                                       "breakeven_cdr_writedown"])
