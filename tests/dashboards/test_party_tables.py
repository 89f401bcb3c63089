"""The Partners and Dispersion pages' party tables end with their total row, as `riskpool
allocate show` and `riskpool dispersion` print it, and close to it: read from the data the
pages pass to their tables (AppTest), checked against the rows' own sums, the pool's balance
and the CLI's total line. A partner sees its own row and no total (a total would be the other
parties' figures)."""

from __future__ import annotations

import datetime as dt

import pytest
from pages_helpers import PARTNER, frame_with, no_errors, page

from dashboards import access
from dashboards.auth import Viewer
from partners.records import load_allocation
from portfolio.store import open_store

TREASURY = Viewer("t", "treasury")


def _money(x: float) -> str:  # the CLI's amounts (riskpool.commands.partners)
    return f"{x:,.2f}"


def _cli_line(text: str, first: str) -> list[str]:
    for line in text.splitlines():
        if line.split() and line.split()[0] == first:
            return line.split()
    raise AssertionError(f"no line starting {first!r} in:\n{text}")


def test_partners_page_party_table_has_the_cli_total(dashboard_env, cli) -> None:
    at = page("partners", "treasury")
    no_errors(at)
    shown = frame_with(at, "share_of_pool")
    assert shown["party_id"].iloc[-1] == "total"
    body, total = shown.iloc[:-1], shown.iloc[-1]
    with open_store(dashboard_env.db, read_only=True) as store:
        stored = load_allocation(store, dashboard_env.allocation_id)
    pool, pool_loans = float(stored.balance.sum()), len(stored.balance)
    assert total["balance"] == pytest.approx(body["balance"].sum(), rel=1e-12)
    assert total["balance"] == pytest.approx(pool, abs=0.01)
    assert total["share_of_pool"] == pytest.approx(1.0, abs=1e-12)
    assert int(total["loans"]) == pool_loans  # the pool's: a joint loan has several holders
    out = cli("allocate", "show", "--db", dashboard_env.db, "--allocation",
              str(dashboard_env.allocation_id))
    assert out.code == 0, out.err
    cli_total = _cli_line(out.out, "total")
    assert cli_total[1:4] == [_money(total["balance"]), "100.00%", f"{pool_loans:,}"]
    # the loans column does not add up to its total: the page says why, beside the table
    assert int(body["loans"].sum()) > pool_loans
    assert any("joint loan counts once for each of its parties" in c.value for c in at.caption)


def test_dispersion_page_party_and_view_tables_have_their_totals(dashboard_env, cli,
                                                                  tmp_path) -> None:
    at = page("dispersion", "treasury")
    no_errors(at)
    parties = frame_with(at, "capital_irb")
    assert parties["party"].iloc[-1] == "total"
    body, total = parties.iloc[:-1], parties.iloc[-1]
    for col in ("exposure", "loan_exposure", "tranche_exposure", "el", "capital", "rwa"):
        assert total[col] == pytest.approx(body[col].sum(), rel=1e-12), col
    # quantiles do not add: empty, shown as the table's missing mark (ui.MISSING)
    assert total["var_999"] == total["es_999"] == "—"
    views = frame_with(at, "economic_el")
    assert views["party"].iloc[-1] == "total"
    vbody, vtotal = views.iloc[:-1], views.iloc[-1]
    assert vtotal["credit_el"] == pytest.approx(vbody["credit_el"].sum(), rel=1e-12)
    assert vtotal["economic_el"] == pytest.approx(vbody["economic_el"].sum(), rel=1e-12)
    assert vtotal["credit_var_999"] == "—"
    # each party's credit EL is its party-table EL, so both totals agree
    assert vtotal["credit_el"] == pytest.approx(total["el"], rel=1e-12)
    # the CLI's total line for the same run, allocation and stored deal
    deal = tmp_path / "deal.toml"
    deal.write_text(access.stored_deal_toml(dashboard_env.db, TREASURY, dashboard_env.run_id)
                    or "", encoding="utf-8")
    out = cli("dispersion", "--db", dashboard_env.db, "--run", str(dashboard_env.run_id),
              "--allocation", str(dashboard_env.allocation_id), "--structure", deal)
    assert out.code == 0, out.err
    line = _cli_line(out.out, "total")
    assert line[1:4] == [_money(total["exposure"]), _money(total["el"]),
                         _money(total["capital"])]


def test_a_partner_sees_its_own_row_and_no_total(dashboard_env) -> None:
    at = page("partners", f"partner:{PARTNER}")
    no_errors(at)
    shown = frame_with(at, "balance")
    assert list(shown["party_id"]) == [PARTNER]
    at = page("dispersion", f"partner:{PARTNER}")
    no_errors(at)
    assert list(frame_with(at, "capital_irb")["party"]) == [PARTNER]
    assert list(frame_with(at, "economic_el")["party"]) == [PARTNER]


def test_residual_holder_value_is_the_same_in_cli_page_and_report(dashboard_env, cli,
                                                                   tmp_path) -> None:
    # the residual holder's position (the Sub, the initial OC and the reserve) is valued in
    # CNY beside its investment, not priced per unit of the Sub's face: the same columns and
    # figures in `riskpool tranche report`, the Tranches page and the scheduled report
    from dashboards.reports import collect_sections, report_viewer
    from dashboards.xlsx import read_tables

    out = tmp_path / "tranches.xlsx"
    r = cli("tranche", "report", "--db", dashboard_env.db, "--run", str(dashboard_env.run_id),
            "--out", out)
    assert r.code == 0, r.err
    from_cli = read_tables(out, sheet_name="residual_holder").iloc[0]
    at = page("tranches", "treasury")  # the deal stored with the run, 5%
    no_errors(at)
    on_page = frame_with(at, "money_multiple").iloc[0]
    sections = {s.key: s for s in collect_sections(
        dashboard_env.db, report_viewer(None), dt.date.fromisoformat(dashboard_env.as_of))}
    in_report = sections["tranches"].tables["residual_holder"].iloc[0]
    for row in (from_cli, on_page, in_report):
        assert "price" not in row.index
        assert row["present_value"] == pytest.approx(row["pv_to_investment"]
                                                     * row["investment"], rel=1e-12)
        assert row["present_value"] > row["investment"] > row["face"]
    for col in ("investment", "present_value", "pv_to_investment", "money_multiple", "irr"):
        assert on_page[col] == pytest.approx(from_cli[col], rel=1e-9), col
        assert in_report[col] == pytest.approx(from_cli[col], rel=1e-9), col


def test_tranche_table_total_is_the_notes_on_page_and_in_the_cli(dashboard_env, cli,
                                                                 tmp_path) -> None:
    # the classes split the notes: the Tranches page's table ends with their total (size
    # and share of the pool summed, coupon and EL weighted by size, so the total's expected
    # loss in CNY is the classes'), and `riskpool tranche report` writes the same row
    from dashboards.xlsx import read_tables

    at = page("tranches", "treasury")  # the deal stored with the run
    no_errors(at)
    shown = frame_with(at, "wal_mean")
    body, total = shown.iloc[:-1], shown.iloc[-1]
    assert total["tranche"] == "total" and len(body) >= 2
    assert total["size"] == pytest.approx(body["size"].sum(), rel=1e-12)
    assert total["size_share"] == pytest.approx(body["size_share"].sum(), rel=1e-12)
    assert total["el"] * total["size"] == pytest.approx(
        (body["el"] * body["size"]).sum(), rel=1e-9, abs=1e-9)
    # what does not add is empty: shown as the table's missing mark (ui.MISSING)
    assert total["wal_mean"] == total["price"] == "—"
    out = tmp_path / "t.xlsx"
    r = cli("tranche", "report", "--db", dashboard_env.db, "--run", str(dashboard_env.run_id),
            "--out", out)
    assert r.code == 0, r.err
    from_cli = read_tables(out, sheet_name="tranches")
    assert from_cli["tranche"].tolist() == shown["tranche"].tolist()
    for col in ("size", "size_share", "coupon", "el"):
        assert from_cli[col].astype(float).tolist() == pytest.approx(
            shown[col].astype(float).tolist(), rel=1e-9), col


def test_rule_checks_show_each_value_and_limit_in_its_unit(dashboard_env) -> None:
    # the Partners page's rule checks mix units in one column: R1's platform share and the
    # concentrations read 0.30 beside a capacity of 300,000,000.00 and loan counts of 0.00;
    # each row now in its unit — a share to 0.01%, an amount in CNY, loans counted — from
    # the allocation's stored checks
    import json

    import pyarrow as pa

    at = page("partners", "treasury")
    no_errors(at)
    d = next(d for d in at.dataframe if "ok" in d.value.columns)
    text = pa.ipc.open_stream(d.proto.arrow_data.styler.display_values).read_pandas()
    config = json.loads(d.proto.columns)
    assert config["value"]["label"] == "Value" and config["limit"]["label"] == "Limit"
    stored = access.allocation(dashboard_env.db, TREASURY, dashboard_env.allocation_id).checks
    assert list(text["check"]) == list(stored["check"])
    seen = set()
    for i, name in enumerate(stored["check"]):
        for col in ("value", "limit"):
            x = float(stored[col].iloc[i])
            if name in ("capacity", "R2", "R3", "R4"):
                want, unit = f"{x:,.2f} CNY", "CNY"
            elif name.startswith(("concentration.", "R1 ", "yield floor")):
                want, unit = f"{x:.2%}", "share"
            else:
                assert x == int(x), (name, x)  # loans (or breaches) counted
                want, unit = f"{int(x):,}", "count"
            assert text[col].iloc[i] == want, (name, col)
            seen.add(unit)
    assert seen == {"CNY", "share", "count"}
    r1 = list(stored["check"]).index("R1 platform share of joint loans")
    assert text["limit"].iloc[r1] == "30.00%"


def test_breach_amounts_read_in_their_units() -> None:
    # the Partners page's findings and breaches tables mix units in "amount" (an R5 excess
    # in CNY, an R8 or R9 APR gap, an R6 term in months, R1 a share) beside a "unit"
    # column: the column was headed "Amount, CNY" and an APR gap of 0.0035 read "0.00"
    import pandas as pd

    from dashboards import ui

    frame = pd.DataFrame({"rule": ["R5", "R8", "R6", "R1", "forward-flow"],
                          "party": [None, None, None, "platform", None],
                          "amount": [121000.0, 0.0035, 3.0, 0.05, 12.0],
                          "unit": ["CNY", "apr", "months", "share", "loans"],
                          "n_loans": [39, 2, 1, 4, 12]})
    shown = ui.with_amounts_in_units(frame)
    assert list(shown["amount"]) == ["121,000.00 CNY", "0.35%", "3 months", "5.00%", "12"]
    assert "unit" not in shown and list(shown["n_loans"]) == [39, 2, 1, 4, 12]
    _, config = ui.table_display(shown)
    assert config["amount"]["label"] == "Amount"  # no single unit in the header
