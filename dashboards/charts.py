"""Charts shared by the dashboard pages and the reports (matplotlib, Agg backend).

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

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import noto_cjk_sans_otc  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

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
