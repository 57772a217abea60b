"""The output layer of the notes: y_t = g(W_hy h_t + b_y), g = softmax, sigmoid or identity.

It acts on the last axis, so the same layer serves many-to-many (h of shape (N, T, H): one
output per step) and many-to-one (h of shape (N, H), e.g. from ``last_step`` or the final
state). For training with cross-entropy use g = identity and the fused softmax loss, whose
gradient is stable; softmax here is for reading out probabilities, and its backward is exact.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from rnnkit import fast
from rnnkit.errors import (check_array, check_choice, check_float_dtype, check_int,
                           check_param_count, check_seed, fail)
from rnnkit.init import as_rng

# large inputs are checked for NaN and infinity in one pass with no temporary (MKL's ?asum)
check_array = partial(check_array, finite=fast.all_finite)

ACTIVATIONS = ("identity", "softmax", "sigmoid")


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(0.5 * z)


class Dense:
    """Parameters W_hy (V, H) and b_y (V,), initialised U(-1/sqrt(H), 1/sqrt(H)) as PyTorch's
    Linear."""

    def __init__(self, in_features: int, out_features: int, activation: str = "identity", *,
                 dtype=np.float32, seed: int | np.random.Generator | None = None):
        check_int("in_features", in_features)
        check_int("out_features", out_features)
        check_param_count(max(("in_features", "out_features"),
                              key={"in_features": in_features, "out_features": out_features}.get),
                          (in_features + 1) * out_features)
        check_choice("activation", activation, ACTIVATIONS)
        dtype = check_float_dtype("dtype", dtype)
        check_seed("seed", seed)
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        self.dtype = np.dtype(dtype)
        rng = as_rng(seed)
        k = 1.0 / np.sqrt(in_features)
        self.params = {
            "W_hy": rng.uniform(-k, k, (out_features, in_features)).astype(self.dtype),
            "b_y": rng.uniform(-k, k, out_features).astype(self.dtype)}
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g[...] = 0

    def forward(self, h: np.ndarray):
        """h (..., H) -> y (..., V), cache."""
        if not isinstance(h, np.ndarray) or h.ndim not in (2, 3):
            fail("h", "a 2-d (N, H) or 3-d (N, T, H) array",
                 f"shape {getattr(h, 'shape', type(h).__name__)}")
        check_array("h", h, ndim=h.ndim, shape=(None,) * (h.ndim - 1) + (self.in_features,),
                    dtype=self.dtype, layout="(..., H)")
        if h.size == 0:
            fail("h", "at least one batch row (and time step)", f"shape {h.shape}")
        W, V = self.params["W_hy"], self.out_features
        swap = _time_major(h)
        hs = h.transpose(1, 0, 2) if swap else h
        z = fast.matmul(hs.reshape(-1, self.in_features), W.T).reshape(hs.shape[:-1] + (V,))
        z += self.params["b_y"]
        if self.activation == "softmax":
            y = softmax(z)
        elif self.activation == "sigmoid":
            y = sigmoid(z)
        else:
            y = z
        y = y.transpose(1, 0, 2) if swap else y
        return y, (h, y)

    def backward(self, dy: np.ndarray, cache) -> np.ndarray:
        """dL/dy -> dL/dh; adds dL/dW_hy and dL/db_y into ``grads``."""
        if not (isinstance(cache, tuple) and len(cache) == 2):
            fail("cache", "the cache of this layer's forward", type(cache).__name__)
        h, y = cache
        check_array("dy", dy, ndim=y.ndim, shape=y.shape, dtype=self.dtype)
        swap = _time_major(h)
        if swap:                        # rows in the order of h's memory (dy: a copy if not)
            h, y, dy = h.transpose(1, 0, 2), y.transpose(1, 0, 2), dy.transpose(1, 0, 2)
        if self.activation == "softmax":          # J^T dy = y * (dy - <dy, y>)
            dz = y * (dy - (dy * y).sum(axis=-1, keepdims=True))
        elif self.activation == "sigmoid":
            dz = dy * y * (1 - y)
        else:
            dz = dy
        V, H = self.out_features, self.in_features
        fast.matmul(dz.reshape(-1, V).T, h.reshape(-1, H), self.grads["W_hy"], accumulate=True)
        self.grads["b_y"] += fast.column_sums(dz.reshape(-1, V))
        dh = fast.matmul(dz.reshape(-1, V), self.params["W_hy"]).reshape(h.shape)
        return dh.transpose(1, 0, 2) if swap else dh


def _time_major(h: np.ndarray) -> bool:
    """h (N, T, H) is a transposed view of time-major memory, as recurrent layers return it:
    then its rows are read in memory order (reshaping it batch-first would copy it)."""
    return h.ndim == 3 and not h.flags.c_contiguous and h.transpose(1, 0, 2).flags.c_contiguous
