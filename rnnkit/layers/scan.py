"""Scan a cell over time: one direction of one layer, forward and backpropagation through time.

Arrays here are time-major, (T, N, ...), and the batch is sorted by length, longest first, so
the rows still running at step t are the prefix ``[:n_active[t]]``; a finished row keeps its
final state, and a row not yet started (reverse direction) keeps its initial state. Padded
steps get zero output and zero gradient, without masks.

Speed comes from the layout: the input projection of all T steps is ONE matrix product
before the loop, the loop does only the recurrent product and in-place gate arithmetic into
preallocated buffers, and the weight and input gradients are ONE product each after it.
"""
from __future__ import annotations

import numpy as np

from rnnkit import kernels, workspace


def _one_row(shape: tuple, dtype) -> np.ndarray:
    """A writable (T, ...) view of ONE (...) buffer: every step writes the same memory."""
    row = np.zeros(shape[1:], dtype)
    return np.lib.stride_tricks.as_strided(row, shape, (0,) + row.strides)


def scan_forward(cell, p: dict, x: np.ndarray, h0: np.ndarray, c0: np.ndarray | None,
                 n_active: np.ndarray, reverse: bool, grad: bool = True):
    """x (T, N, D), h0/c0 (N, H) -> out (T, N, H), h_T (N, H), c_T (N, H) or None, cache.

    The cache holds its own copy of the weights, so backward differentiates the forward that
    made it even if the parameters were updated in between. With grad=False nothing is kept
    for backward: the per-step buffers backward would read (previous states, cell states,
    tanh C, ...) become one row each, rewritten every step, instead of T.
    """
    T, N, D = x.shape
    H = h0.shape[1]
    k = cell.prepare(p)
    cache = cell.alloc(T, N, H, x.dtype, n_active)
    def keep(shape, dtype):
        return workspace.time_major(shape, dtype, n_active) if grad else _one_row(shape, dtype)

    if not grad:
        cache.update({name: _one_row(a.shape, a.dtype) for name, a in cache.items()
                      if a.ndim == 3 and name != "gates"})
    if "gates" in cache:          # the cell turns the projection into activations in place
        gx = cache["gates"]                                               # (T, N, G*H)
        np.matmul(x.reshape(T * N, D), k["Wx_T"], out=gx.reshape(T * N, -1))
        gx += k["bx"]
    else:
        gx = (x.reshape(T * N, D) @ k["Wx_T"] + k["bx"]).reshape(T, N, -1)
    out = workspace.time_major((T, N, H), x.dtype, n_active)
    h_prev = keep((T, N, H), x.dtype)
    h = h0.copy()
    if cell.has_cell_state:
        cache["c"] = keep((T, N, H), x.dtype)
        cache["c_prev"] = keep((T, N, H), x.dtype)
        c = c0.copy()
    fast = kernels.select(cell, x.dtype, N, H)
    if fast is not None:
        fast.forward(k, cache, gx, h, c if cell.has_cell_state else None, n_active, reverse,
                     out, h_prev)
    else:
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            n = n_active[t]
            hp = h_prev[t, :n]
            hp[...] = h[:n]
            if cell.has_cell_state:
                cp = cache["c_prev"][t, :n]
                cp[...] = c[:n]
                cell.step(k, cache, t, n, gx[t, :n], hp, cp, out[t, :n], cache["c"][t, :n])
                c[:n] = cache["c"][t, :n]
            else:
                cell.step(k, cache, t, n, gx[t, :n], hp, None, out[t, :n], None)
            h[:n] = out[t, :n]
    cache.update(k=k, x=x, out=out, h_prev=h_prev, n_active=n_active, reverse=reverse,
                 fast=fast)
    return out, h, (c if cell.has_cell_state else None), cache


def scan_backward(cell, p: dict, cache: dict, dout: np.ndarray, dh_T: np.ndarray,
                  dc_T: np.ndarray | None, grads: dict, prefix: str):
    """dout (T, N, H), dh_T/dc_T (N, H) -> dx (T, N, D), dh0, dc0; adds into grads[prefix+name]."""
    x, out, h_prev, k = cache["x"], cache["out"], cache["h_prev"], cache["k"]
    T, N, D = x.shape
    H = out.shape[2]
    n_active = cache["n_active"]
    G = cell.n_gates * H
    dgx = workspace.time_major((T, N, G), x.dtype, n_active)    # dL/da: gate pre-activations
    dgh = workspace.time_major((T, N, G), x.dtype, n_active) \
        if getattr(cell, "reset_after", False) else dgx
    dh = dh_T.astype(x.dtype, copy=True)
    dc = dc_T.astype(x.dtype, copy=True) if cell.has_cell_state else None
    has_c = cell.has_cell_state
    if cache["fast"] is not None:
        cache["fast"].backward(k, cache, dout, dh, dc, dgx, dgh, n_active, cache["reverse"])
    else:
        for t in (range(T) if cache["reverse"] else range(T - 1, -1, -1)):
            n = n_active[t]
            dh_n = dh[:n]
            dh_n += dout[t, :n]
            cell.step_back(k, cache, t, n, dh_n, dc[:n] if has_c else None, h_prev[t, :n],
                           cache["c_prev"][t, :n] if has_c else None, out[t, :n],
                           cache["c"][t, :n] if has_c else None, dgx[t, :n], dgh[t, :n])
    dA = dgx.reshape(T * N, -1)
    x2d = x.reshape(T * N, D)
    grads[prefix + "W_xh"] += dA.T @ x2d
    grads[prefix + "b_xh"] += dA.sum(axis=0)
    cell.recurrent_grads(p, cache, dgx, dgh, h_prev.reshape(T * N, H), grads, prefix)
    dx = workspace.empty((T, N, D), x.dtype)
    np.matmul(dA, k["W_xh"], out=dx.reshape(T * N, D))
    return dx, dh, dc
