"""The GRU cell (reset after) laid out for the compiled loops (rnnkit.fast.kernels.gru), the
reference being rnnkit.cells.gru (reset before and clip run on the reference scan):

    h~_t = tanh(W_xh x_t + b_xh + r_t * (W_hh h_{t-1} + b_hh)),  h_t = (1 - z_t) h_{t-1} + z_t h~_t

Gates stacked in PyTorch's order r, z, h~ (PyTorch's "n"): W_xh (3H, D), W_hh (3H, H),
b_xh (3H), b_hh (3H); r and z as (1 + tanh(a/2)) / 2 with their rows halved.
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast import blas, workspace
from rnnkit.fast.fused import history
from rnnkit.fast.fused.weights import restored, transposed


class GRUCell:
    n_gates = 3
    has_cell_state = False
    reset_after = True

    def prepare(self, p: dict) -> dict:
        H = p["W_hh"].shape[1]
        half = np.full(3 * H, 0.5, dtype=p["W_hh"].dtype)
        half[2 * H:] = 1.0                      # sigma(a) = (1 + tanh(a/2)) / 2 for r and z
        bx = p["b_xh"] * half
        bx[:2 * H] += p["b_hh"][:2 * H] * half[:2 * H]   # b_hh of h~ stays inside r * (...)
        return {"Wx_T": (p["W_xh"] * half[:, None]).T, "bx": bx,         # (a GEMM operand)
                "b_hn": p["b_hh"][2 * H:].copy(), "half": half,
                "Wh_T": transposed(p["W_hh"], half)}

    def backward_weights(self, k: dict) -> None:
        """Adds to ``k`` from prepare() the W_hh and W_xh it was made from, exactly
        (rnnkit.fast.fused.weights)."""
        half = k["half"]
        k["W_hh"] = restored(k["Wh_T"], half)
        k["W_xh"] = k["Wx_T"].T * (1 / half)[:, None]

    def alloc(self, T, N, H, dtype, n_active):
        # gates: r, z, h~ after activation; hn: W_hh h_{t-1} + b_hh of h~, which backward
        # cannot cheaply recompute. gates holds the input projection on entry to step t
        return {"gates": workspace.empty((T, N, 3 * H), dtype),
                "hn": workspace.time_major((T, N, H), dtype, n_active),
                "gh": workspace.empty((N, 3 * H), dtype)}

    def recurrent_grads(self, p, cache, dGx, dGx_sum, grads, prefix):
        """dGx_sum: dGx summed over steps and rows, which the scan took for b_xh."""
        H = dGx.shape[-1] // 3
        dW, db = grads[prefix + "W_hh"], grads[prefix + "b_hh"]
        before = (cache["out"], cache["h0"], cache["n_active"], cache["reverse"])
        # backward left dL/d(W_hn h + b_hn) in hn
        history.product(dGx[..., :2 * H], *before, into=dW[:2 * H])
        history.product(cache["hn"], *before, into=dW[2 * H:])
        db[:2 * H] += dGx_sum[:2 * H]
        db[2 * H:] += blas.column_sums(cache["hn"].reshape(-1, H))
