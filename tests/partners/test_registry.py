"""partners.toml: the example loads; every documented constraint is refused with the field named."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from partners_fixtures import registry_doc

from partners.errors import PartnerFileError
from partners.registry import BankScope, PartnerKind, load_registry, parse_registry
from portfolio.loans.types import RepaymentType

ROOT = Path(__file__).resolve().parents[2]


def test_example_file_has_two_national_banks_a_local_bank_and_a_trust():
    reg = load_registry(ROOT / "examples" / "partners.toml")
    kinds = [(p.kind, p.bank_scope) for p in reg.partners]
    assert kinds.count((PartnerKind.BANK, BankScope.NATIONAL)) == 2
    assert kinds.count((PartnerKind.BANK, BankScope.LOCAL)) == 1
    assert kinds.count((PartnerKind.TRUST, None)) == 1
    assert reg.party_ids[0] == "platform"
    north = reg.partner("bank_north")
    assert north.eligibility.repayment_types == (RepaymentType.LEVEL_ANNUITY, RepaymentType.EQUAL_PRINCIPAL)
    assert reg.partner("hangzhou_city").regulatory.registered_region == "浙江"
    assert reg.expected_loss is not None and len(reg.expected_loss.annual_pd_by_score_band) == 6


def _bad(path: list, value: object) -> dict:
    doc = copy.deepcopy(registry_doc())
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


_DELETE = object()

CASES = [
    (["partner", 0, "kind"], "bank_like", r"partner\[0\]\.kind"),
    (["partner", 0, "id"], "Bank A!", r"partner\[0\]\.id"),
    (["partner", 0, "id"], "platform", r"partner\[0\]\.id"),
    (["partner", 1, "id"], "bank_a", r"partner\[1\]\.id.*unique"),
    (["partner", 0, "capacity"], 0, r"partner\[0\]\.capacity"),
    (["partner", 0, "capacity"], _DELETE, r"partner\[0\]\.capacity"),
    (["partner", 0, "commitment"], 5e6, r"partner\[0\]\.commitment"),
    (["partner", 0, "required_yield"], "5%", r"partner\[0\]\.required_yield"),
    (["partner", 0, "bank_scope"], "regional", r"bank_scope"),
    (["partner", 3, "bank_scope"], "local", r"bank_scope.*only for kind"),
    (["partner", 0, "eligibility", "score_floor"], 1000, r"eligibility\.score_floor"),
    (["partner", 0, "eligibility", "apr_cap"], 24, r"eligibility\.apr_cap"),
    (["partner", 0, "eligibility", "max_term_months"], 10, r"eligibility\.max_term_months"),
    (["partner", 0, "eligibility", "repayment_types"], ["balloon"], r"repayment_type"),
    (["partner", 0, "eligibility", "regions"], [], r"eligibility\.regions"),
    (["partner", 0, "eligibility", "min_score"], 600, r"eligibility"),
    (["partner", 0, "regulatory"], {"total_loans": 1e12}, r"regulatory\.net_tier1_capital"),
    (["partner", 2, "regulatory", "registered_region"], _DELETE, r"registered_region"),
    (["partner", 0, "concentration", "max_region_share"], 1.5, r"concentration\.max_region_share"),
    (["platform", "id"], "originator", r"platform\.id"),
    (["platform", "net_assets"], -1, r"platform\.net_assets"),
    (["expected_loss", "annual_pd_by_score_band"], [0.1, 0.2], r"expected_loss\.annual_pd_by_score_band"),
    (["expected_loss", "lgd"], 1.2, r"expected_loss\.lgd"),
    (["partner"], [], r"partner"),
    (["rules"], {"R11": {}}, r"rules"),
]


@pytest.mark.parametrize(("path", "value", "match"), CASES)
def test_bad_partner_files_name_the_field(path, value, match):
    with pytest.raises(PartnerFileError, match=match):
        parse_registry(_bad(path, value), "bad.toml")


def test_messages_say_allowed_and_received():
    with pytest.raises(PartnerFileError) as exc:
        parse_registry(_bad(["partner", 0, "kind"], "bank_like"), "bad.toml")
    text = str(exc.value)
    assert "bank_like" in text and "consumer_finance" in text and "bad.toml" in text


def test_unreadable_files(tmp_path):
    with pytest.raises(PartnerFileError, match="does not exist"):
        load_registry(tmp_path / "missing.toml")
    bad = tmp_path / "p.toml"
    bad.write_text("[[partner]\nid = ", encoding="utf-8")
    with pytest.raises(PartnerFileError, match="not valid TOML"):
        load_registry(bad)
