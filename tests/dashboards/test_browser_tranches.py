"""The Tranches page's editor in a real browser (Chromium driven by Playwright, as in
``test_browser.py``): ticking auto-balance and pressing Apply reruns the analysis with the
junior class sized as 1 − the others, and shows the applied sizes. (Typing into the grid's
canvas cells is not reliable under Playwright; refused edits and their inline errors are
covered under AppTest in ``test_tranche_editor.py``.)"""

from __future__ import annotations

import pytest
from browser_helpers import errors, launch, log_in, playwright, settled


@pytest.mark.browser
def test_tranche_editor_apply_with_auto_balance(server) -> None:
    with playwright() as pw:
        browser = launch(pw)
        try:
            ctx = browser.new_context(viewport={"width": 1400, "height": 1500})
            page = ctx.new_page()
            page.set_default_timeout(120_000)
            page.goto(f"{server}/tranches?deal=deal_cn_consumer.toml")
            log_in(page, "treasury_t", "treasury-pass")
            page.get_by_text("Trigger-breach probabilities").first.wait_for()
            settled(page)
            assert not errors(page), errors(page)
            assert page.get_by_text("Applied with the junior class").count() == 0
            # the file's A 0.89 / B 0.04: Sub = 1 − 0.89 − 0.04 = 0.07
            page.get_by_text("Auto-balance: size the junior class Sub").click()
            page.get_by_role("button", name="Apply").click()
            page.get_by_text("Applied with the junior class Sub balanced").first.wait_for()
            settled(page)
            assert not errors(page), errors(page)
            assert page.get_by_text(
                "Applied with the junior class Sub balanced: A 0.89, B 0.04, Sub 0.07."
            ).count() == 1
            assert page.get_by_text("Trigger-breach probabilities").count() >= 1
            ctx.close()
        finally:
            browser.close()
