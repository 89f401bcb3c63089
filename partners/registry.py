"""The partner registry: ``partners.toml`` → frozen, validated values.

Schema (every field checked where it enters; errors name the field, the allowed values, what
was received and the file)::

    [platform]                      # the originator; its party id is always "platform"
    name = "Huixin Microcredit"
    net_assets = 5.0e9              # CNY, optional: R7 is checked only when given
    abs_bond_funding = 1.2e10       # CNY outstanding ABS / bond funding (R7)
    other_borrowing = 2.0e9         # CNY other borrowing (R7)

    [expected_loss]                 # optional when --assumptions is given
    annual_pd_by_score_band = [0.08, 0.045, 0.025, 0.014, 0.008, 0.004]   # one per SCORE_BANDS
    lgd = 0.85
    source = "..."

    [rules.R9]                      # optional overrides of DEFAULT_RULES parameters
    apr_cap = 0.24
    effective_from = 2015-09-01

    [[partner]]
    id = "bank_east"                # [a-z0-9_-], unique, not "platform"
    name = "East National Bank"
    kind = "bank"                   # bank | trust | consumer_finance | insurer
    bank_scope = "national"         # banks only: national | local (default national)
    capacity = 3.0e9                # CNY, > 0: the most it funds in this allocation
    commitment = 0.0                # CNY, 0 ≤ commitment ≤ capacity: the least it must receive
    required_yield = 0.05           # decimal, WA APR − EL rate of its book ≥ this
    [partner.eligibility]
    score_floor = 600               # 350..950
    apr_cap = 0.24                  # (0, 1]
    max_term_months = 24            # one of 3, 6, 9, 12, 18, 24
    repayment_types = ["level_annuity", "equal_principal"]   # names or Chinese labels; default all
    regions = ["*"]                 # "*" = all (default)
    [partner.regulatory]            # banks: net_tier1_capital and total_loans required
    net_tier1_capital = 4.0e10
    total_loans = 9.0e11
    existing_joint_with_platform = 0.0
    existing_internet_joint_loans = 0.0
    registered_region = "Zhejiang"  # required for a local bank
    [partner.concentration]         # optional, shares of this partner's funded balance
    max_region_share = 0.4
    max_score_band_share = 0.5
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from partners.errors import PartnerFileError
from partners.rules import DEFAULT_RULES, rules_with_overrides
from partners.types import (
    PLATFORM_ID,
    BankScope,
    Concentration,
    Eligibility,
    ExpectedLossTable,
    Partner,
    PartnerKind,
    Platform,
    Regulatory,
    Rule,
)
from portfolio.errors import ValidationError, must_be
from portfolio.loans.types import ALLOWED_TERMS, SCORE_BANDS, SCORE_MAX, SCORE_MIN, RepaymentType
from portfolio.validation import read_toml

__all__ = ["PLATFORM_ID", "BankScope", "Concentration", "Eligibility", "ExpectedLossTable",
           "Partner", "PartnerKind", "Platform", "Registry", "Regulatory", "as_of_date",
           "load_registry", "parse_registry"]

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Registry:
    platform: Platform
    partners: tuple[Partner, ...]
    rules: tuple[Rule, ...] = DEFAULT_RULES
    expected_loss: ExpectedLossTable | None = None
    source: str = ""

    @property
    def party_ids(self) -> tuple[str, ...]:
        """``("platform", partner ids…)`` — the column order of every shares matrix."""
        return (PLATFORM_ID, *(p.id for p in self.partners))

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def partner(self, partner_id: str) -> Partner:
        for p in self.partners:
            if p.id == partner_id:
                return p
        raise PartnerFileError(must_be("partner", f"one of {[p.id for p in self.partners]}",
                                       partner_id, self.source))

    def as_dict(self) -> dict[str, Any]:
        el = self.expected_loss
        return {
            "platform": {"name": self.platform.name, "net_assets": self.platform.net_assets,
                         "abs_bond_funding": self.platform.abs_bond_funding,
                         "other_borrowing": self.platform.other_borrowing},
            "partners": [p.as_dict() for p in self.partners],
            "rules": [r.as_dict() for r in self.rules],
            "expected_loss": None if el is None else {
                "annual_pd_by_score_band": list(el.annual_pd_by_score_band), "lgd": el.lgd,
                "source": el.source},
            "source": self.source,
        }


# --------------------------------------------------------------------------- parsing
def _num(table: Mapping[str, Any], key: str, where: str, *, lo: float = 0.0, hi: float = float("inf"),
         lo_open: bool = False, default: float | None = None, prefix: str = "") -> float:
    name = f"{prefix}{key}"
    if key not in table:
        if default is None:
            raise PartnerFileError(must_be(name, "given (a number)", "nothing", where))
        return default
    v = table[key]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise PartnerFileError(must_be(name, "a number", v, where))
    ok = (v > lo if lo_open else v >= lo) and v <= hi
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]" if hi != float("inf") else (
            f"> {lo:g}" if lo_open else f">= {lo:g}")
        raise PartnerFileError(must_be(name, f"in {rng}" if hi != float("inf") else rng, v, where))
    return float(v)


def _check_keys(table: Mapping[str, Any], allowed: set[str], name: str, where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise PartnerFileError(must_be(name, f"keys among {sorted(allowed)}", extra[0], where))


def _table(parent: Mapping[str, Any], key: str, name: str, where: str) -> Mapping[str, Any]:
    v = parent.get(key, {})
    if not isinstance(v, Mapping):
        raise PartnerFileError(must_be(name, "a table", v, where))
    return v


def _parse_eligibility(t: Mapping[str, Any], pfx: str, where: str) -> Eligibility:
    _check_keys(t, {"score_floor", "apr_cap", "max_term_months", "repayment_types", "regions"},
                pfx.rstrip("."), where)
    floor = t.get("score_floor", SCORE_MIN)
    if isinstance(floor, bool) or not isinstance(floor, int) or not SCORE_MIN <= floor <= SCORE_MAX:
        raise PartnerFileError(must_be(f"{pfx}score_floor", f"an integer in [{SCORE_MIN}, {SCORE_MAX}]",
                                       floor, where))
    apr_cap = _num(t, "apr_cap", where, lo=0.0, hi=1.0, lo_open=True, default=1.0, prefix=pfx)
    if apr_cap > 1.0:
        raise PartnerFileError(must_be(f"{pfx}apr_cap", "a decimal in (0, 1]", apr_cap, where))
    term = t.get("max_term_months", max(ALLOWED_TERMS))
    if isinstance(term, bool) or term not in ALLOWED_TERMS:
        raise PartnerFileError(must_be(f"{pfx}max_term_months", f"one of {list(ALLOWED_TERMS)}", term, where))
    rts_raw = t.get("repayment_types", [r.value for r in RepaymentType])
    if not isinstance(rts_raw, list) or not rts_raw:
        raise PartnerFileError(must_be(f"{pfx}repayment_types", "a non-empty list", rts_raw, where))
    try:
        rts = tuple(dict.fromkeys(RepaymentType.parse(v, where=f"{pfx}repayment_types in {where}")
                                  for v in rts_raw))
    except ValidationError as exc:
        raise PartnerFileError(str(exc)) from None
    regions_raw = t.get("regions", ["*"])
    if not isinstance(regions_raw, list) or not regions_raw or not all(
            isinstance(r, str) and r.strip() for r in regions_raw):
        raise PartnerFileError(must_be(f"{pfx}regions", 'a non-empty list of region names or ["*"]',
                                       regions_raw, where))
    regions = () if "*" in regions_raw else tuple(dict.fromkeys(r.strip() for r in regions_raw))
    return Eligibility(int(floor), apr_cap, int(term), rts, regions)


def _parse_partner(raw: Any, i: int, where: str) -> Partner:
    pfx = f"partner[{i}]."
    if not isinstance(raw, Mapping):
        raise PartnerFileError(must_be(f"partner[{i}]", "a table", raw, where))
    _check_keys(raw, {"id", "name", "kind", "bank_scope", "capacity", "commitment", "required_yield",
                      "eligibility", "regulatory", "concentration"}, f"partner[{i}]", where)
    pid = raw.get("id")
    if not isinstance(pid, str) or not _ID_RE.match(pid) or pid == PLATFORM_ID:
        raise PartnerFileError(must_be(f"{pfx}id", "lower-case letters, digits, '_' or '-' "
                                       f"(not {PLATFORM_ID!r})", pid, where))
    pfx = f"partner[{pid}]."
    name = raw.get("name", pid)
    if not isinstance(name, str) or not name.strip():
        raise PartnerFileError(must_be(f"{pfx}name", "a non-empty string", name, where))
    kinds = [k.value for k in PartnerKind]
    if raw.get("kind") not in kinds:
        raise PartnerFileError(must_be(f"{pfx}kind", f"one of {kinds}", raw.get("kind"), where))
    kind = PartnerKind(raw["kind"])
    scope: BankScope | None = None
    if kind is PartnerKind.BANK:
        s = raw.get("bank_scope", "national")
        if s not in [b.value for b in BankScope]:
            raise PartnerFileError(must_be(f"{pfx}bank_scope", "'national' or 'local'", s, where))
        scope = BankScope(s)
    elif "bank_scope" in raw:
        raise PartnerFileError(must_be(f"{pfx}bank_scope", "given only for kind = 'bank'",
                                       raw["bank_scope"], where))
    capacity = _num(raw, "capacity", where, lo=0.0, lo_open=True, prefix=pfx)
    commitment = _num(raw, "commitment", where, lo=0.0, hi=capacity, default=0.0, prefix=pfx)
    required_yield = _num(raw, "required_yield", where, lo=-1.0, hi=1.0, prefix=pfx)
    elig = _parse_eligibility(_table(raw, "eligibility", f"{pfx}eligibility", where),
                              f"{pfx}eligibility.", where)
    rt = _table(raw, "regulatory", f"{pfx}regulatory", where)
    rp = f"{pfx}regulatory."
    _check_keys(rt, {"net_tier1_capital", "total_loans", "existing_joint_with_platform",
                     "existing_internet_joint_loans", "registered_region"}, rp.rstrip("."), where)
    need = kind is PartnerKind.BANK
    region = rt.get("registered_region")
    if region is not None and (not isinstance(region, str) or not region.strip()):
        raise PartnerFileError(must_be(f"{rp}registered_region", "a region name", region, where))
    if scope is BankScope.LOCAL and region is None:
        raise PartnerFileError(must_be(f"{rp}registered_region", "given for a local bank (R4)",
                                       "nothing", where))
    reg = Regulatory(
        net_tier1_capital=_num(rt, "net_tier1_capital", where, default=None if need else 0.0, prefix=rp),
        total_loans=_num(rt, "total_loans", where, default=None if need else 0.0, prefix=rp),
        existing_joint_with_platform=_num(rt, "existing_joint_with_platform", where, default=0.0, prefix=rp),
        existing_internet_joint_loans=_num(rt, "existing_internet_joint_loans", where, default=0.0, prefix=rp),
        registered_region=region.strip() if isinstance(region, str) else None,
    )
    if need and reg.net_tier1_capital <= 0:
        raise PartnerFileError(must_be(f"{rp}net_tier1_capital", "> 0 for a bank (R2)",
                                       reg.net_tier1_capital, where))
    ct = _table(raw, "concentration", f"{pfx}concentration", where)
    cp = f"{pfx}concentration."
    _check_keys(ct, {"max_region_share", "max_score_band_share"}, cp.rstrip("."), where)
    conc = Concentration(
        max_region_share=_num(ct, "max_region_share", where, lo=0.0, hi=1.0, lo_open=True, prefix=cp)
        if "max_region_share" in ct else None,
        max_score_band_share=_num(ct, "max_score_band_share", where, lo=0.0, hi=1.0, lo_open=True,
                                  prefix=cp) if "max_score_band_share" in ct else None,
    )
    return Partner(pid, name.strip(), kind, capacity, required_yield, elig, reg, conc, commitment, scope)


def parse_registry(doc: Mapping[str, Any], where: str = "partners.toml") -> Registry:
    """Validate a parsed partners document (see the module docstring for the schema)."""
    _check_keys(doc, {"platform", "partner", "rules", "expected_loss"}, "partners file", where)
    pt = _table(doc, "platform", "platform", where)
    _check_keys(pt, {"id", "name", "net_assets", "abs_bond_funding", "other_borrowing"}, "platform", where)
    if pt.get("id", PLATFORM_ID) != PLATFORM_ID:
        raise PartnerFileError(must_be("platform.id", repr(PLATFORM_ID), pt.get("id"), where))
    platform = Platform(
        name=str(pt.get("name", PLATFORM_ID)),
        net_assets=_num(pt, "net_assets", where, lo=0.0, lo_open=True, prefix="platform.")
        if "net_assets" in pt else None,
        abs_bond_funding=_num(pt, "abs_bond_funding", where, default=0.0, prefix="platform."),
        other_borrowing=_num(pt, "other_borrowing", where, default=0.0, prefix="platform."),
    )
    raw_partners = doc.get("partner", [])
    if not isinstance(raw_partners, list) or not raw_partners:
        raise PartnerFileError(must_be("partner", "a non-empty array of tables ([[partner]])",
                                       raw_partners, where))
    partners = tuple(_parse_partner(p, i, where) for i, p in enumerate(raw_partners))
    seen: set[str] = set()
    for p in partners:
        if p.id in seen:
            raise PartnerFileError(must_be("partner.id", "unique", p.id, where))
        seen.add(p.id)
    rules = rules_with_overrides(_table(doc, "rules", "rules", where), where)
    el: ExpectedLossTable | None = None
    if "expected_loss" in doc:
        et = _table(doc, "expected_loss", "expected_loss", where)
        _check_keys(et, {"annual_pd_by_score_band", "lgd", "source"}, "expected_loss", where)
        pds = et.get("annual_pd_by_score_band")
        if (not isinstance(pds, list) or len(pds) != len(SCORE_BANDS)
                or not all(isinstance(x, int | float) and not isinstance(x, bool) and 0 <= x < 1
                           for x in pds)):
            raise PartnerFileError(must_be("expected_loss.annual_pd_by_score_band",
                                           f"{len(SCORE_BANDS)} probabilities in [0, 1), one per "
                                           f"score band {list(SCORE_BANDS)}", pds, where))
        el = ExpectedLossTable(tuple(float(x) for x in pds),
                               _num(et, "lgd", where, lo=0.0, hi=1.0, prefix="expected_loss."),
                               str(et.get("source", "")))
    return Registry(platform, partners, rules, el, where)


def load_registry(path: str | Path) -> Registry:
    """Read and validate a ``partners.toml``."""
    return parse_registry(read_toml(path, "partners file", PartnerFileError), str(path))


def as_of_date(value: dt.date | str | None) -> dt.date:
    if value is None:
        return dt.date.today()
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
