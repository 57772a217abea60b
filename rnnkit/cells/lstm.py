"""LSTM cell (notes 001, 003, 004), the reference: one time step, forward and back.

    i_t = sigma(W_xi x_t + b_xi + W_hi h_{t-1} + b_hi [+ p_i * C_{t-1}])   input gate
    f_t = sigma(W_xf x_t + b_xf + W_hf h_{t-1} + b_hf [+ p_f * C_{t-1}])   forget gate
    C~_t = tanh(W_xc x_t + b_xc + W_hc h_{t-1} + b_hc)                     candidate
    C_t = f_t * C_{t-1} + i_t * C~_t                                        cell state
    o_t = sigma(W_xo x_t + b_xo + W_ho h_{t-1} + b_ho [+ p_o * C_t])       output gate
    h_t = o_t * tanh(C_t)

The gates are stacked in PyTorch's order i, f, C~ (PyTorch's "g"), o: W_xh (4H, D),
W_hh (4H, H), b_xh and b_hh (4H,); peepholes P (3H,) in the order i, f, o (ONNX's). With
``clip`` (ONNX) each gate's pre-activation is clamped to [-clip, clip] (not the cell state),
with zero gradient where clamped.
"""
import numpy as np


def sigmoid(a):
    with np.errstate(over="ignore"):            # exp(-a) = inf gives sigma = 0, as it should
        return 1 / (1 + np.exp(-a))


def lstm_step(x_t, h_prev, c_prev, p, peepholes=False, clip=None):
    H = h_prev.shape[1]
    a = x_t @ p["W_xh"].T + p["b_xh"] + h_prev @ p["W_hh"].T + p["b_hh"]       # (N, 4H)
    a_i, a_f, a_c, a_o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
    P = p["P"].reshape(3, H) if peepholes else None
    if peepholes:
        a_i, a_f = a_i + P[0] * c_prev, a_f + P[1] * c_prev
    clip_ifc = None
    if clip is not None:
        a_ifc = np.concatenate([a_i, a_f, a_c], axis=1)
        clip_ifc = np.abs(a_ifc) > clip
        a_i, a_f, a_c = np.split(np.clip(a_ifc, -clip, clip), 3, axis=1)
    i, f, c_tilde = sigmoid(a_i), sigmoid(a_f), np.tanh(a_c)
    c_t = f * c_prev + i * c_tilde
    if peepholes:
        a_o = a_o + P[2] * c_t
    clip_o = None
    if clip is not None:
        clip_o = np.abs(a_o) > clip
        a_o = np.clip(a_o, -clip, clip)
    o = sigmoid(a_o)
    h_t = o * np.tanh(c_t)
    return h_t, c_t, (x_t, h_prev, c_prev, i, f, c_tilde, o, c_t, clip_ifc, clip_o)


def lstm_step_back(dh_t, dc_t, cache, p, peepholes=False, clip=None):
    x_t, h_prev, c_prev, i, f, c_tilde, o, c_t, clip_ifc, clip_o = cache
    H = h_prev.shape[1]
    tanh_c = np.tanh(c_t)                                   # recomputed: cheap
    da_o = dh_t * tanh_c * o * (1 - o)
    if clip_o is not None:
        da_o = np.where(clip_o, 0, da_o)
    dc = dc_t + dh_t * o * (1 - tanh_c * tanh_c)
    P = p["P"].reshape(3, H) if peepholes else None
    if peepholes:
        dc = dc + da_o * P[2]                               # o_t reads C_t
    da_i = dc * c_tilde * i * (1 - i)
    da_f = dc * c_prev * f * (1 - f)
    da_c = dc * i * (1 - c_tilde * c_tilde)
    if clip_ifc is not None:
        da_i, da_f, da_c = (np.where(m, 0, d) for m, d in
                            zip(np.split(clip_ifc, 3, axis=1), (da_i, da_f, da_c)))
    dc_prev = dc * f
    if peepholes:
        dc_prev = dc_prev + da_i * P[0] + da_f * P[1]
    da = np.concatenate([da_i, da_f, da_c, da_o], axis=1)                 # (N, 4H)
    grads = {"W_xh": da.T @ x_t, "W_hh": da.T @ h_prev,
             "b_xh": da.sum(axis=0), "b_hh": da.sum(axis=0)}
    if peepholes:
        grads["P"] = np.concatenate([(da_i * c_prev).sum(axis=0), (da_f * c_prev).sum(axis=0),
                                     (da_o * c_t).sum(axis=0)])
    return da @ p["W_xh"], da @ p["W_hh"], dc_prev, grads


def lstm_params(D, H, peepholes=False, **options):
    shapes = {"W_xh": ((4 * H, D), "input"), "W_hh": ((4 * H, H), "recurrent"),
              "b_xh": ((4 * H,), "bias"), "b_hh": ((4 * H,), "bias")}
    if peepholes:
        shapes["P"] = ((3 * H,), "zeros")
    return shapes


SPEC = dict(name="lstm", layer="LSTM", equations="C_t = f_t C_{t-1} + i_t C~_t, "
            "h_t = o_t tanh(C_t)", step=lstm_step, step_back=lstm_step_back,
            params=lstm_params, states=("h", "c"), gates=("i", "f", "c~", "o"),
            options={"peepholes": (False, bool), "clip": (None, "positive or None")},
            onnx_op="LSTM", torch_module="LSTM", fast="lstm")
