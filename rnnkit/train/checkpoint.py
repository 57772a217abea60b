"""Checkpoints that resume a run exactly: weights, optimiser, step, RNG, data position.

A checkpoint in ``run_dir/checkpoints/`` is two files written atomically, then a pointer:

    step-00000100.safetensors   model/<param>, optim/<slot>/<param>, carry/<i> (carried state)
    step-00000100.json          model class + config, optimiser type/hyper/step count,
                                trainer counters and data position, RNG state
    latest.json                 {"step": 100}, replaced last

so a crash while saving leaves the previous checkpoint complete and pointed to. Loading uses
safetensors and JSON only (never pickle); a missing, truncated or foreign file raises
RnnkitError naming it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnkit import schema
from rnnkit.errors import RnnkitError
from rnnkit.schema import Int, Number, Optional
from rnnkit.serialize import load_arrays, load_json, save_arrays, save_json

FORMAT = "rnnkit-checkpoint"
VERSION = 1
MAX_CARRIED = 1 << 10           # arrays of a carried state (2 per layer and direction at most)

# step-*.json as save_checkpoint writes it; the reader of each ANY field checks it
SCHEMA = {
    "format": str, "version": int,
    "model": {"class": str, "config": dict},
    "optimizer": {"type": str, "hyper": dict, "step_count": Int(0)},
    "trainer": {"step": Int(0), "epoch": Int(0), "batch_in_epoch": Int(0),
                "best_val": Number(finite=False), "bad_validations": Int(0),
                "should_stop": bool, "validated_at": Optional(Int(-1)),
                "lr_scale": Optional(Number(0, 1)), "bad_steps": Optional(Int(0))},
    "carry": {"count": Int(0, MAX_CARRIED), "tuple": bool},
    "rng": {"bit_generator": str, "state": dict, "has_uint32": Int(0, 1),
            "uinteger": Int(0)},
}
LATEST = {"step": Int(0)}


def _stem(step: int) -> str:
    return f"step-{step:08d}"


def flatten_state(state) -> list[np.ndarray]:
    """A recurrent state (array, tuple of arrays, or None) as a list of arrays."""
    if state is None:
        return []
    return list(state) if isinstance(state, tuple) else [state]


def unflatten_state(arrays: list[np.ndarray], was_tuple: bool):
    if not arrays:
        return None
    return tuple(arrays) if was_tuple else arrays[0]


def save_checkpoint(folder: str | Path, *, model, optimizer, trainer_state: dict,
                    rng: np.random.Generator, carry=None, keep: int = 3) -> Path:
    """Write a checkpoint for ``trainer_state["step"]``; keep the newest ``keep`` of them."""
    folder = Path(folder)
    step = int(trainer_state["step"])
    opt = optimizer.state_dict()
    arrays = {f"model/{k}": v for k, v in model.params.items()}
    arrays.update({f"optim/{k}": v for k, v in opt["slots"].items()})
    carried = flatten_state(carry)
    arrays.update({f"carry/{i}": a for i, a in enumerate(carried)})
    save_arrays(folder / f"{_stem(step)}.safetensors", arrays, metadata={"format": FORMAT})
    save_json(folder / f"{_stem(step)}.json", {
        "format": FORMAT, "version": VERSION,
        "model": {"class": type(model).__name__, "config": model.config},
        "optimizer": {"type": opt["type"], "hyper": opt["hyper"],
                      "step_count": opt["step_count"]},
        "trainer": trainer_state,
        "carry": {"count": len(carried), "tuple": isinstance(carry, tuple)},
        "rng": rng.bit_generator.state,
    })
    save_json(folder / "latest.json", {"step": step})
    for old in sorted(folder.glob("step-*.json"))[:-keep] if keep else []:
        old.unlink()
        old.with_suffix(".safetensors").unlink(missing_ok=True)
    return checkpoint_path(folder, step)


def checkpoint_path(folder: str | Path, step: int) -> Path:
    """The JSON file of the checkpoint of `step` in `folder`."""
    return Path(folder) / f"{_stem(step)}.json"


def latest_checkpoint(folder: str | Path) -> Path:
    folder = Path(folder)
    pointer = schema.check(load_json(folder / "latest.json"), LATEST, str(folder / "latest.json"))
    path = folder / f"{_stem(pointer['step'])}.json"
    if not path.is_file():
        raise RnnkitError(f"{folder / 'latest.json'}: expected the step of a checkpoint in "
                          f"{folder}, got step {pointer['step']} (no {path.name})")
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint's JSON and arrays -> dict with model_params, optim_state, carry, ..."""
    path = Path(path)
    meta = load_json(path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise RnnkitError(f"{path}: expected an rnnkit checkpoint (format {FORMAT!r}), "
                          f"got format {got!r}")
    if meta.get("version") != VERSION:
        raise RnnkitError(f"{path}: expected checkpoint version {VERSION}, "
                          f"got {meta.get('version')!r}")
    schema.check(meta, SCHEMA, str(path))
    weights = path.with_suffix(".safetensors")
    arrays = load_arrays(weights)
    prefixed = lambda p: {k[len(p):]: v for k, v in arrays.items() if k.startswith(p)}
    carried = sorted(k for k in arrays if k.startswith("carry/"))
    if carried != sorted(f"carry/{i}" for i in range(meta["carry"]["count"])):
        raise RnnkitError(f"{weights}: expected {meta['carry']['count']} carried state "
                          f"arrays (as {path.name} says), got {carried[:5]}")
    bad = [k for k, v in arrays.items() if v.dtype.kind == "f" and not np.isfinite(v).all()]
    if bad:
        raise RnnkitError(f"{weights}: expected finite values, got NaN or infinity in {bad[:3]}")
    carry = [arrays[f"carry/{i}"] for i in range(meta["carry"]["count"])]
    return {
        "path": path,
        "model": meta["model"],
        "model_params": prefixed("model/"),
        "optim_state": dict(meta["optimizer"], slots=prefixed("optim/")),
        "trainer": meta["trainer"],
        "rng": meta["rng"],
        "carry": unflatten_state(carry, meta["carry"]["tuple"]),
    }


def load_params(model, params: dict[str, np.ndarray], source: str) -> None:
    """Copy named arrays into a model's parameters, checking names and shapes first."""
    missing = sorted(model.params.keys() - params.keys())
    extra = sorted(params.keys() - model.params.keys())
    if missing or extra:
        raise RnnkitError(f"{source}: expected the model's parameters, got missing {missing[:5]} "
                          f"and unexpected {extra[:5]}")
    for name, value in params.items():
        want = model.params[name]
        if value.shape != want.shape or value.dtype != want.dtype:
            raise RnnkitError(f"{source}: expected {name} of shape {want.shape} and dtype "
                              f"{want.dtype.name}, got shape {value.shape}, dtype "
                              f"{value.dtype.name}")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise RnnkitError(f"{source}: expected finite values in {name}, got NaN or "
                              "infinite values")
    for name, value in params.items():
        model.params[name][...] = value
