"""Optimisers over a flat dict of named parameters, updated in place; state keyed by the same names.

Gradient clipping by global norm (notes 003/004: the fix for exploding gradients) returns the
norm before clipping so that exploding gradients are visible.
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import fail


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients in place so their global L2 norm is at most max_norm; return the norm before."""
    if not max_norm > 0:
        fail("max_norm", "a positive number", repr(max_norm))
    norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))
    if norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for g in grads.values():
            g *= scale
    return norm


class Adam:
    """Adam (Kingma & Ba 2015) with bias correction, as torch.optim.Adam."""

    def __init__(self, params: dict[str, np.ndarray], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        if not lr > 0:
            fail("lr", "a positive learning rate", repr(lr))
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.weight_decay = weight_decay
        self.step_count = 0
        self.state = {name: {"m": np.zeros_like(p), "v": np.zeros_like(p)}
                      for name, p in params.items()}

    def step(self, grads: dict[str, np.ndarray]) -> None:
        self.step_count += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** self.step_count, 1 - b2 ** self.step_count
        for name, p in self.params.items():
            g = grads[name]
            if self.weight_decay:
                g = g + self.weight_decay * p
            m, v = self.state[name]["m"], self.state[name]["v"]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= (self.lr / c1) * m / (np.sqrt(v / c2) + self.eps)
