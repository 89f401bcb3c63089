"""One real-browser test: ``streamlit run`` on a free port, Debian's Chromium driven by
Playwright (never downloaded: ``executable_path=/usr/bin/chromium``), logged in as each role,
every page opened; its key text is there and no error box shows. Screenshots
``<role>_<page>.png`` go to a temporary directory, or to ``RISKPOOL_SCREENSHOTS``; the time to
first render of each page is printed (a figure for the README, not an assert). The README's
screenshots are made on the demo book with::

    RISKPOOL_BROWSER_DB=data/riskpool.duckdb RISKPOOL_SCREENSHOTS=docs/screenshots \\
        .venv/bin/python -m pytest tests/dashboards/test_browser.py -s

The database is the dashboard tests' small book, or ``RISKPOOL_BROWSER_DB`` (e.g. the demo
book). The test writes its own users file with known passwords.

Without Chromium the test fails when ``CI`` is set (CI installs it) and is skipped
otherwise.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dashboards.auth import add_user

CHROMIUM = Path(os.environ.get("RISKPOOL_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
# screenshots: a temporary directory, or RISKPOOL_SCREENSHOTS (docs/screenshots for the README)
SHOTS_ENV = "RISKPOOL_SCREENSHOTS"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-dev-shm-usage"]
PARTNER = "bank_east"

# page title in the sidebar → (text of its first data element, text near its end), per role;
# "first render" is the time until the first shows, "complete" until the script has finished
KEY_TEXT = {
    "treasury": {"Book": ("Loans outstanding", "Calibration anchors"),
                 "Pools": ("Stratification of pool", "Save as a pool"),
                 "Simulation": ("EL (CNY)", "EL (CNY)"),
                 "Scenario sets": ("No scenario set yet", "riskpool scenarios run"),
                 "Tranches": ("Edit sizes", "Trigger-breach probabilities"),
                 "Partners": ("Exposure per party", "Export a partner's tape"),
                 "Dispersion": ("Risk per party", "Share that left the balance sheet"),
                 "Reports": ("Download", "Download")},
    "partner": {"Book": ("Loans outstanding", "Calibration anchors"),
                "Pools": ("Stratification of pool", "Saving pools is for treasury users"),
                "Simulation": ("EL (CNY)", "EL (CNY)"),
                "Scenario sets": ("for treasury users", "for treasury users"),
                "Tranches": ("Edit sizes", "holds no tranche"),
                "Partners": ("Exposure per party", "Export a partner's tape"),
                "Dispersion": ("Risk per party", "Your own position only"),
                "Reports": ("Download", "Download")},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("streamlit did not become healthy in time")


@pytest.fixture
def server(demo_book, tmp_path):
    db = Path(os.environ.get("RISKPOOL_BROWSER_DB", demo_book.db)).resolve()
    users = tmp_path / "users.toml"
    add_user(users, "treasury_t", "treasury", "treasury-pass")
    add_user(users, "partner_t", f"partner:{PARTNER}", "partner-pass")
    port = _free_port()
    env = {**os.environ, "RISKPOOL_DB": str(db), "RISKPOOL_USERS": str(users)}
    log = open(tmp_path / "streamlit.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboards" / "app.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--server.runOnSave", "false",
         "--client.toolbarMode", "viewer"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _settled(page, timeout_ms: int = 120_000) -> None:
    """Wait until the script run has finished (the running indicator is gone)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
        timeout=timeout_ms)


def _errors(page) -> list[str]:
    boxes = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    return [boxes.nth(i).inner_text() for i in range(boxes.count())]


@pytest.mark.browser
def test_every_page_in_chromium(server, tmp_path) -> None:
    if not CHROMIUM.exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get(SHOTS_ENV) or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    timings: dict[tuple[str, str], tuple[float, float]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            for role, user, password in (("treasury", "treasury_t", "treasury-pass"),
                                         ("partner", "partner_t", "partner-pass")):
                ctx = browser.new_context(viewport={"width": 1400, "height": 1500})
                page = ctx.new_page()
                page.set_default_timeout(120_000)
                page.goto(server)
                page.get_by_role("textbox", name="Username").fill(user)
                page.get_by_role("textbox", name="Password").fill(password)
                page.get_by_role("button", name="Log in").click()
                for title, (first, last) in KEY_TEXT[role].items():
                    t0 = time.perf_counter()
                    page.locator('[data-testid="stSidebarNav"]').get_by_text(
                        title, exact=True).click()
                    page.get_by_role("heading", name=title, exact=True).first.wait_for()
                    page.get_by_text(first).first.wait_for()
                    t_first = time.perf_counter() - t0
                    page.get_by_text(last).first.wait_for()
                    _settled(page)
                    timings[(role, title)] = (t_first, time.perf_counter() - t0)
                    assert not _errors(page), f"{role} {title}: {_errors(page)}"
                    if role == "partner":
                        body = page.locator("body").inner_text()
                        for other in ("bank_north", "west_trust", "hangzhou_city"):
                            assert other not in body, f"{title} shows {other}"
                    name = title.lower().replace(" ", "_")
                    page.screenshot(path=str(shots / f"{role}_{name}.png"),
                                    full_page=True)
                ctx.close()
        finally:
            browser.close()
    print("\nseconds to first render / to complete:")
    for (role, title), (first, done) in timings.items():
        print(f"  {role:<9} {title:<11} {first:5.2f} {done:6.2f}")
