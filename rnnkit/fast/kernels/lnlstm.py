"""Fast layer-normalised LSTM time loops (float32), pinned to rnnkit.cells.lnlstm by tests.

The input projection of all steps is made before the loop (one product); a step is the
recurrent product (MKL or OpenBLAS called from the loop, as the plain LSTM's whole loop
does) and one compiled pass per row: both layer norms, the gates, the cell state's layer
norm and h_t (normalising each row of the projection here, where the loop reads it anyway,
costs no pass over memory of its own and no other meeting of the threads). The batch may be
split over the threads, a span of rows each (rows are independent in time).

Buffers (T, N, ...) of the cache: gates (the projection on entry; i, f, C~, o after the
step; dL/da in backward), x_hat and h_hat (the normalised projection and recurrent product;
in backward the gradients of those two products), rstd_x, rstd_h, c (C_t), c_hat, rstd_c,
tanh_c (tanh(LN(C_t)); scratch in backward). At inference the per-step ones (all but gates)
are one row, rewritten every step.
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast.kernels.fastmath import (HALF, ONE, OPTS, at, copy_row, flush, ftanh,
                                          local_threads, matmul_rows, njit, part, prange,
                                          previous_rows, span_rows)
from rnnkit.fast.kernels.lstm import cell_gate_grads
from rnnkit.fast.kernels.lnorm import normalise, normalise_back, normalise_groups


@njit(inline="always", **OPTS)
def _sigmoid(x):
    for j in range(x.shape[0]):
        x[j] = HALF * ftanh(HALF * x[j]) + HALF


@njit(inline="always", **OPTS)
def _forward_rows(a, rec, w, h_state, c_state, x_hat, rstd_x, h_hat, rstd_h, c, c_hat,
                  rstd_c, tanh_c, out, n):
    """w: rows gamma_xh, bias (b_xh + b_hh), gamma_hh, and (H wide) gamma_c, beta_c."""
    H = h_state.shape[1]
    gamma_x, bias, gamma_h = w[0], w[1], w[2]
    gamma_c, beta_c = w[3, :H], w[4, :H]
    for r in range(n):
        ar, xr, hr = a[r], x_hat[r], h_hat[r]
        normalise_groups(ar, xr, rstd_x[r])
        normalise_groups(rec[r], hr, rstd_h[r])
        for j in range(4 * H):                           # a = LN(W_xh x) + LN(W_hh h)
            ar[j] = gamma_x[j] * xr[j] + bias[j] + gamma_h[j] * hr[j]
        _sigmoid(ar[:2 * H])                             # i, f
        g = ar[2 * H:3 * H]
        for j in range(H):
            g[j] = ftanh(g[j])                           # C~
        _sigmoid(ar[3 * H:])                             # o
        cr, cpr, ig, fg = c[r], c_state[r], ar[:H], ar[H:2 * H]
        for j in range(H):
            cr[j] = fg[j] * cpr[j] + ig[j] * g[j]        # C = f C_prev + i C~
        ch, tr = c_hat[r], tanh_c[r]
        rstd_c[r, 0] = normalise(cr, ch)
        for j in range(H):
            tr[j] = ftanh(gamma_c[j] * ch[j] + beta_c[j])
        og, orow = ar[3 * H:], out[r]
        for j in range(H):
            orow[j] = og[j] * tr[j]                      # h = o tanh(LN(C))
        copy_row(c_state[r], cr)
        copy_row(h_state[r], orow)


@njit(**OPTS)
def _forward_span(gemm, Wh_T, w, h_state, c_state, n_active, reverse, gates, rec, x_hat,
                  rstd_x, h_hat, rstd_h, c, c_hat, rstd_c, tanh_c, out, r0, r1):
    T = out.shape[0]
    h, cs, g = h_state[r0:r1], c_state[r0:r1], rec[r0:r1]
    before = local_threads(gemm, 1)        # the product on this thread only
    for s in range(T):
        t = T - 1 - s if reverse else s
        n = span_rows(n_active[t], r0, r1)
        matmul_rows(gemm, g, h, Wh_T, n, False)
        _forward_rows(gates[t][r0:r1], g, w, h, cs, at(x_hat, t)[r0:r1],
                      at(rstd_x, t)[r0:r1], at(h_hat, t)[r0:r1], at(rstd_h, t)[r0:r1],
                      at(c, t)[r0:r1],
                      at(c_hat, t)[r0:r1], at(rstd_c, t)[r0:r1], at(tanh_c, t)[r0:r1],
                      out[t][r0:r1], n)
    local_threads(gemm, before)


@njit(**OPTS)
def forward_loop(parts, gemm, Wh_T, w, h_state, c_state, n_active, reverse, gates, rec, x_hat,
                 rstd_x, h_hat, rstd_h, c, c_hat, rstd_c, tanh_c, out):
    _forward_span(gemm, Wh_T, w, h_state, c_state, n_active, reverse, gates, rec, x_hat, rstd_x,
                  h_hat, rstd_h, c, c_hat, rstd_c, tanh_c, out, 0, h_state.shape[0])


@njit(parallel=True, **OPTS)
def forward_loop_parallel(parts, gemm, Wh_T, w, h_state, c_state, n_active, reverse, gates,
                          rec, x_hat, rstd_x, h_hat, rstd_h, c, c_hat, rstd_c, tanh_c, out):
    for k in prange(parts):
        r0, r1 = part(h_state.shape[0], k, parts)
        _forward_span(gemm, Wh_T, w, h_state, c_state, n_active, reverse, gates, rec, x_hat,
                      rstd_x, h_hat, rstd_h, c, c_hat, rstd_c, tanh_c, out, r0, r1)


@njit(inline="always", **OPTS)
def _backward_rows(acts, x_hat, rstd_x, h_hat, rstd_h, c_hat, rstd_c, tanh_c, c_prev, dh, dc,
                   w, acc, n):
    """In place: acts <- dL/da, x_hat <- dL/d(W_xh x_t), h_hat <- dL/d(W_hh h_{t-1}),
    dc <- dL/dC_{t-1}; acc (4H + 4H + 2H) += dL/dgamma_xh, dL/dgamma_hh, dL/dgamma_c,
    dL/dbeta_c of this step."""
    H = dh.shape[1]
    gamma_x, gamma_h, gamma_c = w[0], w[2], w[3, :H]
    agx, agh, agc, abc = acc[:4 * H], acc[4 * H:8 * H], acc[8 * H:9 * H], acc[9 * H:]
    for r in range(n):
        ar, tr, ch, dhr, dcr = acts[r], tanh_c[r], c_hat[r], dh[r], dc[r]
        og = ar[3 * H:]
        for j in range(H):
            o, tc, d = og[j], tr[j], dhr[j]
            dy = d * o * (ONE - tc * tc)                 # dL/d(gamma_c c_hat + beta_c)
            agc[j] += dy * ch[j]
            abc[j] += dy
            tr[j] = dy
            og[j] = flush(d * tc * o * (ONE - o))
        normalise_back(tr, gamma_c, ch, rstd_c[r])       # c_hat <- its share of dL/dC_t
        for j in range(H):
            dcr[j] += ch[j]
        cell_gate_grads(ar, c_prev[r], dcr, H)
        xr, hr = x_hat[r], h_hat[r]
        for j in range(4 * H):
            agx[j] += ar[j] * xr[j]
            agh[j] += ar[j] * hr[j]
        normalise_back(ar, gamma_x, xr, rstd_x[r])
        normalise_back(ar, gamma_h, hr, rstd_h[r])


@njit(**OPTS)
def _backward_span(gemm, dout, W_hh, w, dh, dc, n_active, reverse, gates, x_hat, rstd_x, h_hat,
                   rstd_h, c, c0, c_hat, rstd_c, tanh_c, acc, scratch, r0, r1):
    T = dout.shape[0]
    H = dh.shape[1]
    dh_, dc_ = dh[r0:r1], dc[r0:r1]
    before = local_threads(gemm, 1)
    for s in range(T):
        t = s if reverse else T - 1 - s
        n = span_rows(n_active[t], r0, r1)
        d = dout[t][r0:r1]
        for r in range(n):
            for j in range(H):
                dh_[r, j] += d[r, j]
        c_prev = previous_rows(c, c0, n_active, reverse, t, n, scratch, r0)
        _backward_rows(gates[t][r0:r1], x_hat[t][r0:r1], rstd_x[t][r0:r1], h_hat[t][r0:r1],
                       rstd_h[t][r0:r1], c_hat[t][r0:r1], rstd_c[t][r0:r1], tanh_c[t][r0:r1],
                       c_prev, dh_, dc_, w, acc, n)
        matmul_rows(gemm, dh_, h_hat[t][r0:r1], W_hh, n, False)     # dh_{t-1}
    local_threads(gemm, before)


@njit(**OPTS)
def backward_loop(parts, gemm, dout, W_hh, w, dh, dc, n_active, reverse, gates, x_hat, rstd_x,
                  h_hat, rstd_h, c, c0, c_hat, rstd_c, tanh_c, acc):
    _backward_span(gemm, dout, W_hh, w, dh, dc, n_active, reverse, gates, x_hat, rstd_x, h_hat,
                   rstd_h, c, c0, c_hat, rstd_c, tanh_c, acc[0], np.empty_like(c0), 0,
                   dh.shape[0])


@njit(parallel=True, **OPTS)
def backward_loop_parallel(parts, gemm, dout, W_hh, w, dh, dc, n_active, reverse, gates, x_hat,
                           rstd_x, h_hat, rstd_h, c, c0, c_hat, rstd_c, tanh_c, acc):
    scratch = np.empty_like(c0)
    for k in prange(parts):
        r0, r1 = part(dh.shape[0], k, parts)
        _backward_span(gemm, dout, W_hh, w, dh, dc, n_active, reverse, gates, x_hat, rstd_x,
                       h_hat, rstd_h, c, c0, c_hat, rstd_c, tanh_c, acc[k], scratch, r0, r1)
