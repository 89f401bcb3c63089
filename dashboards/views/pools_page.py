"""Pools: stored pools and their strats; an eligibility form with its stratification (a saved
pool's when the criteria selected one; else live after Preview)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboards import access, criteria_form, ui
from portfolio.loans.types import ALLOWED_TERMS, PRINCIPAL_MAX, SCORE_MAX, SCORE_MIN, RepaymentType

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
st.subheader("Eligibility")
book = ui.guard(ui.book_head, *ui.args(v), None)
d = criteria_form.form_defaults(criteria_form.example_criteria())
book_regions = sorted(book.summary.loc[book.summary["dimension"] == "region", "group"]
                      .astype(str).unique())
regions = sorted({*book_regions, *d["regions_include"], *d["regions_exclude"]})
types = [t.value for t in RepaymentType]


def limit(where: Any, label: str, name: str, key: str, **kwargs: Any) -> Any:
    """A number box for an optional limit: starts at the file's value, can be emptied (no
    limit; a box whose own default is a number could not be)."""
    st.session_state.setdefault(key, d[name])
    return where.number_input(label, value=None, key=key, placeholder="no limit", **kwargs)


# every key of a criteria file (examples/criteria.toml) has a control; the defaults are that
# file's, so the form starts on the demo's pool; an empty box is "no limit"
with st.container(border=True):
    description = st.text_input("Description", d["description"], key="elig_description")
    with st.expander("Credit, delinquency and product", expanded=True):
        a, b, c = st.columns(3)
        score_min = limit(a, "Score floor", "score_min", "elig_score_min", min_value=SCORE_MIN,
                          max_value=SCORE_MAX, step=10)
        dpd_max = a.number_input("Max DPD at cut-off", 0, 10_000, d["dpd_max"], step=1,
                                 key="elig_dpd_max", help="Days past due; 0 = current only.")
        terms = b.multiselect("Terms (months)", list(ALLOWED_TERMS), d["terms"],
                              placeholder="every term", key="elig_terms")
        rtypes = b.multiselect("Repayment types", types, d["repayment_types"],
                               format_func=lambda t: f"{t} ({RepaymentType(t).label})",
                               placeholder="every type", key="elig_rtypes")
        rate = {"min_value": 0.0, "max_value": 1.0, "step": 0.01, "format": "%.4f"}
        apr_min = limit(c, "APR floor (0.18 = 18%)", "apr_min", "elig_apr_min", **rate)
        apr_max = limit(c, "APR cap (0.18 = 18%)", "apr_max", "elig_apr_max", **rate)
    with st.expander("Amounts (CNY)"):
        a, b = st.columns(2)
        cny = {"min_value": 0.0, "max_value": PRINCIPAL_MAX, "step": 100.0, "format": "%.2f"}
        principal_min = limit(a, "Principal from", "principal_min", "elig_principal_min", **cny)
        principal_max = limit(b, "Principal to", "principal_max", "elig_principal_max", **cny)
        balance_min = limit(a, "Cut-off balance from", "balance_min", "elig_balance_min", **cny)
        balance_max = limit(b, "Cut-off balance to", "balance_max", "elig_balance_max", **cny)
    with st.expander("Region and vintage"):
        a, b = st.columns(2)
        regions_include = a.multiselect("Regions included", regions, d["regions_include"],
                                        placeholder="every region", key="elig_regions_include")
        regions_exclude = a.multiselect("Regions excluded", regions, d["regions_exclude"],
                                        placeholder="none", key="elig_regions_exclude")
        st.session_state.setdefault("elig_originated_from", d["originated_from"])
        st.session_state.setdefault("elig_originated_to", d["originated_to"])
        originated_from = b.date_input("Originated from", None, key="elig_originated_from")
        originated_to = b.date_input("Originated to", None, key="elig_originated_to")
    with st.expander("Concentration limits"):
        a, b = st.columns(2)
        obligor = limit(a, "Largest obligor share", "max_obligor_share", "elig_obligor",
                        min_value=0.0001, max_value=1.0, step=0.0005, format="%.4f")
        region = limit(b, "Largest region share", "max_region_share", "elig_region",
                       min_value=0.01, max_value=1.0, step=0.05, format="%.2f")
criteria = criteria_form.criteria_dict({
    "description": description, "score_min": score_min, "dpd_max": dpd_max, "terms": terms,
    "repayment_types": rtypes, "regions_include": regions_include,
    "regions_exclude": regions_exclude, "principal_min": principal_min,
    "principal_max": principal_max, "balance_min": balance_min, "balance_max": balance_max,
    "originated_from": originated_from, "originated_to": originated_to, "apr_min": apr_min,
    "apr_max": apr_max, "max_obligor_share": obligor, "max_region_share": region})
st.session_state["elig_criteria"] = criteria  # the form's criteria, as a criteria file says
# the first render shows a saved pool's figures when the form's criteria selected it (no
# selection); else the selection from the whole book runs on "Preview" (seconds on a million
# loans), and after that live at every change of the form
saved = ui.guard(ui.saved_pool_preview, *ui.args(v), criteria, book.as_of)
if saved is None and not st.session_state.get("elig_live"):
    st.caption("Preview selects the loans these criteria admit from the book at "
               f"{book.as_of} and stratifies them; after that the figures follow the form.")
    st.session_state["elig_live"] = st.button("Preview", key="elig_preview", type="primary")
preview: access.PoolPreview | None = None
if saved is not None:
    st.caption(f"These criteria selected pool {saved[0]}: its figures as saved.")
    preview = saved[1]
elif st.session_state.get("elig_live"):
    preview = ui.guard(ui.preview_pool, *ui.args(v), criteria, book.as_of)
if preview is not None:
    m = st.columns(2)
    m[0].metric("Eligible loans", f"{preview.n_loans:,}")
    ui.money_metric("Cut-off balance (CNY)", preview.balance, m[1])
    with st.expander("Why loans were excluded"):
        ui.table(preview.exclusions)
    ptabs = st.tabs(list(preview.strats))
    for tab, table in zip(ptabs, preview.strats.values(), strict=True):
        ui.table(table, container=tab)

if v.is_treasury:
    name = st.text_input("Pool name", key="pool_name")
    empty = preview is not None and preview.n_loans == 0
    if st.button("Save as a pool", key="pool_save", disabled=not name or empty):
        pid = ui.guard(access.save_pool, ui.db_path(), v, name, criteria, book.as_of)
        n_saved = int(ui.guard(ui.pools, *ui.args(v)).set_index("pool_id").loc[pid, "n_loans"])
        st.success(f"Saved pool {pid} ({n_saved:,} loans).")  # the database version
        # changed, so every cached read of it is recomputed on the next run
else:
    st.caption("Saving pools is for treasury users.")
