"""Inference time loops with each step split over the threads by hidden units (float32).

The whole loops of rnnkit.fast.kernels split the batch: each thread runs every step for its rows,
so each multiplies its rows by all of W_hh (and W_xh), 1-1.5 MB at H = 256, more than a
core's L2 holds, streamed in again at every step. Here each step is split by hidden units
instead: part p takes the units [u0, u1) and computes, for all rows, their gates' share of
W_hh h_{t-1} (and of W_xh x_t, unless the input was projected before the loop), then their
gate arithmetic, writing h_t and C_t of those units only. Each part's rows of the weights
are kept together, so a thread keeps its share of them in its cache. Everything runs
unit-major (a unit's values for all the batch rows side by side): the products are W_part
(G*u x K) @ h (K x N), which OpenBLAS's AVX-512 kernels ran faster than h @ W_part^T; each
part transposes its units' h_t into out[t].

Step t + 1 needs all of h_t, so the threads meet after every step, without leaving the
parallel region: the parts of a step are claimed from an atomic counter, and a thread that
finds none left waits for the step's count of finished parts. A waiting thread waits only
for parts that running threads have claimed and finish without waiting, so the loop cannot
deadlock, even when the OpenMP runtime gives all the workers to one thread in turn (it then
runs every part itself). The states alternate between two buffers, so no part overwrites a
state another part of the same step is still reading.

rnnkit.fast.kernels.select chooses this loop (UNITS_SPLIT_ROWS, UNITS_SPLIT_BYTES); the
measurements: docs/performance.md#units_split_rows-and-units_split_bytes.
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast.kernels.fastmath import (HALF, OPTS, _sgemm, _sgemm64, AS_IS, ZERO, fsigmoid_half,
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
def _product(fn, ilp64, out, W, B, b_trans, n, m, K):
    """out[:m, :n] = W[:m, :K] @ B[:K, :n], or, ``b_trans``, @ B[:n, :K]^T, by OpenBLAS's
    sgemm at ``fn`` (64-bit sizes: ilp64); row-major, each array's rows of unit stride."""
    if n > 0 and m > 0:
        tb = 112 if b_trans else AS_IS
        if ilp64:
            _sgemm64(fn, AS_IS, tb, m, n, K, W.ctypes.data, W.strides[0] // 4, B.ctypes.data,
                     B.strides[0] // 4, ZERO, out.ctypes.data, out.strides[0] // 4)
        else:
            _sgemm(fn, AS_IS, tb, m, n, K, W.ctypes.data, W.strides[0] // 4, B.ctypes.data,
                   B.strides[0] // 4, ZERO, out.ctypes.data, out.strides[0] // 4)


# The gate arithmetic below runs unit by unit, over the rows (a unit's row of each array is
# contiguous): a holds the part's gates' recurrent products, gate g of its unit j in row
# g * u + j; xin the input projections, gate g of unit j in row g * xs + x0 + j at [.., ti].

@njit(inline="always", **OPTS)
def _lstm_units(a, xin, ti, xs, x0, b, write, c, n, u0, u):
    """LSTM inference (rnnkit.fast.kernels.lstm._infer_rows) for the units [u0, u0 + u)."""
    H = write.shape[0]
    for j in range(u):
        ai, af, ag, ao = a[j], a[u + j], a[2 * u + j], a[3 * u + j]
        xi, xf = xin[x0 + j, ti], xin[xs + x0 + j, ti]
        xg, xo = xin[2 * xs + x0 + j, ti], xin[3 * xs + x0 + j, ti]
        bi, bf, bg, bo = b[u0 + j], b[H + u0 + j], b[2 * H + u0 + j], b[3 * H + u0 + j]
        cr, hw = c[u0 + j], write[u0 + j]
        for r in range(n):
            ni, qi = tanh_parts(ai[r] + xi[r] + bi)
            nf, qf = tanh_parts(af[r] + xf[r] + bf)
            ng, qg = tanh_parts(ag[r] + xg[r] + bg)
            s = HALF / (qi * qf * qg)                    # every q > 0.005: no underflow
            cr[r] = (qf + nf) * qi * qg * s * cr[r] + (qi + ni) * ng * qf * s
        for r in range(n):
            no, qo = tanh_parts(ao[r] + xo[r] + bo)
            nc, qc = tanh_parts(cr[r])
            hw[r] = HALF * (qo + no) * nc / (qo * qc)


@njit(inline="always", **OPTS)
def _gru_units(a, xin, ti, xs, x0, b, b_hn, read, write, n, u0, u):
    """GRU inference (reset after; rnnkit.fast.kernels.gru._forward_rows) for the units [u0, u0 +
    u): gates r, z, n."""
    H = write.shape[0]
    for j in range(u):
        ar_, az, an = a[j], a[u + j], a[2 * u + j]
        xr_, xz, xn = xin[x0 + j, ti], xin[xs + x0 + j, ti], xin[2 * xs + x0 + j, ti]
        br, bz, bn, bh = b[u0 + j], b[H + u0 + j], b[2 * H + u0 + j], b_hn[u0 + j]
        hp, hw = read[u0 + j], write[u0 + j]
        for r in range(n):
            rg = fsigmoid_half(xr_[r] + ar_[r] + br)
            z = fsigmoid_half(xz[r] + az[r] + bz)
            cand = ftanh(xn[r] + bn + rg * (an[r] + bh))
            hw[r] = hp[r] + z * (cand - hp[r])


@njit(inline="always", **OPTS)
def _rnn_units(a, xin, ti, x0, b, relu, write, n, u0, u):
    """Elman inference for the units [u0, u0 + u): h = f(a + x + b)."""
    for j in range(u):
        ar, xr, bj, hw = a[j], xin[x0 + j, ti], b[u0 + j], write[u0 + j]
        for r in range(n):
            v = ar[r] + xr[r] + bj
            hw[r] = (v if v > 0 else 0 * v) if relu else ftanh(v)


@njit(**OPTS)
def _worker(kind, fn, ilp64, Wh, Wx, x, gx, b, b_hn, states, c, out, rec, inp, n_active,
            reverse, claim, done):
    """One thread's run of the loop (see the module's docstring). Unit-major: states (2, H,
    N), c (H, N), a part's products rec[p] and inp[p] (G * u, N) (W (G*u x K) @ h (K x N):
    the faster way round, see the module's docstring); out[t] (N, H) gets each step's h,
    transposed."""
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
            _product(fn, ilp64, a, Wh[p], read, False, n, G * u, H)
            if Wx.shape[2] != 0:                  # the input projection, made here
                xin, ti, xs, x0 = inp[p], 0, u, 0
                _product(fn, ilp64, xin[:, 0], Wx[p], x[t], True, n, G * u, Wx.shape[2])
            else:                                 # made before the loop: (G * H, T, N)
                xin, ti, xs, x0 = gx, t, H, u0
            if kind == LSTM:
                _lstm_units(a, xin, ti, xs, x0, b, write, c, n, u0, u)
            elif kind == GRU:
                _gru_units(a, xin, ti, xs, x0, b, b_hn, read, write, n, u0, u)
            else:
                _rnn_units(a, xin, ti, x0, b, kind == RNN_RELU, write, n, u0, u)
            ot = out[t]
            for r in range(n):
                orow = ot[r]
                for j in range(u0, u1):
                    orow[j] = write[j, r]
            for j in range(u0, u1):               # rows past their end keep their states
                hr, wr = read[j], write[j]
                for r in range(n, N):
                    wr[r] = hr[r]
            atomic_add(done, s, 1)
        while atomic_read(done, s) < P:
            pass


@njit(parallel=True, **OPTS)
def forward_loop(threads, kind, fn, ilp64, Wh, Wx, x, gx, b, b_hn, states, c, out, rec, inp,
                 n_active, reverse, claim, done):
    for k in prange(threads):
        _worker(kind, fn, ilp64, Wh, Wx, x, gx, b, b_hn, states, c, out, rec, inp, n_active,
                reverse, claim, done)


def split_rows(W: np.ndarray, G: int, parts: int) -> np.ndarray:
    """(parts, G * u, K) from W (G * H, K): part p's units' rows of each gate one after the
    other (u = the largest part's units; a smaller part leaves its last rows unused)."""
    GH, K = W.shape
    H = GH // G
    size = -(-H // parts)
    out = np.zeros((parts, G * size, K), np.float32)
    for p in range(parts):
        u0, u1 = min(H, p * size), min(H, (p + 1) * size)
        u = u1 - u0
        for g in range(G):
            out[p, g * u:(g + 1) * u] = W[g * H + u0:g * H + u1]
    return out


def _copy_steps(dst: np.ndarray, src: np.ndarray) -> None:
    """rnnkit.fast.kernels.copy_steps where this runs (the loops on GNU OpenMP)."""
    from rnnkit.fast.steps import COPY_SPLIT_BYTES
    if dst.nbytes >= COPY_SPLIT_BYTES and dst.dtype == src.dtype and \
            dst.strides[2] == src.strides[2] == dst.itemsize:
        from rnnkit.fast.kernels.fastmath import copy_split
        copy_split(dst, src)
    else:
        np.copyto(dst, src)


def _projection(k: dict, x: np.ndarray, G: int) -> np.ndarray:
    """x's input projection for every step, unit-major: (G * H, T, N), gate g of unit j in
    row g * H + j (biases not added); made some steps at a time, from rows of x the scan's
    way (rnnkit.fast.scan.time_major_rows), one product each."""
    from rnnkit.fast import blas, workspace
    from rnnkit.fast.steps import projection_steps, time_major_rows
    T, N, _ = x.shape
    W = k["Wx_T"].T                               # (G * H, D), C-contiguous (cell.prepare)
    gx = workspace.empty((W.shape[0], T, N), np.float32)
    flat = gx.reshape(W.shape[0], T * N)
    for t0, t1, rows in time_major_rows(x, projection_steps(x), copy=_copy_steps):
        blas.matmul(W, rows.T, flat[:, t0 * N:t1 * N])
    return gx


def run(kind: int, library, k: dict, x, h, c, n_active, reverse: bool, out, in_loop: bool,
        parts: int | None = None, threads: int | None = None) -> None:
    """The loop over all steps of x (T, N, D); h, c: the states (N, H), updated; out (T, N,
    H): h_t; ``in_loop``: each step projects its input (else one product per some steps
    before the loop); ``library``: the OpenBLAS (rnnkit.fast.openblas) of the products. Each step
    is split into ``parts`` and run by ``threads`` workers (both: numba's thread count)."""
    T, N, H = out.shape
    G = GATES[kind]
    threads = threads or get_num_threads()
    parts = parts or threads
    Wh = kept(k, ("units", "W_hh", parts), lambda: split_rows(k["Wh_T"].T, G, parts))
    size = Wh.shape[1]
    if x.strides[2] != 4 or x.strides[1] % 4:
        x = np.ascontiguousarray(x)
    if in_loop:                 # each part's projection of a step: inp[p] (G * u, 1, N)
        Wx = kept(k, ("units", "W_xh", parts), lambda: split_rows(k["Wx_T"].T, G, parts))
        inp, gx = np.empty((parts, size, 1, N), np.float32), np.empty((1, 1, 1), np.float32)
    else:                       # all steps' projections: gx (G * H, T, N)
        Wx = np.empty((parts, size, 0), np.float32)
        inp, gx = np.empty((parts, 1, 1, 1), np.float32), _projection(k, x, G)
    states = np.empty((2, H, N), np.float32)
    states[0] = h.T
    rec = np.empty((parts, size, N), np.float32)
    c_units = np.ascontiguousarray(c.T) if c is not None else np.empty((1, 1), np.float32)
    b_hn = k.get("b_hn", k["bx"])
    counters = np.zeros((2, T), np.int64)
    forward_loop(threads, kind, library.sgemm, library.ilp64, Wh, Wx, x, gx, k["bx"], b_hn,
                 states, c_units, out, rec, inp, n_active, reverse, counters[0], counters[1])
    h[...] = states[T % 2].T
    if c is not None:
        c[...] = c_units.T


__all__ = ["GATES", "GRU", "LSTM", "RNN_RELU", "RNN_TANH", "run", "split_rows"]
