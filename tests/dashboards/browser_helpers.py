"""Helpers for the real-browser tests (``test_browser*.py``): ``streamlit run`` on a free
port, Debian's Chromium driven by Playwright (never downloaded:
``executable_path=/usr/bin/chromium``), the login form, a finished script run, error boxes.

Without Chromium a browser test fails when ``CI`` is set (CI installs it) and is skipped
otherwise (:func:`playwright`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("RISKPOOL_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
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


@contextlib.contextmanager
def streamlit_app(db: Path, users: Path, log: Path) -> Iterator[str]:
    """``dashboards/app.py`` served by ``streamlit run`` on a free 127.0.0.1 port over the
    database ``db`` and the users file ``users`` (its output in ``log``); yields its URL once
    it answers its health check, and stops it on exit."""
    port = free_port()
    env = {**os.environ, "RISKPOOL_DB": str(db), "RISKPOOL_USERS": str(users)}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboards" / "app.py"),
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none", "--server.runOnSave", "false",
             "--client.toolbarMode", "viewer"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def playwright() -> Any:
    """``sync_playwright()`` (a context manager); skips the test, or fails it under ``CI``,
    when there is no Chromium."""
    if not CHROMIUM.exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright  # optional: only the browser tests
    return sync_playwright()


def launch(pw: Any) -> Any:
    """Headless Chromium (:data:`CHROMIUM`, :data:`ARGS`)."""
    return pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)


def log_in(page: Any, username: str, password: str) -> None:
    """Fill in and send the dashboard's login form."""
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def settled(page: Any, timeout_ms: int = 120_000) -> None:
    """Wait until the script run has finished (the running indicator is gone)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
        timeout=timeout_ms)


def drawn(page: Any, timeout_ms: int = 60_000) -> None:
    """Wait until no widget or chart is still a loading placeholder (Streamlit's skeletons:
    lazily loaded widgets and charts draw after the script run has finished), then 1 s for
    the last charts' rendering, then the script run again: what a screenshot for the README
    waits for. Without it the treasury Pools form and the partner's Book charts were captured
    as grey placeholders on the demo book."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stSkeleton\"]')", timeout=timeout_ms)
    page.wait_for_timeout(1000)
    settled(page, timeout_ms)


def errors(page: Any) -> list[str]:
    """The text of every exception and error box on the page."""
    boxes = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    return [boxes.nth(i).inner_text() for i in range(boxes.count())]
