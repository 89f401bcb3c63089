"""Column mappings: read a tape whose headers, dates, rates or codes are not riskpool's.

A mapping file (TOML, ``riskpool ingest TAPE --mapping FILE``) says how a bank's or a
partner's tape becomes a riskpool tape; nothing else about ingestion changes (every rule of
``portfolio.book.ingest`` still applies, to the mapped values)::

    [mapping]
    name = "bank tape, Chinese headers"
    kind = "loans"                     # the tape kind it is for (loans or performance)

    [columns]                          # tape header = riskpool column
    "借据号" = "loan_id"
    "放款日期" = "origination_date"
    "年化利率(%)" = "apr"

    [dates]                            # riskpool column = its format in the tape (strptime)
    origination_date = "%Y/%m/%d"      # 2026/7/6 → 2026-07-06

    [percent]
    columns = ["apr"]                  # "18.25" or "18.25%" → 0.1825 (exact decimal division)

    [values.status]                    # riskpool column: tape value = riskpool value
    "01" = "current"

Headers are matched after trimming blanks; a tape column the mapping does not name keeps its
header (a riskpool header passes through). Each mapped value is converted exactly (decimal
text, never through a float): a date that does not match its format, a percent that is not a
number, or a code the ``[values]`` table does not list makes that row bad, with rule
``mapping`` and a message naming the mapping field, the tape's column and the row (refused
with the file, or kept in ``ingest_rejects`` with ``--allow-rejects``). A mapping that names
an unknown riskpool column, maps two headers to one column, or a tape that lacks a mapped
header is refused before anything is read into the book.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from portfolio.book.ingest.tape import COLUMNS, Problem, TapeKind
from portfolio.book.ingest.values import as_text
from portfolio.errors import ValidationError
from portfolio.validation import (
    Field,
    ListOf,
    MapOf,
    SchemaError,
    Str,
    StrOptions,
    Table,
    child,
    read_toml,
    validate,
)

__all__ = ["DATE_COLUMNS", "TapeMapping", "apply_values", "check_headers", "check_kind",
           "convert_date", "convert_percent",
           "load_mapping", "parse_mapping"]

DATE_COLUMNS = {TapeKind.LOANS: ("origination_date",), TapeKind.PERFORMANCE: ("as_of",)}
RATE_COLUMNS = {TapeKind.LOANS: ("apr", "disclosed_apr"), TapeKind.PERFORMANCE: ()}
TEXT = Str(nonempty=True)

SPEC = Table({
    "mapping": Field(Table({
        "name": Field.optional(TEXT, ""),
        "kind": Field(StrOptions(tuple(k.value for k in TapeKind))),
    }, name="[mapping]")),
    "columns": Field.optional(MapOf(TEXT, TEXT), {}),
    "dates": Field.optional(MapOf(TEXT, Str(nonempty=True, pattern=r".*%[dmYy].*",
                                            what="a strptime format such as \"%Y/%m/%d\"")), {}),
    "percent": Field.optional(Table({"columns": Field(ListOf(TEXT, min_len=1, unique=True))},
                                    name="[percent]"), None),
    "values": Field.optional(MapOf(TEXT, MapOf(Str(), TEXT)), {}),
})


@dataclass(frozen=True)
class TapeMapping:
    """A checked mapping (module doc). ``rename``: tape header → riskpool column."""

    source: str
    name: str
    kind: TapeKind
    rename: Mapping[str, str]
    dates: Mapping[str, str]  # riskpool column → strptime format
    percent: tuple[str, ...]  # riskpool columns holding percents
    values: Mapping[str, Mapping[str, str]]  # riskpool column → tape value → riskpool value

    def tape_column(self, column: str) -> str:
        """The tape's header of riskpool column ``column`` (itself when not renamed)."""
        for tape, ours in self.rename.items():
            if ours == column:
                return tape
        return column

    def note(self) -> str:
        shown = ", ".join(f"{t} → {c}" for t, c in self.rename.items())
        return f"mapped by {Path(self.source).name}" + (f": {shown}" if shown else "")


def parse_mapping(data: Any, source: str) -> TapeMapping:
    doc = validate(SPEC, data, source)
    kind = TapeKind(doc["mapping"]["kind"])
    required, optional = COLUMNS[kind]
    known = required + optional
    allowed = f"a {kind.value} tape column ({', '.join(known)})"
    seen: dict[str, str] = {}
    for tape, ours in doc["columns"].items():
        if ours not in known:
            raise SchemaError(child("columns", tape), allowed, ours, source)
        if ours in seen:
            raise SchemaError(child("columns", tape), f"a column no other header maps to "
                              f"(`columns.{seen[ours]}` maps to {ours} already)", ours, source)
        seen[ours] = tape
    for col, fmt in doc["dates"].items():
        if col not in DATE_COLUMNS[kind]:
            raise SchemaError(child("dates", col), "a date column of a "
                              f"{kind.value} tape ({', '.join(DATE_COLUMNS[kind])})", col, source)
        try:
            dt.datetime(2026, 7, 6).strftime(fmt)
        except ValueError:
            raise SchemaError(child("dates", col), "a strptime format", fmt, source) from None
    percent = tuple(doc["percent"]["columns"]) if doc["percent"] else ()
    for i, col in enumerate(percent):
        if col not in RATE_COLUMNS[kind]:
            raise SchemaError(f"percent.columns[{i}]", "a rate column of a "
                              f"{kind.value} tape ({', '.join(RATE_COLUMNS[kind]) or 'none'})",
                              col, source)
    for col in doc["values"]:
        if col not in known:
            raise SchemaError(child("values", col), allowed, col, source)
    return TapeMapping(source, doc["mapping"]["name"], kind, dict(doc["columns"]),
                       dict(doc["dates"]), percent,
                       {c: dict(m) for c, m in doc["values"].items()})


def load_mapping(path: str | Path) -> TapeMapping:
    """Read and check a mapping file (``SchemaError`` naming the file and the field)."""
    return parse_mapping(read_toml(path, "mapping file"), str(path))


def convert_date(value: str, fmt: str) -> str | None:
    """``value`` read with the strptime format ``fmt`` as ISO text; None if it does not fit."""
    try:
        return dt.datetime.strptime(value.strip(), fmt).date().isoformat()
    except ValueError:
        return None


def convert_percent(value: str) -> str | None:
    """A percent ("23.11" or "23.11%") as the decimal text of value / 100, exactly (Decimal
    division, never a float); None if it is not a finite number."""
    text = value.strip().removesuffix("%").strip()
    try:
        d = decimal.Decimal(text)
    except decimal.InvalidOperation:
        return None
    if not d.is_finite():
        return None
    return format(d / 100, "f")


def apply_values(mapping: TapeMapping, table: pa.Table, rows: np.ndarray,
                 where: Any) -> tuple[pa.Table, list[Problem], np.ndarray]:
    """The mapped values of ``table`` (riskpool column names, text columns): dates to ISO,
    percents to decimals, codes through ``[values]``. Returns the table, one ``Problem`` per
    value that cannot be mapped (rule ``mapping``) and a mask of the rows holding one.
    ``where(row)`` names a row ("row 3 (line 4)")."""
    problems: list[Problem] = []
    bad = np.zeros(table.num_rows, dtype=bool)
    src = Path(mapping.source).name
    for col in table.column_names:
        steps: list[tuple[str, Any]] = []
        if col in mapping.dates:
            fmt = mapping.dates[col]
            steps.append((f"`dates.{col}` = {fmt!r}",
                          lambda v, fmt=fmt: convert_date(v, fmt)))
        if col in mapping.percent:
            steps.append(("`percent.columns`", convert_percent))
        if col in mapping.values:
            table_map = {k.strip(): v for k, v in mapping.values[col].items()}
            targets = set(table_map.values())
            steps.append((f"`{child('values', col)}` ({', '.join(table_map) or 'no codes'})",
                          lambda v, m=table_map, t=targets: m.get(v.strip(),
                                                                  v.strip() if v.strip() in t
                                                                  else None)))
        if not steps:
            continue
        text = as_text(table.column(col))
        encoded = pc.dictionary_encode(text).combine_chunks()
        dictionary = encoded.dictionary.to_pylist()
        out: list[str | None] = []
        failed: list[str | None] = []  # the mapping field a value failed, per distinct value
        for value in dictionary:
            if value is None or not str(value).strip():
                out.append(value)  # a blank stays blank: the required rule reports it
                failed.append(None)
                continue
            converted: str | None = str(value)
            why = None
            for field, fn in steps:
                converted = fn(converted)
                if converted is None:
                    why = field
                    break
            out.append(converted if why is None else str(value))
            failed.append(why)
        index = np.asarray(encoded.indices.fill_null(len(dictionary)).to_numpy(
            zero_copy_only=False), dtype=np.int64)
        new = pa.array([*out, None], type=pa.string()).take(pa.array(index))
        table = table.set_column(table.column_names.index(col), col, new)
        fail_codes = np.array([f is not None for f in failed] + [False])
        rows_bad = np.flatnonzero(fail_codes[index])
        tape_col = mapping.tape_column(col)
        for i in rows_bad.tolist():
            value = dictionary[index[i]]
            field = failed[index[i]]
            problems.append(Problem(
                int(rows[i]), col, "mapping", str(value),
                f"{where(int(rows[i]))}: tape column `{tape_col}` ({col}) holds {str(value)!r}, "
                f"which mapping {src} {field} cannot read [rule mapping]"))
        bad[rows_bad] = True
    return table, problems, bad


def check_headers(mapping: TapeMapping, names: Sequence[str]) -> None:
    """Every header the mapping renames to a required column is in the tape."""
    required = COLUMNS[mapping.kind][0]
    have = {n.strip() for n in names}
    for tape, ours in mapping.rename.items():
        if ours in required and tape.strip() not in have and ours not in have:
            shown = ", ".join(n.strip() for n in names[:20]) + (" …" if len(names) > 20 else "")
            raise ValidationError(
                f"{mapping.source}: `{child('columns', tape)}` maps the tape header {tape!r} to "
                f"{ours}, a required column, but the tape has no such header (its headers: "
                f"{shown})")


def check_kind(mapping: TapeMapping, kind: TapeKind) -> None:
    if mapping.kind is not kind:
        raise ValidationError(f"{mapping.source}: `mapping.kind` is {mapping.kind.value!r}, "
                              f"but the tape is loaded as --kind {kind.value}")
