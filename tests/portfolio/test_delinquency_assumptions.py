"""The ``[delinquency]`` section of the assumptions file and its typed record
(``portfolio.montecarlo.assumptions.DelinquencyAssumptions``): TOML and exact-JSON round trips,
the defaults derived from the hazard curves, the stress overlay, and the refusals (each naming
the field, the rule and what was received)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from portfolio.errors import ValidationError
from portfolio.montecarlo.assumptions import (
    DELINQUENCY_BUCKETS,
    Assumptions,
    DelinquencyAssumptions,
    assumptions_from_toml,
    assumptions_to_toml,
    derived_delinquency,
)
from portfolio.montecarlo.records import assumptions_from_json, assumptions_to_json
from portfolio.validation import SchemaError

BANDS = ((350, 650), (650, 951))
TERMS = (3, 6)
N_AGE = 6


def _base(**kw: object) -> Assumptions:
    h = np.full((2, 2, N_AGE), 0.004)
    h[1] *= 0.5
    return Assumptions(default_hazard=h, prepay_smm=np.full((2, 2, N_AGE), 0.02),
                       recovery_rate=0.15, recovery_lag=(0.5, 0.5), rho=0.05,
                       factor_persistence=0.6, score_bands=BANDS, terms=TERMS, **kw)


def _record(**kw: object) -> DelinquencyAssumptions:
    rng = np.random.default_rng(3)
    rc = rng.uniform(0.005, 0.02, (2, 2, N_AGE))
    roll = rng.uniform(0.3, 0.6, (2, 2, N_AGE, DELINQUENCY_BUCKETS))
    cure = rng.uniform(0.0, 0.3, (2, 2, N_AGE, DELINQUENCY_BUCKETS))
    return DelinquencyAssumptions(roll_current=rc, roll=roll, cure=cure, **kw)


HEAD = """
[factor]
rho = 0.05
[recovery]
rate = 0.15
lag = [1.0]
[grid]
score_bands = [[350, 650], [650, 951]]
terms = [3, 6]
n_age = 6
""" + "".join(f"""
[[segment]]
score_band = "{b}"
term = {t}
default_hazard = [0.004]
prepay_smm = [0.02]
""" for b in ("350-649", "650-950") for t in (3, 6))


def test_toml_round_trip_keeps_every_value_to_12_digits() -> None:
    a = _base(delinquency=_record(charge_off_dpd=120, cure_rule="re_age", factor_loading=0.08,
                                  provenance={"method": "test"}))
    b = assumptions_from_toml(assumptions_to_toml(a))
    assert b.delinquency is not None and a.delinquency is not None
    for name in ("roll_current", "roll", "cure"):
        np.testing.assert_allclose(getattr(b.delinquency, name), getattr(a.delinquency, name),
                                   rtol=1e-11, atol=0)
    assert (b.delinquency.charge_off_dpd, b.delinquency.cure_rule,
            b.delinquency.factor_loading) == (120, "re_age", 0.08)
    assert b.delinquency.provenance == {"method": "test"}
    assert b.delinquency.n_buckets == 4


def test_json_round_trip_is_exact() -> None:
    a = _base(delinquency=_record(charge_off_dpd=180))
    b = assumptions_from_json(assumptions_to_json(a))
    assert b.delinquency is not None and a.delinquency is not None
    for name in ("roll_current", "roll", "cure"):
        assert np.array_equal(getattr(b.delinquency, name), getattr(a.delinquency, name))
    assert b.delinquency.charge_off_dpd == 180
    # a run stored before the field existed (no "delinquency" key) still reads
    old = assumptions_to_json(_base())
    del old["delinquency"]
    assert assumptions_from_json(old).delinquency is None


def test_file_without_the_section_writes_none_and_derives_from_the_hazard() -> None:
    a = assumptions_from_toml(HEAD)
    assert a.delinquency is None
    assert "[delinquency]" not in assumptions_to_toml(a)  # the hazard file is unchanged
    dq = a.delinquency_model()
    # derived: P(current -> 1-30) is the hazard, every roll 1, every cure 0
    assert np.array_equal(dq.roll_current, a.default_hazard)
    assert np.all(dq.roll == 1.0) and np.all(dq.cure == 0.0)
    assert (dq.charge_off_dpd, dq.cure_rule, dq.factor_loading) == (90, "catch_up", None)
    assert dq.loading(a.rho) == 0.05


def test_section_without_segments_derives_the_curves_with_its_own_settings() -> None:
    a = assumptions_from_toml(HEAD + '\n[delinquency]\ncharge_off_dpd = 180\ncure_rule = "re_age"\n')
    assert a.delinquency is not None
    assert a.delinquency.charge_off_dpd == 180 and a.delinquency.n_buckets == 6
    assert np.array_equal(a.delinquency.roll_current, a.default_hazard)


def _segments(extra: str = "", cure: str = "[[0.3], [0.2], [0.1]]") -> str:
    return "\n[delinquency]\ncharge_off_dpd = 120\n" + "".join(f"""
[[delinquency.segment]]
score_band = "{b}"
term = {t}
roll_current = [0.01, 0.012]
roll = [[0.4], [0.5, 0.6], [0.7]]
cure = {cure}
{extra}""" for b in ("350-649", "650-950") for t in (3, 6))


def test_short_curves_and_bucket_lists_are_extended_with_their_last_value() -> None:
    a = assumptions_from_toml(HEAD + _segments('info = { exposure = [10, 20] }'))
    dq = a.delinquency
    assert dq is not None
    assert np.array_equal(dq.roll_current[0, 1], [0.01] + [0.012] * 5)
    assert np.array_equal(dq.roll[1, 0, :, 0], [0.4] * 6)
    assert np.array_equal(dq.roll[1, 0, :, 1], [0.5] + [0.6] * 5)
    assert np.array_equal(dq.roll[1, 0, 2, 2:], [0.7] * 4)  # buckets 3..6 = the last given
    assert np.array_equal(dq.cure[0, 0, 0], [0.3, 0.2, 0.1, 0.1, 0.1, 0.1])


def test_written_file_reads_back_equal_with_info() -> None:
    a = _base(delinquency=_record())
    info = {"exposure": np.arange(2 * 2 * 3).reshape(2, 2, 3)}
    text = assumptions_to_toml(a, delinquency_info=info)
    assert "info = { exposure = [9, 10, 11] }" in text
    b = assumptions_from_toml(text)
    assert b.delinquency is not None
    np.testing.assert_allclose(b.delinquency.cure, a.delinquency.cure, rtol=1e-11)


@pytest.mark.parametrize(("bad", "field", "allowed"), [
    ('charge_off_dpd = 100', "delinquency.charge_off_dpd", "90, 120, 150, 180"),
    ('cure_rule = "forgive"', "delinquency.cure_rule", "catch_up"),
    ('factor_loading = 1.0', "delinquency.factor_loading", "[0, 1)"),
    ('roll_rates = 1', "delinquency.roll_rates", "cure_rule"),
])
def test_bad_settings_are_refused_naming_the_field(bad: str, field: str, allowed: str) -> None:
    with pytest.raises(SchemaError) as exc:
        assumptions_from_toml(HEAD + "\n[delinquency]\n" + bad + "\n", "a.toml")
    assert exc.value.field_path == field
    assert allowed in str(exc.value) and "a.toml" in str(exc.value)


def test_roll_plus_cure_above_one_is_refused_naming_the_segment() -> None:
    with pytest.raises(SchemaError) as exc:
        assumptions_from_toml(HEAD + _segments(cure="[[0.7]]"), "a.toml")
    assert exc.value.field_path == "delinquency.segment[0].cure[0]"
    assert "roll 0.4 + cure 0.7" in str(exc.value)


def test_missing_segment_and_probability_out_of_range_are_refused() -> None:
    text = HEAD + _segments()
    cut = text.rfind("[[delinquency.segment]]")
    with pytest.raises(SchemaError, match="missing 650-950 × 6m") as exc:
        assumptions_from_toml(text[:cut])
    assert exc.value.field_path == "delinquency.segment"
    with pytest.raises(SchemaError) as exc:
        assumptions_from_toml(HEAD + _segments().replace("[0.01, 0.012]", "[1.0]", 1))
    assert exc.value.field_path == "delinquency.segment[0].roll_current[0]"


def test_record_checks_shapes_and_the_grid() -> None:
    with pytest.raises(ValidationError, match="delinquency.roll"):
        DelinquencyAssumptions(roll_current=np.zeros((2, 2, 6)), roll=np.zeros((2, 2, 6, 3)),
                               cure=np.zeros((2, 2, 6, 6)))
    with pytest.raises(ValidationError, match="shaped like default_hazard"):
        _base(delinquency=derived_delinquency(np.zeros((2, 2, 5))))


def test_stress_multiplies_the_entry_into_delinquency_only() -> None:
    a = _base(delinquency=_record())
    s = a.stressed(pd_multiplier=2.0)
    assert s.delinquency is not None and a.delinquency is not None
    np.testing.assert_array_equal(s.delinquency.roll_current,
                                  np.minimum(2.0 * a.delinquency.roll_current, 0.999))
    assert np.array_equal(s.delinquency.roll, a.delinquency.roll)
    assert np.array_equal(s.delinquency.cure, a.delinquency.cure)
    assert dataclasses.replace(a, delinquency=None).stressed(2.0).delinquency is None
