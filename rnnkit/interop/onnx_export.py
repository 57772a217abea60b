"""An rnnkit model or recurrent layer -> an ONNX graph built from the standard operators.

    input (N, T) ids | (N, T, D)  --Gather(E)-->  Transpose (T, N, D)
      for each layer k:  RNN / LSTM / GRU (W, R, B[, P] of layer k, sequence_lens, initial
                         states) -> Y (T, dirs, N, H) -> Squeeze or Transpose+Reshape
                         -> (T, N, dirs*H)
      readout "steps":  Transpose (N, T, dirs*H) -> MatMul W_hy^T + b_y -> [Softmax|Sigmoid]
      readout "last":   top layer's Y_h (dirs, N, H) -> (N, dirs*H) -> Gemm -> [Softmax|Sigmoid]

Graph inputs: ``input`` (int64 ids [batch, time], or features [batch, time, D] of the model's
dtype); with ``lengths=True`` also ``lengths`` (int32 [batch], each row's valid steps: the
operators' ``sequence_lens``); with ``state=True`` also ``h0`` (and ``c0`` for an LSTM) of
shape [layers*dirs, batch, H], rnnkit's state layout, sliced per operator. Outputs:
``output`` ([batch, time, V] or [batch, V]; a bare layer's [batch, time, dirs*H]) and, with
``state=True``, ``h_n`` (and ``c_n``), so a stream can carry the state between calls.
``batch`` and ``time`` are symbolic: any batch size and sequence length run.

Weights and attributes come from ``rnnkit.interop.onnx_weights`` (gate order, bias layout,
the GRU's update-gate sign and ``linear_before_reset``, peepholes ``P``). Every exported
model is validated with ``onnx.checker`` (full check, with shape inference).
"""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rnnkit.errors import check_flag, check_int, fail
from rnnkit.interop.onnx_weights import onnx_attributes, onnx_op_type, to_onnx_weights
from rnnkit.layers import Recurrent
from rnnkit.models import SequenceModel
from rnnkit.serialize import atomic_write_bytes

__all__ = ["export"]

MIN_OPSET = 14          # the RNN operators' current version (layout attribute)
_ELEM = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}


class _Graph:
    """Nodes and initializers under construction, with unique names."""

    def __init__(self):
        self.nodes, self.inits = [], []

    def const(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list, output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output


def _recurrent(g: _Graph, layer: Recurrent, x: str, lengths: str, h0: str, c0: str,
               prefix: str) -> tuple[str, list, list]:
    """Chain one operator per layer: x (T, N, D) -> (T, N, dirs*H), [Y_h per layer], [Y_c]."""
    op, dirs, lstm = onnx_op_type(layer), layer.dirs, layer.has_cell_state
    seq, hs, cs = x, [], []
    for k in range(layer.num_layers):
        name = f"{prefix}l{k}"
        w = to_onnx_weights(layer, k)
        init_h = init_c = ""
        if h0:
            bounds = [g.const(f"{name}.{s}", np.array([v], np.int64))
                      for s, v in (("start", k * dirs), ("end", (k + 1) * dirs), ("axis", 0))]
            init_h = g.node("Slice", [h0, *bounds], f"{name}.initial_h")
            if lstm:
                init_c = g.node("Slice", [c0, *bounds], f"{name}.initial_c")
        inputs = [seq, g.const(f"{name}.W", w["W"]), g.const(f"{name}.R", w["R"]),
                  g.const(f"{name}.B", w["B"]), lengths, init_h]
        outputs = [f"{name}.Y", f"{name}.Y_h"]
        if lstm:
            inputs += [init_c, g.const(f"{name}.P", w["P"]) if "P" in w else ""]
            outputs.append(f"{name}.Y_c")
        while inputs[-1] == "":
            inputs.pop()
        g.nodes.append(helper.make_node(op, inputs, outputs, name=name,
                                        **onnx_attributes(layer, k)))
        hs.append(outputs[1])
        if lstm:
            cs.append(outputs[2])
        if dirs == 1:                                       # (T, 1, N, H) -> (T, N, H)
            seq = g.node("Squeeze", [outputs[0], g.const(f"{name}.axes", np.array([1], np.int64))],
                         f"{name}.out")
        else:                                               # (T, 2, N, H) -> (T, N, 2H)
            t = g.node("Transpose", [outputs[0]], f"{name}.Y_tndh", perm=[0, 2, 1, 3])
            seq = g.node("Reshape", [t, g.const(f"{name}.shape", np.array([0, 0, -1], np.int64))],
                         f"{name}.out")
    return seq, hs, cs


def _activation(g: _Graph, z: str, activation: str) -> str:
    if activation == "softmax":
        return g.node("Softmax", [z], "output", axis=-1)
    if activation == "sigmoid":
        return g.node("Sigmoid", [z], "output")
    return g.node("Identity", [z], "output")


def _recurrent_part(model) -> Recurrent:
    if isinstance(model, SequenceModel):
        return model.rnn
    if isinstance(model, Recurrent):
        return model
    fail("model", "an rnnkit SequenceModel (LanguageModel included) or RNN/LSTM/GRU layer",
         type(model).__name__)


def export(model, path: str | os.PathLike | None = None, *, lengths: bool = False,
           state: bool = False, opset: int = 17) -> onnx.ModelProto:
    """Build (and with `path`, write atomically) the ONNX graph of `model` (module docstring)."""
    layer = _recurrent_part(model)
    if check_int("opset", opset, MIN_OPSET) > onnx.defs.onnx_opset_version():
        fail("opset", f"an integer <= {onnx.defs.onnx_opset_version()} (the newest opset the "
             "installed onnx knows)", repr(opset))
    check_flag("lengths", lengths)
    check_flag("state", state)
    dtype, dirs, H = layer.dtype, layer.dirs, layer.hidden_size
    elem, lstm = _ELEM[dtype], layer.has_cell_state
    g = _Graph()
    is_model = isinstance(model, SequenceModel)
    if is_model and model.embed is not None:
        inputs = [helper.make_tensor_value_info("input", TensorProto.INT64, ["batch", "time"])]
        x = g.node("Gather", [g.const("embed.E", model.params["embed.E"]), "input"],
                   "embedded", axis=0)
    else:
        inputs = [helper.make_tensor_value_info("input", elem,
                                                ["batch", "time", layer.input_size])]
        x = "input"
    seq_lens = h0 = c0 = ""
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["batch"]))
        seq_lens = "lengths"
    state_shape = [layer.num_layers * dirs, "batch", H]
    if state:
        h0, c0 = "h0", ("c0" if lstm else "")
        inputs += [helper.make_tensor_value_info(n, elem, state_shape) for n in (h0, c0) if n]
    x = g.node("Transpose", [x], "input_tnd", perm=[1, 0, 2])
    seq, hs, cs = _recurrent(g, layer, x, seq_lens, h0, c0, "rnn." if is_model else "")
    if not is_model:
        g.node("Transpose", [seq], "output", perm=[1, 0, 2])
        out_shape = ["batch", "time", dirs * H]
    else:
        W, b = model.params["head.W_hy"], model.params["head.b_y"]
        V = W.shape[0]
        if model.readout == "steps":
            feats = g.node("Transpose", [seq], "features", perm=[1, 0, 2])
            z = g.node("MatMul", [feats, g.const("head.W_hy_T", np.ascontiguousarray(W.T))],
                       "head.matmul")
            z = g.node("Add", [z, g.const("head.b_y", b)], "logits")
            out_shape = ["batch", "time", V]
        else:                                  # the top layer's final state(s) side by side
            top = g.node("Transpose", [hs[-1]], "top_state", perm=[1, 0, 2])
            top = g.node("Reshape", [top, g.const("top_shape", np.array([0, -1], np.int64))],
                         "features")
            z = g.node("Gemm", [top, g.const("head.W_hy", W), g.const("head.b_y", b)],
                       "logits", transB=1)
            out_shape = ["batch", V]
        _activation(g, z, model.head.activation)
    outputs = [helper.make_tensor_value_info("output", elem, out_shape)]
    if state:
        for name, parts in (("h_n", hs), ("c_n", cs)):
            if parts:
                g.node("Concat", parts, name, axis=0)
                outputs.append(helper.make_tensor_value_info(name, elem, state_shape))
    graph = helper.make_graph(g.nodes, f"rnnkit_{type(model).__name__}", inputs, outputs,
                              initializer=g.inits)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="rnnkit",
                              ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        atomic_write_bytes(path, proto.SerializeToString())
    return proto
