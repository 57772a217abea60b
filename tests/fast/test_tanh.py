"""The compiled float32 tanh (rnnkit.fast.kernels.fastmath): its error bound, and saturation
to exactly +-1 where float32's own tanh is +-1, so that a saturated unit passes no gradient."""
import numba  # noqa: F401  (the test extra installs it; these tests must run in CI)
import numpy as np

import rnnkit
from rnnkit.fast import kernels
from rnnkit.fast.kernels.fastmath import tanh_into


def test_fast_tanh_error_is_bounded_everywhere():
    x = np.linspace(-20, 20, 400_001, dtype=np.float32).reshape(1, -1)
    out = np.empty_like(x)
    tanh_into(x, out)
    exact = np.tanh(x.astype(np.float64))
    assert np.abs(out - exact).max() < 5e-7                      # ~2 ulp near 1
    np.testing.assert_array_equal(out, -out[:, ::-1])           # odd
    assert np.all(np.abs(out) <= 1.0)


def test_fast_tanh_saturates_like_float32_and_its_slope_vanishes():
    """From |x| = 9.02 float32's tanh is +-1 exactly, and so 1 - h^2 is 0 (PyTorch's too): the
    compiled tanh (clamped at 7.9 for its rational form) must say so, not 0.99999976."""
    x = np.array([[9.1, 9.5, 12.0, 40.0, 1e30, -9.1, -15.0, -1e30]], np.float32)
    out = np.empty_like(x)
    tanh_into(x, out)
    exact = np.tanh(x.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(out, exact)
    assert np.all(1 - out * out == 0)
    nan = np.full((1, 1), np.nan, np.float32)
    tanh_into(nan, out[:, :1])
    assert np.isnan(out[0, 0])


def test_a_saturated_unit_passes_no_gradient_as_in_float64():
    """An Elman step whose pre-activation is far past saturation: dL/dW_hh, dL/dx are 0 in
    the compiled path as in float64 (before, 1 - h^2 stayed at 4.8e-7)."""
    layer = rnnkit.RNN(1, 1, seed=0)
    layer.params["l0.W_xh"][...] = 30.0
    layer.params["l0.W_hh"][...] = 0.5
    x = np.ones((1, 3, 1), np.float32)
    out, _, cache = layer.forward(x)
    dx, _ = layer.backward(np.ones_like(out), None, cache)
    assert kernels.select(layer.cell, np.float32, 1, 1) is not None
    np.testing.assert_array_equal(out, 1.0)
    np.testing.assert_array_equal(dx, 0.0)
    assert layer.grads["l0.W_hh"][0, 0] == 0 and layer.grads["l0.W_xh"][0, 0] == 0
