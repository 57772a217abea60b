"""Layer-normalised GRU (haste's LayerNormGRU) in the notes' convention: one time step.

    a_x = LN(W_xh x_t; gamma_xh, b_xh),   a_h = LN(W_hh h_{t-1}; gamma_hh, b_hh)   (N, 3H)
    r_t = sigma(a_x[r] + a_h[r]),   z_t = sigma(a_x[z] + a_h[z])       reset, update gates
    h~_t = tanh(a_x[h~] + r_t * a_h[h~])                                reset after
    h_t = (1 - z_t) * h_{t-1} + z_t * h~_t

LN normalises the input and the recurrent pre-activations separately (rnnkit.cells.layer_norm),
each over all 3H of them as haste does, or, with ``per_gate=True``, over each gate's H
separately; b_xh and b_hh are their LN biases. The reset gate acts after the recurrent product
(haste supports only that variant, as rnnkit's fast GRU). haste writes the update the other way
round, h_t = z' h_{t-1} + (1 - z') h~_t: z' = 1 - z. Gates stacked in PyTorch's order r, z, h~
(haste's is z, r, h~): W_xh (3H, D), W_hh (3H, H), b_xh, b_hh, gamma_xh, gamma_hh (3H,).
"""
import numpy as np

from rnnkit.cells.layer_norm import layer_norm, layer_norm_back


def sigmoid(a):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-a))


def lngru_step(x_t, h_prev, p, per_gate=False):
    H = h_prev.shape[1]
    groups = 3 if per_gate else 1
    a_x, ln_x = layer_norm(x_t @ p["W_xh"].T, p["gamma_xh"], p["b_xh"], groups)
    a_h, ln_h = layer_norm(h_prev @ p["W_hh"].T, p["gamma_hh"], p["b_hh"], groups)
    r = sigmoid(a_x[:, :H] + a_h[:, :H])
    z = sigmoid(a_x[:, H:2 * H] + a_h[:, H:2 * H])
    hn = a_h[:, 2 * H:]                                  # the candidate's recurrent part
    h_tilde = np.tanh(a_x[:, 2 * H:] + r * hn)
    h_t = (1 - z) * h_prev + z * h_tilde
    return h_t, (x_t, h_prev, r, z, h_tilde, hn, ln_x, ln_h)


def lngru_step_back(dh_t, cache, p, per_gate=False):
    x_t, h_prev, r, z, h_tilde, hn, ln_x, ln_h = cache
    groups = 3 if per_gate else 1
    da_n = dh_t * z * (1 - h_tilde * h_tilde)
    da_r = da_n * hn * r * (1 - r)
    da_z = dh_t * (h_tilde - h_prev) * z * (1 - z)
    da_x = np.concatenate([da_r, da_z, da_n], axis=1)                      # (N, 3H)
    da_h = np.concatenate([da_r, da_z, da_n * r], axis=1)
    d_rec, dgamma_hh, db_hh = layer_norm_back(da_h, p["gamma_hh"], ln_h, groups)
    d_in, dgamma_xh, db_xh = layer_norm_back(da_x, p["gamma_xh"], ln_x, groups)
    grads = {"W_xh": d_in.T @ x_t, "W_hh": d_rec.T @ h_prev, "b_xh": db_xh, "b_hh": db_hh,
             "gamma_xh": dgamma_xh, "gamma_hh": dgamma_hh}
    return d_in @ p["W_xh"], dh_t * (1 - z) + d_rec @ p["W_hh"], grads


def lngru_params(D, H, **options):
    return {"W_xh": ((3 * H, D), "input"), "W_hh": ((3 * H, H), "recurrent"),
            "b_xh": ((3 * H,), "bias"), "b_hh": ((3 * H,), "bias"),
            "gamma_xh": ((3 * H,), "ones"), "gamma_hh": ((3 * H,), "ones")}


SPEC = dict(name="lngru", layer="LayerNormGRU",
            equations="h_t = (1 - z_t) h_{t-1} + z_t h~_t, gates on LN(W_xh x_t) and "
            "LN(W_hh h_{t-1})", step=lngru_step, step_back=lngru_step_back,
            params=lngru_params, gates=("r", "z", "h~"), options={"per_gate": (False, bool)},
            fast="lngru")
