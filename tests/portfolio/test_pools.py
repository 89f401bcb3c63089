"""Pools: criteria validation, exclusion order, concentration limits, snapshots, strats, CLI.

Independent sources: exclusion counts and balances are worked out by hand from the tiny books
below; strats are checked against a plain pandas group-by; next due dates against
``dateutil.relativedelta`` (calendar-month arithmetic with end-of-month clipping).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given
from hypothesis import strategies as st

from dashboards.xlsx import read_tables
from portfolio.book import pools
from portfolio.book.pools import Criteria, parse_criteria, select_pool
from portfolio.errors import NotFound, ValidationError
from portfolio.loans.types import RepaymentType
from portfolio.store import pools as psql
from portfolio.store.book import insert_loans, insert_performance
from portfolio.store.core import open_store
from portfolio.validation import SchemaError

CUTOFF = dt.date(2025, 6, 30)


def _loan(i: int, **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "loan_id": f"L{i:04d}", "borrower_id": f"B{i:04d}",
        "origination_date": dt.date(2025, 1, 15), "principal": 10_000.0, "apr": 0.18,
        "term_months": 12, "repayment_type": "level_annuity", "credit_score": 700,
        "region": "Beijing",
    }
    row.update(kw)
    return row


def _perf(i: int, **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "loan_id": f"L{i:04d}", "as_of": CUTOFF, "months_on_book": 5, "balance": 6_000.0,
        "dpd": 0, "status": "current",
    }
    row.update(kw)
    return row


def _book(path: Path, loans: list[dict[str, object]], perf: list[dict[str, object]]) -> None:
    with open_store(path) as store, store.transaction() as con:
        insert_loans(con, pd.DataFrame(loans))
        if perf:
            insert_performance(con, pd.DataFrame(perf))


def _candidates(loans: list[dict[str, object]], perf: list[dict[str, object]]) -> pd.DataFrame:
    """The frame ``store.pools.snapshot_candidates`` returns, built by hand."""
    lf = pd.DataFrame(loans)
    pf = pd.DataFrame(perf).drop(columns=["as_of"]) if perf else pd.DataFrame(
        columns=["loan_id", "months_on_book", "balance", "dpd", "status"])
    pf = pf.rename(columns={"months_on_book": "perf_months_on_book"})
    pf["has_row"] = True
    if "charge_off" not in pf:
        pf["charge_off"] = 0.0
    out = lf.merge(pf, on="loan_id", how="left")
    out["has_row"] = out["has_row"].fillna(False).astype(bool)
    out["origination_date"] = pd.to_datetime(out["origination_date"])
    return out.sort_values("loan_id").reset_index(drop=True)


# ---------------------------------------------------------------- criteria validation


def test_parse_criteria_full_example_file() -> None:
    c = pools.load_criteria(Path(__file__).resolve().parents[2] / "examples" / "criteria.toml")
    assert c.dpd_max == 0
    assert c.score_min is not None
    assert c.max_obligor_share is not None and 0 < c.max_obligor_share <= 1


def test_parse_criteria_accepts_chinese_labels_and_defaults() -> None:
    c = parse_criteria({"eligibility": {"repayment_types": ["等额本息", "daily_interest"]}})
    assert c.repayment_types == (RepaymentType.LEVEL_ANNUITY, RepaymentType.DAILY_INTEREST)
    assert c.dpd_max == 0  # default: current loans only
    assert parse_criteria({}) == Criteria()


def test_criteria_round_trip_through_dict() -> None:
    c = parse_criteria({
        "description": "x",
        "eligibility": {"score_min": 600, "terms": [12, 3], "originated_from": dt.date(2024, 1, 1),
                        "regions_exclude": ["Tibet"], "apr_max": 0.24},
        "concentration": {"max_region_share": 0.3},
    })
    assert c.terms == (3, 12)
    assert parse_criteria(c.to_dict()) == c


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"eligibility": {"score_mn": 600}}, r"`eligibility.score_mn` must be a known key \(did you mean `score_min`\?"),
        ({"eligibilty": {}}, r"`eligibilty` must be a known key \(did you mean `eligibility`\?"),
        ({"concentration": {"max_obligor": 0.1}}, r"`concentration.max_obligor` must be a known key.*got an unknown key"),
        ({"eligibility": {"score_min": 200}}, r"^criteria: `eligibility.score_min` must be an integer in \[350, 950\]; got 200$"),
        ({"eligibility": {"score_min": 600.5}}, r"`eligibility.score_min` must be an integer"),
        ({"eligibility": {"dpd_max": -1}}, r"`eligibility.dpd_max` must be an integer in \[0, 10000\]; got -1"),
        ({"eligibility": {"terms": [5, 12]}}, r"`eligibility.terms\[0\]` must be one of 3, 6, 9, 12, 18, 24; got 5"),
        ({"eligibility": {"terms": []}}, r"`eligibility.terms` must be a non-empty list"),
        ({"eligibility": {"repayment_types": ["balloon"]}}, r"`eligibility.repayment_types\[0\]` must be one of level_annuity.*; got 'balloon'"),
        ({"eligibility": {"regions_include": []}}, r"`eligibility.regions_include` must be a non-empty"),
        ({"eligibility": {"regions_exclude": "Beijing"}}, r"`eligibility.regions_exclude` must be a list"),
        ({"eligibility": {"principal_min": 500, "principal_max": 100}},
         r"`eligibility.principal_max` must be >= `eligibility.principal_min`"),
        ({"eligibility": {"balance_max": 300_000}}, r"`eligibility.balance_max` must be a number in \[0, 200000\]"),
        ({"eligibility": {"apr_max": 24}}, r"`eligibility.apr_max` must be a number in \[0, 1\]; got 24"),
        ({"eligibility": {"apr_min": 0.2, "apr_max": 0.1}}, r"`eligibility.apr_max` must be >= `eligibility.apr_min`"),
        ({"eligibility": {"originated_from": "2024-13-01"}}, r"`eligibility.originated_from` must be a date"),
        ({"eligibility": {"originated_from": dt.date(2025, 1, 1),
                          "originated_to": dt.date(2024, 1, 1)}}, r"`eligibility.originated_to` must be >= `eligibility.originated_from` \(2025-01-01\); got 2024-01-01"),
        ({"concentration": {"max_obligor_share": 0}}, r"`concentration.max_obligor_share` must be a share in \(0, 1\]"),
        ({"concentration": {"max_region_share": 1.5}}, r"`concentration.max_region_share` must be a share"),
        ({"eligibility": 3}, r"`eligibility` must be a table"),
    ],
)
def test_bad_criteria_name_the_field(data: dict[str, object], match: str) -> None:
    with pytest.raises(SchemaError, match=match) as info:
        parse_criteria(data)
    assert isinstance(info.value, ValidationError)
    assert info.value.field_path and info.value.where == "criteria"


def test_bad_criteria_file_reports_toml_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[eligibility\nscore_min = 1\n")
    with pytest.raises(ValidationError, match="not valid TOML"):
        pools.load_criteria(bad)


@pytest.mark.parametrize("value", ["2025-06-15", "2025-02-27", "June"])
def test_cutoff_must_be_a_month_end(value: str) -> None:
    with pytest.raises(ValidationError, match="`cutoff` must be"):
        pools.parse_cutoff(value)


def test_cutoff_accepts_month_ends() -> None:
    assert pools.parse_cutoff("2024-02-29") == dt.date(2024, 2, 29)


# ---------------------------------------------------------------- exclusion order


def test_each_loan_is_excluded_by_the_first_rule_it_fails() -> None:
    loans = [
        _loan(0),  # kept
        _loan(1, origination_date=dt.date(2025, 7, 1)),  # after cut-off (and no row)
        _loan(2),  # no performance row
        _loan(3),  # prepaid
        _loan(4, term_months=3, origination_date=dt.date(2025, 1, 15)),  # mob 5 ≥ term 3
        _loan(5, credit_score=500),  # dpd 30 AND low score -> dpd (comes first)
        _loan(6, credit_score=500),  # low score
        _loan(7, term_months=24),  # term
        _loan(8, repayment_type="interest_only"),  # repayment type
        _loan(9, region="Tibet"),  # region excluded
        _loan(10, principal=100_000.0),  # principal
        _loan(11),  # balance too small
        _loan(12, origination_date=dt.date(2023, 12, 31), term_months=24),  # term first
        _loan(13, origination_date=dt.date(2024, 12, 31)),  # origination window
        _loan(14, apr=0.30),  # apr
        _loan(15),  # written off (charge-off) though status delinquent
    ]
    perf = [
        _perf(0), _perf(3, status="prepaid", balance=0.0), _perf(4), _perf(5, dpd=30,
        status="delinquent"), _perf(6), _perf(7), _perf(8), _perf(9), _perf(10, balance=50_000.0),
        _perf(11, balance=50.0), _perf(12), _perf(13), _perf(14),
        _perf(15, status="delinquent", dpd=95, charge_off=6000.0),
    ]
    crit = parse_criteria({"eligibility": {
        "score_min": 600, "terms": [3, 6, 12], "repayment_types": ["等额本息"],
        "regions_exclude": ["Tibet"], "principal_max": 50_000, "balance_min": 100,
        "originated_from": "2025-01-01", "apr_max": 0.24,
    }})
    sel = select_pool(_candidates(loans, perf), crit, CUTOFF)
    assert sel.loans["loan_id"].tolist() == ["L0000"]
    got = {e.reason: (e.n_loans, e.balance) for e in sel.exclusions}
    assert [e.reason for e in sel.exclusions] == [name for name, _ in pools.EXCLUSION_ORDER]
    # worked out by hand from the rows above (balance = cut-off balance, 0 without a row)
    assert got["originated_after_cutoff"] == (1, 0.0)
    assert got["no_performance_at_cutoff"] == (1, 0.0)
    assert got["not_performing"] == (2, 6000.0)  # L3 (prepaid, 0) and L15 (written off)
    assert got["past_maturity"] == (1, 6000.0)
    assert got["dpd"] == (1, 6000.0)
    assert got["score"] == (1, 6000.0)
    assert got["term"] == (2, 12000.0)  # L7 and L12
    assert got["repayment_type"] == (1, 6000.0)
    assert got["region"] == (1, 6000.0)
    assert got["principal"] == (1, 50_000.0)
    assert got["balance"] == (1, 50.0)
    assert got["origination_window"] == (1, 6000.0)
    assert got["apr"] == (1, 6000.0)
    assert sum(e.n_loans for e in sel.exclusions) + sel.n_loans == len(loans)


def test_dpd_max_admits_delinquent_loans() -> None:
    loans = [_loan(0), _loan(1), _loan(2)]
    perf = [_perf(0), _perf(1, dpd=25, status="delinquent"), _perf(2, dpd=45,
                                                                   status="delinquent")]
    sel = select_pool(_candidates(loans, perf), parse_criteria(
        {"eligibility": {"dpd_max": 30}}), CUTOFF)
    assert sel.loans["loan_id"].tolist() == ["L0000", "L0001"]


def test_strats_show_a_missing_region_as_none(db_path: Path) -> None:
    _book(db_path, [_loan(0, region=None), _loan(1)], [_perf(0), _perf(1)])
    with open_store(db_path) as store:
        info = pools.create_pool(store, "r", Criteria(), "2025-06-30")
        region = pools.strats(store, info.pool_id)["region"]
        la = pools.load_pool_loans(store, info.pool_id)
    assert region["bucket"].tolist() == ["(none)", "Beijing", "Total"]
    assert la.region.tolist() == ["", "Beijing"]


def test_regions_include() -> None:
    loans = [_loan(0, region="Beijing"), _loan(1, region="Shanghai"), _loan(2, region=None)]
    perf = [_perf(0), _perf(1), _perf(2)]
    sel = select_pool(_candidates(loans, perf), parse_criteria(
        {"eligibility": {"regions_include": ["Shanghai"]}}), CUTOFF)
    assert sel.loans["loan_id"].tolist() == ["L0001"]


def test_obligor_limit_removes_largest_then_latest_then_greatest_id() -> None:
    # Borrower X holds L0..L3 (balances 4000, 4000, 1000, 1000); L0 and L1 tie on balance,
    # L1 is later, so L1 goes first. Others: 10 loans of 1000 for distinct borrowers.
    loans = [
        _loan(0, borrower_id="X"), _loan(1, borrower_id="X", origination_date=dt.date(2025, 2, 1)),
        _loan(2, borrower_id="X"), _loan(3, borrower_id="X"),
    ] + [_loan(i) for i in range(4, 14)]
    perf = [_perf(0, balance=4000.0), _perf(1, balance=4000.0), _perf(2, balance=1000.0),
            _perf(3, balance=1000.0)] + [_perf(i, balance=1000.0) for i in range(4, 14)]
    # Pool before the limit: X 10,000 of 20,000. Limit 0.25:
    # remove L1 (4000): X 6000 / 16000 = 0.375 > 0.25; remove L0: X 2000 / 12000 = 0.167 ok.
    sel = select_pool(_candidates(loans, perf), parse_criteria(
        {"concentration": {"max_obligor_share": 0.25}}), CUTOFF)
    kept = set(sel.loans["loan_id"])
    assert "L0000" not in kept and "L0001" not in kept
    assert {"L0002", "L0003"} <= kept
    conc = {e.reason: e for e in sel.exclusions}["obligor_concentration"]
    assert (conc.n_loans, conc.balance) == (2, 8000.0)


def test_obligor_tie_on_balance_and_date_goes_to_greatest_loan_id() -> None:
    loans = [_loan(0, borrower_id="X"), _loan(1, borrower_id="X")] + [
        _loan(i) for i in range(2, 6)]
    perf = [_perf(i, balance=1000.0) for i in range(6)]
    # X 2000 of 6000 = 1/3 > 0.3; remove L0001 → X 1000 / 5000 = 0.2.
    sel = select_pool(_candidates(loans, perf), parse_criteria(
        {"concentration": {"max_obligor_share": 0.3}}), CUTOFF)
    assert "L0001" not in set(sel.loans["loan_id"]) and "L0000" in set(sel.loans["loan_id"])


def test_region_limit_reaches_a_fixed_point() -> None:
    # A: 6 × 1000, B: 2 × 1000, C: 2 × 1000. Limit 0.4 → A keeps 2 or 3? After removing
    # 2 of A: 4000/8000 = .5; 3 of A: 3000/7000 = .43; 4 of A: 2000/6000 = .33 ≤ .4.
    loans = ([_loan(i, region="A") for i in range(6)] + [_loan(i, region="B") for i in (6, 7)]
             + [_loan(i, region="C") for i in (8, 9)])
    perf = [_perf(i, balance=1000.0) for i in range(10)]
    sel = select_pool(_candidates(loans, perf), parse_criteria(
        {"concentration": {"max_region_share": 0.4}}), CUTOFF)
    assert sel.n_loans == 6
    # removal order among equal balances and dates: greatest loan_id first
    assert sorted(sel.loans["loan_id"])[:2] == ["L0000", "L0001"]


@given(
    balances=st.lists(st.integers(1, 50), min_size=1, max_size=40),
    borrowers=st.lists(st.integers(0, 6), min_size=40, max_size=40),
    regions=st.lists(st.sampled_from("ABCD"), min_size=40, max_size=40),
    obligor=st.floats(0.05, 1.0),
    region_share=st.floats(0.3, 1.0),
    seed=st.integers(0, 2**16),
)
def test_concentration_limits_hold_and_are_order_independent(
    balances: list[int], borrowers: list[int], regions: list[str], obligor: float,
    region_share: float, seed: int,
) -> None:
    n = len(balances)
    loans = [_loan(i, borrower_id=f"B{borrowers[i]}", region=regions[i]) for i in range(n)]
    perf = [_perf(i, balance=100.0 * balances[i]) for i in range(n)]
    crit = parse_criteria({"concentration": {"max_obligor_share": obligor,
                                             "max_region_share": region_share}})
    cand = _candidates(loans, perf)
    sel = select_pool(cand, crit, CUTOFF)
    kept = cand[cand["loan_id"].isin(sel.loans["loan_id"])]
    if len(kept):
        total = kept["balance"].sum()
        assert kept.groupby("borrower_id")["balance"].sum().max() <= obligor * total + 1e-6
        assert kept.groupby("region")["balance"].sum().max() <= region_share * total + 1e-6
    # shuffling the candidate rows changes nothing
    shuffled = cand.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    again = select_pool(shuffled, crit, CUTOFF)
    assert sorted(again.loans["loan_id"]) == sorted(sel.loans["loan_id"])
    assert [(e.reason, e.n_loans) for e in again.exclusions] == [
        (e.reason, e.n_loans) for e in sel.exclusions]


# ---------------------------------------------------------------- dates


@given(st.dates(dt.date(2020, 1, 1), dt.date(2030, 12, 31)), st.integers(0, 30))
def test_next_due_date_follows_the_end_of_month_rule(orig: dt.date, months: int) -> None:
    cutoff = pools._month_end(orig + relativedelta(months=months))
    got = pools.next_due_dates(np.array([orig], dtype="datetime64[D]"), cutoff)[0]
    mob = pools.months_between(np.array([orig], dtype="datetime64[D]"), cutoff)[0]
    # relativedelta clips to the month's last day: the (mob + 1)-th due date
    expected = orig + relativedelta(months=int(mob) + 1)
    assert got == np.datetime64(expected)
    assert expected > cutoff


@given(st.lists(st.dates(dt.date(1990, 1, 1), dt.date(2030, 12, 31)), max_size=60),
       st.dates(dt.date(2020, 1, 1), dt.date(2031, 12, 1)))
def test_next_due_dates_by_day_table_are_every_loans_rule(origs: list[dt.date],
                                                          month: dt.date) -> None:
    # the per-day table (a few hundred distinct days) against the rule applied loan by loan,
    # and against relativedelta's calendar-month arithmetic (the independent source)
    cutoff = pools._month_end(month)
    orig = np.array(origs, dtype="datetime64[D]")
    got = pools.next_due_dates(orig, cutoff)
    assert got.dtype == np.dtype("datetime64[D]")
    np.testing.assert_array_equal(got, pools.next_due_dates_np(orig, cutoff))
    first = cutoff + dt.timedelta(days=1)
    for o, g in zip(origs, got.tolist(), strict=True):
        months = (first.year - o.year) * 12 + first.month - o.month
        assert g == o + relativedelta(months=months)  # clipped to the month's last day


def test_next_due_dates_over_a_wide_span_apply_the_rule_to_every_loan() -> None:
    # 2 loans 40 years apart: a table from the first day to the last would be larger than
    # the loans, so the rule is applied loan by loan (the same dates)
    orig = np.array(["1990-01-31", "2030-03-30"], dtype="datetime64[D]")
    got = pools.next_due_dates(orig, dt.date(2031, 1, 31))
    assert got.tolist() == [dt.date(2031, 2, 28), dt.date(2031, 2, 28)]


@given(st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1,
                        max_size=6),
                unique=True, max_size=40), st.randoms())
def test_ascending_is_duckdbs_varchar_order(ids: list[str], rnd) -> None:
    # DuckDB's own ORDER BY is the reference: the order check must agree with it on any text
    # (non-ASCII, prefixes, case), so that an unsorted read is never taken as sorted
    by_duckdb = [r[0] for r in duckdb.connect().execute(
        "SELECT s FROM (SELECT unnest(?::VARCHAR[]) AS s) ORDER BY s", [ids]).fetchall()]
    assert psql.ascending(pa.array(by_duckdb, type=pa.string()))
    shuffled = list(ids)
    rnd.shuffle(shuffled)
    assert psql.ascending(pa.chunked_array([pa.array(shuffled, type=pa.string())])) == (
        shuffled == by_duckdb)
    assert not psql.ascending(pa.array(["a", None], type=pa.string()))


def test_a_snapshot_stored_out_of_loan_id_order_reads_back_sorted(db_path: Path) -> None:
    # a pool's rows written in another order than loan_id (not how insert_pool is called, but
    # the read must not depend on it): the read checks the order and sorts
    _standard_book(db_path)
    with open_store(db_path) as store:
        info = pools.create_pool(store, "p", Criteria(), "2025-06-30")
        rows = store.con.execute(
            f"SELECT {', '.join(psql.POOL_LOAN_COLUMNS)} FROM pool_loans WHERE pool_id = ? "
            "ORDER BY loan_id DESC", [info.pool_id]).df()
        loans = {c: (rows[c].to_numpy(dtype=object) if rows[c].dtype == object
                     else rows[c].to_numpy()) for c in psql.POOL_LOAN_COLUMNS}
        loans["cutoff_balance"] = rows["cutoff_balance"].astype(float).to_numpy()
        loans["principal"] = rows["principal"].astype(float).to_numpy()
        loans["origination_date"] = rows["origination_date"].to_numpy().astype("datetime64[D]")
        with store.transaction() as con:
            psql.insert_pool(con, pool_id=99, name="reversed", cutoff=CUTOFF, criteria={},
                             exclusions=[], loans=loans)
        got = pools.load_pool_loans(store, 99)
        want = pools.load_pool_loans(store, info.pool_id)
        stored = [r[0] for r in store.con.execute(
            "SELECT loan_id FROM pool_loans WHERE pool_id = 99").fetchall()]
    assert stored == ["L0003", "L0002", "L0001", "L0000"]  # as written: descending
    assert got.loan_id.tolist() == ["L0000", "L0001", "L0002", "L0003"]
    for f in ("loan_id", "balance", "apr", "term_months", "remaining_term", "months_on_book",
              "repayment_type", "credit_score", "region", "origination_date", "next_due_date",
              "principal"):
        np.testing.assert_array_equal(getattr(got, f), getattr(want, f))


# ---------------------------------------------------------------- snapshots via the store


def _standard_book(path: Path) -> None:
    loans = [
        _loan(0, origination_date=dt.date(2025, 1, 31), term_months=6),
        _loan(1, origination_date=dt.date(2024, 12, 15), credit_score=820, region="Shanghai",
              apr=0.12, repayment_type="daily_interest"),
        _loan(2, credit_score=610, apr=0.22),
        _loan(3, credit_score=400),  # excluded by score
    ]
    perf = [_perf(0, balance=3000.0), _perf(1, balance=5000.0), _perf(2, balance=7000.0),
            _perf(3)]
    _book(path, loans, perf)


def test_create_pool_snapshot_and_load_pool_loans(db_path: Path) -> None:
    _standard_book(db_path)
    with open_store(db_path) as store:
        info = pools.create_pool(store, "senior", parse_criteria(
            {"eligibility": {"score_min": 600}}), "2025-06-30")
        assert (info.pool_id, info.n_loans, info.balance) == (1, 3, 15_000.0)
        assert info.cutoff_date == CUTOFF
        la = pools.load_pool_loans(store, info.pool_id)
    assert la.loan_id.tolist() == ["L0000", "L0001", "L0002"]
    assert la.balance.tolist() == [3000.0, 5000.0, 7000.0]
    assert la.principal.tolist() == [10_000.0] * 3
    # L0: Jan 31 → Jun: 5 months on book, 6 − 5 = 1 left, due Jul 31
    # L1: Dec 15 → Jun: 6 months on book, 12 − 6 = 6 left, due Jul 15
    assert la.months_on_book.tolist() == [5, 6, 5]
    assert la.remaining_term.tolist() == [1, 6, 7]
    assert la.next_due_date.tolist() == [dt.date(2025, 7, 31), dt.date(2025, 7, 15),
                                         dt.date(2025, 7, 15)]
    assert la.repayment_type.tolist() == [0, 3, 0]
    assert la.region.tolist() == ["Beijing", "Shanghai", "Beijing"]


def test_snapshot_is_immutable_when_the_book_moves_on(db_path: Path) -> None:
    _standard_book(db_path)
    with open_store(db_path) as store:
        info = pools.create_pool(store, "p", Criteria(), "2025-06-30")
        with store.transaction() as con:
            insert_performance(con, pd.DataFrame([
                _perf(i, as_of=dt.date(2025, 7, 31), balance=0.0, status="prepaid")
                for i in range(4)]))
        again = pools.get_pool(store, info.pool_id)
        la = pools.load_pool_loans(store, info.pool_id)
    assert again.n_loans == info.n_loans and again.balance == info.balance
    assert float(la.balance.sum()) == info.balance


def test_pool_errors_write_nothing(db_path: Path) -> None:
    _standard_book(db_path)
    with open_store(db_path) as store:
        with pytest.raises(ValidationError, match="no loan of the book"):
            pools.create_pool(store, "empty", parse_criteria(
                {"eligibility": {"score_min": 950}}), "2025-06-30")
        with pytest.raises(SchemaError, match=r"^criteria: `eligibility.regions_include` must "
                           r"be regions present in the book \("):
            pools.create_pool(store, "typo", parse_criteria(
                {"eligibility": {"regions_include": ["Shanghia"]}}), "2025-06-30")
        with pytest.raises(ValidationError, match="`cutoff` must be a month-end"):
            pools.create_pool(store, "mid", Criteria(), "2025-06-15")
        assert pools.list_pools(store) == []
        pools.create_pool(store, "a", Criteria(), "2025-06-30")
        with pytest.raises(ValidationError, match="`name` must be a new pool name"):
            pools.create_pool(store, "a", Criteria(), "2025-06-30")
        with pytest.raises(NotFound, match="`pool` must be an existing pool id"):
            pools.get_pool(store, 99)
        with pytest.raises(NotFound):
            pools.load_pool_loans(store, 99)
        assert [p.name for p in pools.list_pools(store)] == ["a"]


def test_strats_match_a_pandas_group_by(db_path: Path) -> None:
    rng = np.random.default_rng(7)
    n = 300
    loans = [
        _loan(i, credit_score=int(rng.integers(350, 951)), apr=float(rng.uniform(0.03, 0.3)),
              term_months=int(rng.choice([3, 6, 12, 24])),
              region=str(rng.choice(["A", "B", "C"])),
              repayment_type=str(rng.choice(["level_annuity", "daily_interest"])),
              origination_date=dt.date(2024, 9, 1) + dt.timedelta(days=int(rng.integers(0, 300))))
        for i in range(n)
    ]
    perf = [_perf(i, balance=float(rng.integers(10, 2000)) * 10) for i in range(n)]
    _book(db_path, loans, perf)
    with open_store(db_path) as store:
        info = pools.create_pool(store, "s", Criteria(), "2025-06-30")
        tables = pools.strats(store, info.pool_id)
        la = pools.load_pool_loans(store, info.pool_id)
    assert list(tables) == list(pools.STRAT_NAMES)
    frame = pd.DataFrame({"band": la.score_band, "term": la.term_months, "balance": la.balance,
                          "apr": la.apr, "score": la.credit_score, "rem": la.remaining_term,
                          "region": la.region})
    total = frame["balance"].sum()
    for _name, table in tables.items():
        assert list(table.columns) == list(pools.STRAT_COLUMNS)
        body, tot = table.iloc[:-1], table.iloc[-1]
        assert tot["bucket"] == "Total" and tot["n_loans"] == info.n_loans
        assert body["n_loans"].sum() == info.n_loans
        assert body["balance"].sum() == pytest.approx(total)
        assert body["share_of_balance"].sum() == pytest.approx(1.0)
        assert tot["wa_apr"] == pytest.approx(np.average(frame["apr"], weights=frame["balance"]))
    by_band = frame.groupby("band").apply(
        lambda g: pd.Series({"n": len(g), "bal": g["balance"].sum(),
                             "apr": np.average(g["apr"], weights=g["balance"]),
                             "score": np.average(g["score"], weights=g["balance"]),
                             "rem": np.average(g["rem"], weights=g["balance"])}),
        include_groups=False)
    band_table = tables["score_band"].iloc[:-1]
    assert band_table["n_loans"].tolist() == by_band["n"].astype(int).tolist()
    np.testing.assert_allclose(band_table["balance"], by_band["bal"])
    np.testing.assert_allclose(band_table["wa_apr"], by_band["apr"])
    np.testing.assert_allclose(band_table["wa_score"], by_band["score"])
    np.testing.assert_allclose(band_table["wa_remaining_term"], by_band["rem"])
    by_region = frame.groupby("region")["balance"].sum()
    np.testing.assert_allclose(tables["region"].iloc[:-1]["balance"], by_region.to_numpy())
    assert tables["original_term"].iloc[:-1]["bucket"].tolist() == [
        str(t) for t in sorted(frame["term"].unique())]


# ---------------------------------------------------------------- CLI


def _write_criteria(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_cli_pool_create_list_show_strats(cli, db_path: Path, tmp_path: Path) -> None:
    _standard_book(db_path)
    crit = _write_criteria(tmp_path / "c.toml", "[eligibility]\nscore_min = 600\n"
                           "repayment_types = ['等额本息', 'daily_interest']\n")
    r = cli("pool", "create", "--db", db_path, "--name", "senior", "--criteria", crit,
            "--cutoff", "2025-06-30")
    assert r.code == 0, r.err
    assert "pool 1 'senior': 3 loans" in r.out
    assert "score" in r.out and "1 loans" in r.out
    r = cli("pool", "list", "--db", db_path)
    assert r.code == 0 and "senior" in r.out
    r = cli("pool", "show", "--db", db_path, "--pool", "1")
    assert r.code == 0 and "score_min" in r.out
    r = cli("pool", "strats", "--db", db_path, "--pool", "1")
    assert r.code == 0 and "by score band" in r.out and "Total" in r.out


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[eligibility]\nscore_mn = 600\n", "score_mn"),
        ("[eligibility]\nterms = [5]\n", "terms"),
        ("[concentration]\nmax_region_share = 2\n", "max_region_share"),
    ],
)
def test_cli_bad_criteria_exit_2_and_write_nothing(cli, db_path: Path, tmp_path: Path,
                                                   text: str, match: str) -> None:
    _standard_book(db_path)
    crit = _write_criteria(tmp_path / "c.toml", text)
    r = cli("pool", "create", "--db", db_path, "--name", "x", "--criteria", crit,
            "--cutoff", "2025-06-30")
    assert r.code == 2
    assert match in r.err and "Traceback" not in r.err
    with open_store(db_path, read_only=True) as store:
        assert pools.list_pools(store) == []


def test_cli_unknown_pool_exit_2(cli, db_path: Path) -> None:
    _standard_book(db_path)
    r = cli("pool", "strats", "--db", db_path, "--pool", "7")
    assert r.code == 2 and "`pool` must be an existing pool id" in r.err


def test_cli_strats_out_csv_and_xlsx(cli, db_path: Path, tmp_path: Path) -> None:
    _standard_book(db_path)
    crit = _write_criteria(tmp_path / "c.toml", "[eligibility]\nscore_min = 600\n")
    assert cli("pool", "create", "--db", db_path, "--name", "s", "--criteria", crit,
               "--cutoff", "2025-06-30").code == 0
    xlsx = tmp_path / "strats.xlsx"
    r = cli("pool", "strats", "--db", db_path, "--pool", "1", "--out", xlsx)
    assert r.code == 0, r.err
    sheets = read_tables(xlsx, sheet_name=None)
    assert list(sheets) == list(pools.STRAT_NAMES)
    assert sheets["score_band"]["n_loans"].iloc[-1] == 3
    csv = tmp_path / "strats.csv"
    r = cli("pool", "strats", "--db", db_path, "--pool", "1", "--out", csv)
    assert r.code == 0, r.err
    region = pd.read_csv(tmp_path / "strats_region.csv")
    assert region["bucket"].tolist() == ["Beijing", "Shanghai", "Total"]
    bad = tmp_path / "strats.txt"
    r = cli("pool", "strats", "--db", db_path, "--pool", "1", "--out", bad)
    assert r.code == 2 and "--out" in r.err and not bad.exists()


@pytest.mark.parametrize(
    ("cutoff", "match"),
    [("2025-06-15", "`cutoff` must be a month-end"), ("30/06/2025", "`cutoff` must be a date")],
)
def test_cli_bad_cutoff_exit_2(cli, db_path: Path, tmp_path: Path, cutoff: str,
                               match: str) -> None:
    _standard_book(db_path)
    crit = _write_criteria(tmp_path / "c.toml", "[eligibility]\nscore_min = 600\n")
    r = cli("pool", "create", "--db", db_path, "--name", "x", "--criteria", crit,
            "--cutoff", cutoff)
    assert r.code == 2 and match in r.err
    with open_store(db_path, read_only=True) as store:
        assert pools.list_pools(store) == []


@given(
    score_min=st.none() | st.integers(350, 950),
    dpd_max=st.integers(0, 120),
    terms=st.none() | st.lists(st.sampled_from([3, 6, 9, 12, 18, 24]), min_size=1, unique=True),
    types=st.none() | st.lists(st.sampled_from(["level_annuity", "等额本金", "先息后本",
                                                "daily_interest"]), min_size=1, unique=True),
    apr=st.none() | st.tuples(st.floats(0, 0.5), st.floats(0.5, 1)),
    shares=st.tuples(st.none() | st.floats(0.001, 1), st.none() | st.floats(0.001, 1)),
    window=st.none() | st.tuples(st.dates(dt.date(2020, 1, 1), dt.date(2024, 12, 31)),
                                 st.dates(dt.date(2025, 1, 1), dt.date(2026, 12, 31))),
)
def test_any_valid_criteria_round_trip_through_the_stored_form(
    score_min: int | None, dpd_max: int, terms: list[int] | None, types: list[str] | None,
    apr: tuple[float, float] | None, shares: tuple[float | None, float | None],
    window: tuple[dt.date, dt.date] | None,
) -> None:
    elig: dict[str, object] = {"dpd_max": dpd_max}
    if score_min is not None:
        elig["score_min"] = score_min
    if terms is not None:
        elig["terms"] = terms
    if types is not None:
        elig["repayment_types"] = types
    if apr is not None:
        elig["apr_min"], elig["apr_max"] = apr
    if window is not None:
        elig["originated_from"], elig["originated_to"] = window
    conc = {k: v for k, v in zip(("max_obligor_share", "max_region_share"), shares,
                                 strict=True) if v is not None}
    c = parse_criteria({"eligibility": elig, "concentration": conc})
    import json

    stored = json.loads(json.dumps(c.to_dict(), default=str))  # as the pools table keeps it
    assert pools.criteria_from_json(stored) == c


def test_pool_summary_by_hand(db_path: Path) -> None:
    _standard_book(db_path)
    with open_store(db_path) as store:
        info = pools.create_pool(store, "s", parse_criteria({"eligibility": {"score_min": 600}}),
                                 "2025-06-30")
        summary = pools.pool_summary(store, info.pool_id).set_index("measure")["value"]
    # balances 3000 (apr 0.18, score 700, term 6, rem 1), 5000 (0.12, 820, 12, 6),
    # 7000 (0.22, 610, 12, 7); regions Beijing 10,000 / Shanghai 5,000; one loan per borrower
    assert summary["n_loans"] == 3 and summary["n_borrowers"] == 3
    assert summary["balance"] == pytest.approx(15_000.0)
    assert summary["average_balance"] == pytest.approx(5_000.0)
    assert summary["largest_balance"] == pytest.approx(7_000.0)
    assert summary["wa_apr"] == pytest.approx((540 + 600 + 1540) / 15_000)
    assert summary["wa_score"] == pytest.approx((2_100_000 + 4_100_000 + 4_270_000) / 15_000)
    assert summary["wa_remaining_term"] == pytest.approx((3000 + 30_000 + 49_000) / 15_000)
    assert summary["largest_obligor_share"] == pytest.approx(7 / 15)
    assert summary["largest_region_share"] == pytest.approx(10 / 15)
