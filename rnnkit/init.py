"""Weight initialisation. Randomness always comes in as a seed or a ``np.random.Generator``.

Schemes (``init=`` of the recurrent layers):
- ``"pytorch"``: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)), PyTorch's default.
- ``"glorot_orthogonal"``: Glorot-uniform input weights, orthogonal recurrent weights (one
  orthogonal H x H block per gate), zero biases (Keras' default for recurrent layers).
- ``"irnn"``: identity recurrent weights, N(0, 0.001^2) input weights, zero biases
  (Le, Jaitly & Hinton 2015, meant for ReLU Elman RNNs).
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import fail

SCHEMES = ("pytorch", "glorot_orthogonal", "irnn")


def as_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def uniform(rng: np.random.Generator, shape: tuple, bound: float) -> np.ndarray:
    return rng.uniform(-bound, bound, size=shape)


def glorot_uniform(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    return uniform(rng, (rows, cols), np.sqrt(6.0 / (rows + cols)))


def orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random n x n orthogonal matrix (QR of a Gaussian, signs fixed so it is uniform)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def recurrent_params(rng: np.random.Generator, n_gates: int, input_size: int, hidden: int,
                     scheme: str, dtype: np.dtype) -> dict[str, np.ndarray]:
    """W_xh (G*H, D), W_hh (G*H, H), b_xh (G*H), b_hh (G*H) for one direction of one layer."""
    G, H, D = n_gates, hidden, input_size
    if scheme == "pytorch":
        k = 1.0 / np.sqrt(H)
        p = {"W_xh": uniform(rng, (G * H, D), k), "W_hh": uniform(rng, (G * H, H), k),
             "b_xh": uniform(rng, (G * H,), k), "b_hh": uniform(rng, (G * H,), k)}
    elif scheme == "glorot_orthogonal":
        p = {"W_xh": np.concatenate([glorot_uniform(rng, H, D) for _ in range(G)]),
             "W_hh": np.concatenate([orthogonal(rng, H) for _ in range(G)]),
             "b_xh": np.zeros(G * H), "b_hh": np.zeros(G * H)}
    elif scheme == "irnn":
        p = {"W_xh": rng.normal(0.0, 1e-3, size=(G * H, D)),
             "W_hh": np.concatenate([np.eye(H) for _ in range(G)]),
             "b_xh": np.zeros(G * H), "b_hh": np.zeros(G * H)}
    else:
        fail("init", f"one of {SCHEMES}", repr(scheme))
    return {k: v.astype(dtype) for k, v in p.items()}
