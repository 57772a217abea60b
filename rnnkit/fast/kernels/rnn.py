"""Fast Elman RNN time loops (float32), pinned to rnnkit.fast.fused.rnn. Modes as in
rnnkit.fast.kernels.lstm.

Per step the reference is already three NumPy calls (product, add, tanh); the per-step mode
exists for the backward, whose compiled pass flushes vanishing gradients before they turn
subnormal (see fastmath.TINY; NumPy's backward slows down on them), and folds the bias and
the activation into one pass in the forward.
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast import blas
from rnnkit.fast.kernels import columns

from rnnkit.fast.kernels.fastmath import (ONE, OPTS, flush, ftanh, local_threads, loop_input,
                                     loop_weights, matmul_rows, njit, packed, part, prange,
                                     project_rows, span_rows)


@njit(**OPTS)
def forward_step(a, rec, b, h_state, relu):
    """a: the input projection on entry, h_t = f(a + rec + b) on exit, also into h_state;
    rec: h_{t-1} W_hh^T."""
    for r in range(a.shape[0]):
        ar, gr, hr = a[r], rec[r], h_state[r]
        for j in range(ar.shape[0]):
            v = ar[j] + gr[j] + b[j]
            v = (v if v > 0 else 0 * v) if relu else ftanh(v)
            ar[j] = v
            hr[j] = v


@njit(**OPTS)
def backward_step(h, dh, dgx, relu):
    """dgx = dh * f'(a), with f' read from h_t = f(a)."""
    for r in range(h.shape[0]):
        hr, dr, gr = h[r], dh[r], dgx[r]
        for j in range(hr.shape[0]):
            d, v = dr[j], hr[j]
            gr[j] = flush((d if v > 0 else 0 * d) if relu else d * (ONE - v * v))


@njit(**OPTS)
def _forward_span(gemm, b, Wh_T, h_state, n_active, reverse, relu, out, x, Wx_T, xgemm, r0, r1):
    """out: the input projection on entry (or x's, made here with Wx_T), h_t on exit; the
    batch rows [r0, r1) only."""
    T, _, H = out.shape
    h = h_state[r0:r1]
    before = local_threads(gemm, 1)        # MKL on this thread only
    for s in range(T):
        t = T - 1 - s if reverse else s
        n = span_rows(n_active[t], r0, r1)
        a = out[t][r0:r1]
        project_rows(a, x, t, r0, Wx_T, n, xgemm)
        for r in range(n):
            for j in range(H):
                a[r, j] += b[j]
        matmul_rows(gemm, a, h, Wh_T, n, True)
        for r in range(n):
            for j in range(H):
                v = a[r, j]
                v = (v if v > 0 else 0 * v) if relu else ftanh(v)
                a[r, j], h[r, j] = v, v
    local_threads(gemm, before)


@njit(**OPTS)
def forward_loop(gemm, b, Wh_T, h_state, n_active, reverse, relu, out, x, Wx_T, xgemm):
    _forward_span(gemm, b, Wh_T, h_state, n_active, reverse, relu, out, x, Wx_T, xgemm, 0,
                  h_state.shape[0])


@njit(parallel=True, **OPTS)
def forward_loop_parallel(parts, gemm, b, Wh_T, h_state, n_active, reverse, relu, out, x,
                          Wx_T, xgemm):
    """forward_loop with the batch split over the threads, each running the loop on its part."""
    for k in prange(parts):
        r0, r1 = part(h_state.shape[0], k, parts)
        _forward_span(gemm, b, Wh_T, h_state, n_active, reverse, relu, out, x, Wx_T, xgemm, r0,
                      r1)


@njit(**OPTS)
def _backward_span(gemm, dout, W_hh, dh, n_active, reverse, relu, out, dgx, r0, r1):
    T, _, H = out.shape
    dh_ = dh[r0:r1]
    before = local_threads(gemm, 1)        # MKL on this thread only
    for s in range(T):
        t = s if reverse else T - 1 - s
        n = span_rows(n_active[t], r0, r1)
        o, d_out, g = out[t][r0:r1], dout[t][r0:r1], dgx[t][r0:r1]
        for r in range(n):
            for j in range(H):
                h = o[r, j]
                d = dh_[r, j] + d_out[r, j]
                g[r, j] = flush((d if h > 0 else 0 * d) if relu else d * (ONE - h * h))
        matmul_rows(gemm, dh_, g, W_hh, n, False)
    local_threads(gemm, before)


@njit(**OPTS)
def backward_loop(gemm, dout, W_hh, dh, n_active, reverse, relu, out, dgx):
    _backward_span(gemm, dout, W_hh, dh, n_active, reverse, relu, out, dgx, 0, dh.shape[0])


@njit(parallel=True, **OPTS)
def backward_loop_parallel(parts, gemm, dout, W_hh, dh, n_active, reverse, relu, out, dgx):
    for k in prange(parts):
        r0, r1 = part(dh.shape[0], k, parts)
        _backward_span(gemm, dout, W_hh, dh, n_active, reverse, relu, out, dgx, r0, r1)


class ElmanKernel:
    grads_in_gates = False          # (its cache has no gates: the outputs are all it keeps)
    adds_bias = True                # forward adds k["bx"] to the projection itself
    projects_input = False          # at inference the whole loop projects x (kernels.select)
    input_gemm = 0                  # its product: the loop's own (0) or MKL's (kernels.select)
    by_units = None                 # inference: the OpenBLAS of a loop split by units
    units_in_loop = False           # ... which then projects each step's input itself
    shared_threads = False          # its MKL products on all of MKL's threads (kernels.select)

    def __init__(self, whole_loop: bool, relu: bool, gemm: int = 0, parts: int = 1):
        self.whole_loop, self.relu, self.gemm = whole_loop, relu, gemm   # see kernels.select
        self.parts = parts          # the whole loop's batch split over this many threads
        self.packed = None          # W_hh for backward's products, packed once for all its
                                    # chunks: blas.loop_product's, or a blas.Packed per step
        self.parallel = False       # set by the scan; unused: one tanh pass a step is too
                                    # little work to split

    def forward(self, k, cache, gx, h, c, n_active, reverse, out, x=None):
        # gx is out: the scan projects the input into the output buffer (or the loop does,
        # from x, with projects_input)
        if self.by_units is not None:                 # (kernels.select)
            kind = columns.RNN_RELU if self.relu else columns.RNN_TANH
            columns.run(kind, self.by_units, k, x, h, None, n_active, reverse, out,
                        self.units_in_loop)
            return
        if self.whole_loop:
            product, keep = loop_weights(k, "Wh_T", h.shape[0], self.gemm, self.parts,
                                          accumulate=True, shared=self.shared_threads)
            x_input, keep_x = loop_input(x, k, h.shape[0], self.input_gemm, self.parts)
            args = (product, k["bx"], k["Wh_T"], h, n_active, reverse, self.relu, out,
                    *x_input)
            if self.parts > 1:
                forward_loop_parallel(self.parts, *args)
            else:
                forward_loop(*args)
            return
        rec = np.empty_like(h)
        Wh_T = packed(k, "Wh_T", h.shape[0])
        for t in (range(out.shape[0] - 1, -1, -1) if reverse else range(out.shape[0])):
            n = n_active[t]
            Wh_T.matmul(h[:n], rec[:n])
            forward_step(out[t, :n], rec[:n], k["bx"], h[:n], self.relu)

    def backward(self, k, cache, dout, dh, dc, dgx, dgh, n_active, reverse, t0, t1):
        """Steps [t0, t1) only, dL/da of step t into dgx[t - t0] (the scan's chunks)."""
        out = cache["out"]
        if self.whole_loop:         # the loop sees the steps of the chunk as its whole run
            if self.packed is None:
                self.packed = blas.loop_product(k["W_hh"], dh.shape[0], self.gemm,
                                                parts=self.parts)
            args = (self.packed[0], dout[t0:t1], k["W_hh"], dh, n_active[t0:t1], reverse, self.relu,
                    out[t0:t1], dgx)
            if self.parts > 1:
                backward_loop_parallel(self.parts, *args)
            else:
                backward_loop(*args)
            return
        if self.packed is None:
            self.packed = blas.Packed(k["W_hh"], dh.shape[0])
        for t in (range(t0, t1) if reverse else range(t1 - 1, t0 - 1, -1)):
            n = n_active[t]
            dh_n = dh[:n]
            dh_n += dout[t, :n]
            backward_step(out[t, :n], dh_n, dgx[t - t0, :n], self.relu)
            self.packed.matmul(dgx[t - t0, :n], dh_n)
