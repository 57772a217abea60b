"""Weights laid out for the time loops, and the backward's weights restored from them.

A forward's cache keeps the weights it ran with (rnnkit.fast.scan), but in the loops'
layout only: W_hh^T scaled by powers of two (LSTM, GRU: 1/2 for the sigmoid gates). The
backward's W_hh is restored from that, exactly, when backward runs: copying W_hh (and W_xh)
in the forward as well would keep them alive through the loss (docs/performance.md, section
10)."""
from __future__ import annotations

import numpy as np

from rnnkit.fast import blas, workspace

TILE = 64                   # rows and columns of a tile copied at once
TILED_SIZE = 1 << 18        # from this many elements up (no faster below: docs/performance.md)


def transposed(W: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """(W * scale[:, None]).T as a new C-contiguous array (``scale``: a factor per row of W).

    NumPy's transposing copy reads W a column at a time, one cache line per element, so it
    goes by MKL's omatcopy where that serves (rnnkit.fast.blas.transpose_into), else, from
    TILED_SIZE elements, a TILE x TILE tile at a time (docs/performance.md, section 4)."""
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
