"""One real-browser test: ``streamlit run`` on a free port, Debian's Chromium driven by
Playwright (never downloaded: ``executable_path=/usr/bin/chromium``), logged in as each role,
every page opened; its key text is there and no error box shows. Screenshots
``<role>_<page>.png`` go to a temporary directory, or to ``RISKPOOL_SCREENSHOTS``; the time to
first render of each page is printed (a figure for the README, not an assert). The README's
screenshots are made on the demo book with::

    RISKPOOL_BROWSER_DB=data/riskpool.duckdb RISKPOOL_SCREENSHOTS=docs/screenshots \\
        .venv/bin/python -m pytest tests/dashboards/test_browser.py -s

(with ``RISKPOOL_SCREENSHOTS`` set, each screenshot first waits until every lazily loaded
widget and chart has drawn: ``browser_helpers.drawn``).

The database is the dashboard tests' small book, or ``RISKPOOL_BROWSER_DB`` (e.g. the demo
book): the ``server`` fixture (tests/dashboards/conftest.py) writes its own users file with
known passwords. Server start-up, the Chromium check and the login form:
``browser_helpers.py``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from browser_helpers import drawn, errors, launch, log_in, playwright, settled

# screenshots: a temporary directory, or RISKPOOL_SCREENSHOTS (docs/screenshots for the README)
SHOTS_ENV = "RISKPOOL_SCREENSHOTS"

# page title in the sidebar → (text of its first data element, text near its end), per role;
# "first render" is the time until the first shows, "complete" until the script has finished
# (Reports: its last download button, the workbook's, a second after the first)
KEY_TEXT = {
    "treasury": {"Book": ("Loans outstanding", "Calibration anchors"),
                 "Pools": ("Stratification of pool", "Save as a pool"),
                 "Simulation": ("EL (CNY)", "EL (CNY)"),
                 "Scenario sets": ("No scenario set yet", "riskpool scenarios run"),
                 "Tranches": ("Edit sizes", "Trigger-breach probabilities"),
                 "Partners": ("Exposure per party", "Export a partner's tape"),
                 "Dispersion": ("Risk per party", "Share that left the balance sheet"),
                 "Reports": ("Download", ".xlsx")},
    "partner": {"Book": ("Loans outstanding", "Calibration anchors"),
                "Pools": ("Stratification of pool", "Saving pools is for treasury users"),
                "Simulation": ("EL (CNY)", "EL (CNY)"),
                "Scenario sets": ("for treasury users", "for treasury users"),
                "Tranches": ("Edit sizes", "holds no tranche"),
                "Partners": ("Exposure per party", "Export a partner's tape"),
                "Dispersion": ("Risk per party", "Your own position only"),
                "Reports": ("Download", ".xlsx")},
}


@pytest.mark.browser
def test_every_page_in_chromium(server, tmp_path) -> None:
    shots = Path(os.environ.get(SHOTS_ENV) or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    timings: dict[tuple[str, str], tuple[float, float]] = {}
    with playwright() as pw:
        browser = launch(pw)
        try:
            for role, user, password in (("treasury", "treasury_t", "treasury-pass"),
                                         ("partner", "partner_t", "partner-pass")):
                ctx = browser.new_context(viewport={"width": 1400, "height": 1500})
                page = ctx.new_page()
                page.set_default_timeout(120_000)
                page.goto(server)
                log_in(page, user, password)
                for title, (first, last) in KEY_TEXT[role].items():
                    t0 = time.perf_counter()
                    page.locator('[data-testid="stSidebarNav"]').get_by_text(
                        title, exact=True).click()
                    page.get_by_role("heading", name=title, exact=True).first.wait_for()
                    page.get_by_text(first).first.wait_for()
                    t_first = time.perf_counter() - t0
                    page.get_by_text(last).first.wait_for()
                    settled(page)
                    timings[(role, title)] = (t_first, time.perf_counter() - t0)
                    assert not errors(page), f"{role} {title}: {errors(page)}"
                    if role == "partner":
                        body = page.locator("body").inner_text()
                        for other in ("bank_north", "west_trust", "hangzhou_city"):
                            assert other not in body, f"{title} shows {other}"
                    name = title.lower().replace(" ", "_")
                    if os.environ.get(SHOTS_ENV):  # the README's screenshots: drawn in full
                        drawn(page)
                    page.screenshot(path=str(shots / f"{role}_{name}.png"),
                                    full_page=True)
                ctx.close()
        finally:
            browser.close()
    print("\nseconds to first render / to complete:")
    for (role, title), (first, done) in timings.items():
        print(f"  {role:<9} {title:<11} {first:5.2f} {done:6.2f}")
