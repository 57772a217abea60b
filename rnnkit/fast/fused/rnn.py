"""Elman RNN cell (notes 000, 002, 004).

    h_t = f(W_xh x_t + b_xh + W_hh h_{t-1} + b_hh),   f = tanh (default) or relu

With ``clip`` (as the ONNX operators' attribute) every pre-activation is clamped to
[-clip, clip] before f; its gradient is zero where that bound was hit.

The notes write one bias b_h; rnnkit keeps PyTorch's two (b_h = b_xh + b_hh) so that weights
move between the two libraries exactly. Note 000's worked example is b_xh = 0.1, b_hh = 0.

A cell computes one time step for the rows ``[:n]`` of a batch sorted by length; the scan in
``rnnkit.fast.scan`` owns the time loop. The input projection ``W_xh x_t + b_xh + b_hh`` of
all steps is one matrix product done by the scan before the loop, so a step is the recurrent
product plus the nonlinearity. Parameter gradients are one product over all steps, after it.
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast import blas
from rnnkit.fast.fused import history
from rnnkit.fast.fused.weights import restored, transposed
from rnnkit.errors import fail

NONLINEARITIES = ("tanh", "relu")


def check_clip(clip) -> float | None:
    if clip is not None and not (isinstance(clip, (int, float)) and clip > 0):
        fail("clip", "None or a positive threshold", repr(clip))
    return None if clip is None else float(clip)


def clip_(a: np.ndarray, bound, mask: np.ndarray) -> None:
    """Clamp pre-activations to [-bound, bound] in place (ONNX's `clip`), noting where in mask."""
    np.greater(np.abs(a), bound, out=mask)
    np.clip(a, -bound, bound, out=a)


class ElmanCell:
    n_gates = 1
    has_cell_state = False
    chunked_backward = True     # recurrent_grads takes the steps a chunk at a time (see scan)

    def __init__(self, nonlinearity: str = "tanh", clip: float | None = None):
        if nonlinearity not in NONLINEARITIES:
            fail("nonlinearity", f"one of {NONLINEARITIES}", repr(nonlinearity))
        self.nonlinearity = nonlinearity
        self.clip = check_clip(clip)

    def prepare(self, p: dict) -> dict:
        """Weights laid out for the time loop: transposed, both biases in the input part."""
        W_xh = p["W_xh"].copy()      # (Wx_T, its view, is a GEMM operand: no copy of its own)
        return {"Wx_T": W_xh.T, "bx": p["b_xh"] + p["b_hh"], "Wh_T": transposed(p["W_hh"]),
                "W_xh": W_xh}

    def backward_weights(self, k: dict) -> None:
        """Adds to ``k`` from prepare() the W_hh it was made from (rnnkit.fast.fused.weights)."""
        k["W_hh"] = restored(k["Wh_T"])

    def alloc(self, T: int, N: int, H: int, dtype, n_active) -> dict:
        # the layer output h_t is all backward needs (f'(a) is a function of h_t), and with
        # clipping where the pre-activation was clamped (its gradient is zero there)
        return {"clipped": np.zeros((T, N, H), bool)} if self.clip else {}

    def step(self, k, cache, t, n, gx, h_prev, c_prev, h_out, c_out):
        # h_t = f(W_xh x_t + b + W_hh h_{t-1}); h_out holds W_xh x_t + b (gx is h_out: the
        # scan projects the input into the output buffer, one (T, N, H) array less)
        blas.matmul(h_prev, k["Wh_T"], h_out, accumulate=True)
        if self.clip:
            clip_(h_out, self.clip, cache["clipped"][t, :n])
        if self.nonlinearity == "tanh":
            np.tanh(h_out, out=h_out)
        else:
            np.maximum(h_out, 0, out=h_out)

    def step_back(self, k, cache, t, n, dh, dc, h_prev, c_prev, h, c, dgx, dgh):
        """dh: dL/dh_t for rows [:n], overwritten with dL/dh_{t-1}. Writes dL/da_t to dgx."""
        if self.nonlinearity == "tanh":
            np.multiply(h, h, out=dgx)
            np.subtract(1, dgx, out=dgx)            # tanh'(a) = 1 - h^2
            dgx *= dh
        else:
            np.multiply(dh, h > 0, out=dgx)         # relu'(a) = [h > 0]
        if self.clip:
            dgx[cache["clipped"][t, :n]] = 0
        np.matmul(dgx, k["W_hh"], out=dh)

    def recurrent_grads(self, p, cache, dGx, dGx_sum, grads, prefix, t0=0):
        """dGx: dL/da of the steps [t0, t0 + len(dGx)) (the scan's chunks); dGx_sum: its sum
        over steps and rows, which the scan took for b_xh."""
        history.product(dGx, cache["out"], cache["h0"], cache["n_active"], cache["reverse"],
                        into=grads[prefix + "W_hh"], t0=t0)
        grads[prefix + "b_hh"] += dGx_sum
