"""Whole PyTorch modules <-> rnnkit layers and models (torch is imported inside the functions).

    layer = from_torch(torch.nn.LSTM(8, 32, 2, bidirectional=True))      # -> rnnkit.LSTM
    model = from_torch((emb, gru, linear), readout="last")               # -> SequenceModel
    model = from_torch(my_module)         # its children, in order: [Embedding,] RNN, Linear
    lstm = to_torch(layer, batch_first=False)                            # -> torch.nn.LSTM
    emb, gru, linear = to_torch(model)    # the same tuple from_torch takes; (rnn, linear)
                                          # for a model on features (vocab_size = 0)

Weights go through ``rnnkit.interop.torch_weights`` (the GRU's update-gate sign convention
included) and are copied exactly, so ``to_torch(from_torch(m))`` has ``m``'s settings and a
bit-identical state dict. Settings carried across: sizes, ``num_layers``, ``bidirectional``,
``dropout``, the RNN's ``nonlinearity``, the dtype (float32 or float64).

Layout. rnnkit is batch-first at every boundary. A torch module built with
``batch_first=False`` takes (T, N, D): give rnnkit ``x.transpose(1, 0, 2)``. ``to_torch``
builds batch-first modules unless asked ``batch_first=False``.

What a model's torch side computes is not in its modules but in the forward the user wrote,
so ``from_torch`` is told it: ``readout="steps"`` is ``linear(rnn(emb(ids))[0])`` (one output
per step), ``readout="last"`` is ``linear(h_n[-1])`` for one direction and
``linear(torch.cat([h_n[-2], h_n[-1]], 1))`` for two (the top layer's final states);
``output_activation`` ("identity", "softmax", "sigmoid") is applied after the Linear.

Not expressible on one side or the other, so refused with ``RnnkitError``: LSTM
``proj_size``, ``nn.Embedding(max_norm=...)`` (it rewrites the weights during forward),
peephole LSTMs, GRUs with ``reset_after=False``, reversed unidirectional layers. A torch
recurrent layer or Linear with ``bias=False`` comes in with zero biases;
``to_torch(..., bias=False)`` sends the recurrent layer back without them (its biases must
then be zero). ``nn.Embedding(padding_idx=...)`` comes in as a plain table (padding_idx only
changes training) and goes back without it.
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import fail
from rnnkit.interop.torch_weights import from_torch_state_dict, to_torch_state_dict
from rnnkit.layers import GRU, LSTM, RNN, Recurrent
from rnnkit.models import SequenceModel

__all__ = ["from_torch", "to_torch"]

_DTYPES = {"torch.float32": "float32", "torch.float64": "float64"}


def _numpy_sd(module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def _dtype(module) -> str:
    name = str(next(module.parameters()).dtype)
    if name not in _DTYPES:
        fail(type(module).__name__, "float32 or float64 parameters", name)
    return _DTYPES[name]


def _rnn_kind(module) -> type | None:
    import torch
    for torch_cls, cls in ((torch.nn.LSTM, LSTM), (torch.nn.GRU, GRU), (torch.nn.RNN, RNN)):
        if type(module) is torch_cls:
            return cls
    return None


def _layer_from_torch(module) -> Recurrent:
    cls = _rnn_kind(module)
    if getattr(module, "proj_size", 0):
        fail("LSTM.proj_size", "0 (rnnkit's LSTM has no projection)", module.proj_size)
    kw = {}
    if cls is RNN:
        kw["nonlinearity"] = module.nonlinearity
    layer = cls(module.input_size, module.hidden_size, module.num_layers,
                bidirectional=module.bidirectional, dropout=float(module.dropout),
                dtype=_dtype(module), seed=0, **kw)
    sd = _numpy_sd(module)
    if not module.bias:                       # rnnkit always has the two biases: zeros
        for key, value in to_torch_state_dict(layer).items():
            if key.startswith("bias_"):
                sd[key] = np.zeros_like(value)
    from_torch_state_dict(layer, sd)
    return layer


def _parts(modules) -> list:
    """The (embedding, rnn, linear) parts of a tuple/list or a module's children, checked."""
    import torch
    parts = list(modules) if isinstance(modules, (tuple, list)) else list(modules.children())
    names = tuple(type(p).__name__ for p in parts)
    emb = parts[0] if parts and isinstance(parts[0], torch.nn.Embedding) else None
    rest = parts[1:] if emb is not None else parts
    if len(rest) != 2 or _rnn_kind(rest[0]) is None or type(rest[1]) is not torch.nn.Linear:
        fail("modules", "[nn.Embedding,] nn.RNN/LSTM/GRU, nn.Linear, in this order (a tuple, "
             "a list, or a module with these children)", names)
    return [emb, *rest]


def _model_from_torch(modules, readout: str, output_activation: str) -> SequenceModel:
    emb, rnn_module, linear = _parts(modules)
    if emb is not None and emb.max_norm is not None:
        fail("Embedding.max_norm", "None (max_norm renormalises the weights during forward)",
             emb.max_norm)
    layer = _layer_from_torch(rnn_module)
    dirs, H = layer.dirs, layer.hidden_size
    if emb is not None and emb.embedding_dim != layer.input_size:
        fail("Embedding.embedding_dim", f"{layer.input_size} (the RNN's input_size)",
             emb.embedding_dim)
    if linear.in_features != dirs * H:
        fail("Linear.in_features", f"{dirs * H} (directions * hidden_size of the RNN)",
             linear.in_features)
    options = {"nonlinearity": layer.options["nonlinearity"]} if isinstance(layer, RNN) else {}
    model = SequenceModel(
        vocab_size=emb.num_embeddings if emb is not None else 0,
        input_size=0 if emb is not None else layer.input_size,
        embed_dim=layer.input_size, hidden_size=H, num_layers=layer.num_layers,
        cell={RNN: "rnn", LSTM: "lstm", GRU: "gru"}[type(layer)],
        bidirectional=layer.bidirectional, dropout=layer.dropout,
        output_size=linear.out_features, output_activation=output_activation,
        readout=readout, cell_options=options, dtype=layer.dtype.name, seed=0)
    for key, value in layer.params.items():
        model.params["rnn." + key][...] = value
    if emb is not None:
        model.params["embed.E"][...] = emb.weight.detach().cpu().numpy()
    model.params["head.W_hy"][...] = linear.weight.detach().cpu().numpy()
    if linear.bias is not None:
        model.params["head.b_y"][...] = linear.bias.detach().cpu().numpy()
    else:
        model.params["head.b_y"][...] = 0
    return model


def from_torch(modules, *, readout: str = "steps", output_activation: str = "identity"):
    """A torch.nn.RNN/LSTM/GRU -> the rnnkit layer; [Embedding,] RNN, Linear -> SequenceModel.

    ``modules`` is one recurrent module, or a tuple/list (or a module such as nn.Sequential,
    nn.ModuleList or your own nn.Module whose children are, in registration order)
    ``[nn.Embedding,] nn.RNN/LSTM/GRU, nn.Linear``. ``readout`` and ``output_activation``
    say what the torch forward does with them (module docstring); they apply to models only.
    """
    import torch
    if not isinstance(modules, (tuple, list, torch.nn.Module)):
        fail("modules", "a torch.nn.RNN/LSTM/GRU, or [nn.Embedding,] RNN, nn.Linear",
             type(modules).__name__)
    if _rnn_kind(modules) is not None:
        return _layer_from_torch(modules)
    return _model_from_torch(modules, readout, output_activation)


def _torch_rnn(layer: Recurrent, batch_first: bool, bias: bool):
    import torch
    kw = dict(num_layers=layer.num_layers, bidirectional=layer.bidirectional,
              dropout=float(layer.dropout),
              batch_first=batch_first, bias=bias)
    spec = layer.spec
    if spec.torch_module is None:
        fail("layer", "a layer of a cell torch.nn has (RNN, LSTM, GRU)",
             f"a {spec.layer} layer (cell {spec.name!r})")
    if spec.name == "rnn":
        kw["nonlinearity"] = layer.options["nonlinearity"]
    module = getattr(torch.nn, spec.torch_module)(layer.input_size, layer.hidden_size, **kw)
    sd = to_torch_state_dict(layer)             # raises for what torch cannot express
    if not bias:
        nonzero = [k for k, v in sd.items() if k.startswith("bias_") and np.any(v)]
        if nonzero:
            fail("bias", "True (the layer has nonzero biases)", f"False ({nonzero[:3]} nonzero)")
        sd = {k: v for k, v in sd.items() if not k.startswith("bias_")}
    module = module.to(getattr(torch, layer.dtype.name))
    module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    return module


def to_torch(obj, *, batch_first: bool = True, bias: bool = True):
    """An rnnkit layer -> torch.nn.RNN/LSTM/GRU; a SequenceModel -> (nn.Embedding, rnn,
    nn.Linear), or (rnn, nn.Linear) when it reads features. New modules, weights copied.

    The model's ``readout`` and ``output_activation`` live in the forward you write around
    the modules (module docstring). ``bias=False`` applies to the recurrent layer only.
    """
    import torch
    if isinstance(obj, Recurrent):
        return _torch_rnn(obj, batch_first, bias)
    if not isinstance(obj, SequenceModel):
        fail("obj", "an rnnkit RNN/LSTM/GRU layer or a SequenceModel", type(obj).__name__)
    dtype = getattr(torch, obj.dtype.name)
    rnn = _torch_rnn(obj.rnn, batch_first, bias)
    W, b = obj.params["head.W_hy"], obj.params["head.b_y"]
    linear = torch.nn.Linear(W.shape[1], W.shape[0]).to(dtype)
    linear.load_state_dict({"weight": torch.from_numpy(W.copy()),
                            "bias": torch.from_numpy(b.copy())})
    if obj.embed is None:
        return rnn, linear
    E = obj.params["embed.E"]
    emb = torch.nn.Embedding(*E.shape).to(dtype)
    emb.load_state_dict({"weight": torch.from_numpy(E.copy())})
    return emb, rnn, linear
