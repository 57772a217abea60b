"""Every backward against central finite differences, in float64.

The loss is a random linear functional of everything a layer returns,
L = sum(out * R) + sum(h_n * S) [+ sum(c_n * S_c)], so that one backward with
dout = R, dstate = S checks the whole Jacobian-vector product. Every entry of every
parameter, of the input and of the initial state is perturbed.
"""
import numpy as np
import pytest
from gradcheck import numeric_grad
from layer_cases import CELLS, is_lstm

from rnnkit import Dense, Embedding, last_step_backward, last_step_forward

EPS = 1e-6
RTOL = 1e-6
ATOL = 1e-8
N, T, D, H = 3, 4, 2, 2
LENGTHS = np.array([2, 1, 4])          # unsorted; the sort permutation is a 3-cycle
# The layer-normalised cells normalise over H = 2 features here, where 1/std reaches ~100 and
# central differences lose their sixth digit: their own tests (tests/cells/test_ln_cells.py)
# check the same layer configurations at H = 4.
FD_CELLS = [cell for cell in CELLS if not cell.startswith("ln")]


# ----------------------------------------------------------------------------- helpers
def check(analytic, f, arr, name):
    numeric = numeric_grad(f, arr)
    assert analytic.shape == arr.shape, name
    np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL, err_msg=name)
    return numeric


def state_dot(state, S):
    if isinstance(state, tuple):
        return float(np.sum(state[0] * S[0]) + np.sum(state[1] * S[1]))
    return float(np.sum(state * S))


def state_arrays(state):
    return list(state) if isinstance(state, tuple) else [state]



CONFIGS = {
    "single": dict(kw={}, lengths=None, state=False),
    "lengths": dict(kw={}, lengths=LENGTHS, state=False),
    "stacked3": dict(kw=dict(num_layers=3), lengths=None, state=False),
    "bidirectional": dict(kw=dict(bidirectional=True), lengths=LENGTHS, state=False),
    "reverse": dict(kw=dict(reverse=True), lengths=LENGTHS, state=False),
    "initial_state": dict(kw={}, lengths=None, state=True),
    "bidir_stacked_state": dict(kw=dict(num_layers=2, bidirectional=True), lengths=LENGTHS,
                                state=True),
    "dropout": dict(kw=dict(num_layers=2, dropout=0.4), lengths=LENGTHS, state=True,
                    training=True),
    "dropout_bidir": dict(kw=dict(num_layers=2, dropout=0.5, bidirectional=True),
                          lengths=None, state=False, training=True),
}


def relu_margin(layer, cache):
    """Smallest |pre-activation| over all valid steps of a ReLU layer (distance to the kink),
    recomputed from each step's inputs, which the reference scan's cache keeps (float64
    layers run on it)."""
    m = np.inf
    for layer_idx, (_, scans) in enumerate(cache["layers"]):
        for direction, sc in enumerate(scans):
            p = layer._direction(layer_idx, direction)
            for step in sc["steps"]:
                x_t, h_prev = step[0], step[1]
                a = x_t @ p["W_xh"].T + p["b_xh"] + p["b_hh"] + h_prev @ p["W_hh"].T
                if a.size:
                    m = min(m, float(np.abs(a).min()))
    return m


def build_case(cell, config, seed):
    cfg = CONFIGS[config]
    rng = np.random.default_rng(seed)
    layer = CELLS[cell](D, H, dtype=np.float64, seed=seed, **cfg["kw"])
    for name, p in layer.params.items():
        if name.endswith(".P"):                     # peepholes start at 0: make them count
            p[...] = rng.uniform(-0.8, 0.8, p.shape)
    x = rng.standard_normal((N, T, D))
    L = layer.num_layers * layer.dirs
    if cfg["state"]:
        shape = (L, N, H)
        state = (tuple(rng.uniform(-0.8, 0.8, shape) for _ in range(2))
                 if is_lstm(cell) else rng.uniform(-0.8, 0.8, shape))
    else:
        state = None
    R = rng.standard_normal((N, T, layer.dirs * H))
    S = (tuple(rng.standard_normal((L, N, H)) for _ in range(2)) if is_lstm(cell)
         else rng.standard_normal((L, N, H)))
    return layer, x, state, cfg["lengths"], R, S, cfg.get("training", False)


def relu_case(cell, config):
    """For ReLU, reject seeds whose pre-activations come within 1e-3 of the kink, or with a
    dead layer (all gradients of a parameter exactly zero)."""
    for seed in range(50):
        case = build_case(cell, config, seed)
        if cell != "rnn_relu":
            return case
        layer, x, state, lengths, R, S, training = case
        _, _, cache = layer.forward(x, state, lengths, training=training,
                                    rng=np.random.default_rng(1234))
        layer.zero_grad()
        layer.backward(R, S, cache)
        alive = all(np.any(g != 0) for g in layer.grads.values())   # no dead layer
        if relu_margin(layer, cache) > 1e-3 and alive:
            return case
    raise AssertionError("no seed keeps the ReLU away from its kink")


# ----------------------------------------------------------------------------- recurrent
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("cell", FD_CELLS)
def test_recurrent_gradients(cell, config):
    layer, x, state, lengths, R, S, training = relu_case(cell, config)
    DROP_SEED = 1234
    if state is None:                               # check d(state0) at the zero state too
        zeros = np.zeros((layer.num_layers * layer.dirs, N, H))
        state_fd = (zeros.copy(), zeros.copy()) if is_lstm(cell) else zeros
    else:
        state_fd = state

    def loss(st=state_fd):
        rng = np.random.default_rng(DROP_SEED) if training else None
        out, st_out, _ = layer.forward(x, st, lengths, training=training, rng=rng)
        return float(np.sum(out * R)) + state_dot(st_out, S)

    layer.zero_grad()
    out, st_out, cache = layer.forward(x, state, lengths, training=training,
                                       rng=np.random.default_rng(DROP_SEED) if training else None)
    dx, dstate0 = layer.backward(R, S, cache)
    grads = {k: v.copy() for k, v in layer.grads.items()}

    if training:      # the same rng seed gives the same mask; dropout really changes things
        out2, _, _ = layer.forward(x, state, lengths, training=True,
                                   rng=np.random.default_rng(DROP_SEED))
        np.testing.assert_array_equal(out, out2)
        out_eval, _, _ = layer.forward(x, state, lengths, training=False)
        assert not np.allclose(out, out_eval)
        out3, _, _ = layer.forward(x, state, lengths, training=True,
                                   rng=np.random.default_rng(DROP_SEED + 1))
        assert not np.allclose(out, out3)

    for name, p in layer.params.items():
        check(grads[name], loss, p, name)
        assert np.any(grads[name] != 0), name
    check(dx, loss, x, "dx")
    for i, (d, s) in enumerate(zip(state_arrays(dstate0), state_arrays(state_fd))):
        check(d, loss, s, f"dstate0[{i}]")
    # sanity: the loss was not altered by the perturbations
    np.testing.assert_array_equal(layer.forward(x, state, lengths, training=training,
                                                rng=np.random.default_rng(DROP_SEED)
                                                if training else None)[0], out)


@pytest.mark.parametrize("cell", ["lstm", "gru_after", "rnn_tanh"])
def test_backward_accumulates_and_zero_grad(cell):
    layer, x, state, lengths, R, S, _ = build_case(cell, "bidirectional", 3)
    layer.zero_grad()
    _, _, cache = layer.forward(x, state, lengths)
    layer.backward(R, S, cache)
    once = {k: v.copy() for k, v in layer.grads.items()}
    _, _, cache = layer.forward(x, state, lengths)
    layer.backward(R, S, cache)
    for k in once:
        np.testing.assert_allclose(layer.grads[k], 2 * once[k], rtol=1e-12, atol=1e-14)
    layer.zero_grad()
    assert all(not np.any(v) for v in layer.grads.values())


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "lstm_peep", "gru_before"])
def test_backward_with_none_dout_or_dstate(cell):
    """dout=None and dstate=None mean zeros."""
    layer, x, _, lengths, R, S, _ = build_case(cell, "bidir_stacked_state", 5)
    zeros_state = tuple(np.zeros_like(s) for s in S) if isinstance(S, tuple) else np.zeros_like(S)
    for dout, dstate, ref_dout, ref_dstate in ((None, S, np.zeros_like(R), S),
                                               (R, None, R, zeros_state)):
        layer.zero_grad()
        _, _, cache = layer.forward(x, None, lengths)
        dx_a, ds_a = layer.backward(dout, dstate, cache)
        ga = {k: v.copy() for k, v in layer.grads.items()}
        layer.zero_grad()
        _, _, cache = layer.forward(x, None, lengths)
        dx_b, ds_b = layer.backward(ref_dout, ref_dstate, cache)
        np.testing.assert_array_equal(dx_a, dx_b)
        for a, b in zip(state_arrays(ds_a), state_arrays(ds_b)):
            np.testing.assert_array_equal(a, b)
        for k in ga:
            np.testing.assert_array_equal(ga[k], layer.grads[k])
    # and the state-only loss gradient is right
    def loss():
        return state_dot(layer.forward(x, None, lengths)[1], S)
    layer.zero_grad()
    _, _, cache = layer.forward(x, None, lengths)
    dx, _ = layer.backward(None, S, cache)
    check(dx, loss, x, "dx (state-only loss)")
    for name in ("l0.W_hh", "l1_reverse.W_xh"):
        check(layer.grads[name], loss, layer.params[name], name)


# ----------------------------------------------------------------------------- padding
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("cell", FD_CELLS)
def test_padded_steps_contribute_nothing(cell, training):
    layer = CELLS[cell](D, H, num_layers=2, bidirectional=True, dropout=0.3, dtype=np.float64,
                        seed=11)
    for name, p in layer.params.items():
        if name.endswith(".P"):
            p[...] = np.random.default_rng(1).uniform(-0.8, 0.8, p.shape)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, T, D))
    lengths = LENGTHS
    pad = np.arange(T)[None, :] >= lengths[:, None]          # (N, T) True at padded steps
    x2 = x.copy()
    x2[pad] = 50 * rng.standard_normal((int(pad.sum()), D))   # garbage in the padding
    R = rng.standard_normal((N, T, 2 * H))
    S0 = rng.standard_normal((4, N, H))
    S = (S0, rng.standard_normal((4, N, H))) if is_lstm(cell) else S0

    def run(xx):
        layer.zero_grad()
        out, st, cache = layer.forward(xx, None, lengths, training=training,
                                       rng=np.random.default_rng(9))
        dx, ds = layer.backward(R, S, cache)
        return out, st, dx, ds, {k: v.copy() for k, v in layer.grads.items()}

    out1, st1, dx1, ds1, g1 = run(x)
    out2, st2, dx2, ds2, g2 = run(x2)
    assert np.all(out1[pad] == 0) and np.all(out2[pad] == 0)
    np.testing.assert_array_equal(out1, out2)
    for a, b in zip(state_arrays(st1), state_arrays(st2)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(state_arrays(ds1), state_arrays(ds2)):
        np.testing.assert_array_equal(a, b)
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k], err_msg=k)
    assert np.all(dx1[pad] == 0) and np.all(dx2[pad] == 0)
    np.testing.assert_array_equal(dx1, dx2)
    assert np.all(np.abs(dx1[~pad]).sum(axis=-1) > 0)


# ----------------------------------------------------------------------------- heads
@pytest.mark.parametrize("ndim", [2, 3, "3, time-major"])
@pytest.mark.parametrize("activation", ["identity", "softmax", "sigmoid"])
def test_dense_gradients(activation, ndim):
    """ "3, time-major": h (N, T, H) laid out (T, N, H) in memory, as recurrent layers return
    it; the rows are then read in memory order, and y and dh come out in that layout too."""
    rng = np.random.default_rng(7)
    dense = Dense(4, 5, activation, dtype=np.float64, seed=3)
    h = rng.standard_normal({2: (3, 4), 3: (3, 2, 4)}.get(ndim, (2, 3, 4)))
    if ndim == "3, time-major":
        h = h.transpose(1, 0, 2)
    R = rng.standard_normal(h.shape[:-1] + (5,))

    def loss():
        return float(np.sum(dense.forward(h)[0] * R))

    dense.zero_grad()
    y, cache = dense.forward(h)
    dh = dense.backward(R, cache)
    grads = {k: v.copy() for k, v in dense.grads.items()}
    for name, p in dense.params.items():
        check(grads[name], loss, p, name)
    if ndim == "3, time-major":     # perturb the (T, N, H) memory itself
        check(dh.transpose(1, 0, 2), loss, h.transpose(1, 0, 2), "dh")
    else:
        check(dh, loss, h, "dh")
    # the forward is what it says
    z = h @ dense.params["W_hy"].T + dense.params["b_y"]
    expected = {"identity": z, "sigmoid": 1 / (1 + np.exp(-z)),
                "softmax": np.exp(z) / np.exp(z).sum(-1, keepdims=True)}[activation]
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-14)
    if ndim == "3, time-major":
        assert y.transpose(1, 0, 2).flags.c_contiguous and dh.transpose(1, 0, 2).flags.c_contiguous


def test_embedding_gradients_with_repeated_ids():
    rng = np.random.default_rng(8)
    emb = Embedding(6, 3, dtype=np.float64, seed=2)
    ids = np.array([[0, 2, 2, 5], [5, 5, 1, 2]])
    R = rng.standard_normal((2, 4, 3))

    def loss():
        return float(np.sum(emb.forward(ids)[0] * R))

    emb.zero_grad()
    out, cache = emb.forward(ids)
    np.testing.assert_array_equal(out, emb.params["E"][ids])
    assert emb.backward(R, cache) is None
    g = emb.grads["E"].copy()
    numeric = check(g, loss, emb.params["E"], "E")
    np.testing.assert_allclose(g[2], R[0, 1] + R[0, 2] + R[1, 3], rtol=1e-12)
    np.testing.assert_array_equal(g[[3, 4]], 0)      # ids never used
    assert np.abs(numeric[5]).sum() > 0


def test_last_step_gradients():
    rng = np.random.default_rng(9)
    out = rng.standard_normal((N, T, 2))
    R = rng.standard_normal((N, 2))

    def loss():
        return float(np.sum(last_step_forward(out, LENGTHS)[0] * R))

    last, cache = last_step_forward(out, LENGTHS)
    np.testing.assert_array_equal(last, out[np.arange(N), LENGTHS - 1])
    dout = last_step_backward(R, cache)
    check(dout, loss, out, "dout")
    last_all, cache_all = last_step_forward(out)            # lengths=None: the last step
    np.testing.assert_array_equal(last_all, out[:, -1])
    d_all = last_step_backward(R, cache_all)
    np.testing.assert_array_equal(d_all[:, -1], R)
    assert not np.any(d_all[:, :-1])


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm_peep", "gru_before"])
def test_end_to_end_many_to_one(cell):
    """Embedding -> bidirectional 2-layer recurrent (lengths) -> last step -> softmax Dense."""
    rng = np.random.default_rng(10)
    emb = Embedding(7, D, dtype=np.float64, seed=1)
    layer = CELLS[cell](D, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=2)
    for name, p in layer.params.items():
        if name.endswith(".P"):
            p[...] = rng.uniform(-0.8, 0.8, p.shape)
    dense = Dense(2 * H, 4, "softmax", dtype=np.float64, seed=3)
    ids = rng.integers(0, 7, (N, T))
    R = rng.standard_normal((N, 4))

    def loss():
        e, _ = emb.forward(ids)
        o, _, _ = layer.forward(e, None, LENGTHS)
        last, _ = last_step_forward(o, LENGTHS)
        return float(np.sum(dense.forward(last)[0] * R))

    for m in (emb, layer, dense):
        m.zero_grad()
    e, c_e = emb.forward(ids)
    o, _, c_l = layer.forward(e, None, LENGTHS)
    last, c_s = last_step_forward(o, LENGTHS)
    y, c_d = dense.forward(last)
    dlast = dense.backward(R, c_d)
    de, _ = layer.backward(last_step_backward(dlast, c_s), None, c_l)
    emb.backward(de, c_e)
    check(emb.grads["E"].copy(), loss, emb.params["E"], "E")
    for name in ("l0.W_xh", "l0_reverse.W_hh", "l1.b_hh", "l1_reverse.W_xh"):
        check(layer.grads[name].copy(), loss, layer.params[name], name)
    check(dense.grads["W_hy"].copy(), loss, dense.params["W_hy"], "W_hy")
