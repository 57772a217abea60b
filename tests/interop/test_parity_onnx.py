"""Parity of rnnkit's RNN / LSTM / GRU forward with the ONNX operators of the same names.

Weights go through ``rnnkit.interop.onnx_weights``; each case builds a one-node ONNX model
with ``onnx.helper`` and runs it with

* the ONNX reference implementation (``onnx.reference.ReferenceEvaluator``), float64 and
  float32, and
* onnxruntime's CPU kernels (float32 only: they have no float64 RNN/GRU), when installed.

ONNX layout 0 is seq-major: X [T, N, D], Y [T, num_directions, N, H], Y_h / Y_c
[num_directions, N, H]; rnnkit is batch-first, so tensors are transposed at the boundary.

sequence_lens and the reference implementation: ``ReferenceEvaluator``'s RNN, LSTM and GRU
(onnx/reference/ops/op_rnn.py, op_lstm.py, op_gru.py) accept ``sequence_lens`` and ignore
it: every row runs all T steps, so Y at padded steps is the recurrence continued over the
padding (not zeros), Y_h / Y_c are the states after step T-1 (forward), and the reverse
direction starts at step T-1 of the padded tensor instead of each row's own last step (so
all its outputs differ). ``test_reference_evaluator_ignores_sequence_lens`` pins this. The
honest comparison with lengths is therefore per row: the reference runs each sequence alone,
truncated to its own length, and rnnkit's padded batch must match it on the valid steps,
be exactly zero at the padded steps and end in the same final states. onnxruntime does
implement sequence_lens (zeros at padded steps, reverse from each row's last step), so the
onnxruntime cases pass the whole padded batch with sequence_lens.
"""
from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit.errors import RnnkitError
from rnnkit.interop.onnx_weights import (from_onnx_weights, onnx_attributes, onnx_op_type,
                                         to_onnx_weights)

import onnx  # noqa: E402  (the test extra installs it; these tests must run in CI)
from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import onnxruntime as ort  # noqa: E402

N, T, D, H = 4, 5, 3, 4
LENS = np.array([3, 5, 1, 4])             # unsorted, includes the full length T and 1
OPSET = 14

KINDS = {
    "rnn_tanh": (rnnkit.RNN, {}),
    "lstm": (rnnkit.LSTM, {}),
    "lstm_peep": (rnnkit.LSTM, {"peepholes": True}),
    "gru_lbr0": (rnnkit.GRU, {"reset_after": False}),
    "gru_lbr1": (rnnkit.GRU, {"reset_after": True}),
}
# The reference implementation's RNN knows only Tanh and Affine activations: relu is
# checked against onnxruntime only.
ORT_KINDS = {**KINDS, "rnn_relu": (rnnkit.RNN, {"nonlinearity": "relu"})}
DIRECTIONS = {"forward": {}, "reverse": {"reverse": True},
              "bidirectional": {"bidirectional": True}}
TOL = {np.float64: {"rtol": 1e-10, "atol": 1e-12}, np.float32: {"rtol": 1e-5, "atol": 1e-6}}
ONNX_DTYPE = {np.float64: TensorProto.DOUBLE, np.float32: TensorProto.FLOAT}



def _close(name, got, want, dtype, backend):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, err_msg=f"{name} ({backend})", **TOL[dtype])


# ---------------------------------------------------------------------------------- helpers

def make_layer(kind, direction, dtype, *, num_layers=1, seed=0):
    cls, kw = ORT_KINDS[kind]
    layer = cls(D, H, num_layers, dtype=dtype, seed=seed, **kw, **DIRECTIONS[direction])
    rng = np.random.default_rng(seed + 100)
    for p in layer.params.values():        # random everything (peepholes "l0.P" included)
        p[...] = rng.normal(0.0, 0.5, size=p.shape)
    return layer


def make_inputs(layer, dtype, seed=1, n=N):
    rng = np.random.default_rng(seed)
    shape = (layer.num_layers * layer.dirs, n, H)
    x = rng.normal(size=(n, T, D)).astype(dtype)
    h0 = (0.5 * rng.normal(size=shape)).astype(dtype)
    c0 = (0.5 * rng.normal(size=shape)).astype(dtype)
    return x, h0, c0


def onnx_model(op_type, attrs, dtype, *, t, n, d, dirs, with_lens, with_h0, with_c0,
               with_p):
    """One-node model; absent optional inputs are "" (trailing ones dropped)."""
    et = ONNX_DTYPE[dtype]
    G = {"RNN": 1, "LSTM": 4, "GRU": 3}[op_type]
    spec = [("X", et, [t, n, d], True), ("W", et, [dirs, G * H, d], True),
            ("R", et, [dirs, G * H, H], True), ("B", et, [dirs, 2 * G * H], True),
            ("sequence_lens", TensorProto.INT32, [n], with_lens),
            ("initial_h", et, [dirs, n, H], with_h0)]
    if op_type == "LSTM":
        spec += [("initial_c", et, [dirs, n, H], with_c0), ("P", et, [dirs, 3 * H], with_p)]
    names = [name if present else "" for name, _, _, present in spec]
    while names[-1] == "":
        names.pop()
    inputs = [helper.make_tensor_value_info(name, t_, shape)
              for name, t_, shape, present in spec if present]
    outs = ["Y", "Y_h"] + (["Y_c"] if op_type == "LSTM" else [])
    shapes = {"Y": [t, dirs, n, H], "Y_h": [dirs, n, H], "Y_c": [dirs, n, H]}
    outputs = [helper.make_tensor_value_info(o, et, shapes[o]) for o in outs]
    node = helper.make_node(op_type, names, outs, **attrs)
    graph = helper.make_graph([node], f"one_{op_type}", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=8)
    onnx.checker.check_model(model)
    return model


def run_onnx(backend, layer, x, h0=None, c0=None, lens=None, weights=None, layer_index=0):
    """Run the ONNX operator on batch-first x (N, T, D) -> dict of ONNX outputs."""
    dtype = layer.dtype.type
    weights = to_onnx_weights(layer, layer_index) if weights is None else weights
    op_type = onnx_op_type(layer)
    n, t, d = x.shape
    feeds = {"X": np.ascontiguousarray(x.transpose(1, 0, 2)), **weights}
    if lens is not None:
        feeds["sequence_lens"] = np.asarray(lens, np.int32)
    if h0 is not None:
        feeds["initial_h"] = h0
    if c0 is not None:
        feeds["initial_c"] = c0
    model = onnx_model(op_type, onnx_attributes(layer, layer_index), dtype, t=t, n=n, d=d,
                       dirs=layer.dirs, with_lens=lens is not None, with_h0=h0 is not None,
                       with_c0=c0 is not None, with_p="P" in weights)
    if backend == "reference":
        values = ReferenceEvaluator(model).run(None, feeds)
    else:
        sess = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        values = sess.run(None, feeds)
    return dict(zip([o.name for o in model.graph.output], values))


def run_rnnkit(layer, x, h0=None, c0=None, lens=None):
    """rnnkit forward, returned in ONNX layout: Y [T, dirs, N, H], Y_h[, Y_c]."""
    state = h0
    if layer.cell.has_cell_state and h0 is not None:    # ONNX: absent initial_c is zeros
        state = (h0, np.zeros_like(h0) if c0 is None else c0)
    out, st, _ = layer.forward(x, state, lengths=lens)
    n, t, _ = x.shape
    res = {"Y": out.reshape(n, t, layer.dirs, H).transpose(1, 2, 0, 3)}
    if layer.cell.has_cell_state:
        res["Y_h"], res["Y_c"] = st
    else:
        res["Y_h"] = st
    return res


def compare(got, want, dtype, backend):
    assert set(got) == set(want)
    for name in sorted(want):
        _close(name, got[name], want[name], dtype, backend)


# ---------------------------------------------------------------------- reference parity

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("lengths", [None, "var"])
@pytest.mark.parametrize("direction", list(DIRECTIONS))
@pytest.mark.parametrize("kind", list(KINDS))
def test_reference_parity(kind, direction, lengths, with_state, dtype):
    layer = make_layer(kind, direction, dtype)
    x, h0, c0 = make_inputs(layer, dtype)
    if not with_state:
        h0 = c0 = None
    if not layer.cell.has_cell_state:
        c0 = None
    if lengths is None:
        got = run_rnnkit(layer, x, h0, c0)
        want = run_onnx("reference", layer, x, h0, c0)
        compare(got, want, dtype, "reference")
        return
    # The reference ignores sequence_lens (module docstring): run it on each row alone,
    # truncated to that row's length, and compare with rnnkit's padded-batch result.
    got = run_rnnkit(layer, x, h0, c0, lens=LENS)
    for i, L in enumerate(LENS):
        row = slice(i, i + 1)
        want = run_onnx("reference", layer, x[row, :L],
                        None if h0 is None else h0[:, row], None if c0 is None else c0[:, row])
        assert np.all(got["Y"][L:, :, i] == 0), f"row {i}: nonzero Y at padded steps"
        _close(f"Y[:{L}] row {i}", got["Y"][:L, :, row], want["Y"], dtype, "reference")
        for name in ("Y_h", "Y_c"):
            if name in want:
                _close(f"{name} row {i}", got[name][:, row], want[name], dtype, "reference")


def test_reference_evaluator_ignores_sequence_lens():
    """Pins why the parity test runs the reference row by row when lengths are given.

    If this starts failing, onnx's reference implementation now honours sequence_lens and
    the full padded batch could be compared directly.
    """
    for kind in KINDS:
        layer = make_layer(kind, "bidirectional", np.float64)
        x, h0, c0 = make_inputs(layer, np.float64)
        c0 = c0 if layer.cell.has_cell_state else None
        with_lens = run_onnx("reference", layer, x, h0, c0, lens=LENS)
        without = run_onnx("reference", layer, x, h0, c0)
        for name in without:
            assert np.array_equal(with_lens[name], without[name]), (kind, name)
        # ... and so differs from the sequence_lens semantics rnnkit (and onnxruntime) use.
        got = run_rnnkit(layer, x, h0, c0, lens=LENS)
        assert not np.allclose(got["Y"], with_lens["Y"])


# --------------------------------------------------------------------- onnxruntime parity

@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("lengths", [None, "var"])
@pytest.mark.parametrize("direction", list(DIRECTIONS))
@pytest.mark.parametrize("kind", list(ORT_KINDS))
def test_onnxruntime_parity_float32(kind, direction, lengths, with_state):
    dtype = np.float32
    layer = make_layer(kind, direction, dtype)
    x, h0, c0 = make_inputs(layer, dtype)
    if not with_state:
        h0 = c0 = None
    if not layer.cell.has_cell_state:
        c0 = None
    lens = None if lengths is None else LENS
    got = run_rnnkit(layer, x, h0, c0, lens=lens)
    want = run_onnx("onnxruntime", layer, x, h0, c0, lens=lens)
    if lens is not None:
        for i, L in enumerate(LENS):
            assert np.all(got["Y"][L:, :, i] == 0)
            assert np.all(want["Y"][L:, :, i] == 0)      # onnxruntime zeros padded steps too
    compare(got, want, dtype, "onnxruntime")


# ------------------------------------------------------------ weights loaded from ONNX side

@pytest.mark.parametrize("direction", list(DIRECTIONS))
@pytest.mark.parametrize("kind", list(KINDS))
def test_from_onnx_weights_parity(kind, direction):
    """Random ONNX-layout tensors loaded into rnnkit compute what the operator computes."""
    dtype = np.float64
    layer = make_layer(kind, direction, dtype, seed=7)
    rng = np.random.default_rng(3)
    tensors = {k: rng.normal(0.0, 0.5, size=v.shape)
               for k, v in to_onnx_weights(layer).items()}
    from_onnx_weights(layer, 0, **tensors)
    x, h0, c0 = make_inputs(layer, dtype)
    c0 = c0 if layer.cell.has_cell_state else None
    want = run_onnx("reference", layer, x, h0, c0, weights=tensors)
    compare(run_rnnkit(layer, x, h0, c0), want, dtype, "reference")


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_stacked_layers_chain_of_operators(kind, direction):
    """A 2-layer rnnkit stack = two ONNX operators chained, weights from layer_index 0, 1."""
    dtype = np.float64
    layer = make_layer(kind, direction, dtype, num_layers=2)
    x, h0, c0 = make_inputs(layer, dtype)
    c0 = c0 if layer.cell.has_cell_state else None
    state = (h0, c0) if c0 is not None else h0
    out, st, _ = layer.forward(x, state)
    dirs = layer.dirs
    seq, finals = x, []
    for k in range(2):
        sl = slice(k * dirs, (k + 1) * dirs)
        ys = run_onnx("reference", layer, seq, h0[sl], None if c0 is None else c0[sl],
                      layer_index=k)
        finals.append(ys)
        Y = ys["Y"]                                               # [T, dirs, N, H]
        seq = Y.transpose(2, 0, 1, 3).reshape(N, T, dirs * H)     # next layer's input
    _close("out", out, seq, dtype, "reference")
    h_n = st[0] if layer.cell.has_cell_state else st
    _close("Y_h", h_n, np.concatenate([f["Y_h"] for f in finals]), dtype, "reference")
    if layer.cell.has_cell_state:
        _close("Y_c", st[1], np.concatenate([f["Y_c"] for f in finals]), dtype, "reference")


# ------------------------------------------------------------------------------ round trip

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("direction", list(DIRECTIONS))
@pytest.mark.parametrize("kind", list(ORT_KINDS))
def test_round_trip_exact(kind, direction, dtype):
    src = make_layer(kind, direction, dtype, num_layers=2, seed=1)
    dst = make_layer(kind, direction, dtype, num_layers=2, seed=2)
    for k in range(2):
        w = to_onnx_weights(src, k)
        assert all(v.dtype == dtype for v in w.values())
        from_onnx_weights(dst, k, **w)
        again = to_onnx_weights(dst, k)
        assert set(again) == set(w)
        for name in w:
            assert np.array_equal(again[name], w[name]), name
    for key in src.params:
        assert np.array_equal(src.params[key], dst.params[key]), key


def test_only_the_given_layer_is_written_in_place():
    src = make_layer("lstm_peep", "bidirectional", np.float64, num_layers=2, seed=1)
    dst = make_layer("lstm_peep", "bidirectional", np.float64, num_layers=2, seed=2)
    before = {k: v.copy() for k, v in dst.params.items()}
    arrays = {k: v for k, v in dst.params.items()}
    from_onnx_weights(dst, 1, **to_onnx_weights(src, 1))
    for key, value in dst.params.items():
        assert value is arrays[key]                               # same arrays, in place
        expect = src.params[key] if key.startswith("l1") else before[key]
        assert np.array_equal(value, expect), key


def test_known_layout_by_hand():
    """Gate blocks and the GRU z sign on hand-made parameters (no ONNX involved)."""
    h = 2
    lstm = rnnkit.LSTM(1, h, peepholes=True, dtype=np.float64, seed=0)
    for g in range(4):                                            # rnnkit i, f, g, o = 0..3
        lstm.params["l0.W_xh"][g * h:(g + 1) * h] = g
        lstm.params["l0.b_xh"][g * h:(g + 1) * h] = 10 + g
        lstm.params["l0.b_hh"][g * h:(g + 1) * h] = 20 + g
    lstm.params["l0.P"][...] = np.repeat([0.0, 1.0, 2.0], h)      # rnnkit P i, f, o
    w = to_onnx_weights(lstm)
    assert w["W"][0, :, 0].tolist() == np.repeat([0, 3, 1, 2], h).tolist()   # ONNX i, o, f, c
    assert w["B"][0].tolist() == np.repeat([10, 13, 11, 12, 20, 23, 21, 22], h).tolist()
    assert w["P"][0].tolist() == np.repeat([0, 2, 1], h).tolist()            # ONNX i, o, f

    gru = rnnkit.GRU(1, h, dtype=np.float64, seed=0)
    for g in range(3):                                            # rnnkit r, z, n = 0..2
        gru.params["l0.W_xh"][g * h:(g + 1) * h] = 1 + g
        gru.params["l0.b_hh"][g * h:(g + 1) * h] = 5 + g
    w = to_onnx_weights(gru)
    assert w["W"][0, :, 0].tolist() == np.repeat([-2, 1, 3], h).tolist()     # ONNX z, r, h
    assert w["B"][0, 3 * h:].tolist() == np.repeat([-6, 5, 7], h).tolist()   # Rb: z, r, h


# ------------------------------------------------------------------------------ attributes

@pytest.mark.parametrize("direction", list(DIRECTIONS))
@pytest.mark.parametrize("kind", list(ORT_KINDS))
def test_attributes(kind, direction):
    layer = make_layer(kind, direction, np.float32)
    attrs = onnx_attributes(layer)
    assert attrs["hidden_size"] == H
    assert attrs["direction"] == direction
    assert onnx_op_type(layer) == kind.split("_")[0].upper()
    if kind.startswith("gru"):
        assert attrs["linear_before_reset"] == (1 if kind == "gru_lbr1" else 0)
    else:
        assert "linear_before_reset" not in attrs
    if kind.startswith("rnn"):
        act = "Relu" if kind == "rnn_relu" else "Tanh"
        assert attrs["activations"] == [act] * layer.dirs
    helper.make_node(onnx_op_type(layer), ["X", "W", "R"], ["Y"], **attrs)   # valid kwargs


# ---------------------------------------------------------------------------------- errors

def _raises(match, fn, *args, **kwargs):
    with pytest.raises(RnnkitError, match=match):
        fn(*args, **kwargs)


def test_shape_errors_name_tensor_expected_and_received():
    layer = make_layer("lstm_peep", "bidirectional", np.float64)
    good = to_onnx_weights(layer)
    before = {k: v.copy() for k, v in layer.params.items()}
    for name, bad_shape in (("W", (2, 16, 4)), ("R", (1, 16, 4)), ("B", (2, 16)),
                            ("P", (2, 3, 4))):
        w = dict(good, **{name: np.zeros(bad_shape)})
        expected = good[name].shape
        with pytest.raises(RnnkitError) as info:
            from_onnx_weights(layer, 0, **w)
        msg = str(info.value)
        assert msg.startswith(f"{name}: expected shape {expected}"), msg
        assert f"got shape {bad_shape}" in msg, msg
    for k, v in layer.params.items():                              # nothing written
        assert np.array_equal(v, before[k]), k


def test_other_errors():
    lstm = make_layer("lstm", "forward", np.float64)
    w = to_onnx_weights(lstm)
    assert "P" not in w
    _raises(r"^layer_index: expected", to_onnx_weights, lstm, 1)
    _raises(r"^layer_index: expected", from_onnx_weights, lstm, -1, **w)
    _raises(r"^layer: expected", to_onnx_weights, object())
    _raises(r"^P: expected None or all zeros", from_onnx_weights, lstm, 0,
            P=np.ones((1, 3 * H)), **w)
    from_onnx_weights(lstm, 0, P=np.zeros((1, 3 * H)), **w)        # zeros are fine
    _raises(r"^W: expected a floating-point", from_onnx_weights, lstm, 0,
            **dict(w, W=w["W"].astype(np.int64)))
    _raises(r"^R: expected a NumPy array", from_onnx_weights, lstm, 0, **dict(w, R=[1.0]))
    _raises(r"^B: expected finite values", from_onnx_weights, lstm, 0,
            **dict(w, B=np.full_like(w["B"], np.nan)))
    gru = make_layer("gru_lbr1", "forward", np.float64)
    _raises(r"^P: expected None", from_onnx_weights, gru, 0, P=np.zeros((1, 3 * H)),
            **to_onnx_weights(gru))


def test_missing_optional_tensors_mean_zeros():
    layer = make_layer("lstm_peep", "reverse", np.float64)
    w = to_onnx_weights(layer)
    from_onnx_weights(layer, 0, w["W"], w["R"], None)
    assert not layer.params["l0.b_xh"].any() and not layer.params["l0.b_hh"].any()
    assert not layer.params["l0.P"].any()
    # dtype conversion: float32 ONNX tensors into a float64 layer
    w32 = {k: v.astype(np.float32) for k, v in w.items()}
    from_onnx_weights(layer, 0, **w32)
    assert layer.params["l0.W_xh"].dtype == np.float64
    back = to_onnx_weights(layer)
    for name in w32:
        assert np.array_equal(back[name], w32[name].astype(np.float64))
