"""portfolio.validation: declared schemas, the one error shape, and reading files."""

from __future__ import annotations

import datetime as dt
import math
import pickle
import re
from pathlib import Path

import pytest

from portfolio.errors import ValidationError
from portfolio.validation import (
    Anything,
    Bool,
    Check,
    Date,
    Field,
    Interval,
    ListOf,
    MapOf,
    Options,
    SchemaError,
    Str,
    StrOptions,
    Table,
    parse_toml,
    read_toml,
    validate,
)

DEAL = Table({
    "name": Field(Str(nonempty=True)),
    "tranche": Field(ListOf(Table({
        "size": Field(Interval(float, 0, 1, closed="right")),
        "coupon": Field.optional(Interval(float, 0, 1), 0.0),
        "holder": Field.optional(StrOptions(("investors", "platform")), "investors"),
    }), min_len=1)),
})


def _error(spec, value, where="deal.toml") -> SchemaError:
    with pytest.raises(SchemaError) as info:
        validate(spec, value, where)
    assert isinstance(info.value, ValidationError)
    return info.value


def test_the_message_is_the_one_template_with_a_field_path() -> None:
    doc = {"name": "X", "tranche": [{"size": 0.5}, {"size": 0.3}, {"size": 0.2, "coupon": 7}]}
    err = _error(DEAL, doc)
    assert str(err) == "deal.toml: `tranche[2].coupon` must be a number in [0, 1]; got 7"
    assert (err.field_path, err.allowed, err.got, err.where) == (
        "tranche[2].coupon", "a number in [0, 1]", 7, "deal.toml")


def test_valid_document_is_converted_with_defaults() -> None:
    doc = {"name": " X ", "tranche": [{"size": 1}]}
    assert validate(DEAL, doc) == {
        "name": "X", "tranche": [{"size": 1.0, "coupon": 0.0, "holder": "investors"}]}
    assert isinstance(validate(DEAL, doc)["tranche"][0]["size"], float)


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, True, "0.5", None, [0.5],
                                 10**400, -1e-12, 1.0000001])
def test_interval_refuses_non_finite_bools_strings_and_out_of_bounds(bad: object) -> None:
    err = _error(Interval(float, 0, 1), bad)
    assert err.field_path == "" or err.field_path is not None
    assert "must be a number in [0, 1]" in str(err)


@pytest.mark.parametrize("closed, lo_ok, hi_ok", [("both", True, True), ("left", True, False),
                                                  ("right", False, True),
                                                  ("neither", False, False)])
def test_interval_ends(closed: str, lo_ok: bool, hi_ok: bool) -> None:
    spec = Interval(float, 0, 1, closed=closed)
    for value, ok in ((0, lo_ok), (1, hi_ok), (0.5, True)):
        if ok:
            assert validate(spec, value) == value
        else:
            _error(spec, value)
    lo = "[" if lo_ok else "("
    hi = "]" if hi_ok else ")"
    assert spec.describe() == f"a number in {lo}0, 1{hi}"


def test_interval_descriptions_and_integers() -> None:
    assert Interval(int, 1, 600).describe() == "an integer in [1, 600]"
    assert Interval(float, 0, None).describe() == "a number >= 0"
    assert Interval(float, 2, None, closed="neither").describe() == "a number > 2"
    assert Interval(float).describe() == "a finite number"
    assert Interval(float, 0, 1, unit="a share").describe() == "a share in [0, 1]"
    assert validate(Interval(int, 1, 600), 12) == 12
    for bad in (12.0, True, 0, 601, 10**30):
        _error(Interval(int, 1, 600), bad)
    # an unbounded float field still refuses a huge integer that is not a finite float
    _error(Interval(float), 10**400)
    assert validate(Interval(float), 10**300) == float(10**300)


def test_unknown_key_is_refused_with_a_hint_and_its_path() -> None:
    err = _error(DEAL, {"name": "X", "tranche": [{"size": 1, "cupon": 0.1}]})
    assert err.field_path == "tranche[0].cupon"
    assert "did you mean `coupon`?" in str(err)
    assert "allowed keys: size, coupon, holder" in str(err)
    assert str(err).endswith("got an unknown key")


def test_missing_required_key_names_it() -> None:
    err = _error(DEAL, {"tranche": [{"size": 1}]})
    assert err.field_path == "name"
    assert str(err) == "deal.toml: `name` must be given (a non-empty string); got nothing"


def test_wrong_container_types() -> None:
    assert _error(DEAL, []).field_path == ""
    assert _error(DEAL, {"name": "X", "tranche": {"size": 1}}).field_path == "tranche"
    assert _error(DEAL, {"name": "X", "tranche": []}).field_path == "tranche"
    assert _error(DEAL, {"name": "X", "tranche": [3]}).field_path == "tranche[0]"


def test_list_lengths_and_uniqueness() -> None:
    spec = ListOf(Interval(int, 1, 24), min_len=1, max_len=3, unique=True)
    assert validate(spec, [3, 6]) == [3, 6]
    assert "got a list of 4 values" in str(_error(spec, [1, 2, 3, 4]))
    assert _error(spec, [3, 3]).field_path == "[1]"
    assert spec.describe() == "a list of 1 to 3 values, each an integer in [1, 24]"


def test_str_options_aliases_and_patterns() -> None:
    spec = StrOptions(("gaussian", "t"), aliases={"student": "t"})
    assert validate(spec, "student") == "t"
    assert str(_error(spec, "normal")) == (
        "deal.toml: `` must be one of 'gaussian', 't'; got 'normal'")
    name = Str(pattern=r"[a-z]+", what="lower-case letters")
    assert validate(name, "abc") == "abc"
    assert "must be lower-case letters" in str(_error(name, "ABC"))
    assert validate(Str(), "") == ""
    _error(Str(nonempty=True), "   ")


def test_dates_bools_anything_check_and_maps() -> None:
    assert validate(Date(), dt.date(2026, 6, 30)) == dt.date(2026, 6, 30)
    assert validate(Date(), dt.datetime(2026, 6, 30, 12)) == dt.date(2026, 6, 30)
    assert validate(Date(), "2026-06-30") == dt.date(2026, 6, 30)
    _error(Date(), "30/06/2026")
    _error(Date(), dt.time(12))
    assert validate(Bool(), False) is False
    _error(Bool(), 0)
    assert validate(Anything(), {"x": [1]}) == {"x": [1]}
    _error(Anything(table=True), [1])
    even = Check(lambda v: v if isinstance(v, int) and v % 2 == 0 else int("x"), "an even int")
    assert validate(even, 4) == 4
    assert "must be an even int" in str(_error(even, 3))
    users = MapOf(Str(pattern=r"[a-z]+", what="a lower-case name"),
                  Table({"role": Field(Str())}))
    assert validate(users, {"al": {"role": "x"}}) == {"al": {"role": "x"}}
    assert _error(users, {"al": {"role": 1}}, "").field_path == "al.role"
    assert _error(users, {"Al": {"role": "x"}}).field_path == "Al"
    assert _error(users, {"a b": {}}).field_path == '"a b"'


def test_long_values_are_cut_in_the_message() -> None:
    err = _error(Interval(float), list(range(10_000)))
    assert len(str(err)) < 200
    assert err.got == list(range(10_000))


def test_schema_error_survives_pickling() -> None:
    err = _error(DEAL, {"name": 3, "tranche": [{"size": 1}]})
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is SchemaError
    assert (str(back), back.field_path, back.where) == (str(err), "name", "deal.toml")


class DealishError(SchemaError):
    """A layer's own error class keeps the shape."""


def test_a_subclass_is_raised_when_asked() -> None:
    with pytest.raises(DealishError, match="`name` must be"):
        validate(DEAL, {"name": 1, "tranche": [{"size": 1}]}, "d", error=DealishError)


# ---------------------------------------------------------------- reading


@pytest.mark.parametrize("content, words", [
    (b"\xff\xfe = 1", "not UTF-8 text (byte 0xff at offset 0)"),
    (b"a = = 1", "not valid TOML"),
    (b"a = " + b"[" * 5000 + b"]" * 5000, "not valid TOML"),
])
def test_unreadable_bytes_name_the_file(tmp_path: Path, content: bytes, words: str) -> None:
    p = tmp_path / "x.toml"
    p.write_bytes(content)
    with pytest.raises(SchemaError, match=re.escape(words)) as info:
        read_toml(p, "criteria file")
    assert info.value.where == str(p)
    assert info.value.field_path == ""
    assert str(info.value).startswith(f"{p}: ")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="criteria file .*nope.toml does not exist"):
        read_toml(tmp_path / "nope.toml", "criteria file")
    with pytest.raises(SchemaError, match="is a directory") as info:
        read_toml(tmp_path, "criteria file")
    assert info.value.where == str(tmp_path)


def test_reading_a_good_file_and_text(tmp_path: Path) -> None:
    p = tmp_path / "x.toml"
    p.write_text('a = 1\n[b]\nc = "é"\n', encoding="utf-8")
    assert read_toml(p, "file") == {"a": 1, "b": {"c": "é"}}
    p.write_bytes(b"\xef\xbb\xbfa = 1\n")  # UTF-8 with a byte-order mark
    assert read_toml(p, "file") == {"a": 1}
    assert parse_toml("a = 2", "editor") == {"a": 2}
    with pytest.raises(SchemaError, match="^editor: not valid TOML"):
        parse_toml("a =", "editor")


def test_a_plain_validation_error_class_is_still_honoured(tmp_path: Path) -> None:
    class Legacy(ValidationError):
        pass

    with pytest.raises(Legacy, match="not valid TOML"):
        parse_toml("a =", "editor", Legacy)


def test_options_keep_the_type() -> None:
    spec = Options((3, 6, 12))
    assert validate(spec, 6) == 6
    for bad in (6.0, True, "6", 5):
        _error(spec, bad)
    assert str(_error(spec, 5, "c")) == "c: `` must be one of 3, 6, 12; got 5"
