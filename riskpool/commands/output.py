"""Show result tables on screen and write them with ``--out FILE`` (shared by commands).

``emit(frames, out)`` prints every table (a title line, then an aligned table) and, when
``out`` is given, writes them by the file's extension:

- ``.xlsx`` — one workbook, one sheet per table (sheet = table name, cut to 31 characters),
  formatted by ``dashboards.xlsx.write_table`` (real dates, % formats for shares and rates,
  autofilter, frozen header, column widths, empty cells for missing values; human headers
  with units, "EL, % of balance"), and a "Glossary" sheet defining the headers' terms;
- ``.csv`` / ``.parquet`` — one table: exactly ``out``; several tables: one file per table
  named ``<stem>_<table><suffix>`` beside ``out`` (characters other than letters, digits,
  ``_``, ``.``, ``-`` in the table name become ``_``; a clash gets ``_2``, ``_3``, …) (``book.csv`` → ``book_summary.csv``,
  ``book_anchors.csv``, …).

Any other extension is refused before anything is computed or written
(``check_out_path``). Files are written to a temporary name and renamed into place.
Column labels are written as strings; date columns stay dates (CSV: ``YYYY-MM-DD``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import typer
import xlsxwriter

from dashboards.xlsx import GLOSSARY_SHEET, TEXT_AS_TEXT, write_glossary, write_table
from portfolio.errors import ValidationError, must_be

OUT_SUFFIXES: tuple[str, ...] = (".csv", ".parquet", ".xlsx")
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")
_FILE_BAD = re.compile(r"[^\w.-]")


def check_out_path(out: Path | None) -> None:
    """Refuse an ``--out`` whose extension is not .csv, .parquet or .xlsx."""
    if out is None:
        return
    if out.suffix.lower() not in OUT_SUFFIXES:
        raise ValidationError(
            must_be("--out", "a file name ending in .csv, .parquet or .xlsx", str(out))
        )
    if out.exists() and out.is_dir():
        raise ValidationError(must_be("--out", "a file, not a directory", str(out)))


def out_paths(names: list[str], out: Path) -> dict[str, Path]:
    """Where each table goes for ``out`` (see the module doc); xlsx: all in ``out``."""
    if out.suffix.lower() == ".xlsx" or len(names) == 1:
        return {name: out for name in names}
    paths: dict[str, Path] = {}
    used: set[str] = set()
    for name in names:
        stem = base = f"{out.stem}_{_FILE_BAD.sub('_', name)}"
        k = 1
        while stem.lower() in used:  # distinct even on a case-insensitive file system
            k += 1
            stem = f"{base}_{k}"
        used.add(stem.lower())
        paths[name] = out.with_name(stem + out.suffix)
    return paths


def _formatters(frame: pd.DataFrame) -> dict[str, object]:
    formats: dict[str, object] = {}
    for col in frame.columns:
        series = frame[col]
        if pd.api.types.is_bool_dtype(series):
            continue
        if pd.api.types.is_integer_dtype(series):
            formats[col] = "{:,}".format
        elif pd.api.types.is_float_dtype(series):
            finite = series[np.isfinite(series)]
            ratio_like = finite.empty or float(finite.abs().max()) <= 1.0
            formats[col] = fixed("{:.4f}") if ratio_like else fixed("{:,.2f}")
    return formats


def fixed(spec: str) -> Callable[[float], str]:
    """``spec.format`` of a number, except that a value which rounds to zero is shown without
    a sign: a residual IRR of −3e-9 or a loss of −0.001 CNY prints as ``0.0000`` / ``0.00``,
    not ``-0.0000`` / ``-0.00`` (nor ``+0.00`` with a ``+`` spec; the data keep the value, only
    the text drops the sign). The tables ``render`` writes and the commands' money and share
    helpers (``simulation``, ``partners``, ``scenarios``) use it."""
    def fmt(value: float) -> str:
        text = spec.format(value)
        if text[:1] in "-+" and not any(ch in "123456789" for ch in text):
            return text[1:]
        return text
    return fmt


def render(frames: dict[str, pd.DataFrame], title: str | None = None) -> str:
    """The tables as aligned text, each under its name (NaN shown as ``-``)."""
    parts = [title] if title else []
    for name, frame in frames.items():
        shown = frame.copy()
        shown.columns = [str(c) for c in shown.columns]
        body = (
            "(no rows)"
            if shown.empty
            else shown.to_string(index=False, na_rep="-", formatters=_formatters(shown))
        )
        parts.append(f"== {name}\n{body}")
    return "\n\n".join(parts)


def _for_file(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.reset_index(drop=True).copy()
    out.columns = [str(c) for c in out.columns]
    return out


def write_tables(frames: dict[str, pd.DataFrame], out: Path) -> list[Path]:
    """Write ``frames`` to ``out`` by extension; returns the files written."""
    check_out_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    targets = out_paths(list(frames), out)
    if suffix == ".xlsx":
        tmp = out.with_name(f".{out.name}.tmp")
        used: set[str] = {GLOSSARY_SHEET.lower()}
        headers: list[str] = []
        # text cells stay text: no formula (= + - @), number or link made from a string
        wb = xlsxwriter.Workbook(str(tmp), {"nan_inf_to_errors": True, **TEXT_AS_TEXT})
        try:
            for name, frame in frames.items():
                sheet = _SHEET_BAD.sub("_", name)[:31] or "table"
                base, k = sheet, 1
                while sheet.lower() in used:
                    k += 1
                    sheet = f"{base[: 31 - len(str(k)) - 1]}_{k}"
                used.add(sheet.lower())
                headers += write_table(wb, wb.add_worksheet(sheet), _for_file(frame))
            write_glossary(wb, headers)
        finally:
            wb.close()
        os.replace(tmp, out)
        return [out]
    written: list[Path] = []
    for name, frame in frames.items():
        target = targets[name]
        tmp = target.with_name(f".{target.name}.tmp")
        data = _for_file(frame)
        if suffix == ".csv":
            data.to_csv(tmp, index=False)
        else:
            data.to_parquet(tmp, index=False)
        os.replace(tmp, target)
        written.append(target)
    return written


def emit(
    frames: dict[str, pd.DataFrame], out: Path | None, *, title: str | None = None
) -> list[Path]:
    """Print the tables; with ``out``, also write them (see the module doc)."""
    check_out_path(out)
    typer.echo(render(frames, title))
    if out is None:
        return []
    written = write_tables(frames, out)
    for path in written:
        typer.echo(f"wrote {path}")
    return written
