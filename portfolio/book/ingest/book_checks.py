"""The rules against the book: performance rows of unknown loans, before origination or
above the principal, and rows whose key is already in the book — identical (a duplicate,
skipped) or different (``book_conflict``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from portfolio.book.ingest.tape import (
    LOAN_OPTIONAL,
    LOAN_REQUIRED,
    PERFORMANCE_OPTIONAL,
    PERFORMANCE_REQUIRED,
    CheckedTape,
    Problem,
    TapeKind,
)
from portfolio.errors import must_be
from portfolio.store import Store
from portfolio.store import ingest as sql


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    both_null = a.isna().to_numpy() & b.isna().to_numpy()
    eq = (a.to_numpy(dtype=object) == b.to_numpy(dtype=object))
    return np.asarray(eq, dtype=bool) | both_null


def _compare_with_book(
    checked: CheckedTape, existing: pa.Table, key: list[str], columns: Sequence[str], money: set[str]
) -> tuple[np.ndarray, list[Problem]]:
    """Rows of ``checked.good`` identical to a book row (skip) and conflicts (problems)."""
    good = checked.good
    dup = np.zeros(good.num_rows, dtype=bool)
    if existing.num_rows == 0:
        return dup, []
    cols = [c for c in columns if c in good.column_names]
    incoming = good.select(key + [c for c in cols if c not in key] + ["_row"]).to_pandas()
    incoming["_i"] = np.arange(len(incoming))
    book = existing.select(key + [c for c in cols if c not in key]).to_pandas()
    merged = incoming.merge(book, on=key, how="inner", suffixes=("", "__book"))
    differs: dict[str, np.ndarray] = {}
    for name in cols:
        if name in key:
            continue
        mine, theirs = merged[name], merged[f"{name}__book"]
        if name in money:
            same = np.rint(mine.astype(float).to_numpy() * 100) == np.rint(
                theirs.astype(float).to_numpy() * 100
            )
        elif name in {"origination_date", "as_of"}:
            same = pd.to_datetime(mine).to_numpy() == pd.to_datetime(theirs).to_numpy()
        elif name in ("apr", "disclosed_apr"):  # a blank disclosed APR is NaN on both sides
            same = np.isclose(mine.astype(float), theirs.astype(float), rtol=0, atol=1e-12,
                              equal_nan=True)
        else:
            same = _same(mine, theirs)
        differs[name] = ~np.asarray(same, dtype=bool)
    any_diff = np.zeros(len(merged), dtype=bool)
    for d in differs.values():
        any_diff |= d
    positions = merged["_i"].to_numpy()
    dup[positions[~any_diff]] = True
    problems: list[Problem] = []
    raw = checked.raw
    key_label = key[0] if len(key) == 1 else "(" + ", ".join(key) + ")"
    for j in np.flatnonzero(any_diff).tolist():
        rec = merged.iloc[j]
        row = int(rec["_row"])
        def shown(name: str, value: object) -> str:
            if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
                return "blank"
            if name in money:
                return f"{float(value):.2f}"  # type: ignore[arg-type]
            if name in {"origination_date", "as_of"}:
                return str(value)[:10]
            return str(value)

        diffs = [
            f"{name} {shown(name, rec[f'{name}__book'])} in the book vs "
            f"{shown(name, rec[name])} here"
            for name, d in differs.items()
            if d[j]
        ]
        value = str(rec["loan_id"]) if len(key) == 1 else f"{rec['loan_id']}, {rec['as_of']!s:.10}"
        where = f"{raw.where(row)} [rule book_conflict]"
        msg = (
            must_be(key_label, "new or identical to the row already in the book", value, where)
            + "; differs: "
            + "; ".join(diffs)
        )
        problems.append(Problem(row, key[0], "book_conflict", value, msg))
    return dup, problems


def book_checks(store: Store, checked: CheckedTape) -> tuple[np.ndarray, np.ndarray, list[Problem]]:
    """``(bad, duplicate, problems)`` masks over ``checked.good`` from the book's contents."""
    con = store.con
    good = checked.good
    bad = np.zeros(good.num_rows, dtype=bool)
    problems: list[Problem] = []
    if good.num_rows == 0:
        return bad, bad.copy(), problems
    raw = checked.raw
    if checked.kind is TapeKind.LOANS:
        existing = sql.existing_loans(con, good["loan_id"])
        dup, conflicts = _compare_with_book(
            checked,
            existing,
            ["loan_id"],
            [c for c in LOAN_REQUIRED + LOAN_OPTIONAL],
            {"principal"},
        )
    else:
        ids = pc.unique(good["loan_id"])
        known = sql.known_loans(con, ids).to_pandas()
        frame = pd.DataFrame(
            {
                "loan_id": good["loan_id"].to_numpy(zero_copy_only=False),
                "as_of": good["as_of"].to_numpy(zero_copy_only=False).astype("M8[D]"),
            }
        )
        merged = frame.merge(known, on="loan_id", how="left")
        unknown = merged["origination_date"].isna().to_numpy()
        orig = pd.to_datetime(merged["origination_date"]).to_numpy().astype("M8[D]")
        early = ~unknown & (merged["as_of"].to_numpy() < orig)
        principal = merged["principal"].to_numpy(dtype=float, na_value=np.nan)
        balance = good["balance"].to_numpy()
        above = ~unknown & (np.rint(balance * 100) > np.rint(principal * 100))
        rows = good["_row"].to_numpy()

        def add(mask: np.ndarray, column: str, rule: str, allowed: Callable[[int], str],
                shown: Callable[[int], str]) -> None:
            for j in np.flatnonzero(mask).tolist():
                row = int(rows[j])
                value = shown(j)
                msg = must_be(column, allowed(j), value, f"{raw.where(row)} [rule {rule}]")
                problems.append(Problem(row, column, rule, value, msg))

        add(unknown, "loan_id", "unknown_loan",
            lambda j: "a loan already in the book (load the loan tape first)",
            lambda j: str(frame["loan_id"].iat[j]))
        add(early, "as_of", "before_origination",
            lambda j: f"on or after the loan's origination_date {str(orig[j])[:10]}",
            lambda j: str(frame["as_of"].iat[j])[:10])
        add(above, "balance", "balance_above_principal",
            lambda j: f"at most the loan's principal {principal[j]:.2f}",
            lambda j: f"{balance[j]:.2f}")
        # months on book: calendar months from the origination month to the as-of month (the
        # month of origination is month 0, as the synthetic book and the pools count them)
        mob = good["months_on_book"].to_numpy(zero_copy_only=False).astype(np.int64)
        o_m = orig.astype("M8[M]").astype(np.int64)
        a_m = frame["as_of"].to_numpy().astype("M8[M]").astype(np.int64)
        months = a_m - o_m
        wrong_mob = ~unknown & ~early & (mob != months)
        add(wrong_mob, "months_on_book", "months_on_book_dates",
            lambda j: (f"{months[j]}: the calendar months from origination_date "
                       f"{str(orig[j])[:10]} to as_of {str(frame['as_of'].iat[j])[:10]}"),
            lambda j: str(mob[j]))
        bad |= unknown | early | above | wrong_mob
        existing = sql.existing_performance(con, good.select(["loan_id", "as_of"]))
        dup, conflicts = _compare_with_book(
            checked,
            existing,
            ["loan_id", "as_of"],
            list(PERFORMANCE_REQUIRED + PERFORMANCE_OPTIONAL),
            {"balance", *PERFORMANCE_OPTIONAL},
        )
    row_to_pos = {int(r): i for i, r in enumerate(good["_row"].to_numpy())} if conflicts else {}
    for p in conflicts:
        bad[row_to_pos[p.row]] = True
    problems.extend(conflicts)
    return bad, dup & ~bad, problems
