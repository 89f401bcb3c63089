"""riskpool dashboard — the Streamlit entry point (``riskpool dashboard --db DB``).

Log in (users file with scrypt-hashed passwords, see ``dashboards.auth``; the login survives
a reload through a signed session cookie, see ``dashboards.session``), then the pages
Book, Pools, Simulation, Scenario sets, Tranches, Partners, Dispersion and Reports (``st.navigation``). The
database comes from ``RISKPOOL_DB`` (set by ``riskpool dashboard``) and is only ever read
through ``dashboards.access``, which scopes every read to the logged-in user.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboards import auth, session, ui

st.set_page_config(page_title="riskpool", page_icon=":material/monitoring:", layout="wide")

# not ``pages/``: Streamlit treats a ``pages/`` folder beside the entry script as its legacy
# multipage layout, and a deep link into a page (/partners?allocation=2) then opens on
# "Page not found" before ``st.navigation`` has run
PAGES = Path(__file__).resolve().parent / "views"


def login() -> None:
    st.title("riskpool")
    st.caption(f"Treasury dashboard · database `{ui.db_path()}`")
    if st.session_state.pop("clear_cookie", False):
        st.html(session.clear_cookie_script(), unsafe_allow_javascript=True)
    # a deep link (?run=3) opened while logged out: keep its parameters for after the login
    st.session_state.setdefault("login_query", st.query_params.to_dict())
    user = st.text_input("Username", key="login_user")
    password = st.text_input("Password", type="password", key="login_password")
    if st.button("Log in", key="login_submit", type="primary"):
        viewer = auth.authenticate(ui.users_path(), user, password)
        if viewer is None:
            st.error("Unknown user or wrong password.")
        else:
            st.session_state["viewer"] = viewer
            key = session.load_key(ui.db_path())
            st.session_state["set_cookie"] = session.issue(
                key, viewer, session.password_hash_of(ui.users_path(), viewer.username))
            st.rerun()


def from_cookie() -> auth.Viewer | None:
    """The viewer of this browser's session cookie (a reload), unless it logged out here."""
    if st.session_state.get("logged_out"):
        return None
    token = st.context.cookies.get(session.COOKIE)
    if not token:
        return None
    return session.verify(session.load_key(ui.db_path()), token, ui.users_path())


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

viewer = st.session_state.get("viewer")
if not isinstance(viewer, auth.Viewer):
    viewer = from_cookie()
    if viewer is not None:
        st.session_state["viewer"] = viewer
if isinstance(viewer, auth.Viewer) and auth.current_viewer(ui.users_path(), viewer) is None:
    # removed from the users file, or its role changed, since it logged in: log it out
    st.session_state.clear()
    st.session_state["logged_out"] = True
    st.session_state["clear_cookie"] = True
    viewer = None
if not isinstance(viewer, auth.Viewer):
    # the pages are declared (hidden) so a deep link's page (/simulation?run=3) is kept in
    # the address bar and opened after the login; none of them runs before it
    st.navigation(pages, position="hidden")
    login()
    # load the analytics and chart modules while the login form is shown, so the first page
    # after login does not pay for the imports
    import dashboards.access  # noqa: F401
    import dashboards.charts  # noqa: F401
    import portfolio.book.analytics  # noqa: F401
    import portfolio.montecarlo.simulation  # noqa: F401
    import tranching.analytics  # noqa: F401

    st.stop()

# the parameters of the link the user came in by, restored once after the login
kept = st.session_state.pop("login_query", None)
if kept:
    for name, value in kept.items():
        st.query_params.setdefault(name, value)

with st.sidebar:
    st.markdown(f"**{viewer.username}** · `{viewer.role}`")
    token = st.session_state.pop("set_cookie", None)
    if token:
        st.html(session.set_cookie_script(token), unsafe_allow_javascript=True)
    if st.button("Log out", key="logout"):
        st.session_state.clear()
        st.session_state["logged_out"] = True  # the cookie this session came with is void
        st.session_state["clear_cookie"] = True
        st.rerun()

st.navigation(pages).run()
