"""The waterfall engine: a deal's priority of payments run on every Monte Carlo path at once.

Vectorised over paths, a loop over months (the recursion is real: balances, reserve, carried
shortfalls and trigger latches depend on the previous month). Pure numpy, no I/O.

Each month ``t`` (0-based; ``paths`` arrays are (n_paths, n_months)):

1. **Pool cash.** The deal holds the simulated pool plus the loans bought while revolving
   (step 3). Collections = interest + scheduled principal + prepayment + recovery of both.
   Collateral ``C`` = their performing balance at month end (balance_eop). (In the scaling
   approximation of step 3 the simulated pool's flows are multiplied by ``s`` instead.)
2. **Triggers**, tested on this month's data before any payment:
   ``cnl`` = (cumulative defaults − cumulative recoveries) / initial pool balance (DOMAIN §4),
   breached when above the level in force; ``oc`` = C / balance (bop) of the trigger's notes
   (all tranches by default), breached when below the level; ``delinquency`` = 30+ DPD balance /
   C, breached when above the level. PoolPaths has no delinquency array, so the 30+ DPD balance
   at month t is *defined* from the path: a loan that defaults (reaches 90 DPD) at the end of
   month t+k was 90 − 30k days past due at the end of month t, so it was 30–89 DPD at t exactly
   when k ∈ {1, 2}: delinquent(t) = default[t+1] + default[t+2] of the loans held at t (zero
   beyond the horizon).
   A curable trigger is in force in the months it is breached; a non-curable one from its first
   breach on. Effects while in force: ``sequential`` — principal allocated sequentially;
   ``turbo`` — the whole note balance is due as principal (all available funds after the steps
   ranked above the principal steps go to principal), and the revolving period ends for good;
   ``end_revolving`` — the revolving period ends for good; ``trap_cash`` — the cash that would
   go to the residual holder is kept in the reserve account instead (next month it is part of
   the available funds like the rest of the reserve; released at a clean-up call and in the
   last month).
3. **Revolving period** (the first ``revolving_months`` months unless ended early): the
   principal the notes would receive is spent at the first ``principal`` step on new loans at
   par. A path whose pool has run off (C ≤ 1e-9 of the initial balance) cannot buy and
   amortises. How the purchased loans perform:

   * **With a replenishment profile** (``run_waterfall(..., replenishment=profile)``, e.g.
     ``portfolio.montecarlo.replenishment.simulate_replenishment``: a pool of NEW loans with the pool's
     cell mix, projected on the same paths): a purchase of P at month s adds
     P × profile_flow[path, t − s − 1] / profile.initial_balance to every pool flow (interest,
     scheduled principal, prepayment, default, recovery, balances) of month t > s on the same
     path — new loans with fresh schedules. The horizon is extended with zero pool flows to
     ``max(n_months of paths, revolving_months + n_months of the profile)`` so that loans bought
     in the last revolving month run off (the result then has more months than ``paths``).
   * **Without one** (a rough approximation, kept for pools of long loans and for tests): the
     replenished balance performs like the remaining pool — from the next month on every pool
     flow is scaled by (C + purchase) / C, i.e. ``s ← s·(1 + purchase / C)``. For short-tenor
     loans this is wrong: the seasoned pool has nearly run off when the revolving period ends,
     so the scaled pool collapses at once and the notes are repaid within a month or two.
4. **Clean-up call**: outside the revolving period, in the first month with
   0 < C < clean_up_call × initial balance, the originator buys the pool at par (C is added to the
   cash); every tranche is due in full this month and the deal ends (later pool flows, including
   recoveries, belong to the caller).
5. **Available funds** = collections + call proceeds + the whole reserve balance (the reserve is
   released into the available funds and rebuilt at the ``reserve`` step, so it supports every
   step ranked above it). Then the typed steps in order:
   ``fee`` — due this month (servicer: rate/12 × pool balance_bop; fixed: amount, while any note
   balance or write-down is outstanding) plus fees unpaid earlier; ``interest`` — coupon/12 ×
   balance (bop) plus shortfall carried (no interest on shortfall); ``principal`` — the
   principal distribution amount PDA = max(0, Σ balance_bop − max(0, C − OC target)), allocated
   sequentially (senior first) or pro rata to balances (bop); PDA = Σ balance_bop in turbo mode,
   under a turbo trigger, at a clean-up call and in the last month; ``reserve`` — keep up to the
   target (max(target × basis, floor × initial); 0 in the last month and at a call);
   ``reimburse`` — repay written-down principal, senior first; ``residual`` — all that is left,
   to the holder of the subordinated tranche.
6. **Write-downs**: after the steps, if the tranche balances exceed the collateral (C plus
   purchases; 0 at a call and in the last month, the legal final), the excess is written off
   bottom-up (the most junior tranche first). Written-down principal is tracked per tranche and
   can be reimbursed later (e.g. from recoveries) at the ``reimburse`` step; what is still written
   down after the last month is lost.

Per-path identities (tested with hypothesis): collections + call proceeds = fees + interest +
principal + reimbursements + purchases + residual + (reserve_eop − reserve_bop);
``tranche_loss`` = original balance − principal received (principal + reimbursements).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from portfolio.memory import small_pages
from portfolio.montecarlo.paths import PoolPaths
from tranching.deal import (
    Basis,
    Deal,
    Effect,
    FeeKind,
    FeeStep,
    Funding,
    InterestStep,
    Metric,
    PrincipalMode,
    PrincipalStep,
    ReimburseStep,
    ReserveStep,
    ResidualStep,
    payment_dates,
)
from tranching.errors import DealError, must_be

POOL_RUNOFF = 1e-9  # a pool below this share of its initial balance is treated as run off


@dataclass(frozen=True, slots=True)
class WaterfallResult:
    """Everything the waterfall paid, per path and month.

    Tranche arrays are (n_tranches, n_paths, n_months) in seniority order; the others
    (n_paths, n_months); ``fees_paid``/``triggers`` map a name to (n_paths, n_months).
    """

    tranche_names: tuple[str, ...]
    original_balance: np.ndarray  # (n_tranches,) CNY
    dates: tuple[dt.date, ...]  # payment dates, one per month
    interest_due: np.ndarray  # this month's coupon plus shortfall carried in
    interest_paid: np.ndarray
    interest_shortfall: np.ndarray  # unpaid interest carried out of the month
    principal_paid: np.ndarray  # principal distribution paid
    reimbursed: np.ndarray  # written-down principal reimbursed
    balance: np.ndarray  # balance at the end of the month (after payments and write-downs)
    writedown: np.ndarray  # principal written down in the month
    writedown_outstanding: np.ndarray  # written-down principal not yet reimbursed (eop)
    reserve_bop: np.ndarray
    reserve: np.ndarray  # reserve balance at month end
    fees_due: dict[str, np.ndarray]
    fees_paid: dict[str, np.ndarray]
    triggers: dict[str, np.ndarray]  # bool: trigger in force in the month
    breached: dict[str, np.ndarray]  # bool: trigger test failed in the month
    residual: np.ndarray  # cash to the subordinated holder
    collections: np.ndarray  # pool cash collected by the deal (scaled by revolving)
    call_proceeds: np.ndarray  # clean-up call price received
    purchases: np.ndarray  # revolving purchases of new loans (at par)
    collateral: np.ndarray  # pool performing balance held by the deal at month end
    revolving: np.ndarray  # bool: month in the revolving period
    pool_scale: np.ndarray  # s: multiple of the simulated pool held (1 with a profile; 0 after a call)
    metrics: dict[str, np.ndarray] = field(default_factory=dict)  # cnl, delinquency, oc

    @property
    def n_paths(self) -> int:
        return int(self.residual.shape[0])

    @property
    def principal_received(self) -> np.ndarray:
        """(n_tranches, n_paths) all principal received: principal paid + reimbursements."""
        return self.principal_paid.sum(axis=2) + self.reimbursed.sum(axis=2)

    @property
    def tranche_loss(self) -> np.ndarray:
        """(n_tranches, n_paths) principal loss in CNY = original balance − principal received.

        Unpaid interest is not part of it (it shows in ``interest_shortfall`` and in the IRR).
        Round-off below 1e-9 of the tranche balance (or of 1 CNY) is reported as zero."""
        loss = self.original_balance[:, None] - self.principal_received
        tiny = 1e-9 * np.maximum(self.original_balance, 1.0)[:, None]
        return np.where(loss > tiny, loss, 0.0)

    @property
    def tranche_cashflows(self) -> np.ndarray:
        """(n_tranches, n_paths, n_months) cash to each tranche: interest + principal."""
        return self.interest_paid + self.principal_paid + self.reimbursed

    @property
    def cash_out(self) -> np.ndarray:
        """(n_paths, n_months) everything paid out of available funds except the reserve."""
        fees = sum(self.fees_paid.values()) if self.fees_paid else 0.0
        return (fees + self.interest_paid.sum(axis=0) + self.principal_paid.sum(axis=0)
                + self.reimbursed.sum(axis=0) + self.purchases + self.residual)

    def conservation_error(self) -> np.ndarray:
        """(n_paths, n_months) cash in − cash out − change in reserve (zero up to rounding)."""
        return (self.collections + self.call_proceeds - self.cash_out
                - (self.reserve - self.reserve_bop))


@small_pages
def run_waterfall(deal: Deal, paths: PoolPaths,
                  replenishment: PoolPaths | None = None) -> WaterfallResult:
    """Run ``deal``'s priority of payments on every path of ``paths`` (see the module doc).

    ``replenishment``: the profile of the loans bought while revolving (same number of paths;
    any positive ``initial_balance``: flows are used per unit of it). Ignored for a deal
    without a revolving period; without it a revolving deal uses the scaling approximation."""
    n_paths, n_pool = paths.n_paths, paths.n_months
    init = float(paths.initial_balance)
    use_profile = replenishment is not None and deal.revolving_months > 0
    if replenishment is not None:
        if replenishment.n_paths != n_paths:
            raise DealError(must_be("replenishment", f"a profile with the run's {n_paths} paths",
                                    f"{replenishment.n_paths} paths", deal.source))
        if not replenishment.initial_balance > 0:
            raise DealError(must_be("replenishment.initial_balance", "> 0",
                                    replenishment.initial_balance, deal.source))
    n_prof = replenishment.n_months if (use_profile and replenishment is not None) else 0
    n_months = max(n_pool, deal.revolving_months + n_prof) if use_profile else n_pool
    amounts = np.asarray(deal.tranche_amounts(init), dtype=np.float64)
    nt = len(amounts)
    coupons = np.array([t.coupon for t in deal.tranches]) / 12.0
    names = deal.tranche_names
    idx = {n: i for i, n in enumerate(names)}

    def month_major(a: np.ndarray) -> np.ndarray:  # (n_months, n_paths), zero-padded rows
        out = np.zeros((n_months, n_paths))
        out[:n_pool] = np.asarray(a, dtype=np.float64).T
        return out

    interest_src = month_major(paths.interest)
    sched_src = month_major(paths.scheduled_principal)
    prepay_src = month_major(paths.prepayment)
    default_src = month_major(paths.default)
    recovery_src = month_major(paths.recovery)
    bop_src = month_major(paths.balance_bop)
    eop_src = month_major(paths.balance_eop)
    # loans bought while revolving: their flows by month (rows), added as purchases happen;
    # profile (7 flows, n_prof, n_paths) per unit of the profile's initial balance
    # (interest, scheduled principal, prepayment, default, recovery, bop, eop)
    bought = np.zeros((7, n_months + 1, n_paths))
    if use_profile and replenishment is not None:
        unit = 1.0 / float(replenishment.initial_balance)
        profile = np.stack([
            np.asarray(getattr(replenishment, name), dtype=np.float64).T * unit
            for name in ("interest", "scheduled_principal", "prepayment", "default", "recovery",
                         "balance_bop", "balance_eop")])

    shape3 = (n_months, nt, n_paths)  # month-major while running
    out_int_due = np.zeros(shape3)
    out_int_paid = np.zeros(shape3)
    out_int_short = np.zeros(shape3)
    out_prin = np.zeros(shape3)
    out_reimb = np.zeros(shape3)
    out_bal = np.zeros(shape3)
    out_wd = np.zeros(shape3)
    out_wd_out = np.zeros(shape3)
    shape2 = (n_months, n_paths)
    out_res_bop = np.zeros(shape2)
    out_res = np.zeros(shape2)
    out_residual = np.zeros(shape2)
    out_coll = np.zeros(shape2)
    out_call = np.zeros(shape2)
    out_purch = np.zeros(shape2)
    out_collat = np.zeros(shape2)
    out_rev = np.zeros(shape2, dtype=bool)
    out_scale = np.zeros(shape2)
    fee_names = [f.name for f in deal.fees]
    out_fee_due = {n: np.zeros(shape2) for n in fee_names}
    out_fee_paid = {n: np.zeros(shape2) for n in fee_names}
    trig_names = [t.name for t in deal.triggers]
    out_trig = {n: np.zeros(shape2, dtype=bool) for n in trig_names}
    out_breach = {n: np.zeros(shape2, dtype=bool) for n in trig_names}
    out_metric = {m.value: np.zeros(shape2) for m in Metric}

    bal = np.repeat(amounts[:, None], n_paths, axis=1)  # (nt, n_paths)
    wd_out = np.zeros((nt, n_paths))
    int_short = np.zeros((nt, n_paths))
    fee_short = {n: np.zeros(n_paths) for n in fee_names}
    scale = np.ones(n_paths)
    cum_def = np.zeros(n_paths)
    cum_rec = np.zeros(n_paths)
    latched = {n: np.zeros(n_paths, dtype=bool) for n in trig_names}
    rev_ended = np.zeros(n_paths, dtype=bool)
    ended = np.zeros(n_paths, dtype=bool)  # called: the deal is over

    res = deal.reserve
    if res is not None and res.funding is Funding.CLOSING:
        r0 = max(res.target * init, res.floor * init)
        reserve = np.full(n_paths, r0)
    else:
        reserve = np.zeros(n_paths)

    oc = deal.overcollateralisation
    base_pro_rata = deal.principal_mode is PrincipalMode.PRO_RATA
    base_turbo = deal.principal_mode is PrincipalMode.TURBO
    oc_trigger_sets = {
        t.name: np.array([idx[n] for n in (t.tranches or names)]) for t in deal.triggers
    }
    first_principal = next(i for i, s in enumerate(deal.waterfall) if isinstance(s, PrincipalStep))

    for t in range(n_months):
        alive = ~ended
        s = np.where(alive, scale, 0.0)
        b_int, b_sched, b_prepay, b_def, b_rec, b_bop, b_eop = bought[:, t]
        interest = s * (interest_src[t] + b_int)
        principal_coll = s * (sched_src[t] + prepay_src[t] + b_sched + b_prepay)
        recovery = s * (recovery_src[t] + b_rec)
        defaults = s * (default_src[t] + b_def)
        coll_bop = s * (bop_src[t] + b_bop)
        collat = s * (eop_src[t] + b_eop)
        collections = interest + principal_coll + recovery
        last = t == n_months - 1

        cum_def += defaults
        cum_rec += recovery
        bal_bop = bal.copy()
        notes_bop = bal_bop.sum(axis=0)

        # ---- triggers (tested on this month's data, before payments)
        cnl = (cum_def - cum_rec) / init
        future = ((default_src[t + 1 : t + 3] + bought[3, t + 1 : t + 3]).sum(axis=0)
                  if t + 1 < n_months else 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            delinquency = np.where(collat > 0, s * future / np.where(collat > 0, collat, 1.0), 0.0)
        out_metric["cnl"][t] = cnl
        out_metric["delinquency"][t] = delinquency
        seq_force = np.zeros(n_paths, dtype=bool)
        turbo_force = np.zeros(n_paths, dtype=bool)
        trap = np.zeros(n_paths, dtype=bool)
        for trig in deal.triggers:
            level = trig.level_at(t + 1)
            if trig.metric is Metric.CNL:
                breach = cnl > level
            elif trig.metric is Metric.DELINQUENCY:
                breach = delinquency > level
            else:
                notes = bal_bop[oc_trigger_sets[trig.name]].sum(axis=0)
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.where(notes > 0, collat / np.where(notes > 0, notes, 1.0), np.inf)
                out_metric["oc"][t] = np.where(np.isfinite(ratio), ratio, np.nan)
                breach = ratio < level
            breach &= alive
            latched[trig.name] |= breach
            state = breach if trig.curable else latched[trig.name]
            out_breach[trig.name][t] = breach
            out_trig[trig.name][t] = state
            if trig.effect is Effect.SEQUENTIAL:
                seq_force |= state
            elif trig.effect is Effect.TURBO:
                turbo_force |= state
                rev_ended |= state
            elif trig.effect is Effect.END_REVOLVING:
                rev_ended |= state
            else:
                trap |= state

        revolving = ((t < deal.revolving_months) & (not last) & ~rev_ended & alive
                     & (collat > POOL_RUNOFF * init))
        if deal.clean_up_call is not None:
            call = alive & ~revolving & (collat > 0) & (collat < deal.clean_up_call * init)
        else:
            call = np.zeros(n_paths, dtype=bool)
        call_proceeds = np.where(call, collat, 0.0)
        collat_after = np.where(call, 0.0, collat)
        final = call | last

        # ---- principal distribution amount and its allocation
        if oc is not None:
            basis = collat if oc.basis is Basis.CURRENT else init
            oc_target = np.maximum(oc.target * basis, oc.floor * init)
        else:
            oc_target = 0.0
        notes_target = np.maximum(collat_after - oc_target, 0.0)
        pda = np.maximum(notes_bop - notes_target, 0.0)
        all_due = final | turbo_force | base_turbo
        pda = np.where(all_due, notes_bop, pda)
        purchase_due = np.where(revolving, pda, 0.0)
        pda = np.where(revolving, 0.0, pda)
        above = np.cumsum(bal_bop, axis=0) - bal_bop
        alloc_seq = np.clip(pda[None, :] - above, 0.0, bal_bop)
        if base_pro_rata:
            with np.errstate(divide="ignore", invalid="ignore"):
                share = np.where(notes_bop > 0, bal_bop / np.where(notes_bop > 0, notes_bop, 1.0), 0.0)
            alloc_pr = np.minimum(pda[None, :] * share, bal_bop)
            use_seq = seq_force | turbo_force | final
            alloc = np.where(use_seq[None, :], alloc_seq, alloc_pr)
        else:
            alloc = alloc_seq

        # ---- reserve target
        if res is not None:
            rbasis = init if res.basis is Basis.INITIAL else coll_bop
            r_target = np.maximum(res.target * rbasis, res.floor * init)
            r_target = np.where(final, 0.0, r_target)
        reserve_bop = reserve.copy()

        # ---- the priority of payments
        avail = collections + call_proceeds + reserve_bop
        outstanding = (notes_bop + wd_out.sum(axis=0)) > 0
        int_paid = np.zeros((nt, n_paths))
        int_due = np.zeros((nt, n_paths))
        prin_paid = np.zeros((nt, n_paths))
        reimb = np.zeros((nt, n_paths))
        purchases = np.zeros(n_paths)
        new_reserve = np.zeros(n_paths)
        residual = np.zeros(n_paths)
        for k, step in enumerate(deal.waterfall):
            if isinstance(step, FeeStep):
                fee = next(f for f in deal.fees if f.name == step.fee)
                if fee.kind is FeeKind.SERVICER:
                    accrued = fee.rate / 12.0 * coll_bop
                else:
                    accrued = np.where(outstanding & alive, fee.amount, 0.0)
                due = accrued + fee_short[fee.name]
                pay = np.minimum(due, avail)
                avail = avail - pay
                fee_short[fee.name] = due - pay
                out_fee_due[fee.name][t] = due
                out_fee_paid[fee.name][t] = pay
            elif isinstance(step, InterestStep):
                j = idx[step.tranche]
                due = coupons[j] * bal_bop[j] + int_short[j]
                pay = np.minimum(due, avail)
                avail = avail - pay
                int_due[j] = due
                int_paid[j] = pay
                int_short[j] = due - pay
            elif isinstance(step, PrincipalStep):
                if k == first_principal and deal.revolving_months > 0:
                    purchases = np.minimum(purchase_due, avail)
                    avail = avail - purchases
                for name in step.tranches:
                    j = idx[name]
                    pay = np.minimum(alloc[j], avail)
                    avail = avail - pay
                    prin_paid[j] = pay
                    bal[j] = bal[j] - pay
            elif isinstance(step, ReserveStep):
                new_reserve = np.minimum(r_target, avail)
                avail = avail - new_reserve
            elif isinstance(step, ReimburseStep):
                for name in step.tranches:
                    j = idx[name]
                    pay = np.minimum(wd_out[j], avail)
                    avail = avail - pay
                    reimb[j] = pay
                    wd_out[j] = wd_out[j] - pay
            elif isinstance(step, ResidualStep):
                kept = trap & ~final
                new_reserve = new_reserve + np.where(kept, avail, 0.0)
                residual = np.where(kept, 0.0, avail)
                avail = np.zeros(n_paths)
        reserve = new_reserve

        # ---- write-downs, bottom-up, against the collateral after purchases
        collat_end = np.where(final, 0.0, collat_after + purchases)
        deficiency = np.maximum(bal.sum(axis=0) - collat_end, 0.0)
        wd = np.zeros((nt, n_paths))
        for j in range(nt - 1, -1, -1):
            cut = np.minimum(bal[j], deficiency)
            wd[j] = cut
            bal[j] = bal[j] - cut
            deficiency = deficiency - cut
        wd_out += wd

        # ---- revolving: the purchased loans' flows from next month on
        out_scale[t] = s
        if use_profile:
            k = min(n_prof, n_months - t - 1)
            if k > 0 and purchases.any():
                bought[:, t + 1 : t + 1 + k] += purchases[None, None, :] * profile[:, :k]
        else:  # the scaling approximation: they perform like the pool
            with np.errstate(divide="ignore", invalid="ignore"):
                grow = np.where(purchases > 0, purchases / np.where(collat > 0, collat, 1.0), 0.0)
            scale = scale * (1.0 + grow)
        ended |= call

        out_int_due[t] = int_due
        out_int_paid[t] = int_paid
        out_int_short[t] = int_short
        out_prin[t] = prin_paid
        out_reimb[t] = reimb
        out_bal[t] = bal
        out_wd[t] = wd
        out_wd_out[t] = wd_out
        out_res_bop[t] = reserve_bop
        out_res[t] = reserve
        out_residual[t] = residual
        out_coll[t] = collections
        out_call[t] = call_proceeds
        out_purch[t] = purchases
        out_collat[t] = collat_end
        out_rev[t] = revolving

    def t3(a: np.ndarray) -> np.ndarray:  # (n_months, nt, n_paths) -> (nt, n_paths, n_months)
        return np.ascontiguousarray(a.transpose(1, 2, 0))

    def t2(a: np.ndarray) -> np.ndarray:  # (n_months, n_paths) -> (n_paths, n_months)
        return np.ascontiguousarray(a.T)

    return WaterfallResult(
        tranche_names=names,
        original_balance=amounts,
        dates=tuple(payment_dates(deal, n_months)),
        interest_due=t3(out_int_due),
        interest_paid=t3(out_int_paid),
        interest_shortfall=t3(out_int_short),
        principal_paid=t3(out_prin),
        reimbursed=t3(out_reimb),
        balance=t3(out_bal),
        writedown=t3(out_wd),
        writedown_outstanding=t3(out_wd_out),
        reserve_bop=t2(out_res_bop),
        reserve=t2(out_res),
        fees_due={k: t2(v) for k, v in out_fee_due.items()},
        fees_paid={k: t2(v) for k, v in out_fee_paid.items()},
        triggers={k: t2(v) for k, v in out_trig.items()},
        breached={k: t2(v) for k, v in out_breach.items()},
        residual=t2(out_residual),
        collections=t2(out_coll),
        call_proceeds=t2(out_call),
        purchases=t2(out_purch),
        collateral=t2(out_collat),
        revolving=t2(out_rev),
        pool_scale=t2(out_scale),
        metrics={k: t2(v) for k, v in out_metric.items()},
    )
