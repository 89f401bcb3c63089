"""The leak test that can see tables: a canary book (``canary.py``) gives every loan that is not
the demo partner's a balance of 987,654,321 CNY; then every page is run as the partner through
every selectbox option, the deal upload and the deal editor, and every output — the DataFrame
behind each table (AppTest element values, not rendered text), metrics, texts, widget options,
the files offered for download — is searched for a figure of at least 1e8 or the canary's
digits. The partner's own book is below 1e6 (checked when the canary is built), so a hit can
only come from another party's loans. The data-access layer is swept the same way, called
directly with every run, allocation and pool id in the database.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from canary import CanaryBook, build_canary, find_canary, page_outputs
from pages_helpers import PAGES, PARTNER, page

from dashboards import access
from dashboards.auth import Viewer

pytestmark = pytest.mark.adversarial("entitlements")
ME = Viewer("bank_user", f"partner:{PARTNER}")
TREASURY = Viewer("t", "treasury")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def canary(demo_book, tmp_path_factory) -> CanaryBook:
    return build_canary(demo_book.db, tmp_path_factory.mktemp("canary"), PARTNER,
                        demo_book.pool_id, demo_book.allocation_id, demo_book.run_id,
                        demo_book.as_of)


_OWN: list[frozenset[float]] = []  # the current canary book's _own_limits


@pytest.fixture
def canary_env(canary: CanaryBook, demo_book, monkeypatch) -> CanaryBook:
    _OWN[:] = [_own_limits(canary)]
    monkeypatch.setenv("RISKPOOL_DB", str(canary.db))
    monkeypatch.setenv("RISKPOOL_USERS", str(demo_book.users_file))
    return canary


def _senior_to_partner(toml_text: str) -> str:
    """The deal with its first (senior) class's holder set to the partner: the attack of
    issue 14 (a partner names itself the holder of the senior class)."""
    lines, done = [], False
    for line in toml_text.splitlines():
        if not done and line.strip().startswith("holder"):
            line, done = f'holder = "{PARTNER}"', True
        lines.append(line)
    assert done
    return "\n".join(lines) + "\n"


def _own_limits(book: CanaryBook) -> frozenset[float]:
    """The partner's own capacity and regulatory limits, as treasury sees them in the
    allocation's rule checks (the partner's registry entry, not sums over loans)."""
    checks = access.allocation(book.db, TREASURY, book.allocation_id).checks
    mine = checks[checks["party"] == PARTNER]
    return frozenset(round(float(x), 2) for x in mine["limit"])


def _assert_clean(outputs: dict, what: str) -> None:
    hits = find_canary(outputs, what, _OWN[0])
    assert not hits, f"{what} shows figures from other parties' loans: {hits[:5]}"


def test_canary_is_visible_to_treasury(canary_env: CanaryBook) -> None:
    """The detector can fail: treasury's book page and tranche table carry the canary."""
    at = page("book", TREASURY.role)
    assert find_canary(page_outputs(at), "treasury book")
    view = access.tranches(canary_env.db, TREASURY, canary_env.run_id,
                           (EXAMPLES / "deal_us_consumer.toml").read_text())
    assert find_canary(view.table, "treasury tranche table")


@pytest.mark.parametrize("name", PAGES)
def test_no_page_shows_the_canary(canary_env: CanaryBook, name: str) -> None:
    """Each page as the partner, then each of its selectboxes set to each option (up to
    four per box)."""
    at = page(name, ME.role, query={"run": str(canary_env.run_id)})
    _assert_clean(page_outputs(at), f"{name} page")
    for key in [sb.key for sb in at.selectbox if sb.key]:
        options = list(at.selectbox(key=key).options)
        for option in options[:2] + options[-2:]:
            at.selectbox(key=key).select(option).run()
            _assert_clean(page_outputs(at), f"{name} page, {key}={option}")


@pytest.mark.parametrize("deal_file", ["deal_us_consumer.toml", "deal_cn_consumer.toml"])
def test_tranches_upload_naming_the_partner_holder(canary_env: CanaryBook,
                                                   deal_file: str) -> None:
    """Upload path: a deal whose senior class names the partner as its holder."""
    text = _senior_to_partner((EXAMPLES / deal_file).read_text())
    at = page("tranches", ME.role, query={"run": str(canary_env.run_id)})
    at.file_uploader(key="tr_upload").set_value(("mine.toml", text.encode(), "text/plain"))
    at.run()
    uploaded = [o for o in at.selectbox(key="tr_deal").options if o.startswith("uploaded")]
    assert uploaded == ["uploaded: mine.toml"]
    at.selectbox(key="tr_deal").select(uploaded[0]).run()
    assert not at.exception, [e.value for e in at.exception]
    _assert_clean(page_outputs(at), f"tranches page, uploaded {deal_file}")
    for option in at.selectbox(key="tr_fan").options if at.selectbox else []:
        at.selectbox(key="tr_fan").select(option).run()
        _assert_clean(page_outputs(at), f"tranches page, fan of {option}")


def test_tranches_editor_naming_the_partner_holder(canary_env: CanaryBook) -> None:
    """Editor path: the partner types itself into the holder column of the senior class."""
    at = page("tranches", ME.role, query={"run": str(canary_env.run_id)})
    at.session_state["tr_editor"] = {"edited_rows": {0: {"holder": PARTNER}},
                                     "added_rows": [], "deleted_rows": []}
    at.run()
    _assert_clean(page_outputs(at), "tranches page, holder edited")
    # an edit the partner can make (its table has no holder column), applied: the edited
    # deal is analysed on its own share, and still shows nobody else
    at = page("tranches", ME.role, query={"run": str(canary_env.run_id)})
    at.session_state["tr_editor"] = {"edited_rows": {0: {"coupon": 0.04}},
                                     "added_rows": [], "deleted_rows": []}
    at.button(key="tr_apply").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    _assert_clean(page_outputs(at), "tranches page, coupon edited and applied")


def test_access_layer_sweep(canary_env: CanaryBook) -> None:
    """Every access function as the partner, with every run, allocation and pool id in the
    database and both example deals (and each with the senior class named the partner's):
    each result is clean or the call is refused with ``AccessDenied``/``NotFound``."""
    db = canary_env.db
    run_ids = [int(x) for x in access.runs(db, TREASURY)["run_id"]]
    alloc_ids = [int(x) for x in access.allocations(db, TREASURY)["allocation_id"]]
    pool_ids = [int(x) for x in access.pools(db, TREASURY)["pool_id"]]
    deals = [(EXAMPLES / f).read_text() for f in ("deal_us_consumer.toml",
                                                  "deal_cn_consumer.toml")]
    deals += [_senior_to_partner(t) for t in deals]
    refused = (access.AccessDenied, access.NotFound)
    results: dict[str, object] = {
        "book": access.book(db, ME), "pools": access.pools(db, ME),
        "runs": access.runs(db, ME), "allocations": access.allocations(db, ME),
        "reports": access.report_history(db, ME),
        "preview": access.preview_pool(db, ME, {}, dt.date.fromisoformat(canary_env.as_of)),
    }
    for pid in pool_ids:
        results[f"strats {pid}"] = access.pool_strats(db, ME, pid)
    calls: list[tuple[str, object]] = []
    for rid in run_ids:
        calls.append((f"run_view {rid}", lambda rid=rid: access.run_view(db, ME, rid)))
        for k, text in enumerate(deals):
            calls.append((f"tranches {rid} deal {k}",
                          lambda rid=rid, text=text: access.tranches(db, ME, rid, text)))
        for aid in alloc_ids:
            for k, text in enumerate([None, *deals]):
                calls.append((f"dispersion {rid}/{aid} deal {k}",
                              lambda rid=rid, aid=aid, text=text:
                              access.dispersion(db, ME, rid, aid, text)))
    # the viewer-checked helpers the pages call with the partner: example deals and rating
    # tables, the editable tranche frame of every deal the partner can pick (the stored one
    # included), the deal rebuilt from an edited frame
    results["example deals"] = access.example_deals(ME)
    results["rating tables"] = access.example_rating_tables(ME)
    for rid in run_ids:
        try:
            stored = access.stored_deal_toml(db, ME, rid)
        except refused:
            continue
        deals_seen = [*deals, *([stored] if stored else [])]
        for k, text in enumerate(deals_seen):
            frame = access.deal_tranche_frame(ME, text)
            assert "holder" not in frame.columns
            results[f"tranche frame {rid} deal {k}"] = frame
            results[f"deal rebuilt {rid} deal {k}"] = access.deal_with_tranches(ME, text, frame)
    # the treasury-only reads refuse the partner (assumption sets are calibrated on the
    # whole book; a run's set belongs to runs the partner may not be party to)
    treasury_only: list[tuple[str, object]] = [
        ("assumption files", lambda: access.assumption_files(db, ME)),
        ("an assumption set", lambda: access.load_assumptions_file(
            db, ME, f"assumptions_pool{canary_env.pool_id}.toml"))]
    treasury_only += [(f"pool {pid}'s assumptions",
                       lambda pid=pid: access.pool_assumptions(db, ME, pid)) for pid in pool_ids]
    for what, call in treasury_only:
        with pytest.raises(access.AccessDenied):
            call()
            pytest.fail(f"{what} returned to the partner")
    for aid in alloc_ids:
        calls.append((f"allocation {aid}", lambda aid=aid: access.allocation(db, ME, aid)))
        calls.append((f"tape {aid}", lambda aid=aid: access.partner_tape(db, ME, aid, PARTNER)))
    for name, call in calls:
        try:
            results[name] = call()
        except refused:
            continue
    for name, value in results.items():
        _assert_clean({name: value}, name)
    hist = access.report_history(db, ME)
    for rid, raw in zip(hist["run_id"], hist["summary"], strict=True):
        files = (json.loads(raw) if isinstance(raw, str) else raw or {}).get("files", {})
        for fname in files:
            data = access.report_file(db, ME, int(rid), fname)
            if fname.endswith(".xlsx"):
                book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
                cells = [c for ws in book.worksheets for row in ws.iter_rows(values_only=True)
                         for c in row if c is not None]
                _assert_clean({fname: cells}, f"report {rid} {fname}")
            else:
                _assert_clean({fname: data}, f"report {rid} {fname}")


def test_partner_refused_runs_it_is_not_party_to(canary_env: CanaryBook) -> None:
    """The whole-pool run carries no party split: the partner is not party to it, so every
    access function refuses it (not only the run list hides it)."""
    db, rid, aid = canary_env.db, canary_env.pool_run_id, canary_env.allocation_id
    deal = (EXAMPLES / "deal_us_consumer.toml").read_text()
    assert rid not in set(access.runs(db, ME)["run_id"])
    with pytest.raises(access.AccessDenied, match=f"run {rid}"):
        access.run_view(db, ME, rid)
    with pytest.raises(access.AccessDenied, match=f"run {rid}"):
        access.tranches(db, ME, rid, deal)
    with pytest.raises(access.AccessDenied, match=f"run {rid}"):
        access.dispersion(db, ME, rid, aid)
    with pytest.raises(access.AccessDenied, match=f"run {rid}"):
        access.stored_deal_toml(db, ME, rid)
    # and treasury is not refused: the refusal is about the viewer
    assert not access.run_view(db, TREASURY, rid).stats.empty
    frame = pd.DataFrame(access.dispersion(db, TREASURY, canary_env.run_id, aid).parties)
    assert PARTNER in set(frame["party"])
