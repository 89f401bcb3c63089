"""Risk dispersion: from one set of Monte Carlo paths, each party's exposure, expected loss,
VaR / expected shortfall and capital — and how much of the risk left the originator.

Loss on a path = defaulted principal − recoveries over the whole horizon (CNY).

Parties and their losses (they add up on every path, a tested invariant, to the pool loss —
plus, for a revolving deal run with a replenishment profile, the loss on the loans the deal
bought while revolving: ``Dispersion.total_loss``):

* **Joint lending** (an allocation): party p's loss is its share of every loan's loss —
  ``PoolPaths.party_flows`` (``default − recovery``) when the simulation carried the shares.
* **Securitisation** (a deal): the waterfall runs on the paths of the securitised pool (the
  whole pool; or, together with joint lending, the platform's retained shares) — for a
  revolving deal with the replenishment profile of the loans bought while revolving
  (``tranching.revolving``; per unit of initial balance, so the same profile serves the whole
  pool and a party's share of it), exactly as the tranche table stored with the run. Each
  tranche holder bears its holding of the tranche's principal loss
  (``WaterfallResult.tranche_loss``). The **collateral net loss** is the loss of what the deal
  held (the pool and the loans it bought) while it held it: the waterfall's cumulative net
  loss at the last month × the initial balance (``metrics["cnl"]`` is (cumulative defaults −
  cumulative recoveries of the collateral) / initial balance). The rest of it — the part
  absorbed by excess spread, the reserve and over-collateralisation — is borne by the holder
  of the subordinated (last) tranche, which receives the residual cash. After a clean-up call
  the remaining loans (and the recoveries of earlier defaults) belong to the caller, the
  originator (platform): it bears their later net loss (negative when recoveries exceed the
  defaults). So the holders' losses add up to the collateral net loss, and with the caller's
  to the securitised loans' loss over their life (pool + purchases).

Risk measures per party: EL = mean loss; VaR_α and ES_α = the estimators of ``portfolio.risk``
(VaR: the ⌈nα⌉-th smallest loss; ES: the mean of the n(1 − α) largest losses, the boundary loss
weighted fractionally), so the pool's row equals the Simulation page's figures.

Capital (``partners.capital``): loans and loan shares held directly — IRB "other retail",
``Σ K(PD_i, LGD_i)·share_i·balance_i`` (PD, LGD as the allocation used them); tranche
positions — SEC-SA with ``K_SA`` (default 0.06, regulatory retail) and W (default 0: a pool
of current loans), capital = 8% × RW × position. A securitised pool is treated as off the
originator's balance sheet (significant risk transfer assumed); its retained positions carry
SEC-SA capital. Over-collateralisation (``initial_oc``) counts as a first-loss position of the
subordinated holder.

Headline per scenario (baseline: the platform holds every loan of the scenario — the whole
pool, plus for a revolving deal the loans the deal's collections bought): the share of the
expected loss and of the 99.9% VaR that left the platform (``1 − platform / baseline``) and
the capital released (baseline IRB capital − the platform's capital in the scenario).

HHI of the partners' exposures: Σ s_i² with s_i a partner's share of all partners' exposure
(platform and note investors excluded), between 1/n and 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from partners.capital import (
    RETAIL_K_SA,
    PositionCapital,
    RetailIrb,
    SecuritisationCapital,
    irb_retail_k_distinct,
    pool_k_irb,
    pool_k_irb_per_loan,
    position_capital,
)
from partners.errors import DispersionError
from partners.registry import PLATFORM_ID
from partners.srt import SrtAssessment, SrtPolicy, assess
from portfolio.errors import must_be
from portfolio.montecarlo.paths import FLOW_NAMES, PoolPaths, ReplenishmentProfile
from portfolio.risk import loss_stats
from tranching import reconcile as deal_recon
from tranching.waterfall import run_waterfall, run_waterfall_part

LEVELS = (0.99, 0.999)


# --------------------------------------------------------------------------- measures
@dataclass(frozen=True, slots=True)
class LossMeasures:
    el: float
    var_99: float
    es_99: float
    var_999: float
    es_999: float


def loss_measures(loss: np.ndarray) -> LossMeasures:
    """EL, VaR and ES at 99% and 99.9% of ``loss`` (n_paths,) with the estimators of
    ``portfolio.risk`` (one quantile definition across pages)."""
    stats = loss_stats(np.asarray(loss, dtype=np.float64), LEVELS)
    out: list[float] = [stats.el]
    for var, es in zip(stats.var, stats.es, strict=True):
        out += [var, es]
    return LossMeasures(*out)


def hhi(exposures: Sequence[float]) -> float:
    e = np.asarray(exposures, dtype=np.float64)
    total = e.sum()
    return float(((e / total) ** 2).sum()) if total > 0 else 0.0


def path_loss(paths: PoolPaths) -> np.ndarray:
    """(n_paths,) pool loss."""
    return paths.default.sum(axis=1) - paths.recovery.sum(axis=1)


def party_path_losses(paths: PoolPaths) -> np.ndarray:
    """(n_parties, n_paths) from ``party_flows`` (default − recovery)."""
    if not paths.party_ids or "default" not in paths.party_flows:
        raise DispersionError(must_be("paths.party_flows", "per-party flows (a run with shares)",
                                      "none"))
    return paths.party_flows["default"].sum(axis=2) - paths.party_flows["recovery"].sum(axis=2)


def party_paths(paths: PoolPaths, party_id: str) -> PoolPaths:
    """One party's share of the pool as ``PoolPaths`` (e.g. the platform's retained part, to be
    securitised)."""
    k = paths.party_ids.index(party_id)
    flows = {name: paths.party_flows[name][k] for name in FLOW_NAMES}
    initial = float(flows["balance_bop"][0, 0]) if flows["balance_bop"].size else 0.0
    return PoolPaths(dates=paths.dates, initial_balance=initial, seed_entropy=paths.seed_entropy,
                     **flows)


# --------------------------------------------------------------------------- securitisation
@dataclass(frozen=True, slots=True)
class TranchePosition:
    tranche: str
    holder: str
    share: float  # of the tranche
    attachment: float  # A, share of the securitised pool
    detachment: float  # D
    amount: float  # CNY held (share × tranche size)
    loss: np.ndarray  # (n_paths,) CNY, this holding's principal loss
    senior: bool = False  # the most senior tranche (nothing ranks ahead of it)


@dataclass(frozen=True, slots=True)
class WaterfallTotals:
    """A deal waterfall's totals over its months, per path: what the reconciliation and the
    economic view (``partners.reconciliation``) read of it. Each is a sum over months or an
    end point of one path's rows, so a part of the paths gives those paths' values exactly
    (the Dask workers send these instead of the month-by-month waterfall)."""

    tranche_names: tuple[str, ...]
    class_loss: np.ndarray  # (n_tranches, n_paths) original balance − principal received
    coupons: np.ndarray  # (n_tranches, n_paths) interest paid
    excess_spread: np.ndarray  # (n_paths,)
    initial_oc: np.ndarray  # (n_paths,)
    reserve_funded: np.ndarray  # (n_paths,) reserve at the start of the first month
    reserve_left: np.ndarray  # (n_paths,) reserve at the end of the last month
    residual: np.ndarray  # (n_paths,) residual cash
    collateral_left: np.ndarray  # (n_paths,)
    support: np.ndarray  # (n_paths,) paid under the shortfall undertaking
    advances: np.ndarray  # (n_paths,) servicer advances made − recovered
    fees: Mapping[str, np.ndarray]  # fee name → (n_paths,) paid, in the deal's order

    @property
    def n_paths(self) -> int:
        return int(self.residual.shape[0])

    @property
    def nbytes(self) -> int:
        arrays = [self.class_loss, self.coupons, self.excess_spread, self.initial_oc,
                  self.reserve_funded, self.reserve_left, self.residual, self.collateral_left,
                  self.support, self.advances, *self.fees.values()]
        return int(sum(a.nbytes for a in arrays))

    @staticmethod
    def concat(parts: Sequence[WaterfallTotals]) -> WaterfallTotals:
        """The totals of consecutive path ranges joined in path order."""
        first = parts[0]

        def cat(name: str, axis: int = 0) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts], axis=axis)

        return WaterfallTotals(
            first.tranche_names, cat("class_loss", 1), cat("coupons", 1), cat("excess_spread"),
            cat("initial_oc"), cat("reserve_funded"), cat("reserve_left"), cat("residual"),
            cat("collateral_left"), cat("support"), cat("advances"),
            {k: np.concatenate([p.fees[k] for p in parts]) for k in first.fees})


def waterfall_totals(w: Any) -> WaterfallTotals:
    """:class:`WaterfallTotals` of a ``tranching.waterfall.WaterfallResult`` (the lines of
    ``tranching.reconcile`` it needs)."""
    return WaterfallTotals(
        tuple(w.tranche_names), deal_recon.class_losses(w), w.interest_paid.sum(axis=2),
        deal_recon.excess_spread(w).sum(axis=1), deal_recon.initial_oc(w),
        w.reserve_bop[:, 0].copy(), w.reserve[:, -1].copy(), w.residual.sum(axis=1),
        deal_recon.collateral_left(w), np.asarray(w.support, dtype=np.float64).sum(axis=1),
        np.asarray(w.advance_made, dtype=np.float64).sum(axis=1)
        - np.asarray(w.advance_recovered, dtype=np.float64).sum(axis=1),
        {name: paid.sum(axis=1) for name, paid in w.fees_paid.items()})


# the arrays of a waterfall that ``securitise`` and ``waterfall_totals`` read (the fields of
# ``tranching.waterfall.WaterfallResult``; ``run_waterfall_part``'s keep)
TOTALS_KEEP = frozenset({
    "principal_paid", "reimbursed", "interest_paid", "residual", "tax", "fees_paid",
    "reserve_bop", "reserve", "call_proceeds", "purchases", "pool_scale", "support",
    "advance_made", "advance_recovered", "metrics.cnl", "pool_cash.interest",
    "pool_cash.balance_bop", "pool_cash.balance_eop"})


@dataclass(frozen=True, slots=True)
class Securitisation:
    """The result of running a deal on a pool's paths, as positions per holder.

    ``collateral_loss``: the net loss of the collateral while the deal held it (the
    waterfall's; the tranche holders and the residual holder bear it). ``called_loss``: the
    later net loss of the loans bought back at a clean-up call, borne by ``caller``.
    ``pool_loss`` = their sum = the securitised loans' loss over their life: the paths' pool
    loss + ``purchased_loss`` (the loans bought while revolving)."""

    pool_balance: float
    pool_loss: np.ndarray  # (n_paths,) collateral_loss + called_loss
    positions: tuple[TranchePosition, ...]
    residual_holder: str
    collateral_loss: np.ndarray  # (n_paths,)
    called_loss: np.ndarray  # (n_paths,)
    purchased_loss: np.ndarray  # (n_paths,)
    caller: str = PLATFORM_ID
    clean_up_call: float | None = None  # the deal's call threshold (share of the initial pool)
    originator_support: tuple[str, ...] = ()  # credit support the originator gives the notes
    waterfall: Any = None  # the WaterfallResult the positions come from (the economic view)
    servicer_fees: tuple[str, ...] = ()  # names of the servicer-kind fees (paid to the platform)
    support_provider: str = PLATFORM_ID  # who gives the deal's shortfall undertaking, if any
    # the waterfall's per-path totals when the waterfall itself was not kept (Dask workers)
    totals: WaterfallTotals | None = None

    def waterfall_totals(self) -> WaterfallTotals | None:
        """The per-path totals of the waterfall (``totals``, else from ``waterfall``), or None
        when neither was kept."""
        if self.totals is not None:
            return self.totals
        return None if self.waterfall is None else waterfall_totals(self.waterfall)

    def losses_by_holder(self) -> dict[str, np.ndarray]:
        """Loss per holder; they add up to ``pool_loss`` on every path (and without the
        caller's ``called_loss`` to ``collateral_loss``)."""
        out: dict[str, np.ndarray] = {}
        for pos in self.positions:
            out[pos.holder] = out.get(pos.holder, 0.0) + pos.loss
        absorbed = self.collateral_loss - sum(p.loss for p in self.positions)
        out[self.residual_holder] = out.get(self.residual_holder, 0.0) + absorbed
        out[self.caller] = out.get(self.caller, 0.0) + self.called_loss
        return out


def securitise(deal: Any, paths: PoolPaths, replenishment: PoolPaths | None = None, *,
               waterfall: Any | None = None) -> Securitisation:
    """Run ``deal`` (``tranching.deal.Deal``) on ``paths`` and turn the tranches into
    positions per holder (vertical retention splits a tranche between holders).

    ``replenishment``: the profile of the loans a revolving deal buys
    (``tranching.revolving.replenishment_for`` / ``run_replenishment``), passed on to
    ``run_waterfall``; its flows are per unit of its initial balance, so ``paths`` may be a
    party's share of the pool (``party_paths``). Without it a revolving deal uses the
    waterfall's scaling approximation.

    ``waterfall``: the ``run_waterfall(deal, paths, replenishment=replenishment)`` result the
    caller already has (the same inputs: it is not run again); None runs it here."""
    if waterfall is not None and (
            tuple(waterfall.tranche_names) != tuple(deal.tranche_names)
            or waterfall.n_paths != paths.n_paths):
        raise DispersionError(must_be(
            "waterfall", f"the run of this deal's tranches {tuple(deal.tranche_names)} on "
            f"{paths.n_paths} paths", f"tranches {tuple(waterfall.tranche_names)} on "
            f"{waterfall.n_paths} paths"))
    result = waterfall if waterfall is not None else \
        run_waterfall(deal, paths, replenishment=replenishment)
    pool = float(paths.initial_balance)
    if not pool > 0:
        raise DispersionError(must_be("paths.initial_balance", "> 0 (a pool to securitise)", pool))
    amounts = np.asarray(deal.tranche_amounts(pool), dtype=np.float64)
    names = tuple(deal.tranche_names)
    # attachment of tranche i: everything junior to it (later tranches) plus the OC
    oc = float(deal.initial_oc)
    sizes = amounts / pool if pool > 0 else np.zeros_like(amounts)
    junior = np.concatenate([np.cumsum(sizes[::-1])[::-1][1:], [0.0]]) + oc
    loss = result.tranche_loss  # (n_tranches, n_paths)
    positions = []
    for h in deal.holdings():
        i = names.index(h.tranche)
        positions.append(TranchePosition(h.tranche, h.holder, float(h.share), float(junior[i]),
                                         float(junior[i] + sizes[i]), float(h.share * amounts[i]),
                                         h.share * loss[i], i == 0))
    if oc > 0:
        last = deal.tranches[-1].holder
        positions.append(TranchePosition("OC", last, 1.0, 0.0, oc, oc * pool, np.zeros(paths.n_paths)))
    # the collateral the deal held: cnl = (cum. defaults − cum. recoveries) / initial balance
    collateral = result.metrics["cnl"][:, -1] * pool
    # the securitised loans over their life: the pool times the multiple the deal held of it
    # (the scaling approximation's s; kept after a call, when the waterfall's s drops to 0)
    # plus each purchase × the profile's loss per unit (a purchase at month s < revolving
    # months sees the whole profile: the waterfall's horizon is revolving months + profile)
    held = np.maximum.accumulate(result.pool_scale[:, : paths.n_months], axis=1)
    life = (held * (paths.default - paths.recovery)).sum(axis=1)
    if replenishment is not None and deal.revolving_months > 0:
        # each month's purchases × the loss per unit of the vintage bought that month
        vintages = replenishment.n_vintages if isinstance(replenishment, ReplenishmentProfile) \
            else 1
        bought = result.purchases
        for s in range(vintages):
            v = replenishment.vintage(s) if isinstance(replenishment, ReplenishmentProfile) \
                else replenishment
            unit = (v.default.sum(axis=1) - v.recovery.sum(axis=1)) / float(v.initial_balance)
            cols = bought[:, s] if s < vintages - 1 else bought[:, s:].sum(axis=1)
            life = life + cols * unit
    return Securitisation(pool, life, tuple(positions), deal.tranches[-1].holder,
                          collateral, life - collateral, life - path_loss(paths),
                          clean_up_call=deal.clean_up_call,
                          originator_support=originator_support(deal), waterfall=result,
                          servicer_fees=tuple(f.name for f in deal.fees
                                              if str(f.kind) == "servicer"),
                          support_provider=getattr(getattr(deal, "shortfall_undertaking", None),
                                                   "provider", PLATFORM_ID))


def securitise_totals(deal: Any, paths: PoolPaths, replenishment: PoolPaths | None = None,
                      *, threads: int | None = None) -> Securitisation:
    """:func:`securitise` keeping the waterfall's per-path totals only
    (``Securitisation.totals``; ``waterfall`` None): the waterfall runs recording just the
    arrays they and the positions are made of (``TOTALS_KEEP``,
    ``tranching.waterfall.run_waterfall_part``), so the same numbers as ``securitise`` and
    ``waterfall_totals`` of its full run, bit for bit, without writing the month-by-month
    result. ``threads``: the waterfall's (``run_waterfall``)."""
    part = run_waterfall_part(deal, paths, replenishment, keep=TOTALS_KEEP, threads=threads)
    s = securitise(deal, paths, replenishment, waterfall=part)
    return dataclasses.replace(s, waterfall=None, totals=waterfall_totals(part))


def originator_support(deal: Any) -> tuple[str, ...]:
    """Credit support the originator (platform) gives the notes, as named lines: a shortfall
    undertaking of the platform (``deal.shortfall_undertaking`` with a ``provider``, when the
    deal has one)."""
    su = getattr(deal, "shortfall_undertaking", None)
    if su is None:
        return ()
    provider = getattr(su, "provider", PLATFORM_ID)
    if provider != PLATFORM_ID:
        return ()
    covered = ", ".join(getattr(su, "tranches", ())) or "the notes"
    cap = getattr(su, "cap", None)
    limit = f" up to {100 * cap:.2f}% of the initial pool" if cap is not None else ""
    return (f"shortfall undertaking by {provider} on {covered}{limit}",)


# --------------------------------------------------------------------------- dispersion
@dataclass(frozen=True, slots=True)
class PartyRisk:
    party_id: str
    roles: tuple[str, ...]  # "originator", "joint lender", "tranche holder"
    exposure: float  # CNY at cut-off: loan shares + tranche positions
    loan_exposure: float
    tranche_exposure: float
    measures: LossMeasures
    capital_irb: float  # K·EAD on loans and loan shares
    capital_sec: float  # 8% × RW × position on tranche positions (the approach of each)
    rwa: float

    @property
    def capital(self) -> float:
        return self.capital_irb + self.capital_sec

    def row(self) -> dict[str, Any]:
        m = self.measures
        return {"party": self.party_id, "roles": ", ".join(self.roles), "exposure": self.exposure,
                "loan_exposure": self.loan_exposure, "tranche_exposure": self.tranche_exposure,
                "el": m.el, "var_99": m.var_99, "es_99": m.es_99, "var_999": m.var_999,
                "es_999": m.es_999, "capital_irb": self.capital_irb,
                "capital_sec": self.capital_sec, "capital": self.capital, "rwa": self.rwa}


@dataclass(frozen=True, slots=True)
class Headline:
    scenario: str  # "joint lending", "securitisation", "both"
    platform_el: float
    platform_var_999: float
    platform_capital: float
    el_share_left: float
    tail_share_left: float  # of the 99.9% VaR
    capital_released: float
    # the SRT assessment of a securitisation scenario (None for joint lending); without SRT
    # the securitised loans stay at IRB and nothing is released
    srt: SrtAssessment | None = None
    positions: tuple[PositionCapital, ...] = ()  # every position of the deal, as charged

    def row(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("srt", "positions")}
        out["srt"] = "" if self.srt is None else ("pass" if self.srt.passed else "fail")
        out["srt_reasons"] = "" if self.srt is None else "; ".join(self.srt.reasons())
        return out


@dataclass(frozen=True, slots=True)
class Dispersion:
    parties: tuple[PartyRisk, ...]  # the combined picture (allocation and, if given, the deal)
    party_losses: Mapping[str, np.ndarray]  # (n_paths,) each; sums to total_loss
    pool_loss: np.ndarray  # the simulated pool's loss (the pool row: loss_distribution's)
    pool_measures: LossMeasures
    baseline_capital: float
    hhi_partners: float
    headlines: tuple[Headline, ...]
    # pool_loss + the loss on the loans a revolving deal (on the retained part) bought
    total_loss: np.ndarray | None = None
    # what the reconciliation and the economic view read (partners.reconciliation): each
    # party's share of the loans' loss (joint lending), its (funded at cut-off, collections per
    # path), and the deal runs by scenario ("securitisation": the whole pool, "both": the
    # platform's retained share, kept with its waterfall's per-path totals only)
    joint_losses: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    joint_cash: Mapping[str, tuple[float, np.ndarray]] = dataclasses.field(default_factory=dict)
    securitisations: Mapping[str, Securitisation] = dataclasses.field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        return [p.row() for p in self.parties]


def charge_positions(positions: Sequence[TranchePosition], pool: Any,
                     method: SecuritisationCapital) -> tuple[PositionCapital, ...]:
    """Each position's approach, risk weight and capital (``partners.capital``); ``pool`` the
    securitised pool's ``PoolCapitalInputs`` (K_IRB, LGD) or None."""
    return tuple(position_capital(p.tranche, p.holder, p.attachment, p.detachment, p.amount,
                                  senior=p.senior, pool=pool, method=method) for p in positions)


@dataclass(frozen=True, slots=True)
class LoanCapital:
    """What :func:`disperse` reads of the loans alone (no path): each loan's IRB K, each
    party's IRB capital and exposure on its loan shares (``exposure_sums``), the baseline
    capital (the platform holding every loan) and the securitised pool's K_IRB and LGD of
    each securitisation scenario (``"securitisation"``: the whole pool; ``"both"``: the
    platform's retained shares; None when its pool is empty)."""

    k_loan: np.ndarray
    irb_by_party: np.ndarray
    exposure_by_party: np.ndarray
    baseline_capital: float
    pools: Mapping[str, Any]


def loan_capital(balance: np.ndarray, shares: np.ndarray, pd: np.ndarray, lgd: np.ndarray,
                 irb: RetailIrb = RetailIrb(), *, k_loan: np.ndarray | None = None,
                 scenarios: Sequence[str] = ("securitisation", "both")) -> LoanCapital:
    """:class:`LoanCapital` of the loans (``disperse``'s arguments of the same names): the
    numbers :func:`disperse` computes when not given them (``disperse_paths`` computes them
    while the deal runs on the retained shares)."""
    k_loan = irb_retail_k_distinct(pd, lgd, irb) if k_loan is None else k_loan  # (n_loans,)
    irb_by_party, exposure_by_party = exposure_sums(shares, k_loan * balance, balance)
    baseline_capital = float((k_loan * balance).sum())
    per_loan: list[tuple[np.ndarray, np.ndarray]] = []  # K_i + EL_i, floored LGD: once
    pools: dict[str, Any] = {}
    for name in scenarios:
        weights = np.asarray(balance, dtype=np.float64) if name == "securitisation" \
            else balance * shares[:, 0]
        pool_in = None
        if float(weights.sum()) > 0:
            if not per_loan:
                per_loan.append(pool_k_irb_per_loan(pd, lgd, irb, k_loan=k_loan))
            pool_in = pool_k_irb(weights, pd, lgd, irb, k_loan=k_loan, per_loan=per_loan[0])
        pools[name] = pool_in
    return LoanCapital(k_loan, irb_by_party, exposure_by_party, baseline_capital, pools)


def disperse(
    *,
    pool_loss: np.ndarray,
    party_ids: tuple[str, ...],
    party_loss: np.ndarray,
    balance: np.ndarray,
    shares: np.ndarray,
    pd: np.ndarray,
    lgd: np.ndarray,
    securitisation_whole: Securitisation | None = None,
    securitisation_retained: Securitisation | None = None,
    k_sa: float = RETAIL_K_SA,
    w: float = 0.0,
    irb: RetailIrb = RetailIrb(),
    sec: SecuritisationCapital | None = None,
    srt: SrtPolicy = SrtPolicy(),
    party_collections: np.ndarray | None = None,
    k_loan: np.ndarray | None = None,
    capital: LoanCapital | None = None,
) -> Dispersion:
    """Per-party risk and the headline.

    ``party_loss`` (n_parties, n_paths) and ``shares`` (n_loans, n_parties) are in
    ``party_ids`` order, platform first; ``balance``, ``pd``, ``lgd`` are per loan.
    ``securitisation_whole``: the deal run on the whole pool's paths (securitisation alone);
    ``securitisation_retained``: run on the platform's retained paths (joint + securitisation).
    ``irb``: the retail IRB framework and sub-class of the loans; ``sec``: how positions are
    charged (default: an IRB originator, SEC-IRBA, with ``k_sa`` and ``w`` for SEC-SA when
    chosen); ``srt``: the SRT tests; ``party_collections`` (n_parties, n_paths): each party's
    cash collected from its loan shares (the economic view). A securitisation scenario whose SRT fails keeps the
    platform's securitised loans at IRB: no capital released, its positions not charged again.
    ``k_loan``: each loan's ``irb_retail_k(pd, lgd, irb)`` when the caller has it (else it
    is computed here); ``capital``: :func:`loan_capital` of these loans when the caller has
    it (else it is computed here, the same numbers).
    """
    if party_ids[0] != PLATFORM_ID:
        raise DispersionError(must_be("party_ids[0]", repr(PLATFORM_ID), party_ids[0]))
    n_paths = len(pool_loss)
    if party_loss.shape != (len(party_ids), n_paths):
        raise DispersionError(must_be("party_loss", f"shaped ({len(party_ids)}, {n_paths})",
                                      party_loss.shape))
    method = sec if sec is not None else SecuritisationCapital(k_sa=k_sa, w=w)
    scenarios = tuple(name for name, v in (("securitisation", securitisation_whole),
                                           ("both", securitisation_retained)) if v is not None)
    loans_cap = capital
    if loans_cap is None or any(name not in loans_cap.pools for name in scenarios):
        loans_cap = loan_capital(balance, shares, pd, lgd, irb, k_loan=k_loan,
                                 scenarios=scenarios)
    pools_in = loans_cap.pools
    irb_by_party, exposure_by_party = loans_cap.irb_by_party, loans_cap.exposure_by_party
    baseline_capital = loans_cap.baseline_capital
    pool_m = loss_measures(pool_loss)

    # each securitisation scenario: its positions as charged, the SRT verdict, the headline
    def scenario(name: str, s: Securitisation, irb_capital: float
                 ) -> tuple[Headline, tuple[PositionCapital, ...], bool]:
        charged = charge_positions(s.positions, pools_in[name], method)
        plat_loss = s.losses_by_holder().get(PLATFORM_ID, np.zeros(n_paths))
        m = loss_measures(plat_loss)
        # SRT: what share of the securitised loans' own tail (over their life, purchases
        # included) left the platform
        sec_m = loss_measures(s.pool_loss)
        sec_left = 1.0 - m.var_999 / sec_m.var_999 if sec_m.var_999 > 0 else 0.0
        verdict = assess(name, charged, originator=PLATFORM_ID, tail_share_left=sec_left,
                         expected_loss=sec_m.el, clean_up_call=s.clean_up_call,
                         originator_support=s.originator_support, policy=srt)
        capital = sum(p.capital for p in charged if p.holder == PLATFORM_ID) \
            if verdict.passed else irb_capital
        # the headline: against the platform holding every loan of the scenario (the pool,
        # plus for a revolving deal the loans its collections bought)
        held = np.asarray(pool_loss, dtype=np.float64) + s.purchased_loss
        base = pool_m if not np.any(s.purchased_loss) else loss_measures(held)
        tail_left = 1.0 - m.var_999 / base.var_999 if base.var_999 > 0 else 0.0
        head = Headline(name, m.el, m.var_999, capital,
                        1.0 - m.el / base.el if base.el > 0 else 0.0, tail_left,
                        baseline_capital - capital, verdict, charged)
        return head, charged, verdict.passed

    heads = [Headline("joint lending", *_platform_figures(party_loss[0], pool_m),
                      float(irb_by_party[0]),
                      *_shares_left(party_loss[0], pool_m),
                      baseline_capital - float(irb_by_party[0]))]
    if securitisation_whole is not None:
        heads.append(scenario("securitisation", securitisation_whole, baseline_capital)[0])

    # the combined picture
    losses: dict[str, np.ndarray] = {pid: party_loss[k].copy() for k, pid in enumerate(party_ids)}
    roles: dict[str, list[str]] = {pid: ["originator" if pid == PLATFORM_ID else "joint lender"]
                                   for pid in party_ids}
    loan_exp = {pid: float(exposure_by_party[k]) for k, pid in enumerate(party_ids)}
    irb_cap = {pid: float(irb_by_party[k]) for k, pid in enumerate(party_ids)}
    positions_by: dict[str, list[TranchePosition]] = {}
    charged_by: dict[str, list[PositionCapital]] = {}
    sec_r = securitisation_retained
    if sec_r is not None:
        head, charged, passed = scenario("both", sec_r, float(irb_by_party[0]))
        heads.append(head)
        # the platform's retained loans go into the deal: off its balance sheet for capital
        # only when SRT passes; its losses are always the deal's
        losses[PLATFORM_ID] = np.zeros(n_paths)
        loan_exp[PLATFORM_ID] = 0.0
        if passed:
            irb_cap[PLATFORM_ID] = 0.0
        for holder, loss in sec_r.losses_by_holder().items():
            losses[holder] = losses.get(holder, np.zeros(n_paths)) + loss
            roles.setdefault(holder, [])
            loan_exp.setdefault(holder, 0.0)
            irb_cap.setdefault(holder, 0.0)
        for pos, c in zip(sec_r.positions, charged, strict=True):
            positions_by.setdefault(pos.holder, []).append(pos)
            if pos.holder != PLATFORM_ID or passed:
                charged_by.setdefault(pos.holder, []).append(c)
            if "tranche holder" not in roles[pos.holder]:
                roles[pos.holder].append("tranche holder")
    parties = []
    for pid, loss in losses.items():
        cap_sec = sum(c.capital for c in charged_by.get(pid, []))
        rwa_sec = sum(c.rwa for c in charged_by.get(pid, []))
        t_exp = sum(p.amount for p in positions_by.get(pid, []))
        parties.append(PartyRisk(pid, tuple(roles[pid]), loan_exp[pid] + t_exp, loan_exp[pid],
                                 t_exp, loss_measures(loss), irb_cap[pid], cap_sec,
                                 12.5 * irb_cap[pid] + rwa_sec))
    partner_exp = [p.loan_exposure for p in parties if p.party_id in party_ids[1:]]
    total = np.asarray(pool_loss, dtype=np.float64)
    if sec_r is not None:
        total = total + sec_r.purchased_loss
    secs = {name: v for name, v in (("securitisation", securitisation_whole),
                                     ("both", securitisation_retained)) if v is not None}
    cash = {} if party_collections is None else {
        pid: (float(exposure_by_party[k]), np.asarray(party_collections[k], dtype=np.float64))
        for k, pid in enumerate(party_ids)}
    return Dispersion(tuple(parties), losses, np.asarray(pool_loss), pool_m, baseline_capital,
                      hhi(partner_exp), tuple(heads), total,
                      {pid: party_loss[k] for k, pid in enumerate(party_ids)}, cash, secs)


@numba.njit(cache=True, nogil=True)
def party_sums(shares: np.ndarray, capital: np.ndarray,
               balance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per party ``Σ_i shares[i, p] × capital[i]`` and ``Σ_i shares[i, p] × balance[i]``
    (``shares`` (n_loans, n_parties)) in one pass over the shares, each sum in loan order
    from 0.0 as numpy's ``(shares * x[:, None]).sum(axis=0)`` adds a column (the same
    numbers; :func:`party_sums_np` is that numpy form, its oracle)."""
    n, m = shares.shape
    irb = np.zeros(m)
    exposure = np.zeros(m)
    for i in range(n):
        c, b = capital[i], balance[i]
        for j in range(m):
            irb[j] += shares[i, j] * c
            exposure[j] += shares[i, j] * b
    return irb, exposure


def party_sums_np(shares: np.ndarray, capital: np.ndarray,
                  balance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The numpy twin of :func:`party_sums`."""
    return (shares * capital[:, None]).sum(axis=0), (shares * balance[:, None]).sum(axis=0)


def exposure_sums(shares: np.ndarray, capital: np.ndarray,
                  balance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each party's IRB capital and exposure (:func:`party_sums`); with one party numpy's
    sum of the single column is pairwise, so the twin computes it (the same numbers as
    before in every case)."""
    sh = np.asarray(shares, dtype=np.float64)
    cap = np.asarray(capital, dtype=np.float64)
    bal = np.asarray(balance, dtype=np.float64)
    if sh.ndim != 2 or sh.shape[1] < 2:
        return party_sums_np(sh, cap, bal)
    return party_sums(sh, cap, bal)


def _platform_figures(loss: np.ndarray, base: LossMeasures) -> tuple[float, float]:
    m = loss_measures(loss)
    return m.el, m.var_999


def _shares_left(loss: np.ndarray, base: LossMeasures) -> tuple[float, float]:
    m = loss_measures(loss)
    return (1.0 - m.el / base.el if base.el > 0 else 0.0,
            1.0 - m.var_999 / base.var_999 if base.var_999 > 0 else 0.0)


def disperse_paths(paths: PoolPaths, balance: np.ndarray, shares: np.ndarray, pd: np.ndarray,
                   lgd: np.ndarray, deal: Any | None = None, *, k_sa: float = RETAIL_K_SA,
                   w: float = 0.0, replenishment: PoolPaths | None = None,
                   waterfall: Any | None = None, irb: RetailIrb = RetailIrb(),
                   sec: SecuritisationCapital | None = None,
                   srt: SrtPolicy = SrtPolicy()) -> Dispersion:
    """:func:`disperse` from a run's paths that carry the allocation's party split.

    ``replenishment``: a revolving ``deal``'s profile of the loans it buys (the run's, e.g.
    ``tranching.revolving.run_replenishment``), used for the whole pool and for the
    platform's retained share alike. ``waterfall``: the caller's
    ``run_waterfall(deal, paths, replenishment=replenishment)`` of the whole pool, reused
    instead of running it again (the platform's retained share is always run here, on a
    thread of its own while the rest is computed: the same numbers). The retained share's
    securitisation keeps its waterfall's per-path totals (:func:`securitise_totals`), not
    the month-by-month waterfall, as the Dask workers' does (``partners.distributed``)."""
    with ThreadPoolExecutor(1) as ex:
        pending = None if deal is None else ex.submit(
            securitise_totals, deal, party_paths(paths, PLATFORM_ID), replenishment)
        pool_loss = path_loss(paths)
        party_loss = party_path_losses(paths)
        pf = paths.party_flows
        collected = sum(pf[name].sum(axis=2) for name in
                        ("interest", "scheduled_principal", "prepayment", "recovery"))
        whole = None if deal is None else securitise(deal, paths, replenishment,
                                                     waterfall=waterfall)
        # the loans' capital while the retained share's deal still runs
        capital = loan_capital(balance, shares, pd, lgd, irb,
                               scenarios=() if deal is None else ("securitisation", "both"))
        retained = None if pending is None else pending.result()
    return disperse(pool_loss=pool_loss, party_ids=tuple(paths.party_ids), party_loss=party_loss,
                    balance=balance, shares=shares, pd=pd, lgd=lgd, securitisation_whole=whole,
                    securitisation_retained=retained, k_sa=k_sa, w=w, irb=irb, sec=sec,
                    srt=srt, party_collections=collected, capital=capital)
