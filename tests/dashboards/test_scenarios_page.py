"""The Scenario sets page: a stored set's result table (read from the page's dataframe, equal
to the stored figures in %) and its heat map over the grid's two factors; treasury only."""

from __future__ import annotations

import pandas as pd
import pytest
from pages_helpers import PARTNER, frame_with, no_errors, page
from simulation_pools import assumptions

from portfolio.montecarlo.assumptions import save_assumptions
from portfolio.store.core import open_store
from portfolio.store.scenarios import get_scenario_set
from riskpool.commands.scenarios import run_scenario_set

SET = """
[set]
name = "page set"
seed = 3
paths = 200

[[scenario]]
name = "base"

[[scenario]]
name = "severe"
pd_mult = 2.5
recovery_mult = 0.6

[[grid]]
name = "pd x rho"
pd_mult = [1.0, 2.0]
rho = [0.05, 0.2]
"""


@pytest.fixture
def with_set(writable_book, tmp_path, monkeypatch):
    set_file = tmp_path / "set.toml"
    set_file.write_text(SET, encoding="utf-8")
    a = save_assumptions(assumptions(), tmp_path / "a.toml")
    res = run_scenario_set(writable_book.db, writable_book.pool_id, a, set_file)
    monkeypatch.setenv("RISKPOOL_DB", str(writable_book.db))
    monkeypatch.setenv("RISKPOOL_USERS", str(writable_book.users_file))
    with open_store(writable_book.db, read_only=True) as store:
        return get_scenario_set(store, res.set_id)


def test_the_page_shows_the_stored_set_and_a_grid_heat_map(with_set) -> None:
    at = page("scenarios", "treasury", query={"set": str(with_set.set_id)})
    no_errors(at)
    shown = frame_with(at, "Pool EL (% of balance)")
    stored = with_set.results
    assert list(shown["Scenario"]) == list(stored["scenario"])
    assert list(shown["Changes vs base"])[1] == "PD ×2.5, recovery ×0.6"
    pd.testing.assert_series_equal(shown["Pool EL (% of balance)"].reset_index(drop=True),
                                   stored["el_pct"].reset_index(drop=True),
                                   check_names=False)
    assert len(at.get("vega_lite_chart")) == 1
    heat = frame_with(at, "value")
    # the 2 x 2 grid: PD x against rho, the pool EL of each member
    assert sorted(zip(heat["PD ×"], heat["ρ"], strict=True)) == [(1.0, 0.05), (1.0, 0.2),
                                                                 (2.0, 0.05), (2.0, 0.2)]
    grid = stored[stored["grid"] == "pd x rho"]
    assert sorted(heat["value"]) == pytest.approx(sorted(grid["el_pct"]), rel=1e-12)
    assert at.query_params["set"] == [str(with_set.set_id)] or \
        at.query_params["set"] == str(with_set.set_id)


def test_the_measures_read_as_percentages_under_their_own_headers(with_set) -> None:
    # the table held percent points (1.47 for 1.47%) under "Pool EL (% of balance), CNY",
    # two decimals or three by Streamlit's whim, and a measure below 1.5 points read as a
    # share ("147.00%"); the heat map's cells 1.470 without a unit. Now the stored shares,
    # each written to 0.01% under the measure's header, and the cells as the table
    import json

    import pyarrow as pa

    from dashboards import ui

    at = page("scenarios", "treasury", query={"set": str(with_set.set_id)})
    no_errors(at)
    d = next(d for d in at.dataframe if "Pool EL (% of balance)" in d.value.columns)
    config = json.loads(d.proto.columns)
    text = pa.ipc.open_stream(d.proto.arrow_data.styler.display_values).read_pandas()
    measures = [c for c in d.value.columns if c not in ("Scenario", "Changes vs base")]
    assert measures == ["Pool EL (% of balance)", "Pool ES 99.9% (% of balance)"]  # no deal
    for col in measures:
        assert config[col]["label"] == col  # no unit added to a header written for a person
        assert config[col]["type_config"].get("format") is None
        assert list(text[col]) == [ui.number_text(x, "percent") for x in d.value[col]], col
    heat = next(d for d in at.dataframe if "value" in d.value.columns)
    config = json.loads(heat.proto.columns)
    text = pa.ipc.open_stream(heat.proto.arrow_data.styler.display_values).read_pandas()
    assert config["PD ×"]["label"] == "PD ×" and config["ρ"]["label"] == "ρ"
    assert list(text["PD ×"]) == [f"{x:.3f}" for x in heat.value["PD ×"]]  # multipliers
    assert list(text["value"]) == [ui.number_text(x, "percent") for x in heat.value["value"]]
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    layers = spec.get("layer", [spec])
    formats = [layer["encoding"]["text"]["format"] for layer in layers
               if "text" in layer.get("encoding", {})]
    assert formats == [".2%"]


def test_another_measure_recolours_the_heat_map(with_set) -> None:
    at = page("scenarios", "treasury")
    at.selectbox(key="scenario_measure").set_value("es_999_pct").run()
    no_errors(at)
    heat = frame_with(at, "value")
    grid = with_set.results[with_set.results["grid"] == "pd x rho"]
    assert sorted(heat["value"]) == pytest.approx(sorted(grid["es_999_pct"]), rel=1e-12)


def test_a_partner_is_told_sets_are_for_treasury(with_set) -> None:
    at = page("scenarios", f"partner:{PARTNER}")
    no_errors(at)
    assert any("treasury" in i.value for i in at.info)
    assert not at.dataframe


LOAN_SET = """
[set]
name = "loan set"
seed = 3
paths = 200
engine = "loan"

[[scenario]]
name = "base"
"""


def test_the_caption_names_the_engine_and_the_loan_engines_sampler(with_set, writable_book,
                                                                   tmp_path) -> None:
    at = page("scenarios", "treasury", query={"set": str(with_set.set_id)})
    no_errors(at)
    caption = " ".join(c.value for c in at.caption)
    assert "hazard model, granular engine (sampler granular-lanes-v1)." in caption
    set_file = tmp_path / "loan.toml"
    set_file.write_text(LOAN_SET, encoding="utf-8")
    res = run_scenario_set(writable_book.db, writable_book.pool_id,
                           save_assumptions(assumptions(), tmp_path / "b.toml"), set_file)
    at = page("scenarios", "treasury", query={"set": str(res.set_id)})
    no_errors(at)
    caption = " ".join(c.value for c in at.caption)
    assert "hazard model, loan engine (sampler subset-binomial-v1)." in caption
