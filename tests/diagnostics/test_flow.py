"""Gradient flow through time (rnnkit.diagnostics.flow): the Jacobian products dh_T/dh_k
against finite differences and against an explicit product of one-step Jacobians (float64),
dL/dh_t against dL/dh_T dh_T/dh_t, and `rnnkit trace --flow` on tiny sizes."""
import json

import numpy as np
import pytest

from rnnkit import cells
from rnnkit.cli import main
from rnnkit.diagnostics import gradient_flow, jacobian_norms, jacobian_products
from rnnkit.losses import mean_squared_error
from rnnkit.models import SequenceModel

N, T, D, H = 2, 5, 2, 3


def setup(cell, options=None, seed=0):
    rng = np.random.default_rng(seed)
    spec = cells.get(cell)
    options = spec.resolve(options or {})
    p = {k: rng.uniform(-0.8, 0.8, s) for k, (s, _) in spec.params(D, H, **options).items()}
    return spec, options, p, rng.standard_normal((N, T, D))


def run_from(spec, options, p, x, k, states):
    """The states after steps k ... T-1 (0-based), starting from ``states`` at step k."""
    for t in range(k, x.shape[1]):
        *states, _ = spec.step(x[:, t], *states, p, **options)
    return states


def states_at(spec, options, p, x, k):
    states = [np.zeros((N, H)) for _ in spec.states]
    for t in range(k):
        *states, _ = spec.step(x[:, t], *states, p, **options)
    return states


CASES = [("rnn", {}), ("lstm", {}), ("lstm", {"peepholes": True}), ("gru", {}),
         ("gru", {"reset_after": False}), ("indrnn", {"nonlinearity": "tanh"})]


@pytest.mark.parametrize("cell,options", CASES)
def test_jacobian_products_match_finite_differences(cell, options):
    spec, options, p, x = setup(cell, options)
    J = jacobian_products(cell, p, x, options)
    assert J.shape == (T + 1, N, H, H)
    np.testing.assert_array_equal(J[T], np.broadcast_to(np.eye(H), (N, H, H)))
    eps = 1e-6
    for k in (0, 2, T - 1):
        states = states_at(spec, options, p, x, k)
        numeric = np.zeros((N, H, H))
        for i in range(H):                  # perturb h_k[:, i] (an LSTM's C_k held fixed)
            plus = [s.copy() for s in states]
            minus = [s.copy() for s in states]
            plus[0][:, i] += eps
            minus[0][:, i] -= eps
            numeric[:, :, i] = (run_from(spec, options, p, x, k, plus)[0] -
                                run_from(spec, options, p, x, k, minus)[0]) / (2 * eps)
        np.testing.assert_allclose(J[k], numeric, rtol=1e-6, atol=1e-9, err_msg=f"k={k}")


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_jacobian_products_are_the_product_of_one_step_jacobians(cell):
    """For cells whose state is h alone, dh_T/dh_k = prod_t dh_{t+1}/dh_t, each one-step
    Jacobian by finite differences of one step, multiplied out explicitly."""
    spec, options, p, x = setup(cell, seed=3)
    J = jacobian_products(cell, p, x, options)
    eps = 1e-6
    product = np.broadcast_to(np.eye(H), (N, H, H)).copy()
    for t in range(T - 1, -1, -1):
        (h,) = states_at(spec, options, p, x, t)
        step = np.zeros((N, H, H))
        for i in range(H):
            hp, hm = h.copy(), h.copy()
            hp[:, i] += eps
            hm[:, i] -= eps
            step[:, :, i] = (spec.step(x[:, t], hp, p, **options)[0] -
                             spec.step(x[:, t], hm, p, **options)[0]) / (2 * eps)
        product = product @ step            # dh_T/dh_t = dh_T/dh_{t+1} dh_{t+1}/dh_t
        np.testing.assert_allclose(J[t], product, rtol=1e-6, atol=1e-10, err_msg=f"t={t}")
    norms = jacobian_norms(cell, p, x, options)
    np.testing.assert_allclose(norms[0], np.linalg.norm(product, 2, axis=(1, 2)).mean(),
                               rtol=1e-6)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_dl_dh_of_a_many_to_one_model_is_dl_dh_T_times_the_jacobian_product(cell):
    model = SequenceModel(input_size=D, hidden_size=H, cell=cell, readout="last",
                          dtype="float64", seed=1)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((N, T, D)), rng.standard_normal((N, 1))
    flow = gradient_flow(model, x, y, mean_squared_error)
    from rnnkit.train.watch import first_layer, hidden_gradients
    dh = first_layer(hidden_gradients(model, mean_squared_error, x, y))["dh"]    # (T, N, H)
    J = jacobian_products(cell, {k[3:]: v for k, v in model.rnn.params.items()}, x,
                          model.rnn.options)
    for t in range(T):          # dL/dh_{t+1} = dL/dh_T dh_T/dh_{t+1} (the loss reads h_T only)
        np.testing.assert_allclose(dh[t], np.einsum("nj,nji->ni", dh[-1], J[t + 1]),
                                   rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(flow["dL_dh"], np.linalg.norm(dh, axis=2).mean(axis=1))
    assert not model.grads["rnn.l0.W_hh"].any()             # left zeroed


def test_a_plain_rnn_forgets_faster_than_an_lstm_with_an_open_forget_gate(tmp_path, capsys):
    png, out = tmp_path / "flow.png", tmp_path / "flow.json"
    assert main(["trace", "--flow", "--length", "30", "--hidden-size", "8", "--batch", "4",
                 "--cells", "rnn", "lstm+fb", "--forget-bias", "3", "--png", str(png),
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "rnn dh_T/dh_k" in text and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = json.loads(out.read_text())
    rnn, lstm = (np.array(res["cells"][c]["dh_T_dh_k"]) for c in ("rnn", "lstm+fb"))
    assert rnn.shape == (31,) and rnn[-1] == pytest.approx(1.0)
    assert rnn[0] < 1e-3 * lstm[0]
    assert main(["trace", "--flow", "--cells", "rnn", "elman"]) == 2
    assert "--cells: expected names among" in capsys.readouterr().err
