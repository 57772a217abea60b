"""rnnkit.onnx.run on ONNX graphs: every RNN / LSTM / GRU attribute, against onnxruntime and
the ONNX reference implementation; graphs from torch.onnx.export; clear errors.

One-node graphs are built by hand with onnx.helper over direction x layout x sequence_lens x
initial states, for RNN (Tanh, Relu), LSTM (with and without peepholes P) and GRU
(linear_before_reset 0 and 1); clip and explicit activations are cases of their own.

* onnxruntime: float32, tolerance 1e-5. Its CPU kernels refuse layout=1 ("Batchwise
  recurrent operations (layout == 1) are not supported"), so a layout-1 graph is compared
  with onnxruntime running the same node at layout 0 on transposed tensors.
* Reference (``onnx.reference.ReferenceEvaluator``, float64, 1e-10): it runs layout 1 itself
  but ignores sequence_lens (see tests/test_parity_onnx.py), so with lengths it runs each row
  alone, truncated to its length, and rnnkit's padded result must match on the valid steps,
  be zero on the padded ones and end in the same final states. It ignores clip too.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

import rnnkit
import rnnkit.onnx
from rnnkit.errors import RnnkitError

import onnx  # noqa: E402  (the test extra installs it; must run in CI)
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

N, T, D, H = 3, 5, 3, 4
LENS = np.array([4, 5, 2])                 # unsorted, includes T
OPSET = 17
ELEM = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE}
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-10)}
KINDS = {  # name: (op, attributes, peepholes)
    "rnn_tanh": ("RNN", {}, False),
    "rnn_relu": ("RNN", {"activations": ["Relu"]}, False),      # one per direction
    "lstm": ("LSTM", {}, False),
    "lstm_peep": ("LSTM", {}, True),
    "gru_lbr0": ("GRU", {"linear_before_reset": 0}, False),
    "gru_lbr1": ("GRU", {"linear_before_reset": 1}, False),
}
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


def _close(name, got, want, dtype, backend):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{name}: {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, err_msg=f"{name} ({backend})", **TOL[dtype])


def weights(op, dirs, peep, dtype, seed=0):
    rng = np.random.default_rng(seed)
    G = GATES[op]
    w = {"W": rng.normal(0, 0.5, (dirs, G * H, D)), "R": rng.normal(0, 0.5, (dirs, G * H, H)),
         "B": rng.normal(0, 0.5, (dirs, 2 * G * H))}
    if peep:
        w["P"] = rng.normal(0, 0.5, (dirs, 3 * H))
    return {k: v.astype(dtype) for k, v in w.items()}


def one_node(op, attrs, w, dtype, *, direction, layout, lens, h0, c0, outputs=None,
             weights_as_inputs=False):
    """A graph with one recurrent node; X, sequence_lens and initial states are graph inputs."""
    et, dirs = ELEM[dtype], w["W"].shape[0]
    outs = outputs or (["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"])
    xs = ["T", "N", D] if layout == 0 else ["N", "T", D]
    ss = [dirs, "N", H] if layout == 0 else ["N", dirs, H]
    ws = {k: list(v.shape) for k, v in w.items()}
    spec = [("X", et, xs, True), ("W", et, ws["W"], True), ("R", et, ws["R"], True),
            ("B", et, ws["B"], True), ("sequence_lens", TensorProto.INT32, ["N"], lens),
            ("initial_h", et, ss, h0)]
    if op == "LSTM":
        spec += [("initial_c", et, ss, c0), ("P", et, ws.get("P"), "P" in w)]
    names = [name if present else "" for name, _, _, present in spec]
    while names[-1] == "":
        names.pop()
    graph_inputs = [helper.make_tensor_value_info(name, t, shape) for name, t, shape, present
                    in spec if present and (name not in w or weights_as_inputs)]
    inits = [] if weights_as_inputs else [numpy_helper.from_array(v, k) for k, v in w.items()]
    node = helper.make_node(op, names, outs, name="rec", direction=direction,
                            hidden_size=H, **({"layout": 1} if layout else {}), **attrs)
    shapes = {"Y": ["T", dirs, "N", H] if layout == 0 else ["N", "T", dirs, H]}
    graph = helper.make_graph([node], "g", graph_inputs,
                              [helper.make_tensor_value_info(o, et, shapes.get(o, ss))
                               for o in outs if o], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=8)
    onnx.checker.check_model(model)
    return model


def inputs(op, dirs, dtype, layout, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, N, D)).astype(dtype)
    h0 = (0.5 * rng.normal(size=(dirs, N, H))).astype(dtype)
    c0 = (0.5 * rng.normal(size=(dirs, N, H))).astype(dtype)
    if layout == 1:
        x, h0, c0 = x.transpose(1, 0, 2), h0.transpose(1, 0, 2), c0.transpose(1, 0, 2)
    return np.ascontiguousarray(x), np.ascontiguousarray(h0), np.ascontiguousarray(c0)


def feeds_for(x, h0, c0, lens, op):
    f = {"X": x}
    if lens is not None:
        f["sequence_lens"] = np.asarray(lens, np.int32)
    if h0 is not None:
        f["initial_h"] = h0
    if c0 is not None and op == "LSTM":
        f["initial_c"] = c0
    return f


def run_ort(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def to_layout0(feeds):
    out = dict(feeds)
    for k in ("X", "initial_h", "initial_c"):
        if k in out:
            out[k] = np.ascontiguousarray(out[k].transpose(1, 0, 2))
    return out


def to_layout1_outputs(outs):
    """[Y (T, dirs, N, H), Y_h, Y_c (dirs, N, H)] -> layout 1 shapes."""
    return [outs[0].transpose(2, 0, 1, 3)] + [o.transpose(1, 0, 2) for o in outs[1:]]


def case(kind, direction, layout, lens, state, dtype):
    op, attrs, peep = KINDS[kind]
    dirs = 2 if direction == "bidirectional" else 1
    if "activations" in attrs:
        attrs = dict(attrs, activations=attrs["activations"] * dirs)
    w = weights(op, dirs, peep, dtype)
    x, h0, c0 = inputs(op, dirs, dtype, layout)
    kw = dict(direction=direction, layout=layout, lens=lens is not None, h0=state, c0=state)
    feeds = feeds_for(x, h0 if state else None, c0 if state else None, lens, op)
    return op, attrs, w, kw, feeds


# ------------------------------------------------------------------- against onnxruntime

@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_one_node_against_onnxruntime(kind, direction, layout):
    for lens in (None, LENS):
        for state in (False, True):
            op, attrs, w, kw, feeds = case(kind, direction, layout, lens, state, np.float32)
            got = rnnkit.onnx.run(one_node(op, attrs, w, np.float32, **kw), feeds)
            ort_model = one_node(op, attrs, w, np.float32, **dict(kw, layout=0))
            want = run_ort(ort_model, to_layout0(feeds) if layout else feeds)
            if layout:
                want = to_layout1_outputs(want)
            assert len(got) == len(want)
            for i, (g, o) in enumerate(zip(got, want)):
                _close(f"{kind} output {i} lens={lens is not None} state={state}", g, o,
                       np.float32, "onnxruntime")
            if lens is not None:                       # zero outputs at padded steps
                Y = got[0] if layout else got[0].transpose(2, 0, 1, 3)     # (N, T, dirs, H)
                for i, L in enumerate(LENS):
                    assert np.all(Y[i, L:] == 0)


# ------------------------------------------------------ against the reference implementation

@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("kind", [k for k in KINDS if k != "rnn_relu"])   # the reference: Tanh only
def test_one_node_against_reference(kind, direction, layout):
    dtype = np.float64
    for state in (False, True):
        op, attrs, w, kw, feeds = case(kind, direction, layout, None, state, dtype)
        model = one_node(op, attrs, w, dtype, **kw)
        got = rnnkit.onnx.run(model, feeds)
        want = ReferenceEvaluator(model).run(None, feeds)
        for i, (g, r) in enumerate(zip(got, want)):
            _close(f"{kind} output {i} state={state}", g, r, dtype, "reference")
        # sequence_lens: the reference runs each row alone, truncated to its length.
        op, attrs, w, kw, feeds = case(kind, direction, layout, LENS, state, dtype)
        got = rnnkit.onnx.run(one_node(op, attrs, w, dtype, **kw), feeds)
        row_model = one_node(op, attrs, w, dtype, **dict(kw, lens=False))
        bax = 1 if layout == 0 else 0                  # batch axis of X and Y
        for i, L in enumerate(LENS):
            row = {k: np.take(v, [i], axis=bax) for k, v in feeds.items()
                   if k != "sequence_lens"}
            row["X"] = np.take(row["X"], range(L), axis=1 - bax)
            want = ReferenceEvaluator(row_model).run(None, row)
            Y = np.take(got[0], [i], axis=2 if layout == 0 else 0)
            steps = 0 if layout == 0 else 1
            _close(f"{kind} Y row {i}", np.take(Y, range(L), axis=steps), want[0], dtype,
                   "reference")
            assert np.all(np.take(Y, range(L, T), axis=steps) == 0)
            for k in range(1, len(got)):
                final = np.take(got[k], [i], axis=1 if layout == 0 else 0)
                _close(f"{kind} final {k} row {i}", final, want[k], dtype, "reference")


# ------------------------------------------------------------------ attributes one by one

@pytest.mark.parametrize("kind", list(KINDS))
def test_clip_that_never_binds_is_exact(kind):
    """A safety threshold above every pre-activation: rnnkit equals onnxruntime with clip."""
    op, attrs, w, kw, feeds = case(kind, "bidirectional", 0, LENS, True, np.float32)
    model = one_node(op, dict(attrs, clip=50.0), w, np.float32, **kw)
    for g, o in zip(rnnkit.onnx.run(model, feeds), run_ort(model, feeds)):
        _close(f"{kind} clip=50", g, o, np.float32, "onnxruntime")


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_clip_that_binds_equals_onnxruntime(kind, direction):
    op, attrs, w, kw, feeds = case(kind, direction, 0, LENS, True, np.float32)
    w = {k: 4 * v for k, v in w.items()}               # pre-activations well beyond 0.5
    model = one_node(op, dict(attrs, clip=0.5), w, np.float32, **kw)
    clipped = run_ort(model, feeds)
    unclipped = run_ort(one_node(op, attrs, w, np.float32, **kw), feeds)
    assert not np.allclose(clipped[0], unclipped[0])   # clipping really changes the answer
    for g, o in zip(rnnkit.onnx.run(model, feeds), clipped):
        _close(f"{kind} clip=0.5", g, o, np.float32, "onnxruntime")


def test_explicit_default_activations_and_derived_hidden_size():
    """Defaults spelled out (one list per direction, any case) and no hidden_size."""
    acts = {"rnn_tanh": ["Tanh", "Tanh"], "lstm": ["Sigmoid", "Tanh", "Tanh"] * 2,
            "gru_lbr1": ["sigmoid", "tanh", "Sigmoid", "Tanh"]}
    for kind, activations in acts.items():
        op, attrs, w, kw, feeds = case(kind, "bidirectional", 0, LENS, True, np.float32)
        want = run_ort(one_node(op, attrs, w, np.float32, **kw), feeds)
        model = one_node(op, dict(attrs, activations=activations), w, np.float32, **kw)
        node = model.graph.node[0]
        del node.attribute[[a.name for a in node.attribute].index("hidden_size")]
        for g, o in zip(rnnkit.onnx.run(model, feeds), want):
            _close(f"{kind} activations", g, o, np.float32, "onnxruntime")


def test_weights_fed_at_run_time_and_outputs_left_out():
    op, attrs, w, kw, feeds = case("lstm_peep", "reverse", 0, LENS, True, np.float32)
    model = one_node(op, attrs, w, np.float32, weights_as_inputs=True, **kw)
    graph = rnnkit.onnx.load(model)
    assert graph.nodes[0][2].layer is None             # built per run: weights are inputs
    want = run_ort(one_node(op, attrs, w, np.float32, **kw), feeds)
    for g, o in zip(graph.run({**feeds, **w}), want):
        _close("weights as inputs", g, o, np.float32, "onnxruntime")
    only_h = one_node(op, attrs, w, np.float32, outputs=["", "Y_h"], **kw)
    (y_h,) = rnnkit.onnx.run(only_h, feeds)
    _close("Y_h only", y_h, want[1], np.float32, "onnxruntime")


# -------------------------------------------------------------- graphs with ops around RNNs

def _head_graph(opset):
    """ids -> Gather -> Transpose -> bidirectional LSTM -> Transpose/Reshape -> Unsqueeze /
    Squeeze -> Concat with the final states -> MatMul + Add / Gemm -> Softmax."""
    rng = np.random.default_rng(5)
    V, E = 7, D
    w = weights("LSTM", 2, False, np.float32, seed=4)
    c = lambda name, a: numpy_helper.from_array(np.asarray(a), name)          # noqa: E731
    inits = [c("E", rng.normal(size=(V, E)).astype(np.float32)),
             c("W", w["W"]), c("R", w["R"]), c("B", w["B"]),
             c("Wy", rng.normal(size=(2 * H, 3)).astype(np.float32)),
             c("by", rng.normal(size=3).astype(np.float32)),
             c("shape", np.array([0, 0, -1], np.int64)),
             c("Wg", rng.normal(size=(3, 2 * H)).astype(np.float32)),
             c("s0", np.array([0], np.int64)), c("s1", np.array([1], np.int64)),
             c("s_axes", np.array([1], np.int64))]
    axes = lambda name, a: ([name], {}) if opset >= 13 else ([], {"axes": a})  # noqa: E731
    if opset >= 13:
        inits += [c("ax0", np.array([0], np.int64)), c("ax1", np.array([1], np.int64))]
    ax0, kw0 = axes("ax0", [0])
    ax1, kw1 = axes("ax1", [1])
    nodes = [
        helper.make_node("Gather", ["E", "ids"], ["emb"], axis=0),
        helper.make_node("Transpose", ["emb"], ["x"], perm=[1, 0, 2]),
        helper.make_node("LSTM", ["x", "W", "R", "B", "lens"], ["Y", "Y_h"],
                         hidden_size=H, direction="bidirectional"),
        helper.make_node("Transpose", ["Y"], ["Yt"], perm=[2, 0, 1, 3]),
        helper.make_node("Reshape", ["Yt", "shape"], ["feat"]),            # (N, T, 2H)
        helper.make_node("MatMul", ["feat", "Wy"], ["z"]),
        helper.make_node("Add", ["z", "by"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1 if opset >= 13 else 2),
        helper.make_node("Unsqueeze", ["Y_h"] + ax0, ["Yh4"], **kw0),     # (1, 2, N, H)
        helper.make_node("Squeeze", ["Yh4"] + ax0, ["Yh3"], **kw0),
        helper.make_node("Transpose", ["Yh3"], ["Yh_n"], perm=[1, 0, 2]),
        helper.make_node("Slice", ["Yh_n", "s0", "s1", "s_axes"], ["first"]),
        helper.make_node("Squeeze", ["first"] + ax1, ["h_fwd"], **kw1),    # (N, H)
        helper.make_node("Concat", ["h_fwd", "h_fwd"], ["both"], axis=1),  # (N, 2H)
        helper.make_node("Gemm", ["both", "Wg", "by"], ["g"], transB=1, alpha=0.5, beta=2.0),
        helper.make_node("Softmax", ["g"], ["p_last"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "head", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", "T"]),
                        helper.make_tensor_value_info("lens", TensorProto.INT32, ["N"])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, s) for o, s in
         (("probs", ["N", "T", 3]), ("p_last", ["N", 3]), ("Y_h", [2, "N", H]))],
        initializer=inits)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets,
                              ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("opset", [11, 17])
def test_graph_with_embedding_head_and_glue_ops(opset):
    model = _head_graph(opset)
    ids = np.random.default_rng(6).integers(0, 7, (N, T))
    feeds = {"ids": ids, "lens": LENS.astype(np.int32)}
    got, want = rnnkit.onnx.run(model, feeds), run_ort(model, feeds)
    for name, g, o in zip(("probs", "p_last", "Y_h"), got, want):
        _close(f"opset {opset} {name}", g, o, np.float32, "onnxruntime")


# ------------------------------------------------------------ graphs from torch.onnx.export

@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_torch_onnx_export_runs_on_rnnkit(kind):
    import torch
    torch.manual_seed(0)

    class Tagger(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(11, D)
            self.rnn = getattr(torch.nn, kind)(D, H, 2, bidirectional=True)   # (T, N, D)
            self.fc = torch.nn.Linear(2 * H, 3)

        def forward(self, ids, h0):
            out, _ = self.rnn(self.emb(ids).transpose(0, 1),
                              (h0, torch.zeros_like(h0)) if kind == "LSTM" else h0)
            return torch.log_softmax(self.fc(out.transpose(0, 1)), dim=-1)

    model = Tagger().eval()
    ids, h0 = torch.randint(0, 11, (2, 4)), torch.randn(4, 2, H)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (ids, h0), buf, dynamo=False, input_names=["ids", "h0"],
                          output_names=["logp"],
                          dynamic_axes={"ids": {0: "N", 1: "T"}, "h0": {1: "N"}})
    rng = np.random.default_rng(7)
    ids2 = rng.integers(0, 11, (N, T + 2))                     # another batch size and length
    h02 = rng.normal(size=(4, N, H)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(ids2), torch.from_numpy(h02)).numpy()
    (got,) = rnnkit.onnx.run(buf.getvalue(), {"ids": ids2, "h0": h02})
    _close(f"torch-exported {kind}", got, want, np.float32, "torch")
    (o,) = run_ort(onnx.load_from_string(buf.getvalue()), {"ids": ids2, "h0": h02})
    _close(f"torch-exported {kind}", got, o, np.float32, "onnxruntime")


# -------------------------------------------------------------------------------- errors

def _model_with(node, inputs, outputs, opset=OPSET, inits=()):
    graph = helper.make_graph([node], "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=8)


def test_unsupported_operators_attributes_and_activations_are_named():
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 2])  # noqa: E731
    conv = _model_with(helper.make_node("Conv", ["x", "w"], ["y"]), [vi("x"), vi("w")],
                       [vi("y")])
    with pytest.raises(RnnkitError, match=r"\(Conv\): unsupported operator Conv"):
        rnnkit.onnx.load(conv)
    odd = _model_with(helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0], foo=1),
                      [vi("x")], [vi("y")])
    with pytest.raises(RnnkitError, match=r"unsupported attribute 'foo'"):
        rnnkit.onnx.load(odd)
    ms = _model_with(helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft"),
                     [vi("x")], [vi("y")])
    with pytest.raises(RnnkitError, match=r"unsupported operator com\.microsoft\.Gelu"):
        rnnkit.onnx.load(ms)
    w = weights("LSTM", 1, False, np.float32)
    kw = dict(direction="forward", layout=0, lens=False, h0=False, c0=False)
    cases = [({"activations": ["HardSigmoid", "Tanh", "Tanh"]}, r"activations.*HardSigmoid"),
             ({"activations": ["Sigmoid", "Tanh"]}, r"activations: expected 3 per direction"),
             ({"activations": ["Sigmoid", "Tanh", "Tanh"] * 2},
              r"activations: expected 3 per direction \(3 in all\)"),
             ({"activation_alpha": [0.5]}, r"attribute activation_alpha is not supported"),
             ({"input_forget": 1}, r"attribute input_forget=1"),
             ({"clip": -1.0}, r"attribute clip: expected a positive")]
    for attrs, match in cases:
        with pytest.raises(RnnkitError, match=match):
            rnnkit.onnx.load(one_node("LSTM", attrs, w, np.float32, **kw))
    rnn = weights("RNN", 2, False, np.float32)
    mixed = one_node("RNN", {"activations": ["Tanh", "Relu"]}, rnn, np.float32,
                     **dict(kw, direction="bidirectional"))
    with pytest.raises(RnnkitError, match=r"the same for both directions"):
        rnnkit.onnx.load(mixed)


def test_feed_and_file_errors(tmp_path):
    w = weights("GRU", 1, False, np.float32)
    model = one_node("GRU", {}, w, np.float32, direction="forward", layout=0, lens=True,
                     h0=False, c0=False)
    x = np.zeros((T, N, D), np.float32)
    lens = LENS.astype(np.int32)
    graph = rnnkit.onnx.load(model)
    with pytest.raises(RnnkitError, match=r"missing \['sequence_lens'\]"):
        graph.run({"X": x})
    with pytest.raises(RnnkitError, match=r"unknown \['x'\]"):
        graph.run({"x": x, "X": x, "sequence_lens": lens})
    with pytest.raises(RnnkitError, match=r"feeds\['X'\]: expected dtype float32, got dtype "
                                          r"float64"):
        graph.run({"X": x.astype(np.float64), "sequence_lens": lens})
    with pytest.raises(RnnkitError, match=r"feeds\['X'\]: expected shape \(\*, \*, 3\)"):
        graph.run({"X": np.zeros((T, N, 2), np.float32), "sequence_lens": lens})
    with pytest.raises(RnnkitError, match=r"sequence_lens: expected 3 integers in \[1, 5\]"):
        graph.run({"X": x, "sequence_lens": np.array([0, 5, 2], np.int32)})
    with pytest.raises(RnnkitError, match=r"expected an existing ONNX file"):
        rnnkit.onnx.load(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a protobuf\xff" * 3)
    with pytest.raises(RnnkitError, match=r"expected an ONNX model, got unreadable"):
        rnnkit.onnx.run(bad, {})
    path = tmp_path / "gru.onnx"
    onnx.save(model, str(path))
    got = rnnkit.onnx.run(str(path), {"X": x, "sequence_lens": lens})
    assert [a.shape for a in got] == [(T, 1, N, H), (1, N, H)]
