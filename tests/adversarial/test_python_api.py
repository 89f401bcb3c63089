"""Adversarial arguments to the Python API a partner-allocation script uses (docs/architecture.md,
section 5): each bad value raises the project's own typed error (a ``RiskpoolError``) naming
the argument, never an IndexError, a QuantLib RuntimeError, an enum's bare ValueError or a
TypeError from deep inside — and a value of the wrong length is refused, not silently used."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
from cli_books import AS_OF, calibrated_pool

from partners.allocation import allocate
from partners.registry import load_registry
from portfolio.book.calibration import calibrate_from_store
from portfolio.book.ingest import check_tape, ingest, read_tape
from portfolio.book.pools import load_pool_loans
from portfolio.errors import RiskpoolError
from portfolio.montecarlo.assumptions import load_assumptions
from portfolio.montecarlo.simulation import loss_distribution, simulate
from portfolio.risk import loss_stats
from portfolio.store import open_store
from tranching.deal import load_deal
from tranching.revolving import run_deal

pytestmark = pytest.mark.adversarial("api")
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TAPE = ROOT / "tests" / "golden" / "tapes" / "loans_small.csv"


@pytest.fixture(scope="module")
def api_book(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return calibrated_pool(tmp_path_factory.mktemp("adv_api"), 400, seed=3)


@pytest.fixture(scope="module")
def paths_and_deal(api_book: tuple[Path, Path]):  # type: ignore[no-untyped-def]
    db, a_path = api_book
    with open_store(db, read_only=True) as store:
        loans = load_pool_loans(store, 1)
    return loans, simulate(loans, load_assumptions(a_path), 64, seed=1, threads=1), \
        load_deal(EXAMPLES / "deal_cn_consumer.toml")


def _typed(match: str):  # type: ignore[no-untyped-def]
    return pytest.raises(RiskpoolError, match=match)


@pytest.mark.parametrize("n_age", [0, -1, 121, 2.5, True])
def test_calibrate_n_age(api_book: tuple[Path, Path], n_age: object) -> None:
    """was: IndexError "index -1 is out of bounds for axis 2 with size 0" (n_age 0)."""
    with open_store(api_book[0], read_only=True) as store, _typed("`n-age` must be"):
        calibrate_from_store(store, n_age=n_age)  # type: ignore[arg-type]


def test_calibrate_as_of_text(api_book: tuple[Path, Path]) -> None:
    """was: TypeError "str.replace() takes no keyword arguments"."""
    with open_store(api_book[0], read_only=True) as store, _typed("`as-of` must be a date"):
        calibrate_from_store(store, as_of=AS_OF)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["perf", "", "LOANS"])
def test_tape_kind(tmp_path: Path, kind: str) -> None:
    """was: ValueError "'perf' is not a valid TapeKind" (not a RiskpoolError: the CLI would
    print a traceback for it)."""
    with _typed("`kind` must be one of 'loans', 'performance'"):
        read_tape(TAPE, kind)
    db = tmp_path / "new.duckdb"
    with open_store(db) as store, _typed("`kind` must be"):
        ingest(store, TAPE, kind=kind)


def test_check_tape_kind() -> None:
    raw = read_tape(TAPE, "loans")
    with _typed("`kind` must be"):
        check_tape(raw, "loan", today=dt.date(2026, 1, 1))


@pytest.mark.parametrize("loss", [np.zeros((3, 3)), np.array([1.0, math.nan, 2.0]),
                                  np.array([1.0, math.inf])],
                         ids=["2-d", "nan", "inf"])
def test_loss_distribution_of_bad_losses(loss: np.ndarray) -> None:
    """was: TypeError "only 0-dimensional arrays can be converted" (2-d); NaN and inf losses
    gave NaN measures."""
    with _typed("`paths` must be"):
        loss_distribution(loss)
    with _typed("`paths` must be"):
        loss_stats(loss)


@pytest.mark.parametrize("discount", [-0.9, -2.0, math.nan, math.inf, 1.5])
def test_run_deal_discount(paths_and_deal, discount: float) -> None:  # type: ignore[no-untyped-def]
    """was: QuantLib's RuntimeError "unable to bracket root in 1000 function evaluations"
    (-0.9, -2, NaN); 1.5 (150% a year) was accepted."""
    _, paths, deal = paths_and_deal
    with _typed("`discount` must be"):
        run_deal(deal, paths, discount=discount)


@pytest.mark.parametrize("price", [0.0, -1.0, math.nan, math.inf])
def test_run_deal_price(paths_and_deal, price: float) -> None:  # type: ignore[no-untyped-def]
    """was: accepted — an IRR of 100 (the solver's cap) at a price of 0 or -1, -0.999999 at
    NaN or inf."""
    _, paths, deal = paths_and_deal
    with _typed("`price` must be"):
        run_deal(deal, paths, price=price)


def test_run_deal_good_values(paths_and_deal) -> None:  # type: ignore[no-untyped-def]
    """The bounds keep what the dashboard and the CLI use (5%, par) and negative rates."""
    _, paths, deal = paths_and_deal
    for discount, price in ((0.05, 1.0), (-0.5, 0.98), (1.0, 1.02), (0.0, 1.0)):
        run_deal(deal, paths, discount=discount, price=price)


@pytest.fixture(scope="module")
def registry():  # type: ignore[no-untyped-def]
    return load_registry(EXAMPLES / "partners.toml")


def test_allocate_borrower_ids_of_another_length(paths_and_deal, registry) -> None:  # type: ignore[no-untyped-def]
    """was: accepted (one id for a pool of hundreds of loans), the household rule R5 then
    computed on whatever the codes lined up with."""
    loans = paths_and_deal[0]
    with _typed("`borrower_id` must be one id per loan"):
        allocate(loans, registry, as_of=dt.date(2025, 8, 31), borrower_id=np.array(["u1"]))


def test_allocate_as_of_text(paths_and_deal, registry) -> None:  # type: ignore[no-untyped-def]
    """was: TypeError "'<=' not supported between instances of 'datetime.date' and 'str'"."""
    with _typed("`as_of` must be a date"):
        allocate(paths_and_deal[0], registry, as_of=AS_OF)  # type: ignore[arg-type]

