"""Losses, each returning (loss, dL/dinput) with an explicit backward.

Every loss takes ``lengths`` for right-padded batches (N, T, ...): padded steps add nothing to
the loss or its gradient (note 002's per-step losses of many-to-many models), and
``reduction`` = "mean" (average over the valid items) or "sum". The gradient has the input's
shape and dtype; the loss is a Python float, accumulated in float64.

Many-to-one models (a label per sequence, read at its last valid step) wrap any of these losses
with ``final_step``: ``final_step(sigmoid_binary_cross_entropy)(logits, y, lengths)`` takes
logits (N, T) or (N, T, K), targets (N,) or (N, K), and returns a gradient (N, T[, K]) that is
zero except at each row's last valid step.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np

from rnnkit import fast
from rnnkit.errors import as_array, check_array as _check_array, check_lengths, \
    fail
from rnnkit.layers.select import last_step_backward, last_step_forward

check_array = partial(_check_array, finite=fast.all_finite)

REDUCTIONS = ("mean", "sum")


def valid_mask(N: int, T: int, lengths=None) -> np.ndarray:
    """(N, T) booleans: True at the steps inside each row's length."""
    if lengths is None:
        return np.ones((N, T), dtype=bool)
    lens = check_lengths(lengths, N, T)
    return np.arange(T)[None, :] < lens[:, None]


def reduce_loss(per_item: np.ndarray, d_input: np.ndarray, mask, reduction: str):
    """Sum or average `per_item` over the items where `mask` holds; scale `d_input` to match.

    per_item (N, ...) item losses; d_input, the input's shape, whose leading axes are those of
    per_item, holds d(per_item)/d(input) and is scaled in place; mask None or (N, T) booleans
    for the two leading axes. Masked items are dropped (np.where), not multiplied by zero.
    """
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        fail("reduction", "'mean' or 'sum'", repr(reduction))
    if mask is None:
        total, count = per_item.sum(dtype=np.float64), per_item.size
    else:
        m = mask.reshape(mask.shape + (1,) * (per_item.ndim - mask.ndim))
        total = np.where(m, per_item, 0).sum(dtype=np.float64)
        count = int(np.broadcast_to(m, per_item.shape).sum())
    w = 1.0 / max(count, 1) if reduction == "mean" else 1.0
    if mask is None:
        d_input *= w
    else:
        m = mask.reshape(mask.shape + (1,) * (d_input.ndim - mask.ndim))
        d_input *= (m * w).astype(d_input.dtype)
    return float(total * w), d_input


def _check_float_input(name: str, x) -> np.ndarray:
    """A finite float array (N,), (N, K), (N, T) or (N, T, K)."""
    if not isinstance(x, np.ndarray) or x.ndim not in (1, 2, 3):
        fail(name, "a 1-, 2- or 3-d array (N,), (N, K), (N, T) or (N, T, K)",
             f"shape {getattr(x, 'shape', type(x).__name__)}")
    if x.dtype.kind != "f":
        fail(name, "a float array", f"dtype {x.dtype.name}")
    if x.size == 0:
        fail(name, "at least one item", f"shape {x.shape}")
    return check_array(name, x, ndim=x.ndim)


def _check_float_targets(targets, x: np.ndarray, lo=None, hi=None, *,
                         of: str = "input") -> np.ndarray:
    """Targets of x's shape (bool, integer or float), finite, in [lo, hi]; cast to x.dtype.
    ``of``: the input's argument name, for the message on a shape mismatch."""
    y = as_array("targets", targets)
    if y.shape != x.shape:
        fail("targets", f"shape {x.shape} (the shape of {of})", f"shape {y.shape}")
    if y.dtype.kind not in "biuf":
        fail("targets", "numbers (float, integer or bool)", f"dtype {y.dtype.name}")
    y = check_array("targets", y.astype(x.dtype, copy=False), ndim=y.ndim)
    if lo is not None and y.size and (y.min() < lo or y.max() > hi):
        fail("targets", f"values in [{lo}, {hi}]", f"min {y.min()}, max {y.max()}")
    return y


def _step_mask(x: np.ndarray, lengths):
    """None without lengths; else the (N, T) valid mask, axis 1 of x being time."""
    if lengths is None:
        return None
    if x.ndim < 2:
        fail("lengths", "None for an input without a time axis (N,)",
             f"lengths for input shape {x.shape}")
    return valid_mask(x.shape[0], x.shape[1], lengths)


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray, lengths=None,
                          reduction: str = "mean", label_smoothing: float = 0.0):
    """-log softmax(logits)[target], fused with the softmax, summed or averaged over valid steps.

    logits (N, T, V) or (N, V); targets (N, T) or (N,) integer class ids.
    Returns (loss, dlogits) with dlogits = (softmax(logits) - q) / count ("mean"; count = the
    number of valid steps) or without the division ("sum"), q = onehot(targets), or with
    label smoothing e (Szegedy et al. 2016; torch's `label_smoothing`) q = (1 - e) onehot +
    e / V, the cross-entropy against that q.
    """
    if not isinstance(logits, np.ndarray) or logits.ndim not in (2, 3):
        fail("logits", "a 3-d (N, T, V) or 2-d (N, V) array",
             f"shape {getattr(logits, 'shape', type(logits).__name__)}")
    if logits.dtype.kind != "f":
        fail("logits", "a float array", f"dtype {logits.dtype.name}")
    check_array("logits", logits, ndim=logits.ndim)
    if logits.size == 0:
        fail("logits", "at least one item and one class", f"shape {logits.shape}")
    targets = as_array("targets", targets)
    if targets.shape != logits.shape[:-1]:
        fail("targets", f"shape {logits.shape[:-1]} (logits without the class axis)",
             f"shape {targets.shape}")
    if targets.dtype.kind not in "iu":
        fail("targets", "integer class ids", f"dtype {targets.dtype.name}")
    V = logits.shape[-1]
    if targets.size and (targets.min() < 0 or targets.max() >= V):
        fail("targets", f"class ids in [0, {V - 1}]", f"min {targets.min()}, max {targets.max()}")
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        fail("reduction", "'mean' or 'sum'", repr(reduction))
    eps = label_smoothing
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 <= eps < 1.0:
        fail("label_smoothing", "a number in [0, 1)", repr(label_smoothing))
    mask = valid_mask(*logits.shape[:2], lengths) if logits.ndim == 3 else None
    # A recurrent model's logits (N, T, V) are a transposed view of time-major memory: their
    # rows are read in that order, since reshaping them batch-first would copy them (and the
    # head's backward would copy the gradient back; 90 MB each at 32 x 35 x 20,000 words)
    swap = logits.ndim == 3 and not logits.flags.c_contiguous and \
        logits.transpose(1, 0, 2).flags.c_contiguous
    if swap:
        logits, targets = logits.transpose(1, 0, 2), targets.T
        mask = None if mask is None else mask.T
    z = logits.reshape(-1, V)
    t = targets.reshape(-1)
    rows = np.arange(z.shape[0])
    valid = None if mask is None else mask.reshape(-1)
    count = z.shape[0] if valid is None else int(np.count_nonzero(valid))
    w = 1.0 / max(count, 1) if reduction == "mean" else 1.0
    scale = np.full(z.shape[0], w, z.dtype) if valid is None else (valid * w).astype(z.dtype)
    # dL/dz = w (softmax(z) - onehot(t)), zero at padded steps: one array written in place,
    # shifted logits, their exponentials, then the gradient, a block of rows at a time so
    # that the block stays in cache, blocks on the threads (rnnkit.fast.for_row_blocks);
    # exp never overflows for the shift by the max
    dz, top, total = np.empty_like(z), np.empty(len(t), z.dtype), np.empty(len(t), z.dtype)

    def softmax_rows(a: int, b: int) -> None:
        block = dz[a:b]
        z[a:b].max(axis=1, out=top[a:b])
        np.subtract(z[a:b], top[a:b, None], out=block)
        np.exp(block, out=block)
        block.sum(axis=1, out=total[a:b])
        block *= (scale[a:b] / total[a:b])[:, None]

    fast.for_row_blocks(softmax_rows, z.shape[0], V * z.itemsize)
    nll = np.log(total) - (z[rows, t] - top)                # (N*T,)
    dz[rows, t] -= (1.0 - eps) * scale
    if eps:                     # -mean_v log p_v = log total - (mean_v z_v - top)
        nll = (1.0 - eps) * nll + eps * (np.log(total) - (z.mean(axis=1) - top))
        dz -= (scale * (eps / V))[:, None]
    loss = (nll if valid is None else np.where(valid, nll, 0)).sum(dtype=np.float64)
    dz = dz.reshape(logits.shape)
    return float(loss * w), dz.transpose(1, 0, 2) if swap else dz


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow: exp only ever sees -|x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_binary_cross_entropy(logits: np.ndarray, targets, lengths=None,
                                 reduction: str = "mean"):
    """-[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))], fused, as torch BCEWithLogitsLoss.

    logits x (N,), (N, K), (N, T) or (N, T, K) (with lengths, axis 1 is time); targets y of
    the same shape, in [0, 1]. Stable form: max(x, 0) - x y + log(1 + exp(-|x|)).
    Returns (loss, dlogits) with dlogits = (sigmoid(x) - y) / count, count = valid elements.
    """
    x = _check_float_input("logits", logits)
    y = _check_float_targets(targets, x, 0, 1, of="logits")
    mask = _step_mask(x, lengths)
    per = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    return reduce_loss(per, _sigmoid(x) - y, mask, reduction)


def binary_cross_entropy(probs: np.ndarray, targets, lengths=None, reduction: str = "mean"):
    """-[y max(log p, -100) + (1 - y) max(log(1 - p), -100)], as torch F.binary_cross_entropy.

    probs p in [0, 1] and targets y in [0, 1], both (N,), (N, K), (N, T) or (N, T, K) (with
    lengths, axis 1 is time). The log is clamped at -100 so p = 0 or 1 gives a finite loss;
    the gradient is torch's (p - y) / max(p (1 - p), float32(1e-12)) / count.
    Prefer sigmoid_binary_cross_entropy on logits: it is exact where p saturates.
    """
    p = _check_float_input("probs", probs)
    if p.size and (p.min() < 0 or p.max() > 1):
        fail("probs", "probabilities in [0, 1]", f"min {p.min()}, max {p.max()}")
    y = _check_float_targets(targets, p, 0, 1, of="probs")
    mask = _step_mask(p, lengths)
    with np.errstate(divide="ignore"):                  # log(0) = -inf, clamped next
        log_p = np.maximum(np.log(p), -100)
        log_1mp = np.maximum(np.log1p(-p), -100)
    per = -(y * log_p + (1 - y) * log_1mp)
    eps = p.dtype.type(np.float32(1e-12))              # torch's EPSILON is a float literal
    dp = (p - y) / np.maximum((1 - p) * p, eps)
    return reduce_loss(per, dp, mask, reduction)


def mean_squared_error(pred: np.ndarray, targets, lengths=None, reduction: str = "mean"):
    """(pred - y)^2 averaged (or summed) over every valid element, as torch MSELoss.

    pred and targets (N,), (N, K), (N, T) or (N, T, K) (with lengths, axis 1 is time).
    Returns (loss, dpred) with dpred = 2 (pred - y) / count, count = valid elements.
    """
    x = _check_float_input("pred", pred)
    y = _check_float_targets(targets, x, of="pred")
    mask = _step_mask(x, lengths)
    diff = x - y
    return reduce_loss(diff * diff, 2 * diff, mask, reduction)


def final_step(loss_fn: Callable) -> Callable:
    """Many-to-one: apply `loss_fn` to each sequence's output at its last valid step.

    The returned function takes (outputs, targets, lengths=None, **kwargs): outputs (N, T) or
    (N, T, F) (logits, probabilities or predictions), targets shaped as `loss_fn` expects for
    outputs without the time axis ((N,) or (N, F); (N,) class ids for cross-entropy), kwargs
    passed on (e.g. reduction). It returns (loss, doutputs) with doutputs (N, T[, F]), zero
    everywhere but at step lengths[i] - 1 of row i. It composes last_step_forward/backward
    with the loss; no new math.
    """
    def loss_at_final_step(outputs: np.ndarray, targets, lengths=None, **kwargs):
        if not isinstance(outputs, np.ndarray) or outputs.ndim not in (2, 3):
            fail("outputs", "a 2-d (N, T) or 3-d (N, T, F) array",
                 f"shape {getattr(outputs, 'shape', type(outputs).__name__)}")
        out = outputs if outputs.ndim == 3 else outputs[:, :, None]      # (N, T, F)
        last, cache = last_step_forward(out, lengths)                     # (N, F)
        loss, dlast = loss_fn(last if outputs.ndim == 3 else last[:, 0], targets, **kwargs)
        dout = last_step_backward(dlast.reshape(last.shape), cache)       # (N, T, F)
        return loss, dout.reshape(outputs.shape)

    loss_at_final_step.__name__ = f"final_step({loss_fn.__name__})"
    loss_at_final_step.__qualname__ = loss_at_final_step.__name__
    loss_at_final_step.__doc__ = f"{loss_fn.__name__} at each sequence's last valid step."
    return loss_at_final_step
