"""Tables into XLSX sheets a person can use: one place for every workbook riskpool writes
(``riskpool ... --out FILE.xlsx`` and the scheduled report).

:func:`write_table` writes a DataFrame onto a worksheet (xlsxwriter) with

- the header row bold, frozen, with an **autofilter** over the table;
- **real dates**: date and datetime columns, and text columns holding ISO dates
  (``2026-06-30``), are Excel dates formatted ``yyyy-mm-dd``;
- **percent** formats for shares and rates: a float column whose name says it is one (a word
  such as ``share``, ``pct``, ``rate``, ``apr``, ``pd``, ``lgd``, ``lgl``, ``cdr``, ``cpr``,
  ``coupon``, ``yield``, ``p``, ``ratio``, ``level`` — a VaR level —, a column of zeros
  included) and whose values all lie in [-1.5, 1.5] (percent points are not shares) shows
  ``0.00%`` (``0.0000%`` when a non-zero value is below 0.1%); the cell keeps the decimal
  (0.0219 shows 2.19%). ``el``, ``var``, ``es`` and ``loss`` name a share in one table and
  an amount in another (an EL in CNY): such a column is a share when a value is non-zero and
  within the bounds;
- amounts (other floats of magnitude ≥ 100) ``#,##0.00``; integers ``#,##0`` (ids, seeds,
  months and positions plain); other floats as Excel's General (every digit shown);
- empty cells for None/NaN (never the text "None"); text stays text (see
  :data:`TEXT_AS_TEXT`);
- **column widths** from the header and the values (CJK characters count twice), 8 to 60;
- **human headers**: each column's label with its unit from ``dashboards.labels`` (``el`` of
  shares → "EL, % of balance", ``balance`` → "Balance, CNY"); ``labels.internal_name`` reads
  a header back to the column name.

:func:`write_glossary` adds the "Glossary" sheet: every abbreviation the headers use (WAL, CE,
EL, VaR, …), one plain line each (``dashboards.labels.GLOSSARY``). Every workbook riskpool
writes has one.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import re
import unicodedata
from typing import Any

import numpy as np
import pandas as pd
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

from dashboards import labels

__all__ = ["GLOSSARY_SHEET", "TEXT_AS_TEXT", "column_kind", "display_width", "header",
           "read_tables", "tape_xlsx", "write_glossary", "write_table"]

# Text cells stay text: a value such as '=HYPERLINK(...)' (or anything starting with = + - @)
# is never written as a live formula, and no string becomes a number or a link.
TEXT_AS_TEXT = {"strings_to_formulas": False, "strings_to_numbers": False,
                "strings_to_urls": False}

# A float column whose name has one of these words is a share or a rate, whatever its values
# (a partner's 30+ DPD ratio of 0 on every row is 0.00%, not 0); percent points (an APR column
# of 18.0, 24.0) are not shares: a value beyond [-1.5, 1.5] makes the column a number.
SHARE_WORDS = frozenset({
    "share", "shares", "pct", "percent", "rate", "rates", "apr", "pd", "lgd", "cdr", "cpr",
    "smm", "mdr", "mpr", "coupon", "yield", "irr", "ce", "oc", "p", "ratio", "breach", "cnl",
    "hhi", "lgl", "level",
})
# Words that name a share in one table and an amount in another (a class's EL as a share of
# its balance; a party's EL in CNY): such a column is a share when a value is non-zero and
# within [-1.5, 1.5], or when the table declares it one (``column_kind``'s ``share``).
SHARE_OR_AMOUNT_WORDS = frozenset({"el", "loss", "var", "es"})
PERCENT_WORDS = SHARE_WORDS | SHARE_OR_AMOUNT_WORDS
PLAIN_INT_WORDS = frozenset({"id", "seed", "month", "months", "year", "position", "level",
                             "term", "mob", "dpd", "score", "batch", "row", "path", "run",
                             "pool", "allocation"})
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MIN_WIDTH, MAX_WIDTH = 8, 60
GLOSSARY_SHEET = "Glossary"


def _words(name: str) -> set[str]:
    return {w for w in re.split(r"[^0-9a-z]+", str(name).lower()) if w}


def display_width(text: str) -> int:
    """Columns a text takes in a spreadsheet cell: wide (CJK) characters count twice."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def _iso_dates(series: pd.Series) -> pd.Series | None:
    """The column as dates if every non-blank value is a date, a timestamp or ISO date text."""
    values = series.dropna()
    if values.empty:
        return None
    if pd.api.types.is_datetime64_any_dtype(series):
        return series
    if not (series.dtype == object or pd.api.types.is_string_dtype(series)):
        return None
    ok = values.map(lambda v: isinstance(v, dt.date) or (isinstance(v, str)
                                                        and bool(_ISO_DATE.match(v)))).all()
    if not ok:
        return None
    try:
        return pd.to_datetime(series, format="mixed", errors="raise")
    except (ValueError, TypeError):
        return None


def column_kind(name: str, series: pd.Series, share: bool | None = None) -> str:
    """``date``, ``percent``, ``money``, ``integer``, ``plain_integer``, ``number``, ``bool``
    or ``text`` (module doc). A float column is ``percent`` by its name (:data:`SHARE_WORDS`:
    all-zero and all-missing columns too; :data:`SHARE_OR_AMOUNT_WORDS`: when a value is
    non-zero) unless a value lies beyond [-1.5, 1.5]. ``share``: the table says whether the
    column is a share, whatever its name and values — True for a roll-rate matrix's ``M1``
    column or a risk weight of 12.5 (1250%), False for a PD multiplier of 1.5."""
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if _iso_dates(series) is not None:
        return "date"
    words = _words(name)
    if pd.api.types.is_integer_dtype(series):
        return "plain_integer" if words & PLAIN_INT_WORDS else "integer"
    if pd.api.types.is_float_dtype(series):
        if share:
            return "percent"
        if share is False:
            words = set()
        finite = series[np.isfinite(series.to_numpy(dtype=np.float64, na_value=np.nan))]
        biggest = float(finite.abs().max()) if not finite.empty else 0.0
        if biggest <= 1.5 and (words & SHARE_WORDS
                               or (words & SHARE_OR_AMOUNT_WORDS and biggest > 0)):
            return "percent"
        return "money" if biggest >= 100 else "number"
    return "text"


def _cell(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        return _cell(value.item())
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def _shown(value: Any, kind: str) -> str:
    """Roughly what the cell shows (for the column width)."""
    if value is None:
        return ""
    if kind == "percent":
        return f"{value * 100:.4f}%"
    if kind in ("money", "integer") and isinstance(value, int | float):
        return f"{value:,.2f}"
    if kind == "date":
        return "2026-06-30"
    return str(value)


def header(name: str, series: pd.Series) -> str:
    """The human header of a column (``dashboards.labels.label`` with the column's kind)."""
    return labels.label(str(name), column_kind(str(name), series))


def write_table(wb: Workbook, ws: Worksheet, frame: pd.DataFrame, *, first_row: int = 0,
                header_format: Any = None) -> list[str]:
    """``frame`` onto ``ws`` from ``first_row`` (module doc); returns the headers written."""
    head = header_format or wb.add_format({"bold": True, "bg_color": "#DDE3F0", "border": 1,
                                           "text_wrap": True, "valign": "top"})
    formats = {
        "date": wb.add_format({"num_format": "yyyy-mm-dd"}),
        "percent": wb.add_format({"num_format": "0.00%"}),
        "percent_small": wb.add_format({"num_format": "0.0000%"}),
        "money": wb.add_format({"num_format": "#,##0.00"}),
        "integer": wb.add_format({"num_format": "#,##0"}),
        "plain_integer": wb.add_format({"num_format": "0"}),
    }
    n_rows = len(frame)
    written: list[str] = []
    for j, col in enumerate(frame.columns):
        series = frame[col]
        kind = column_kind(str(col), series)
        fmt = formats.get(kind)
        if kind == "percent":
            finite = series[np.isfinite(series.to_numpy(dtype=np.float64, na_value=np.nan))]
            nonzero = finite[finite != 0].abs()
            if not nonzero.empty and float(nonzero.min()) < 0.001:
                fmt = formats["percent_small"]
        title = labels.label(str(col), kind)
        if title in written:  # two columns would read the same: keep the column name
            title = str(col)
        written.append(title)
        ws.write(first_row, j, title, head)
        dates = _iso_dates(series) if kind == "date" else None
        values = (series if dates is None else dates).tolist()
        width = display_width(title)
        for i, raw in enumerate(values, start=first_row + 1):
            value = _cell(raw)
            if value is None:
                ws.write_blank(i, j, None, fmt)
            elif kind == "date" and isinstance(value, dt.date):
                stamp = value if isinstance(value, dt.datetime) else dt.datetime.combine(
                    value, dt.time())
                ws.write_datetime(i, j, stamp, fmt)
            elif kind == "bool":
                ws.write_boolean(i, j, bool(value))
            elif isinstance(value, str):
                ws.write_string(i, j, value, fmt)
            else:
                ws.write(i, j, value, fmt)
            if i - first_row <= 500:
                width = max(width, display_width(_shown(value, kind)))
        ws.set_column(j, j, max(MIN_WIDTH, min(MAX_WIDTH, width + 2)))
    if len(frame.columns):
        ws.autofilter(first_row, 0, first_row + n_rows, len(frame.columns) - 1)
    ws.freeze_panes(first_row + 1, 0)
    return written


def tape_xlsx(tape: pd.DataFrame, sheet: str = "tape") -> bytes:
    """A partner tape (``partners.records.partner_tape_table``: balances already rounded to
    the cent) as a workbook: the tape's sheet (:func:`write_table`: real dates, balances
    ``#,##0.00``, shares as %, human headers) and the glossary."""
    buf = io.BytesIO()
    wb = Workbook(buf, {"in_memory": True, "nan_inf_to_errors": True, **TEXT_AS_TEXT})
    try:
        headers = write_table(wb, wb.add_worksheet(sheet), tape.reset_index(drop=True))
        write_glossary(wb, headers)
    finally:
        wb.close()
    return buf.getvalue()


def read_tables(path: Any, sheet_name: str | None = None,
                **kwargs: Any) -> dict[str, pd.DataFrame] | pd.DataFrame:
    """A workbook riskpool wrote, read back with the internal column names
    (``pandas.read_excel``, which needs openpyxl): one sheet's table, or every table sheet by
    name (``sheet_name=None``; the glossary left out)."""
    if sheet_name is not None:
        frame = pd.read_excel(path, sheet_name=sheet_name, **kwargs)
        return frame.rename(columns=lambda c: labels.internal_name(str(c)))
    sheets = pd.read_excel(path, sheet_name=None, **kwargs)
    return {name: frame.rename(columns=lambda c: labels.internal_name(str(c)))
            for name, frame in sheets.items() if name != GLOSSARY_SHEET}


def write_glossary(wb: Workbook, headers: list[str], name: str = GLOSSARY_SHEET,
                   header_format: Any = None) -> Worksheet:
    """A sheet defining every glossary term the ``headers`` use (all terms when none is
    used: the sheet is in every workbook), one line each."""
    head = header_format or wb.add_format({"bold": True, "bg_color": "#DDE3F0", "border": 1})
    terms = labels.glossary_terms(headers) or list(labels.GLOSSARY)
    ws = wb.add_worksheet(name)
    ws.write(0, 0, "Term", head)
    ws.write(0, 1, "Definition", head)
    for i, term in enumerate(terms, start=1):
        ws.write_string(i, 0, term)
        ws.write_string(i, 1, labels.GLOSSARY[term])
    ws.set_column(0, 0, 10)
    ws.set_column(1, 1, 100)
    ws.freeze_panes(1, 0)
    return ws
