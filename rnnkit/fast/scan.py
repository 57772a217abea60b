"""Scan a cell over time: one direction of one layer, forward and backpropagation through time.

Arrays here are time-major, (T, N, ...), and the batch is sorted by length, longest first, so
the rows still running at step t are the prefix ``[:n_active[t]]``; a finished row keeps its
final state, and a row not yet started (reverse direction) keeps its initial state. Padded
steps get zero output and zero gradient, without masks.

Speed comes from the layout: the input projection of all T steps is ONE matrix product
before the loop, the loop does only the recurrent product and in-place gate arithmetic into
preallocated buffers, and the weight and input gradients are ONE product each after it.
(Inference through a compiled whole loop is the exception where it pays, at batch 1-2 with
few inputs and on MKL with 16+ rows a thread: the loop projects each step's input itself,
see rnnkit.fast.kernels.LOOP_PROJECTION_INPUTS and MKL_PROJECTION_ROWS.)
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast import blas, kernels, strided, workspace
from rnnkit.fast import steps as _steps
from rnnkit.fast.steps import chunk_steps, projection_steps
from rnnkit.fast.fused import history


def _one_row(shape: tuple, dtype) -> np.ndarray:
    """A writable (T, ...) view of ONE (...) buffer: every step writes the same memory."""
    row = np.zeros(shape[1:], dtype)                # (np.ndarray: as_strided costs more)
    return np.ndarray(shape, dtype, buffer=row, strides=(0,) + row.strides)


_BITS = {4: np.uint32, 8: np.uint64}


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.itemsize in _BITS and \
        a.flags.c_contiguous and np.array_equal(a.view(_BITS[a.itemsize]),
                                                b.view(_BITS[b.itemsize]))


class Prepared:
    """One scan's weights laid out for its time loop (``cell.prepare``), and what the fast
    loops make of them (W packed for MKL, rnnkit.fast.kernels.fastmath.kept), kept from one
    inference call to the next while the parameters hold the same bits.

    Making them anew costs a transposing copy of each weight matrix and MKL's packing of it,
    every call, and a model generating text calls its layers once per token; comparing the
    parameters with a copy of them, bit for bit, costs only a read of each
    (docs/performance.md, section 4). The memory held is the copy, the loop's layout and the
    packed products (about four times the weights)."""

    def __init__(self):
        self._copy: dict | None = None
        self._k: dict | None = None
        self.frozen = False     # the parameters do not change (rnnkit.Recurrent.frozen)...
        self.checked = False    # ...and were compared since they stopped changing

    def weights(self, cell, p: dict) -> dict:
        """cell.prepare(p), made again only when p's arrays differ from the last call's."""
        k, copy = self._k, self._copy
        if self.frozen and self.checked and k is not None:
            return k
        if copy is None or copy.keys() != p.keys() or \
                not all(_same_bits(p[name], copy[name]) for name in p):
            self._copy = self._k = k = None           # (their memory back first)
            k = cell.prepare(p)
            k["products"] = {}
            self._copy = {name: np.array(a, copy=True) for name, a in p.items()}
            self._k = k
        self.checked = self.frozen
        return k


def scan_forward(cell, p: dict, x: np.ndarray, h0: np.ndarray, c0: np.ndarray | None,
                 n_active: np.ndarray, reverse: bool, grad: bool = True,
                 prepared: Prepared | None = None):
    """x (T, N, D), h0/c0 (N, H) -> out (T, N, H), h_T (N, H), c_T (N, H) or None, cache.

    x may be any (T, N, D) view, e.g. of a batch-first array; the cache keeps that view (no
    copy), for the weight gradient.

    The cache holds its own copy of the weights (laid out for the loop; backward restores
    W_hh and W_xh from it, rnnkit.fast.fused.weights), so backward differentiates the forward that
    made it even if the parameters were updated in between, and the initial states: the
    states before each step are read from those after it (``rnnkit.fast.fused.history``), not kept.
    With grad=False nothing is kept for backward: the per-step buffers backward would read
    (cell states, tanh C, ...) become one row each, rewritten every step, instead of T; and
    the weights come from ``prepared`` when given (inference only: a training scan's cache
    must keep the weights it ran with).
    """
    T, N, D = x.shape
    H = h0.shape[1]
    if prepared is not None and grad:
        raise ValueError("scan_forward: prepared weights serve inference (grad=False) only")
    k = prepared.weights(cell, p) if prepared is not None else cell.prepare(p)
    cache = cell.alloc(T, N, H, x.dtype, n_active)
    fast = kernels.select(cell, x.dtype, N, H, D, train=grad)
    # inference through a whole loop that projects x itself keeps one row of projection
    projects = not grad and fast is not None and fast.projects_input
    if not grad:
        cache.update({name: _one_row(a.shape, a.dtype) for name, a in cache.items()
                      if a.ndim == 3 and (name != "gates" or projects)})
    _choose_products(cell, fast, N, H)
    out = workspace.empty((T, N, H), x.dtype)
    h = h0.copy()
    if cell.has_cell_state:
        cache["c"] = workspace.time_major((T, N, H), x.dtype, n_active) if grad else \
            _one_row((T, N, H), x.dtype)
        c = c0.copy()
    _run(cell, k, cache, fast, x, h, c if cell.has_cell_state else None, n_active, reverse,
         out, projects)
    cache.update(k=k, x=x, out=out, h0=h0.copy(), n_active=n_active, reverse=reverse,
                 fast=fast)
    if cell.has_cell_state:
        cache["c0"] = c0.copy()
    return out, h, (c if cell.has_cell_state else None), cache


def _choose_products(cell, fast, N: int, H: int) -> None:
    """Where the scan's products go (blas.choose): the reference's per-step products are
    NumPy's, and then its other products are too."""
    on_mkl = blas.choose(N * cell.n_gates * H * H if fast is not None else 0,
                         fast is not None and fast.whole_loop)
    if fast is not None:
        fast.parallel = on_mkl and kernels.shared_openmp()


def _run(cell, k, cache, fast, x, h, c, n_active, reverse, out, projects: bool) -> None:
    """The time loop over x (T, N, D) from the states h, c (updated in place) into out and
    the cache's buffers, after the input projection of all steps, W_xh x_t (+ biases, unless
    the fast loop adds them; none when it ``projects`` x itself): LSTM and GRU turn it into
    their activations in place, the Elman cell into its output."""
    T = x.shape[0]
    gx = cache["gates"] if "gates" in cache else out
    if not projects and not strided.project(x, k["Wx_T"], gx):
        for t0, t1, rows in time_major_rows(x, projection_steps(x)):
            blas.matmul(rows, k["Wx_T"], gx[t0:t1].reshape(-1, gx.shape[2]))
    if fast is None or not fast.adds_bias:
        gx += k["bx"]
    workspace.zero_padding(out, n_active)
    if fast is not None:
        fast.forward(k, cache, gx, h, c, n_active, reverse, out, x if projects else None)
        return
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        n = n_active[t]                 # step reads h[:n], c[:n] and writes the step's own
        if c is not None:               # rows, so the states are updated after it
            cell.step(k, cache, t, n, gx[t, :n], h[:n], c[:n], out[t, :n], cache["c"][t, :n])
            c[:n] = cache["c"][t, :n]
        else:
            cell.step(k, cache, t, n, gx[t, :n], h[:n], None, out[t, :n], None)
        h[:n] = out[t, :n]


class Stepper:
    """Inference one step at a time for one scan (one layer, one direction) of N rows, from
    the states h0, c0 on: ``stepper(x)`` takes x_t (N, D) and returns h_t (N, H), in a buffer
    the next call overwrites; ``h``, ``c`` are the states after it.

    Text generation calls the model once a token, and a scan_forward call of one step spends
    most of its time laying out its buffers and choosing its loop (docs/performance.md,
    section 4). A stepper does that once: each call is the step's projection and the loop over
    one step, the same computation as scan_forward's (rnnkit.layers.Recurrent.stepper). The
    weights are ``prepared``'s when it starts: the parameters must not change while it steps
    (within rnnkit.layers.Recurrent.frozen)."""

    def __init__(self, cell, p: dict, prepared: Prepared, h0: np.ndarray,
                 c0: np.ndarray | None):
        N, H = h0.shape
        self.cell, self.k = cell, prepared.weights(cell, p)
        self.fast = kernels.select(cell, h0.dtype, N, H, p["W_xh"].shape[1], train=False,
                                   stepped=True)
        self.projects = self.fast is not None and self.fast.projects_input
        self.n_active = np.full(1, N, np.int64)
        self.cache = cell.alloc(1, N, H, h0.dtype, self.n_active)
        if cell.has_cell_state:
            self.cache["c"] = np.zeros((1, N, H), h0.dtype)
        self.out = np.zeros((1, N, H), h0.dtype)
        self.h, self.c = h0.copy(), None if c0 is None else c0.copy()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        _choose_products(self.cell, self.fast, *self.h.shape)
        _run(self.cell, self.k, self.cache, self.fast, x[None], self.h, self.c, self.n_active,
             False, self.out, self.projects)
        return self.out[0]


def scan_backward(cell, p: dict, cache: dict, dout: np.ndarray, dh_T: np.ndarray,
                  dc_T: np.ndarray | None, grads: dict, prefix: str,
                  dx_into: np.ndarray | None = None, accumulate: bool = False):
    """dout (T, N, H), dh_T/dc_T (N, H) -> dx (T, N, D), dh0, dc0; adds into grads[prefix+name].

    dx goes into ``dx_into`` (a C-contiguous (T, N, D) array; added to it with
    ``accumulate``) if given, else into a new buffer. Consumes the cache: the fast
    kernels overwrite the gates with their gradients.

    The Elman cell's dL/da is kept for one chunk of steps at a time (``chunk_steps``), and
    each chunk's share of every gradient product is taken before the loop goes on: its cache
    has no gates buffer to take the gradients' place, and a (T, N, H) one would be the
    largest array of its training step."""
    x, out, k, fast = cache["x"], cache["out"], cache["k"], cache["fast"]
    T, N, D = x.shape
    H = out.shape[2]
    n_active, reverse = cache["n_active"], cache["reverse"]
    G = cell.n_gates * H
    cell.backward_weights(k)
    blas.choose(N * G * H if fast is not None else 0, fast is not None and fast.whole_loop)
    chunked = getattr(cell, "chunked_backward", False)
    if fast is not None and fast.grads_in_gates:     # dL/da: the gates' pre-activations
        # (their padded rows hold the input projection of the padding)
        dgx = workspace.zero_padding(cache["gates"], n_active)
    elif chunked:
        dgx = workspace.empty((chunk_steps(T, N), N, G), x.dtype)
    else:
        dgx = workspace.time_major((T, N, G), x.dtype, n_active)
    # GRU, reset after: the recurrent product's gradient differs from dgx in the candidate
    # part (times r); the loop's product needs one step of it, and the backward leaves that
    # part in the spent hn rows for the weight gradient
    dgh = workspace.empty((N, G), x.dtype) if getattr(cell, "reset_after", False) else None
    dh = dh_T.astype(x.dtype, copy=True)
    dc = dc_T.astype(x.dtype, copy=True) if cell.has_cell_state else None
    dx = dx_into            # (a new one is taken once the input's copy is back in the pool)
    if chunked:
        size = dgx.shape[0]
        spans = [(t0, min(T, t0 + size)) for t0 in range(0, T, size)]
        spans = spans if reverse else spans[::-1]        # in the order backward visits them
    else:
        spans = [(0, T)]
    for t0, t1 in spans:
        dA = workspace.zero_padding(dgx[:t1 - t0], n_active[t0:t1]) if chunked else dgx
        if fast is not None:
            fast.backward(k, cache, dout, dh, dc, dA, dgh, n_active, reverse,
                          *((t0, t1) if chunked else ()))
        else:
            _steps_back(cell, k, cache, dout, dh, dc, dA, dgh, t0, t1)
        db = blas.column_sums(dA.reshape(-1, G))    # b_xh's gradient; b_hh's shares it
        grads[prefix + "b_xh"] += db
        if chunked:
            cell.recurrent_grads(p, cache, dA, db, grads, prefix, t0=t0)
        else:
            cell.recurrent_grads(p, cache, dA, db, grads, prefix)
            _release_spent(cache, dA)       # (the input's copy can take their place)
        _input_weight_grad(dA, x[t0:t1], grads[prefix + "W_xh"], chunked)
        if dx is None:      # (after the input's copy went back to the pool: dx takes it)
            dx = workspace.spare_or_empty((T, N, D), x.dtype)
        blas.matmul(dA.reshape(-1, G), k["W_xh"], dx[t0:t1].reshape(-1, D),
                    accumulate=accumulate)
    return dx, dh, dc


def _release_spent(cache: dict, dA: np.ndarray) -> None:
    """Drop the consumed cache's (T, N, ...) buffers but dA, which the input gradient still
    reads: those the pool lent go back to it, and dx can take one (a small GRU's step peaked
    at the gates, hn, the output and the input's copy, which now takes hn's place)."""
    for name in [name for name, a in cache.items() if isinstance(a, np.ndarray) and
                 a.ndim == 3 and not np.may_share_memory(a, dA)]:
        del cache[name]


def _input_weight_grad(dA: np.ndarray, x: np.ndarray, dW: np.ndarray, chunked: bool) -> None:
    """dW += the sum over steps of dA[t]^T x[t]: on x where it lies (rnnkit.fast.strided), else one
    product on a time-major copy of x (a chunk is copied whole: it is not chunked again)."""
    if strided.weight_grad(dA, x, dW):
        return
    G = dA.shape[2]
    for s0, s1, rows in time_major_rows(x, x.shape[0] if chunked else None):
        blas.matmul(dA[s0:s1].reshape(-1, G).T, rows, dW, accumulate=True)


def _steps_back(cell, k, cache, dout, dh, dc, dA, dgh, t0, t1):
    """The reference backward over steps [t0, t1): dL/da of step t into dA[t - t0]."""
    out, n_active, reverse = cache["out"], cache["n_active"], cache["reverse"]
    has_c = cell.has_cell_state
    scratch = np.empty(dh.shape, dh.dtype)
    for t in (range(t0, t1) if reverse else range(t1 - 1, t0 - 1, -1)):
        n = n_active[t]
        dh_n = dh[:n]
        dh_n += dout[t, :n]
        if has_c:                                   # the LSTM reads C_{t-1}, not h_{t-1}
            h_prev = None
            c_prev = history.previous(cache["c"], cache["c0"], n_active, reverse, t, n, scratch)
        else:
            h_prev = history.previous(out, cache["h0"], n_active, reverse, t, n, scratch)
            c_prev = None
        da = dA[t - t0, :n]
        cell.step_back(k, cache, t, n, dh_n, dc[:n] if has_c else None, h_prev, c_prev,
                       out[t, :n], cache["c"][t, :n] if has_c else None, da,
                       da if dgh is None else dgh[:n])


def time_major_rows(x: np.ndarray, steps: int | None = None):
    """rnnkit.fast.steps.time_major_rows, its copies split over the threads where they run
    (rnnkit.fast.kernels.copy_steps)."""
    return _steps.time_major_rows(x, steps, copy=kernels.copy_steps)
