"""Book: size and mix, delinquency over time, vintage curves, roll rates, CDR/CPR."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, ui

v = ui.viewer()
st.title("Book")
latest = ui.guard(ui.book_head, *ui.args(v), None)
ends = list(latest.month_ends)
as_of = st.selectbox("As of (month-end)", ends, index=len(ends) - 1, key="book_as_of")
view = latest if as_of == latest.as_of else ui.guard(ui.book_head, *ui.args(v), as_of)
if not v.is_treasury:
    st.caption(f"Your loans only ({v.partner_id}): balances are your share of each loan.")

h = view.headline()
c = st.columns(5)
c[0].metric("Loans outstanding", f"{h['loans']:,}")
c[1].metric("Balance (CNY)", ui.money(h["balance"]))
c[2].metric("WA APR", ui.pct(h["wa_apr"]))
c[3].metric("30+ DPD", ui.pct(h["dpd30_ratio"]))
c[4].metric("90+ DPD", ui.pct(h["dpd90_ratio"]))

dims = [d for d in view.summary["dimension"].unique() if d != "all"]
dim = st.selectbox("Mix by", dims, key="book_dim")
ui.table(view.summary[view.summary["dimension"] == dim])

detail = ui.guard(ui.book_detail, *ui.args(v), view.as_of)
left, right = st.columns(2)
with left:
    st.subheader("Delinquency buckets over time")
    bal_cols = [f"{b}_balance" for b in ("M1", "M2", "M3", "default")]
    st.altair_chart(charts.line_chart(detail.delinquency_by_month, "as_of", bal_cols,
                                      "Delinquent balance by bucket", "CNY"), width="stretch")
    ui.table(detail.delinquency)
with right:
    st.subheader("Vintage curves")
    wide = detail.cumulative_default.drop(columns=["loans", "original_balance"], errors="ignore")
    if charts.all_zero(charts.vintage_long(wide)["value"]):
        st.info(f"No vintage has a default up to {view.as_of:%Y-%m-%d}: every curve would be "
                "flat at 0%. " + ("Your loans were all current when they were allocated to "
                                  "you (cut-off), and none has defaulted since — survivorship, "
                                  "not a zero default rate."
                                  if not v.is_treasury else "The book has no default yet."))
    else:
        st.altair_chart(charts.vintage_chart(wide), width="stretch")

left, right = st.columns(2)
with left:
    st.subheader("Roll rates")
    ui.table(detail.roll_rates)
with right:
    st.subheader("CDR / CPR")
    st.altair_chart(charts.line_chart(detail.rates, "as_of", ["cdr", "cpr"], "Annualised "
                                      "default and prepayment rates", percent=True),
                    width="stretch")
st.subheader("Calibration anchors")
ui.table(view.anchors)
