"""Reports: the report history and the download of each file."""

from __future__ import annotations

import json

import streamlit as st

from dashboards import access, ui

v = ui.viewer()
st.title("Reports")
hist = ui.guard(ui.report_history, *ui.args(v))
if not len(hist):
    st.info("No report yet: `riskpool report --db DB --as-of DATE --out DIR`.")
    st.stop()
ui.table(hist.drop(columns=["summary"]))
ids = [int(x) for x in hist["run_id"]]
rid = st.selectbox("Report", ids, index=0, key="report_id")
row = hist[hist["run_id"] == rid].iloc[0]
summary = json.loads(row["summary"]) if isinstance(row["summary"], str) else row["summary"]
for name in sorted((summary or {}).get("files", {})):
    data = ui.guard(access.report_file, ui.db_path(), v, rid, name)
    mime = "text/html" if name.endswith(".html") else (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    st.download_button(f"Download {name}", data, name, mime, key=f"dl_{rid}_{name}")
