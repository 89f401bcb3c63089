"""Strict loan and performance tape ingestion (CSV or Parquet) into the book.

A tape is read whole, every rule is checked over whole columns at once (Arrow/numpy, no
per-row Python loop), and then — in one transaction — either

* refused whole (default): one bad row refuses the file, ``TapeRejected`` lists every bad
  row, and nothing at all is written (not even an ``ingest_batches`` row); or
* loaded partly (``allow_rejects=True``): the good rows go in, every problem of every bad
  row goes to ``ingest_rejects`` (row number, column, rule, value, message, raw row).

Every load that writes is recorded in ``ingest_batches`` (file, sha256, counts, times).

Conventions
-----------
* **Row numbers** are 1-based data rows: row 1 is the first line after the header, so for a
  CSV file row N is file line N + 1 (messages say both: "row 17 (line 18)"). A quoted value
  may hold a line break (RFC 4180); the message then names the line the row starts on, so
  the rows after it keep their true line numbers. A line longer than 1 MiB (a missing line
  break, a quote never closed) is refused naming the line. For Parquet, row N is the N-th row.
* **Encoding**: UTF-8 with or without BOM. Any other text needs ``--encoding`` (e.g. ``gbk``
  for Chinese text saved by Excel on a Chinese-locale Windows): non-UTF-8 bytes read as
  different text in GB18030, cp1252 and Latin-1 (Latin-1 "Zürich" is valid GBK, KOI8-R
  "Москва" is valid GB2312), so the file is refused with a message naming each encoding
  tried and what it reads in the first non-UTF-8 field — never guessed. UTF-16/32 text is
  refused with its own message; a binary file named .csv (NUL or control bytes, a ZIP/XLSX,
  PDF, image or database signature) is refused as binary.
* **Column mappings** (``--mapping FILE``, ``portfolio.book.ingest.mapping``): a tape whose
  headers, date formats, percent rates or status codes differ is read through a TOML mapping
  first; a value the mapping cannot read is a bad row (rule ``mapping``, naming the mapping
  field, the tape's column and the row).
* **Columns**: header names are matched exactly after trimming blanks. A missing required
  column refuses the file; unknown extra columns are ignored with a note.
* **Values** are never coerced: blank, NaN or non-numeric values in required fields, amounts
  with fractions of a cent, non-integer counts, and non-ISO dates are refused. Ids are
  stored literally (an id that looks like SQL is just text). Blank optional text
  (``region``, ``channel``, ``product``) and a blank ``disclosed_apr`` are stored as NULL. ``repayment_type`` may be the
  English name or the Chinese label; the English name is stored.
* **Reloads**: a file with the same sha256 and kind as an earlier batch is a reported
  no-op. A row whose key (``loan_id``; ``(loan_id, as_of)`` for performance) is already in
  the book with *identical* values is skipped as a duplicate (counted and noted: overlapping
  tapes are common); with *different* values it is a bad row (rule ``book_conflict``).
* **Empty lines** at the end of a CSV file are ignored with a note; an empty line inside
  the file is a bad row (rule ``empty_row``). A last line with fewer fields than the header
  is a bad row (rule ``truncated_last_line``); any other line with the wrong number of
  fields is rule ``field_count``.

Rules (the id in brackets appears in every message and in ``ingest_rejects.rule``)
-----------------------------------------------------------------------------
Any tape: ``required`` (blank/NaN in a required field), ``numeric``, ``integer``, ``cents``
(money in whole cents), ``iso_date`` (a real YYYY-MM-DD date), ``not_future``,
``field_count``, ``truncated_last_line``, ``empty_row``, ``book_conflict``.

Loan tape: ``R5_principal_cap`` (0 < principal <= 200,000), ``R9_apr_cap`` (0 <= apr <= cap,
default 0.24; "looks like a percent" hint above 1; and the loan's cash-flow APR, above the
stated rate for ``flat_fee``, <= cap), ``R8_apr_disclosure`` (the optional ``disclosed_apr``,
or the stated apr when it is blank or absent, equals the cash-flow APR within 0.0005; both
rates and the loan named), ``allowed_term`` (3, 6, 9, 12, 18, 24),
``R6_bullet_term`` (interest_only at most 12 months), ``score_range`` (350–950),
``repayment_type``, ``unique_loan_id`` (every occurrence of a repeated id is bad: which one
is right cannot be told), ``no_pii`` (a borrower_id shaped like a mobile number or an
ID-card number).

Performance tape: ``unknown_loan`` (not in the book), ``before_origination``,
``month_end`` (as_of is the last day of its month), ``non_negative`` (balance, amounts,
months_on_book, dpd), ``balance_above_principal``, ``status`` (current, delinquent, default,
prepaid, matured), ``status_dpd`` (current: dpd 0; delinquent: 1–90; default: > 90),
``unique_loan_month`` ((loan_id, as_of) once per file).

Test hooks (environment, read by ``portfolio.settings.ingest_pause``):
``RISKPOOL_TEST_PAUSE_AFTER_INSERT=SECONDS`` sleeps inside the
load transaction after the inserts and before COMMIT; ``RISKPOOL_TEST_PAUSE_MARKER=PATH`` is
created when that pause begins. They exist so a test can SIGKILL a load mid-transaction.

Modules
-------
``tape`` (the kinds, their columns, ``Problem``, ``RawTape``, ``CheckedTape``) →
``values`` (blank cells, numbers and dates out of Arrow columns) → ``mapping`` (a column
mapping file: headers renamed, dates, percents and codes converted; ``--mapping``) → ``reading`` (CSV or
Parquet, header, encodings, malformed lines, sha256) → ``checker`` (how a rule is checked and
reported) → ``rules`` (each kind's column rules) → ``book_checks`` (the rules against the
book) → ``load`` (``ingest``: reloads, the transaction, batches, rejects, the writes).
"""

from __future__ import annotations

from portfolio.book.ingest.load import IngestResult, ingest
from portfolio.book.ingest.mapping import TapeMapping, load_mapping
from portfolio.book.ingest.reading import read_tape, sha256_of
from portfolio.book.ingest.rules import check_loans, check_performance, check_tape
from portfolio.book.ingest.tape import (
    LOAN_OPTIONAL,
    LOAN_REQUIRED,
    PERFORMANCE_OPTIONAL,
    PERFORMANCE_REQUIRED,
    CheckedTape,
    Problem,
    RawTape,
    TapeKind,
)

__all__ = [
    "CheckedTape",
    "IngestResult",
    "LOAN_OPTIONAL",
    "LOAN_REQUIRED",
    "PERFORMANCE_OPTIONAL",
    "PERFORMANCE_REQUIRED",
    "Problem",
    "RawTape",
    "TapeKind",
    "TapeMapping",
    "check_loans",
    "check_performance",
    "check_tape",
    "ingest",
    "load_mapping",
    "read_tape",
    "sha256_of",
]
