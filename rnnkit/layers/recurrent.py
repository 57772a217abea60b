"""Sequence layers RNN, LSTM and GRU: stacking, bidirectional, reverse, variable lengths.

Batch-first at the boundary, like PyTorch with ``batch_first=True``:

    x (N, T, D) -> out (N, T, dirs*H), state (layers*dirs, N, H)   [LSTM: (h, c), both so]

State index ``layer * dirs + direction``, as PyTorch. ``lengths`` (N,) gives each row's
valid steps in a right-padded batch: outputs at padded steps are zero, the final state of a
row is taken at its own last step (its first, for the reverse direction) and padding adds
nothing to any gradient. Rows may come in any order (they are sorted internally).

Parameters are one flat dict named ``l{layer}.{name}`` and ``l{layer}_reverse.{name}`` with
the cell's names (W_xh, W_hh, b_xh, b_hh, P); ``grads`` has the same keys. ``forward``
returns a cache that ``backward`` takes: any number of forwards may be in flight at once.
Truncated BPTT is this same API: pass the previous chunk's final state in as ``state`` and
ignore the state gradient that ``backward`` returns for it.
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import partial

import numpy as np

from rnnkit import cells, fast
from rnnkit.errors import (check_array, check_choice, check_flag, check_float_dtype, check_int,
                           check_lengths, check_number, check_param_count, check_rng, check_seed,
                           fail)
from rnnkit.init import SCHEMES, as_rng, recurrent_params
from rnnkit.layers import scan as reference
from rnnkit.layers.dropout import dropout_forward

# large inputs are checked for NaN and infinity in one pass with no temporary (MKL's ?asum)
check_array = partial(check_array, finite=fast.all_finite)


class Recurrent:
    """A stack of `num_layers` scans of one cell, each uni- or bidirectional.

    ``cell``: a registered cell's name ("rnn", "lstm", "gru", "indrnn", ...; rnnkit.cells),
    its options as keywords (``Recurrent("rnn", 3, 4, nonlinearity="relu")``)."""

    def __init__(self, cell, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 bidirectional: bool = False, reverse: bool = False, dropout: float = 0.0,
                 init: str = "pytorch", dtype=np.float32,
                 seed: int | np.random.Generator | None = None, **options):
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            check_int(name, value)
        check_number("dropout", dropout, 0.0, 1.0, hi_open=True,
                     expected="a probability in [0, 1)")
        check_flag("bidirectional", bidirectional)
        if check_flag("reverse", reverse) and bidirectional:
            fail("reverse", "False when bidirectional=True (it already runs both ways)", True)
        dtype = check_float_dtype("dtype", dtype)
        check_choice("init", init, SCHEMES)
        check_seed("seed", seed)
        sizes = {"input_size": input_size, "hidden_size": hidden_size, "num_layers": num_layers}
        check_param_count(max(sizes, key=sizes.get),
                          (input_size + 2 * hidden_size + 2) * hidden_size
                          * 4 * num_layers * (2 if bidirectional else 1))
        if not isinstance(cell, (str, cells.CellSpec)):     # a fused cell object (old API)
            name, given = fast.cell_options(cell)
            if name is None:
                fail("cell", f"a cell name, one of {tuple(cells.CELLS)}", repr(cell))
            cell, options = name, {**given, **options}
        self.spec = cell if isinstance(cell, cells.CellSpec) else cells.get(cell)
        self.options = self.spec.resolve(options)
        self._fused = fast.fused_cell(self.spec, self.options)   # None: reference only
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.reverse, self.dropout = bidirectional, reverse, dropout
        self.dirs = 2 if bidirectional else 1
        self.dtype = np.dtype(dtype)
        self.rng = as_rng(seed)
        self.params: dict[str, np.ndarray] = {}
        for layer in range(num_layers):
            d_in = input_size if layer == 0 else self.dirs * hidden_size
            for direction in range(self.dirs):
                prefix = self.prefix(layer, direction)
                shapes = self.spec.params(d_in, hidden_size, **self.options)
                p = recurrent_params(self.rng, shapes, init, self.dtype)
                self.params.update({prefix + k: v for k, v in p.items()})
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        # each scan's weights in its loop's layout, kept between inference calls while the
        # parameters stay the same (rnnkit.fast.Prepared); (layer, direction) -> it
        self._prepared: dict[tuple, fast.Prepared] = {}
        self._frozen = 0                    # depth of `with self.frozen()` blocks

    @property
    def cell(self):
        """The cell's fused form for the fast scan; None where no compiled loop has this cell
        or option set (the reference scan runs it)."""
        return self._fused

    @property
    def has_cell_state(self) -> bool:
        return self.spec.has_cell_state

    def _fast(self):
        """The fused cell where the fast scan runs this call (a compiled loop serves it),
        else None: the reference scan runs it."""
        if reference.engine() == "fast" and fast.applies(self._fused, self.dtype):
            return self._fused
        return None

    @staticmethod
    def prefix(layer: int, direction: int) -> str:
        return f"l{layer}_reverse." if direction else f"l{layer}."

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g[...] = 0

    def _kept(self, layer: int, direction: int) -> fast.Prepared:
        prepared = self._prepared.setdefault((layer, direction), fast.Prepared())
        prepared.frozen = self._frozen > 0
        return prepared

    def _direction(self, layer: int, direction: int) -> dict:
        prefix = self.prefix(layer, direction)
        return {k[len(prefix):]: v for k, v in self.params.items() if k.startswith(prefix)}

    @contextmanager
    def frozen(self):
        """Within this block the parameters do not change: inference compares them with the
        weights it keeps (see ``forward``) at its first call only, not at every call.

        A model generating text calls its layers once per token, and the comparison reads
        every weight twice, a large share of a token's time (docs/performance.md, section
        4; ``LanguageModel.generate`` runs in such a block). Changing a parameter inside
        the block is not noticed until it ends."""
        self._frozen += 1
        for prepared in self._prepared.values():
            prepared.checked = False
        try:
            yield self
        finally:
            self._frozen -= 1       # (each call sets its scan's `frozen` from this count)

    def stepper(self, state=None, batch: int | None = None):
        """Inference one time step at a time from ``state`` (None: zeros) on: -> a function
        ``step(x_t)``, x_t (N, D) -> the top layer's h_t (N, H); ``step.state()`` is the
        state after the last step, as forward returns it.

        A step computes what ``forward(x_t[:, None], state, grad=False)`` would with the state
        carried, on the same kernels, without forward's work per call (its checks, buffers and
        choice of loops; rnnkit.fast.scan.Stepper): most of a one-step call's time in text
        generation, one call a token (docs/performance.md, section 4).
        The weights are laid out once, when it starts: step within ``frozen()``, where a
        changed parameter is not noticed. A layer reading its input backwards (bidirectional,
        reverse) cannot step, as its reverse direction starts from the end: RnnkitError.
        The batch is the state's (``batch`` need only be given without a state; default 1)."""
        if self.bidirectional or self.reverse:
            fail("layer", "one forward direction for stepper() (a reverse direction needs "
                 "the whole sequence; use forward)",
                 f"bidirectional={self.bidirectional}, reverse={self.reverse}")
        if batch is not None:
            check_param_count("batch", check_int("batch", batch) * self.hidden_size *
                              self.num_layers * 2)           # (the states, h and c)
        given = self._state_batch(state)
        if given is not None and batch is not None and batch != given:
            fail("batch", f"{given}, the batch of the state given (or None)", batch)
        h0, c0 = self._split_state(state, "state", given or batch or 1)
        return _Steps(self, h0, c0)

    def _state_batch(self, state) -> int | None:
        """The batch (axis 1) of a state as given, None without one."""
        h = state[0] if isinstance(state, tuple) and state else state
        shape = getattr(h, "shape", ())
        return int(shape[1]) if len(shape) == 3 else None

    def _state_shape(self, N: int) -> tuple:
        return (self.num_layers * self.dirs, N, self.hidden_size)

    def _split_state(self, state, name: str, N: int):
        """-> (h, c) as arrays of the state shape (zeros where not given); c None if no cell."""
        shape = self._state_shape(N)
        layout = "(layers*dirs, N, H)"
        if self.has_cell_state:
            if state is None:
                return np.zeros(shape, self.dtype), np.zeros(shape, self.dtype)
            if not isinstance(state, tuple) or len(state) != 2:
                fail(name, "a tuple (h, c) for an LSTM", type(state).__name__)
            return tuple(check_array(f"{name}[{i}]", s, ndim=3, shape=shape, dtype=self.dtype,
                                     layout=layout) for i, s in enumerate(state))
        if state is None:
            return np.zeros(shape, self.dtype), None
        return check_array(name, state, ndim=3, shape=shape, dtype=self.dtype,
                           layout=layout), None

    def forward(self, x: np.ndarray, state=None, lengths=None, *, training: bool = False,
                rng: np.random.Generator | None = None, grad: bool = True):
        """x (N, T, D) -> (out (N, T, dirs*H), final state, cache).

        ``out`` is batch-first in shape and time-major in memory: a transposed view of the
        scans' own output (a batch-first copy would add one more (N, T, H) array to a
        training step; ``np.ascontiguousarray(out)`` makes one). With grad=True it is also
        what backward reads, so it is read-only.

        grad=False is inference: nothing is kept for backward (the cache is None), which
        saves the memory and the writes of the BPTT cache; and the weights laid out for the
        time loops are kept for the next inference call, made again only when a parameter
        has changed (rnnkit.fast.scan.Prepared, ``frozen``; a grad=True call lets them go).

        The cache refers to x itself, not a copy: changing x in place before ``backward``
        changes dW_xh (PyTorch's autograd keeps its input the same way, and raises in that
        case; rnnkit cannot tell)."""
        x = check_array("x", x, ndim=3, shape=(None, None, self.input_size), dtype=self.dtype,
                        layout="(N, T, D)")
        N, T, _ = x.shape
        if T == 0:
            fail("x", "at least one time step", "shape with T = 0")
        if N == 0:
            fail("x", "at least one batch row", f"shape {x.shape}")
        check_flag("training", training)
        check_rng("rng", rng)
        h0, c0 = self._split_state(state, "state", N)
        if lengths is None:         # every row runs every step
            perm, n_active = None, np.full(T, N, np.int64)
        else:
            lens = check_lengths(lengths, N, T)
            perm = None if np.all(lens[:-1] >= lens[1:]) else np.argsort(-lens, kind="stable")
            if perm is not None:
                x, h0, lens = x[perm], h0[:, perm], lens[perm]
                c0 = None if c0 is None else c0[:, perm]
            n_active = (lens[None, :] > np.arange(T)[:, None]).sum(axis=1)      # (T,)
        rng = rng if rng is not None else self.rng
        seq = x.transpose(1, 0, 2)          # (T, N, D) view: the scans copy it in chunks
        if grad:                            # training changes the weights: keep nothing
            self._prepared.clear()
        h_n = np.zeros(self._state_shape(N), self.dtype)
        c_n = np.zeros_like(h_n) if c0 is not None else None
        layer_caches = []
        for layer in range(self.num_layers):
            mask = None
            if layer > 0:
                seq, mask = dropout_forward(seq, self.dropout, training, rng)
            outs, scans = [], []
            for direction in range(self.dirs):
                i = layer * self.dirs + direction
                out, h, c, cache = self._scan_forward(
                    layer, direction, seq, h0[i], None if c0 is None else c0[i], n_active,
                    (direction == 1) != self.reverse, grad)
                h_n[i] = h
                if c is not None:
                    c_n[i] = c
                outs.append(out)
                scans.append(cache)
            layer_caches.append((mask, scans))
            seq = outs[0] if self.dirs == 1 else _concat_features(outs)
        if perm is not None:
            inv = np.argsort(perm)
            seq, h_n = np.take(seq, inv, axis=1, out=np.empty_like(seq)), h_n[:, inv]
            c_n = None if c_n is None else c_n[:, inv]
        out = seq.transpose(1, 0, 2)        # (N, T, dirs*H), time-major in memory: no copy
        state_out = (h_n, c_n) if self.has_cell_state else h_n
        if not grad:
            return out, state_out, None
        out.flags.writeable = False         # it is the cache's own output (backward reads it)
        return out, state_out, {"layers": layer_caches, "perm": perm, "N": N, "T": T}

    def backward(self, dout: np.ndarray | None, dstate, cache: dict):
        """dL/dout (N, T, dirs*H) and dL/d(final state) (None = zero) -> (dx, d(initial state)).

        dx (N, T, D) is, like forward's output, batch-first in shape and time-major in memory.

        Adds the parameter gradients into ``self.grads``.
        """
        if not isinstance(cache, dict) or "layers" not in cache:
            fail("cache", "the cache of a forward(..., grad=True)", type(cache).__name__)
        if cache.get("spent"):
            fail("cache", "one backward per forward (backward consumes the cache: run forward "
                 "again)", "a cache already used by backward")
        N, T, perm = cache["N"], cache["T"], cache["perm"]
        H = self.hidden_size
        if dout is None:
            dout = np.zeros((N, T, self.dirs * H), self.dtype)
        dout = check_array("dout", dout, ndim=3, shape=(N, T, self.dirs * H),
                           dtype=self.dtype, layout="(N, T, dirs*H)")
        dh_n, dc_n = self._split_state(dstate, "dstate", N)
        if perm is not None:
            dout, dh_n = dout[perm], dh_n[:, perm]
            dc_n = None if dc_n is None else dc_n[:, perm]
        dseq = dout.transpose(1, 0, 2)                                        # (T, N, dirs*H)
        cache["spent"] = True
        dh0 = np.zeros_like(dh_n)
        dc0 = None if dc_n is None else np.zeros_like(dc_n)
        for layer in range(self.num_layers - 1, -1, -1):
            mask, scans = cache["layers"][layer]
            dx = None               # (T, N, D): the second direction adds into the first's
            for direction in range(self.dirs):
                i = layer * self.dirs + direction
                dx, dh, dc = self._scan_backward(
                    layer, direction, scans[direction],
                    dseq[:, :, direction * H:(direction + 1) * H], dh_n[i],
                    None if dc_n is None else dc_n[i], dx)
                dh0[i] = dh
                if dc is not None:
                    dc0[i] = dc
            dseq = dx if mask is None else np.multiply(dx, mask, out=dx)
        if perm is not None:
            inv = np.argsort(perm)
            dseq, dh0 = np.take(dseq, inv, axis=1, out=np.empty_like(dseq)), dh0[:, inv]
            dc0 = None if dc0 is None else dc0[:, inv]
        dx = dseq.transpose(1, 0, 2)        # (N, T, D), time-major in memory as the output
        return dx, ((dh0, dc0) if self.has_cell_state else dh0)

    def _scan_forward(self, layer, direction, seq, h0, c0, n_active, reverse: bool, grad: bool):
        """One direction of one layer: the fast scan where it applies, else the reference."""
        p, fused = self._direction(layer, direction), self._fast()
        if fused is not None:
            return fast.scan_forward(fused, p, seq, h0, c0, n_active, reverse=reverse,
                                     grad=grad,
                                     prepared=None if grad else self._kept(layer, direction))
        states0 = (h0,) if c0 is None else (h0, c0)
        fast.numpy_products()
        out, states, cache = reference.scan_forward(self.spec, self.options, p, seq, states0,
                                                    n_active, reverse)
        return out, states[0], (states[1] if c0 is not None else None), cache

    def _scan_backward(self, layer, direction, cache, dout, dh_T, dc_T, dx_into):
        p, prefix = self._direction(layer, direction), self.prefix(layer, direction)
        if "steps" not in cache:            # a fast scan's cache
            return fast.scan_backward(self._fused, p, cache, dout, dh_T, dc_T, self.grads,
                                      prefix, dx_into=dx_into, accumulate=dx_into is not None)
        dstates = (dh_T,) if dc_T is None else (dh_T, dc_T)
        fast.numpy_products()
        dx, d0 = reference.scan_backward(self.spec, self.options, p, cache, dout, dstates,
                                         self.grads, prefix)
        if dx_into is not None:
            dx_into += dx
            dx = dx_into
        return dx, d0[0], (d0[1] if dc_T is not None else None)


class _Steps:
    """Recurrent.stepper's step function: each layer's Stepper, bottom up."""

    def __init__(self, layer: Recurrent, h0: np.ndarray, c0: np.ndarray | None):
        self.shape, self.dtype = (h0.shape[1], layer.input_size), layer.dtype
        fused = layer._fast()
        if fused is not None:
            self.scans = [fast.Stepper(fused, layer._direction(i, 0), layer._kept(i, 0), h0[i],
                                       None if c0 is None else c0[i])
                          for i in range(layer.num_layers)]
        else:
            self.scans = [reference.Stepper(layer.spec, layer.options, layer._direction(i, 0),
                                            (h0[i],) if c0 is None else (h0[i], c0[i]))
                          for i in range(layer.num_layers)]

    def __call__(self, x_t: np.ndarray) -> np.ndarray:
        h = check_array("x_t", x_t, ndim=2, shape=self.shape, dtype=self.dtype, layout="(N, D)")
        for scan in self.scans:
            h = scan(h)             # (each its own buffer, rewritten at the next step)
        return h.copy()

    def state(self):
        h = np.stack([scan.h for scan in self.scans])
        if self.scans[0].c is None:
            return h
        return h, np.stack([scan.c for scan in self.scans])


def _concat_features(outs: list) -> np.ndarray:
    """np.concatenate(outs, axis=2) into a pooled buffer (rnnkit.fast.empty)."""
    T, N, H = outs[0].shape
    return np.concatenate(outs, axis=2, out=fast.empty((T, N, len(outs) * H), outs[0].dtype))


class RNN(Recurrent):
    """Elman RNN layer: h_t = f(W_xh x_t + b_xh + W_hh h_{t-1} + b_hh), f = tanh or relu
    (``rnnkit.cells.rnn``)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 nonlinearity: str = "tanh", clip: float | None = None, **kwargs):
        super().__init__("rnn", input_size, hidden_size, num_layers,
                         nonlinearity=nonlinearity, clip=clip, **kwargs)


class LSTM(Recurrent):
    """LSTM layer (``rnnkit.cells.lstm``); ``forget_bias`` sets b_xf (b_hf = 0) if given."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 peepholes: bool = False, forget_bias: float | None = None,
                 clip: float | None = None, **kwargs):
        super().__init__("lstm", input_size, hidden_size, num_layers, peepholes=peepholes,
                         clip=clip, **kwargs)
        if forget_bias is not None:
            set_forget_bias(self, forget_bias)


def set_forget_bias(layer: Recurrent, forget_bias: float) -> None:
    """b_xf = forget_bias and b_hf = 0 in every layer and direction of an LSTM-like layer
    (its forget gate is the second block of the gates: LSTM, LayerNormLSTM)."""
    H = layer.hidden_size
    for name, b in layer.params.items():
        if name.endswith(".b_xh"):
            b[H:2 * H] = forget_bias
        elif name.endswith(".b_hh"):
            b[H:2 * H] = 0


class GRU(Recurrent):
    """GRU layer in the notes' convention h_t = (1 - z) h_{t-1} + z h~ (``rnnkit.cells.gru``)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 reset_after: bool = True, clip: float | None = None, **kwargs):
        super().__init__("gru", input_size, hidden_size, num_layers, reset_after=reset_after,
                         clip=clip, **kwargs)
