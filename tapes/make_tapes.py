"""Write the sample tapes the README's tour loads (run from the project root; deterministic).

    .venv/bin/python tapes/make_tapes.py

`loans_2026_07.csv`: 500 loans originated in July 2026 on top of the tour's generated book
(`riskpool generate --seed 13 --as-of 2026-06-30`); ids `T2607-0001`… never clash with the
generator's `L000000001`…. `perf_2026_07.csv`: their first month-end row (2026-07-31, months on
book 0, balance = principal, current). `messy.csv`: 20 July loans of which 4 break a rule (a
phone-number-shaped borrower id, an APR written as a percent, a term of 7 months, a score of
1,200) — `--allow-rejects` loads the 16 good rows and keeps the 4 in `ingest_rejects`.
`bank_tape_cn_2026_07.csv` and `bank_perf_cn_2026_07.csv`: 200 more July loans and their first
month-end rows as a bank's system exports them — Chinese headers, dates as 2026/7/6 and
20260731, the APR in percent, repayment types and statuses as codes — loaded with the mappings
in `examples/mappings/`. Ids are pseudonymous (`B2607-0001`, `C` + 16 hex digits).
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


BANK_LOAN_HEADERS = {"loan_id": "借据编号", "borrower_id": "客户编号", "origination_date": "放款日期",
                     "principal": "合同金额(元)", "apr": "年化利率(%)", "term_months": "期限(月)",
                     "repayment_type": "还款方式代码", "credit_score": "信用评分",
                     "region": "所在省份", "product": "产品名称"}
BANK_TYPE_CODES = {"level_annuity": "01", "equal_principal": "02", "interest_only": "03",
                   "daily_interest": "04"}
BANK_PERF_HEADERS = {"loan_id": "借据编号", "as_of": "数据日期", "months_on_book": "账龄(月)",
                     "balance": "贷款余额(元)", "dpd": "逾期天数", "status": "贷款状态代码"}


def bank_tapes() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The bank-style loan and performance tapes (module doc)."""
    rows = loans("B2607", 200, seed=2609)
    bank, perf = [], []
    for r in rows:
        d = dt.date.fromisoformat(str(r["origination_date"]))
        bank.append({
            "借据编号": r["loan_id"], "客户编号": "C" + str(r["borrower_id"])[1:],
            "放款日期": f"{d.year}/{d.month}/{d.day}", "合同金额(元)": r["principal"],
            "年化利率(%)": f"{float(str(r['apr'])) * 100:.2f}", "期限(月)": r["term_months"],
            "还款方式代码": BANK_TYPE_CODES[str(r["repayment_type"])],
            "信用评分": r["credit_score"], "所在省份": r["region"],
            "产品名称": r["product"]})
        perf.append({"借据编号": r["loan_id"], "数据日期": "20260731", "账龄(月)": 0,
                     "贷款余额(元)": r["principal"], "逾期天数": 0, "贷款状态代码": "N"})
    return bank, perf


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
    bank, bank_perf = bank_tapes()
    write(HERE / "bank_tape_cn_2026_07.csv", list(BANK_LOAN_HEADERS.values()), bank)
    write(HERE / "bank_perf_cn_2026_07.csv", list(BANK_PERF_HEADERS.values()), bank_perf)


if __name__ == "__main__":
    main()
