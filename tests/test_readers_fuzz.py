"""Every reader of a people-facing file, fed arbitrary bytes and arbitrary TOML documents
(random ones, and the shipped examples with a key dropped, a value of the wrong type, inf,
nan, huge or negative numbers, unknown keys): the result is the parsed object or a
``ValidationError`` naming the field path (or the file, for bytes that are not a TOML
document), never another exception."""

from __future__ import annotations

import datetime as dt
import math
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboards import auth
from partners.registry import REGISTRY, Registry, load_registry
from portfolio.book.pools import CRITERIA_SCHEMA, Criteria, load_criteria
from portfolio.book.pricing import PRICING_SCHEMA, PricingInputs, load_pricing
from portfolio.errors import ValidationError
from portfolio.montecarlo.assumptions import (
    ASSUMPTIONS_SCHEMA,
    Assumptions,
    assumptions_to_toml,
    load_assumptions,
)
from portfolio.validation import SchemaError, Table
from tranching.deal import DEAL, Deal, load_deal
from tranching.ratings import RATING_TABLE_SCHEMA, RatingTable, load_rating_table

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _small_assumptions() -> str:
    rng = np.random.default_rng(0)
    a = Assumptions(default_hazard=rng.uniform(0, 0.02, (6, 6, 3)),
                    prepay_smm=rng.uniform(0, 0.05, (6, 6, 3)), recovery_rate=0.2,
                    recovery_lag=(0.5, 0.5), rho=0.1, factor_persistence=0.3, rho_se=0.01,
                    provenance={"pool_id": 1})
    return assumptions_to_toml(a)


_USERS = {"users": {"alice": {"role": "treasury", "password": "scrypt$16384$8$1$00$00"},
                    "bank": {"role": "partner:bank_east"}}}


@dataclass(frozen=True)
class Reader:
    name: str
    load: Callable[[Path], Any]
    result: type | tuple[type, ...]
    example: dict[str, Any]  # a valid document, the seed of the mutations
    keys: tuple[str, ...]  # key names that reach into the schema


def _keys(table: Table) -> tuple[str, ...]:
    out: list[str] = []
    for key, f in table.fields.items():
        out.append(key)
        spec = f.spec
        elem = getattr(spec, "elem", None)
        if isinstance(spec, Table):
            out += _keys(spec)
        elif isinstance(elem, Table):
            out += _keys(elem)
    return tuple(dict.fromkeys(out))


def _toml_file(name: str) -> dict[str, Any]:
    return tomllib.loads((EXAMPLES / name).read_text(encoding="utf-8"))


_DEAL_KEYS = _keys(DEAL) + ("deal", "name", "closing_date", "tranches", "size", "coupon", "holder", "fees",
              "kind", "rate", "amount", "reserve", "target", "triggers", "metric", "schedule",
              "waterfall", "step", "tranche", "retention", "share", "revolving", "months")
_PARTNER_KEYS = _keys(REGISTRY) + ("platform", "partner", "rules", "expected_loss", "id", "name", "kind",
                 "capacity", "eligibility", "apr_cap", "score_floor", "regions")

READERS = (
    Reader("criteria", load_criteria, Criteria, _toml_file("criteria.toml"),
           _keys(CRITERIA_SCHEMA)),
    Reader("assumptions", load_assumptions, Assumptions, tomllib.loads(_small_assumptions()),
           _keys(ASSUMPTIONS_SCHEMA)),
    Reader("pricing", load_pricing, PricingInputs, _toml_file("pricing.toml"),
           _keys(PRICING_SCHEMA)),
    Reader("rating table", load_rating_table, RatingTable,
           _toml_file("rating_table_illustrative.toml"), _keys(RATING_TABLE_SCHEMA)),
    Reader("users", auth.load_users, dict, _USERS, ("users", "alice", "role", "password")),
    Reader("partners", load_registry, Registry, _toml_file("partners.toml"), _PARTNER_KEYS),
    Reader("deal (CN)", load_deal, Deal, _toml_file("deal_cn_consumer.toml"), _DEAL_KEYS),
    Reader("deal (US)", load_deal, Deal, _toml_file("deal_us_consumer.toml"), _DEAL_KEYS),
)
IDS = [r.name for r in READERS]


def _outcome(reader: Reader, path: Path) -> None:
    """The one allowed pair of outcomes: the parsed object, or a ValidationError naming the
    field path (or the file when the bytes are not a TOML document)."""
    try:
        result = reader.load(path)
    except ValidationError as exc:
        message = str(exc)
        assert message.strip()
        if isinstance(exc, SchemaError):
            if exc.field_path:
                assert f"`{exc.field_path}`" in message
            else:  # the file itself: missing, not UTF-8, not TOML
                assert exc.where == str(path) and str(path) in message
        else:
            # a reader not yet on portfolio.validation must still name the file or a field
            assert str(path) in message or "`" in message, message
        return
    assert isinstance(result, reader.result)


# 40 examples per reader and strategy, from a fixed seed (the file runs in seconds);
# RISKPOOL_FUZZ_EXAMPLES=2000 searches longer, with a random seed.
_LONG = int(os.environ.get("RISKPOOL_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_LONG or 40, deadline=None, derandomize=not _LONG,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------- (a) arbitrary bytes


@pytest.mark.parametrize("reader", READERS, ids=IDS)
@FUZZ
@given(raw=st.binary(max_size=200) | st.sampled_from(
    [b"\xff", b"a = 1\n\xff", b"[a\n", b"a = [" * 200, b"\x00", b"x = inf", b"\xef\xbb\xbf"]))
def test_any_bytes(reader: Reader, raw: bytes, tmp_path_factory: pytest.TempPathFactory
                   ) -> None:
    path = tmp_path_factory.getbasetemp() / f"fuzz-bytes-{reader.name}.toml"
    path.write_bytes(raw)
    _outcome(reader, path)


@pytest.mark.parametrize("reader", READERS, ids=IDS)
@FUZZ
@given(data=st.data())
def test_example_bytes_with_random_damage(reader: Reader, data: st.DataObject,
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    raw = bytearray(tomli_w.dumps(reader.example).encode())
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    path = tmp_path_factory.getbasetemp() / f"fuzz-damage-{reader.name}.toml"
    path.write_bytes(bytes(raw))
    _outcome(reader, path)


# ---------------------------------------------------------------- (b) arbitrary TOML


NASTY_NUMBERS = st.sampled_from([math.inf, -math.inf, math.nan, 10**30, -(10**30), 1e308,
                                 -1, -1.5, 0, 0.0, 1, 7, 2**63 - 1, 1e-300])
SCALARS = (st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | NASTY_NUMBERS
           | st.text(max_size=12) | st.dates() | st.datetimes() | st.times())


def _values(keys: tuple[str, ...]) -> st.SearchStrategy[Any]:
    key = st.sampled_from(keys) | st.text(min_size=1, max_size=8)
    return st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(key, inner, max_size=4), max_leaves=12)


def _write_doc(doc: dict[str, Any], path: Path) -> None:
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")


@pytest.mark.parametrize("reader", READERS, ids=IDS)
@FUZZ
@given(data=st.data())
def test_random_toml_documents(reader: Reader, data: st.DataObject,
                               tmp_path_factory: pytest.TempPathFactory) -> None:
    key = st.sampled_from(reader.keys) | st.text(min_size=1, max_size=8)
    doc = data.draw(st.dictionaries(key, _values(reader.keys), max_size=5))
    path = tmp_path_factory.getbasetemp() / f"fuzz-doc-{reader.name}.toml"
    _write_doc(doc, path)
    _outcome(reader, path)


def _locations(obj: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path inside a parsed document."""
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) \
        if isinstance(obj, list) else ()
    for k, v in items:
        out.append((*here, k))
        out += _locations(v, (*here, k))
    return out


def _mutate(doc: dict[str, Any], data: st.DataObject, keys: tuple[str, ...]) -> None:
    where = data.draw(st.sampled_from(_locations(doc)))
    parent: Any = doc
    for k in where[:-1]:
        parent = parent[k]
    last = where[-1]
    action = data.draw(st.sampled_from(["drop", "replace", "unknown", "nasty"]))
    if action == "drop":
        del parent[last]
    elif action == "replace":
        parent[last] = data.draw(_values(keys))
    elif action == "nasty":
        parent[last] = data.draw(NASTY_NUMBERS)
    else:
        target = parent if isinstance(parent, dict) else doc
        target[data.draw(st.text(min_size=1, max_size=8))] = data.draw(SCALARS)


@pytest.mark.parametrize("reader", READERS, ids=IDS)
@FUZZ
@given(data=st.data())
def test_mutated_examples(reader: Reader, data: st.DataObject,
                          tmp_path_factory: pytest.TempPathFactory) -> None:
    doc = tomllib.loads(tomli_w.dumps(reader.example))  # a deep copy
    for _ in range(data.draw(st.integers(1, 3))):
        if _locations(doc):
            _mutate(doc, data, reader.keys)
    path = tmp_path_factory.getbasetemp() / f"fuzz-mutated-{reader.name}.toml"
    _write_doc(doc, path)
    _outcome(reader, path)


# ---------------------------------------------------------------- fixed cases


@pytest.mark.parametrize("reader", READERS, ids=IDS)
def test_the_seed_document_is_accepted(reader: Reader, tmp_path: Path) -> None:
    path = tmp_path / "seed.toml"
    _write_doc(reader.example, path)
    assert isinstance(reader.load(path), reader.result)


@pytest.mark.parametrize("reader", READERS, ids=IDS)
def test_unreadable_files_name_the_file(reader: Reader, tmp_path: Path) -> None:
    cases = {"not-utf8.toml": b"a = \"\xff\"\n", "not-toml.toml": b"[a\n"}
    for name, raw in cases.items():
        (tmp_path / name).write_bytes(raw)
    for path in [tmp_path / n for n in cases] + [tmp_path]:  # the directory too
        with pytest.raises(ValidationError) as info:
            reader.load(path)
        assert str(path) in str(info.value)
        if isinstance(info.value, SchemaError):
            assert info.value.where == str(path) and info.value.field_path == ""


def test_nasty_numbers_reach_the_schema() -> None:
    # the strategies above really do write inf, nan and huge integers into TOML
    text = tomli_w.dumps({"a": math.inf, "b": math.nan, "c": 10**30, "d": dt.date(2026, 1, 1)})
    back = tomllib.loads(text)
    assert back["a"] == math.inf and math.isnan(back["b"]) and back["c"] == 10**30
