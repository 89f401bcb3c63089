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
                                   (stored["el_pct"] * 100).reset_index(drop=True),
                                   check_names=False)
    assert len(at.get("vega_lite_chart")) == 1
    heat = frame_with(at, "value")
    # the 2 x 2 grid: PD x against rho, the pool EL of each member in %
    assert sorted(zip(heat["PD"], heat["ρ"], strict=True)) == [(1.0, 0.05), (1.0, 0.2),
                                                               (2.0, 0.05), (2.0, 0.2)]
    grid = stored[stored["grid"] == "pd x rho"]
    assert sorted(heat["value"]) == pytest.approx(sorted(grid["el_pct"] * 100), rel=1e-12)
    assert at.query_params["set"] == [str(with_set.set_id)] or \
        at.query_params["set"] == str(with_set.set_id)


def test_another_measure_recolours_the_heat_map(with_set) -> None:
    at = page("scenarios", "treasury")
    at.selectbox(key="scenario_measure").set_value("es_999_pct").run()
    no_errors(at)
    heat = frame_with(at, "value")
    grid = with_set.results[with_set.results["grid"] == "pd x rho"]
    assert sorted(heat["value"]) == pytest.approx(sorted(grid["es_999_pct"] * 100), rel=1e-12)


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
    assert "hazard model, granular engine." in caption and "sampler" not in caption
    set_file = tmp_path / "loan.toml"
    set_file.write_text(LOAN_SET, encoding="utf-8")
    res = run_scenario_set(writable_book.db, writable_book.pool_id,
                           save_assumptions(assumptions(), tmp_path / "b.toml"), set_file)
    at = page("scenarios", "treasury", query={"set": str(res.set_id)})
    no_errors(at)
    caption = " ".join(c.value for c in at.caption)
    assert "hazard model, loan engine (sampler subset-binomial-v1)." in caption
