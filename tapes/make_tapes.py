"""Write the sample tapes the README's tour loads (run from the project root; deterministic).

    .venv/bin/python tapes/make_tapes.py

`loans_2026_07.csv`: 500 loans originated in July 2026 on top of the tour's generated book
(`riskpool generate --seed 13 --as-of 2026-06-30`); ids `T2607-0001`… never clash with the
generator's `L000000001`…. `perf_2026_07.csv`: their first month-end row (2026-07-31, months on
book 0, balance = principal, current). `messy.csv`: 20 July loans of which 4 break a rule (a
phone-number-shaped borrower id, an APR written as a percent, a term of 7 months, a score of
1,200) — `--allow-rejects` loads the 16 good rows and keeps the 4 in `ingest_rejects`.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
COLUMNS = ["loan_id", "borrower_id", "origination_date", "principal", "apr", "term_months",
           "repayment_type", "credit_score", "region", "channel", "product"]
REGIONS = ["广东", "江苏", "浙江", "山东", "河南", "四川", "湖北", "上海"]
CHANNELS = ["app", "mini_program", "partner"]
PRODUCTS = ["cash_loan", "consumer_instalment", "merchant_finance"]
TYPES = ["level_annuity", "equal_principal", "daily_interest"]


def loans(prefix: str, n: int, seed: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        kind = TYPES[int(rng.choice(3, p=[0.6, 0.15, 0.25]))]
        term = int(rng.choice([3, 6, 12]) if kind == "daily_interest" else rng.choice([3, 6, 9, 12, 18, 24]))
        score = int(rng.integers(560, 900))
        rows.append({
            "loan_id": f"{prefix}-{i + 1:04d}",
            "borrower_id": f"T{rng.integers(0, 2**60):016x}",
            "origination_date": (dt.date(2026, 7, 1) + dt.timedelta(days=int(rng.integers(0, 31)))).isoformat(),
            "principal": f"{int(rng.integers(5, 200)) * 100:.2f}",
            "apr": f"{round(0.24 - (score - 560) / 340 * 0.16, 4):.4f}",
            "term_months": term,
            "repayment_type": kind,
            "credit_score": score,
            "region": REGIONS[int(rng.integers(len(REGIONS)))],
            "channel": CHANNELS[int(rng.integers(3))],
            "product": PRODUCTS[int(rng.integers(3))],
        })
    return rows


def write(path: Path, columns: list[str], rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        out.writeheader()
        out.writerows(rows)


def main() -> None:
    new = loans("T2607", 500, seed=2607)
    write(HERE / "loans_2026_07.csv", COLUMNS, new)
    perf = [{"loan_id": r["loan_id"], "as_of": "2026-07-31", "months_on_book": 0,
             "balance": r["principal"], "dpd": 0, "status": "current"} for r in new]
    write(HERE / "perf_2026_07.csv", ["loan_id", "as_of", "months_on_book", "balance", "dpd", "status"], perf)
    messy = loans("M2607", 20, seed=2608)
    messy[3]["borrower_id"] = "13800138000"   # phone-number shaped: refused (no PII)
    messy[7]["apr"] = "18"                    # a percent, not a decimal
    messy[11]["term_months"] = 7              # not an offered term
    messy[15]["credit_score"] = 1200          # outside [350, 950]
    write(HERE / "messy.csv", COLUMNS, messy)


if __name__ == "__main__":
    main()
