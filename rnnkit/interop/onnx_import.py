"""Load an ONNX graph of RNN / LSTM / GRU nodes and run it on rnnkit's engine.

    graph = load("model.onnx")                       # parse and check once
    y, y_h = graph.run({"X": x})                     # outputs in graph output order
    y, y_h = run("model.onnx", {"X": x})             # the same in one call (onnxruntime style)

Recurrent nodes become rnnkit layers (one layer, one or two directions) whose weights are
loaded with ``rnnkit.interop.onnx_weights.from_onnx_weights``, built once at load time when
W, R, B and P are initializers or Constants. Every attribute is honoured or refused by name:

* ``direction`` forward / reverse / bidirectional; ``hidden_size``; ``layout`` 0
  (X [T, N, D], Y [T, dirs, N, H], Y_h [dirs, N, H]) and 1 (X [N, T, D], Y [N, T, dirs, H],
  Y_h [N, dirs, H]); ``sequence_lens`` (values in [1, T]: padded steps give zero outputs,
  each row's final state is taken at its own last step); ``initial_h`` / ``initial_c``
  (absent: zeros); peepholes ``P``; the GRU's ``linear_before_reset``;
* ``activations``: the defaults (RNN Tanh, or Relu; LSTM Sigmoid, Tanh, Tanh; GRU Sigmoid,
  Tanh), the same for both directions; any other activation, ``activation_alpha`` /
  ``activation_beta`` and LSTM ``input_forget=1`` raise ``RnnkitError`` naming them;
* ``clip``: every gate's pre-activation is clamped to [-clip, clip] before its activation
  (the LSTM cell state is not, as in onnxruntime): the engine's cells take ``clip``.

The other operators are NumPy (``rnnkit.interop.onnx_ops``). Feeds are checked against the
graph's declared inputs (names, element types, fixed dimensions) before anything runs.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from rnnkit.errors import RnnkitError, as_array, fail
from rnnkit.interop.onnx_ops import OPS, constant_value
from rnnkit.interop.onnx_weights import from_onnx_weights
from rnnkit.layers import GRU, LSTM, RNN

__all__ = ["OnnxGraph", "load", "run"]

# op -> (layer class, default activations of one direction, extra attributes)
_RECURRENT = {"RNN": (RNN, ("Tanh",), ()),
              "LSTM": (LSTM, ("Sigmoid", "Tanh", "Tanh"), ("input_forget",)),
              "GRU": (GRU, ("Sigmoid", "Tanh"), ("linear_before_reset",))}
_RECURRENT_ATTRS = ("activation_alpha", "activation_beta", "activations", "clip", "direction",
                    "hidden_size", "layout", "output_sequence")
_DIRECTIONS = ("forward", "reverse", "bidirectional")


class _Recurrent:
    """One RNN / LSTM / GRU node: its checked attributes, and its layer once weights are known."""

    def __init__(self, node, attrs: dict, where: str):
        self.where, self.op = where, node.op_type
        self.value_names = list(node.input)      # what the graph calls each input
        cls, defaults, _ = _RECURRENT[node.op_type]
        self.cls = cls
        self.direction = attrs.get("direction", "forward")
        if self.direction not in _DIRECTIONS:
            raise RnnkitError(f"{where}: attribute direction: expected one of {_DIRECTIONS}, "
                              f"got {self.direction!r}")
        self.dirs = 2 if self.direction == "bidirectional" else 1
        self.layout = attrs.get("layout", 0)
        if self.layout not in (0, 1):
            raise RnnkitError(f"{where}: attribute layout: expected 0 or 1, got {self.layout}")
        self.hidden_size = attrs.get("hidden_size")
        self.clip = attrs.get("clip")
        if self.clip is not None and not self.clip > 0:
            raise RnnkitError(f"{where}: attribute clip: expected a positive threshold, got "
                              f"{self.clip}")
        for name in ("activation_alpha", "activation_beta"):
            if attrs.get(name):
                raise RnnkitError(f"{where}: attribute {name} is not supported (it parametrises "
                                  "activations other than the defaults rnnkit runs)")
        if attrs.get("input_forget", 0):
            raise RnnkitError(f"{where}: attribute input_forget=1 (coupled input and forget "
                              "gates) is not supported")
        self.reset_after = bool(attrs.get("linear_before_reset", 0))
        nonlinearity = self._activations(attrs, defaults)
        self.options = {"nonlinearity": nonlinearity} if cls is RNN else {}
        if cls is GRU:
            self.options["reset_after"] = self.reset_after
        if self.clip is not None:
            self.options["clip"] = float(self.clip)
        self.layer = None

    def _activations(self, attrs: dict, defaults: tuple) -> str:
        acts = [str(a) for a in attrs.get("activations", [])] or list(defaults) * self.dirs
        k = len(defaults)
        if len(acts) != k * self.dirs:
            raise RnnkitError(f"{self.where}: attribute activations: expected {k} per direction "
                              f"({k * self.dirs} in all), got {acts}")
        per_dir = [tuple(a.lower() for a in acts[i:i + k]) for i in range(0, len(acts), k)]
        allowed = [tuple(d.lower() for d in defaults)]
        if self.cls is RNN:
            allowed.append(("relu",))
        for got in per_dir:
            if got not in allowed or got != per_dir[0]:
                raise RnnkitError(f"{self.where}: attribute activations: expected "
                                  f"{' or '.join(str(list(a)) for a in allowed)} (the same for "
                                  f"both directions), got unsupported {acts}")
        return "relu" if per_dir[0] == ("relu",) else "tanh"

    def build(self, W, R, B, P):
        """The rnnkit layer holding these ONNX tensors (checked by from_onnx_weights)."""
        for name, a in (("W", W), ("R", R)):
            if not isinstance(a, np.ndarray) or a.ndim != 3:
                raise RnnkitError(f"{self.where}: input {name}: expected a 3-d tensor, got "
                                  f"shape {getattr(a, 'shape', None)}")
        if W.dtype not in (np.float32, np.float64):
            raise RnnkitError(f"{self.where}: input W: expected float32 or float64 (the "
                              f"engine's dtypes), got {W.dtype.name}")
        H = R.shape[2] if self.hidden_size is None else self.hidden_size
        if W.shape[0] != self.dirs:
            raise RnnkitError(f"{self.where}: input W: expected {self.dirs} direction(s) on "
                              f"axis 0 (direction={self.direction!r}), got shape {W.shape}")
        options = dict(self.options)
        if self.cls is LSTM:
            options["peepholes"] = P is not None and bool(np.any(P))
            P = P if options["peepholes"] else None
        try:
            layer = self.cls(W.shape[2], int(H), 1, bidirectional=self.dirs == 2,
                             reverse=self.direction == "reverse", dtype=W.dtype, seed=0,
                             **options)
            from_onnx_weights(layer, 0, W, R, B, P)
        except RnnkitError as e:
            raise RnnkitError(f"{self.where}: {e}") from None
        return layer

    def _state(self, a, name: str, N: int, H: int, dtype):
        if a is None:
            return np.zeros((self.dirs, N, H), dtype)
        want = (self.dirs, N, H) if self.layout == 0 else (N, self.dirs, H)
        if a.shape != want or a.dtype != dtype:
            raise RnnkitError(f"{self.where}: input {self._called(name)}: expected shape {want} "
                              f"and dtype "
                              f"{np.dtype(dtype).name}, got shape {a.shape}, dtype {a.dtype.name}")
        return np.ascontiguousarray(a if self.layout == 0 else a.transpose(1, 0, 2))

    def _called(self, name: str) -> str:
        """The operator's input ``name`` and the graph's name for the value fed to it (the
        feed's key where the graph input goes straight in): "sequence_lens ('lengths')"."""
        k = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P").index(name)
        given = self.value_names[k] if k < len(self.value_names) else ""
        return f"{name} ({given!r})" if given and given != name else name

    def run(self, ins: list, n_outputs: int) -> list:
        ins = ins + [None] * (8 - len(ins))
        X, W, R, B, lens, h0, c0, P = ins
        layer = self.layer if self.layer is not None else self.build(W, R, B, P)
        dtype, H = layer.dtype, layer.hidden_size
        if not isinstance(X, np.ndarray) or X.ndim != 3 or X.dtype != dtype:
            raise RnnkitError(f"{self.where}: input X: expected a 3-d {dtype.name} tensor "
                              f"({'[T, N, D]' if self.layout == 0 else '[N, T, D]'}), got "
                              f"shape {getattr(X, 'shape', None)}, dtype "
                              f"{getattr(X, 'dtype', type(X).__name__)}")
        x = np.ascontiguousarray(X.transpose(1, 0, 2) if self.layout == 0 else X)  # (N, T, D)
        N, T, _ = x.shape
        if lens is not None:
            lens = np.asarray(lens)
            if lens.shape != (N,) or lens.dtype.kind not in "iu" or (
                    N and (lens.min() < 1 or lens.max() > T)):
                raise RnnkitError(f"{self.where}: input {self._called('sequence_lens')}: "
                                  f"expected {N} integers in "
                                  f"[1, {T}], got {lens.tolist()}")
        h = self._state(h0, "initial_h", N, H, dtype)
        state = (h, self._state(c0, "initial_c", N, H, dtype)) if self.cls is LSTM else h
        try:
            out, final, _ = layer.forward(x, state, lens, grad=False)
        except RnnkitError as e:
            raise RnnkitError(f"{self.where}: {e}") from None
        Y = out.reshape(N, T, self.dirs, H)
        Y = Y.transpose(1, 2, 0, 3) if self.layout == 0 else Y
        finals = list(final) if self.cls is LSTM else [final]
        if self.layout == 1:
            finals = [f.transpose(1, 0, 2) for f in finals]
        return [np.ascontiguousarray(a) for a in [Y, *finals][:n_outputs]]


class OnnxGraph:
    """A checked ONNX graph, runnable with ``run(feeds) -> list of outputs``."""

    def __init__(self, model: onnx.ModelProto, source: str = "model"):
        self.source = source
        opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
        self.opset = opsets.get("ai.onnx", 0)
        graph = model.graph
        self.constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.inputs = [(i.name, self._spec(i)) for i in graph.input]
        self.required = [name for name, _ in self.inputs if name not in self.constants]
        self.input_names = [name for name, _ in self.inputs]
        self.output_names = [o.name for o in graph.output]
        self.nodes = []                      # (node, attrs, _Recurrent or None)
        fed = set(self.input_names)
        for i, node in enumerate(graph.node):
            where = f"{source}: node {node.name or i!r} ({node.op_type})"
            if node.domain not in ("", "ai.onnx"):
                raise RnnkitError(f"{where}: unsupported operator {node.domain}.{node.op_type} "
                                  "(only the default ONNX domain is supported)")
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            attrs = {k: (v.decode() if isinstance(v, bytes) else
                         [x.decode() if isinstance(x, bytes) else x for x in v]
                         if isinstance(v, list) else v) for k, v in attrs.items()}
            if node.op_type in _RECURRENT:
                allowed = _RECURRENT_ATTRS + _RECURRENT[node.op_type][2]
            elif node.op_type in OPS:
                allowed = OPS[node.op_type][1]
            else:
                raise RnnkitError(f"{where}: unsupported operator {node.op_type} (supported: "
                                  f"{', '.join(sorted([*OPS, *_RECURRENT]))})")
            for name in attrs:
                if name not in allowed:
                    raise RnnkitError(f"{where}: unsupported attribute {name!r} (supported: "
                                      f"{', '.join(allowed) or 'none'})")
            rec = _Recurrent(node, attrs, where) if node.op_type in _RECURRENT else None
            if node.op_type == "Constant":
                self.constants[node.output[0]] = constant_value(attrs)
            static = [node.input[k] if k < len(node.input) else "" for k in (1, 2, 3, 7)]
            if rec is not None and all(not n or (n in self.constants and n not in fed)
                                       for n in static):
                w = [self.constants.get(n) if n else None for n in static]
                rec.layer = rec.build(*w)
            self.nodes.append((node, attrs, rec, where))

    @staticmethod
    def _spec(value_info) -> tuple:
        t = value_info.type.tensor_type
        dtype = helper.tensor_dtype_to_np_dtype(t.elem_type) if t.elem_type else None
        dims = None
        if t.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        return dtype, dims

    def _check_feeds(self, feeds: dict) -> dict:
        if not isinstance(feeds, dict):
            fail("feeds", "a dict {input name: array}", type(feeds).__name__)
        unknown = [k for k in feeds if k not in self.input_names]
        missing = [k for k in self.required if k not in feeds]
        if unknown or missing:
            fail("feeds", f"the graph's inputs {self.required}", f"missing {missing}, unknown "
                 f"{unknown}")
        checked = {}
        for name, (dtype, dims) in self.inputs:
            if name not in feeds:
                continue
            a = as_array(f"feeds[{name!r}]", feeds[name])
            if dtype is not None and a.dtype != dtype:
                fail(f"feeds[{name!r}]", f"dtype {np.dtype(dtype).name}",
                     f"dtype {a.dtype.name}")
            if dims is not None and (a.ndim != len(dims) or any(
                    d is not None and d != s for d, s in zip(dims, a.shape))):
                want = "(" + ", ".join("*" if d is None else str(d) for d in dims) + ")"
                fail(f"feeds[{name!r}]", f"shape {want}", f"shape {a.shape}")
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                fail(f"feeds[{name!r}]", "finite values",
                     f"{a.size - np.count_nonzero(np.isfinite(a))} NaN or infinite value(s)")
            if a.size == 0:
                fail(f"feeds[{name!r}]", "a non-empty array", f"shape {a.shape}")
            checked[name] = a
        return checked

    def run(self, feeds: dict) -> list[np.ndarray]:
        """Outputs in graph output order for {input name: array}."""
        values = {**self.constants, **self._check_feeds(feeds)}
        for node, attrs, rec, where in self.nodes:
            if node.op_type == "Constant":
                continue
            absent = [n for n in node.input if n and n not in values]
            if absent:
                raise RnnkitError(f"{where}: expected inputs {absent} to be computed by an "
                                  "earlier node (nodes must be in topological order), got none")
            ins = [values[n] if n else None for n in node.input]
            try:
                if rec is not None:
                    outs = rec.run(ins, len(node.output))
                else:
                    outs = OPS[node.op_type][0](ins, attrs, self.opset)
            except RnnkitError:
                raise
            except (ValueError, IndexError, TypeError, KeyError) as e:
                shapes = [getattr(a, "shape", None) for a in ins]
                raise RnnkitError(f"{where}: expected inputs this operator accepts, got "
                                  f"shapes {shapes} ({e})") from None
            for name, value in zip(node.output, outs):
                if name:
                    values[name] = value
        return [values[name] for name in self.output_names]


def load(model_or_path) -> OnnxGraph:
    """An OnnxGraph from a path, serialized bytes, an onnx.ModelProto or an OnnxGraph."""
    if isinstance(model_or_path, OnnxGraph):
        return model_or_path
    if isinstance(model_or_path, onnx.ModelProto):
        return OnnxGraph(model_or_path)
    if isinstance(model_or_path, (bytes, bytearray)):
        source, loader = "model", lambda: onnx.load_from_string(bytes(model_or_path))
    elif isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        if not path.is_file():
            raise RnnkitError(f"{path}: expected an existing ONNX file, got no such file")
        source, loader = str(path), lambda: onnx.load(str(path))
    else:
        fail("model_or_path", "a path, bytes, an onnx.ModelProto or an OnnxGraph",
             type(model_or_path).__name__)
    try:
        model = loader()
    except Exception as e:              # protobuf's DecodeError and friends
        raise RnnkitError(f"{source}: expected an ONNX model, got unreadable content "
                          f"({type(e).__name__}: {e})") from None
    return OnnxGraph(model, source)


def run(model_or_path, feeds: dict) -> list[np.ndarray]:
    """Run an ONNX graph on rnnkit: outputs in graph output order, like onnxruntime's run."""
    return load(model_or_path).run(feeds)
