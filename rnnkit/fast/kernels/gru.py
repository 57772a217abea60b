"""Fast GRU time loops (float32, reset after the recurrent product), pinned to the reference
rnnkit.cells.gru by tests; weights laid out by rnnkit.fast.fused.gru.

Same cache as the reference: gates hold r, z, h~ after activation; hn = W_hh h_{t-1} + b_hh
of the candidate; h_{t-1} is read from the outputs (see rnnkit.fast.fused.history). Modes as in
rnnkit.fast.kernels.lstm.
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast import blas
from rnnkit.fast.fused import history
from rnnkit.fast.kernels import columns
from rnnkit.fast.kernels.base import LoopKernel
from rnnkit.fast.kernels.fastmath import (ONE, OPTS, at, copy_row, flush, fsigmoid_half, ftanh,
                                     local_threads, loop_input, loop_weights,
                                     matmul_rows, njit, one_or_all, packed, part, prange,
                                     previous_rows, project_rows, span_rows)


@njit(inline="always", **OPTS)
def _forward_rows(gh, bx, b_hn, h_state, acts, hn, out, n):
    """acts: input projection on entry, activations r, z, h~ on exit; gh: h_{t-1} W_hh^T;
    bx: the input-side biases (added here, not in a pass of their own over the projection)."""
    # each loop over one sub-view per gate, from index 0: indexing one row at offsets
    # (ar[2 * H + j] next to ar[j]) is not vectorised as well (docs/performance.md, section 2)
    H = h_state.shape[1]
    for r in range(n):
        ar, ghr, hnr, hs, orow = acts[r], gh[r], hn[r], h_state[r], out[r]
        rz, g_rz, b_rz, b_n = ar[:2 * H], ghr[:2 * H], bx[:2 * H], bx[2 * H:]
        for j in range(2 * H):                                       # r, z
            rz[j] = fsigmoid_half(rz[j] + g_rz[j] + b_rz[j])
        rg, z, cand, g_n = ar[:H], ar[H:2 * H], ar[2 * H:], ghr[2 * H:]
        for j in range(H):
            hnr[j] = g_n[j] + b_hn[j]
        for j in range(H):                                           # h~ = tanh(.. + r (W h + b))
            cand[j] = ftanh(cand[j] + b_n[j] + rg[j] * hnr[j])
        for j in range(H):                                           # h = h + z (h~ - h)
            orow[j] = hs[j] + z[j] * (cand[j] - hs[j])
        copy_row(hs, orow)


@njit(**OPTS)
def forward_step(gh, bx, b_hn, h_state, acts, hn, out):
    _forward_rows(gh, bx, b_hn, h_state, acts, hn, out, gh.shape[0])


@njit(parallel=True, **OPTS)
def forward_step_parallel(parts, gh, bx, b_hn, h_state, acts, hn, out):
    """forward_step with the rows split over the OpenMP threads (see rnnkit.fast.kernels)."""
    for k in prange(parts):
        r0, r1 = part(gh.shape[0], k, parts)
        _forward_rows(gh[r0:r1], bx, b_hn, h_state[r0:r1], acts[r0:r1], hn[r0:r1], out[r0:r1],
                      r1 - r0)


@njit(**OPTS)
def _forward_span(gemm, Wh_T, bx, b_hn, h_state, n_active, reverse, gh, gates, hn, out, x,
                  Wx_T, xgemm, r0, r1):
    """The whole forward loop for the batch rows [r0, r1) (rows are independent in time);
    gates: the input projection, or its buffer, when the loop makes it (x, Wx_T, xgemm)."""
    T = out.shape[0]
    h, g = h_state[r0:r1], gh[r0:r1]
    before = local_threads(gemm, 1)        # MKL on this thread only
    for s in range(T):
        t = T - 1 - s if reverse else s
        n = span_rows(n_active[t], r0, r1)
        a = at(gates, t)[r0:r1]
        project_rows(a, x, t, r0, Wx_T, n, xgemm)
        matmul_rows(gemm, g, h, Wh_T, n, False)
        _forward_rows(g, bx, b_hn, h, a, at(hn, t)[r0:r1], out[t][r0:r1], n)
    local_threads(gemm, before)


@njit(**OPTS)
def forward_loop(gemm, Wh_T, bx, b_hn, h_state, n_active, reverse, gh, gates, hn, out, x, Wx_T,
                 xgemm):
    _forward_span(gemm, Wh_T, bx, b_hn, h_state, n_active, reverse, gh, gates, hn, out, x, Wx_T,
                  xgemm, 0, h_state.shape[0])


@njit(parallel=True, **OPTS)
def forward_loop_parallel(parts, gemm, Wh_T, bx, b_hn, h_state, n_active, reverse, gh, gates,
                          hn, out, x, Wx_T, xgemm):
    """forward_loop with the batch split over the threads, each running the loop on its part."""
    for k in prange(parts):
        r0, r1 = part(h_state.shape[0], k, parts)
        _forward_span(gemm, Wh_T, bx, b_hn, h_state, n_active, reverse, gh, gates, hn, out, x,
                      Wx_T, xgemm, r0, r1)


@njit(inline="always", **OPTS)
def _backward_rows(acts, hn, h_prev, dh, dgh, n):
    """In place: acts (r, z, h~) <- dL/d(their pre-activations); hn <- dL/d(W_hn h + b_hn)
    (= dL/da_n * r); dgh <- both side by side, for the product with W_hh; dh <- its direct
    path dh * (1 - z). Each element is read before it is overwritten."""
    H = dh.shape[1]
    for r in range(n):
        ar, hnr, hpr, dhr, dhh = acts[r], hn[r], h_prev[r], dh[r], dgh[r]
        rg, z, cand = ar[:H], ar[H:2 * H], ar[2 * H:]
        for j in range(H):
            d = dhr[j]
            zj, cj = z[j], cand[j]
            cand[j] = flush(d * zj * (ONE - cj * cj))
            z[j] = flush(d * (cj - hpr[j]) * zj * (ONE - zj))
            dhr[j] = flush(d * (ONE - zj))
        for j in range(H):
            rj, d_n = rg[j], cand[j]
            rg[j] = flush(d_n * hnr[j] * rj * (ONE - rj))
            hnr[j] = flush(d_n * rj)
        copy_row(dhh[:2 * H], ar[:2 * H])
        copy_row(dhh[2 * H:], hnr)


@njit(**OPTS)
def backward_step(acts, hn, h_prev, dh, dgh):
    _backward_rows(acts, hn, h_prev, dh, dgh, dh.shape[0])


@njit(parallel=True, **OPTS)
def backward_step_parallel(parts, acts, hn, h_prev, dh, dgh):
    for k in prange(parts):
        r0, r1 = part(dh.shape[0], k, parts)
        _backward_rows(acts[r0:r1], hn[r0:r1], h_prev[r0:r1], dh[r0:r1], dgh[r0:r1], r1 - r0)


@njit(**OPTS)
def _backward_span(gemm, dout, W_hh, dh, n_active, reverse, gates, hn, out, h0, dgh, scratch,
                   r0, r1):
    T = dout.shape[0]
    H = dh.shape[1]
    dh_, dgh_ = dh[r0:r1], dgh[r0:r1]
    before = local_threads(gemm, 1)        # MKL on this thread only
    for s in range(T):
        t = s if reverse else T - 1 - s
        n = span_rows(n_active[t], r0, r1)
        d = dout[t][r0:r1]
        for r in range(n):
            for j in range(H):
                dh_[r, j] += d[r, j]
        h_prev = previous_rows(out, h0, n_active, reverse, t, n, scratch, r0)
        _backward_rows(gates[t][r0:r1], hn[t][r0:r1], h_prev, dh_, dgh_, n)
        matmul_rows(gemm, dh_, dgh_, W_hh, n, True)
    local_threads(gemm, before)


@njit(**OPTS)
def backward_loop(gemm, dout, W_hh, dh, n_active, reverse, gates, hn, out, h0, dgh):
    _backward_span(gemm, dout, W_hh, dh, n_active, reverse, gates, hn, out, h0, dgh,
                   np.empty_like(h0), 0, dh.shape[0])


@njit(parallel=True, **OPTS)
def backward_loop_parallel(parts, gemm, dout, W_hh, dh, n_active, reverse, gates, hn, out, h0,
                           dgh):
    scratch = np.empty_like(h0)
    for k in prange(parts):
        r0, r1 = part(dh.shape[0], k, parts)
        _backward_span(gemm, dout, W_hh, dh, n_active, reverse, gates, hn, out, h0, dgh,
                       scratch, r0, r1)


class GRUKernel(LoopKernel):
    units_kind = columns.GRU

    def forward_whole(self, k, g, h, c, n_active, reverse, out, x):
        product, keep = loop_weights(k, "Wh_T", h.shape[0], self.gemm, self.parts,
                                     shared=self.shared_threads)
        x_input, keep_x = loop_input(x, k, h.shape[0], self.input_gemm, self.parts)
        self.run(forward_loop, forward_loop_parallel,
                 (product, k["Wh_T"], k["bx"], k["b_hn"], h, n_active, reverse, g["gh"],
                  one_or_all(g["gates"]), one_or_all(g["hn"]), out, *x_input))

    def forward_steps(self, k, g, gx, h, c, n_active, reverse, out):
        step = self.step_kernel(forward_step, forward_step_parallel)
        Wh_T = packed(k, "Wh_T", h.shape[0])
        for t in self.steps(gx.shape[0], reverse):
            n = n_active[t]
            gh = g["gh"][:n]
            Wh_T.matmul(h[:n], gh)
            step(gh, k["bx"], k["b_hn"], h[:n], g["gates"][t, :n], g["hn"][t, :n],
                 out[t, :n])

    def backward(self, k, g, dout, dh, dc, dgx, dgh, n_active, reverse):
        # dgx is g["gates"]
        if self.whole_loop:
            product, keep = blas.loop_product(k["W_hh"], dh.shape[0], self.gemm,
                                              accumulate=True, parts=self.parts)
            self.run(backward_loop, backward_loop_parallel,
                     (product, dout, k["W_hh"], dh, n_active, reverse, g["gates"], g["hn"],
                      g["out"], g["h0"], dgh))
            return
        scratch = np.empty_like(dh)
        step = self.step_kernel(backward_step, backward_step_parallel)
        W_hh = blas.Packed(k["W_hh"], dh.shape[0])
        for t in self.steps(dout.shape[0], reverse, backward=True):
            n = n_active[t]
            dh_n = dh[:n]
            dh_n += dout[t, :n]
            h_prev = history.previous(g["out"], g["h0"], n_active, reverse, t, n, scratch)
            step(g["gates"][t, :n], g["hn"][t, :n], h_prev, dh_n, dgh[:n])
            W_hh.matmul(dgh[:n], dh_n, accumulate=True)     # dh: its direct path on entry
