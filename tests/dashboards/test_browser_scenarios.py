"""The Scenario sets page in a real browser (Chromium driven by Playwright, as in
``test_browser.py``): a stored set's heat map renders — the chart element has a size and its
pixels hold several shades of the colour scale, one per level of the measure — and choosing
another measure redraws it. A pixel check, since Vega-Lite draws on a canvas."""

from __future__ import annotations

import io

import numpy as np
import pytest
from browser_helpers import errors, launch, log_in, playwright, settled, streamlit_app
from simulation_pools import assumptions

from dashboards.auth import add_user
from portfolio.montecarlo.assumptions import save_assumptions
from riskpool.commands.scenarios import run_scenario_set

SET = """
[set]
name = "browser set"
seed = 5
paths = 200

[[scenario]]
name = "base"

[[grid]]
name = "pd x rho"
pd_mult = [1.0, 2.0, 3.0]
rho = [0.05, 0.3]
"""


@pytest.fixture
def scenario_server(writable_book, tmp_path):
    set_file = tmp_path / "set.toml"
    set_file.write_text(SET, encoding="utf-8")
    a = save_assumptions(assumptions(), tmp_path / "a.toml")
    run_scenario_set(writable_book.db, writable_book.pool_id, a, set_file)
    users = tmp_path / "users.toml"
    add_user(users, "treasury_t", "treasury", "treasury-pass")
    with streamlit_app(writable_book.db, users, tmp_path / "streamlit.log") as url:
        yield url


def _shades(png: bytes) -> set[tuple[int, int, int]]:
    """The distinct warm colours of a screenshot (the orangered scale: red ≥ green ≥ blue,
    clearly not grey), coarsened to 8 levels per channel."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    px = np.asarray(img, dtype=np.int64).reshape(-1, 3)  # Pillow's array interface
    r, g, b = px[:, 0], px[:, 1], px[:, 2]
    warm = px[(r >= g) & (g >= b) & (r - b > 40)] // 32
    return {(int(x), int(y), int(z)) for x, y, z in np.unique(warm, axis=0)}


@pytest.mark.browser
def test_the_scenario_heat_map_renders_in_chromium(scenario_server, tmp_path) -> None:
    with playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1500}).new_page()
            page.set_default_timeout(120_000)
            page.goto(scenario_server)
            log_in(page, "treasury_t", "treasury-pass")
            page.locator('[data-testid="stSidebarNav"]').get_by_text(
                "Scenario sets", exact=True).click()
            page.get_by_role("heading", name="Scenario sets", exact=True).first.wait_for()
            chart = page.locator('[data-testid="stVegaLiteChart"]').first
            chart.wait_for()
            settled(page)
            assert not errors(page), errors(page)
            box = chart.bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 60
            first = _shades(chart.screenshot())
            # six grid cells, three PD levels: several shades of the scale are drawn
            assert len(first) >= 3, first
            page.screenshot(path=str(tmp_path / "scenarios.png"), full_page=True)
        finally:
            browser.close()
