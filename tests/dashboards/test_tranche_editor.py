"""The Tranches page's editor under AppTest: nothing recomputes until Apply; Apply reruns the
waterfall on the edited deal (checked against the library on the same run's paths); a refused
edit shows an inline error naming the class and field and leaves the last good analysis on
screen with its numbers; auto-balance sizes the junior class as 1 − the others."""

from __future__ import annotations

import pandas as pd
import pytest
from pages_helpers import assert_tranches_shown, frame_with, page
from streamlit.testing.v1 import AppTest

from dashboards import access
from dashboards.auth import Viewer

pytestmark = pytest.mark.usefixtures("dashboard_env")
DEAL = "deal_cn_consumer.toml"  # A 0.89 / B 0.04 / Sub 0.07, no initial OC


def _library_table(db, run_id: int, sizes: dict[str, float]) -> pd.DataFrame:
    """The tranche table straight from the library (not the dashboard's access layer) for
    the example deal resized with ``Deal.with_sizes``, on the stored run's paths."""
    from portfolio.store import open_store
    from portfolio.store.runs import load_paths
    from riskpool.commands.demo import EXAMPLES
    from tranching.analytics import tranche_table
    from tranching.deal import load_deal
    from tranching.revolving import run_replenishment
    from tranching.waterfall import run_waterfall

    deal = load_deal(EXAMPLES / DEAL).with_sizes(sizes)
    with open_store(db, read_only=True) as store:
        paths = load_paths(store, run_id)
        profile = run_replenishment(store, run_id, deal)
    return tranche_table(deal, run_waterfall(deal, paths, replenishment=profile), paths,
                         discount=0.05)


def _edit(at: AppTest, rows: dict[int, dict[str, object]]) -> None:
    at.session_state["tr_editor"] = {"edited_rows": rows, "added_rows": [],
                                     "deleted_rows": []}


def _apply(at: AppTest) -> AppTest:
    return at.button(key="tr_apply").click().run()


def _errors(at: AppTest) -> list[str]:
    return [str(e.value) for e in at.error]


def _tranches(at: AppTest) -> pd.DataFrame:
    """The page's tranche table without its total row (the notes: with_class_total)."""
    shown = frame_with(at, "wal_mean")
    return shown[shown["tranche"] != "total"].reset_index(drop=True)


def _assert_same_numbers(shown: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert_tranches_shown(shown, expected, ("size", "el", "pd", "wal_mean", "price", "ce"))


def test_nothing_recomputes_until_apply_then_apply_reruns(dashboard_env) -> None:
    at = page("tranches", "treasury", widgets={"tr_deal": DEAL})
    assert not at.exception and not _errors(at)
    before = _tranches(at).copy()
    _assert_same_numbers(before, _library_table(dashboard_env.db, dashboard_env.run_id, {}))
    # B 0.04 -> 0.03 and Sub 0.07 -> 0.08 typed in, no Apply: the analysis is the old one
    _edit(at, {1: {"size": 0.03}, 2: {"size": 0.08}})
    at.run()
    pd.testing.assert_frame_equal(_tranches(at), before)
    # Apply: the tranche table is the library's for the resized deal
    _apply(at)
    assert not at.exception and not _errors(at), _errors(at)
    expected = _library_table(dashboard_env.db, dashboard_env.run_id, {"B": 0.03, "Sub": 0.08})
    _assert_same_numbers(_tranches(at), expected)
    for col in ("size", "ce"):  # the demo book's EL is 0 for every class; sizes and CE move
        # (CE as the table's text: the total row leaves it empty)
        assert list(_tranches(at)[col].astype(str)) != list(before[col].astype(str))


def test_bad_size_shows_the_error_and_keeps_the_last_analysis(dashboard_env) -> None:
    at = page("tranches", "treasury", widgets={"tr_deal": DEAL})
    # a good edit applied first: the "last good analysis" is this one, not the file's
    _edit(at, {1: {"size": 0.03}, 2: {"size": 0.08}})
    _apply(at)
    good = _tranches(at).copy()
    assert good["size"].iloc[1] != pytest.approx(
        _library_table(dashboard_env.db, dashboard_env.run_id, {})["size"].iloc[1])
    # class B's size above 1: refused with the class and field named, the table unchanged
    _edit(at, {1: {"size": 1.5}, 2: {"size": 0.08}})
    _apply(at)
    assert not at.exception
    errors = _errors(at)
    assert len(errors) == 1 and errors[0].startswith("Class B, size:"), errors
    assert "1.5" in errors[0]
    pd.testing.assert_frame_equal(_tranches(at), good)
    assert at.subheader[0].value == "CN Consumer Example 2026-1"
    # sizes that do not add up to 1 (auto-balance off): refused naming the classes' sizes
    _edit(at, {1: {"size": 0.05}, 2: {"size": 0.08}})
    _apply(at)
    errors = _errors(at)
    assert len(errors) == 1 and errors[0].startswith("Classes A, B, Sub, size:"), errors
    assert "1.020000" in errors[0]  # 0.89 + 0.05 + 0.08, the total received
    pd.testing.assert_frame_equal(_tranches(at), good)
    # a coupon of 200% a year on class A (a decimal annual rate in [0, 1])
    _edit(at, {0: {"coupon": 2.0}})
    _apply(at)
    errors = _errors(at)
    assert len(errors) == 1 and errors[0].startswith("Class A, coupon:"), errors
    pd.testing.assert_frame_equal(_tranches(at), good)


def test_auto_balance_sets_the_junior_to_one_minus_the_rest(dashboard_env) -> None:
    at = page("tranches", "treasury", widgets={"tr_deal": DEAL})
    _edit(at, {0: {"size": 0.85}, 1: {"size": 0.06}})  # Sub left at 0.07: adds to 0.98
    at.checkbox(key="tr_autobalance").check()
    _apply(at)
    assert not at.exception and not _errors(at), _errors(at)
    shown = _tranches(at)
    # by hand: Sub = 1 - 0.85 - 0.06 = 0.09
    expected = _library_table(dashboard_env.db, dashboard_env.run_id,
                              {"A": 0.85, "B": 0.06, "Sub": 0.09})
    _assert_same_numbers(shown, expected)
    sizes = shown["size"].to_numpy(float)
    total = sizes.sum()
    assert sizes[-1] == pytest.approx(total - sizes[:-1].sum())
    assert sizes[-1] / total == pytest.approx(0.09, abs=1e-12)
    assert sizes[-1] / total == pytest.approx(1 - sizes[0] / total - sizes[1] / total,
                                              abs=1e-12)
    assert [str(s.value) for s in at.success] == [
        "Applied with the junior class Sub balanced: A 0.85, B 0.06, Sub 0.09."]
    good = shown.copy()
    # the others exceed 1: refused inline, the balanced analysis stays
    _edit(at, {0: {"size": 0.97}, 1: {"size": 0.06}})
    _apply(at)
    errors = _errors(at)
    assert len(errors) == 1 and errors[0].startswith("Auto-balance refused: classes A, B, size "
                                                     "add up to 1.030000"), errors
    assert "junior class Sub" in errors[0]
    pd.testing.assert_frame_equal(_tranches(at), good)


def test_apply_tranche_edit_counts_initial_oc_with_the_others() -> None:
    """The US example has initial OC 0.10: A 0.70 + B 0.12 + OC 0.10 leaves C = 0.08."""
    from riskpool.commands.demo import EXAMPLES

    text = (EXAMPLES / "deal_us_consumer.toml").read_text(encoding="utf-8")
    viewer = Viewer("t", "treasury")
    frame = access.deal_tranche_frame(viewer, text)
    frame.loc[1, "size"] = 0.15  # B 0.12 -> 0.15; C must fall to 1 - 0.70 - 0.15 - 0.10
    edit = access.apply_tranche_edit(viewer, text, frame, auto_balance=True)
    assert edit.errors == ()
    deal = access.deal_from_text(edit.deal_toml)
    assert [t.size for t in deal.tranches] == pytest.approx([0.70, 0.15, 0.05], abs=1e-12)
    assert sum(t.size for t in deal.tranches) + deal.initial_oc == pytest.approx(1.0, abs=1e-12)
    # without auto-balance the same edit is refused (0.70 + 0.15 + 0.08 + 0.10 = 1.03)
    refused = access.apply_tranche_edit(viewer, text, frame)
    assert refused.deal_toml is None and "1.030000" in refused.errors[0]
