"""The typed record of an allocation's inputs (``partners.records.AllocationInputs``): a JSON
round trip keeps every field (hypothesis), and an unknown key or value is refused with a
``ValidationError`` naming the field and the allocation — never mapped to a default."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partners.allocation import Mode, Objective
from partners.records import AllocationInputs, AllocationRequest
from portfolio.errors import ValidationError

# the record's strings are non-blank and stored stripped (portfolio.validation.Str(nonempty=True))
_text = st.text(min_size=1, max_size=20).filter(lambda s: s.strip() == s and s != "")


@st.composite
def requests(draw: st.DrawFn) -> AllocationRequest:
    window = draw(st.none() | st.tuples(st.dates(), st.dates()).map(lambda w: tuple(sorted(w))))
    return AllocationRequest(
        partners_file=draw(st.none() | _text),
        pool_id=draw(st.none() | st.integers(1, 2**40)),
        originated=window,
        mode=draw(st.none() | st.sampled_from([m.value for m in Mode])),
        objective=draw(st.none() | st.sampled_from([o.value for o in Objective])),
        assumptions=draw(st.none() | _text),
        min_transfer=draw(st.none() | st.floats(0, 1)),
        code_version=draw(st.none() | _text),
        source=draw(st.none() | _text),
    )


registries = st.dictionaries(st.text(max_size=8), st.none() | st.integers() | st.text(max_size=8)
                             | st.lists(st.integers(), max_size=3), max_size=4)


@given(requests(), st.lists(_text, min_size=1, max_size=5, unique=True), st.dates(), registries)
def test_allocation_inputs_round_trip(request: AllocationRequest, parties: list[str], as_of: dt.date,
                                      registry: dict[str, Any]) -> None:
    rec = AllocationInputs(request, tuple(parties), as_of, registry)
    back = AllocationInputs.from_json(json.loads(json.dumps(rec.to_json())), "allocation 1")
    assert back == rec


BASE = AllocationInputs(AllocationRequest(pool_id=1, mode="joint"), ("platform", "bank"),
                        dt.date(2026, 6, 30), {"partners": []}).to_json()


@pytest.mark.parametrize(("change", "field"), [
    ({"bench": True}, "`inputs.bench`"),
    ({"mode": "both"}, "`inputs.mode`"),
    ({"objective": "max"}, "`inputs.objective`"),
    ({"pool_id": "1"}, "`inputs.pool_id`"),
    ({"min_transfer": 1.5}, "`inputs.min_transfer`"),
    ({"originated": ["2026-06-30", "2026-01-01"]}, "`inputs.originated`"),
    ({"party_ids": []}, "`inputs.party_ids`"),
    ({"as_of": "June"}, "`inputs.as_of`"),
    ({"registry": None}, "`inputs.registry`"),
])
def test_unknown_keys_and_values_are_refused(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        AllocationInputs.from_json({**BASE, **change}, "allocation 3")
    assert field in str(info.value) and "allocation 3" in str(info.value)


def test_party_ids_are_required_not_defaulted() -> None:
    data = {k: v for k, v in BASE.items() if k != "party_ids"}
    with pytest.raises(ValidationError, match="allocation 3: `inputs.party_ids` must be given"):
        AllocationInputs.from_json(data, "allocation 3")
