"""Dashboard sessions that survive a reload: a signed token with the user and an expiry.

After a successful login the dashboard gives the browser a cookie ``riskpool_session`` whose
value is::

    <payload>.<signature>        payload = base64url(JSON {"u": user, "r": role, "exp": unix s})
                                 signature = base64url(HMAC-SHA256(key, payload | user's hash))

The key is 32 random bytes in a file beside the database (``<db>.session-key``, mode 0600,
made on first use; never in the repository). The signature also covers the user's stored
password hash, so changing a password or removing the user ends every session made before;
the role is checked against the users file as it is now (``auth.current_viewer``). A token
whose signature does not match, whose expiry has passed, or whose text is malformed gives no
viewer: the login form shows.

The cookie is read with Streamlit's documented ``st.context.cookies``. Streamlit has no
documented function that sets a cookie, so the dashboard sets it from the page with
``st.html(..., unsafe_allow_javascript=True)`` (documented) and the standard
``document.cookie`` (``Max-Age`` = the token's lifetime, ``SameSite=Strict``, ``Path=/``):
the cookie therefore cannot be ``HttpOnly``. The token is never put in the URL, so a deep link
(``?run=3``) can be shared without sharing the session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path

from dashboards.auth import Viewer, current_viewer, load_users
from portfolio.errors import ValidationError

COOKIE = "riskpool_session"
SESSION_SECONDS = 8 * 3600  # a working day
KEY_BYTES = 32


def key_path(db: str | Path) -> Path:
    """The session key file beside the database: ``<db file name>.session-key``."""
    p = Path(db)
    return p.with_name(p.name + ".session-key")


def load_key(db: str | Path) -> bytes:
    """The session key of ``db``, made (32 random bytes, mode 0600) if there is none yet.
    Two servers starting at once agree: the file is created exclusively, the loser reads it."""
    path = key_path(db)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            data = path.read_bytes()
        else:
            data = secrets.token_bytes(KEY_BYTES)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return data
    if len(data) < KEY_BYTES:  # an empty or cut file (a crash while writing): unusable
        raise ValidationError(f"session key {path} holds {len(data)} bytes, expected "
                              f"{KEY_BYTES}; delete it (every session ends) and reload")
    return data


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, payload: str, password_hash: str) -> str:
    bound = hashlib.sha256(password_hash.encode()).hexdigest()
    return _b64(hmac.new(key, f"{payload}|{bound}".encode(), hashlib.sha256).digest())


def issue(key: bytes, viewer: Viewer, password_hash: str, now: float | None = None,
          seconds: int = SESSION_SECONDS) -> str:
    """A token for ``viewer`` valid ``seconds`` from ``now`` (module doc for the format)."""
    t = time.time() if now is None else now
    body = {"u": viewer.username, "r": viewer.role, "exp": int(t) + int(seconds)}
    payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    return f"{payload}.{_signature(key, payload, password_hash)}"


def verify(key: bytes, token: str | None, users_file: str | Path,
           now: float | None = None) -> Viewer | None:
    """The viewer of a valid, unexpired token whose user still has the role and password it
    had when the token was issued; ``None`` for anything else."""
    if not token or not isinstance(token, str) or token.count(".") != 1:
        return None
    payload, signature = token.split(".")
    try:
        body = json.loads(_unb64(payload))
        username, role, expiry = str(body["u"]), str(body["r"]), int(body["exp"])
        users = load_users(users_file)
    except (ValueError, KeyError, TypeError, ValidationError):
        return None
    user = users.get(username)
    stored_hash = user.password_hash if user is not None else ""
    if not hmac.compare_digest(signature, _signature(key, payload, stored_hash)):
        return None
    if user is None or expiry <= (time.time() if now is None else now):
        return None
    return current_viewer(users_file, Viewer(username, role))


def password_hash_of(users_file: str | Path, username: str) -> str:
    """The stored hash the token is bound to ('' for a user without a password)."""
    user = load_users(users_file).get(username)
    return user.password_hash if user is not None else ""


def set_cookie_script(token: str, seconds: int = SESSION_SECONDS) -> str:
    """The ``<script>`` that stores ``token`` in the browser's cookie (``st.html``)."""
    value = json.dumps(f"{COOKIE}={token}; Max-Age={int(seconds)}; Path=/; SameSite=Strict")
    return ("<script>document.cookie = " + value
            + " + (location.protocol === 'https:' ? '; Secure' : '');</script>")


def clear_cookie_script() -> str:
    """The ``<script>`` that deletes the session cookie (log out)."""
    return f"<script>document.cookie = '{COOKIE}=; Max-Age=0; Path=/; SameSite=Strict';</script>"
