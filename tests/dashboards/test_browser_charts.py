"""The interactive charts in a real browser (Chromium driven by Playwright, as in
``test_browser.py``): on each page with charts, every Vega-Lite chart draws (a canvas or an SVG) at a
real size and the browser logs no Vega error (an invalid spec only fails there: AppTest reads the
spec, it does not draw it). Hovering a bar of the Partners chart shows its tooltip."""

from __future__ import annotations

import io

import numpy as np
import pytest
from browser_helpers import errors, launch, log_in, playwright, settled
from PIL import Image

PAGES = ("Book", "Simulation", "Tranches", "Partners", "Dispersion")


@pytest.mark.browser
def test_every_chart_draws_in_chromium(server, tmp_path) -> None:
    logged: list[str] = []
    with playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1500}).new_page()
            page.set_default_timeout(120_000)
            page.on("console", lambda m: logged.append(m.text) if m.type == "error" else None)
            page.goto(server)
            log_in(page, "treasury_t", "treasury-pass")
            drawn: dict[str, int] = {}
            for title in PAGES:
                page.locator('[data-testid="stSidebarNav"]').get_by_text(
                    title, exact=True).click()
                page.get_by_role("heading", name=title, exact=True).first.wait_for()
                page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
                settled(page)
                assert not errors(page), f"{title}: {errors(page)}"
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
                if title == "Book":  # legends read as the tables' headers, not column names
                    lines = page.locator('[data-testid="stMain"]').inner_text().splitlines()
                    assert {"M1 balance", "Default balance", "CDR", "CPR"} <= set(lines)
                    assert not {"M1_balance", "default_balance", "cdr", "cpr"} & set(lines)
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


# in the page: the font the label is drawn with, whether the bundled CJK face was loaded, and
# a pixel check in that font (two different characters: two different glyphs, not two boxes)
_FONT_PROBE = """async (el) => {
  const family = getComputedStyle(el).fontFamily;
  await document.fonts.load(`48px ${family}`, "浙江");
  await document.fonts.ready;
  const faces = [...document.fonts].filter(f => f.family.replace(/"/g, "") === "%s");
  const draw = (ch) => {
    const c = document.createElement("canvas");
    c.width = 64; c.height = 64;
    const g = c.getContext("2d");
    g.font = `48px ${family}`;
    g.fillText(ch, 4, 52);
    return Array.from(g.getImageData(0, 0, 64, 64).data).filter((_, i) => i %% 4 === 3);
  };
  const a = draw("浙"), b = draw("江");
  return {family, faces: faces.map(f => f.status),
          differ: a.filter((v, i) => Math.abs(v - b[i]) > 64).length,
          ink: a.filter(v => v > 64).length};
}"""


def _label_pixels(locator) -> np.ndarray:  # type: ignore[no-untyped-def]
    png = locator.screenshot()
    img = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.int16)
    return img[:, : img.shape[1] // 2]  # the first character


@pytest.mark.browser
def test_chinese_region_labels_draw_with_the_bundled_font(server) -> None:
    """The Book page's region chart labels its bars 浙江, 江苏, …: they must be glyphs, not
    empty boxes, on a machine without a CJK font of its own (this one: ``fc-list :lang=zh``
    is empty). The label's font names the bundled family, the page loaded that face, two
    characters in the label's font are two different glyphs, and the labels' own pixels
    differ where their first characters differ (浙 vs 江), where two boxes would not."""
    from dashboards.charts import CJK_FAMILY

    with playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1500},
                                       device_scale_factor=2).new_page()
            page.set_default_timeout(120_000)
            page.goto(server)
            log_in(page, "treasury_t", "treasury-pass")
            page.get_by_role("heading", name="Book", exact=True).first.wait_for()
            chart = page.locator('[data-testid="stVegaLiteChart"]').filter(
                has_text="Region concentration").first
            chart.wait_for()
            settled(page)
            chart.scroll_into_view_if_needed()
            zj = chart.locator("text", has_text="浙江").first
            js = chart.locator("text", has_text="江苏").first
            zj.wait_for()
            probe = zj.evaluate(_FONT_PROBE % CJK_FAMILY)
            a, b = _label_pixels(zj), _label_pixels(js)
        finally:
            browser.close()
    label_diff = int((np.abs(a[:min(a.shape[0], b.shape[0]), :min(a.shape[1], b.shape[1])]
                            - b[:min(a.shape[0], b.shape[0]), :min(a.shape[1], b.shape[1])])
                      > 96).sum())
    print(f"CJK probe {probe}; label pixels differing {label_diff}")  # shown with -s
    assert CJK_FAMILY in probe["family"], probe
    assert "loaded" in probe["faces"], probe
    assert probe["ink"] > 200 and probe["differ"] > 200, probe  # glyphs, not one box twice
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    assert (np.abs(a[:h, :w] - b[:h, :w]) > 96).sum() > 40, "浙 and 江 draw alike: boxes"
