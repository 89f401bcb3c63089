"""Deal files: bounds live in the schema. Every bad value is a ``ValidationError`` naming the
field path, what is allowed, what was received and the file; any bytes give one, never a
traceback; ``riskpool tranche check`` exits 2."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest

from portfolio.errors import ValidationError
from tranching.deal import deal_from_dict, load_deal

ROOT = Path(__file__).resolve().parents[2]
CN = ROOT / "examples" / "deal_cn_consumer.toml"
INF, NAN = math.inf, math.nan


def base() -> dict:
    return {
        "deal": {"name": "T", "closing_date": dt.date(2026, 1, 15),
                 "first_payment_date": dt.date(2026, 2, 26)},
        "tranches": [
            {"name": "A", "size": 0.8, "coupon": 0.03},
            {"name": "B", "size": 0.1, "coupon": 0.05},
            {"name": "Sub", "size": 0.1, "holder": "platform"},
        ],
        "fees": [{"name": "servicer", "kind": "servicer", "rate": 0.01},
                 {"name": "trustee", "kind": "fixed", "amount": 2000.0}],
        "reserve": {"target": 0.01},
        "revolving": {"months": 6},
        "triggers": [{"name": "cnl", "metric": "cnl", "schedule": [[1, 0.03], [13, 0.05]],
                      "effect": "turbo"}],
    }


def _doc(path: tuple, value: object) -> dict:
    doc = base()
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


BOUNDS = [
    (("tranches", 1, "coupon"), 7, r"tranches\[1\]\.coupon"),
    (("tranches", 1, "coupon"), INF, r"tranches\[1\]\.coupon"),
    (("tranches", 1, "coupon"), NAN, r"tranches\[1\]\.coupon"),
    (("tranches", 1, "coupon"), -0.01, r"tranches\[1\]\.coupon"),
    (("tranches", 0, "size"), NAN, r"tranches\[0\]\.size"),
    (("tranches", 0, "size"), 1.5, r"tranches\[0\]\.size"),
    (("tranches", 0, "amount"), INF, r"tranches\[0\]\.amount"),
    (("tranches", 0, "name"), 5, r"tranches\[0\]\.name"),
    (("tranches", 0, "rating"), "AAA", r"tranches\[0\]\.rating"),
    (("tranches", 2, "coupon"), "none", r"tranches\[2\]\.coupon"),
    (("fees", 0, "rate"), 7, r"fees\[0\]\.rate"),
    (("fees", 0, "rate"), NAN, r"fees\[0\]\.rate"),
    (("fees", 1, "amount"), INF, r"fees\[1\]\.amount"),
    (("fees", 1, "rate"), 0.01, r"fees\[1\]\.rate"),
    (("fees", 0, "amount"), 5.0, r"fees\[0\]\.amount"),
    (("reserve", "target"), INF, r"reserve\.target"),
    (("reserve", "floor"), NAN, r"reserve\.floor"),
    (("revolving", "months"), 12.5, r"revolving\.months"),
    (("revolving", "months"), 121, r"revolving\.months"),
    (("triggers", 0, "schedule"), [[1, INF]], r"triggers\[0\]\.schedule"),
    (("triggers", 0, "schedule"), [[1, NAN]], r"triggers\[0\]\.schedule"),
    (("triggers", 0, "schedule"), [[1.5, 0.03]], r"triggers\[0\]\.schedule"),
    (("triggers", 0, "schedule"), [[0, 0.03]], r"triggers\[0\]\.schedule"),
    (("triggers", 0, "schedule"), [[1, 1.5]], r"triggers\[0\]"),
    (("triggers", 0, "curable"), "no", r"triggers\[0\]\.curable"),
    (("triggers", 0, "tranches"), "A", r"triggers\[0\]\.tranches"),
    (("deal", "initial_oc"), NAN, r"deal\.initial_oc"),
    (("deal", "clean_up_call"), INF, r"deal\.clean_up_call"),
    (("deal", "closing_date"), "15/01/2026", r"deal\.closing_date"),
    (("deal", "closing_date"), dt.time(9, 0), r"deal\.closing_date"),
    (("deal", "name"), ["T"], r"deal\.name"),
    (("deal", "currency"), "CNY", r"deal\.currency"),
    (("retention",), {"kind": "vertical", "share": NAN}, r"retention\.share"),
    (("retention",), {"kind": "vertical", "share": 0.05, "who": "x"}, r"retention\.who"),
    (("waterfall",), [{"step": "fee", "fee": 1}], r"waterfall\[0\]\.fee"),
    (("waterfall",), [{"step": "reserve", "tranche": "A"}], r"waterfall\[0\]\.tranche"),
    (("waterfall",), ["fee"], r"waterfall\[0\]"),
    (("sponsor",), "x", r"sponsor"),
]


@pytest.mark.parametrize(("path", "value", "field"), BOUNDS)
def test_bad_value_is_refused_by_the_schema_with_its_field_path(path, value, field):
    with pytest.raises(ValidationError, match=field) as info:
        deal_from_dict(_doc(path, value), source="bad.toml")
    assert "bad.toml" in str(info.value)


def test_message_names_allowed_values_and_what_was_received():
    with pytest.raises(ValidationError) as info:
        deal_from_dict(_doc(("tranches", 1, "coupon"), 7), source="bad.toml")
    text = str(info.value)
    assert "tranches[1].coupon" in text and "[0, 1]" in text and "7" in text and "bad.toml" in text


def test_a_date_time_counts_as_its_date():
    # a TOML date-time used to stay a datetime, and comparing it with a date raised TypeError
    deal = deal_from_dict(_doc(("deal", "closing_date"), dt.datetime(2026, 1, 15, 9)))
    assert deal.closing_date == dt.date(2026, 1, 15) and type(deal.closing_date) is dt.date


@pytest.mark.parametrize("data", [b"\xff\xfe[deal]\n", b"[deal]\nname = \"\xff\"\n", b"\x00",
                                  b"[deal\n"])
def test_any_bytes_give_a_validation_error(tmp_path, data):
    path = tmp_path / "deal.toml"
    path.write_bytes(data)
    with pytest.raises(ValidationError, match="deal.toml"):
        load_deal(path)


@pytest.mark.parametrize("edit", [None, ("coupon = 0.045", "coupon = 7"),
                                  ("amount = 2000.0", "amount = inf")])
def test_cli_tranche_check_exits_2_on_a_bad_deal_file(cli, tmp_path, edit):
    bad = tmp_path / "bad.toml"
    if edit is None:
        bad.write_bytes(b"\xff\xfe")
    else:
        text = CN.read_text(encoding="utf-8")
        assert edit[0] in text
        bad.write_text(text.replace(edit[0], edit[1]), encoding="utf-8")
    r = cli("tranche", "check", "--structure", bad)
    assert r.code == 2
    assert "bad.toml" in r.err and "Traceback" not in r.err
    if edit is not None:
        assert ("tranches[1].coupon" if "coupon" in edit[1] else "fees[1].amount") in r.err


def test_cli_tranche_check_accepts_the_example(cli):
    r = cli("tranche", "check", "--structure", CN)
    assert r.code == 0, r.err
    assert "1. fee servicer" in r.out
