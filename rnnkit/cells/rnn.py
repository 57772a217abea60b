"""Elman RNN cell (notes 000, 002, 004), the reference: one time step, forward and back.

    h_t = f(W_xh x_t + b_xh + W_hh h_{t-1} + b_hh),   f = tanh (default) or relu

The notes write one bias b_h; rnnkit keeps PyTorch's two (b_h = b_xh + b_hh) so that weights
move between the libraries exactly (note 000's example: b_xh = 0.1, b_hh = 0). With ``clip``
(the ONNX operators' attribute) the pre-activation is clamped to [-clip, clip] before f, and
its gradient is zero where it was clamped.

Shapes: x_t (N, D), h (N, H), W_xh (H, D), W_hh (H, H), b_xh and b_hh (H,).
"""
import numpy as np


def rnn_step(x_t, h_prev, p, nonlinearity="tanh", clip=None):
    a = x_t @ p["W_xh"].T + p["b_xh"] + h_prev @ p["W_hh"].T + p["b_hh"]       # (N, H)
    clipped = None
    if clip is not None:
        clipped = np.abs(a) > clip
        a = np.clip(a, -clip, clip)
    h_t = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)
    return h_t, (x_t, h_prev, h_t, clipped)


def rnn_step_back(dh_t, cache, p, nonlinearity="tanh", clip=None):
    x_t, h_prev, h_t, clipped = cache
    if nonlinearity == "tanh":
        da = dh_t * (1 - h_t * h_t)              # tanh'(a) = 1 - h_t^2
    else:
        da = dh_t * (h_t > 0)                    # relu'(a) = [a > 0]
    if clipped is not None:
        da = np.where(clipped, 0, da)
    grads = {"W_xh": da.T @ x_t, "W_hh": da.T @ h_prev,
             "b_xh": da.sum(axis=0), "b_hh": da.sum(axis=0)}
    return da @ p["W_xh"], da @ p["W_hh"], grads


def rnn_params(D, H, **options):
    return {"W_xh": ((H, D), "input"), "W_hh": ((H, H), "recurrent"),
            "b_xh": ((H,), "bias"), "b_hh": ((H,), "bias")}


SPEC = dict(name="rnn", layer="RNN", equations="h_t = f(W_xh x_t + b_xh + W_hh h_{t-1} + b_hh)",
            step=rnn_step, step_back=rnn_step_back, params=rnn_params,
            options={"nonlinearity": ("tanh", ("tanh", "relu")),
                     "clip": (None, "positive or None")},
            onnx_op="RNN", torch_module="RNN", fast="rnn")
