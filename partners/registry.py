"""The partner registry: ``partners.toml`` → frozen, validated values.

Schema (declared below as ``REGISTRY`` with ``portfolio.validation``: every field's type and
bounds, unknown keys refused; errors are ``PartnerFileError`` naming the field path, e.g.
``partner[2].capacity``, the allowed values, what was received and the file)::

    [platform]                      # the originator; its party id is always "platform"
    name = "Huixin Microcredit"
    net_assets = 5.0e9              # CNY, optional: R7 is checked only when given
    abs_bond_funding = 1.2e10       # CNY outstanding ABS / bond funding (R7)
    other_borrowing = 2.0e9         # CNY other borrowing (R7)

    [expected_loss]                 # optional when --assumptions is given
    annual_pd_by_score_band = [0.08, 0.045, 0.025, 0.014, 0.008, 0.004]   # one per SCORE_BANDS
    lgd = 0.85
    source = "..."

    [rules.R9]                      # optional overrides of DEFAULT_RULES parameters, each
    apr_cap = 0.24                  # within its bounds (partners.rules.PARAM_BOUNDS)
    effective_from = 2015-09-01

    [[partner]]
    id = "bank_east"                # [a-z0-9_-], unique, not "platform"
    name = "East National Bank"
    kind = "bank"                   # bank | trust | consumer_finance | insurer
    bank_scope = "national"         # banks only: national | local (default national)
    capacity = 3.0e9                # CNY, finite, > 0: the most it funds in this allocation
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

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from partners.errors import PartnerFileError
from partners.rules import DEFAULT_RULES, RULE_OVERRIDES, apply_overrides
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
from portfolio.loans.types import ALLOWED_TERMS, SCORE_BANDS, SCORE_MAX, SCORE_MIN, RepaymentType
from portfolio.validation import (
    Check,
    Field,
    Interval,
    ListOf,
    Options,
    Str,
    StrOptions,
    Table,
    read_toml,
    validate,
    verbatim,
)

__all__ = ["PLATFORM_ID", "BankScope", "Concentration", "Eligibility", "ExpectedLossTable",
           "Partner", "PartnerKind", "Platform", "Registry", "Regulatory", "load_registry",
           "parse_registry"]

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
        raise PartnerFileError("partner", "one of " + ", ".join(p.id for p in self.partners),
                               partner_id, self.source)

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


# --------------------------------------------------------------------------- schema
_CNY = Interval(float, 0, None, unit="a finite amount in CNY")
_POSITIVE_CNY = Interval(float, 0, None, closed="right", unit="a finite amount in CNY")
_SHARE = Interval(float, 0, 1, closed="right", unit="a share")
_REPAYMENT_TYPES = "one of " + ", ".join(f"{t.value} ({t.label})" for t in RepaymentType)
_NOTHING = verbatim("nothing")  # "got nothing": a field that must be given is missing

ELIGIBILITY = Table({
    "score_floor": Field.optional(Interval(int, SCORE_MIN, SCORE_MAX), SCORE_MIN),
    "apr_cap": Field.optional(Interval(float, 0, 1, closed="right", unit="a decimal annual rate"),
                              1.0),
    "max_term_months": Field.optional(Options(ALLOWED_TERMS), max(ALLOWED_TERMS)),
    "repayment_types": Field.optional(ListOf(Check(RepaymentType.parse, _REPAYMENT_TYPES), min_len=1),
                                      list(RepaymentType)),
    "regions": Field.optional(ListOf(Str(nonempty=True), min_len=1,
                                     what='a non-empty list of region names or ["*"]'), ["*"]),
}, name="[partner.eligibility]")

REGULATORY = Table({  # net_tier1_capital and total_loans: required for banks (checked after)
    "net_tier1_capital": Field.optional(_CNY),
    "total_loans": Field.optional(_CNY),
    "existing_joint_with_platform": Field.optional(_CNY, 0.0),
    "existing_internet_joint_loans": Field.optional(_CNY, 0.0),
    "registered_region": Field.optional(Str(nonempty=True, what="a region name")),
}, name="[partner.regulatory]")

CONCENTRATION = Table({
    "max_region_share": Field.optional(_SHARE),
    "max_score_band_share": Field.optional(_SHARE),
}, name="[partner.concentration]")

PARTNER = Table({
    "id": Field(Str(pattern=r"(?!platform$)[a-z0-9][a-z0-9_-]{0,63}",
                    what=f"lower-case letters, digits, '_' or '-' (not {PLATFORM_ID!r})")),
    "name": Field.optional(Str(nonempty=True)),  # default: the id
    "kind": Field(StrOptions(tuple(k.value for k in PartnerKind))),
    "bank_scope": Field.optional(StrOptions(tuple(b.value for b in BankScope))),  # banks only
    "capacity": Field(_POSITIVE_CNY),
    "commitment": Field.optional(_CNY, 0.0),  # <= capacity (checked after)
    "required_yield": Field(Interval(float, -1, 1, unit="a decimal annual rate")),
    "eligibility": Field.optional(ELIGIBILITY, validate(ELIGIBILITY, {})),
    "regulatory": Field.optional(REGULATORY, validate(REGULATORY, {})),
    "concentration": Field.optional(CONCENTRATION, validate(CONCENTRATION, {})),
}, name="[[partner]]")

PLATFORM = Table({
    "id": Field.optional(StrOptions((PLATFORM_ID,)), PLATFORM_ID),
    "name": Field.optional(Str(), PLATFORM_ID),
    "net_assets": Field.optional(_POSITIVE_CNY),  # R7 is checked only when given
    "abs_bond_funding": Field.optional(_CNY, 0.0),
    "other_borrowing": Field.optional(_CNY, 0.0),
}, name="[platform]")

REGISTRY = Table({
    "platform": Field.optional(PLATFORM, validate(PLATFORM, {})),
    "expected_loss": Field.optional(Table({
        "annual_pd_by_score_band": Field(ListOf(
            Interval(float, 0, 1, closed="left", unit="a probability"),
            min_len=len(SCORE_BANDS), max_len=len(SCORE_BANDS),
            what=f"{len(SCORE_BANDS)} probabilities in [0, 1), one per score band "
                 f"{list(SCORE_BANDS)}")),
        "lgd": Field(Interval(float, 0, 1, unit="a share")),
        "source": Field.optional(Str(), ""),
    }, name="[expected_loss]")),
    "rules": Field.optional(RULE_OVERRIDES, validate(RULE_OVERRIDES, {})),
    "partner": Field(ListOf(PARTNER, min_len=1, what="a non-empty array of tables ([[partner]])")),
}, name="partners file")


# --------------------------------------------------------------------------- parsing
def _eligibility(e: Mapping[str, Any]) -> Eligibility:
    regions = e["regions"]
    return Eligibility(score_floor=e["score_floor"], apr_cap=e["apr_cap"],
                       max_term_months=e["max_term_months"],
                       repayment_types=tuple(dict.fromkeys(e["repayment_types"])),
                       regions=() if "*" in regions else tuple(dict.fromkeys(regions)))


def _partner(raw: Mapping[str, Any], i: int, where: str) -> Partner:
    """A checked ``[[partner]]`` table → ``Partner``, after the rules that tie fields together."""
    path = f"partner[{i}]"
    kind = PartnerKind(raw["kind"])
    is_bank = kind is PartnerKind.BANK
    if raw["bank_scope"] is not None and not is_bank:
        raise PartnerFileError(f"{path}.bank_scope", "given only for kind = 'bank'",
                               raw["bank_scope"], where)
    scope = BankScope(raw["bank_scope"] or BankScope.NATIONAL.value) if is_bank else None
    if raw["commitment"] > raw["capacity"]:
        raise PartnerFileError(f"{path}.commitment", f"<= capacity ({raw['capacity']:g})",
                               raw["commitment"], where)
    r = raw["regulatory"]
    for key in ("net_tier1_capital", "total_loans"):
        if is_bank and r[key] is None:
            raise PartnerFileError(f"{path}.regulatory.{key}", "given for a bank (R2, R3)",
                                   _NOTHING, where)
    if is_bank and r["net_tier1_capital"] <= 0:
        raise PartnerFileError(f"{path}.regulatory.net_tier1_capital", "> 0 for a bank (R2)",
                               r["net_tier1_capital"], where)
    if scope is BankScope.LOCAL and r["registered_region"] is None:
        raise PartnerFileError(f"{path}.regulatory.registered_region",
                               "given for a local bank (R4)", _NOTHING, where)
    reg = Regulatory(net_tier1_capital=r["net_tier1_capital"] or 0.0,
                     total_loans=r["total_loans"] or 0.0,
                     existing_joint_with_platform=r["existing_joint_with_platform"],
                     existing_internet_joint_loans=r["existing_internet_joint_loans"],
                     registered_region=r["registered_region"])
    c = raw["concentration"]
    return Partner(id=raw["id"], name=raw["name"] or raw["id"], kind=kind,
                   capacity=raw["capacity"], required_yield=raw["required_yield"],
                   eligibility=_eligibility(raw["eligibility"]), regulatory=reg,
                   concentration=Concentration(c["max_region_share"], c["max_score_band_share"]),
                   commitment=raw["commitment"], bank_scope=scope)


def parse_registry(doc: Mapping[str, Any], where: str = "partners.toml") -> Registry:
    """Validate a parsed partners document against ``REGISTRY`` (the schema in the module
    docstring), then the rules that tie fields together (unique ids, commitment ≤ capacity,
    a bank's regulatory figures)."""
    data = validate(REGISTRY, doc, where, error=PartnerFileError)
    partners = tuple(_partner(p, i, where) for i, p in enumerate(data["partner"]))
    ids = [p.id for p in partners]
    for i, pid in enumerate(ids):
        if pid in ids[:i]:
            raise PartnerFileError(f"partner[{i}].id", "unique (a repeat of an earlier partner)",
                                   pid, where)
    pt = data["platform"]
    platform = Platform(name=pt["name"], net_assets=pt["net_assets"],
                        abs_bond_funding=pt["abs_bond_funding"],
                        other_borrowing=pt["other_borrowing"])
    el = data["expected_loss"]
    expected_loss = None if el is None else ExpectedLossTable(
        tuple(el["annual_pd_by_score_band"]), el["lgd"], el["source"])
    return Registry(platform, partners, apply_overrides(data["rules"], where), expected_loss,
                    where)


def load_registry(path: str | Path) -> Registry:
    """Read and validate a ``partners.toml``."""
    return parse_registry(read_toml(path, "partners file", PartnerFileError), str(path))

