"""The LSTM cell laid out for the compiled loops (rnnkit.fast.kernels.lstm), the reference
being rnnkit.cells.lstm (no peepholes, no clip: those run on the reference scan).

Gates stacked in PyTorch's order i, f, C~ (PyTorch's "g"), o: W_xh (4H, D), W_hh (4H, H),
b_xh (4H), b_hh (4H). sigma(a) = (1 + tanh(a / 2)) / 2, so after scaling the sigmoid gates'
weights and biases by 1/2 (exact in floating point) one tanh form serves all four gates
(docs/performance.md, section 7).
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast import workspace
from rnnkit.fast.fused import history
from rnnkit.fast.fused.weights import restored, transposed


class LSTMCell:
    n_gates = 4
    has_cell_state = True

    def prepare(self, p: dict) -> dict:
        H = p["W_hh"].shape[1]
        scale = np.full(4 * H, 0.5, dtype=p["W_hh"].dtype)
        scale[2 * H:3 * H] = 1.0                       # the candidate is a real tanh
        # Wx_T serves the input projection alone, whose GEMM takes a transposed operand
        k = {"Wx_T": (p["W_xh"] * scale[:, None]).T,
             "bx": (p["b_xh"] + p["b_hh"]) * scale,
             "Wh_T": transposed(p["W_hh"], scale), "scale": scale}
        return k

    def backward_weights(self, k: dict) -> None:
        """Adds to ``k`` from prepare() the W_hh and W_xh it was made from, exactly
        (rnnkit.fast.fused.weights)."""
        k["W_hh"] = restored(k["Wh_T"], k["scale"])
        k["W_xh"] = k["Wx_T"].T * (1 / k["scale"])[:, None]

    def alloc(self, T, N, H, dtype, n_active):
        # gates: the input projection W_xh x_t + b on entry to step t, i, f, C~, o after it
        return {"gates": workspace.empty((T, N, 4 * H), dtype),
                "tanh_c": workspace.time_major((T, N, H), dtype, n_active),
                "rec": workspace.empty((N, 4 * H), dtype)}

    def recurrent_grads(self, p, cache, dGx, dGx_sum, grads, prefix):
        """dGx_sum: dGx summed over steps and rows, which the scan took for b_xh."""
        history.product(dGx, cache["out"], cache["h0"], cache["n_active"], cache["reverse"],
                        into=grads[prefix + "W_hh"])
        grads[prefix + "b_hh"] += dGx_sum
