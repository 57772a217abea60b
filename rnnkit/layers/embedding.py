"""Embedding: token ids (N, T) -> vectors (N, T, D), the input of a word- or character-level RNN."""
from __future__ import annotations

import numpy as np

from rnnkit.errors import (check_array, check_float_dtype, check_ids, check_int,
                           check_param_count, check_seed, fail)
from rnnkit.init import as_rng
from rnnkit.fast import scatter_add_rows


class Embedding:
    """Parameter E (V, D), initialised N(0, 1) as PyTorch's nn.Embedding."""

    def __init__(self, num_embeddings: int, embedding_dim: int, *, dtype=np.float32,
                 seed: int | np.random.Generator | None = None):
        check_int("num_embeddings", num_embeddings)
        check_int("embedding_dim", embedding_dim)
        check_param_count(max(("num_embeddings", "embedding_dim"), key={
            "num_embeddings": num_embeddings, "embedding_dim": embedding_dim}.get),
            num_embeddings * embedding_dim)
        dtype = check_float_dtype("dtype", dtype)
        check_seed("seed", seed)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.dtype = np.dtype(dtype)
        self.params = {"E": as_rng(seed).standard_normal(
            (num_embeddings, embedding_dim)).astype(self.dtype)}
        self.grads = {"E": np.zeros_like(self.params["E"])}

    def zero_grad(self) -> None:
        self.grads["E"][...] = 0

    def forward(self, ids: np.ndarray, name: str = "ids"):
        """``name``: the argument as the caller's caller wrote it (a model's ``inputs``)."""
        ids = check_ids(name, ids, self.num_embeddings)
        if ids.ndim not in (1, 2):
            fail(name, "a 1-d (N,) or 2-d (N, T) array of token ids", f"shape {ids.shape}")
        return self.params["E"][ids], ids

    def backward(self, dout: np.ndarray, ids) -> None:
        """Scatter-adds dL/dout into the rows of dL/dE (repeated ids accumulate): as
        np.add.at, in one compiled pass where numba is installed."""
        check_array("dout", dout, ndim=np.ndim(ids) + 1,
                    shape=np.shape(ids) + (self.embedding_dim,), dtype=self.dtype)
        scatter_add_rows(self.grads["E"], ids.reshape(-1), dout.reshape(-1, self.embedding_dim))
