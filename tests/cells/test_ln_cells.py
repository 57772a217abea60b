"""Layer-normalised LSTM and GRU (rnnkit/cells/lnlstm.py, lngru.py): gradients by finite
differences in float64, and parity with the same cells written in PyTorch on identical weights."""
import numpy as np
import pytest
import torch

import rnnkit
from gradcheck import check_sampled_params, numeric_grad
from rnnkit.cells.lngru import lngru_step, lngru_step_back
from rnnkit.cells.lnlstm import lnlstm_step, lnlstm_step_back
from rnnkit.layers import LayerNormGRU, LayerNormLSTM
from rnnkit.models import SequenceModel

D, H, N = 3, 4, 5
LAYERS = {"lnlstm": LayerNormLSTM, "lngru": LayerNormGRU}


def shuffled(net, rng):
    """Weights away from their initial ones (gains 1, biases 0), so every term matters."""
    for name, p in net.params.items():
        p[...] = rng.standard_normal(p.shape) * 0.5 + (1.0 if "gamma" in name else 0.0)
    return net


# --- one step -------------------------------------------------------------------------------
@pytest.mark.parametrize("per_gate", [False, True])
@pytest.mark.parametrize("cell", ["lnlstm", "lngru"])
def test_step_backward_matches_finite_differences(cell, per_gate):
    rng = np.random.default_rng(0)
    spec = rnnkit.cells.get(cell)
    p = {name: rng.standard_normal(shape) * 0.5 + (1.0 if kind == "ones" else 0.0)
         for name, (shape, kind) in spec.params(D, H).items()}
    states = [rng.standard_normal((N, H)) for _ in spec.states]
    x = rng.standard_normal((N, D))
    R = [rng.standard_normal((N, H)) for _ in spec.states]      # dL/d(new states)

    def loss():
        *new, _ = spec.step(x, *states, p, per_gate=per_gate)
        return sum(float(np.sum(s * r)) for s, r in zip(new, R))

    *_, cache = spec.step(x, *states, p, per_gate=per_gate)
    dx, *dstates, grads = spec.step_back(*R, cache, p, per_gate=per_gate)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-9)
    for s, ds in zip(states, dstates):
        np.testing.assert_allclose(ds, numeric_grad(loss, s), rtol=1e-6, atol=1e-9)
    assert grads.keys() == p.keys()
    for name in p:
        np.testing.assert_allclose(grads[name], numeric_grad(loss, p[name]), rtol=1e-6,
                                   atol=1e-9, err_msg=name)


def test_the_steps_are_the_registered_cells():
    assert rnnkit.cells.get("lnlstm").step is lnlstm_step
    assert rnnkit.cells.get("lnlstm").step_back is lnlstm_step_back
    assert rnnkit.cells.get("LayerNormGRU").step is lngru_step
    assert rnnkit.cells.get("lngru").step_back is lngru_step_back


# --- a whole layer --------------------------------------------------------------------------
# 2 layers, bidirectional, lengths, initial states; then reading backwards with dropout
LAYER_CASES = {"bidirectional": dict(num_layers=2, bidirectional=True),
               "reverse_dropout": dict(num_layers=2, reverse=True, dropout=0.4)}


@pytest.mark.parametrize("config", list(LAYER_CASES))
@pytest.mark.parametrize("per_gate", [False, True])
@pytest.mark.parametrize("cell", ["lnlstm", "lngru"])
def test_layer_gradients_match_finite_differences(cell, per_gate, config):
    rng = np.random.default_rng(1)
    kw = LAYER_CASES[config]
    training = kw.get("dropout", 0) > 0
    net = shuffled(LAYERS[cell](D, H, per_gate=per_gate, dtype=np.float64, seed=0, **kw), rng)
    dirs = net.dirs
    x = rng.standard_normal((3, 5, D))
    lengths = np.array([5, 2, 4])
    R = rng.standard_normal((3, 5, dirs * H))
    n_states = 2 if cell == "lnlstm" else 1
    R_state = [rng.standard_normal((2 * dirs, 3, H)) for _ in range(n_states)]
    state0 = [rng.standard_normal((2 * dirs, 3, H)) for _ in range(n_states)]
    as_state = (lambda s: tuple(s)) if n_states == 2 else (lambda s: s[0])
    masks = (lambda: np.random.default_rng(7)) if training else (lambda: None)

    def loss():
        out, s, _ = net.forward(x, as_state(state0), lengths, training=training, rng=masks())
        s = s if isinstance(s, tuple) else (s,)
        return float(np.sum(out * R)) + sum(float(np.sum(a * r)) for a, r in zip(s, R_state))

    _, _, cache = net.forward(x, as_state(state0), lengths, training=training, rng=masks())
    net.zero_grad()
    dx, d0 = net.backward(R, as_state(R_state), cache)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-9)
    d0 = d0 if isinstance(d0, tuple) else (d0,)
    for s, ds in zip(state0, d0):
        np.testing.assert_allclose(ds, numeric_grad(loss, s), rtol=1e-6, atol=1e-9)
    check_sampled_params(net, loss, rng, samples=6)


# --- PyTorch, written here, on identical weights -----------------------------------------------
def torch_ln(a, gamma, beta, groups):
    N, F = a.shape
    v = torch.nn.functional.layer_norm(a.reshape(N, groups, F // groups), (F // groups,),
                                       eps=1e-5)
    return v.reshape(N, F) * gamma + beta


def torch_step(cell, x, states, p, groups):
    """One step of haste's LayerNormLSTM / LayerNormGRU (rnnkit's gate orders, and the notes'
    GRU update h = (1 - z) h + z h~)."""
    h = states[0]
    Hh = h.shape[1]
    a_x = torch_ln(x @ p["W_xh"].T, p["gamma_xh"], p["b_xh"], groups)
    a_h = torch_ln(h @ p["W_hh"].T, p["gamma_hh"], p["b_hh"], groups)
    if cell == "lnlstm":
        i, f, g, o = (a_x + a_h).split(Hh, dim=1)
        c = torch.sigmoid(f) * states[1] + torch.sigmoid(i) * torch.tanh(g)
        c_norm = torch.nn.functional.layer_norm(c, (Hh,), p["gamma_c"], p["beta_c"], 1e-5)
        return torch.sigmoid(o) * torch.tanh(c_norm), c
    xr, xz, xn = a_x.split(Hh, dim=1)
    hr, hz, hn = a_h.split(Hh, dim=1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return ((1 - z) * h + z * n,)


def torch_scan(cell, x, states, p, lengths, reverse, groups):
    """x (N, T, D): rows keep their state where t >= their length; outputs there are 0."""
    T = x.shape[1]
    outs = [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        active = torch.as_tensor(lengths > t)[:, None]
        new = torch_step(cell, x[:, t], states, p, groups)
        states = tuple(torch.where(active, a, b) for a, b in zip(new, states))
        outs[t] = torch.where(active, states[0], torch.zeros_like(states[0]))
    return torch.stack(outs, dim=1), states


@pytest.mark.parametrize("per_gate", [False, True])
@pytest.mark.parametrize("cell", ["lnlstm", "lngru"])
def test_outputs_and_every_gradient_equal_pytorchs(cell, per_gate):
    rng = np.random.default_rng(2)
    net = shuffled(LAYERS[cell](D, H, bidirectional=True, per_gate=per_gate,
                                dtype=np.float64, seed=0), rng)
    groups = (4 if cell == "lnlstm" else 3) if per_gate else 1
    x = rng.standard_normal((N, 6, D))
    lengths = np.array([6, 3, 5, 1, 6])
    n_states = 2 if cell == "lnlstm" else 1
    state0 = [rng.standard_normal((2, N, H)) for _ in range(n_states)]
    R = rng.standard_normal((N, 6, 2 * H))
    R_state = [rng.standard_normal((2, N, H)) for _ in range(n_states)]
    as_state = (lambda s: tuple(s)) if n_states == 2 else (lambda s: s[0])

    out, s_n, cache = net.forward(x, as_state(state0), lengths)
    net.zero_grad()
    dx, d0 = net.backward(R, as_state(R_state), cache)

    tp = {k: torch.tensor(v, requires_grad=True) for k, v in net.params.items()}
    tx = torch.tensor(x, requires_grad=True)
    ts0 = [torch.tensor(s, requires_grad=True) for s in state0]
    outs, finals = [], []
    for d, prefix in enumerate(("l0.", "l0_reverse.")):
        p = {k[len(prefix):]: v for k, v in tp.items() if k.startswith(prefix)}
        o, f = torch_scan(cell, tx, tuple(s[d] for s in ts0), p, lengths, d == 1, groups)
        outs.append(o)
        finals.append(f)
    t_out = torch.cat(outs, dim=2)
    t_states = [torch.stack([f[i] for f in finals]) for i in range(n_states)]
    loss = (t_out * torch.tensor(R)).sum() + sum((s * torch.tensor(r)).sum()
                                                 for s, r in zip(t_states, R_state))
    loss.backward()

    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    s_n = s_n if isinstance(s_n, tuple) else (s_n,)
    for a, b in zip(s_n, t_states):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    d0 = d0 if isinstance(d0, tuple) else (d0,)
    for a, b in zip(d0, ts0):
        np.testing.assert_allclose(a, b.grad.numpy(), rtol=1e-9, atol=1e-12)
    for name in net.params:
        np.testing.assert_allclose(net.grads[name], tp[name].grad.numpy(), rtol=1e-9,
                                   atol=1e-12, err_msg=name)


# --- everywhere an LSTM or GRU goes ---------------------------------------------------------
def test_initial_gains_are_one_and_cell_state_bias_zero():
    net = LayerNormLSTM(D, H, init="glorot_orthogonal", forget_bias=1.0, seed=0)
    assert sorted(net.params) == sorted(f"l0.{n}" for n in (
        "W_xh", "W_hh", "b_xh", "b_hh", "gamma_xh", "gamma_hh", "gamma_c", "beta_c"))
    for name in ("gamma_xh", "gamma_hh", "gamma_c"):
        np.testing.assert_array_equal(net.params[f"l0.{name}"], 1.0)
    np.testing.assert_array_equal(net.params["l0.beta_c"], 0.0)
    np.testing.assert_array_equal(net.params["l0.b_xh"][H:2 * H], 1.0)     # forget_bias
    assert LayerNormGRU(D, H, seed=0).params["l0.gamma_hh"].shape == (3 * H,)


@pytest.mark.parametrize("cell", ["lnlstm", "lngru"])
def test_stepping_equals_the_whole_sequence(cell):
    net = LAYERS[cell](D, H, num_layers=2, dtype=np.float64, seed=0)
    x = np.random.default_rng(3).standard_normal((2, 4, D))
    out, _, _ = net.forward(x, grad=False)
    step = net.stepper(batch=2)
    np.testing.assert_allclose(np.stack([step(x[:, t]) for t in range(4)], axis=1), out,
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", ["lnlstm", "lngru"])
def test_save_and_load_keep_the_class_and_options(cell, tmp_path):
    net = LAYERS[cell](D, H, num_layers=2, bidirectional=True, per_gate=True, seed=0)
    rnnkit.save(net, tmp_path / "ln")
    back = rnnkit.load(tmp_path / "ln")
    assert type(back) is LAYERS[cell] and back.options == {"per_gate": True}
    x = np.random.default_rng(4).standard_normal((2, 3, D)).astype(np.float32)
    np.testing.assert_array_equal(back.forward(x, grad=False)[0], net.forward(x, grad=False)[0])
    model = SequenceModel(input_size=D, hidden_size=H, cell=cell, bidirectional=True, seed=0)
    rnnkit.save(model, tmp_path / "model")
    again = rnnkit.load(tmp_path / "model")
    assert type(again.rnn) is rnnkit.Recurrent and again.rnn.spec.name == cell
    np.testing.assert_array_equal(again.forward(x, grad=False)[0], model.forward(x, grad=False)[0])


@pytest.mark.parametrize("cell", ["lnlstm", "lngru"])
def test_converters_refuse_it_by_name(cell, tmp_path):
    from rnnkit.interop import onnx_export, torch_models
    from rnnkit.interop.onnx_weights import to_onnx_weights
    from rnnkit.interop.torch_weights import to_torch_state_dict
    net = LAYERS[cell](D, H, seed=0)
    name = f"{type(net).__name__} layer \\(cell '{cell}'"
    for convert in (to_onnx_weights, to_torch_state_dict, torch_models.to_torch):
        with pytest.raises(rnnkit.RnnkitError, match=name):
            convert(net)
    model = SequenceModel(input_size=D, hidden_size=H, cell=cell, seed=0)
    with pytest.raises(rnnkit.RnnkitError, match=name):
        onnx_export.export(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_an_encoder_decoder_on_it_bridges_the_cell_state():
    from rnnkit.models import Seq2Seq
    model = Seq2Seq(tgt_vocab=7, feature_size=5, hidden_size=H, cell="lnlstm", seed=0)
    assert {"bridge.c.W_hy", "bridge.h.W_hy"} <= set(model.params)
    assert "bridge.c.W_hy" not in Seq2Seq(tgt_vocab=7, feature_size=5, hidden_size=H,
                                          cell="lngru", seed=0).params


def test_every_app_with_a_cell_choice_offers_them():
    import dataclasses
    from rnnkit.apps import load_apps
    without = set()
    for name, app in load_apps().items():
        fields = {f.name: f for f in dataclasses.fields(app.Config)}
        if "cell" in fields:
            assert {"lnlstm", "lngru"} <= set(fields["cell"].metadata["choices"]), name
        else:
            without.add(name)
    assert without == {"ner"}           # its LSTMs are Lample et al.'s, by design
