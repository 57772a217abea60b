"""User errors: each raises RnnkitError (a ValueError) naming the argument, what was expected
and what was received ("NAME: expected X, got Y")."""
import re

import numpy as np
import pytest

import rnnkit
from rnnkit import GRU, LSTM, RNN, Dense, Embedding, RnnkitError, last_step_forward

N, T, D, H = 2, 4, 3, 5


def raises(fn, name, expected, got):
    """fn() raises RnnkitError 'name: expected ..., got ...' containing the given pieces."""
    with pytest.raises(RnnkitError, match=r"^" + re.escape(name) + r": expected ") as info:
        fn()
    msg = str(info.value)
    exp_part, _, got_part = msg.partition(", got ")
    for piece in ([expected] if isinstance(expected, str) else expected):
        assert piece in exp_part, msg
    for piece in ([got] if isinstance(got, str) else got):
        assert piece in got_part, msg
    return msg


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((N, T, D)).astype(np.float32)


def test_rnnkit_error_is_a_value_error():
    assert issubclass(RnnkitError, ValueError)
    assert rnnkit.RnnkitError is RnnkitError
    with pytest.raises(ValueError):
        RNN(D, H).forward(np.zeros((N, T)))


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_x_wrong_rank(cls):
    layer = cls(D, H)
    raises(lambda: layer.forward(np.zeros((5, 3), np.float32)), "x", ["3-d", "(N, T, D)"],
           "shape (5, 3)")
    raises(lambda: layer.forward(np.zeros((1, 2, 3, 3), np.float32)), "x", "3-d",
           "shape (1, 2, 3, 3)")
    raises(lambda: layer.forward([[[0.0] * D]]), "x", "NumPy array", "list")


def test_x_wrong_feature_size():
    layer = LSTM(D, H)
    raises(lambda: layer.forward(np.zeros((N, T, D + 2), np.float32)), "x", "shape (*, *, 3)",
           ["shape (2, 4, 5)", "axis 2 is 5, not 3"])


def test_x_wrong_dtype(x):
    raises(lambda: RNN(D, H).forward(x.astype(np.float64)), "x", "dtype float32",
           "dtype float64")
    raises(lambda: GRU(D, H, dtype=np.float64).forward(x), "x", "dtype float64",
           "dtype float32")
    raises(lambda: LSTM(D, H).forward(np.ones((N, T, D), np.int64)), "x", "dtype float32",
           "dtype int64")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_x_not_finite(x, bad):
    x[1, 2, 0] = bad
    x[0, 0, 1] = bad
    raises(lambda: RNN(D, H).forward(x), "x", "finite", "2 NaN or infinite")


def test_x_zero_steps():
    raises(lambda: RNN(D, H).forward(np.zeros((N, 0, D), np.float32)), "x",
           "at least one time step", "T = 0")


@pytest.mark.parametrize("lengths,got", [([0, 3], "min 0"), ([4, 5], "max 5"),
                                         ([-1, 2], "min -1")])
def test_lengths_out_of_range(x, lengths, got):
    raises(lambda: LSTM(D, H).forward(x, None, np.array(lengths)), "lengths", "[1, 4]", got)


def test_lengths_wrong_shape(x):
    raises(lambda: RNN(D, H).forward(x, None, np.array([3, 3, 3])), "lengths",
           "1-d array of 2 integers", "shape (3,)")
    raises(lambda: RNN(D, H).forward(x, None, np.array([[3], [3]])), "lengths",
           "1-d array of 2 integers", "shape (2, 1)")
    raises(lambda: RNN(D, H).forward(x, None, np.int64(3)), "lengths",
           "1-d array of 2 integers", "shape ()")


def test_lengths_float_dtype(x):
    raises(lambda: GRU(D, H).forward(x, None, np.array([2.0, 3.0])), "lengths", "integers",
           "dtype float64")


def test_state_wrong_shape(x):
    layer = GRU(D, H, num_layers=2)
    raises(lambda: layer.forward(x, np.zeros((1, N, H), np.float32)), "state",
           "shape (2, 2, 5)", "shape (1, 2, 5)")
    raises(lambda: layer.forward(x, np.zeros((2, N + 1, H), np.float32)), "state",
           "shape (2, 2, 5)", "shape (2, 3, 5)")
    raises(lambda: layer.forward(x, np.zeros((N, H), np.float32)), "state",
           "3-d", "shape (2, 5)")
    raises(lambda: layer.forward(x, np.zeros((2, N, H), np.float64)), "state",
           "dtype float32", "dtype float64")
    bi = RNN(D, H, bidirectional=True)
    raises(lambda: bi.forward(x, np.zeros((1, N, H), np.float32)), "state",
           "shape (2, 2, 5)", "shape (1, 2, 5)")


def test_lstm_state_not_a_tuple(x):
    layer = LSTM(D, H)
    h = np.zeros((1, N, H), np.float32)
    raises(lambda: layer.forward(x, h), "state", "tuple (h, c)", "ndarray")
    raises(lambda: layer.forward(x, [h, h]), "state", "tuple (h, c)", "list")
    raises(lambda: layer.forward(x, (h,)), "state", "tuple (h, c)", "tuple")
    raises(lambda: layer.forward(x, (h, np.zeros((1, N, H + 1), np.float32))), "state[1]",
           "shape (1, 2, 5)", "shape (1, 2, 6)")


def test_state_not_finite(x):
    h = np.zeros((1, N, H), np.float32)
    h[0, 1, 2] = np.nan
    raises(lambda: RNN(D, H).forward(x, h), "state", "finite", "1 NaN")


def test_dout_wrong_shape(x):
    layer = RNN(D, H, bidirectional=True)
    _, _, cache = layer.forward(x)
    raises(lambda: layer.backward(np.zeros((N, T, H), np.float32), None, cache), "dout",
           "shape (2, 4, 10)", "shape (2, 4, 5)")
    raises(lambda: layer.backward(np.zeros((N, T), np.float32), None, cache), "dout",
           "3-d", "shape (2, 4)")
    raises(lambda: layer.backward(np.zeros((N, T, 2 * H), np.float64), None, cache), "dout",
           "dtype float32", "dtype float64")
    raises(lambda: layer.backward(None, np.zeros((1, N, H), np.float32), cache), "dstate",
           "shape (2, 2, 5)", "shape (1, 2, 5)")
    lstm = LSTM(D, H)
    _, _, cache = lstm.forward(x)
    raises(lambda: lstm.backward(None, np.zeros((1, N, H), np.float32), cache), "dstate",
           "tuple (h, c)", "ndarray")


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_backward_consumes_the_cache_but_a_rejected_call_does_not(cls, x):
    """The fast kernels overwrite the cached gates with their gradients, so a second backward
    through one forward would differentiate garbage: it is refused, by name."""
    layer = cls(D, H)
    out, _, cache = layer.forward(x)
    raises(lambda: layer.backward(np.zeros((N, T), np.float32), None, cache), "dout", "3-d",
           "shape (2, 4)")
    dx, _ = layer.backward(np.ones_like(out), None, cache)    # the bad call left it usable
    _, _, fresh = layer.forward(x)
    dx_again, _ = layer.backward(np.ones_like(out), None, fresh)
    np.testing.assert_array_equal(dx, dx_again)
    raises(lambda: layer.backward(np.ones_like(out), None, cache), "cache",
           "one backward per forward", "already used")


def test_dense_errors():
    dense = Dense(4, 3)
    raises(lambda: dense.forward(np.zeros((2, 5), np.float32)), "h", "shape (*, 4)",
           ["shape (2, 5)", "axis 1 is 5, not 4"])
    raises(lambda: dense.forward(np.zeros((2, 3, 5), np.float32)), "h", "shape (*, *, 4)",
           ["shape (2, 3, 5)", "axis 2 is 5, not 4"])
    raises(lambda: dense.forward(np.zeros(4, np.float32)), "h", "2-d (N, H) or 3-d",
           "shape (4,)")
    raises(lambda: dense.forward(np.zeros((2, 4), np.float64)), "h", "dtype float32",
           "dtype float64")
    y, cache = dense.forward(np.zeros((2, 4), np.float32))
    raises(lambda: dense.backward(np.zeros((2, 4), np.float32), cache), "dy", "shape (2, 3)",
           "shape (2, 4)")
    raises(lambda: Dense(4, 3, "relu"), "activation", ["identity", "softmax", "sigmoid"],
           "'relu'")


def test_embedding_errors():
    emb = Embedding(10, 3)
    raises(lambda: emb.forward(np.array([[1, 10]])), "ids", "[0, 9]", "max 10")
    raises(lambda: emb.forward(np.array([[-1, 2]])), "ids", "[0, 9]", "min -1")
    raises(lambda: emb.forward(np.array([[1.0, 2.0]])), "ids", "integer", "dtype float64")


def test_last_step_errors():
    out = np.zeros((N, T, 3))
    raises(lambda: last_step_forward(out, np.array([1, 5])), "lengths", "[1, 4]", "max 5")
    raises(lambda: last_step_forward(out, np.array([1.0, 2.0])), "lengths", "integers",
           "dtype float64")
    raises(lambda: last_step_forward(np.zeros((N, T))), "out", "3-d", "shape (2, 4)")


@pytest.mark.parametrize("kwargs,name,expected,got", [
    (dict(nonlinearity="sigmoid"), "nonlinearity", "'tanh', 'relu'", "'sigmoid'"),
    (dict(init="xavier"), "init", ["pytorch", "glorot_orthogonal", "irnn"], "'xavier'"),
    (dict(dropout=1.0), "dropout", "[0, 1)", "1.0"),
    (dict(dropout=-0.1), "dropout", "[0, 1)", "-0.1"),
    (dict(hidden_size=0), "hidden_size", "positive integer", "0"),
    (dict(hidden_size=2.5), "hidden_size", "positive integer", "2.5"),
    (dict(input_size=0), "input_size", "positive integer", "0"),
    (dict(num_layers=0), "num_layers", "positive integer", "0"),
    (dict(bidirectional=True, reverse=True), "reverse", "False when bidirectional=True",
     "True"),
    (dict(dtype=np.int32), "dtype", "float32 or float64", "int32"),
    (dict(dtype=int), "dtype", "float32 or float64", "int64"),
    (dict(dtype=np.float16), "dtype", "float32 or float64", "float16"),
])
def test_constructor_errors(kwargs, name, expected, got):
    args = dict(input_size=D, hidden_size=H)
    args.update({k: kwargs.pop(k) for k in ("input_size", "hidden_size") if k in kwargs})
    raises(lambda: RNN(args["input_size"], args["hidden_size"], **kwargs), name, expected, got)
    if name != "nonlinearity":
        raises(lambda: LSTM(args["input_size"], args["hidden_size"], **kwargs), name,
               expected, got)
        raises(lambda: GRU(args["input_size"], args["hidden_size"], **kwargs), name,
               expected, got)
