"""Allocate a month's originations to the funding partners, check, record, export per partner.

The Python API the way a monthly partner-allocation script uses it:

    .venv/bin/python examples/allocate_month.py --db book.duckdb \
        --partners examples/partners.toml --out exports/

Without ``--month`` it takes the latest month in which the book has originations (say
``--month 2026-07`` to name one). Joint lending, maximising the balance moved off the
platform's balance sheet; every rule and limit is re-checked on the loan-level shares before
anything is written; one Parquet tape per partner (its loans, its share, its balance —
nothing about anyone else).

A loan that an earlier allocation already holds is not allocated again: the script stops,
names the allocation and writes nothing. ``--supersede`` allocates such loans anyway and
records, with the new allocation, the allocations it supersedes. Bad input (a month that is
not YYYY-MM, a month without loans, a bad partners file) exits with code 2 and a message.
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import re
import sys
from pathlib import Path

from partners.allocation import allocate, loan_risk_from_table
from partners.errors import AllocationError
from partners.records import (
    AllocationRequest,
    already_allocated,
    export_partner,
    latest_origination_month,
    originated_loans,
    save_allocation,
)
from partners.registry import load_registry
from portfolio import settings
from portfolio.errors import RiskpoolError, ValidationError, must_be
from portfolio.store import Store, open_store


def month_window(text: str) -> tuple[dt.date, dt.date]:
    """``YYYY-MM`` as (first day, last day); ``ValidationError`` naming --month otherwise."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
    if m is None or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1900:
        raise ValidationError(must_be("--month", "a month YYYY-MM (e.g. 2026-07; months 01 "
                                      "to 12)", text))
    year, month = int(m.group(1)), int(m.group(2))
    return dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1])


def pick_month(store: Store, month: str | None) -> tuple[dt.date, dt.date]:
    """The window to allocate: ``month``'s, else the latest month with originations."""
    latest = latest_origination_month(store)
    if latest is None:
        raise ValidationError(must_be("--db", "a book with loans (riskpool ingest or riskpool "
                                      "generate)", str(store.path)))
    return latest if month is None else month_window(month)


def run(args: argparse.Namespace) -> None:
    if args.month is not None:
        month_window(args.month)  # refused before the database is opened
    registry = load_registry(args.partners)
    with open_store(args.db) as store:
        start, end = pick_month(store, args.month)
        label = start.strftime("%Y-%m")
        try:
            batch = originated_loans(store, start, end)
        except AllocationError:
            latest = latest_origination_month(store)
            raise ValidationError(must_be(
                "--month", "a month with originations in the book (the latest: "
                f"{latest[0].strftime('%Y-%m') if latest else 'none'})", label)) from None
        held = already_allocated(store, batch.loans.loan_id)
        superseded: tuple[int, ...] | None = None
        if len(held):
            by_allocation = held.groupby("allocation_id")["loan_id"].agg(["count", "first"])
            which = "; ".join(f"allocation {int(a)}: {int(r['count']):,} loans (e.g. {r['first']})"
                              for a, r in by_allocation.iterrows())
            if not args.supersede:
                raise ValidationError(
                    f"{len(held):,} of the {len(batch.loans):,} loans originated in {label} "
                    f"already have an allocation ({which}); nothing was written. Run again with "
                    "--supersede to allocate them anew (the new allocation records the ones it "
                    "supersedes)")
            superseded = tuple(int(a) for a in by_allocation.index)
        risk = loan_risk_from_table(batch.loans, registry.expected_loss)
        result = allocate(batch.loans, registry, mode="joint", objective="max-transfer", risk=risk,
                          as_of=end, borrower_id=batch.borrower_id,
                          household_limit=batch.household_limit)
        if not result.checks.ok:  # allocate() already raises on a breach; belt and braces
            raise ValidationError("re-check failed: nothing written")
        request = AllocationRequest(partners_file=str(args.partners), originated=(start, end),
                                    mode="joint", objective="max-transfer",
                                    source="examples/allocate_month.py", supersedes=superseded)
        allocation_id = save_allocation(store, result, registry, risk, pool_id=None,
                                        request=request)
        out = Path(args.out)
        for partner in registry.partners:
            n = export_partner(store, allocation_id, partner.id,
                               out / f"{label}_{partner.id}.parquet")
            print(f"{partner.id:<16} {n:>8,} loans  "
                  f"{result.party_balance()[partner.id]:>18,.2f} CNY")
    moved = result.summary["moved_off_platform"] / result.summary["pool_balance"]
    print(f"allocation {allocation_id}: {len(batch.loans):,} loans originated {start}..{end}; "
          f"{moved:.1%} of the balance left the platform"
          + (f"; supersedes allocation {', '.join(map(str, superseded))}" if superseded else ""))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--db", default=str(settings.db_path()))
    ap.add_argument("--partners", default="examples/partners.toml")
    ap.add_argument("--month", default=None, help="YYYY-MM (default: the latest month with "
                    "originations in the book)")
    ap.add_argument("--out", default="exports")
    ap.add_argument("--supersede", action="store_true", help="allocate loans an earlier "
                    "allocation holds, recording the allocations superseded")
    args = ap.parse_args(argv)
    try:
        run(args)
    except RiskpoolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
