"""The column rules of each kind of tape: types, ranges, allowed values and cross-field rules
(``check_loans``, ``check_performance``); the rules against the book are in
``book_checks``."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from portfolio.book.ingest.checker import (
    INT16_MAX,
    Checker,
    Picker,
    as_int16,
    key_codes,
    rule_message,
)
from portfolio.book.ingest.tape import (
    LOAN_TEXT_OPTIONAL,
    PERFORMANCE_OPTIONAL,
    CheckedTape,
    RawTape,
    TapeKind,
    tape_kind,
)
from portfolio.book.ingest.values import as_text, blank_mask, bool_mask, parse_float
from portfolio.errors import ValidationError, must_be
from portfolio.loans.schedules import product_apr
from portfolio.loans.types import (
    ALLOWED_TERMS,
    APR_CAP_DEFAULT,
    APR_DISCLOSURE_TOL,
    BULLET_MAX_TERM,
    DEFAULT_DPD,
    PRINCIPAL_MAX,
    SCORE_MAX,
    SCORE_MIN,
    LoanStatus,
    RepaymentType,
)

# A mainland mobile number (11 digits starting 13–19) or a resident ID-card number
# (17 digits and a check digit 0–9/X): never a pseudonymous id (the book holds no personal data).
_PII_PATTERN = r"^(1[3-9][0-9]{9}|[0-9]{17}[0-9Xx])$"


def check_loans(
    raw: RawTape, *, apr_cap: float = APR_CAP_DEFAULT, today: date | None = None
) -> CheckedTape:
    """Every loan-tape rule over whole columns; returns the typed good rows and all problems."""
    check_apr_cap(apr_cap)
    # The id hashing (the largest single step) runs on a second core beside the other rules.
    with ThreadPoolExecutor(max_workers=1) as pool:
        id_codes = pool.submit(key_codes, [as_text(raw.table["loan_id"])])
        return _check_loans(raw, apr_cap, today or date.today(), id_codes)


def _check_loans(
    raw: RawTape, apr_cap: float, today: date, id_codes: Future[np.ndarray]
) -> CheckedTape:
    ck = Checker(raw, today)
    c = ck.c
    loan_id, id_ok = ck.text("loan_id")
    borrower_id, bor_ok = ck.text("borrower_id")
    pii = bor_ok & _looks_like_pii(borrower_id)
    c.flag(
        pii,
        "borrower_id",
        "no_pii",
        borrower_id,
        rule_message("borrower_id", "a pseudonymous id, never a phone or ID-card number (no personal data)"),
    )

    orig, _ = ck.date("origination_date")
    principal, _ = ck.amount("principal", True, PRINCIPAL_MAX, "R5_principal_cap")

    apr, apr_ok = ck.number("apr")
    apr_bad = apr_ok & ((apr < 0) | (apr > apr_cap) | (apr > 1))

    def percent_hint(i: int) -> str:
        return f"; looks like a percent: use {apr[i] / 100:g}" if apr[i] > 1 else ""

    c.flag(
        apr_bad,
        "apr",
        "R9_apr_cap",
        raw.table["apr"],
        rule_message("apr", f"a decimal in [0, {apr_cap:g}] (0.18 means 18%)", percent_hint),
    )

    term, term_ok = ck.number("term_months", integer=True)
    term_bad = term_ok & ~np.isin(term, ALLOWED_TERMS)
    allowed_terms = "one of " + ", ".join(str(t) for t in ALLOWED_TERMS)
    c.flag(term_bad, "term_months", "allowed_term", raw.table["term_months"], rule_message("term_months", allowed_terms))
    term_ok &= ~term_bad

    score, score_ok = ck.number("credit_score", integer=True)
    score_bad = score_ok & ((score < SCORE_MIN) | (score > SCORE_MAX))
    c.flag(
        score_bad,
        "credit_score",
        "score_range",
        raw.table["credit_score"],
        rule_message("credit_score", f"in [{SCORE_MIN}, {SCORE_MAX}]"),
    )

    rtype_raw, rtype_present = ck.text("repayment_type")
    english, rtype_code, rtype_ok = _map_repayment(rtype_raw)
    allowed_types = "one of " + ", ".join(f"{t.value} ({t.label})" for t in RepaymentType)
    c.flag(
        rtype_present & ~rtype_ok,
        "repayment_type",
        "repayment_type",
        rtype_raw,
        rule_message("repayment_type", allowed_types),
    )
    bullet = (rtype_code == RepaymentType.INTEREST_ONLY.code) & term_ok
    c.flag(
        bullet & (term > BULLET_MAX_TERM),
        "term_months",
        "R6_bullet_term",
        raw.table["term_months"],
        rule_message("term_months", f"at most {BULLET_MAX_TERM} for interest_only (先息后本) loans"),
    )

    _check_cashflow_apr(ck, loan_id, apr, apr_ok & ~apr_bad & (apr <= 1), term, term_ok,
                        rtype_code, rtype_ok, apr_cap)
    disclosed = _disclosed_apr(ck)

    ck.unique([loan_id], id_ok, "loan_id", "unique_loan_id", codes=id_codes.result())

    pick = Picker(~c.bad)
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "loan_id": pick.arrow(loan_id),
        "borrower_id": pick.arrow(borrower_id),
        "origination_date": pick.numpy(orig, pa.date32()),
        "principal": pick.numpy(principal, pa.float64()),
        "apr": pick.numpy(apr, pa.float64()),
        "term_months": pick.numpy(as_int16(term), pa.int16()),
        "repayment_type": pick.arrow(english),
        "credit_score": pick.numpy(as_int16(score), pa.int16()),
    }
    if disclosed is not None:  # NaN (blank: the stated apr was disclosed) -> NULL
        values = disclosed if pick.all else disclosed[pick.good]
        columns["disclosed_apr"] = pa.array(values, type=pa.float64(), from_pandas=True)
    for name in LOAN_TEXT_OPTIONAL:
        if name in raw.table.column_names:
            col = as_text(raw.table[name])
            blank = blank_mask(raw.table[name])
            if blank.any():
                col = pc.if_else(pa.array(blank), pa.scalar(None, pa.string()), col)
            columns[name] = pick.arrow(col)
    columns["_row"] = pick.numpy(raw.rows, pa.int64())
    return CheckedTape(raw, TapeKind.LOANS, pa.table(columns), tuple(c.problems()))


def _disclosed_apr(ck: Checker) -> np.ndarray | None:
    """The optional ``disclosed_apr`` column: a decimal in [0, 1] or blank (NaN: the stated
    ``apr`` is what the borrower was shown). None when the tape has no such column."""
    if "disclosed_apr" not in ck.table.column_names:
        return None
    raw = ck.table["disclosed_apr"]
    values, ok = parse_float(raw)
    blank = blank_mask(raw)
    bad = (~ok & ~blank) | (ok & ((values < 0) | (values > 1)))
    ck.c.flag(bad, "disclosed_apr", "numeric", raw,
              rule_message("disclosed_apr", "blank or a decimal in [0, 1] (0.18 means 18%)"))
    return np.where(ok & ~bad, values, np.nan)


def _check_cashflow_apr(
    ck: Checker, loan_id: pa.ChunkedArray, apr: np.ndarray, apr_ok: np.ndarray,
    term: np.ndarray, term_ok: np.ndarray, code: np.ndarray, code_ok: np.ndarray,
    apr_cap: float, tolerance: float = APR_DISCLOSURE_TOL,
) -> None:
    """R9 on the cash-flow APR of each loan's terms (``schedules.product_apr``: the stated
    rate for the four interest-bearing types, above it for a flat fee), and R8: the disclosed
    APR (the ``disclosed_apr`` column, else the stated ``apr``) equals the cash-flow APR
    within ``tolerance``. Messages name the loan and both rates."""
    usable = apr_ok & term_ok & code_ok
    if not usable.any():
        return
    idx = np.flatnonzero(usable)
    true = np.full(len(apr), np.nan)
    true[idx] = product_apr(apr[idx], term[idx].astype(np.int64), code[idx])
    ids = loan_id.to_numpy(zero_copy_only=False)
    over = usable & (true > apr_cap)
    ck.c.flag(over, "apr", "R9_apr_cap", ck.table["apr"],
              lambda i, v, w: (f"loan {ids[i]}: the cash-flow APR {true[i]:.4%} of its terms "
                               f"(stated rate {apr[i]:.4%}, {_type_name(code[i])}) is above "
                               f"the cap {apr_cap:.2%} at {w}"))
    if "disclosed_apr" in ck.table.column_names:
        raw = ck.table["disclosed_apr"]
        values, ok = parse_float(raw)
        given = ok & (values >= 0) & (values <= 1)
        shown = np.where(given, values, apr)
        column, source = "disclosed_apr", np.where(given, "disclosed APR", "stated rate")
    else:
        shown, column, source = apr, "apr", np.full(len(apr), "stated rate")
    off = usable & ~over & (np.abs(shown - true) > tolerance)
    ck.c.flag(off, column, "R8_apr_disclosure", ck.table[column],
              lambda i, v, w: (f"loan {ids[i]}: {source[i]} {shown[i]:.4%} is not its "
                               f"cash-flow APR {true[i]:.4%} ({_type_name(code[i])}; R8 "
                               f"wants the annualised rate on the outstanding balance, within "
                               f"{tolerance:.2%}) at {w}"))


def _type_name(code: int) -> str:
    return RepaymentType.from_code(int(code)).value


def _looks_like_pii(ids: pa.ChunkedArray) -> np.ndarray:
    """Ids shaped like a phone or ID-card number (regex only on 11/18-character ids)."""
    maybe = bool_mask(pc.is_in(pc.utf8_length(ids), value_set=pa.array([11, 18], pa.int32())))
    out = np.zeros(len(ids), dtype=bool)
    if maybe.any():
        idx = np.flatnonzero(maybe)
        subset = ids.take(pa.array(idx))
        out[idx] = bool_mask(pc.match_substring_regex(subset, _PII_PATTERN))
    return out


def check_apr_cap(apr_cap: float) -> None:
    if not (0 < apr_cap <= 1):
        raise ValidationError(must_be("apr_cap", "a decimal in (0, 1] (0.24 means 24%)", apr_cap))


def _map_repayment(col: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """``(English names, type codes (-1 = unknown), ok)``; each distinct value parsed once."""
    encoded = pc.dictionary_encode(col).combine_chunks()
    dictionary = encoded.dictionary.to_pylist()
    names: list[str | None] = []
    codes = np.full(len(dictionary) + 1, -1, dtype=np.int8)
    for j, value in enumerate(dictionary):
        try:
            parsed = RepaymentType.parse(value)
        except ValidationError:
            names.append(None)
        else:
            names.append(parsed.value)
            codes[j] = parsed.code
    names.append(None)
    index = encoded.indices.fill_null(len(dictionary))
    row_codes = codes[np.asarray(index.to_numpy(zero_copy_only=False), dtype=np.int64)]
    english = pa.array(names, type=pa.string()).take(index)
    return english, row_codes, row_codes >= 0


def check_performance(raw: RawTape, *, today: date | None = None) -> CheckedTape:
    """Every performance-tape rule that needs no database (see ``ingest`` for book checks)."""
    ck = Checker(raw, today or date.today())
    c = ck.c
    loan_id, id_ok = ck.text("loan_id")
    as_of, as_of_ok = ck.date("as_of")
    not_month_end = as_of_ok & (
        (as_of + np.timedelta64(1, "D")).astype("M8[M]") == as_of.astype("M8[M]")
    )
    c.flag(not_month_end, "as_of", "month_end", raw.table["as_of"], rule_message("as_of", "a month-end date"))
    as_of_ok &= ~not_month_end
    ck.unique(
        [loan_id, pa.chunked_array([pa.array(as_of.astype("M8[D]").astype(np.int64))])],
        id_ok & as_of_ok,
        "(loan_id, as_of)",
        "unique_loan_month",
        label=pc.binary_join_element_wise(loan_id, as_text(raw.table["as_of"]), ", "),
    )

    mob, mob_ok = ck.number("months_on_book", integer=True)
    c.flag(mob_ok & (mob < 0), "months_on_book", "non_negative", raw.table["months_on_book"], rule_message("months_on_book", ">= 0"))
    balance, _ = ck.amount("balance", False, None, "non_negative")
    # stored as SMALLINT: a value above its range is refused, never stored as 0
    c.flag(mob_ok & (mob > INT16_MAX), "months_on_book", "range", raw.table["months_on_book"],
           rule_message("months_on_book", f"<= {INT16_MAX}"))
    mob_ok &= mob <= INT16_MAX
    dpd, dpd_ok = ck.number("dpd", integer=True)
    c.flag(dpd_ok & (dpd < 0), "dpd", "non_negative", raw.table["dpd"], rule_message("dpd", "a whole number of days >= 0"))
    c.flag(dpd_ok & (dpd > INT16_MAX), "dpd", "range", raw.table["dpd"],
           rule_message("dpd", f"a whole number of days <= {INT16_MAX}"))
    status_raw, status_present = ck.text("status")
    allowed = [s.value for s in LoanStatus]
    status_ok = bool_mask(pc.is_in(status_raw, value_set=pa.array(allowed)))
    c.flag(
        status_present & ~status_ok,
        "status",
        "status",
        status_raw,
        rule_message("status", "one of " + ", ".join(allowed)),
    )
    # Status and days past due tell the same story (default = more than 90 DPD).
    dpd_ok &= ~(dpd_ok & (dpd < 0))
    both = dpd_ok & status_ok
    status_np = np.asarray(status_raw.to_numpy(zero_copy_only=False), dtype=object) if both.any() else None
    if status_np is not None:
        current = both & (status_np == LoanStatus.CURRENT.value)
        late = both & (status_np == LoanStatus.DELINQUENT.value)
        defaulted = both & (status_np == LoanStatus.DEFAULT.value)
        mismatch = (
            (current & (dpd != 0))
            | (late & ((dpd < 1) | (dpd > DEFAULT_DPD)))
            | (defaulted & (dpd <= DEFAULT_DPD))
        )

        def expected(i: int) -> str:
            return {
                LoanStatus.CURRENT.value: "0 for status current",
                LoanStatus.DELINQUENT.value: f"in [1, {DEFAULT_DPD}] for status delinquent",
                LoanStatus.DEFAULT.value: f"> {DEFAULT_DPD} for status default",
            }[str(status_np[i])]

        c.flag(
            mismatch,
            "dpd",
            "status_dpd",
            raw.table["dpd"],
            lambda i, v, w: must_be("dpd", expected(i), v, w),
        )
    amounts = {}
    for name in PERFORMANCE_OPTIONAL:
        if name in raw.table.column_names:
            amounts[name], _ = ck.amount(name, False, None, "non_negative", required=False)

    pick = Picker(~c.bad)
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "loan_id": pick.arrow(loan_id),
        "as_of": pick.numpy(as_of, pa.date32()),
        "months_on_book": pick.numpy(as_int16(mob), pa.int16()),
        "balance": pick.numpy(balance, pa.float64()),
        "dpd": pick.numpy(as_int16(dpd), pa.int16()),
        "status": pick.arrow(status_raw),
    }
    for name, values in amounts.items():
        columns[name] = pick.numpy(values, pa.float64())
    columns["_row"] = pick.numpy(raw.rows, pa.int64())
    return CheckedTape(raw, TapeKind.PERFORMANCE, pa.table(columns), tuple(c.problems()))


def check_tape(
    raw: RawTape, kind: TapeKind | str, *, apr_cap: float = APR_CAP_DEFAULT, today: date | None = None
) -> CheckedTape:
    kind = tape_kind(kind)
    if kind is TapeKind.LOANS:
        return check_loans(raw, apr_cap=apr_cap, today=today)
    return check_performance(raw, today=today)
