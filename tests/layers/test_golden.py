"""Golden values: note 000's worked example (scalar Elman RNN, x = [1, 2, 3]).

    h_t = tanh(0.5 x_t + 0.3 h_{t-1} + 0.1),   y_t = 0.4 h_t + 0.2,   h_0 = 0

The note rounds to three decimals: h = [0.537, 0.850, 0.952], y = [0.415, 0.540, 0.581]
(it carries the rounded h forward, so its h_2 is 0.0013 below the exact value; 0.002 covers it).
rnnkit keeps two biases, b_h = b_xh + b_hh, so the example is b_xh = 0.1, b_hh = 0.
"""
import math

import numpy as np
import pytest

import rnnkit

X = [1.0, 2.0, 3.0]
W_XH, W_HH, B_H, W_HY, B_Y = 0.5, 0.3, 0.1, 0.4, 0.2
NOTE_H = [0.537, 0.850, 0.952]
NOTE_Y = [0.415, 0.540, 0.581]


def build(dtype):
    rnn = rnnkit.RNN(1, 1, dtype=dtype, seed=0)
    rnn.params["l0.W_xh"][...] = W_XH
    rnn.params["l0.W_hh"][...] = W_HH
    rnn.params["l0.b_xh"][...] = B_H
    rnn.params["l0.b_hh"][...] = 0.0
    dense = rnnkit.Dense(1, 1, "identity", dtype=dtype, seed=0)
    dense.params["W_hy"][...] = W_HY
    dense.params["b_y"][...] = B_Y
    return rnn, dense


def run(dtype):
    rnn, dense = build(dtype)
    x = np.array(X, dtype=dtype).reshape(1, 3, 1)
    h, h_n, _ = rnn.forward(x)
    y, _ = dense.forward(h)
    return h, h_n, y


def by_hand():
    """The recursion with math.tanh in Python floats (float64)."""
    h, hs, ys = 0.0, [], []
    for x in X:
        h = math.tanh(W_XH * x + W_HH * h + B_H)
        hs.append(h)
        ys.append(W_HY * h + B_Y)
    return hs, ys


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_note_000_rounded_values(dtype):
    h, h_n, y = run(dtype)
    assert h.shape == (1, 3, 1) and y.shape == (1, 3, 1)
    np.testing.assert_allclose(h[0, :, 0], NOTE_H, atol=0.002, rtol=0)
    np.testing.assert_allclose(y[0, :, 0], NOTE_Y, atol=0.002, rtol=0)
    np.testing.assert_allclose(h_n[0, 0, 0], NOTE_H[-1], atol=0.002, rtol=0)


def test_note_000_exact_float64():
    hs, ys = by_hand()
    # sanity on the hand computation itself: tanh(0.6) is the note's first step
    assert hs[0] == math.tanh(0.6)
    h, h_n, y = run(np.float64)
    assert h.dtype == np.float64 and y.dtype == np.float64
    np.testing.assert_allclose(h[0, :, 0], hs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(y[0, :, 0], ys, rtol=0, atol=1e-12)
    assert abs(h_n[0, 0, 0] - hs[-1]) < 1e-12


def test_note_000_exact_float32_close():
    hs, ys = by_hand()
    h, _, y = run(np.float32)
    assert h.dtype == np.float32 and y.dtype == np.float32
    np.testing.assert_allclose(h[0, :, 0], hs, rtol=0, atol=1e-6)
    np.testing.assert_allclose(y[0, :, 0], ys, rtol=0, atol=1e-6)


def test_note_000_single_bias_split_does_not_matter():
    """b_h may be split any way between b_xh and b_hh: only the sum enters."""
    hs, _ = by_hand()
    rnn, _ = build(np.float64)
    rnn.params["l0.b_xh"][...] = 0.25
    rnn.params["l0.b_hh"][...] = B_H - 0.25
    h, _, _ = rnn.forward(np.array(X).reshape(1, 3, 1))
    np.testing.assert_allclose(h[0, :, 0], hs, rtol=0, atol=1e-12)


def test_note_000_gradients_by_hand():
    """BPTT of L = sum_t y_t by hand (chain rule on the scalar recursion), float64."""
    hs, _ = by_hand()
    rnn, dense = build(np.float64)
    x = np.array(X).reshape(1, 3, 1)
    h, _, c_rnn = rnn.forward(x)
    y, c_dense = dense.forward(h)
    dh = dense.backward(np.ones_like(y), c_dense)
    dx, dh0 = rnn.backward(dh, None, c_rnn)
    # by hand
    d_next = 0.0                        # dL/dh_t coming from step t+1
    g = {"W_xh": 0.0, "W_hh": 0.0, "b": 0.0}
    dxs, dh_prev = [0.0] * 3, 0.0
    for t in (2, 1, 0):
        dh_t = W_HY + d_next
        da = dh_t * (1 - hs[t] ** 2)
        hp = hs[t - 1] if t else 0.0
        g["W_xh"] += da * X[t]
        g["W_hh"] += da * hp
        g["b"] += da
        dxs[t] = da * W_XH
        d_next = da * W_HH
    dh_prev = d_next
    assert abs(dense.grads["W_hy"][0, 0] - sum(hs)) < 1e-12
    assert abs(dense.grads["b_y"][0] - 3.0) < 1e-12
    assert abs(rnn.grads["l0.W_xh"][0, 0] - g["W_xh"]) < 1e-12
    assert abs(rnn.grads["l0.W_hh"][0, 0] - g["W_hh"]) < 1e-12
    assert abs(rnn.grads["l0.b_xh"][0] - g["b"]) < 1e-12
    assert abs(rnn.grads["l0.b_hh"][0] - g["b"]) < 1e-12
    np.testing.assert_allclose(dx[0, :, 0], dxs, rtol=0, atol=1e-12)
    assert abs(dh0[0, 0, 0] - dh_prev) < 1e-12
