"""The cash-flow tape: what every class, fee, the reserve, the residual and the pool did on
each payment date, for one path or the expected path.

One row per payment date × item (long format). Items, in this order each date: the classes in
seniority order (``kind`` = "class"), the fees ("fee"), the reserve ("reserve"), the residual
("residual"), the residual holder ("residual holder": the subordinated class's cash plus the
residual, ``tranching.reconcile``), the CN mechanics when the deal has them — the tax on
interest income ("tax"), the servicer's advances ("servicer advances", kind "advances") and the
originator's shortfall undertaking ("shortfall undertaking", kind "undertaking") and the
collection accounts ("interest account", "principal account", kind "account") — and the pool
("pool"). Columns (CNY; empty where they do not apply):

- ``balance_bop`` / ``balance_eop``: a class's balance before / after the date's payments and
  write-downs; the reserve's balance; the advances outstanding; the pool's performing balance
  (before a call);
- ``due`` / ``paid`` / ``shortfall``: a class's interest due (coupon plus shortfall carried in),
  paid and carried out; a fee's due, paid and carried; the tax paid; the advances repaid; what
  the undertaking paid;
- ``principal``: a class's principal paid plus written-down principal reimbursed; the pool's
  principal collected (scheduled + prepaid);
- ``writedown``: principal written down on the date; ``pdl``: written-down principal not yet
  reimbursed after the date (the class's principal deficiency);
- ``interest`` / ``recovery`` / ``default`` / ``call_proceeds``: the pool's;
- ``excess_spread``: on the residual row, pool interest − tax − fees paid − classes' interest
  paid;
- on an account's row, ``due``: the collections paid into it on the date, and ``transfer_in``:
  the cash moved in from the other account less the cash moved out to it (the deal's cover
  rules); an account holds nothing after the date, so it has no ``cash``;
- ``cash``: cash paid to the item on the date (a class: interest + principal; a fee: paid; the
  reserve: its movement, balance_eop − balance_bop; the residual and its holder: what they
  received; the tax: paid; the advances: repaid − received; the undertaking: − what it paid,
  since it pays the deal; the pool: cash collected + call proceeds). Each date, the pool's cash
  = the cash of every other item but the residual holder + the revolving purchases.

Which path: ``expected`` (every column the mean over paths — the expected path), ``pNN`` (the
path whose pool loss, defaults − recoveries, is the NN-th percentile: the ⌈n·NN/100⌉-th smallest,
the order statistic of the VaR, ties to the lower path index), or a path index. A scenario is a
run made with ``--scenario``/``--deterministic``: its tape is that run's.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from tranching.errors import DealError, must_be
from tranching.reconcile import excess_spread, residual_holder_cashflows
from tranching.waterfall import WaterfallResult

COLUMNS: tuple[str, ...] = (
    "period", "date", "item", "kind", "balance_bop", "due", "paid", "shortfall", "principal",
    "writedown", "pdl", "balance_eop", "interest", "recovery", "default", "call_proceeds",
    "excess_spread", "transfer_in", "cash",
)
_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?|100)$")


def choose_path(result: WaterfallResult, which: str) -> int | None:
    """The path a tape shows: ``None`` for "expected", the path index for "pNN" (module doc) or
    an integer index; ``DealError`` naming ``--path`` otherwise."""
    text = which.strip().lower()
    n = result.n_paths
    if text == "expected":
        return None
    m = _PERCENTILE.match(text)
    if m:
        q = float(m.group(1)) / 100.0
        if not 0 < q <= 1:
            raise DealError(must_be("--path", "pNN with 0 < NN <= 100", which))
        loss = result.pool_cash["default"].sum(axis=1) - result.pool_cash["recovery"].sum(axis=1)
        order = np.argsort(loss, kind="stable")
        return int(order[max(math.ceil(n * q), 1) - 1])
    if text.isdigit() and int(text) < n:
        return int(text)
    raise DealError(must_be("--path", f"expected, pNN (a pool-loss percentile, e.g. p95) or a "
                            f"path index in [0, {n - 1}]", which))


def cashflow_tape(result: WaterfallResult, path: int | None = None) -> pd.DataFrame:
    """The tape of ``path`` (``None``: the expected path, means over paths); module doc."""

    def pick(a: np.ndarray) -> np.ndarray:  # (..., n_paths, n_months) -> (..., n_months)
        a = np.asarray(a, dtype=np.float64)
        return a.mean(axis=-2) if path is None else a[..., path, :]

    n_months = len(result.dates)
    period = np.arange(1, n_months + 1)
    rows: list[pd.DataFrame] = []

    def block(item: str, kind: str, **cols: np.ndarray) -> None:
        frame = pd.DataFrame({"period": period, "date": list(result.dates), "item": item,
                              "kind": kind})
        for c in COLUMNS[4:]:
            frame[c] = cols.get(c, np.full(n_months, np.nan))
        rows.append(frame)

    bal = pick(result.balance)
    for j, name in enumerate(result.tranche_names):
        bop = np.concatenate([[float(result.original_balance[j])], bal[j, :-1]])
        interest = pick(result.interest_paid[j])
        principal = pick(result.principal_paid[j]) + pick(result.reimbursed[j])
        block(name, "class", balance_bop=bop, due=pick(result.interest_due[j]), paid=interest,
              shortfall=pick(result.interest_shortfall[j]), principal=principal,
              writedown=pick(result.writedown[j]), pdl=pick(result.writedown_outstanding[j]),
              balance_eop=bal[j], cash=interest + principal)
    for name, due in result.fees_due.items():
        paid = pick(result.fees_paid[name])
        block(name, "fee", due=pick(due), paid=paid, shortfall=pick(due) - paid, cash=paid)
    res_bop, res_eop = pick(result.reserve_bop), pick(result.reserve)
    block("reserve", "reserve", balance_bop=res_bop, balance_eop=res_eop, cash=res_eop - res_bop)
    block("residual", "residual", excess_spread=pick(excess_spread(result)),
          cash=pick(result.residual))
    block("residual holder", "residual holder", cash=pick(residual_holder_cashflows(result)))
    if np.any(result.tax):
        tax = pick(result.tax)
        block("tax", "tax", paid=tax, cash=tax)
    if np.any(result.advance_made):
        adv_eop = pick(result.advances)
        adv_bop = np.concatenate([[0.0], adv_eop[:-1]])
        made, repaid = pick(result.advance_made), pick(result.advance_recovered)
        block("servicer advances", "advances", balance_bop=adv_bop, balance_eop=adv_eop,
              paid=repaid, cash=repaid - made)
    if np.any(result.support):
        support = pick(result.support)
        block("shortfall undertaking", "undertaking", paid=support, cash=-support)
    if result.accounts:
        acc = result.accounts
        net = pick(acc["to_interest"]) - pick(acc["to_principal"])
        block("interest account", "account", due=pick(acc["interest_in"]), transfer_in=net)
        block("principal account", "account", due=pick(acc["principal_in"]), transfer_in=-net)
    pc = result.pool_cash
    call = pick(result.call_proceeds)
    block("pool", "pool", balance_bop=pick(pc["balance_bop"]), balance_eop=pick(pc["balance_eop"]),
          principal=pick(pc["principal"]), interest=pick(pc["interest"]),
          recovery=pick(pc["recovery"]), default=pick(pc["default"]), call_proceeds=call,
          cash=pick(pc["interest"]) + pick(pc["principal"]) + pick(pc["recovery"]) + call)
    tape = pd.concat(rows, ignore_index=True)
    order = {name: k for k, name in enumerate(dict.fromkeys(tape["item"]))}
    tape["_o"] = tape["item"].map(order)
    tape = tape.sort_values(["period", "_o"], kind="stable").drop(columns="_o")
    return tape.reset_index(drop=True)[list(COLUMNS)]
