"""The reference scan: a cell's reference pair (rnnkit.cells) run over time.

Forward is the notes' unrolled loop; backward is min-char-rnn's single reversed loop,
carrying dL/dh_{t} of the step after (``dh_next``, and ``dc_next`` for an LSTM) into each
step's ``step_back``, adding the parameter gradients of every step (BPTT, notes 001, 004):

    dL/dW = sum_t dL/dh_t dh_t/dW,   dL/dh_{t-1} = dL/dh_{t-1}(output) + dL/dh_t dh_t/dh_{t-1}

Layout as the fast scan's (rnnkit.fast.scan): x (T, N, D) time-major, rows sorted by length,
so the rows running step t are ``[:n_active[t]]`` and the others keep their state. Every
layer runs on it within ``use("reference")``, and a cell without a fast form always does.
"""
from __future__ import annotations

import contextvars
from contextlib import contextmanager

import numpy as np

from rnnkit.errors import fail

ENGINES = ("fast", "reference")
_engine = contextvars.ContextVar("rnnkit_engine", default="fast")
_recorded = contextvars.ContextVar("rnnkit_recorded_dh", default=None)


@contextmanager
def use(engine: str):
    """Within this block every recurrent layer runs on ``engine``: "reference" (the cells'
    plain NumPy pairs, this module) or "fast" (the default: rnnkit.fast where it applies)."""
    if engine not in ENGINES:
        fail("engine", f"one of {ENGINES}", repr(engine))
    token = _engine.set(engine)
    try:
        yield
    finally:
        _engine.reset(token)


def engine() -> str:
    return _engine.get()


@contextmanager
def record_hidden_gradients():
    """Within this block each reference scan's backward appends to the yielded list what BPTT
    carries through time: {"prefix", "dh" (T, N, H): dL/dh_t of every step (from the output
    and from the step after), "n_active", "reverse"}, in the order the backwards ran
    (rnnkit.train.watch and rnnkit.diagnostics read it). Use it with ``use("reference")``:
    the fast scan keeps no such record."""
    found: list = []
    token = _recorded.set(found)
    try:
        yield found
    finally:
        _recorded.reset(token)


def _steps(T: int, reverse: bool):
    return range(T - 1, -1, -1) if reverse else range(T)


def scan_forward(spec, options: dict, p: dict, x: np.ndarray, states0: tuple,
                 n_active: np.ndarray, reverse: bool):
    """x (T, N, D), states0 ((N, H), ...) -> out (T, N, H), final states, cache."""
    T, N, _ = x.shape
    states = [s.copy() for s in states0]
    out = np.zeros((T, N, states[0].shape[1]), x.dtype)      # padded steps stay zero
    caches = [None] * T
    for t in _steps(T, reverse):
        n = n_active[t]
        # (copies: a step's cache keeps the states it read, and these rows are rewritten)
        *new, caches[t] = spec.step(x[t, :n], *(s[:n].copy() for s in states), p, **options)
        for s, s_t in zip(states, new):
            s[:n] = s_t
        out[t, :n] = new[0]
    # the weights it ran with: backward differentiates this forward even if the parameters
    # change in between (an optimiser step between forward and backward)
    return out, tuple(states), {"steps": caches, "n_active": n_active, "reverse": reverse,
                                "shape": x.shape, "p": {k: v.copy() for k, v in p.items()}}


def scan_backward(spec, options: dict, p: dict, cache: dict, dout: np.ndarray,
                  dstates_T: tuple, grads: dict, prefix: str):
    """dout (T, N, H), dstates_T ((N, H), ...) -> dx (T, N, D), d(initial states);
    adds the parameter gradients into ``grads[prefix + name]``."""
    T, N, D = cache["shape"]
    n_active, p = cache["n_active"], cache["p"]
    d_next = [d.astype(dout.dtype, copy=True) for d in dstates_T]   # dh_next (, dc_next)
    dx = np.zeros((T, N, D), dout.dtype)
    record = _recorded.get()
    dh = None if record is None else np.zeros((T,) + d_next[0].shape, dout.dtype)
    for t in reversed(_steps(T, cache["reverse"])):
        n = n_active[t]
        d_next[0][:n] += dout[t, :n]            # h_t feeds the output and the next step
        if dh is not None:
            dh[t, :n] = d_next[0][:n]
        dx[t, :n], *d_prev, g = spec.step_back(*(d[:n] for d in d_next), cache["steps"][t],
                                               p, **options)
        for d, d_t in zip(d_next, d_prev):
            d[:n] = d_t
        for name, value in g.items():
            grads[prefix + name] += value
    if dh is not None:
        record.append({"prefix": prefix, "dh": dh, "n_active": n_active,
                       "reverse": cache["reverse"]})
    return dx, tuple(d_next)


class Stepper:
    """One layer's scan one step at a time, the states carried inside (inference)."""

    def __init__(self, spec, options: dict, p: dict, states0: tuple):
        self.spec, self.options, self.p = spec, options, p
        self.states = tuple(s.copy() for s in states0)

    def __call__(self, x_t: np.ndarray) -> np.ndarray:
        *self.states, _ = self.spec.step(x_t, *self.states, self.p, **self.options)
        self.states = tuple(self.states)
        return self.states[0]

    @property
    def h(self):
        return self.states[0]

    @property
    def c(self):
        return self.states[1] if len(self.states) > 1 else None
