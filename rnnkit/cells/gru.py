"""GRU cell in the notes' convention (note 003), the reference: one time step, forward and back.

    z_t = sigma(W_xz x_t + b_xz + W_hz h_{t-1} + b_hz)                    update gate
    r_t = sigma(W_xr x_t + b_xr + W_hr h_{t-1} + b_hr)                    reset gate
    h~_t = tanh(W_xh x_t + b_xh + r_t * (W_hh h_{t-1} + b_hh))            reset after (default)
    h~_t = tanh(W_xh x_t + b_xh + W_hh (r_t * h_{t-1}) + b_hh)            reset before
    h_t = (1 - z_t) * h_{t-1} + z_t * h~_t

"Reset after" is cuDNN's, PyTorch's and ONNX's linear_before_reset=1; "reset before" is Cho
et al. 2014's and ONNX's default. The gates are stacked in PyTorch's order r, z, h~
(PyTorch's "n"): W_xh (3H, D), W_hh (3H, H), b_xh and b_hh (3H,). With ``clip`` (ONNX) each
gate's pre-activation is clamped to [-clip, clip], with zero gradient where clamped.

PyTorch and ONNX write the update the other way round, h_t = (1 - z') h~_t + z' h_{t-1}.
Since 1 - sigma(a) = sigma(-a), z' = 1 - z exactly when the update gate's weights and biases
are negated: ``to_pytorch_convention`` / ``from_pytorch_convention`` do that, bit-exactly.
"""
import numpy as np


def sigmoid(a):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-a))


def _clipped(a, clip):
    if clip is None:
        return a, None
    return np.clip(a, -clip, clip), np.abs(a) > clip


def gru_step(x_t, h_prev, p, reset_after=True, clip=None):
    H = h_prev.shape[1]
    W_hh, b_hh = p["W_hh"], p["b_hh"]
    a_x = x_t @ p["W_xh"].T + p["b_xh"]                             # (N, 3H): r, z, h~
    a_rz = a_x[:, :2 * H] + h_prev @ W_hh[:2 * H].T + b_hh[:2 * H]
    a_rz, clip_rz = _clipped(a_rz, clip)
    r, z = sigmoid(a_rz[:, :H]), sigmoid(a_rz[:, H:])
    if reset_after:
        hn = h_prev @ W_hh[2 * H:].T + b_hh[2 * H:]                 # W_hh h_{t-1} + b_hh
        a_n = a_x[:, 2 * H:] + r * hn
    else:
        hn = r * h_prev                                            # r_t * h_{t-1}
        a_n = a_x[:, 2 * H:] + hn @ W_hh[2 * H:].T + b_hh[2 * H:]
    a_n, clip_n = _clipped(a_n, clip)
    h_tilde = np.tanh(a_n)
    h_t = (1 - z) * h_prev + z * h_tilde
    return h_t, (x_t, h_prev, r, z, h_tilde, hn, clip_rz, clip_n)


def gru_step_back(dh_t, cache, p, reset_after=True, clip=None):
    x_t, h_prev, r, z, h_tilde, hn, clip_rz, clip_n = cache
    H = h_prev.shape[1]
    W_hh = p["W_hh"]
    da_n = dh_t * z * (1 - h_tilde * h_tilde)
    if clip_n is not None:
        da_n = np.where(clip_n, 0, da_n)
    dz = dh_t * (h_tilde - h_prev)
    dh_prev = dh_t * (1 - z)
    if reset_after:
        dr = da_n * hn
        dhn = da_n * r                                  # d(W_hh h_{t-1} + b_hh) of h~
    else:
        d_rh = da_n @ W_hh[2 * H:]                      # d(r_t * h_{t-1})
        dr = d_rh * h_prev
        dh_prev = dh_prev + d_rh * r
    da_rz = np.concatenate([dr * r * (1 - r), dz * z * (1 - z)], axis=1)
    if clip_rz is not None:
        da_rz = np.where(clip_rz, 0, da_rz)
    da_x = np.concatenate([da_rz, da_n], axis=1)                           # (N, 3H)
    if reset_after:
        da_h = np.concatenate([da_rz, dhn], axis=1)
        grads = {"W_hh": da_h.T @ h_prev, "b_hh": da_h.sum(axis=0)}
        dh_prev = dh_prev + da_h @ W_hh
    else:
        grads = {"W_hh": np.concatenate([da_rz.T @ h_prev, da_n.T @ hn]),
                 "b_hh": da_x.sum(axis=0)}
        dh_prev = dh_prev + da_rz @ W_hh[:2 * H]
    grads.update(W_xh=da_x.T @ x_t, b_xh=da_x.sum(axis=0))
    return da_x @ p["W_xh"], dh_prev, grads


def to_pytorch_convention(p: dict) -> dict:
    """Notes-convention GRU parameters -> PyTorch convention (negate the z rows). Exact."""
    out = {name: a.copy() for name, a in p.items()}
    for name in ("W_xh", "W_hh", "b_xh", "b_hh"):
        H = out[name].shape[0] // 3
        out[name][H:2 * H] *= -1
    return out


from_pytorch_convention = to_pytorch_convention   # negation is its own inverse


def gru_params(D, H, **options):
    return {"W_xh": ((3 * H, D), "input"), "W_hh": ((3 * H, H), "recurrent"),
            "b_xh": ((3 * H,), "bias"), "b_hh": ((3 * H,), "bias")}


SPEC = dict(name="gru", layer="GRU", equations="h_t = (1 - z_t) h_{t-1} + z_t h~_t",
            step=gru_step, step_back=gru_step_back, params=gru_params, gates=("r", "z", "h~"),
            options={"reset_after": (True, bool), "clip": (None, "positive or None")},
            onnx_op="GRU", torch_module="GRU", fast="gru")
