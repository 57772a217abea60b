"""Losses, each returning (loss, dL/dinput) with an explicit backward.

Per-step losses of many-to-many models (note 002) are averaged over the valid steps of a
right-padded batch: padded steps add nothing to the loss or its gradient.
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import check_array, check_lengths, fail


def valid_mask(N: int, T: int, lengths=None) -> np.ndarray:
    """(N, T) booleans: True at the steps inside each row's length."""
    if lengths is None:
        return np.ones((N, T), dtype=bool)
    lens = check_lengths(lengths, N, T)
    return np.arange(T)[None, :] < lens[:, None]


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray, lengths=None):
    """Mean over valid steps of -log softmax(logits)[target], fused with the softmax.

    logits (N, T, V) or (N, V); targets (N, T) or (N,) integer class ids.
    Returns (loss, dlogits) with dlogits = (softmax(logits) - onehot(targets)) / count.
    """
    if not isinstance(logits, np.ndarray) or logits.ndim not in (2, 3):
        fail("logits", "a 3-d (N, T, V) or 2-d (N, V) array",
             f"shape {getattr(logits, 'shape', type(logits).__name__)}")
    check_array("logits", logits, ndim=logits.ndim)
    targets = np.asarray(targets)
    if targets.shape != logits.shape[:-1]:
        fail("targets", f"shape {logits.shape[:-1]} (logits without the class axis)",
             f"shape {targets.shape}")
    if targets.dtype.kind not in "iu":
        fail("targets", "integer class ids", f"dtype {targets.dtype.name}")
    V = logits.shape[-1]
    if targets.size and (targets.min() < 0 or targets.max() >= V):
        fail("targets", f"class ids in [0, {V - 1}]", f"min {targets.min()}, max {targets.max()}")
    z = logits.reshape(-1, V)
    t = targets.reshape(-1)
    mask = (valid_mask(*logits.shape[:2], lengths) if logits.ndim == 3
            else np.ones(logits.shape[0], dtype=bool)).reshape(-1)
    count = max(int(mask.sum()), 1)
    shifted = z - z.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1))
    rows = np.arange(z.shape[0])
    nll = log_sum - shifted[rows, t]
    loss = float(nll[mask].sum() / count)
    dz = np.exp(shifted - log_sum[:, None])
    dz[rows, t] -= 1
    dz *= (mask / count).astype(z.dtype)[:, None]
    return loss, dz.reshape(logits.shape).astype(logits.dtype, copy=False)
