"""rnnkit.fast.fused.history: the states before each step, derived instead of kept."""
import numpy as np
import pytest

from rnnkit.fast.fused import history
from rnnkit.fast.kernels import fastmath

T, N, H, G = 6, 5, 3, 4
LENS = np.array([6, 6, 4, 2, 1])                # sorted, longest first, as the scans keep them


def layout(rng, reverse):
    """States after each step as a scan leaves them (zero at padded steps), the initial
    states, and the states before each step written out row by row from the recurrence."""
    n_active = (LENS[None, :] > np.arange(T)[:, None]).sum(axis=1)
    seq = np.zeros((T, N, H))
    before = np.zeros((T, N, H))
    init = rng.standard_normal((N, H))
    for r, length in enumerate(LENS):
        steps = range(length - 1, -1, -1) if reverse else range(length)
        state = init[r]
        for t in steps:
            before[t, r] = state
            seq[t, r] = state = rng.standard_normal(H)
    return seq, init, n_active, before


@pytest.mark.parametrize("reverse", [False, True])
def test_previous_and_shifted_give_the_state_before_each_step(reverse):
    seq, init, n_active, before = layout(np.random.default_rng(0), reverse)
    scratch = np.full((N, H), np.nan)
    for t in range(T):
        n = n_active[t]
        np.testing.assert_array_equal(
            history.previous(seq, init, n_active, reverse, t, n, scratch), before[t, :n])
    np.testing.assert_array_equal(history.shifted(seq, init, n_active, reverse), before)


@pytest.mark.parametrize("reverse", [False, True])
def test_product_equals_the_sum_over_steps(reverse):
    rng = np.random.default_rng(1)
    seq, init, n_active, before = layout(rng, reverse)
    dA = rng.standard_normal((T, N, G))
    for t in range(T):
        dA[t, n_active[t]:] = 0                  # the scans' gradients are zero at padding
    expected = sum(dA[t].T @ before[t] for t in range(T))
    np.testing.assert_allclose(history.product(dA, seq, init, n_active, reverse), expected,
                               rtol=1e-12, atol=1e-12)
    for cuts in ([0, 2, 5, 6], [0, 1, 3, 6], [0, 6]):       # ranges of steps, summed up
        got = np.zeros((G, H))
        for t0, t1 in zip(cuts[:-1], cuts[1:]):
            history.product(dA[t0:t1], seq, init, n_active, reverse, into=got, t0=t0)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, err_msg=str(cuts))


def test_a_single_step_reads_only_the_initial_states():
    rng = np.random.default_rng(2)
    seq, init, dA = rng.standard_normal((1, N, H)), rng.standard_normal((N, H)), \
        rng.standard_normal((1, N, G))
    n_active = np.array([N])
    for reverse in (False, True):
        np.testing.assert_allclose(history.product(dA, seq, init, n_active, reverse),
                                   dA[0].T @ init, rtol=1e-12)


@pytest.mark.parametrize("reverse", [False, True])
def test_zero_initial_states_take_no_product(reverse, monkeypatch):
    """They add nothing: a batch-1 step's 512 x 1 @ 1 x 128 took 0.3-0.4 ms in NumPy."""
    rng = np.random.default_rng(3)
    seq, init, n_active, before = layout(rng, reverse)
    dA = rng.standard_normal((T, N, G))
    for t in range(T):
        dA[t, n_active[t]:] = 0
        before[t][np.all(before[t] == init, axis=1)] = 0        # the states before any step
    calls, real = [], history.blas.matmul
    monkeypatch.setattr(history.blas, "matmul", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = history.product(dA, seq, np.zeros_like(init), n_active, reverse)
    np.testing.assert_allclose(got, sum(dA[t].T @ before[t] for t in range(T)), rtol=1e-12,
                               atol=1e-12)
    assert len(calls) == 1                      # the shifted sequence's product alone
    history.product(dA, seq, init, n_active, reverse)
    assert len(calls) == 3                      # and with states, theirs too


@pytest.mark.skipif(not fastmath.AVAILABLE, reason="the compiled version needs numba")
@pytest.mark.parametrize("reverse", [False, True])
def test_compiled_previous_rows_matches(reverse):
    """Also for a span of the batch, rows [r0, r1), as a whole loop split over threads reads."""
    from numba import njit

    @njit
    def rows(seq, init, n_active, reverse, t, n, scratch, r0):
        return fastmath.previous_rows(seq, init, n_active, reverse, t, n, scratch, r0)[:n].copy()

    seq, init, n_active, before = layout(np.random.default_rng(3), reverse)
    for r0, r1 in [(0, N), (0, 2), (1, 3), (2, N), (N - 1, N)]:
        scratch = np.full((N, H), np.nan)
        for t in range(T):
            n = fastmath.span_rows(n_active[t], r0, r1)
            np.testing.assert_array_equal(rows(seq, init, n_active, reverse, t, n, scratch, r0),
                                          before[t, r0:r0 + n])
