"""riskpool dashboard — the Streamlit entry point (``riskpool dashboard --db DB``).

Log in (users file with scrypt-hashed passwords, see ``dashboards.auth``), then the pages
Book, Pools, Simulation, Scenario sets, Tranches, Partners, Dispersion and Reports (``st.navigation``). The
database comes from ``RISKPOOL_DB`` (set by ``riskpool dashboard``) and is only ever read
through ``dashboards.access``, which scopes every read to the logged-in user.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboards import auth, ui

st.set_page_config(page_title="riskpool", page_icon=":material/monitoring:", layout="wide")

PAGES = Path(__file__).resolve().parent / "pages"


def login() -> None:
    st.title("riskpool")
    st.caption(f"Treasury dashboard · database `{ui.db_path()}`")
    user = st.text_input("Username", key="login_user")
    password = st.text_input("Password", type="password", key="login_password")
    if st.button("Log in", key="login_submit", type="primary"):
        viewer = auth.authenticate(ui.users_path(), user, password)
        if viewer is None:
            st.error("Unknown user or wrong password.")
        else:
            st.session_state["viewer"] = viewer
            st.rerun()


viewer = st.session_state.get("viewer")
if isinstance(viewer, auth.Viewer) and auth.current_viewer(ui.users_path(), viewer) is None:
    # removed from the users file, or its role changed, since it logged in: log it out
    st.session_state.clear()
    viewer = None
if not isinstance(viewer, auth.Viewer):
    login()
    # load the analytics and chart modules while the login form is shown, so the first page
    # after login does not pay for the imports
    import dashboards.access  # noqa: F401
    import dashboards.charts  # noqa: F401
    import portfolio.book.analytics  # noqa: F401
    import portfolio.montecarlo.simulation  # noqa: F401
    import tranching.analytics  # noqa: F401

    st.stop()

with st.sidebar:
    st.markdown(f"**{viewer.username}** · `{viewer.role}`")
    if st.button("Log out", key="logout"):
        st.session_state.clear()
        st.rerun()

pages = [
    st.Page(PAGES / "book_page.py", title="Book", icon=":material/menu_book:", url_path="book", default=True),
    st.Page(PAGES / "pools_page.py", title="Pools", icon=":material/filter_alt:", url_path="pools"),
    st.Page(PAGES / "simulation_page.py", title="Simulation", icon=":material/casino:", url_path="simulation"),
    st.Page(PAGES / "scenarios_page.py", title="Scenario sets", icon=":material/grid_on:", url_path="scenarios"),
    st.Page(PAGES / "tranches_page.py", title="Tranches", icon=":material/account_balance:", url_path="tranches"),
    st.Page(PAGES / "partners_page.py", title="Partners", icon=":material/handshake:", url_path="partners"),
    st.Page(PAGES / "dispersion_page.py", title="Dispersion", icon=":material/hub:", url_path="dispersion"),
    st.Page(PAGES / "reports_page.py", title="Reports", icon=":material/description:", url_path="reports"),
]
st.navigation(pages).run()
