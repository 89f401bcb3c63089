"""The interactive charts in a real browser (Chromium driven by Playwright, as in
``test_browser.py``): on each page with charts, every Vega-Lite chart draws (a canvas or an SVG) at a
real size and the browser logs no Vega error (an invalid spec only fails there: AppTest reads the
spec, it does not draw it). Hovering a bar of the Partners chart shows its tooltip."""

from __future__ import annotations

import os

import pytest
from test_browser import ARGS, CHROMIUM, _errors, _settled, server  # noqa: F401

PAGES = ("Book", "Simulation", "Tranches", "Partners", "Dispersion")


@pytest.mark.browser
def test_every_chart_draws_in_chromium(server, tmp_path) -> None:  # noqa: F811
    if not CHROMIUM.exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    logged: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1500}).new_page()
            page.set_default_timeout(120_000)
            page.on("console", lambda m: logged.append(m.text) if m.type == "error" else None)
            page.goto(server)
            page.get_by_role("textbox", name="Username").fill("treasury_t")
            page.get_by_role("textbox", name="Password").fill("treasury-pass")
            page.get_by_role("button", name="Log in").click()
            drawn: dict[str, int] = {}
            for title in PAGES:
                page.locator('[data-testid="stSidebarNav"]').get_by_text(
                    title, exact=True).click()
                page.get_by_role("heading", name=title, exact=True).first.wait_for()
                page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
                _settled(page)
                assert not _errors(page), f"{title}: {_errors(page)}"
                charts = page.locator('[data-testid="stVegaLiteChart"]')
                drawn[title] = charts.count()
                for i in range(charts.count()):
                    chart = charts.nth(i)
                    chart.scroll_into_view_if_needed()
                    chart.locator("canvas, svg").first.wait_for(timeout=20_000)
                    box = chart.bounding_box()
                    assert box is not None and box["width"] > 150 and box["height"] > 60, (
                        title, i, box)
                page.screenshot(path=str(tmp_path / f"{title.lower()}.png"), full_page=True)
                if title == "Partners":  # a tooltip with the value on hover
                    canvas = charts.first.locator("canvas, svg").first
                    canvas.scroll_into_view_if_needed()
                    cbox = canvas.bounding_box()
                    assert cbox is not None
                    shown = False
                    for fx in (0.15, 0.3, 0.5, 0.7, 0.85):  # over the bars, left to right
                        page.mouse.move(cbox["x"] + cbox["width"] * fx,
                                        cbox["y"] + cbox["height"] * 0.75)
                        tip = page.locator("#vg-tooltip-element")
                        if tip.count() and "balance" in (tip.inner_text() or ""):
                            shown = True
                            break
                    assert shown, "no tooltip over the Partners bars"
        finally:
            browser.close()
    vega = [m for m in logged if "vega" in m.lower() or "Error" in m]
    assert not vega, vega
    assert drawn["Book"] >= 5 and drawn["Tranches"] >= 2, drawn
