"""Property-based fuzzing (hypothesis) of the input paths issue 14 item 4 names beside the TOML
readers (those are in tests/test_readers_fuzz.py): loan and performance tapes (CSV text, raw
bytes, Parquet columns of any type), CLI dates and CLI ids. The property each time: the input
is parsed, or refused with a ``ValidationError`` naming the field (a tape column in backticks,
the CLI option, the file) — nothing else: no other exception, no traceback, exit code 0 or 2
and no table's row count changed by a refused command."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from adversarial_helpers import row_counts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from partners.masking import mask_id
from portfolio.book.ingest import check_tape, read_tape
from portfolio.book.ingest.tape import COLUMNS, TapeKind
from portfolio.errors import ValidationError
from portfolio.validation import normalise_id

pytestmark = pytest.mark.adversarial("ingestion")
FUZZ = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

GOOD_LOAN = {"loan_id": "N-1", "borrower_id": "u1", "origination_date": "2024-05-01",
             "principal": "5000.00", "apr": "0.2", "term_months": "6",
             "repayment_type": "equal_principal", "credit_score": "700", "region": "浙江",
             "channel": "app", "product": "jiebei", "disclosed_apr": ""}
NASTY = st.sampled_from(["", " ", "nan", "NaN", "inf", "-inf", "1e309", "-0", "0x10",
                         "9" * 40, "2024-02-30", "2024-13-01", "０１２", "=1+1", "@SUM(A1)",
                         "'; DROP TABLE loans; --", "\"", "\"\"", "a,b", "\u200b", "L1\u00a0",
                         "Cafe\u0301", "\ud7ff", "😀", "\t", "1,000.00", "１２３４"])
FIELD = st.one_of(NASTY, st.text(max_size=12), st.from_regex(r"-?\d{1,9}(\.\d{1,4})?",
                                                             fullmatch=True))


def _csv_field(value: str) -> str:
    if any(c in value for c in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _assert_named(exc: ValidationError, path: Path, columns: list[str]) -> None:
    text = str(exc)
    assert path.name in text or any(f"`{c}`" in text for c in columns) or "--" in text, text


def _check(path: Path, kind: TapeKind) -> None:
    required, optional = COLUMNS[kind]
    try:
        raw = read_tape(path, kind)
    except ValidationError as exc:
        _assert_named(exc, path, [*required, *optional])
        return
    checked = check_tape(raw, kind, today=dt.date(2026, 12, 31))
    for p in checked.problems:
        # each row problem names its row and, for a value, the column
        assert f"row {p.row}" in p.message, p.message
        if p.column is not None:
            assert p.column in (*required, *optional)
            assert f"`{p.column}`" in p.message, p.message
    assert checked.good.num_rows + len({p.row for p in checked.problems}) == raw.n_rows


@FUZZ
@given(data=st.data())
def test_loan_tape_csv(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    """Good rows with any fields replaced by nasty text, columns dropped or repeated."""
    cols = list(GOOD_LOAN)
    drop = data.draw(st.lists(st.sampled_from(cols), max_size=2, unique=True))
    cols = [c for c in cols if c not in drop] + data.draw(st.lists(st.sampled_from(cols),
                                                                   max_size=1))
    rows = []
    for i in range(data.draw(st.integers(0, 5))):
        row = {**GOOD_LOAN, "loan_id": f"N-{i}"}
        for c in data.draw(st.lists(st.sampled_from(cols), max_size=4, unique=True)):
            row[c] = data.draw(FIELD)
        rows.append(",".join(_csv_field(row[c]) for c in cols))
    nl = data.draw(st.sampled_from(["\n", "\r\n"]))
    path = tmp_path_factory.mktemp("fuzz") / "loans.csv"
    path.write_bytes((nl.join([",".join(cols), *rows]) + nl).encode("utf-8"))
    _check(path, TapeKind.LOANS)


@FUZZ
@given(raw=st.one_of(st.binary(max_size=600),
                     st.binary(max_size=300).map(lambda b: (",".join(GOOD_LOAN) + "\n").encode()
                                                 + b)))
def test_tape_bytes(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    """Any bytes named .csv, or a good header followed by any bytes."""
    path = tmp_path_factory.mktemp("fuzz") / "loans.csv"
    path.write_bytes(raw)
    _check(path, TapeKind.LOANS)


ARROW_TYPES = {
    "string": (pa.string(), st.text(max_size=8)),
    "int64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "int8": (pa.int8(), st.integers(-128, 127)),
    "float": (pa.float64(), st.floats(allow_nan=True, allow_infinity=True)),
    "bool": (pa.bool_(), st.booleans()),
    "binary": (pa.binary(), st.binary(max_size=6)),
    "date": (pa.date32(), st.dates()),
    "timestamp": (pa.timestamp("us"), st.datetimes()),
    "list": (pa.list_(pa.int32()), st.lists(st.integers(-5, 5), max_size=3)),
    "decimal": (pa.decimal128(12, 2), st.decimals(min_value=-10**9, max_value=10**9, places=2,
                                                  allow_nan=False)),
    "null": (pa.null(), st.none()),
}


@FUZZ
@given(data=st.data())
def test_performance_tape_parquet(tmp_path_factory: pytest.TempPathFactory,
                                  data: st.DataObject) -> None:
    """A Parquet performance tape whose columns have any Arrow type and values."""
    required, optional = COLUMNS[TapeKind.PERFORMANCE]
    cols = data.draw(st.lists(st.sampled_from([*required, *optional]), min_size=len(required) - 1,
                              max_size=len(required) + 2, unique=True))
    n = data.draw(st.integers(0, 4))
    arrays, names = [], []
    for c in cols:
        name = data.draw(st.sampled_from(sorted(ARROW_TYPES)))
        typ, values = ARROW_TYPES[name]
        arrays.append(pa.array([data.draw(values) for _ in range(n)], type=typ))
        names.append(c)
    path = tmp_path_factory.mktemp("fuzz") / "perf.parquet"
    pq.write_table(pa.table(arrays, names=names), path)
    _check(path, TapeKind.PERFORMANCE)


# ----------------------------------------------------------------------------- CLI dates

DATE_TEXT = st.one_of(st.text(max_size=14), st.dates().map(str),
                      st.from_regex(r"\d{4}-\d{2}-\d{2}", fullmatch=True),
                      st.sampled_from(["2024-02-30", "2024-06-31", "0000-01-01", "9999-12-31",
                                       "2024-6-30", " 2024-06-30 ", "2024/06/30", "20240630",
                                       "2024-W26-7", "30.06.2024", "-1", "nan", "today"]))


@FUZZ
@given(text=DATE_TEXT, command=st.sampled_from(["summary", "delinquency", "allocate"]))
def test_cli_dates(cli, seeded_db: Path, text: str, command: str) -> None:
    """``--as-of`` of the book analytics and ``--originated`` of allocate: exit 0, or exit 2
    naming the option; never a traceback; nothing written."""
    if "\x00" in text:
        return  # not a possible command-line argument
    before = row_counts(seeded_db)
    if command == "allocate":
        args = ["allocate", "--db", str(seeded_db), "--partners", "examples/partners.toml",
                "--originated", text, "2024-06-30", "--dry-run"]
        flag = "--originated"
    else:
        args = ["book", command, "--db", str(seeded_db), "--as-of", text]
        flag = "--as-of"
    r = cli(*args)
    assert r.code in (0, 2), (text, r.code, r.err)
    assert "Traceback" not in r.err
    if r.code == 2:
        assert flag in r.err or "`" in r.err, (text, r.err)
    assert row_counts(seeded_db) == before


# ----------------------------------------------------------------------------- CLI ids

ID_TEXT = st.one_of(st.text(max_size=20), st.sampled_from([
    "alice", " alice ", "ALICE", "a" * 65, "", " ", "al ice", "alice\u0301", "Ålice",
    "partner:", "partner:bank_east", "treasury ", "../etc", "a\u200b", "😀", "@", "a;b"]))


@FUZZ
@given(name=ID_TEXT, role=st.one_of(ID_TEXT, st.sampled_from([
    "treasury", "partner:bank_east", "partner:platform", "partner:nosuch", "Treasury",
    "partner:bank east"])))
def test_cli_user_ids_and_roles(cli, seeded_db: Path, tmp_path_factory: pytest.TempPathFactory,
                                name: str, role: str) -> None:
    """``users add NAME --role ROLE``: saved under the normalised name, or exit 2 naming the
    user name or the role; a refused one leaves the users file as it was."""
    if "\x00" in name + role or name.startswith("-") or role.startswith("-"):
        return  # not a possible argument / read as an option by the parser
    users = tmp_path_factory.mktemp("users") / "users.toml"
    users.write_text("", encoding="utf-8")
    before = row_counts(seeded_db)
    r = cli("users", "add", name, "--role", role, "--db", seeded_db, "--users", users,
            "--password", "correct horse battery staple")
    assert r.code in (0, 2), (name, role, r.code, r.err)
    assert "Traceback" not in r.err
    if r.code == 2:
        assert "`role`" in r.err or "`username`" in r.err or "name" in r.err, r.err
        assert users.read_text(encoding="utf-8") == ""
    else:
        assert normalise_id(name) in users.read_text(encoding="utf-8")
        assert role == "treasury"  # no partner is recorded in this book
    assert row_counts(seeded_db) == before


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=30))
def test_ids_normalise_and_mask_consistently(text: str) -> None:
    """The identifier rule: NFC, no surrounding whitespace, idempotent; the masked id of a
    partner export depends only on the normalised id."""
    n = normalise_id(text)
    assert n == normalise_id(n)
    assert n == n.strip() and unicodedata.is_normalized("NFC", n)
    assert n in unicodedata.normalize("NFC", text)
    key = b"k" * 32
    assert mask_id(text, key) == mask_id(n, key)
    assert re.fullmatch(r"bk_[0-9a-f]{32}", mask_id(text, key))
    assert np.unique([mask_id(text, key), mask_id(n + "x", key)]).size == 2


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("bad", [b"\x96", b"\xff\xfe", b"\xe6\xb5"])
def test_a_malformed_row_with_a_byte_not_utf8_is_refused_without_an_ignored_exception(
        tmp_path: Path, bad: bytes) -> None:
    """A tape whose malformed line (a field too many) holds a byte that is not UTF-8: the
    reader used to hand the line to pyarrow's invalid-row handler, whose decoding of the line
    raised inside pyarrow and was printed to stderr as an ignored exception with its
    traceback (found by test_tape_bytes's warnings). It is refused as not UTF-8 first, naming
    the byte and --encoding, with nothing printed."""
    header = ",".join(GOOD_LOAN).encode()
    good = ",".join(_csv_field(v) for v in GOOD_LOAN.values()).encode()
    path = tmp_path / "loans.csv"
    path.write_bytes(header + b"\n" + good + b"\n" + good + b",extra" + bad + b"\n")
    with pytest.raises(ValidationError, match="--encoding") as exc:
        read_tape(path, TapeKind.LOANS)
    assert "is not UTF-8" in str(exc.value) and path.name in str(exc.value)
    # the same line with the byte replaced by UTF-8 text: read, its line refused as a row
    path.write_bytes(header + b"\n" + good + b"\n" + good + ",extra–".encode() + b"\n")
    raw = read_tape(path, TapeKind.LOANS)
    checked = check_tape(raw, TapeKind.LOANS, today=dt.date(2026, 12, 31))
    assert checked.good.num_rows == 1
    assert [p.row for p in checked.problems] == [2]


# The reader's two whole-file passes before pyarrow, each against an independent reference:
# Python's strict UTF-8 decoder, and a plain loop over the bytes tracking whether a quote is
# open at each line break (RFC 4180: an escaped quote is two, so parity decides).

_UTF8_EDGES = [b"\xed\xa0\x80", b"\xed\x9f\xbf", b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80",
               b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xe6\xb5\x99", b"\xef\xbb\xbf",
               b"\xe2\x80", b"\x80", b"\xfe", b"a"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=12), st.sampled_from(_UTF8_EDGES),
                          st.text(max_size=6).map(lambda s: s.encode("utf-8", "surrogatepass"))),
                max_size=12))
def test_the_utf8_check_accepts_exactly_what_python_decodes(parts: list[bytes]) -> None:
    # surrogates (ED A0 80), beyond U+10FFFF (F4 90 80 80), overlong forms (C0 AF ...),
    # truncated sequences and stray continuation bytes, mixed with valid text
    from portfolio.book.ingest.reading import _is_utf8

    data = b"".join(parts)
    try:
        data.decode("utf-8")
        want = True
    except UnicodeDecodeError:
        want = False
    assert _is_utf8(data) is want


def _lines_reference(data: bytes) -> np.ndarray | None:
    line, inside, starts, quoted_break = 1, False, [1], False
    for byte in data:
        if byte == 34:
            inside = not inside
        elif byte == 10:
            line += 1
            if inside:
                quoted_break = True
            else:
                starts.append(line)
    return np.array(starts, dtype=np.int64) if quoted_break else None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", ",", '"', "\n", '""', "x,y"]), max_size=30),
       st.sampled_from(["loan_id,principal", '"loan_id","principal"', '"loan\nid",principal',
                        '"loan_id,principal']))
def test_the_record_lines_match_a_plain_scan(body: list[str], header: str) -> None:
    # a quoted header (the reader's shortcut: quotes in the header line only, each closed
    # there), a header with a quoted line break, one with a quote never closed, then any body
    from portfolio.book.ingest.reading import _physical_lines

    data = (header + "\n" + "".join(body)).encode()
    got = _physical_lines(Path("t.csv"), data)
    want = _lines_reference(data)
    if want is None:
        assert got is None
    else:
        assert got is not None
        assert got.tolist() == want.tolist()
