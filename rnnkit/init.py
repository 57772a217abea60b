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


def recurrent_params(rng: np.random.Generator, shapes: dict, scheme: str,
                     dtype: np.dtype) -> dict[str, np.ndarray]:
    """One direction of one layer's parameters from the cell's ``{name: (shape, kind)}``
    (rnnkit.cells.spec), in that order. Kinds: "input" (G*H, D) and "recurrent" (G*H, H)
    matrices, "recurrent_vector" (H,), "bias", "zeros" (e.g. peepholes) and "ones" (layer-norm
    gains): no scheme sets those two."""
    if scheme not in SCHEMES:
        fail("init", f"one of {SCHEMES}", repr(scheme))
    H = next(shape[-1] for shape, kind in shapes.values() if kind.startswith("recurrent"))
    p = {name: _initial(rng, shape, kind, scheme, H) for name, (shape, kind) in shapes.items()}
    return {k: v.astype(dtype) for k, v in p.items()}


def _initial(rng, shape: tuple, kind: str, scheme: str, H: int) -> np.ndarray:
    blocks = shape[0] // H if len(shape) == 2 else 1         # gates stacked H rows each
    if kind == "zeros":
        return np.zeros(shape)
    if kind == "ones":                          # layer-norm gains: no scheme sets them
        return np.ones(shape)
    if scheme == "pytorch":
        return uniform(rng, shape, 1.0 / np.sqrt(H))
    if kind == "bias":
        return np.zeros(shape)
    if kind == "recurrent_vector":              # IndRNN's u: |u| <= 1 keeps it stable
        return np.ones(shape) if scheme == "irnn" else rng.uniform(0.0, 1.0, size=shape)
    if scheme == "glorot_orthogonal":
        if kind == "input":
            return np.concatenate([glorot_uniform(rng, H, shape[1]) for _ in range(blocks)])
        return np.concatenate([orthogonal(rng, H) for _ in range(blocks)])
    if kind == "input":                         # irnn
        return rng.normal(0.0, 1e-3, size=shape)
    return np.concatenate([np.eye(H) for _ in range(blocks)])
