"""One validation layer for every people-facing file (criteria, assumptions, pricing, deals,
partners, rating tables, users): reading the file, declared schemas, and one error shape.

Why an in-house module rather than pydantic or msgspec: the schemas here are small (a few
dozen fields each), and what matters is the message a person reads, in the project's one
template (``portfolio.errors.must_be``): "SOURCE: `tranches[2].coupon` must be a number in
[0, 1]; got 7". With pydantic the messages, the path syntax (``tranches.2.coupon``) and the
lax coercions ("1" → 1, ``inf`` accepted unless every field says otherwise) would have to be
rewritten or switched off field by field; msgspec's are fixed too. This module is about 300
lines, depends on nothing, refuses ``inf``/``nan`` and booleans-as-numbers everywhere by
construction, and knows TOML's types (dates, arrays of tables). It follows the spirit of
scikit-learn's parameter constraints: a field declares its type and bounds (``Interval``),
its options (``StrOptions``), list element schemas and lengths (``ListOf``), nested tables
(``Table``), required or optional-with-default; unknown keys are refused.

Reading: ``read_toml`` turns a missing file, a directory, bytes that are not UTF-8 and text
that is not TOML into a ``SchemaError`` naming the file, never another exception.

Usage::

    CRITERIA = Table({"eligibility": Field(Table({"score_min": Field(Interval(int, 350, 950),
                                                                     required=False)}))})
    data = validate(CRITERIA, read_toml(path, "criteria file"), where=str(path))

``validate`` returns plain Python values (dicts with defaults filled in, lists, floats for
``Interval(float, …)``); the reader builds its frozen dataclass from them. Rules that tie
several fields together (lo ≤ hi, shares summing to 1) stay in the reader and raise
``SchemaError`` with the same shape.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
import reprlib
import tomllib
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from portfolio.errors import ValidationError, must_be

__all__ = [
    "Anything", "Bool", "Check", "Date", "Field", "Interval", "ListOf", "MapOf", "Options",
    "OrNull", "SchemaError", "Spec", "Str", "StrOptions", "Table", "child", "index",
    "parse_toml", "read_toml", "shown", "validate", "verbatim",
]

_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlist = 6
_REPR.maxdict = 4
_REPR.maxlevel = 3


class _Shown(str):
    """Text shown as is after "got" (``must_be`` formats ``got`` with ``repr``)."""

    def __repr__(self) -> str:
        return str(self)


def verbatim(text: str) -> str:
    """``text`` to be shown as is after "got" (not quoted): "got a list of 4 values"."""
    return _Shown(text)


def shown(value: object) -> str:
    """A short ``repr`` of a received value (long lists and strings are cut)."""
    if isinstance(value, _Shown):
        return str(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return _REPR.repr(value)


class SchemaError(ValidationError):
    """A value breaks its declared schema: "WHERE: `FIELD_PATH` must be ALLOWED; got GOT".

    ``field_path`` is the dotted path inside the document (``tranches[2].coupon``; empty when
    the file itself cannot be read), ``allowed`` the rule, ``got`` the received value and
    ``where`` the source (a file path or a name such as "stored criteria").
    Subclasses (``DealError``-style) keep the shape.
    """

    def __init__(self, field_path: str, allowed: str, got: object, where: str = "",
                 *, message: str | None = None) -> None:
        self.field_path = field_path
        self.allowed = allowed
        self.got = got
        self.where = where
        if message is None:
            text = must_be(field_path, allowed, _Shown(shown(got)))
            message = f"{where}: {text}" if where else text
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.field_path, self.allowed, self.got, self.where,
                           str(self)))


def _rebuild(cls: type[SchemaError], field_path: str, allowed: str, got: object, where: str,
             message: str) -> SchemaError:
    return cls(field_path, allowed, got, where, message=message)


def child(path: str, key: str) -> str:
    """``path.key`` (or ``key`` at the top); keys that are not identifiers are quoted."""
    part = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else '"' + key.replace('"', '\\"') + '"'
    return f"{path}.{part}" if path else part


def index(path: str, i: int) -> str:
    """``path[i]`` (0-based, as in the TOML array)."""
    return f"{path}[{i}]"


# ---------------------------------------------------------------- reading


def parse_toml(text: str, source: str,
               error: type[ValidationError] = ValidationError) -> dict[str, Any]:
    """``text`` as a TOML document; "SOURCE: not valid TOML: …" if it is not one."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        detail = f"not valid TOML: {exc}"
    except RecursionError:
        detail = "not valid TOML: nested too deeply"
    raise _file_error(error, source, "a valid TOML document", detail)


def read_toml(path: str | Path, what: str,
              error: type[ValidationError] = ValidationError) -> dict[str, Any]:
    """The TOML document in ``path`` (UTF-8); a ``SchemaError`` (or ``error``) naming the file
    when it is missing, a directory, unreadable, not UTF-8 or not TOML."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise _file_error(error, str(p), "an existing file", f"{what} {p} does not exist",
                          bare=True) from None
    except IsADirectoryError:
        raise _file_error(error, str(p), "a file", f"{what} {p} is a directory, not a file",
                          bare=True) from None
    except OSError as exc:
        raise _file_error(error, str(p), "a readable file",
                          f"{what} {p} cannot be read ({exc.strerror or exc})", bare=True) from None
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark (some Windows editors) is skipped
    except UnicodeDecodeError as exc:
        raise _file_error(error, str(p), "UTF-8 text",
                          f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
                          ) from None
    return parse_toml(text, str(p), error)


def _file_error(error: type[ValidationError], where: str, allowed: str, detail: str,
                bare: bool = False) -> ValidationError:
    message = detail if bare else f"{where}: {detail}"
    if issubclass(error, SchemaError):
        return error("", allowed, _Shown(detail), where, message=message)
    if error is ValidationError:
        return SchemaError("", allowed, _Shown(detail), where, message=message)
    return error(message)


# ---------------------------------------------------------------- specs


class Spec:
    """A rule for one value: ``check`` returns the converted value or raises SchemaError."""

    def describe(self) -> str:
        raise NotImplementedError

    def check(self, value: Any, path: str, where: str, error: type[SchemaError]) -> Any:
        raise NotImplementedError

    def fail(self, value: Any, path: str, where: str, error: type[SchemaError],
             allowed: str | None = None) -> SchemaError:
        return error(path, allowed or self.describe(), value, where)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt(x: float) -> str:
    return str(int(x)) if isinstance(x, int) or float(x).is_integer() and abs(x) < 1e15 else repr(x)


@dataclass(frozen=True)
class Interval(Spec):
    """A finite number (``float``: int or float, returned as float) or an integer (``int``)
    between ``left`` and ``right`` (``None`` = unbounded), ends as in ``closed``.
    ``inf``, ``nan`` and booleans are always refused."""

    kind: type
    left: float | None = None
    right: float | None = None
    closed: Literal["both", "left", "right", "neither"] = "both"
    unit: str = ""  # what the number is, in the message: "a share", "an annual rate"

    def describe(self) -> str:
        noun = self.unit or ("an integer" if self.kind is int else "a number")
        lo_in = self.closed in ("both", "left")
        hi_in = self.closed in ("both", "right")
        if self.left is not None and self.right is not None:
            return (f"{noun} in {'[' if lo_in else '('}{_fmt(self.left)}, "
                    f"{_fmt(self.right)}{']' if hi_in else ')'}")
        if self.left is not None:
            return f"{noun} {'>=' if lo_in else '>'} {_fmt(self.left)}"
        if self.right is not None:
            return f"{noun} {'<=' if hi_in else '<'} {_fmt(self.right)}"
        return f"a finite {noun.removeprefix('a ').removeprefix('an ')}" if not self.unit \
            else noun

    def contains(self, value: float) -> bool:
        if self.left is not None:
            if value < self.left or (value == self.left and self.closed in ("right", "neither")):
                return False
        if self.right is not None:
            if value > self.right or (value == self.right and self.closed in ("left", "neither")):
                return False
        return True

    def check(self, value: Any, path: str, where: str, error: type[SchemaError]) -> Any:
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or not self.contains(value):
                raise self.fail(value, path, where, error)
            return int(value)
        if not _is_number(value):
            raise self.fail(value, path, where, error)
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(value, path, where, error)
        if not self.contains(value):  # exact comparison (a huge int is compared as an int)
            raise self.fail(value, path, where, error)
        try:
            x = float(value)
        except OverflowError:
            raise self.fail(value, path, where, error) from None
        if not math.isfinite(x):
            raise self.fail(value, path, where, error)
        return x


@dataclass(frozen=True)
class StrOptions(Spec):
    """One of the listed strings (``aliases`` maps other accepted spellings to an option)."""

    options: tuple[str, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)

    def check(self, value: Any, path: str, where: str, error: type[SchemaError]) -> Any:
        if isinstance(value, str):
            if value in self.options:
                return value
            if value in self.aliases:
                return self.aliases[value]
        raise self.fail(value, path, where, error)


@dataclass(frozen=True)
class Options(Spec):
    """One of the listed values, of the same type (``3`` is one of (3, 6); ``3.0`` and
    ``True`` are not)."""

    options: tuple[Any, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(str(o) for o in self.options)

    def check(self, value: Any, path: str, where: str, error: type[SchemaError]) -> Any:
        for option in self.options:
            if type(value) is type(option) and value == option:
                return option
        raise self.fail(value, path, where, error)


@dataclass(frozen=True)
class Str(Spec):
    """A string; ``nonempty`` refuses blank ones (returned stripped unless ``strip`` is
    false), ``pattern`` is a full regular-expression match described by ``what``."""

    nonempty: bool = False
    pattern: str | None = None
    what: str = ""
    strip: bool = True

    def describe(self) -> str:
        if self.what:
            return self.what
        return "a non-empty string" if self.nonempty else "a string"

    def check(self, value: Any, path: str, where: str, error: type[SchemaError]) -> Any:
        if not isinstance(value, str):
            raise self.fail(value, path, where, error)
        if self.nonempty:
            if not value.strip():
                raise self.fail(value, path, where, error)
            if self.strip:
                value = value.strip()
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise self.fail(value, path, where, error)
        return value


@dataclass(frozen=True)
class Bool(Spec):
    def describe(self) -> str:
        return "true or false"

    def check(self, value: Any, path: str, where: str, error: type[SchemaError]) -> Any:
        if not isinstance(value, bool):
            raise self.fail(value, path, where, error)
        return value


@dataclass(frozen=True)
class Date(Spec):
    """A TOML date (a date-time keeps its date) or a "YYYY-MM-DD" string."""

    def describe(self) -> str:
        return "a date (YYYY-MM-DD)"

    def check(self, value: Any, path: str, where: str, error: type[SchemaError]) -> Any:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise self.fail(value, path, where, error)


@dataclass(frozen=True)
class Anything(Spec):
    """Any value (free-form tables such as provenance), optionally only tables."""

    table: bool = False

    def describe(self) -> str:
        return "a table" if self.table else "any value"

    def check(self, value: Any, path: str, where: str, error: type[SchemaError]) -> Any:
        if self.table and not isinstance(value, dict):
            raise self.fail(value, path, where, error)
        return value


@dataclass(frozen=True)
class OrNull(Spec):
    """``None`` (JSON null: the stored records write every field), or a value of ``spec``."""

    spec: Spec

    def describe(self) -> str:
        return f"{self.spec.describe()}, or null"

    def check(self, value: Any, path: str, where: str, error: type[SchemaError]) -> Any:
        return None if value is None else self.spec.check(value, path, where, error)


@dataclass(frozen=True)
class Check(Spec):
    """A value checked by ``fn`` (returns the converted value, raises ``ValueError``/
    ``ValidationError`` when it is not allowed): for rules a declaration cannot say."""

    fn: Callable[[Any], Any]
    what: str

    def describe(self) -> str:
        return self.what

    def check(self, value: Any, path: str, where: str, error: type[SchemaError]) -> Any:
        try:
            return self.fn(value)
        except (ValueError, TypeError):  # ValidationError is a ValueError
            raise self.fail(value, path, where, error) from None


@dataclass(frozen=True)
class ListOf(Spec):
    """A list whose elements follow ``elem``, with ``min_len <= len <= max_len``;
    ``unique`` refuses repeated elements."""

    elem: Spec
    min_len: int = 0
    max_len: int | None = None
    unique: bool = False
    what: str = ""

    def describe(self) -> str:
        if self.what:
            return self.what
        if self.max_len is not None and self.max_len == self.min_len:
            size = f"a list of {self.min_len} values"
        elif self.max_len is not None:
            size = f"a list of {self.min_len} to {self.max_len} values"
        elif self.min_len == 1:
            size = "a non-empty list of values"
        elif self.min_len > 1:
            size = f"a list of at least {self.min_len} values"
        else:
            size = "a list of values"
        return f"{size}, each {self.elem.describe()}"

    def check(self, value: Any, path: str, where: str, error: type[SchemaError]) -> Any:
        if not isinstance(value, list):
            raise self.fail(value, path, where, error)
        if len(value) < self.min_len or (self.max_len is not None and len(value) > self.max_len):
            raise self.fail(_Shown(f"a list of {len(value)} values"), path, where, error)
        out = [self.elem.check(v, index(path, i), where, error) for i, v in enumerate(value)]
        if self.unique:
            seen: list[Any] = []
            for i, v in enumerate(out):
                if v in seen:
                    raise error(index(path, i), "not a repeat of an earlier entry", value[i],
                                where)
                seen.append(v)
        return out


@dataclass(frozen=True)
class Field:
    """A key of a ``Table``: its spec, whether it must be given, its default otherwise."""

    spec: Spec
    required: bool = True
    default: Any = None

    @staticmethod
    def optional(spec: Spec, default: Any = None) -> Field:
        return Field(spec, required=False, default=default)


@dataclass(frozen=True)
class Table(Spec):
    """A TOML table with declared keys; unknown keys are refused ("did you mean …?").

    ``name`` describes the table in messages (e.g. "[eligibility]").
    """

    fields: Mapping[str, Field]
    name: str = ""

    def describe(self) -> str:
        return f"a table {self.name}".rstrip() if self.name else "a table"

    def check(self, value: Any, path: str, where: str, error: type[SchemaError]) -> Any:
        if not isinstance(value, dict):
            raise self.fail(value, path, where, error)
        allowed = tuple(self.fields)
        for key in value:
            if key not in self.fields:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean `{close[0]}`? " if close else ""
                keys = ", ".join(allowed) if allowed else "none"
                raise error(child(path, str(key)),
                            f"a known key ({hint}allowed keys: {keys})",
                            _Shown("an unknown key"), where)
        out: dict[str, Any] = {}
        for key, f in self.fields.items():
            if key in value:
                out[key] = f.spec.check(value[key], child(path, key), where, error)
            elif f.required:
                raise error(child(path, key), f"given ({f.spec.describe()})",
                            _Shown("nothing"), where)
            else:
                out[key] = f.default
        return out


@dataclass(frozen=True)
class MapOf(Spec):
    """A table whose keys are names (checked by ``key``) and whose values follow ``value``
    (e.g. ``[users.<name>]``)."""

    key: Spec
    value: Spec

    def describe(self) -> str:
        return f"a table of named entries, each {self.value.describe()}"

    def check(self, value: Any, path: str, where: str, error: type[SchemaError]) -> Any:
        if not isinstance(value, dict):
            raise self.fail(value, path, where, error)
        out = {}
        for k, v in value.items():
            p = child(path, str(k))
            name = self.key.check(k, p, where, error)
            out[name] = self.value.check(v, p, where, error)
        return out


def validate(spec: Spec, value: Any, where: str = "", path: str = "",
             error: type[SchemaError] = SchemaError) -> Any:
    """``value`` checked against ``spec`` and converted; else ``error`` (a ``SchemaError``)
    naming the field path, the rule, what was received and ``where``."""
    return spec.check(value, path, where, error)


def normalise_id(value: str) -> str:
    """The one rule for identifiers (loan, borrower, partner, user and party ids) before any
    comparison or storage: Unicode NFC (a composed and a decomposed "é" are the same id) and
    no surrounding whitespace (``"L000000001 "`` is ``"L000000001"``). Inner text is kept."""
    return unicodedata.normalize("NFC", value).strip()
