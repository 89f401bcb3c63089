"""Scenario sets (``riskpool scenarios run``): what each member changes, the result table and
a heat map — over a grid's two factors (e.g. PD × against ρ) when the set has such a grid,
else every member against each measure. Treasury only: a set is pool-wide."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import charts, ui
from portfolio.book.scenarios import FACTORS

v = ui.viewer()
st.title("Scenario sets")
if not v.is_treasury:
    st.info("Scenario sets are run on whole pools; they are for treasury users.")
    st.stop()
sets = ui.guard(ui.scenario_sets, *ui.args(v))
if not len(sets):
    st.info("No scenario set yet: `riskpool scenarios run --set examples/scenarios.toml "
            "--pool 1 --assumptions assumptions.toml`.")
    st.stop()
ids = sorted(int(x) for x in sets["set_id"])
names = {int(r.set_id): str(r.name) for r in sets.itertuples()}
sid = st.selectbox("Scenario set", ids, index=ui.pick(ids, ui.query_int("set")),
                   format_func=lambda i: f"{i}: {names[i]}", key="scenario_set")
st.query_params["set"] = str(sid)
rec = ui.guard(ui.scenario_set, *ui.args(v), sid)
res = rec.results
st.caption(f"Pool {rec.pool_id}, {rec.model} model, {rec.engine} engine"
           + (f" (sampler {rec.loan_sampler})" if rec.loan_sampler else "")
           + (f", deal {rec.deal_name}" if rec.deal_name else "")
           + f". Common random numbers: every member drawn from seed {rec.seed} with "
           f"{rec.n_paths:,} paths, so the differences are the assumptions', not sampling noise.")

# the measures, as shares (of the balance, of a class, of paths)
MEASURES: dict[str, str] = {"el_pct": "Pool EL (% of balance)",
                            "es_999_pct": "Pool ES 99.9% (% of balance)"}
for col in res.columns:
    name = str(col)
    if name.startswith("el_") and name not in ("el_se", "el_pct"):
        MEASURES[name] = f"EL of class {name[3:]} (% of the class)"
    elif name.startswith("breakeven_cdr_"):
        MEASURES[name] = f"Breakeven CDR of {name[len('breakeven_cdr_'):]}"
    elif name.startswith("p_breach_"):
        MEASURES[name] = f"Trigger {name[len('p_breach_'):]} breached (% of paths)"

shown = pd.DataFrame({"Scenario": res["scenario"], "Changes vs base": res["changes"]})
for key, label in MEASURES.items():
    shown[label] = res[key]  # the stored shares, shown as percentages to 0.01%
ui.table(shown, key="scenario_results", shares=list(MEASURES.values()))
st.caption(f"Monte Carlo SEs and the CNY amounts: `riskpool scenarios show {sid}`.")

measure = st.selectbox("Heat map of", list(MEASURES), format_func=MEASURES.get,
                       key="scenario_measure")
grids = [g for g in dict.fromkeys(res["grid"]) if g]
two_d = []
for g in grids:
    part = res[res["grid"] == g]
    varying = [k for k in FACTORS if part[k].nunique() > 1]
    if len(varying) == 2:
        two_d.append((g, varying))
label = {k: f"{v_[0]} ×" if k.endswith("_mult") else v_[0] for k, v_ in FACTORS.items()}
if two_d:
    by_name = dict(two_d)
    g = two_d[0][0] if len(two_d) == 1 else st.selectbox("Grid", list(by_name),
                                                         key="scenario_grid")
    fy, fx = by_name[g]
    part = res[res["grid"] == g]
    heat = pd.DataFrame({label[fy]: part[fy], label[fx]: part[fx],
                         "scenario": part["scenario"], "value": part[measure]})
    x = alt.X(f"{label[fx]}:O", title=label[fx], axis=alt.Axis(labelAngle=0))
    y = alt.Y(f"{label[fy]}:O", title=label[fy])
    title = f"{MEASURES[measure]} — grid {g}"
else:
    long = res.melt(id_vars=["scenario"], value_vars=list(MEASURES), var_name="measure_key",
                    value_name="value")
    heat = pd.DataFrame({"scenario": long["scenario"],
                         "measure": long["measure_key"].map(MEASURES),
                         "value": long["value"]})
    x = alt.X("measure:N", title=None, axis=alt.Axis(labelAngle=-20, labelLimit=220))
    y = alt.Y("scenario:N", title=None, sort=list(res["scenario"]))
    title = "Every member against each measure"
base = alt.Chart(heat).encode(x=x, y=y)
rect = base.mark_rect().encode(
    color=alt.Color("value:Q", title=None, scale=alt.Scale(scheme="orangered"),
                    legend=alt.Legend(format=".1%")),
    tooltip=[alt.Tooltip(c, format=".2%" if c == "value" else "") for c in heat.columns])
text = base.mark_text(fontSize=12).encode(  # as the table writes the shares
    text=alt.Text("value:Q", format=".2%"),
    color=alt.condition(alt.datum.value > float(heat["value"].max()) * 0.6,
                        alt.value("white"), alt.value("black")))
charts.altair_chart((rect + text).properties(title=title, height=alt.Step(36)),
                    width="stretch")
with st.expander("Heat map data"):
    ui.table(heat, key="scenario_heat", shares=["value"],
             numbers=[label[k] for k in FACTORS])  # the factors: multipliers and ρ
