"""Users file with scrypt hashes, the ``riskpool users`` commands, and ``riskpool demo``."""

from __future__ import annotations

import hashlib
import json

import pytest

from dashboards import auth
from portfolio.validation import SchemaError


def test_hash_is_scrypt_and_verifies(tmp_path) -> None:
    h = auth.hash_password("correct horse", salt=b"\x01" * 16)
    kind, n, r, p, salt, digest = h.split("$")
    # independent: hashlib.scrypt with the parameters written in the hash
    expected = hashlib.scrypt(b"correct horse", salt=bytes.fromhex(salt), n=int(n), r=int(r),
                              p=int(p), maxmem=2**28, dklen=32).hex()
    assert (kind, digest) == ("scrypt", expected)
    assert auth.verify_password("correct horse", h)
    assert not auth.verify_password("correct horsf", h)
    assert not auth.verify_password("x", "not-a-hash")


def test_users_file_roundtrip_and_authenticate(tmp_path) -> None:
    path = tmp_path / "users.toml"
    auth.add_user(path, "alice", "treasury", "s3cret-pass")
    auth.add_user(path, "bank", "partner:bank_east", "another-pass")
    text = path.read_text()
    assert "s3cret-pass" not in text and "another-pass" not in text
    assert auth.authenticate(path, "alice", "s3cret-pass") == auth.Viewer("alice", "treasury")
    v = auth.authenticate(path, "bank", "another-pass")
    assert v is not None and v.partner_id == "bank_east" and not v.is_treasury
    assert auth.authenticate(path, "bank", "s3cret-pass") is None
    assert auth.authenticate(path, "nobody", "s3cret-pass") is None
    assert auth.remove_user(path, "bank") and auth.load_users(path).keys() == {"alice"}


@pytest.mark.parametrize("role", ["admin", "partner:", "partner:a b", ""])
def test_bad_role_is_refused(tmp_path, role: str) -> None:
    with pytest.raises(auth.ValidationError, match="role"):
        auth.add_user(tmp_path / "u.toml", "x", role, "long enough")


def test_short_password_and_bad_username_are_refused(tmp_path) -> None:
    with pytest.raises(auth.ValidationError, match="password"):
        auth.add_user(tmp_path / "u.toml", "x", "treasury", "short")
    with pytest.raises(auth.ValidationError, match="username"):
        auth.add_user(tmp_path / "u.toml", "bad name", "treasury", "long enough")


def test_users_cli(tmp_path, cli, demo_book) -> None:
    users = tmp_path / "users.toml"
    r = cli("users", "add", "carol", "--role", "partner:west_trust", "--users", users,
            "--db", demo_book.db)
    assert r.code == 0 and "password: " in r.out
    password = r.out.rsplit("password: ", 1)[1].strip()
    assert auth.authenticate(users, "carol", password) is not None
    r = cli("users", "list", "--users", users)
    assert r.out.strip() == "carol\tpartner:west_trust"
    r = cli("users", "add", "dave", "--role", "boss", "--users", users)
    assert r.code == 2 and "`role`" in r.err
    r = cli("users", "remove", "nobody", "--users", users)
    assert r.code == 2


def test_demo_cli_builds_then_reuses(tmp_path, cli, monkeypatch) -> None:
    """``riskpool demo --no-dashboard`` on a tiny book: every step, users printed; a second
    run reuses the database; other parameters without --rebuild are refused."""
    criteria = tmp_path / "criteria.toml"
    criteria.write_text("[eligibility]\nscore_min = 600\n[concentration]\n"
                        "max_obligor_share = 0.05\n")
    monkeypatch.delenv("RISKPOOL_USERS", raising=False)
    db = tmp_path / "demo.duckdb"
    args = ("demo", "--db", db, "--no-dashboard", "--loans", "1500", "--paths", "200",
            "--criteria", criteria)
    r = cli(*args)
    assert r.code == 0, r.err
    assert "treasury" in r.out and "partner:bank_east" in r.out and "password:" in r.out
    marker = json.loads(db.with_name("demo.demo.json").read_text())
    assert marker["run_id"] >= 1 and marker["allocation_id"] >= 1
    assert (tmp_path / "reports" / "riskpool_report_2026-06-30.html").exists()
    assert (tmp_path / "reports" / "riskpool_report_2026-06-30_bank_east.xlsx").exists()
    # the securitisation-only scenario reports its SRT verdict with its numbers and claims no
    # relief without it (the platform keeps the whole first loss of the CN deal)
    line = next(x for x in r.out.splitlines() if x.startswith("dispersion (securitisation)"))
    assert "SRT fails (CRE40 (1)" in line and line.endswith("capital released 0 CNY")
    assert "closes to the cent on every path: combined yes, securitisation yes" in r.out
    r = cli(*args)
    assert r.code == 0 and "reusing" in r.out
    r = cli("demo", "--db", db, "--no-dashboard", "--loans", "1600", "--paths", "200",
            "--criteria", criteria)
    assert r.code == 2 and "--rebuild" in r.err


def test_dashboard_cli_refuses_missing_database(tmp_path, cli) -> None:
    r = cli("dashboard", "--db", tmp_path / "none.duckdb", "--port", "8599")
    assert r.code == 2 and "--db" in r.err


@pytest.mark.parametrize(("text", "field", "match"), [
    ('users = 3\n', "users", r"must be a table of named entries"),
    ('[users.alice]\nrole = "admin"\n', "users.alice.role", r"must be 'treasury' or 'partner:"),
    ('[users.alice]\npassword = "x"\n', "users.alice.role", r"must be given"),
    ('[users.alice]\nrole = "treasury"\npassword = 3\n', "users.alice.password",
     r"must be a string; got 3"),
    ('[users."bad name"]\nrole = "treasury"\n', 'users."bad name"', r"must be a user name of"),
    ('[users]\nalice = "treasury"\n', "users.alice", r"must be a table \[users.<name>\]"),
    ('[users.alice]\nrole = "treasury"\nrloe = "x"\n', "users.alice.rloe",
     r"did you mean `role`\?"),
    ('[people.alice]\nrole = "treasury"\n', "people", r"must be a known key"),
])
def test_users_file_of_the_wrong_shape_names_the_field(tmp_path, text: str, field: str,
                                                       match: str) -> None:
    path = tmp_path / "users.toml"
    path.write_text(text)
    with pytest.raises(SchemaError, match=match) as info:
        auth.load_users(path)
    assert isinstance(info.value, auth.ValidationError)
    assert info.value.field_path == field and info.value.where == str(path)


def test_users_without_password_and_an_empty_file_load(tmp_path) -> None:
    path = tmp_path / "users.toml"
    path.write_text('[users."a@bank.cn"]\nrole = "partner:bank_east"\n')
    assert auth.load_users(path) == {"a@bank.cn": auth.User("a@bank.cn", "partner:bank_east", "")}
    path.write_text("# nobody yet\n")
    assert auth.load_users(path) == {}


def test_users_cli_reports_a_broken_users_file(tmp_path, cli) -> None:
    users = tmp_path / "users.toml"
    users.write_bytes(b"[users.alice]\nrole = \"\xff\"\n")
    r = cli("users", "list", "--users", users)
    assert r.code == 2 and "not UTF-8" in r.err and str(users) in r.err
    assert "Traceback" not in r.err
    users.write_text("[users.alice]\nrole = 7\n")
    r = cli("users", "list", "--users", users)
    assert r.code == 2 and "`users.alice.role` must be" in r.err
