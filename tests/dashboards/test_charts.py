"""The dashboard's interactive charts, read from the Vega-Lite spec and the data the page passes
(not from rendered pixels): one colour per party on every page, the numbers drawn equal to the
library's, and a sentence instead of a degenerate chart."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pages_helpers import PARTNER, chart_colours, charts, frame_with, no_errors, page

from dashboards import charts as ch
from dashboards import ui

pytestmark = pytest.mark.usefixtures("dashboard_env")


def _store(db):
    from portfolio.store import open_store

    return open_store(db, read_only=True)


def _chart_with(at, column: str) -> tuple[dict, pd.DataFrame]:
    for spec, data in charts(at):
        for frame in data.values():
            if column in frame.columns:
                return spec, frame
    raise AssertionError(f"no chart with a {column!r} column")


def _chart_titled(at, start: str) -> pd.DataFrame:
    """The data of the chart whose title starts with ``start`` (a layered chart: its titled
    layer's)."""
    for spec, data in charts(at):
        titles = [spec.get("title")] + [layer.get("title") for layer in spec.get("layer", [])]
        if any(isinstance(t, str) and t.startswith(start) for t in titles):
            return next(iter(data.values()))
    raise AssertionError(f"no chart titled {start!r}")


def test_colour_is_fixed_per_name_and_distinct_for_the_example_parties() -> None:
    parties = ["platform", "bank_east", "bank_north", "hangzhou_city", "west_trust"]
    assert len({ch.colour(p) for p in parties}) == len(parties)
    # an unknown name: the same colour every call, and never one of the fixed colours
    assert ch.colour("some_new_bank") == ch.colour("some_new_bank")
    assert ch.colour("some_new_bank") not in ch.FIXED_COLOURS.values()
    # two hashed names of one chart never share a colour; fixed names keep theirs
    names = ["platform", *[f"bank_{i}" for i in range(len(ch.PALETTE))]]
    mapping = ch.colours(names)
    assert len(set(mapping.values())) == len(names)
    assert mapping["platform"] == ch.FIXED_COLOURS["platform"]


def test_each_party_has_one_colour_on_the_partners_and_dispersion_pages() -> None:
    partners = page("partners", "treasury")
    dispersion = page("dispersion", "treasury")
    no_errors(partners)
    no_errors(dispersion)
    a = chart_colours(_chart_with(partners, "party_id")[0])
    b = chart_colours(_chart_with(dispersion, "party")[0])
    common = set(a) & set(b)
    assert {"platform", "bank_east"} <= common
    for party in common:
        assert a[party] == b[party] == ch.colour(party), party


def test_partners_chart_data_are_the_allocation_balances(dashboard_env) -> None:
    from partners.records import load_allocation

    at = page("partners", "treasury")
    _, data = _chart_with(at, "party_id")
    drawn = data.set_index("party_id")["value"]
    with _store(dashboard_env.db) as store:
        stored = load_allocation(store, dashboard_env.allocation_id)
    funded = (stored.shares * stored.balance[:, None]).sum(axis=0)
    for pid, amount in zip(stored.party_ids, funded, strict=True):
        if amount > 0:
            assert drawn[pid] == pytest.approx(amount, rel=1e-9)


def test_loss_histogram_counts_every_path_in_numpy_bins(dashboard_env) -> None:
    from portfolio.store.runs import load_paths

    at = page("simulation", "treasury")
    no_errors(at)
    with _store(dashboard_env.db) as store:
        loss = load_paths(store, dashboard_env.run_id).loss
    counts, edges = np.histogram(loss, bins=60)  # numpy's histogram, the independent count
    _, data = _chart_with(at, "bin_start")
    assert data["value"].sum() == len(loss)
    np.testing.assert_array_equal(data["value"].to_numpy(), counts)
    np.testing.assert_allclose(data["bin_start"].to_numpy(), edges[:-1], rtol=1e-12)


def test_a_tranche_whose_every_path_loses_nothing_is_a_sentence(dashboard_env) -> None:
    from portfolio.store.runs import load_paths
    from riskpool.commands.demo import EXAMPLES
    from tranching.analytics import loss_shares
    from tranching.deal import load_deal
    from tranching.revolving import run_replenishment
    from tranching.waterfall import run_waterfall

    deal = load_deal(EXAMPLES / "deal_cn_consumer.toml")
    with _store(dashboard_env.db) as store:
        paths = load_paths(store, dashboard_env.run_id)
        profile = run_replenishment(store, dashboard_env.run_id, deal)
    shares = loss_shares(run_waterfall(deal, paths, replenishment=profile))
    zero = [n for j, n in enumerate(deal.tranche_names) if not np.any(shares[j])]
    assert "A" in zero  # the senior class loses on no path of the demo run
    at = page("tranches", "treasury", widgets={"tr_deal": "deal_cn_consumer.toml"})
    no_errors(at)
    said = [i.value for i in at.info]
    for name in zero:
        assert any(s.startswith(f"No path loses on class {name} ") for s in said), said
    drawn = {str(c) for _, d in charts(at) for f in d.values()
             if "class" in f and "bin_start" in f for c in f["class"].unique()}
    assert not drawn & set(zero)  # no spike drawn for them
    assert drawn == set(deal.tranche_names) - set(zero)


def test_spike_sentences() -> None:
    s = ch.spike_sentences({"A": np.zeros(5), "B": np.array([0.0, 0.1]),
                            "C": np.full(3, 0.25)})
    assert s["A"] == "No path loses on class A (5 paths, every loss 0)."
    assert "B" not in s
    assert s["C"] == "Every path loses the same on class C: 25.0000% of its balance (3 paths)."


def test_vintage_curves_of_a_partner_with_no_default_are_a_survivorship_sentence() -> None:
    at = page("book", f"partner:{PARTNER}")
    no_errors(at)
    said = " ".join(i.value for i in at.info)
    curves = [f for _, d in charts(at) for f in d.values() if "months_on_book" in f]
    if curves:  # the partner's loans have defaulted since cut-off: a chart, with a non-zero
        assert (curves[0]["value"] != 0).any()
    else:
        assert "survivorship" in said and "current when they were allocated" in said


def test_treasury_vintage_chart_data_are_the_vintage_table(dashboard_env) -> None:
    import duckdb

    from portfolio.book.analytics import vintage_curves

    at = page("book", "treasury")
    no_errors(at)
    _, drawn = _chart_with(at, "months_on_book")
    con = duckdb.connect(str(dashboard_env.db), read_only=True)
    try:
        wide = vintage_curves(con).tables()["cumulative_default"]
    finally:
        con.close()
    label = wide.columns[0]
    row = wide.iloc[-1]
    mine = drawn[drawn["vintage"] == str(row[label])].set_index("months_on_book")["value"]
    for mob, value in mine.items():
        assert value == pytest.approx(float(row[mob] if mob in row else row[str(mob)]),
                                      rel=1e-12)
    assert len(mine) > 0


def _book_con(db):
    import duckdb

    return duckdb.connect(str(db), read_only=True)


def test_delinquency_shares_by_hand() -> None:
    from portfolio.book.analytics import delinquency_shares

    wide = pd.DataFrame({"as_of": ["2026-01-31", "2026-02-28"],
                         "current_balance": [900.0, 0.0], "M1_balance": [60.0, 0.0],
                         "M2_balance": [25.0, 0.0], "M3_balance": [10.0, 0.0],
                         "default_balance": [5.0, 0.0], "written_off_balance": [40.0, 0.0]})
    out = delinquency_shares(wide)
    # by hand: outstanding 900 + 60 + 25 + 10 + 5 = 1000 (written-off left out)
    assert out.loc[0, ["M1", "M2", "M3", "default", "dpd30"]].tolist() == pytest.approx(
        [0.06, 0.025, 0.01, 0.005, 0.10])
    assert out.loc[1, ["M1", "dpd30"]].isna().all()  # no outstanding balance: no share


def test_book_page_new_charts_equal_the_analytics(dashboard_env) -> None:
    from portfolio.book.analytics import ROLL_TO_STATES, book_summary, delinquency, roll_rates

    at = page("book", "treasury")
    no_errors(at)
    con = _book_con(dashboard_env.db)
    try:
        wide = delinquency(con, over_time=True).over_time
        matrix = roll_rates(con).matrix  # the `riskpool book rolls` data, latest two month-ends
        groups = book_summary(con).groups
    finally:
        con.close()
    # delinquency as % of the outstanding balance, by hand from the bucket balances
    outstanding = sum(wide[f"{b}_balance"] for b in ("current", "M1", "M2", "M3", "default"))
    drawn = _chart_titled(at, "Delinquency as % of the outstanding balance")
    dpd = drawn[drawn["series"] == "dpd30"].sort_values("as_of")["value"].to_numpy()
    expected = ((wide["M1_balance"] + wide["M2_balance"] + wide["M3_balance"]
                 + wide["default_balance"]) / outstanding).to_numpy()
    np.testing.assert_allclose(dpd, expected, rtol=1e-12)
    # the roll-rate heat map's cells
    _, heat = _chart_with(at, "to_state")
    for _, cell in heat.iterrows():
        row = matrix[matrix["from_bucket"] == cell["from_bucket"]].iloc[0]
        assert cell["share"] == pytest.approx(float(row[cell["to_state"]]), rel=1e-12)
    assert len(heat) == int(matrix[list(ROLL_TO_STATES)].notna().to_numpy().sum())
    # region concentration
    _, regions = _chart_with(at, "group")
    stored = groups[groups["dimension"] == "region"].set_index("group")["balance_share"]
    got = regions.set_index("group")["balance_share"]
    assert set(got.index) == set(stored.index)
    for g in stored.index:
        assert got[g] == pytest.approx(float(stored[g]), rel=1e-12)


def test_tranches_page_trigger_chart_and_cash_flow_table(dashboard_env) -> None:
    from portfolio.store.runs import load_paths
    from riskpool.commands.demo import EXAMPLES
    from tranching.deal import load_deal
    from tranching.revolving import run_replenishment
    from tranching.tape import cashflow_tape
    from tranching.waterfall import run_waterfall

    deal = load_deal(EXAMPLES / "deal_cn_consumer.toml")
    with _store(dashboard_env.db) as store:
        paths = load_paths(store, dashboard_env.run_id)
        profile = run_replenishment(store, dashboard_env.run_id, deal)
    result = run_waterfall(deal, paths, replenishment=profile)
    at = page("tranches", "treasury", widgets={"tr_deal": "deal_cn_consumer.toml"})
    no_errors(at)
    # the expected path's tape, as `riskpool tranche cashflows` writes it
    tape = cashflow_tape(result)
    shown = frame_with(at, "balance_bop")
    for col in ("cash", "balance_eop", "principal"):
        values = shown[col]
        if pd.api.types.is_numeric_dtype(values):  # a column without gaps: the numbers
            np.testing.assert_allclose(values.to_numpy(float), tape[col].to_numpy(float),
                                       rtol=1e-12, equal_nan=True)
        else:  # gaps shown as "—" (dashboards.ui.with_missing_shown): numbers to the cent
            got = [np.nan if v == ui.MISSING else float(str(v).replace(",", ""))
                   for v in values]
            np.testing.assert_allclose(got, tape[col].to_numpy(float), rtol=0, atol=0.005,
                                       equal_nan=True)
    # the first trigger's metric against its level: the mean over the paths of the metric the
    # waterfall recorded, and the deal's schedule
    trig = deal.triggers[0]
    _, drawn = _chart_with(at, "level")
    key = {"delinquency": "delinquency", "dpd30": "delinquency", "cnl": "cnl"}.get(
        trig.metric.value, trig.metric.value)
    if trig.metric.value == "cnl" and trig.denominator.value != "initial":
        key = "cnl_purchases"
    metric = np.asarray(result.metrics[key], dtype=float)
    np.testing.assert_allclose(drawn["mean"].to_numpy(float), np.nanmean(metric, axis=0),
                               rtol=1e-12)
    assert drawn["level"].tolist() == [trig.level_at(m) for m in range(1, len(drawn) + 1)]
    np.testing.assert_allclose(drawn["in_force"].to_numpy(float),
                               result.triggers[trig.name].mean(axis=0), rtol=1e-12)


def test_tranches_page_credit_enhancement_by_month(dashboard_env) -> None:
    from portfolio.store.runs import load_paths
    from riskpool.commands.demo import EXAMPLES
    from tranching.analytics import tranche_table
    from tranching.deal import load_deal
    from tranching.revolving import run_replenishment
    from tranching.waterfall import run_waterfall

    deal = load_deal(EXAMPLES / "deal_cn_consumer.toml")
    with _store(dashboard_env.db) as store:
        paths = load_paths(store, dashboard_env.run_id)
        profile = run_replenishment(store, dashboard_env.run_id, deal)
    result = run_waterfall(deal, paths, replenishment=profile)
    at = page("tranches", "treasury", widgets={"tr_deal": "deal_cn_consumer.toml"})
    no_errors(at)
    drawn = _chart_titled(at, "Credit enhancement by class")
    drawn = drawn.sort_values(["class", "date"])
    # closing: the tranche table's CE (junior classes + initial OC + closing reserve) / pool
    table = tranche_table(deal, result, paths).set_index("tranche")
    first = drawn.groupby("class").first()["mean"]
    for name in deal.tranche_names:
        assert first[name] == pytest.approx(float(table.loc[name, "ce"]), rel=1e-12)
    # after month 1, class A by hand: (collateral + reserve − A's balance) / collateral
    a1 = np.mean((result.collateral[:, 0] + result.reserve[:, 0] - result.balance[0, :, 0])
                 / result.collateral[:, 0])
    assert drawn[drawn["class"] == "A"]["mean"].iloc[1] == pytest.approx(a1, rel=1e-12)


def test_fan_is_flat() -> None:
    flat = pd.DataFrame({"date": ["2026-01-31"], "p5": [0.0], "p50": [0.0], "p95": [0.0],
                         "mean": [0.0]})
    assert ch.fan_is_flat(flat)
    assert not ch.fan_is_flat(flat.assign(p95=[1.0]))


@pytest.mark.parametrize("name", ["book", "simulation", "tranches", "partners", "dispersion"])
def test_a_partners_charts_name_no_other_party(name) -> None:
    """The charts' data and specs (not shown as text, so not in the text leak checks) carry
    nothing of another party."""
    at = page(name, f"partner:{PARTNER}")
    no_errors(at)
    found = charts(at)
    blob = " ".join(str(spec) + " ".join(f.to_csv(index=False) for f in data.values())
                    for spec, data in found)
    for other in ("bank_north", "west_trust", "hangzhou_city"):
        assert other not in blob, (name, other)
    if name in ("book", "partners"):
        assert found  # the partner does see charts there


def test_region_concentration_bars_in_order_of_share() -> None:
    # the Book page's region chart: horizontal bars, the largest share on top, each region
    # named once on the y axis (all ~30 names legible: no label dropped for overlap, none cut
    # short), one colour and no legend repeating the names (the old chart: vertical bars
    # whose Chinese x labels ran into one another, and a colour legend cut off at the bottom)
    at = page("book", "treasury")
    no_errors(at)
    for spec, data in charts(at):
        if "Region concentration" in json.dumps(spec.get("title", "")):
            frame = next(iter(data.values()))
            by_share = frame.sort_values("balance_share", ascending=False)["group"].tolist()
            assert len(by_share) == len(set(by_share)) >= 10
            layers = spec.get("layer", [spec])
            bars = next(layer for layer in layers if "bar" in json.dumps(layer["mark"]))
            y, x = bars["encoding"]["y"], bars["encoding"]["x"]
            assert (y["field"], y["type"], x["field"], x["type"]) == (
                "group", "nominal", "balance_share", "quantitative")
            assert y["sort"] == by_share
            assert y["axis"]["labelOverlap"] is False and y["axis"]["labelLimit"] == 0
            # room for the longest name (黑龙江) left of the bars: Vega alone cut it to 龙江
            size = y["axis"]["labelFontSize"]
            assert y["axis"]["minExtent"] >= (max(map(len, by_share)) * size
                                              + y["axis"]["labelPadding"])
            for layer in layers:
                assert "color" not in layer["encoding"]  # no legend
            # each bar carries its share as text, as the tables write it
            text = next(layer for layer in layers if "text" in json.dumps(layer["mark"]))
            assert text["encoding"]["text"]["format"] == ".2%"
            return
    raise AssertionError("no region concentration chart")


def test_time_axes_name_the_year() -> None:
    # every chart over dates (Book: delinquency, CDR/CPR; Simulation: fans; Tranches:
    # triggers, credit enhancement, cash-flow fans) labels its ticks with month and year
    # ("Oct 2025"), not Vega-Lite's default month name alone ("October, April, October")
    found = []

    def walk(node: object, title: str) -> None:
        if isinstance(node, dict):
            x = node.get("encoding", {}).get("x") if isinstance(node.get("encoding"),
                                                                dict) else None
            if isinstance(x, dict) and x.get("type") == "temporal":
                found.append((title, x))
            for v in node.values():
                walk(v, title)
        elif isinstance(node, list):
            for v in node:
                walk(v, title)

    for name in ("book", "simulation", "tranches"):
        at = page(name, "treasury")
        no_errors(at)
        for spec, _ in charts(at):
            title = spec.get("title") or next(
                (layer["title"] for layer in spec.get("layer", []) if "title" in layer), "")
            walk(spec, f"{name}: {json.dumps(title)}")
    titles = {t for t, _ in found}
    for part in ("Delinquent balance", "Delinquency as %", "default and prepayment",
                 "Performing balance", "Credit enhancement"):
        assert any(part in t for t in titles), (part, titles)
    for title, x in found:
        fmt = x.get("axis", {}).get("format")
        assert isinstance(fmt, dict), (title, x)  # Vega-Lite's default: "October" alone
        for boundary in ("year", "quarter", "month"):
            assert "%Y" in fmt[boundary] and "%b" in fmt[boundary], (title, boundary)
        assert fmt == ch.TIME_AXIS_FORMAT, title


def test_legends_and_measure_axes_read_as_the_table_headers() -> None:
    # the data keep the column names (M1_balance, cdr, var_999); the legend or axis shows
    # the tables' header for each (dashboards.labels), through a Vega label expression
    at = page("book", "treasury")
    no_errors(at)
    exprs = {}
    for spec, _data in charts(at):
        legend = spec.get("encoding", {}).get("color", {}).get("legend") or {}
        if "labelExpr" in legend:
            exprs[json.dumps(spec.get("title", ""))] = legend["labelExpr"]
    balance = next(e for t, e in exprs.items() if "Delinquent balance" in t)
    rates = next(e for t, e in exprs.items() if "default and prepayment" in t)
    assert '"M1_balance": "M1 balance"' in balance and '"default_balance": "Default balance"' \
        in balance
    assert '"cdr": "CDR"' in rates and '"cpr": "CPR"' in rates
    shares = next(e for t, e in exprs.items() if "Delinquency as %" in t)
    assert '"dpd30": "30+ DPD"' in shares and '"default": "Default"' in shares
    assert ch.label_expr(["A", "B", "Sub"]) is None  # class names read as themselves
    assert ch.label_expr(["el", "var_999", "capital"]) == (
        '({"el": "EL", "var_999": "VaR 99.9%", "capital": "Capital"})[datum.value] '
        "|| datum.label")
