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
waterfall (``run_waterfall``; a revolving deal uses the scaling approximation: the purchases
perform like the pool). Per class: WAL (years, Act/365F from closing), yield (IRR at par,
annual compounding, Act/365F), loss (principal loss / original balance) and the first month a
principal write-down hits it (0: never).

**A grid around a stored run** (``base_scenario``): the run's own assumptions read back from its
mean pool flows, as the scenario model above defines them, so that the representative line at
the base point performs like the run's expected path: MDR = Σ default / Σ bop, CDR = 1 − (1 −
MDR)¹²; WAC = 12 · Σ interest / Σ (bop − default); SMM = Σ prepayment / Σ (bop − default −
scheduled), CPR = 1 − (1 − SMM)¹²; severity = 1 − Σ recovery / Σ default; recovery lag = the
months between the default- and recovery-weighted mean months, rounded. Each is exact for a
path the scenario model made (tested by the round trip), and a balance-weighted average for a
simulated one. WAM is the pool's balance-weighted remaining term (from the pool, not the flows).

**Breakeven CDR** of a class (at a severity and CPR) = the largest CDR at which the class loses
nothing (loss ≤ 1e-8 of its balance), found by bisection on [0, 1) to ``tol`` (1e-6 CDR by
default): the largest CDR found losing nothing, within ``tol`` of the smallest found losing. It
assumes the loss is non-decreasing in the CDR (true for sequential and pro-rata pay with
bottom-up write-downs; a trigger could break it). A class that loses nothing even at
CDR = 1 − tol reports 1.0; one that loses at CDR 0 reports 0.0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from portfolio.montecarlo.paths import PoolPaths
from tranching.analytics import LOSS_TOLERANCE, loss_shares, path_irr, wal_per_path, year_fractions
from tranching.deal import Deal
from tranching.errors import DealError, must_be
from tranching.waterfall import run_waterfall


def _check(name: str, value: float, lo: float, hi: float, closed_hi: bool = True) -> None:
    ok = lo <= value <= hi if closed_hi else lo <= value < hi
    if not (np.isfinite(value) and ok):
        raise DealError(must_be(name, f"in [{lo}, {hi}{']' if closed_hi else ')'}", value))


def scenario_paths(balance: float, wac: float, wam: int, *, cdr: float, severity: float,
                   cpr: float, lag: int = 0, start: dt.date = dt.date(2026, 1, 31)) -> PoolPaths:
    """One deterministic path of the representative line (module doc)."""
    _check("balance", balance, 1e-9, 1e15)
    _check("wac", wac, 0.0, 1.0)
    _check("cdr", cdr, 0.0, 1.0)
    _check("severity", severity, 0.0, 1.0)
    _check("cpr", cpr, 0.0, 1.0)
    if not 1 <= int(wam) <= 600 or int(wam) != wam:
        raise DealError(must_be("wam", "an integer number of months in [1, 600]", wam))
    if not 0 <= int(lag) <= 60 or int(lag) != lag:
        raise DealError(must_be("recovery lag", "an integer number of months in [0, 60]", lag))
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
        remaining = int(wam) - t
        if remaining <= 1:
            sched[t] = perf
        else:
            annuity = -np.expm1(-remaining * np.log1p(r)) if r > 0 else 0.0
            payment = perf * r / annuity if r > 0 else perf / remaining
            sched[t] = payment - r * perf
        prepay[t] = smm * (perf - sched[t])
        eop[t] = perf - sched[t] - prepay[t]
        bal = eop[t]
        if t >= lag:
            recovery[t] = (1.0 - severity) * default[t - lag]
    dates = np.array([np.datetime64(start, "M") + np.timedelta64(k + 1, "M") for k in range(n)])
    dates = (dates.astype("datetime64[D]") - np.timedelta64(1, "D")).astype("datetime64[D]")
    one = lambda a: a[None, :]  # noqa: E731
    return PoolPaths(dates=dates, balance_bop=one(bop), interest=one(interest),
                     scheduled_principal=one(sched), prepayment=one(prepay),
                     default=one(default), recovery=one(recovery), balance_eop=one(eop),
                     initial_balance=float(balance))


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


def base_scenario(paths: PoolPaths, wam: int) -> BaseScenario:
    """The scenario of the representative line implied by ``paths``' mean flows (module doc);
    ``wam`` the pool's balance-weighted remaining term in months."""
    mean = {k: np.asarray(getattr(paths, k), dtype=np.float64).mean(axis=0) for k in (
        "balance_bop", "interest", "scheduled_principal", "prepayment", "default", "recovery")}
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
        balance=float(paths.initial_balance), wac=12.0 * float(mean["interest"].sum() / performing.sum()),
        wam=int(wam), cdr=float(1.0 - (1.0 - mdr) ** 12), severity=float(min(max(severity, 0.0), 1.0)),
        cpr=float(1.0 - (1.0 - smm) ** 12), lag=max(lag, 0))


def scenario_rows(deal: Deal, paths: PoolPaths) -> list[dict[str, float | str | int]]:
    """Per class: WAL, yield at par, loss share and first write-down month on one path."""
    result = run_waterfall(deal, paths)
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
                paths = scenario_paths(balance, wac, wam, cdr=cdr, severity=sev, cpr=cpr, lag=lag)
                for row in scenario_rows(deal, paths):
                    rows.append({"cdr": cdr, "severity": sev, "cpr": cpr, **row})
    return pd.DataFrame(rows, columns=["cdr", "severity", "cpr", "tranche", "wal", "yield",
                                       "loss", "first_loss_month"])


def breakeven_cdr(deal: Deal, balance: float, wac: float, wam: int, *, severity: float,
                  cpr: float, lag: int = 0, tol: float = 1e-6) -> dict[str, float]:
    """Per class, the largest CDR at which it loses nothing (module doc), by bisection."""
    if not 0 < tol < 0.01:
        raise DealError(must_be("tol", "in (0, 0.01)", tol))

    def losses(cdr: float) -> np.ndarray:
        paths = scenario_paths(balance, wac, wam, cdr=cdr, severity=severity, cpr=cpr, lag=lag)
        return loss_shares(run_waterfall(deal, paths))[:, 0]

    out: dict[str, float] = {}
    at_zero, at_top = losses(0.0), losses(1.0 - tol)
    for j, name in enumerate(deal.tranche_names):
        if at_zero[j] > LOSS_TOLERANCE:
            out[name] = 0.0
            continue
        if at_top[j] <= LOSS_TOLERANCE:
            out[name] = 1.0
            continue
        lo, hi = 0.0, 1.0 - tol
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
    """Breakeven CDR per class for every severity × CPR."""
    rows = []
    for sev in severities:
        for cpr in cprs:
            be = breakeven_cdr(deal, balance, wac, wam, severity=sev, cpr=cpr, lag=lag, tol=tol)
            for name, value in be.items():
                rows.append({"severity": sev, "cpr": cpr, "tranche": name, "breakeven_cdr": value})
    return pd.DataFrame(rows, columns=["severity", "cpr", "tranche", "breakeven_cdr"])
