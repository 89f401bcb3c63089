"""Reading a tape: CSV or Parquet, the header against the kind's columns, UTF-8 or
GBK/GB18030, malformed and empty lines, and the file's sha256 (see the package docstring
for the conventions)."""

from __future__ import annotations

import codecs
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

from portfolio.book.ingest.mapping import TapeMapping, apply_values, check_headers, check_kind
from portfolio.book.ingest.tape import COLUMNS, Problem, RawTape, TapeKind, tape_kind
from portfolio.book.ingest.values import all_blank_rows
from portfolio.errors import ValidationError, must_be


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def read_tape(
    path: str | Path, kind: TapeKind | str = TapeKind.LOANS, *, sha256: str | None = None,
    encoding: str | None = None, mapping: TapeMapping | None = None,
) -> RawTape:
    """Read a CSV or Parquet tape (its known columns) and hash it; structure errors raise.

    ``sha256``, when the caller has already hashed the file, is taken as given. ``encoding``
    (a CSV's text encoding, ``--encoding``) must be given for anything that is not UTF-8:
    such bytes read as text in several encodings (GBK, cp1252, Latin-1), so the file is
    refused, showing what each encoding tried reads, rather than guessed.
    Raises ``ValidationError`` for a file that cannot be a tape at all: undecodable bytes, a
    missing required column, a duplicated header name, an unparseable file.
    ``mapping`` (``portfolio.book.ingest.mapping``): the tape's headers renamed and its
    dates, percents and codes converted first; a value it cannot read makes its row bad
    (rule ``mapping``).
    """
    path = Path(path)
    kind = tape_kind(kind)
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
        if mapping is not None:
            check_kind(mapping, kind)
        if _is_parquet(path):
            parts = _read_parquet(path, kind, mapping)
        else:
            parts = _read_csv(path, kind, encoding, mapping)
    finally:
        if not sha256:
            hasher.join()
    table, rows, problems, raw_lines, notes, encoding, file_format, lines = parts
    _refuse_nested(table, path)
    if mapping is not None:
        table, rows, problems, raw_lines = _mapped(mapping, table, rows, problems, raw_lines,
                                                   file_format, lines)
        notes = [*notes, mapping.note()]
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
        lines=lines,
    )


ID_COLUMNS = ("loan_id", "borrower_id")


def _refuse_nested(table: pa.Table, path: Path) -> None:
    """A Parquet column of a nested type (list, struct, map, union) holds no single value per
    cell, and a binary column is bytes, not text (its cast to text fails on invalid UTF-8):
    refused naming the column (was a cast traceback for a non-id column). The id columns
    have their own, stricter rule (:func:`_normalise_ids`)."""
    for name in table.column_names:
        if name in ID_COLUMNS:
            continue
        t = table[name].type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t) \
                or pa.types.is_fixed_size_binary(t):
            raise ValidationError(must_be(name, "a column of single values (text, numbers or "
                                          "dates)", f"a {t} column", path.name))


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


def _mapped(mapping: TapeMapping, table: pa.Table, rows: np.ndarray, problems: list[Problem],
            raw_lines: dict[int, str], file_format: str, lines: np.ndarray | None,
            ) -> tuple[pa.Table, np.ndarray, list[Problem], dict[int, str]]:
    """``table``'s values through the mapping; rows it cannot read leave the table and
    become problems (rule ``mapping``) with their raw text."""
    def where(row: int) -> str:
        return f"row {row} (line {_line(lines, row)})" if file_format == "csv" else f"row {row}"

    mapped, found, bad = apply_values(mapping, table, rows, where)
    if not bad.any():
        return mapped, rows, problems, raw_lines
    raw_lines = dict(raw_lines)
    for i in np.flatnonzero(bad).tolist():
        values = [table.column(c)[i].as_py() for c in table.column_names]
        raw_lines[int(rows[i])] = ",".join("" if v is None else str(v) for v in values)
    keep = pa.array(~bad)
    all_problems = sorted([*problems, *found], key=lambda p: (p.row, p.column or ""))
    return mapped.filter(keep), rows[~bad], all_problems, raw_lines


def _renamed(names: Sequence[str], mapping: TapeMapping | None) -> list[str]:
    if mapping is None:
        return list(names)
    check_headers(mapping, names)
    return [mapping.rename.get(n.strip(), n) for n in names]


def _read_parquet(path: Path, kind: TapeKind,  # type: ignore[no-untyped-def]
                  mapping: TapeMapping | None = None):
    try:
        original = pq.ParquetFile(path).schema_arrow.names
        names = _renamed(original, mapping)
        known, unknown = _check_header(path, kind, names)
        table = pq.read_table(path, columns=[original[names.index(k)] for k in known])
        table = table.rename_columns(known)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationError(f"{path.name}: cannot read as Parquet: {exc}") from None
    notes = [_unknown_note(unknown)] if unknown else []
    rows = np.arange(1, table.num_rows + 1, dtype=np.int64)
    return table, rows, [], {}, notes, None, "parquet", None


def _unknown_note(unknown: Sequence[str]) -> str:
    return "ignored unknown column(s): " + ", ".join(repr(u) for u in unknown)


class _NotUtf8(Exception):
    pass


def _is_utf8(source: Path | bytes) -> bool:
    """Whether the bytes are valid UTF-8 — what ``bytes.decode("utf-8")`` accepts (a test
    compares the two). ASCII in one fast pass; otherwise Arrow's validation of the bytes as
    one binary value cast to a string (vectorised: about a quarter of Python's decode on a
    million-row tape, and nothing decoded is kept)."""
    data = source.read_bytes() if isinstance(source, Path) else source
    if data.isascii():  # most tapes: one fast pass, no decoding
        return True
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    value = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        value.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


SNIFF_BYTES = 1 << 16
# what a non-UTF-8 file's bytes are shown as when it is refused (GBK's superset first)
CANDIDATE_ENCODINGS = ("gb18030", "cp1252", "latin-1")
BLOCK_BYTES = 1 << 20  # the CSV reader's block: the longest line a tape may have (1 MiB)
_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook?)"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\xd0\xcf\x11\xe0", "an old Excel (.xls) or other OLE file"),
    (b"\x7fELF", "an executable"),
)
_CONTROL = bytes([*range(0, 9), 11, 12, *range(14, 27), *range(28, 32), 127])


def _binary(path: Path, what: str) -> ValidationError:
    return ValidationError(f"{path.name}: a binary file, not a CSV text tape ({what}); export "
                           "the tape as CSV (UTF-8) or Parquet")


def _sniff(path: Path, head: bytes) -> None:
    """Refuse UTF-16/32 text and binary files by their first bytes, each with its own message
    (a binary file is not "UTF-16")."""
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        raise ValidationError(f"{path.name}: encoding must be UTF-8; this is UTF-32 text (it "
                              "starts with a UTF-32 byte-order mark); re-save the file as CSV "
                              "UTF-8")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValidationError(
            f"{path.name}: encoding must be UTF-8 (or GBK/GB18030); this looks like UTF-16 "
            "(Excel's 'Unicode text': it starts with a UTF-16 byte-order mark); re-save the "
            "file as CSV UTF-8")
    if head[8:12] == b"DUCK":
        raise _binary(path, "a DuckDB database")
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise _binary(path, what)
    if b"\x00" in head:
        half = len(head) // 2
        even, odd = head[0::2].count(0), head[1::2].count(0)
        if half and max(even, odd) > 0.3 * half and min(even, odd) < 0.02 * half:
            raise ValidationError(
                f"{path.name}: encoding must be UTF-8 (or GBK/GB18030); this looks like UTF-16 "
                "without a byte-order mark (every other byte is 0); re-save the file as CSV "
                "UTF-8")
        raise _binary(path, f"a NUL byte at offset {head.index(0)}")
    controls = sum(head.count(bytes([c])) for c in _CONTROL)
    if controls > max(4, len(head) // 200):
        raise _binary(path, f"{controls} control bytes in its first {len(head):,} bytes")


def _bad_byte(data: bytes, exc: UnicodeDecodeError) -> str:
    return f"byte 0x{data[exc.start]:02x} at offset {exc.start}"


def _codec(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except (LookupError, TypeError, ValueError):
        raise ValidationError(must_be("--encoding", "a text encoding Python knows (e.g. utf-8, "
                                      "gb18030, gbk, latin-1, cp1252)", encoding)) from None


def _read_csv(path: Path, kind: TapeKind, encoding: str | None = None,  # type: ignore[no-untyped-def]
              mapping: TapeMapping | None = None):
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    _sniff(path, head)
    first = head.split(b"\n", 1)[0]
    notes: list[str] = []
    if encoding is not None and _codec(encoding) not in ("utf-8", "utf-8-sig"):
        codec = _codec(encoding)
        data = path.read_bytes()
        try:
            text = data.decode(codec)
        except UnicodeDecodeError as exc:
            raise ValidationError(must_be("--encoding", f"the file's encoding ({path.name} is "
                                          f"not {codec}: {_bad_byte(data, exc)})", encoding)
                                  ) from None
        text = text.removeprefix("\ufeff")
        notes.append(f"decoded as {codec} (--encoding)")
        parsed = _parse_csv(path, text.encode("utf-8"), text.split("\n", 1)[0], kind, mapping)
        table, rows, problems, raw_lines, more_notes, lines = parsed
        return table, rows, problems, raw_lines, notes + more_notes, codec, "csv", lines
    parsed = None
    try:
        header: str | None = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        header = None
    if header is not None:
        try:
            parsed = _parse_csv(path, path, header, kind, mapping)
        except _NotUtf8:
            parsed = None
    if parsed is not None:
        table, rows, problems, raw_lines, more_notes, lines = parsed
        return table, rows, problems, raw_lines, more_notes, "utf-8", "csv", lines
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        tried = [f"utf-8 ({_bad_byte(data, exc)} is not UTF-8)"]
    else:  # pragma: no cover - the reader said it is not UTF-8
        raise ValidationError(f"{path.name}: cannot parse as CSV (UTF-8)")
    if encoding is not None:  # --encoding utf-8 given, and the file is not
        raise ValidationError(must_be("--encoding", f"the file's encoding ({path.name}: "
                                      f"{tried[0]})", encoding))
    off = int(tried[0].split("offset ")[1].split(")")[0].split(" ")[0])
    readings = []
    for codec in CANDIDATE_ENCODINGS:
        try:
            data.decode(codec)
        except UnicodeDecodeError as exc:
            readings.append(f"{codec}: {_bad_byte(data, exc)} is not {codec}")
        else:
            readings.append(f"{codec}: {_field_at(data, off, codec)!r}")
    line = data[:off].count(b"\n") + 1
    raise ValidationError(
        f"{path.name}: encoding must be UTF-8, or named with --encoding: the file is not UTF-8 "
        f"({tried[0]}, line {line}), and other encodings read its bytes as different text — "
        f"tried {'; '.join(readings)} — so riskpool does not guess: re-save the file as UTF-8, "
        "or give --encoding with the one that reads right (e.g. --encoding gbk for Chinese text "
        "saved by Excel on a Chinese-locale Windows, --encoding latin-1)")


def _field_at(data: bytes, offset: int, codec: str) -> str:
    """The CSV field holding byte ``offset``, decoded with ``codec`` (at most 40 characters):
    what the message shows for each encoding tried."""
    start = max(data.rfind(b"\n", 0, offset), data.rfind(b",", 0, offset)) + 1
    ends = [i for i in (data.find(b"\n", offset), data.find(b",", offset)) if i >= 0]
    field = data[start:min(ends) if ends else len(data)].strip(b"\r")
    return field.decode(codec, errors="replace")[:40]


def _physical_lines(path: Path, source: Path | bytes) -> np.ndarray | None:
    """The file line (1-based) on which each record starts (record 0: the header) when a
    quoted value holds a line break — then records and lines differ; None otherwise. A line
    break is inside quotes when an odd number of ``"`` precede it (RFC 4180: an escaped quote
    is two)."""
    data = source.read_bytes() if isinstance(source, Path) else source
    if b'"' not in data:
        return None
    first = data.find(b"\n")
    if first >= 0 and data.count(b'"', 0, first) % 2 == 0 and data.find(b'"', first) < 0:
        return None  # quotes in the header line only (a quoted header), each one closed there
    buf = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(buf == 10)
    quotes = np.flatnonzero(buf == 34)
    inside = (np.searchsorted(quotes, nl) % 2) == 1
    if not inside.any():
        return None
    ends = np.flatnonzero(~inside)  # the record-ending line breaks
    return np.concatenate([[1], ends + 2]).astype(np.int64)


def _line(lines: np.ndarray | None, row: int) -> int:
    if lines is not None and row < len(lines):
        return int(lines[row])
    return row + 1


def _long_line(path: Path, source: Path | bytes) -> ValidationError:
    """The message for a line longer than the reader's block (a missing line break or a quote
    never closed), naming the line."""
    data = source.read_bytes() if isinstance(source, Path) else source
    nl = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    bounds = np.concatenate([[-1], nl, [len(data)]])
    lengths = np.diff(bounds) - 1
    longest = int(np.argmax(lengths))
    if lengths[longest] >= BLOCK_BYTES:
        where = f"line {longest + 1} is {int(lengths[longest]):,} bytes long"
    else:
        where = 'a quoted value runs over many lines (a quote " opened and never closed?)'
    return ValidationError(
        f"{path.name}: {where}; a tape line holds one loan (a few hundred bytes) and the "
        f"reader takes lines up to {BLOCK_BYTES:,} bytes — a missing line break, or a quote "
        '(") opened and never closed? Check that line')


def _parse_csv(path: Path, source: Path | bytes, header: str, kind: TapeKind,  # type: ignore[no-untyped-def]
               mapping: TapeMapping | None = None):
    header = header.rstrip("\r\n")
    data = source.read_bytes() if isinstance(source, Path) else source
    if not _is_utf8(data):
        # before the reader sees it: pyarrow decodes a malformed row's text for the
        # invalid-row handler, and a non-UTF-8 byte there raises inside pyarrow, which
        # prints it to stderr as an ignored exception (a traceback on the user's screen)
        raise _NotUtf8
    lines = _physical_lines(path, data)
    if not header.strip():
        raise ValidationError(f"{path.name}: the first line must be a header; got an empty line")
    names = _renamed([n.strip() for n in next(csv.reader([header]))], mapping)
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
                    column_names=read_names, skip_rows=1, use_threads=use_threads,
                    block_size=BLOCK_BYTES,
                ),
                parse_options=pcsv.ParseOptions(
                    invalid_row_handler=handler,
                    newlines_in_values=lines is not None,
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
            if "utf8" in str(exc).lower():
                raise _NotUtf8 from None
            if "straddl" in str(exc) or "block size" in str(exc):
                raise _long_line(path, source) from None
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
                f"row {row} (line {_line(lines, row)}, the last line) has {actual} of "
                f"{expected} fields: "
                f"the file looks truncated [rule {rule}]"
            )
        else:
            rule = "field_count"
            msg = (
                f"row {row} (line {_line(lines, row)}) has {actual} fields; the header has "
                f"{expected} "
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
    return table, rows, problems, raw_lines, notes, lines
