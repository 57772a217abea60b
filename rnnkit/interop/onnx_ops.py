"""NumPy versions of the ONNX operators found around recurrent nodes in exported graphs.

Embeddings (Gather), heads (Gemm, MatMul, Add, Softmax, ...), the layout glue exporters emit
(Transpose, Squeeze, Unsqueeze, Concat, Reshape, Slice) and the shape arithmetic that the
PyTorch exporter builds zero initial states with (Shape, Gather, ConstantOfShape, Expand,
Cast). Each operator is ``fn(inputs, attrs, opset) -> list of outputs`` and declares the
attributes it honours; ``OPS`` maps the operator name to (fn, attributes). Semantics follow
the ONNX operator specification (the opset matters for Softmax and for Squeeze/Unsqueeze,
whose axes moved from an attribute to an input in opset 13).
"""
from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

from rnnkit.errors import RnnkitError

__all__ = ["OPS", "constant_value"]


def _ints(a) -> list[int]:
    return [int(v) for v in np.asarray(a).reshape(-1)]


def constant_value(attrs: dict) -> np.ndarray:
    """The tensor a Constant / ConstantOfShape attribute holds."""
    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    for name, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                        ("value_int", np.int64), ("value_ints", np.int64)):
        if name in attrs:
            return np.asarray(attrs[name], dtype)
    raise RnnkitError("Constant: expected one of the attributes value, value_float(s), "
                      "value_int(s), got none")


def _binary(fn):
    return lambda ins, attrs, opset: [np.asarray(fn(ins[0], ins[1])).astype(ins[0].dtype,
                                                                              copy=False)]


def _div(a, b):
    if a.dtype.kind in "iu":                       # integer division truncates (C semantics)
        return np.trunc(a / b).astype(a.dtype)
    return a / b


def _gemm(ins, attrs, opset):
    a, b = ins[0], ins[1]
    a = a.T if attrs.get("transA", 0) else a
    b = b.T if attrs.get("transB", 0) else b
    y = attrs.get("alpha", 1.0) * (a @ b)
    if len(ins) > 2 and ins[2] is not None:
        y = y + attrs.get("beta", 1.0) * ins[2]
    return [y.astype(ins[0].dtype, copy=False)]


def _softmax(log: bool):
    def op(ins, attrs, opset):
        x = ins[0]
        axis = attrs.get("axis", -1 if opset >= 13 else 1)
        if opset < 13:                             # coerced to 2-d at `axis`
            shape = x.shape
            axis = axis % x.ndim
            x = x.reshape(int(np.prod(shape[:axis])), -1)
            axis = 1
        z = x - x.max(axis=axis, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=axis, keepdims=True)
        y = z - np.log(s) if log else e / s
        return [y.reshape(ins[0].shape)]
    return op


def _axes(ins, attrs, opset):
    if opset >= 13:
        return None if len(ins) < 2 or ins[1] is None else _ints(ins[1])
    return attrs.get("axes")


def _squeeze(ins, attrs, opset):
    axes = _axes(ins, attrs, opset)
    x = ins[0]
    return [np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(axes))]


def _unsqueeze(ins, attrs, opset):
    x = ins[0]
    rank = x.ndim + len(_axes(ins, attrs, opset))
    for axis in sorted(a % rank for a in _axes(ins, attrs, opset)):
        x = np.expand_dims(x, axis)
    return [x]


def _reshape(ins, attrs, opset):
    x, shape = ins[0], _ints(ins[1])
    if not attrs.get("allowzero", 0):              # 0 copies the input's size on that axis
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [x.reshape(shape)]


def _slice(ins, attrs, opset):
    x = ins[0]
    if opset >= 10:
        starts, ends = _ints(ins[1]), _ints(ins[2])
        axes = _ints(ins[3]) if len(ins) > 3 and ins[3] is not None else range(len(starts))
        steps = _ints(ins[4]) if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    else:
        starts, ends = attrs["starts"], attrs["ends"]
        axes, steps = attrs.get("axes", range(len(starts))), [1] * len(starts)
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        # Python slicing clamps out-of-range bounds as ONNX does (INT64_MAX/MIN included).
        index[axis] = slice(start, end, step)
    return [x[tuple(index)]]


def _shape(ins, attrs, opset):
    shape = np.array(ins[0].shape, np.int64)
    return [shape[attrs.get("start", 0):attrs.get("end", None)]]


def _cast(ins, attrs, opset):
    return [ins[0].astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))]


def _constant_of_shape(ins, attrs, opset):
    value = constant_value(attrs) if attrs else np.zeros(1, np.float32)
    return [np.full(_ints(ins[0]), value.reshape(-1)[0], value.dtype)]


def _expand(ins, attrs, opset):
    x = ins[0]
    return [np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(_ints(ins[1])))).copy()]


def _gather(ins, attrs, opset):
    return [np.take(ins[0], ins[1], axis=attrs.get("axis", 0))]


def _flatten(ins, attrs, opset):
    x, axis = ins[0], attrs.get("axis", 1) % (ins[0].ndim + 1)
    return [x.reshape(int(np.prod(x.shape[:axis])), -1)]


def _unary(fn):
    return lambda ins, attrs, opset: [fn(ins[0]).astype(ins[0].dtype, copy=False)]


OPS = {
    "Identity": (lambda ins, attrs, opset: [ins[0]], ()),
    "Constant": (lambda ins, attrs, opset: [constant_value(attrs)],
                 ("value", "value_float", "value_floats", "value_int", "value_ints")),
    "Add": (_binary(np.add), ()), "Sub": (_binary(np.subtract), ()),
    "Mul": (_binary(np.multiply), ()), "Div": (_binary(_div), ()),
    "MatMul": (lambda ins, attrs, opset: [np.matmul(ins[0], ins[1])], ()),
    "Gemm": (_gemm, ("alpha", "beta", "transA", "transB")),
    "Gather": (_gather, ("axis",)),
    "Softmax": (_softmax(False), ("axis",)), "LogSoftmax": (_softmax(True), ("axis",)),
    "Sigmoid": (_unary(lambda x: 0.5 + 0.5 * np.tanh(0.5 * x)), ()),
    "Tanh": (_unary(np.tanh), ()), "Relu": (_unary(lambda x: np.maximum(x, 0)), ()),
    "Transpose": (lambda ins, attrs, opset: [np.transpose(ins[0], attrs.get("perm"))],
                  ("perm",)),
    "Squeeze": (_squeeze, ("axes",)), "Unsqueeze": (_unsqueeze, ("axes",)),
    "Concat": (lambda ins, attrs, opset: [np.concatenate(ins, axis=attrs["axis"])], ("axis",)),
    "Reshape": (_reshape, ("allowzero",)),
    "Flatten": (_flatten, ("axis",)),
    "Slice": (_slice, ("starts", "ends", "axes")),
    "Shape": (_shape, ("start", "end")),
    "Cast": (_cast, ("to", "saturate")),
    "ConstantOfShape": (_constant_of_shape, ("value",)),
    "Expand": (_expand, ()),
}
