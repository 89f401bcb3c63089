"""SQL of the book's performance analytics (``riskpool book ...``).

Every group-by runs in DuckDB and only aggregated rows come back to pandas, so the queries
stay fast on 1M loans × 24 month-ends (~20M ``loan_performance`` rows). Values are always
``?`` parameters; the SQL text is assembled only from the constant fragments of this module.

Bucket of a performance row (``loan_id``, ``as_of``), first rule that applies:

- ``written_off`` — the loan has a row with ``charge_off > 0`` on or before ``as_of``;
- ``prepaid`` / ``matured`` — ``status`` says so (exit states, the loan is closed);
- ``paid_off`` — any other row with ``balance = 0`` (closed without a closing status);
- ``default`` — ``dpd > 90`` or ``status = 'default'`` (not written off);
- ``M3`` (61–90 DPD), ``M2`` (31–60), ``M1`` (1–30), ``current`` (0).

The *outstanding* book at a month-end is the rows in ``current``, ``M1``, ``M2``, ``M3`` and
``default``; the *performing* book is ``current`` … ``M3`` (delinquent loans included).

A loan's *default event* is its first row with ``dpd > 90``, ``status = 'default'`` or
``charge_off > 0``; the *defaulted amount* is ``greatest(balance, charge_off)`` of that row
(the balance when it crossed 90 DPD, or the written-off amount if it was written off first).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from portfolio.errors import NotFound, RiskpoolError
from portfolio.loans.types import SCORE_BAND_LABELS, SCORE_BANDS

ACTIVE_BUCKETS: tuple[str, ...] = ("current", "M1", "M2", "M3", "default")
PERFORMING_BUCKETS: tuple[str, ...] = ("current", "M1", "M2", "M3")

# Loans written off on or before a row's month-end: one small filtered scan.
_WRITE_OFFS = """wo AS (
    SELECT loan_id, min(as_of) AS wo_date
    FROM loan_performance
    WHERE charge_off > 0
    GROUP BY loan_id
)"""

# First default event of each loan up to the as-of date (parameter: as_of).
_DEFAULTS = """d AS (
    SELECT loan_id,
           min(as_of) AS d_date,
           arg_min(CAST(greatest(balance, charge_off) AS DOUBLE), as_of) AS d_amount,
           arg_min(months_on_book, as_of) AS d_mob
    FROM loan_performance
    WHERE (dpd > 90 OR status = 'default' OR charge_off > 0) AND as_of <= ?
    GROUP BY loan_id
)"""

_BUCKET = """CASE
        WHEN wo.wo_date IS NOT NULL AND wo.wo_date <= p.as_of THEN 'written_off'
        WHEN p.status = 'prepaid' THEN 'prepaid'
        WHEN p.status = 'matured' THEN 'matured'
        WHEN p.balance = 0 THEN 'paid_off'
        WHEN p.dpd > 90 OR p.status = 'default' THEN 'default'
        WHEN p.dpd > 60 THEN 'M3'
        WHEN p.dpd > 30 THEN 'M2'
        WHEN p.dpd > 0 THEN 'M1'
        ELSE 'current'
    END"""


def _band_case(column: str) -> tuple[str, list[object]]:
    """``CASE`` mapping a credit score to its ``SCORE_BANDS`` label, with its parameters."""
    parts: list[str] = []
    params: list[object] = []
    for (lo, hi), label in zip(SCORE_BANDS, SCORE_BAND_LABELS, strict=True):
        parts.append(f"WHEN {column} >= ? AND {column} < ? THEN ?")
        params.extend([lo, hi, label])
    return "CASE " + " ".join(parts) + " END", params


def _dates_to_python(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    for col in columns:
        if col in frame.columns:
            frame[col] = pd.to_datetime(frame[col]).dt.date
    return frame


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: list[object]) -> pd.DataFrame:
    try:
        return con.execute(sql, params).df()
    except duckdb.CatalogException as exc:
        raise RiskpoolError(
            f"the database has no loan book tables ({exc}); build one with "
            "`riskpool generate` or `riskpool ingest`"
        ) from None


# --------------------------------------------------------------------------- month-ends


def month_ends(con: duckdb.DuckDBPyConnection) -> list[dt.date]:
    """Every distinct ``as_of`` in ``loan_performance``, ascending."""
    frame = _fetch(con, "SELECT DISTINCT as_of FROM loan_performance ORDER BY as_of", [])
    return list(_dates_to_python(frame, ("as_of",))["as_of"])


def resolve_month_end(
    con: duckdb.DuckDBPyConnection, as_of: dt.date | None, field: str = "--as-of"
) -> dt.date:
    """``as_of`` checked against the month-ends on file; ``None`` means the latest one."""
    months = month_ends(con)
    if not months:
        raise NotFound(
            "the database has no loan performance history (table loan_performance is "
            "empty); build a book with `riskpool generate` or ingest a performance tape"
        )
    if as_of is None:
        return months[-1]
    if as_of not in set(months):
        raise NotFound(
            f"`{field}` must be a month-end with performance data, between "
            f"{months[0].isoformat()} and {months[-1].isoformat()}; got {as_of.isoformat()!r}"
        )
    return as_of


# --------------------------------------------------------------------------- summary


def summary_groups(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> pd.DataFrame:
    """Outstanding book at ``as_of``: totals overall and by product, repayment type, score
    band, term and region (one ``GROUPING SETS`` scan).

    Columns: dimension, group, loans, balance, wa_apr, wa_score, wa_remaining_term,
    dpd30_balance, dpd90_balance. Weighted averages are balance-weighted; remaining term is
    the number of due dates left after ``as_of`` (month boundaries to maturity, floor 0).
    """
    band, band_params = _band_case("l.credit_score")
    sql = f"""
    WITH {_WRITE_OFFS},
    act AS (
        SELECT l.product, l.repayment_type, {band} AS score_band, l.term_months, l.region,
               CAST(p.balance AS DOUBLE) AS bal, l.apr, l.credit_score,
               greatest(datediff('month', p.as_of,
                                 l.origination_date + to_months(l.term_months)), 0) AS rem,
               {_BUCKET} AS bucket
        FROM loan_performance p
        JOIN loans l ON l.loan_id = p.loan_id
        LEFT JOIN wo ON wo.loan_id = p.loan_id
        WHERE p.as_of = ?
    )
    SELECT
        CASE WHEN grouping(product) = 0 THEN 'product'
             WHEN grouping(repayment_type) = 0 THEN 'repayment_type'
             WHEN grouping(score_band) = 0 THEN 'score_band'
             WHEN grouping(term_months) = 0 THEN 'term_months'
             WHEN grouping(region) = 0 THEN 'region'
             ELSE 'all' END AS dimension,
        CASE WHEN grouping(product) = 0 THEN coalesce(product, '(none)')
             WHEN grouping(repayment_type) = 0 THEN repayment_type
             WHEN grouping(score_band) = 0 THEN score_band
             WHEN grouping(term_months) = 0 THEN CAST(term_months AS VARCHAR)
             WHEN grouping(region) = 0 THEN coalesce(region, '(none)')
             ELSE 'all' END AS "group",
        count(*) AS loans,
        coalesce(sum(bal), 0) AS balance,
        sum(bal * apr) / nullif(sum(bal), 0) AS wa_apr,
        sum(bal * credit_score) / nullif(sum(bal), 0) AS wa_score,
        sum(bal * rem) / nullif(sum(bal), 0) AS wa_remaining_term,
        coalesce(sum(bal) FILTER (WHERE bucket IN ('M2', 'M3', 'default')), 0) AS dpd30_balance,
        coalesce(sum(bal) FILTER (WHERE bucket = 'default'), 0) AS dpd90_balance
    FROM act
    WHERE bucket IN ('current', 'M1', 'M2', 'M3', 'default')
    GROUP BY GROUPING SETS ((), (product), (repayment_type), (score_band), (term_months),
                            (region))
    ORDER BY
        (grouping(product) = 0)::INT * 1 + (grouping(repayment_type) = 0)::INT * 2
          + (grouping(score_band) = 0)::INT * 3 + (grouping(term_months) = 0)::INT * 4
          + (grouping(region) = 0)::INT * 5,
        product, repayment_type, score_band, term_months, region
    """
    return _fetch(con, sql, [*band_params, as_of])


def seasoned_default(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    *,
    min_age_months: int,
    anchor_term: int,
) -> pd.DataFrame:
    """Cumulative default to ``as_of`` of the loans originated at least ``min_age_months``
    calendar months before it, by score band and whether the term is ``anchor_term``.

    Columns: score_band, anchor_term (bool), loans, principal, defaulted_loans,
    defaulted_balance.
    """
    band, band_params = _band_case("l.credit_score")
    sql = f"""
    WITH {_DEFAULTS}
    SELECT {band} AS score_band,
           l.term_months = ? AS anchor_term,
           count(*) AS loans,
           sum(CAST(l.principal AS DOUBLE)) AS principal,
           count(d.loan_id) AS defaulted_loans,
           coalesce(sum(d.d_amount), 0) AS defaulted_balance
    FROM loans l
    LEFT JOIN d ON d.loan_id = l.loan_id
    WHERE datediff('month', l.origination_date, ?) >= ?
    GROUP BY ALL
    ORDER BY score_band, anchor_term
    """
    params: list[object] = [as_of, *band_params, anchor_term, as_of, min_age_months]
    return _fetch(con, sql, params)


# --------------------------------------------------------------------------- delinquency


def delinquency_by_month(
    con: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date
) -> pd.DataFrame:
    """Loans and balance per bucket at every month-end in [first, last] (long format).

    Buckets current … default count the outstanding rows at that month-end; ``written_off``
    counts loans written off on or before it, with their cumulative ``charge_off`` amount.
    Columns: as_of, bucket, loans, balance.
    """
    sql = f"""
    WITH {_WRITE_OFFS},
    months AS (SELECT DISTINCT as_of FROM loan_performance WHERE as_of <= ?),
    active AS (
        SELECT p.as_of, {_BUCKET} AS bucket, CAST(p.balance AS DOUBLE) AS bal
        FROM loan_performance p
        LEFT JOIN wo ON wo.loan_id = p.loan_id
        WHERE p.as_of BETWEEN ? AND ?
    ),
    charged AS (
        SELECT as_of, sum(CAST(charge_off AS DOUBLE)) AS amount
        FROM loan_performance WHERE charge_off > 0 AND as_of <= ? GROUP BY as_of
    ),
    firsts AS (SELECT wo_date AS as_of, count(*) AS n FROM wo GROUP BY wo_date),
    written AS (
        SELECT m.as_of,
               sum(coalesce(f.n, 0)) OVER w AS loans,
               sum(coalesce(c.amount, 0)) OVER w AS balance
        FROM months m
        LEFT JOIN firsts f ON f.as_of = m.as_of
        LEFT JOIN charged c ON c.as_of = m.as_of
        WINDOW w AS (ORDER BY m.as_of ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    )
    SELECT as_of, bucket, count(*) AS loans, sum(bal) AS balance
    FROM active
    WHERE bucket IN ('current', 'M1', 'M2', 'M3', 'default')
    GROUP BY as_of, bucket
    UNION ALL
    SELECT as_of, 'written_off' AS bucket, loans, balance
    FROM written WHERE as_of BETWEEN ? AND ?
    ORDER BY as_of, bucket
    """
    frame = _fetch(con, sql, [last, first, last, last, first, last])
    frame["loans"] = frame["loans"].astype("int64")
    return _dates_to_python(frame, ("as_of",))


# --------------------------------------------------------------------------- roll rates


def roll_counts(
    con: duckdb.DuckDBPyConnection, from_date: dt.date, to_date: dt.date
) -> pd.DataFrame:
    """Loans and ``from_date`` balance by (bucket at ``from_date``, state at ``to_date``),
    for the loans outstanding at ``from_date``.

    The state at ``to_date`` is the bucket of the loan's row at ``to_date``; a loan whose
    last row in (from_date, to_date] is earlier but closed it (written off, prepaid, matured,
    paid off) keeps that exit state (closed loans may stop reporting); any other loan with
    no row at ``to_date`` is ``not_reported``. Columns: from_bucket, to_bucket, loans,
    balance.
    """
    sql = f"""
    WITH {_WRITE_OFFS},
    b AS (
        SELECT p.loan_id, p.as_of, CAST(p.balance AS DOUBLE) AS bal, {_BUCKET} AS bucket
        FROM loan_performance p
        LEFT JOIN wo ON wo.loan_id = p.loan_id
        WHERE p.as_of BETWEEN ? AND ?
    ),
    f AS (SELECT loan_id, bal, bucket FROM b
          WHERE as_of = ? AND bucket IN ('current', 'M1', 'M2', 'M3', 'default')),
    t AS (SELECT loan_id, arg_max(bucket, as_of) AS bucket, max(as_of) AS last_as_of
          FROM b WHERE as_of > ? GROUP BY loan_id)
    SELECT f.bucket AS from_bucket,
           CASE WHEN t.loan_id IS NULL THEN 'not_reported'
                WHEN t.last_as_of < ?
                     AND t.bucket IN ('current', 'M1', 'M2', 'M3', 'default')
                    THEN 'not_reported'
                ELSE t.bucket END AS to_bucket,
           count(*) AS loans, sum(f.bal) AS balance
    FROM f LEFT JOIN t ON t.loan_id = f.loan_id
    GROUP BY ALL
    """
    return _fetch(con, sql, [from_date, to_date, from_date, from_date, to_date])


# --------------------------------------------------------------------------- vintages


def vintage_events(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> pd.DataFrame:
    """Per origination month (vintage) and months on book: the vintage's loans and original
    balance, defaulted amount and recoveries in that month on book, and the cumulative
    sums; cells beyond the vintage's observed months on book are NULL.

    Columns: vintage, mob, loans, original_balance, defaulted, recovered, cum_defaulted,
    cum_recovered (cumulative columns NULL where mob is beyond what ``as_of`` has observed).
    """
    sql = f"""
    WITH {_DEFAULTS},
    l AS (
        SELECT loan_id, CAST(date_trunc('month', origination_date) AS DATE) AS vintage,
               CAST(principal AS DOUBLE) AS principal
        FROM loans WHERE origination_date <= ?
    ),
    v AS (SELECT vintage, count(*) AS loans, sum(principal) AS original_balance
          FROM l GROUP BY vintage),
    obs AS (
        SELECT l.vintage, min(p.months_on_book) AS min_mob, max(p.months_on_book) AS max_mob
        FROM loan_performance p JOIN l ON l.loan_id = p.loan_id
        WHERE p.as_of <= ?
        GROUP BY l.vintage
    ),
    dft AS (
        SELECT l.vintage, d.d_mob AS mob, sum(d.d_amount) AS amount
        FROM d JOIN l ON l.loan_id = d.loan_id GROUP BY ALL
    ),
    rec AS (
        SELECT l.vintage, p.months_on_book AS mob, sum(CAST(p.recovery AS DOUBLE)) AS amount
        FROM loan_performance p JOIN l ON l.loan_id = p.loan_id
        WHERE p.recovery > 0 AND p.as_of <= ?
        GROUP BY ALL
    ),
    grid AS (
        SELECT obs.vintage, CAST(g.mob AS INTEGER) AS mob, obs.max_mob
        FROM obs,
             LATERAL (SELECT unnest(range(obs.min_mob, obs.max_mob + 1)) AS mob) g
    ),
    cells AS (
        SELECT grid.vintage, grid.mob, v.loans, v.original_balance,
               coalesce(dft.amount, 0) AS defaulted, coalesce(rec.amount, 0) AS recovered
        FROM grid
        JOIN v ON v.vintage = grid.vintage
        LEFT JOIN dft ON dft.vintage = grid.vintage AND dft.mob = grid.mob
        LEFT JOIN rec ON rec.vintage = grid.vintage AND rec.mob = grid.mob
    )
    SELECT vintage, mob, loans, original_balance, defaulted, recovered,
           sum(defaulted) OVER w AS cum_defaulted,
           sum(recovered) OVER w AS cum_recovered
    FROM cells
    WINDOW w AS (PARTITION BY vintage ORDER BY mob
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    ORDER BY vintage, mob
    """
    frame = _fetch(con, sql, [as_of, as_of, as_of, as_of])
    return _dates_to_python(frame, ("vintage",))


# --------------------------------------------------------------------------- monthly rates


def monthly_flows(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> pd.DataFrame:
    """One row per month-end ``t`` ≤ ``as_of`` whose previous month-end ``s`` is on file.

    A loan is *performing at the start of t* when it is in ``current`` … ``M3`` at ``s``.
    Its flows in month t are counted when it was originated on or before ``s`` and had no
    default event on or before ``s`` — the same loans, when every open loan reports every
    month-end (one scan grouped by month, no self-join).

    Columns: as_of, performing_start, new_default, scheduled_principal, prepaid_principal,
    daily_start, daily_principal_repaid, charge_off, recovery; and ``loans_start`` (the loans
    performing at ``s``) and ``loans_reported`` (the rows at ``t`` of loans originated on or
    before ``s`` and not defaulted by then): equal when every loan performing at ``s`` reports
    at ``t``, fewer when the month's performance tape is incomplete.
    """
    sql = f"""
    WITH {_WRITE_OFFS},
    {_DEFAULTS},
    la AS (
        SELECT l.loan_id, l.origination_date, l.repayment_type = 'daily_interest' AS daily,
               wo.wo_date, d.d_date, d.d_amount
        FROM loans l
        LEFT JOIN wo ON wo.loan_id = l.loan_id
        LEFT JOIN d ON d.loan_id = l.loan_id
    ),
    rows AS (
        SELECT p.as_of,
               last_day(p.as_of - INTERVAL 1 MONTH) AS prev,
               CAST(p.balance AS DOUBLE) AS bal,
               CAST(p.paid_principal AS DOUBLE) AS paid,
               CAST(p.prepaid_principal AS DOUBLE) AS prepaid,
               CAST(p.charge_off AS DOUBLE) AS charge_off,
               CAST(p.recovery AS DOUBLE) AS recovery,
               la.daily, la.d_date, la.d_amount,
               la.origination_date <= last_day(p.as_of - INTERVAL 1 MONTH)
                   AND (la.d_date IS NULL OR la.d_date > last_day(p.as_of - INTERVAL 1 MONTH))
                   AS perf,
               {_BUCKET.replace("wo.wo_date", "la.wo_date")} AS bucket
        FROM loan_performance p
        JOIN la ON la.loan_id = p.loan_id
        WHERE p.as_of <= ?
    ),
    monthly AS (
        SELECT as_of, prev,
               coalesce(sum(bal) FILTER (WHERE bucket IN ('current', 'M1', 'M2', 'M3')), 0)
                   AS performing_end,
               coalesce(sum(bal) FILTER (WHERE bucket IN ('current', 'M1', 'M2', 'M3')
                                               AND daily), 0) AS daily_end,
               coalesce(sum(d_amount) FILTER (WHERE d_date = as_of), 0) AS new_default,
               coalesce(sum(paid) FILTER (WHERE perf), 0) AS scheduled_principal,
               coalesce(sum(prepaid) FILTER (WHERE perf), 0) AS prepaid_principal,
               coalesce(sum(paid + prepaid) FILTER (WHERE perf AND daily), 0)
                   AS daily_principal_repaid,
               sum(charge_off) AS charge_off,
               sum(recovery) AS recovery,
               count(*) FILTER (WHERE bucket IN ('current', 'M1', 'M2', 'M3')) AS loans_end,
               count(*) FILTER (WHERE perf) AS loans_perf
        FROM rows
        GROUP BY as_of, prev
    )
    SELECT t.as_of, s.performing_end AS performing_start, t.new_default,
           t.scheduled_principal, t.prepaid_principal,
           s.daily_end AS daily_start, t.daily_principal_repaid,
           t.charge_off, t.recovery,
           s.loans_end AS loans_start, t.loans_perf AS loans_reported
    FROM monthly t JOIN monthly s ON s.as_of = t.prev
    ORDER BY t.as_of
    """
    frame = _fetch(con, sql, [as_of, as_of])
    return _dates_to_python(frame, ("as_of",))
