"""Allocate last month's originations to the funding partners, check, record, export per partner.

The Python API the way a monthly partner-allocation script uses it:

    .venv/bin/python examples/allocate_month.py \
        --partners examples/partners.toml --month 2026-10 --out exports/

Joint lending, maximising the balance moved off the platform's balance sheet; every rule and
limit is re-checked on the loan-level shares before anything is written; one Parquet tape per
partner (its loans, its share, its balance — nothing about anyone else).
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
from pathlib import Path

from partners.allocation import allocate, loan_risk_from_table
from partners.records import AllocationRequest, export_partner, originated_loans, save_allocation
from partners.registry import load_registry
from portfolio import settings
from portfolio.store import open_store


def last_month(today: dt.date) -> str:
    first = today.replace(day=1) - dt.timedelta(days=1)
    return first.strftime("%Y-%m")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default=str(settings.db_path()))
    ap.add_argument("--partners", default="examples/partners.toml")
    ap.add_argument("--month", default=last_month(dt.date.today()), help="YYYY-MM")
    ap.add_argument("--out", default="exports")
    args = ap.parse_args()

    year, month = map(int, args.month.split("-"))
    start = dt.date(year, month, 1)
    end = dt.date(year, month, calendar.monthrange(year, month)[1])
    registry = load_registry(args.partners)
    with open_store(args.db) as store:
        batch = originated_loans(store, start, end)
        risk = loan_risk_from_table(batch.loans, registry.expected_loss)
        result = allocate(batch.loans, registry, mode="joint", objective="max-transfer", risk=risk,
                          as_of=end, borrower_id=batch.borrower_id,
                          household_limit=batch.household_limit)
        if not result.checks.ok:  # allocate() already raises on a breach; belt and braces
            raise SystemExit("re-check failed: nothing written")
        request = AllocationRequest(partners_file=str(args.partners), originated=(start, end),
                                    mode="joint", objective="max-transfer",
                                    source="examples/allocate_month.py")
        allocation_id = save_allocation(store, result, registry, risk, pool_id=None,
                                        request=request)
        out = Path(args.out)
        for partner in registry.partners:
            n = export_partner(store, allocation_id, partner.id, out / f"{args.month}_{partner.id}.parquet")
            print(f"{partner.id:<16} {n:>8,} loans  {result.party_balance()[partner.id]:>18,.2f} CNY")
    moved = result.summary["moved_off_platform"] / result.summary["pool_balance"]
    print(f"allocation {allocation_id}: {len(batch.loans):,} loans originated {start}..{end}; "
          f"{moved:.1%} of the balance left the platform")


if __name__ == "__main__":
    main()
