"""A Gaussian output head's loss: each prediction is a mean and a variance (notes 000, 004).

The model's outputs (N, 2K) hold K means mu and K log-variances v (sigma^2 = exp(v)); the loss
is the mean negative log-likelihood of the targets y (N, K):

    NLL = 1/2 [ log(2 pi) + v + (y - mu)^2 exp(-v) ]
    dNLL/dmu = -(y - mu) exp(-v)          dNLL/dv = 1/2 [ 1 - (y - mu)^2 exp(-v) ]

v is clipped to [-V_MAX, V_MAX] in the forward pass (where the gradient is zero), so that a
wild early step cannot make exp(-v) overflow.
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import fail

V_MAX = 15.0


def split_outputs(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2K) -> means (N, K), log-variances (N, K)."""
    if outputs.ndim != 2 or outputs.shape[1] % 2:
        fail("outputs", "a 2-d array (N, 2K): K means, then K log-variances",
             f"shape {outputs.shape}")
    K = outputs.shape[1] // 2
    return outputs[:, :K], outputs[:, K:]


def gaussian_nll(outputs: np.ndarray, targets, lengths=None):
    """Mean NLL over every target value; returns (loss, doutputs (N, 2K))."""
    mu, v = split_outputs(outputs)
    y = np.asarray(targets, outputs.dtype).reshape(mu.shape)
    clipped = np.clip(v, -V_MAX, V_MAX)
    inv = np.exp(-clipped.astype(np.float64))
    r = y.astype(np.float64) - mu
    count = mu.size
    loss = 0.5 * (np.log(2 * np.pi) + clipped + r * r * inv).sum() / count
    dmu = -r * inv / count
    dv = 0.5 * (1 - r * r * inv) / count * (np.abs(v) < V_MAX)
    return float(loss), np.concatenate([dmu, dv], axis=1).astype(outputs.dtype)


def mse_loss(outputs: np.ndarray, targets, lengths=None):
    """Mean squared error of point forecasts (N, K) against targets (N, K)."""
    y = np.asarray(targets, outputs.dtype).reshape(outputs.shape)
    r = outputs - y
    return float((r.astype(np.float64) ** 2).mean()), (2 * r / r.size).astype(outputs.dtype)
