"""Pools: stored pools and their strats; an eligibility form with live stratification."""

from __future__ import annotations

import streamlit as st

from dashboards import access, ui

v = ui.viewer()
st.title("Pools")
listed = ui.guard(ui.pools, *ui.args(v))
ui.table(listed)

if len(listed):
    ids = [int(x) for x in listed["pool_id"]]
    pool_id = ui.url_select("Pool", ids, "pool", key="pool_id")
    tables = ui.guard(ui.pool_strats, *ui.args(v), pool_id)
    st.subheader(f"Stratification of pool {pool_id}")
    tabs = st.tabs(list(tables))
    for tab, table in zip(tabs, tables.values(), strict=True):
        ui.table(table, container=tab)
else:
    st.info("No pool yet.")

st.divider()
st.subheader("Eligibility (live)")
book = ui.guard(ui.book_head, *ui.args(v), None)
with st.container(border=True):
    a, b, c = st.columns(3)
    score_min = a.slider("Score floor", 350, 950, 600, step=10, key="elig_score_min")
    dpd_max = a.selectbox("Max DPD at cut-off", [0, 30, 60, 90], key="elig_dpd_max")
    terms = b.multiselect("Terms (months)", [3, 6, 9, 12, 18, 24], [3, 6, 9, 12],
                          key="elig_terms")
    rtypes = b.multiselect("Repayment types", ["level_annuity", "equal_principal",
                                               "interest_only", "daily_interest"],
                           ["level_annuity", "equal_principal", "daily_interest"],
                           key="elig_rtypes")
    apr_max = c.slider("APR cap", 0.0, 0.24, 0.24, step=0.01, key="elig_apr_max")
    obligor = c.slider("Largest obligor share", 0.0005, 0.05, 0.001, step=0.0005,
                       format="%.4f", key="elig_obligor")
    region = c.slider("Largest region share", 0.05, 1.0, 0.25, step=0.05, key="elig_region")
criteria = {"eligibility": {"score_min": score_min, "dpd_max": dpd_max, "terms": terms,
                            "repayment_types": rtypes, "apr_max": apr_max},
            "concentration": {"max_obligor_share": obligor, "max_region_share": region}}
preview = ui.guard(ui.preview_pool, *ui.args(v), criteria, book.as_of)
m = st.columns(2)
m[0].metric("Eligible loans", f"{preview.n_loans:,}")
m[1].metric("Cut-off balance (CNY)", ui.money(preview.balance))
with st.expander("Why loans were excluded"):
    ui.table(preview.exclusions)
ptabs = st.tabs(list(preview.strats))
for tab, table in zip(ptabs, preview.strats.values(), strict=True):
    ui.table(table, container=tab)

if v.is_treasury:
    name = st.text_input("Pool name", key="pool_name")
    if st.button("Save as a pool", key="pool_save", disabled=not name or preview.n_loans == 0):
        pid = ui.guard(access.save_pool, ui.db_path(), v, name, criteria, book.as_of)
        st.success(f"Saved pool {pid} ({preview.n_loans:,} loans).")  # the database version
        # changed, so every cached read of it is recomputed on the next run
else:
    st.caption("Saving pools is for treasury users.")
