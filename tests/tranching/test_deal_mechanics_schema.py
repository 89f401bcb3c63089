"""Bad values of issue 12's deal fields are refused with the field path, what is allowed and
what was received (DealFileError), and the CN example parses with every mechanic on."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from tranching.deal import Accrual, Denominator, Effect, Metric, deal_from_dict, load_deal
from tranching.errors import DealFileError

ROOT = Path(__file__).resolve().parents[2]


def _base(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "deal": {"name": "x", "closing_date": dt.date(2026, 1, 1),
                 "first_payment_date": dt.date(2026, 2, 1)},
        "tranches": [{"name": "A", "size": 0.9, "coupon": 0.05}, {"name": "B", "size": 0.1}],
    }
    for k, v in over.items():
        if k == "head":
            d["deal"].update(v)
        else:
            d[k] = v
    return d


@pytest.mark.parametrize("over, field", [
    ({"head": {"accrual": "partial"}}, "deal.accrual"),
    ({"head": {"step_down_month": 6}}, "deal.step_down_month"),  # sequential deal
    ({"head": {"principal_mode": "pro_rata", "step_down_month": 0}}, "deal.step_down_month"),
    ({"triggers": [{"name": "t", "metric": "oc", "level": 1.1, "effect": "sequential",
                    "denominator": "initial_plus_purchases"}]}, "triggers[0].denominator"),
    ({"triggers": [{"name": "t", "metric": "dpd60", "level": 0.1, "effect": "sequential",
                    "average_months": 13}]}, "triggers[0].average_months"),
    ({"triggers": [{"name": "t", "metric": "dpd45", "level": 0.1, "effect": "sequential"}]},
     "triggers[0].metric"),
    ({"tax": {"rate": 0.9}}, "tax.rate"),
    ({"shortfall_undertaking": {"cap": 0.05, "tranches": ["C"]}},
     "shortfall_undertaking.tranches"),
    ({"shortfall_undertaking": {"cap": 1.5, "tranches": ["A"]}}, "shortfall_undertaking.cap"),
    ({"advances": {"limit": -0.1}}, "advances.limit"),
    ({"waterfall": [{"step": "interest", "tranche": "A"},
                    {"step": "reimburse", "tranches": ["A"]},
                    {"step": "principal", "tranches": ["A", "B"]},
                    {"step": "reimburse", "tranches": ["A", "B"]},
                    {"step": "residual"}]}, "waterfall"),
])
def test_bad_mechanics_fields_are_refused_with_their_path(over: dict, field: str) -> None:
    with pytest.raises(DealFileError) as e:
        deal_from_dict(_base(**over), "deal.toml")
    assert field in str(e.value)


def test_the_cn_example_switches_every_mechanic_on() -> None:
    deal = load_deal(ROOT / "examples" / "deal_cn_consumer.toml")
    assert deal.accrual is Accrual.FULL and deal.interest_on_shortfall
    assert deal.tax is not None and deal.tax.rate == 0.03 and deal.tax.price_inclusive
    # VAT on the simplified method, price-inclusive: 103.00 of interest carries 3.00 of tax
    assert deal.tax.on(103.0) == pytest.approx(3.0)
    su = deal.shortfall_undertaking
    assert su is not None and su.tranches == ("A",) and su.cap == 0.05
    assert deal.advances is not None
    by_name = {t.name: t for t in deal.triggers}
    assert by_name["cnl_early_amortisation"].denominator is Denominator.INITIAL_PLUS_PURCHASES
    assert by_name["dpd30_3m_average"].metric is Metric.DPD30
    assert by_name["dpd30_3m_average"].average_months == 3
    assert by_name["event_of_default"].effect is Effect.ACCELERATE
