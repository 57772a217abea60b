"""rnnkit.fast.kernels.columns: inference loops split by hidden units, pinned to the reference."""
import numba
import numpy as np
import pytest

import rnnkit
from rnnkit.fast import blas, kernels, openblas, setting
from rnnkit.fast.kernels import columns
from test_kernels import CELLS, assert_pinned

library = openblas.bundled()
pytestmark = pytest.mark.skipif(library is None or not kernels.shared_openmp(),
                                reason="needs rnnkit[fast]: scipy-openblas32, MKL on GNU OpenMP")
# the units split runs only over two threads or more (kernels.units_split)
two_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                 reason="the units split needs NUMBA_NUM_THREADS >= 2")
KINDS = {"rnn_tanh": columns.RNN_TANH, "rnn_relu": columns.RNN_RELU, "lstm": columns.LSTM,
         "gru": columns.GRU}


@pytest.fixture
def by_units(monkeypatch):
    """Every inference scan takes the units split (as where MKL is not tuned); -> the
    calls of columns.run: (kind, parts)."""
    setting.keep(tuned=False)
    monkeypatch.setattr(kernels, "UNITS_SPLIT_ROWS", 1)
    monkeypatch.setattr(kernels, "UNITS_SPLIT_BYTES", 0)
    calls = []
    real = columns.run

    def spy(kind, *args, **kw):
        calls.append(kind)
        return real(kind, *args, **kw)
    monkeypatch.setattr(columns, "run", spy)
    return calls


def infer(layer, x, state, lengths):
    out, h_n, _ = layer.forward(x, state, lengths, grad=False)
    return [out, *(h_n if isinstance(h_n, tuple) else (h_n,))]


@two_threads
@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("in_loop", [False, True])
def test_units_split_inference_equals_reference(cell, bidirectional, in_loop, by_units,
                                                monkeypatch):
    """2 layers, padded rows (they keep their states), both directions, given states, the
    input projected before the loop or in it (its features strided: the loop reads x[t] of
    a batch-first array)."""
    monkeypatch.setattr(kernels, "MKL_PROJECTION_ROWS", 1 if in_loop else 1 << 20)
    rng = np.random.default_rng(3)
    N, T, D, H = 5, 8, 4, 7
    dirs = 2 if bidirectional else 1
    layer = CELLS[cell](D, H, 2, bidirectional=bidirectional, seed=2)
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    h0 = rng.standard_normal((2 * dirs, N, H)).astype(np.float32)
    state = (h0, h0[::-1].copy()) if cell == "lstm" else h0
    lengths = np.array([8, 3, 8, 1, 5])
    fast = infer(layer, x, state, lengths)
    assert by_units == [KINDS[cell]] * 2 * dirs
    with kernels.reference_only():
        ref = infer(layer, x, state, lengths)
    assert_pinned(fast, ref)
    assert np.all(fast[0][1, 3:] == 0)                       # padded steps: zero outputs


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("parts,threads,in_loop", [(5, 2, True), (2, 6, False), (3, 1, True),
                                                   (7, 3, False)])
def test_any_parts_over_any_threads(cell, parts, threads, in_loop):
    """More parts than threads (a thread takes several), more threads than parts (some wait
    every step), one thread running every part, and parts of no units (H = 7 in 7 parts of 1
    unit, 5 parts of 2, 2, 2, 1, 0): the loop finishes with the reference's values."""
    from rnnkit.layers import scan as reference
    rng = np.random.default_rng(parts * 10 + threads)
    N, T, D, H = 4, 6, 3, 7
    layer = CELLS[cell](D, H, seed=5)
    p = {name[3:]: v for name, v in layer.params.items()}         # (without "l0.")
    x = rng.standard_normal((T, N, D)).astype(np.float32)
    h0 = rng.standard_normal((N, H)).astype(np.float32)
    c0 = rng.standard_normal((N, H)).astype(np.float32) if cell == "lstm" else None
    n_active = np.array([4, 4, 3, 3, 2, 1])
    h, c = h0.copy(), (c0.copy() if c0 is not None else None)
    out = np.zeros((T, N, H), np.float32)
    columns.run(KINDS[cell], library, layer.cell.prepare(p), x, h, c, n_active, False, out,
                in_loop, parts=parts, threads=threads)
    states0 = (h0,) if c0 is None else (h0, c0)
    ref_out, ref_states, _ = reference.scan_forward(layer.spec, layer.options, p, x, states0,
                                                    n_active, False)
    assert_pinned([out, h, *([c] if c is not None else [])], [ref_out, *ref_states])


@two_threads
def test_the_split_is_chosen_for_inference_by_rows_and_weights(monkeypatch):
    """Not for training, nor below UNITS_SPLIT_ROWS rows or UNITS_SPLIT_BYTES of weights in
    the loop, nor where MKL is tuned, nor on one thread."""
    setting.keep(tuned=False)
    lstm = rnnkit.LSTM(128, 256).cell                       # 1 MB of W_hh
    assert kernels.select(lstm, np.float32, 64, 256, 128, train=False).by_units == library
    assert kernels.select(lstm, np.float32, 64, 256, 128, train=True).by_units is None
    assert kernels.select(lstm, np.float32, kernels.UNITS_SPLIT_ROWS - 1, 256, 128,
                          train=False).by_units is None
    small = rnnkit.LSTM(64, 128).cell                         # 256 KB
    assert kernels.select(small, np.float32, 64, 128, 64, train=False).by_units is None
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        assert kernels.select(lstm, np.float32, 64, 256, 128, train=False).by_units is None
    finally:
        numba.set_num_threads(before)
    setting.keep(tuned=True)
    assert kernels.select(lstm, np.float32, 64, 256, 128, train=False).by_units is None


def test_split_rows_puts_each_parts_gates_one_after_the_other():
    W = np.arange(3 * 5 * 2, dtype=np.float32).reshape(15, 2)       # G = 3, H = 5, K = 2
    parts = columns.split_rows(W, 3, 2)                             # units 0-2, 3-4
    assert parts.shape == (2, 9, 2)
    np.testing.assert_array_equal(parts[0], W[[0, 1, 2, 5, 6, 7, 10, 11, 12]])
    np.testing.assert_array_equal(parts[1][:6], W[[3, 4, 8, 9, 13, 14]])
    np.testing.assert_array_equal(parts[1][6:], 0)


def test_atomic_add_counts_every_increment_across_threads():
    @numba.njit(parallel=True)
    def count(counters, n):
        for k in numba.prange(8):
            for _ in range(n):
                columns.atomic_add(counters, k % 2, 1)
        return columns.atomic_read(counters, 0) + columns.atomic_read(counters, 1)

    counters = np.zeros(2, np.int64)
    assert count(counters, 20000) == 160000
    assert list(counters) == [80000, 80000]
