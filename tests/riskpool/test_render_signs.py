"""The CLI's text tables: a value that rounds to zero prints without a sign (a residual
tranche's IRR of -3e-9 is 0.0000, not -0.0000), while every other value keeps its sign and
the data behind the text keep the exact value."""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskpool.commands.output import render


def _cells(text: str) -> list[str]:
    return text.split("\n", 2)[2].split()  # the rows below the "== name" and header lines


def test_a_ratio_that_rounds_to_zero_prints_unsigned() -> None:
    frame = pd.DataFrame({"irr": [-3e-9, -0.00004, -0.00005001, 0.0321, -0.25, np.nan]})
    cells = _cells(render({"t": frame}))
    # -0.00005001 rounds to -0.0001 (a real negative); NaN shows as "-"
    assert cells == ["0.0000", "0.0000", "-0.0001", "0.0321", "-0.2500", "-"]
    assert frame["irr"].iloc[0] == -3e-9  # the frame is not changed


def test_an_amount_that_rounds_to_zero_prints_unsigned() -> None:
    frame = pd.DataFrame({"loss": [-0.001, -0.004999, -0.005001, -1_234.5, 2.0]})
    cells = _cells(render({"t": frame}))
    assert cells == ["0.00", "0.00", "-0.01", "-1,234.50", "2.00"]


def test_negative_zero_itself_prints_unsigned() -> None:
    cells = _cells(render({"t": pd.DataFrame({"x": [-0.0, 0.5]})}))
    assert cells == ["0.0000", "0.5000"]
