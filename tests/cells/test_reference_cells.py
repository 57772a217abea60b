"""The reference cells (rnnkit.cells): each step_back against finite differences in float64,
the reference scan against the fast path on every layer, and note 000 by hand."""
import numpy as np
import pytest

import rnnkit
from gradcheck import numeric_grad
from layer_cases import CELLS as LAYERS, arrays, make, random_state, state_dot
from rnnkit import cells
from rnnkit.cells.gru import gru_step
from rnnkit.cells.rnn import rnn_step

# (cell, options) covering every option of the built-in cells
VARIANTS = [("rnn", {}), ("rnn", {"nonlinearity": "relu"}), ("rnn", {"clip": 0.7}),
            ("lstm", {}), ("lstm", {"peepholes": True}), ("lstm", {"clip": 0.7}),
            ("lstm", {"peepholes": True, "clip": 0.9}), ("gru", {}),
            ("gru", {"reset_after": False}), ("gru", {"clip": 0.7}),
            ("indrnn", {}), ("indrnn", {"nonlinearity": "tanh"})]


def _params(spec, options, D, H, rng):
    return {name: rng.uniform(-0.9, 0.9, shape) for name, (shape, _) in
            spec.params(D, H, **options).items()}


@pytest.mark.parametrize("name,options", VARIANTS)
def test_step_back_matches_finite_differences(name, options):
    """Every input, state and parameter gradient of one step, float64, relative 1e-6."""
    spec = cells.get(name)
    rng = np.random.default_rng(0)
    N, D, H = 3, 4, 5
    p = _params(spec, options, D, H, rng)
    x = rng.uniform(-1.5, 1.5, (N, D))
    states = [rng.uniform(-0.9, 0.9, (N, H)) for _ in spec.states]
    R = [rng.standard_normal((N, H)) for _ in spec.states]      # dL/d(each new state)

    def loss():
        *new, _ = spec.step(x, *states, p, **options)
        return sum(float(np.sum(r * s)) for r, s in zip(R, new))

    *_, cache = spec.step(x, *states, p, **options)
    dx, *dstates, grads = spec.step_back(*R, cache, p, **options)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-9)
    for s, d in zip(states, dstates):
        np.testing.assert_allclose(d, numeric_grad(loss, s), rtol=1e-6, atol=1e-9)
    assert sorted(grads) == sorted(p)
    for key, value in p.items():
        np.testing.assert_allclose(grads[key], numeric_grad(loss, value), rtol=1e-6,
                                   atol=1e-9, err_msg=key)


def test_clip_zeroes_the_gradient_where_it_clamped():
    p = {"W_xh": np.array([[10.0]]), "W_hh": np.zeros((1, 1)), "b_xh": np.zeros(1),
         "b_hh": np.zeros(1)}
    x, h = np.array([[1.0], [0.01]]), np.zeros((2, 1))
    out, cache = rnn_step(x, h, p, clip=1.0)
    assert out[0, 0] == pytest.approx(np.tanh(1.0)) and out[1, 0] == pytest.approx(np.tanh(0.1))
    dx, _, grads = cells.get("rnn").step_back(np.ones((2, 1)), cache, p, clip=1.0)
    assert dx[0, 0] == 0 and dx[1, 0] != 0


def test_note_000_by_the_reference_step():
    """h = 0.537, 0.850, 0.952 (note 000), stepping rnn_step by hand."""
    p = {"W_xh": np.array([[0.5]]), "W_hh": np.array([[0.3]]), "b_xh": np.array([0.1]),
         "b_hh": np.array([0.0])}
    h, hs = np.zeros((1, 1)), []
    for x in (1.0, 2.0, 3.0):
        h, _ = rnn_step(np.array([[x]]), h, p)
        hs.append(h[0, 0])
    np.testing.assert_allclose(hs, [0.537, 0.850, 0.952], atol=0.002)


def test_gru_update_is_the_notes_convention():
    """h_t = (1 - z) h_{t-1} + z h~: with the update gate shut (z = 0) h stays."""
    H = 2
    p = {"W_xh": np.zeros((3 * H, 1)), "W_hh": np.zeros((3 * H, H)), "b_xh": np.zeros(3 * H),
         "b_hh": np.zeros(3 * H)}
    p["b_xh"][H:2 * H] = -50.0                       # z = sigma(-50) ~ 0
    h_prev = np.array([[0.3, -0.4]])
    h, _ = gru_step(np.ones((1, 1)), h_prev, p)
    np.testing.assert_allclose(h, h_prev, atol=1e-12)


@pytest.mark.parametrize("cell", sorted(LAYERS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reference_scan_equals_the_fast_path(cell, dtype):
    """Two layers, bidirectional, variable lengths, initial state: outputs, final states,
    dx, the initial state's gradient and every parameter gradient, on both engines."""
    N, T, D, H = 4, 6, 3, 5
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, T, D)).astype(dtype)
    lengths = np.array([6, 2, 4, 1])
    state = random_state(cell, (4, N, H), rng, dtype)
    R = rng.standard_normal((N, T, 2 * H)).astype(dtype)
    S = random_state(cell, (4, N, H), rng, dtype)
    results = []
    for engine in ("fast", "reference"):
        layer = make(cell, D, H, num_layers=2, bidirectional=True, dtype=dtype, seed=3)
        with rnnkit.use(engine):
            out, h_n, cache = layer.forward(x, state, lengths)
            dx, d0 = layer.backward(R, S, cache)
        results.append((np.array(out), arrays(h_n), np.array(dx), arrays(d0),
                        {k: g.copy() for k, g in layer.grads.items()}))
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-5)
    (o1, h1, dx1, d1, g1), (o2, h2, dx2, d2, g2) = results
    np.testing.assert_allclose(o2, o1, **tol)
    np.testing.assert_allclose(dx2, dx1, **tol)
    for a, b in zip(h1 + d1, h2 + d2):
        np.testing.assert_allclose(b, a, **tol)
    for k in g1:
        np.testing.assert_allclose(g2[k], g1[k], **tol, err_msg=k)
    assert state_dot(d1, S) != 0


def test_use_names_its_engine():
    with pytest.raises(rnnkit.RnnkitError, match="engine: expected one of"):
        with rnnkit.use("turbo"):
            pass
