"""How a rule is checked: bad-row masks collected per (column, rule) over whole columns,
messages built for the bad rows only, and the checks every tape shares (required, numeric,
integer, cents, ISO date not in the future, unique keys)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from portfolio.book.ingest.tape import Problem, RawTape
from portfolio.book.ingest.values import (
    all_blank_rows,
    as_text,
    blank_mask,
    parse_date,
    parse_float,
    value_text,
)
from portfolio.errors import must_be

Message = Callable[[int, str | None, str], str]  # (table index, value, where) -> message


class Collector:
    """Collects bad-row masks per (column, rule); messages are built for bad rows only."""

    def __init__(self, raw: RawTape) -> None:
        self.raw = raw
        self.n = raw.table.num_rows
        self.bad = np.zeros(self.n, dtype=bool)
        self.skip = np.zeros(self.n, dtype=bool)
        self._items: list[tuple[np.ndarray, str | None, str, pa.ChunkedArray | None, Message]] = []

    def flag(
        self,
        mask: np.ndarray,
        column: str | None,
        rule: str,
        values: pa.ChunkedArray | None,
        message: Message,
    ) -> None:
        idx = np.flatnonzero(mask & ~self.skip)
        if idx.size:
            self.bad[idx] = True
            self._items.append((idx, column, rule, values, message))

    def problems(self) -> list[Problem]:
        out: list[Problem] = list(self.raw.problems)
        for idx, column, rule, values, message in self._items:
            shown = values.take(pa.array(idx)).to_pylist() if values is not None else [None] * len(idx)
            for i, value in zip(idx.tolist(), shown, strict=True):
                row = int(self.raw.rows[i])
                text = value_text(value)
                msg = message(i, text, f"{self.raw.where(row)} [rule {rule}]")
                out.append(Problem(row, column, rule, text, msg))
        out.sort(key=lambda p: (p.row, p.column or "", p.rule))
        return out


def key_codes(keys: list[pa.ChunkedArray]) -> np.ndarray:
    """One int64 code per distinct key (hashing; Arrow releases the GIL for one key)."""
    if len(keys) == 1:
        encoded = pc.dictionary_encode(keys[0]).combine_chunks()
        return np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    frame = pd.DataFrame({f"k{j}": k.to_numpy(zero_copy_only=False) for j, k in enumerate(keys)})
    return frame.groupby(list(frame.columns), sort=False, dropna=False).ngroup().to_numpy()


INT16_MAX = 2**15 - 1  # the largest value of a SMALLINT column (dpd, months_on_book, ...)


def as_int16(values: np.ndarray) -> np.ndarray:
    """Whole-number floats as int16 (bad rows, NaN or out of range, become 0; never kept)."""
    fine = np.isfinite(values) & (np.abs(values) < 2**15)
    return np.where(fine, values, 0).astype(np.int16)


class Picker:
    """Takes the good rows of a column; a no-op copy-free path when every row is good."""

    def __init__(self, good: np.ndarray) -> None:
        self.good = good
        self.all = bool(good.all())
        self.idx = None if self.all else pa.array(np.flatnonzero(good))

    def arrow(self, col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
        return col if self.idx is None else col.take(self.idx)

    def numpy(self, values: np.ndarray, type_: pa.DataType) -> pa.Array:
        return pa.array(values if self.all else values[self.good], type=type_)


def rule_message(column: str, allowed: str, hint: Callable[[int], str] | None = None) -> Message:
    def build(i: int, value: str | None, where: str) -> str:
        text = must_be(column, allowed, value, where)
        return text + (hint(i) if hint is not None else "")

    return build


class Checker:
    """Shared per-column checks over a raw tape."""

    def __init__(self, raw: RawTape, today: date) -> None:
        self.raw = raw
        self.c = Collector(raw)
        self.today = np.datetime64(today, "D")
        self.table = raw.table
        # A row with every known field blank is one "empty_row" problem, not many.
        empty = all_blank_rows(self.table) if self.table.num_columns else np.zeros(0, bool)
        self.c.flag(empty, None, "empty_row", None, lambda i, v, w: f"empty line at {w}")
        self.c.skip |= empty

    def text(self, name: str, required: bool = True) -> tuple[pa.ChunkedArray, np.ndarray]:
        col = as_text(self.table[name])
        blank = blank_mask(self.table[name])
        if required:
            self.c.flag(blank, name, "required", col, rule_message(name, "present (a required field)"))
        return col, ~blank

    def number(
        self, name: str, integer: bool = False, required: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        raw = self.table[name]
        values, ok = parse_float(raw)
        # Every value parsed: nothing is blank (the common case needs no blank scan).
        blank = np.zeros(len(ok), dtype=bool) if ok.all() else blank_mask(raw)
        if required:
            self.c.flag(blank, name, "required", raw, rule_message(name, "present (a required field)"))
        self.c.flag(~ok & ~blank, name, "numeric", raw, rule_message(name, "a finite number"))
        if not required:
            # A present optional amount column must be filled on every row.
            self.c.flag(blank, name, "numeric", raw, rule_message(name, "a finite number"))
        if integer:
            frac = ok & (values != np.rint(values))
            self.c.flag(frac, name, "integer", raw, rule_message(name, "a whole number"))
            ok &= ~frac
        return values, ok

    def amount(
        self, name: str, low_open: bool, high: float | None, rule: str, required: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Money: a number with at most 2 decimals; > 0 (low_open) or >= 0; <= high."""
        values, ok = self.number(name, required=required)
        raw = self.table[name]
        low_bad = ok & ((values <= 0) if low_open else (values < 0))
        high_bad = ok & (values > high) if high is not None else np.zeros_like(ok)
        lo = "(0" if low_open else "[0"
        allowed = f"in {lo}, {high:,.0f}]" if high is not None else ">= 0"
        self.c.flag(low_bad | high_bad, name, rule, raw, rule_message(name, allowed))
        ok &= ~(low_bad | high_bad)
        cents = values * 100.0
        # Float parsing of "8000.10" leaves ~1e-9 cents of noise; a stray third decimal is
        # at least 0.1 cent, so the tolerance sits far between the two.
        frac = ok & (np.abs(cents - np.rint(cents)) > np.maximum(1e-6, 1e-9 * np.abs(cents)))
        self.c.flag(frac, name, "cents", raw, rule_message(name, "an amount in whole cents (2 decimals)"))
        ok &= ~frac
        return values, ok

    def date(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        raw = self.table[name]
        values, ok = parse_date(raw)
        blank = np.zeros(len(ok), dtype=bool) if ok.all() else blank_mask(raw)
        self.c.flag(blank, name, "required", raw, rule_message(name, "present (a required field)"))
        self.c.flag(~ok & ~blank, name, "iso_date", raw, rule_message(name, "a real ISO date YYYY-MM-DD"))
        future = ok & (values > self.today)
        self.c.flag(
            future, name, "not_future", raw, rule_message(name, f"on or before today ({self.today})")
        )
        return values, ok & ~future

    def unique(
        self,
        keys: list[pa.ChunkedArray],
        ok: np.ndarray,
        names: str,
        rule: str,
        label: pa.ChunkedArray | None = None,
        codes: np.ndarray | None = None,
    ) -> None:
        """Flag every row whose key occurs more than once in the file (all occurrences).

        ``label`` is the key as shown in messages (default: the single key column);
        ``codes`` the keys' group codes when already computed (``key_codes``).
        """
        if codes is None:
            codes = key_codes(keys)
        codes = np.where(ok, codes, -1)
        valid = codes >= 0
        counts = np.bincount(codes[valid], minlength=1)
        dup = valid & (counts[np.where(valid, codes, 0)] > 1)
        if not dup.any():
            return
        dup_idx = np.flatnonzero(dup)
        by_code: dict[int, list[int]] = {}
        for i in dup_idx.tolist():
            by_code.setdefault(int(codes[i]), []).append(int(self.raw.rows[i]))
        shown_key = label if label is not None else keys[0]

        def message(i: int, value: str | None, where: str) -> str:
            others = [r for r in by_code[int(codes[i])] if r != int(self.raw.rows[i])]
            shown = ", ".join(str(r) for r in others[:10]) + (" …" if len(others) > 10 else "")
            return must_be(names, "unique in the file", value, where) + f" (also on rows {shown})"

        self.c.flag(dup, names.split(",")[0].strip("`( "), rule, shown_key, message)
