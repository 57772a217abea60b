"""The layer-normalised cells' fast scan (float32, numba): one direction of one layer.

As the plain cells' scan (rnnkit.fast.scan), time-major with the batch sorted by length, and
the same layout of work: the input projection of all T steps is ONE product before the loop;
the time loop (rnnkit.fast.kernels.lnlstm, lngru) does per step only the recurrent product,
called from the loop on its thread, and one compiled pass over each row for the rest of the
step, the input's and the recurrent product's layer norms included (the loop reads the
projection's row there anyway: normalising it before the loop would be a pass over all of it
and one more meeting of the threads); after the backward loop dW_xh, dW_hh and dx are one
product each. The batch is split over the threads, a span of
rows each, where the plain loops split theirs (rnnkit.fast.kernels.loop_parts).
The reference is rnnkit.cells.lnlstm / lngru (tests pin this to it).
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast import blas, kernels, strided, workspace
from rnnkit.fast.fused import history
from rnnkit.fast.fused.weights import restored, transposed
from rnnkit.fast.kernels.fastmath import loop_weights
from rnnkit.fast.scan import _input_weight_grad, time_major_rows
from rnnkit.fast.steps import projection_steps


class LayerNormCell:
    """The fused form of "lnlstm" or "lngru" with its ``per_gate`` option: the weights laid
    out for the loops."""

    def __init__(self, name: str, per_gate: bool):
        self.name, self.per_gate = name, per_gate
        self.has_cell_state = name == "lnlstm"
        self.n_gates = 4 if self.has_cell_state else 3
        self.groups = self.n_gates if per_gate else 1
        from rnnkit.fast.kernels import lngru, lnlstm
        self.loops = lnlstm if self.has_cell_state else lngru

    def prepare(self, p: dict) -> dict:
        """Copies: a cache differentiates the weights its forward ran with. W_hh is kept only
        as W_hh^T, laid out for the loop's product (backward restores W_hh from it, as the
        plain cells': one copy less alive through the loss). ``w``: the loop's gains and
        biases, a row each: gamma_xh, the input side's bias, gamma_hh, then gamma_c and
        beta_c (LSTM: b_xh + b_hh, one bias after the normalised sums) or b_hh (GRU: its
        candidate part is multiplied by r_t)."""
        G = p["W_hh"].shape[0]
        H = G // self.n_gates
        w = np.zeros((5 if self.has_cell_state else 4, G), p["W_hh"].dtype)
        w[0], w[2] = p["gamma_xh"], p["gamma_hh"]
        if self.has_cell_state:
            w[1] = p["b_xh"] + p["b_hh"]
            w[3, :H], w[4, :H] = p["gamma_c"], p["beta_c"]
        else:
            w[1], w[3] = p["b_xh"], p["b_hh"]
        W_xh = p["W_xh"].copy()
        return {"W_xh": W_xh, "Wx_T": W_xh.T, "Wh_T": transposed(p["W_hh"]), "w": w}


def _threads(N: int) -> tuple[int, int]:
    """(MKL's sgemm address or 0, the parts the batch is split into), as the plain loops'."""
    return blas.gemm_address(), kernels.loop_parts(N)


def _run(serial, parallel, parts: int, *args) -> None:
    (parallel if parts > 1 else serial)(parts, *args)


def scan_forward(cell: LayerNormCell, p: dict, x: np.ndarray, h0: np.ndarray,
                 c0: np.ndarray | None, n_active: np.ndarray, reverse: bool, grad: bool = True,
                 prepared=None):
    """x (T, N, D), h0/c0 (N, H) -> out (T, N, H), h_T, c_T or None, cache (None unless grad).
    ``prepared`` (rnnkit.fast.scan.Prepared): inference's weights kept between calls."""
    T, N, D = x.shape
    H = h0.shape[1]
    G, dt = cell.n_gates * H, x.dtype
    if prepared is not None and grad:
        raise ValueError("scan_forward: prepared weights serve inference (grad=False) only")
    k = prepared.weights(cell, p) if prepared is not None else cell.prepare(p)
    gemm, parts = _threads(N)
    blas.choose(N * G * H, True)
    gates = workspace.empty((T, N, G), dt)
    if not strided.project(x, k["Wx_T"], gates):
        for t0, t1, rows in time_major_rows(x, projection_steps(x)):
            blas.matmul(rows, k["Wx_T"], gates[t0:t1].reshape(-1, G))
    L = T if grad else 1            # inference: one row of each per-step buffer
    g = {"gates": gates, "x_hat": workspace.empty((L, N, G), dt),
         "h_hat": workspace.empty((L, N, G), dt), "rstd_x": np.empty((L, N, cell.groups), dt),
         "rstd_h": np.empty((L, N, cell.groups), dt)}
    if cell.has_cell_state:
        g.update(c=workspace.time_major((T, N, H), dt, n_active) if grad else
                 workspace.empty((1, N, H), dt),
                 c_hat=workspace.empty((L, N, H), dt), rstd_c=np.empty((L, N, 1), dt),
                 tanh_c=workspace.empty((L, N, H), dt))
    else:
        g["hn"] = workspace.empty((L, N, H), dt)
    out = workspace.zero_padding(workspace.empty((T, N, H), dt), n_active)
    h = h0.copy()
    c = c0.copy() if cell.has_cell_state else None
    product, keep = loop_weights(k, "Wh_T", N, gemm, parts)
    rec = workspace.empty((N, G), dt)
    loops = cell.loops
    if cell.has_cell_state:
        _run(loops.forward_loop, loops.forward_loop_parallel, parts, product, k["Wh_T"],
             k["w"], h, c, n_active, reverse, gates, rec, g["x_hat"], g["rstd_x"], g["h_hat"],
             g["rstd_h"], g["c"], g["c_hat"], g["rstd_c"], g["tanh_c"], out)
    else:
        _run(loops.forward_loop, loops.forward_loop_parallel, parts, product, k["Wh_T"],
             k["w"], h, n_active, reverse, gates, rec, g["x_hat"], g["rstd_x"], g["h_hat"],
             g["rstd_h"], g["hn"], out)
    del keep
    if not grad:
        return out, h, c, None
    g.update(k=k, x=x, out=out, h0=h0.copy(), c0=None if c0 is None else c0.copy(),
             n_active=n_active, reverse=reverse)
    return out, h, c, g


def scan_backward(cell: LayerNormCell, p: dict, cache: dict, dout: np.ndarray,
                  dh_T: np.ndarray, dc_T: np.ndarray | None, grads: dict, prefix: str,
                  dx_into: np.ndarray | None = None, accumulate: bool = False):
    """dout (T, N, H), dh_T/dc_T (N, H) -> dx (T, N, D), dh0, dc0; adds into grads[prefix+name].
    Consumes the cache (the gradients overwrite its buffers)."""
    x, out, k, n_active = cache["x"], cache["out"], cache["k"], cache["n_active"]
    reverse = cache["reverse"]
    T, N, D = x.shape
    H = out.shape[2]
    G = cell.n_gates * H
    k["W_hh"] = restored(k["Wh_T"])
    gemm, parts = _threads(N)
    blas.choose(N * G * H, True)
    # (padded rows: zero gradients, which the products after the loop add up)
    dA = workspace.zero_padding(cache["gates"], n_active)          # -> dL/da (input side)
    d_in = workspace.zero_padding(cache["x_hat"], n_active)        # -> dL/d(W_xh x)
    d_rec = workspace.zero_padding(cache["h_hat"], n_active)       # -> dL/d(W_hh h)
    dh = dh_T.astype(x.dtype, copy=True)
    loops = cell.loops
    if cell.has_cell_state:
        acc = np.zeros((parts, 2 * G + 2 * H), x.dtype)
        dc = dc_T.astype(x.dtype, copy=True)
        product, keep = blas.loop_product(k["W_hh"], N, gemm, parts=parts)
        _run(loops.backward_loop, loops.backward_loop_parallel, parts, product, dout,
             k["W_hh"], k["w"], dh, dc, n_active, reverse, dA, d_in, cache["rstd_x"], d_rec,
             cache["rstd_h"], cache["c"], cache["c0"], cache["c_hat"], cache["rstd_c"],
             cache["tanh_c"], acc)
        acc = acc.sum(axis=0)
        db = blas.column_sums(dA.reshape(-1, G))
        grads[prefix + "b_hh"] += db
        grads[prefix + "gamma_c"] += acc[2 * G:2 * G + H]
        grads[prefix + "beta_c"] += acc[2 * G + H:]
    else:
        acc = np.zeros((parts, 3 * G), x.dtype)
        dc = None
        product, keep = blas.loop_product(k["W_hh"], N, gemm, accumulate=True, parts=parts)
        _run(loops.backward_loop, loops.backward_loop_parallel, parts, product, dout,
             k["W_hh"], k["w"], dh, n_active, reverse, dA, d_in, cache["rstd_x"], d_rec,
             cache["rstd_h"], cache["hn"], out, cache["h0"], workspace.empty((N, G), x.dtype),
             acc)
        acc = acc.sum(axis=0)
        db = blas.column_sums(dA.reshape(-1, G))
        grads[prefix + "b_hh"] += acc[2 * G:]
    del keep
    grads[prefix + "b_xh"] += db
    grads[prefix + "gamma_xh"] += acc[:G]
    grads[prefix + "gamma_hh"] += acc[G:2 * G]
    history.product(d_rec, out, cache["h0"], n_active, reverse, into=grads[prefix + "W_hh"])
    _input_weight_grad(d_in, x, grads[prefix + "W_xh"], False)
    dx = dx_into if dx_into is not None else workspace.spare_or_empty((T, N, D), x.dtype)
    blas.matmul(d_in.reshape(-1, G), k["W_xh"], dx.reshape(-1, D), accumulate=accumulate)
    return dx, dh, dc


class Stepper:
    """Inference one step at a time (rnnkit.layers.Recurrent.stepper): each call is a forward
    of one step with the states carried, on weights laid out once."""

    def __init__(self, cell: LayerNormCell, p: dict, prepared, h0: np.ndarray,
                 c0: np.ndarray | None):
        self.cell, self.p, self.prepared = cell, p, prepared
        self.h, self.c = h0.copy(), None if c0 is None else c0.copy()
        self.n_active = np.full(1, h0.shape[0], np.int64)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out, self.h, self.c, _ = scan_forward(self.cell, self.p, x[None], self.h, self.c,
                                              self.n_active, False, grad=False,
                                              prepared=self.prepared)
        return out[0]
