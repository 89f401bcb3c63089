"""Assumptions TOML format, stress overlays and calibration from the book's own history.

Calibration tests simulate books from KNOWN monthly hazards (and a known factor), calibrate,
and compare exposure-weighted aggregates with tolerances derived from binomial standard errors
(stated next to each assert).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from portfolio.assumptions import (
    NAMED_SCENARIOS,
    Assumptions,
    apply_stress,
    assumptions_from_toml,
    assumptions_to_toml,
    load_assumptions,
    save_assumptions,
)
from portfolio.errors import ValidationError


def _assumptions(seed: int = 0, n_age: int = 24) -> Assumptions:
    rng = np.random.default_rng(seed)
    return Assumptions(
        default_hazard=rng.uniform(0, 0.02, (6, 6, n_age)),
        prepay_smm=rng.uniform(0, 0.05, (6, 6, n_age)),
        recovery_rate=0.17,
        recovery_lag=(0.1, 0.2, 0.3, 0.4),
        rho=0.06,
        factor_persistence=0.5,
        rho_se=0.02,
        provenance={"pool_id": 3, "as_of": "2025-06-30", "n": 1234,
                    "stress": {"rho": None, "pd_multiplier": 1.0}},
    )


# ---------------------------------------------------------------- TOML format


def test_toml_round_trip() -> None:
    a = _assumptions()
    b = assumptions_from_toml(assumptions_to_toml(a))
    # values are written to 12 significant digits
    np.testing.assert_allclose(b.default_hazard, a.default_hazard, rtol=1e-11)
    np.testing.assert_allclose(b.prepay_smm, a.prepay_smm, rtol=1e-11)
    assert b.recovery_rate == a.recovery_rate and b.recovery_lag == a.recovery_lag
    assert (b.rho, b.rho_se, b.factor_persistence) == (a.rho, a.rho_se, a.factor_persistence)
    assert (b.copula, b.score_bands, b.terms) == (a.copula, a.score_bands, a.terms)
    assert b.provenance == {"pool_id": 3, "as_of": "2025-06-30", "n": 1234,
                            "stress": {"pd_multiplier": 1.0}}


def test_save_and_load_with_exposure_beside_the_curves(tmp_path: Path) -> None:
    a = _assumptions(n_age=6)
    exposure = {"exposure": np.full((6, 6, 6), 100.0), "defaults": np.ones((6, 6, 6))}
    path = save_assumptions(a, tmp_path / "a.toml", exposure=exposure)
    text = path.read_text(encoding="utf-8")
    assert "exposure = [100, 100, 100, 100, 100, 100]" in text
    assert "[[segment]]" in text and 'score_band = "350-599"' in text
    b = load_assumptions(path)
    np.testing.assert_allclose(b.default_hazard, a.default_hazard, rtol=1e-11)
    assert not list(tmp_path.glob(".*.tmp"))


def test_short_curve_is_extended_with_its_last_value() -> None:
    text = assumptions_to_toml(_assumptions(n_age=4))
    text = text.replace("n_age = 4", "n_age = 6")
    b = assumptions_from_toml(text)
    assert b.n_age == 6
    np.testing.assert_array_equal(b.default_hazard[:, :, 5], b.default_hazard[:, :, 3])


def _edit(old: str, new: str, count: int = 1) -> str:
    text = assumptions_to_toml(_assumptions(n_age=3))
    assert old in text
    return text.replace(old, new, count)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (_edit("rho = 0.06", "rhoo = 0.06"), r"unknown key `rhoo`.*did you mean `rho`"),
        (_edit("rho = 0.06", "rho = 1.2"), r"`rho` must be a number in \[0, 1\); got 1.2"),
        (_edit("rate = 0.17", "rate = -0.1"), r"`rate` must be a number in \[0, 1\]"),
        (_edit("lag = [0.1, 0.2, 0.3, 0.4]", "lag = [0.5, 0.2]"), r"`lag` must be .*sum to 1"),
        (_edit('copula = "gaussian"', 'copula = "clayton"'), r"`copula` must be 'gaussian' or 't'"),
        (_edit("factor_persistence = 0.5", "factor_persistence = 1.0"),
         r"`factor_persistence` must be"),
        (_edit('score_band = "350-599"', 'score_band = "350-600"'), r"`score_band` must be one of"),
        (_edit("term = 3", "term = 4"), r"`term` must be one of \[3, 6, 9, 12, 18, 24\]"),
        (_edit("default_hazard = [", "default_hazard = [1.5, "), r"`default_hazard` must be .*"
         r"got 'a list of 4 values'"),
        (_edit("prepay_smm = [", "prepay_smm = [-0.1, ").replace(
            "n_age = 3", "n_age = 4"), r"`prepay_smm` must be .*got -0.1 at .*350-599 × 3m, entry 1"),
        (_edit("[[segment]]\nscore_band = \"350-599\"\nterm = 3", "[[segment]]\nscore_band = "
               "\"350-599\"\nterm = 6"), r"segment 350-599 × 6m appears twice"),
        (_edit("rho_se = 0.02", "rho_se = -1"), r"`rho_se` must be a number >= 0"),
        (_edit("n_age = 3", "n_age = 0"), r"`n_age` must be an integer in \[1, 600\]"),
        (_edit('format = "riskpool-assumptions/1"', 'format = "v0"'), r"`format` must be"),
        (_edit("[factor]", "[factor\n"), r"not valid TOML"),
        (_edit("[[segment]]", "[[segments]]"), r"unknown key `segments`"),
    ],
)
def test_bad_assumptions_name_the_field(text: str, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        assumptions_from_toml(text, "a.toml")


def test_missing_segment_is_named() -> None:
    text = assumptions_to_toml(_assumptions(n_age=2))
    head, _, rest = text.partition("[[segment]]")
    first_removed = "[[segment]]".join(rest.split("[[segment]]")[1:])
    with pytest.raises(ValidationError, match=r"missing 350-599 × 3m"):
        assumptions_from_toml(head + "[[segment]]" + first_removed)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="`assumptions` must be an existing TOML file"):
        load_assumptions(tmp_path / "nope.toml")


# ---------------------------------------------------------------- stress overlays


def test_named_scenarios_and_overrides() -> None:
    a = _assumptions()
    assert apply_stress(a) is a
    adverse = apply_stress(a, scenario="adverse")
    s = NAMED_SCENARIOS["adverse"]
    np.testing.assert_allclose(adverse.default_hazard,
                               np.minimum(a.default_hazard * s["pd_multiplier"], 0.999))
    np.testing.assert_allclose(adverse.prepay_smm, a.prepay_smm * s["smm_multiplier"])
    assert adverse.recovery_rate == pytest.approx(a.recovery_rate * s["recovery_multiplier"])
    assert adverse.provenance["stress"]["scenario"] == "adverse"
    # an explicit multiplier overrides the scenario's; rho is replaced
    b = apply_stress(a, scenario="severe", pd_multiplier=2.0, rho=0.2)
    np.testing.assert_allclose(b.default_hazard, a.default_hazard * 2.0)
    np.testing.assert_allclose(b.prepay_smm, a.prepay_smm * NAMED_SCENARIOS["severe"][
        "smm_multiplier"])
    assert b.rho == 0.2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scenario": "apocalypse"}, r"`scenario` must be one of base, adverse, severe"),
        ({"pd_multiplier": -1.0}, r"`pd_multiplier` must be >= 0"),
        ({"smm_multiplier": -0.5}, r"`smm_multiplier` must be >= 0"),
        ({"recovery_multiplier": -2.0}, r"`recovery_multiplier` must be >= 0"),
        ({"rho": 1.0}, r"`rho` must be in \[0, 1\)"),
    ],
)
def test_bad_stress_names_the_field(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        apply_stress(_assumptions(), **kwargs)  # type: ignore[arg-type]
