"""Every waterfall number unchanged: ``benchmarks/waterfall_fingerprint.py`` (the two example
deals with and without a replenishment profile, and 160 seeded random structures that use every
option of the deal format) hashed array by array against the fingerprint recorded before the
waterfall was reshaped into a month state and step handlers. A change that is meant to move
numbers updates ``benchmarks/fingerprints/waterfall.json`` in the same commit and says why."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import waterfall_fingerprint  # noqa: E402


@pytest.mark.slow
def test_waterfall_results_are_bit_identical_to_the_recorded_fingerprint() -> None:
    want = json.loads((ROOT / "benchmarks" / "fingerprints" / "waterfall.json").read_text())
    got = waterfall_fingerprint.fingerprint()
    assert sorted(got) == sorted(want)
    assert {k: got[k] for k in sorted(got) if got[k] != want[k]} == {}


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_the_fingerprint_does_not_depend_on_the_thread_count(threads: int) -> None:
    """``run_waterfall(..., threads=n)`` cuts the paths into n ranges run on n threads and
    written into one result: every array of every case has the recorded bytes."""
    want = json.loads((ROOT / "benchmarks" / "fingerprints" / "waterfall.json").read_text())
    got = waterfall_fingerprint.fingerprint(threads)
    assert {k: got[k] for k in sorted(got) if got[k] != want[k]} == {}
