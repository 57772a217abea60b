"""The layer-normalised cells' fast scan (rnnkit.fast.lnscan) is pinned to their NumPy
reference (rnnkit.cells.lnlstm, lngru) in float32."""
import numba  # noqa: F401  (the test extra installs it; these tests must run in CI)
import numpy as np
import pytest

from rnnkit.fast import blas, kernels, lnscan
from rnnkit.fast.kernels.fastmath import get_num_threads
from rnnkit.layers import LayerNormGRU, LayerNormLSTM

LAYERS = {"lnlstm": LayerNormLSTM, "lngru": LayerNormGRU}
# the loop's recurrent product: MKL's or OpenBLAS's sgemm called from the loop, or its own;
# and its batch on one thread or split over the threads
LOOPS = ("library", "library, split", "own product", "own product, split")


def set_loop(monkeypatch, loop):
    monkeypatch.setattr(kernels, "MIN_SPAN_ROWS", 1 if "split" in loop else 1 << 20)
    if "own" in loop:
        monkeypatch.setattr(lnscan, "_threads",
                            lambda N: (0, kernels.loop_parts(N)))


def run(layer, x, lengths, state, R, S):
    layer.zero_grad()
    out, h_n, cache = layer.forward(x, state, lengths)
    dx, d0 = layer.backward(R, S, cache)
    as_list = (lambda s: list(s) if isinstance(s, tuple) else [s])
    return [out, *as_list(h_n), dx, *as_list(d0),
            *[layer.grads[k].copy() for k in sorted(layer.grads)]], cache


def case(cell, per_gate, bidirectional, seed=0):
    rng = np.random.default_rng(seed)
    N, T, D, H = 5, 7, 4, 16
    dirs = 2 if bidirectional else 1
    layer = LAYERS[cell](D, H, 2, bidirectional=bidirectional, per_gate=per_gate, seed=1)
    for name, p in layer.params.items():      # away from gains 1, biases 0
        p[...] = rng.standard_normal(p.shape) * 0.3 + (1.0 if "gamma" in name else 0.0)
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    h0 = rng.standard_normal((2 * dirs, N, H)).astype(np.float32)
    R = rng.standard_normal((N, T, dirs * H)).astype(np.float32)
    lstm = cell == "lnlstm"
    state = (h0, h0[::-1].copy()) if lstm else h0
    S = (h0 * 0.5, h0 * 0.25) if lstm else h0 * 0.5
    return layer, x, np.array([3, 7, 1, 6, 7]), state, R, S


def assert_pinned(fast, ref):
    """float32 rounding, and the loops' rational tanh (error < 5e-7), which each layer norm's
    1/std then scales up step after step: 2e-5 of each array's scale (a wrong term is O(1))."""
    for a, b in zip(fast, ref):
        scale = max(np.abs(b).max(), 1e-3)
        assert np.abs(a - b).max() <= 2e-5 * scale


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("per_gate", [False, True])
@pytest.mark.parametrize("cell", ["lnlstm", "lngru"])
def test_fast_path_equals_reference(cell, per_gate, bidirectional, loop, monkeypatch):
    set_loop(monkeypatch, loop)
    layer, x, lengths, state, R, S = case(cell, per_gate, bidirectional)
    fast, cache = run(layer, x, lengths, state, R, S)
    with kernels.reference_only():
        ref, ref_cache = run(layer, x, lengths, state, R, S)
    assert "steps" not in cache["layers"][0][1][0]          # the fast scan ran it...
    assert "steps" in ref_cache["layers"][0][1][0]          # ...and the reference this one
    assert_pinned(fast, ref)
    if "split" in loop and kernels.shared_openmp() and get_num_threads() > 1:
        assert kernels.loop_parts(x.shape[0]) > 1
    if "own" not in loop:
        assert lnscan._threads(5)[0] == blas.gemm_address()


@pytest.mark.parametrize("cell", ["lnlstm", "lngru"])
def test_inference_and_stepping_equal_the_training_forward(cell):
    layer, x, lengths, state, _, _ = case(cell, False, False)
    out, s_train, _ = layer.forward(x, state, lengths)
    out_inf, s_inf, cache = layer.forward(x, state, lengths, grad=False)
    assert cache is None
    np.testing.assert_array_equal(out_inf, out)
    for a, b in zip(s_inf if isinstance(s_inf, tuple) else (s_inf,),
                    s_train if isinstance(s_train, tuple) else (s_train,)):
        np.testing.assert_array_equal(a, b)
    full, _, _ = layer.forward(x, state, grad=False)
    with layer.frozen():
        step = layer.stepper(state)
        stepped = np.stack([step(x[:, t]) for t in range(x.shape[1])], axis=1)
    np.testing.assert_allclose(stepped, full, rtol=0, atol=1e-6)


def test_float32_takes_the_fast_scan_and_float64_the_reference():
    assert isinstance(LayerNormLSTM(3, 4).cell, lnscan.LayerNormCell)
    layer = LayerNormGRU(3, 4, dtype=np.float64)
    _, _, cache = layer.forward(np.zeros((2, 3, 3)))
    assert "steps" in cache["layers"][0][1][0]
