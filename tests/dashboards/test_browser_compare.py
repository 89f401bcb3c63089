"""The Simulation page's Compare tab in a real browser (Chromium driven by Playwright, as in
``test_browser.py``): a deep link ``/simulation?a=run A&b=run B`` opened while logged out lands,
after the login, on Compare with those two runs chosen; the delta table is shown and its cells
hold the numbers ``portfolio.book.compare.compare_runs`` gives (read from the grid's
accessible table, which carries each value as sent; the canvas shows them rounded).

The book is a private copy of the dashboard book with a second run of the pool recorded as the
Simulation page records one (``access.record_pool_run``: 2,000 paths, another seed)."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest
from browser_helpers import errors, launch, log_in, playwright, settled, streamlit_app

from dashboards import access, labels
from dashboards.auth import Viewer, add_user
from portfolio.book.compare import compare_runs
from portfolio.store.core import open_store

SHOTS_ENV = "RISKPOOL_SCREENSHOTS"


@pytest.fixture
def compare_server(demo_book, tmp_path):
    src = Path(demo_book.db).parent
    db = tmp_path / "demo.duckdb"
    shutil.copy(demo_book.db, db)
    shutil.copytree(src / "runs", tmp_path / "runs")
    for f in src.glob("assumptions*.toml"):
        shutil.copy(f, tmp_path / f.name)
    run_b = int(access.record_pool_run(
        db, Viewer("t", "treasury"), demo_book.pool_id,
        f"assumptions_pool{demo_book.pool_id}.toml", n_paths=2000, seed=7,
        label="second run").run_id)
    users = tmp_path / "users.toml"
    add_user(users, "treasury_t", "treasury", "treasury-pass")
    with streamlit_app(db, users, tmp_path / "streamlit.log") as url:
        yield url, db, demo_book.run_id, run_b


def _number(text: str) -> float:
    """A grid cell's text (the grid's accessible table holds each value as the page sent it,
    e.g. ``51152.47528685038``; empty for a missing value) → its value."""
    t = text.strip()
    return math.nan if not t else float(t)


def _grid(page, header: str) -> list[dict[str, str]]:
    """The rows of the data grid whose header row holds ``header``: Streamlit's dataframe
    draws on a canvas and keeps an accessible table of its cells beside it."""
    grids = page.locator('[data-testid="stDataFrame"]')
    for i in range(grids.count()):
        grid = grids.nth(i)
        if not grid.is_visible():  # a grid on another tab
            continue
        grid.scroll_into_view_if_needed()
        table = grid.locator("table[role=grid]")
        if table.count() == 0:
            continue
        # the page shows human headers (dashboards.labels); read them back as column names
        heads = [labels.internal_name(h.strip())
                 for h in table.locator("thead th").all_text_contents()]
        if header not in heads:
            continue
        rows = []
        for tr in table.locator("tbody tr").all():
            cells = [c.strip() for c in tr.locator("td").all_text_contents()]
            rows.append(dict(zip(heads, cells, strict=False)))
        return rows
    raise AssertionError(f"no data grid with a column {header!r}")


@pytest.mark.browser
def test_compare_tab_shows_the_delta_table_of_compare_runs(compare_server, tmp_path) -> None:
    url, db, run_a, run_b = compare_server
    with open_store(db, read_only=True) as store:
        expected = compare_runs(store, run_a, run_b).results
    shots = Path(os.environ.get(SHOTS_ENV) or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    with playwright() as pw:
        browser = launch(pw)
        try:
            ctx = browser.new_context(viewport={"width": 1600, "height": 1400})
            page = ctx.new_page()
            page.set_default_timeout(120_000)
            page.goto(f"{url}/simulation?a={quote(f'run {run_a}')}&b={quote(f'run {run_b}')}")
            log_in(page, "treasury_t", "treasury-pass")
            page.get_by_role("heading", name="Simulation", exact=True).first.wait_for()
            settled(page)
            page.get_by_role("tab", name="Compare").click()
            page.get_by_text("Loss measures, B − A").first.wait_for()
            settled(page)
            assert not errors(page), errors(page)
            assert page.get_by_role("combobox", name="Run A", exact=True).input_value() \
                == f"run {run_a}"
            assert page.get_by_role("combobox", name="Run B", exact=True).input_value() \
                == f"run {run_b}"
            # 500 paths in run A: its 99% and 99.9% quantiles rest on 5 and 0 paths
            page.get_by_text("rest on fewer than 50 paths").first.wait_for()
            page.locator('[data-testid="stDataFrame"] table[role=grid] th').filter(
                has_text=labels.label("delta_se")).first.wait_for(state="attached")
            rows = _grid(page, "delta_se")
            page.screenshot(path=str(shots / "treasury_compare.png"), full_page=True)
            ctx.close()
        finally:
            browser.close()

    assert len(rows) == len(expected)
    checked = 0
    for shown, want in zip(rows, expected.itertuples(index=False), strict=True):
        assert (shown["party"], shown["measure"]) == (want.party, want.measure)
        for col in ("level", "a", "a_se", "b", "b_se", "delta", "delta_pct", "delta_se"):
            value = float(getattr(want, col))
            got = _number(shown[col])
            if math.isnan(value):
                assert math.isnan(got), (want.measure, col, shown[col])
            else:
                assert got == pytest.approx(value, rel=1e-12, abs=1e-12), (
                    want.measure, want.level, col, shown[col], value)
            checked += 1
        assert (shown["note"] != "") == (want.note != "")
    assert checked == 8 * len(expected)
    # the deltas are B − A of the shown values, and at least one differs from zero
    assert any(abs(float(d)) > 0 for d in expected["delta"])
