"""A bad value typed on the command line is named by its flag, as the user typed it, with the
allowed values and what was received (the library's validators name their Python arguments:
``loans``, ``mode``, ``min_transfer_share``, ``target_el``, ``balance``, ``wam``)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
US = ROOT / "examples" / "deal_us_consumer.toml"
CN = ROOT / "examples" / "deal_cn_consumer.toml"
PARTNERS = ROOT / "examples" / "partners.toml"


@pytest.mark.parametrize(("argv", "flag", "got"), [
    (["generate", "--loans", "0"], "--loans", "got 0"),
    (["generate", "--loans", "-5"], "--loans", "got -5"),
    (["generate", "--months", "0"], "--months", "got 0"),
    (["allocate", "--partners", PARTNERS, "--pool", "1", "--mode", "foo"], "--mode", "'foo'"),
    (["allocate", "--partners", PARTNERS, "--pool", "1", "--objective", "most"], "--objective",
     "'most'"),
    (["allocate", "--partners", PARTNERS, "--pool", "1", "--min-transfer", "2"],
     "--min-transfer", "got 2.0"),
    (["tranche", "grid", "--structure", US, "--balance", "-1", "--wac", "0.2", "--wam", "12"],
     "--balance", "got -1.0"),
    (["tranche", "grid", "--structure", US, "--balance", "1e8", "--wac", "0.2", "--wam", "0"],
     "--wam", "got 0"),
    (["tranche", "size", "--run", "1", "--structure", CN, "--tranche", "A", "--target-el", "-1"],
     "--target-el", "got -1.0"),
])
def test_a_bad_flag_value_is_named_by_its_flag(cli, tmp_path: Path, argv, flag, got) -> None:
    db = tmp_path / "new.duckdb"
    r = cli(*argv, "--db", db)
    assert r.code == 2, r.err
    assert f"`{flag}` must be" in r.err and got in r.err, r.err
    assert "Traceback" not in r.err
    assert not db.exists()  # refused before anything was written
