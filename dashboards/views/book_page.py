"""Book: size and mix, delinquency over time, vintage curves, roll rates, CDR/CPR."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, ui
from portfolio.book.analytics import ROLL_TO_STATES

v = ui.viewer()
st.title("Book")
latest = ui.guard(ui.book_head, *ui.args(v), None)
ends = list(latest.month_ends)
as_of = st.selectbox("As of (month-end)", ends, index=len(ends) - 1, key="book_as_of")
view = latest if as_of == latest.as_of else ui.guard(ui.book_head, *ui.args(v), as_of)
if not v.is_treasury:
    st.caption(f"Your loans only ({v.partner_id}): balances are your share of each loan.")
# filled once the history is read (it knows which month-ends were reported for part of the
# book): the note `riskpool book summary` prints, here above the figures it qualifies
partial_slot = st.empty()

h = view.headline()
c = st.columns(5)
c[0].metric("Loans outstanding", f"{h['loans']:,}")
ui.money_metric("Balance (CNY)", h["balance"], c[1])
c[2].metric("WA APR", ui.pct(h["wa_apr"]))
c[3].metric("30+ DPD", ui.pct(h["dpd30_ratio"]))
c[4].metric("90+ DPD", ui.pct(h["dpd90_ratio"]))

dims = [d for d in view.summary["dimension"].unique() if d != "all"]
dim = st.selectbox("Mix by", dims, key="book_dim")
ui.table(view.mix(dim))  # the dimension's groups, then their total (the whole book)
regions = view.summary[view.summary["dimension"] == "region"]
if len(regions):  # horizontal bars, the largest share on top: every region's name legible
    charts.altair_chart(charts.concentration_chart(regions, "group", "balance_share",
                                                   f"Region concentration: share of the "
                                                   f"balance at {view.as_of:%Y-%m-%d}"),
                        width="stretch")

detail = ui.guard(ui.book_detail, *ui.args(v), view.as_of)
partial = detail.partial_note(view, choose="pick it under As of")
if partial:  # a month-end whose tape covers part of the book (as `riskpool book summary`)
    partial_slot.warning(partial[0].upper() + partial[1:], icon=":material/warning:")
gaps = ", ".join(f"{m:%Y-%m-%d} ({k:,} of {n:,} loans reported)"
                 for m, n, k in detail.incomplete)
gap_note = (f"Blank, not 0, at month-ends reported for part of the book: {gaps}."
            if gaps else "")
left, right = st.columns(2)
with left:
    st.subheader("Delinquency buckets over time")
    bal_cols = [f"{b}_balance" for b in ("M1", "M2", "M3", "default")]
    charts.altair_chart(charts.line_chart(detail.delinquency_by_month, "as_of", bal_cols,
                                          "Delinquent balance by bucket", "CNY"), width="stretch")
    if len(detail.delinquency_shares):
        charts.altair_chart(charts.line_chart(detail.delinquency_shares, "as_of",
                                              ["M1", "M2", "M3", "default", "dpd30"],
                                              "Delinquency as % of the outstanding balance",
                                              percent=True), width="stretch")
    if gap_note:
        st.caption(gap_note)
    ui.table(detail.delinquency, show_missing=True)  # written off has no share
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
        charts.altair_chart(charts.vintage_chart(wide), width="stretch")

left, right = st.columns(2)
with left:
    st.subheader("Roll rates")
    heat = charts.roll_rate_long(detail.roll_rates, [c for c in ROLL_TO_STATES
                                                     if c in detail.roll_rates])
    if heat.empty:
        st.info("No roll rates: they need the month-end before this one, and this is the "
                "book's first (or no bucket had a balance then).")
    else:
        charts.altair_chart(charts.heatmap_chart(heat, "to_state", "from_bucket", "share",
                                                 "Share of each bucket's balance one month later",
                                                 x_sort=list(ROLL_TO_STATES),
                                                 y_sort=list(heat["from_bucket"].unique())),
                            width="stretch")
    with st.expander("Roll-rate table"):
        # each state's column: the share of the bucket's balance found there a month later
        ui.table(detail.roll_rates, shares=[c for c in (*ROLL_TO_STATES, "roll_forward")
                                            if c in detail.roll_rates])
with right:
    st.subheader("CDR / CPR")
    charts.altair_chart(charts.line_chart(detail.rates, "as_of", ["cdr", "cpr"], "Annualised "
                                          "default and prepayment rates", percent=True),
                        width="stretch")
    if gap_note:
        st.caption(gap_note)
st.subheader("Calibration anchors")
ui.table(view.anchors, shares=["value"])  # every anchor is a ratio (30+ DPD, default rate)
