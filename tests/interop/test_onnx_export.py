"""rnnkit.onnx.export: the graph passes onnx.checker, runs in onnxruntime (1e-5, float32) and
in the ONNX reference implementation (float64), and rnnkit.onnx.run reads it back.

Cases: embedding or feature input, RNN (tanh, relu) / LSTM (with peepholes) / GRU (both
linear_before_reset modes), stacked and bidirectional, readout "steps" and "last", softmax
and sigmoid heads, variable lengths (sequence_lens) and initial states as inputs; dynamic
batch and time axes; the state outputs carry a stream across calls.
"""
from __future__ import annotations

import numpy as np
import pytest

import rnnkit
import rnnkit.onnx
from rnnkit.errors import RnnkitError
from rnnkit.models import LanguageModel, SequenceModel

import onnx  # noqa: E402  (the test extra installs it; must run in CI)
import onnxruntime as ort  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

N, T, D, H, V = 4, 6, 3, 5, 7
LENS = np.array([6, 2, 5, 1])
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-10)}


def _close(name, got, want, backend):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{name}: {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, err_msg=f"{name} ({backend})", **TOL[want.dtype.type])


def make_model(cell, bidirectional, readout, vocab, *, dtype="float32", options=None,
               activation="softmax", num_layers=2):
    model = SequenceModel(vocab_size=V if vocab else 0, input_size=0 if vocab else D,
                          embed_dim=D, hidden_size=H, num_layers=num_layers, cell=cell,
                          bidirectional=bidirectional, output_size=3, readout=readout,
                          output_activation=activation, cell_options=options, dtype=dtype,
                          seed=1)
    rng = np.random.default_rng(2)
    for p in model.params.values():            # peepholes (zero at init) included
        p[...] = rng.normal(0.0, 0.5, p.shape)
    return model


def make_feeds(model, n=N, t=T, lengths=None, state=False, seed=3):
    rng = np.random.default_rng(seed)
    dtype = model.dtype
    x = rng.integers(0, V, (n, t)) if model.embed is not None else \
        rng.normal(size=(n, t, D)).astype(dtype)
    feeds = {"input": x}
    if lengths is not None:
        feeds["lengths"] = np.asarray(lengths, np.int32)
    st = None
    if state:
        shape = (model.rnn.num_layers * model.rnn.dirs, n, H)
        feeds["h0"] = rng.normal(size=shape).astype(dtype)
        st = feeds["h0"]
        if model.rnn.cell.has_cell_state:
            feeds["c0"] = rng.normal(size=shape).astype(dtype)
            st = (feeds["h0"], feeds["c0"])
    return feeds, st


def rnnkit_outputs(model, feeds, st, state):
    y, final, _ = model.forward(feeds["input"], st, feeds.get("lengths"))
    if not state:
        return [y]
    return [y, *(final if isinstance(final, tuple) else (final,))]


def run_ort(proto, feeds):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


CASES = [(cell, bid, readout) for cell in ("rnn", "lstm", "gru") for bid in (False, True)
         for readout in ("steps", "last")]


@pytest.mark.parametrize("cell,bidirectional,readout", CASES)
def test_export_runs_in_onnxruntime_and_rnnkit(cell, bidirectional, readout):
    vocab = readout == "steps"                         # both input kinds across the cases
    model = make_model(cell, bidirectional, readout, vocab)
    for lengths, state in ((None, False), (LENS, True)):
        proto = rnnkit.onnx.export(model, lengths=lengths is not None, state=state)
        feeds, st = make_feeds(model, lengths=lengths, state=state)
        want = rnnkit_outputs(model, feeds, st, state)
        got_ort = run_ort(proto, feeds)
        got_rnnkit = rnnkit.onnx.run(proto, feeds)
        assert len(got_ort) == len(want) == len(got_rnnkit)
        for i, w in enumerate(want):
            _close(f"output {i}", got_ort[i], w, "onnxruntime")
            _close(f"output {i}", got_rnnkit[i], w, "rnnkit.onnx.run")


@pytest.mark.parametrize("kind,options", [("rnn", {"nonlinearity": "relu"}),
                                          ("lstm", {"peepholes": True}),
                                          ("gru", {"reset_after": False}),
                                          ("gru", {"reset_after": True})])
def test_cell_variants_and_heads(kind, options):
    model = make_model(kind, True, "steps", False, options=options, activation="sigmoid")
    proto = rnnkit.onnx.export(model, lengths=True, state=True)
    node = next(n for n in proto.graph.node if n.op_type == kind.upper())
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if kind == "gru":
        assert attrs["linear_before_reset"] == int(options["reset_after"])
    if kind == "lstm":
        assert len(node.input) == 8 and node.input[7].endswith(".P")
    if kind == "rnn":
        assert attrs["activations"] == [b"Relu", b"Relu"]
    feeds, st = make_feeds(model, lengths=LENS, state=True)
    want = rnnkit_outputs(model, feeds, st, True)
    for i, (g, w) in enumerate(zip(run_ort(proto, feeds), want)):
        _close(f"{kind} {options} output {i}", g, w, "onnxruntime")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_export_matches_the_reference_implementation_float64(cell):
    """The reference runs float64 (onnxruntime has no float64 RNN kernels) and ignores
    sequence_lens, so these graphs take initial states but no lengths."""
    options = {"peepholes": True} if cell == "lstm" else {"reset_after": False} \
        if cell == "gru" else None
    for readout in ("steps", "last"):
        model = make_model(cell, True, readout, readout == "last", dtype="float64",
                           options=options)
        proto = rnnkit.onnx.export(model, state=True)
        feeds, st = make_feeds(model, state=True)
        want = rnnkit_outputs(model, feeds, st, True)
        for i, (g, w) in enumerate(zip(ReferenceEvaluator(proto).run(None, feeds), want)):
            _close(f"{cell} {readout} output {i}", g, w, "reference")


def test_bare_layers_and_reversed_layers():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(N, T, D)).astype(np.float32)
    for layer in (rnnkit.LSTM(D, H, 2, bidirectional=True, seed=0),
                  rnnkit.GRU(D, H, 2, reverse=True, seed=0),
                  rnnkit.RNN(D, H, 1, reverse=True, nonlinearity="relu", seed=0)):
        proto = rnnkit.onnx.export(layer, lengths=True, state=True)
        h0 = rng.normal(size=(layer.num_layers * layer.dirs, N, H)).astype(np.float32)
        feeds = {"input": x, "lengths": LENS.astype(np.int32), "h0": h0}
        state = h0
        if layer.cell.has_cell_state:
            feeds["c0"] = np.zeros_like(h0)
            state = (h0, feeds["c0"])
        out, final, _ = layer.forward(x, state, LENS)
        want = [out, *(final if isinstance(final, tuple) else (final,))]
        for g, w in zip(run_ort(proto, feeds), want):
            _close(type(layer).__name__, g, w, "onnxruntime")


def test_dynamic_axes_file_and_graph_interface(tmp_path):
    model = LanguageModel(V, embed_dim=4, hidden_size=H, num_layers=2, cell="gru", seed=0)
    path = tmp_path / "lm.onnx"
    proto = rnnkit.onnx.export(model, path, lengths=True, state=True)
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert loaded.SerializeToString() == proto.SerializeToString()
    ins = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
           for i in loaded.graph.input}
    assert ins == {"input": ["batch", "time"], "lengths": ["batch"], "h0": [2, "batch", H]}
    outs = [o.name for o in loaded.graph.output]
    assert outs == ["output", "h_n"]
    assert {"Gather", "GRU", "Slice", "MatMul", "Add", "Concat"} <= \
        {n.op_type for n in loaded.graph.node}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n, t in ((1, 3), (5, 11)):                     # any batch size, any length
        feeds, st = make_feeds(model, n=n, t=t, lengths=np.full(n, t), state=True)
        want = rnnkit_outputs(model, feeds, st, True)
        for g, w in zip(sess.run(None, feeds), want):
            _close(f"n={n} t={t}", g, w, "onnxruntime")
        for g, w in zip(rnnkit.onnx.run(path, feeds), want):
            _close(f"n={n} t={t}", g, w, "rnnkit.onnx.run")


def test_state_outputs_stream_a_sequence_through_onnxruntime():
    """Feeding one step at a time with h_n/c_n carried gives the full-sequence outputs."""
    model = make_model("lstm", False, "steps", False)
    full_feeds, _ = make_feeds(model)
    full, _, _ = model.forward(full_feeds["input"])
    sess = ort.InferenceSession(rnnkit.onnx.export(model, state=True).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    h = c = np.zeros((2, N, H), np.float32)
    steps = []
    for t in range(T):
        y, h, c = sess.run(None, {"input": full_feeds["input"][:, t:t + 1], "h0": h, "c0": c})
        steps.append(y[:, 0])
    _close("streamed", np.stack(steps, axis=1), full, "onnxruntime")


def test_export_errors():
    with pytest.raises(RnnkitError, match=r"^model: expected an rnnkit SequenceModel"):
        rnnkit.onnx.export(object())
    with pytest.raises(RnnkitError, match=r"^opset: expected an integer >= 14, got 11"):
        rnnkit.onnx.export(rnnkit.GRU(2, 3, seed=0), opset=11)
