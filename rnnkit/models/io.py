"""Native model files: weights as safetensors, the constructor's settings as JSON.

``save(model, path)`` writes two files, each atomically (``rnnkit.serialize``):

    <dir>/model.safetensors   every parameter, named as in ``model.params`` ("rnn.l0.W_xh", ...)
    <dir>/model.json          {"format": "rnnkit-model", "version": 1, "class": "SequenceModel",
                               "config": {...}, "dtype": "float32", "params": {name: shape}}

or, when ``path`` ends in ".safetensors", that file and the ".json" beside it. Neither needs
rnnkit to be read: ``safetensors.numpy.load_file`` gives the arrays and ``json.load`` the
settings (the JSON is also stored in the safetensors metadata under "rnnkit").
``load(path)`` takes the folder, the safetensors file or the JSON file and rebuilds the model
with ``build_model`` (or the layer from its settings), then checks every name, shape and
dtype before copying the weights in.

Models are those of ``rnnkit.models.MODELS`` and the bare recurrent layers of every registered
cell (rnnkit.cells; e.g. from ``rnnkit.interop.torch_models.from_torch``), with all of their
cell's options.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from rnnkit import cells, schema
from rnnkit.errors import RnnkitError, fail
from rnnkit.layers import GRU, LSTM, RNN, LayerNormGRU, LayerNormLSTM, Recurrent
from rnnkit.models import MODELS, build_model
from rnnkit.schema import OneOf, Optional
from rnnkit.serialize import array_shapes, load_arrays, load_json, save_arrays, save_json

FORMAT = "rnnkit-model"
VERSION = 1
SMALL_SIZE = 1 << 12
# model.json as save writes it; "config" is checked by the class it names
SCHEMA = {"format": str, "version": int, "class": str, "config": dict,
          "dtype": OneOf(str, type(None)), "params": Optional(dict)}
LAYERS = {cls.__name__: cls for cls in (RNN, LSTM, GRU, LayerNormLSTM, LayerNormGRU)}


def layer_config(layer: Recurrent) -> tuple[str, dict]:
    """A recurrent layer's class name (its cell's ``layer``) and constructor settings,
    every option of its cell included (JSON-able)."""
    return layer.spec.layer, {
        "input_size": int(layer.input_size), "hidden_size": int(layer.hidden_size),
        "num_layers": int(layer.num_layers), "bidirectional": bool(layer.bidirectional),
        "reverse": bool(layer.reverse), "dropout": float(layer.dropout),
        "dtype": layer.dtype.name, **layer.options}


def _describe(model) -> tuple[str, dict]:
    if isinstance(model, Recurrent):
        return layer_config(model)
    name = type(model).__name__
    if name not in MODELS or not isinstance(model, MODELS[name]):
        fail("model", f"an rnnkit model ({', '.join(sorted(MODELS))}) or an RNN/LSTM/GRU "
             "layer", type(model).__name__)
    return name, dict(model.config)


def _files(path: str | os.PathLike) -> tuple[Path, Path]:
    """-> (weights file, JSON file) for a folder, a .safetensors file or a .json file."""
    if not isinstance(path, (str, os.PathLike)) or not str(os.fspath(path)).strip("\0 "):
        fail("path", "a file or folder path (a non-empty str or os.PathLike)", repr(path))
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        return path.with_suffix(".safetensors"), path.with_suffix(".json")
    return path / "model.safetensors", path / "model.json"


def save(model, path: str | os.PathLike) -> Path:
    """Write `model` (see the module docstring); returns the JSON file's path."""
    name, config = _describe(model)
    dtypes = {a.dtype.name for a in model.params.values()}
    meta = {"format": FORMAT, "version": VERSION, "class": name, "config": config,
            "dtype": dtypes.pop() if len(dtypes) == 1 else None,
            "params": {k: list(v.shape) for k, v in model.params.items()}}
    weights, settings = _files(path)
    save_arrays(weights, model.params, metadata={"rnnkit": json.dumps(meta, sort_keys=True)})
    save_json(settings, meta)
    return settings


def _build(name: str, config: dict, dtype: str | None, source: Path):
    try:
        if name in LAYERS:
            return LAYERS[name](**config)
        if name not in MODELS:              # a layer of another registered cell
            return Recurrent(cells.get(name).name, **config)
        model = build_model(name, config)
        # A config that does not record its dtype (LanguageModel's) gets it from the file.
        if dtype and "dtype" not in config and any(p.dtype != dtype for p in model.params.values()):
            model = build_model(name, {**config, "dtype": dtype})
        return model
    except MemoryError:
        raise RnnkitError(f"{source}: expected settings of a model that fits in memory, got "
                          f"{config}") from None
    except (TypeError, ValueError) as e:    # keys the class does not take, bad values
        raise RnnkitError(f"{source}: expected the settings of an rnnkit {name}, got "
                          f"{config} ({e})") from None


def sizes_fit(config: dict, weights: Path, settings: Path) -> None:
    """Every size in a model's settings appears in its weights file (a layer count as a
    number of arrays at most): refuse larger ones before the model is built, so that a
    corrupt "hidden_size" cannot allocate more than the weights file holds."""
    shapes = array_shapes(weights)
    # (a setting a model does not use, e.g. embed_dim beside input_size, may exceed them:
    # up to SMALL_SIZE is let through, and the weights' shapes are checked after building)
    largest = max([len(shapes), SMALL_SIZE] + [n for shape in shapes.values() for n in shape])
    for key, value in config.items():
        if isinstance(value, int) and not isinstance(value, bool) and key != "seed" and \
                value > largest:
            fail(f"{settings}: config.{key}", f"at most {largest} (no array of "
                 f"{weights.name} has a larger size)", value)


def load(path: str | os.PathLike):
    """Rebuild the model saved at `path` (folder, .safetensors or .json) with its weights."""
    weights, settings = _files(path)
    meta = load_json(settings)
    if not isinstance(meta, dict):
        raise RnnkitError(f"{settings}: expected an rnnkit model file, got a JSON "
                          f"{type(meta).__name__}")
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise RnnkitError(f"{settings}: expected an rnnkit model file (format {FORMAT!r}, "
                          f"version {VERSION}), got format {meta.get('format')!r}, version "
                          f"{meta.get('version')!r}")
    name = meta.get("class")
    if not isinstance(name, str):
        raise RnnkitError(f"{settings}: expected a class name (a string) at class, got "
                          f"{name!r}")
    known = {*MODELS, *(spec.layer for spec in cells.CELLS.values())}
    if name not in known:
        raise RnnkitError(f"{settings}: expected a class in {sorted(known)}, got {name!r}")
    schema.check(meta, SCHEMA, str(settings))
    sizes_fit(meta["config"], weights, settings)
    model = _build(name, meta["config"], meta["dtype"], settings)
    arrays = load_arrays(weights)
    missing = sorted(model.params.keys() - arrays.keys())
    extra = sorted(arrays.keys() - model.params.keys())
    if missing or extra:
        raise RnnkitError(f"{weights}: expected the parameters of {name}({meta['config']}), "
                          f"got missing {missing[:5]} and unexpected {extra[:5]}")
    for key, want in model.params.items():
        value = arrays[key]
        if value.shape != want.shape or value.dtype != want.dtype:
            raise RnnkitError(f"{weights}: expected {key} of shape {want.shape} and dtype "
                              f"{want.dtype.name}, got shape {value.shape}, dtype "
                              f"{value.dtype.name}")
        if not np.isfinite(value).all():
            raise RnnkitError(f"{weights}: expected finite values in {key}, got NaN or "
                              "infinite values")
    for key, value in arrays.items():
        model.params[key][...] = value
    return model
