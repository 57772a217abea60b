"""rnnkit recurrent layer parameters <-> ``torch.nn.RNN / LSTM / GRU`` state dicts.

No torch import is needed: the state-dict side is a plain dict of NumPy arrays (build one
from a module with ``{k: v.detach().numpy() for k, v in module.state_dict().items()}`` and
load one with ``module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})``).

The mapping, for layer ``k`` and direction ``d`` (suffix ``_reverse`` when d = 1), is

    rnnkit  l{k}[_reverse].W_xh  (G*H, D_in)   <->  torch  weight_ih_l{k}[_reverse]
            l{k}[_reverse].W_hh  (G*H, H)      <->         weight_hh_l{k}[_reverse]
            l{k}[_reverse].b_xh  (G*H,)        <->         bias_ih_l{k}[_reverse]
            l{k}[_reverse].b_hh  (G*H,)        <->         bias_hh_l{k}[_reverse]

with G = 1 (RNN), 4 (LSTM) or 3 (GRU). The fused gate rows are already in PyTorch's order
(LSTM i, f, g, o; GRU r, z, n), so RNN and LSTM arrays are copied unchanged. The GRU is the
one difference: rnnkit writes h_t = (1 - z) h_{t-1} + z h~ and PyTorch h_t = (1 - z') h~ +
z' h_{t-1}; since 1 - sigma(a) = sigma(-a), negating the z rows (H:2H) of all four arrays
(``rnnkit.cells.to_pytorch_convention``) converts exactly, both ways, for weights and for
gradients alike. Batch-first input and the state layout (layers*dirs, N, H) are the same on
both sides, so a torch module built with ``batch_first=True`` and the same sizes computes
exactly what the rnnkit layer computes.

Layers PyTorch cannot express raise ``RnnkitError``: LSTM with peepholes, GRU with
``reset_after=False``, unidirectional ``reverse=True`` layers and clipping cells.
"""
from __future__ import annotations

import numpy as np

from rnnkit.cells import from_pytorch_convention, to_pytorch_convention
from rnnkit.errors import as_array, fail

# rnnkit parameter name -> PyTorch name stem, in PyTorch's state_dict order.
_NAMES = (("W_xh", "weight_ih"), ("W_hh", "weight_hh"), ("b_xh", "bias_ih"),
          ("b_hh", "bias_hh"))


def _check_expressible(layer) -> None:
    spec, options = layer.spec, layer.options
    if spec.torch_module is None:
        fail("layer", "a layer of a cell torch.nn has (RNN, LSTM, GRU)",
             f"a {spec.layer} layer (cell {spec.name!r})")
    if options.get("peepholes"):
        fail("layer", "an LSTM without peepholes (torch.nn.LSTM has none)", "peepholes=True")
    if options.get("reset_after") is False:
        fail("layer", "a GRU with reset_after=True (torch.nn.GRU applies r after W_hn)",
             "reset_after=False")
    if layer.reverse:
        fail("layer", "reverse=False (torch has no reversed unidirectional layer)",
             "reverse=True")
    if options.get("clip"):
        fail("layer", "clip=None (torch's recurrent layers do not clip)",
             f"clip={options['clip']}")


def _directions(layer):
    """Yield (rnnkit key prefix, torch key suffix) for every layer and direction."""
    for k in range(layer.num_layers):
        for d in range(layer.dirs):
            yield layer.prefix(k, d), f"_l{k}" + ("_reverse" if d else "")


def _export(layer, arrays: dict) -> dict[str, np.ndarray]:
    _check_expressible(layer)
    is_gru = layer.spec.name == "gru"
    out = {}
    for prefix, suffix in _directions(layer):
        p = {name: arrays[prefix + name].copy() for name, _ in _NAMES}
        if is_gru:
            p = to_pytorch_convention(p)
        out.update({stem + suffix: p[name] for name, stem in _NAMES})
    return out


def to_torch_state_dict(layer) -> dict[str, np.ndarray]:
    """The layer's parameters as a PyTorch state dict of NumPy arrays (copies)."""
    return _export(layer, layer.params)


def grads_to_torch_layout(layer) -> dict[str, np.ndarray]:
    """The layer's accumulated gradients, named and laid out as ``to_torch_state_dict``."""
    return _export(layer, layer.grads)


def from_torch_state_dict(layer, state_dict: dict) -> None:
    """Load a PyTorch state dict (name -> array) into ``layer.params`` in place.

    Every key and shape is checked before anything is written; missing, unexpected or
    misshapen entries raise ``RnnkitError``. Values are cast to the layer's dtype.
    """
    _check_expressible(layer)
    if not isinstance(state_dict, dict):
        fail("state_dict", "a dict {name: array}", type(state_dict).__name__)
    expected = {}
    for prefix, suffix in _directions(layer):
        for name, stem in _NAMES:
            expected[stem + suffix] = (prefix, name)
    missing = [key for key in expected if key not in state_dict]
    if missing:
        fail("state_dict", f"keys {sorted(expected)}", f"missing {missing}")
    unexpected = [key for key in state_dict if key not in expected]
    if unexpected:
        fail("state_dict", f"keys {sorted(expected)}", f"unexpected {unexpected}")
    values = {}
    for key, (prefix, name) in expected.items():
        value = as_array(f"state_dict[{key!r}]", state_dict[key])
        want = layer.params[prefix + name].shape
        if value.shape != want:
            fail(f"state_dict[{key!r}]", f"shape {want}", f"shape {value.shape}")
        if value.dtype.kind != "f":
            fail(f"state_dict[{key!r}]", "a floating-point array", f"dtype {value.dtype.name}")
        if not np.isfinite(value).all():
            fail(f"state_dict[{key!r}]", "finite values", "NaN or infinite values")
        values[key] = value
    is_gru = layer.spec.name == "gru"
    for prefix, suffix in _directions(layer):
        p = {name: values[stem + suffix] for name, stem in _NAMES}
        if is_gru:
            p = from_pytorch_convention(p)
        for name, _ in _NAMES:
            layer.params[prefix + name][...] = p[name]
