"""Performance analytics of the loan book (docs/model.md, "Book analytics"): summary and calibration anchors,
delinquency buckets, roll rates, vintage curves and monthly MDR/CDR, SMM/CPR and MPR.

The group-bys run in DuckDB (``portfolio.store.analytics``, which also defines the buckets,
the outstanding/performing book and the default event); this module turns the aggregated
rows into ratios and tables. Every function takes an open connection (a read-only one is
enough) and an optional month-end ``as_of`` (default: the latest month-end on file).

Definitions (all ratios are decimals, by balance unless said otherwise):

- 30+ / 90+ DPD ratio at t = balance with ``dpd > 30`` (``> 90``) / balance outstanding at
  t (``current`` … ``default``: open loans, delinquent included, not written off).
- Roll rate b → b′ from t₀ to t₁ = balance at t₀ of the loans in bucket b at t₀ that are in
  b′ at t₁, over the balance in b at t₀; cure rate = share that is back in ``current``.
  Destinations are the buckets plus the exit states ``written_off``, ``prepaid``,
  ``matured``, ``paid_off`` (a closed loan that stopped reporting keeps its exit state) and
  ``not_reported`` (an open loan with no row at t₁ — a gap in the tape).
- Vintage curve = cumulative defaulted amount (net loss: minus cumulative recoveries) as a
  share of the vintage's original principal, by months on book.
- MDR(t) = balance newly defaulted in month t / performing balance at the start of t (the
  previous month-end); CDR = 1 − (1 − MDR)^12.
- SMM(t) = prepaid principal / (performing balance at start − scheduled principal); the
  *scheduled principal* is the regular (non-prepayment) principal the performing loans
  actually paid in month t, ``sum(paid_principal)``; ``paid_principal`` excludes
  ``prepaid_principal``. CPR = 1 − (1 − SMM)^12.
- MPR(t), daily-interest loans only = (paid + prepaid principal) / their performing balance
  at the start of t.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import numpy as np
import numpy.typing as npt
import pandas as pd

from portfolio.errors import ValidationError, must_be
from portfolio.loans.types import SCORE_BAND_LABELS
from portfolio.store import analytics as sql

BUCKETS: tuple[str, ...] = ("current", "M1", "M2", "M3", "default", "written_off")
ACTIVE_BUCKETS: tuple[str, ...] = sql.ACTIVE_BUCKETS
ROLL_TO_STATES: tuple[str, ...] = (
    *ACTIVE_BUCKETS,
    "written_off",
    "prepaid",
    "matured",
    "paid_off",
    "not_reported",
)
# Seasoned = at least this many calendar months since origination: a 12-month loan's whole
# term plus the 3 months its last missed instalment needs to pass 90 DPD.
SEASONED_MONTHS = 15
BAND_TOTAL = "all seasoned"  # the total row of BookSummary.default_by_score_band
ANCHOR_TERM_MONTHS = 12


def annualise(monthly: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """CDR from MDR, CPR from SMM: 1 − (1 − m)^12 (NaN stays NaN)."""
    m = np.asarray(monthly, dtype=np.float64)
    with np.errstate(divide="ignore"):  # m = 1 → log1p(−1) = −inf → 1
        return -np.expm1(12.0 * np.log1p(-m))


def _ratio(num: pd.Series | float, den: pd.Series | float) -> pd.Series | float:
    """num / den, NaN where the denominator is not positive."""
    if isinstance(den, pd.Series):
        return num / den.where(den > 0)
    return float(num) / den if den > 0 else float("nan")


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True, slots=True)
class Anchors:
    """The calibration-anchor figures (docs/model.md, "Book analytics"), measured on the book at ``as_of``."""

    as_of: dt.date
    dpd30_ratio: float
    dpd90_ratio: float
    seasoned_default_rate: float  # cum. defaulted / principal, seasoned 12-month loans
    seasoned_loans: int
    seasoned_defaulted_loans: int

    def table(self) -> pd.DataFrame:
        seasoned = (
            f"{ANCHOR_TERM_MONTHS}-month loans originated ≥ {SEASONED_MONTHS} months before "
            f"as-of ({self.seasoned_loans:,} loans, {self.seasoned_defaulted_loans:,} "
            "defaulted): cumulative defaulted amount / original principal"
        )
        return pd.DataFrame(
            {
                "figure": ["30+ DPD ratio", "90+ DPD ratio", "lifetime default, seasoned"],
                "value": [self.dpd30_ratio, self.dpd90_ratio, self.seasoned_default_rate],
                "definition": [
                    "balance with dpd > 30 / outstanding balance (not written off)",
                    "balance with dpd > 90 / outstanding balance (not written off)",
                    seasoned,
                ],
                "reference": [
                    "Ant consumer credit 1.08% / 1.43% / 1.56% (end-2017/18/19)",
                    "Ant consumer credit 0.68% / 1.01% / 1.05%; seasoned book ≈ 1%",
                    "Fitch, 360 Microcredit 2023: base-case lifetime default 2.5% (2–3%)",
                ],
            }
        )


@dataclass(frozen=True, slots=True, eq=False)
class BookSummary:
    """``groups``: one row overall (dimension ``all``) and one per product, repayment type,
    score band, term and region — dimension, group, loans, balance, balance_share, wa_apr,
    wa_score, wa_remaining_term (months), dpd30_ratio, dpd90_ratio.
    ``default_by_score_band``: loans originated ≥ ``SEASONED_MONTHS`` months before as-of
    (all terms) — loans, principal, defaulted_loans, defaulted_balance, default_rate
    (defaulted balance / principal), default_rate_loans (by count); one row per score band,
    then their total, ``BAND_TOTAL``."""

    as_of: dt.date
    groups: pd.DataFrame
    anchors: Anchors
    default_by_score_band: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "summary": self.groups,
            "anchors": self.anchors.table(),
            "default_by_score_band": self.default_by_score_band,
        }


def book_summary(con: duckdb.DuckDBPyConnection, as_of: dt.date | None = None) -> BookSummary:
    """The outstanding book at ``as_of`` by dimension, with the calibration anchors."""
    as_of = sql.resolve_month_end(con, as_of)
    raw = sql.summary_groups(con, as_of)
    seasoned = sql.seasoned_default(
        con, as_of, min_age_months=SEASONED_MONTHS, anchor_term=ANCHOR_TERM_MONTHS
    )
    groups = raw.copy()
    total = float(groups.loc[groups["dimension"] == "all", "balance"].sum())
    groups.insert(4, "balance_share", groups["balance"] / total if total > 0 else np.nan)
    groups["dpd30_ratio"] = _ratio(groups.pop("dpd30_balance"), groups["balance"])
    groups["dpd90_ratio"] = _ratio(groups.pop("dpd90_balance"), groups["balance"])
    groups["loans"] = groups["loans"].astype("int64")
    return BookSummary(
        as_of, groups, _anchors(as_of, raw, seasoned), _default_by_band(seasoned)
    )


def book_anchors(con: duckdb.DuckDBPyConnection, as_of: dt.date | None = None) -> Anchors:
    """Only the anchor figures (30+/90+ DPD ratio, seasoned 12-month lifetime default)."""
    as_of = sql.resolve_month_end(con, as_of)
    seasoned = sql.seasoned_default(
        con, as_of, min_age_months=SEASONED_MONTHS, anchor_term=ANCHOR_TERM_MONTHS
    )
    return _anchors(as_of, sql.summary_groups(con, as_of), seasoned)


def _anchors(as_of: dt.date, groups: pd.DataFrame, seasoned: pd.DataFrame) -> Anchors:
    overall = groups[groups["dimension"] == "all"]
    if overall.empty:
        dpd30 = dpd90 = float("nan")
    else:
        row = overall.iloc[0]
        dpd30 = _ratio(float(row["dpd30_balance"]), float(row["balance"]))
        dpd90 = _ratio(float(row["dpd90_balance"]), float(row["balance"]))
    cohort = seasoned[seasoned["anchor_term"].astype(bool)]
    return Anchors(
        as_of=as_of,
        dpd30_ratio=float(dpd30),
        dpd90_ratio=float(dpd90),
        seasoned_default_rate=float(
            _ratio(float(cohort["defaulted_balance"].sum()), float(cohort["principal"].sum()))
        ),
        seasoned_loans=int(cohort["loans"].sum()),
        seasoned_defaulted_loans=int(cohort["defaulted_loans"].sum()),
    )


def _default_by_band(seasoned: pd.DataFrame) -> pd.DataFrame:
    cols = ["loans", "principal", "defaulted_loans", "defaulted_balance"]
    frame = (
        seasoned.groupby("score_band")[cols].sum()
        .reindex(list(SCORE_BAND_LABELS), fill_value=0)
        .rename_axis("score_band")
        .reset_index()
    )
    for col in ("loans", "defaulted_loans"):
        frame[col] = frame[col].astype("int64")
    for col in ("principal", "defaulted_balance"):
        frame[col] = frame[col].astype("float64")
    # the bands split the seasoned loans: their total row (every term; the anchor's lifetime
    # default is the 12-month loans' alone)
    total = pd.DataFrame({"score_band": [BAND_TOTAL], **{
        c: [frame[c].sum()] for c in cols}}).astype(frame.dtypes.to_dict())
    frame = pd.concat([frame, total], ignore_index=True)
    frame["default_rate"] = _ratio(frame["defaulted_balance"], frame["principal"])
    frame["default_rate_loans"] = _ratio(
        frame["defaulted_loans"].astype(float), frame["loans"].astype(float)
    )
    return frame


# --------------------------------------------------------------------------- delinquency


@dataclass(frozen=True, slots=True, eq=False)
class Delinquency:
    """``buckets``: bucket, loans, balance, balance_share (of the outstanding balance; NaN
    for ``written_off``, whose balance is the cumulative amount charged off to ``as_of``).
    ``over_time`` (optional): one row per month-end, ``<bucket>_loans`` and
    ``<bucket>_balance`` columns."""

    as_of: dt.date
    buckets: pd.DataFrame
    over_time: pd.DataFrame | None

    def tables(self) -> dict[str, pd.DataFrame]:
        out = {"delinquency": self.buckets}
        if self.over_time is not None:
            out["delinquency_by_month"] = self.over_time
        return out


def delinquency(
    con: duckdb.DuckDBPyConnection, as_of: dt.date | None = None, *, over_time: bool = False
) -> Delinquency:
    """Delinquency buckets at ``as_of`` (and, if asked, at every month-end up to it)."""
    as_of = sql.resolve_month_end(con, as_of)
    first = sql.month_ends(con)[0] if over_time else as_of
    long = sql.delinquency_by_month(con, first, as_of)
    at = long[long["as_of"] == as_of].set_index("bucket")
    buckets = pd.DataFrame({"bucket": list(BUCKETS)})
    buckets["loans"] = [int(at["loans"].get(b, 0)) for b in BUCKETS]
    buckets["balance"] = [float(at["balance"].get(b, 0.0)) for b in BUCKETS]
    outstanding = float(buckets.loc[buckets["bucket"].isin(ACTIVE_BUCKETS), "balance"].sum())
    share = buckets["balance"] / outstanding if outstanding > 0 else np.nan
    buckets["balance_share"] = np.where(buckets["bucket"] == "written_off", np.nan, share)
    wide = None
    if over_time:
        pivot = long.pivot_table(
            index="as_of", columns="bucket", values=["loans", "balance"], fill_value=0
        )
        wide = pd.DataFrame({"as_of": pivot.index})
        for b in BUCKETS:
            for measure in ("loans", "balance"):
                col = (measure, b)
                values = pivot[col].to_numpy() if col in pivot.columns else 0
                wide[f"{b}_{measure}"] = values
            wide[f"{b}_loans"] = wide[f"{b}_loans"].astype("int64")
    return Delinquency(as_of, buckets, wide)


def delinquency_shares(over_time: pd.DataFrame) -> pd.DataFrame:
    """Each delinquent bucket's balance as a share of the outstanding balance, month by month:
    ``as_of``, ``M1``, ``M2``, ``M3``, ``default`` and ``dpd30`` (their sum, the 30+ DPD
    ratio). ``over_time``: ``Delinquency.over_time`` (``<bucket>_balance`` columns); the
    outstanding balance is the sum over ``ACTIVE_BUCKETS`` (written-off balance excluded, as
    in ``Delinquency.buckets``); a month with none gives NaN."""
    outstanding = sum(over_time[f"{b}_balance"].to_numpy(dtype=np.float64)
                      for b in ACTIVE_BUCKETS)
    out = pd.DataFrame({"as_of": over_time["as_of"].to_numpy()})
    with np.errstate(divide="ignore", invalid="ignore"):
        for b in ("M1", "M2", "M3", "default"):
            out[b] = np.where(outstanding > 0, over_time[f"{b}_balance"].to_numpy(np.float64)
                              / np.where(outstanding > 0, outstanding, 1.0), np.nan)
    out["dpd30"] = out[["M1", "M2", "M3", "default"]].sum(axis=1, min_count=4)
    return out


TOTAL_OUTSTANDING = "total outstanding"


def with_open_total(buckets: pd.DataFrame) -> pd.DataFrame:
    """``Delinquency.buckets`` with the open buckets' total row, ``TOTAL_OUTSTANDING``
    (current to default: the outstanding book, the book summary's balance, share 1), inserted
    before ``written_off`` (cumulative, not part of it). The CLI's ``book delinquency``, the
    Book page and the report show this table."""
    if not len(buckets) or TOTAL_OUTSTANDING in set(buckets["bucket"]):
        return buckets
    is_open = buckets["bucket"] != "written_off"
    total = pd.DataFrame({"bucket": [TOTAL_OUTSTANDING],
                          "loans": [int(buckets.loc[is_open, "loans"].sum())],
                          "balance": [float(buckets.loc[is_open, "balance"].sum())],
                          "balance_share": [float(buckets.loc[is_open, "balance_share"].sum())]})
    total = total.astype(buckets.dtypes.to_dict())
    return pd.concat([buckets[is_open], total, buckets[~is_open]], ignore_index=True)


# --------------------------------------------------------------------------- roll rates


@dataclass(frozen=True, slots=True, eq=False)
class RollRates:
    """``matrix``: one row per bucket at ``from_date`` — from_bucket, loans, balance (at
    ``from_date``), then for each state of ``ROLL_TO_STATES`` the share of that balance found
    there at ``to_date`` (each row sums to 1), then ``roll_forward`` (share one bucket worse:
    current→M1, …, M3→default, default→written_off) and ``cure_rate`` (share back to
    ``current``; NaN for the current row). Rows with no balance have NaN shares."""

    from_date: dt.date
    to_date: dt.date
    matrix: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """The matrix with its total row (:func:`with_roll_total`)."""
        return {"roll_rates": with_roll_total(self.matrix)}


ROLL_TOTAL = "total"


def with_roll_total(matrix: pd.DataFrame) -> pd.DataFrame:
    """The roll-rate matrix with its total row, ``ROLL_TOTAL``: the from-buckets split the
    outstanding balance at ``from_date``, so loans and balance are their sums (the book's
    outstanding then) and each state's share, and ``roll_forward``, the balance-weighted
    average of the rows' (the share of the whole balance found in that state at
    ``to_date``: the row sums to 1); ``cure_rate`` is left empty (the current row has none).
    ``riskpool book rolls``, the Book page's roll-rate table and the report show it; the
    heat map draws the buckets alone."""
    if not len(matrix) or ROLL_TOTAL in set(matrix["from_bucket"]):
        return matrix
    balance = matrix["balance"].to_numpy(dtype=np.float64)
    total_balance = float(balance.sum())
    row: dict[str, object] = {"from_bucket": ROLL_TOTAL,
                              "loans": int(matrix["loans"].sum()), "balance": total_balance}
    for col in (*ROLL_TO_STATES, "roll_forward"):
        if col in matrix:
            shares = np.nan_to_num(matrix[col].to_numpy(dtype=np.float64))  # NaN: no balance
            row[col] = (float((shares * balance).sum()) / total_balance if total_balance > 0
                        else float("nan"))
    if "cure_rate" in matrix:
        row["cure_rate"] = float("nan")
    out = matrix.copy()
    out.loc[len(out)] = row
    out["loans"] = out["loans"].astype("int64")
    return out


def roll_rates(
    con: duckdb.DuckDBPyConnection,
    from_date: dt.date | None = None,
    to_date: dt.date | None = None,
) -> RollRates:
    """Roll-rate matrix by balance between two month-ends (default: the latest month-end
    and the one before it)."""
    to_date = sql.resolve_month_end(con, to_date, "--to")
    if from_date is None:
        from_date = _previous_month_end(to_date)
    from_date = sql.resolve_month_end(con, from_date, "--from")
    if from_date >= to_date:
        raise ValidationError(
            must_be("--from", f"a month-end before --to ({to_date.isoformat()})",
                    from_date.isoformat())
        )
    counts = sql.roll_counts(con, from_date, to_date)
    bal = counts.pivot_table(
        index="from_bucket", columns="to_bucket", values="balance", aggfunc="sum", fill_value=0
    ).reindex(index=list(ACTIVE_BUCKETS), columns=list(ROLL_TO_STATES), fill_value=0.0)
    loans = counts.groupby("from_bucket")["loans"].sum().reindex(list(ACTIVE_BUCKETS),
                                                                fill_value=0)
    from_balance = bal.sum(axis=1)
    shares = bal.div(from_balance.where(from_balance > 0), axis=0)
    matrix = pd.DataFrame(
        {
            "from_bucket": list(ACTIVE_BUCKETS),
            "loans": loans.to_numpy().astype("int64"),
            "balance": from_balance.to_numpy(),
        }
    )
    for state in ROLL_TO_STATES:
        matrix[state] = shares[state].to_numpy()
    forward = {b: nxt for b, nxt in zip(ACTIVE_BUCKETS, (*ACTIVE_BUCKETS[1:], "written_off"),
                                        strict=True)}
    matrix["roll_forward"] = [shares.loc[b, forward[b]] for b in ACTIVE_BUCKETS]
    matrix["cure_rate"] = [
        np.nan if b == "current" else shares.loc[b, "current"] for b in ACTIVE_BUCKETS
    ]
    return RollRates(from_date, to_date, matrix)


def _previous_month_end(day: dt.date) -> dt.date:
    return day.replace(day=1) - dt.timedelta(days=1)


# --------------------------------------------------------------------------- vintages


@dataclass(frozen=True, slots=True, eq=False)
class VintageCurves:
    """Wide tables, one row per origination month: vintage, loans, original_balance, then
    one column per months on book (int labels) — ``cumulative_default`` (cumulative defaulted
    amount / original principal) and ``net_loss`` ((defaulted − recovered) / original
    principal). Months on book outside the vintage's observed rows (not yet reached at
    ``as_of``, or before the first row on file) are NaN; a vintage with no performance row
    up to ``as_of`` has no curve."""

    as_of: dt.date
    cumulative_default: pd.DataFrame
    net_loss: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"cumulative_default": self.cumulative_default, "net_loss": self.net_loss}


def vintage_curves(
    con: duckdb.DuckDBPyConnection, as_of: dt.date | None = None
) -> VintageCurves:
    """Cumulative default and net-loss curves by vintage and months on book."""
    as_of = sql.resolve_month_end(con, as_of)
    long = sql.vintage_events(con, as_of)
    long["cum_default_rate"] = long["cum_defaulted"] / long["original_balance"]
    long["net_loss_rate"] = (long["cum_defaulted"] - long["cum_recovered"]) / long[
        "original_balance"
    ]
    head = long.groupby("vintage", sort=True)[["loans", "original_balance"]].first()
    head["loans"] = head["loans"].astype("int64")

    def wide(value: str) -> pd.DataFrame:
        curves = long.pivot(index="vintage", columns="mob", values=value)
        if not curves.empty:
            mobs = range(int(long["mob"].min()), int(long["mob"].max()) + 1)
            curves = curves.reindex(columns=list(mobs))
        curves.columns = [int(c) for c in curves.columns]
        return head.join(curves).reset_index()

    return VintageCurves(as_of, wide("cum_default_rate"), wide("net_loss_rate"))


# --------------------------------------------------------------------------- monthly rates


@dataclass(frozen=True, slots=True, eq=False)
class MonthlyRates:
    """One row per month-end with a previous month-end on file: as_of, performing_start,
    new_default, mdr, cdr, scheduled_principal, prepaid_principal, smm, cpr, daily_start,
    daily_principal_repaid, mpr, charge_off, recovery (amounts of the month).

    ``incomplete``: the months whose performance is not on file for every loan performing at
    the month's start — (month-end, loans performing at the start, of which reported) — whose
    rates (MDR, CDR, SMM, CPR, MPR) are left blank: a month reported for part of the book would
    show the other loans' defaults and prepayments as 0."""

    as_of: dt.date
    series: pd.DataFrame
    incomplete: tuple[tuple[dt.date, int, int], ...] = ()

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"rates": self.series}

    def incomplete_table(self) -> pd.DataFrame:
        """``incomplete`` as a table: as_of, loans_start, loans_reported (one row a month)."""
        return incomplete_frame(self.incomplete)


def _day(value: object) -> dt.date:
    """A month-end as a ``datetime.date`` (from a date, a datetime or a pandas Timestamp)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()  # type: ignore[arg-type]


INCOMPLETE_COLUMNS: tuple[str, ...] = ("as_of", "loans_start", "loans_reported")


def incomplete_frame(incomplete: tuple[tuple[dt.date, int, int], ...]) -> pd.DataFrame:
    """``MonthlyRates.incomplete`` as a table (``INCOMPLETE_COLUMNS``)."""
    return pd.DataFrame({"as_of": pd.Series([m for m, _, _ in incomplete], dtype=object),
                         "loans_start": pd.Series([n for _, n, _ in incomplete], dtype="int64"),
                         "loans_reported": pd.Series([k for _, _, k in incomplete],
                                                     dtype="int64")})


def incomplete_from_frame(frame: pd.DataFrame) -> tuple[tuple[dt.date, int, int], ...]:
    """:func:`incomplete_frame` read back."""
    if frame is None or not len(frame):
        return ()
    return tuple((_day(d), int(n), int(k)) for d, n, k in zip(
        frame["as_of"], frame["loans_start"], frame["loans_reported"], strict=True))


def partial_month_note(as_of: dt.date, incomplete: tuple[tuple[dt.date, int, int], ...],
                       month_ends: tuple[dt.date, ...] | list[dt.date],
                       choose: str = "--as-of") -> str | None:
    """The note a book table at ``as_of`` carries when ``as_of`` is a month-end reported for
    part of the book (``incomplete``, as ``MonthlyRates.incomplete``): how many of the loans
    performing a month before have a row then, and the latest complete month-end on or before
    it among ``month_ends`` (``choose``: where the reader picks another month-end); ``None``
    when ``as_of`` is complete. The CLI prints it under ``book summary`` / ``book
    delinquency``; the dashboard's Book page and the report show it."""
    short = {m for m, _, _ in incomplete}
    for month, start, reported in incomplete:
        if month != as_of:
            continue
        done = [d for d in sorted(month_ends) if d <= as_of and d not in short]
        latest = f"; the latest complete month-end is {done[-1].isoformat()}" if done else ""
        return (f"note: only {reported:,} of the {start:,} loans performing a month before "
                f"{as_of.isoformat()} have a performance row then: these figures cover the "
                f"loans reported at {as_of.isoformat()}, not the whole book{latest} "
                f"({choose})")
    return None


def blank_incomplete_months(frame: pd.DataFrame,
                            incomplete: tuple[tuple[dt.date, int, int], ...],
                            keep: tuple[str, ...] = ("as_of",)) -> pd.DataFrame:
    """``frame`` (one row per month-end, ``as_of``) with every column but ``keep`` blank (NaN)
    in the months reported for part of the book: their balances and shares are those of the
    loans that reported, not the book's (a delinquency share of 0% where the tape is
    missing). Integer columns become float to hold the gap."""
    months = {m for m, _, _ in incomplete}
    if not months or not len(frame):
        return frame
    short = np.array([_day(d) in months for d in frame["as_of"]], dtype=bool)
    if not short.any():
        return frame
    out = frame.copy()
    for col in out.columns:
        if col in keep:
            continue
        if pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].astype("float64")
        out.loc[short, col] = np.nan
    return out


def monthly_rates(
    con: duckdb.DuckDBPyConnection, as_of: dt.date | None = None
) -> MonthlyRates:
    """Monthly MDR/CDR, SMM/CPR and MPR up to ``as_of`` (definitions in the module doc)."""
    as_of = sql.resolve_month_end(con, as_of)
    f = sql.monthly_flows(con, as_of)
    out = pd.DataFrame({"as_of": f["as_of"], "performing_start": f["performing_start"]})
    out["new_default"] = f["new_default"]
    out["mdr"] = _ratio(f["new_default"], f["performing_start"])
    out["cdr"] = annualise(out["mdr"])
    out["scheduled_principal"] = f["scheduled_principal"]
    out["prepaid_principal"] = f["prepaid_principal"]
    out["smm"] = _ratio(f["prepaid_principal"], f["performing_start"] - f["scheduled_principal"])
    out["cpr"] = annualise(out["smm"])
    out["daily_start"] = f["daily_start"]
    out["daily_principal_repaid"] = f["daily_principal_repaid"]
    out["mpr"] = _ratio(f["daily_principal_repaid"], f["daily_start"])
    out["charge_off"] = f["charge_off"]
    out["recovery"] = f["recovery"]
    short = (f["loans_reported"] < f["loans_start"]).to_numpy()
    out.loc[short, ["mdr", "cdr", "smm", "cpr", "mpr"]] = np.nan
    incomplete = tuple((d, int(n), int(k)) for d, n, k in zip(
        f.loc[short, "as_of"], f.loc[short, "loans_start"], f.loc[short, "loans_reported"],
        strict=True))
    return MonthlyRates(as_of, out, incomplete)
