"""LSTM cell (notes 001, 003, 004), optionally with peephole connections (as ONNX LSTM).

    i_t = sigma(W_xi x_t + b_xi + W_hi h_{t-1} + b_hi [+ p_i * C_{t-1}])   input gate
    f_t = sigma(W_xf x_t + b_xf + W_hf h_{t-1} + b_hf [+ p_f * C_{t-1}])   forget gate
    C~_t = tanh(W_xc x_t + b_xc + W_hc h_{t-1} + b_hc)                     candidate
    C_t = f_t * C_{t-1} + i_t * C~_t                                        cell state
    o_t = sigma(W_xo x_t + b_xo + W_ho h_{t-1} + b_ho [+ p_o * C_t])       output gate
    h_t = o_t * tanh(C_t)

With ``clip`` (ONNX) each gate's pre-activation is clamped to [-clip, clip] before its
activation (not the cell state, as onnxruntime); its gradient is zero where clamped.

Fused parameters stack the gates in PyTorch's order i, f, C~ (PyTorch's "g"), o:
W_xh (4H, D), W_hh (4H, H), b_xh (4H), b_hh (4H). Peepholes P (3H) in the order i, f, o.

Speed: sigma(a) = (1 + tanh(a / 2)) / 2, so after scaling the sigmoid gates' weights and
biases by 1/2 (exact in floating point) one tanh pass over the (n, 4H) block serves all four
gates (docs/performance.md, section 7).
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast import workspace
from rnnkit.fast.fused import history
from rnnkit.fast.fused.rnn import check_clip, clip_
from rnnkit.fast.fused.weights import restored, transposed


class LSTMCell:
    n_gates = 4
    has_cell_state = True

    def __init__(self, peepholes: bool = False, clip: float | None = None):
        self.peepholes = peepholes
        self.clip = check_clip(clip)

    def prepare(self, p: dict) -> dict:
        H = p["W_hh"].shape[1]
        scale = np.full(4 * H, 0.5, dtype=p["W_hh"].dtype)
        scale[2 * H:3 * H] = 1.0                       # the candidate is a real tanh
        # Wx_T serves the input projection alone, whose GEMM takes a transposed operand
        k = {"Wx_T": (p["W_xh"] * scale[:, None]).T,
             "bx": (p["b_xh"] + p["b_hh"]) * scale,
             "Wh_T": transposed(p["W_hh"], scale), "scale": scale}
        if self.peepholes:
            P = p["P"].reshape(3, H)
            k["P"] = P.copy()
            k["P_half"] = 0.5 * P
        if self.clip:
            k["bound"] = self.clip * scale          # the gates' inputs arrive scaled
        return k

    def backward_weights(self, k: dict) -> None:
        """Adds to ``k`` from prepare() the W_hh and W_xh it was made from, exactly
        (rnnkit.fast.fused.weights)."""
        k["W_hh"] = restored(k["Wh_T"], k["scale"])
        k["W_xh"] = k["Wx_T"].T * (1 / k["scale"])[:, None]

    def alloc(self, T, N, H, dtype, n_active):
        # gates: the input projection W_xh x_t + b on entry to step t, i, f, C~, o after it
        cache = {"gates": workspace.empty((T, N, 4 * H), dtype),
                 "tanh_c": workspace.time_major((T, N, H), dtype, n_active),
                 "tmp": np.empty((N, H), dtype), "rec": workspace.empty((N, 4 * H), dtype),
                 "slope": workspace.empty((N, 4 * H), dtype)}
        if self.clip:
            cache["clipped"] = np.zeros((T, N, 4 * H), bool)
        return cache

    def step(self, k, cache, t, n, gx, h_prev, c_prev, h_out, c_out):
        H = h_prev.shape[1]
        a = gx                                      # rows [:n] of the gates buffer, in place
        rec = cache["rec"][:n]
        np.matmul(h_prev, k["Wh_T"], out=rec)
        a += rec
        if self.peepholes:
            a[:, :H] += k["P_half"][0] * c_prev
            a[:, H:2 * H] += k["P_half"][1] * c_prev
        if self.clip:
            clip_(a[:, :3 * H], k["bound"][:3 * H], cache["clipped"][t, :n, :3 * H])
        np.tanh(a[:, :3 * H], out=a[:, :3 * H])
        i, f, g = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H]
        ifo = a[:, :2 * H]
        ifo *= 0.5
        ifo += 0.5
        np.multiply(f, c_prev, out=c_out)                       # C_t = f * C_{t-1} + i * C~
        tmp = cache["tmp"][:n]
        np.multiply(i, g, out=tmp)
        c_out += tmp
        o = a[:, 3 * H:]
        if self.peepholes:
            o += k["P_half"][2] * c_out
        if self.clip:
            clip_(o, k["bound"][3 * H:], cache["clipped"][t, :n, 3 * H:])
        np.tanh(o, out=o)
        o *= 0.5
        o += 0.5
        tc = cache["tanh_c"][t, :n]
        np.tanh(c_out, out=tc)
        np.multiply(o, tc, out=h_out)                           # h_t = o * tanh(C_t)

    def step_back(self, k, cache, t, n, dh, dc, h_prev, c_prev, h, c, dgx, dgh):
        """dh, dc: dL/dh_t, dL/dC_t for rows [:n], overwritten with those of step t-1."""
        H = dh.shape[1]
        acts = cache["gates"][t, :n]
        i, f, g, o = acts[:, :H], acts[:, H:2 * H], acts[:, 2 * H:3 * H], acts[:, 3 * H:]
        tc = cache["tanh_c"][t, :n]
        tmp = cache["tmp"][:n]
        slope = cache["slope"][:n]                               # (n, 4H) scratch
        np.multiply(tc, tc, out=tmp)                             # dC_t += dh * o * (1 - tanh^2 C_t)
        np.subtract(1, tmp, out=tmp)
        tmp *= o
        tmp *= dh
        dc += tmp
        da_i, da_f, da_g, da_o = dgx[:, :H], dgx[:, H:2 * H], dgx[:, 2 * H:3 * H], dgx[:, 3 * H:]
        np.multiply(dh, tc, out=da_o)                            # dL/d(activations) first,
        if self.peepholes:                                       # (dC_t also gets p_o * da_o)
            np.multiply(o, 1 - o, out=tmp)
            da_o *= tmp
            if self.clip:
                da_o[cache["clipped"][t, :n, 3 * H:]] = 0
            dc += da_o * k["P"][2]
        np.multiply(dc, g, out=da_i)
        np.multiply(dc, c_prev, out=da_f)
        np.multiply(dc, i, out=da_g)
        np.subtract(1, acts, out=slope)                          # then times the slopes:
        slope *= acts                                            # sigma' = s (1 - s)
        np.multiply(g, g, out=slope[:, 2 * H:3 * H])
        np.subtract(1, slope[:, 2 * H:3 * H], out=slope[:, 2 * H:3 * H])   # tanh' = 1 - C~^2
        if self.peepholes:
            dgx[:, :3 * H] *= slope[:, :3 * H]                   # o was done above
        else:
            dgx *= slope
        if self.clip:                                            # clamped: no gradient
            dgx[cache["clipped"][t, :n]] = 0
        dc *= f                                                  # dL/dC_{t-1}
        if self.peepholes:
            dc += da_i * k["P"][0] + da_f * k["P"][1]
        np.matmul(dgx, k["W_hh"], out=dh)

    def recurrent_grads(self, p, cache, dGx, dGx_sum, grads, prefix):
        """dGx_sum: dGx summed over steps and rows, which the scan took for b_xh."""
        dA = dGx.reshape(-1, dGx.shape[-1])
        n_active, reverse = cache["n_active"], cache["reverse"]
        history.product(dGx, cache["out"], cache["h0"], n_active, reverse,
                        into=grads[prefix + "W_hh"])
        grads[prefix + "b_hh"] += dGx_sum
        if self.peepholes:
            H = dGx.shape[-1] // 4
            Cprev = history.shifted(cache["c"], cache["c0"], n_active, reverse).reshape(-1, H)
            C = cache["c"].reshape(-1, H)
            dP = grads[prefix + "P"].reshape(3, H)
            dP[0] += np.einsum("ij,ij->j", dA[:, :H], Cprev)
            dP[1] += np.einsum("ij,ij->j", dA[:, H:2 * H], Cprev)
            dP[2] += np.einsum("ij,ij->j", dA[:, 3 * H:], C)
