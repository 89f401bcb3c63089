"""Strict loan and performance tape ingestion (CSV or Parquet) into the book.

A tape is read whole, every rule is checked over whole columns at once (Arrow/numpy, no
per-row Python loop), and then — in one transaction — either

* refused whole (default): one bad row refuses the file, ``TapeRejected`` lists every bad
  row, and nothing at all is written (not even an ``ingest_batches`` row); or
* loaded partly (``allow_rejects=True``): the good rows go in, every problem of every bad
  row goes to ``ingest_rejects`` (row number, column, rule, value, message, raw row).

Every load that writes is recorded in ``ingest_batches`` (file, sha256, counts, times).

Conventions
-----------
* **Row numbers** are 1-based data rows: row 1 is the first line after the header, so for a
  CSV file row N is file line N + 1 (messages say both: "row 17 (line 18)"). Every line is
  one row (quoted values may not contain line breaks). For Parquet, row N is the N-th row.
* **Encoding**: UTF-8 with or without BOM. A file whose bytes are not valid UTF-8 is decoded
  as GB18030 (a superset of GBK) when that succeeds, with a note; otherwise it is refused
  with an encoding message.
* **Columns**: header names are matched exactly after trimming blanks. A missing required
  column refuses the file; unknown extra columns are ignored with a note.
* **Values** are never coerced: blank, NaN or non-numeric values in required fields, amounts
  with fractions of a cent, non-integer counts, and non-ISO dates are refused. Ids are
  stored literally (an id that looks like SQL is just text). Blank optional text
  (``region``, ``channel``, ``product``) is stored as NULL. ``repayment_type`` may be the
  English name or the Chinese label; the English name is stored.
* **Reloads**: a file with the same sha256 and kind as an earlier batch is a reported
  no-op. A row whose key (``loan_id``; ``(loan_id, as_of)`` for performance) is already in
  the book with *identical* values is skipped as a duplicate (counted and noted: overlapping
  tapes are common); with *different* values it is a bad row (rule ``book_conflict``).
* **Empty lines** at the end of a CSV file are ignored with a note; an empty line inside
  the file is a bad row (rule ``empty_row``). A last line with fewer fields than the header
  is a bad row (rule ``truncated_last_line``); any other line with the wrong number of
  fields is rule ``field_count``.

Rules (the id in brackets appears in every message and in ``ingest_rejects.rule``)
-----------------------------------------------------------------------------
Any tape: ``required`` (blank/NaN in a required field), ``numeric``, ``integer``, ``cents``
(money in whole cents), ``iso_date`` (a real YYYY-MM-DD date), ``not_future``,
``field_count``, ``truncated_last_line``, ``empty_row``, ``book_conflict``.

Loan tape: ``R5_principal_cap`` (0 < principal <= 200,000), ``R9_apr_cap`` (0 <= apr <= cap,
default 0.24; "looks like a percent" hint above 1), ``allowed_term`` (3, 6, 9, 12, 18, 24),
``R6_bullet_term`` (interest_only at most 12 months), ``score_range`` (350–950),
``repayment_type``, ``unique_loan_id`` (every occurrence of a repeated id is bad: which one
is right cannot be told), ``no_pii`` (a borrower_id shaped like a mobile number or an
ID-card number).

Performance tape: ``unknown_loan`` (not in the book), ``before_origination``,
``month_end`` (as_of is the last day of its month), ``non_negative`` (balance, amounts,
months_on_book, dpd), ``balance_above_principal``, ``status`` (current, delinquent, default,
prepaid, matured), ``status_dpd`` (current: dpd 0; delinquent: 1–90; default: > 90),
``unique_loan_month`` ((loan_id, as_of) once per file).

Test hooks (environment): ``RISKPOOL_TEST_PAUSE_AFTER_INSERT=SECONDS`` sleeps inside the
load transaction after the inserts and before COMMIT; ``RISKPOOL_TEST_PAUSE_MARKER=PATH`` is
created when that pause begins. They exist so a test can SIGKILL a load mid-transaction.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from portfolio.errors import TapeRejected, ValidationError, must_be
from portfolio.store import Store
from portfolio.store import ingest as sql
from portfolio.store.book import insert_loans, insert_performance
from portfolio.loans.types import (
    ALLOWED_TERMS,
    APR_CAP_DEFAULT,
    BULLET_MAX_TERM,
    DEFAULT_DPD,
    PRINCIPAL_MAX,
    SCORE_MAX,
    SCORE_MIN,
    LoanStatus,
    RepaymentType,
)


class TapeKind(StrEnum):
    LOANS = "loans"
    PERFORMANCE = "performance"


LOAN_REQUIRED: tuple[str, ...] = (
    "loan_id",
    "borrower_id",
    "origination_date",
    "principal",
    "apr",
    "term_months",
    "repayment_type",
    "credit_score",
)
LOAN_OPTIONAL: tuple[str, ...] = ("region", "channel", "product")
PERFORMANCE_REQUIRED: tuple[str, ...] = (
    "loan_id",
    "as_of",
    "months_on_book",
    "balance",
    "dpd",
    "status",
)
PERFORMANCE_OPTIONAL: tuple[str, ...] = (
    "paid_principal",
    "paid_interest",
    "prepaid_principal",
    "charge_off",
    "recovery",
)
_COLUMNS = {
    TapeKind.LOANS: (LOAN_REQUIRED, LOAN_OPTIONAL),
    TapeKind.PERFORMANCE: (PERFORMANCE_REQUIRED, PERFORMANCE_OPTIONAL),
}

PAUSE_ENV = "RISKPOOL_TEST_PAUSE_AFTER_INSERT"
PAUSE_MARKER_ENV = "RISKPOOL_TEST_PAUSE_MARKER"

# A mainland mobile number (11 digits starting 13–19) or a resident ID-card number
# (17 digits and a check digit 0–9/X): never a pseudonymous id (DOMAIN "No PII").
_PII_PATTERN = r"^(1[3-9][0-9]{9}|[0-9]{17}[0-9Xx])$"
_NUMBER_PATTERN = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule on one row. ``row`` follows the module's row convention."""

    row: int
    column: str | None
    rule: str
    value: str | None
    message: str


@dataclass(frozen=True, slots=True)
class RawTape:
    """A tape as read: the known columns (text for CSV, native types for Parquet).

    ``rows[i]`` is the 1-based data row of ``table`` row ``i``; rows that could not be
    parsed into the table (wrong field count) are already in ``problems``.
    """

    source: Path
    file_format: str  # "csv" | "parquet"
    encoding: str | None
    sha256: str
    table: pa.Table
    rows: np.ndarray  # int64, shape (table.num_rows,)
    n_rows: int
    problems: tuple[Problem, ...]
    raw_lines: dict[int, str]  # row -> raw text of the rows in ``problems``
    notes: tuple[str, ...]

    def where(self, row: int) -> str:
        return f"row {row} (line {row + 1})" if self.file_format == "csv" else f"row {row}"


@dataclass(frozen=True, slots=True)
class CheckedTape:
    """A validated tape: the typed good rows (with ``_row``) and every problem found."""

    raw: RawTape
    kind: TapeKind
    good: pa.Table
    problems: tuple[Problem, ...]


@dataclass(frozen=True, slots=True)
class IngestResult:
    source: str
    kind: TapeKind
    sha256: str
    batch_id: int | None
    n_rows: int
    n_loaded: int
    n_rejected: int
    n_duplicates: int
    already_loaded: bool
    notes: tuple[str, ...]
    problems: tuple[Problem, ...]

    def summary(self) -> str:
        """A short human summary (the CLI prints it)."""
        name = Path(self.source).name
        if self.already_loaded:
            return (
                f"{name}: already loaded as batch {self.batch_id} (same sha256 and kind); "
                "nothing to do"
            )
        what = "loans" if self.kind is TapeKind.LOANS else "performance rows"
        lines = [
            f"{name}: loaded {self.n_loaded} {what} of {self.n_rows} rows (batch "
            f"{self.batch_id}); rejected {self.n_rejected}; skipped {self.n_duplicates} "
            "duplicate(s) already in the book"
        ]
        if self.n_rejected:
            by_rule: dict[str, int] = {}
            for p in self.problems:
                by_rule[p.rule] = by_rule.get(p.rule, 0) + 1
            counts = ", ".join(f"{rule} {n}" for rule, n in sorted(by_rule.items()))
            lines.append(
                f"  {len(self.problems)} problem(s) kept in ingest_rejects (batch "
                f"{self.batch_id}) by rule: {counts}; first: {self.problems[0].message}"
            )
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


# ----------------------------------------------------------------------------- reading


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def read_tape(
    path: str | Path, kind: TapeKind | str = TapeKind.LOANS, *, sha256: str | None = None
) -> RawTape:
    """Read a CSV or Parquet tape (its known columns) and hash it; structure errors raise.

    ``sha256``, when the caller has already hashed the file, is taken as given.
    Raises ``ValidationError`` for a file that cannot be a tape at all: undecodable bytes, a
    missing required column, a duplicated header name, an unparseable file.
    """
    path = Path(path)
    kind = TapeKind(kind)
    if not path.is_file():
        raise ValidationError(f"tape {path} does not exist or is not a file")
    if path.suffix.lower() in {".xlsx", ".xls", ".xlsm", ".json", ".zip", ".gz"}:
        raise ValidationError(
            f"{path.name}: a tape must be CSV or Parquet; got a {path.suffix} file "
            "(export it as CSV, UTF-8)"
        )
    digest: list[str] = [sha256] if sha256 else []
    hasher = threading.Thread(target=lambda: digest.append(sha256_of(path)))
    if not sha256:
        hasher.start()  # hashing runs beside the parse (hashlib releases the GIL)
    try:
        if _is_parquet(path):
            parts = _read_parquet(path, kind)
        else:
            parts = _read_csv(path, kind)
    finally:
        if not sha256:
            hasher.join()
    table, rows, problems, raw_lines, notes, encoding, file_format = parts
    n_rows = int(rows.size + len(problems))
    return RawTape(
        source=path,
        file_format=file_format,
        encoding=encoding,
        sha256=digest[0],
        table=table,
        rows=rows,
        n_rows=n_rows,
        problems=tuple(problems),
        raw_lines=raw_lines,
        notes=tuple(notes),
    )


def _is_parquet(path: Path) -> bool:
    if path.suffix.lower() in {".parquet", ".pq"}:
        return True
    with open(path, "rb") as fh:
        return fh.read(4) == b"PAR1"


def _check_header(path: Path, kind: TapeKind, names: Sequence[str]) -> tuple[list[str], list[str]]:
    required, optional = _COLUMNS[kind]
    seen: set[str] = set()
    for name in names:
        if name in seen and name in required + optional:
            raise ValidationError(f"{path.name}: column `{name}` appears twice in the header")
        seen.add(name)
    missing = [c for c in required if c not in seen]
    if missing:
        hint = ""
        other = TapeKind.PERFORMANCE if kind is TapeKind.LOANS else TapeKind.LOANS
        if all(c in seen for c in _COLUMNS[other][0]):
            hint = f" (this looks like a {other.value} tape: use --kind {other.value})"
        elif len(names) == 1 and any(sep in names[0] for sep in (";", "\t", "|")):
            hint = " (fields must be separated by commas)"
        raise ValidationError(
            f"{path.name}: missing required column(s) "
            + ", ".join(f"`{c}`" for c in missing)
            + f" for a {kind.value} tape; required: {', '.join(required)}{hint}"
        )
    known = [n for n in names if n in required + optional]
    unknown = [n for n in names if n not in required + optional]
    return known, unknown


def _read_parquet(path: Path, kind: TapeKind):  # type: ignore[no-untyped-def]
    try:
        names = pq.ParquetFile(path).schema_arrow.names
        known, unknown = _check_header(path, kind, names)
        table = pq.read_table(path, columns=known)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationError(f"{path.name}: cannot read as Parquet: {exc}") from None
    notes = [_unknown_note(unknown)] if unknown else []
    rows = np.arange(1, table.num_rows + 1, dtype=np.int64)
    return table, rows, [], {}, notes, None, "parquet"


def _unknown_note(unknown: Sequence[str]) -> str:
    return "ignored unknown column(s): " + ", ".join(repr(u) for u in unknown)


class _NotUtf8(Exception):
    pass


def _is_utf8(source: Path | bytes) -> bool:
    data = source.read_bytes() if isinstance(source, Path) else source
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _read_csv(path: Path, kind: TapeKind):  # type: ignore[no-untyped-def]
    with open(path, "rb") as fh:
        first = fh.readline()
    if first.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in first:
        raise ValidationError(
            f"{path.name}: encoding must be UTF-8 (or GBK/GB18030); this looks like UTF-16 "
            "(Excel's 'Unicode text'); re-save the file as CSV UTF-8"
        )
    notes: list[str] = []
    encoding: str | None = "utf-8"
    try:
        header = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        encoding = None
    parsed = None
    if encoding is not None:
        try:
            parsed = _parse_csv(path, path, header, kind)
        except _NotUtf8:
            encoding = None
    if parsed is None:
        data = path.read_bytes()
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"{path.name}: encoding must be UTF-8 (or GBK/GB18030); the bytes are neither "
                f"(undecodable byte 0x{data[exc.start]:02x} at offset {exc.start}); re-save "
                "the file as UTF-8"
            ) from None
        encoding = "gb18030"
        notes.append("decoded as GBK/GB18030 (the file is not UTF-8)")
        utf8 = text.encode("utf-8")
        header = text.split("\n", 1)[0]
        parsed = _parse_csv(path, utf8, header, kind)
    table, rows, problems, raw_lines, more_notes = parsed
    return table, rows, problems, raw_lines, notes + more_notes, encoding, "csv"


def _parse_csv(path: Path, source: Path | bytes, header: str, kind: TapeKind):  # type: ignore[no-untyped-def]
    header = header.rstrip("\r\n")
    if not header.strip():
        raise ValidationError(f"{path.name}: the first line must be a header; got an empty line")
    names = [n.strip() for n in next(csv.reader([header]))]
    known, unknown = _check_header(path, kind, names)
    # Unknown columns get unique placeholder names (they may repeat or be blank).
    read_names = [n if n in known else f"__extra_{i}" for i, n in enumerate(names)]

    def parse(use_threads: bool) -> tuple[pa.Table, list[tuple[int | None, int, int, str]]]:
        invalid: list[tuple[int | None, int, int, str]] = []

        def handler(row: pcsv.InvalidRow) -> str:
            invalid.append((row.number, row.expected_columns, row.actual_columns, row.text))
            return "skip"

        src = source if isinstance(source, Path) else io.BytesIO(source)
        try:
            table = pcsv.read_csv(
                src,
                read_options=pcsv.ReadOptions(
                    column_names=read_names, skip_rows=1, use_threads=use_threads
                ),
                parse_options=pcsv.ParseOptions(
                    invalid_row_handler=handler,
                    newlines_in_values=False,
                    ignore_empty_lines=False,
                ),
                convert_options=pcsv.ConvertOptions(
                    column_types={n: pa.string() for n in known},
                    include_columns=known,
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                    check_utf8=True,
                ),
            )
        except pa.ArrowInvalid as exc:
            if "utf8" in str(exc).lower() or not _is_utf8(source):
                raise _NotUtf8 from None
            raise ValidationError(f"{path.name}: cannot parse as CSV: {exc}") from None
        return table, invalid

    table, invalid = parse(use_threads=True)
    if invalid and any(number is None for number, *_ in invalid):
        # Line numbers of bad lines are only known to the single-threaded reader.
        table, invalid = parse(use_threads=False)

    n_total = table.num_rows + len(invalid)
    numbers = [number for number, *_ in invalid]
    if any(number is None for number in numbers):
        raise ValidationError(f"{path.name}: cannot locate its malformed lines; check the CSV")
    bad_rows = np.array([int(number) - 1 for number in numbers if number is not None], dtype=np.int64)
    rows = np.setdiff1d(np.arange(1, n_total + 1, dtype=np.int64), bad_rows, assume_unique=True)
    problems: list[Problem] = []
    raw_lines: dict[int, str] = {}
    for (_number, expected, actual, text), row in zip(invalid, bad_rows.tolist(), strict=True):
        raw_lines[row] = text
        if row == n_total and actual < expected:
            rule = "truncated_last_line"
            msg = (
                f"row {row} (line {row + 1}, the last line) has {actual} of {expected} fields: "
                f"the file looks truncated [rule {rule}]"
            )
        else:
            rule = "field_count"
            msg = (
                f"row {row} (line {row + 1}) has {actual} fields; the header has {expected} "
                f"[rule {rule}]"
            )
        problems.append(Problem(row, None, rule, text, msg))

    notes = [_unknown_note(unknown)] if unknown else []
    # Empty lines at the very end are ignored (with a note); inside the file they are errors.
    if table.num_rows and known:
        empty = _all_blank(table)
        if empty[-1]:
            keep_upto = int(np.flatnonzero(~empty)[-1] + 1) if (~empty).any() else 0
            tail_rows = rows[keep_upto:]
            if tail_rows.size and (not bad_rows.size or tail_rows[0] > bad_rows.max()):
                notes.append(f"ignored {tail_rows.size} empty line(s) at the end of the file")
                table = table.slice(0, keep_upto)
                rows = rows[:keep_upto]
    return table, rows, problems, raw_lines, notes


def _all_blank(table: pa.Table) -> np.ndarray:
    """Rows whose every column is blank (later columns only looked at where still blank)."""
    out = np.ones(table.num_rows, dtype=bool)
    for col in table.columns:
        idx = np.flatnonzero(out)
        if idx.size == 0:
            break
        if idx.size == table.num_rows:
            out &= _blank(col)
        else:
            out[idx] = _blank(col.take(pa.array(idx)))
    return out


# ----------------------------------------------------------------------------- column parsing


def _np(mask: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean Arrow result as a numpy bool array (null counts as False)."""
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _is_text(col: pa.ChunkedArray) -> bool:
    return pa.types.is_string(col.type) or pa.types.is_large_string(col.type)


def _text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if _is_text(col):
        return col
    return pc.cast(col, pa.string())


def _blank(col: pa.ChunkedArray) -> np.ndarray:
    """Null, empty, whitespace-only, or (for float columns) NaN."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if _is_text(col):
        blank = pc.or_kleene(pc.equal(pc.binary_length(col), 0), pc.utf8_is_space(col))
        return _np(pc.or_kleene(pc.is_null(col), blank))
    out = _np(pc.is_null(col))
    if pa.types.is_floating(col.type):
        out |= _np(pc.is_nan(col))
    return out


def _parse_float(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """``(values float64, ok)``: ok where the value is a finite number."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if _is_text(col):
        try:
            parsed = pc.cast(col, pa.float64())
            valid = np.ones(len(col), dtype=bool)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            valid = _np(pc.match_substring_regex(col, _NUMBER_PATTERN))
            parsed = pc.cast(pc.if_else(pa.array(valid), col, "nan"), pa.float64())
    elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(
        col.type
    ):
        parsed = pc.cast(col, pa.float64())
        valid = ~_np(pc.is_null(col))
    else:
        return np.full(len(col), np.nan), np.zeros(len(col), dtype=bool)
    values = np.asarray(pc.fill_null(parsed, np.nan).to_numpy(zero_copy_only=False), dtype=float)
    ok = valid & np.isfinite(values)
    return values, ok


def _parse_date(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """``(values datetime64[D], ok)``: ok where the value is a real ISO date YYYY-MM-DD."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    n = len(col)
    if _is_text(col):
        try:
            dates = pc.cast(col, pa.date32())
            ok = ~_np(pc.is_null(dates))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            shaped = _np(pc.match_substring_regex(col, _DATE_PATTERN))
            text = pc.if_else(pa.array(shaped), col, "1970-01-01")
            stamps = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)
            # strptime rolls 2024-02-30 over to March; a real date formats back unchanged.
            same = _np(pc.equal(pc.strftime(stamps, format="%Y-%m-%d"), text))
            ok = shaped & same
            dates = pc.cast(pc.if_else(pa.array(ok), stamps, None), pa.date32())
    elif pa.types.is_date(col.type):
        dates = pc.cast(col, pa.date32())
        ok = ~_np(pc.is_null(col))
    elif pa.types.is_timestamp(col.type):
        midnight = pc.equal(pc.cast(pc.floor_temporal(col, unit="day"), col.type), col)
        ok = _np(midnight)
        dates = pc.cast(col, pa.date32())
    else:
        return np.full(n, np.datetime64("NaT"), dtype="M8[D]"), np.zeros(n, dtype=bool)
    values = np.asarray(
        pc.cast(dates, pa.int32()).fill_null(0).to_numpy(zero_copy_only=False)
    ).astype("M8[D]")
    return values, ok


def _as_py(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)
    return str(value)


# ----------------------------------------------------------------------------- rule collection

Message = Callable[[int, str | None, str], str]  # (table index, value, where) -> message


class _Collector:
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
                text = _as_py(value)
                msg = message(i, text, f"{self.raw.where(row)} [rule {rule}]")
                out.append(Problem(row, column, rule, text, msg))
        out.sort(key=lambda p: (p.row, p.column or "", p.rule))
        return out


def _key_codes(keys: list[pa.ChunkedArray]) -> np.ndarray:
    """One int64 code per distinct key (hashing; Arrow releases the GIL for one key)."""
    if len(keys) == 1:
        encoded = pc.dictionary_encode(keys[0]).combine_chunks()
        return np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    frame = pd.DataFrame({f"k{j}": k.to_numpy(zero_copy_only=False) for j, k in enumerate(keys)})
    return frame.groupby(list(frame.columns), sort=False, dropna=False).ngroup().to_numpy()


def _int16(values: np.ndarray) -> np.ndarray:
    """Whole-number floats as int16 (bad rows, NaN or out of range, become 0; never kept)."""
    fine = np.isfinite(values) & (np.abs(values) < 2**15)
    return np.where(fine, values, 0).astype(np.int16)


class _Picker:
    """Takes the good rows of a column; a no-op copy-free path when every row is good."""

    def __init__(self, good: np.ndarray) -> None:
        self.good = good
        self.all = bool(good.all())
        self.idx = None if self.all else pa.array(np.flatnonzero(good))

    def arrow(self, col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
        return col if self.idx is None else col.take(self.idx)

    def numpy(self, values: np.ndarray, type_: pa.DataType) -> pa.Array:
        return pa.array(values if self.all else values[self.good], type=type_)


def _msg(column: str, allowed: str, hint: Callable[[int], str] | None = None) -> Message:
    def build(i: int, value: str | None, where: str) -> str:
        text = must_be(column, allowed, value, where)
        return text + (hint(i) if hint is not None else "")

    return build


class _Checker:
    """Shared per-column checks over a raw tape."""

    def __init__(self, raw: RawTape, today: date) -> None:
        self.raw = raw
        self.c = _Collector(raw)
        self.today = np.datetime64(today, "D")
        self.table = raw.table
        # A row with every known field blank is one "empty_row" problem, not many.
        empty = _all_blank(self.table) if self.table.num_columns else np.zeros(0, bool)
        self.c.flag(empty, None, "empty_row", None, lambda i, v, w: f"empty line at {w}")
        self.c.skip |= empty

    def text(self, name: str, required: bool = True) -> tuple[pa.ChunkedArray, np.ndarray]:
        col = _text(self.table[name])
        blank = _blank(self.table[name])
        if required:
            self.c.flag(blank, name, "required", col, _msg(name, "present (a required field)"))
        return col, ~blank

    def number(
        self, name: str, integer: bool = False, required: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        raw = self.table[name]
        values, ok = _parse_float(raw)
        # Every value parsed: nothing is blank (the common case needs no blank scan).
        blank = np.zeros(len(ok), dtype=bool) if ok.all() else _blank(raw)
        if required:
            self.c.flag(blank, name, "required", raw, _msg(name, "present (a required field)"))
        self.c.flag(~ok & ~blank, name, "numeric", raw, _msg(name, "a finite number"))
        if not required:
            # A present optional amount column must be filled on every row.
            self.c.flag(blank, name, "numeric", raw, _msg(name, "a finite number"))
        if integer:
            frac = ok & (values != np.rint(values))
            self.c.flag(frac, name, "integer", raw, _msg(name, "a whole number"))
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
        self.c.flag(low_bad | high_bad, name, rule, raw, _msg(name, allowed))
        ok &= ~(low_bad | high_bad)
        cents = values * 100.0
        # Float parsing of "8000.10" leaves ~1e-9 cents of noise; a stray third decimal is
        # at least 0.1 cent, so the tolerance sits far between the two.
        frac = ok & (np.abs(cents - np.rint(cents)) > np.maximum(1e-6, 1e-9 * np.abs(cents)))
        self.c.flag(frac, name, "cents", raw, _msg(name, "an amount in whole cents (2 decimals)"))
        ok &= ~frac
        return values, ok

    def date(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        raw = self.table[name]
        values, ok = _parse_date(raw)
        blank = np.zeros(len(ok), dtype=bool) if ok.all() else _blank(raw)
        self.c.flag(blank, name, "required", raw, _msg(name, "present (a required field)"))
        self.c.flag(~ok & ~blank, name, "iso_date", raw, _msg(name, "a real ISO date YYYY-MM-DD"))
        future = ok & (values > self.today)
        self.c.flag(
            future, name, "not_future", raw, _msg(name, f"on or before today ({self.today})")
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
        ``codes`` the keys' group codes when already computed (``_key_codes``).
        """
        if codes is None:
            codes = _key_codes(keys)
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


# ----------------------------------------------------------------------------- loan tapes


def check_loans(
    raw: RawTape, *, apr_cap: float = APR_CAP_DEFAULT, today: date | None = None
) -> CheckedTape:
    """Every loan-tape rule over whole columns; returns the typed good rows and all problems."""
    _check_apr_cap(apr_cap)
    # The id hashing (the largest single step) runs on a second core beside the other rules.
    with ThreadPoolExecutor(max_workers=1) as pool:
        id_codes = pool.submit(_key_codes, [_text(raw.table["loan_id"])])
        return _check_loans(raw, apr_cap, today or date.today(), id_codes)


def _check_loans(
    raw: RawTape, apr_cap: float, today: date, id_codes: Future[np.ndarray]
) -> CheckedTape:
    ck = _Checker(raw, today)
    c = ck.c
    loan_id, id_ok = ck.text("loan_id")
    borrower_id, bor_ok = ck.text("borrower_id")
    pii = bor_ok & _looks_like_pii(borrower_id)
    c.flag(
        pii,
        "borrower_id",
        "no_pii",
        borrower_id,
        _msg("borrower_id", "a pseudonymous id, never a phone or ID-card number (DOMAIN: No PII)"),
    )

    orig, _ = ck.date("origination_date")
    principal, _ = ck.amount("principal", True, PRINCIPAL_MAX, "R5_principal_cap")

    apr, apr_ok = ck.number("apr")
    apr_bad = apr_ok & ((apr < 0) | (apr > apr_cap))

    def percent_hint(i: int) -> str:
        return f"; looks like a percent: use {apr[i] / 100:g}" if apr[i] > 1 else ""

    c.flag(
        apr_bad,
        "apr",
        "R9_apr_cap",
        raw.table["apr"],
        _msg("apr", f"a decimal in [0, {apr_cap:g}] (0.18 means 18%)", percent_hint),
    )

    term, term_ok = ck.number("term_months", integer=True)
    term_bad = term_ok & ~np.isin(term, ALLOWED_TERMS)
    allowed_terms = "one of " + ", ".join(str(t) for t in ALLOWED_TERMS)
    c.flag(term_bad, "term_months", "allowed_term", raw.table["term_months"], _msg("term_months", allowed_terms))
    term_ok &= ~term_bad

    score, score_ok = ck.number("credit_score", integer=True)
    score_bad = score_ok & ((score < SCORE_MIN) | (score > SCORE_MAX))
    c.flag(
        score_bad,
        "credit_score",
        "score_range",
        raw.table["credit_score"],
        _msg("credit_score", f"in [{SCORE_MIN}, {SCORE_MAX}]"),
    )

    rtype_raw, rtype_present = ck.text("repayment_type")
    english, rtype_code, rtype_ok = _map_repayment(rtype_raw)
    allowed_types = "one of " + ", ".join(f"{t.value} ({t.label})" for t in RepaymentType)
    c.flag(
        rtype_present & ~rtype_ok,
        "repayment_type",
        "repayment_type",
        rtype_raw,
        _msg("repayment_type", allowed_types),
    )
    bullet = (rtype_code == RepaymentType.INTEREST_ONLY.code) & term_ok
    c.flag(
        bullet & (term > BULLET_MAX_TERM),
        "term_months",
        "R6_bullet_term",
        raw.table["term_months"],
        _msg("term_months", f"at most {BULLET_MAX_TERM} for interest_only (先息后本) loans"),
    )

    ck.unique([loan_id], id_ok, "loan_id", "unique_loan_id", codes=id_codes.result())

    pick = _Picker(~c.bad)
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "loan_id": pick.arrow(loan_id),
        "borrower_id": pick.arrow(borrower_id),
        "origination_date": pick.numpy(orig, pa.date32()),
        "principal": pick.numpy(principal, pa.float64()),
        "apr": pick.numpy(apr, pa.float64()),
        "term_months": pick.numpy(_int16(term), pa.int16()),
        "repayment_type": pick.arrow(english),
        "credit_score": pick.numpy(_int16(score), pa.int16()),
    }
    for name in LOAN_OPTIONAL:
        if name in raw.table.column_names:
            col = _text(raw.table[name])
            blank = _blank(raw.table[name])
            if blank.any():
                col = pc.if_else(pa.array(blank), pa.scalar(None, pa.string()), col)
            columns[name] = pick.arrow(col)
    columns["_row"] = pick.numpy(raw.rows, pa.int64())
    return CheckedTape(raw, TapeKind.LOANS, pa.table(columns), tuple(c.problems()))


def _looks_like_pii(ids: pa.ChunkedArray) -> np.ndarray:
    """Ids shaped like a phone or ID-card number (regex only on 11/18-character ids)."""
    maybe = _np(pc.is_in(pc.utf8_length(ids), value_set=pa.array([11, 18], pa.int32())))
    out = np.zeros(len(ids), dtype=bool)
    if maybe.any():
        idx = np.flatnonzero(maybe)
        subset = ids.take(pa.array(idx))
        out[idx] = _np(pc.match_substring_regex(subset, _PII_PATTERN))
    return out


def _check_apr_cap(apr_cap: float) -> None:
    if not (0 < apr_cap <= 1):
        raise ValidationError(must_be("apr_cap", "a decimal in (0, 1] (0.24 means 24%)", apr_cap))


def _map_repayment(col: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """``(English names, type codes (-1 = unknown), ok)``; each distinct value parsed once."""
    encoded = pc.dictionary_encode(col).combine_chunks()
    dictionary = encoded.dictionary.to_pylist()
    names: list[str | None] = []
    codes = np.full(len(dictionary) + 1, -1, dtype=np.int8)
    for j, value in enumerate(dictionary):
        try:
            parsed = RepaymentType.parse(value)
        except ValidationError:
            names.append(None)
        else:
            names.append(parsed.value)
            codes[j] = parsed.code
    names.append(None)
    index = encoded.indices.fill_null(len(dictionary))
    row_codes = codes[np.asarray(index.to_numpy(zero_copy_only=False), dtype=np.int64)]
    english = pa.array(names, type=pa.string()).take(index)
    return english, row_codes, row_codes >= 0


# ----------------------------------------------------------------------------- performance tapes


def check_performance(raw: RawTape, *, today: date | None = None) -> CheckedTape:
    """Every performance-tape rule that needs no database (see ``ingest`` for book checks)."""
    ck = _Checker(raw, today or date.today())
    c = ck.c
    loan_id, id_ok = ck.text("loan_id")
    as_of, as_of_ok = ck.date("as_of")
    not_month_end = as_of_ok & (
        (as_of + np.timedelta64(1, "D")).astype("M8[M]") == as_of.astype("M8[M]")
    )
    c.flag(not_month_end, "as_of", "month_end", raw.table["as_of"], _msg("as_of", "a month-end date"))
    as_of_ok &= ~not_month_end
    ck.unique(
        [loan_id, pa.chunked_array([pa.array(as_of.astype("M8[D]").astype(np.int64))])],
        id_ok & as_of_ok,
        "(loan_id, as_of)",
        "unique_loan_month",
        label=pc.binary_join_element_wise(loan_id, _text(raw.table["as_of"]), ", "),
    )

    mob, mob_ok = ck.number("months_on_book", integer=True)
    c.flag(mob_ok & (mob < 0), "months_on_book", "non_negative", raw.table["months_on_book"], _msg("months_on_book", ">= 0"))
    balance, _ = ck.amount("balance", False, None, "non_negative")
    dpd, dpd_ok = ck.number("dpd", integer=True)
    c.flag(dpd_ok & (dpd < 0), "dpd", "non_negative", raw.table["dpd"], _msg("dpd", "a whole number of days >= 0"))
    status_raw, status_present = ck.text("status")
    allowed = [s.value for s in LoanStatus]
    status_ok = _np(pc.is_in(status_raw, value_set=pa.array(allowed)))
    c.flag(
        status_present & ~status_ok,
        "status",
        "status",
        status_raw,
        _msg("status", "one of " + ", ".join(allowed)),
    )
    # Status and days past due tell the same story (DOMAIN: default = more than 90 DPD).
    dpd_ok &= ~(dpd_ok & (dpd < 0))
    both = dpd_ok & status_ok
    status_np = np.asarray(status_raw.to_numpy(zero_copy_only=False), dtype=object) if both.any() else None
    if status_np is not None:
        current = both & (status_np == LoanStatus.CURRENT.value)
        late = both & (status_np == LoanStatus.DELINQUENT.value)
        defaulted = both & (status_np == LoanStatus.DEFAULT.value)
        mismatch = (
            (current & (dpd != 0))
            | (late & ((dpd < 1) | (dpd > DEFAULT_DPD)))
            | (defaulted & (dpd <= DEFAULT_DPD))
        )

        def expected(i: int) -> str:
            return {
                LoanStatus.CURRENT.value: "0 for status current",
                LoanStatus.DELINQUENT.value: f"in [1, {DEFAULT_DPD}] for status delinquent",
                LoanStatus.DEFAULT.value: f"> {DEFAULT_DPD} for status default",
            }[str(status_np[i])]

        c.flag(
            mismatch,
            "dpd",
            "status_dpd",
            raw.table["dpd"],
            lambda i, v, w: must_be("dpd", expected(i), v, w),
        )
    amounts = {}
    for name in PERFORMANCE_OPTIONAL:
        if name in raw.table.column_names:
            amounts[name], _ = ck.amount(name, False, None, "non_negative", required=False)

    pick = _Picker(~c.bad)
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "loan_id": pick.arrow(loan_id),
        "as_of": pick.numpy(as_of, pa.date32()),
        "months_on_book": pick.numpy(_int16(mob), pa.int16()),
        "balance": pick.numpy(balance, pa.float64()),
        "dpd": pick.numpy(_int16(dpd), pa.int16()),
        "status": pick.arrow(status_raw),
    }
    for name, values in amounts.items():
        columns[name] = pick.numpy(values, pa.float64())
    columns["_row"] = pick.numpy(raw.rows, pa.int64())
    return CheckedTape(raw, TapeKind.PERFORMANCE, pa.table(columns), tuple(c.problems()))


def check_tape(
    raw: RawTape, kind: TapeKind | str, *, apr_cap: float = APR_CAP_DEFAULT, today: date | None = None
) -> CheckedTape:
    kind = TapeKind(kind)
    if kind is TapeKind.LOANS:
        return check_loans(raw, apr_cap=apr_cap, today=today)
    return check_performance(raw, today=today)


# ----------------------------------------------------------------------------- checks against the book


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    both_null = a.isna().to_numpy() & b.isna().to_numpy()
    eq = (a.to_numpy(dtype=object) == b.to_numpy(dtype=object))
    return np.asarray(eq, dtype=bool) | both_null


def _compare_with_book(
    checked: CheckedTape, existing: pa.Table, key: list[str], columns: Sequence[str], money: set[str]
) -> tuple[np.ndarray, list[Problem]]:
    """Rows of ``checked.good`` identical to a book row (skip) and conflicts (problems)."""
    good = checked.good
    dup = np.zeros(good.num_rows, dtype=bool)
    if existing.num_rows == 0:
        return dup, []
    cols = [c for c in columns if c in good.column_names]
    incoming = good.select(key + [c for c in cols if c not in key] + ["_row"]).to_pandas()
    incoming["_i"] = np.arange(len(incoming))
    book = existing.select(key + [c for c in cols if c not in key]).to_pandas()
    merged = incoming.merge(book, on=key, how="inner", suffixes=("", "__book"))
    differs: dict[str, np.ndarray] = {}
    for name in cols:
        if name in key:
            continue
        mine, theirs = merged[name], merged[f"{name}__book"]
        if name in money:
            same = np.rint(mine.astype(float).to_numpy() * 100) == np.rint(
                theirs.astype(float).to_numpy() * 100
            )
        elif name in {"origination_date", "as_of"}:
            same = pd.to_datetime(mine).to_numpy() == pd.to_datetime(theirs).to_numpy()
        elif name == "apr":
            same = np.isclose(mine.astype(float), theirs.astype(float), rtol=0, atol=1e-12)
        else:
            same = _same(mine, theirs)
        differs[name] = ~np.asarray(same, dtype=bool)
    any_diff = np.zeros(len(merged), dtype=bool)
    for d in differs.values():
        any_diff |= d
    positions = merged["_i"].to_numpy()
    dup[positions[~any_diff]] = True
    problems: list[Problem] = []
    raw = checked.raw
    key_label = key[0] if len(key) == 1 else "(" + ", ".join(key) + ")"
    for j in np.flatnonzero(any_diff).tolist():
        rec = merged.iloc[j]
        row = int(rec["_row"])
        def shown(name: str, value: object) -> str:
            if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
                return "blank"
            if name in money:
                return f"{float(value):.2f}"  # type: ignore[arg-type]
            if name in {"origination_date", "as_of"}:
                return str(value)[:10]
            return str(value)

        diffs = [
            f"{name} {shown(name, rec[f'{name}__book'])} in the book vs "
            f"{shown(name, rec[name])} here"
            for name, d in differs.items()
            if d[j]
        ]
        value = str(rec["loan_id"]) if len(key) == 1 else f"{rec['loan_id']}, {rec['as_of']!s:.10}"
        where = f"{raw.where(row)} [rule book_conflict]"
        msg = (
            must_be(key_label, "new or identical to the row already in the book", value, where)
            + "; differs: "
            + "; ".join(diffs)
        )
        problems.append(Problem(row, key[0], "book_conflict", value, msg))
    return dup, problems


def _book_checks(store: Store, checked: CheckedTape) -> tuple[np.ndarray, np.ndarray, list[Problem]]:
    """``(bad, duplicate, problems)`` masks over ``checked.good`` from the book's contents."""
    con = store.con
    good = checked.good
    bad = np.zeros(good.num_rows, dtype=bool)
    problems: list[Problem] = []
    if good.num_rows == 0:
        return bad, bad.copy(), problems
    raw = checked.raw
    if checked.kind is TapeKind.LOANS:
        existing = sql.existing_loans(con, good["loan_id"])
        dup, conflicts = _compare_with_book(
            checked,
            existing,
            ["loan_id"],
            [c for c in LOAN_REQUIRED + LOAN_OPTIONAL],
            {"principal"},
        )
    else:
        ids = pc.unique(good["loan_id"])
        known = sql.known_loans(con, ids).to_pandas()
        frame = pd.DataFrame(
            {
                "loan_id": good["loan_id"].to_numpy(zero_copy_only=False),
                "as_of": good["as_of"].to_numpy(zero_copy_only=False).astype("M8[D]"),
            }
        )
        merged = frame.merge(known, on="loan_id", how="left")
        unknown = merged["origination_date"].isna().to_numpy()
        orig = pd.to_datetime(merged["origination_date"]).to_numpy().astype("M8[D]")
        early = ~unknown & (merged["as_of"].to_numpy() < orig)
        principal = merged["principal"].to_numpy(dtype=float, na_value=np.nan)
        balance = good["balance"].to_numpy()
        above = ~unknown & (np.rint(balance * 100) > np.rint(principal * 100))
        rows = good["_row"].to_numpy()

        def add(mask: np.ndarray, column: str, rule: str, allowed: Callable[[int], str],
                shown: Callable[[int], str]) -> None:
            for j in np.flatnonzero(mask).tolist():
                row = int(rows[j])
                value = shown(j)
                msg = must_be(column, allowed(j), value, f"{raw.where(row)} [rule {rule}]")
                problems.append(Problem(row, column, rule, value, msg))

        add(unknown, "loan_id", "unknown_loan",
            lambda j: "a loan already in the book (load the loan tape first)",
            lambda j: str(frame["loan_id"].iat[j]))
        add(early, "as_of", "before_origination",
            lambda j: f"on or after the loan's origination_date {str(orig[j])[:10]}",
            lambda j: str(frame["as_of"].iat[j])[:10])
        add(above, "balance", "balance_above_principal",
            lambda j: f"at most the loan's principal {principal[j]:.2f}",
            lambda j: f"{balance[j]:.2f}")
        bad |= unknown | early | above
        existing = sql.existing_performance(con, good.select(["loan_id", "as_of"]))
        dup, conflicts = _compare_with_book(
            checked,
            existing,
            ["loan_id", "as_of"],
            list(PERFORMANCE_REQUIRED + PERFORMANCE_OPTIONAL),
            {"balance", *PERFORMANCE_OPTIONAL},
        )
    row_to_pos = {int(r): i for i, r in enumerate(good["_row"].to_numpy())} if conflicts else {}
    for p in conflicts:
        bad[row_to_pos[p.row]] = True
    problems.extend(conflicts)
    return bad, dup & ~bad, problems


# ----------------------------------------------------------------------------- the load


def _rejects_table(batch_id: int, raw: RawTape, problems: Sequence[Problem]) -> pa.Table:
    rows = np.array([p.row for p in problems], dtype=np.int64)
    raw_rows: list[str | None] = []
    names = raw.table.column_names
    pos = np.searchsorted(raw.rows, rows)
    for p, i in zip(problems, pos.tolist(), strict=True):
        if p.row in raw.raw_lines:
            raw_rows.append(raw.raw_lines[p.row])
        elif i < raw.table.num_rows and raw.rows[i] == p.row:
            record = {n: _as_py(raw.table[n][i].as_py()) for n in names}
            raw_rows.append(json.dumps(record, ensure_ascii=False, default=str))
        else:
            raw_rows.append(None)
    return pa.table(
        {
            "batch_id": pa.array([batch_id] * len(problems), type=pa.int64()),
            "row_number": pa.array(rows),
            "column_name": pa.array([p.column for p in problems], type=pa.string()),
            "rule": pa.array([p.rule for p in problems], type=pa.string()),
            "value": pa.array([p.value for p in problems], type=pa.string()),
            "message": pa.array([p.message for p in problems], type=pa.string()),
            "raw_row": pa.array(raw_rows, type=pa.string()),
        }
    )


def _test_pause() -> None:
    seconds = os.environ.get(PAUSE_ENV)
    if not seconds:
        return
    marker = os.environ.get(PAUSE_MARKER_ENV)
    if marker:
        Path(marker).write_text(str(os.getpid()))
    time.sleep(float(seconds))


def ingest(
    store: Store,
    path: str | Path,
    *,
    kind: TapeKind | str = TapeKind.LOANS,
    allow_rejects: bool = False,
    apr_cap: float = APR_CAP_DEFAULT,
    today: date | None = None,
) -> IngestResult:
    """Load one tape into the book in one transaction (see the module docstring).

    Raises ``TapeRejected`` (nothing written) when any row is bad and ``allow_rejects`` is
    false; ``ValidationError`` when the file cannot be a tape at all.
    """
    kind = TapeKind(kind)
    _check_apr_cap(apr_cap)
    started = datetime.now(UTC).replace(tzinfo=None)
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"tape {path} does not exist or is not a file")
    source = str(path.resolve())
    # A file loaded before is a no-op: answer before reading it.
    sha256 = sha256_of(path)
    earlier = sql.find_batch(store.con, sha256, kind.value)
    if earlier is not None:
        return IngestResult(
            source=source,
            kind=kind,
            sha256=sha256,
            batch_id=earlier.batch_id,
            n_rows=earlier.n_rows,
            n_loaded=0,
            n_rejected=0,
            n_duplicates=0,
            already_loaded=True,
            notes=(f"first loaded {earlier.finished_at:%Y-%m-%d %H:%M} UTC",),
            problems=(),
        )
    raw = read_tape(path, kind, sha256=sha256)
    checked = check_tape(raw, kind, apr_cap=apr_cap, today=today)

    with store.transaction() as con:
        book_bad, dup, book_problems = _book_checks(store, checked)
        problems = sorted(
            list(checked.problems) + book_problems, key=lambda p: (p.row, p.column or "", p.rule)
        )
        n_bad_rows = len({p.row for p in problems})
        if problems and not allow_rejects:
            raise TapeRejected(raw.source.name, [p.message for p in problems], n_bad_rows)

        batch_id = sql.next_batch_id(con)
        keep = ~(book_bad | dup)
        load = checked.good if keep.all() else checked.good.filter(pa.array(keep))
        # One chunk per column: DuckDB scans it ~20% faster than the CSV reader's blocks.
        load = (
            load.drop_columns(["_row"])
            .append_column("batch_id", pa.array(np.full(load.num_rows, batch_id, dtype=np.int64)))
            .combine_chunks()
        )
        if kind is TapeKind.LOANS:
            n_loaded = insert_loans(con, load)
        else:
            n_loaded = insert_performance(con, load)
        sql.insert_rejects(con, _rejects_table(batch_id, raw, problems))
        n_dup = int(dup.sum())
        notes = list(raw.notes)
        if raw.n_rows == 0:
            notes.append("the tape has a header but no data rows")
        if n_dup:
            notes.append(f"skipped {n_dup} row(s) identical to rows already in the book")
        sql.insert_batch(
            con,
            sql.BatchRecord(
                batch_id=batch_id,
                kind=kind.value,
                source=source,
                sha256=raw.sha256,
                n_rows=raw.n_rows,
                n_loaded=n_loaded,
                n_rejected=n_bad_rows,
                started_at=started,
                finished_at=datetime.now(UTC).replace(tzinfo=None),
                note="; ".join(notes) or None,
            ),
        )
        _test_pause()
    return IngestResult(
        source=source,
        kind=kind,
        sha256=raw.sha256,
        batch_id=batch_id,
        n_rows=raw.n_rows,
        n_loaded=n_loaded,
        n_rejected=n_bad_rows,
        n_duplicates=n_dup,
        already_loaded=False,
        notes=tuple(notes),
        problems=tuple(problems),
    )


__all__ = [
    "CheckedTape",
    "IngestResult",
    "LOAN_OPTIONAL",
    "LOAN_REQUIRED",
    "PERFORMANCE_OPTIONAL",
    "PERFORMANCE_REQUIRED",
    "Problem",
    "RawTape",
    "TapeKind",
    "check_loans",
    "check_performance",
    "check_tape",
    "ingest",
    "read_tape",
    "sha256_of",
]
