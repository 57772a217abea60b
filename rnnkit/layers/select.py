"""Many-to-one: pick each sequence's output at its last valid step, and route gradients back.

For a bidirectional layer, the reverse direction's summary of a sequence is at step 0, so a
many-to-one model usually reads the final state instead (``state[-2:]`` of the top layer).
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import check_lengths, fail


def last_step_forward(out: np.ndarray, lengths=None):
    """out (N, T, F) -> (N, F): out[i, lengths[i] - 1]; cache for the backward."""
    if not isinstance(out, np.ndarray) or out.ndim != 3:
        fail("out", "a 3-d array (N, T, F)", f"shape {getattr(out, 'shape', None)}")
    N, T, _ = out.shape
    lens = np.full(N, T) if lengths is None else check_lengths(lengths, N, T)
    rows = np.arange(N)
    return out[rows, lens - 1], (out.shape, lens)


def last_step_backward(dlast: np.ndarray, cache) -> np.ndarray:
    """(N, F) -> (N, T, F), zero everywhere but at each row's last valid step."""
    shape, lens = cache
    dout = np.zeros(shape, dlast.dtype)
    dout[np.arange(shape[0]), lens - 1] = dlast
    return dout
