"""Tranches: a deal on a run's paths — tranche table, loss distributions, triggers, fans."""

from __future__ import annotations

import streamlit as st

from dashboards import access, charts, ui
from portfolio.errors import RiskpoolError

v = ui.viewer()
st.title("Tranches")
recorded = ui.guard(ui.runs, *ui.args(v))
if not len(recorded):
    st.info("No simulation run visible to you yet.")
    st.stop()
run_ids = [int(x) for x in recorded["run_id"]]
rid = ui.url_select("Run", run_ids, "run", key="tr_run", default=0)  # the newest run
deals = ui.guard(access.example_deals, v)
stored = ui.guard(ui.stored_deal, *ui.args(v), rid)
if stored:
    deals = {f"stored with run {rid}": stored, **deals}
uploaded = st.file_uploader("Load a deal file (TOML)", type=["toml"], key="tr_upload")
if uploaded is not None:
    deals = {f"uploaded: {uploaded.name}": uploaded.getvalue().decode("utf-8"), **deals}
names = list(deals)
deal_name = ui.url_select("Deal", names, "deal", key="tr_deal", default=0)
base_toml = deals[deal_name]
frame = ui.guard(access.deal_tranche_frame, v, base_toml)
junior = str(frame["name"].iloc[-1])
# the last applied deal per (run, deal) and the analysis it gave: an edit is only analysed on
# Apply, and a refused edit leaves both on screen
context = f"{rid}|{deal_name}"
applied: dict[str, str] = st.session_state.setdefault("tr_applied", {})
last_good: dict[str, object] = st.session_state.setdefault("tr_last_good", {})
with st.form("tr_form"):
    st.caption("Edit sizes, coupons and holders, then Apply; the waterfall reruns on the same "
               "paths." if v.is_treasury else "Edit sizes and coupons, then Apply; the "
               "waterfall reruns on your own share of the paths.")
    # a partner never names holders (its frame has no holder column): an edited or uploaded
    # deal runs on its own share only
    edited = st.data_editor(frame, key="tr_editor", hide_index=True, disabled=["name"])
    balance = st.checkbox(f"Auto-balance: size the junior class {junior} as 1 − the other "
                          "classes (and the initial OC)", key="tr_autobalance")
    submitted = st.form_submit_button("Apply", key="tr_apply")
notes = st.container()
discount = st.slider("Discount rate (flat, annual)", 0.0, 0.15, 0.05, 0.005, key="tr_discount")
ratings = {"none": None, **ui.guard(access.example_rating_tables, v)}
rating_up = st.file_uploader("Load a rating table (TOML)", type=["toml"], key="tr_rating_upload")
if rating_up is not None:
    ratings = {f"uploaded: {rating_up.name}": rating_up.getvalue().decode("utf-8"), **ratings}
rating_name = st.selectbox("Rating table (implied ratings; the shipped one is illustrative)",
                           list(ratings), key="tr_rating")


def analyse(deal_toml: str) -> access.TrancheView | str:
    """The analysis of ``deal_toml`` on this run, or why it cannot be made (a known error)."""
    try:
        return ui.tranches(*ui.args(v), rid, deal_toml, discount, ratings[rating_name])
    except (access.AccessDenied, access.DataUpdating):
        raise
    except RiskpoolError as exc:
        return str(exc)


view: access.TrancheView | str = ""
if submitted:
    edit = ui.guard(access.apply_tranche_edit, v, base_toml, edited, auto_balance=balance)
    if edit.deal_toml is None:
        for message in edit.errors:
            notes.error(message, icon=":material/edit_off:")
    else:
        view = analyse(edit.deal_toml)
        if isinstance(view, str):
            notes.error(f"The edited deal cannot run on run {rid}: {view}",
                        icon=":material/edit_off:")
        else:
            applied[context] = edit.deal_toml
            if balance:
                sizes = ", ".join(f"{t.name} {t.size:.6g}"
                                  for t in access.deal_from_text(edit.deal_toml).tranches)
                notes.success(f"Applied with the junior class {junior} balanced: {sizes}.")
if not isinstance(view, access.TrancheView):
    view = analyse(applied.get(context, base_toml))
if isinstance(view, str):
    kept = last_good.get(context)
    if not isinstance(kept, access.TrancheView):
        st.error(view)
        st.stop()
    notes.error(view)
    notes.caption("Showing the last analysis that ran.")
    view = kept
last_good[context] = view
if context in applied:
    st.caption("Showing the applied edit of this deal.")
st.subheader(view.deal_name)
if not v.is_treasury:
    st.caption(f"Waterfall on {view.basis}.")
if view.table.empty:
    st.info(f"{v.partner_id} holds no tranche of this deal.")
    st.stop()
# LGL has no value for a class no path loses on; the total row (the notes) leaves empty
# what does not add
ui.table(view.class_table(), show_missing=True, shares=view.class_shares())
if view.note:  # a run recorded from summaries: its stored tables only
    st.info(view.note, icon=":material/summarize:")
if not view.residual.empty:
    st.markdown("**Residual holder** — the subordinated tranche's holder: its cash includes the "
                "residual; investment = its face + initial OC + the reserve funded at closing; "
                "present value = its expected cash discounted at the chosen rate (CNY), beside "
                "the investment")
    ui.table(view.residual)
if not view.reconciliation.empty:
    st.markdown("**Reconciliation** (CNY, mean / min / max over paths): pool cash in = fees + "
                "classes' interest and principal + purchases + reserve movement + residual; "
                "pool loss = class losses + what the residual holder's cushion absorbed")
    ui.table(view.reconciliation)
    st.markdown("**Excess spread by period** (means over paths, CNY)")
    ui.table(view.excess_spread)
left, right = st.columns(2)
spikes = charts.spike_sentences(view.loss_shares)  # a single spike is a sentence, not a chart
for sentence in spikes.values():
    left.info(sentence)
spread = {k: x for k, x in view.loss_shares.items() if k not in spikes}
if spread:
    charts.altair_chart(charts.histogram_chart(spread, "Tranche loss distributions",
                                               "loss / original balance", series="class",
                                               x_format=".1%"), container=left, width="stretch")
if not view.triggers.empty:
    right.markdown("**Trigger-breach probabilities**")
    ui.table(view.triggers, container=right)
if not view.trigger_metrics.empty:  # CE/OC and loss tests against their trigger levels
    names = list(dict.fromkeys(view.trigger_metrics["trigger"]))
    trig = st.selectbox("Trigger over time", names, key="tr_trigger_chart")
    rows = view.trigger_metrics[view.trigger_metrics["trigger"] == trig]
    charts.altair_chart(charts.trigger_chart(rows, f"{trig}: {rows['metric'].iloc[0]} (mean and "
                                             f"5–95% of the paths) against its level, breach "
                                             f"{rows['breach'].iloc[0]}"), width="stretch")
if not view.credit_enhancement.empty:
    charts.altair_chart(charts.class_ce_chart(view.credit_enhancement, "Credit enhancement by "
                                              "class (mean over the paths; closing, then each "
                                              "month)"),
                        width="stretch")
fan_names = list(view.cashflow_fans)
which = st.selectbox("Cash-flow fan of tranche", fan_names, key="tr_fan") if fan_names else None
if which is None:
    pass  # no per-path cash flows (a run recorded from summaries: the note above says so)
elif charts.fan_is_flat(view.cashflow_fans[which]):
    st.info(f"Tranche {which} receives no cash on any path in any month.")
else:
    charts.altair_chart(charts.fan_area_chart(view.cashflow_fans[which],
                                              f"Monthly cash to tranche {which}"), width="stretch")
if not view.tape.empty:
    st.markdown("**Cash-flow table, expected path** (means over paths, CNY; "
                "`riskpool tranche cashflows`)")
    ui.table(view.tape.dropna(axis=1, how="all"), key="tr_tape", show_missing=True)
