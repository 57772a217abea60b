"""Fast Elman RNN time loop (float32, whole loop compiled), pinned to rnnkit.cells.rnn.

Per step the reference is already three NumPy calls (product, add, tanh), so only the
whole-loop mode, for small batches, is worth compiling.
"""
from __future__ import annotations

from rnnkit.kernels.fastmath import ONE, add_matmul_rows, ftanh, njit, OPTS


@njit(**OPTS)
def forward_loop(gx, b, Wh_T, h_state, n_active, reverse, relu, out):
    T, _, H = out.shape
    for s in range(T):
        t = T - 1 - s if reverse else s
        n = n_active[t]
        a = out[t]
        for r in range(n):
            for j in range(H):
                a[r, j] = gx[t, r, j] + b[j]
        add_matmul_rows(a, h_state, Wh_T, n)
        for r in range(n):
            for j in range(H):
                v = a[r, j]
                v = (v if v > 0 else 0 * v) if relu else ftanh(v)
                a[r, j], h_state[r, j] = v, v


@njit(**OPTS)
def backward_loop(dout, W_hh, dh, n_active, reverse, relu, out, dgx):
    T, _, H = out.shape
    for s in range(T):
        t = s if reverse else T - 1 - s
        n = n_active[t]
        for r in range(n):
            for j in range(H):
                h = out[t, r, j]
                d = dh[r, j] + dout[t, r, j]
                dgx[t, r, j] = (d if h > 0 else 0 * d) if relu else d * (ONE - h * h)
                dh[r, j] = 0
        add_matmul_rows(dh, dgx[t], W_hh, n)


class ElmanKernel:
    whole_loop = True
    grads_in_gates = False          # (its cache has no gates: the outputs are all it keeps)
    adds_bias = True                # forward adds k["bx"] to the projection itself

    def __init__(self, relu: bool):
        self.relu = relu

    def forward(self, k, cache, gx, h, c, n_active, reverse, out):
        forward_loop(gx, k["bx"], k["Wh_T"], h, n_active, reverse, self.relu, out)

    def backward(self, k, cache, dout, dh, dc, dgx, dgh, n_active, reverse):
        backward_loop(dout, k["W_hh"], dh, n_active, reverse, self.relu, cache["out"], dgx)
