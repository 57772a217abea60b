"""Embedding: token ids (N, T) -> vectors (N, T, D), the input of a word- or character-level RNN."""
from __future__ import annotations

import numpy as np

from rnnkit.errors import fail
from rnnkit.init import as_rng
from rnnkit.fast import scatter_add_rows


class Embedding:
    """Parameter E (V, D), initialised N(0, 1) as PyTorch's nn.Embedding."""

    def __init__(self, num_embeddings: int, embedding_dim: int, *, dtype=np.float32,
                 seed: int | np.random.Generator | None = None):
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.dtype = np.dtype(dtype)
        self.params = {"E": as_rng(seed).standard_normal(
            (num_embeddings, embedding_dim)).astype(self.dtype)}
        self.grads = {"E": np.zeros_like(self.params["E"])}

    def zero_grad(self) -> None:
        self.grads["E"][...] = 0

    def forward(self, ids: np.ndarray):
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            fail("ids", "an integer array of token ids", f"dtype {ids.dtype.name}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            fail("ids", f"token ids in [0, {self.num_embeddings - 1}]",
                 f"min {ids.min()}, max {ids.max()}")
        return self.params["E"][ids], ids

    def backward(self, dout: np.ndarray, ids) -> None:
        """Scatter-adds dL/dout into the rows of dL/dE (repeated ids accumulate): as
        np.add.at, in one compiled pass where numba is installed."""
        scatter_add_rows(self.grads["E"], ids.reshape(-1), dout.reshape(-1, self.embedding_dim))
