"""Dashboard users: a TOML file of users with scrypt-hashed passwords and a role each.

The file (default ``users.toml`` beside the database; ``--users`` or ``RISKPOOL_USERS``)::

    [users.alice]
    role = "treasury"                       # sees everything
    password = "scrypt$16384$8$1$<salt hex>$<hash hex>"

    [users.bank_a_analyst]
    role = "partner:bank_a"                 # sees only partner bank_a's loans and positions

Passwords are never stored: ``hash_password`` uses ``hashlib.scrypt`` with n=2**17, r=8, p=1
(OWASP Password Storage Cheat Sheet: "scrypt with a minimum CPU/memory cost parameter of
(2^17), a minimum block size of 8 (1024 bytes), and a parallelization parameter of 1") and a
16-byte random salt; ``verify`` compares in constant time. A hash made with weaker parameters
(n=2**14 before) is replaced at the user's next successful login. An unknown user costs the
same one scrypt as a known one (no timing oracle); after ``MAX_FAILURES`` failed logins for a
name within ``LOCKOUT_SECONDS`` that name is refused until the window has passed, even with
the right password. A partner role must name a partner recorded in the database (never
``platform``). Manage the file with
``riskpool users add|remove|list``.

Where an identity provider exists, Streamlit's own OIDC login (``st.login()`` with an
``[auth]`` section in ``.streamlit/secrets.toml``) can replace the password form: the role
is then looked up by the e-mail in ``st.user`` in this same file (``[users."a@bank.cn"]``
with a role and no password). The data-access layer does not care how the user logged in.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from portfolio.errors import ValidationError, must_be
from portfolio.validation import Field, MapOf, Str, Table, normalise_id, read_toml, validate

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
SCRYPT_MAXMEM = 256 * 1024 * 1024  # scrypt needs 128 * n * r = 128 MiB at these parameters
MAX_FAILURES = 5
LOCKOUT_SECONDS = 15 * 60
PLATFORM_PARTY = "platform"
_ROLE = re.compile(r"^(treasury|partner:[A-Za-z0-9_.-]+)$")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_ROLE_RULE = "'treasury' or 'partner:<partner id>'"
_NAME_RULE = "1-64 letters, digits or _ . @ -"

USERS_SCHEMA = Table({
    "users": Field.optional(MapOf(
        Str(pattern=_NAME.pattern, what="a user name of " + _NAME_RULE),
        Table({
            "role": Field(Str(pattern=_ROLE.pattern, what=_ROLE_RULE)),
            # no password: a user who logs in through the identity provider (OIDC)
            "password": Field.optional(Str(), ""),
        }, name="[users.<name>]"),
    ), {}),
})


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking: a treasury user (everything) or one partner (its own data only)."""

    username: str
    role: str  # "treasury" or "partner:<partner_id>"

    @property
    def partner_id(self) -> str | None:
        return self.role.split(":", 1)[1] if self.role.startswith("partner:") else None

    @property
    def is_treasury(self) -> bool:
        return self.role == "treasury"

    @property
    def scope(self) -> str:
        """The cache and access key: ``treasury`` or ``partner:<id>``."""
        return self.role


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: str
    password_hash: str


def check_role(role: str, where: str = "", partners: Collection[str] | None = None) -> str:
    """``role`` is ``treasury`` or ``partner:<id>``; with ``partners`` (the partner ids recorded
    in the database) the id must be one of them, and never the platform's."""
    if not isinstance(role, str) or not _ROLE.match(role):
        raise ValidationError(must_be("role", _ROLE_RULE, role, where))
    pid = role.split(":", 1)[1] if role.startswith("partner:") else None
    if pid is not None and partners is not None:
        known = sorted(set(partners) - {PLATFORM_PARTY})
        if pid not in known:
            allowed = ("'treasury' or partner:<id> of a recorded partner: "
                       + (", ".join(known) if known else "none is recorded yet "
                          "(run `riskpool allocate` first)"))
            raise ValidationError(must_be("role", allowed, role, where))
    return role


def check_username(name: str, where: str = "") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(must_be("username", _NAME_RULE, name, where))
    return name


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` (hex) for ``password``."""
    if not isinstance(password, str) or len(password) < 8:
        raise ValidationError(must_be("password", "at least 8 characters", "a shorter one"))
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=SCRYPT_MAXMEM, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                             p=int(p), maxmem=SCRYPT_MAXMEM, dklen=len(bytes.fromhex(digest)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def load_users(path: str | Path) -> dict[str, User]:
    """Users by name (``USERS_SCHEMA``); a missing file is no users (nobody can log in).
    A file of the wrong shape is a ``SchemaError`` naming the field (``users.alice.role``)."""
    p = Path(path)
    if not p.exists():
        return {}
    doc = validate(USERS_SCHEMA, read_toml(p, "users file"), str(p))
    return {name: User(name, entry["role"], entry["password"])
            for name, entry in doc["users"].items()}


def save_users(path: str | Path, users: dict[str, User]) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    doc = {"users": {u.username: {"role": u.role, "password": u.password_hash}
                     for u in sorted(users.values(), key=lambda u: u.username)}}
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text("# riskpool dashboard users (riskpool users add|remove|list)\n"
                   + tomli_w.dumps(doc), encoding="utf-8")
    os.chmod(tmp, 0o600)
    tmp.replace(p)


def needs_rehash(stored: str) -> bool:
    """True if ``stored`` was made with other scrypt parameters than the current ones."""
    parts = stored.split("$")
    return len(parts) != 6 or parts[1:4] != [str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P)]


def add_user(path: str | Path, username: str, role: str, password: str,
             partners: Collection[str] | None = None) -> User:
    """Add or replace ``username`` with a fresh salted hash of ``password``; with
    ``partners``, a partner role must name one of them."""
    check_username(username)
    check_role(role, partners=partners)
    users = load_users(path)
    user = User(username, role, hash_password(password))
    users[username] = user
    save_users(path, users)
    return user


def remove_user(path: str | Path, username: str) -> bool:
    users = load_users(path)
    if username not in users:
        return False
    del users[username]
    save_users(path, users)
    return True


@functools.cache
def _dummy_hash() -> str:
    """A hash at the current parameters, made once: an unknown name is checked against it,
    so it costs one scrypt like a known name (no timing oracle)."""
    return hash_password(secrets.token_urlsafe(16))


_FAILURES: dict[str, list[float]] = {}
_FAILURES_LOCK = threading.Lock()


def throttled(username: str, now: float | None = None) -> bool:
    """True while ``username`` has ``MAX_FAILURES`` failed logins in the last
    ``LOCKOUT_SECONDS`` (the dashboard server's memory; known and unknown names alike)."""
    t = time.monotonic() if now is None else now
    with _FAILURES_LOCK:
        recent = [x for x in _FAILURES.get(username, []) if t - x < LOCKOUT_SECONDS]
        _FAILURES[username] = recent
        return len(recent) >= MAX_FAILURES


def _failed(username: str) -> None:
    with _FAILURES_LOCK:
        _FAILURES.setdefault(username, []).append(time.monotonic())


def authenticate(path: str | Path, username: str, password: str) -> Viewer | None:
    """The viewer for a correct username and password, else ``None`` (no hint which failed).

    One scrypt for every attempt, known name or not; a throttled name is refused without
    checking; a correct password stored with weaker parameters is re-hashed in the file."""
    name = normalise_id(username or "")
    user = load_users(path).get(name)
    if throttled(name):
        verify_password(password or "", _dummy_hash())  # same work as any attempt
        return None
    ok = verify_password(password or "", user.password_hash if user is not None
                         and user.password_hash else _dummy_hash())
    if user is None or not user.password_hash or not ok:
        _failed(name)
        return None
    if needs_rehash(user.password_hash):
        users = load_users(path)
        users[name] = User(name, user.role, hash_password(password))
        save_users(path, users)
    return Viewer(user.username, user.role)


def current_viewer(path: str | Path, viewer: Viewer) -> Viewer | None:
    """The session's viewer checked against the users file as it is now (every rerun): None
    if the user was removed or its role changed, so the session is logged out."""
    try:
        user = load_users(path).get(viewer.username)
    except ValidationError:
        return None
    if user is None or user.role != viewer.role:
        return None
    return viewer


def new_password() -> str:
    """A random 16-character password for demo users."""
    return secrets.token_urlsafe(12)
