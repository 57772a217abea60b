"""A recurrent model for any of the notes' topologies: [Embedding] -> RNN stack -> Dense head.

    x_t = E[token_t]  (vocab_size > 0)   or the input features x_t (vocab_size = 0)
    h_t = RNN/LSTM/GRU(x_t, h_{t-1})      stacked, optionally bidirectional
    y_t = g(W_hy h_t + b_y)              readout="steps": many-to-many (note 002, per-step loss)
    y   = g(W_hy h_last + b_y)           readout="last":  many-to-one (sentiment, note 001)

For readout="last", h_last is the top layer's final state: each row's state at its own last
valid step, and for a bidirectional model the forward final state joined with the reverse
one (which has read the whole row backwards), so padding never reaches the output.
One-to-many (captioning-style generation) is readout="steps" fed its own outputs, as
``LanguageModel.generate`` does; one-to-one is T = 1.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rnnkit import cells
from rnnkit.errors import (check_array, check_choice, check_float_dtype, check_int, check_ids,
                           check_seed, fail)
from rnnkit.init import as_rng
from rnnkit.layers import Dense, Embedding, Recurrent
from rnnkit.layers.dense import ACTIVATIONS

READOUTS = ("steps", "last")


class ModelCache(NamedTuple):
    """What forward keeps for backward."""
    embed: object
    rnn: dict
    head: object
    shape: tuple


class SequenceModel:
    """Parameters ``embed.E`` (if vocab_size), ``rnn.l{k}[_reverse].*``, ``head.W_hy``,
    ``head.b_y``."""

    def __init__(self, *, vocab_size: int = 0, input_size: int = 0, embed_dim: int = 64,
                 hidden_size: int = 128, num_layers: int = 1, cell: str = "lstm",
                 bidirectional: bool = False, dropout: float = 0.0, output_size: int = 1,
                 output_activation: str = "identity", readout: str = "steps",
                 cell_options: dict | None = None, dtype: str = "float32",
                 seed: int | np.random.Generator | None = None, **options):
        """``cell``: any registered cell (rnnkit.cells.CELLS); its options as keywords
        (``nonlinearity="relu"``) or, as before, in ``cell_options``."""
        check_choice("cell", cell, tuple(cells.CELLS))
        cell_options = {**(cell_options or {}), **options}
        check_choice("readout", readout, READOUTS)
        check_int("vocab_size", vocab_size, 0)
        check_int("input_size", input_size, 0)
        if (vocab_size > 0) == (input_size > 0):
            fail("vocab_size/input_size", "exactly one of them > 0 (token ids or features)",
                 f"vocab_size={vocab_size}, input_size={input_size}")
        check_int("embed_dim", embed_dim)
        check_int("output_size", output_size)
        check_choice("output_activation", output_activation, ACTIVATIONS)
        dtype = check_float_dtype("dtype", dtype)
        check_seed("seed", seed)
        self.config = {"vocab_size": vocab_size, "input_size": input_size,
                       "embed_dim": embed_dim, "hidden_size": hidden_size,
                       "num_layers": num_layers, "cell": cell, "bidirectional": bidirectional,
                       "dropout": dropout, "output_size": output_size,
                       "output_activation": output_activation, "readout": readout,
                       "cell_options": dict(cell_options or {}), "dtype": np.dtype(dtype).name}
        rng = as_rng(seed)
        self.dtype = np.dtype(dtype)
        self.readout = readout
        self.embed = Embedding(vocab_size, embed_dim, dtype=dtype, seed=rng) if vocab_size else None
        self.rnn = Recurrent(cell, embed_dim if vocab_size else input_size, hidden_size,
                             num_layers, bidirectional=bidirectional, dropout=dropout,
                             dtype=dtype, seed=rng, **cell_options)
        dirs = 2 if bidirectional else 1
        self.head = Dense(dirs * hidden_size, output_size, output_activation, dtype=dtype, seed=rng)
        parts = {"embed": self.embed, "rnn": self.rnn, "head": self.head}
        parts = {k: v for k, v in parts.items() if v is not None}
        self.params = {f"{p}.{k}": v for p, m in parts.items() for k, v in m.params.items()}
        self.grads = {f"{p}.{k}": v for p, m in parts.items() for k, v in m.grads.items()}

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g[...] = 0

    def _top_state(self, h_n: np.ndarray) -> np.ndarray:
        """(layers*dirs, N, H) -> (N, dirs*H): the top layer's final state(s) side by side."""
        dirs = self.rnn.dirs
        return np.concatenate(list(h_n[-dirs:]), axis=1)

    def forward(self, inputs, state=None, lengths=None, *, training: bool = False,
                rng: np.random.Generator | None = None, grad: bool = True):
        """(N, T) ids or (N, T, D) features -> outputs (N, T, V) or (N, V), final state, cache.

        grad=False is inference: nothing is kept for backward and the cache is None."""
        if self.embed is not None:
            x, emb_cache = self.embed.forward(inputs, "inputs")
        else:
            x, emb_cache = check_array("inputs", inputs, ndim=3,
                                       shape=(None, None, self.rnn.input_size),
                                       dtype=self.dtype, layout="(N, T, D)"), None
            if 0 in x.shape:
                fail("inputs", "at least one batch row and one time step", f"shape {x.shape}")
        h, state, rnn_cache = self.rnn.forward(x, state, lengths, training=training, rng=rng,
                                               grad=grad)
        if self.readout == "last":
            h_n = state[0] if isinstance(state, tuple) else state
            h = self._top_state(h_n)
        y, head_cache = self.head.forward(h)
        if not grad:
            return y, state, None
        return y, state, ModelCache(emb_cache, rnn_cache, head_cache, h.shape)

    def backward(self, doutputs: np.ndarray, dstate=None, cache=None):
        """dL/doutputs and dL/d(final state) (None = zero) -> (dx, d(initial state)), as a
        layer's ``backward(dout, dstate, cache)``; accumulates the parameter gradients.
        dx is dL/d(input features), None for token ids.

        The old form ``backward(doutputs, cache)`` (the trainer's) still works and returns dx
        alone."""
        if isinstance(dstate, ModelCache):          # backward(doutputs, cache[, dstate])
            dx, _ = self.backward(doutputs, cache, dstate)
            return dx
        if not isinstance(cache, ModelCache) or cache.shape is None:
            fail("cache", "the cache of this model's forward(..., grad=True)",
                 type(cache).__name__)
        emb_cache, rnn_cache, head_cache, _ = cache
        y = head_cache[1]
        check_array("doutputs", doutputs, ndim=y.ndim, shape=y.shape, dtype=self.dtype)
        dh = self.head.backward(doutputs, head_cache)
        if self.readout == "last":
            H, dirs = self.rnn.hidden_size, self.rnn.dirs
            N = dh.shape[0]
            dh_n = np.zeros((self.rnn.num_layers * dirs, N, H), self.dtype)
            for d in range(dirs):
                dh_n[-dirs + d] = dh[:, d * H:(d + 1) * H]
            if self.rnn.has_cell_state:
                dc_n = np.zeros_like(dh_n)
                if dstate is not None:
                    dh_n += dstate[0]
                    dc_n += dstate[1]
                dstate = (dh_n, dc_n)
            else:
                dstate = dh_n if dstate is None else dh_n + dstate
            dx, dstate0 = self.rnn.backward(None, dstate, rnn_cache)
        else:
            dx, dstate0 = self.rnn.backward(dh, dstate, rnn_cache)
        if self.embed is not None:
            self.embed.backward(dx, emb_cache)
            return None, dstate0
        return dx, dstate0

    def step(self, x_t, state=None):
        """Streaming inference, one time step: (N,) ids or (N, D) features -> (y_t, state).

        Feeding a sequence one step at a time with the returned state gives exactly the
        full-sequence outputs (readout="steps"); with readout="last", each step's output is
        the full-sequence output of the prefix read so far. A bidirectional model cannot
        stream (its reverse direction starts from the end), so it raises RnnkitError."""
        self._one_direction("step")
        y, state, _ = self.forward(self._step_input(x_t)[:, None], state, grad=False)
        return (y[:, 0] if self.readout == "steps" else y), state

    def stepper(self, state=None, batch: int | None = None):
        """``step`` with the state carried inside: -> a function ``step(x_t)``, (N,) ids or
        (N, D) features -> y_t as ``step`` gives it; ``step.state()`` is the state after the
        last step. Its recurrent layers step with ``Recurrent.stepper``, laid out once rather
        than at every call: the parameters must not change while it steps."""
        self._one_direction("stepper")
        rnn_step = self.rnn.stepper(state, batch)

        def step(x_t):
            x = self._step_input(x_t)
            h = rnn_step(self.embed.forward(x)[0] if self.embed is not None else x)
            return self.head.forward(h)[0]      # (with one direction, h is the top state)
        step.state = rnn_step.state
        return step

    def _one_direction(self, what: str) -> None:
        if self.rnn.bidirectional:
            fail("model", f"bidirectional=False for {what}() (the reverse direction needs the "
                 "whole sequence; use forward)", "bidirectional=True")

    def _step_input(self, x_t) -> np.ndarray:
        if self.embed is not None:
            return check_ids("x_t", x_t, self.embed.num_embeddings, ndim=1)
        return check_array("x_t", x_t, ndim=2, shape=(None, self.rnn.input_size),
                           dtype=self.dtype, layout="(N, D)")
