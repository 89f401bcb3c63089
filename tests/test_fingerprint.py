"""Every number unchanged: the small B1 pipeline (``benchmarks/b1_fingerprint.py``: a 60k-loan
book, allocation, 2,000 granular paths with the party split, the CN deal with its revolving
purchases, tranche and trigger tables, dispersion) hashed array by array against the
fingerprint recorded before the code was reshaped. A change that is meant to move numbers
updates ``tests/golden/b1_fingerprint_small.json`` in the same commit and says why."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import b1_fingerprint  # noqa: E402


@pytest.mark.slow
def test_small_b1_pipeline_is_bit_identical_to_the_recorded_fingerprint() -> None:
    want = json.loads((ROOT / "tests" / "golden" / "b1_fingerprint_small.json").read_text())
    got = b1_fingerprint.small_fingerprint()
    assert sorted(got) == sorted(want)
    assert {k: got[k] for k in sorted(got) if got[k] != want[k]} == {}


def test_digest_sees_one_bit() -> None:
    import numpy as np

    a = np.linspace(0.0, 1.0, 1000)
    b = a.copy()
    b[517] = np.nextafter(b[517], 2.0)
    assert b1_fingerprint.digest({"x": a}) != b1_fingerprint.digest({"x": b})
    assert b1_fingerprint.digest({"x": a}) == b1_fingerprint.digest({"x": a.copy()})
