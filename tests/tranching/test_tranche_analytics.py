"""Tranche analytics against independent values: closed forms, numpy-financial, hand counts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import numpy_financial as npf
import pandas as pd
import pytest
import QuantLib as ql
from tranching_pathgen import paths_from_arrays, synthetic_paths

from tranching.analytics import (
    ZeroCurve,
    credit_enhancement,
    evaluation_date,
    path_irr,
    price_yield_duration,
    tranche_table,
    trigger_table,
)
from tranching.deal import deal_from_dict, load_deal
from tranching.errors import DealError, RatingTableError, SizingError
from tranching.ratings import RatingTable, implied_rating, load_rating_table
from tranching.sizing import size_tranche
from tranching.waterfall import run_waterfall

ROOT = Path(__file__).resolve().parents[2]
CLOSING = dt.date(2026, 1, 15)


def test_price_yield_duration_closed_form() -> None:
    # 50 after exactly 1 year, 60 after 2 years (365 and 730 days, Act/365F), 5% annual:
    # P = 50/1.05 + 60/1.05²; modified duration = (1·50/1.05² + 2·60/1.05³) / P.
    dates = [dt.date(2027, 1, 15), dt.date(2028, 1, 15)]
    py = price_yield_duration([50.0, 60.0], dates, CLOSING, face=100.0, discount=0.05)
    price = 50 / 1.05 + 60 / 1.05**2
    assert py.price == pytest.approx(price / 100, rel=1e-12)
    assert py.yield_ == pytest.approx(0.05, abs=1e-9)
    assert py.modified_duration == pytest.approx((50 / 1.05**2 + 2 * 60 / 1.05**3) / price, rel=1e-8)


def test_zero_curve_flat_equals_flat_rate_and_two_point_curve() -> None:
    dates = [dt.date(2027, 1, 15), dt.date(2028, 1, 15)]
    flat = ZeroCurve((dt.date(2027, 1, 15), dt.date(2030, 1, 15)), (0.04, 0.04))
    a = price_yield_duration([50.0, 60.0], dates, CLOSING, 100.0, flat)
    b = price_yield_duration([50.0, 60.0], dates, CLOSING, 100.0, 0.04)
    assert a.price == pytest.approx(b.price, rel=1e-12)
    # a curve with 3% at 1y and 4% at 2y (annual compounding): P = 50/1.03 + 60/1.04²
    curve = ZeroCurve((dt.date(2027, 1, 15), dt.date(2028, 1, 15)), (0.03, 0.04))
    c = price_yield_duration([50.0, 60.0], dates, CLOSING, 100.0, curve)
    assert c.price * 100 == pytest.approx(50 / 1.03 + 60 / 1.04**2, rel=1e-10)
    with pytest.raises(DealError, match="discount"):
        ZeroCurve((dt.date(2027, 1, 15),), (0.03, 0.04))


def test_evaluation_date_is_restored() -> None:
    before = ql.Settings.instance().evaluationDate
    with evaluation_date(dt.date(2030, 6, 30)) as d:
        assert ql.Settings.instance().evaluationDate == d == ql.Date(30, 6, 2030)
    assert ql.Settings.instance().evaluationDate == before


def test_path_irr_matches_numpy_financial() -> None:
    # monthly flows at τ = k/12: the annual IRR is (1 + npf.irr)^12 − 1
    rng = np.random.default_rng(3)
    flows = rng.uniform(0, 20, size=(5, 24))
    price = np.array([300.0, 250.0, 200.0, 400.0, 100.0])
    irr = path_irr(flows, np.arange(1, 25) / 12.0, price)
    for i in range(5):
        monthly = npf.irr(np.concatenate([[-price[i]], flows[i]]))
        assert irr[i] == pytest.approx((1 + monthly) ** 12 - 1, abs=1e-9)
    assert path_irr(np.zeros((1, 3)), np.array([1.0, 2.0, 3.0]), 10.0)[0] == -1.0


def _one_period_deal():
    return deal_from_dict({
        "deal": {"name": "one", "closing_date": CLOSING, "first_payment_date": dt.date(2027, 1, 15)},
        "tranches": [{"name": "A", "size": 0.8, "coupon": 0.0}, {"name": "B", "size": 0.1, "coupon": 0.0},
                     {"name": "Sub", "size": 0.1}],
    })


def test_loss_statistics_by_hand() -> None:
    # single period, no interest, no recovery; defaults 0, 50, 150, 300 on a pool of 1,000.
    # Losses hit Sub (100) first, then B (100), then A (800):
    #   Sub: 0, 50, 100, 100 → shares 0, .5, 1, 1 → EL .625, PD .75, LGL .625/.75
    #   B:   0, 0, 50, 100   → 0, 0, .5, 1         → EL .375, PD .5,  LGL .75
    #   A:   0, 0, 0, 100    → 0, 0, 0, .125       → EL .03125, PD .25, LGL .125
    d = np.array([[0.0], [50.0], [150.0], [300.0]])
    paths = paths_from_arrays(initial_balance=1000.0, interest=np.zeros((4, 1)),
                              scheduled_principal=1000.0 - d, default=d)
    deal = _one_period_deal()
    table = tranche_table(deal, run_waterfall(deal, paths), paths, discount=0.0)
    t = table.set_index("tranche")
    assert t.loc["Sub", ["el", "pd", "lgl"]].tolist() == pytest.approx([0.625, 0.75, 0.625 / 0.75])
    assert t.loc["B", ["el", "pd", "lgl"]].tolist() == pytest.approx([0.375, 0.5, 0.75])
    assert t.loc["A", ["el", "pd", "lgl"]].tolist() == pytest.approx([0.03125, 0.25, 0.125])
    assert t.loc["B", "loss_q95"] == pytest.approx(np.quantile([0, 0, 0.5, 1.0], 0.95))
    # every tranche is paid (what is paid) on the one payment date, 365 days after closing
    assert t["wal_mean"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    # IRR at par: A receives 800, 800, 800, 700 → per-path IRR 0, 0, 0, −12.5%
    assert t.loc["A", "irr"] == pytest.approx((0 + 0 + 0 - 0.125) / 4, abs=1e-9)
    # price at 0% = expected cash / face: A (800·3 + 700)/4/800
    assert t.loc["A", "price"] == pytest.approx((3 * 800 + 700) / 4 / 800, rel=1e-12)
    assert t.loc["A", "ce"] == pytest.approx(0.2)
    assert table["rating"].isna().all()


def test_wal_and_trigger_table_on_the_hand_worked_example() -> None:
    deal = deal_from_dict({
        "deal": {"name": "w", "closing_date": dt.date(2026, 1, 1), "first_payment_date": dt.date(2026, 2, 1)},
        "tranches": [{"name": "A", "size": 0.9, "coupon": 0.0}, {"name": "Z", "size": 0.1}],
        "triggers": [{"name": "cnl", "metric": "cnl", "level": 0.03, "effect": "turbo"}],
    })
    paths = paths_from_arrays(initial_balance=1000.0, interest=[[10.0, 5.0, 2.0]],
                              scheduled_principal=[[500.0, 200.0, 250.0]], default=[[0.0, 50.0, 0.0]])
    r = run_waterfall(deal, paths)
    table = tranche_table(deal, r, paths)
    # A is paid 500 (Feb 1: 31 days), then turbo from month 2: 200 + 5 + 0 = 205 (Mar 1: 59 days),
    # then 195 (Apr 1: 90 days): WAL = (500·31 + 205·59 + 195·90)/900/365
    assert r.principal_paid[0, 0].tolist() == pytest.approx([500.0, 205.0, 195.0])
    assert table.loc[0, "wal_mean"] == pytest.approx((500 * 31 + 205 * 59 + 195 * 90) / 900 / 365)
    trig = trigger_table(deal, r)
    assert trig.loc[0, "p_breach"] == 1.0 and trig.loc[0, "mean_first_month"] == 2.0


def test_credit_enhancement_of_the_examples() -> None:
    cn = load_deal(ROOT / "examples/deal_cn_consumer.toml")
    # A: B 4% + Sub 7% + reserve 1% = 12%; B: 7% + 1%; Sub: reserve 1%
    assert credit_enhancement(cn, 1e6).tolist() == pytest.approx([0.12, 0.08, 0.01])
    us = load_deal(ROOT / "examples/deal_us_consumer.toml")
    # A: B 12% + C 8% + OC 10% + reserve 0.5% = 30.5%
    assert credit_enhancement(us, 1e6).tolist() == pytest.approx([0.305, 0.185, 0.105])


def _table() -> RatingTable:
    return RatingTable(source="test", illustrative=True, wal_years=(1.0, 3.0), names=("X1", "X2", "X3"),
                       el=np.array([[0.001, 0.003], [0.01, 0.03], [0.1, 0.3]]))


def test_implied_rating_interpolates_in_wal() -> None:
    t = _table()
    # at WAL 2 the thresholds are 0.002, 0.02, 0.2 (linear between 1 and 3 years)
    assert implied_rating(t, 0.002, 2.0) == "X1"
    assert implied_rating(t, 0.0021, 2.0) == "X2"
    assert implied_rating(t, 0.25, 5.0) == "X3"  # flat beyond the last column (0.3)
    assert implied_rating(t, 0.5, 2.0) == "below X3"


def test_illustrative_rating_table_loads_and_is_labelled() -> None:
    t = load_rating_table(ROOT / "examples/rating_table_illustrative.toml")
    assert t.illustrative and "not from any agency" in t.source
    assert t.names[0] == "R1" and t.el.shape == (6, 7)


@pytest.mark.parametrize(("text", "field", "match"), [
    ('wal_years = [1]\n[[rating]]\nname = "X"\nel = [0.1]\n', "source",
     r"`source` must be given"),
    ('source = "s"\nwal_years = [2, 1]\n[[rating]]\nname = "X"\nel = [0.1, 0.2]\n', "wal_years[1]",
     r"`wal_years\[1\]` must be > 2.0 \(increasing\); got 1.0"),
    ('source = "s"\nwal_years = [1, 2]\n[[rating]]\nname = "X"\nel = [0.1]\n', "rating[0].el",
     r"`rating\[0\].el` must be 2 values \(one per wal_years\); got \[0.1\]"),
    ('source = "s"\nwal_years = [1]\n[[rating]]\nname = "X"\nel = [0.2]\n[[rating]]\nname = "Y"\n'
     'el = [0.1]\n', "rating[1].el", r"must be at least the previous \(better\) rating's el"),
    ('source = "s"\nwal_years = [1]\n[[rating]]\nname = "X"\nel = [0.2]\n[[rating]]\nname = "X"\n'
     'el = [0.3]\n', "rating[1].name", r"must be a name not used by an earlier rating; got 'X'"),
    ('source = "s"\nwal_years = [1]\n[[rating]]\nname = "X"\nel = [inf]\n', "rating[0].el[0]",
     r"must be an expected loss \(decimal share\) in \[0, 1\]; got inf"),
    ('source = "s"\nwal_years = [0]\n[[rating]]\nname = "X"\nel = [0.1]\n', "wal_years[0]",
     r"must be a WAL in years in \(0, 100\]; got 0"),
    ('source = "s"\nwal_years = [1]\nrating = [{name = "X", el = [0.1], note = 1}]\n',
     "rating[0].note", r"must be a known key"),
    ('source = "s"\nwal_years = [1]\nrating = []\n', "rating", r"must be a non-empty array"),
    ('source = "s"\nillustrative = "yes"\nwal_years = [1]\n[[rating]]\nname = "X"\nel = [0.1]\n',
     "illustrative", r"must be true or false; got 'yes'"),
])
def test_bad_rating_table(tmp_path: Path, text: str, field: str, match: str) -> None:
    p = tmp_path / "r.toml"
    p.write_text(text)
    with pytest.raises(RatingTableError, match=match) as info:
        load_rating_table(p)
    assert info.value.field_path == field and info.value.where == str(p)
    assert str(info.value).startswith(f"{p}: `{field}` must be ")


def test_unreadable_rating_table_is_a_rating_table_error(tmp_path: Path) -> None:
    p = tmp_path / "r.toml"
    p.write_bytes(b"source = \"\xff\"")
    with pytest.raises(RatingTableError, match="not UTF-8") as info:
        load_rating_table(p)
    assert info.value.where == str(p)
    with pytest.raises(RatingTableError, match="does not exist"):
        load_rating_table(tmp_path / "nope.toml")


def _sizing_setup():
    deal = load_deal(ROOT / "examples/deal_us_consumer.toml")
    paths = synthetic_paths(n_paths=400, n_months=30, seed=11, monthly_pd=0.02, rho=0.25)
    return deal, paths


def test_sizing_to_target_el_is_the_largest_size_meeting_it() -> None:
    deal, paths = _sizing_setup()
    target = 0.002
    res = size_tranche(deal, paths, "B", target_el=target, tol=1e-4)
    assert res.el <= target
    # one tolerance step larger breaks the target (same paths: common random numbers)
    shares = {t.name: t.size for t in deal.tranches}
    s_max = shares["B"] + shares["C"]
    bigger = deal.with_sizes({"B": res.size + 2e-4, "C": s_max - res.size - 2e-4})
    r = run_waterfall(bigger, paths)
    assert r.tranche_loss[1].mean() / r.original_balance[1] > target
    # the resized deal keeps A and the total
    sizes = {t.name: t.size for t in res.deal.tranches}
    assert sizes["A"] == 0.70 and sum(sizes.values()) == pytest.approx(0.90)


def test_sizing_to_a_rating_needs_a_table_and_meets_the_rating() -> None:
    deal, paths = _sizing_setup()
    with pytest.raises(SizingError, match="rating_table"):
        size_tranche(deal, paths, "A", target_rating="R1")
    table = load_rating_table(ROOT / "examples/rating_table_illustrative.toml")
    res = size_tranche(deal, paths, "A", target_rating="R2", rating_table=table)
    assert res.rating in ("R1", "R2")
    with pytest.raises(SizingError, match="tranche"):
        size_tranche(deal, paths, "C", target_el=0.01)
    with pytest.raises(SizingError, match="target"):
        size_tranche(deal, paths, "A")
    with pytest.raises(RatingTableError, match="target_rating"):
        size_tranche(deal, paths, "A", target_rating="AAA", rating_table=table)


def test_tranche_table_columns_on_an_example() -> None:
    deal = load_deal(ROOT / "examples/deal_cn_consumer.toml")
    paths = synthetic_paths(n_paths=200, n_months=30, seed=5, monthly_pd=0.004)
    table = tranche_table(deal, run_waterfall(deal, paths), paths, discount=0.03,
                          rating_table=load_rating_table(ROOT / "examples/rating_table_illustrative.toml"))
    assert isinstance(table, pd.DataFrame)
    assert table["tranche"].tolist() == ["A", "B", "Sub"]
    for col in ("size", "coupon", "holder", "el", "pd", "lgl", "loss_q99", "wal_mean", "irr", "price",
                "yield", "mod_duration", "ce", "rating"):
        assert col in table.columns
    assert table["el"].is_monotonic_increasing
    assert table["rating"].notna().all()


def test_sizing_reports_the_binding_constraint_and_the_slack_of_the_others() -> None:
    # CN example deal: A 89%, B 4% (investors), Sub 7% (platform), first-loss retention 5% held
    # by the platform. Sizing A at the Sub's expense: s_max = 0.89 + 0.07 = 0.96; the retention
    # needs Sub >= 0.05, so A <= 0.96 − 0.05 = 0.91; the minimum sub (0) allows 0.96. With a
    # loose EL target (10%) the retention binds: A = 0.91 exactly, minimum-sub slack 0.05.
    deal = load_deal(ROOT / "examples/deal_cn_consumer.toml")
    paths = synthetic_paths(n_paths=200, n_months=30, seed=3, monthly_pd=0.004)
    res = size_tranche(deal, paths, "A", target_el=0.10)
    assert res.binding == "retention"
    assert res.size == pytest.approx(0.91, abs=1e-12)
    c = res.constraints.set_index("constraint")
    assert c.loc["retention", "slack"] == pytest.approx(0.0, abs=1e-12)
    assert c.loc["minimum sub", "limit"] == pytest.approx(0.96, abs=1e-12)
    assert c.loc["minimum sub", "slack"] == pytest.approx(0.05, abs=1e-12)
    assert c.loc["target", "slack"] == pytest.approx(0.10 - res.el, abs=1e-15)
    assert c.loc["target", "slack"] > 0 and not c.loc["target", "binding"]
    # a minimum sub of 6% binds before the retention: A = 0.96 − 0.06 = 0.90
    res = size_tranche(deal, paths, "A", target_el=0.10, min_sub=0.06)
    assert res.binding == "minimum sub" and res.size == pytest.approx(0.90, abs=1e-12)
    assert res.constraints.set_index("constraint").loc["retention", "slack"] == pytest.approx(0.01)


def test_sizing_where_the_target_binds_shows_the_size_limits_slack() -> None:
    deal, paths = _sizing_setup()  # US deal: A 70 / B 12 / C 8, no retention
    res = size_tranche(deal, paths, "B", target_el=0.002, tol=1e-4)
    assert res.binding == "target"
    c = res.constraints.set_index("constraint")
    assert bool(c.loc["target", "binding"]) and 0 <= c.loc["target", "slack"] <= 0.002
    assert c.loc["minimum sub", "slack"] == pytest.approx(0.20 - res.size, abs=1e-12)
    assert c.loc["retention", "limit"] == float("inf")
    # a rating target: the slack is the target rating's EL threshold at the WAL minus the EL
    table = load_rating_table(ROOT / "examples/rating_table_illustrative.toml")
    res = size_tranche(deal, paths, "A", target_rating="R2", rating_table=table)
    row = res.constraints.set_index("constraint").loc["target"]
    assert row["limit"] == pytest.approx(float(table.threshold(res.wal)[1]))
    assert row["slack"] == pytest.approx(row["limit"] - res.el) and row["slack"] >= 0


def test_class_total_row_by_hand() -> None:
    # three classes of a 1,000 pool: A 700 at 3% (EL 0), B 200 at 5% (EL 1%), Z 50 (EL 40%);
    # notes 950 = 95% of the pool; their coupon (700×0.03 + 200×0.05 + 50×0) / 950 =
    # 31 / 950; their EL (0 + 2 + 20) / 950 = 22 / 950 of the notes (22 CNY expected loss)
    from tranching.analytics import CLASS_TOTAL, with_class_total

    table = pd.DataFrame({"tranche": ["A", "B", "Z"], "holder": ["x", "x", "y"],
                          "size": [700.0, 200.0, 50.0], "size_share": [0.7, 0.2, 0.05],
                          "coupon": [0.03, 0.05, 0.0], "el": [0.0, 0.01, 0.4],
                          "pd": [0.0, 0.02, 0.9], "wal_mean": [1.0, 1.5, 2.0],
                          "rating": ["AAA", "A", None]})
    out = with_class_total(table)
    assert len(out) == 4 and out.iloc[:3].equals(table.astype(out.dtypes.to_dict()))
    t = out.iloc[-1]
    assert (t["tranche"], t["holder"]) == (CLASS_TOTAL, "") and pd.isna(t["rating"])
    assert (t["size"], t["size_share"]) == (950.0, pytest.approx(0.95))
    assert t["coupon"] == pytest.approx(31 / 950) and t["el"] == pytest.approx(22 / 950)
    assert np.isnan(t["pd"]) and np.isnan(t["wal_mean"])  # do not add
    assert with_class_total(table.iloc[:1]).equals(table.iloc[:1])  # one class: as it is
    assert with_class_total(out).equals(out)  # already totalled
