"""The optimiser base: a thin holder of named parameters, hyperparameters and per-parameter slots.

Parameters are a flat dict of named arrays updated in place. Each optimiser keeps its state in
*slots*, arrays shaped like the parameters and keyed by the same names (``m`` and ``v`` for
Adam); the update rule itself is a stateless function of arrays in the optimiser's module.

``state_dict()`` is plain data for a checkpoint (JSON for the scalars, safetensors for the
arrays)::

    {"type": "Adam", "hyper": {"lr": 0.001, "betas": [0.9, 0.999], ...}, "step_count": 12,
     "slots": {"m/W_xh": array, "v/W_xh": array, ...}}

``load_state_dict`` checks everything before it changes anything, then copies into the existing
arrays, so a resumed run is bit-identical to one never interrupted.
"""
from __future__ import annotations

import numbers

import numpy as np

from rnnkit.errors import check_flag, check_number, fail  # noqa: F401 (re-exported)


def check_params(params) -> dict[str, np.ndarray]:
    if not isinstance(params, dict) or not params:
        fail("params", "a non-empty dict of named float arrays",
             "an empty dict" if isinstance(params, dict) else type(params).__name__)
    for name, p in params.items():
        if not isinstance(name, str):
            fail("params", "string names", f"key {name!r}")
        if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
            fail(f"params[{name!r}]", "a float NumPy array",
                 f"dtype {p.dtype.name}" if isinstance(p, np.ndarray) else type(p).__name__)
    return params


class Optimizer:
    """Base class. Subclasses define `check_hyper`, `slot_names` and `update`.

    Attributes: params (the dict it updates), lr (set freely, e.g. by a schedule before each
    step), one attribute per hyperparameter, step_count (steps taken), slots
    {slot: {param_name: array}}.
    """

    def __init__(self, params: dict[str, np.ndarray], **hyper):
        self.params = check_params(params)
        hyper = self.check_hyper(**hyper)
        self._set_hyper(hyper)
        self.step_count = 0
        self.slots = {slot: {name: self.init_slot(slot, p) for name, p in params.items()}
                      for slot in self.slot_names(hyper)}

    # --- defined by each optimiser -------------------------------------------------------
    @staticmethod
    def check_hyper(**hyper) -> dict:
        """Validated, normalised hyperparameters (raises RnnkitError naming the bad one)."""
        raise NotImplementedError

    @staticmethod
    def slot_names(hyper: dict) -> tuple[str, ...]:
        """The state arrays kept per parameter under these hyperparameters."""
        return ()

    def init_slot(self, slot: str, p: np.ndarray) -> np.ndarray:
        return np.zeros_like(p)

    def update(self, p: np.ndarray, g: np.ndarray, slots: dict[str, np.ndarray], t: int) -> None:
        """Update p in place from its gradient g at step t (1 for the first step)."""
        raise NotImplementedError

    # --- shared machinery ----------------------------------------------------------------
    def _set_hyper(self, hyper: dict) -> None:
        self._hyper_names = tuple(hyper)
        for k, v in hyper.items():
            setattr(self, k, v)

    @property
    def hyper(self) -> dict:
        """The current hyperparameters, lr included, as JSON-able values (tuples as lists)."""
        def plain(v):
            return list(v) if isinstance(v, tuple) else v.item() if isinstance(v, np.generic) else v
        return {k: plain(getattr(self, k)) for k in self._hyper_names}

    def step(self, grads: dict[str, np.ndarray]) -> None:
        """One update of every parameter from `grads`, keyed by the parameter names."""
        if not isinstance(grads, dict):
            fail("grads", "a dict of named gradient arrays", type(grads).__name__)
        missing = [n for n in self.params if n not in grads]
        unknown = [n for n in grads if n not in self.params]
        if missing or unknown:
            fail("grads", "one gradient per parameter, keyed by the parameter names",
                 f"missing {missing}, unknown {unknown}")
        for name, p in self.params.items():
            g = grads[name]
            if not isinstance(g, np.ndarray) or g.shape != p.shape or g.dtype.kind != "f":
                fail(f"grads[{name!r}]", f"an array of shape {p.shape} (the parameter's), float",
                     f"shape {g.shape}, dtype {g.dtype.name}" if isinstance(g, np.ndarray)
                     else type(g).__name__)
        self.lr = check_number("lr", self.lr, 0)
        t = self.step_count + 1
        for name, p in self.params.items():
            self.update(p, grads[name], {s: self.slots[s][name] for s in self.slots}, t)
        self.step_count = t

    def state_dict(self) -> dict:
        """{"type", "hyper", "step_count", "slots": {"slot/param_name": copy of the array}}."""
        return {"type": type(self).__name__, "hyper": self.hyper, "step_count": self.step_count,
                "slots": {f"{s}/{n}": a.copy() for s, arrays in self.slots.items()
                          for n, a in arrays.items()}}

    def load_state_dict(self, sd: dict) -> None:
        """Restore a state_dict() of the same optimiser type over the same parameters."""
        want = ("type", "hyper", "step_count", "slots")
        if not isinstance(sd, dict) or set(sd) != set(want):
            fail("state_dict", f"a dict with keys {list(want)}",
                 sorted(sd) if isinstance(sd, dict) else type(sd).__name__)
        if sd["type"] != type(self).__name__:
            fail("state_dict['type']", repr(type(self).__name__), repr(sd["type"]))
        hyper = sd["hyper"]
        if not isinstance(hyper, dict) or set(hyper) != set(self._hyper_names):
            got = sorted(hyper) if isinstance(hyper, dict) else type(hyper).__name__
            fail("state_dict['hyper']", f"the keys {sorted(self._hyper_names)}", got)
        hyper = {k: tuple(v) if isinstance(v, list) else v for k, v in hyper.items()}
        hyper = self.check_hyper(**{k: hyper[k] for k in self._hyper_names})
        steps = sd["step_count"]
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
            fail("state_dict['step_count']", "a non-negative integer", repr(steps))
        slots = sd["slots"]
        if not isinstance(slots, dict):
            fail("state_dict['slots']", "a dict of named arrays", type(slots).__name__)
        names = self.slot_names(hyper)
        expected = {f"{s}/{n}": p for s in names for n, p in self.params.items()}
        for key in slots:
            if key not in expected:
                fail(f"state_dict['slots'][{key!r}]", f"no such slot; keys are slot/param for "
                     f"slots {list(names)} and params {list(self.params)}", "an extra entry")
        for key, p in expected.items():
            if key not in slots:
                fail(f"state_dict['slots'][{key!r}]", f"an array of shape {p.shape}", "nothing")
            a = slots[key]
            if not isinstance(a, np.ndarray) or a.shape != p.shape or a.dtype != p.dtype:
                fail(f"state_dict['slots'][{key!r}]", f"a {p.dtype.name} array of shape {p.shape}",
                     f"a {a.dtype.name} array of shape {a.shape}" if isinstance(a, np.ndarray)
                     else type(a).__name__)
        # everything checked: now change state
        self._set_hyper(hyper)
        self.step_count = int(steps)
        self.slots = {s: {n: self.slots[s][n] if s in self.slots else self.init_slot(s, p)
                          for n, p in self.params.items()} for s in names}
        for s in names:
            for n in self.params:
                np.copyto(self.slots[s][n], slots[f"{s}/{n}"])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({len(self.params)} params, {args}, step_count={self.step_count})"
