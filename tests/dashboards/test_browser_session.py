"""A reload keeps the login and the page state, in a real browser (Chromium driven by
Playwright, as in ``test_browser.py``).

A deep link opened while logged out (``/partners?allocation=A&partner=P``) lands, after the
login, on that page with that allocation and partner; F5 then keeps the user logged in (the
signed session cookie, ``dashboards.session``) on the same page with the same choices; logging
out deletes the cookie (a reload shows the login form); a tampered cookie is refused at the
next reload.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from browser_helpers import errors, launch, log_in, playwright, settled

from dashboards import session

OTHER = "bank_north"  # not the first partner in the export list: a default would not pick it


def _query(page) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def _selected(page, label: str) -> str:
    return page.get_by_role("combobox", name=label, exact=True).input_value()


def _on_partners(page, aid: str) -> None:
    page.get_by_role("heading", name="Partners", exact=True).first.wait_for()
    page.get_by_text("Export a partner's tape").first.wait_for()
    settled(page)
    assert not errors(page), errors(page)
    assert urlparse(page.url).path.rstrip("/").endswith("/partners"), page.url
    assert _query(page) == {"allocation": aid, "partner": OTHER}
    assert _selected(page, "Allocation") == aid
    assert _selected(page, "Partner") == OTHER


@pytest.mark.browser
def test_reload_keeps_login_and_page_state(server, demo_book) -> None:
    aid = str(demo_book.allocation_id)
    with playwright() as pw:
        browser = launch(pw)
        try:
            ctx = browser.new_context(viewport={"width": 1400, "height": 1200})
            page = ctx.new_page()
            page.set_default_timeout(120_000)
            page.goto(f"{server}/partners?allocation={aid}&partner={OTHER}")
            log_in(page, "treasury_t", "treasury-pass")
            _on_partners(page, aid)
            cookies = {c["name"]: c for c in ctx.cookies()}
            assert session.COOKIE in cookies
            assert cookies[session.COOKIE]["sameSite"] == "Strict"

            page.reload()
            _on_partners(page, aid)
            assert page.get_by_role("textbox", name="Username").count() == 0

            # log out: the cookie is deleted, and a reload shows the login form
            page.get_by_role("button", name="Log out").click()
            page.get_by_role("textbox", name="Username").wait_for()
            page.wait_for_function(f"() => !document.cookie.includes('{session.COOKIE}=')")
            page.reload()
            page.get_by_role("textbox", name="Username").wait_for()

            # a forged cookie (the signature of another payload) logs nobody in
            token = cookies[session.COOKIE]["value"]
            payload, signature = token.split(".")
            forged = {**cookies[session.COOKIE], "value": f"{payload}x.{signature}"}
            ctx.clear_cookies()
            ctx.add_cookies([forged])
            page.reload()
            page.get_by_role("textbox", name="Username").wait_for()
            # the form's button renders after its text boxes: wait for it, then count it
            page.get_by_role("button", name="Log in").wait_for()
            assert page.get_by_role("button", name="Log in").count() == 1
            assert page.get_by_role("button", name="Log out").count() == 0
            ctx.close()
        finally:
            browser.close()
