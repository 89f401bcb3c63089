"""Regulatory rules R1–R9 (docs/model.md §13) as data: id, parameters, effective date, source, check.

A rule is a frozen value (:class:`Rule`); its parameters can be overridden per deployment in
``partners.toml`` (``[rules.R9] apr_cap = 0.24``) and a rule only applies from its
``effective_from`` date. Each check is a plain function over arrays that returns the
:class:`Breach` es it finds — which loans or which party, and by how much — never a bare
boolean. The allocation's independent re-check (``partners.allocation.verify_allocation``)
calls these same functions on the loan-level result.

Scopes:

* ``loan`` rules (R5, R6, R8, R9) are properties of a loan. A loan that breaks one may not be
  funded by a partner: the optimiser leaves it with the platform, and the re-check reports a
  breach if any partner holds a share of it.
* ``allocation`` rule R1 reads the shares (joint lending only).
* ``party`` rules (R2, R3, R4) read one partner's funded loans against its regulatory figures.
* ``platform`` rule R7 reads the originator's own funding figures.

Interpretations (documented, configurable through the parameters):

* R1 — as the issue states it: the platform keeps at least ``min_platform_share`` (30%) of
  every joint loan. (CBIRC 银保监办发〔2021〕24号, item 2, sets the 30% floor on the
  cooperating institution's own funding share.)
* R2/R3 apply to ``kind = "bank"`` partners. Whole-loan purchases of the platform's online
  loans (forward flow) count like joint loans — the conservative reading.
  R3: ``existing_internet_joint_loans + X ≤ max_share × (total_loans + X)``, where X is what
  this allocation adds (the new loans enter the bank's total book too).
* R5 — the rule caps the credit limit granted to one household (授信额度). The household is
  approximated by the pseudonymous ``borrower_id`` (no household key in the book). With
  ``basis = "limit"`` (default) a loan breaks R5 when its household's total credit limit across
  the book (``household_limit``: the sum of ``credit_limit`` over the borrower's loans
  outstanding at the cut-off, from ``portfolio.store.allocations.household_credit_limits``)
  exceeds the cap; without those limits (a batch not read from the book) and with
  ``basis = "balance"``, the household's exposure is the sum of the cut-off balances of the
  loans being allocated (without borrower ids each loan counts alone).
* R8 — the APR a loan was sold with (its ``disclosed_apr``, else its stated ``apr``) must be
  the annualised rate on the outstanding balance of its cash flows (``LoanArrays.cashflow_apr``,
  ``portfolio.loans.schedules.product_apr``) within ``tolerance`` (0.0005), and an annualised
  decimal in [``min_annual_rate``, ``max_annual_rate``] (below the minimum looks like a daily
  or monthly rate entered as an annual one). A flat-fee loan shown only its flat rate breaks it.
* R9 — the cap applies to the cash-flow APR, not to a stated flat rate.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numba
import numpy as np

from partners import lookup
from partners.errors import PartnerFileError
from partners.types import Breach, Partner, Platform, Rule, Scope
from portfolio.loans.arrays import LoanArrays
from portfolio.loans.types import APR_DISCLOSURE_TOL, RepaymentType
from portfolio.validation import Date, Field, Interval, Spec, Str, StrOptions, Table, validate

__all__ = ["AMOUNT_TOL", "DEFAULT_RULES", "apply_overrides", "MAX_LISTED_LOANS", "PARAM_BOUNDS", "RULE_IDS",
           "RULE_OVERRIDES", "SHARE_TOL", "Breach", "Rule", "check_local_region", "check_loan_rule", "check_party_amount",
           "check_platform_funding", "check_platform_share", "loan_rule_excess", "loan_rule_excesses", "loan_rule_ok",
           "r2_headroom", "r3_headroom", "rules_with_overrides"]

#: How many loan ids a breach lists (the count and amount always cover all of them).
MAX_LISTED_LOANS = 20

#: Tolerance of the re-check for amounts (CNY) and shares: float noise, not leniency.
AMOUNT_TOL = 1e-6
SHARE_TOL = 1e-9


def _rule(rid: str, title: str, scope: Scope, params: dict[str, Any], eff: str, source: str,
          note: str = "") -> Rule:
    return Rule(rid, title, scope, MappingProxyType(params), dt.date.fromisoformat(eff), source, note)


# The notice's items and dates, from its text: items 2 (30% funding share) and 5 (local banks)
# apply from 1 Jan 2022, existing loans running off (item 6: "本通知第二条、第五条自2022年1月1日起
# 执行，存量业务自然结清"); items 3 and 4 (concentration limits) from the notice's date, with "the
# other provisions' transition the same as the Measures'" (item 6: "其他规定过渡期与《办法》一致",
# the two-year transition of CBIRC Order 2020 No. 9 for business existing before it).
_CBIRC_2021_24 = ("CBIRC General Office notice 银保监办发〔2021〕24号 (关于进一步规范商业银行互联网贷款"
                  "业务的通知, 19 Feb 2021)")
_CBIRC_2020_9 = "CBIRC Order 2020 No. 9 (商业银行互联网贷款管理暂行办法, 12 Jul 2020)"

DEFAULT_RULES: tuple[Rule, ...] = (
    _rule("R1", "platform keeps a minimum share of every joint loan", "allocation",
          {"min_platform_share": 0.30}, "2022-01-01",
          f"{_CBIRC_2021_24}, item 2; in force from 1 Jan 2022 (item 6)",
          "loans funded before 2022-01-01 run off under the old terms (item 6)"),
    _rule("R2", "a bank's joint loans with one partner <= share of its net tier-1 capital", "party",
          {"max_share_of_tier1": 0.25, "kinds": ("bank",)}, "2021-02-19",
          f"{_CBIRC_2021_24}, item 3; from the notice's date (item 6)",
          "existing balances above the limit: the transition of Order 2020 No. 9 (item 6)"),
    _rule("R3", "a bank's joint internet loans <= share of its total loans", "party",
          {"max_share_of_total_loans": 0.50, "kinds": ("bank",)}, "2021-02-19",
          f"{_CBIRC_2021_24}, item 4; from the notice's date (item 6)",
          "existing balances above the limit: the transition of Order 2020 No. 9 (item 6)"),
    _rule("R4", "local banks lend only within their registered region", "party",
          {}, "2022-01-01", f"{_CBIRC_2021_24}, item 5; in force from 1 Jan 2022 (item 6)",
          "banks without physical branches that lend mainly online are exempt (item 5)"),
    _rule("R5", "consumer credit to one household <= cap", "loan",
          {"max_household_credit": 200_000.0, "basis": "limit"}, "2020-07-12",
          f"{_CBIRC_2020_9}: 单户用于消费的个人信用贷款授信额度应当不超过人民币20万元 (the credit "
          "limit granted to one household)",
          "basis 'limit': the household's total credit limit across the book; 'balance': the "
          "cut-off balances of the loans allocated"),
    _rule("R6", "bullet (principal-at-maturity) loans <= max term", "loan",
          {"max_bullet_term_months": 12}, "2020-07-12", _CBIRC_2020_9),
    _rule("R7", "ABS/bond funding <= k x net assets; other borrowing <= m x net assets", "platform",
          {"max_abs_multiple": 4.0, "max_other_borrowing_multiple": 1.0}, "2020-11-02",
          "CBIRC/PBOC draft interim measures for online microlending, Nov 2020"),
    _rule("R8", "APR is an annualised rate on the outstanding balance", "loan",
          {"min_annual_rate": 0.02, "max_annual_rate": 1.0,
           "tolerance": APR_DISCLOSURE_TOL}, "2021-03-01",
          "PBOC Announcement [2021] No. 3"),
    _rule("R9", "APR cap", "loan", {"apr_cap": 0.24}, "2015-09-01",
          "market practice; 24%/36% tiers of the 2015 Supreme Court private-lending rules"),
)

RULE_IDS: tuple[str, ...] = tuple(r.id for r in DEFAULT_RULES)
_BULLET_CODES = (RepaymentType.INTEREST_ONLY.code, RepaymentType.DAILY_INTEREST.code)


#: What a ``[rules.Rx]`` table in ``partners.toml`` may set: each parameter with its bounds,
#: plus ``effective_from`` and ``source``. ``kinds`` (whom R2/R3 apply to) is not configurable.
_SHARE = Interval(float, 0, 1, unit="a share")
_RATE = Interval(float, 0, 1, unit="a decimal annual rate")
_CNY = Interval(float, 0, None, unit="a finite amount in CNY")
_MULTIPLE = Interval(float, 0, None, unit="a finite multiple of net assets")
PARAM_BOUNDS: Mapping[str, Mapping[str, Spec]] = MappingProxyType({
    "R1": {"min_platform_share": _SHARE},
    "R2": {"max_share_of_tier1": _SHARE},
    "R3": {"max_share_of_total_loans": _SHARE},
    "R4": {},
    "R5": {"max_household_credit": _CNY, "basis": StrOptions(("limit", "balance"))},
    "R6": {"max_bullet_term_months": Interval(int, 0, None, unit="a whole number of months")},
    "R7": {"max_abs_multiple": _MULTIPLE, "max_other_borrowing_multiple": _MULTIPLE},
    "R8": {"min_annual_rate": _RATE, "max_annual_rate": _RATE,
           "tolerance": Interval(float, 0, 0.05, unit="a decimal annual rate")},
    # the 36% upper tier of the 2015 private-lending rules is the highest cap a rule may set
    "R9": {"apr_cap": Interval(float, 0, 0.36, closed="right", unit="a decimal annual rate")},
})

RULE_OVERRIDES = Table({
    rid: Field.optional(Table({
        **{key: Field.optional(spec) for key, spec in PARAM_BOUNDS[rid].items()},
        "effective_from": Field.optional(Date()),
        "source": Field.optional(Str(nonempty=True)),
    }, name=f"[rules.{rid}]"))
    for rid in RULE_IDS
}, name="[rules]")


def rules_with_overrides(overrides: Mapping[str, Any], where: str = "") -> tuple[Rule, ...]:
    """``DEFAULT_RULES`` with the ``[rules.Rx]`` tables of a partners file applied (checked
    against ``RULE_OVERRIDES``: known rules and parameters, each within its bounds)."""
    return apply_overrides(validate(RULE_OVERRIDES, overrides, where, "rules", PartnerFileError),
                           where)


def apply_overrides(checked: Mapping[str, Any], where: str = "") -> tuple[Rule, ...]:
    """``DEFAULT_RULES`` with overrides already checked by ``RULE_OVERRIDES`` applied (a rule
    or a parameter that is ``None`` keeps its default); R8's range must stay ordered."""
    out = []
    for rule in DEFAULT_RULES:
        table = checked[rule.id]
        if table is None:
            out.append(rule)
            continue
        given = {k: v for k, v in table.items() if v is not None}
        params = {**rule.params, **{k: v for k, v in given.items() if k in PARAM_BOUNDS[rule.id]}}
        if rule.id == "R8" and params["min_annual_rate"] > params["max_annual_rate"]:
            raise PartnerFileError("rules.R8.min_annual_rate",
                                   f"<= max_annual_rate ({params['max_annual_rate']})",
                                   params["min_annual_rate"], where)
        out.append(dataclasses.replace(
            rule, params=MappingProxyType(params),
            effective_from=given.get("effective_from", rule.effective_from),
            source=given.get("source", rule.source)))
    return tuple(out)


def _listed(ids: np.ndarray) -> tuple[str, ...]:
    return tuple(str(x) for x in ids[:MAX_LISTED_LOANS])


# --------------------------------------------------------------------------- loan rules
def loan_rule_excess(rule: Rule, loans: LoanArrays, borrower_id: np.ndarray | None = None,
                     household_limit: np.ndarray | None = None,
                     cashflow_apr: np.ndarray | None = None) -> np.ndarray:
    """(n_loans,) how much each loan exceeds a loan-scope rule (0 = passes). Units per rule:
    R5 CNY over the household cap, R6 months over the bullet limit, R8 distance outside the
    annualised range, R9 APR above the cap. ``household_limit``: per loan, its household's
    total credit limit across the book (R5 with ``basis = "limit"``). ``cashflow_apr``:
    ``loans.cashflow_apr`` (R8, R9) when the caller has it already.

    R5 over borrower codes, R6 and R8 are one compiled pass each (:func:`_r5_excess`,
    :func:`_r6_excess`, :func:`_r8_excess`); :func:`loan_rule_excess_np` is the oracle, and
    what runs in the other cases."""
    p = rule.params
    n = len(loans)
    if rule.id == "R5" and not (p.get("basis", "limit") == "limit"
                                and household_limit is not None) and n:
        ids = None if borrower_id is None or len(borrower_id) == 0 else np.asarray(borrower_id)
        if ids is not None and ids.dtype.kind in "iu" and ids.min() >= 0 and ids.max() < n:
            # codes 0 … n−1 (allocate factorises the ids once): bins as they are
            out = np.empty(n)
            _r5_excess(ids, np.ascontiguousarray(loans.balance, dtype=np.float64),
                       float(p["max_household_credit"]), np.zeros(int(ids.max()) + 1), out)
            return out
    if rule.id == "R6":
        out = np.empty(n)
        bullet = np.zeros(256, dtype=np.bool_)
        bullet[np.asarray(_BULLET_CODES, dtype=np.int64) % 256] = True
        _r6_excess(np.asarray(loans.repayment_type), np.asarray(loans.term_months), bullet,
                   float(p["max_bullet_term_months"]), out)
        return out
    if rule.id == "R8":
        lo, hi = float(p["min_annual_rate"]), float(p["max_annual_rate"])
        tol = float(p.get("tolerance", APR_DISCLOSURE_TOL))
        apr = np.ascontiguousarray(loans.apr, dtype=np.float64)
        disclosed = loans.disclosed_apr
        out = np.empty(n)
        _r8_excess(apr if disclosed is None else np.ascontiguousarray(disclosed, np.float64),
                   disclosed is not None, apr,
                   loans.cashflow_apr if cashflow_apr is None else cashflow_apr, lo, hi, tol,
                   out)
        return out
    return loan_rule_excess_np(rule, loans, borrower_id, household_limit, cashflow_apr)


def loan_rule_excess_np(rule: Rule, loans: LoanArrays, borrower_id: np.ndarray | None = None,
                        household_limit: np.ndarray | None = None,
                        cashflow_apr: np.ndarray | None = None) -> np.ndarray:
    """:func:`loan_rule_excess` in numpy array passes (its oracle)."""
    p = rule.params
    if rule.id == "R5":
        cap = float(p["max_household_credit"])
        if p.get("basis", "limit") == "limit" and household_limit is not None:
            return np.maximum(np.asarray(household_limit, dtype=np.float64) - cap, 0.0)
        if borrower_id is None or len(borrower_id) == 0:
            total = loans.balance
        else:
            ids = np.asarray(borrower_id)
            if ids.dtype.kind in "iu" and ids.min() >= 0 and ids.max() < len(ids):
                inverse = ids  # codes 0 … n−1 (allocate factorises the ids once): bins as they are
            else:
                _, inverse = np.unique(ids.astype(str), return_inverse=True)
            total = np.bincount(inverse, weights=loans.balance)[inverse]
        return np.maximum(total - cap, 0.0)
    if rule.id == "R6":
        is_bullet = lookup.isin(loans.repayment_type, _BULLET_CODES)
        over = loans.term_months.astype(np.float64) - float(p["max_bullet_term_months"])
        return np.where(is_bullet, np.maximum(over, 0.0), 0.0)
    if rule.id == "R8":
        lo, hi = float(p["min_annual_rate"]), float(p["max_annual_rate"])
        tol = float(p.get("tolerance", APR_DISCLOSURE_TOL))
        shown = loans.shown_apr
        bad = ~np.isfinite(shown) | ~np.isfinite(loans.apr)
        shown = np.where(bad, 0.0, shown)
        cf = loans.cashflow_apr if cashflow_apr is None else cashflow_apr
        off = np.maximum(np.abs(shown - cf) - tol, 0.0)
        out_of_range = np.maximum(lo - shown, 0.0) + np.maximum(shown - hi, 0.0)
        return np.where(bad, np.inf, off + out_of_range)
    if rule.id == "R9":
        cf = loans.cashflow_apr if cashflow_apr is None else cashflow_apr
        return np.maximum(cf - float(p["apr_cap"]), 0.0)
    raise ValueError(f"{rule.id} is not a loan rule")


@numba.njit(cache=True, nogil=True)
def _r5_excess(codes, balance, cap, total, out):  # pragma: no cover - numba
    """R5 by borrower: each code's balances added in loan order into ``total`` (zeros, as
    ``np.bincount`` adds them), then each loan's borrower total over ``cap``."""
    for i in range(codes.shape[0]):
        total[codes[i]] += balance[i]
    for i in range(codes.shape[0]):
        out[i] = _maximum0(total[codes[i]] - cap)


@numba.njit(cache=True, nogil=True)
def _r6_excess(rtype, term, bullet, limit, out):  # pragma: no cover - numba
    """R6: a bullet loan's months beyond ``limit`` (``bullet[code]``), 0 for the others."""
    for i in range(out.shape[0]):
        out[i] = _maximum0(float(term[i]) - limit) if bullet[rtype[i] % 256] else 0.0


@numba.njit(cache=True, nogil=True)
def _maximum0(x):  # pragma: no cover - numba
    """``np.maximum(x, 0.0)``: x when x > 0 or NaN, else 0.0 (−0.0 too, as numpy gives)."""
    return x if (x > 0.0 or x != x) else 0.0


@numba.njit(cache=True, nogil=True)
def _r8_excess(disclosed, has_disclosed, apr, cashflow_apr, lo, hi, tol,
               out):  # pragma: no cover - numba
    """R8's per-loan excess (:func:`loan_rule_excess_np`'s, operation for operation) in one pass: the
    shown APR is the disclosed one where finite, else the stated ``apr``."""
    for i in range(out.shape[0]):
        shown = disclosed[i] if has_disclosed and np.isfinite(disclosed[i]) else apr[i]
        if not (np.isfinite(shown) and np.isfinite(apr[i])):
            out[i] = np.inf
            continue
        off = _maximum0(abs(shown - cashflow_apr[i]) - tol)
        out[i] = off + (_maximum0(lo - shown) + _maximum0(shown - hi))


_LOAN_UNITS = {"R5": "CNY", "R6": "months", "R8": "apr", "R9": "apr"}


def check_loan_rule(rule: Rule, loans: LoanArrays, borrower_id: np.ndarray | None = None,
                    funded_by_partner: np.ndarray | None = None,
                    household_limit: np.ndarray | None = None,
                    excess: np.ndarray | None = None) -> list[Breach]:
    """Loans breaking a loan rule. With ``funded_by_partner`` (bool per loan) only the loans a
    partner holds a share of count as breaches (the platform may keep a loan it cannot pass on).
    ``excess``: the rule's :func:`loan_rule_excess` when the caller has it already."""
    if excess is None:
        excess = loan_rule_excess(rule, loans, borrower_id, household_limit)
    bad = excess > 0
    if funded_by_partner is not None:
        bad &= funded_by_partner
    if not bad.any():
        return []
    ids = loans.loan_id[bad]
    worst = float(np.max(excess[bad]))
    who = " funded by a partner" if funded_by_partner is not None else ""
    return [Breach(rule.id, f"{rule.id} ({rule.title}): {int(bad.sum())} loan(s){who} break it; "
                   f"worst by {worst:.6g} {_LOAN_UNITS[rule.id]}{_rates(rule, loans, excess, bad)}",
                   worst, _LOAN_UNITS[rule.id], None, int(bad.sum()), _listed(ids))]


def _rates(rule: Rule, loans: LoanArrays, excess: np.ndarray, bad: np.ndarray) -> str:
    """R8/R9: the worst loan named with both rates."""
    if rule.id not in ("R8", "R9"):
        return ""
    i = int(np.flatnonzero(bad)[np.argmax(excess[bad])])
    true = float(loans.cashflow_apr[i])
    if rule.id == "R9":
        return (f" (loan {loans.loan_id[i]}: cash-flow APR {true:.4%}, stated rate "
                f"{float(loans.apr[i]):.4%}, cap {float(rule.params['apr_cap']):.2%})")
    shown = float(loans.shown_apr[i])
    disclosed = loans.disclosed_apr
    label = ("disclosed APR" if disclosed is not None and np.isfinite(disclosed[i])
             else "stated rate")
    return f" (loan {loans.loan_id[i]}: {label} {shown:.4%}, cash-flow APR {true:.4%})"


def loan_rule_excesses(rules: tuple[Rule, ...], loans: LoanArrays,
                       borrower_id: np.ndarray | None, as_of: dt.date,
                       household_limit: np.ndarray | None = None,
                       cashflow_apr: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """:func:`loan_rule_excess` of every loan rule in force on ``as_of``, by rule id: a pure
    function of the loans and the rule, so the allocation computes it once for its
    eligibility and its re-check. ``cashflow_apr``: ``loans.cashflow_apr`` when the caller
    has it already."""
    return {rule.id: loan_rule_excess(rule, loans, borrower_id, household_limit, cashflow_apr)
            for rule in rules if rule.scope == "loan" and rule.applies_on(as_of)}


def loan_rule_ok(rules: tuple[Rule, ...], loans: LoanArrays, borrower_id: np.ndarray | None,
                 as_of: dt.date, household_limit: np.ndarray | None = None,
                 excess: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """(n_loans,) bool: the loan passes every loan rule in force on ``as_of``. ``excess``:
    :func:`loan_rule_excesses` when the caller has them already."""
    if excess is None:
        excess = loan_rule_excesses(rules, loans, borrower_id, as_of, household_limit)
    ok = np.ones(len(loans), dtype=bool)
    for rule in rules:
        if rule.scope == "loan" and rule.applies_on(as_of):
            ok &= excess[rule.id] <= 0
    return ok


# --------------------------------------------------------------------------- R1
def check_platform_share(rule: Rule, loans: LoanArrays, platform_share: np.ndarray,
                         partner_share_total: np.ndarray) -> list[Breach]:
    """R1 on joint loans (loans a partner shares in): platform share ≥ ``min_platform_share``."""
    floor = float(rule.params["min_platform_share"])
    joint = partner_share_total > SHARE_TOL
    short = np.where(joint, floor - platform_share, 0.0)
    bad = short > SHARE_TOL
    if not bad.any():
        return []
    worst = float(short[bad].max())
    return [Breach("R1", f"R1: platform share below {floor:.0%} on {int(bad.sum())} joint loan(s); "
                   f"worst short by {worst:.6g}", worst, "share", "platform", int(bad.sum()),
                   _listed(loans.loan_id[bad]))]


# --------------------------------------------------------------------------- party rules
def r2_headroom(rule: Rule, partner: Partner) -> float | None:
    """CNY this allocation may add to ``partner`` under R2 (None: rule does not apply)."""
    if partner.kind.value not in rule.params["kinds"]:
        return None
    reg = partner.regulatory
    return float(rule.params["max_share_of_tier1"]) * reg.net_tier1_capital - reg.existing_joint_with_platform


def r3_headroom(rule: Rule, partner: Partner) -> float | None:
    """CNY this allocation may add under R3: from E + X ≤ s·(T + X), X ≤ (s·T − E) / (1 − s)."""
    if partner.kind.value not in rule.params["kinds"]:
        return None
    s = float(rule.params["max_share_of_total_loans"])
    reg = partner.regulatory
    if s >= 1:
        return float("inf")
    return (s * reg.total_loans - reg.existing_internet_joint_loans) / (1.0 - s)


def check_party_amount(rule: Rule, partner: Partner, funded: float) -> list[Breach]:
    """R2 / R3: the partner's funded amount (CNY) from this allocation against its headroom."""
    head = r2_headroom(rule, partner) if rule.id == "R2" else r3_headroom(rule, partner)
    if head is None or funded <= head + AMOUNT_TOL + 1e-12 * abs(head):
        return []
    excess = funded - head
    if rule.id == "R2":
        what = (f"joint loans with the platform {partner.regulatory.existing_joint_with_platform + funded:,.2f} "
                f"> {rule.params['max_share_of_tier1']:.0%} of net tier-1 capital "
                f"{partner.regulatory.net_tier1_capital:,.2f}")
    else:
        what = (f"joint internet loans exceed {rule.params['max_share_of_total_loans']:.0%} of total "
                f"loans (existing {partner.regulatory.existing_internet_joint_loans:,.2f}, total "
                f"{partner.regulatory.total_loans:,.2f}, adding {funded:,.2f})")
    return [Breach(rule.id, f"{rule.id} ({partner.id}): {what}; over by {excess:,.2f} CNY", excess,
                   "CNY", partner.id)]


def check_local_region(rule: Rule, partner: Partner, loans: LoanArrays, share: np.ndarray) -> list[Breach]:
    """R4: a local bank funds no loan outside its registered region."""
    if not partner.is_local_bank:
        return []
    region = partner.regulatory.registered_region
    bad = share > SHARE_TOL
    funded = np.flatnonzero(bad)
    bad[funded] = loans.region[funded] != region  # the region strings of funded loans only
    if not bad.any():
        return []
    amount = float((share[bad] * loans.balance[bad]).sum())
    return [Breach("R4", f"R4 ({partner.id}): local bank registered in {region!r} funds "
                   f"{int(bad.sum())} loan(s) elsewhere, {amount:,.2f} CNY", amount, "CNY",
                   partner.id, int(bad.sum()), _listed(loans.loan_id[bad]))]


# --------------------------------------------------------------------------- R7
def check_platform_funding(rule: Rule, platform: Platform) -> list[Breach]:
    """R7 on the originator's own figures (skipped when ``net_assets`` is not given)."""
    if platform.net_assets is None:
        return []
    out = []
    abs_cap = float(rule.params["max_abs_multiple"]) * platform.net_assets
    other_cap = float(rule.params["max_other_borrowing_multiple"]) * platform.net_assets
    if platform.abs_bond_funding > abs_cap + AMOUNT_TOL:
        over = platform.abs_bond_funding - abs_cap
        out.append(Breach("R7", f"R7: ABS/bond funding {platform.abs_bond_funding:,.2f} > "
                          f"{rule.params['max_abs_multiple']:g} x net assets {platform.net_assets:,.2f}; "
                          f"over by {over:,.2f} CNY", over, "CNY", "platform"))
    if platform.other_borrowing > other_cap + AMOUNT_TOL:
        over = platform.other_borrowing - other_cap
        out.append(Breach("R7", f"R7: other borrowing {platform.other_borrowing:,.2f} > "
                          f"{rule.params['max_other_borrowing_multiple']:g} x net assets "
                          f"{platform.net_assets:,.2f}; over by {over:,.2f} CNY", over, "CNY", "platform"))
    return out
