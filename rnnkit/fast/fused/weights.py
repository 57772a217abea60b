"""Weights laid out for the time loops, and the backward's weights restored from them.

A forward's cache keeps the weights it ran with (rnnkit.fast.scan), but in the loops'
layout only: W_hh^T scaled by powers of two (LSTM, GRU: 1/2 for the sigmoid gates). The
backward's W_hh is restored from that, exactly, when backward runs. Copying W_hh (and W_xh)
in the forward as well kept them alive through the loss: in a batch-1 GRU training step
(1000 x 16 x 128) that made its peak memory 3.10 MB, PyTorch's 3.07."""
from __future__ import annotations

import numpy as np

from rnnkit.fast import blas, workspace

TILE = 64                   # rows and columns of a tile copied at once
TILED_SIZE = 1 << 18        # from this many elements up


def transposed(W: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """(W * scale[:, None]).T as a new C-contiguous array (``scale``: a factor per row of W).

    NumPy's transposing copy reads W a column at a time, one cache line per element: for a
    large LSTM's 2048 x 512 W_hh it took 6.9 ms (its prepare() took 15.4 ms in all, 3 % of
    that model's inference). Copied a 64 x 64 tile at a time it took 2.2 ms (512 x 512: 0.34
    against 0.51 ms; no faster below 2^18 elements), by MKL's omatcopy 0.28 ms
    (rnnkit.fast.blas.transpose_into)."""
    R, C = W.shape
    out = workspace.empty((C, R), W.dtype)      # (a large one from the pool: no page faults)
    if out.ctypes.data % workspace.ALIGN:       # (the loops read it in vectors)
        out = workspace.aligned_empty((C, R), W.dtype)
    if not blas.transpose_into(W, out):         # MKL's, where it serves
        _copy_transposed(W, out)
    if scale is not None:
        out *= scale        # row r of W is column r of its transpose
    return out


def _copy_transposed(W: np.ndarray, out: np.ndarray) -> None:
    R, C = W.shape
    if R * C < TILED_SIZE or R % TILE or C % TILE:
        np.copyto(out, W.T)
    else:
        tiles = W.reshape(R // TILE, TILE, C // TILE, TILE)
        into = out.reshape(C // TILE, TILE, R // TILE, TILE)
        for i in range(R // TILE):
            into[:, :, i, :] = tiles[i].transpose(1, 2, 0)


def restored(W_T: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """W from ``W_T = transposed(W, scale)``, as a new C-contiguous array: exactly W when the
    factors are powers of two (the cells' 1/2 and 1), since those only move the exponent."""
    W = transposed(W_T)
    if scale is not None:
        W *= (1 / scale)[:, None]
    return W
