"""Deal TOML parsing and validation: every documented rule has a test naming the field."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pytest

from tranching.deal import (
    Effect,
    FeeStep,
    InterestStep,
    Metric,
    PrincipalMode,
    PrincipalStep,
    ReimburseStep,
    ResidualStep,
    deal_from_dict,
    load_deal,
    payment_dates,
)
from tranching.errors import DealError

ROOT = Path(__file__).resolve().parents[2]


def base() -> dict:
    return {
        "deal": {"name": "T", "closing_date": dt.date(2026, 1, 15),
                 "first_payment_date": dt.date(2026, 2, 26)},
        "tranches": [
            {"name": "A", "size": 0.8, "coupon": 0.03},
            {"name": "B", "size": 0.1, "coupon": 0.05},
            {"name": "Sub", "size": 0.1, "holder": "platform"},
        ],
        "fees": [{"name": "servicer", "kind": "servicer", "rate": 0.01}],
    }


def with_(d: dict, path: str, value: object) -> dict:
    out = copy.deepcopy(d)
    node = out
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    elif value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return out


def test_default_waterfall_is_fees_interest_principal_reimburse_residual() -> None:
    deal = deal_from_dict(base())
    assert deal.waterfall == (
        FeeStep("servicer"), InterestStep("A"), InterestStep("B"),
        PrincipalStep(("A", "B", "Sub")), ReimburseStep(("A", "B", "Sub")), ResidualStep(),
    )
    assert deal.principal_mode is PrincipalMode.SEQUENTIAL
    assert deal.tranches[-1].coupon == 0.0
    assert "residual to platform" in deal.describe_waterfall()


@pytest.mark.parametrize("path", ["examples/deal_cn_consumer.toml", "examples/deal_us_consumer.toml"])
def test_examples_load(path: str) -> None:
    deal = load_deal(ROOT / path)
    assert len(deal.tranches) == 3
    assert deal.triggers and deal.triggers[0].metric is Metric.CNL
    assert deal.triggers[0].effect is Effect.TURBO
    assert isinstance(deal.waterfall[-1], ResidualStep)


def test_us_example_cnl_schedule_steps_up() -> None:
    deal = load_deal(ROOT / "examples/deal_us_consumer.toml")
    trig = deal.triggers[0]
    # examples/deal_us_consumer.toml (the SoFi 2019-2 schedule): 3.0% -> 5.0% -> 7.0% of the pool
    assert [trig.level_at(m) for m in (1, 12, 13, 24, 25, 40)] == [0.03, 0.03, 0.05, 0.05, 0.07, 0.07]


def test_payment_dates_clamp_to_month_end() -> None:
    deal = deal_from_dict(with_(base(), "deal.first_payment_date", dt.date(2026, 1, 31)))
    assert payment_dates(deal, 3) == [dt.date(2026, 1, 31), dt.date(2026, 2, 28), dt.date(2026, 3, 31)]


def test_holdings_vertical_retention_splits_every_tranche() -> None:
    d = base()
    d["retention"] = {"kind": "vertical", "share": 0.05}
    deal = deal_from_dict(d)
    h = {(x.tranche, x.holder): x.share for x in deal.holdings()}
    assert h[("A", "platform")] == 0.05 and h[("A", "investors")] == pytest.approx(0.95)
    assert h[("Sub", "platform")] == 1.0


BAD = [
    # (mutation path, value, field named in the message)
    ("tranches", [{"name": "A", "size": 1.0, "coupon": 0.03}], "tranches"),
    ("tranches.1.size", 0.2, r"tranches\[\]\.size"),
    ("tranches.0.coupon", 3.2, r"tranches\[0\]\.coupon"),
    ("tranches.0", {"name": "A", "size": 0.8}, r"tranches\[0\]\.coupon"),
    ("tranches.1", {"name": "A", "size": 0.1, "coupon": 0.05}, r"tranches\[1\]\.name.*unique"),
    ("tranches.1", {"name": "B", "coupon": 0.05}, r"tranches\[1\]\.size"),
    ("deal.principal_mode", "waterfall", r"deal\.principal_mode"),
    ("deal.first_payment_date", dt.date(2026, 1, 1), r"deal\.first_payment_date"),
    ("deal.clean_up_call", 1.5, r"deal\.clean_up_call"),
    ("deal.colour", "red", r"deal\.colour"),
    ("deal.name", None, r"deal\.name"),
    ("fees.0.kind", "tax", r"fees\[0\]\.kind"),
    ("fees.0.rate", 5.0, r"fees\[0\]\.rate"),
    ("triggers", [{"name": "x", "metric": "wind", "level": 0.1, "effect": "turbo"}],
     r"triggers\[0\]\.metric"),
    ("triggers", [{"name": "x", "metric": "cnl", "level": 0.1, "effect": "panic"}],
     r"triggers\[0\]\.effect"),
    ("triggers", [{"name": "x", "metric": "cnl", "effect": "turbo"}], r"triggers\[0\]\.schedule"),
    ("triggers", [{"name": "x", "metric": "cnl", "schedule": [[13, 0.05], [1, 0.03]],
                   "effect": "turbo"}], r"triggers\[0\]\.schedule"),
    ("triggers", [{"name": "x", "metric": "cnl", "level": 0.1, "effect": "trap_cash"}],
     r"triggers\[0\]\.effect"),
    ("triggers", [{"name": "x", "metric": "cnl", "level": 0.1, "effect": "end_revolving"}],
     r"triggers\[0\]\.effect"),
    ("triggers", [{"name": "x", "metric": "oc", "level": 1.0, "effect": "turbo",
                   "tranches": ["Z"]}], r"triggers\[0\]\.tranches"),
    ("reserve", {"target": 2.0}, r"reserve\.target"),
    ("reserve", {"target": 0.01, "basis": "peak"}, r"reserve\.basis"),
    ("reserve", {"target": 0.01, "funding": "later"}, r"reserve\.funding"),
    ("revolving", {"months": -1}, r"revolving\.months"),
    ("retention", {"kind": "first_loss", "share": 0.2}, r"retention\.share"),
    ("retention", {"kind": "diagonal", "share": 0.05}, r"retention\.kind"),
    ("waterfall", [{"step": "fee", "fee": "servicer"}, {"step": "bonus"}], r"waterfall\[1\]\.step"),
    ("waterfall", [{"step": "fee", "fee": "servicer"}, {"step": "interest", "tranche": "A"},
                   {"step": "interest", "tranche": "B"}, {"step": "principal"}], "waterfall"),
    ("waterfall", [{"step": "interest", "tranche": "A"}, {"step": "interest", "tranche": "B"},
                   {"step": "principal"}, {"step": "residual"}], "waterfall"),
    ("waterfall", [{"step": "fee", "fee": "servicer"}, {"step": "interest", "tranche": "A"},
                   {"step": "principal"}, {"step": "residual"}], "waterfall"),
    ("waterfall", [{"step": "fee", "fee": "servicer"}, {"step": "interest", "tranche": "A"},
                   {"step": "interest", "tranche": "B"}, {"step": "principal", "tranches": ["B", "A"]},
                   {"step": "principal", "tranches": ["Sub"]}, {"step": "residual"}], "waterfall"),
    ("waterfall", [{"step": "fee", "fee": "servicer"}, {"step": "interest", "tranche": "A"},
                   {"step": "interest", "tranche": "B"}, {"step": "principal"}, {"step": "reserve"},
                   {"step": "residual"}], "waterfall"),
    ("waterfall", [{"step": "fee", "fee": "audit"}], r"waterfall\[0\]\.fee"),
    ("waterfall", [{"step": "fee", "fee": "servicer"}, {"step": "interest", "tranche": "A"},
                   {"step": "interest", "tranche": "A"}, {"step": "interest", "tranche": "B"},
                   {"step": "principal"}, {"step": "residual"}], "waterfall"),
    ("waterfall", [{"step": "fee", "fee": "servicer"}, {"step": "interest", "tranche": "A"},
                   {"step": "interest", "tranche": "B"}, {"step": "principal"},
                   {"step": "reimburse", "tranches": ["Sub", "A"]}, {"step": "residual"}],
     r"waterfall\[4\]\.tranches"),
    ("waterfall", [{"step": "fee", "fee": "servicer"}, {"step": "interest", "tranche": "A"},
                   {"step": "interest", "tranche": "B"}, {"step": "principal"}, {"step": "reimburse"},
                   {"step": "reimburse"}, {"step": "residual"}], "waterfall"),
    ("waterfall", [{"step": "fee", "fee": "servicer"}, {"step": "interest", "tranche": "A"},
                   {"step": "interest", "tranche": "B"}, {"step": "principal"}, {"step": "residual"},
                   {"step": "residual"}], "waterfall"),
    ("fees", [{"name": "s", "kind": "fixed", "amount": 1.0},
              {"name": "s", "kind": "fixed", "amount": 2.0}], r"fees\[1\]\.name.*unique"),
    ("fees", [{"name": "t", "kind": "fixed", "amount": -1.0}], r"fees\[0\]\.amount"),
    ("triggers", [{"name": "x", "metric": "cnl", "level": 0.1, "effect": "turbo"},
                  {"name": "x", "metric": "oc", "level": 1.0, "effect": "turbo"}],
     r"triggers\[1\]\.name.*unique"),
    ("triggers", [{"name": "x", "metric": "cnl", "level": 0.1, "effect": "turbo", "tranches": ["A"]}],
     r"triggers\[0\]\.tranches"),
    ("triggers", [{"name": "x", "metric": "cnl", "schedule": [[1]], "effect": "turbo"}],
     r"triggers\[0\]\.schedule"),
    ("triggers", [{"name": "x", "metric": "cnl", "level": 2.0, "effect": "turbo"}], r"triggers\[0\]\.level"),
    ("reserve", {"target": 0.01, "floor": 1.5}, r"reserve\.floor"),
    ("overcollateralisation", {"target": 1.2}, r"overcollateralisation\.target"),
    ("overcollateralisation", {"target": 0.1, "floor": -0.1}, r"overcollateralisation\.floor"),
    ("retention", {"kind": "vertical", "share": 0.0}, r"retention\.share"),
    ("deal.initial_oc", 1.0, r"deal\.initial_oc"),
    ("tranches.0", {"name": "A", "amount": -5.0, "coupon": 0.03}, r"tranches\[0\]\.amount"),
    ("tranches.0", {"name": "", "size": 0.8, "coupon": 0.03}, r"tranches\[0\]\.name"),
    ("tranches.0", {"name": "A", "size": 0.8, "coupon": 0.03, "holder": ""}, r"tranches\[0\]\.holder"),
    ("tranches.0", {"name": "A", "size": 0.8, "amount": 800.0, "coupon": 0.03}, r"tranches\[0\]\.size"),
    ("tranches.0", {"name": "A", "size": "big", "coupon": 0.03}, r"tranches\[0\]\.size"),
    ("waterfall", [{"step": "interest", "tranche": "Q"}], r"waterfall\[0\]\.tranche"),
]


@pytest.mark.parametrize(("path", "value", "field"), BAD)
def test_bad_deal_names_the_field(path: str, value: object, field: str) -> None:
    with pytest.raises(DealError, match=field):
        deal_from_dict(with_(base(), path, value), source="deal.toml")


def test_error_names_allowed_values_and_received() -> None:
    with pytest.raises(DealError) as info:
        deal_from_dict(with_(base(), "deal.principal_mode", "waterfall"), source="x.toml")
    text = str(info.value)
    assert "'sequential'" in text and "'pro_rata'" in text and "'waterfall'" in text and "x.toml" in text


def test_amount_sizes_checked_against_pool_at_run_time() -> None:
    d = base()
    d["tranches"] = [{"name": "A", "amount": 800.0, "coupon": 0.03},
                     {"name": "Sub", "amount": 200.0}]
    deal = deal_from_dict(d)
    assert deal.tranche_amounts(1000.0) == (800.0, 200.0)
    with pytest.raises(DealError, match=r"tranches\[\]\.size"):
        deal.tranche_amounts(1200.0)


def test_load_deal_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(DealError, match="does not exist"):
        load_deal(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[deal\nname=")
    with pytest.raises(DealError, match="not valid TOML"):
        load_deal(bad)
