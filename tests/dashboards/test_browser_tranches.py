"""The Tranches page's editor in a real browser (Chromium driven by Playwright, as in
``test_browser.py``): ticking auto-balance and pressing Apply reruns the analysis with the
junior class sized as 1 − the others, and shows the applied sizes. (Typing into the grid's
canvas cells is not reliable under Playwright; refused edits and their inline errors are
covered under AppTest in ``test_tranche_editor.py``.)"""

from __future__ import annotations

import pytest
from test_browser import CHROMIUM, _errors, _settled, server  # noqa: F401 (fixture)
from test_browser_session import _chromium


@pytest.mark.browser
def test_tranche_editor_apply_with_auto_balance(server) -> None:  # noqa: F811
    with _chromium() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox", "--disable-gpu",
                                           "--disable-dev-shm-usage"])
        try:
            ctx = browser.new_context(viewport={"width": 1400, "height": 1500})
            page = ctx.new_page()
            page.set_default_timeout(120_000)
            page.goto(f"{server}/tranches?deal=deal_cn_consumer.toml")
            page.get_by_role("textbox", name="Username").fill("treasury_t")
            page.get_by_role("textbox", name="Password").fill("treasury-pass")
            page.get_by_role("button", name="Log in").click()
            page.get_by_text("Trigger-breach probabilities").first.wait_for()
            _settled(page)
            assert not _errors(page), _errors(page)
            assert page.get_by_text("Applied with the junior class").count() == 0
            # the file's A 0.89 / B 0.04: Sub = 1 − 0.89 − 0.04 = 0.07
            page.get_by_text("Auto-balance: size the junior class Sub").click()
            page.get_by_role("button", name="Apply").click()
            page.get_by_text("Applied with the junior class Sub balanced").first.wait_for()
            _settled(page)
            assert not _errors(page), _errors(page)
            assert page.get_by_text(
                "Applied with the junior class Sub balanced: A 0.89, B 0.04, Sub 0.07."
            ).count() == 1
            assert page.get_by_text("Trigger-breach probabilities").count() >= 1
            ctx.close()
        finally:
            browser.close()
