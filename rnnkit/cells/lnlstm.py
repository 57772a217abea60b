"""Layer-normalised LSTM (Ba et al. 2016; haste's LayerNormLSTM), the reference: one time step.

    a_t = LN(W_xh x_t; gamma_xh, b_xh) + LN(W_hh h_{t-1}; gamma_hh, b_hh)     (N, 4H)
    i_t, f_t, o_t = sigma(a_i), sigma(a_f), sigma(a_o);   C~_t = tanh(a_c)
    C_t = f_t * C_{t-1} + i_t * C~_t                                           cell state
    h_t = o_t * tanh(LN(C_t; gamma_c, beta_c))

LN normalises the input and the recurrent pre-activations separately (rnnkit.cells.layer_norm),
each over all 4H of them as Ba et al. and haste do, or, with ``per_gate=True``, over each
gate's H separately; b_xh and b_hh are their LN biases. The carried cell state is C_t itself,
not its normalised form. Gates stacked in PyTorch's order i, f, C~, o (haste's is i, g, f, o):
W_xh (4H, D), W_hh (4H, H), b_xh, b_hh, gamma_xh, gamma_hh (4H,), gamma_c, beta_c (H,).
"""
import numpy as np

from rnnkit.cells.layer_norm import layer_norm, layer_norm_back


def sigmoid(a):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-a))


def lnlstm_step(x_t, h_prev, c_prev, p, per_gate=False):
    H = h_prev.shape[1]
    groups = 4 if per_gate else 1
    a_x, ln_x = layer_norm(x_t @ p["W_xh"].T, p["gamma_xh"], p["b_xh"], groups)
    a_h, ln_h = layer_norm(h_prev @ p["W_hh"].T, p["gamma_hh"], p["b_hh"], groups)
    a = a_x + a_h                                                           # (N, 4H)
    i, f = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H])
    c_tilde, o = np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
    c_t = f * c_prev + i * c_tilde
    c_norm, ln_c = layer_norm(c_t, p["gamma_c"], p["beta_c"])
    tanh_c = np.tanh(c_norm)
    h_t = o * tanh_c
    return h_t, c_t, (x_t, h_prev, c_prev, i, f, c_tilde, o, tanh_c, ln_x, ln_h, ln_c)


def lnlstm_step_back(dh_t, dc_t, cache, p, per_gate=False):
    x_t, h_prev, c_prev, i, f, c_tilde, o, tanh_c, ln_x, ln_h, ln_c = cache
    groups = 4 if per_gate else 1
    da_o = dh_t * tanh_c * o * (1 - o)
    dc_ln, dgamma_c, dbeta_c = layer_norm_back(dh_t * o * (1 - tanh_c * tanh_c),
                                               p["gamma_c"], ln_c)
    dc = dc_t + dc_ln
    da = np.concatenate([dc * c_tilde * i * (1 - i), dc * c_prev * f * (1 - f),
                         dc * i * (1 - c_tilde * c_tilde), da_o], axis=1)      # (N, 4H)
    d_rec, dgamma_hh, db_hh = layer_norm_back(da, p["gamma_hh"], ln_h, groups)
    d_in, dgamma_xh, db_xh = layer_norm_back(da, p["gamma_xh"], ln_x, groups)
    grads = {"W_xh": d_in.T @ x_t, "W_hh": d_rec.T @ h_prev, "b_xh": db_xh, "b_hh": db_hh,
             "gamma_xh": dgamma_xh, "gamma_hh": dgamma_hh, "gamma_c": dgamma_c,
             "beta_c": dbeta_c}
    return d_in @ p["W_xh"], d_rec @ p["W_hh"], dc * f, grads


def lnlstm_params(D, H, **options):
    return {"W_xh": ((4 * H, D), "input"), "W_hh": ((4 * H, H), "recurrent"),
            "b_xh": ((4 * H,), "bias"), "b_hh": ((4 * H,), "bias"),
            "gamma_xh": ((4 * H,), "ones"), "gamma_hh": ((4 * H,), "ones"),
            "gamma_c": ((H,), "ones"), "beta_c": ((H,), "zeros")}


SPEC = dict(name="lnlstm", layer="LayerNormLSTM",
            equations="a_t = LN(W_xh x_t) + LN(W_hh h_{t-1}), C_t = f_t C_{t-1} + i_t C~_t, "
            "h_t = o_t tanh(LN(C_t))", step=lnlstm_step, step_back=lnlstm_step_back,
            params=lnlstm_params, states=("h", "c"), gates=("i", "f", "c~", "o"),
            options={"per_gate": (False, bool)}, fast="lnlstm")
