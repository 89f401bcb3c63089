"""partners.toml bounds live in the schema: every bad value is a ``ValidationError`` naming the
field path, what is allowed, what was received and the file — before any solver runs."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
from partners_fixtures import registry_doc

from partners.errors import PartnerFileError
from partners.registry import load_registry, parse_registry
from partners.rules import DEFAULT_RULES, PARAM_BOUNDS
from portfolio.errors import ValidationError

ROOT = Path(__file__).resolve().parents[2]
INF, NAN = math.inf, math.nan


def _doc(path: tuple, value: object) -> dict:
    doc = copy.deepcopy(registry_doc())
    node = doc
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
    node[path[-1]] = value
    return doc


BOUNDS = [
    # rule overrides: shares and rates in [0, 1], the APR cap in (0, 0.36], months integer
    (("rules", "R9", "apr_cap"), 7, r"rules\.R9\.apr_cap"),
    (("rules", "R9", "apr_cap"), 0, r"rules\.R9\.apr_cap"),
    (("rules", "R9", "apr_cap"), 0.37, r"rules\.R9\.apr_cap"),
    (("rules", "R2", "max_share_of_tier1"), 7, r"rules\.R2\.max_share_of_tier1"),
    (("rules", "R3", "max_share_of_total_loans"), -0.1, r"rules\.R3\.max_share_of_total_loans"),
    (("rules", "R1", "min_platform_share"), 1.5, r"rules\.R1\.min_platform_share"),
    (("rules", "R6", "max_bullet_term_months"), 12.7, r"rules\.R6\.max_bullet_term_months"),
    (("rules", "R5", "max_household_credit"), INF, r"rules\.R5\.max_household_credit"),
    (("rules", "R7", "max_abs_multiple"), NAN, r"rules\.R7\.max_abs_multiple"),
    (("rules", "R8", "max_annual_rate"), 2.0, r"rules\.R8\.max_annual_rate"),
    (("rules", "R9", "effective_from"), "soon", r"rules\.R9\.effective_from"),
    (("rules", "R9", "kinds"), ["trust"], r"rules\.R9"),
    (("rules", "R9", "cap"), 0.3, r"rules\.R9"),
    (("rules", "R10"), {}, r"rules"),
    # partner amounts: finite, >= 0
    (("partner", 0, "capacity"), INF, r"partner\[0\]\.capacity"),
    (("partner", 0, "capacity"), NAN, r"partner\[0\]\.capacity"),
    (("partner", 0, "commitment"), INF, r"partner\[0\]\.commitment"),
    (("partner", 0, "commitment"), -1.0, r"partner\[0\]\.commitment"),
    (("partner", 2, "capacity"), "big", r"partner\[2\]\.capacity"),
    (("partner", 1, "regulatory", "total_loans"), INF, r"partner\[1\]\.regulatory\.total_loans"),
    (("partner", 1, "regulatory", "net_tier1_capital"), NAN,
     r"partner\[1\]\.regulatory\.net_tier1_capital"),
    (("partner", 0, "required_yield"), INF, r"partner\[0\]\.required_yield"),
    (("partner", 0, "eligibility", "score_floor"), 600.5, r"partner\[0\]\.eligibility\.score_floor"),
    (("partner", 0, "eligibility", "apr_cap"), NAN, r"partner\[0\]\.eligibility\.apr_cap"),
    (("partner", 3, "concentration", "max_region_share"), 0, r"partner\[3\]\.concentration"),
    (("platform", "abs_bond_funding"), INF, r"platform\.abs_bond_funding"),
    (("platform", "net_assets"), 0, r"platform\.net_assets"),
    (("expected_loss", "lgd"), NAN, r"expected_loss\.lgd"),
    (("expected_loss", "annual_pd_by_score_band"), [0.1] * 5 + [NAN],
     r"expected_loss\.annual_pd_by_score_band"),
    # unknown keys, wrong types
    (("partner", 0, "colour"), "red", r"partner\[0\]\.colour"),
    (("platform", "ceo"), "x", r"platform\.ceo"),
    (("expected_loss", "pd"), 0.1, r"expected_loss\.pd"),
    (("budget",), 1, r"budget"),
    (("partner", 0, "eligibility"), "all", r"partner\[0\]\.eligibility"),
    (("partner", 0, "name"), 5, r"partner\[0\]\.name"),
    (("platform", "name"), 5, r"platform\.name"),
    (("expected_loss", "source"), 5, r"expected_loss\.source"),
]


@pytest.mark.parametrize(("path", "value", "field"), BOUNDS)
def test_bad_value_is_refused_by_the_schema_with_its_field_path(path, value, field):
    with pytest.raises(ValidationError, match=field) as info:
        parse_registry(_doc(path, value), "bad.toml")
    assert "bad.toml" in str(info.value)


def test_message_names_allowed_values_and_what_was_received():
    with pytest.raises(ValidationError) as info:
        parse_registry(_doc(("rules", "R9", "apr_cap"), 7), "bad.toml")
    text = str(info.value)
    assert "rules.R9.apr_cap" in text and "0.36" in text and "7" in text and "bad.toml" in text
    with pytest.raises(ValidationError) as info:
        parse_registry(_doc(("partner", 0, "capacity"), INF), "bad.toml")
    text = str(info.value)
    assert "partner[0].capacity" in text and "finite" in text and "inf" in text


def test_override_within_bounds_is_applied():
    reg = parse_registry(_doc(("rules", "R9", "apr_cap"), 0.36), "ok.toml")
    assert reg.rule("R9").params["apr_cap"] == 0.36
    reg = parse_registry(_doc(("rules", "R6", "max_bullet_term_months"), 9), "ok.toml")
    assert reg.rule("R6").params["max_bullet_term_months"] == 9
    assert isinstance(reg.rule("R6").params["max_bullet_term_months"], int)


@pytest.mark.parametrize("data", [b"\xff\xfe[platform]\n", b"[platform]\nname = \"\xff\"\n",
                                  b"\x00\x01\x02", b"[[partner]]\nid = "])
def test_any_bytes_give_a_validation_error(tmp_path, data):
    path = tmp_path / "partners.toml"
    path.write_bytes(data)
    with pytest.raises(ValidationError, match="partners.toml"):
        load_registry(path)


@pytest.mark.parametrize(("edit", "field"), [
    (None, "not UTF-8"),
    (("[rules.R9]\napr_cap = 0.24", "[rules.R9]\napr_cap = 7"), "rules.R9.apr_cap"),
    (("capacity = 6.0e7", "capacity = inf"), "partner[2].capacity"),
    (("[[partner]]\nid = \"west_trust\"", "[[partner]]\nid = \"west_trust\"\ncommitment = inf"),
     "partner[3].commitment"),
])
def test_cli_allocate_exits_2_on_a_bad_partners_file(cli, tmp_path, edit, field):
    bad = tmp_path / "bad.toml"
    if edit is None:
        bad.write_bytes(b"\xff\xfe[platform]")
    else:
        text = (ROOT / "examples" / "partners.toml").read_text(encoding="utf-8")
        assert edit[0] in text
        bad.write_text(text.replace(edit[0], edit[1]), encoding="utf-8")
    db = tmp_path / "none.duckdb"
    r = cli("allocate", "--db", db, "--partners", bad, "--originated", "2026-10-01", "2026-10-31")
    assert r.code == 2
    assert "bad.toml" in r.err and field in r.err and "Traceback" not in r.err
    assert not db.exists()  # refused before the database is opened


def test_default_rules_are_within_their_own_bounds():
    for rule in DEFAULT_RULES:
        for key, spec in PARAM_BOUNDS[rule.id].items():
            assert spec.check(rule.params[key], key, "", PartnerFileError) == rule.params[key]
