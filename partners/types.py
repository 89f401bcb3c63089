"""The values shared by the partner registry and the rules: partners, the platform, the
expected-loss table, a rule and a breach.

``partners.rules`` (the checks R1–R9) imports only these; ``partners.registry`` (reads
``partners.toml``) imports these and the rules' defaults. One direction, no cycle
(``tests/test_layers.py`` checks every package for import cycles).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from portfolio.loans.types import ALLOWED_TERMS, SCORE_MIN, RepaymentType

PLATFORM_ID = "platform"

Scope = Literal["loan", "allocation", "party", "platform"]


class PartnerKind(str, Enum):
    BANK = "bank"
    TRUST = "trust"
    CONSUMER_FINANCE = "consumer_finance"
    INSURER = "insurer"


class BankScope(str, Enum):
    NATIONAL = "national"
    LOCAL = "local"


@dataclass(frozen=True, slots=True)
class Eligibility:
    score_floor: int = SCORE_MIN
    apr_cap: float = 1.0
    max_term_months: int = max(ALLOWED_TERMS)
    repayment_types: tuple[RepaymentType, ...] = tuple(RepaymentType)
    regions: tuple[str, ...] = ()  # empty = every region

    @property
    def repayment_codes(self) -> tuple[int, ...]:
        return tuple(t.code for t in self.repayment_types)


@dataclass(frozen=True, slots=True)
class Regulatory:
    net_tier1_capital: float = 0.0
    total_loans: float = 0.0
    existing_joint_with_platform: float = 0.0
    existing_internet_joint_loans: float = 0.0
    registered_region: str | None = None


@dataclass(frozen=True, slots=True)
class Concentration:
    max_region_share: float | None = None
    max_score_band_share: float | None = None


@dataclass(frozen=True, slots=True)
class Partner:
    id: str
    name: str
    kind: PartnerKind
    capacity: float
    required_yield: float
    eligibility: Eligibility
    regulatory: Regulatory
    concentration: Concentration
    commitment: float = 0.0
    bank_scope: BankScope | None = None

    @property
    def is_local_bank(self) -> bool:
        return self.kind is PartnerKind.BANK and self.bank_scope is BankScope.LOCAL

    def as_dict(self) -> dict[str, Any]:
        e, r, c = self.eligibility, self.regulatory, self.concentration
        return {
            "id": self.id, "name": self.name, "kind": self.kind.value,
            "bank_scope": self.bank_scope.value if self.bank_scope else None,
            "capacity": self.capacity, "commitment": self.commitment,
            "required_yield": self.required_yield,
            "eligibility": {"score_floor": e.score_floor, "apr_cap": e.apr_cap,
                            "max_term_months": e.max_term_months,
                            "repayment_types": [t.value for t in e.repayment_types],
                            "regions": list(e.regions) or ["*"]},
            "regulatory": {"net_tier1_capital": r.net_tier1_capital, "total_loans": r.total_loans,
                           "existing_joint_with_platform": r.existing_joint_with_platform,
                           "existing_internet_joint_loans": r.existing_internet_joint_loans,
                           "registered_region": r.registered_region},
            "concentration": {"max_region_share": c.max_region_share,
                              "max_score_band_share": c.max_score_band_share},
        }


@dataclass(frozen=True, slots=True)
class Platform:
    name: str = "platform"
    net_assets: float | None = None
    abs_bond_funding: float = 0.0
    other_borrowing: float = 0.0
    id: str = PLATFORM_ID


@dataclass(frozen=True, slots=True)
class ExpectedLossTable:
    """Annual PD per score band (``types.SCORE_BANDS``) and one LGD: the EL rate of a loan is
    ``annual_pd[band] × lgd`` a year (docs/model.md)."""

    annual_pd_by_score_band: tuple[float, ...]
    lgd: float
    source: str = ""


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    title: str
    scope: Scope
    params: Mapping[str, Any]
    effective_from: dt.date
    source: str
    note: str = ""

    def applies_on(self, day: dt.date) -> bool:
        return self.effective_from <= day

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "scope": self.scope,
            "params": dict(self.params),
            "effective_from": self.effective_from.isoformat(),
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Breach:
    """One rule broken: by which party and/or which loans, and by how much (``amount``, ``unit``)."""

    rule_id: str
    message: str
    amount: float
    unit: str  # "CNY", "share", "apr", "months"
    party_id: str | None = None
    n_loans: int = 0
    loan_ids: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule_id,
            "party": self.party_id,
            "amount": self.amount,
            "unit": self.unit,
            "n_loans": self.n_loans,
            "loan_ids": list(self.loan_ids),
            "message": self.message,
        }
