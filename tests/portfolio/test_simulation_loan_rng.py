"""The loan engine's numba PCG64 uniforms and float32 event search against numpy itself.

Independent source: numpy's own ``Generator(PCG64).random(dtype=np.float32)`` stream and
bit-generator state, and numpy's float64 comparisons of the float32 uniforms."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from simulation_pools import assumptions, mixed_pool

from portfolio.montecarlo import engines
from portfolio.montecarlo.simulation import (
    _pcg_state,
    _set_pcg_state,
    block_seed,
    prepare_pool,
    simulate_batch,
)


@given(seed=st.integers(0, 2**63), sizes=st.lists(st.integers(0, 5_000), min_size=1,
                                                  max_size=6))
def test_pcg64_random_f32_is_numpys_stream_and_state(seed, sizes):
    ref = np.random.Generator(np.random.PCG64(seed))
    ours = np.random.Generator(np.random.PCG64(seed))
    for n in sizes:  # odd sizes leave half a 64-bit draw buffered between calls
        expected = ref.random(n, dtype=np.float32)
        got = np.empty(n, dtype=np.float32)
        state = _pcg_state(ours.bit_generator)
        engines.pcg64_random_f32(got, state)
        _set_pcg_state(ours.bit_generator, state)
        assert np.array_equal(expected, got)
        assert ours.bit_generator.state == ref.bit_generator.state
    assert ours.random() == ref.random()  # the generator continues where numpy's would


def test_pcg64_random_f32_fills_a_2d_block_row_by_row():
    ref = np.random.Generator(np.random.PCG64(3)).random((40, 333), dtype=np.float32)
    ours = np.random.Generator(np.random.PCG64(3))
    got = np.empty((40, 333), dtype=np.float32)
    state = _pcg_state(ours.bit_generator)
    engines.pcg64_random_f32(got, state)
    assert np.array_equal(ref, got)


@given(x=st.floats(0.0, 1.0) | st.sampled_from([0.0, 1.0, 0.5 + 2.0**-30, 2.0**-26]),
       k=st.integers(0, 2**24 - 1))
def test_float32_threshold_gives_the_float64_comparison(x, k):
    u = np.float32(k * 2.0**-24)  # every float32 uniform of the stream is such a multiple
    t = engines._ceil_f32(x)
    assert (u < t) == (float(u) < x)
    assert (t <= u) == (x <= float(u))


def test_loan_engine_uniforms_from_numba_equal_numpys(monkeypatch):
    # the numba backend once more with numpy's own Generator.random (no state read, so the
    # fallback path draws): the same block bit for bit
    import portfolio.montecarlo.simulation as sim

    pool = mixed_pool(1_200, seed=4)
    prep = prepare_pool(pool, assumptions(pd_scale=3.0, smm=0.05), loan_level=True)
    seed = block_seed(np.random.SeedSequence(5), 1)
    fast = simulate_batch(prep, 1, seed, 33, "loan")
    monkeypatch.setattr(sim, "_pcg_state", lambda bitgen: None)
    plain = simulate_batch(prep, 1, seed, 33, "loan")
    assert np.array_equal(fast.flows, plain.flows)
    assert fast.flows[..., engines.DEFAULT].sum() > 0
