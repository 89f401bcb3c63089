"""Dashboard users: a TOML file of users with scrypt-hashed passwords and a role each.

The file (default ``users.toml`` beside the database; ``--users`` or ``RISKPOOL_USERS``)::

    [users.alice]
    role = "treasury"                       # sees everything
    password = "scrypt$16384$8$1$<salt hex>$<hash hex>"

    [users.bank_a_analyst]
    role = "partner:bank_a"                 # sees only partner bank_a's loans and positions

Passwords are never stored: ``hash_password`` uses ``hashlib.scrypt`` (n=2**14, r=8, p=1,
a 16-byte random salt) and ``verify`` compares in constant time. Manage the file with
``riskpool users add|remove|list``.

Where an identity provider exists, Streamlit's own OIDC login (``st.login()`` with an
``[auth]`` section in ``.streamlit/secrets.toml``) can replace the password form: the role
is then looked up by the e-mail in ``st.user`` in this same file (``[users."a@bank.cn"]``
with a role and no password). The data-access layer does not care how the user logged in.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from portfolio.errors import ValidationError, must_be
from portfolio.validation import Field, MapOf, Str, Table, read_toml, validate

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
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


def check_role(role: str, where: str = "") -> str:
    if not isinstance(role, str) or not _ROLE.match(role):
        raise ValidationError(must_be("role", _ROLE_RULE, role, where))
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
                            dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                             p=int(p), dklen=len(bytes.fromhex(digest)))
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


def add_user(path: str | Path, username: str, role: str, password: str) -> User:
    """Add or replace ``username`` with a fresh salted hash of ``password``."""
    check_username(username)
    check_role(role)
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


def authenticate(path: str | Path, username: str, password: str) -> Viewer | None:
    """The viewer for a correct username and password, else ``None`` (no hint which failed)."""
    user = load_users(path).get(username or "")
    if user is None or not user.password_hash:
        # spend the same time as a real check so a wrong name is not faster
        verify_password(password or "", hash_password("x" * 8, b"\0" * 16))
        return None
    if not verify_password(password or "", user.password_hash):
        return None
    return Viewer(user.username, user.role)


def new_password() -> str:
    """A random 16-character password for demo users."""
    return secrets.token_urlsafe(12)
