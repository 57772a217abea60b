"""The Elman cell laid out for the compiled loops (rnnkit.fast.kernels.rnn), the reference
being rnnkit.cells.rnn: h_t = f(W_xh x_t + b_xh + W_hh h_{t-1} + b_hh), f = tanh or relu.

The input projection ``W_xh x_t + b_xh + b_hh`` of all steps is one product before the loop
(the scan's), so a step is the recurrent product plus f; the loop writes h_t into the
output, the only thing backward reads (f'(a) is a function of h_t). Parameter gradients are
one product over all steps, after the loop.
"""
from __future__ import annotations

from rnnkit.fast.fused import history
from rnnkit.fast.fused.weights import restored, transposed


class ElmanCell:
    n_gates = 1
    has_cell_state = False

    def __init__(self, nonlinearity: str = "tanh"):
        self.nonlinearity = nonlinearity

    def prepare(self, p: dict) -> dict:
        """Weights laid out for the time loop: transposed, both biases in the input part."""
        W_xh = p["W_xh"].copy()      # (Wx_T, its view, is a GEMM operand: no copy of its own)
        return {"Wx_T": W_xh.T, "bx": p["b_xh"] + p["b_hh"], "Wh_T": transposed(p["W_hh"]),
                "W_xh": W_xh}

    def backward_weights(self, k: dict) -> None:
        """Adds to ``k`` from prepare() the W_hh it was made from (rnnkit.fast.fused.weights)."""
        k["W_hh"] = restored(k["Wh_T"])

    def alloc(self, T: int, N: int, H: int, dtype, n_active) -> dict:
        return {}           # the outputs are all backward reads

    def recurrent_grads(self, p, cache, dGx, dGx_sum, grads, prefix, t0=0):
        """dGx: dL/da of the steps [t0, t0 + len(dGx)) (the scan's chunks); dGx_sum: its sum
        over steps and rows, which the scan took for b_xh."""
        history.product(dGx, cache["out"], cache["h0"], cache["n_active"], cache["reverse"],
                        into=grads[prefix + "W_hh"], t0=t0)
        grads[prefix + "b_hh"] += dGx_sum
