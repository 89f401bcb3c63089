"""Simulation: recorded runs (loss histogram with EL/VaR/ES, fan charts), a new stressed run
with a progress bar — recorded in the database as an ordinary run with its label and tags
(treasury only) — and two runs side by side."""

from __future__ import annotations

import streamlit as st

from dashboards import access, charts, ui
from portfolio.montecarlo.assumptions import NAMED_SCENARIOS

v = ui.viewer()
st.title("Simulation")


def show(view: access.RunView) -> None:
    who = f" — {view.party}'s share" if view.party else ""
    c = st.columns(4)
    c[0].metric("Paths", f"{view.n_paths:,}")
    ui.money_metric("EL (CNY)", view.el, c[1])
    top = max(view.var)
    ui.money_metric(f"VaR {top:.1%}", view.var[top], c[2])
    ui.money_metric(f"ES {top:.1%}", view.es[top], c[3])
    if charts.all_zero(view.loss):
        st.info(f"No path loses anything{who} ({view.n_paths:,} paths): EL, VaR and ES are 0, "
                "so there is no loss distribution to draw.")
    else:
        charts.altair_chart(charts.loss_histogram_chart(view.loss, view.el, view.var, view.es,
                                                        f"Loss distribution{who}"),
                            width="stretch")
    ui.table(view.stats, show_missing=True)  # EL has no level; VaR's 0.95 reads 95.00%
    for line in access.thin_tails(view):
        st.warning(line, icon=":material/warning:")
    if view.note:  # a run recorded from summaries: the fans are the monthly means only
        st.info(view.note, icon=":material/summarize:")
    a, b = st.columns(2)
    charts.altair_chart(charts.fan_area_chart(view.balance_fan, "Performing balance"),
                        container=a, width="stretch")
    if charts.fan_is_flat(view.loss_fan):
        b.info("No path has a net loss in any month: the monthly loss fan would be flat at 0.")
    else:
        charts.altair_chart(charts.fan_area_chart(view.loss_fan, "Monthly net loss"),
                            container=b, width="stretch")


recorded = ui.guard(ui.runs, *ui.args(v))
run_ids = [int(x) for x in recorded["run_id"]] if len(recorded) else []
tab_runs, tab_new, tab_cmp = st.tabs(["Recorded runs", "New run", "Compare"])
with tab_runs:
    if run_ids:
        ui.table(recorded)
        # the newest run first (runs are listed newest first), as riskpool report takes it
        rid = ui.url_select("Run", run_ids, "run", key="sim_run", default=0)
        show(ui.guard(ui.run_view, *ui.args(v), rid))
    else:
        st.info("No simulation run visible to you yet (`riskpool simulate` or `riskpool demo`).")

with tab_new:
    if not v.is_treasury:
        st.info("Running pool simulations is for treasury users; your own positions are in "
                "the recorded runs.")
    else:
        pools = ui.guard(ui.pools, *ui.args(v))
        if not len(pools):
            st.info("Create a pool first.")
        else:
            ids = [int(x) for x in pools["pool_id"]]
            files = ui.guard(access.assumption_files, ui.db_path(), v)
            if not files:
                st.info("No assumptions file yet (`riskpool calibrate --out assumptions.toml`).")
                st.stop()
            a, b = st.columns(2)
            pool_id = a.selectbox("Pool", ids, index=len(ids) - 1, key="new_pool")
            a_name = a.selectbox("Assumptions", list(files), key="new_assumptions")
            assumptions = ui.guard(access.load_assumptions_file, ui.db_path(), v, a_name)
            n_paths = a.select_slider("Paths", [500, 1000, 2000, 5000, 10000], 2000,
                                      key="new_paths")
            seed = a.number_input("Seed", 0, 2**31 - 1, 20260630, key="new_seed")
            if st.session_state.get("new_rho_of") != a_name:  # ρ starts at the file's value
                st.session_state["new_rho"] = round(float(assumptions.rho), 3)
                st.session_state["new_rho_of"] = a_name
            for key in ("new_pd", "new_prepay", "new_recovery"):
                st.session_state.setdefault(key, 1.0)

            def preset() -> None:
                scenario = NAMED_SCENARIOS[st.session_state["new_scenario"]]
                st.session_state["new_pd"] = scenario.get("pd_multiplier", 1.0)
                st.session_state["new_prepay"] = scenario.get("smm_multiplier", 1.0)
                st.session_state["new_recovery"] = scenario.get("recovery_multiplier", 1.0)

            b.selectbox("Scenario (presets the sliders)", list(NAMED_SCENARIOS),
                        key="new_scenario", on_change=preset)
            pd_mult = b.slider("PD ×", 0.5, 4.0, step=0.1, key="new_pd")
            rho = b.slider("ρ (factor correlation)", 0.0, 0.5, step=0.001, key="new_rho")
            prepay = b.slider("Prepayment ×", 0.0, 2.0, step=0.1, key="new_prepay")
            recov = b.slider("Recovery ×", 0.0, 2.0, step=0.1, key="new_recovery")
            label = a.text_input("Label", key="new_label", max_chars=200,
                                 placeholder="e.g. June close, adverse PD")
            tags = b.text_input("Tags (optional, separated by spaces)", key="new_tags")
            go = st.button("Run and save", key="new_run", type="primary",
                           help="Runs the simulation and records it in the database as a run "
                           "(like `riskpool simulate`).")
            if go:
                st.button("Cancel", key="new_cancel",
                          help="Stops the run (the page reruns without it; nothing is saved).")
                bar = st.progress(0.0, text="simulating…")
                view = ui.guard(access.record_pool_run, ui.db_path(), v, pool_id, a_name,
                                n_paths=int(n_paths), seed=int(seed), pd_mult=pd_mult, rho=rho,
                                prepay_mult=prepay, recovery_mult=recov, label=label,
                                tags=tuple(tags.split()), progress=ui.progress_callback(bar))
                bar.empty()
                st.session_state["last_saved_run"] = int(view.run_id)
                st.query_params["run"] = str(view.run_id)
                st.session_state.pop("sim_run", None)  # Recorded runs opens on the new run
                st.rerun()  # the runs list and Compare now hold the new run
            elif st.session_state.get("new_cancel"):
                st.warning("Run cancelled; nothing was saved.")
            last = st.session_state.get("last_saved_run")
            if last in run_ids:
                st.success(f"Saved as run {last} (in Recorded runs and Compare).")
                show(ui.guard(ui.run_view, *ui.args(v), int(last)))

with tab_cmp:
    options = [f"run {r}" for r in run_ids]
    if len(options) < 2:
        st.info("Compare needs two recorded runs.")
    else:
        a, b = st.columns(2)
        left = ui.url_select("Run A", options, "a", key="cmp_a", container=a, default=0)
        right = ui.url_select("Run B", options, "b", key="cmp_b", container=b)
        views = [ui.guard(ui.run_view, *ui.args(v), int(name.split()[1]))
                 for name in (left, right)]
        cmp = ui.guard(ui.compare, *ui.args(v), int(left.split()[1]), int(right.split()[1]))
        charts.altair_chart(charts.histogram_chart(
                {f"A: {left}": views[0].loss, f"B: {right}": views[1].loss},
                "Loss distributions (share of each run's paths)", "loss (CNY)", share=True,
                series="run"), width="stretch")
        st.markdown("**Loss measures, B − A** (standard errors: the two runs' in quadrature, "
                    "as for independent seeds; `riskpool runs diff` gives the same table)")
        if cmp.few_paths:
            st.warning(f"{len(cmp.few_paths)} measure(s) rest on fewer than "
                       f"{access.MIN_TAIL_PATHS} paths beyond their quantile — their value is "
                       "a handful of worst paths and their SE says nothing:\n\n"
                       + "\n".join(f"- {line}" for line in cmp.few_paths))
        ui.table(cmp.results, key="cmp_results")
        with st.expander("Inputs of A and B"):
            ui.table(cmp.inputs, key="cmp_inputs")
        for col, name, view in ((a, left, views[0]), (b, right, views[1])):
            with col:
                st.markdown(f"**{name}**")
                charts.altair_chart(charts.fan_area_chart(view.balance_fan, "Performing balance"),
                                    width="stretch")
