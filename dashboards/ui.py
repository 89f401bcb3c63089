"""Streamlit glue shared by the pages: who is logged in, which database, cached reads.

Cached functions take every input as an argument (database path, its version, the viewer's
role) — no globals are read inside them — so a result is cached per run id and per scope,
and a partner can never be served a treasury result from the cache. ``st.cache_data`` (not
``cache_resource``) because the results are DataFrames that must not be shared mutably.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

from dashboards import access, labels
from dashboards.auth import Viewer
from dashboards.xlsx import column_kind, tape_xlsx
from partners.records import tape_csv
from portfolio import settings
from portfolio.errors import RiskpoolError

T = TypeVar("T")


def db_path() -> str:
    """The database the dashboard shows (``riskpool dashboard --db``; see portfolio.settings)."""
    return str(settings.db_path())


def users_path() -> Path:
    return settings.users_path(db_path())


def viewer() -> Viewer:
    v = st.session_state.get("viewer")
    if not isinstance(v, Viewer):
        st.info("Please log in.")
        st.stop()
    return v


def guard(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a data function; show a clear message (no traceback) and stop on a known error."""
    try:
        return fn(*args, **kwargs)
    except access.DataUpdating as exc:
        st.warning(str(exc), icon=":material/hourglass_top:")
    except access.AccessDenied as exc:
        st.warning(str(exc), icon=":material/lock:")
    except RiskpoolError as exc:
        st.error(str(exc))
    st.stop()
    raise AssertionError("unreachable")


def version() -> str:
    return access.db_version(db_path())


def _v(role: str, username: str) -> Viewer:
    return Viewer(username, role)


@st.cache_data(show_spinner=False, max_entries=32)
def book_head(db: str, ver: str, username: str, role: str,
              as_of: dt.date | None) -> access.BookHead:
    return access.book_head(db, _v(role, username), as_of)


@st.cache_data(show_spinner=False, max_entries=32)
def book_detail(db: str, ver: str, username: str, role: str,
                as_of: dt.date) -> access.BookDetail:
    return access.book_detail(db, _v(role, username), as_of)


@st.cache_data(show_spinner=False, max_entries=32)
def pools(db: str, ver: str, username: str, role: str) -> Any:
    return access.pools(db, _v(role, username))


@st.cache_data(show_spinner=False, max_entries=64)
def pool_strats(db: str, ver: str, username: str, role: str, pool_id: int) -> Any:
    return access.pool_strats(db, _v(role, username), pool_id)


@st.cache_data(show_spinner=False, max_entries=64)
def preview_pool(db: str, ver: str, username: str, role: str, criteria: dict[str, Any],
                 cutoff: dt.date) -> access.PoolPreview:
    return access.preview_pool(db, _v(role, username), criteria, cutoff)


@st.cache_data(show_spinner=False, max_entries=64)
def saved_pool_preview(db: str, ver: str, username: str, role: str, criteria: dict[str, Any],
                       cutoff: dt.date) -> tuple[int, access.PoolPreview] | None:
    return access.saved_pool_preview(db, _v(role, username), criteria, cutoff)


@st.cache_data(show_spinner=False, max_entries=32)
def runs(db: str, ver: str, username: str, role: str) -> Any:
    return access.runs(db, _v(role, username))


@st.cache_data(show_spinner=False, max_entries=32)
def run_view(db: str, ver: str, username: str, role: str, run_id: int) -> access.RunView:
    return access.run_view(db, _v(role, username), run_id)


@st.cache_data(show_spinner=False, max_entries=16)
def compare(db: str, ver: str, username: str, role: str, run_a: int,
            run_b: int) -> access.CompareView:
    return access.compare(db, _v(role, username), run_a, run_b)


@st.cache_data(show_spinner=False, max_entries=32)
def tranches(db: str, ver: str, username: str, role: str, run_id: int, deal_toml: str,
             discount: float, rating_toml: str | None = None) -> access.TrancheView:
    return access.tranches(db, _v(role, username), run_id, deal_toml, discount, rating_toml)


@st.cache_data(show_spinner=False, max_entries=32)
def stored_deal(db: str, ver: str, username: str, role: str, run_id: int) -> str | None:
    return access.stored_deal_toml(db, _v(role, username), run_id)


@st.cache_data(show_spinner=False, max_entries=32)
def allocations(db: str, ver: str, username: str, role: str) -> Any:
    return access.allocations(db, _v(role, username))


@st.cache_data(show_spinner=False, max_entries=32)
def allocation(db: str, ver: str, username: str, role: str,
               allocation_id: int) -> access.AllocationView:
    return access.allocation(db, _v(role, username), allocation_id)


@st.cache_data(show_spinner=False, max_entries=16)
def partner_tape_csv(db: str, ver: str, username: str, role: str, allocation_id: int,
                     party_id: str) -> bytes:
    tape = access.partner_tape(db, _v(role, username), allocation_id, party_id)
    return tape_csv(tape)


@st.cache_data(show_spinner=False, max_entries=16)
def partner_tape_xlsx(db: str, ver: str, username: str, role: str, allocation_id: int,
                      party_id: str) -> bytes:
    """The same tape as the CSV (masked ids, cents) as a workbook (``dashboards.xlsx``)."""
    tape = access.partner_tape(db, _v(role, username), allocation_id, party_id)
    return tape_xlsx(tape)


@st.cache_data(show_spinner=False, max_entries=32)
def dispersion(db: str, ver: str, username: str, role: str, run_id: int, allocation_id: int,
               deal_toml: str | None) -> access.DispersionView:
    return access.dispersion(db, _v(role, username), run_id, allocation_id, deal_toml)


@st.cache_data(show_spinner=False, max_entries=8)
def report_history(db: str, ver: str, username: str, role: str) -> Any:
    return access.report_history(db, _v(role, username))


@st.cache_data(show_spinner=False, max_entries=8)
def scenario_sets(db: str, ver: str, username: str, role: str) -> Any:
    return access.scenario_sets(db, _v(role, username))


@st.cache_data(show_spinner=False, max_entries=16)
def scenario_set(db: str, ver: str, username: str, role: str, set_id: int) -> Any:
    return access.scenario_set(db, _v(role, username), set_id)


def args(v: Viewer) -> tuple[str, str, str, str]:
    """(db, version, username, role) — the leading arguments of every cached read."""
    return db_path(), version(), v.username, v.role


def query_int(name: str) -> int | None:
    raw = st.query_params.get(name)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def url_select(label: str, options: list[Any], param: str, *, key: str, container: Any = None,
               default: int | None = None, **kwargs: Any) -> Any:
    """A selectbox whose choice lives in the URL as ``?<param>=<value>``: it starts at the
    value in the URL (a deep link, a reload), else at option ``default`` (the last if None),
    and writes the choice back, so the address bar always names the page's state."""
    target = container if container is not None else st
    shown = [str(o) for o in options]
    wanted = st.query_params.get(param)
    index = (shown.index(wanted) if wanted in shown
             else default if default is not None else max(len(options) - 1, 0))
    choice = target.selectbox(label, options, index=index, key=key, **kwargs)
    if choice is not None:
        st.query_params[param] = str(choice)
    return choice


def pick(options: list[Any], preferred: Any) -> int:
    """Index of ``preferred`` in ``options`` (the last option if it is not there)."""
    return options.index(preferred) if preferred in options else max(len(options) - 1, 0)


def pct(x: float) -> str:
    return f"{x * 100:.2f}%"


def money(x: float) -> str:
    return f"{x:,.0f}"


def money_short(x: float) -> str:
    """An amount (CNY) as a metric shows it, short enough for a narrow column: from a million
    in millions ("495.06 m") or billions ("1.23 bn") to two decimals, below to the yuan with
    separators ("3,589")."""
    for scale, unit in ((1e9, "bn"), (1e6, "m")):
        if round(abs(x) / scale, 2) >= 1:
            return f"{x / scale:,.2f} {unit}"
    return money(x)


def money_metric(label: str, amount: float, container: Any = None) -> None:
    """``st.metric`` of an amount (CNY): :func:`money_short`, the exact amount to the cent in
    the metric's tooltip (``help``)."""
    target = container if container is not None else st
    target.metric(label, money_short(amount), help=f"{amount:,.2f} CNY")


def progress_callback(bar: Any, text: str = "simulating…") -> Callable[[float], None]:
    """A progress function for library code that reports from worker threads: each call
    attaches this script run's context to the calling thread, so the bar updates — and a
    click on another widget (Cancel) stops the run at the next update."""
    ctx = get_script_run_ctx()

    def update(fraction: float) -> None:
        add_script_run_ctx(threading.current_thread(), ctx)
        bar.progress(min(max(fraction, 0.0), 1.0), text=f"{text} {fraction:.0%}")

    return update


MISSING = "—"  # how a table shows a value that does not exist (not "None")

# How a table shows a number (display only: the cells keep the library's numbers). One rule
# for every float column of every page, written by :func:`number_text`:
# - shares and rates ("percent") to exactly two decimals: "13.00%", "100.00%", "0.00%", as
#   the metrics (:func:`pct`);
# - amounts ("amount": large, or headed CNY) to the cent with separators, "-5,643,951.14", as
#   the workbooks' #,##0.00;
# - other numbers (years, months, multiples, prices per 1 of face) to three decimals,
#   "1.351", "10.100";
# - a value that rounds to zero without a sign: "0.00", not the "-0.00" of a
#   reconciliation's float noise (-2e-14).
# The text is a pandas Styler's, which ``st.dataframe`` shows for a number column whose
# configuration has no format. (Streamlit's "percent" preset drops trailing zeros — 0.13
# reads "13%" beside "12.88%" — and its ``step`` truncates instead of rounding; "localized"
# drops them too, "7" beside "7.178"; a printf format cannot scale a fraction to a
# percentage and keeps the sign of a negative zero.) Counts (integers) with separators: the
# printf format COUNT_FORMAT, which Streamlit documents for ``NumberColumn``.
PERCENT_STYLE = "{:,.2%}"
AMOUNT_STYLE = "{:,.2f}"
NUMBER_STYLE = "{:,.3f}"
STYLES = {"percent": PERCENT_STYLE, "amount": AMOUNT_STYLE, "number": NUMBER_STYLE}
COUNT_FORMAT = "%,d"
# printf formats for a table too large to style (none of the pages' today): the same rule
# but for a negative zero, and shares as Streamlit's preset
AMOUNT_FORMAT = "%,.2f"
NUMBER_FORMAT = "%,.3f"
_UNSTYLED = {"percent": "percent", "amount": AMOUNT_FORMAT, "number": NUMBER_FORMAT}


def number_text(x: float, how: str) -> str:
    """``x`` as a table writes it: ``how`` is ``percent``, ``amount`` or ``number`` (see
    :data:`STYLES`); a value that rounds to zero has no minus sign."""
    text = STYLES[how].format(x)
    if text.startswith("-") and not any(c in "123456789" for c in text):
        return text[1:]
    return text


def _declared(name: Any, shares: Collection[Any], numbers: Collection[Any]) -> bool | None:
    """What a table's caller says of column ``name``: a share (True), not one (False), or
    nothing (None: its name and values decide, ``dashboards.xlsx.column_kind``)."""
    return True if name in shares else False if name in numbers else None


def float_column(name: Any, series: pd.Series, shares: Collection[Any] = (),
                 numbers: Collection[Any] = ()) -> tuple[str, str]:
    """How a float column's numbers read (``percent``, ``amount`` or ``number``:
    :func:`number_text`) and its header (``dashboards.labels``): a share by its name or by
    ``shares``, not one if in ``numbers`` (``dashboards.xlsx.column_kind``); an amount when
    large or headed CNY (a column of 0.00 in CNY too); any other number to three
    decimals."""
    kind = column_kind(str(name), series, share=_declared(name, shares, numbers))
    title = labels.label(str(name), kind)
    if kind == "percent":
        return "percent", title
    if kind == "money" or title.endswith(", CNY"):
        return "amount", title
    return "number", title


def with_missing_shown(frame: pd.DataFrame, shares: Collection[Any] = (),
                       numbers: Collection[Any] = ()) -> pd.DataFrame:
    """``frame`` as a table with gaps shows it: each float column holding a missing value
    becomes text — its numbers as the table writes them (:func:`number_text`) and each
    missing value :data:`MISSING` — and a missing value in a text column is :data:`MISSING`.
    Columns without a gap are unchanged (the library's numbers). ``shares`` and
    ``numbers``: columns that are, or are not, shares whatever their names say
    (:func:`float_column`)."""
    out = frame.copy()
    for col in frame.columns:
        series = frame[col]
        gaps = series.isna()
        if not gaps.any():
            continue
        if pd.api.types.is_float_dtype(series):
            how, _title = float_column(col, series, shares, numbers)
            out[col] = [MISSING if gap else number_text(float(x), how)
                        for x, gap in zip(series, gaps, strict=True)]
        elif not pd.api.types.is_numeric_dtype(series):
            out[col] = series.astype(object).where(~gaps, MISSING)
    return out


def with_units(frame: pd.DataFrame, units: Sequence[str],
               columns: Sequence[Any]) -> pd.DataFrame:
    """``frame`` with ``columns`` as text, each row's numbers in that row's unit (``units``,
    one a row): ``count`` or ``loans`` "3", ``CNY`` "300,000,000.00 CNY", ``share`` or
    ``apr`` "30.00%", another unit after the number ("2 months") — a column that mixes units
    (a rule check's value and limit, a breach's amount), which one format would misread; a
    gap is :data:`MISSING`."""
    out = frame.copy()

    def text(x: Any, unit: str) -> str:
        if x is None or pd.isna(x):
            return MISSING
        if unit in ("share", "apr"):
            return number_text(float(x), "percent")
        if unit == "CNY":
            return f"{number_text(float(x), 'amount')} CNY"
        if unit in ("count", "loans"):
            return f"{float(x):,.0f}"
        return f"{float(x):,.6g} {unit}"

    for col in columns:
        if col in out:
            out[col] = [text(x, u) for x, u in zip(frame[col], units, strict=True)]
    return out


def with_amounts_in_units(frame: pd.DataFrame) -> pd.DataFrame:
    """A table of rule breaches or loan-rule findings (``partners.types.Breach`` rows:
    ``amount`` and its ``unit``): each amount as text in its row's unit (:func:`with_units`:
    an R5 excess "121,000.00 CNY", an R8 APR gap "0.35%", an R6 term "3 months"), the unit
    column dropped, since the amount says it."""
    if "unit" not in frame or "amount" not in frame:
        return frame
    return with_units(frame, list(frame["unit"]), ["amount"]).drop(columns=["unit"])


def with_integers_typed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each object column that holds only integers (and gaps) as an integer
    column: a store's list of runs holds its path counts as Python ints in an object column,
    which the table took for text and showed without separators ("10000")."""
    out = frame
    for col in frame.columns:
        series = frame[col]
        if series.dtype == object and series.notna().any() and \
                pd.api.types.infer_dtype(series, skipna=True) == "integer":
            if out is frame:
                out = frame.copy()
            out[col] = series.astype("int64" if series.notna().all() else "Int64")
    return out


def table_display(frame: Any, show_missing: bool = False, shares: Collection[Any] = (),
                  numbers: Collection[Any] = ()) -> tuple[Any, dict[str, Any]]:
    """What :func:`table` passes to ``st.dataframe``: the data (a Styler writing every float
    column as :func:`number_text` and a gap as :data:`MISSING`) and the column
    configuration (headers, glossary tips, counts' separators). A column is a share by its
    name (``dashboards.xlsx.column_kind``, a column of zeros included) or because the
    table's caller says so in ``shares`` (names that say nothing of a unit: a roll-rate
    matrix's states; a class's EL, which is CNY in other tables); ``numbers``: columns named
    like shares that are not (a PD multiplier, "PD ×1.5")."""
    if isinstance(frame, pd.DataFrame):
        frame = with_integers_typed(frame)
    source = frame
    if show_missing and isinstance(frame, pd.DataFrame):  # a table with structural gaps
        frame = with_missing_shown(frame, shares, numbers)
    data = frame.data if hasattr(frame, "data") and not isinstance(frame, pd.DataFrame) \
        else frame
    config: dict[str, Any] = {}
    texts: dict[str, list[Any]] = {how: [] for how in STYLES}
    stamps: list[Any] = []
    styled = False
    if isinstance(data, pd.DataFrame):
        # Streamlit refuses to style more cells than pandas renders: such a table (none of
        # the pages' today) keeps printf formats and the "percent" preset
        styled = data.size <= int(pd.get_option("styler.render.max_elements"))
        for col in data.columns:
            series = data[col]
            original = source[col] if isinstance(source, pd.DataFrame) and source is not frame \
                else series
            if pd.api.types.is_float_dtype(original):
                how, title = float_column(col, original, shares, numbers)
                tip = labels.help_text(title)
                if pd.api.types.is_float_dtype(series):
                    if styled:
                        texts[how].append(col)
                    config[str(col)] = st.column_config.NumberColumn(
                        title, help=tip, format=None if styled else _UNSTYLED[how])
                else:  # numbers shown as text around their gaps (with_missing_shown)
                    config[str(col)] = st.column_config.TextColumn(title, help=tip,
                                                                   alignment="right")
                continue
            kind = column_kind(str(col), original, share=_declared(col, shares, numbers))
            title = labels.label(str(col), kind)
            tip = labels.help_text(title)
            if kind == "integer":  # counts (loans, paths); ids, seeds and months plain
                config[str(col)] = st.column_config.NumberColumn(title, help=tip,
                                                                 format=COUNT_FORMAT)
            else:
                if pd.api.types.is_datetime64_any_dtype(series):
                    stamps.append(col)
                config[str(col)] = st.column_config.Column(title, help=tip)
    if styled and (any(texts.values()) or not isinstance(frame, pd.DataFrame)):
        styler = frame if not isinstance(frame, pd.DataFrame) else frame.style
        # every cell's text as the grid writes it (a gap as MISSING, not "None" or "nan")
        styler = styler.format(na_rep=MISSING)
        for how, cols in texts.items():
            if cols:
                styler = styler.format(functools.partial(number_text, how=how), subset=cols,
                                       na_rep=MISSING)
        if stamps:  # to the second, as the grid writes a time of its own
            styler = styler.format("{:%Y-%m-%d %H:%M:%S}", subset=stamps, na_rep=MISSING)
        frame = styler
    return frame, config


def table(frame: Any, key: str | None = None, container: Any = None,
          show_missing: bool = False, shares: Collection[Any] = (),
          numbers: Collection[Any] = ()) -> None:
    """``st.dataframe`` without the index: the workbooks' human headers with units
    (``dashboards.labels``; a header's abbreviations explained in its tooltip from the
    glossary), shares as percentages to two decimals, amounts (CNY) to the cent and counts
    with thousands separators (display only: the data are the library's numbers unchanged,
    under their column names), a missing value as :data:`MISSING`. ``show_missing``: a table
    whose gaps are structural (a cash-flow tape: a fee has no balance) shows them as
    :data:`MISSING` (:func:`with_missing_shown`), not as "None". ``shares``: columns that
    are shares though their names do not say so; ``numbers``: columns named like shares
    that are not (:func:`table_display`)."""
    target = container if container is not None else st
    shown, config = table_display(frame, show_missing, shares, numbers)
    target.dataframe(shown, hide_index=True, column_config=config or None, key=key,
                     placeholder=MISSING)
