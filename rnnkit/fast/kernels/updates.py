"""Compiled single passes for the parts of a training step outside the time loops (numba).

NumPy runs these as many passes, or one Python-level operation per index: a visible share
of a small model's training step (docs/performance.md, section 9). Each does the same
floating-point operations in the same order as its NumPy form, so the results are
bit-identical (tests pin them):

- ``scatter_add_rows``: the embedding's backward, ``np.add.at(table, ids, rows)``, which
  NumPy runs one index at a time.
- ``adam_step``: Adam's update (``adam_element``, written once and run both ways), about ten
  NumPy passes and their temporaries, in one.

Both fall back to the NumPy form when numba is absent or a layout does not suit.
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast import setting
from rnnkit.fast.kernels.fastmath import AVAILABLE, njit

# no fastmath: fused multiply-adds or reordered sums would round differently from NumPy
_OPTS = dict(error_model="numpy", cache=True, nogil=True)


def compiled() -> bool:
    """Whether the compiled passes run: numba installed and the loops not switched off
    (rnnkit.fast.setting, ``loops``)."""
    return AVAILABLE and setting.current().loops


@njit(**_OPTS)
def compiled_scatter(table, ids, rows):
    """scatter_add_rows's compiled pass."""
    for i in range(ids.size):
        dst, src = table[ids[i]], rows[i]
        for j in range(dst.size):
            dst[j] += src[j]


def scatter_add_rows(table: np.ndarray, ids: np.ndarray, rows: np.ndarray) -> None:
    """table[ids[i]] += rows[i] for i = 0, 1, ... in order (repeated ids accumulate), exactly
    as ``np.add.at(table, ids, rows)``. ids: 1-d integers, valid rows of the 2-d table;
    rows: (len(ids), table.shape[1])."""
    if compiled() and table.flags.c_contiguous and rows.dtype == table.dtype and \
            table.dtype.kind == "f" and ids.dtype.kind in "iu":
        compiled_scatter(table, ids, np.ascontiguousarray(rows))
    else:
        np.add.at(table, ids, rows)


def adam_element(p, g, m, v, wd, decoupled, keep, c1, beta2, c2, root_bc2, eps, step_size):
    """Adam's update (AdamW's with ``decoupled``) of one value or of whole arrays (NumPy
    runs it on the arrays, the compiled loop on each value) -> new (p, m, v):

        p <- p (1 - lr wd)  (decoupled)   or   g <- g + wd p  (Adam's L2)
        m  = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
        p <- p - lr / (1 - beta1^t) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    with keep = 1 - lr wd, c1 = 1 - beta1, c2 = 1 - beta2, root_bc2 = sqrt(1 - beta2^t),
    step_size = lr / (1 - beta1^t) (``adam_scalars``)."""
    if wd != 0:
        if decoupled:
            p = p * keep
        else:
            g = g + wd * p
    m = m + c1 * (g - m)
    v = v * beta2 + c2 * (g * g)
    return p - step_size * (m / (np.sqrt(v) / root_bc2 + eps)), m, v


_adam_element = njit(inline="always", **_OPTS)(adam_element)


@njit(**_OPTS)
def _adam(p, g, m, v, wd, decoupled, keep, c1, beta2, c2, root_bc2, eps, step_size):
    for i in range(p.size):
        p[i], m[i], v[i] = _adam_element(p[i], g[i], m[i], v[i], wd, decoupled, keep, c1,
                                         beta2, c2, root_bc2, eps, step_size)


def adam_scalars(dtype, t, *, lr, beta1, beta2, eps, weight_decay, decoupled) -> tuple:
    """adam_element's scalars, cast to the arrays' dtype once (as NumPy casts a Python
    float operand), so that both ways see the same roundings."""
    f = np.dtype(dtype).type
    return (f(weight_decay), bool(decoupled), f(1 - lr * weight_decay), f(1 - beta1),
            f(beta2), f(1 - beta2), f((1 - beta2 ** t) ** 0.5), f(eps), f(lr / (1 - beta1 ** t)))


def adam_step(p, g, m, v, t, *, lr, beta1, beta2, eps, weight_decay, decoupled) -> bool:
    """adam_element over the arrays in one compiled pass, in place; False (nothing done)
    where it cannot run: no numba, or arrays that are not all C-contiguous float32/float64
    of one dtype and size."""
    arrays = (p, g, m, v)
    if not compiled() or p.dtype not in (np.float32, np.float64) or \
            any(a.dtype != p.dtype or a.size != p.size or not a.flags.c_contiguous
                for a in arrays):
        return False
    _adam(*(a.reshape(-1) for a in arrays),
          *adam_scalars(p.dtype, t, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                        weight_decay=weight_decay, decoupled=decoupled))
    return True


def adam_update(p, g, m, v, t, *, lr, beta1, beta2, eps, weight_decay, decoupled,
                compiled: bool = True) -> None:
    """One Adam (decoupled: AdamW) step at step t >= 1, in place (``adam_element``):
    compiled where adam_step runs (and ``compiled``), else NumPy on the whole arrays, with
    the same roundings (tests pin the two to the bit)."""
    hyper = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                 decoupled=decoupled)
    if compiled and adam_step(p, g, m, v, t, **hyper):
        return
    dtype = p.dtype if p.dtype.kind == "f" else np.float64
    p[...], m[...], v[...] = adam_element(p, g, m, v, *adam_scalars(dtype, t, **hyper))
