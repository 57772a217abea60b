"""Fast layer-normalised GRU time loops (float32), pinned to rnnkit.cells.lngru by tests.

As rnnkit.fast.kernels.lnlstm: the input projection of all steps is one product before the
loop, and a step is the recurrent product called from the loop and one compiled pass per row
(both layer norms, the gates, h_t). Buffers (T, N, ...): gates (the projection on entry; r,
z, h~ after the step; dL/da_x in backward), x_hat and h_hat (the normalised products; their
products' gradients in backward), rstd_x, rstd_h, hn (a_h's candidate part, gamma_hh h_hat +
b_hh, which r_t multiplies).
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast.kernels.fastmath import (HALF, ONE, OPTS, at, copy_row, flush, ftanh,
                                          local_threads, matmul_rows, njit, part, prange,
                                          previous_rows, span_rows)
from rnnkit.fast.kernels.lnorm import normalise_back, normalise_groups


@njit(inline="always", **OPTS)
def _forward_rows(a, rec, w, h_state, x_hat, rstd_x, h_hat, rstd_h, hn, out, n):
    """w: rows gamma_xh, b_xh, gamma_hh, b_hh."""
    H = h_state.shape[1]
    gamma_x, b_xh, gamma_h, b_hh = w[0], w[1], w[2], w[3]
    for r in range(n):
        ar, xr, hr = a[r], x_hat[r], h_hat[r]
        normalise_groups(ar, xr, rstd_x[r])
        normalise_groups(rec[r], hr, rstd_h[r])
        for j in range(3 * H):                               # a_x
            ar[j] = gamma_x[j] * xr[j] + b_xh[j]
        for j in range(2 * H):                               # r, z
            ar[j] = HALF * ftanh(HALF * (ar[j] + gamma_h[j] * hr[j] + b_hh[j])) + HALF
        hnr, gn, bn, hc = hn[r], gamma_h[2 * H:], b_hh[2 * H:], hr[2 * H:]
        for j in range(H):
            hnr[j] = gn[j] * hc[j] + bn[j]
        rg, zg, ng = ar[:H], ar[H:2 * H], ar[2 * H:]
        for j in range(H):
            ng[j] = ftanh(ng[j] + rg[j] * hnr[j])            # h~
        hp, orow = h_state[r], out[r]
        for j in range(H):
            orow[j] = hp[j] + zg[j] * (ng[j] - hp[j])        # (1 - z) h_prev + z h~
        copy_row(h_state[r], orow)


@njit(**OPTS)
def _forward_span(gemm, Wh_T, w, h_state, n_active, reverse, gates, rec, x_hat, rstd_x, h_hat,
                  rstd_h, hn, out, r0, r1):
    T = out.shape[0]
    h, g = h_state[r0:r1], rec[r0:r1]
    before = local_threads(gemm, 1)
    for s in range(T):
        t = T - 1 - s if reverse else s
        n = span_rows(n_active[t], r0, r1)
        matmul_rows(gemm, g, h, Wh_T, n, False)
        _forward_rows(gates[t][r0:r1], g, w, h, at(x_hat, t)[r0:r1], at(rstd_x, t)[r0:r1],
                      at(h_hat, t)[r0:r1], at(rstd_h, t)[r0:r1], at(hn, t)[r0:r1],
                      out[t][r0:r1], n)
    local_threads(gemm, before)


@njit(**OPTS)
def forward_loop(parts, gemm, Wh_T, w, h_state, n_active, reverse, gates, rec, x_hat, rstd_x,
                 h_hat, rstd_h, hn, out):
    _forward_span(gemm, Wh_T, w, h_state, n_active, reverse, gates, rec, x_hat, rstd_x, h_hat,
                  rstd_h, hn, out, 0, h_state.shape[0])


@njit(parallel=True, **OPTS)
def forward_loop_parallel(parts, gemm, Wh_T, w, h_state, n_active, reverse, gates, rec, x_hat,
                          rstd_x, h_hat, rstd_h, hn, out):
    for k in prange(parts):
        r0, r1 = part(h_state.shape[0], k, parts)
        _forward_span(gemm, Wh_T, w, h_state, n_active, reverse, gates, rec, x_hat, rstd_x,
                      h_hat, rstd_h, hn, out, r0, r1)


@njit(inline="always", **OPTS)
def _backward_rows(acts, x_hat, rstd_x, h_hat, rstd_h, hn, h_prev, dh, dah, w, acc, n):
    """In place: acts <- dL/da_x, x_hat <- dL/d(W_xh x_t), h_hat <- dL/d(W_hh h_{t-1}),
    dh <- its direct share of dL/dh_{t-1}, (1 - z) dh; acc (3 x 3H) += this step's
    dL/dgamma_xh, dL/dgamma_hh, dL/db_hh."""
    H = dh.shape[1]
    gamma_x, gamma_h = w[0], w[2]
    agx, agh, abh = acc[:3 * H], acc[3 * H:6 * H], acc[6 * H:]
    for r in range(n):
        ar, hnr, hpr, dhr, dr = acts[r], hn[r], h_prev[r], dh[r], dah[r]
        rg, zg, ng, dn = ar[:H], ar[H:2 * H], ar[2 * H:], dr[2 * H:]
        for j in range(H):
            z, hc, d, rr = zg[j], ng[j], dhr[j], rg[j]
            da_n = d * z * (ONE - hc * hc)
            ng[j] = flush(da_n)
            zg[j] = flush(d * (hc - hpr[j]) * z * (ONE - z))
            rg[j] = flush(da_n * hnr[j] * rr * (ONE - rr))
            dn[j] = flush(da_n * rr)                         # a_h's candidate part
            dhr[j] = d * (ONE - z)
        for j in range(2 * H):
            dr[j] = ar[j]                                    # r, z: a_x's and a_h's alike
        xr, hr = x_hat[r], h_hat[r]
        for j in range(3 * H):
            agx[j] += ar[j] * xr[j]
            agh[j] += dr[j] * hr[j]
            abh[j] += dr[j]
        normalise_back(ar, gamma_x, xr, rstd_x[r])
        normalise_back(dr, gamma_h, hr, rstd_h[r])


@njit(**OPTS)
def _backward_span(gemm, dout, W_hh, w, dh, n_active, reverse, gates, x_hat, rstd_x, h_hat,
                   rstd_h, hn, out, h0, dah, acc, scratch, r0, r1):
    T = dout.shape[0]
    H = dh.shape[1]
    dh_ = dh[r0:r1]
    before = local_threads(gemm, 1)
    for s in range(T):
        t = s if reverse else T - 1 - s
        n = span_rows(n_active[t], r0, r1)
        d = dout[t][r0:r1]
        for r in range(n):
            for j in range(H):
                dh_[r, j] += d[r, j]
        h_prev = previous_rows(out, h0, n_active, reverse, t, n, scratch, r0)
        _backward_rows(gates[t][r0:r1], x_hat[t][r0:r1], rstd_x[t][r0:r1], h_hat[t][r0:r1],
                       rstd_h[t][r0:r1], hn[t][r0:r1], h_prev, dh_, dah[r0:r1], w, acc, n)
        matmul_rows(gemm, dh_, h_hat[t][r0:r1], W_hh, n, True)     # + the product's share
    local_threads(gemm, before)


@njit(**OPTS)
def backward_loop(parts, gemm, dout, W_hh, w, dh, n_active, reverse, gates, x_hat, rstd_x,
                  h_hat, rstd_h, hn, out, h0, dah, acc):
    _backward_span(gemm, dout, W_hh, w, dh, n_active, reverse, gates, x_hat, rstd_x, h_hat,
                   rstd_h, hn, out, h0, dah, acc[0], np.empty_like(h0), 0, dh.shape[0])


@njit(parallel=True, **OPTS)
def backward_loop_parallel(parts, gemm, dout, W_hh, w, dh, n_active, reverse, gates, x_hat,
                           rstd_x, h_hat, rstd_h, hn, out, h0, dah, acc):
    scratch = np.empty_like(h0)
    for k in prange(parts):
        r0, r1 = part(dh.shape[0], k, parts)
        _backward_span(gemm, dout, W_hh, w, dh, n_active, reverse, gates, x_hat, rstd_x, h_hat,
                       rstd_h, hn, out, h0, dah, acc[k], scratch, r0, r1)
