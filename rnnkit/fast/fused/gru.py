"""GRU cell in the notes' convention (note 003).

    z_t = sigma(W_xz x_t + b_xz + W_hz h_{t-1} + b_hz)                    update gate
    r_t = sigma(W_xr x_t + b_xr + W_hr h_{t-1} + b_hr)                    reset gate
    h~_t = tanh(W_xh x_t + b_xh + r_t * (W_hh h_{t-1} + b_hh))            reset after (default)
    h~_t = tanh(W_xh x_t + b_xh + W_hh (r_t * h_{t-1}) + b_hh)            reset before
    h_t = (1 - z_t) * h_{t-1} + z_t * h~_t

With ``clip`` (ONNX) each gate's pre-activation is clamped to [-clip, clip] before its
activation; its gradient is zero where clamped.

"Reset after" applies r to the recurrent product (cuDNN, PyTorch, ONNX
linear_before_reset=1, Keras reset_after=True); "reset before" applies it to h_{t-1}
(Cho et al. 2014, ONNX's default linear_before_reset=0, Keras reset_after=False).

Fused parameters stack the gates in PyTorch's order r, z, h~ (PyTorch's "n"):
W_xh (3H, D), W_hh (3H, H), b_xh (3H), b_hh (3H).

(PyTorch's convention for z: rnnkit.cells.gru.to_pytorch_convention.)
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast import blas, workspace
from rnnkit.fast.fused import history
from rnnkit.fast.fused.rnn import check_clip, clip_
from rnnkit.fast.fused.weights import restored, transposed


class GRUCell:
    n_gates = 3
    has_cell_state = False

    def __init__(self, reset_after: bool = True, clip: float | None = None):
        self.reset_after = reset_after
        self.clip = check_clip(clip)

    def prepare(self, p: dict) -> dict:
        H = p["W_hh"].shape[1]
        half = np.full(3 * H, 0.5, dtype=p["W_hh"].dtype)
        half[2 * H:] = 1.0                      # sigma(a) = (1 + tanh(a/2)) / 2 for r and z
        bx = p["b_xh"] * half
        bx[:2 * H] += p["b_hh"][:2 * H] * half[:2 * H]   # b_hh of h~ stays inside r * (...)
        k = {"Wx_T": (p["W_xh"] * half[:, None]).T, "bx": bx,         # (a GEMM operand)
             "b_hn": p["b_hh"][2 * H:].copy(), "half": half}
        Wh_T = transposed(p["W_hh"], half)
        if self.reset_after:
            k["Wh_T"] = Wh_T
        else:
            k["Whrz_T"] = np.ascontiguousarray(Wh_T[:, :2 * H])
            k["Whn_T"] = np.ascontiguousarray(Wh_T[:, 2 * H:])
        return k

    def backward_weights(self, k: dict) -> None:
        """Adds to ``k`` from prepare() the W_hh and W_xh it was made from, exactly
        (rnnkit.fast.fused.weights)."""
        half = k["half"]
        if self.reset_after:
            k["W_hh"] = restored(k["Wh_T"], half)
        else:
            H = half.shape[0] // 3
            k["W_hh"] = np.concatenate([restored(k["Whrz_T"], half[:2 * H]),
                                        restored(k["Whn_T"])])
        k["W_xh"] = k["Wx_T"].T * (1 / half)[:, None]

    def alloc(self, T, N, H, dtype, n_active):
        # gates: r, z, h~ after activation; hn: W_hh h_{t-1} + b_hh of h~ (reset after) or
        # r * h_{t-1} (reset before), the two quantities backward cannot cheaply recompute.
        # gates holds the input projection W_xh x_t + b on entry to step t
        cache = {"gates": workspace.empty((T, N, 3 * H), dtype),
                 "hn": workspace.time_major((T, N, H), dtype, n_active),
                 "gh": workspace.empty((N, 3 * H), dtype), "tmp": np.empty((N, H), dtype),
                 "slope": workspace.empty((N, 3 * H), dtype)}
        if self.clip:
            cache["clipped"] = np.zeros((T, N, 3 * H), bool)
        return cache

    def step(self, k, cache, t, n, gx, h_prev, c_prev, h_out, c_out):
        H = h_prev.shape[1]
        a = gx                                      # rows [:n] of the gates buffer, in place
        hn, gh, tmp = cache["hn"][t, :n], cache["gh"][:n], cache["tmp"][:n]
        if self.reset_after:
            np.matmul(h_prev, k["Wh_T"], out=gh)
        else:
            np.matmul(h_prev, k["Whrz_T"], out=gh[:, :2 * H])
        a[:, :2 * H] += gh[:, :2 * H]
        rz = a[:, :2 * H]
        if self.clip:                          # the r, z inputs arrive halved
            clip_(rz, 0.5 * self.clip, cache["clipped"][t, :n, :2 * H])
        np.tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5
        r, z, hc = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
        if self.reset_after:                   # h~ = tanh(W_xh x + b_xh + r * (W_hh h + b_hh))
            np.add(gh[:, 2 * H:], k["b_hn"], out=hn)
            np.multiply(r, hn, out=tmp)
        else:                                  # h~ = tanh(W_xh x + b_xh + W_hh (r * h) + b_hh)
            np.multiply(r, h_prev, out=hn)
            np.matmul(hn, k["Whn_T"], out=tmp)
            tmp += k["b_hn"]
        hc += tmp                              # hc held W_xh x + b_xh of the candidate
        if self.clip:
            clip_(hc, self.clip, cache["clipped"][t, :n, 2 * H:])
        np.tanh(hc, out=hc)
        np.subtract(hc, h_prev, out=h_out)     # h = (1 - z) h_{t-1} + z h~ = h_{t-1} + z (h~ - h_{t-1})
        h_out *= z
        h_out += h_prev

    def step_back(self, k, cache, t, n, dh, dc, h_prev, c_prev, h, c, dgx, dgh):
        H = dh.shape[1]
        acts = cache["gates"][t, :n]
        r, z, hc = acts[:, :H], acts[:, H:2 * H], acts[:, 2 * H:]
        hn = cache["hn"][t, :n]
        slope = cache["slope"][:n]                              # (n, 3H) scratch
        da_r, da_z, da_n = dgx[:, :H], dgx[:, H:2 * H], dgx[:, 2 * H:]
        np.subtract(1, acts, out=slope)
        slope *= acts                                           # sigma' = s (1 - s) for r, z
        np.multiply(hc, hc, out=slope[:, 2 * H:])
        np.subtract(1, slope[:, 2 * H:], out=slope[:, 2 * H:])  # tanh' = 1 - h~^2
        np.subtract(hc, h_prev, out=da_z)                       # dz = dh * (h~ - h_{t-1})
        da_z *= dh
        np.multiply(dh, z, out=da_n)                            # dh~ = dh * z
        da_n *= slope[:, 2 * H:]
        clipped = cache["clipped"][t, :n] if self.clip else None
        if self.clip:                                           # clamped: no gradient
            da_n[clipped[:, 2 * H:]] = 0
        dh -= dh * z                                            # direct path: dh * (1 - z)
        if self.reset_after:
            np.multiply(da_n, hn, out=da_r)                     # dr = da_n * (W_hh h + b_hh)
            dgx[:, :2 * H] *= slope[:, :2 * H]
            if self.clip:
                dgx[:, :2 * H][clipped[:, :2 * H]] = 0
            np.multiply(da_n, r, out=hn)        # hn is spent: it keeps d(W_hh h + b_hh) now
            dgh[:, :2 * H] = dgx[:, :2 * H]
            dgh[:, 2 * H:] = hn
            dh += dgh @ k["W_hh"]
        else:
            d_rh = da_n @ k["W_hh"][2 * H:]                     # d(r * h_{t-1})
            np.multiply(d_rh, h_prev, out=da_r)
            dgx[:, :2 * H] *= slope[:, :2 * H]
            if self.clip:
                dgx[:, :2 * H][clipped[:, :2 * H]] = 0
            d_rh *= r
            dh += d_rh
            dh += dgx[:, :2 * H] @ k["W_hh"][:2 * H]

    def recurrent_grads(self, p, cache, dGx, dGx_sum, grads, prefix):
        """dGx_sum: dGx summed over steps and rows, which the scan took for b_xh."""
        H = dGx.shape[-1] // 3
        dW, db = grads[prefix + "W_hh"], grads[prefix + "b_hh"]
        before = (cache["out"], cache["h0"], cache["n_active"], cache["reverse"])
        if self.reset_after:          # backward left dL/d(W_hn h + b_hn) in hn
            history.product(dGx[..., :2 * H], *before, into=dW[:2 * H])
            history.product(cache["hn"], *before, into=dW[2 * H:])
            db[:2 * H] += dGx_sum[:2 * H]
            db[2 * H:] += blas.column_sums(cache["hn"].reshape(-1, H))
        else:
            dA = dGx.reshape(-1, 3 * H)
            history.product(dGx[..., :2 * H], *before, into=dW[:2 * H])
            blas.matmul(dA[:, 2 * H:].T, cache["hn"].reshape(-1, H), dW[2 * H:], accumulate=True)
            db += dGx_sum
