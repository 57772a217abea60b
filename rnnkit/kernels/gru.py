"""Fast GRU time loops (float32, reset after the recurrent product), pinned to rnnkit.cells.gru.

Same cache as the reference: gates hold r, z, h~ after activation; hn = W_hh h_{t-1} + b_hh
of the candidate; h_prev. Modes as in rnnkit.kernels.lstm.
"""
from __future__ import annotations

import numpy as np

from rnnkit.kernels.fastmath import (ONE, OPTS, add_matmul_rows, copy_row, fsigmoid_half, ftanh,
                                     njit)


@njit(inline="always", **OPTS)
def _forward_rows(gh, b_hn, h_state, h_prev, acts, hn, out, n):
    """acts: input projection on entry, activations r, z, h~ on exit; gh: h_{t-1} W_hh^T."""
    H = h_state.shape[1]
    for r in range(n):
        ar, ghr, hnr, hs, orow = acts[r], gh[r], hn[r], h_state[r], out[r]
        for j in range(2 * H):                                       # r, z
            ar[j] = fsigmoid_half(ar[j] + ghr[j])
        for j in range(H):                                           # h~ = tanh(.. + r (W h + b))
            m = ghr[2 * H + j] + b_hn[j]
            hnr[j] = m
            ar[2 * H + j] = ftanh(ar[2 * H + j] + ar[j] * m)
        copy_row(h_prev[r], hs)
        for j in range(H):                                           # h = h + z (h~ - h)
            orow[j] = hs[j] + ar[H + j] * (ar[2 * H + j] - hs[j])
        copy_row(hs, orow)


@njit(**OPTS)
def forward_step(gh, b_hn, h_state, h_prev, acts, hn, out):
    _forward_rows(gh, b_hn, h_state, h_prev, acts, hn, out, gh.shape[0])


@njit(**OPTS)
def forward_loop(Wh_T, b_hn, h_state, n_active, reverse, gh, gates, hn, out, h_prev):
    T = gates.shape[0]
    for s in range(T):
        t = T - 1 - s if reverse else s
        n = n_active[t]
        for r in range(n):
            for j in range(gh.shape[1]):
                gh[r, j] = 0
        add_matmul_rows(gh, h_state, Wh_T, n)
        _forward_rows(gh, b_hn, h_state, h_prev[t], gates[t], hn[t], out[t], n)


@njit(inline="always", **OPTS)
def _backward_rows(acts, hn, h_prev, dh, dgx, dgh, n):
    """dgx, dgh <- dL/d(pre-activations); dh <- its direct path dh * (1 - z)."""
    H = dh.shape[1]
    for r in range(n):
        ar, hnr, hpr, dhr, dxr, dhh = acts[r], hn[r], h_prev[r], dh[r], dgx[r], dgh[r]
        for j in range(H):
            rr, z, cand, d = ar[j], ar[H + j], ar[2 * H + j], dhr[j]
            da_n = d * z * (ONE - cand * cand)
            dxr[2 * H + j] = da_n
            dxr[H + j] = d * (cand - hpr[j]) * z * (ONE - z)
            dxr[j] = da_n * hnr[j] * rr * (ONE - rr)
            dhh[2 * H + j] = da_n * rr
            dhr[j] = d * (ONE - z)
        for j in range(2 * H):
            dhh[j] = dxr[j]


@njit(**OPTS)
def backward_step(acts, hn, h_prev, dh, dgx, dgh):
    _backward_rows(acts, hn, h_prev, dh, dgx, dgh, dh.shape[0])


@njit(**OPTS)
def backward_loop(dout, W_hh, dh, n_active, reverse, gates, hn, h_prev, dgx, dgh):
    T = dout.shape[0]
    H = dh.shape[1]
    for s in range(T):
        t = s if reverse else T - 1 - s
        n = n_active[t]
        for r in range(n):
            for j in range(H):
                dh[r, j] += dout[t, r, j]
        _backward_rows(gates[t], hn[t], h_prev[t], dh, dgx[t], dgh[t], n)
        add_matmul_rows(dh, dgh[t], W_hh, n)


class GRUKernel:
    def __init__(self, whole_loop: bool):
        self.whole_loop = whole_loop

    def forward(self, k, cache, gx, h, c, n_active, reverse, out, h_prev):
        g = cache
        if self.whole_loop:
            forward_loop(k["Wh_T"], k["b_hn"], h, n_active, reverse, g["gh"], g["gates"],
                         g["hn"], out, h_prev)
            return
        T = gx.shape[0]
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            n = n_active[t]
            gh = g["gh"][:n]
            np.matmul(h[:n], k["Wh_T"], out=gh)
            forward_step(gh, k["b_hn"], h[:n], h_prev[t, :n], g["gates"][t, :n],
                         g["hn"][t, :n], out[t, :n])

    def backward(self, k, cache, dout, dh, dc, dgx, dgh, n_active, reverse):
        g = cache
        if self.whole_loop:
            backward_loop(dout, k["W_hh"], dh, n_active, reverse, g["gates"], g["hn"],
                          g["h_prev"], dgx, dgh)
            return
        T = dout.shape[0]
        tmp = np.empty_like(dh)
        for t in (range(T) if reverse else range(T - 1, -1, -1)):
            n = n_active[t]
            dh_n = dh[:n]
            dh_n += dout[t, :n]
            backward_step(g["gates"][t, :n], g["hn"][t, :n], g["h_prev"][t, :n], dh_n,
                          dgx[t, :n], dgh[t, :n])
            np.matmul(dgh[t, :n], k["W_hh"], out=tmp[:n])
            dh_n += tmp[:n]
