"""Repayment schedules for the five repayment types, and the APR of a loan's cash flows
(docs/model.md, "Repayment schedules").

Two entry points that agree to the cent:

* :func:`schedule` — one loan, one row per instalment (a pandas frame for people and reports).
* :func:`schedule_matrix` — many loans at once, ``(n_loans, n_months)`` arrays for the Monte
  Carlo engine and the generator. Vectorised over loans; the only Python loop is over months.

Conventions (r = apr / 12, n = term in months, B = balance before the instalment):

* ``level_annuity`` (等额本息): payment A = B0·r / (1 − (1+r)^−n) (A = B0/n when apr = 0),
  interest = r·B, principal = A − interest.
* ``equal_principal`` (等额本金): principal = B0/n, interest = r·B.
* ``interest_only`` (先息后本): interest = r·B0 every month, all principal at month n.
* ``daily_interest`` (随借随还): interest = B·apr·days/365 (Actual/365 Fixed) over the actual
  days of the period, paid monthly; all principal at month n. :func:`interest_to_date` gives
  the interest for repaying on any day. (Evaluated as B·(apr·days/365); days counted by
  QuantLib ``Actual365Fixed`` in :func:`schedule`, by datetime64 subtraction in the matrix —
  the same actual days.)
* ``flat_fee`` (等本等息, 分期手续费): principal = B0/n and a fixed fee F = P0·r every month,
  where P0 is the ORIGINAL principal and r = apr/12 is the stated flat monthly fee rate
  (``apr`` of a flat-fee loan is the stated nominal flat rate, 12 × the monthly fee rate, not
  its APR: see :func:`apr`). The fee is income like interest and is reported in the
  ``interest`` column. The fee does not fall as the loan amortises, so the true annualised
  rate on the outstanding balance is well above the stated flat rate (about 1.8× for 12
  months).

Rounding (borrower-facing amounts are whole cents). Everything is computed on integer numbers
of cents (held exactly in float64, |x| < 2**53):

* the loan amount is rounded to the cent;
* each instalment's interest and the level-annuity payment are rounded to the cent
  **half up** (``floor(x + 0.5)`` on the amount in cents, after a 1e-9-cent nudge that
  absorbs binary representation error so that an exact half cent such as 12.5 computed as
  12.499999999998 still rounds up);
* equal principal and flat fee pay ``floor(B0 / n)`` cents of principal a month; the flat fee
  is ``round_half_up(P0 · r)`` cents, the same every month;
* the LAST instalment repays the whole remaining balance, so principal sums EXACTLY to the
  loan amount. A level-annuity instalment never repays more than the balance left (this only
  matters for loans of a few cents), so balances never rise and never go below zero.

Due dates keep the origination day of month; for the 29th–31st the date is clipped to the
last day of shorter months (2024-01-31 + 1 month = 2024-02-29, + 2 months = 2024-03-31).
Instalment k falls on ``add_months(start, k)``; its period runs from the previous due date
(the start date for k = 1).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import QuantLib as ql

from portfolio.errors import ValidationError, must_be
from portfolio.loans.types import RepaymentType

__all__ = [
    "APR",
    "ScheduleMatrix",
    "add_months",
    "apr",
    "loan_apr",
    "product_apr",
    "interest_to_date",
    "schedule",
    "schedule_matrix",
]

_LA = RepaymentType.LEVEL_ANNUITY.code
_EP = RepaymentType.EQUAL_PRINCIPAL.code
_DI = RepaymentType.DAILY_INTEREST.code
_FF = RepaymentType.FLAT_FEE.code
_N_TYPES = len(RepaymentType)

_HALF_UP_NUDGE = 1e-9  # cents; see module docstring
_APR_MAX = 1.0  # a decimal; anything above is almost surely a percent typed as 18 for 0.18
_PRINCIPAL_MAX = 1e11  # keeps every amount in cents an exact float64 integer (< 2**53)


# --------------------------------------------------------------------------------------------
# Shared numeric kernels: schedule() and schedule_matrix() both use exactly these, so the two
# agree bit for bit.


def _round_half_up(cents: np.ndarray | float) -> np.ndarray:
    """Round non-negative amounts in cents to whole cents, half up."""
    return np.floor(np.asarray(cents, dtype=np.float64) + (0.5 + _HALF_UP_NUDGE))


def _annuity_factor(r: np.ndarray | float, n: np.ndarray | int) -> np.ndarray:
    """1 − (1+r)^−n via expm1/log1p (accurate for small r); 0 where r == 0."""
    r = np.asarray(r, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    return -np.expm1(-n * np.log1p(r))


def _annuity_payment(
    b0_cents: np.ndarray | float, r: np.ndarray | float, n: np.ndarray | int
) -> np.ndarray:
    """Unrounded level payment in cents: B0·r/(1 − (1+r)^−n), or B0/n when r == 0."""
    b0_cents = np.asarray(b0_cents, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        level = b0_cents * r / _annuity_factor(r, n)
        flat = b0_cents / n
    return np.where(r > 0.0, level, flat)


def _daily_rate(apr: np.ndarray | float, days: np.ndarray | int) -> np.ndarray:
    """Actual/365 Fixed period rate apr·days/365; interest in cents is then B · this rate."""
    return np.asarray(apr, dtype=np.float64) * np.asarray(days, dtype=np.float64) / 365.0


# --------------------------------------------------------------------------------------------
# Dates


def _month_start_table(first_month: int, last_month: int) -> np.ndarray:
    """Days since 1970-01-01 of the 1st of each month index first_month..last_month+1."""
    months = np.arange(first_month, last_month + 2, dtype=np.int64).astype("datetime64[M]")
    return months.astype("datetime64[D]").astype(np.int64)


def _split_dates(dates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """datetime64[D] -> (month index since 1970-01, day of month 1..31), both int64."""
    d = np.asarray(dates).astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    day = (d - months.astype("datetime64[D]")).astype(np.int64) + 1
    return months.astype(np.int64), day


def _months_to_days(
    month: np.ndarray, day: np.ndarray, table: np.ndarray, first_month: int
) -> np.ndarray:
    """Day-of-month ``day`` in month index ``month``, clipped to the month's end; int64 days."""
    i = month - first_month
    start = table[i]
    length = table[i + 1] - start
    return start + np.minimum(day, length) - 1


def add_months(dates: np.ndarray, k: np.ndarray | int) -> np.ndarray:
    """``dates`` plus ``k`` calendar months, keeping the day of month (end-of-month clipped).

    Vectorised; ``dates`` is datetime64[D] (or anything numpy converts to it), ``k`` an int or
    int array that broadcasts against ``dates``; ``k`` may be negative. Returns datetime64[D].
    2024-01-31 + 1 → 2024-02-29; 2023-01-31 + 1 → 2023-02-28; 2024-01-30 + 2 → 2024-03-30.
    """
    d = np.asarray(dates).astype("datetime64[D]")
    kk = np.asarray(k, dtype=np.int64)
    month, day = _split_dates(d)
    month, day, kk = np.broadcast_arrays(month, day, kk)
    target = month + kk
    if target.size == 0:
        return np.empty(target.shape, dtype="datetime64[D]")
    first, last = int(target.min()), int(target.max())
    table = _month_start_table(first, last)
    return _months_to_days(target, day, table, first).astype("datetime64[D]")


def _to_date(value: object, field: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, np.datetime64 | pd.Timestamp | str):
        try:
            return pd.Timestamp(value).date()
        except (ValueError, TypeError):
            pass
    raise ValidationError(must_be(field, "a date (YYYY-MM-DD)", value))


def _ql_date(d: dt.date) -> ql.Date:
    return ql.Date(d.day, d.month, d.year)


_ACT365F = ql.Actual365Fixed()


def _act365_days(start: dt.date, end: dt.date) -> int:
    """Actual/365 Fixed day count between two dates, through QuantLib."""
    return int(_ACT365F.dayCount(_ql_date(start), _ql_date(end)))


# --------------------------------------------------------------------------------------------
# Validation (at the boundary: the one-loan API; the matrix kernel checks only cheap things)


def _check_principal(principal: object) -> float:
    try:
        p = float(principal)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationError(must_be("principal", "a positive amount", principal)) from None
    if not math.isfinite(p) or p <= 0.0 or p > _PRINCIPAL_MAX:
        raise ValidationError(
            must_be("principal", f"a positive amount <= {_PRINCIPAL_MAX:g}", principal)
        )
    if _round_half_up(p * 100.0) < 1.0:
        raise ValidationError(must_be("principal", "at least one cent (0.01)", principal))
    return p


def _check_apr(apr: object) -> float:
    try:
        a = float(apr)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationError(must_be("apr", f"a decimal in [0, {_APR_MAX:g}]", apr)) from None
    if not math.isfinite(a) or a < 0.0 or a > _APR_MAX:
        hint = f" (looks like a percent: use {a / 100:g})" if a > _APR_MAX else ""
        raise ValidationError(must_be("apr", f"a decimal in [0, {_APR_MAX:g}]", apr) + hint)
    return a


def _check_term(term_months: object) -> int:
    if isinstance(term_months, bool) or not isinstance(term_months, int | np.integer):
        if not (isinstance(term_months, float) and float(term_months).is_integer()):
            raise ValidationError(must_be("term_months", "an integer >= 1", term_months))
    n = int(term_months)  # type: ignore[arg-type]
    if n < 1:
        raise ValidationError(must_be("term_months", "an integer >= 1", term_months))
    return n


def _check_type(repayment_type: RepaymentType | str) -> RepaymentType:
    if isinstance(repayment_type, RepaymentType):
        return repayment_type
    if isinstance(repayment_type, int | np.integer) and not isinstance(repayment_type, bool):
        if 0 <= int(repayment_type) < _N_TYPES:
            return RepaymentType.from_code(int(repayment_type))  # an int8 code from an array
    return RepaymentType.parse(repayment_type)


# --------------------------------------------------------------------------------------------
# One loan


_COLUMNS = ("instalment", "due_date", "days", "payment", "interest", "principal", "balance")


def schedule(
    principal: float,
    apr: float,
    term_months: int,
    repayment_type: RepaymentType | str,
    start_date: dt.date,
) -> pd.DataFrame:
    """The borrower's repayment schedule of one new loan, in cents.

    Returns one row per instalment k = 1..n with columns ``instalment`` (int), ``due_date``
    (datetime64), ``days`` (actual days in the period, int), ``payment``, ``interest``,
    ``principal`` and ``balance`` (after the instalment), amounts in currency units rounded to
    the cent (see the module docstring for the rounding rule). ``principal`` sums exactly to the
    loan amount (rounded to the cent) and the last ``balance`` is 0.

    Raises ``ValidationError`` naming the field for a non-positive principal, a negative (or
    > 1) apr, a term below 1 or an unknown repayment type. ``repayment_type`` accepts the enum,
    its English name, its Chinese label or its int code.
    """
    p = _check_principal(principal)
    a = _check_apr(apr)
    n = _check_term(term_months)
    rtype = _check_type(repayment_type)
    start = _to_date(start_date, "start_date")

    due = add_months(np.array(start, dtype="datetime64[D]"), np.arange(1, n + 1))
    due_py = [start, *(d.item() for d in due)]
    days = np.array([_act365_days(due_py[k - 1], due_py[k]) for k in range(1, n + 1)])

    # A plain loop over months on Python floats holding whole cents; every rounding goes
    # through the same kernels as schedule_matrix(), so the two agree bit for bit.
    r = a / 12.0
    b0 = float(_round_half_up(p * 100.0))
    level = 0.0
    if rtype is RepaymentType.LEVEL_ANNUITY:
        level = float(_round_half_up(_annuity_payment(np.float64(b0), np.float64(r), n)))
    amortising = rtype in (RepaymentType.EQUAL_PRINCIPAL, RepaymentType.FLAT_FEE)
    flat = float(math.floor(b0 / n)) if amortising else 0.0
    fee = float(_round_half_up(b0 * r)) if rtype is RepaymentType.FLAT_FEE else 0.0
    interest = np.zeros(n)
    princ = np.zeros(n)
    balance = np.zeros(n)
    bal = b0
    for k in range(n):
        if rtype is RepaymentType.DAILY_INTEREST:
            i_k = float(_round_half_up(bal * _daily_rate(a, int(days[k]))))
        elif rtype is RepaymentType.FLAT_FEE:
            i_k = fee
        else:
            i_k = float(_round_half_up(bal * r))
        if k == n - 1:
            p_k = bal  # the last instalment repays what is left
        elif rtype is RepaymentType.LEVEL_ANNUITY:
            p_k = min(max(level - i_k, 0.0), bal)
        elif amortising:
            p_k = flat
        else:
            p_k = 0.0
        bal = bal - p_k
        interest[k], princ[k], balance[k] = i_k, p_k, bal

    return pd.DataFrame(
        {
            "instalment": np.arange(1, n + 1, dtype=np.int64),
            "due_date": due,
            "days": days.astype(np.int64),
            "payment": (interest + princ) / 100.0,
            "interest": interest / 100.0,
            "principal": princ / 100.0,
            "balance": balance / 100.0,
        },
        columns=list(_COLUMNS),
    )


def interest_to_date(balance: float, apr: float, from_date: dt.date, to_date: dt.date) -> float:
    """Interest owed on ``balance`` from ``from_date`` to ``to_date`` (Actual/365 Fixed).

    The daily-interest (随借随还) payoff helper: a borrower repaying on ``to_date`` owes the
    balance plus this interest since the last due date ``from_date``. Rounded half up to the
    cent, like scheduled interest; repaying on the due date gives exactly the scheduled interest.
    """
    try:
        b = float(balance)
    except (TypeError, ValueError):
        raise ValidationError(must_be("balance", "an amount >= 0", balance)) from None
    if not math.isfinite(b) or b < 0.0:
        raise ValidationError(must_be("balance", "an amount >= 0", balance))
    a = _check_apr(apr)
    start = _to_date(from_date, "from_date")
    end = _to_date(to_date, "to_date")
    if end < start:
        raise ValidationError(must_be("to_date", f"on or after from_date {start}", end))
    days = _act365_days(start, end)
    b_cents = _round_half_up(b * 100.0)
    cents = _round_half_up(b_cents * _daily_rate(a, days))
    return float(cents / 100.0)


# --------------------------------------------------------------------------------------------
# Many loans


@dataclass(frozen=True, slots=True)
class ScheduleMatrix:
    """Scheduled cash flows of many loans; every array is ``(n_loans, n_months)``.

    Column j is the loan's j-th remaining instalment. Columns past a loan's remaining term
    hold 0 (and ``due_dates`` there still follow the monthly grid). Float arrays are in
    currency units; arrays are Fortran-ordered (column access is contiguous).
    """

    interest: np.ndarray  # float64
    principal: np.ndarray  # float64
    balance: np.ndarray  # float64, balance after the instalment
    days: np.ndarray  # int32, actual days in the period
    due_dates: np.ndarray  # datetime64[D]

    @property
    def payment(self) -> np.ndarray:
        """interest + principal, ``(n_loans, n_months)``."""
        return self.interest + self.principal

    @property
    def shape(self) -> tuple[int, int]:
        return self.interest.shape  # type: ignore[return-value]


def schedule_matrix(
    balance: np.ndarray,
    apr: np.ndarray,
    remaining_term: np.ndarray,
    repayment_type: np.ndarray,
    origination_date: np.ndarray,
    months_on_book: np.ndarray | None = None,
    n_months: int | None = None,
    round_cents: bool = True,
    original_principal: np.ndarray | None = None,
) -> ScheduleMatrix:
    """Scheduled interest, principal and balance of many loans, vectorised over loans.

    All inputs are ``(n_loans,)``: ``balance`` now (= principal for a new loan), ``apr``
    (decimal), ``remaining_term`` (instalments left), ``repayment_type`` (int8
    ``RepaymentType.code``), ``origination_date`` (datetime64[D]) and ``months_on_book``
    (default 0). Period j (0-based) runs from ``add_months(orig, mob + j)`` to
    ``add_months(orig, mob + j + 1)``. A seasoned loan amortises its current balance over its
    remaining term (the level payment is recomputed from them; equal principal pays
    balance / remaining_term; interest-only and daily-interest repay the balance at the end).

    A flat-fee loan pays balance / remaining_term of principal and the fee
    ``original_principal · apr/12`` (``original_principal`` defaults to ``balance``, right for
    new loans) every remaining month.

    ``n_months`` defaults to ``max(remaining_term)``; a smaller value truncates. With
    ``round_cents=True`` (default) a new loan's rows equal :func:`schedule` to the cent; with
    ``round_cents=False`` the exact float schedule (same formulas, no rounding).
    """
    bal_in = np.asarray(balance, dtype=np.float64)
    apr_in = np.asarray(apr, dtype=np.float64)
    rem = np.asarray(remaining_term).astype(np.int64)
    code = np.asarray(repayment_type).astype(np.int64)
    orig = np.asarray(origination_date).astype("datetime64[D]")
    if bal_in.ndim != 1:
        raise ValidationError(must_be("balance", "a 1-d array (one value per loan)", bal_in.shape))
    n_loans = bal_in.shape[0]
    mob = (
        np.zeros(n_loans, dtype=np.int64)
        if months_on_book is None
        else np.asarray(months_on_book).astype(np.int64)
    )
    for name, arr in (
        ("balance", bal_in),
        ("apr", apr_in),
        ("remaining_term", rem),
        ("repayment_type", code),
        ("origination_date", orig),
        ("months_on_book", mob),
    ):
        if arr.ndim != 1 or arr.shape[0] != n_loans:
            raise ValidationError(
                must_be(name, f"a 1-d array of length {n_loans} (one per loan)", arr.shape)
            )
    p0_in = bal_in if original_principal is None else np.asarray(original_principal,
                                                                  dtype=np.float64)
    if p0_in.shape != bal_in.shape:
        raise ValidationError(must_be("original_principal",
                                      f"a 1-d array of length {n_loans} (one per loan)", p0_in.shape))
    _check_matrix_values(bal_in, apr_in, rem, code, mob)
    bad = ~np.isfinite(p0_in) | (p0_in < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValidationError(must_be("original_principal", "an amount >= 0",
                                      float(p0_in[i]), f"row {i}"))
    if np.isnat(orig).any():
        i = int(np.flatnonzero(np.isnat(orig))[0])
        raise ValidationError(must_be("origination_date", "a date", "NaT", f"row {i}"))

    if n_months is None:
        n_months = int(rem.max()) if n_loans else 0
    if n_months < 0:
        raise ValidationError(must_be("n_months", "an integer >= 0", n_months))

    interest = np.zeros((n_loans, n_months), dtype=np.float64, order="F")
    principal = np.zeros((n_loans, n_months), dtype=np.float64, order="F")
    balance_out = np.zeros((n_loans, n_months), dtype=np.float64, order="F")
    days_out = np.zeros((n_loans, n_months), dtype=np.int32, order="F")
    due_out = np.zeros((n_loans, n_months), dtype=np.int64, order="F")
    if n_loans == 0 or n_months == 0:
        return ScheduleMatrix(
            interest, principal, balance_out, days_out, due_out.view("datetime64[D]")
        )

    # Dates: month index and day of month of the origination, one lookup table of month starts
    # (days since 1970) and month lengths; a due date is start + min(day - 1, length - 1).
    month0, day0 = _split_dates(orig)
    base = month0 + mob
    first = int(base.min())
    table = _month_start_table(first, int(base.max()) + n_months)
    month_start = table[:-1]
    month_last = np.diff(table) - 1  # last day of month, 0-based
    idx = base - first  # index into the tables of the period start's month
    dom0 = day0 - 1

    if round_cents:
        b = _round_half_up(bal_in * 100.0)
    else:
        b = bal_in * 100.0
    b[rem <= 0] = 0.0  # a loan with no instalment left has no schedule
    r = apr_in / 12.0
    is_la = code == _LA
    is_ep = (code == _EP) | (code == _FF)
    is_di = code == _DI
    is_ff = code == _FF
    any_di = bool(is_di.any())
    any_ff = bool(is_ff.any())
    rem_f = np.maximum(rem, 1).astype(np.float64)
    level = _annuity_payment(b, r, rem_f)
    if round_cents:
        level = _round_half_up(level)
    level[~is_la] = 0.0
    flat = np.floor(b / rem_f) if round_cents else b / rem_f
    flat[~is_ep] = 0.0
    apr_di = np.where(is_di, apr_in, 0.0)
    fee = flat_fee_cents(p0_in, apr_in, round_cents)
    fee[~is_ff | (rem <= 0)] = 0.0
    if any_ff:
        r = np.where(is_ff, 0.0, r)  # a flat-fee loan's income is its fixed fee

    # Per month, with B the balance in cents before the instalment (0 once repaid):
    #   interest  = round(B * rate), rate = r, or apr*days/365 for daily interest
    #   principal = min(max(level - interest, 0), B) + flat   (level, flat are 0 if unused)
    #   principal = B at the last instalment; min(principal, B) zeroes every later column.
    start = np.take(month_start, idx) + np.minimum(dom0, np.take(month_last, idx))
    half = 0.5 + _HALF_UP_NUDGE
    i_j = np.empty(n_loans)
    p_j = np.empty(n_loans)
    for j in range(n_months):
        k = idx + (j + 1)
        end = np.take(month_start, k)
        end += np.minimum(dom0, np.take(month_last, k))
        d = end - start
        if any_di:
            rate = np.where(is_di, _daily_rate(apr_di, d), r)
        else:
            rate = r
        np.multiply(b, rate, out=i_j)
        if round_cents:
            i_j += half
            np.floor(i_j, out=i_j)
        if any_ff:
            i_j += np.where(j < rem, fee, 0.0)
        np.subtract(level, i_j, out=p_j)
        np.maximum(p_j, 0.0, out=p_j)
        np.minimum(p_j, b, out=p_j)
        p_j += flat
        last = rem == j + 1
        np.copyto(p_j, b, where=last)
        np.minimum(p_j, b, out=p_j)
        b -= p_j

        interest[:, j] = i_j
        principal[:, j] = p_j
        balance_out[:, j] = b
        days_out[:, j] = d
        due_out[:, j] = end
        start = end

    interest /= 100.0
    principal /= 100.0
    balance_out /= 100.0
    return ScheduleMatrix(interest, principal, balance_out, days_out, due_out.view("datetime64[D]"))


def flat_fee_cents(original_principal: np.ndarray, apr: np.ndarray,
                   round_cents: bool = True) -> np.ndarray:
    """The monthly fee of flat-fee loans in cents: P0 (to the cent) · apr/12, half up."""
    p0 = np.asarray(original_principal, dtype=np.float64) * 100.0
    r = np.asarray(apr, dtype=np.float64) / 12.0
    if round_cents:
        return _round_half_up(_round_half_up(p0) * r)
    return p0 * r


def _check_matrix_values(
    balance: np.ndarray, apr: np.ndarray, rem: np.ndarray, code: np.ndarray, mob: np.ndarray
) -> None:
    """Cheap whole-array checks; names the field and the first offending row."""

    def first_bad(mask: np.ndarray) -> int:
        return int(np.flatnonzero(mask)[0])

    bad = ~np.isfinite(balance) | (balance < 0)
    if bad.any():
        i = first_bad(bad)
        raise ValidationError(must_be("balance", "an amount >= 0", float(balance[i]), f"row {i}"))
    bad = ~np.isfinite(apr) | (apr < 0) | (apr > _APR_MAX)
    if bad.any():
        i = first_bad(bad)
        raise ValidationError(
            must_be("apr", f"a decimal in [0, {_APR_MAX:g}]", float(apr[i]), f"row {i}")
        )
    bad = rem < 0
    if bad.any():
        i = first_bad(bad)
        raise ValidationError(must_be("remaining_term", "an integer >= 0", int(rem[i]), f"row {i}"))
    bad = (code < 0) | (code >= _N_TYPES)
    if bad.any():
        i = first_bad(bad)
        allowed = "a RepaymentType code: " + ", ".join(
            f"{t.code} ({t.value})" for t in RepaymentType
        )
        raise ValidationError(must_be("repayment_type", allowed, int(code[i]), f"row {i}"))
    bad = mob < 0
    if bad.any():
        i = first_bad(bad)
        raise ValidationError(must_be("months_on_book", "an integer >= 0", int(mob[i]), f"row {i}"))


# --------------------------------------------------------------------------------------------
# APR from cash flows (PBOC Announcement [2021] No. 3: the annualised rate on the outstanding
# balance, all the borrower's costs included, by the internal-rate-of-return method)

_IRR_TOL = 1e-13  # on the periodic rate
_IRR_MAX_ITER = 100


@dataclass(frozen=True, slots=True)
class APR:
    """The annualised rate of a borrower's cash flows.

    ``periodic`` is the IRR per period (a month, or a day on the Act/365 basis); ``nominal``
    is the disclosed annualised rate: 12 × the monthly IRR, or 365 × the daily rate on the
    Act/365 basis; ``effective`` compounds it: (1 + monthly)^12 − 1, or
    (1 + nominal/365)^365 − 1.
    """

    nominal: float
    effective: float
    periodic: float
    basis: str  # "monthly" or "act365"


def _npv_and_slope(received: np.ndarray, pays: np.ndarray, t: np.ndarray,
                   m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NPV(m) = −received + Σ pay_k (1+m)^−t_k and its derivative, row-wise."""
    v = np.exp(-t * np.log1p(m)[:, None])
    npv = (pays * v).sum(axis=1) - received
    slope = -(pays * t * v).sum(axis=1) / (1.0 + m)
    return npv, slope


def _irr_rows(received: np.ndarray, pays: np.ndarray, t: np.ndarray,
              guess: np.ndarray) -> np.ndarray:
    """The periodic IRR of each row: received at time 0, pays[:, k] at time t[:, k] (> 0).

    NPV is decreasing and convex in m for non-negative payments, so Newton's method started
    at a point where NPV >= 0 (left of the root) rises monotonically to the root; ``guess``
    is used where NPV(guess) >= 0, else 0 (NPV(0) = total paid − received, >= 0 whenever the
    borrower pays back at least what was received)."""
    m = np.maximum(np.asarray(guess, dtype=np.float64), 0.0).copy()
    npv, _ = _npv_and_slope(received, pays, t, m)
    m[npv < 0] = 0.0
    for _ in range(_IRR_MAX_ITER):
        npv, slope = _npv_and_slope(received, pays, t, m)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(slope < 0, -npv / slope, 0.0)
        m = m + step
        if np.all(np.abs(step) <= _IRR_TOL * np.maximum(1.0, m)):
            break
    return m


def _check_flows(received: object, payments: object) -> tuple[float, np.ndarray]:
    try:
        rec = float(received)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationError(must_be("received", "a positive amount", received)) from None
    if not math.isfinite(rec) or rec <= 0:
        raise ValidationError(must_be("received", "a positive amount", received))
    pays = np.asarray(payments, dtype=np.float64).ravel()
    if pays.size == 0 or not np.isfinite(pays).all() or (pays < 0).any():
        raise ValidationError(must_be("payments", "one or more finite amounts >= 0", payments))
    if pays.sum() < rec:
        raise ValidationError(must_be(
            "payments", f"in total at least the amount received {rec:g} (a non-negative rate)",
            float(pays.sum())))
    return rec, pays


def apr(
    received: float,
    payments: object,
    *,
    dates: object | None = None,
    start_date: dt.date | None = None,
) -> APR:
    """The APR of a borrower's actual cash flows: the IRR of the amount received (the
    principal less any upfront fee) against every payment, fees included.

    Without ``dates`` the payments fall one month apart, the first one month after the
    drawdown (basis ``monthly``): ``received = Σ_k pay_k / (1+m)^k``, nominal = 12·m,
    effective = (1+m)^12 − 1. With ``dates`` (and ``start_date``, the drawdown) the basis is
    Act/365 on the outstanding balance, for daily-interest loans and for a tape's actual
    payments: with d_k the actual days of period k, ``received = Σ_k pay_k / Π_{j<=k} (1 +
    i·d_j/365)`` and nominal = i — the rate at which interest accrued on the outstanding
    balance over the actual days and settled at each payment repays exactly the payments;
    effective = (1 + i/365)^365 − 1. Payments on the same date are summed.

    Raises ``ValidationError`` naming the field for a non-positive amount received, negative
    or non-finite payments, payments totalling less than the amount received, or dates out of
    order.
    """
    rec, pays = _check_flows(received, payments)
    if dates is None:
        t = np.arange(1, pays.size + 1, dtype=np.float64)
        m = float(_irr_rows(np.array([rec]), pays[None, :], t[None, :], np.zeros(1))[0])
        return APR(nominal=12.0 * m, effective=float(np.expm1(12.0 * np.log1p(m))),
                   periodic=m, basis="monthly")
    if start_date is None:
        raise ValidationError(must_be("start_date", "the drawdown date (with dates)", None))
    start = np.datetime64(_to_date(start_date, "start_date"), "D")
    d = np.asarray(dates).astype("datetime64[D]").ravel()
    if d.shape != pays.shape:
        raise ValidationError(must_be("dates", f"one date per payment ({pays.size})", d.size))
    if np.isnat(d).any() or (np.diff(np.concatenate([[start], d])).astype(np.int64) < 0).any() \
            or (d <= start).any():
        raise ValidationError(must_be("dates", "after start_date and in order", d))
    # Period-by-period discounting (1 + i·d_j/365) is not a power of one variable; solve for
    # the daily rate y with the same Newton scheme on the equivalent form: NPV in i directly.
    days = np.diff(np.concatenate([[start], d])).astype(np.int64).astype(np.float64)
    i = _act365_rate(rec, pays, days)
    return APR(nominal=i, effective=float(np.expm1(365.0 * np.log1p(i / 365.0))),
               periodic=i / 365.0, basis="act365")


def _act365_rate(received: float, pays: np.ndarray, days: np.ndarray) -> float:
    """The nominal Act/365 rate i with Σ pay_k / Π_{j<=k}(1 + i·d_j/365) = received (Newton
    from 0, monotone for the same reason as :func:`_irr_rows`: decreasing and convex in i)."""
    i = 0.0
    for _ in range(_IRR_MAX_ITER):
        g = 1.0 + i * days / 365.0
        disc = 1.0 / np.cumprod(g)
        npv = float((pays * disc).sum()) - received
        # d/di of 1/Π g_j = −(1/Π g_j) · Σ_{j<=k} (d_j/365)/g_j
        dlog = np.cumsum((days / 365.0) / g)
        slope = -float((pays * disc * dlog).sum())
        if slope >= 0:
            break
        step = -npv / slope
        i += step
        if abs(step) <= _IRR_TOL * max(1.0, i):
            break
    return i


def loan_apr(
    principal: float,
    rate: float,
    term_months: int,
    repayment_type: RepaymentType | str,
    start_date: dt.date,
    *,
    upfront_fee: float = 0.0,
    monthly_fee: float = 0.0,
) -> APR:
    """The APR of a new loan's scheduled cash flows (:func:`schedule`, in cents), fees
    included: the borrower receives ``principal − upfront_fee`` and pays every instalment plus
    ``monthly_fee``. Daily-interest loans on the Act/365 basis over the schedule's due dates,
    the others monthly."""
    rtype = _check_type(repayment_type)
    for name, value in (("upfront_fee", upfront_fee), ("monthly_fee", monthly_fee)):
        if not math.isfinite(float(value)) or float(value) < 0:
            raise ValidationError(must_be(name, "an amount >= 0", value))
    sched = schedule(principal, rate, term_months, rtype, start_date)
    pays = sched["payment"].to_numpy() + float(monthly_fee)
    received = float(sched["principal"].sum()) - float(upfront_fee)
    if rtype is RepaymentType.DAILY_INTEREST:
        return apr(received, pays, dates=sched["due_date"].to_numpy(), start_date=start_date)
    return apr(received, pays)


def product_apr(
    rate: np.ndarray,
    term_months: np.ndarray,
    repayment_type: np.ndarray,
    upfront_fee_rate: np.ndarray | float = 0.0,
    monthly_fee_rate: np.ndarray | float = 0.0,
) -> np.ndarray:
    """The nominal APR (12 × monthly IRR) of products, vectorised: per product the exact
    (unrounded) schedule of one unit of principal at ``rate`` over ``term_months`` on a
    regular monthly grid, the borrower receiving 1 − ``upfront_fee_rate`` and paying each
    instalment plus ``monthly_fee_rate``. Principal-free (no cent rounding), so it is the
    rate of the product's terms; for the four interest-bearing types without fees it equals
    ``rate`` (daily interest on a regular 1/12-year month); a flat-fee product's is above its
    stated flat rate. Arrays broadcast to ``(n,)``; ``repayment_type`` holds int8 codes."""
    if _no_fees(upfront_fee_rate, monthly_fee_rate):
        # every product plain but flat fees: the rates themselves (the general path below
        # gives the same), without materialising broadcast fee arrays
        rate_1 = np.asarray(rate, dtype=np.float64)
        code_1 = np.asarray(repayment_type)
        if rate_1.ndim == 1 and code_1.shape == rate_1.shape \
                and np.shape(term_months) == rate_1.shape and not (code_1 == _FF).any():
            return rate_1.copy()
    rate_a, term_a, code_a, up_a, mf_a = np.broadcast_arrays(
        np.asarray(rate, dtype=np.float64), np.asarray(term_months).astype(np.int64),
        np.asarray(repayment_type).astype(np.int64),
        np.asarray(upfront_fee_rate, dtype=np.float64),
        np.asarray(monthly_fee_rate, dtype=np.float64))
    rate_a, term_a, code_a, up_a, mf_a = (np.atleast_1d(x).ravel()
                                          for x in (rate_a, term_a, code_a, up_a, mf_a))
    n = rate_a.shape[0]
    out = np.empty(n)
    if n == 0:
        return out
    if (up_a < 0).any() or (up_a >= 1).any() or (mf_a < 0).any():
        raise ValidationError(must_be("fee rates", "upfront in [0, 1), monthly >= 0",
                                      (up_a.min(), up_a.max(), mf_a.min())))
    # Interest r·B on the outstanding balance B, no fee: the IRR is r by construction (the
    # property tests check the solve against it); only the other rows are solved.
    plain = (code_a != _FF) & (up_a == 0) & (mf_a == 0)
    out[plain] = rate_a[plain]
    todo = np.flatnonzero(~plain)
    if todo.size == 0:
        return out
    out[todo] = _solve_products(rate_a[todo], term_a[todo], code_a[todo], up_a[todo], mf_a[todo])
    return out


def _no_fees(upfront_fee_rate: np.ndarray | float, monthly_fee_rate: np.ndarray | float) -> bool:
    return (np.ndim(upfront_fee_rate) == 0 and np.ndim(monthly_fee_rate) == 0
            and float(upfront_fee_rate) == 0.0 and float(monthly_fee_rate) == 0.0)


def _solve_products(rate_a: np.ndarray, term_a: np.ndarray, code_a: np.ndarray,
                    up_a: np.ndarray, mf_a: np.ndarray) -> np.ndarray:
    """product_apr's IRR solve (every row solved, identical products once)."""
    keys = np.stack([rate_a, term_a.astype(np.float64), code_a.astype(np.float64), up_a, mf_a])
    uniq, inverse = np.unique(keys, axis=1, return_inverse=True)
    u_rate, u_term, u_code, u_up, u_mf = uniq
    u_code = u_code.astype(np.int64)
    # daily interest priced on a regular month: as interest-only at rate/12
    eff_code = np.where(u_code == _DI, RepaymentType.INTEREST_ONLY.code, u_code)
    k = u_rate.shape[0]
    n_months = int(u_term.max())
    origin = np.full(k, np.datetime64("2001-01-01"), dtype="datetime64[D]")
    sm = schedule_matrix(np.ones(k), u_rate, u_term.astype(np.int64), eff_code, origin,
                         n_months=n_months, round_cents=False)
    live = np.arange(n_months)[None, :] < u_term[:, None]
    pays = sm.payment + np.where(live, u_mf[:, None], 0.0)
    t = np.broadcast_to(np.arange(1, n_months + 1, dtype=np.float64), pays.shape)
    m = _irr_rows(1.0 - u_up, pays, t, u_rate / 12.0)
    return 12.0 * m[inverse.ravel()]
