"""Inference time loops with each step split over the threads by hidden units (float32).

The whole loops of rnnkit.kernels split the batch: each thread runs every step for its rows,
so each multiplies its rows by all of W_hh (and W_xh), 1-1.5 MB at H = 256, more than a
core's L2 holds, streamed in again at every step. Here each step is split by hidden units
instead: part p takes the units [u0, u1) and computes, for all rows, their gates' columns of
h_{t-1} @ W_hh^T (and of x_t @ W_xh^T, unless the scan projected the input before the loop),
then their gate arithmetic, writing h_t and C_t of those units only. Each part's columns of
the weights are kept together, so a thread keeps its share of them in its cache, and its
products have all the rows (OpenBLAS's AVX-512 kernels ran 64 x 256 @ 256 x 512 at 148
GFLOP/s on one thread of an AMD EPYC (Zen 5), 32 x 256 @ 256 x 1024 at 105).

Step t + 1 needs all of h_t, so the threads meet after every step, without leaving the
parallel region: the parts of a step are claimed from an atomic counter, and a thread that
finds none left waits for the step's count of finished parts. A waiting thread waits only
for parts that running threads have claimed and finish without waiting, so the loop cannot
deadlock, even when the OpenMP runtime gives all the workers to one thread in turn (it then
runs every part itself). The states alternate between two buffers, so no part overwrites a
state another part of the same step is still reading.

Measured (AMD EPYC, Zen 5, inference, one process, taking turns with the batch-split loop):
see rnnkit.kernels.select, which chooses this loop.
"""
from __future__ import annotations

import numpy as np

from rnnkit.kernels.fastmath import (HALF, OPTS, _sgemm, _sgemm64, AS_IS, ZERO, fsigmoid_half,
                                     ftanh, get_num_threads, intrinsic, kept, njit, part,
                                     prange, tanh_parts, types)

RNN_TANH, RNN_RELU, LSTM, GRU = 0, 1, 2, 3
GATES = {RNN_TANH: 1, RNN_RELU: 1, LSTM: 4, GRU: 3}


def _item_pointer(context, builder, signature, args):
    from numba.core import cgutils
    array_type = signature.args[0]
    array = context.make_array(array_type)(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, array_type, array, [args[1]])


@intrinsic
def atomic_add(typingctx, counters, i, value):
    """counters[i] += value, atomically (sequentially consistent); -> the value before."""
    def codegen(context, builder, signature, args):
        return builder.atomic_rmw("add", _item_pointer(context, builder, signature, args),
                                  args[2], "seq_cst")
    return types.int64(counters, types.intp, types.int64), codegen


@intrinsic
def atomic_read(typingctx, counters, i):
    """counters[i], read atomically (acquire: what was written before it was stored is
    seen), then a spin-wait hint to the processor (x86's pause)."""
    def codegen(context, builder, signature, args):
        from llvmlite import ir
        from numba.core import cgutils
        value = builder.load_atomic(_item_pointer(context, builder, signature, args),
                                    "acquire", 8)
        pause = cgutils.get_or_insert_function(builder.module,
                                               ir.FunctionType(ir.VoidType(), []),
                                               "llvm.x86.sse2.pause")
        builder.call(pause, [])
        return value
    return types.int64(counters, types.intp), codegen


@njit(inline="always", **OPTS)
def _product(fn, ilp64, out, a, W, n, m, K):
    """out[:n, :m] = a[:n] @ W[:K, :m] by OpenBLAS's sgemm at ``fn`` (64-bit sizes: ilp64)."""
    if n > 0:
        if ilp64:
            _sgemm64(fn, AS_IS, AS_IS, n, m, K, a.ctypes.data, a.strides[0] // 4, W.ctypes.data,
                     W.strides[0] // 4, ZERO, out.ctypes.data, out.strides[0] // 4)
        else:
            _sgemm(fn, AS_IS, AS_IS, n, m, K, a.ctypes.data, a.strides[0] // 4, W.ctypes.data,
                   W.strides[0] // 4, ZERO, out.ctypes.data, out.strides[0] // 4)


@njit(inline="always", **OPTS)
def _lstm_units(a, xin, xs, x0, b, read, write, c, out, n, u0, u):
    """LSTM inference for the units [u0, u0 + u) (rnnkit.kernels.lstm._infer_rows): a holds
    their gates' recurrent products side by side (i, f, C~, o; u columns each), xin their
    input projections, gate g of unit j at column g * xs + x0 + j."""
    H = read.shape[1]
    bi, bf, bg, bo = b[u0:u0 + u], b[H + u0:H + u0 + u], b[2 * H + u0:2 * H + u0 + u], \
        b[3 * H + u0:3 * H + u0 + u]
    for r in range(n):
        ar, xr = a[r], xin[r]
        ai, af, ag, ao = ar[:u], ar[u:2 * u], ar[2 * u:3 * u], ar[3 * u:4 * u]
        xi, xf = xr[x0:x0 + u], xr[xs + x0:xs + x0 + u]
        xg, xo = xr[2 * xs + x0:2 * xs + x0 + u], xr[3 * xs + x0:3 * xs + x0 + u]
        cr, hw, orow = c[r][u0:u0 + u], write[r][u0:u0 + u], out[r][u0:u0 + u]
        for j in range(u):
            ni, qi = tanh_parts(ai[j] + xi[j] + bi[j])
            nf, qf = tanh_parts(af[j] + xf[j] + bf[j])
            ng, qg = tanh_parts(ag[j] + xg[j] + bg[j])
            s = HALF / (qi * qf * qg)                    # every q > 0.005: no underflow
            cr[j] = (qf + nf) * qi * qg * s * cr[j] + (qi + ni) * ng * qf * s
        for j in range(u):
            no, qo = tanh_parts(ao[j] + xo[j] + bo[j])
            nc, qc = tanh_parts(cr[j])
            hw[j] = HALF * (qo + no) * nc / (qo * qc)
        for j in range(u):
            orow[j] = hw[j]


@njit(inline="always", **OPTS)
def _gru_units(a, xin, xs, x0, b, b_hn, read, write, out, n, u0, u):
    """GRU inference (reset after; rnnkit.kernels.gru._forward_rows) for the units [u0, u0 +
    u): a holds their r, z, n columns of h_{t-1} @ W_hh^T side by side, xin as in
    _lstm_units."""
    H = read.shape[1]
    br, bz, bn = b[u0:u0 + u], b[H + u0:H + u0 + u], b[2 * H + u0:2 * H + u0 + u]
    bh = b_hn[u0:u0 + u]
    for r in range(n):
        ar, xr = a[r], xin[r]
        ar_, az, an = ar[:u], ar[u:2 * u], ar[2 * u:3 * u]
        xr_, xz, xn = xr[x0:x0 + u], xr[xs + x0:xs + x0 + u], xr[2 * xs + x0:2 * xs + x0 + u]
        hp, hw, orow = read[r][u0:u0 + u], write[r][u0:u0 + u], out[r][u0:u0 + u]
        for j in range(u):
            rg = fsigmoid_half(xr_[j] + ar_[j] + br[j])
            z = fsigmoid_half(xz[j] + az[j] + bz[j])
            cand = ftanh(xn[j] + bn[j] + rg * (an[j] + bh[j]))
            hw[j] = hp[j] + z * (cand - hp[j])
        for j in range(u):
            orow[j] = hw[j]


@njit(inline="always", **OPTS)
def _rnn_units(a, xin, x0, b, relu, write, out, n, u0, u):
    """Elman inference for the units [u0, u0 + u): h = f(a + x + b)."""
    bu = b[u0:u0 + u]
    for r in range(n):
        ar, xr = a[r][:u], xin[r][x0:x0 + u]
        hw, orow = write[r][u0:u0 + u], out[r][u0:u0 + u]
        for j in range(u):
            v = ar[j] + xr[j] + bu[j]
            hw[j] = (v if v > 0 else 0 * v) if relu else ftanh(v)
        for j in range(u):
            orow[j] = hw[j]


@njit(**OPTS)
def _worker(kind, fn, ilp64, Wh, Wx, x, gx, b, b_hn, states, c, out, rec, inp, n_active,
            reverse, claim, done):
    """One thread's run of the loop (see the module's docstring)."""
    T, N, H = out.shape
    P = Wh.shape[0]
    G = 4 if kind == LSTM else 3 if kind == GRU else 1
    for s in range(T):
        t = T - 1 - s if reverse else s
        n = n_active[t]
        read, write = states[s % 2], states[(s + 1) % 2]
        while True:
            p = atomic_add(claim, s, 1)
            if p >= P:
                break
            u0, u1 = part(H, p, P)
            u = u1 - u0
            a = rec[p]
            _product(fn, ilp64, a, read, Wh[p], n, G * u, H)
            if Wx.shape[1] != 0:                  # the input projection, made here
                xin, xs, x0 = inp[p], u, 0
                _product(fn, ilp64, xin, x[t], Wx[p], n, G * u, Wx.shape[1])
            else:                                 # made before the loop
                xin, xs, x0 = gx[t], H, u0
            if kind == LSTM:
                _lstm_units(a, xin, xs, x0, b, read, write, c, out[t], n, u0, u)
            elif kind == GRU:
                _gru_units(a, xin, xs, x0, b, b_hn, read, write, out[t], n, u0, u)
            else:
                _rnn_units(a, xin, x0, b, kind == RNN_RELU, write, out[t], n, u0, u)
            for r in range(n, N):                 # rows past their end keep their states
                hr, wr = read[r][u0:u1], write[r][u0:u1]
                for j in range(u):
                    wr[j] = hr[j]
            atomic_add(done, s, 1)
        while atomic_read(done, s) < P:
            pass


@njit(parallel=True, **OPTS)
def forward_loop(threads, kind, fn, ilp64, Wh, Wx, x, gx, b, b_hn, states, c, out, rec, inp,
                 n_active, reverse, claim, done):
    for k in prange(threads):
        _worker(kind, fn, ilp64, Wh, Wx, x, gx, b, b_hn, states, c, out, rec, inp, n_active,
                reverse, claim, done)


def split_columns(W_T: np.ndarray, G: int, parts: int) -> np.ndarray:
    """(parts, K, G * u) from W_T (K, G * H): part p's units' columns of each gate side by
    side (u = the largest part's units; a smaller part leaves its last columns unused)."""
    K, GH = W_T.shape
    H = GH // G
    size = -(-H // parts)
    out = np.zeros((parts, K, G * size), np.float32)
    for p in range(parts):
        u0, u1 = min(H, p * size), min(H, (p + 1) * size)
        u = u1 - u0
        for g in range(G):
            out[p, :, g * u:(g + 1) * u] = W_T[:, g * H + u0:g * H + u1]
    return out


def run(kind: int, library, k: dict, x, gx, h, c, n_active, reverse: bool, out,
        parts: int | None = None, threads: int | None = None) -> None:
    """The loop over all steps; h, c: the states (N, H), updated; out (T, N, H): h_t; gx: the
    input projection (T, N, G * H, biases not added) or, x given, None: projected here;
    ``library``: the OpenBLAS (rnnkit.openblas) of the products. Each step is split into
    ``parts`` and run by ``threads`` workers (both: numba's thread count)."""
    T, N, H = out.shape
    G = GATES[kind]
    threads = threads or get_num_threads()
    parts = parts or threads
    Wh = kept(k, ("columns", "Wh_T", parts), lambda: split_columns(k["Wh_T"], G, parts))
    size = Wh.shape[2]
    if x is not None:
        Wx = kept(k, ("columns", "Wx_T", parts),
                  lambda: split_columns(np.ascontiguousarray(k["Wx_T"]), G, parts))
        x = x if x.strides[2] == 4 and x.strides[1] % 4 == 0 else np.ascontiguousarray(x)
        inp, gx = np.empty((parts, N, size), np.float32), np.empty((1, 1, 1), np.float32)
    else:
        Wx, x = np.empty((parts, 0, size), np.float32), np.empty((1, 1, 1), np.float32)
        inp = np.empty((parts, 1, size), np.float32)
    states = np.empty((2, N, H), np.float32)
    states[0] = h
    rec = np.empty((parts, N, size), np.float32)
    c_state = c if c is not None else np.empty((1, 1), np.float32)
    b_hn = k.get("b_hn", k["bx"])
    counters = np.zeros((2, T), np.int64)
    forward_loop(threads, kind, library.sgemm, library.ilp64, Wh, Wx, x, gx, k["bx"], b_hn,
                 states, c_state, out, rec, inp, n_active, reverse, counters[0], counters[1])
    h[...] = states[T % 2]


__all__ = ["GATES", "GRU", "LSTM", "RNN_RELU", "RNN_TANH", "run", "split_columns"]
