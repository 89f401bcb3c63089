"""Adversarial command-line flags: values out of range, flags that only mean something with
another flag, and text that would break a one-line table. Each case exits 2 naming the flag as
the user typed it (no traceback), and every table's row count is unchanged. Found by trying
every command's flags with negative, NaN, infinite, huge and misspelt values; the flags already
guarded are in tests/riskpool/test_cli_flags_named.py and the commands' own tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from adversarial_helpers import row_counts

pytestmark = pytest.mark.adversarial("flags")
ROOT = Path(__file__).resolve().parents[2]
PARTNERS = ROOT / "examples" / "partners.toml"


def _exits_2(r, flag: str, got: str = "") -> None:  # type: ignore[no-untyped-def]
    assert r.code == 2, r.out + r.err
    assert "Traceback" not in r.err, r.err
    assert f"`{flag}` must be" in r.err or f"Invalid value for {flag}" in r.err, r.err
    assert got in r.err, (got, r.err)


# (argv after the command name, the flag named, text of the received value)
ON_A_BOOK = [
    # was: ValueError "expected non-negative integer" from numpy's SeedSequence (exit 1)
    (["backtest", "--train-until", "2024-02-29", "--seed", "-3"], "--seed", "got -3"),
    # was: "no runs yet", exit 0 — an unknown kind listed nothing instead of being refused
    (["runs", "list", "--kind", "simulaton"], "--kind", "'simulaton'"),
    # was: ignored without --rho-choice ttc (the run used the point estimate, exit 0)
    (["calibrate", "--out", "OUT/a.toml", "--rho-ttc", "0.1"], "--rho-ttc", "got 0.1"),
    # was: inf passed the ">= 0" check and surfaced as `delinquency.roll_current` (simulate)
    # or `inputs.stress.recovery_mult` with a RuntimeWarning
    (["calibrate", "--out", "OUT/a.toml", "--pd-mult", "inf"], "--pd-mult", "got inf"),
    (["calibrate", "--out", "OUT/a.toml", "--smm-mult", "inf"], "--smm-mult", "got inf"),
    (["calibrate", "--out", "OUT/a.toml", "--recovery-mult", "inf"], "--recovery-mult",
     "got inf"),
    # was: accepted unchecked (a K_SA of -1 or NaN, a delinquent share of 2), exit 0 whenever
    # no SEC-SA position was charged
    (["dispersion", "--run", "1", "--allocation", "1", "--k-sa", "-1"], "--k-sa", "-1.0"),
    (["dispersion", "--run", "1", "--allocation", "1", "--k-sa", "nan"], "--k-sa", "nan"),
    (["dispersion", "--run", "1", "--allocation", "1", "--w", "2"], "--w", "2.0"),
    # was: OverflowError from the socket bind inside Streamlit (exit 1, a traceback)
    (["dashboard", "--port", "-1"], "--port", "got -1"),
    (["dashboard", "--port", "99999"], "--port", "got 99999"),
    # was: stored, a line break and an escape sequence inside `runs list`'s table
    (["runs", "label", "1", "--label", "jun26\nbase"], "--label", "jun26"),
    (["runs", "label", "1", "--label", "x\x1b[2Jy"], "--label", "x"),
    (["runs", "label", "1", "--tag", "q3\x1b[31m"], "--tag", "q3"),
]


@pytest.mark.parametrize(("argv", "flag", "got"), ON_A_BOOK,
                         ids=[f"{' '.join(a[:2])} {f}={a[-1]!r}" for a, f, _ in ON_A_BOOK])
def test_flag_out_of_range_is_refused_by_name(cli, seeded_db: Path, tmp_path: Path,
                                              argv: list[str], flag: str, got: str) -> None:
    argv = [a.replace("OUT/", f"{tmp_path}/") for a in argv]
    before = row_counts(seeded_db)
    r = cli(*argv, "--db", seeded_db)
    _exits_2(r, flag, got)
    assert row_counts(seeded_db) == before
    assert not (tmp_path / "a.toml").exists()


@pytest.mark.parametrize("port", ["0", "-1", "65536"])
def test_demo_port_is_checked_before_the_book_is_built(cli, tmp_path: Path, port: str) -> None:
    """was: the whole demo book was generated first (then the pool of 50 loans failed, or the
    dashboard crashed on the bind): the port is checked first and nothing is written."""
    db = tmp_path / "demo.duckdb"
    r = cli("demo", "--db", db, "--loans", "50", "--paths", "10", "--port", port)
    _exits_2(r, "--port", f"got {port}")
    assert not db.exists()


@pytest.mark.parametrize(("raw", "said"), [
    (b"[eligibility\n", "not valid TOML"),
    (b"\xff\xfe[eligibility]\n", "not UTF-8"),
    (b"[eligibility]\nscore_min = 2000\n", "`eligibility.score_min`"),
])
def test_demo_criteria_file_is_read_before_the_book_is_built(cli, tmp_path: Path, raw: bytes,
                                                             said: str) -> None:
    """was: read with tomllib after the book was generated: TOMLDecodeError or
    UnicodeDecodeError (exit 1, a traceback), and a half-built database left behind that the
    next `riskpool demo` refused without --rebuild."""
    bad = tmp_path / "criteria_bad.toml"
    bad.write_bytes(raw)
    db = tmp_path / "demo.duckdb"
    r = cli("demo", "--db", db, "--loans", "50", "--paths", "10", "--no-dashboard",
            "--criteria", bad)
    assert r.code == 2, r.out + r.err
    assert "Traceback" not in r.err
    assert "criteria_bad.toml" in r.err and said in r.err, r.err
    assert not db.exists()


def test_a_missing_demo_criteria_file_is_named_as_such(cli, tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    r = cli("demo", "--db", db, "--loans", "50", "--paths", "10", "--no-dashboard",
            "--criteria", tmp_path / "nope.toml")
    assert r.code == 2 and "criteria file" in r.err and "does not exist" in r.err, r.err
    assert not db.exists()


def test_the_flags_good_values_still_pass(cli, seeded_db: Path) -> None:
    """The base of the cases is good: a known kind lists (nothing yet on this book)."""
    for kind in ("simulation", "report"):
        r = cli("runs", "list", "--kind", kind, "--db", seeded_db)
        assert r.code == 0 and "no runs yet" in r.out, r.err


@pytest.mark.parametrize(("flag", "value"), [("--paths", "0"), ("--paths", "2000000"),
                                             ("--loans", "0"), ("--loans", "-5")])
def test_demo_sizes_are_named_by_their_flags(cli, tmp_path: Path, flag: str,
                                             value: str) -> None:
    """was: named by the library's arguments (`n_paths`, `loans`), --paths 0 only after the
    book was generated."""
    db = tmp_path / "demo.duckdb"
    r = cli("demo", "--db", db, "--no-dashboard", flag, value)
    _exits_2(r, flag, f"got {value}")
    assert not db.exists()


def test_an_empty_password_is_refused(cli, seeded_db: Path, tmp_path: Path) -> None:
    """was: `--password ""` (a script's unset variable) generated a password and created the
    user with it, printed to the script's log."""
    users = tmp_path / "users.toml"
    r = cli("users", "add", "bob", "--role", "treasury", "--password", "", "--users", users,
            "--db", seeded_db)
    _exits_2(r, "--password", "got ''")
    assert not users.exists()
