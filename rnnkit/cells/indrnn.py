"""IndRNN cell (Li et al. 2018), the reference: one time step, forward and back.

    h_t = relu(W_xh x_t + u * h_{t-1} + b)

Each unit reads only its own previous state, through one weight u (a vector, not a matrix),
so the gradient through time of unit j is a product of u_j and the relu's slopes: it neither
vanishes nor explodes while |u_j| stays near 1, which is how IndRNN trains over thousands of
steps. Shapes: W_xh (H, D), u (H,), b (H,). ``nonlinearity`` tanh is offered for comparison.
"""
import numpy as np


def indrnn_step(x_t, h_prev, p, nonlinearity="relu"):
    a = x_t @ p["W_xh"].T + p["u"] * h_prev + p["b"]                         # (N, H)
    h_t = np.maximum(a, 0) if nonlinearity == "relu" else np.tanh(a)
    return h_t, (x_t, h_prev, h_t)


def indrnn_step_back(dh_t, cache, p, nonlinearity="relu"):
    x_t, h_prev, h_t = cache
    da = dh_t * (h_t > 0) if nonlinearity == "relu" else dh_t * (1 - h_t * h_t)
    grads = {"W_xh": da.T @ x_t, "u": (da * h_prev).sum(axis=0), "b": da.sum(axis=0)}
    return da @ p["W_xh"], da * p["u"], grads


def indrnn_params(D, H, **options):
    return {"W_xh": ((H, D), "input"), "u": ((H,), "recurrent_vector"), "b": ((H,), "bias")}


SPEC = dict(name="indrnn", layer="IndRNN", equations="h_t = relu(W_xh x_t + u * h_{t-1} + b)",
            step=indrnn_step, step_back=indrnn_step_back, params=indrnn_params,
            options={"nonlinearity": ("relu", ("relu", "tanh"))})
