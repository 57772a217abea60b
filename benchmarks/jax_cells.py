"""RNN (tanh), LSTM and GRU layers in JAX for the peer benchmark: the math of torch.nn.

Parameters are PyTorch's, keyed as its state dict (one layer, one direction):
``weight_ih_l0`` (G*H, D), ``weight_hh_l0`` (G*H, H), ``bias_ih_l0``, ``bias_hh_l0`` (G*H,),
gates in PyTorch's order (LSTM i, f, g, o; GRU r, z, n with the reset applied after the
recurrent product, as torch.nn.GRU):

    RNN   h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    LSTM  i, f, g, o = sigma, sigma, tanh, sigma of (W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
          c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
    GRU   r, z = sigma(W_i{r,z} x_t + b_i{r,z} + W_h{r,z} h_{t-1} + b_h{r,z})
          n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
          h_t = (1 - z) * n + z * h_{t-1}

As in rnnkit and PyTorch's CPU kernels, the input projection of all T steps is one matrix
product before the time loop; ``lax.scan`` runs only the recurrent part.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def _rnn_step(W_hh_T, b_hh, h, gx):
    h = jnp.tanh(gx + h @ W_hh_T + b_hh)
    return h, h


def _lstm_step(W_hh_T, b_hh, carry, gx):
    h, c = carry
    i, f, g, o = jnp.split(gx + h @ W_hh_T + b_hh, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h


def _gru_step(W_hh_T, b_hh, h, gx):
    x_r, x_z, x_n = jnp.split(gx, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(h @ W_hh_T + b_hh, 3, axis=-1)
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + r * h_n)
    h = (1.0 - z) * n + z * h
    return h, h


STEPS = {"rnn": _rnn_step, "lstm": _lstm_step, "gru": _gru_step}


def forward(cell: str, p: dict, x):
    """x (N, T, D) -> (out (N, T, H), final state: h (N, H), or (h, c) for the LSTM)."""
    N = x.shape[0]
    H = p["weight_hh_l0"].shape[1]
    gx = x @ p["weight_ih_l0"].T + p["bias_ih_l0"]                  # (N, T, G*H)
    W_hh_T = p["weight_hh_l0"].T
    h0 = jnp.zeros((N, H), x.dtype)
    init = (h0, h0) if cell == "lstm" else h0
    step = STEPS[cell]
    state, ys = lax.scan(lambda carry, g: step(W_hh_T, p["bias_hh_l0"], carry, g), init,
                         jnp.swapaxes(gx, 0, 1))                    # ys (T, N, H)
    return jnp.swapaxes(ys, 0, 1), state


def make_steps(cell: str):
    """-> (jitted inference forward (p, x), jitted value_and_grad of sum(out * R) (p, x, R))."""
    def loss(p, x, R):
        out, _ = forward(cell, p, x)
        return jnp.sum(out * R)

    infer = jax.jit(lambda p, x: forward(cell, p, x))
    train = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    return infer, train
