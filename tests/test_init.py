"""Initialisation schemes, seeding and dtype propagation."""
import numpy as np
import pytest
from layer_cases import CELLS, arrays, make

from rnnkit import GRU, LSTM, RNN, Dense, Embedding

N, T, D, H = 3, 6, 3, 4
LENGTHS = np.array([4, 2, 6])

GATES = {"rnn_tanh": 1, "lstm": 4, "gru_after": 3}


@pytest.mark.parametrize("cell", list(GATES))
def test_init_pytorch_bounds(cell):
    layer = make(cell, D, H, num_layers=2, bidirectional=True, init="pytorch", seed=1)
    bound = 1 / np.sqrt(H)
    G = GATES[cell]
    assert len(layer.params) == 2 * 2 * 4
    for name, p in layer.params.items():
        d_in = D if name.startswith("l0") else 2 * H
        expect = {"W_xh": (G * H, d_in), "W_hh": (G * H, H), "b_xh": (G * H,),
                  "b_hh": (G * H,)}[name.split(".")[1]]
        assert p.shape == expect, name
        assert p.dtype == np.float32
        assert np.all(np.abs(p) <= bound), name
        assert len(np.unique(p)) == p.size, name            # not all equal: all distinct
    allp = np.concatenate([p.ravel() for p in layer.params.values()])
    assert allp.max() > 0.9 * bound and allp.min() < -0.9 * bound   # spread over the range
    assert abs(allp.mean()) < 0.1 * bound


@pytest.mark.parametrize("cell", list(GATES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_init_glorot_orthogonal(cell, dtype):
    layer = make(cell, D, H, num_layers=2, bidirectional=True, init="glorot_orthogonal",
                 dtype=dtype, seed=2)
    G = GATES[cell]
    atol = 1e-5 if dtype == np.float32 else 1e-12
    for name, p in layer.params.items():
        assert p.dtype == dtype
        kind = name.split(".")[1]
        if kind == "W_hh":
            for g in range(G):
                B = p[g * H:(g + 1) * H].astype(np.float64)
                np.testing.assert_allclose(B.T @ B, np.eye(H), rtol=0, atol=atol, err_msg=name)
                np.testing.assert_allclose(B @ B.T, np.eye(H), rtol=0, atol=atol, err_msg=name)
                assert not np.allclose(np.abs(B), np.eye(H))       # not a signed identity
            if G > 1:
                assert not np.allclose(p[:H], p[H:2 * H])          # one block per gate
        elif kind == "W_xh":
            d_in = p.shape[1]
            bound = np.sqrt(6 / (H + d_in))
            assert np.all(np.abs(p) <= bound) and np.abs(p).max() > bound / 4
        else:
            np.testing.assert_array_equal(p, 0)


@pytest.mark.parametrize("cell", ["rnn_relu", "lstm", "gru_before"])
def test_init_irnn(cell):
    layer = make(cell, D, H, num_layers=2, init="irnn", seed=3)
    G = {"rnn_relu": 1, "lstm": 4, "gru_before": 3}[cell]
    for name, p in layer.params.items():
        kind = name.split(".")[1]
        if kind == "W_hh":
            for g in range(G):
                np.testing.assert_array_equal(p[g * H:(g + 1) * H], np.eye(H))
        elif kind == "W_xh":
            assert np.abs(p).max() < 0.01 and np.std(p) > 1e-4
        else:
            np.testing.assert_array_equal(p, 0)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_forget_bias(bidirectional):
    layer = LSTM(D, H, num_layers=2, bidirectional=bidirectional, forget_bias=1.0, seed=4)
    ref = LSTM(D, H, num_layers=2, bidirectional=bidirectional, seed=4)
    names = [n for n in layer.params if n.endswith(".b_xh")]
    assert len(names) == 2 * (2 if bidirectional else 1)
    for name, p in layer.params.items():
        if name.endswith(".b_xh"):
            np.testing.assert_array_equal(p[H:2 * H], 1.0)
            np.testing.assert_array_equal(p[:H], ref.params[name][:H])   # other gates untouched
            np.testing.assert_array_equal(p[2 * H:], ref.params[name][2 * H:])
        elif name.endswith(".b_hh"):
            np.testing.assert_array_equal(p[H:2 * H], 0.0)
            np.testing.assert_array_equal(p[:H], ref.params[name][:H])
        else:
            np.testing.assert_array_equal(p, ref.params[name])
    # effective forget bias (b_xf + b_hf) is 1: with zero weights f = sigmoid(1)
    z = LSTM(1, 1, forget_bias=1.0, dtype=np.float64, seed=0)
    for name in ("l0.W_xh", "l0.W_hh"):
        z.params[name][...] = 0
    z.params["l0.b_xh"][[0, 2, 3]] = [50.0, 0.0, 50.0]     # i = 1, C~ = 0, o = 1
    z.params["l0.b_hh"][[0, 2, 3]] = 0.0
    c0 = np.full((1, 1, 1), 2.0)
    _, (h, c), _ = z.forward(np.zeros((1, 1, 1)), (np.zeros((1, 1, 1)), c0))
    np.testing.assert_allclose(c[0, 0, 0], 2.0 / (1 + np.exp(-1.0)), rtol=1e-12)


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_seeding(cls):
    a, b, c = cls(D, H, num_layers=2, seed=7), cls(D, H, num_layers=2, seed=7), \
        cls(D, H, num_layers=2, seed=8)
    g = cls(D, H, num_layers=2, seed=np.random.default_rng(7))
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
        np.testing.assert_array_equal(a.params[k], g.params[k])   # Generator(7) == seed 7
        assert not np.array_equal(a.params[k], c.params[k])
    # one Generator shared by two layers: it is consumed, so they differ
    rng = np.random.default_rng(1)
    l1, l2 = cls(D, H, seed=rng), cls(D, H, seed=rng)
    assert not np.array_equal(l1.params["l0.W_hh"], l2.params["l0.W_hh"])
    # Dense and Embedding are seeded the same way
    np.testing.assert_array_equal(Dense(4, 3, seed=5).params["W_hy"], Dense(4, 3, seed=5).params["W_hy"])
    assert not np.array_equal(Dense(4, 3, seed=5).params["W_hy"], Dense(4, 3, seed=6).params["W_hy"])
    np.testing.assert_array_equal(Embedding(5, 2, seed=np.random.default_rng(3)).params["E"],
                                  Embedding(5, 2, seed=3).params["E"])
    assert not np.array_equal(Embedding(5, 2, seed=3).params["E"], Embedding(5, 2, seed=4).params["E"])


@pytest.mark.parametrize("cell", list(CELLS))
def test_float64_propagates(cell):
    layer = make(cell, D, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=1)
    assert all(p.dtype == np.float64 for p in layer.params.values())
    assert all(g.dtype == np.float64 for g in layer.grads.values())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, D))
    out, st, cache = layer.forward(x, None, LENGTHS)
    assert out.dtype == np.float64 and all(a.dtype == np.float64 for a in arrays(st))
    dx, ds = layer.backward(rng.standard_normal(out.shape), None, cache)
    assert dx.dtype == np.float64 and all(a.dtype == np.float64 for a in arrays(ds))
    assert all(g.dtype == np.float64 for g in layer.grads.values())
    d = Dense(2 * H, 3, "softmax", dtype=np.float64, seed=0)
    y, c = d.forward(out)
    assert y.dtype == np.float64 and d.backward(np.ones_like(y), c).dtype == np.float64
    e = Embedding(4, D, dtype=np.float64, seed=0)
    assert e.params["E"].dtype == np.float64 and e.forward(np.array([[1, 2]]))[0].dtype == np.float64
