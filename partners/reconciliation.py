"""From the pool's loss to each party's, line by line, on every path — and each party's
economic result (cash in minus cash out) beside its credit loss.

**Credit-loss reconciliation** (one per picture: the combined one of the party table, and
securitisation alone). Lines, each an (n_paths,) array in CNY::

    pool loss (simulated: defaulted principal − recoveries)                   P
    + loss on the loans the deal bought while revolving                       R
    = loss to be borne                                                        P + R
      joint lending: each partner's share of the loans' loss                  L_k
      tranche t held by h: principal written off and not reimbursed           T_t,h
      absorbed by excess spread (the residual holder)                         X_s
      absorbed by the initial OC and the reserve (the residual holder)        X_o
      less the collateral left at the legal final (the residual holder)       −F
      paid under the shortfall undertaking (its provider)                     S
      servicer advances not recovered (the servicer: the platform)            A
      after the clean-up call (the caller: the called loans' later loss)      C
    = borne by the parties                                                    Σ L_k + Σ T + X_s + X_o − F + S + A + C
    difference                                                                (P + R) − borne

The deal's lines T, X_s, X_o, F, S and A are ``tranching.reconcile``'s loss reconciliation of the
waterfall (derived there from the cash identity; that module reconciles the deal's own cash
and loss, this one walks from the simulated pool to every party, the joint lenders included):
what the deal holds is the collateral's net loss while held (defaults − recoveries), which is
that reconciliation's pool loss less F. The difference is zero to the cent on every path (tested): the partners' shares come from the
simulation's party flows, the platform's share is what the deal was run on, and the deal's
lines add up to the loss of what it held over the loans' life. Each party's lines add up to its
row in the party table; the mean of each line is its EL, so the EL column adds up too.

**Economic view** (cash in − cash out, undiscounted, over the horizon; a positive figure is a
loss, as in the credit view, so the two columns compare):

* a joint lender: its share of the loans at cut-off (cash out) against its share of the
  collections (interest, principal, prepayments, recoveries);
* a note holder: the price of its holding at par (out) against the coupons, principal and
  reimbursements it receives (including what the originator's shortfall undertaking paid it,
  which is a cash-out line of the undertaking's provider: "paid under the shortfall
  undertaking");
* the residual holder: also the residual cash (excess spread after every payment), the reserve
  left at the end against the reserve funded at closing, and the over-collateralisation it
  contributed;
* the servicer (the platform): the advances of delinquent interest the deal never repaid
  ("servicer advances not recovered", made − repaid);
* fees: servicer fees are paid to the platform (the originator services the loans); other
  fees to third parties (trustee, agents), shown on their own line;
* the caller (the platform): a clean-up call buys the loans back at par (the price is their
  balance, ``tranching.waterfall``), so its result is the called loans' later net loss ``C``;
  interest on called loans after the call is not counted.

EL, VaR and ES of each view are ``portfolio.risk``'s estimators (``loss_measures``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from partners.dispersion import Dispersion, LossMeasures, Securitisation, loss_measures
from partners.registry import PLATFORM_ID

CENT = 0.005  # half a cent: the reconciliation closes when |difference| < this on every path
THIRD_PARTIES = "third parties"


@dataclass(frozen=True, slots=True)
class Line:
    label: str
    party: str  # who bears it ("" for totals)
    kind: str  # "pool", "add", "total", "holder", "difference"
    values: np.ndarray  # (n_paths,) CNY


@dataclass(frozen=True, slots=True)
class Reconciliation:
    scenario: str  # "combined" or "securitisation"
    lines: tuple[Line, ...]

    @property
    def difference(self) -> np.ndarray:
        return next(ln.values for ln in self.lines if ln.kind == "difference")

    @property
    def closes(self) -> bool:
        """|difference| below half a cent on every path."""
        return bool(np.all(np.abs(self.difference) < CENT))

    def by_party(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for ln in self.lines:
            if ln.kind == "holder":
                out[ln.party] = out.get(ln.party, 0.0) + ln.values
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One row per line: label, party, EL (the mean), the smallest and largest value over
        the paths."""
        return [{"scenario": self.scenario, "line": ln.label, "party": ln.party, "kind": ln.kind,
                 "el": _shown(ln.values.mean()), "min": _shown(ln.values.min()),
                 "max": _shown(ln.values.max())} for ln in self.lines]


def _shown(x: float) -> float:
    """A figure for a table: to the micro-yuan, without a negative zero (the float round-off of
    a line that is zero, e.g. an unrounded class loss of ±6e-8, reads 0.00, not −0.00)."""
    return round(float(x), 6) + 0.0


def _deal_lines(s: Securitisation) -> list[Line]:
    """The deal's part of the walk. The split of what the residual holder absorbed is
    ``tranching.reconcile``'s (the waterfall's cash and loss reconciliation, from
    the cash identity): the classes' principal losses, the cushion taken by excess spread and
    by the initial OC and reserve, and — since this walk follows the loans, not the notes — the
    collateral left at the legal final taken back out (the notes are due in full then; the
    loans and their later loss stay with the residual holder's side, on the caller's line)."""
    w = s.waterfall_totals()
    if w is None:  # no waterfall kept: one line for what the residual holder absorbed
        lines = [Line(f"tranche {p.tranche} held by {p.holder}: principal loss", p.holder,
                      "holder", np.asarray(p.loss, dtype=np.float64))
                 for p in s.positions if p.tranche != "OC"]
        absorbed = s.collateral_loss - sum(p.loss for p in s.positions)
        lines.append(Line("absorbed by excess spread, reserve and OC (residual holder)",
                          s.residual_holder, "holder", np.asarray(absorbed, dtype=np.float64)))
    else:
        names = list(w.tranche_names)
        losses = w.class_loss  # unrounded, as tranching.reconcile's lines
        lines = [Line(f"tranche {p.tranche} held by {p.holder}: principal loss", p.holder,
                      "holder", p.share * losses[names.index(p.tranche)])
                 for p in s.positions if p.tranche != "OC"]
        spread = w.excess_spread
        reserve_change = w.reserve_left - w.reserve_funded
        cushion = spread + w.initial_oc - reserve_change - w.residual
        by_spread = np.clip(cushion, 0.0, np.maximum(spread, 0.0))
        lines.append(Line("absorbed by excess spread (residual holder)", s.residual_holder,
                          "holder", by_spread))
        lines.append(Line("absorbed by the initial OC and the reserve (residual holder)",
                          s.residual_holder, "holder", cushion - by_spread))
        lines.append(Line("less the collateral left at the legal final (residual holder)",
                          s.residual_holder, "holder", -w.collateral_left))
        # the CN mechanics, each its own line of tranching.reconcile's loss side: what
        # the originator paid under its shortfall undertaking, and the servicer's advances not
        # recovered (the servicer is the platform, as for the servicer fee); zero without them
        support = w.support
        if support.any():
            lines.append(Line("paid under the shortfall undertaking (originator)",
                              s.support_provider, "holder", support))
        advances = w.advances
        if advances.any():
            lines.append(Line("servicer advances not recovered (servicer)", PLATFORM_ID,
                              "holder", advances))
    lines.append(Line("loss after the clean-up call (caller)", s.caller, "holder",
                      np.asarray(s.called_loss, dtype=np.float64)))
    return lines


def _close(scenario: str, pool: np.ndarray, purchased: np.ndarray, holders: list[Line]
           ) -> Reconciliation:
    to_bear = pool + purchased
    borne = np.sum([ln.values for ln in holders], axis=0) if holders else np.zeros_like(pool)
    lines = [Line("pool loss (simulated: defaults − recoveries)", "", "pool", pool),
             Line("+ loss on loans bought while revolving", "", "add", purchased),
             Line("= loss to be borne", "", "total", to_bear),
             *holders,
             Line("= borne by the parties", "", "total", borne),
             Line("difference (to be borne − borne)", "", "difference", to_bear - borne)]
    return Reconciliation(scenario, tuple(lines))


def reconcile(d: Dispersion) -> tuple[Reconciliation, ...]:
    """The combined picture (the party table's) and, with a deal, securitisation alone."""
    pool = np.asarray(d.pool_loss, dtype=np.float64)
    out = []
    retained = d.securitisations.get("both")
    holders = [Line(f"joint lending: {pid}'s share of the loans", pid, "holder", loss)
               for pid, loss in d.joint_losses.items()
               if pid != PLATFORM_ID or retained is None]
    if retained is not None:
        holders += _deal_lines(retained)
        purchased = np.asarray(retained.purchased_loss, dtype=np.float64)
    else:
        purchased = np.zeros_like(pool)
    out.append(_close("combined", pool, purchased, holders))
    whole = d.securitisations.get("securitisation")
    if whole is not None:
        out.append(_close("securitisation", pool, np.asarray(whole.purchased_loss, dtype=np.float64),
                          _deal_lines(whole)))
    return tuple(out)


# --------------------------------------------------------------------------- economic view
@dataclass(frozen=True, slots=True)
class PartyViews:
    """One party's two views side by side, each with EL, VaR and ES."""

    party: str
    credit: LossMeasures  # credit loss
    economic: LossMeasures  # cash out − cash in (a profit is negative)
    lines: Mapping[str, float]  # the economic lines' means (CNY; + = cash out)

    def line_rows(self) -> list[dict[str, Any]]:
        """The economic lines (their means, CNY; + = cash out) and their total, which is the
        economic EL of ``row()``."""
        rows = [{"party": self.party, "economic_line": k, "kind": "line", "el": _shown(v)}
                for k, v in self.lines.items()]
        rows.append({"party": self.party, "economic_line": "= economic result (EL)",
                     "kind": "total", "el": _shown(self.economic.el)})
        return rows

    def row(self) -> dict[str, Any]:
        c, e = self.credit, self.economic
        return {"party": self.party, "credit_el": c.el, "credit_var_999": c.var_999,
                "credit_es_999": c.es_999, "economic_el": e.el, "economic_var_999": e.var_999,
                "economic_es_999": e.es_999}


def _add(acc: dict[str, dict[str, np.ndarray]], party: str, label: str, v: np.ndarray) -> None:
    lines = acc.setdefault(party, {})
    lines[label] = lines.get(label, 0.0) + v


def _deal_cash(acc: dict[str, dict[str, np.ndarray]], s: Securitisation) -> None:
    w = s.waterfall_totals()
    if w is None:
        return
    names = list(w.tranche_names)
    coupons = w.coupons
    for p in s.positions:
        if p.tranche == "OC":
            # contributed at closing; comes back only through the residual (counted there)
            _add(acc, p.holder, "over-collateralisation contributed", np.full(w.n_paths, p.amount))
            continue
        i = names.index(p.tranche)
        _add(acc, p.holder, f"tranche {p.tranche}: coupons received", -p.share * coupons[i])
        _add(acc, p.holder, f"tranche {p.tranche}: principal loss", np.asarray(p.loss))
    _add(acc, s.residual_holder, "residual cash (excess spread)", -w.residual)
    _add(acc, s.residual_holder, "reserve funded at closing", w.reserve_funded.copy())
    _add(acc, s.residual_holder, "reserve left at the end", -w.reserve_left)
    for name, paid in w.fees.items():
        servicer = name in s.servicer_fees
        _add(acc, PLATFORM_ID if servicer else THIRD_PARTIES, f"fee {name} earned", -paid)
    # what the originator paid the notes under its shortfall undertaking, and the servicer's
    # advances the deal never repaid: cash out of their pockets into the notes' (lines only
    # where a path has half a cent of one, so a deal that never draws them shows none)
    for party, label, v in ((s.support_provider, "paid under the shortfall undertaking",
                             w.support),
                            (PLATFORM_ID, "servicer advances not recovered", w.advances)):
        v = np.asarray(v, dtype=np.float64)
        if v.size and float(np.abs(v).max()) >= 0.005:
            _add(acc, party, label, v.copy())
    # the call is at par (the price is the balance bought): only the later loss is a result
    _add(acc, s.caller, "loss after the clean-up call (loans bought back at par)",
         np.asarray(s.called_loss, dtype=np.float64))


def economic_views(d: Dispersion) -> tuple[PartyViews, ...]:
    """Each party of the combined picture: credit loss and economic result side by side."""
    acc: dict[str, dict[str, np.ndarray]] = {}
    retained = d.securitisations.get("both")
    for pid, cash in d.joint_cash.items():
        if pid == PLATFORM_ID and retained is not None:
            continue  # the platform's loans went into the deal
        funded, collected = cash
        _add(acc, pid, "loan shares funded at cut-off", np.full(collected.shape, funded))
        _add(acc, pid, "collections received", -collected)
    if retained is not None:
        _deal_cash(acc, retained)
    out = []
    for pid, credit in d.party_losses.items():
        lines = acc.get(pid, {})
        econ = np.sum(list(lines.values()), axis=0) if lines else np.zeros_like(credit)
        out.append(PartyViews(pid, loss_measures(credit), loss_measures(econ),
                              {k: float(np.mean(v)) for k, v in lines.items()}))
    if THIRD_PARTIES in acc:
        econ = np.sum(list(acc[THIRD_PARTIES].values()), axis=0)
        out.append(PartyViews(THIRD_PARTIES, loss_measures(np.zeros_like(econ)),
                              loss_measures(econ),
                              {k: float(np.mean(v)) for k, v in acc[THIRD_PARTIES].items()}))
    return tuple(out)
