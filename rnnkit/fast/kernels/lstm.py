"""Fast LSTM time loops (float32), pinned to rnnkit.fast.fused.lstm by tests.

Same cache as the reference (gates hold i, f, C~, o after activation; tanh_c; c), so the
weight-gradient products after the loop are shared; C_{t-1} is read from c (see
rnnkit.fast.fused.history). Two modes:
- per step: the recurrent product by NumPy's BLAS, then ONE compiled pass for all the gate
  arithmetic (the reference makes ~15 NumPy passes and as many Python calls);
- whole loop: the time loop itself compiled with the product written out, for small
  batches where a BLAS call and the Python around it cost more than the arithmetic.
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast import blas
from rnnkit.fast.fused import history
from rnnkit.fast.kernels import columns
from rnnkit.fast.kernels.base import LoopKernel
from rnnkit.fast.kernels.fastmath import (HALF, ONE, OPTS, at, copy_row, flush, ftanh,
                                     local_threads, loop_input, loop_weights,
                                     matmul_rows, njit, one_or_all, packed, part, prange,
                                     previous_rows, project_rows, repeats, sigmoid_half_add,
                                     span_rows, tanh_add, tanh_parts)


@njit(inline="always", **OPTS)
def _forward_rows(a, rec, b, h_state, c_state, c, tanh_c, out, n):
    """a: input projection on entry, activations i, f, C~, o on exit; rec: h_{t-1} W_hh^T;
    b: the biases (added here, not in a pass of their own over the projection)."""
    # short loops over few arrays each: LLVM vectorises those (one long loop over nine
    # arrays defeats its alias checks and runs scalar)
    H = h_state.shape[1]
    for r in range(n):
        ar, gr = a[r], rec[r]
        sigmoid_half_add(ar[:2 * H], gr[:2 * H], b[:2 * H])          # i, f
        tanh_add(ar[2 * H:3 * H], gr[2 * H:3 * H], b[2 * H:3 * H])   # C~
        sigmoid_half_add(ar[3 * H:], gr[3 * H:], b[3 * H:])          # o
        cr, cpr, tr, orow = c[r], c_state[r], tanh_c[r], out[r]
        for j in range(H):
            cr[j] = ar[H + j] * cpr[j] + ar[j] * ar[2 * H + j]       # C = f C_prev + i C~
        for j in range(H):
            tr[j] = ftanh(cr[j])
        for j in range(H):
            orow[j] = ar[3 * H + j] * tr[j]                          # h = o tanh(C)
        copy_row(c_state[r], cr)
        copy_row(h_state[r], orow)


@njit(inline="always", **OPTS)
def _infer_rows(a, rec, b, h_state, c_state, out, n):
    """_forward_rows for inference, which keeps only the states: with no activation to store,
    each unit's sigmoids and tanhs share their divisions (tanh_parts; sigma(2a) = (q + n) / 2q
    for tanh(a) = n / q), C = f C_prev + i C~ over one and h = o tanh(C) over another: 2
    divisions a unit instead of 5, in two passes instead of seven (docs/performance.md,
    section 2)."""
    H = h_state.shape[1]
    bi, bf, bg, bo = b[:H], b[H:2 * H], b[2 * H:3 * H], b[3 * H:]
    for r in range(n):
        ar, gr, cr, orow = a[r], rec[r], c_state[r], out[r]
        ai, af, ag, ao = ar[:H], ar[H:2 * H], ar[2 * H:3 * H], ar[3 * H:]
        gi, gf, gg, go = gr[:H], gr[H:2 * H], gr[2 * H:3 * H], gr[3 * H:]
        for j in range(H):
            ni, qi = tanh_parts(ai[j] + gi[j] + bi[j])
            nf, qf = tanh_parts(af[j] + gf[j] + bf[j])
            ng, qg = tanh_parts(ag[j] + gg[j] + bg[j])
            s = HALF / (qi * qf * qg)                    # every q > 0.005: no underflow
            cr[j] = (qf + nf) * qi * qg * s * cr[j] + (qi + ni) * ng * qf * s
        for j in range(H):
            no, qo = tanh_parts(ao[j] + go[j] + bo[j])
            nc, qc = tanh_parts(cr[j])
            orow[j] = HALF * (qo + no) * nc / (qo * qc)
        copy_row(h_state[r], orow)


@njit(inline="always", **OPTS)
def _step_rows(train, a, rec, b, h_state, c_state, c, tanh_c, out, n):
    """One step's gate arithmetic; train: keep the activations for backward, else only the
    states (inference)."""
    if train:
        _forward_rows(a, rec, b, h_state, c_state, c, tanh_c, out, n)
    else:
        _infer_rows(a, rec, b, h_state, c_state, out, n)


@njit(**OPTS)
def forward_step(train, a, rec, b, h_state, c_state, c, tanh_c, out):
    _step_rows(train, a, rec, b, h_state, c_state, c, tanh_c, out, a.shape[0])


@njit(parallel=True, **OPTS)
def forward_step_parallel(parts, train, a, rec, b, h_state, c_state, c, tanh_c, out):
    """forward_step with the rows split over the OpenMP threads (see rnnkit.fast.kernels)."""
    for k in prange(parts):
        r0, r1 = part(a.shape[0], k, parts)
        _step_rows(train, a[r0:r1], rec[r0:r1], b, h_state[r0:r1], c_state[r0:r1], c[r0:r1],
                   tanh_c[r0:r1], out[r0:r1], r1 - r0)


@njit(**OPTS)
def _forward_span(train, gemm, Wh_T, b, h_state, c_state, n_active, reverse, gates, rec, out,
                  c, tanh_c, x, Wx_T, xgemm, r0, r1):
    """The whole forward loop for the batch rows [r0, r1) (rows are independent in time);
    gates: the input projection, or its buffer, when the loop makes it (x, Wx_T, xgemm);
    train: keep the activations for backward, else only the states (inference)."""
    T = out.shape[0]
    h, cs, g = h_state[r0:r1], c_state[r0:r1], rec[r0:r1]
    before = local_threads(gemm, 1)        # MKL on this thread only
    for s in range(T):
        t = T - 1 - s if reverse else s
        n = span_rows(n_active[t], r0, r1)
        a = at(gates, t)[r0:r1]
        project_rows(a, x, t, r0, Wx_T, n, xgemm)
        matmul_rows(gemm, g, h, Wh_T, n, False)
        _step_rows(train, a, g, b, h, cs, at(c, t)[r0:r1], at(tanh_c, t)[r0:r1], out[t][r0:r1],
                   n)
    local_threads(gemm, before)


@njit(**OPTS)
def forward_loop(train, gemm, Wh_T, b, h_state, c_state, n_active, reverse, gates, rec, out,
                 c, tanh_c, x, Wx_T, xgemm):
    _forward_span(train, gemm, Wh_T, b, h_state, c_state, n_active, reverse, gates, rec, out,
                  c, tanh_c, x, Wx_T, xgemm, 0, h_state.shape[0])


@njit(parallel=True, **OPTS)
def forward_loop_parallel(parts, train, gemm, Wh_T, b, h_state, c_state, n_active, reverse,
                          gates, rec, out, c, tanh_c, x, Wx_T, xgemm):
    """forward_loop with the batch split over the threads, each running the loop on its part."""
    for k in prange(parts):
        r0, r1 = part(h_state.shape[0], k, parts)
        _forward_span(train, gemm, Wh_T, b, h_state, c_state, n_active, reverse, gates, rec,
                      out, c, tanh_c, x, Wx_T, xgemm, r0, r1)


@njit(inline="always", **OPTS)
def cell_gate_grads(ar, cpr, dcr, H):
    """In place, one row (the LSTM's and LN-LSTM's kernels): the i, f, C~ slots of ar <-
    dL/d(their pre-activations) from dcr = dL/dC_t, which becomes dL/dC_{t-1}."""
    ig, fg, gg = ar[:H], ar[H:2 * H], ar[2 * H:3 * H]
    for j in range(H):
        i, g, dct = ig[j], gg[j], dcr[j]
        ig[j] = flush(dct * g * i * (ONE - i))
        gg[j] = flush(dct * i * (ONE - g * g))
    for j in range(H):
        f, dct = fg[j], dcr[j]
        fg[j] = flush(dct * cpr[j] * f * (ONE - f))
        dcr[j] = flush(dct * f)


@njit(inline="always", **OPTS)
def _backward_rows(acts, tanh_c, c_prev, dh, dc, n):
    """In place: acts (i, f, C~, o) <- dL/d(their pre-activations); dc <- dL/dC_{t-1}.

    Each element is read before it is overwritten, in the loop that writes it (the gradient
    taking the activation's place saves a (T, N, 4H) buffer)."""
    # one sub-view per gate and at most ~5 arrays a loop: faster than indexing the row at
    # offsets (ar[3 * H + j]) in two loops (docs/performance.md, section 2)
    H = dh.shape[1]
    for r in range(n):
        ar, tr, dhr, dcr, cpr = acts[r], tanh_c[r], dh[r], dc[r], c_prev[r]
        og = ar[3 * H:]
        for j in range(H):                                           # dC_t and d(o)
            o, tc, d = og[j], tr[j], dhr[j]
            dcr[j] += d * o * (ONE - tc * tc)
            og[j] = flush(d * tc * o * (ONE - o))
        cell_gate_grads(ar, cpr, dcr, H)


@njit(**OPTS)
def backward_step(acts, tanh_c, c_prev, dh, dc):
    _backward_rows(acts, tanh_c, c_prev, dh, dc, dh.shape[0])


@njit(parallel=True, **OPTS)
def backward_step_parallel(parts, acts, tanh_c, c_prev, dh, dc):
    for k in prange(parts):
        r0, r1 = part(dh.shape[0], k, parts)
        _backward_rows(acts[r0:r1], tanh_c[r0:r1], c_prev[r0:r1], dh[r0:r1], dc[r0:r1], r1 - r0)


@njit(**OPTS)
def _backward_span(gemm, dout, W_hh, dh, dc, n_active, reverse, gates, tanh_c, c, c0, scratch,
                   r0, r1):
    T = dout.shape[0]
    H = dh.shape[1]
    dh_, dc_ = dh[r0:r1], dc[r0:r1]
    before = local_threads(gemm, 1)        # MKL on this thread only
    for s in range(T):
        t = s if reverse else T - 1 - s
        n = span_rows(n_active[t], r0, r1)
        d = dout[t][r0:r1]
        for r in range(n):
            for j in range(H):
                dh_[r, j] += d[r, j]
        c_prev = previous_rows(c, c0, n_active, reverse, t, n, scratch, r0)
        _backward_rows(gates[t][r0:r1], tanh_c[t][r0:r1], c_prev, dh_, dc_, n)
        matmul_rows(gemm, dh_, gates[t][r0:r1], W_hh, n, False)
    local_threads(gemm, before)


@njit(**OPTS)
def backward_loop(gemm, dout, W_hh, dh, dc, n_active, reverse, gates, tanh_c, c, c0):
    _backward_span(gemm, dout, W_hh, dh, dc, n_active, reverse, gates, tanh_c, c, c0,
                   np.empty_like(c0), 0, dh.shape[0])


@njit(parallel=True, **OPTS)
def backward_loop_parallel(parts, gemm, dout, W_hh, dh, dc, n_active, reverse, gates, tanh_c,
                           c, c0):
    scratch = np.empty_like(c0)
    for k in prange(parts):
        r0, r1 = part(dh.shape[0], k, parts)
        _backward_span(gemm, dout, W_hh, dh, dc, n_active, reverse, gates, tanh_c, c, c0,
                       scratch, r0, r1)


class LSTMKernel(LoopKernel):
    units_kind = columns.LSTM

    def forward_whole(self, k, g, h, c, n_active, reverse, out, x):
        product, keep = loop_weights(k, "Wh_T", h.shape[0], self.gemm, self.parts,
                                     shared=self.shared_threads)
        x_input, keep_x = loop_input(x, k, h.shape[0], self.input_gemm, self.parts)
        self.run(forward_loop, forward_loop_parallel,
                 (not repeats(g["c"]), product, k["Wh_T"], k["bx"], h, c, n_active, reverse,
                  one_or_all(g["gates"]), g["rec"], out, one_or_all(g["c"]),
                  one_or_all(g["tanh_c"]), *x_input))

    def forward_steps(self, k, g, gx, h, c, n_active, reverse, out):
        step = self.step_kernel(forward_step, forward_step_parallel)
        train = not repeats(g["c"])         # inference keeps no activations
        Wh_T = packed(k, "Wh_T", h.shape[0])
        for t in self.steps(gx.shape[0], reverse):
            n = n_active[t]
            rec = g["rec"][:n]
            Wh_T.matmul(h[:n], rec)
            step(train, g["gates"][t, :n], rec, k["bx"], h[:n], c[:n], g["c"][t, :n],
                 g["tanh_c"][t, :n], out[t, :n])

    def backward(self, k, g, dout, dh, dc, dgx, dgh, n_active, reverse):
        # dgx is g["gates"]
        if self.whole_loop:
            product, keep = blas.loop_product(k["W_hh"], dh.shape[0], self.gemm, parts=self.parts)
            self.run(backward_loop, backward_loop_parallel,
                     (product, dout, k["W_hh"], dh, dc, n_active, reverse, g["gates"],
                      g["tanh_c"], g["c"], g["c0"]))
            return
        scratch = np.empty_like(dh)
        step = self.step_kernel(backward_step, backward_step_parallel)
        W_hh = blas.Packed(k["W_hh"], dh.shape[0])
        for t in self.steps(dout.shape[0], reverse, backward=True):
            n = n_active[t]
            dh_n = dh[:n]
            dh_n += dout[t, :n]
            c_prev = history.previous(g["c"], g["c0"], n_active, reverse, t, n, scratch)
            step(g["gates"][t, :n], g["tanh_c"][t, :n], c_prev, dh_n, dc[:n])
            W_hh.matmul(dgx[t, :n], dh_n)
