"""The learned bridge from an encoding to a decoder's initial state (encoder-decoder models):

    h_0 = tanh(W_hy x_h + b_y)   reshaped (N, layers*H) -> (layers, N, H)   ("h.*")
    c_0 = tanh(W_hy x_c + b_y)   the same for an LSTM's cell state          ("c.*")

x_h is, e.g., the encoder's top final states side by side (N, dirs*H_enc) or an image's
feature vector (N, F). Each is a Dense layer followed by tanh; nothing new is computed.
"""
from __future__ import annotations

import numpy as np

from rnnkit.layers.dense import Dense


class Bridge:
    """Parameters ``h.W_hy`` (layers*H, B), ``h.b_y`` [and ``c.*`` with ``cell_state``]."""

    def __init__(self, in_features: int, layers: int, hidden: int, cell_state: bool, *,
                 dtype=np.float32, seed=None):
        self.layers, self.hidden = layers, hidden
        self.parts = {"h": Dense(in_features, layers * hidden, dtype=dtype, seed=seed)}
        if cell_state:
            self.parts["c"] = Dense(in_features, layers * hidden, dtype=dtype, seed=seed)
        self.params = {f"{p}.{k}": v for p, m in self.parts.items() for k, v in m.params.items()}
        self.grads = {f"{p}.{k}": v for p, m in self.parts.items() for k, v in m.grads.items()}

    def forward(self, x_h: np.ndarray, x_c: np.ndarray | None = None):
        """(N, B) inputs -> (initial state (layers, N, H) or (h, c), cache)."""
        N = x_h.shape[0]
        out, caches = [], []
        for name, x in zip(self.parts, (x_h, x_c)):
            y, cache = self.parts[name].forward(x)
            s = np.tanh(y)                                          # (N, layers*H)
            caches.append((cache, s))
            out.append(np.ascontiguousarray(
                s.reshape(N, self.layers, self.hidden).transpose(1, 0, 2)))
        return (tuple(out) if len(out) == 2 else out[0]), caches

    def backward(self, dstate, caches) -> list:
        """d(initial state) -> [dL/dx_h, dL/dx_c (with a cell state)]; adds into ``grads``."""
        ds = list(dstate) if isinstance(dstate, tuple) else [dstate]
        dxs = []
        for name, d, (cache, s) in zip(self.parts, ds, caches):
            dy = d.transpose(1, 0, 2).reshape(s.shape) * (1 - s * s)
            dxs.append(self.parts[name].backward(dy, cache))
        return dxs
