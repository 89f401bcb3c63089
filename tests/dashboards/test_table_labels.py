"""The pages' tables show the workbooks' human headers (``dashboards.labels``) with the
glossary as the header's tooltip, while the data keep the library's column names: read from
the table's column configuration (what the browser receives), not from rendered text."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pytest
from pages_helpers import PAGES, PARTNER, page

from dashboards import labels, ui

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
    # shares: no preset format (Streamlit's "percent" drops trailing zeros), the text from
    # the table's Styler (test_percentages_read_to_two_decimals_on_every_row)
    assert config["loss_pct"]["type_config"].get("format") is None
    assert config["loss"]["type_config"]["format"] == ui.AMOUNT_FORMAT
    assert config["se"]["help"] == f"SE: {labels.GLOSSARY['SE']}"
    assert "help" not in config["measure"] or not config["measure"]["help"]


def test_tranche_table_headers_name_their_glossary_terms() -> None:
    at = page("tranches", "treasury")
    frame, config = _table(at, "wal_mean")
    for name in ("el", "wal_mean", "ce"):
        assert name in frame.columns
    assert config["wal_mean"]["label"] == "WAL mean, years"
    assert config["ce"]["label"] == "CE, %"
    # a class's EL is a share of its balance, a column of zeros too (the page says so)
    assert config["el"]["label"] == "EL, % of balance"
    for name, term in (("wal_mean", "WAL"), ("ce", "CE"), ("el", "EL")):
        assert config[name]["help"].startswith(f"{term}: {labels.GLOSSARY[term]}")


def test_loss_table_levels_read_as_percentages_and_el_has_none() -> None:
    # the Simulation page's loss table: VaR/ES levels 0.95, 0.99, 0.999 read 95.00%, 99.00%,
    # 99.90% (as `riskpool runs show` prints 95%, 99%, 99.9%), and EL has no level: a dash,
    # not "None"; the workbooks format the column as a percentage too
    from dashboards.xlsx import column_kind

    at = page("simulation", "treasury")
    frame, _config = _table(at, "measure")
    assert frame.loc[frame["measure"] == "EL", "level"].tolist() == ["—"]
    assert frame.loc[frame["measure"] == "VaR", "level"].tolist() == ["95.00%", "99.00%",
                                                                      "99.90%"]
    assert column_kind("level", pd.Series([float("nan"), 0.95, 0.999])) == "percent"


def _shown(at, column: str):  # type: ignore[no-untyped-def]
    """The table holding ``column``: its data (the library's numbers), its column
    configuration and the text each cell shows in the browser (the Styler's display values;
    a table passed without one has none)."""
    for d in at.dataframe:
        if column in d.value.columns:
            raw = d.proto.arrow_data.styler.display_values
            text = pa.ipc.open_stream(raw).read_pandas() if raw else None
            return d.value, json.loads(d.proto.columns), text
    raise AssertionError(f"no table with {column!r}")


def test_percentages_read_to_two_decimals_on_every_row() -> None:
    # the Book page's mix table: the total row's WA APR read "13%" and its share "100%"
    # beside "12.88%" (Streamlit's "percent" preset drops trailing zeros); every share now
    # shows two decimals, the data keeping the library's numbers
    import os

    import duckdb

    from portfolio.book.analytics import book_summary

    at = page("book", "treasury")
    frame, config, text = _shown(at, "wa_apr")
    assert text is not None, "the shares' text is not set: Streamlit's preset shows them"
    assert frame["group"].iloc[-1] == "total"
    for col in ("balance_share", "wa_apr", "dpd30_ratio"):
        assert config[col]["type_config"].get("format") is None, col  # the Styler's text
        assert list(text[col]) == [f"{x:.2%}" for x in frame[col]], col
    assert text["balance_share"].iloc[-1] == "100.00%"
    # the numbers are the library's: the product groups of book_summary, then the book
    con = duckdb.connect(os.environ["RISKPOOL_DB"], read_only=True)
    try:
        groups = book_summary(con).groups
    finally:
        con.close()
    want = groups[groups["dimension"] == "product"].set_index("group")
    for _, row in frame[frame["group"] != "total"].iterrows():
        assert row["wa_apr"] == want.loc[row["group"], "wa_apr"]
    # amounts to the cent with separators, counts with separators (57,288, not 57288)
    assert config["balance"]["type_config"]["format"] == ui.AMOUNT_FORMAT == "%,.2f"
    assert config["loans"]["type_config"]["format"] == ui.COUNT_FORMAT == "%,d"


def test_every_table_shows_its_shares_to_two_decimals() -> None:
    # every page's tables: each share column (column_kind "percent") has no preset format and
    # the text of each of its cells is the number to 0.01% (or the gap's dash)
    from dashboards.xlsx import column_kind

    checked = 0
    for name in PAGES:
        at = page(name, "treasury")
        for d in at.dataframe:
            frame = d.value
            config = json.loads(d.proto.columns)
            raw = d.proto.arrow_data.styler.display_values
            text = pa.ipc.open_stream(raw).read_pandas() if raw else None
            for col in frame.columns:
                if (not pd.api.types.is_float_dtype(frame[col])
                        or column_kind(str(col), frame[col]) != "percent"
                        or str(col) not in config):  # an editor's input (not ui.table)
                    continue
                assert config[str(col)]["type_config"].get("format") is None, (name, col)
                assert text is not None, (name, col)
                assert list(text[col]) == [ui.MISSING if pd.isna(x) else f"{x:.2%}"
                                           for x in frame[col]], (name, col)
                checked += 1
    assert checked >= 10


def test_table_formats_without_a_page() -> None:
    # a share column: no preset format, a Styler writing it to 0.01%; an amount and a count
    # with separators; an id and a text column as they are; the frame's numbers unchanged
    frame = pd.DataFrame({"group": ["a", "total"], "loans": [57288, 87235],
                          "pool_id": [1, 2], "balance": [-1234.5, 495063999.14],
                          "wa_apr": [0.1288, 0.13], "tranche_exposure": [0.0, 0.0],
                          "wal_mean": [1.25, 0.5]})
    shown, config = ui.table_display(frame)
    # an amount column of zeros (a partner's tranche exposure) reads 0.00 as the other amounts
    assert config["tranche_exposure"]["label"] == "Tranche exposure, CNY"
    assert config["tranche_exposure"]["type_config"]["format"] == "%,.2f"
    assert config["wal_mean"]["type_config"]["format"] == "localized"
    assert shown.data is frame
    assert config["wa_apr"]["type_config"].get("format") is None
    assert config["balance"]["type_config"]["format"] == "%,.2f"
    assert config["loans"]["type_config"]["format"] == "%,d"
    assert config["pool_id"].get("type_config", {}).get("format") is None
    cells = [line.split("|") for line in shown.hide(axis="index").to_string(
        delimiter="|").splitlines()]
    at = cells[0].index("wa_apr")
    assert [row[at] for row in cells] == ["wa_apr", "12.88%", "13.00%"]
    assert shown.data["wa_apr"].tolist() == [0.1288, 0.13]


def test_large_amounts_in_a_metric_are_short() -> None:
    # the Book page's balance metric read "495,063,…" (cut off in its column): from a million
    # an amount is shown in millions or billions to two decimals, below it to the yuan
    assert ui.money_short(495_063_999.14) == "495.06 m"
    assert ui.money_short(1_234_567_890.0) == "1.23 bn"
    assert ui.money_short(999_999_999.0) == "1.00 bn"  # not "1,000.00 m"
    assert ui.money_short(999_996.0) == "1.00 m"
    assert ui.money_short(-2_500_000.0) == "-2.50 m"
    assert ui.money_short(3_588.6) == "3,589"
    assert ui.money_short(0.0) == "0"


def test_a_share_column_of_zeros_reads_as_percentages() -> None:
    # a share whose values are all 0 read "0" beside "0.00%" in the other share columns: a
    # column is a share by its name (dpd30_ratio, p_breach), or because the table says so
    # (a class's EL, an amount in CNY in other tables); amounts and counts of zeros unchanged
    frame = pd.DataFrame({"group": ["a", "total"], "dpd30_ratio": [0.0, 0.0],
                          "p_breach": [0.0, 0.0], "el": [0.0, 0.0], "wa_apr": [0.13, 0.12],
                          "tranche_exposure": [0.0, 0.0], "loans": [0, 0]})

    def cells(shown):  # type: ignore[no-untyped-def]
        rows = [line.split("|") for line in shown.hide(axis="index").to_string(
            delimiter="|").splitlines()]
        return {name: [row[j] for row in rows[1:]] for j, name in enumerate(rows[0])}

    shown, config = ui.table_display(frame)
    for col, title in (("dpd30_ratio", "30+ DPD, %"), ("p_breach", "Breach probability, %"),
                       ("wa_apr", "WA APR, %")):
        assert config[col]["label"] == title
        assert config[col]["type_config"].get("format") is None, col  # the Styler's text
        assert cells(shown)[col] == [f"{x:.2%}" for x in frame[col]], col
    assert cells(shown)["dpd30_ratio"] == ["0.00%", "0.00%"]
    assert config["tranche_exposure"]["type_config"]["format"] == ui.AMOUNT_FORMAT
    assert config["loans"]["type_config"]["format"] == ui.COUNT_FORMAT
    # an EL of zeros may be CNY: no unit is guessed from "el" alone ...
    assert config["el"]["label"] == "EL" and config["el"]["type_config"]["format"] == "localized"
    # ... until the table says it is a share
    shown, config = ui.table_display(frame, shares=["el"])
    assert config["el"]["label"] == "EL, % of balance"
    assert config["el"]["type_config"].get("format") is None
    assert cells(shown)["el"] == ["0.00%", "0.00%"]


def test_a_partners_book_mix_shows_its_zero_dpd_ratios_as_percentages() -> None:
    # the demo partner's loans were all current at cut-off: its 30+ / 90+ DPD ratios are 0
    # on every row, which read "0" under "30+ DPD" while WA APR read "12.64%"
    at = page("book", f"partner:{PARTNER}")
    frame, config, text = _shown(at, "dpd30_ratio")
    assert (frame["dpd30_ratio"] == 0).all() and (frame["dpd90_ratio"] == 0).all()
    assert text is not None
    for col, title in (("dpd30_ratio", "30+ DPD, %"), ("dpd90_ratio", "90+ DPD, %")):
        assert config[col]["label"] == title
        assert config[col]["type_config"].get("format") is None
        assert list(text[col]) == ["0.00%"] * len(frame)


def test_tranche_losses_and_breach_probabilities_of_zero_read_as_percentages() -> None:
    # the test book's run: no path breaches a trigger and no class loses; the trigger table's
    # probabilities and the class table's losses read 0.00%, as coupon and CE beside them
    at = page("tranches", "treasury")
    frame, config, text = _shown(at, "p_breach")
    assert (frame["p_breach"] == 0).all()
    assert text is not None
    for col in ("p_breach", "p_in_force"):
        assert config[col]["label"].endswith(", %")
        assert list(text[col]) == ["0.00%"] * len(frame), col
    frame, config, text = _shown(at, "el_se")
    assert text is not None and (frame["el"] == 0).all()
    assert config["el"]["label"] == "EL, % of balance"
    assert list(text["el"]) == ["0.00%"] * len(frame)
    assert config["loss_q99"]["label"] == "Loss 99th percentile, % of balance"
    # the classes' rows, then the notes' total, which leaves empty what does not add
    classes = frame["tranche"] != "total"
    for col in ("el_se", "pd", "loss_q95", "loss_q99", "loss_q999"):
        assert list(frame.loc[classes, col]) == ["0.00%"] * int(classes.sum()), col


def test_integers_held_as_objects_read_as_counts() -> None:
    # the store lists a run's path count as Python ints in an object column: the table took
    # it for text and showed "10000"; it is now a count with separators, an id stays plain
    frame = pd.DataFrame({"run_id": [4, 1], "pool_id": pd.Series([1, 1], dtype=object),
                          "n_paths": pd.Series([10000, 500], dtype=object),
                          "seed": pd.Series([7, None], dtype=object),
                          "label": pd.Series(["big", ""], dtype=object)})
    shown, config = ui.table_display(frame)
    assert config["n_paths"]["type_config"]["format"] == ui.COUNT_FORMAT == "%,d"
    assert config["n_paths"]["label"] == "Paths"  # as the run's metric, not "N paths"
    for col in ("run_id", "pool_id", "seed", "label"):
        assert config[col].get("type_config", {}).get("format") is None, col
    assert list(shown["n_paths"]) == [10000, 500]  # the numbers unchanged
    assert frame["n_paths"].dtype == object  # the caller's frame too


def test_every_count_column_reads_with_separators() -> None:
    # every page's tables: each integer column is a count with separators ("%,d": loans,
    # paths) or an id, seed or month shown plain (the runs table's paths read "10000")
    from dashboards.xlsx import column_kind

    counts = set()
    for name in PAGES:
        at = page(name, "treasury")
        for d in at.dataframe:
            frame = d.value
            config = json.loads(d.proto.columns)
            for col in frame.columns:
                if not pd.api.types.is_integer_dtype(frame[col]) or str(col) not in config:
                    continue
                fmt = config[str(col)].get("type_config", {}).get("format")
                if column_kind(str(col), frame[col]) == "integer":
                    assert fmt == ui.COUNT_FORMAT, (name, col)
                    counts.add(str(col))
                else:
                    assert fmt is None, (name, col)
    assert {"loans", "n_loans", "n_paths"} <= counts
