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
from rnnkit.fast.kernels.base import LoopKernel

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


class ElmanKernel(LoopKernel):
    grads_in_gates = False          # (its cache has no gates: the outputs are all it keeps)

    def __init__(self, whole_loop: bool, relu: bool, gemm: int = 0, parts: int = 1):
        super().__init__(whole_loop, gemm, parts)
        self.relu = relu
        self.units_kind = columns.RNN_RELU if relu else columns.RNN_TANH
        self.packed = None          # W_hh for backward's products, packed once for all its
        #                             chunks: blas.loop_product's, or a blas.Packed per step
        # (``parallel`` stays unused: one tanh pass a step is too little work to split)

    # gx is out: the scan projects the input into the output buffer (or the loop does, from
    # x, with projects_input)
    def forward_whole(self, k, cache, h, c, n_active, reverse, out, x):
        product, keep = loop_weights(k, "Wh_T", h.shape[0], self.gemm, self.parts,
                                     accumulate=True, shared=self.shared_threads)
        x_input, keep_x = loop_input(x, k, h.shape[0], self.input_gemm, self.parts)
        self.run(forward_loop, forward_loop_parallel,
                 (product, k["bx"], k["Wh_T"], h, n_active, reverse, self.relu, out, *x_input))

    def forward_steps(self, k, cache, gx, h, c, n_active, reverse, out):
        rec = np.empty_like(h)
        Wh_T = packed(k, "Wh_T", h.shape[0])
        for t in self.steps(out.shape[0], reverse):
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
            self.run(backward_loop, backward_loop_parallel,
                     (self.packed[0], dout[t0:t1], k["W_hh"], dh, n_active[t0:t1], reverse,
                      self.relu, out[t0:t1], dgx))
            return
        if self.packed is None:
            self.packed = blas.Packed(k["W_hh"], dh.shape[0])
        for t in self.steps(t1 - t0, reverse, backward=True, t0=t0):
            n = n_active[t]
            dh_n = dh[:n]
            dh_n += dout[t, :n]
            backward_step(out[t, :n], dh_n, dgx[t - t0, :n], self.relu)
            self.packed.matmul(dgx[t - t0, :n], dh_n)
