"""The pages' tables show the workbooks' human headers (``dashboards.labels``) with the
glossary as the header's tooltip, while the data keep the library's column names: read from
the table's column configuration (what the browser receives), not from rendered text."""

from __future__ import annotations

import json

import pytest
from pages_helpers import page

from dashboards import labels

pytestmark = pytest.mark.usefixtures("dashboard_env")


def _table(at, column: str):  # type: ignore[no-untyped-def]
    for d in at.dataframe:
        if column in d.value.columns:
            return d.value, json.loads(d.proto.columns)
    raise AssertionError(f"no table with {column!r}")


def test_simulation_loss_table_has_labels_units_and_glossary_tips() -> None:
    at = page("simulation", "treasury")
    frame, config = _table(at, "loss_pct")
    assert {"measure", "loss", "se", "loss_pct"} <= set(frame.columns)  # data keep names
    shown = {name: c.get("label") for name, c in config.items()}
    assert shown["loss"] == "Loss, CNY" and shown["se"] == "SE, CNY"
    assert shown["loss_pct"] == "Loss share, % of balance"
    assert config["loss_pct"]["type_config"]["format"] == "percent"
    assert config["se"]["help"] == f"SE: {labels.GLOSSARY['SE']}"
    assert "help" not in config["measure"] or not config["measure"]["help"]


def test_tranche_table_headers_name_their_glossary_terms() -> None:
    at = page("tranches", "treasury")
    frame, config = _table(at, "wal_mean")
    for name in ("el", "wal_mean", "ce"):
        assert name in frame.columns
    assert config["wal_mean"]["label"] == "WAL mean, years"
    assert config["ce"]["label"] == "CE, %"
    # a share column carries its unit once it is known to be one (a column of zeros is not)
    assert config["el"]["label"] == ("EL, % of balance" if frame["el"].abs().max() > 0
                                     else "EL")
    for name, term in (("wal_mean", "WAL"), ("ce", "CE"), ("el", "EL")):
        assert config[name]["help"].startswith(f"{term}: {labels.GLOSSARY[term]}")


def test_loss_table_levels_read_as_percentages_and_el_has_none() -> None:
    # the Simulation page's loss table: VaR/ES levels 0.95, 0.99, 0.999 read 95.00%, 99.00%,
    # 99.90% (as `riskpool runs show` prints 95%, 99%, 99.9%), and EL has no level: a dash,
    # not "None"; the workbooks format the column as a percentage too
    import pandas as pd

    from dashboards.xlsx import column_kind

    at = page("simulation", "treasury")
    frame, _config = _table(at, "measure")
    assert frame.loc[frame["measure"] == "EL", "level"].tolist() == ["—"]
    assert frame.loc[frame["measure"] == "VaR", "level"].tolist() == ["95.00%", "99.00%",
                                                                      "99.90%"]
    assert column_kind("level", pd.Series([float("nan"), 0.95, 0.999])) == "percent"
