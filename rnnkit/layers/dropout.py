"""Inverted dropout as a forward/backward pair: kept units are scaled by 1 / (1 - p) in
training, so inference uses the weights unchanged."""
from __future__ import annotations

import numpy as np


def dropout_forward(x: np.ndarray, p: float, training: bool, rng: np.random.Generator):
    """-> (x * mask, mask); mask None (x unchanged) outside training or when p is 0."""
    if not training or p <= 0:
        return x, None
    keep = 1.0 - p
    mask = (rng.random(x.shape) < keep).astype(x.dtype) / x.dtype.type(keep)
    return x * mask, mask


def dropout_backward(dy: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return dy if mask is None else dy * mask
