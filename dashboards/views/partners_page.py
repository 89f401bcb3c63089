"""Partners: allocation results, rule checks (breaches highlighted), exposure, tape export."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, ui

v = ui.viewer()
st.title("Partners")
listed = ui.guard(ui.allocations, *ui.args(v))
if not len(listed):
    st.info("No allocation visible to you yet (`riskpool allocate`).")
    st.stop()
ids = [int(x) for x in listed["allocation_id"]]
aid = ui.url_select("Allocation", ids, "allocation", key="alloc_id")
view = ui.guard(ui.allocation, *ui.args(v), aid)
st.caption(f"mode {view.mode} · objective {view.objective} · pool {view.pool_id}")
st.subheader("Exposure per party")
ui.table(view.party_table())  # with the total row, as `riskpool allocate show`
if v.is_treasury:
    st.caption("Balance and share of the pool add up to the total row. Loans count each loan "
               "a party holds a share of: a joint loan counts once for each of its parties, so "
               "the parties' loans add up to more than the pool's, which the total row shows.")
charts.altair_chart(charts.bar_chart(view.parties, "party_id", ["balance"], "Balance funded (CNY)"),
                    width="stretch")

st.subheader("Rule checks")
if view.breaches.empty:
    st.success("Every rule and constraint re-checked on the loan-level shares: no breach.")
else:
    st.error(f"{len(view.breaches)} breach(es)")
    ui.table(ui.with_amounts_in_units(view.breaches))  # an amount in its row's unit
if not view.findings.empty:
    st.warning(f"{int(view.findings['n_loans'].sum()):,} pool loan(s) break a loan rule and stay "
               "with the platform (R8: disclosed APR vs cash-flow APR; R9: cap on the cash-flow "
               "APR)")
    ui.table(ui.with_amounts_in_units(view.findings))
if not view.checks.empty and "ok" in view.checks:
    # value and limit in each check's unit: loans counted, CNY, or a share
    checks = ui.with_units(view.checks, view.check_units(), ("value", "limit"))
    styled = checks.style.apply(
        lambda row: ["background-color: #f8d7da" if not row["ok"] else "" for _ in row], axis=1)
    ui.table(styled)

st.subheader("Export a partner's tape")
parties = [p for p in view.parties["party_id"] if p != "platform"] if v.is_treasury \
    else [v.partner_id]
party = ui.url_select("Partner", parties, "partner", key="export_party", default=0)
# the tape is written when the button is clicked (not at every render of the page)
left, right = st.columns(2)
left.download_button(f"Download {party}'s tape (CSV)",
                     lambda: ui.partner_tape_csv(*ui.args(v), aid, party),
                     f"allocation{aid}_{party}.csv", "text/csv", key="export_download")
right.download_button(f"Download {party}'s tape (XLSX)",
                      lambda: ui.partner_tape_xlsx(*ui.args(v), aid, party),
                      f"allocation{aid}_{party}.xlsx",
                      "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                      key="export_download_xlsx")
