"""Compiled layer normalisation of one row, for the layer-normalised cells' loops
(rnnkit.fast.lnscan), pinned with them to rnnkit.cells.layer_norm by tests.

Inlined into the loops of lnlstm.py and lngru.py: after editing this file, delete
rnnkit/fast/kernels/__pycache__ (numba's cache only notices a kernel's own file).
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast.kernels.fastmath import ONE, OPTS, ZERO, flush, njit

EPS = np.float32(1e-5)          # as rnnkit.cells.layer_norm's


@njit(inline="always", **OPTS)
def normalise(v, out):
    """out = (v - mean v) / sqrt(var v + EPS) for a 1-d row (out may be v) -> 1 / sqrt(...)."""
    n = v.shape[0]
    inv_n = ONE / np.float32(n)
    s = ZERO
    for j in range(n):
        s += v[j]
    mu = s * inv_n
    q = ZERO
    for j in range(n):
        d = v[j] - mu
        q += d * d
    rstd = ONE / np.sqrt(q * inv_n + EPS)
    for j in range(n):
        out[j] = (v[j] - mu) * rstd
    return rstd


@njit(inline="always", **OPTS)
def normalise_groups(v, out, rstd):
    """normalise over each of len(rstd) equal blocks of the row v, their 1/std into rstd."""
    size = v.shape[0] // rstd.shape[0]
    for g in range(rstd.shape[0]):
        rstd[g] = normalise(v[g * size:(g + 1) * size], out[g * size:(g + 1) * size])


@njit(inline="always", **OPTS)
def normalise_back(d, gamma, v_hat, rstd):
    """v_hat <- dL/dv for dL/dy = d where y = gamma * v_hat + beta, block by block."""
    size = d.shape[0] // rstd.shape[0]
    for g in range(rstd.shape[0]):
        s = slice(g * size, (g + 1) * size)
        dg, gg, vg = d[s], gamma[s], v_hat[s]
        n = dg.shape[0]
        inv_n = ONE / np.float32(n)
        m1 = ZERO
        m2 = ZERO
        for j in range(n):
            dj = dg[j] * gg[j]
            m1 += dj
            m2 += dj * vg[j]
        m1 *= inv_n
        m2 *= inv_n
        r = rstd[g]
        for j in range(n):
            vg[j] = flush(r * (dg[j] * gg[j] - m1 - vg[j] * m2))
