"""Risk-based pricing check: break-even arithmetic by hand, Basel capital against the Basel II
risk-weight table, segment flags on a tiny book, input validation and the CLI."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from portfolio.book import pricing
from portfolio.book.pricing import PricingInputs
from portfolio.errors import ValidationError
from portfolio.montecarlo.assumptions import Assumptions, save_assumptions
from portfolio.store.book import insert_loans, insert_performance
from portfolio.store.core import open_store
from portfolio.validation import SchemaError

ROOT = Path(__file__).resolve().parents[2]


def _flat(h: float = 0.01, recovery: float = 0.2, n_age: int = 24) -> Assumptions:
    return Assumptions(
        default_hazard=np.full((6, 6, n_age), h),
        prepay_smm=np.full((6, 6, n_age), 0.02),
        recovery_rate=recovery,
        recovery_lag=(1.0,),
        rho=0.05,
    )


def test_break_even_arithmetic_by_hand() -> None:
    # constant monthly hazard 1 %: m = 0.01; annual PD = 1 − 0.99^12 = 0.11361512828…
    # LGD = 1 − 0.2 = 0.8; EL = 0.0908921026…;
    # break-even = 0.03 + 0.0908921026 + 0.025 + 0.08 × 0.15 + 0.03 = 0.1878921026…
    table = pricing.break_even_table(_flat(), PricingInputs())
    assert len(table) == 36
    row = table.iloc[0]
    assert row["annual_pd"] == pytest.approx(1 - 0.99**12, rel=1e-12)
    assert row["annual_pd"] == pytest.approx(0.1136151282, rel=1e-9)
    assert row["lgd"] == pytest.approx(0.8)
    assert row["expected_loss"] == pytest.approx(0.0908921026, rel=1e-9)
    assert row["break_even_apr"] == pytest.approx(0.1878921026, rel=1e-9)
    np.testing.assert_allclose(table["break_even_apr"], 0.1878921026, rtol=1e-9)
    # an explicit LGD overrides the recovery rate: EL = 0.1136151283 × 0.5
    t2 = pricing.break_even_table(_flat(), PricingInputs(lgd=0.5))
    assert t2.iloc[0]["expected_loss"] == pytest.approx(0.0568075641, rel=1e-9)


def test_average_monthly_default_rate_by_hand() -> None:
    # h = (0.1, 0.2), term 2: S0 = 1, S1 = 0.9 → m = (1·0.1 + 0.9·0.2) / (1 + 0.9) = 0.28 / 1.9
    assert pricing.average_monthly_default_rate(np.array([0.1, 0.2, 0.9]), 2) == pytest.approx(
        0.28 / 1.9)
    # only the first `term` ages count
    assert pricing.average_monthly_default_rate(np.array([0.05, 0.5]), 1) == pytest.approx(0.05)
    # annual PD from a monthly rate: CDR = 1 − (1 − MDR)^12 (docs/model.md, "Book analytics")
    assert pricing.annual_pd(0.02) == pytest.approx(1 - 0.98**12)


@pytest.mark.parametrize(
    ("pd_", "risk_weight"),
    # Basel II (June 2006) Annex 5, illustrative IRB risk weights, other retail, LGD 45 %
    [(0.0003, 0.0445), (0.001, 0.1116), (0.01, 0.4577), (0.05, 0.6642), (0.10, 0.7554)],
)
def test_basel_retail_capital_matches_the_basel_table(pd_: float, risk_weight: float) -> None:
    k = pricing.basel_retail_capital(pd_, 0.45)
    assert 12.5 * k == pytest.approx(risk_weight, abs=5e-5)


def test_irb_capital_in_the_break_even() -> None:
    inputs = PricingInputs(capital_method="basel_retail_irb")
    row = pricing.break_even_table(_flat(), inputs).iloc[0]
    k = float(pricing.basel_retail_capital(row["annual_pd"], 0.8))
    assert row["capital"] == pytest.approx(k)
    assert row["break_even_apr"] == pytest.approx(0.03 + row["expected_loss"] + 0.025
                                                  + k * 0.15 + 0.03)


# ---------------------------------------------------------------- segments of a book


def _book(path: Path) -> None:
    loans = pd.DataFrame({
        "loan_id": ["A", "B", "C", "D"], "borrower_id": ["a", "b", "c", "d"],
        "origination_date": [dt.date(2025, 1, 15)] * 4,
        "principal": [1000.0, 3000.0, 2000.0, 5000.0],
        "apr": [0.15, 0.25, 0.22, 0.12],
        "term_months": [12, 12, 12, 6],
        "repayment_type": ["level_annuity"] * 4,
        "credit_score": [620, 630, 820, 820],
        "region": ["R"] * 4,
    })
    perf = pd.DataFrame({
        "loan_id": ["A", "B", "C", "D"], "as_of": [dt.date(2025, 6, 30)] * 4,
        "months_on_book": [5] * 4, "balance": [600.0, 2000.0, 1500.0, 900.0], "dpd": [0] * 4,
        "status": ["current"] * 4,
    })
    with open_store(path) as store, store.transaction() as con:
        insert_loans(con, loans)
        insert_performance(con, perf)


def test_pricing_check_flags_under_priced_segments_and_the_cap(db_path: Path) -> None:
    _book(db_path)
    with open_store(db_path) as store:
        report = pricing.pricing_check(store, _flat(), PricingInputs())
    t = report.table.set_index(["score_band", "term_months"])
    # band 600-649 × 12m: A (1000 @ 15 %) and B (3000 @ 25 %) weighted by principal:
    # (150 + 750) / 4000 = 22.5 % > break-even 18.79 %: fine; B is above the 24 % cap
    seg = t.loc[("600-649", 12)]
    assert seg["n_loans"] == 2 and seg["balance"] == pytest.approx(4000.0)
    assert seg["wa_apr"] == pytest.approx(0.225)
    assert seg["max_apr"] == pytest.approx(0.25)
    assert not seg["under_priced"] and seg["n_above_cap"] == 1
    # 800-950 × 6m: D at 12 % < 18.79 %: under-priced
    assert t.loc[("800-950", 6)]["under_priced"]
    assert t.loc[("800-950", 6)]["headroom"] == pytest.approx(0.12 - 0.1878921026, rel=1e-8)
    # empty segments are listed, never flagged
    assert t.loc[("350-599", 3)]["n_loans"] == 0 and not t.loc[("350-599", 3)]["under_priced"]
    assert report.under_priced[["score_band", "term_months"]].values.tolist() == [
        ["800-950", 6]]
    assert "1 under-priced" in report.summary_text() and "1 loans above" in report.summary_text()


def test_pricing_check_on_a_pool_uses_cutoff_balances(db_path: Path) -> None:
    from portfolio.book import pools

    _book(db_path)
    with open_store(db_path) as store:
        info = pools.create_pool(store, "p", pools.Criteria(), "2025-06-30")
        report = pricing.pricing_check(store, _flat(), PricingInputs(), pool_id=info.pool_id)
    seg = report.table.set_index(["score_band", "term_months"]).loc[("600-649", 12)]
    # (600·0.15 + 2000·0.25) / 2600
    assert seg["wa_apr"] == pytest.approx((90 + 500) / 2600)
    assert report.scope == "pool 1"


def test_pricing_uses_the_cash_flow_apr_of_flat_fee_loans(db_path: Path) -> None:
    # Two 12-month loans in band 600-649, 1000 each: an 18% level annuity (cash-flow APR 18%)
    # and a flat fee of 14% a year on the original principal (0.095 a month per unit:
    # numpy-financial rate(12, -0.095, 1) * 12 = 24.9089%). WA cash-flow APR
    # (0.18 + 0.249089) / 2 = 21.4544%, not the stated (0.18 + 0.14) / 2 = 16%; the flat-fee
    # loan is above the 24% cap although its stated rate is not, and is listed with both.
    import numpy_financial as npf

    ff = 12 * float(npf.rate(12, -(1 / 12 + 0.14 / 12), 1.0, 0.0, tol=1e-12))
    loans = pd.DataFrame({
        "loan_id": ["A", "F"], "borrower_id": ["a", "f"],
        "origination_date": [dt.date(2025, 1, 15)] * 2, "principal": [1000.0, 1000.0],
        "apr": [0.18, 0.14], "term_months": [12, 12],
        "repayment_type": ["level_annuity", "flat_fee"], "credit_score": [620, 630],
        "disclosed_apr": [None, round(ff, 4)],
    })
    with open_store(db_path) as store:
        with store.transaction() as con:
            insert_loans(con, loans)
        report = pricing.pricing_check(store, _flat(), PricingInputs())
    seg = report.table.set_index(["score_band", "term_months"]).loc[("600-649", 12)]
    assert seg["wa_apr"] == pytest.approx((0.18 + ff) / 2, abs=1e-12)
    assert seg["max_apr"] == pytest.approx(ff, abs=1e-12) and seg["n_above_cap"] == 1
    assert report.above_cap["loan_id"].tolist() == ["F"]
    assert "loan F (flat_fee): cash-flow APR 24.9089%, stated rate 14.0000%" in \
        report.summary_text()


# ---------------------------------------------------------------- inputs


def test_example_pricing_file_loads() -> None:
    inputs = pricing.load_pricing(ROOT / "examples" / "pricing.toml")
    assert inputs.apr_cap == 0.24 and inputs.capital_method == "fixed"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"funding_cst": 0.03}, r"^pricing.toml: `funding_cst` must be a known key \(did you mean `funding_cost`\?"),
        ({"funding_cost": 3.0}, r"^pricing.toml: `funding_cost` must be an annual rate \(decimal\) in \[0, 1\]; got 3.0$"),
        ({"hurdle_rate": -0.1}, r"`hurdle_rate` must be"),
        ({"apr_cap": "24%"}, r"`apr_cap` must be"),
        ({"lgd": 1.5}, r"`lgd` must be a share in \[0, 1\]"),
        ({"apr_cap": 0}, r"`apr_cap` must be an annual rate \(decimal\) in \(0, 1\]; got 0"),
        ({"margin": float("inf")}, r"`margin` must be an annual rate \(decimal\) in \[0, 1\]; got inf"),
        ({"margin": float("nan")}, r"`margin` must be .*; got nan"),
        ({"description": 3}, r"`description` must be a string; got 3"),
        ({"capital_method": "advanced"}, r"`capital_method` must be one of 'fixed', 'basel_retail_irb'; got 'advanced'"),
    ],
)
def test_bad_pricing_inputs_name_the_field(data: dict[str, object], match: str) -> None:
    with pytest.raises(SchemaError, match=match) as info:
        pricing.parse_pricing(data, "pricing.toml")
    assert isinstance(info.value, ValidationError)
    assert info.value.field_path == next(iter(data))


def test_pricing_inputs_built_in_code_follow_the_same_schema() -> None:
    with pytest.raises(SchemaError, match=r"^`hurdle_rate` must be an annual rate"):
        PricingInputs(hurdle_rate=1.5)
    assert PricingInputs(lgd=None).lgd is None
    # a left-out key keeps the dataclass default
    assert pricing.parse_pricing({"margin": 0.01}) == PricingInputs(margin=0.01)


def test_cli_pricing(cli, db_path: Path, tmp_path: Path) -> None:
    _book(db_path)
    a_path = save_assumptions(_flat(), tmp_path / "a.toml")
    r = cli("pricing", "--db", db_path, "--assumptions", a_path, "--pricing",
            ROOT / "examples" / "pricing.toml")
    assert r.code == 0, r.err
    assert "UNDER" in r.out and "1 under-priced" in r.out
    out = tmp_path / "pricing.csv"
    r = cli("pricing", "--db", db_path, "--assumptions", a_path, "--out", out)
    assert r.code == 0, r.err
    written = pd.read_csv(out)
    assert len(written) == 36 and "break_even_apr" in written.columns


@pytest.mark.parametrize(
    ("pricing_text", "assumptions_edit", "match"),
    [
        ("margn = 0.03\n", None, "margn"),
        ("apr_cap = 2\n", None, "apr_cap"),
        (None, ("rho = 0.05", "rho = 7"), "rho"),
    ],
)
def test_cli_pricing_bad_files_exit_2(cli, db_path: Path, tmp_path: Path,
                                      pricing_text: str | None,
                                      assumptions_edit: tuple[str, str] | None,
                                      match: str) -> None:
    _book(db_path)
    a_path = save_assumptions(_flat(), tmp_path / "a.toml")
    if assumptions_edit is not None:
        a_path.write_text(a_path.read_text().replace(*assumptions_edit))
    args = ["pricing", "--db", db_path, "--assumptions", a_path]
    if pricing_text is not None:
        p = tmp_path / "p.toml"
        p.write_text(pricing_text)
        args += ["--pricing", p]
    out = tmp_path / "never.csv"
    r = cli(*args, "--out", out)
    assert r.code == 2 and match in r.err and "Traceback" not in r.err
    assert not out.exists()


def test_the_book_scope_names_its_weight_the_original_principal(db_path: Path) -> None:
    # Without a pool the WA APR is weighted by each loan's original principal (the book's
    # loans have no single cut-off balance): the printed column and the summary say so; a
    # pool's check keeps "balance" (its cut-off balances).
    from portfolio.book import pools

    _book(db_path)
    with open_store(db_path) as store:
        book = pricing.pricing_check(store, _flat(), PricingInputs())
        info = pools.create_pool(store, "p", pools.Criteria(), "2025-06-30")
        pool = pricing.pricing_check(store, _flat(), PricingInputs(), pool_id=info.pool_id)
    assert book.weight == "principal" and pool.weight == "balance"
    assert book.to_text().splitlines()[0].split()[3] == "principal"
    assert pool.to_text().splitlines()[0].split()[3] == "balance"
    total = book.table["balance"].sum()  # 1000 + 3000 + … principal, as in the first test
    assert f"of {total:,.0f} principal)" in book.summary_text()
    assert "principal)" not in pool.summary_text()
