"""One rnnkit recurrent layer <-> the input tensors of an ONNX RNN / LSTM / GRU operator.

An ONNX recurrent operator holds one layer (of a possibly stacked rnnkit ``Recurrent``), one
or two directions stacked along axis 0 (forward first, then reverse when bidirectional):

    W [num_directions, G*H, D]     input weights          <- W_xh
    R [num_directions, G*H, H]     recurrence weights     <- W_hh
    B [num_directions, 2*G*H]      [Wb, Rb]               <- [b_xh, b_hh]
    P [num_directions, 3*H]        LSTM peepholes         <- P

Direction 0 is rnnkit's ``l{k}.`` parameters, direction 1 (bidirectional only) its
``l{k}_reverse.`` ones. A unidirectional rnnkit layer built with ``reverse=True`` is ONNX
``direction="reverse"`` (its ``l{k}.`` parameters run backwards in time).

Gate blocks (H rows each) are reordered; everything else is copied unchanged, so a round trip
is bit-exact:

* RNN (G=1): nothing to reorder. ``nonlinearity`` is the ``activations`` attribute.
* LSTM (G=4): rnnkit i, f, g(candidate), o  <->  ONNX i, o, f, c.
  Peepholes: rnnkit P is i, f, o  <->  ONNX P is i, o, f. Both apply p_i, p_f to C_{t-1} and
  p_o to C_t. An LSTM without peepholes has no P (ONNX: absent P means zeros).
* GRU (G=3): rnnkit r, z, n(candidate)  <->  ONNX z, r, h, and the update gate's rows of W, R,
  Wb and Rb are negated: rnnkit writes h_t = (1 - z) h_{t-1} + z h~ and ONNX
  h_t = (1 - z') h~ + z' h_{t-1}; with the negated rows z' = sigma(-a) = 1 - z exactly
  (``rnnkit.cells.to_pytorch_convention``). The candidate bias b_hh[n] is ONNX Rbh in both
  modes: ``reset_after=True`` is ``linear_before_reset=1``,
  h~ = tanh(W_h x + Wbh + r * (R_h h + Rbh)); ``reset_after=False`` is
  ``linear_before_reset=0``, h~ = tanh(W_h x + Wbh + R_h (r * h) + Rbh).

Only NumPy is used here: building or running the ONNX graph is the caller's business
(``onnx_op_type`` and ``onnx_attributes`` give the node's type and attributes).
"""
from __future__ import annotations

import numpy as np

from rnnkit.cells import to_pytorch_convention
from rnnkit.errors import check_array, fail

__all__ = ["onnx_op_type", "onnx_attributes", "to_onnx_weights", "from_onnx_weights"]

# Block j of the ONNX rows is block ORDER[j] of rnnkit's (rows of H each).
_LSTM_ORDER = (0, 3, 1, 2)          # ONNX i, o, f, c from rnnkit i, f, g, o
_LSTM_P_ORDER = (0, 2, 1)           # ONNX P i, o, f from rnnkit P i, f, o
_GRU_ORDER = (1, 0, 2)              # ONNX z, r, h from rnnkit r, z, n
_ORDERS = {"RNN": (0,), "LSTM": _LSTM_ORDER, "GRU": _GRU_ORDER}


def _cell_type(layer) -> str:
    """The ONNX operator of the layer's cell (its spec's ``onnx_op``)."""
    spec = getattr(layer, "spec", None)
    if spec is None or spec.onnx_op not in _ORDERS:
        got = type(layer).__name__ if spec is None else f"a {spec.layer} layer (cell " \
            f"{spec.name!r}, which no ONNX operator computes)"
        fail("layer", "an rnnkit RNN, LSTM or GRU layer", got)
    return spec.onnx_op


def _check_layer_index(layer, layer_index) -> int:
    if (isinstance(layer_index, bool) or not isinstance(layer_index, (int, np.integer))
            or not 0 <= layer_index < layer.num_layers):
        fail("layer_index", f"an integer in [0, {layer.num_layers - 1}] (the layer has "
             f"{layer.num_layers} layer(s))", repr(layer_index))
    return int(layer_index)


def _permute_blocks(a: np.ndarray, order, H: int) -> np.ndarray:
    """Reorder the H-row blocks of axis 0 of `a`: block j of the result is block order[j]."""
    return np.concatenate([a[k * H:(k + 1) * H] for k in order], axis=0)


def _inverse(order) -> tuple:
    inv = [0] * len(order)
    for j, k in enumerate(order):
        inv[k] = j
    return tuple(inv)


def onnx_op_type(layer) -> str:
    """The ONNX operator that runs `layer`'s cell: "RNN", "LSTM" or "GRU"."""
    return _cell_type(layer)


def onnx_attributes(layer, layer_index: int = 0) -> dict:
    """The ONNX node attributes that make the operator compute what layer `layer_index` does.

    hidden_size, direction ("forward", "reverse" or "bidirectional"), and for an RNN the
    activations (one per direction), for a GRU linear_before_reset (1 = reset_after=True),
    and clip when the cells clip.
    Layout is ONNX's default 0 (seq-major): transpose rnnkit's batch-first tensors or add
    ``layout=1`` yourself.
    """
    cls = _cell_type(layer)
    _check_layer_index(layer, layer_index)
    if layer.bidirectional:
        direction = "bidirectional"
    else:
        direction = "reverse" if layer.reverse else "forward"
    attrs = {"hidden_size": int(layer.hidden_size), "direction": direction}
    if cls == "RNN":
        act = {"tanh": "Tanh", "relu": "Relu"}[layer.options["nonlinearity"]]
        attrs["activations"] = [act] * layer.dirs
    elif cls == "GRU":
        attrs["linear_before_reset"] = int(bool(layer.options["reset_after"]))
    if layer.options.get("clip"):
        attrs["clip"] = float(layer.options["clip"])
    return attrs


def to_onnx_weights(layer, layer_index: int = 0) -> dict:
    """Layer `layer_index` of `layer` as ONNX tensors {"W", "R", "B"[, "P"]} (new arrays).

    P is present only for a peephole LSTM. Arrays have the layer's dtype.
    """
    cls = _cell_type(layer)
    layer_index = _check_layer_index(layer, layer_index)
    H = layer.hidden_size
    order = _ORDERS[cls]
    peep = cls == "LSTM" and layer.options["peepholes"]
    Ws, Rs, Bs, Ps = [], [], [], []
    for direction in range(layer.dirs):
        p = layer._direction(layer_index, direction)
        if cls == "GRU":
            p = to_pytorch_convention({k: p[k] for k in ("W_xh", "W_hh", "b_xh", "b_hh")})
        Ws.append(_permute_blocks(p["W_xh"], order, H))
        Rs.append(_permute_blocks(p["W_hh"], order, H))
        Bs.append(np.concatenate([_permute_blocks(p["b_xh"], order, H),
                                  _permute_blocks(p["b_hh"], order, H)]))
        if peep:
            Ps.append(_permute_blocks(p["P"], _LSTM_P_ORDER, H))
    out = {"W": np.stack(Ws), "R": np.stack(Rs), "B": np.stack(Bs)}
    if peep:
        out["P"] = np.stack(Ps)
    return out


def _check_tensor(name: str, a, shape: tuple, what: str) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        fail(name, f"a NumPy array of shape {shape} {what}", type(a).__name__)
    if a.dtype.kind != "f":
        fail(name, f"a floating-point array of shape {shape} {what}", f"dtype {a.dtype.name}")
    if a.shape != shape:
        fail(name, f"shape {shape} {what}", f"shape {a.shape}")
    return check_array(name, a, ndim=len(shape), shape=shape)    # finite values


def from_onnx_weights(layer, layer_index: int, W, R, B, P=None) -> None:
    """Write ONNX tensors into layer `layer_index` of `layer`, in place.

    Shapes must match the layer exactly (see the module docstring); values are cast to the
    layer's dtype. B None means zero biases and P None zero peepholes, as in ONNX; a layer
    without peepholes accepts only an all-zero P. Every tensor is checked before any
    parameter is written, so a failed call leaves the layer unchanged.
    """
    cls = _cell_type(layer)
    layer_index = _check_layer_index(layer, layer_index)
    H, dirs, G = layer.hidden_size, layer.dirs, layer.spec.n_gates
    D = layer.params[layer.prefix(layer_index, 0) + "W_xh"].shape[1]
    op = cls
    W = _check_tensor("W", W, (dirs, G * H, D),
                      f"([num_directions, {G}*hidden_size, input_size] for this {op})")
    R = _check_tensor("R", R, (dirs, G * H, H),
                      f"([num_directions, {G}*hidden_size, hidden_size] for this {op})")
    if B is None:
        B = np.zeros((dirs, 2 * G * H), layer.dtype)
    B = _check_tensor("B", B, (dirs, 2 * G * H),
                      f"([num_directions, 2*{G}*hidden_size] for this {op})")
    peep = cls == "LSTM" and layer.options["peepholes"]
    if P is not None:
        if cls != "LSTM":
            fail("P", f"None (peepholes exist only for LSTM; this is an {op})",
                 type(P).__name__)
        P = _check_tensor("P", P, (dirs, 3 * H), "([num_directions, 3*hidden_size])")
        if not peep and np.any(P != 0):
            fail("P", "None or all zeros (this LSTM has no peepholes; build it with "
                 "peepholes=True to load them)", f"{int(np.count_nonzero(P))} nonzero value(s)")
    inv, inv_p = _inverse(_ORDERS[cls]), _inverse(_LSTM_P_ORDER)
    updates = {}
    for direction in range(dirs):
        prefix = layer.prefix(layer_index, direction)
        p = {"W_xh": _permute_blocks(W[direction], inv, H),
             "W_hh": _permute_blocks(R[direction], inv, H),
             "b_xh": _permute_blocks(B[direction, :G * H], inv, H),
             "b_hh": _permute_blocks(B[direction, G * H:], inv, H)}
        if cls == "GRU":
            p = to_pytorch_convention(p)          # its own inverse: negate the z rows back
        if peep:
            p["P"] = (np.zeros(3 * H, layer.dtype) if P is None
                      else _permute_blocks(P[direction], inv_p, H))
        updates.update({prefix + k: v for k, v in p.items()})
    for key, value in updates.items():
        layer.params[key][...] = value.astype(layer.dtype, copy=False)
