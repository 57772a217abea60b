"""Gradient clipping (notes 003/004: the fix for exploding gradients), in place on a dict of
named gradients. Both clips return the global norm *before* clipping, so that exploding
gradients stay visible in the logs."""
from __future__ import annotations

import numpy as np

from rnnkit.errors import fail
from rnnkit.optim.base import check_number


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """sqrt(sum over all gradients of sum(g^2)): the L2 norm of all gradients as one vector."""
    if not isinstance(grads, dict):
        fail("grads", "a dict of named gradient arrays", type(grads).__name__)
    for name, g in grads.items():
        if not isinstance(name, str):
            fail("grads", "string names", f"key {name!r}")
        if not isinstance(g, np.ndarray):
            fail(f"grads[{name!r}]", "a NumPy array", type(g).__name__)
        if g.dtype.kind != "f":
            fail(f"grads[{name!r}]", "a float array", f"dtype {g.dtype.name}")
    return float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients by min(1, max_norm / (norm + 1e-6)), as torch.nn.utils.clip_grad_norm_;
    return the norm before. A non-finite norm leaves the gradients as they are (torch would
    multiply them by 0 or NaN); the caller sees it in the returned value."""
    max_norm = check_number("max_norm", max_norm, 0, lo_open=True)
    norm = global_norm(grads)
    scale = max_norm / (norm + 1e-6)
    if np.isfinite(norm) and scale < 1:
        for g in grads.values():
            g *= scale
    return norm


def clip_grad_value(grads: dict[str, np.ndarray], clip_value: float) -> float:
    """Clamp every gradient element to [-clip_value, clip_value], as
    torch.nn.utils.clip_grad_value_; return the global norm before clipping."""
    clip_value = check_number("clip_value", clip_value, 0, lo_open=True)
    norm = global_norm(grads)
    for g in grads.values():
        np.clip(g, -clip_value, clip_value, out=g)
    return norm
