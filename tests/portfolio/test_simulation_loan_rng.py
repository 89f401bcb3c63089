"""The per-loan float32 uniforms and event search of the granular engine's small cells
(``engines.loan_block``) against numpy itself.

Independent source: numpy's own ``Generator(PCG64).random(dtype=np.float32)`` stream, and
numpy's float64 comparisons of the float32 uniforms."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from simulation_pools import assumptions, mixed_pool

from portfolio.montecarlo import engines
from portfolio.montecarlo.simulation import block_seed, prepare_pool, simulate_batch


@given(x=st.floats(0.0, 1.0) | st.sampled_from([0.0, 1.0, 0.5 + 2.0**-30, 2.0**-26]),
       k=st.integers(0, 2**24 - 1))
def test_float32_threshold_gives_the_float64_comparison(x, k):
    u = np.float32(k * 2.0**-24)  # every float32 uniform of the stream is such a multiple
    t = engines._ceil_f32(x)
    assert (u < t) == (float(u) < x)
    assert (t <= u) == (x <= float(u))


def test_small_cell_uniforms_are_numpys_float32_stream_in_canonical_chunks(monkeypatch):
    # the uniforms handed to the per-loan kernel of the granular engine's small cells, chunk
    # after chunk, are numpy's own Generator(PCG64).random(dtype=np.float32) stream of the
    # block's idiosyncratic seed, drawn as one (paths, chunk) array after the other (every
    # cell small here, so no binomial draw comes first)
    import portfolio.montecarlo.simulation as sim

    pool = mixed_pool(1_200, seed=4)
    prep = prepare_pool(pool, assumptions(pd_scale=3.0, smm=0.05), loan_level=True,
                        small_cells=1e9)
    assert prep.n_binomial_cells == 0
    seed = block_seed(np.random.SeedSequence(5), 1)
    seen: list[np.ndarray] = []
    kernel = engines.loan_block

    def spy(u, *rest):
        seen.append(u.copy())
        kernel(u, *rest)

    monkeypatch.setattr(sim, "LOAN_CHUNK", 500)
    monkeypatch.setattr(engines, "loan_block", spy)
    out = simulate_batch(prep, 1, seed, 33, "granular")
    ref = sim._block_streams(seed)[2]
    assert [u.shape[1] for u in seen] == [500, 500, 200]
    for u in seen:
        assert np.array_equal(u, ref.random(u.shape, dtype=np.float32))
    assert out.flows[..., engines.DEFAULT].sum() > 0
