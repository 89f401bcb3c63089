"""The typed record of a deal stored with a run (``tranching.revolving.DealSettings``): a JSON
round trip keeps it (hypothesis); an unknown key or value is refused naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolio.errors import ValidationError
from tranching.revolving import DealSettings

settings_records = st.one_of(
    st.builds(DealSettings, replenishment=st.just("none"), replenishment_months=st.just(0),
              waterfall_months=st.integers(0, 600)),
    st.builds(DealSettings, replenishment=st.just("new-loan profile"),
              replenishment_months=st.integers(1, 600), waterfall_months=st.integers(0, 600)),
)


@given(settings_records)
def test_deal_settings_round_trip(rec: DealSettings) -> None:
    assert DealSettings.from_json(json.loads(json.dumps(rec.to_json())), "run 1") == rec


@pytest.mark.parametrize(("data", "field"), [
    ({"replenishment": "scaled", "replenishment_months": 3, "waterfall_months": 9},
     "`settings.replenishment`"),
    ({"replenishment": "none", "replenishment_months": 0, "waterfall_months": 9,
      "discount": 0.03}, "`settings.discount`"),
    ({"replenishment": "none", "replenishment_months": 2, "waterfall_months": 9},
     "`settings.replenishment_months`"),
    ({"replenishment": "none", "replenishment_months": 0}, "`settings.waterfall_months`"),
    ({"replenishment": "none", "replenishment_months": 0, "waterfall_months": 9.0},
     "`settings.waterfall_months`"),
])
def test_unknown_keys_and_values_are_refused(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        DealSettings.from_json(data, "run 4's deal")
    assert field in str(info.value) and "run 4's deal" in str(info.value)
