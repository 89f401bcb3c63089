"""Tranches: a deal on a run's paths — tranche table, loss distributions, triggers, fans."""

from __future__ import annotations

import streamlit as st

from dashboards import access, charts, ui

v = ui.viewer()
st.title("Tranches")
recorded = ui.guard(ui.runs, *ui.args(v))
if not len(recorded):
    st.info("No simulation run visible to you yet.")
    st.stop()
run_ids = [int(x) for x in recorded["run_id"]]
rid = st.selectbox("Run", run_ids, index=ui.pick(run_ids, ui.query_int("run")), key="tr_run")
deals = access.example_deals()
stored = ui.stored_deal(ui.db_path(), ui.version(), rid)
if stored:
    deals = {f"stored with run {rid}": stored, **deals}
uploaded = st.file_uploader("Load a deal file (TOML)", type=["toml"], key="tr_upload")
if uploaded is not None:
    deals = {f"uploaded: {uploaded.name}": uploaded.getvalue().decode("utf-8"), **deals}
names = list(deals)
deal_name = st.selectbox("Deal", names, key="tr_deal")
base_toml = deals[deal_name]
frame = ui.guard(access.deal_tranche_frame, base_toml)
st.caption("Edit sizes, coupons and holders; the waterfall reruns on the same paths.")
edited = st.data_editor(frame, key="tr_editor", hide_index=True, disabled=["name"])
deal_toml = ui.guard(access.deal_with_tranches, base_toml, edited)
discount = st.slider("Discount rate (flat, annual)", 0.0, 0.15, 0.05, 0.005, key="tr_discount")
view = ui.guard(ui.tranches, *ui.args(v), rid, deal_toml, discount)
st.subheader(view.deal_name)
if view.table.empty:
    st.info(f"{v.partner_id} holds no tranche of this deal.")
    st.stop()
ui.table(view.table)
left, right = st.columns(2)
left.pyplot(charts.histograms(view.loss_shares, "Tranche loss distributions",
                              "loss / original balance"))
if not view.triggers.empty:
    right.markdown("**Trigger-breach probabilities**")
    ui.table(view.triggers, container=right)
fan_names = list(view.cashflow_fans)
which = st.selectbox("Cash-flow fan of tranche", fan_names, key="tr_fan")
st.pyplot(charts.fan_chart(view.cashflow_fans[which], f"Monthly cash to tranche {which}"))
