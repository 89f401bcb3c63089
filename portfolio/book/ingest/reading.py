"""Reading a tape: CSV or Parquet, the header against the kind's columns, UTF-8 or
GBK/GB18030, malformed and empty lines, and the file's sha256 (see the package docstring
for the conventions)."""

from __future__ import annotations

import csv
import hashlib
import io
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from portfolio.book.ingest.tape import COLUMNS, Problem, RawTape, TapeKind
from portfolio.book.ingest.values import all_blank_rows
from portfolio.errors import ValidationError, must_be


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
    table = _normalise_ids(table, path)
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


ID_COLUMNS = ("loan_id", "borrower_id")


def _normalise_ids(table: pa.Table, path: Path) -> pa.Table:
    """Identifier columns as text under ``portfolio.validation.normalise_id``'s rule (NFC, no
    surrounding whitespace), so every later comparison — unique in the file, known to the
    book, a conflict with the book — sees one spelling. A Parquet id column that is not text
    or whole numbers (a list, binary, struct, float column) is refused, naming it."""
    for name in ID_COLUMNS:
        if name not in table.column_names:
            continue
        col = table[name]
        t = col.type
        if pa.types.is_dictionary(t):
            col, t = col.cast(t.value_type), t.value_type
        if pa.types.is_integer(t):
            col = col.cast(pa.string())
        elif not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)):
            raise ValidationError(must_be(name, "a text (or whole-number) column", f"a {t} column",
                                          path.name))
        if not pa.types.is_null(col.type):
            col = pc.utf8_trim_whitespace(pc.utf8_normalize(col, "NFC"))
        table = table.set_column(table.column_names.index(name), name, col)
    return table


def _is_parquet(path: Path) -> bool:
    if path.suffix.lower() in {".parquet", ".pq"}:
        return True
    with open(path, "rb") as fh:
        return fh.read(4) == b"PAR1"


def _check_header(path: Path, kind: TapeKind, names: Sequence[str]) -> tuple[list[str], list[str]]:
    required, optional = COLUMNS[kind]
    seen: set[str] = set()
    for name in names:
        if name in seen and name in required + optional:
            raise ValidationError(f"{path.name}: column `{name}` appears twice in the header")
        seen.add(name)
    missing = [c for c in required if c not in seen]
    if missing:
        hint = ""
        other = TapeKind.PERFORMANCE if kind is TapeKind.LOANS else TapeKind.LOANS
        if all(c in seen for c in COLUMNS[other][0]):
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
        empty = all_blank_rows(table)
        if empty[-1]:
            keep_upto = int(np.flatnonzero(~empty)[-1] + 1) if (~empty).any() else 0
            tail_rows = rows[keep_upto:]
            if tail_rows.size and (not bad_rows.size or tail_rows[0] > bad_rows.max()):
                notes.append(f"ignored {tail_rows.size} empty line(s) at the end of the file")
                table = table.slice(0, keep_upto)
                rows = rows[:keep_upto]
    return table, rows, problems, raw_lines, notes
