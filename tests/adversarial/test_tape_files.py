"""Adversarial tape files through ``riskpool ingest`` (issue 14, item 6): binary files named
.csv, UTF-16/32 text, encodings that cannot be told apart (refused unless ``--encoding``,
naming each encoding tried), quoted line breaks (row numbers and file lines stay true), a
50 MB line. Each refused case exits 2, names the file or option and the reason, and leaves
every table's row count unchanged; the accepted ones say what was loaded."""

from __future__ import annotations

import gzip
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from adversarial_helpers import row_counts

pytestmark = pytest.mark.adversarial("ingestion")

HEADER = ("loan_id,borrower_id,origination_date,principal,apr,term_months,repayment_type,"
          "credit_score,region,channel,product")


def row(i: int, region: str = "Zhejiang", principal: str = "5000.00") -> list[str]:
    return [f"N-{i}", f"u{i}", "2024-05-01", principal, "0.2", "6", "equal_principal", "700",
            region, "app", "jiebei"]


def tape(rows: list[list[str]], newline: str = "\n") -> str:
    return newline.join([HEADER, *[",".join(r) for r in rows]]) + newline


def _refused(cli, db: Path, path: Path, *words: str, extra: tuple[str, ...] = ()) -> str:
    before = row_counts(db)
    r = cli("ingest", path, "--db", db, *extra)
    assert r.code == 2, r.out + r.err
    assert "Traceback" not in r.err
    for w in words:
        assert w in r.err, (w, r.err)
    assert row_counts(db) == before
    return r.err


# ------------------------------------------------------------------------ binary files

def _xlsx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
    return buf.getvalue()


BINARY = {
    "random bytes": np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    "NUL in the middle": tape([row(1)]).encode()[:60] + b"\x00" + tape([row(1)]).encode()[60:],
    "all 256 byte values": bytes(range(256)) * 8,
    "xlsx (zip) renamed": _xlsx(),
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF",
    "gzip of a good tape": gzip.compress(tape([row(1)]).encode()),
    "sqlite": b"SQLite format 3\x00" + b"\x10\x00" * 50,
    "xls (OLE)": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100,
    "elf": b"\x7fELF\x02\x01\x01" + b"\x00" * 60,
    "control bytes": (tape([row(1)]) + "\x01\x02\x03\x04\x05\x06\x07\x08" * 10).encode(),
}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_file_named_csv_is_reported_as_binary(cli, seeded_db: Path, tmp_path: Path,
                                                     name: str) -> None:
    path = tmp_path / "loans.csv"
    path.write_bytes(BINARY[name])
    err = _refused(cli, seeded_db, path, "loans.csv", "a binary file, not a CSV text tape")
    assert "UTF-16" not in err  # was: "looks like UTF-16"


def test_duckdb_database_named_csv(cli, seeded_db: Path, tmp_path: Path) -> None:
    path = tmp_path / "loans.csv"
    shutil.copyfile(seeded_db, path)
    _refused(cli, seeded_db, path, "loans.csv", "a binary file", "a DuckDB database")


@pytest.mark.parametrize(("codec", "what"), [("utf-16", "UTF-16"), ("utf-16-be", "UTF-16"),
                                             ("utf-16-le", "UTF-16"), ("utf-32", "UTF-32")])
def test_utf16_and_utf32_text(cli, seeded_db: Path, tmp_path: Path, codec: str,
                              what: str) -> None:
    path = tmp_path / "loans.csv"
    data = tape([row(1), row(2)]).encode(codec)
    if codec == "utf-16-be":
        data = b"\xfe\xff" + data
    path.write_bytes(data)  # utf-16-le: no byte-order mark, every other byte 0
    _refused(cli, seeded_db, path, "loans.csv", "encoding must be UTF-8", what)


# ------------------------------------------------------------------------ encodings

AMBIGUOUS = {
    # text, codec: none of them is UTF-8, and GB18030 / cp1252 / Latin-1 read other text from
    # the same bytes (KOI8-R "Москва" is even valid GB2312, Latin-1 "Zürich" valid GBK)
    "latin-1 Zürich": ("Zürich", "latin-1"),
    "latin-1 São Paulo": ("São Paulo", "latin-1"),
    "cp1252 euro and quotes": ("€ “Köln”", "cp1252"),
    "cp1252 Ångström": ("Ångström", "cp1252"),
    "shift-jis 東京": ("東京", "shift_jis"),
    "big5 臺北": ("臺北", "big5"),
    "koi8-r Москва": ("Москва", "koi8-r"),
    "gbk 浙江 (Excel on a Chinese-locale Windows)": ("浙江", "gbk"),
    "gb18030 𠀀 (beyond GBK)": ("𠀀江", "gb18030"),
}


@pytest.mark.parametrize("name", sorted(AMBIGUOUS))
def test_ambiguous_encoding_refused_naming_the_encodings_tried(cli, seeded_db: Path,
                                                               tmp_path: Path, name: str) -> None:
    text, codec = AMBIGUOUS[name]
    path = tmp_path / "loans.csv"
    data = tape([row(1), row(2, region=text)]).encode(codec)
    try:
        data.decode("utf-8")
        pytest.skip("these bytes happen to be UTF-8")
    except UnicodeDecodeError:
        pass
    err = _refused(cli, seeded_db, path_with(path, data), "loans.csv",
                   "encoding must be UTF-8", "not UTF-8", "line 3", "tried gb18030",
                   "cp1252", "latin-1", "--encoding")
    # what each encoding reads in the field, so the user can tell which is right
    assert f"latin-1: {data.split(b',')[-3].decode('latin-1')!r}" in err
    if codec in ("gbk", "gb18030"):
        assert f"gb18030: {text!r}" in err


def path_with(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", sorted(AMBIGUOUS))
def test_encoding_option_loads_the_named_encoding(cli, seeded_db: Path, tmp_path: Path,
                                                  name: str) -> None:
    """With ``--encoding`` the same bytes load, and the text stored is the text written."""
    import duckdb

    text, codec = AMBIGUOUS[name]
    path = path_with(tmp_path / "loans.csv", tape([row(1), row(2, region=text)]).encode(codec))
    before = row_counts(seeded_db)
    r = cli("ingest", path, "--db", seeded_db, "--encoding", codec)
    assert r.code == 0, r.err
    assert "decoded as" in r.out
    after = row_counts(seeded_db)
    assert after["loans"] == before["loans"] + 2
    con = duckdb.connect(str(seeded_db), read_only=True)
    try:
        got = con.execute("SELECT region FROM loans WHERE loan_id = 'N-2'").fetchone()[0]
    finally:
        con.close()
    assert got == text


@pytest.mark.parametrize(("data_codec", "option", "words"), [
    ("latin-1", "utf-8", ("--encoding", "not UTF-8")),
    ("gbk", "ascii", ("--encoding", "not ascii")),
    ("latin-1", "nosuch-codec", ("--encoding", "a text encoding Python knows")),
    ("latin-1", "", ("--encoding", "a text encoding Python knows")),
])
def test_bad_encoding_option(cli, seeded_db: Path, tmp_path: Path, data_codec: str,
                             option: str, words: tuple[str, ...]) -> None:
    path = path_with(tmp_path / "loans.csv",
                     tape([row(1, region="浙江" if data_codec == "gbk" else "Zürich")]
                          ).encode(data_codec))
    _refused(cli, seeded_db, path, *words, extra=("--encoding", option))


# ------------------------------------------------------------------------ quoted line breaks

def _physical_line(text: str, loan_id: str) -> int:
    """By hand: the file line on which the row of ``loan_id`` starts (1 + the line breaks
    before it)."""
    return text[:text.index(f"\n{loan_id},") + 1].count("\n") + 1


QUOTED = {
    # name: (rows as text fields, where the bad row is)
    "one break in row 1": ['"Zhe\njiang"', None, None],
    "one break in row 2": [None, '"Zhe\njiang"', None],
    "two breaks in one value": [None, '"a\nb\nc"', None],
    "breaks in two rows": ['"x\ny"', '"p\nq"', None],
    "escaped quotes and a break": [None, '"say ""hi""\nthere"', None],
    "CRLF line ends": ['"Zhe\r\njiang"', None, None],
}


@pytest.mark.parametrize("name", sorted(QUOTED))
def test_quoted_line_breaks_keep_row_numbers_and_lines(cli, seeded_db: Path, tmp_path: Path,
                                                       name: str) -> None:
    regions = QUOTED[name]
    rows = [row(i + 1, region=r or "Zhejiang") for i, r in enumerate(regions)]
    rows.append(row(4, principal="abc"))  # the bad row: row 4 of the data
    rows.append(row(5))
    nl = "\r\n" if "CRLF" in name else "\n"
    text = tape(rows, nl)
    path = path_with(tmp_path / "loans.csv", text.encode("utf-8"))
    line = _physical_line(text.replace("\r\n", "\n"), "N-4")
    assert line > 5  # the breaks push it down: row 4 is not on line 5
    _refused(cli, seeded_db, path, "`principal`", f"row 4 (line {line})", "[rule numeric]")


def test_quoted_line_break_field_count_names_the_true_line(cli, seeded_db: Path,
                                                           tmp_path: Path) -> None:
    rows = [row(1, region='"a\nb"'), row(2), row(3)[:-2], row(4)]
    text = tape(rows)
    path = path_with(tmp_path / "loans.csv", text.encode("utf-8"))
    line = _physical_line(text, "N-3")
    _refused(cli, seeded_db, path, f"row 3 (line {line}) has 9 fields", "[rule field_count]")


# ------------------------------------------------------------------------ a 50 MB line

@pytest.mark.parametrize(("name", "line"), [("50 MB line", 3), ("2 MB line", 2)])
def test_long_line_gives_a_clear_message(cli, seeded_db: Path, tmp_path: Path, name: str,
                                         line: int) -> None:
    size = 50 * 2**20 if name.startswith("50") else 2 * 2**20
    rows = [",".join(row(1))] if line == 3 else []
    path = tmp_path / "loans.csv"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(HEADER + "\n" + "".join(r + "\n" for r in rows))
        fh.write("x" * size + "\n")
        fh.write(",".join(row(9)) + "\n")
    err = _refused(cli, seeded_db, path, "loans.csv", f"line {line} is {size:,} bytes long",
                   "missing line break")
    assert "block" not in err.lower().replace("1,048,576 bytes", "")  # no reader jargon
