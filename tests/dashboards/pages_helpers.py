"""Helpers for the AppTest page tests: run a page as a user, collect everything it shows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from dashboards.auth import Viewer

PAGES_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "views"
APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
PARTNER = "bank_east"  # the demo partner of the fixture book
OTHER_PARTNER = "bank_north"
PAGES = ("book", "pools", "simulation", "scenarios", "tranches", "partners", "dispersion",
         "reports")


def page(name: str, role: str, query: dict[str, str] | None = None,
         widgets: dict[str, object] | None = None) -> AppTest:
    """Run ``dashboards/views/<name>_page.py`` logged in with ``role``."""
    at = AppTest.from_file(str(PAGES_DIR / f"{name}_page.py"), default_timeout=120)
    at.session_state["viewer"] = Viewer("tester", role)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    for key, value in (widgets or {}).items():
        at.selectbox(key=key).set_value(value)
        at.run()
    return at


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def metric(at: AppTest, label: str) -> str:
    for m in at.metric:
        if m.label == label:
            return str(m.value)
    raise AssertionError(f"no metric {label!r}; have {[m.label for m in at.metric]}")


def metric_help(at: AppTest, label: str) -> str:
    """The tooltip of the metric labelled ``label`` (``st.metric``'s ``help``)."""
    for m in at.metric:
        if m.label == label:
            return str(m.proto.help)
    raise AssertionError(f"no metric {label!r}; have {[m.label for m in at.metric]}")


def frame_with(at: AppTest, column: str) -> pd.DataFrame:
    for d in at.dataframe:
        value = d.value
        if isinstance(value, pd.DataFrame) and column in value.columns:
            return value
    raise AssertionError(f"no dataframe with column {column!r}")


def all_text(at: AppTest) -> str:
    """Every string the page shows: text elements, metrics, tables, widget labels/options."""
    parts: list[str] = []
    for group in (at.title, at.subheader, at.markdown, at.caption, at.info, at.warning,
                  at.success, at.error, at.text):
        parts += [str(e.value) for e in group]
    parts += [f"{m.label} {m.value} {m.proto.help}" for m in at.metric]  # help: the exact amount
    for d in at.dataframe:
        value = d.value
        frame = value.data if hasattr(value, "data") else value
        if isinstance(frame, pd.DataFrame):
            parts.append(frame.to_csv(index=False))
    for sb in at.selectbox:
        parts += [sb.label, *[str(o) for o in sb.options]]
    parts += [b.label for b in at.get("download_button")]
    return "\n".join(parts)


def charts(at: AppTest) -> list[tuple[dict, dict[str, pd.DataFrame]]]:
    """Every Vega-Lite chart on the page: its spec (parsed JSON) and its named datasets (the
    data the page passed, as the browser receives them)."""
    import json

    import pyarrow as pa

    out = []
    for el in at.get("arrow_vega_lite_chart") + at.get("vega_lite_chart"):
        proto = el.proto
        data = {d.name: pa.ipc.open_stream(d.data.data).read_pandas() for d in proto.datasets}
        if proto.data.data:
            data[""] = pa.ipc.open_stream(proto.data.data).read_pandas()
        out.append((json.loads(proto.spec), data))
    return out


def chart_colours(spec: dict) -> dict[str, str]:
    """name -> colour of every colour scale with an explicit domain and range in ``spec``."""
    found: dict[str, str] = {}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            scale = node.get("scale") if "field" in node else None
            if isinstance(scale, dict) and "domain" in scale and "range" in scale:
                found.update(zip(map(str, scale["domain"]), scale["range"], strict=False))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    return found


def assert_tranches_shown(shown: pd.DataFrame, expected: pd.DataFrame,
                          columns: tuple[str, ...]) -> None:
    """The Tranches page's table ``shown`` (with its total row, or its class rows alone)
    holds the library's tranche table ``expected`` as the page shows it: with the notes'
    total row (``tranching.analytics.with_class_total``), a column with a gap as the text
    ``dashboards.ui.with_missing_shown`` writes (exactly), every other column the library's
    numbers (to 1e-12)."""
    import numpy as np

    from dashboards.ui import with_missing_shown
    from tranching.analytics import with_class_total

    want = with_missing_shown(with_class_total(expected)).reset_index(drop=True)
    got = shown.reset_index(drop=True)
    want = want.iloc[:len(got)]
    assert list(got["tranche"]) == list(want["tranche"])
    for col in columns:
        if pd.api.types.is_numeric_dtype(got[col]) and pd.api.types.is_numeric_dtype(want[col]):
            np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float),
                                       rtol=1e-12, equal_nan=True, err_msg=col)
        else:
            assert list(got[col].astype(str)) == list(want[col].astype(str)), col
