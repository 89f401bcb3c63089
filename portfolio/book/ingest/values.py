"""Typed values out of Arrow columns: blank cells, numbers, ISO dates, and a value as shown
in messages and rejects. Text (CSV) and native (Parquet) columns alike, whole columns at
once."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_NUMBER_PATTERN = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def bool_mask(mask: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean Arrow result as a numpy bool array (null counts as False)."""
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def is_text(col: pa.ChunkedArray) -> bool:
    return pa.types.is_string(col.type) or pa.types.is_large_string(col.type)


def as_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if is_text(col):
        return col
    return pc.cast(col, pa.string())


def blank_mask(col: pa.ChunkedArray) -> np.ndarray:
    """Null, empty, whitespace-only, or (for float columns) NaN."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if is_text(col):
        blank = pc.or_kleene(pc.equal(pc.binary_length(col), 0), pc.utf8_is_space(col))
        return bool_mask(pc.or_kleene(pc.is_null(col), blank))
    out = bool_mask(pc.is_null(col))
    if pa.types.is_floating(col.type):
        out |= bool_mask(pc.is_nan(col))
    return out


def parse_float(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """``(values float64, ok)``: ok where the value is a finite number."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if is_text(col):
        try:
            parsed = pc.cast(col, pa.float64())
            valid = np.ones(len(col), dtype=bool)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            valid = bool_mask(pc.match_substring_regex(col, _NUMBER_PATTERN))
            parsed = pc.cast(pc.if_else(pa.array(valid), col, "nan"), pa.float64())
    elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(
        col.type
    ):
        parsed = pc.cast(col, pa.float64())
        valid = ~bool_mask(pc.is_null(col))
    else:
        return np.full(len(col), np.nan), np.zeros(len(col), dtype=bool)
    values = np.asarray(pc.fill_null(parsed, np.nan).to_numpy(zero_copy_only=False), dtype=float)
    ok = valid & np.isfinite(values)
    return values, ok


def parse_date(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """``(values datetime64[D], ok)``: ok where the value is a real ISO date YYYY-MM-DD."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    n = len(col)
    if is_text(col):
        try:
            dates = pc.cast(col, pa.date32())
            ok = ~bool_mask(pc.is_null(dates))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            shaped = bool_mask(pc.match_substring_regex(col, _DATE_PATTERN))
            text = pc.if_else(pa.array(shaped), col, "1970-01-01")
            stamps = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)
            # strptime rolls 2024-02-30 over to March; a real date formats back unchanged.
            same = bool_mask(pc.equal(pc.strftime(stamps, format="%Y-%m-%d"), text))
            ok = shaped & same
            dates = pc.cast(pc.if_else(pa.array(ok), stamps, None), pa.date32())
    elif pa.types.is_date(col.type):
        dates = pc.cast(col, pa.date32())
        ok = ~bool_mask(pc.is_null(col))
    elif pa.types.is_timestamp(col.type):
        midnight = pc.equal(pc.cast(pc.floor_temporal(col, unit="day"), col.type), col)
        ok = bool_mask(midnight)
        dates = pc.cast(col, pa.date32())
    else:
        return np.full(n, np.datetime64("NaT"), dtype="M8[D]"), np.zeros(n, dtype=bool)
    values = np.asarray(
        pc.cast(dates, pa.int32()).fill_null(0).to_numpy(zero_copy_only=False)
    ).astype("M8[D]")
    return values, ok


def value_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)
    return str(value)


def all_blank_rows(table: pa.Table) -> np.ndarray:
    """Rows whose every column is blank (later columns only looked at where still blank)."""
    out = np.ones(table.num_rows, dtype=bool)
    for col in table.columns:
        idx = np.flatnonzero(out)
        if idx.size == 0:
            break
        if idx.size == table.num_rows:
            out &= blank_mask(col)
        else:
            out[idx] = blank_mask(col.take(pa.array(idx)))
    return out
