"""Performance analytics on a tiny hand-built book whose every figure is worked out by hand.

The book (9 loans, month-ends M0 = 2023-12-31 … M3 = 2024-03-31; amounts in CNY):

loan  orig        term type             principal apr   score region     product
A     2023-09-15  12   level_annuity      12,000  0.18  720   Zhejiang   instalment
B     2023-09-15  12   equal_principal    10,000  0.24  610   Guangdong  instalment
C     2023-12-20   6   level_annuity       5,000  0.12  680   Zhejiang   instalment
D     2024-01-10  12   daily_interest      8,000  0.15  780   Sichuan    daily
E     2024-01-10   9   equal_principal     9,000  0.20  560   Sichuan    instalment
F     2023-10-05   3   interest_only       4,000  0.10  800   Guangdong  instalment
G     2023-06-15  12   level_annuity       7,000  0.22  590   Henan      instalment
H     2022-11-20  12   level_annuity       3,000  0.16  660   Henan      instalment
J     2022-12-10  12   level_annuity       2,000  0.24  590   Henan      instalment

Month-end rows: balance, pp = paid principal, pre = prepaid principal, dpd, status
(cur = current, del = delinquent, dflt = default), co = charge-off, rec = recovery;
"-" = not yet originated, "none" = no row (closed loans stop reporting):

      M0 2023-12-31         M1 2024-01-31         M2 2024-02-29           M3 2024-03-31
A     9,000 cur             8,000 pp1,000 cur     7,000 pp1,000 cur       6,000 pp1,000 cur
B     8,000 dpd20 del       8,000 dpd50 del       8,000 dpd80 del         8,000 dpd111 dflt
C     5,000 cur             4,200 pp800 cur       0 pp800 pre3,400 prepaid none
D     -                     8,000 cur             6,000 pp500 pre1,500    5,000 pp1,000 cur
E     -                     9,000 cur             9,000 dpd19 del         7,000 pp2,000 cur
F     4,000 cur             0 pp4,000 matured     none                    none
G     5,000 dpd130 dflt     5,000 dpd161 dflt     0 dpd191 dflt co5,000   0 dpd222 dflt rec600
H     none (matured before the tape window)
J     0 dpd200 dflt co1,500 none                  none                    none

Seasoned (originated ≥ 15 months before M3): H and J only.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboards.xlsx import read_tables
from portfolio.book import analytics
from portfolio.errors import NotFound, RiskpoolError, ValidationError
from portfolio.store.book import insert_loans, insert_performance
from portfolio.store.core import open_store

M0, M1, M2, M3 = (dt.date(2023, 12, 31), dt.date(2024, 1, 31), dt.date(2024, 2, 29),
                  dt.date(2024, 3, 31))

LOANS = [
    # loan, orig, term, type, principal, apr, score, region, product
    ("A", "2023-09-15", 12, "level_annuity", 12_000, 0.18, 720, "Zhejiang", "instalment"),
    ("B", "2023-09-15", 12, "equal_principal", 10_000, 0.24, 610, "Guangdong", "instalment"),
    ("C", "2023-12-20", 6, "level_annuity", 5_000, 0.12, 680, "Zhejiang", "instalment"),
    ("D", "2024-01-10", 12, "daily_interest", 8_000, 0.15, 780, "Sichuan", "daily"),
    ("E", "2024-01-10", 9, "equal_principal", 9_000, 0.20, 560, "Sichuan", "instalment"),
    ("F", "2023-10-05", 3, "interest_only", 4_000, 0.10, 800, "Guangdong", "instalment"),
    ("G", "2023-06-15", 12, "level_annuity", 7_000, 0.22, 590, "Henan", "instalment"),
    ("H", "2022-11-20", 12, "level_annuity", 3_000, 0.16, 660, "Henan", "instalment"),
    ("J", "2022-12-10", 12, "level_annuity", 2_000, 0.24, 590, "Henan", "instalment"),
]

PERFORMANCE = [
    # loan, as_of, mob, balance, paid_principal, prepaid, dpd, status, charge_off, recovery
    ("A", M0, 3, 9_000, 0, 0, 0, "current", 0, 0),
    ("B", M0, 3, 8_000, 0, 0, 20, "delinquent", 0, 0),
    ("C", M0, 0, 5_000, 0, 0, 0, "current", 0, 0),
    ("F", M0, 2, 4_000, 0, 0, 0, "current", 0, 0),
    ("G", M0, 6, 5_000, 0, 0, 130, "default", 0, 0),
    ("J", M0, 12, 0, 0, 0, 200, "default", 1_500, 0),
    ("A", M1, 4, 8_000, 1_000, 0, 0, "current", 0, 0),
    ("B", M1, 4, 8_000, 0, 0, 50, "delinquent", 0, 0),
    ("C", M1, 1, 4_200, 800, 0, 0, "current", 0, 0),
    ("D", M1, 0, 8_000, 0, 0, 0, "current", 0, 0),
    ("E", M1, 0, 9_000, 0, 0, 0, "current", 0, 0),
    ("F", M1, 3, 0, 4_000, 0, 0, "matured", 0, 0),
    ("G", M1, 7, 5_000, 0, 0, 161, "default", 0, 0),
    ("A", M2, 5, 7_000, 1_000, 0, 0, "current", 0, 0),
    ("B", M2, 5, 8_000, 0, 0, 80, "delinquent", 0, 0),
    ("C", M2, 2, 0, 800, 3_400, 0, "prepaid", 0, 0),
    ("D", M2, 1, 6_000, 500, 1_500, 0, "current", 0, 0),
    ("E", M2, 1, 9_000, 0, 0, 19, "delinquent", 0, 0),
    ("G", M2, 8, 0, 0, 0, 191, "default", 5_000, 0),
    ("A", M3, 6, 6_000, 1_000, 0, 0, "current", 0, 0),
    ("B", M3, 6, 8_000, 0, 0, 111, "default", 0, 0),
    ("D", M3, 2, 5_000, 1_000, 0, 0, "current", 0, 0),
    ("E", M3, 2, 7_000, 2_000, 0, 0, "current", 0, 0),
    ("G", M3, 9, 0, 0, 0, 222, "default", 0, 600),
]


def loans_frame() -> pd.DataFrame:
    rows = [
        {
            "loan_id": loan, "borrower_id": f"b-{loan}",
            "origination_date": dt.date.fromisoformat(orig), "principal": float(principal),
            "apr": apr, "term_months": term, "repayment_type": kind, "credit_score": score,
            "region": region, "channel": "app", "product": product,
        }
        for loan, orig, term, kind, principal, apr, score, region, product in LOANS
    ]
    return pd.DataFrame(rows)


def performance_frame(scale: float = 1.0) -> pd.DataFrame:
    cols = ["loan_id", "as_of", "months_on_book", "balance", "paid_principal",
            "prepaid_principal", "dpd", "status", "charge_off", "recovery"]
    frame = pd.DataFrame(PERFORMANCE, columns=cols)
    for col in ("balance", "paid_principal", "prepaid_principal", "charge_off", "recovery"):
        frame[col] = frame[col].astype(float) * scale
    frame["paid_interest"] = 0.0
    return frame


def build_book(path: Path, loans: pd.DataFrame, perf: pd.DataFrame) -> Path:
    with open_store(path) as store, store.transaction() as con:
        insert_loans(con, loans)
        insert_performance(con, perf)
    return path


@pytest.fixture
def book(tmp_path: Path) -> Path:
    return build_book(tmp_path / "tiny.duckdb", loans_frame(), performance_frame())


@pytest.fixture
def con(book: Path):
    with open_store(book, read_only=True) as store:
        yield store.con


def rows_by(frame: pd.DataFrame, key: str) -> dict[str, pd.Series]:
    return {str(k): row for k, row in frame.set_index(key).iterrows()}


# --------------------------------------------------------------------------- closed forms


def test_annualise_is_one_minus_survival_to_the_twelfth() -> None:
    # CDR = 1 − (1 − MDR)^12: MDR 0.04 → 1 − 0.96^12 = 0.38729; 0 → 0; 1 → 1.
    got = analytics.annualise([0.04, 0.0, 1.0, np.nan])
    assert got[:3] == pytest.approx([1 - 0.96**12, 0.0, 1.0])
    assert got[0] == pytest.approx(0.387290, abs=1e-6)
    assert np.isnan(got[3])


@given(st.floats(min_value=0.0, max_value=0.999))
def test_annualise_matches_power_form_and_is_monotone(m: float) -> None:
    assert analytics.annualise(m) == pytest.approx(1 - (1 - m) ** 12, abs=1e-12)
    assert analytics.annualise(m) >= m - 1e-15


# --------------------------------------------------------------------------- delinquency


def test_delinquency_buckets_at_latest_month_end(con) -> None:
    result = analytics.delinquency(con)  # as-of defaults to the latest month-end, M3
    assert result.as_of == M3
    rows = rows_by(result.buckets, "bucket")
    assert list(result.buckets["bucket"]) == list(analytics.BUCKETS)
    # current at M3: A 6,000 + D 5,000 + E 7,000 (cured) = 18,000 over 3 loans
    assert (rows["current"]["loans"], rows["current"]["balance"]) == (3, pytest.approx(18_000))
    # nothing in M1–M3 at M3
    for b in ("M1", "M2", "M3"):
        assert (rows[b]["loans"], rows[b]["balance"]) == (0, 0.0)
    # default: B (dpd 111) 8,000
    assert (rows["default"]["loans"], rows["default"]["balance"]) == (1, pytest.approx(8_000))
    # written off by M3: J (1,500 at M0) + G (5,000 at M2) = 6,500 over 2 loans
    assert rows["written_off"]["loans"] == 2
    assert rows["written_off"]["balance"] == pytest.approx(6_500)
    # shares of the outstanding 26,000: 18/26 and 8/26; written off has none
    assert rows["current"]["balance_share"] == pytest.approx(18_000 / 26_000)
    assert rows["default"]["balance_share"] == pytest.approx(8_000 / 26_000)
    assert np.isnan(rows["written_off"]["balance_share"])


def test_delinquency_at_earlier_month_end(con) -> None:
    rows = rows_by(analytics.delinquency(con, M2).buckets, "bucket")
    # M2: current A 7,000 + D 6,000; M1 E 9,000 (dpd 19); M3 B 8,000 (dpd 80); C prepaid out
    assert (rows["current"]["loans"], rows["current"]["balance"]) == (2, pytest.approx(13_000))
    assert (rows["M1"]["loans"], rows["M1"]["balance"]) == (1, pytest.approx(9_000))
    assert (rows["M2"]["loans"], rows["M2"]["balance"]) == (0, 0.0)
    assert (rows["M3"]["loans"], rows["M3"]["balance"]) == (1, pytest.approx(8_000))
    assert (rows["default"]["loans"], rows["default"]["balance"]) == (0, 0.0)
    assert (rows["written_off"]["loans"], rows["written_off"]["balance"]) == (2, 6_500)
    assert rows["M1"]["balance_share"] == pytest.approx(9_000 / 30_000)


def test_delinquency_over_time_has_one_row_per_month_end(con) -> None:
    wide = analytics.delinquency(con, over_time=True).over_time
    assert wide is not None
    assert list(wide["as_of"]) == [M0, M1, M2, M3]
    at = {row["as_of"]: row for _, row in wide.iterrows()}
    # M0: current A 9,000 + C 5,000 + F 4,000 = 18,000; M1 B 8,000; default G 5,000;
    #     written off J 1,500
    assert at[M0]["current_balance"] == pytest.approx(18_000)
    assert at[M0]["current_loans"] == 3
    assert at[M0]["M1_balance"] == pytest.approx(8_000)
    assert at[M0]["default_balance"] == pytest.approx(5_000)
    assert (at[M0]["written_off_loans"], at[M0]["written_off_balance"]) == (1, 1_500)
    # M1: current A 8,000 + C 4,200 + D 8,000 + E 9,000 = 29,200 (F matured: out)
    assert at[M1]["current_balance"] == pytest.approx(29_200)
    assert at[M1]["current_loans"] == 4
    assert at[M1]["M2_balance"] == pytest.approx(8_000)
    assert (at[M1]["written_off_loans"], at[M1]["written_off_balance"]) == (1, 1_500)
    # M2 and M3: written off J + G = 2 loans, 6,500 (cumulative)
    assert (at[M2]["written_off_loans"], at[M2]["written_off_balance"]) == (2, 6_500)
    assert (at[M3]["written_off_loans"], at[M3]["written_off_balance"]) == (2, 6_500)
    assert at[M3]["default_balance"] == pytest.approx(8_000)


# --------------------------------------------------------------------------- roll rates


def test_roll_matrix_between_consecutive_month_ends(con) -> None:
    result = analytics.roll_rates(con, M1, M2)
    m = rows_by(result.matrix, "from_bucket")
    # current at M1: A 8,000, C 4,200, D 8,000, E 9,000 = 29,200.
    # At M2: A, D current (16,000); E M1 (9,000); C prepaid (4,200).
    cur = m["current"]
    assert cur["balance"] == pytest.approx(29_200)
    assert cur["loans"] == 4
    assert cur["current"] == pytest.approx(16_000 / 29_200)  # 0.547945
    assert cur["M1"] == pytest.approx(9_000 / 29_200)  # 0.308219
    assert cur["prepaid"] == pytest.approx(4_200 / 29_200)  # 0.143836
    assert cur["roll_forward"] == pytest.approx(9_000 / 29_200)
    assert np.isnan(cur["cure_rate"])
    # M2 at M1: B 8,000 → M3 at M2: roll forward 1, cure 0
    assert m["M2"]["M3"] == pytest.approx(1.0)
    assert m["M2"]["roll_forward"] == pytest.approx(1.0)
    assert m["M2"]["cure_rate"] == 0.0
    # default at M1: G 5,000 → written off at M2
    assert m["default"]["written_off"] == pytest.approx(1.0)
    assert m["default"]["roll_forward"] == pytest.approx(1.0)
    # no M1 or M3 balance at M1: NaN shares
    assert m["M1"]["balance"] == 0.0 and np.isnan(m["M1"]["current"])
    # every row with balance sums to 1 over the destination states
    shares = result.matrix.set_index("from_bucket")[list(analytics.ROLL_TO_STATES)]
    assert shares.loc[["current", "M2", "default"]].sum(axis=1).to_numpy() == pytest.approx(1.0)
    # the total row (CLI, Book page, report): the buckets split the 42,200 outstanding at M1
    # (current 29,200 + M2 8,000 + default 5,000); each state's share of it at M2, by hand:
    # current 16,000, M1 9,000, M3 8,000 (B), written off 5,000 (G), prepaid 4,200 (C)
    total = result.tables()["roll_rates"].set_index("from_bucket").loc[analytics.ROLL_TOTAL]
    assert (total["loans"], total["balance"]) == (6, pytest.approx(42_200))
    for state, amount in (("current", 16_000), ("M1", 9_000), ("M3", 8_000),
                          ("written_off", 5_000), ("prepaid", 4_200), ("default", 0)):
        assert total[state] == pytest.approx(amount / 42_200), state
    assert total[list(analytics.ROLL_TO_STATES)].sum() == pytest.approx(1.0)
    # one bucket worse: E 9,000 (current → M1), B 8,000 (M2 → M3), G 5,000 (default → w/o)
    assert total["roll_forward"] == pytest.approx(22_000 / 42_200)
    assert np.isnan(total["cure_rate"])
    assert len(result.matrix) == 5  # the matrix itself keeps the buckets alone


def test_roll_matrix_default_is_latest_month_and_previous(con) -> None:
    result = analytics.roll_rates(con)
    assert (result.from_date, result.to_date) == (M2, M3)
    m = rows_by(result.matrix, "from_bucket")
    # M1 at M2: E 9,000 → current at M3: cure rate 9,000 / 9,000 = 1
    assert m["M1"]["cure_rate"] == pytest.approx(1.0)
    assert m["M1"]["roll_forward"] == 0.0
    # M3 at M2: B 8,000 → default at M3
    assert m["M3"]["default"] == pytest.approx(1.0)
    assert m["M3"]["cure_rate"] == 0.0


def test_roll_matrix_over_two_months_keeps_exit_states_of_loans_that_stop_reporting(
    con,
) -> None:
    m = rows_by(analytics.roll_rates(con, M0, M2).matrix, "from_bucket")
    # current at M0: A 9,000, C 5,000, F 4,000 = 18,000.
    # At M2: A current; C prepaid (row at M2); F matured at M1, no row since → matured.
    assert m["current"]["current"] == pytest.approx(9_000 / 18_000)
    assert m["current"]["prepaid"] == pytest.approx(5_000 / 18_000)
    assert m["current"]["matured"] == pytest.approx(4_000 / 18_000)
    assert m["current"]["not_reported"] == 0.0
    # M1 at M0: B 8,000 (dpd 20) → M3 at M2 (dpd 80)
    assert m["M1"]["M3"] == pytest.approx(1.0)


def test_roll_rates_refuse_from_not_before_to(con) -> None:
    with pytest.raises(ValidationError, match="--from"):
        analytics.roll_rates(con, M3, M2)


# --------------------------------------------------------------------------- vintages


def test_vintage_curves_by_hand(con) -> None:
    result = analytics.vintage_curves(con)
    cd = result.cumulative_default.set_index("vintage")
    nl = result.net_loss.set_index("vintage")
    sep, jun, dec22 = dt.date(2023, 9, 1), dt.date(2023, 6, 1), dt.date(2022, 12, 1)
    # 2023-09 vintage: A 12,000 + B 10,000 = 22,000; B defaults at M3 (mob 6) with 8,000.
    assert cd.loc[sep, "original_balance"] == pytest.approx(22_000)
    assert cd.loc[sep, "loans"] == 2
    assert [cd.loc[sep, m] for m in (3, 4, 5)] == [0.0, 0.0, 0.0]
    assert cd.loc[sep, 6] == pytest.approx(8_000 / 22_000)  # 0.363636
    assert np.isnan(cd.loc[sep, 7])  # not yet observed at M3 (mob 6 is the latest)
    assert np.isnan(cd.loc[sep, 2])  # before the tape window
    # 2023-06 vintage: G 7,000, in default from mob 6 (first row, 5,000), 600 recovered at mob 9
    assert [cd.loc[jun, m] for m in (6, 7, 8, 9)] == pytest.approx([5_000 / 7_000] * 4)
    assert nl.loc[jun, 8] == pytest.approx(5_000 / 7_000)  # 0.714286
    assert nl.loc[jun, 9] == pytest.approx((5_000 - 600) / 7_000)  # 0.628571
    # 2022-12 vintage: J 2,000, written off at mob 12 for 1,500 (balance 0 on that row)
    assert cd.loc[dec22, 12] == pytest.approx(1_500 / 2_000)
    # 2024-01 vintage: D + E = 17,000, no default through mob 2
    jan = dt.date(2024, 1, 1)
    assert cd.loc[jan, "original_balance"] == pytest.approx(17_000)
    assert [cd.loc[jan, m] for m in (0, 1, 2)] == [0.0, 0.0, 0.0]
    # H (2022-11) has no performance rows: no curve
    assert dt.date(2022, 11, 1) not in cd.index
    # one column per months on book, contiguous 0 … 12 (10 and 11 observed by no vintage)
    assert [c for c in cd.columns if isinstance(c, int)] == list(range(13))
    assert cd[10].isna().all()
    assert list(cd.index) == sorted(cd.index)


# --------------------------------------------------------------------------- monthly rates


def test_monthly_rates_by_hand(con) -> None:
    series = analytics.monthly_rates(con).series
    assert list(series["as_of"]) == [M1, M2, M3]  # M0 has no month-start on file
    r = {row["as_of"]: row for _, row in series.iterrows()}

    # January (start M0): performing A 9,000 + B 8,000 (M1) + C 5,000 + F 4,000 = 26,000
    # (G in default excluded). Scheduled principal = A 1,000 + C 800 + F 4,000 = 5,800.
    jan = r[M1]
    assert jan["performing_start"] == pytest.approx(26_000)
    assert jan["scheduled_principal"] == pytest.approx(5_800)
    assert (jan["mdr"], jan["cdr"], jan["smm"], jan["cpr"]) == (0.0, 0.0, 0.0, 0.0)
    assert np.isnan(jan["mpr"])  # no daily-interest loan at the start of January

    # February (start M1): performing A 8,000 + B 8,000 + C 4,200 + D 8,000 + E 9,000 = 37,200
    # scheduled = A 1,000 + C 800 + D 500 = 2,300; prepaid = C 3,400 + D 1,500 = 4,900
    # SMM = 4,900 / (37,200 − 2,300) = 4,900 / 34,900 = 0.140401; CPR = 1 − (30,000 / 34,900)^12 = 0.837239
    # MPR (D only) = (500 + 1,500) / 8,000 = 0.25
    feb = r[M2]
    assert feb["performing_start"] == pytest.approx(37_200)
    assert feb["scheduled_principal"] == pytest.approx(2_300)
    assert feb["prepaid_principal"] == pytest.approx(4_900)
    assert feb["smm"] == pytest.approx(4_900 / 34_900)
    assert feb["cpr"] == pytest.approx(1 - (1 - 4_900 / 34_900) ** 12)
    assert feb["cpr"] == pytest.approx(0.837239, abs=1e-6)
    assert feb["mpr"] == pytest.approx(0.25)
    assert feb["mdr"] == 0.0  # G's write-off is not a new default (it defaulted before M0)
    assert feb["charge_off"] == pytest.approx(5_000)

    # March (start M2): performing A 7,000 + B 8,000 (M3) + D 6,000 + E 9,000 (M1) = 30,000
    # new default: B 8,000 → MDR = 8,000 / 30,000 = 0.266667; CDR = 1 − (22/30)^12 = 0.975811
    # scheduled = A 1,000 + D 1,000 + E 2,000 = 4,000; no prepayment → SMM 0
    # MPR = 1,000 / 6,000 = 0.166667; recovery G 600
    mar = r[M3]
    assert mar["performing_start"] == pytest.approx(30_000)
    assert mar["new_default"] == pytest.approx(8_000)
    assert mar["mdr"] == pytest.approx(8_000 / 30_000)
    assert mar["cdr"] == pytest.approx(1 - (22 / 30) ** 12)
    assert mar["cdr"] == pytest.approx(0.975811, abs=1e-6)
    assert mar["scheduled_principal"] == pytest.approx(4_000)
    assert (mar["smm"], mar["cpr"]) == (0.0, 0.0)
    assert mar["mpr"] == pytest.approx(1_000 / 6_000)
    assert mar["recovery"] == pytest.approx(600)


def test_a_month_reported_for_part_of_the_book_has_blank_rates(tmp_path: Path, cli) -> None:
    # April's tape holds only A (of A, D, E performing at the end of March; B defaulted):
    # the flows on file are A's alone, so MDR, SMM and MPR over the whole performing balance
    # would read 0 for D's and E's missing months: the rates are blank and the month is named
    m4 = dt.date(2024, 4, 30)
    perf = performance_frame()
    extra = perf[(perf["loan_id"] == "A") & (perf["as_of"] == M3)].assign(
        as_of=m4, months_on_book=7, balance=5_000.0)
    path = build_book(tmp_path / "part.duckdb", loans_frame(),
                      pd.concat([perf, extra], ignore_index=True))
    with open_store(path, read_only=True) as store:
        rates = analytics.monthly_rates(store.con)
    r = rates.series.set_index("as_of")
    assert rates.incomplete == ((m4, 3, 1),)
    assert r.loc[m4, ["mdr", "cdr", "smm", "cpr", "mpr"]].isna().all()
    assert r.loc[m4, "performing_start"] == pytest.approx(6_000 + 5_000 + 7_000)
    # the complete months keep their rates (the hand-worked March)
    assert r.loc[M3, "mdr"] == pytest.approx(8_000 / 30_000)
    out = cli("book", "rates", "--db", path)
    assert out.code == 0, out.err
    assert "2024-04-30: 1 of the 3 loans performing at the month's start" in out.out


def test_cli_delinquency_shows_its_total_and_an_incomplete_month_says_so(tmp_path: Path,
                                                                         cli) -> None:
    # the bucket table splits the outstanding book: its "total outstanding" row is the sum of
    # current to default (written_off, cumulative, stays apart) and equals the book summary's
    # "all" row; at a month-end reported for part of the book (April: A alone of A, D, E)
    # both commands say so and name the latest complete month-end
    m4 = dt.date(2024, 4, 30)
    perf = performance_frame()
    extra = perf[(perf["loan_id"] == "A") & (perf["as_of"] == M3)].assign(
        as_of=m4, months_on_book=7, balance=5_000.0)
    path = build_book(tmp_path / "part.duckdb", loans_frame(),
                      pd.concat([perf, extra], ignore_index=True))
    for as_of, complete in (("2024-03-31", True), ("2024-04-30", False)):
        out = tmp_path / f"dq_{as_of}.csv"
        r = cli("book", "delinquency", "--db", path, "--as-of", as_of, "--out", out)
        assert r.code == 0, r.err
        table = pd.read_csv(out).set_index("bucket")
        is_open = [b for b in table.index if b not in ("total outstanding", "written_off")]
        total = table.loc["total outstanding"]
        assert total["loans"] == table.loc[is_open, "loans"].sum()
        assert total["balance"] == pytest.approx(table.loc[is_open, "balance"].sum())
        assert total["balance_share"] == pytest.approx(1.0)
        s = tmp_path / f"sum_{as_of}.csv"
        r2 = cli("book", "summary", "--db", path, "--as-of", as_of, "--out", s)
        assert r2.code == 0, r2.err
        summary = pd.read_csv(s.with_name(f"sum_{as_of}_summary.csv"))
        everything = summary[summary["dimension"] == "all"].iloc[0]
        assert total["balance"] == pytest.approx(everything["balance"])
        assert total["loans"] == everything["loans"]
        for text in (r.out, r2.out):
            assert ("note: only 1 of the 3 loans performing a month before 2024-04-30" in text
                    and "latest complete month-end is 2024-03-31" in text) is not complete


# --------------------------------------------------------------------------- summary


def test_summary_overall_by_hand(con) -> None:
    result = analytics.book_summary(con)
    g = result.groups
    overall = g[g["dimension"] == "all"].iloc[0]
    # outstanding at M3: A 6,000 (0.18, 720, 6 due dates left: Apr … Sep 2024),
    # B 8,000 (0.24, 610, 6), D 5,000 (0.15, 780, 10: Apr 2024 … Jan 2025),
    # E 7,000 (0.20, 560, 7: Apr … Oct 2024) = 26,000 over 4 loans
    assert (overall["loans"], overall["balance"]) == (4, pytest.approx(26_000))
    # WA APR = (1,080 + 1,920 + 750 + 1,400) / 26,000 = 5,150 / 26,000 = 0.198077
    assert overall["wa_apr"] == pytest.approx(5_150 / 26_000)
    # WA score = (4,320,000 + 4,880,000 + 3,900,000 + 3,920,000) / 26,000 = 654.615
    assert overall["wa_score"] == pytest.approx(17_020_000 / 26_000)
    # WA remaining term = (36,000 + 48,000 + 50,000 + 49,000) / 26,000 = 7.0385 months
    assert overall["wa_remaining_term"] == pytest.approx(183_000 / 26_000)
    # 30+ and 90+: B (dpd 111) 8,000 / 26,000
    assert overall["dpd30_ratio"] == pytest.approx(8_000 / 26_000)
    assert overall["dpd90_ratio"] == pytest.approx(8_000 / 26_000)
    assert overall["balance_share"] == pytest.approx(1.0)


def test_summary_groups_by_hand(con) -> None:
    g = analytics.book_summary(con).groups
    by = {(r["dimension"], r["group"]): r for _, r in g.iterrows()}
    assert by[("region", "Sichuan")]["balance"] == pytest.approx(12_000)  # D + E
    assert by[("region", "Sichuan")]["loans"] == 2
    assert by[("region", "Zhejiang")]["balance"] == pytest.approx(6_000)  # A (C prepaid)
    assert by[("term_months", "12")]["balance"] == pytest.approx(19_000)  # A + B + D
    assert by[("term_months", "9")]["balance_share"] == pytest.approx(7_000 / 26_000)
    assert by[("product", "daily")]["balance"] == pytest.approx(5_000)
    assert by[("repayment_type", "equal_principal")]["balance"] == pytest.approx(15_000)
    # equal_principal: B 8,000 @ 0.24 + E 7,000 @ 0.20 → WA APR 3,320 / 15,000
    assert by[("repayment_type", "equal_principal")]["wa_apr"] == pytest.approx(3_320 / 15_000)
    assert by[("repayment_type", "equal_principal")]["dpd90_ratio"] == pytest.approx(
        8_000 / 15_000
    )
    assert by[("score_band", "600-649")]["balance"] == pytest.approx(8_000)  # B
    assert by[("score_band", "350-599")]["balance"] == pytest.approx(7_000)  # E
    # each dimension's groups add up to the whole book
    for dim in ("product", "repayment_type", "score_band", "term_months", "region"):
        assert g.loc[g["dimension"] == dim, "balance"].sum() == pytest.approx(26_000)
    assert list(dict.fromkeys(g["dimension"])) == [
        "all", "product", "repayment_type", "score_band", "term_months", "region"
    ]


def test_summary_dpd_ratios_differ_at_earlier_month(con) -> None:
    overall = analytics.book_summary(con, M2).groups.iloc[0]
    # M2: outstanding A 7,000 + B 8,000 (dpd 80) + D 6,000 + E 9,000 (dpd 19) = 30,000
    # 30+ = 8,000 / 30,000 = 0.266667; 90+ = 0
    assert overall["dpd30_ratio"] == pytest.approx(8_000 / 30_000)
    assert overall["dpd90_ratio"] == 0.0


def test_anchor_figures_by_hand(con) -> None:
    result = analytics.book_summary(con)
    a = result.anchors
    assert a.dpd90_ratio == pytest.approx(8_000 / 26_000)
    # seasoned 12-month loans (originated ≥ 15 months before 2024-03-31): H 3,000 (no
    # default) and J 2,000 (written off for 1,500) → 1,500 / 5,000 = 0.30
    assert (a.seasoned_loans, a.seasoned_defaulted_loans) == (2, 1)
    assert a.seasoned_default_rate == pytest.approx(1_500 / 5_000)
    assert analytics.book_anchors(con) == a
    table = a.table()
    assert list(table["figure"]) == ["30+ DPD ratio", "90+ DPD ratio",
                                     "lifetime default, seasoned"]
    bands = rows_by(result.default_by_score_band, "score_band")
    # same seasoned cohort, all terms: 350-599 J 2,000 (1,500 defaulted); 650-699 H 3,000
    assert bands["350-599"]["default_rate"] == pytest.approx(0.75)
    assert bands["350-599"]["default_rate_loans"] == pytest.approx(1.0)
    assert bands["650-699"]["default_rate"] == 0.0
    assert bands["700-749"]["loans"] == 0 and np.isnan(bands["700-749"]["default_rate"])
    # the bands split the seasoned cohort: their total row, H and J, 1,500 defaulted of 5,000
    total = bands[analytics.BAND_TOTAL]
    assert (total["loans"], total["principal"]) == (2, 5_000.0)
    assert (total["defaulted_loans"], total["defaulted_balance"]) == (1, 1_500.0)
    assert total["default_rate"] == pytest.approx(1_500 / 5_000)
    assert list(result.default_by_score_band["score_band"])[-1] == analytics.BAND_TOTAL


def test_month_with_nothing_outstanding_gives_zero_book_not_an_error(tmp_path: Path) -> None:
    # only F: 4,000 at M0, matured at M1 → nothing outstanding at M1
    perf = performance_frame()
    path = build_book(tmp_path / "f.duckdb", loans_frame(), perf[perf["loan_id"] == "F"])
    with open_store(path, read_only=True) as store:
        overall = analytics.book_summary(store.con).groups.iloc[0]
        rolls = analytics.roll_rates(store.con).matrix.set_index("from_bucket")
        rates = analytics.monthly_rates(store.con).series
    assert (overall["dimension"], overall["loans"], overall["balance"]) == ("all", 0, 0.0)
    assert np.isnan(overall["wa_apr"]) and np.isnan(overall["dpd90_ratio"])
    assert rolls.loc["current", "matured"] == pytest.approx(1.0)  # 4,000 / 4,000
    # January: start 4,000, scheduled 4,000 (the bullet) → SMM denominator 0 → NaN
    assert rates["scheduled_principal"].item() == pytest.approx(4_000)
    assert np.isnan(rates["smm"].item())


# --------------------------------------------------------------------------- invariants


def test_scaling_every_amount_leaves_every_ratio_unchanged(tmp_path: Path) -> None:
    """Doubling every balance and cash flow (and principal) changes no ratio."""
    loans = loans_frame()
    loans["principal"] = loans["principal"] * 2
    path = build_book(tmp_path / "double.duckdb", loans, performance_frame(scale=2.0))
    with open_store(path, read_only=True) as store:
        rates = analytics.monthly_rates(store.con).series
        rolls = analytics.roll_rates(store.con, M1, M2).matrix
        curves = analytics.vintage_curves(store.con).net_loss
    assert rates.loc[rates["as_of"] == M2, "smm"].item() == pytest.approx(4_900 / 34_900)
    assert rates.loc[rates["as_of"] == M3, "mdr"].item() == pytest.approx(8_000 / 30_000)
    assert rolls.set_index("from_bucket").loc["current", "M1"] == pytest.approx(9_000 / 29_200)
    assert curves.set_index("vintage").loc[dt.date(2023, 6, 1), 9] == pytest.approx(
        4_400 / 7_000
    )


DPD_EDGES = (0, 1, 30, 31, 60, 61, 90, 91, 180)


def _status(dpd: int) -> str:
    return "current" if dpd == 0 else ("delinquent" if dpd <= 90 else "default")


@settings(max_examples=10)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.sampled_from(DPD_EDGES), st.integers(min_value=0, max_value=200)),
            st.integers(min_value=1, max_value=50_000),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_sql_buckets_agree_with_types_dpd_bucket(
    tmp_path_factory: pytest.TempPathFactory, book_rows: list[tuple[int, int]]
) -> None:
    """Oracle: ``portfolio.loans.types.dpd_bucket`` in Python. Each loan has dpd d at M3 and
    max(d − 30, 0) at M2; bucket balances, 30+/90+ ratios and the M2 → M3 roll matrix must
    match the Python grouping, and every roll-matrix row with balance sums to 1."""
    from portfolio.loans.types import dpd_bucket

    path = tmp_path_factory.mktemp("prop") / "book.duckdb"
    loans = loans_frame().iloc[: len(book_rows)].copy()
    perf = []
    for loan, (dpd, bal) in zip(loans["loan_id"], book_rows, strict=True):
        before = max(dpd - 30, 0)
        perf.append((loan, M2, 5, float(bal), 0.0, 0.0, before, _status(before), 0.0, 0.0))
        perf.append((loan, M3, 6, float(bal), 0.0, 0.0, dpd, _status(dpd), 0.0, 0.0))
    cols = ["loan_id", "as_of", "months_on_book", "balance", "paid_principal",
            "prepaid_principal", "dpd", "status", "charge_off", "recovery"]
    build_book(path, loans, pd.DataFrame(perf, columns=cols))
    with open_store(path, read_only=True) as store:
        buckets = analytics.delinquency(store.con).buckets.set_index("bucket")
        overall = analytics.book_summary(store.con).groups.iloc[0]
        matrix = analytics.roll_rates(store.con).matrix.set_index("from_bucket")

    total = float(sum(bal for _, bal in book_rows))
    for bucket in analytics.ACTIVE_BUCKETS:
        expected = sum(bal for dpd, bal in book_rows if dpd_bucket(dpd) == bucket)
        assert buckets.loc[bucket, "balance"] == pytest.approx(expected)
    assert overall["balance"] == pytest.approx(total)
    assert overall["dpd30_ratio"] == pytest.approx(
        sum(bal for dpd, bal in book_rows if dpd > 30) / total)
    assert overall["dpd90_ratio"] == pytest.approx(
        sum(bal for dpd, bal in book_rows if dpd > 90) / total)
    moves = pd.DataFrame(
        [(dpd_bucket(max(d - 30, 0)), dpd_bucket(d), float(b)) for d, b in book_rows],
        columns=["from", "to", "balance"],
    )
    expected_shares = moves.pivot_table(index="from", columns="to", values="balance",
                                        aggfunc="sum", fill_value=0.0)
    expected_shares = expected_shares.div(expected_shares.sum(axis=1), axis=0)
    for b_from, row in expected_shares.iterrows():
        for b_to, share in row.items():
            assert matrix.loc[b_from, b_to] == pytest.approx(share)
    with_balance = matrix[matrix["balance"] > 0][list(analytics.ROLL_TO_STATES)]
    assert with_balance.sum(axis=1).to_numpy() == pytest.approx(1.0)


# --------------------------------------------------------------------------- bad input


def test_as_of_must_be_a_month_end_on_file(con) -> None:
    with pytest.raises(NotFound, match="--as-of"):
        analytics.delinquency(con, dt.date(2024, 3, 15))
    with pytest.raises(NotFound, match="2023-12-31 and 2024-03-31"):
        analytics.book_summary(con, dt.date(2025, 1, 31))


def test_empty_book_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    open_store(path).close()
    with open_store(path, read_only=True) as store, pytest.raises(
        NotFound, match="no loan performance history"
    ):
        analytics.monthly_rates(store.con)


def test_database_without_tables_is_refused(tmp_path: Path) -> None:
    """Refused when it is opened (every reader, not only the analytics' queries)."""
    import duckdb

    path = tmp_path / "other.duckdb"
    duckdb.connect(str(path)).close()
    with pytest.raises(RiskpoolError, match="holds no riskpool tables"):
        open_store(path, read_only=True)


# --------------------------------------------------------------------------- CLI


def test_cli_each_subcommand_runs(cli, book: Path) -> None:
    r = cli("book", "summary", "--db", book)
    assert r.code == 0, r.err
    assert "book summary at 2024-03-31" in r.out and "90+ DPD ratio" in r.out
    r = cli("book", "delinquency", "--db", book, "--as-of", "2024-02-29", "--over-time")
    assert r.code == 0, r.err
    assert "delinquency_by_month" in r.out and "written_off" in r.out
    r = cli("book", "rolls", "--db", book, "--from", "2024-01-31", "--to", "2024-02-29")
    assert r.code == 0, r.err
    assert "roll rates 2024-01-31 -> 2024-02-29" in r.out and "cure_rate" in r.out
    r = cli("book", "vintages", "--db", book)
    assert r.code == 0, r.err
    assert "cumulative_default" in r.out and "net_loss" in r.out
    r = cli("book", "rates", "--db", book)
    assert r.code == 0, r.err
    assert "mdr" in r.out and "cpr" in r.out and "mpr" in r.out


def test_cli_csv_writes_one_file_per_table(cli, book: Path, con, tmp_path: Path) -> None:
    out = tmp_path / "out" / "book.csv"
    r = cli("book", "summary", "--db", book, "--out", out)
    assert r.code == 0, r.err
    expected = analytics.book_summary(con).tables()
    for name, frame in expected.items():
        back = pd.read_csv(out.with_name(f"book_{name}.csv"), keep_default_na=False,
                           na_values=[""])
        assert list(back.columns) == list(frame.columns)
        numeric = frame.select_dtypes("number").columns
        assert back[numeric].to_numpy() == pytest.approx(frame[numeric].to_numpy(),
                                                          nan_ok=True)
    assert not out.exists()


def test_cli_parquet_single_table_is_exactly_out(cli, book: Path, con, tmp_path: Path) -> None:
    out = tmp_path / "rates.parquet"
    r = cli("book", "rates", "--db", book, "--out", out)
    assert r.code == 0, r.err
    back = pd.read_parquet(out)
    expected = analytics.monthly_rates(con).series
    assert list(back["as_of"]) == [M1, M2, M3]
    pd.testing.assert_frame_equal(back.drop(columns="as_of"), expected.drop(columns="as_of"))


def test_cli_xlsx_has_one_sheet_per_table(cli, book: Path, con, tmp_path: Path) -> None:
    import openpyxl

    out = tmp_path / "vintages.xlsx"
    r = cli("book", "vintages", "--db", book, "--out", out)
    assert r.code == 0, r.err
    assert openpyxl.load_workbook(out).sheetnames == ["cumulative_default", "net_loss",
                                                      "Glossary"]
    back = read_tables(out, sheet_name="net_loss", engine="openpyxl")
    expected = analytics.vintage_curves(con).net_loss
    assert list(back.columns) == [str(c) for c in expected.columns]
    assert back["9"].to_numpy() == pytest.approx(expected[9].to_numpy(), nan_ok=True)
    r = cli("book", "rolls", "--db", book, "--out", tmp_path / "rolls.xlsx")
    assert r.code == 0, r.err
    rolls = read_tables(tmp_path / "rolls.xlsx", sheet_name="roll_rates", engine="openpyxl")
    assert rolls.set_index("from_bucket").loc["M1", "cure_rate"] == pytest.approx(1.0)


def test_cli_bad_out_extension_exits_2_and_writes_nothing(cli, book: Path, tmp_path: Path) -> None:
    out = tmp_path / "summary.txt"
    r = cli("book", "summary", "--db", book, "--out", out)
    assert r.code == 2
    assert "`--out` must be a file name ending in .csv, .parquet or .xlsx" in r.err
    assert "summary.txt" in r.err
    assert list(tmp_path.glob("summary*")) == []


def test_cli_missing_db_exits_2(cli, tmp_path: Path) -> None:
    r = cli("book", "rates", "--db", tmp_path / "nope.duckdb")
    assert r.code == 2
    assert "nope.duckdb does not exist" in r.err
    assert not (tmp_path / "nope.duckdb").exists()


def test_cli_bad_dates_exit_2(cli, book: Path) -> None:
    r = cli("book", "delinquency", "--db", book, "--as-of", "2024-03-15")
    assert r.code == 2 and "`--as-of` must be a month-end" in r.err
    r = cli("book", "rolls", "--db", book, "--from", "2024-03-31", "--to", "2024-01-31")
    assert r.code == 2 and "`--from` must be a month-end before --to" in r.err
    r = cli("book", "rates", "--db", book, "--as-of", "31/03/2024")
    assert r.code == 2


# --------------------------------------------------------------------------- --out writer


def test_out_paths_name_one_file_per_table() -> None:
    from riskpool.commands.output import out_paths

    out = Path("reports/book.csv")
    assert out_paths(["summary", "anchors"], out) == {
        "summary": Path("reports/book_summary.csv"),
        "anchors": Path("reports/book_anchors.csv"),
    }
    assert out_paths(["rates"], Path("r.parquet")) == {"rates": Path("r.parquet")}
    assert out_paths(["a", "b"], Path("x.xlsx")) == {"a": Path("x.xlsx"), "b": Path("x.xlsx")}


def test_write_tables_round_trip_csv_parquet_xlsx(tmp_path: Path) -> None:
    import openpyxl

    from riskpool.commands.output import write_tables

    frames = {
        "first": pd.DataFrame({"as_of": [M1, M2], "x": [0.5, np.nan], 3: [1, 2]}),
        "a/b:c?" + "long" * 10: pd.DataFrame({"n": [7]}),
        "A/B:C?" + "long" * 10: pd.DataFrame({"n": [8]}),
    }
    written = write_tables(frames, tmp_path / "t.parquet")
    assert len(written) == 3 and all(p.exists() for p in written)
    assert written[1].name == "t_a_b_c_" + "long" * 10 + ".parquet"
    assert written[2].name == "t_A_B_C_" + "long" * 10 + "_2.parquet"  # case-insensitive clash
    back = pd.read_parquet(tmp_path / "t_first.parquet")
    assert list(back.columns) == ["as_of", "x", "3"]  # column labels written as strings
    assert list(back["as_of"]) == [M1, M2]  # dates stay dates
    assert np.isnan(back["x"][1])
    write_tables({"first": frames["first"]}, tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text().splitlines()[1] == "2024-01-31,0.5,1"
    write_tables(frames, tmp_path / "t.xlsx")
    names = openpyxl.load_workbook(tmp_path / "t.xlsx").sheetnames
    # Excel: no []:*?/\ in sheet names, at most 31 characters, unique ignoring case
    assert names[0] == "first"
    assert names[1] == ("a_b_c_" + "long" * 10)[:31]
    assert names[2] != names[1] and len(names[2]) <= 31
    assert list(tmp_path.glob(".*.tmp")) == []


def test_out_extension_and_directory_are_refused(tmp_path: Path) -> None:
    from riskpool.commands.output import check_out_path, emit

    with pytest.raises(ValidationError, match=r"`--out` must be .*\.csv, \.parquet or \.xlsx"):
        check_out_path(Path("table.json"))
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(ValidationError, match="--out"):
        emit({"t": pd.DataFrame({"a": [1]})}, tmp_path / "d.csv")
    check_out_path(None)
    check_out_path(Path("UPPER.XLSX"))


def test_emit_prints_aligned_tables(capsys: pytest.CaptureFixture[str]) -> None:
    from riskpool.commands.output import emit

    frame = pd.DataFrame({"bucket": ["current", "M1"], "balance": [12_345.6, np.nan],
                          "share": [0.25, 0.75], "loans": [1_000, 2]})
    assert emit({"t": frame}, None, title="title") == []
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "title" and out[2] == "== t"
    assert out[4].split() == ["current", "12,345.60", "0.2500", "1,000"]
    assert out[5].split() == ["M1", "-", "0.7500", "2"]
    assert len(out[3]) == len(out[4]) == len(out[5])  # aligned
