"""Sessions that survive a reload (``dashboards.session``) and page state kept in the URL.

The token checks are tested on the module; the app is tested with AppTest (login sets the
cookie through ``st.html``; a deep link's parameters survive the login; the pages write their
run, allocation, deal and partner to ``st.query_params``). The reload itself — a new browser
connection bringing the cookie back — is the Playwright test in ``test_browser_session.py``.
"""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
from pages_helpers import APP, PARTNER, no_errors, page
from streamlit.testing.v1 import AppTest

from dashboards import session
from dashboards.auth import Viewer, add_user, load_users, remove_user, save_users
from portfolio.errors import ValidationError

NOW = 1_800_000_000.0
KEY = bytes(range(32))


@pytest.fixture
def users(tmp_path):
    path = tmp_path / "users.toml"
    add_user(path, "ana", "treasury", "ana-password")
    add_user(path, "pat", f"partner:{PARTNER}", "pat-password")
    return path


def _token(users_file, name="ana", now=NOW, seconds=session.SESSION_SECONDS, key=KEY):
    user = load_users(users_file)[name]
    return session.issue(key, Viewer(name, user.role), user.password_hash, now=now,
                         seconds=seconds)


def _body(token: str) -> dict:
    payload = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _with_body(token: str, body: dict) -> str:
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + "." + token.split(".")[1]


def test_a_fresh_token_gives_its_viewer(users) -> None:
    token = _token(users)
    assert session.verify(KEY, token, users, now=NOW + 60) == Viewer("ana", "treasury")
    assert _body(token) == {"u": "ana", "r": "treasury", "exp": int(NOW) + 8 * 3600}
    partner = _token(users, "pat")
    assert session.verify(KEY, partner, users, now=NOW) == Viewer("pat", f"partner:{PARTNER}")


def test_an_expired_token_is_refused(users) -> None:
    token = _token(users, seconds=600)
    assert session.verify(KEY, token, users, now=NOW + 599) is not None
    assert session.verify(KEY, token, users, now=NOW + 600) is None  # expiry is exclusive
    assert session.verify(KEY, token, users, now=NOW + 86_400) is None


def test_a_tampered_token_is_refused(users) -> None:
    token = _token(users, "pat")
    # the partner makes itself treasury, or another user, or extends its expiry
    for change in ({"r": "treasury"}, {"u": "ana", "r": "treasury"},
                   {"exp": int(NOW) + 10 * 365 * 86_400}):
        forged = _with_body(token, {**_body(token), **change})
        assert session.verify(KEY, forged, users, now=NOW) is None, change
    payload, sig = token.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    assert session.verify(KEY, f"{payload}.{flipped}", users, now=NOW) is None
    # signed with another key (another database's, or a guess)
    assert session.verify(bytes(32), token, users, now=NOW) is None
    for junk in ("", "x", "a.b", "a.b.c", "!!!.???", f"{payload}.", f".{sig}", None):
        assert session.verify(KEY, junk, users, now=NOW) is None, junk


def test_a_changed_password_removed_user_or_new_role_ends_the_session(users) -> None:
    token = _token(users)
    add_user(users, "ana", "treasury", "a-new-password")  # same role, new password
    assert session.verify(KEY, token, users, now=NOW) is None
    token = _token(users, "pat")
    everyone = load_users(users)
    everyone["pat"] = type(everyone["pat"])("pat", "partner:bank_north",
                                            everyone["pat"].password_hash)
    save_users(users, everyone)  # same password, another partner
    assert session.verify(KEY, token, users, now=NOW) is None
    token = _token(users, "pat")
    remove_user(users, "pat")
    assert session.verify(KEY, token, users, now=NOW) is None


def test_the_key_file_is_made_once_private_and_checked(tmp_path) -> None:
    db = tmp_path / "book.duckdb"
    key = session.load_key(db)
    path = session.key_path(db)
    assert path == tmp_path / "book.duckdb.session-key"
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert session.load_key(db) == key  # not remade
    path.write_bytes(b"short")
    with pytest.raises(ValidationError, match="session-key holds 5 bytes"):
        session.load_key(db)


def test_the_cookie_scripts() -> None:
    script = session.set_cookie_script("abc.def", seconds=3600)
    assert "riskpool_session=abc.def; Max-Age=3600; Path=/; SameSite=Strict" in script
    assert "Max-Age=0" in session.clear_cookie_script()


def _html(at: AppTest) -> list[str]:
    return [e.proto.body for e in at.get("html")]


def test_login_sets_a_valid_cookie_and_keeps_the_deep_link(dashboard_env) -> None:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["run"] = str(dashboard_env.run_id)
    at.query_params["allocation"] = str(dashboard_env.allocation_id)
    at.run()
    at.text_input(key="login_user").input("treasury")
    at.text_input(key="login_password").input(dashboard_env.passwords["treasury"])
    at.button(key="login_submit").click().run()
    no_errors(at)
    assert at.query_params["run"] == str(dashboard_env.run_id)
    assert at.query_params["allocation"] == str(dashboard_env.allocation_id)
    scripts = [h for h in _html(at) if session.COOKIE in h]
    assert len(scripts) == 1
    token = scripts[0].split(f"{session.COOKIE}=")[1].split(";")[0]
    key = session.load_key(dashboard_env.db)
    assert session.verify(key, token, dashboard_env.users_file) == Viewer("treasury", "treasury")
    at.run()  # set once, not on every rerun
    assert not [h for h in _html(at) if session.COOKIE in h]
    at.button(key="logout").click().run()
    assert "viewer" not in at.session_state
    assert any("Max-Age=0" in h for h in _html(at))  # the cookie is deleted on log out


def test_page_scripts_are_not_in_a_pages_folder() -> None:
    # Streamlit's legacy multipage layout would answer a deep link with "Page not found"
    assert not (APP.parent / "pages").exists()


def test_pages_keep_their_state_in_the_url(dashboard_env) -> None:
    rid, aid = str(dashboard_env.run_id), str(dashboard_env.allocation_id)
    at = page("simulation", "treasury", {"run": rid})
    no_errors(at)
    assert at.selectbox(key="sim_run").value == int(rid)
    assert at.query_params["run"] == rid
    at = page("simulation", "treasury")  # no parameter: the latest run, written to the URL
    assert at.query_params["run"] == str(at.selectbox(key="sim_run").value)
    at = page("partners", "treasury", {"allocation": aid, "partner": PARTNER})
    no_errors(at)
    assert at.selectbox(key="export_party").value == PARTNER
    assert at.query_params["allocation"] == aid
    at.selectbox(key="export_party").set_value("bank_north").run()
    assert at.query_params["partner"] == "bank_north"
    # a partner's link naming another partner shows its own
    at = page("partners", f"partner:{PARTNER}", {"allocation": aid, "partner": "bank_north"})
    no_errors(at)
    assert at.selectbox(key="export_party").value == PARTNER
    assert at.query_params["partner"] == PARTNER
    at = page("tranches", "treasury", {"run": rid})
    no_errors(at)
    assert at.query_params["deal"] == at.selectbox(key="tr_deal").value
    at = page("dispersion", "treasury", {"run": rid, "allocation": aid})
    no_errors(at)
    assert at.query_params["run"] == rid and at.query_params["allocation"] == aid
    assert at.query_params["deal"] == at.selectbox(key="disp_deal").value
