"""Dispersion: retained vs transferred expected and tail loss, capital per party."""

from __future__ import annotations

import streamlit as st

from dashboards import access, charts, ui

v = ui.viewer()
st.title("Dispersion")
recorded = ui.guard(ui.runs, *ui.args(v))
allocs = ui.guard(ui.allocations, *ui.args(v))
if not len(recorded) or not len(allocs):
    st.info("Dispersion needs a simulation run with an allocation's party split.")
    st.stop()
run_ids = [int(x) for x in recorded["run_id"]]
alloc_ids = [int(x) for x in allocs["allocation_id"]]
a, b, c = st.columns(3)
rid = ui.url_select("Run", run_ids, "run", key="disp_run", container=a, default=0)  # newest
aid = ui.url_select("Allocation", alloc_ids, "allocation", key="disp_alloc", container=b)
examples = ui.guard(access.example_deals, v)
deals = {"(none)": None, **examples}
stored = ui.guard(ui.stored_deal, *ui.args(v), rid)
if stored:
    deals = {"(none)": None, f"stored with run {rid}": stored, **examples}
if not v.is_treasury:  # a partner's positions are the ones treasury stored with the run
    deals = {k: d for k, d in deals.items() if d is None or d == stored}
deal_key = ui.url_select("Securitisation", list(deals), "deal", key="disp_deal", container=c,
                         default=min(1, len(deals) - 1))
view = ui.guard(ui.dispersion, *ui.args(v), rid, aid, deals[deal_key])
st.subheader("Risk per party")
# with the total row, as `riskpool dispersion` (VaR and ES do not add: empty there)
ui.table(view.party_table(), show_missing=True)
charts.altair_chart(charts.bar_chart(view.parties, "party", ["el", "var_999", "capital"],
                                     "Expected loss, 99.9% VaR and capital per party (CNY)"),
                    width="stretch")
st.subheader("Two views per party: credit loss and economic result")
st.caption("Credit loss: defaults − recoveries borne. Economic: cash out − cash in (loan shares "
           "and notes at par, collections, coupons, residual cash, fees); negative = a profit.")
ui.table(view.views_table(), show_missing=True)
if not view.economic_lines.empty:
    with st.expander("Economic result, line by line (means over paths, CNY; + = cash out)"):
        ui.table(view.economic_lines)
if v.is_treasury:
    m = st.columns(3)
    ui.money_metric("Pool EL (CNY)", view.pool_el or 0.0, m[0])
    ui.money_metric("Pool 99.9% VaR (CNY)", view.pool_var_999 or 0.0, m[1])
    m[2].metric("HHI of partners' exposure", f"{(view.hhi_partners or 0.0):.3f}")
    st.subheader("Share that left the balance sheet")
    ui.table(view.headlines)
    charts.altair_chart(charts.bar_chart(view.headlines, "scenario",
                                         ["el_share_left", "tail_share_left"],
                                         "Share of EL and 99.9% tail loss off the platform",
                                         percent=True), width="stretch")
    if not view.reconciliation.empty:
        st.subheader("From the pool's loss to each party")
        st.caption("Each line's EL (mean over paths); the difference closes to the cent on "
                   "every path. 'combined' is the party table above; 'securitisation' the deal "
                   "alone on the whole pool.")
        ui.table(view.reconciliation)
    if not view.srt.empty:
        st.subheader("Significant risk transfer")
        st.caption("Capital is released only where every test passes; otherwise the "
                   "securitised loans stay at IRB (docs/model.md, capital and SRT).")
        ui.table(view.srt)
        st.subheader("Securitisation positions as charged")
        # attachment and detachment points, K and the risk weight (12.5 = 1250%) as shares
        ui.table(view.positions, shares=["attachment", "detachment", "k", "risk_weight"])
else:
    st.caption("Your own position only.")
