"""The pages' tables show the workbooks' human headers (``dashboards.labels``) with the
glossary as the header's tooltip, while the data keep the library's column names: read from
the table's column configuration (what the browser receives), not from rendered text."""

from __future__ import annotations

import json
import re

import numpy as np
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
    # no preset format (Streamlit's "percent" drops trailing zeros, a printf format keeps
    # the sign of a negative zero): the text from the table's Styler
    # (test_every_number_in_a_table_reads_by_one_rule)
    assert config["loss_pct"]["type_config"].get("format") is None
    assert config["loss"]["type_config"].get("format") is None
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
    assert list(text["balance"]) == [f"{x:,.2f}" for x in frame["balance"]]
    # the numbers are the library's: the product groups of book_summary, then the book
    con = duckdb.connect(os.environ["RISKPOOL_DB"], read_only=True)
    try:
        groups = book_summary(con).groups
    finally:
        con.close()
    want = groups[groups["dimension"] == "product"].set_index("group")
    for _, row in frame[frame["group"] != "total"].iterrows():
        assert row["wa_apr"] == want.loc[row["group"], "wa_apr"]
    # amounts to the cent with separators (the Styler's text above), counts with separators
    # (57,288, not 57288)
    assert config["balance"]["type_config"].get("format") is None
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
                assert list(text[col]) == [ui.MISSING if pd.isna(x)
                                           else ui.number_text(x, "percent")
                                           for x in frame[col]], (name, col)
                checked += 1
    assert checked >= 10


def _cells(shown) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """The text of each cell of a Styler (what the grid shows), by column name."""
    rows = [line.split("|") for line in shown.hide(axis="index").to_string(
        delimiter="|").splitlines()]
    return {name: [row[j] for row in rows[1:]] for j, name in enumerate(rows[0])}


def test_table_formats_without_a_page() -> None:
    # every float column written by the Styler (no preset format): a share to 0.01%, an
    # amount to the cent with separators, another number to three decimals; a count with
    # separators; an id and a text column as they are; the frame's numbers unchanged
    frame = pd.DataFrame({"group": ["a", "total"], "loans": [57288, 87235],
                          "pool_id": [1, 2], "balance": [-1234.5, 495063999.14],
                          "wa_apr": [0.1288, 0.13], "tranche_exposure": [0.0, 0.0],
                          "wal_mean": [1.25, 0.5]})
    shown, config = ui.table_display(frame)
    assert shown.data is frame
    for col in ("balance", "wa_apr", "tranche_exposure", "wal_mean"):
        assert config[col]["type_config"].get("format") is None, col
    assert config["loans"]["type_config"]["format"] == "%,d"
    assert config["pool_id"].get("type_config", {}).get("format") is None
    # an amount column of zeros (a partner's tranche exposure) reads 0.00 as the other amounts
    assert config["tranche_exposure"]["label"] == "Tranche exposure, CNY"
    cells = _cells(shown)
    assert cells["tranche_exposure"] == ["0.00", "0.00"]
    assert cells["wa_apr"] == ["12.88%", "13.00%"]
    assert cells["balance"] == ["-1,234.50", "495,063,999.14"]
    assert cells["wal_mean"] == ["1.250", "0.500"]  # not "1.25" beside "0.5"
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
    shown, config = ui.table_display(frame)
    for col, title in (("dpd30_ratio", "30+ DPD, %"), ("p_breach", "Breach probability, %"),
                       ("wa_apr", "WA APR, %")):
        assert config[col]["label"] == title
        assert config[col]["type_config"].get("format") is None, col  # the Styler's text
        assert _cells(shown)[col] == [f"{x:.2%}" for x in frame[col]], col
    assert _cells(shown)["dpd30_ratio"] == ["0.00%", "0.00%"]
    assert _cells(shown)["tranche_exposure"] == ["0.00", "0.00"]
    assert config["loans"]["type_config"]["format"] == ui.COUNT_FORMAT
    # an EL of zeros may be CNY: no unit is guessed from "el" alone ...
    assert config["el"]["label"] == "EL" and _cells(shown)["el"] == ["0.000", "0.000"]
    # ... until the table says it is a share
    shown, config = ui.table_display(frame, shares=["el"])
    assert config["el"]["label"] == "EL, % of balance"
    assert config["el"]["type_config"].get("format") is None
    assert _cells(shown)["el"] == ["0.00%", "0.00%"]


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


# the three ways a table writes a number (dashboards.ui.number_text)
NUMBER_TEXT = {"percent": re.compile(r"-?\d{1,3}(,\d{3})*\.\d\d%"),
               "amount": re.compile(r"-?\d{1,3}(,\d{3})*\.\d\d"),
               "number": re.compile(r"-?\d{1,3}(,\d{3})*\.\d\d\d")}
NEGATIVE_ZERO = re.compile(r"-0(\.0+)?%?")


def test_every_number_in_a_table_reads_by_one_rule() -> None:
    # every page's tables, as treasury and as a partner: each float column, and each column
    # of numbers written as text around its gaps, reads one way down the column — a share
    # to 0.01% ("13.00%"), an amount to the cent with separators ("-5,643,951.14") or any
    # other number to three decimals ("1.351") — and never as a negative zero. Were: a
    # reconciliation's float noise (-2e-14) "-0.00" and a tail share of -2e-16 "-0.00%"
    # (printf keeps the sign), a WAL "1.6824" beside "1.63538" around the total row's gaps
    # and "1.351" in the next table (Streamlit's "localized" trims trailing zeros)
    seen: dict[str, int] = {"percent": 0, "amount": 0, "number": 0}
    for role in ("treasury", f"partner:{PARTNER}"):
        for name in PAGES:
            at = page(name, role)
            for d in at.dataframe:
                frame = d.value
                config = json.loads(d.proto.columns)
                raw = d.proto.arrow_data.styler.display_values
                text = pa.ipc.open_stream(raw).read_pandas() if raw else None
                for col in frame.columns:
                    conf = config.get(str(col))
                    if conf is None:  # an editor's input (not ui.table)
                        continue
                    series = frame[col]
                    if pd.api.types.is_float_dtype(series):
                        assert conf["type_config"].get("format") is None, (name, col)
                        assert text is not None, (name, col)
                        cells = [t for t, x in zip(text[col], series, strict=True)
                                 if not pd.isna(x)]
                        values = [float(x) for x in series if not pd.isna(x)]
                    elif conf.get("alignment") == "right":  # numbers as text (gaps)
                        cells = [t for t in series if t != ui.MISSING]
                        values = None
                    else:
                        continue
                    if not cells:
                        continue
                    where = (role, name, col, cells[:4])
                    assert not any(NEGATIVE_ZERO.fullmatch(c) for c in cells), where
                    hows = [how for how, rx in NUMBER_TEXT.items()
                            if all(rx.fullmatch(c) for c in cells)]
                    assert len(hows) == 1, where
                    if values is not None:  # the library's numbers, written by the rule
                        assert cells == [ui.number_text(x, hows[0]) for x in values], where
                    seen[hows[0]] += 1
    assert min(seen.values()) >= 3, seen


def test_number_text_has_no_negative_zero_and_fixed_decimals() -> None:
    assert ui.number_text(-2.3e-14, "amount") == "0.00"
    assert ui.number_text(-2.2e-16, "percent") == "0.00%"
    assert ui.number_text(-0.004, "amount") == "0.00"
    assert ui.number_text(-0.005001, "amount") == "-0.01"
    assert ui.number_text(-5643951.144, "amount") == "-5,643,951.14"
    assert ui.number_text(12.5, "percent") == "1,250.00%"
    assert ui.number_text(1.6824, "number") == "1.682"
    assert ui.number_text(7.0, "number") == "7.000"


def test_numbers_around_gaps_read_as_the_rest_of_the_table() -> None:
    # a cash-flow tape's shortfall is CNY: its zeros read 0.00 beside the other amounts (was
    # "0" under "Shortfall"); a WAL around the total row's gap reads to three decimals (was
    # six significant digits, "1.6824" beside "1.63538")
    frame = pd.DataFrame({"item": ["A", "servicer"], "shortfall": [0.0, np.nan],
                          "due": [12553.96, 1612.68], "wal_mean": [1.6824, np.nan]})
    shown = ui.with_missing_shown(frame)
    assert list(shown["shortfall"]) == ["0.00", ui.MISSING]
    assert list(shown["wal_mean"]) == ["1.682", ui.MISSING]
    _, config = ui.table_display(frame, show_missing=True)
    assert config["shortfall"]["label"] == "Shortfall, CNY"
    assert config["shortfall"]["alignment"] == "right"


def test_a_gap_in_a_styled_table_reads_as_a_dash() -> None:
    # the Partners page's rule checks (a Styler highlighting breaches): a pool-wide check
    # has no party, which read "nan"
    at = page("partners", "treasury")
    frame, _config, text = _shown(at, "ok")
    assert text is not None
    gaps = frame["party"].isna()
    assert gaps.any()
    assert set(text.loc[gaps, "party"]) == {ui.MISSING}
    assert list(text.loc[~gaps, "party"]) == list(frame.loc[~gaps, "party"])


def test_shares_whose_names_say_nothing_read_as_percentages() -> None:
    # the Book page's roll-rate table (each state's column: the share of a bucket's balance
    # found there a month later) read 0.932704 and 0.019; the calibration anchors' values
    # (30+ DPD ratio, default rate) 0.021
    at = page("book", "treasury")
    frame, config, text = _shown(at, "roll_forward")
    assert text is not None
    for col, title in (("current", "Current, %"), ("M1", "M1, %"), ("M3", "M3, %"),
                       ("default", "Default, %"), ("prepaid", "Prepaid, %"),
                       ("roll_forward", "Roll forward, %")):
        assert config[col]["label"] == title
        assert list(text[col]) == [ui.MISSING if pd.isna(x) else ui.number_text(x, "percent")
                                   for x in frame[col]], col
    assert text.loc[frame["from_bucket"] == "current", "current"].iloc[0].endswith("%")
    frame, config, text = _shown(at, "figure")
    assert text is not None
    assert list(text["value"]) == [ui.MISSING if pd.isna(x) else ui.number_text(x, "percent")
                                   for x in frame["value"]]


def test_capital_positions_read_their_points_and_weights_as_percentages() -> None:
    # the Dispersion page's securitisation positions: attachment 0.11, detachment 1, K
    # 0.127015 and a risk weight of 12.5 (1250%, as the README and SEC-IRBA say it)
    at = page("dispersion", "treasury")
    frame, config, text = _shown(at, "risk_weight")
    assert text is not None
    for col in ("attachment", "detachment", "k", "risk_weight"):
        assert config[col]["label"].endswith(", %"), col
        assert list(text[col]) == [ui.number_text(x, "percent") for x in frame[col]], col
    assert "1,250.00%" in set(text["risk_weight"])  # the B and Sub classes at 1250%
    # the share of EL and of the 99.9% tail that left: of the pool's, not "% of balance"
    frame, config, _ = _shown(at, "el_share_left")
    assert config["el_share_left"]["label"] == "EL left the platform, %"
    assert config["tail_share_left"]["label"] == "99.9% tail left the platform, %"


def test_a_multiplier_named_like_a_share_stays_a_number() -> None:
    # a scenario grid's factors: PD ×1.5 named "PD ×" read "150.00%" (pd names a share)
    frame = pd.DataFrame({"PD ×": [1.0, 1.5], "recovery ×": [0.8, 1.0], "ρ": [0.05, 0.1],
                          "value": [0.0139, 0.0211]})
    shown, config = ui.table_display(frame, shares=["value"], numbers=["PD ×", "recovery ×"])
    cells = _cells(shown)
    assert cells["PD ×"] == ["1.000", "1.500"] and cells["recovery ×"] == ["0.800", "1.000"]
    assert cells["value"] == ["1.39%", "2.11%"]
    assert [config[c]["label"] for c in frame.columns] == ["PD ×", "recovery ×", "ρ", "Value"]
