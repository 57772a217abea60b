"""Parity with torch.nn.RNN / LSTM / GRU on identical weights: outputs, final states and every
gradient (input, initial state, each parameter), plus the weight conversion itself.

The loss on both sides is sum(out * dout) + sum(h_n * dh) [+ sum(c_n * dc)] for random dout,
dh, dc, so backward sees an arbitrary upstream gradient on outputs and final states.
"""
import numpy as np
import pytest
import torch

from rnnkit import GRU, LSTM, RNN, RnnkitError
from rnnkit.cells import from_pytorch_convention, to_pytorch_convention
from rnnkit.interop.torch_weights import (from_torch_state_dict, grads_to_torch_layout,
                                          to_torch_state_dict)

torch.set_num_threads(1)

N, T, D, H = 5, 7, 4, 5
LENGTHS = np.array([4, 7, 2, 5, 1])            # unsorted, includes the full length T and 1
KINDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
# float64: elementwise. float32: max |ours - torch| <= 1e-5 * max |torch| per array, since a
# float32 gradient entry far below its array's scale carries the rounding of sums of terms at
# that scale (observed: 7e-7 of the max norm, ours and torch equally far from float64 values).
F64_TOL = dict(rtol=1e-10, atol=1e-12)
F32_TOL = 1e-5


def make_pair(kind, num_layers, bidirectional, dtype, dropout=0.0, seed=0):
    """An rnnkit layer and a batch-first torch module holding the same weights."""
    kw = dict(bidirectional=bidirectional, dropout=dropout, dtype=dtype, seed=seed)
    tkw = dict(bidirectional=bidirectional, dropout=dropout, batch_first=True)
    if kind.startswith("rnn"):
        act = kind[4:]
        layer = RNN(D, H, num_layers, nonlinearity=act, **kw)
        module = torch.nn.RNN(D, H, num_layers, nonlinearity=act, **tkw)
    elif kind == "lstm":
        layer, module = LSTM(D, H, num_layers, **kw), torch.nn.LSTM(D, H, num_layers, **tkw)
    else:
        layer, module = GRU(D, H, num_layers, **kw), torch.nn.GRU(D, H, num_layers, **tkw)
    if dtype == np.float64:
        module = module.double()
    load_torch(module, to_torch_state_dict(layer))
    return layer, module


def load_torch(module, sd):
    module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})


def torch_sd(module):
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def run_both(layer, module, lengths, with_state=True, seed=1):
    """Forward + backward on both sides; returns (rnnkit results, torch results) dicts."""
    rng = np.random.default_rng(seed)
    dtype, lstm = layer.dtype, isinstance(module, torch.nn.LSTM)
    S = (layer.num_layers * layer.dirs, N, H)
    x = rng.standard_normal((N, T, D)).astype(dtype)
    h0, c0 = (rng.standard_normal(S).astype(dtype) for _ in range(2))
    dout = rng.standard_normal((N, T, layer.dirs * H)).astype(dtype)
    dh, dc = (rng.standard_normal(S).astype(dtype) for _ in range(2))

    state = ((h0, c0) if lstm else h0) if with_state else None
    out, st, cache = layer.forward(x, state, lengths)
    layer.zero_grad()
    dx, dst = layer.backward(dout, (dh, dc) if lstm else dh, cache)
    h_n, c_n = st if lstm else (st, None)
    dh0, dc0 = dst if lstm else (dst, None)
    ours = dict(out=out, h_n=h_n, dx=dx, dh0=dh0, c_n=c_n, dc0=dc0)

    xt = torch.tensor(x, requires_grad=True)
    h0t, c0t = torch.tensor(h0, requires_grad=True), torch.tensor(c0, requires_grad=True)
    inp = xt
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths),
                                                      batch_first=True, enforce_sorted=False)
    tstate = ((h0t, c0t) if lstm else h0t) if with_state else None
    o, st_t = module(inp, tstate)
    if lengths is not None:
        o, _ = torch.nn.utils.rnn.pad_packed_sequence(o, batch_first=True, total_length=T)
    hn_t, cn_t = st_t if lstm else (st_t, None)
    module.zero_grad()
    loss = (o * torch.from_numpy(dout)).sum() + (hn_t * torch.from_numpy(dh)).sum()
    if lstm:
        loss = loss + (cn_t * torch.from_numpy(dc)).sum()
    loss.backward()
    theirs = dict(out=o, h_n=hn_t, dx=xt.grad, c_n=cn_t,
                  dh0=h0t.grad if with_state else None, dc0=c0t.grad if with_state else None)
    theirs = {k: None if v is None else v.detach().numpy() for k, v in theirs.items()}
    if not lstm:
        theirs["c_n"] = theirs["dc0"] = None
    if not with_state:
        ours["dh0"] = ours["dc0"] = None
    ours.update({"grad." + k: v for k, v in grads_to_torch_layout(layer).items()})
    theirs.update({"grad." + name: p.grad.numpy() for name, p in module.named_parameters()})
    return ours, theirs


def assert_parity(ours, theirs, dtype):
    assert ours.keys() == theirs.keys()
    for name in ours:
        if theirs[name] is None:
            assert ours[name] is None, name
            continue
        a, b = ours[name], theirs[name]
        assert a.dtype == dtype and a.shape == b.shape, name
        if dtype == np.float64:
            np.testing.assert_allclose(a, b, err_msg=name, **F64_TOL)
        else:
            err, scale = np.abs(a - b).max(), np.abs(b).max()
            assert err <= F32_TOL * scale, f"{name}: max error {err:.3g}, max |torch| {scale:.3g}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("lengths", [LENGTHS, None], ids=["lengths", "full"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_parity(kind, num_layers, bidirectional, lengths, dtype):
    layer, module = make_pair(kind, num_layers, bidirectional, dtype)
    assert_parity(*run_both(layer, module, lengths), dtype)


@pytest.mark.parametrize("kind", KINDS)
def test_parity_zero_initial_state(kind):
    layer, module = make_pair(kind, 2, True, np.float64)
    assert_parity(*run_both(layer, module, LENGTHS, with_state=False), np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind", KINDS)
def test_dropout_inference_matches_torch_eval(kind, dtype):
    layer, module = make_pair(kind, 3, True, dtype, dropout=0.5)
    module.eval()                                   # rnnkit forward defaults to training=False
    assert_parity(*run_both(layer, module, LENGTHS), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_through_torch_is_bit_exact(kind, dtype):
    layer, module = make_pair(kind, 2, True, dtype, seed=3)
    sd = torch_sd(module)
    assert list(sd) == list(to_torch_state_dict(layer))      # same names, same order
    fresh, _ = make_pair(kind, 2, True, dtype, seed=4)
    from_torch_state_dict(fresh, sd)
    assert fresh.params.keys() == layer.params.keys()
    for name, value in layer.params.items():
        assert fresh.params[name].dtype == value.dtype
        np.testing.assert_array_equal(fresh.params[name], value, err_msg=name)


def test_gru_convention_conversion_is_exact_and_its_own_inverse():
    rng = np.random.default_rng(5)
    p = {"W_xh": rng.standard_normal((3 * H, D)), "W_hh": rng.standard_normal((3 * H, H)),
         "b_xh": rng.standard_normal(3 * H), "b_hh": rng.standard_normal(3 * H)}
    q = to_pytorch_convention(p)
    for name, a in p.items():
        np.testing.assert_array_equal(q[name][H:2 * H], -a[H:2 * H])       # z rows negated
        np.testing.assert_array_equal(np.delete(q[name], np.s_[H:2 * H], axis=0),
                                      np.delete(a, np.s_[H:2 * H], axis=0))
        np.testing.assert_array_equal(from_pytorch_convention(q)[name], a)
        np.testing.assert_array_equal(to_pytorch_convention(q)[name], a)
    layer = GRU(D, H, 2, bidirectional=True, dtype=np.float64, seed=6)
    sd = to_torch_state_dict(layer)
    b, tb = layer.params["l1_reverse.b_hh"], sd["bias_hh_l1_reverse"]
    np.testing.assert_array_equal(tb, np.concatenate([b[:H], -b[H:2 * H], b[2 * H:]]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_torch_initialised_gru_loaded_into_rnnkit_matches_torch(dtype):
    """Start from PyTorch's own weights: conversion into rnnkit's convention is exact."""
    torch.manual_seed(0)
    module = torch.nn.GRU(D, H, 2, bidirectional=True, batch_first=True)
    if dtype == np.float64:
        module = module.double()
    layer = GRU(D, H, 2, bidirectional=True, dtype=dtype, seed=7)
    from_torch_state_dict(layer, torch_sd(module))
    assert_parity(*run_both(layer, module, LENGTHS), dtype)
    # Without the z negation the two GRUs disagree: the conversion is what makes them agree.
    raw, sd = GRU(D, H, 2, bidirectional=True, dtype=dtype, seed=7), torch_sd(module)
    for k in range(2):
        for d in range(2):
            suffix = f"_l{k}" + ("_reverse" if d else "")
            for name, stem in [("W_xh", "weight_ih"), ("W_hh", "weight_hh"),
                               ("b_xh", "bias_ih"), ("b_hh", "bias_hh")]:
                raw.params[raw.prefix(k, d) + name][...] = sd[stem + suffix]
    ours, theirs = run_both(raw, module, LENGTHS)
    assert np.abs(ours["out"] - theirs["out"]).max() > 1e-2


def test_load_errors_name_key_and_shapes_and_leave_params_untouched():
    layer = LSTM(D, H, 2, bidirectional=True, seed=0)
    before = {k: v.copy() for k, v in layer.params.items()}
    sd = to_torch_state_dict(layer)
    sd = {k: v + 1 for k, v in sd.items()}

    bad = dict(sd, weight_hh_l1_reverse=np.zeros((4 * H, H + 1), np.float32))
    with pytest.raises(RnnkitError, match=r"weight_hh_l1_reverse.*\(20, 5\).*\(20, 6\)"):
        from_torch_state_dict(layer, bad)
    missing = {k: v for k, v in sd.items() if k != "bias_ih_l0"}
    with pytest.raises(RnnkitError, match="missing.*bias_ih_l0"):
        from_torch_state_dict(layer, missing)
    with pytest.raises(RnnkitError, match="unexpected.*weight_ih_l2"):
        from_torch_state_dict(layer, dict(sd, weight_ih_l2=np.zeros((4 * H, 2 * H))))
    with pytest.raises(RnnkitError, match="bias_hh_l0.*finite"):
        from_torch_state_dict(layer, dict(sd, bias_hh_l0=np.full(4 * H, np.nan)))
    for k, v in before.items():
        np.testing.assert_array_equal(layer.params[k], v)


@pytest.mark.parametrize("layer", [LSTM(D, H, peepholes=True), GRU(D, H, reset_after=False),
                                   RNN(D, H, reverse=True)], ids=["peephole", "reset_before",
                                                                  "reverse"])
def test_layers_torch_cannot_express_raise(layer):
    with pytest.raises(RnnkitError):
        to_torch_state_dict(layer)
    with pytest.raises(RnnkitError):
        grads_to_torch_layout(layer)
    with pytest.raises(RnnkitError):
        from_torch_state_dict(layer, {})
