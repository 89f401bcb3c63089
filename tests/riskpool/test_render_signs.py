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


def test_the_commands_money_and_share_helpers_print_no_signed_zero() -> None:
    # `riskpool dispersion` printed "EL left the platform -0.00%" for a share of -1e-12 (the
    # parties' sums less the pool's, in floating point); the helpers of the commands that
    # print amounts and shares outside a table drop the sign of what rounds to zero, keep
    # every other sign, and a `+` spec (runs diff) shows a zero without one
    from riskpool.commands import partners, scenarios, simulation
    from riskpool.commands.output import fixed

    assert partners._pct(-1e-12) == "0.00%" and partners._pct(-0.0001) == "-0.01%"
    assert partners._money(-0.004) == "0.00" and partners._money(-1_234.5) == "-1,234.50"
    assert simulation._money(-0.001) == "0.00"
    assert simulation._pct(-1e-9) == "0.00%" and simulation._pct(0.0123) == "+1.23%"
    assert simulation._pct(-0.0123) == "-1.23%"
    assert scenarios._money(-0.4) == "0" and scenarios._pct(-1e-9) == "0.000%"
    assert scenarios._pct(0.5, digits=1) == "50.0%"
    assert fixed("{:+.2f}")(0.0) == "0.00" and fixed("{:+.2f}")(-0.0) == "0.00"
