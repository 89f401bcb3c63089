"""Chinese text in charts and reports: Noto Sans CJK SC (the ``noto-cjk-sans-otc`` package) is
registered with matplotlib by ``dashboards.charts`` and Chinese region names render with it.

Three checks: matplotlib's font lookup finds the family in the bundled file; a chart of the
shipped bank tape's provinces (上海, 四川, …) draws without one "Glyph … missing from font"
warning, where DejaVu Sans alone (the setup without the font) warns for every character; and a
pixel check — two different characters draw different pixels with the font, while without it
both are the same empty box.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections import Counter
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from fontTools.pens.boundsPen import BoundsPen as _BoundsPen
from matplotlib import font_manager
from matplotlib.figure import Figure

from dashboards import charts

TAPE = Path(__file__).resolve().parents[2] / "tapes" / "bank_tape_cn_2026_07.csv"
WITHOUT_CJK = {"font.family": ["sans-serif"]}


def _regions() -> pd.DataFrame:
    with TAPE.open(encoding="utf-8-sig", newline="") as f:
        counts = Counter(row["所在省份"] for row in csv.DictReader(f))
    return pd.DataFrame({"region": list(counts), "loans": list(counts.values())})


def _missing_glyphs(render) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        render()
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def _pixels(text: str) -> np.ndarray:
    fig = Figure(figsize=(1.0, 1.0), dpi=60)
    fig.text(0.1, 0.2, text, fontsize=36)
    buf = io.BytesIO()
    fig.savefig(buf, format="rgba", dpi=60)
    return np.frombuffer(buf.getvalue(), dtype=np.uint8)


def test_the_font_is_registered_from_the_bundled_file() -> None:
    path = charts.register_cjk_font()
    assert Path(path).name == "NotoSansCJK-Regular.ttc" and Path(path).is_file()
    found = font_manager.findfont(font_manager.FontProperties(family=charts.CJK_FAMILY),
                                  fallback_to_default=False)
    assert Path(found) == Path(path)
    # the CJK face comes after the generic family: Latin text keeps DejaVu Sans
    assert matplotlib.rcParams["font.family"] == ["sans-serif", charts.CJK_FAMILY]
    charts.register_cjk_font()  # idempotent
    assert matplotlib.rcParams["font.family"].count(charts.CJK_FAMILY) == 1


def test_chinese_region_names_render_with_the_font() -> None:
    regions = _regions()
    assert len(regions) >= 5 and "上海" in set(regions["region"])

    def draw() -> None:
        charts.png_bytes(charts.bars(regions, "region", ["loans"], "贷款 by 所在省份"))

    assert _missing_glyphs(draw) == []
    with matplotlib.rc_context(WITHOUT_CJK):  # the check can fail: without the font, boxes
        missing = _missing_glyphs(draw)
    assert any("上" in m or "CJK UNIFIED IDEOGRAPH-4E0A" in m for m in missing), missing


def test_pixel_check_glyphs_not_boxes() -> None:
    a, b = _pixels("浙"), _pixels("江")
    assert (a != b).sum() > 50  # two different glyphs
    assert (a != _pixels("")).sum() > 50  # and ink at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with matplotlib.rc_context(WITHOUT_CJK):
            box_a, box_b = _pixels("浙"), _pixels("江")
    np.testing.assert_array_equal(box_a, box_b)  # without the font: the same empty box


def test_browser_font_subset_holds_the_glyphs() -> None:
    """The dashboard's charts carry the bundled font cut to their characters
    (``charts.cjk_font_css``): a WOFF (read back with fontTools) mapping each character to a
    glyph with an outline, the unicode-range listing exactly those characters; nothing for
    text without CJK characters."""
    import base64
    import re

    from fontTools.ttLib import TTFont

    assert charts.cjk_font_css("EL 1.4%") == ""
    css = charts.cjk_font_css(charts.cjk_characters("浙江 balance 江苏 等额本息"))
    assert f'font-family:"{charts.CJK_FAMILY}"' in css
    ranges = re.search(r"unicode-range:([^;]+);", css).group(1).split(",")
    assert sorted(chr(int(r[2:], 16)) for r in ranges) == sorted("浙江苏等额本息")
    data = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)\)", css).group(1))
    font = TTFont(io.BytesIO(data))
    assert font.flavor == "woff"
    cmap = font.getBestCmap()
    glyphs = font.getGlyphSet()
    for ch in "浙江苏等额本息":
        name = cmap[ord(ch)]
        pen = _BoundsPen(glyphs)
        glyphs[name].draw(pen)
        assert pen.bounds is not None, ch  # an outline, not an empty glyph
    assert ord("A") not in cmap  # Latin text keeps Streamlit's font
    assert len(data) < 60_000  # a few kB a character, not the 19 MB collection


def test_chart_specs_name_the_font_after_streamlits() -> None:
    chart = charts.bar_chart(pd.DataFrame({"group": ["浙江", "江苏"], "share": [0.3, 0.2]}),
                             "group", ["share"], "Region concentration")
    spec = chart.to_dict()
    stack = spec["config"]["axis"]["labelFont"]
    assert stack == charts.FONT_STACK and stack.index("Source Sans") < stack.index(
        charts.CJK_FAMILY)
    for part in ("legend", "title"):
        assert charts.CJK_FAMILY in str(spec["config"][part])
    assert spec["usermeta"]["embedOptions"]["renderer"] == "svg"
    assert charts.cjk_characters(charts.chart_text(chart)) == "".join(sorted("浙江苏"))


def test_book_page_carries_the_font_for_its_region_names(dashboard_env) -> None:
    """The Book page's region chart names regions in Chinese; the page holds an @font-face
    whose unicode-range covers every character of them (what the browser test then sees
    drawn), and the chart's spec names the family."""
    import re

    from pages_helpers import charts as page_charts
    from pages_helpers import page

    at = page("book", "treasury")
    styles = [e.proto.body for e in at.get("html") if "@font-face" in e.proto.body]
    covered = {chr(int(r[2:], 16)) for css in styles
               for r in re.search(r"unicode-range:([^;]+);", css).group(1).split(",")}
    region = [(spec, data) for spec, data in page_charts(at)
              if "Region concentration" in str(spec.get("title"))]
    assert len(region) == 1
    spec, data = region[0]
    names = {str(g) for frame in data.values() if "group" in frame for g in frame["group"]}
    wanted = set(charts.cjk_characters("".join(names)))
    assert len(wanted) >= 10 and "浙" in wanted  # the fixture book's provinces
    assert wanted <= covered
    assert charts.CJK_FAMILY in spec["config"]["axis"]["labelFont"]
