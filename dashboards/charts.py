"""Charts: interactive Altair (Vega-Lite) charts for the dashboard pages, and static
matplotlib figures (Agg backend) for the HTML/PDF reports.

Every function takes tables or arrays that a library function produced and returns a
``Figure``; nothing here computes a financial figure (EL/VaR/ES come in as numbers).
``png_bytes`` renders a figure for the self-contained HTML report (deterministic bytes:
no timestamp metadata).

Chinese text (region names, tape headers) is drawn with Noto Sans CJK SC (SIL Open Font
License), shipped by the ``noto-cjk-sans-otc`` package that ``make setup`` installs and
registered here with matplotlib's font manager (``FontManager.addfont``) and put after the
generic family in ``font.family`` (``["sans-serif", "Noto Sans CJK SC"]``): Latin text and
digits keep DejaVu Sans, and each glyph DejaVu Sans lacks is drawn with the CJK font
(matplotlib's per-glyph fallback across the ``font.family`` list) instead of an empty box.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import unicodedata
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, cast

import matplotlib

matplotlib.use("Agg")

import altair as alt  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import noto_cjk_sans_otc  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from fontTools import subset  # noqa: E402
from fontTools.ttLib import TTFont  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from dashboards import labels  # noqa: E402
from portfolio.book.analytics import ROLL_TOTAL  # noqa: E402

SIZE = (7.0, 3.4)
CJK_FAMILY = "Noto Sans CJK SC"  # the simplified-Chinese face of the Noto Sans CJK collection


def register_cjk_font() -> str:
    """Make Noto Sans CJK SC known to matplotlib and the fallback family after the current
    ones (``font.family``); returns the font file. Idempotent."""
    path = str(noto_cjk_sans_otc.FONT_PATH)
    if CJK_FAMILY not in {f.name for f in font_manager.fontManager.ttflist}:
        font_manager.fontManager.addfont(path)  # every face of the collection (SC, TC, JP…)
    families = [f for f in matplotlib.rcParams["font.family"] if f != CJK_FAMILY]
    matplotlib.rcParams["font.family"] = [*families, CJK_FAMILY]
    return path


register_cjk_font()


def _fig() -> tuple[Figure, plt.Axes]:
    fig = Figure(figsize=SIZE, dpi=90)
    fig.subplots_adjust(left=0.11, right=0.98, top=0.9, bottom=0.2)
    return fig, fig.add_subplot()


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def lines(frame: pd.DataFrame, x: str, ys: Sequence[str], title: str, ylabel: str = "",
          percent: bool = False) -> Figure:
    fig, ax = _fig()
    for y in ys:
        if y in frame:
            ax.plot(pd.to_datetime(frame[x]) if "date" in x or x == "as_of" else frame[x],
                    frame[y], marker=".", label=y)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    if percent:
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def vintage_curves(wide: pd.DataFrame, title: str = "Cumulative default by vintage") -> Figure:
    """``wide``: one row per vintage, columns = months on book (plus a vintage label column)."""
    fig, ax = _fig()
    label_col = wide.columns[0]
    value_cols = [c for c in wide.columns[1:] if str(c).lstrip("-").isdigit()
                  or isinstance(c, int | np.integer)]
    for _, row in wide.iterrows():
        ys = pd.to_numeric(row[value_cols], errors="coerce").to_numpy(dtype=float)
        ax.plot([int(c) for c in value_cols], ys, lw=1, label=str(row[label_col]))
    ax.set_title(title)
    ax.set_xlabel("months on book")
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.grid(alpha=0.3)
    if len(wide) <= 12:
        ax.legend(fontsize=6, ncol=2)
    return fig


def loss_histogram(loss: np.ndarray, el: float, var: Mapping[float, float],
                   es: Mapping[float, float], title: str = "Pool loss distribution") -> Figure:
    """Histogram of path losses with EL, VaR and ES marked (figures from the library)."""
    fig, ax = _fig()
    ax.hist(loss, bins=60, color="#4c72b0", alpha=0.8)
    ax.axvline(el, color="black", ls="-", label=f"EL {el:,.0f}")
    styles = ["--", ":", "-."]
    for i, level in enumerate(sorted(var)):
        ax.axvline(var[level], color="#dd8452", ls=styles[i % 3],
                   label=f"VaR {level:.1%} {var[level]:,.0f}")
        ax.axvline(es[level], color="#c44e52", ls=styles[i % 3],
                   label=f"ES {level:.1%} {es[level]:,.0f}")
    ax.set_title(title)
    ax.set_xlabel("loss over the horizon (CNY)")
    ax.set_ylabel("paths")
    ax.legend(fontsize=7)
    return fig


def fan_chart(fan: pd.DataFrame, title: str, ylabel: str = "CNY") -> Figure:
    """A fan of quantile bands (columns p5, p25, p50, p75, p95, mean by date)."""
    fig, ax = _fig()
    x = pd.to_datetime(fan["date"])
    if {"p5", "p95"} <= set(fan.columns):
        ax.fill_between(x, fan["p5"], fan["p95"], alpha=0.2, color="#4c72b0", label="5–95%")
    if {"p25", "p75"} <= set(fan.columns):
        ax.fill_between(x, fan["p25"], fan["p75"], alpha=0.4, color="#4c72b0", label="25–75%")
    if "p50" in fan:
        ax.plot(x, fan["p50"], color="#4c72b0", label="median")
    if "mean" in fan:
        ax.plot(x, fan["mean"], color="black", ls="--", lw=1, label="mean")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def bars(frame: pd.DataFrame, label: str, values: Sequence[str], title: str,
         percent: bool = False) -> Figure:
    fig, ax = _fig()
    n = len(values)
    x = np.arange(len(frame))
    width = 0.8 / max(n, 1)
    for i, v in enumerate(values):
        ax.bar(x + i * width, frame[v].to_numpy(dtype=float), width, label=v)
    ax.set_xticks(x + width * (n - 1) / 2, frame[label].astype(str), rotation=20, fontsize=8)
    ax.set_title(title)
    if percent:
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    return fig


def histograms(samples: Mapping[str, np.ndarray], title: str, xlabel: str) -> Figure:
    fig, ax = _fig()
    for name, x in samples.items():
        ax.hist(np.asarray(x), bins=50, alpha=0.5, label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("paths")
    ax.legend(fontsize=7)
    return fig


def density_bins(samples: Mapping[str, np.ndarray],
                 bins: int = 50) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Common bin edges over every sample and each sample's share of its paths per bin (each
    sums to 1), so runs with different path counts are drawn on one scale."""
    pooled = np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in samples.values()])
    edges = np.histogram_bin_edges(pooled, bins=bins)
    shares = {}
    for name, x in samples.items():
        counts, _ = np.histogram(np.asarray(x, dtype=np.float64), bins=edges)
        shares[name] = counts / max(len(np.asarray(x)), 1)
    return edges, shares


def densities(samples: Mapping[str, np.ndarray], title: str, xlabel: str) -> Figure:
    """Overlaid distributions as the share of each sample's paths per bin (common bins):
    a 500-path run and a 10,000-path run are comparable, as raw counts are not."""
    fig, ax = _fig()
    edges, shares = density_bins(samples)
    for name, share in shares.items():
        ax.stairs(share * 100.0, edges, fill=True, alpha=0.45,
                  label=f"{name} ({len(np.asarray(samples[name])):,} paths)")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("% of the run's paths")
    ax.legend(fontsize=7)
    return fig


def backtest_chart(table: pd.DataFrame, coverage: pd.DataFrame, series: Sequence[str],
                   title: str) -> Figure:
    """One panel per back-test series: the 5–95% fan of the paths (shaded), their median
    and the actual month by month (a cross where it lies outside the fan); each panel titled
    with its coverage. ``table`` and ``coverage`` as ``portfolio.book.backtest.compare``."""
    n = len(series)
    fig = Figure(figsize=(7.0, 2.4 * n + 0.6), dpi=90)
    fig.subplots_adjust(left=0.13, right=0.98, top=1 - 0.75 / (2.4 * n + 0.6), bottom=0.08,
                        hspace=0.55)
    fig.suptitle(title, fontsize=10)
    for i, name in enumerate(series):
        ax = fig.add_subplot(n, 1, i + 1)
        rows = table[table["series"] == name]
        x = pd.to_datetime(rows["month"])
        ax.fill_between(x, rows["p5"], rows["p95"], alpha=0.25, label="5-95% of the paths")
        ax.plot(x, rows["median"], lw=1.2, label="median")
        inside = rows["inside"].to_numpy(dtype=bool)
        ax.plot(x[inside], rows["actual"][inside], "o", ms=4, color="black", label="actual")
        if (~inside).any():
            ax.plot(x[~inside], rows["actual"][~inside], "x", ms=6, color="red",
                    label="actual outside")
        c = coverage[coverage["series"] == name].iloc[0]
        ax.set_title(f"{c['label']}: coverage {c['inside']}/{c['months']} months",
                     fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7)
    return fig


# --------------------------------------------------------------------------- interactive (Altair)
#
# The dashboard's charts are Vega-Lite specs built with Altair (``st.altair_chart``): values on
# hover (tooltips), zoom and pan (``.interactive()``: drag, wheel; double-click resets) and
# legend toggles (a point selection bound to the legend: click a party to highlight it,
# shift-click for more). The figures above stay for the static HTML/PDF report images.
# Every series is coloured by ``colour(name)``, so a party or a class has the same colour on
# every page.

# Chinese text in the browser's charts. Vega draws with the browser's fonts, and a machine
# without a CJK font shows 浙江 as two empty boxes. So the pages carry the bundled Noto Sans
# CJK SC themselves: ``cjk_font_css`` cuts from it (fontTools' subsetter) just the characters
# a chart shows and returns a CSS ``@font-face`` holding them (a WOFF in a data: URL, a few
# kB; ``unicode-range`` lists the characters, so several such faces make one family), which
# ``dashboards.ui.altair_chart`` puts on the page with ``st.html`` before the chart. The
# ``riskpool`` Altair theme (enabled here) names the family after Streamlit's own font in
# every text of a chart — axis labels and titles, legends, titles, text marks — so Latin text
# keeps Streamlit's font and each CJK character is drawn with Noto Sans CJK SC; and it asks
# for the SVG renderer, whose text is redrawn once the font has loaded (a canvas keeps
# whatever it drew first).

CJK_FACE_INDEX = 2  # Noto Sans CJK SC in NotoSansCJK-Regular.ttc (JP, KR, SC, TC, HK, …)
FONT_STACK = f'"Source Sans", "{CJK_FAMILY}", sans-serif'  # Streamlit's font first


def _is_cjk(ch: str) -> bool:
    return ord(ch) >= 0x2E80 and unicodedata.east_asian_width(ch) in ("W", "F")


def cjk_characters(text: str) -> str:
    """The distinct wide East Asian characters of ``text`` (sorted): what the subset needs."""
    return "".join(sorted({ch for ch in text if _is_cjk(ch)}))


@functools.lru_cache(maxsize=256)
def cjk_font_css(chars: str) -> str:
    """A CSS ``@font-face`` for ``CJK_FAMILY`` with the glyphs of ``chars`` only (empty text
    when there is none), cut from the bundled font."""
    chars = cjk_characters(chars)
    if not chars:
        return ""
    font = TTFont(str(noto_cjk_sans_otc.FONT_PATH), fontNumber=CJK_FACE_INDEX, lazy=True)
    options = subset.Options()
    options.flavor = "woff"
    options.layout_features = []
    options.hinting = False
    cutter = subset.Subsetter(options)
    cutter.populate(text=chars)
    cutter.subset(font)
    buf = io.BytesIO()
    font.flavor = "woff"
    font.save(buf)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    ranges = ",".join(f"U+{ord(c):X}" for c in chars)
    return (f'@font-face{{font-family:"{CJK_FAMILY}";src:url(data:font/woff;base64,{data}) '
            f'format("woff");unicode-range:{ranges};font-display:block}}')


def chart_text(chart: Any) -> str:
    """Every string of a chart's spec (its data, titles and labels) as one text."""
    return json.dumps(chart.to_dict(validate=False), ensure_ascii=False, default=str)


def altair_chart(chart: Any, container: Any = None, **kwargs: Any) -> None:
    """``st.altair_chart`` with the Chinese characters the chart shows carried by the page:
    the bundled font's glyphs for them as an ``@font-face`` (:func:`cjk_font_css`; a
    style-only ``st.html``, which takes no room), so the browser draws them without a CJK
    font of its own. (Streamlit is imported here, not at the top: the reports use this module
    without it.)"""
    import streamlit as st

    css = cjk_font_css(cjk_characters(chart_text(chart)))
    if css:
        st.html(f"<style>{css} #vg-tooltip-element{{font-family:{FONT_STACK}}}</style>")
    (container if container is not None else st).altair_chart(chart, **kwargs)


def _riskpool_theme() -> alt.theme.ThemeConfig:
    fonts = {"font": FONT_STACK}
    theme: dict[str, Any] = {
        "config": {
            "font": FONT_STACK,
            "axis": {"labelFont": FONT_STACK, "titleFont": FONT_STACK},
            "legend": {"labelFont": FONT_STACK, "titleFont": FONT_STACK},
            "header": {"labelFont": FONT_STACK, "titleFont": FONT_STACK},
            "title": {"font": FONT_STACK, "subtitleFont": FONT_STACK},
            "text": fonts, "mark": fonts,
        },
        "usermeta": {"embedOptions": {"renderer": "svg"}},
    }
    return cast("alt.theme.ThemeConfig", theme)  # a TypedDict of Vega-Lite's config


alt.theme.register("riskpool", enable=True)(_riskpool_theme)

FIXED_COLOURS: dict[str, str] = {
    # the platform, the parties of examples/partners.toml, and the classes of the shipped deals
    "platform": "#8c8c8c", "bank_east": "#4c72b0", "bank_north": "#dd8452",
    "hangzhou_city": "#55a868", "west_trust": "#8172b3", "investors": "#937860",
    "A": "#1f3b73", "B": "#5b8fd6", "C": "#9ec5f0", "D": "#f2b36d", "E": "#e07b39",
    "Sub": "#c44e52", "residual": "#da8bc3",
    # delinquency buckets (M1 → default darkening) and the book's rates
    "current": "#55a868", "M1": "#f2c45a", "M2": "#f28e2b", "M3": "#d95f02",
    "default": "#a6192e", "dpd30": "#4c72b0", "written_off": "#5a5a5a",
    "cdr": "#c44e52", "cpr": "#4c72b0",
}
BLUE = "#4c72b0"  # fans and the pool loss histogram
# any other name: hashed into colours that no fixed entry uses
PALETTE: tuple[str, ...] = ("#17becf", "#bcbd22", "#e377c2", "#2ca02c", "#9467bd",
                            "#ff7f0e", "#8c564b", "#d62728", "#1f77b4", "#7f7f7f")


def colour(name: str) -> str:
    """The one colour of a party, class or series on every chart: a fixed entry for the
    platform, the example parties and the shipped classes; any other name hashed (CRC-32,
    stable across runs and machines) into ``PALETTE``, whose colours no fixed entry uses."""
    fixed = FIXED_COLOURS.get(str(name))
    return fixed if fixed is not None else PALETTE[zlib.crc32(str(name).encode()) % len(PALETTE)]


def colours(names: Sequence[str]) -> dict[str, str]:
    """Each name's ``colour``; a hashed name whose colour another name of the same chart
    already has takes the next unused colour of ``PALETTE`` (fixed names never move)."""
    domain = [str(n) for n in dict.fromkeys(names)]
    out = {n: FIXED_COLOURS[n] for n in domain if n in FIXED_COLOURS}
    for n in domain:
        if n in out:
            continue
        start = PALETTE.index(colour(n))
        for k in range(len(PALETTE)):
            c = PALETTE[(start + k) % len(PALETTE)]
            if c not in out.values():
                break
        out[n] = c
    return {n: out[n] for n in domain}


def colour_scale(names: Sequence[str]) -> alt.Scale:
    """A Vega-Lite colour scale mapping each name to its colour (``colours``)."""
    mapping = colours(names)
    return alt.Scale(domain=list(mapping), range=list(mapping.values()))


def _legend_toggle(field_name: str) -> tuple[Any, Any]:
    sel = alt.selection_point(fields=[field_name], bind="legend")
    return sel, alt.condition(sel, alt.value(1.0), alt.value(0.15))


# chart series that are no table column: the delinquency-share chart's 30+ DPD line (M1 to
# default over the outstanding balance; the tables' dpd30_ratio is "30+ DPD")
SERIES_LABELS: dict[str, str] = {"dpd30": "30+ DPD"}


def label_expr(names: Sequence[str]) -> str | None:
    """A Vega expression showing each column name of ``names`` as the tables' header
    (``dashboards.labels.label`` without its unit: ``M1_balance`` → "M1 balance", ``cdr`` →
    "CDR", ``var_999`` → "VaR 99.9%") in a legend or an axis, the data keeping the names;
    ``None`` when every name reads as itself. A series name that is no table column reads
    as :data:`SERIES_LABELS` says (``dpd30`` → "30+ DPD")."""
    shown = {str(n): SERIES_LABELS.get(str(n)) or labels.label(str(n), "text") for n in names}
    if all(k == v for k, v in shown.items()):
        return None
    return f"({json.dumps(shown, ensure_ascii=False)})[datum.value] || datum.label"


def _fmt(percent: bool) -> str:
    return ".2%" if percent else ",.2f"


# A time axis names the month and its year at every tick ("Oct 2025", "Jan 2026"): Vega-Lite's
# dynamic time format (one D3 pattern per boundary a tick lies on; a zoom down to days shows
# the day too), not its default, which writes a month's name alone ("October", "April") and
# the year only at a January tick.
TIME_AXIS_FORMAT: dict[str, str] = {"year": "%b %Y", "quarter": "%b %Y", "month": "%b %Y",
                                    "week": "%d %b %Y", "date": "%d %b %Y"}


def time_x(field_name: str) -> alt.X:
    """The x channel of a chart over dates: ``field_name`` as time, the axis untitled (the
    dates speak for themselves) and labelled month and year (:data:`TIME_AXIS_FORMAT`)."""
    return alt.X(f"{field_name}:T", title=None, axis=alt.Axis(format=TIME_AXIS_FORMAT))


def line_chart(frame: pd.DataFrame, x: str, ys: Sequence[str], title: str, y_title: str = "",
               percent: bool = False, series: str = "series") -> alt.Chart:
    """One line per column of ``ys`` over ``x`` (long data: x, ``series``, value)."""
    cols = [y for y in ys if y in frame]
    long = frame[[x, *cols]].melt(id_vars=[x], value_vars=cols, var_name=series,
                                  value_name="value")
    if "date" in x or x == "as_of" or x == "month":
        long[x] = pd.to_datetime(long[x])
    x_type = "T" if pd.api.types.is_datetime64_any_dtype(long[x]) else "Q"
    sel, opacity = _legend_toggle(series)
    fmt = _fmt(percent)
    expr = label_expr(cols)  # the legend reads "M1 balance", "CDR", not the column names
    return alt.Chart(long, title=title).mark_line(point=True).encode(
        x=time_x(x) if x_type == "T" else alt.X(f"{x}:Q", title=None),
        y=alt.Y("value:Q", title=y_title or None, axis=alt.Axis(format=".1%" if percent
                                                                  else "~s")),
        color=alt.Color(f"{series}:N", scale=colour_scale(cols), title=None,
                        legend=alt.Legend(labelExpr=expr) if expr else alt.Undefined),
        opacity=opacity,
        tooltip=[alt.Tooltip(f"{x}:{x_type}", title=x), alt.Tooltip(f"{series}:N"),
                 alt.Tooltip("value:Q", format=fmt)],
    ).add_params(sel).interactive()


def bar_chart(frame: pd.DataFrame, label: str, values: Sequence[str], title: str,
              percent: bool = False) -> alt.Chart:
    """Bars per row of ``frame`` (coloured by ``label``: a party keeps its colour), one group
    per measure in ``values``; one measure: the bars in the frame's row order."""
    long = frame[[label, *values]].melt(id_vars=[label], value_vars=list(values),
                                        var_name="measure", value_name="value")
    long[label] = long[label].astype(str)
    sel, opacity = _legend_toggle(label)
    fmt = _fmt(percent)
    enc: dict[str, Any] = {
        "y": alt.Y("value:Q", title=None, axis=alt.Axis(format=".1%" if percent else "~s")),
        "color": alt.Color(f"{label}:N", scale=colour_scale(list(long[label])), title=None),
        "opacity": opacity,
        "tooltip": [alt.Tooltip(f"{label}:N"), alt.Tooltip("measure:N"),
                    alt.Tooltip("value:Q", format=fmt)],
    }
    if len(values) > 1:
        expr = label_expr(values)  # "EL", "VaR 99.9%", "Capital", not el, var_999, capital
        enc["x"] = alt.X("measure:N", title=None, sort=list(values),
                         axis=alt.Axis(labelAngle=0, labelExpr=expr) if expr
                         else alt.Axis(labelAngle=0))
        enc["xOffset"] = alt.XOffset(f"{label}:N")
    else:  # the bars in the frame's order (a concentration chart sorted by share stays so)
        enc["x"] = alt.X(f"{label}:N", title=None, axis=alt.Axis(labelAngle=0),
                         sort=list(dict.fromkeys(long[label])))
    return alt.Chart(long, title=title).mark_bar().encode(**enc).add_params(sel).interactive()


LABEL_SIZE = 11  # px: the concentration chart's row labels (Vega's default is 10)
LABEL_PADDING = 6  # px between a row label and its bar


def concentration_chart(frame: pd.DataFrame, label: str, value: str, title: str,
                        percent: bool = True) -> alt.LayerChart:
    """Horizontal bars, one per row of ``frame`` (a region, a product), the largest ``value``
    on top: each ``label`` written once and level on the y axis — however many rows and
    however long their names —, its value at the end of its bar; one colour and no legend
    (the axis names the bars)."""
    data = frame[[label, value]].copy()
    data[label] = data[label].astype(str)
    data = data.sort_values(value, ascending=False, kind="stable")
    fmt = ".2%" if percent else ",.2f"
    top = float(data[value].max()) if len(data) else 0.0
    # room right of the longest bar for its value
    scale = alt.Scale(domain=[0, top * 1.15]) if top > 0 else alt.Undefined
    # the labels' room left of the axis, from their characters (a CJK character is about the
    # font size wide) and the padding: Vega measures a label before the page's CJK face has
    # loaded, and left to itself cut 黑龙江 to 龙江
    extent = max((sum(LABEL_SIZE if _is_cjk(ch) else LABEL_SIZE * 0.6 for ch in name)
                  for name in data[label]), default=0.0) + LABEL_PADDING + 8
    base = alt.Chart(data).encode(
        y=alt.Y(f"{label}:N", title=None, sort=list(data[label]),
                axis=alt.Axis(labelOverlap=False, labelLimit=0, labelFontSize=LABEL_SIZE,
                              labelPadding=LABEL_PADDING, ticks=False,
                              minExtent=round(extent))),
        x=alt.X(f"{value}:Q", title=None, scale=scale,
                axis=alt.Axis(format=".1%" if percent else "~s")),
        tooltip=[alt.Tooltip(f"{label}:N"), alt.Tooltip(f"{value}:Q", format=fmt)])
    bars_ = base.mark_bar(color=BLUE)
    text = base.mark_text(align="left", dx=3, fontSize=11).encode(
        text=alt.Text(f"{value}:Q", format=fmt))
    # altair's stubs type a layer as LayerChart | FacetChart; it is a LayerChart
    return cast(alt.LayerChart, alt.layer(bars_, text, title=title).properties(
        height=alt.Step(18)))


def fan_area_chart(fan: pd.DataFrame, title: str, y_title: str = "CNY") -> alt.LayerChart:
    """The 5–95% and 25–75% bands, the median and the mean of a fan (``access.fan``)."""
    data = fan.copy()
    data["date"] = pd.to_datetime(data["date"])
    base = alt.Chart(data, title=title).encode(x=time_x("date"))
    tips = [alt.Tooltip("date:T")] + [alt.Tooltip(f"{c}:Q", format=",.0f")
                                      for c in ("p5", "p25", "p50", "p75", "p95", "mean")
                                      if c in data]
    layers = []
    if {"p5", "p95"} <= set(data.columns):
        layers.append(base.mark_area(opacity=0.2, color=BLUE).encode(
            y=alt.Y("p5:Q", title=y_title, axis=alt.Axis(format="~s")), y2="p95:Q"))
    if {"p25", "p75"} <= set(data.columns):
        layers.append(base.mark_area(opacity=0.4, color=BLUE).encode(
            y="p25:Q", y2="p75:Q"))
    if "p50" in data:
        layers.append(base.mark_line(color=BLUE).encode(y="p50:Q"))
    if "mean" in data:
        layers.append(base.mark_line(color="black", strokeDash=[4, 3]).encode(y="mean:Q"))
    layers.append(base.mark_rule(opacity=0).encode(tooltip=tips))  # hover anywhere on a date
    # altair's stubs type a layer as LayerChart | FacetChart; it is a LayerChart
    return cast(alt.LayerChart, alt.layer(*layers).interactive())


def histogram_frame(samples: Mapping[str, np.ndarray], bins: int = 50, share: bool = False,
                    series: str = "series") -> pd.DataFrame:
    """Common bins over every sample: ``series``, bin_start, bin_end, paths (or, with
    ``share``, the share of the sample's paths in the bin)."""
    edges, shares = density_bins(samples, bins)
    frames = []
    for name, s in shares.items():
        n = len(np.asarray(samples[name]))
        frames.append(pd.DataFrame({series: str(name), "bin_start": edges[:-1],
                                    "bin_end": edges[1:],
                                    "value": s if share else np.rint(s * n).astype(np.int64)}))
    return pd.concat(frames, ignore_index=True)


def histogram_chart(samples: Mapping[str, np.ndarray], title: str, x_title: str,
                    share: bool = False, series: str = "series",
                    x_format: str = "~s") -> alt.Chart:
    """Overlaid histograms on common bins (colour per series; ``share``: % of each sample's
    paths, so runs of different sizes compare)."""
    data = histogram_frame(samples, share=share, series=series)
    sel, _ = _legend_toggle(series)
    return alt.Chart(data, title=title).mark_bar(binSpacing=0).encode(
        x=alt.X("bin_start:Q", title=x_title, bin="binned", axis=alt.Axis(format=x_format)),
        x2="bin_end:Q",
        y=alt.Y("value:Q", title="share of paths" if share else "paths", stack=None,
                axis=alt.Axis(format=".1%" if share else "d")),
        color=alt.Color(f"{series}:N", scale=colour_scale(list(samples)), title=None),
        opacity=alt.condition(sel, alt.value(0.55), alt.value(0.08)),
        tooltip=[alt.Tooltip(f"{series}:N"), alt.Tooltip("bin_start:Q", format=",.4g"),
                 alt.Tooltip("bin_end:Q", format=",.4g"),
                 alt.Tooltip("value:Q", format=".2%" if share else "d")],
    ).add_params(sel).interactive()


def loss_histogram_chart(loss: np.ndarray, el: float, var: Mapping[float, float],
                         es: Mapping[float, float],
                         title: str = "Pool loss distribution") -> alt.LayerChart:
    """Path losses on 60 bins with EL, VaR and ES as rules (figures from the library)."""
    data = histogram_frame({"paths": np.asarray(loss)}, bins=60)
    marks = [{"measure": "EL", "value": float(el)}]
    for level in sorted(var):
        marks += [{"measure": f"VaR {level:.1%}", "value": float(var[level])},
                  {"measure": f"ES {level:.1%}", "value": float(es[level])}]
    rules = pd.DataFrame(marks)
    bars_ = alt.Chart(data, title=title).mark_bar(binSpacing=0, color=BLUE,
                                                  opacity=0.8).encode(
        x=alt.X("bin_start:Q", bin="binned", title="loss over the horizon (CNY)",
                axis=alt.Axis(format="~s")),
        x2="bin_end:Q", y=alt.Y("value:Q", title="paths"),
        tooltip=[alt.Tooltip("bin_start:Q", format=",.0f"),
                 alt.Tooltip("bin_end:Q", format=",.0f"), alt.Tooltip("value:Q", title="paths")])
    sel, opacity = _legend_toggle("measure")
    lines_ = alt.Chart(rules).mark_rule(strokeWidth=2).encode(
        x="value:Q", color=alt.Color("measure:N", scale=colour_scale(list(rules["measure"])),
                                     title=None),
        opacity=opacity,
        tooltip=[alt.Tooltip("measure:N"), alt.Tooltip("value:Q", format=",.0f")],
    ).add_params(sel)
    # altair's stubs type a layer as LayerChart | FacetChart; it is a LayerChart
    return cast(alt.LayerChart, alt.layer(bars_, lines_).interactive())


def vintage_chart(wide: pd.DataFrame,
                  title: str = "Cumulative default by vintage") -> alt.Chart:
    """``wide``: one row per vintage, columns = months on book (and a vintage label first)."""
    long = vintage_long(wide)
    sel, opacity = _legend_toggle("vintage")
    return alt.Chart(long, title=title).mark_line().encode(
        x=alt.X("months_on_book:Q", title="months on book"),
        y=alt.Y("value:Q", title=None, axis=alt.Axis(format=".1%")),
        color=alt.Color("vintage:N", scale=colour_scale(list(long["vintage"])), title=None),
        opacity=opacity,
        tooltip=[alt.Tooltip("vintage:N"), alt.Tooltip("months_on_book:Q"),
                 alt.Tooltip("value:Q", format=".3%")],
    ).add_params(sel).interactive()


def vintage_long(wide: pd.DataFrame) -> pd.DataFrame:
    """The vintage table long: vintage, months_on_book, value (NaN cells dropped)."""
    label_col = wide.columns[0]
    value_cols = [c for c in wide.columns[1:] if str(c).lstrip("-").isdigit()
                  or isinstance(c, int | np.integer)]
    long = wide[[label_col, *value_cols]].melt(id_vars=[label_col], var_name="months_on_book",
                                              value_name="value")
    long = long.rename(columns={label_col: "vintage"})
    long["vintage"] = long["vintage"].astype(str)
    long["months_on_book"] = long["months_on_book"].astype(int)
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    return long.dropna(subset=["value"]).reset_index(drop=True)


def heatmap_chart(frame: pd.DataFrame, x: str, y: str, value: str, title: str,
                  percent: bool = True, x_sort: Sequence[str] | None = None,
                  y_sort: Sequence[str] | None = None) -> alt.LayerChart:
    """A heat map of ``value`` over ``x`` × ``y`` with the value written in each cell."""
    fmt = ".1%" if percent else ",.2f"
    base = alt.Chart(frame, title=title).encode(
        x=alt.X(f"{x}:N", title=None, sort=list(x_sort) if x_sort else None,
                axis=alt.Axis(labelAngle=-35, labelOverlap=False)),
        y=alt.Y(f"{y}:N", title=None, sort=list(y_sort) if y_sort else None))
    rect = base.mark_rect().encode(
        color=alt.Color(f"{value}:Q", title=None, scale=alt.Scale(scheme="orangered"),
                        legend=alt.Legend(format=fmt)),
        tooltip=[alt.Tooltip(f"{y}:N"), alt.Tooltip(f"{x}:N"),
                 alt.Tooltip(f"{value}:Q", format=".3%" if percent else ",.4f")])
    top = float(frame[value].max()) if len(frame) else 0.0
    text = base.mark_text(fontSize=11).encode(
        text=alt.Text(f"{value}:Q", format=fmt),
        color=alt.condition(alt.datum[value] > top * 0.6, alt.value("white"),
                            alt.value("black")))
    # altair's stubs type a layer as LayerChart | FacetChart; it is a LayerChart
    return cast(alt.LayerChart, alt.layer(rect, text))


def trigger_chart(rows: pd.DataFrame, title: str) -> alt.LayerChart:
    """One trigger's metric by month (``tranching.analytics.trigger_metrics`` rows): the 5–95%
    band over the paths, the mean, and the level in force (dashed red)."""
    data = rows.copy()
    data["date"] = pd.to_datetime(data["date"])
    pct = data["metric"].iloc[0] != "oc"
    fmt = ".2%" if pct else ".4f"
    base = alt.Chart(data, title=title).encode(x=time_x("date"))
    band = base.mark_area(opacity=0.25, color=BLUE).encode(
        y=alt.Y("p5:Q", title=labels.label(str(data["metric"].iloc[0]), "text"),
                axis=alt.Axis(format=".1%" if pct else ".2f")), y2="p95:Q")
    mean = base.mark_line(color=BLUE, point=True).encode(y="mean:Q")
    level = base.mark_line(color="#c44e52", strokeDash=[6, 3]).encode(y="level:Q")
    tips = base.mark_rule(opacity=0).encode(tooltip=[
        alt.Tooltip("date:T"), alt.Tooltip("mean:Q", format=fmt),
        alt.Tooltip("p5:Q", format=fmt), alt.Tooltip("p95:Q", format=fmt),
        alt.Tooltip("level:Q", format=fmt),
        alt.Tooltip("in_force:Q", title="paths in force", format=".1%")])
    # altair's stubs type a layer as LayerChart | FacetChart; it is a LayerChart
    return cast(alt.LayerChart, alt.layer(band, mean, level, tips).interactive())


def class_ce_chart(frame: pd.DataFrame, title: str) -> alt.Chart:
    """Each class's mean credit enhancement by date (``credit_enhancement_by_month``), one
    colour per class, the 5–95% range in the tooltip."""
    data = frame.dropna(subset=["mean"]).copy()
    data["date"] = pd.to_datetime(data["date"])
    sel, opacity = _legend_toggle("class")
    return alt.Chart(data, title=title).mark_line(point=True).encode(
        x=time_x("date"),
        y=alt.Y("mean:Q", title="credit enhancement", axis=alt.Axis(format=".0%")),
        color=alt.Color("class:N", scale=colour_scale(list(data["class"])), title=None),
        opacity=opacity,
        tooltip=[alt.Tooltip("class:N"), alt.Tooltip("date:T"),
                 alt.Tooltip("mean:Q", format=".2%"), alt.Tooltip("p5:Q", format=".2%"),
                 alt.Tooltip("p95:Q", format=".2%")],
    ).add_params(sel).interactive()


def roll_rate_long(matrix: pd.DataFrame, states: Sequence[str]) -> pd.DataFrame:
    """The roll-rate matrix (``portfolio.book.analytics.RollRates.matrix``) long: from_bucket,
    to_state, share; rows without balance (NaN shares) and the total row left out."""
    matrix = matrix[matrix["from_bucket"] != ROLL_TOTAL]
    long = matrix[["from_bucket", *states]].melt(id_vars=["from_bucket"], var_name="to_state",
                                                 value_name="share")
    return long.dropna(subset=["share"]).reset_index(drop=True)


# --------------------------------------------------------------------------- degenerate charts


def spike_sentences(samples: Mapping[str, np.ndarray], what: str = "class") -> dict[str, str]:
    """For each sample whose every path has the same value (a histogram that is a single
    spike), the sentence shown instead: "no path loses on class A" when that value is 0."""
    out = {}
    for name, x in samples.items():
        a = np.asarray(x, dtype=np.float64)
        if a.size and np.all(a == a.flat[0]):
            v = float(a.flat[0])
            out[name] = (f"No path loses on {what} {name} ({a.size:,} paths, every loss 0)."
                         if v == 0.0 else
                         f"Every path loses the same on {what} {name}: {v:.4%} of its "
                         f"balance ({a.size:,} paths).")
    return out


def fan_is_flat(fan: pd.DataFrame) -> bool:
    """True when every quantile and the mean of a fan are 0 on every date."""
    cols = [c for c in ("p5", "p25", "p50", "p75", "p95", "mean") if c in fan]
    return all_zero(fan[cols].to_numpy()) if cols else True


def all_zero(values: pd.Series | np.ndarray) -> bool:
    """True when there is no non-zero finite value (an empty series counts as all zero)."""
    a = pd.to_numeric(pd.Series(np.asarray(values).ravel()), errors="coerce").to_numpy(float)
    a = a[np.isfinite(a)]
    return not np.any(a != 0.0)
