"""The dashboard's interactive charts, read from the Vega-Lite spec and the data the page passes
(not from rendered pixels): one colour per party on every page, the numbers drawn equal to the
library's, and a sentence instead of a degenerate chart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pages_helpers import PARTNER, chart_colours, charts, no_errors, page

from dashboards import charts as ch

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


def test_colour_is_fixed_per_name_and_distinct_for_the_example_parties() -> None:
    parties = ["platform", "bank_east", "bank_north", "hangzhou_city", "west_trust"]
    assert len({ch.colour(p) for p in parties}) == len(parties)
    # an unknown name: the same colour every call, and never one of the fixed colours
    assert ch.colour("some_new_bank") == ch.colour("some_new_bank")
    assert ch.colour("some_new_bank") not in ch.FIXED_COLOURS.values()


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
    drawn = {str(c) for _, d in charts(at) for f in d.values() if "class" in f
             for c in f["class"].unique()}
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
