"""Pools: eligibility criteria, immutable snapshots and stratification tables.

A pool is cut from the book at a cut-off date (a month-end, because performance is recorded at
month-ends). The snapshot is written once and never changed: ``pool_loans`` keeps each loan's
cut-off balance, remaining term and months on book.

Order in which loans are excluded (each excluded loan is counted under the FIRST rule it
fails; ``EXCLUSION_ORDER``):

 1. ``originated_after_cutoff``   origination date later than the cut-off
 2. ``no_performance_at_cutoff``  no ``loan_performance`` row at the cut-off month-end
 3. ``not_performing``            status default, prepaid or matured, written off
                                  (charge-off > 0), or balance 0 at the cut-off
 4. ``past_maturity``             no instalment left (months on book ≥ original term)
 5. ``dpd``                       days past due above ``dpd_max`` (default 0: current only)
 6. ``score``                     credit score below ``score_min``
 7. ``term``                      original term not in ``terms``
 8. ``repayment_type``            repayment type not in ``repayment_types``
 9. ``region``                    region not in ``regions_include`` or in ``regions_exclude``
10. ``principal``                 original principal outside [principal_min, principal_max]
11. ``balance``                   cut-off balance outside [balance_min, balance_max]
12. ``origination_window``        originated outside [originated_from, originated_to]
13. ``apr``                       cash-flow APR (``schedules.product_apr``: the stated rate for the
                                  four interest-bearing types, above it for a flat fee) outside
                                  [apr_min, apr_max]
14. ``obligor_concentration``     a borrower's share of the pool balance above
                                  ``max_obligor_share``
15. ``region_concentration``      a region's share of the pool balance above ``max_region_share``

Concentration limits (14, 15) are applied after every eligibility filter, in that order, and
repeated until neither binds (removing loans raises the other shares). Within an obligor or a
region over its limit, loans are removed largest cut-off balance first, then latest
origination, then greatest ``loan_id``, until the group's balance is within the limit of the
current pool balance. The result depends on the book, the criteria and the cut-off only.

The snapshot copies each loan's static fields (APR, score, term, repayment type, region,
origination date, principal) beside its cut-off state, so it reads back without a join.

Months on book at the cut-off are whole calendar months from the origination month to the
cut-off month (0 for a loan originated in the cut-off month); remaining term = original term −
months on book; the next due date is the origination day of month in the month after the
cut-off (the month's last day when it is shorter: the end-of-month rule).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from portfolio.book.households import write_pool_households
from portfolio.errors import NotFound, ValidationError, must_be
from portfolio.loans.arrays import LoanArrays
from portfolio.loans.schedules import product_apr
from portfolio.loans.types import (
    ALLOWED_TERMS,
    PRINCIPAL_MAX,
    SCORE_BAND_LABELS,
    SCORE_BANDS,
    SCORE_MAX,
    SCORE_MIN,
    RepaymentType,
)
from portfolio.store import pools as sql
from portfolio.store.core import Store
from portfolio.validation import (
    Check,
    Date,
    Field,
    Interval,
    ListOf,
    Options,
    SchemaError,
    Str,
    Table,
    read_toml,
    validate,
)

EXCLUSION_ORDER: tuple[tuple[str, str], ...] = (
    ("originated_after_cutoff", "originated after the cut-off"),
    ("no_performance_at_cutoff", "no performance row at the cut-off month-end (closed "
     "earlier or not reported)"),
    ("not_performing", "defaulted, prepaid, matured, written off or zero balance at cut-off"),
    ("past_maturity", "no instalment left at the cut-off"),
    ("dpd", "days past due above dpd_max"),
    ("score", "credit score below score_min"),
    ("term", "original term not in terms"),
    ("repayment_type", "repayment type not in repayment_types"),
    ("region", "region not included or excluded"),
    ("principal", "principal outside [principal_min, principal_max]"),
    ("balance", "cut-off balance outside [balance_min, balance_max]"),
    ("origination_window", "originated outside [originated_from, originated_to]"),
    ("apr", "APR outside [apr_min, apr_max]"),
    ("obligor_concentration", "borrower above max_obligor_share of the pool balance"),
    ("region_concentration", "region above max_region_share of the pool balance"),
)

_ELIGIBILITY_KEYS = (
    "score_min", "dpd_max", "terms", "repayment_types", "regions_include", "regions_exclude",
    "principal_min", "principal_max", "balance_min", "balance_max", "originated_from",
    "originated_to", "apr_min", "apr_max",
)
_CONCENTRATION_KEYS = ("max_obligor_share", "max_region_share")
# every key a criteria file can hold, by table (the dashboard's form offers each one)
ELIGIBILITY_KEYS, CONCENTRATION_KEYS = _ELIGIBILITY_KEYS, _CONCENTRATION_KEYS


@dataclass(frozen=True, slots=True)
class Criteria:
    """Eligibility criteria and concentration limits of a pool (``None`` = no limit)."""

    score_min: int | None = None
    dpd_max: int = 0
    terms: tuple[int, ...] | None = None
    repayment_types: tuple[RepaymentType, ...] | None = None
    regions_include: tuple[str, ...] | None = None
    regions_exclude: tuple[str, ...] = ()
    principal_min: float | None = None
    principal_max: float | None = None
    balance_min: float | None = None
    balance_max: float | None = None
    originated_from: dt.date | None = None
    originated_to: dt.date | None = None
    apr_min: float | None = None
    apr_max: float | None = None
    max_obligor_share: float | None = None
    max_region_share: float | None = None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The criteria in the TOML layout (JSON-able; unset limits left out)."""
        elig: dict[str, Any] = {}
        for key in _ELIGIBILITY_KEYS:
            value = getattr(self, key)
            if value is None or (key == "regions_exclude" and not value):
                continue
            if key == "repayment_types":
                value = [t.value for t in value]
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dt.date):
                value = value.isoformat()
            elig[key] = value
        conc = {k: getattr(self, k) for k in _CONCENTRATION_KEYS if getattr(self, k) is not None}
        out: dict[str, Any] = {}
        if self.description:
            out["description"] = self.description
        out["eligibility"] = elig
        if conc:
            out["concentration"] = conc
        return out


@dataclass(frozen=True, slots=True)
class Exclusion:
    """Loans removed by one rule (in ``EXCLUSION_ORDER``): count and cut-off balance."""

    reason: str
    description: str
    n_loans: int
    balance: float


@dataclass(frozen=True, slots=True)
class PoolInfo:
    pool_id: int
    name: str
    cutoff_date: dt.date
    criteria: Criteria
    n_loans: int
    balance: float
    created_at: dt.datetime | None = None
    exclusions: tuple[Exclusion, ...] = ()


# ---------------------------------------------------------------- criteria parsing


_MONEY = Interval(float, 0, PRINCIPAL_MAX)
_APR = Interval(float, 0, 1)
_SHARE = Interval(float, 0, 1, closed="right", unit="a share")
_REPAYMENT_TYPES = "one of " + ", ".join(f"{t.value} ({t.label})" for t in RepaymentType)

CRITERIA_SCHEMA = Table({
    "description": Field.optional(Str(), ""),
    "eligibility": Field.optional(Table({
        "score_min": Field.optional(Interval(int, SCORE_MIN, SCORE_MAX)),
        "dpd_max": Field.optional(Interval(int, 0, 10_000), 0),
        "terms": Field.optional(ListOf(Options(ALLOWED_TERMS), min_len=1)),
        "repayment_types": Field.optional(ListOf(Check(RepaymentType.parse, _REPAYMENT_TYPES),
                                                 min_len=1)),
        "regions_include": Field.optional(ListOf(Str(nonempty=True), min_len=1,
                                                 what="a non-empty list of region names "
                                                 "(leave it out for all regions)")),
        "regions_exclude": Field.optional(ListOf(Str(nonempty=True)), []),
        "principal_min": Field.optional(_MONEY),
        "principal_max": Field.optional(_MONEY),
        "balance_min": Field.optional(_MONEY),
        "balance_max": Field.optional(_MONEY),
        "originated_from": Field.optional(Date()),
        "originated_to": Field.optional(Date()),
        "apr_min": Field.optional(_APR),
        "apr_max": Field.optional(_APR),
    }, name="[eligibility]"), {}),
    "concentration": Field.optional(Table({
        "max_obligor_share": Field.optional(_SHARE),
        "max_region_share": Field.optional(_SHARE),
    }, name="[concentration]"), {}),
})
_RANGES = (("principal_min", "principal_max"), ("balance_min", "balance_max"),
           ("originated_from", "originated_to"), ("apr_min", "apr_max"))


def parse_criteria(data: dict[str, Any], source: str = "criteria") -> Criteria:
    """Validate a criteria mapping (the TOML layout) into ``Criteria`` (``CRITERIA_SCHEMA``).

    Every error is a ``SchemaError`` naming the field path, the allowed values, what was
    received and ``source``; unknown keys are refused (a misspelt limit must not silently
    become "no limit").
    """
    doc = validate(CRITERIA_SCHEMA, data, source)
    elig, conc = doc["eligibility"], doc["concentration"]
    for lo_key, hi_key in _RANGES:
        lo, hi = elig.get(lo_key), elig.get(hi_key)
        if lo is not None and hi is not None and lo > hi:
            raise SchemaError(f"eligibility.{hi_key}", f">= `eligibility.{lo_key}` ({lo})",
                              hi, source)
    terms = elig.get("terms")
    repayment_types = elig.get("repayment_types")
    regions_include = elig.get("regions_include")
    return Criteria(
        score_min=elig.get("score_min"),
        dpd_max=elig.get("dpd_max", 0),
        terms=None if terms is None else tuple(sorted(set(terms))),
        repayment_types=(None if repayment_types is None
                         else tuple(dict.fromkeys(repayment_types))),
        regions_include=None if regions_include is None else tuple(regions_include),
        regions_exclude=tuple(elig.get("regions_exclude", ())),
        principal_min=elig.get("principal_min"),
        principal_max=elig.get("principal_max"),
        balance_min=elig.get("balance_min"),
        balance_max=elig.get("balance_max"),
        originated_from=elig.get("originated_from"),
        originated_to=elig.get("originated_to"),
        apr_min=elig.get("apr_min"),
        apr_max=elig.get("apr_max"),
        max_obligor_share=conc.get("max_obligor_share"),
        max_region_share=conc.get("max_region_share"),
        description=doc["description"],
    )


def load_criteria(path: str | Path) -> Criteria:
    """Read and validate a criteria TOML file."""
    return parse_criteria(read_toml(path, "criteria file"), str(path))


def criteria_from_json(text: str | dict[str, Any]) -> Criteria:
    data = json.loads(text) if isinstance(text, str) else text
    return parse_criteria(data, "stored criteria")


# ---------------------------------------------------------------- dates


def parse_cutoff(value: str | dt.date) -> dt.date:
    """A cut-off date must be a month-end (performance rows are month-ends)."""
    if isinstance(value, dt.datetime):
        value = value.date()
    if not isinstance(value, dt.date):
        try:
            value = dt.date.fromisoformat(str(value).strip())
        except ValueError:
            raise ValidationError(must_be("cutoff", "a date YYYY-MM-DD", value)) from None
    month_end = _month_end(value)
    if value != month_end:
        prev = value.replace(day=1) - dt.timedelta(days=1)
        raise ValidationError(
            must_be("cutoff", f"a month-end date (performance is recorded at month-ends), "
                    f"e.g. {prev.isoformat()} or {month_end.isoformat()}", value.isoformat())
        )
    return value


def _month_end(d: dt.date) -> dt.date:
    first_next = (d.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return first_next - dt.timedelta(days=1)


def months_between(origination: np.ndarray, cutoff: dt.date) -> np.ndarray:
    """Whole calendar months from each origination month to the cut-off month."""
    orig_m = np.asarray(origination, dtype="datetime64[D]").astype("datetime64[M]")
    cut_m = np.datetime64(cutoff, "M")
    return (cut_m - orig_m).astype(np.int64)


def next_due_dates(origination: np.ndarray, cutoff: dt.date) -> np.ndarray:
    """First due date after a month-end cut-off: the origination day of month in the next
    month, or that month's last day when it is shorter (end-of-month rule). A pool's loans
    were originated on a few hundred distinct days: the rule is applied once per day from
    the earliest to the latest and looked up per loan (the same dates as applying it to
    every loan, :func:`next_due_dates_np`)."""
    orig = np.asarray(origination, dtype="datetime64[D]")
    days = orig.view(np.int64)
    if orig.size == 0 or np.isnat(orig).any():
        return next_due_dates_np(orig, cutoff)
    lo, hi = int(days.min()), int(days.max())
    if hi - lo >= max(orig.size, 1 << 12):
        return next_due_dates_np(orig, cutoff)
    table = next_due_dates_np(np.arange(lo, hi + 1).astype("datetime64[D]"), cutoff)
    return table[days - lo]


def next_due_dates_np(origination: np.ndarray, cutoff: dt.date) -> np.ndarray:
    """:func:`next_due_dates` applied to every loan (its oracle)."""
    orig = np.asarray(origination, dtype="datetime64[D]")
    day = (orig - orig.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    month = np.datetime64(cutoff, "M") + 1
    start = month.astype("datetime64[D]")
    days_in_month = int(((month + 1).astype("datetime64[D]") - start).astype(np.int64))
    return start + (np.minimum(day, days_in_month) - 1).astype("timedelta64[D]")


# ---------------------------------------------------------------- selection


@dataclass(frozen=True, slots=True)
class Selection:
    """The result of applying criteria to the candidates: kept loans and exclusions.

    ``loans`` maps each of ``store.pools.POOL_LOAN_COLUMNS`` to an array over the kept loans
    (in candidate order).
    """

    loans: dict[str, np.ndarray]
    exclusions: tuple[Exclusion, ...]

    @property
    def n_loans(self) -> int:
        return len(self.loans["loan_id"])


def _cap_groups(groups: np.ndarray, balance: np.ndarray, alive: np.ndarray,
                order: np.ndarray, share: float) -> np.ndarray:
    """One pass of a concentration cap. Returns a boolean mask of rows to remove.

    ``order`` is the removal priority over all rows. Within each group of alive rows, keep the
    rows that come LAST in removal order while their running balance stays ≤ share × total.
    """
    total = balance[alive].sum()
    cap = share * total
    idx = order[alive[order]][::-1]  # alive rows, keep-priority first
    g = groups[idx]
    b = balance[idx]
    # running sum within group, in keep order: a stable sort by group keeps that order
    by_group = np.argsort(g, kind="stable")
    gs = g[by_group]
    bs = b[by_group]
    csum = np.cumsum(bs)
    starts = np.r_[True, gs[1:] != gs[:-1]]
    group_start_sum = np.maximum.accumulate(np.where(starts, csum - bs, 0.0))
    running = csum - group_start_sum
    drop_sorted = running > cap * (1 + 1e-12) + 1e-9
    remove = np.zeros(len(balance), dtype=bool)
    remove[idx[by_group[drop_sorted]]] = True
    return remove


def _arrays(candidates: pd.DataFrame | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Candidate columns as plain numpy arrays (nulls filled as the store query does)."""
    if isinstance(candidates, dict):
        return candidates
    c = candidates
    fill = {"balance": 0.0, "dpd": 0, "status": "", "charge_off": 0.0, "region": ""}
    out: dict[str, np.ndarray] = {}
    for col in ("loan_id", "borrower_id", "origination_date", "principal", "apr",
                "term_months", "repayment_type", "credit_score", "region", "balance", "dpd",
                "status", "charge_off", "has_row"):
        series = c[col]
        if col in fill:
            series = series.astype(object).where(series.notna(), fill[col])
        if col == "origination_date":
            out[col] = pd.to_datetime(series).to_numpy().astype("datetime64[D]")
        elif col in ("loan_id", "borrower_id", "repayment_type", "region", "status"):
            out[col] = series.astype(str).to_numpy(dtype=object)
        else:
            out[col] = series.to_numpy()
    return out


def select_pool(candidates: pd.DataFrame | dict[str, np.ndarray], criteria: Criteria,
                cutoff: dt.date) -> Selection:
    """Apply the exclusion rules in ``EXCLUSION_ORDER`` (pure; see the module docstring).

    ``candidates`` has the columns of ``store.pools.snapshot_candidates`` (a frame or a dict
    of arrays); the result does not depend on their row order.
    """
    c = _arrays(candidates)
    n = len(c["loan_id"])
    reason = np.full(n, -1, dtype=np.int64)  # index into EXCLUSION_ORDER, -1 = kept
    codes = {name: i for i, (name, _) in enumerate(EXCLUSION_ORDER)}

    def exclude(name: str, mask: np.ndarray) -> None:
        reason[(reason < 0) & mask] = codes[name]

    loan_id = c["loan_id"].astype(object)
    orig = c["origination_date"].astype("datetime64[D]")
    has_row = c["has_row"].astype(bool)
    balance = c["balance"].astype(np.float64)
    status = c["status"].astype(object)
    charge_off = c["charge_off"].astype(np.float64)
    dpd = c["dpd"].astype(np.int64)
    term = c["term_months"].astype(np.int64)
    mob = months_between(orig, cutoff)
    score = c["credit_score"].astype(np.int64)
    rtype = c["repayment_type"].astype(object)
    region = c["region"].astype(object)
    principal = c["principal"].astype(np.float64)
    apr = c["apr"].astype(np.float64)
    disclosed = (c["disclosed_apr"].astype(np.float64) if "disclosed_apr" in c
                 else np.full(len(apr), np.nan))  # NaN: not disclosed

    exclude("originated_after_cutoff", orig > np.datetime64(cutoff, "D"))
    exclude("no_performance_at_cutoff", ~has_row)
    performing = ((status == "current") | (status == "delinquent")) & (charge_off <= 0) & (
        balance > 0)
    exclude("not_performing", ~performing)
    exclude("past_maturity", mob >= term)
    exclude("dpd", dpd > criteria.dpd_max)
    if criteria.score_min is not None:
        exclude("score", score < criteria.score_min)
    if criteria.terms is not None:
        exclude("term", ~np.isin(term, list(criteria.terms)))
    if criteria.repayment_types is not None:
        allowed = np.zeros(n, dtype=bool)
        for t in criteria.repayment_types:
            allowed |= rtype == t.value
        exclude("repayment_type", ~allowed)
    region_bad = np.zeros(n, dtype=bool)
    if criteria.regions_include is not None:
        inside = np.zeros(n, dtype=bool)
        for r in criteria.regions_include:
            inside |= region == r
        region_bad |= ~inside
    for r in criteria.regions_exclude:
        region_bad |= region == r
    exclude("region", region_bad)
    eps = 1e-9
    if criteria.principal_min is not None:
        exclude("principal", principal < criteria.principal_min - eps)
    if criteria.principal_max is not None:
        exclude("principal", principal > criteria.principal_max + eps)
    if criteria.balance_min is not None:
        exclude("balance", balance < criteria.balance_min - eps)
    if criteria.balance_max is not None:
        exclude("balance", balance > criteria.balance_max + eps)
    if criteria.originated_from is not None:
        exclude("origination_window", orig < np.datetime64(criteria.originated_from, "D"))
    if criteria.originated_to is not None:
        exclude("origination_window", orig > np.datetime64(criteria.originated_to, "D"))
    if criteria.apr_min is not None or criteria.apr_max is not None:
        inverse, names = pd.factorize(rtype)  # by hashing: a few distinct names
        type_code = np.array([RepaymentType.parse(str(n)).code for n in names],
                             dtype=np.int64)[inverse]
        cashflow = product_apr(apr, term, type_code)
        if criteria.apr_min is not None:
            exclude("apr", cashflow < criteria.apr_min - eps)
        if criteria.apr_max is not None:
            exclude("apr", cashflow > criteria.apr_max + eps)

    if criteria.max_obligor_share is not None or criteria.max_region_share is not None:
        alive0 = reason < 0
        # loan_id rank (candidates usually arrive sorted by loan_id: then rank = position)
        if n > 1 and not bool(np.all(loan_id[1:] >= loan_id[:-1])):
            id_rank = np.empty(n, dtype=np.int64)
            id_rank[np.argsort(loan_id, kind="stable")] = np.arange(n)
        else:
            id_rank = np.arange(n)
        # removal priority: largest balance, then latest origination, then greatest loan_id
        order = np.lexsort((-id_rank, -orig.astype(np.int64), -balance))
        borrower_codes = np.full(n, -1, dtype=np.int64)
        borrower_codes[alive0] = pd.factorize(c["borrower_id"][alive0])[0]
        region_codes = np.full(n, -1, dtype=np.int64)
        region_codes[alive0] = pd.factorize(region[alive0])[0]
        for _ in range(100_000):
            changed = False
            for name, groups, share in (
                ("obligor_concentration", borrower_codes, criteria.max_obligor_share),
                ("region_concentration", region_codes, criteria.max_region_share),
            ):
                alive = reason < 0
                if share is None or not alive.any():
                    continue
                remove = _cap_groups(groups, balance, alive, order, share)
                if remove.any():
                    exclude(name, remove)
                    changed = True
            if not changed:
                break

    kept = reason < 0
    exclusions = []
    for i, (name, desc) in enumerate(EXCLUSION_ORDER):
        hit = reason == i
        exclusions.append(Exclusion(name, desc, int(hit.sum()), float(balance[hit].sum())))
    loans = {
        "loan_id": loan_id[kept],
        "cutoff_balance": balance[kept],
        "remaining_term": (term - mob)[kept].astype(np.int16),
        "months_on_book": mob[kept].astype(np.int16),
        "apr": apr[kept],
        "credit_score": score[kept].astype(np.int16),
        "term_months": term[kept].astype(np.int16),
        "repayment_type": rtype[kept],
        "region": region[kept],
        "origination_date": orig[kept],
        "principal": principal[kept],
        "disclosed_apr": disclosed[kept],
    }
    return Selection(loans=loans, exclusions=tuple(exclusions))


# ---------------------------------------------------------------- store-facing API


def create_pool(store: Store, name: str, criteria: Criteria, cutoff: str | dt.date) -> PoolInfo:
    """Cut a pool from the book and store its immutable snapshot, with each loan's borrower
    and household credit limit at the cut-off (``portfolio.book.households``): all or
    nothing."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(must_be("name", "a non-empty pool name", name))
    name = name.strip()
    cutoff_date = parse_cutoff(cutoff)
    taken = sql.pool_name_taken(store.con, name)
    if taken is not None:
        raise ValidationError(must_be("name", f"a new pool name (pool {taken} is already "
                                      "called that)", name))
    if criteria.regions_include or criteria.regions_exclude:
        present = set(sql.book_regions(store.con))
        for key in ("regions_include", "regions_exclude"):
            unknown = [r for r in (getattr(criteria, key) or ()) if r not in present]
            if unknown:
                raise SchemaError(f"eligibility.{key}", "regions present in the book ("
                                  + ", ".join(sorted(present)) + ")", unknown, "criteria")
    candidates = sql.snapshot_candidates(store.con, cutoff_date)
    selection = select_pool(candidates, criteria, cutoff_date)
    if selection.n_loans == 0:
        lines = "; ".join(f"{e.reason}: {e.n_loans}" for e in selection.exclusions if e.n_loans)
        raise ValidationError(
            f"no loan of the book ({len(candidates['loan_id'])} loans) is eligible at cut-off "
            f"{cutoff_date.isoformat()}; nothing was written. Exclusions: {lines or 'none'}"
        )
    exclusions = [dataclasses.asdict(e) for e in selection.exclusions]
    with store.transaction() as con:
        pool_id = store.next_id("pool_seq")
        sql.insert_pool(con, pool_id=pool_id, name=name, cutoff=cutoff_date,
                        criteria=criteria.to_dict(), exclusions=exclusions,
                        loans=selection.loans)
        # each loan's borrower and household limit at the cut-off, stored with the pool
        # (``portfolio.book.households``): allocating it then reads them instead of a second
        # of aggregation over the book
        write_pool_households(con, pool_id, cutoff_date)
    return get_pool(store, pool_id)


def _info_from_row(row: pd.Series) -> PoolInfo:
    exclusions = tuple(Exclusion(**e) for e in json.loads(row["exclusions"] or "[]"))
    created = row["created_at"]
    return PoolInfo(
        pool_id=int(row["pool_id"]),
        name=str(row["name"]),
        cutoff_date=pd.Timestamp(row["cutoff_date"]).date(),
        criteria=criteria_from_json(row["criteria"]),
        n_loans=int(row["n_loans"]),
        balance=float(row["balance"]),
        created_at=None if pd.isna(created) else pd.Timestamp(created).to_pydatetime(),
        exclusions=exclusions,
    )


def get_pool(store: Store, pool_id: int) -> PoolInfo:
    """The pool's header; ``NotFound`` for an unknown id."""
    rows = sql.pool_rows(store.con, int(pool_id))
    if rows.empty:
        known = sql.pool_rows(store.con)["pool_id"].tolist()
        raise NotFound(must_be("pool", "an existing pool id " + (str(known) if known else
                                                                "(no pool yet: `riskpool pool "
                                                                "create`)"), pool_id))
    return _info_from_row(rows.iloc[0])


def list_pools(store: Store) -> list[PoolInfo]:
    rows = sql.pool_rows(store.con)
    return [_info_from_row(r) for _, r in rows.iterrows()]


def load_pool_loans(store: Store, pool_id: int) -> LoanArrays:
    """The pool's loans at cut-off as ``LoanArrays`` (ordered by loan_id).

    balance = cut-off balance, remaining_term and months_on_book at the cut-off,
    next_due_date = first due date after the cut-off, principal = original principal.
    """
    info = get_pool(store, pool_id)
    return pool_loan_arrays(sql.pool_loan_arrays(store.con, int(pool_id)), info.cutoff_date)


def pool_loan_arrays(a: dict[str, np.ndarray], cutoff: dt.date) -> LoanArrays:
    """``LoanArrays`` of a pool's columns as ``portfolio.store.pools.pool_loan_arrays`` reads
    them (next due dates from the cut-off). The query gives each column in its ``LoanArrays``
    dtype already, so the arrays are taken as they are (``copy=False``), not copied."""
    return LoanArrays(
        loan_id=a["loan_id"].astype(object, copy=False),
        balance=a["balance"].astype(np.float64, copy=False),
        apr=a["apr"].astype(np.float64, copy=False),
        term_months=a["term_months"].astype(np.int16, copy=False),
        remaining_term=a["remaining_term"].astype(np.int16, copy=False),
        months_on_book=a["months_on_book"].astype(np.int16, copy=False),
        repayment_type=a["repayment_type"].astype(np.int8, copy=False),
        credit_score=a["credit_score"].astype(np.int16, copy=False),
        region=a["region"].astype(object, copy=False),
        origination_date=a["origination_date"].astype("datetime64[D]", copy=False),
        next_due_date=next_due_dates(a["origination_date"], cutoff),
        principal=a["principal"].astype(np.float64, copy=False),
        disclosed_apr=a["disclosed_apr"].astype(np.float64, copy=False),
    )


def pool_summary(store: Store, pool_id: int) -> pd.DataFrame:
    """The pool's characteristics as a two-column table (measure, value): loan and borrower
    counts, cut-off and original balances, average and largest balance, balance-weighted APR,
    score, original and remaining term and months on book, and the largest obligor and
    region shares of the cut-off balance."""
    get_pool(store, pool_id)
    row = sql.pool_summary_row(store.con, int(pool_id))
    return pd.DataFrame({"measure": list(row), "value": [float(v) for v in row.values()]})


# ---------------------------------------------------------------- stratification

SCORE_EDGES: tuple[int, ...] = tuple(lo for lo, _ in SCORE_BANDS[1:])
APR_EDGES: tuple[float, ...] = (0.06, 0.09, 0.12, 0.15, 0.18, 0.21, 0.24)
REMAINING_TERM_EDGES: tuple[int, ...] = (4, 7, 10, 13, 19)
BALANCE_EDGES: tuple[float, ...] = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)
MOB_EDGES: tuple[int, ...] = (3, 6, 9, 12, 18)

STRAT_NAMES: tuple[str, ...] = (
    "score_band", "apr", "original_term", "remaining_term", "balance", "repayment_type",
    "region", "vintage", "months_on_book",
)
STRAT_COLUMNS: tuple[str, ...] = (
    "bucket", "n_loans", "balance", "share_of_balance", "wa_apr", "wa_score",
    "wa_remaining_term",
)


def _edge_labels(edges: tuple[float, ...], fmt: Any, lo: float = 0) -> list[str]:
    labels = []
    bounds = [lo, *edges]
    for i in range(len(edges)):
        labels.append(f"{fmt(bounds[i])}-<{fmt(bounds[i + 1])}")
    labels.append(f">={fmt(edges[-1])}")
    return labels


def _int_labels(edges: tuple[int, ...], lo: int) -> list[str]:
    bounds = [lo, *edges]
    labels = [f"{bounds[i]}-{bounds[i + 1] - 1}" for i in range(len(edges))]
    labels.append(f"{edges[-1]}+")
    return labels


def _pct(x: float) -> str:
    return f"{x * 100:g}%"


def _money(x: float) -> str:
    return f"{x / 1000:g}k" if x >= 1000 else f"{x:g}"


_BUCKET_LABELS: dict[str, list[str]] = {
    "score_band": list(SCORE_BAND_LABELS),
    "apr_bucket": _edge_labels(APR_EDGES, _pct),
    "remaining_term_bucket": _int_labels(REMAINING_TERM_EDGES, 1),
    "balance_bucket": _edge_labels(BALANCE_EDGES, _money),
    "mob_bucket": _int_labels(MOB_EDGES, 0),
}
_STRAT_SOURCES: dict[str, str] = {
    "score_band": "score_band",
    "apr": "apr_bucket",
    "original_term": "term_months",
    "remaining_term": "remaining_term_bucket",
    "balance": "balance_bucket",
    "repayment_type": "repayment_type",
    "region": "region",
    "vintage": "vintage",
    "months_on_book": "mob_bucket",
}


def strats(store: Store, pool_id: int) -> dict[str, pd.DataFrame]:
    """Stratification tables of a pool, one DataFrame per dimension (``STRAT_NAMES``).

    Each has ``STRAT_COLUMNS``: bucket, loan count, cut-off balance, share of the pool
    balance, and balance-weighted APR, credit score and remaining term; a last row ``Total``.
    Computed by one DuckDB ``GROUPING SETS`` scan.
    """
    get_pool(store, pool_id)
    raw = sql.pool_strats(
        store.con, int(pool_id), score_edges=SCORE_EDGES, apr_edges=APR_EDGES,
        remaining_edges=REMAINING_TERM_EDGES, balance_edges=BALANCE_EDGES, mob_edges=MOB_EDGES)
    return strats_from_grouping(raw)


def strats_from_grouping(raw: dict[str, list[tuple[Any, ...]]]) -> dict[str, pd.DataFrame]:
    """Shape the rows of ``store.pools.pool_strats`` into one table per dimension."""
    total = raw["total"][0] if raw.get("total") else (None, 0, 0.0, 0.0, 0.0, 0.0)
    total_balance = float(total[2] or 0.0)
    out: dict[str, pd.DataFrame] = {}
    for name, col in _STRAT_SOURCES.items():
        rows = []
        for key, n, bal, bal_apr, bal_score, bal_rem in raw[col]:
            if col in _BUCKET_LABELS:
                order: Any = int(key)
                label = _BUCKET_LABELS[col][int(key)]
            elif col == "repayment_type":
                t = RepaymentType.parse(key)
                order, label = t.code, f"{t.value} ({t.label})"
            elif col == "term_months":
                order, label = int(key), str(int(key))
            elif col == "vintage":
                order, label = int(key), f"{int(key) // 10}-Q{int(key) % 10}"
            else:
                order, label = str(key), str(key)
            rows.append((order, label, n, bal, bal_apr, bal_score, bal_rem))
        rows.sort(key=lambda r: r[0])
        rows.append((None, "Total", *total[1:]))
        bal = np.array([float(r[3] or 0.0) for r in rows])
        with np.errstate(invalid="ignore", divide="ignore"):
            table = pd.DataFrame({
                "bucket": [r[1] for r in rows],
                "n_loans": np.array([int(r[2]) for r in rows], dtype=np.int64),
                "balance": bal,
                "share_of_balance": bal / total_balance if total_balance else np.zeros(len(bal)),
                "wa_apr": np.array([float(r[4] or 0.0) for r in rows]) / bal,
                "wa_score": np.array([float(r[5] or 0.0) for r in rows]) / bal,
                "wa_remaining_term": np.array([float(r[6] or 0.0) for r in rows]) / bal,
            })
        out[name] = table
    return out
