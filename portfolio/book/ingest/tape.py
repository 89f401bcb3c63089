"""What a tape is: its kinds, the columns of each kind, one problem found on a row, and a
tape as read (``RawTape``) and as checked (``CheckedTape``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import pyarrow as pa

from portfolio.errors import ValidationError, must_be


class TapeKind(StrEnum):
    LOANS = "loans"
    PERFORMANCE = "performance"


def tape_kind(value: TapeKind | str) -> TapeKind:
    """``value`` as a ``TapeKind``; any other value is a ``ValidationError`` naming ``kind``
    (the enum's own ValueError is not a ``RiskpoolError``)."""
    try:
        return TapeKind(value)
    except ValueError:
        raise ValidationError(must_be("kind", "one of " + ", ".join(repr(k.value) for k in
                                                                      TapeKind), value)) from None


LOAN_REQUIRED: tuple[str, ...] = (
    "loan_id",
    "borrower_id",
    "origination_date",
    "principal",
    "apr",
    "term_months",
    "repayment_type",
    "credit_score",
)
LOAN_OPTIONAL: tuple[str, ...] = ("region", "channel", "product", "disclosed_apr")
LOAN_TEXT_OPTIONAL: tuple[str, ...] = ("region", "channel", "product")
PERFORMANCE_REQUIRED: tuple[str, ...] = (
    "loan_id",
    "as_of",
    "months_on_book",
    "balance",
    "dpd",
    "status",
)
PERFORMANCE_OPTIONAL: tuple[str, ...] = (
    "paid_principal",
    "paid_interest",
    "prepaid_principal",
    "charge_off",
    "recovery",
)
COLUMNS = {
    TapeKind.LOANS: (LOAN_REQUIRED, LOAN_OPTIONAL),
    TapeKind.PERFORMANCE: (PERFORMANCE_REQUIRED, PERFORMANCE_OPTIONAL),
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule on one row. ``row`` follows the package's row convention
    (``portfolio.book.ingest``)."""

    row: int
    column: str | None
    rule: str
    value: str | None
    message: str


@dataclass(frozen=True, slots=True)
class RawTape:
    """A tape as read: the known columns (text for CSV, native types for Parquet).

    ``rows[i]`` is the 1-based data row of ``table`` row ``i``; rows that could not be
    parsed into the table (wrong field count) are already in ``problems``.
    """

    source: Path
    file_format: str  # "csv" | "parquet"
    encoding: str | None
    sha256: str
    table: pa.Table
    rows: np.ndarray  # int64, shape (table.num_rows,)
    n_rows: int
    problems: tuple[Problem, ...]
    raw_lines: dict[int, str]  # row -> raw text of the rows in ``problems``
    notes: tuple[str, ...]
    # the file line each record starts on (record 0: the header) when a quoted value holds a
    # line break; None: row N is line N + 1
    lines: np.ndarray | None = None

    def line(self, row: int) -> int:
        """The CSV file line on which data row ``row`` starts."""
        if self.lines is not None and row < len(self.lines):
            return int(self.lines[row])
        return row + 1

    def where(self, row: int) -> str:
        return f"row {row} (line {self.line(row)})" if self.file_format == "csv" else f"row {row}"


@dataclass(frozen=True, slots=True)
class CheckedTape:
    """A validated tape: the typed good rows (with ``_row``) and every problem found."""

    raw: RawTape
    kind: TapeKind
    good: pa.Table
    problems: tuple[Problem, ...]
