"""Sessions and passwords: a removed or changed user is logged out on the next rerun; unknown
and known names cost the same scrypt work; failed logins are throttled; current scrypt
parameters with a rehash on login; roles must name a recorded partner."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
from adversarial_helpers import row_counts

from dashboards import auth
from portfolio.store import open_store
from portfolio.store.allocations import upsert_partners

pytestmark = pytest.mark.adversarial("sessions")


@pytest.fixture
def partners_db(tmp_path: Path) -> Path:
    """A database with partners recorded as an allocation records them (platform included)."""
    db = tmp_path / "book.duckdb"
    with open_store(db) as store:
        upsert_partners(store.con, [{"id": pid, "name": pid, "kind": kind} for pid, kind in
                                    (("bank_east", "bank"), ("west_trust", "trust"),
                                     ("platform", "platform"))])
    return db


@pytest.fixture(autouse=True)
def _fresh_throttle(monkeypatch) -> None:
    monkeypatch.setattr(auth, "_FAILURES", {})


def _users(tmp_path: Path) -> Path:
    path = tmp_path / "users.toml"
    auth.add_user(path, "alice", "treasury", "s3cret-pass")
    auth.add_user(path, "bank", "partner:bank_east", "another-pass")
    return path


def test_scrypt_parameters_are_owasp_current() -> None:
    # OWASP Password Storage Cheat Sheet: scrypt N = 2^17, r = 8, p = 1
    h = auth.hash_password("correct horse")
    assert h.split("$")[1:4] == [str(2**17), "8", "1"]


def test_old_hash_rehashed_on_login(tmp_path: Path) -> None:
    """A user stored at n = 2^14 (the previous parameters) logs in and is stored again at
    2^17; the password still works. Independent check: hashlib.scrypt on the stored salt."""
    path = tmp_path / "users.toml"
    salt = b"\x02" * 16
    old = hashlib.scrypt(b"old-password", salt=salt, n=2**14, r=8, p=1, dklen=32).hex()
    auth.save_users(path, {"olga": auth.User("olga", "treasury",
                                             f"scrypt${2**14}$8$1${salt.hex()}${old}")})
    assert auth.authenticate(path, "olga", "old-password") == auth.Viewer("olga", "treasury")
    stored = auth.load_users(path)["olga"].password_hash
    kind, n, r, p, s, digest = stored.split("$")
    assert (n, r, p) == (str(2**17), "8", "1")
    assert hashlib.scrypt(b"old-password", salt=bytes.fromhex(s), n=2**17, r=8, p=1,
                          maxmem=auth.SCRYPT_MAXMEM, dklen=32).hex() == digest
    assert auth.authenticate(path, "olga", "old-password") is not None


@pytest.mark.parametrize("name", ["alice", "nobody", "", "ALICE", "bank"])
def test_same_scrypt_work_for_known_and_unknown(tmp_path: Path, monkeypatch, name: str,
                                              partners_db: Path) -> None:
    """Every wrong attempt runs exactly one scrypt at the current parameters (was: two for an
    unknown name, one for a known one — a timing oracle). Counted, not timed. A failed login
    changes neither the users file nor any table."""
    path = _users(tmp_path)
    before, users_before = row_counts(partners_db), path.read_bytes()
    auth._dummy_hash()  # made once per process, before any attempt is counted
    calls: list[int] = []
    real = hashlib.scrypt

    def counting(*a, **k):  # type: ignore[no-untyped-def]
        calls.append(k["n"])
        return real(*a, **k)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    assert auth.authenticate(path, name, "wrong-password") is None
    assert calls == [2**17]
    assert path.read_bytes() == users_before and row_counts(partners_db) == before


def test_throttled_after_failures(tmp_path: Path, monkeypatch, partners_db: Path) -> None:
    path = _users(tmp_path)
    before, users_before = row_counts(partners_db), path.read_bytes()
    for _ in range(auth.MAX_FAILURES):
        assert auth.authenticate(path, "alice", "wrong-password") is None
    # the right password is refused while the name is throttled
    assert auth.authenticate(path, "alice", "s3cret-pass") is None
    assert auth.throttled("alice")
    # other names are not affected
    assert auth.authenticate(path, "bank", "another-pass") is not None
    # after the window the right password works again
    later = auth.time.monotonic() + auth.LOCKOUT_SECONDS + 1
    monkeypatch.setattr(auth.time, "monotonic", lambda: later)
    assert not auth.throttled("alice")
    assert auth.authenticate(path, "alice", "s3cret-pass") is not None
    assert path.read_bytes() == users_before and row_counts(partners_db) == before


def test_session_logged_out_when_user_removed_or_changed(tmp_path: Path,
                                                         partners_db: Path) -> None:
    path = _users(tmp_path)
    before = row_counts(partners_db)
    v = auth.authenticate(path, "bank", "another-pass")
    assert v is not None and auth.current_viewer(path, v) == v
    auth.add_user(path, "bank", "treasury", "another-pass")
    assert auth.current_viewer(path, v) is None  # role changed
    auth.remove_user(path, "bank")
    assert auth.current_viewer(path, auth.Viewer("bank", "treasury")) is None  # removed
    path.write_text("users = 3\n")
    assert auth.current_viewer(path, auth.Viewer("alice", "treasury")) is None  # broken file
    assert path.read_text() == "users = 3\n"  # a check never rewrites the file
    assert row_counts(partners_db) == before


def test_app_logs_out_a_removed_user(tmp_path: Path, monkeypatch, partners_db: Path) -> None:
    """The app itself (AppTest on dashboards/app.py): a session whose user was removed from
    the users file shows the login form on its next rerun."""
    from streamlit.testing.v1 import AppTest

    path = _users(tmp_path)
    monkeypatch.setenv("RISKPOOL_USERS", str(path))
    monkeypatch.setenv("RISKPOOL_DB", str(partners_db))
    before = row_counts(partners_db)
    app = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
    at = AppTest.from_file(str(app), default_timeout=120)
    at.session_state["viewer"] = auth.Viewer("bank", "partner:bank_east")
    auth.remove_user(path, "bank")
    # AppTest leaves the script as __main__'s file; Dask's spawned workers (a later test in
    # this process) would run it again: put __main__ back as it was
    main = sys.modules["__main__"]
    saved = main.__dict__.get("__file__")
    try:
        at.run()
    finally:
        sys.modules["__main__"] = main
        if saved is None:
            main.__dict__.pop("__file__", None)
        else:
            main.__file__ = saved
    assert "viewer" not in at.session_state
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert row_counts(partners_db) == before


ROLES = ["partner:nosuchbank", "partner:platform", "partner:BANK_EAST", "partner:bank_east ",
         "partner:", "admin", "treasury ", "partner:bank east"]


@pytest.mark.parametrize("role", ROLES)
def test_users_add_role_must_name_recorded_partner(cli, partners_db, tmp_path: Path,
                                                   role: str) -> None:
    users = tmp_path / "users.toml"
    users.write_text("")
    before = row_counts(partners_db)
    r = cli("users", "add", "x_user", "--role", role, "--users", users, "--db", partners_db)
    assert r.code == 2, r.out + r.err
    assert "`role`" in r.err and "Traceback" not in r.err
    assert users.read_text() == ""
    assert row_counts(partners_db) == before


def test_users_add_partner_without_a_database(cli, tmp_path: Path) -> None:
    r = cli("users", "add", "x_user", "--role", "partner:bank_east", "--users",
            tmp_path / "u.toml", "--db", tmp_path / "none.duckdb")
    assert r.code == 2 and "none is recorded yet" in r.err, r.err
    assert not (tmp_path / "u.toml").exists()


def test_users_add_recorded_partner(cli, partners_db, tmp_path: Path) -> None:
    r = cli("users", "add", "x_user", "--role", "partner:west_trust", "--users",
            tmp_path / "u.toml", "--db", partners_db)
    assert r.code == 0, r.err
    assert auth.load_users(tmp_path / "u.toml")["x_user"].role == "partner:west_trust"
