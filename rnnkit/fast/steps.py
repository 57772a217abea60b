"""Steps of a time-major view taken some at a time: the chunks the scans copy and project.

(Apart from the scan so that the kernels' unit-split loops, which the scan runs, can use it.)
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast import workspace

CHUNKS, MIN_CHUNK_ROWS, CHUNK_ROWS = 8, 2048, 4096
# a copy of this many bytes or more splits over the loops' threads
# (docs/performance.md#copy_split_bytes)
COPY_SPLIT_BYTES = 1 << 20


def chunk_steps(T: int, N: int) -> int:
    """Steps in a chunk of work done a few steps at a time: 1/CHUNKS of the sequence, so that
    a chunk buffer is that much of a whole array, but at least ~MIN_CHUNK_ROWS rows (each
    chunk costs a few products and copies: small scans take one chunk) and at most
    ~CHUNK_ROWS (no faster beyond; docs/performance.md, section 6)."""
    steps = max(-(-T // CHUNKS), -(-MIN_CHUNK_ROWS // N))
    return max(1, min(steps, CHUNK_ROWS // N, T))


PROJECTION_BYTES = 8 << 20


def projection_steps(x: np.ndarray) -> int:
    """Steps of x the forward copies time-major and projects at once: as many as fit in
    PROJECTION_BYTES. Each product re-packs W_xh and wakes the BLAS threads, so fewer pieces
    than ``chunk_steps`` gives; much larger copies outgrow the cache before their product
    reads them (docs/performance.md, section 6)."""
    T, N, D = x.shape
    return max(1, min(T, PROJECTION_BYTES // max(1, N * D * x.itemsize)))


def time_major_rows(x: np.ndarray, steps: int | None = None, copy=np.copyto):
    """Yield (t0, t1, rows): x[t0:t1] of a (T, N, D) view as one ((t1 - t0) * N, D) matrix.

    A time-major x gives itself whole. A view of a batch-first (N, T, D) array, as layers
    pass their input, is copied chunk by chunk (``chunk_steps``) into one reused buffer: the
    scan keeps no time-major copy of its input (one (T, N, D) array less in a training step).
    """
    T, N, D = x.shape
    if x.flags.c_contiguous:
        yield 0, T, x.reshape(T * N, D)
        return
    steps = steps or chunk_steps(T, N)
    buf = workspace.spare_or_empty((steps, N, D), x.dtype)
    for t0 in range(0, T, steps):
        t1 = min(T, t0 + steps)
        copy(buf[:t1 - t0], x[t0:t1])
        yield t0, t1, buf[:t1 - t0].reshape(-1, D)
