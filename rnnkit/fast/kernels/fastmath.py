"""Compiled building blocks for the fast time loops (numba, optional).

`ftanh` is an odd rational approximation of tanh for float32 (max error 3e-7 on all of R,
about 2 ulp near 1; its input clamped at +-7.9, exactly +-1 from +-9.1), written in plain
arithmetic so that LLVM vectorises it: numba's own tanh is a scalar libm call per element.
`error_model="numpy"` matters as much: the default inserts a zero-division check before each
division, which stops vectorisation (docs/performance.md, section 8).

The helpers here are inlined into the kernels of lstm.py, gru.py and rnn.py, and numba's
on-disk cache only notices edits to a kernel's own file: after editing this one, delete
rnnkit/fast/kernels/__pycache__ (or set NUMBA_CACHE_DIR to a fresh folder), or the old code
runs.
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast import blas, workspace

try:
    from numba import get_num_threads, njit, prange, types
    from numba.extending import intrinsic
    AVAILABLE = True
except ImportError:                       # the engine runs on the NumPy reference path
    AVAILABLE = False
    prange = range

    def intrinsic(f):
        return f

    def get_num_threads():
        return 1

    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda f: f

# LLVM's Intel cores whose AVX-512 clocks the core down hard (Skylake to Cooper Lake servers,
# Xeon Phi): there its default preference for 256-bit vectors stays.
NARROW_AVX512 = ("skylake-avx512", "cascadelake", "cooperlake", "knl", "knm")


def vector_features(vendor: str, cpu_name: str, features: str) -> str | None:
    """numba's target ``features`` (LLVM's "+avx2,+avx512f,...") with LLVM's preference for
    256-bit vectors turned off, or None to leave them: on Intel processors with AVX-512 not in
    NARROW_AVX512. LLVM keeps that preference for every AVX-512 core, and the kernels' loops
    then run on 8 lanes instead of 16 (docs/performance.md, section 2). Not measured on
    AMD's processors, so left there."""
    if vendor != "GenuineIntel" or "+avx512f" not in features.split(",") or \
            cpu_name in NARROW_AVX512:
        return None
    return features + ",-prefer-256-bit"


def _widen_vectors() -> None:
    """Set numba's target features by ``vector_features`` before rnnkit compiles anything,
    unless the user chose a CPU or features (NUMBA_CPU_NAME, NUMBA_CPU_FEATURES). It holds
    for the process's other numba code compiled from then on too, as numba has one target;
    where numba compiled before rnnkit was imported it changes nothing."""
    from numba.core import config
    if config.CPU_NAME is not None or config.CPU_FEATURES is not None:
        return
    from llvmlite import binding
    from numba.core.codegen import get_host_cpu_features
    from rnnkit.fast import openblas
    wide = vector_features(openblas.cpu().get("vendor_id", ""), binding.get_host_cpu_name(),
                           get_host_cpu_features())
    if wide is not None:
        config.CPU_FEATURES = wide


_target_set = False


def set_target() -> None:
    """``_widen_vectors`` once, when rnnkit is about to run its first compiled loop
    (rnnkit.fast.kernels.select), not when it is imported: importing rnnkit leaves numba's
    process-wide target as it was."""
    global _target_set
    if AVAILABLE and not _target_set:
        _target_set = True
        _widen_vectors()

# fastmath without "nnan" and "ninf": with them LLVM may assume that no value is NaN, and
# did: the tanh's clamp turned NaN into +-7.9 and the Elman step's flush (|v| < TINY) into
# 0, so a NaN weight gave finite outputs and gradients where the reference's are NaN.
OPTS = dict(fastmath={"nsz", "arcp", "contract", "afn", "reassoc"}, error_model="numpy",
            cache=True, nogil=True)

_f = np.float32
A13, A11, A9, A7 = _f(-2.76076847742355e-16), _f(2.00018790482477e-13), _f(-8.60467152213735e-11), _f(5.12229709037114e-08)
A5, A3, A1 = _f(1.48572235717979e-05), _f(6.37261928875436e-04), _f(4.89352455891786e-03)
B6, B4, B2, B0 = _f(1.19825839466702e-06), _f(1.18534705686654e-04), _f(2.26843463243900e-03), _f(4.89352518554385e-03)
CLAMP = _f(7.90531110763549805)
SATURATED = _f(9.1)     # from 9.02, 1 - tanh(x) < 2^-25: tanh rounds to 1 in float32
HALF, ONE, ZERO = _f(0.5), _f(1.0), _f(0.0)
# Backward flushes gradients smaller than this to zero: a gradient vanishing through time
# would turn subnormal, where x86 arithmetic is far slower (docs/performance.md, section 2);
# 1e-30 keeps its products with the weights normal, and it adds nothing to a float32 sum.
TINY = _f(1e-30)


@njit(inline="always", **OPTS)
def tanh_parts(x):
    """(n, q) with ftanh(x) = n / q and q > 0.005, so that kernels can share one division
    between several (a / q1 * b / q2 = a b / (q1 q2)). The clamp is min and max (NaN stays
    NaN): written as comparisons it compiled, in a loop of several tanhs, to masked blends
    of six instructions instead of two."""
    s = min(max(x, -CLAMP), CLAMP)
    s2 = s * s
    p = ((((((A13 * s2 + A11) * s2 + A9) * s2 + A7) * s2 + A5) * s2 + A3) * s2 + A1)
    q = (((B6 * s2 + B4) * s2 + B2) * s2 + B0)
    n = s * p
    # where float32's tanh is +-1 exactly, so is this one (1 - h^2 = 0, as PyTorch's)
    n = q if x >= SATURATED else n
    n = -q if x <= -SATURATED else n
    return n, q


@njit(inline="always", **OPTS)
def ftanh(x):
    n, q = tanh_parts(x)
    return n / q


@njit(inline="always", **OPTS)
def flush(v):
    """v, or 0 where |v| < TINY (a vectorisable select)."""
    return ZERO if abs(v) < TINY else v


@njit(inline="always", **OPTS)
def fsigmoid_half(a):
    """sigma(2a) = (1 + tanh(a)) / 2: the gates' pre-activations arrive already halved."""
    return HALF * ftanh(a) + HALF


@njit(**OPTS)
def tanh_into(a, out):
    """out = ftanh(a) for 2-d float32 arrays (used by tests to bound the approximation)."""
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[i, j] = ftanh(a[i, j])


# Loops below start at 0 over whole 1-d rows: a loop from a non-zero start (range(2H, 3H))
# is not vectorised by LLVM here, so callers pass sub-views instead.

@njit(inline="always", **OPTS)
def sigmoid_half_add(x, y, b):
    """x <- sigma(2 (x + y + b)) in place: gate pre-activations arrive halved."""
    for j in range(x.shape[0]):
        x[j] = fsigmoid_half(x[j] + y[j] + b[j])


@njit(inline="always", **OPTS)
def tanh_add(x, y, b):
    """x <- tanh(x + y + b) in place."""
    for j in range(x.shape[0]):
        x[j] = ftanh(x[j] + y[j] + b[j])


@njit(inline="always", **OPTS)
def copy_row(dst, src):
    """dst[:] = src[:] for 1-d rows (numba's slice assignment costs far more a call)."""
    for j in range(src.shape[0]):
        dst[j] = src[j]


@njit(inline="always", **OPTS)
def add_matmul_rows(acc, h, W_T, n):
    """acc[:n] += h[:n] @ W_T, for the small sizes where a BLAS call costs more than it does.

    Four rows of W_T per pass over an acc row: a quarter of its loads and stores, which
    bound this loop (docs/performance.md, section 2).
    """
    K, M = W_T.shape
    K4 = K - K % 4
    for r in range(n):
        a, hr = acc[r], h[r]
        for k in range(0, K4, 4):
            x0, x1, x2, x3 = hr[k], hr[k + 1], hr[k + 2], hr[k + 3]
            w0, w1, w2, w3 = W_T[k], W_T[k + 1], W_T[k + 2], W_T[k + 3]
            for j in range(M):
                a[j] += x0 * w0[j] + x1 * w1[j] + x2 * w2[j] + x3 * w3[j]
        for k in range(K4, K):
            x, w = hr[k], W_T[k]
            for j in range(M):
                a[j] += x * w[j]


@njit(inline="always", **OPTS)
def project_rows(a, x, t, r0, Wx_T, n, product):
    """a[:n] = x[t, r0:r0 + n] @ Wx_T: step t's input projection, made by the loop itself
    (rnnkit.fast.kernels.select) with ``product`` (see matmul_rows); an empty Wx_T (no rows)
    means the scan made it before the loop."""
    if Wx_T.shape[0] != 0:
        matmul_rows(product, a, x[t][r0:], Wx_T, n, False)


_NO_INPUT = (np.empty((0, 0, 0), np.float32), np.empty((0, 0), np.float32), blas.NO_PRODUCT)
MAX_KEPT = 8        # products kept on one scan's weights (one per batch size, kernel, ...)


def kept(k: dict, key: tuple, make):
    """make(), or what it made for ``key`` on these weights before: when a scan's weights are
    kept from one inference call to the next (rnnkit.fast.scan.Prepared, which gives k a
    "products" dict), so is what its loops make of them (W packed for MKL, ...)."""
    products = k.get("products")
    if products is None:
        return make()
    key = key + blas.route_key()
    made = products.get(key)
    if made is None:
        if len(products) >= MAX_KEPT:
            products.clear()
        made = products[key] = make()
    return made


def loop_weights(k: dict, name: str, rows: int, gemm: int, parts: int = 1,
                 accumulate: bool = False, shared: bool = False):
    """blas.loop_product(k[name], ...), kept with k's weights (``kept``)."""
    return kept(k, ("loop", name, rows, gemm, parts, accumulate, shared),
                lambda: blas.loop_product(k[name], rows, gemm, accumulate, parts, shared))


def packed(k: dict, name: str, rows: int) -> blas.Packed:
    """blas.Packed(k[name], rows), kept with k's weights (``kept``)."""
    return kept(k, ("packed", name, rows), lambda: blas.Packed(k[name], rows))


def _aligned_copy(a: np.ndarray) -> np.ndarray:
    out = workspace.aligned_empty(a.shape, a.dtype)
    out[...] = a
    return out


def loop_input(x, k: dict, rows: int, gemm: int, parts: int):
    """-> ((x, Wx_T, product), keep) for a whole loop that projects its input x itself, Wx_T
    made row-major for its product (rnnkit.fast.blas.loop_product: keep must stay alive while the
    loop runs); or, x None, empty arrays: the scan projected x before the loop."""
    if x is None:
        return _NO_INPUT, None
    if not blas.row_major(x[0]):              # MKL's rows: unit stride, apart, aligned
        x = np.ascontiguousarray(x)
    if "Wx_rows" not in k:                  # (kept with k's weights, as what follows)
        k["Wx_rows"] = _aligned_copy(k["Wx_T"])
    product, keep = loop_weights(k, "Wx_rows", rows, gemm, parts)
    return (x, k["Wx_rows"], product), keep


def _cblas_call(packed: bool, ilp64: bool = False):
    """An intrinsic calling, through its address, row-major,
    cblas_sgemm(ta, tb, m, n, k, alpha = 1, a, lda, b, ldb, beta, c, ldc) or, ``packed``,
    cblas_sgemm_compute(ta, m, n, k, a, lda, b, ldb, beta, c, ldc) on a B from
    cblas_sgemm_pack (tb is then ignored); ta, tb: CBLAS's 111 (as stored) or 112
    (transposed); ``ilp64``: sizes as 64-bit integers (OpenBLAS built so, as in NumPy's
    wheels). Arrays are passed as addresses (intp). The function's address is an argument,
    not a constant, so the kernels that call it stay in numba's on-disk cache."""
    def call(typingctx, fn, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc):
        from llvmlite import ir
        sig = types.void(*([types.intp] * 10), types.float32, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            i32, ptr, f32 = ir.IntType(32), ir.IntType(8).as_pointer(), ir.FloatType()
            size = ir.IntType(64) if ilp64 else i32
            alpha = [] if packed else [f32]
            fnty = ir.FunctionType(ir.VoidType(), [i32] * 3 + [size] * 3 + alpha +
                                   [ptr, size, ptr, size, f32, ptr, size])
            fn_, ta_, tb_, m_, n_, k_, a_, lda_, b_, ldb_, beta_, c_, ldc_ = args
            i = (lambda v: v) if ilp64 else (lambda v: builder.trunc(v, i32))
            p = (lambda v: builder.inttoptr(v, ptr))
            head = [ir.Constant(i32, 101), builder.trunc(ta_, i32),
                    ir.Constant(i32, 151) if packed else builder.trunc(tb_, i32)]
            builder.call(builder.inttoptr(fn_, fnty.as_pointer()),
                         head + [i(m_), i(n_), i(k_)] +
                         ([] if packed else [ir.Constant(f32, 1.0)]) +
                         [p(a_), i(lda_), p(b_), i(ldb_), beta_, p(c_), i(ldc_)])
            return context.get_dummy_value()
        return sig, codegen
    call.__name__ = "_sgemm_compute" if packed else "_sgemm64" if ilp64 else "_sgemm"
    return intrinsic(call)


_sgemm, _sgemm_compute = _cblas_call(False), _cblas_call(True)
_sgemm64 = _cblas_call(False, ilp64=True)
AS_IS = 111                 # CBLAS's "no transpose"


@intrinsic
def _jit_sgemm(typingctx, kernel, jitter, a, b, c):
    """kernel(jitter, a, b, c) through its address: an sgemm MKL generated for one shape
    (rnnkit.fast.blas.jit_kernel). Arrays are passed as addresses (intp)."""
    from llvmlite import ir

    def codegen(context, builder, signature, args):
        ptr = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [ptr] * 4)
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(fn, [builder.inttoptr(v, ptr) for v in args[1:]])
        return context.get_dummy_value()
    return types.void(*([types.intp] * 5)), codegen


@intrinsic
def _int_call(typingctx, fn, n):
    """int fn(int n) through its address ``fn`` (MKL_Set_Num_Threads_Local)."""
    from llvmlite import ir

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(i32, [i32])
        result = builder.call(builder.inttoptr(args[0], fnty.as_pointer()),
                              [builder.trunc(args[1], i32)])
        return builder.sext(result, ir.IntType(64))
    return types.int64(types.intp, types.intp), codegen


@njit(inline="always", **OPTS)
def local_threads(gemm, n):
    """MKL's thread count for the calling thread alone (MKL_Set_Num_Threads_Local, the third
    of rnnkit.fast.blas.loop_product's tuple), when the loop calls MKL; -> the previous one."""
    threads = gemm[2]
    return _int_call(threads, n) if threads != 0 else 0


@njit(inline="always", **OPTS)
def matmul_rows(gemm, acc, h, W_T, n, accumulate):
    """acc[:n] = h[:n] @ W_T (``accumulate``: +=), 2-d float32 arrays with unit-stride rows.

    ``gemm`` is (function, packed, threads, jit, jitter, jit_rows, jit_accumulate, ilp64)
    from rnnkit.fast.blas.loop_product: MKL's cblas_sgemm_compute on W_T packed at address
    ``packed``; its cblas_sgemm, when packed is 0, or the sgemm it generated for this shape
    (``jit``), when that was made for n rows, dense rows and this ``accumulate``; OpenBLAS's
    cblas_sgemm taking 64-bit sizes, ``ilp64``; the product written out here, when function
    is 0."""
    fn, packed = gemm[0], gemm[1]
    if fn != 0:
        if n > 0:
            beta = ONE if accumulate else ZERO
            lda, ldc = h.strides[0] // 4, acc.strides[0] // 4
            if gemm[3] != 0 and n == gemm[5] and gemm[6] == (1 if accumulate else 0) and \
                    lda == W_T.shape[0] and ldc == W_T.shape[1] == W_T.strides[0] // 4:
                _jit_sgemm(gemm[3], gemm[4], h.ctypes.data, W_T.ctypes.data, acc.ctypes.data)
            elif packed != 0:
                _sgemm_compute(fn, AS_IS, AS_IS, n, W_T.shape[1], W_T.shape[0], h.ctypes.data,
                               lda, packed, W_T.shape[1], beta, acc.ctypes.data, ldc)
            elif gemm[7] != 0:
                _sgemm64(fn, AS_IS, AS_IS, n, W_T.shape[1], W_T.shape[0], h.ctypes.data, lda,
                         W_T.ctypes.data, W_T.strides[0] // 4, beta, acc.ctypes.data, ldc)
            else:
                _sgemm(fn, AS_IS, AS_IS, n, W_T.shape[1], W_T.shape[0], h.ctypes.data, lda,
                       W_T.ctypes.data, W_T.strides[0] // 4, beta, acc.ctypes.data, ldc)
        return
    if not accumulate:
        for r in range(n):
            for j in range(acc.shape[1]):
                acc[r, j] = 0
    add_matmul_rows(acc, h, W_T, n)


@njit(inline="always", **OPTS)
def part(n, k, parts):
    """Rows [r0, r1) of part k of n rows split into ``parts`` (the parallel step kernels)."""
    size = (n + parts - 1) // parts
    r0 = min(n, k * size)
    return r0, min(n, r0 + size)


@njit(parallel=True, **OPTS)
def probe_threads(n):
    """A trivial parallel loop: starts numba's threading layer
    (rnnkit.fast.kernels.shared_openmp)."""
    total = 0
    for i in prange(n):
        total += i
    return total


@njit(parallel=True, **OPTS)
def copy_split(dst, src):
    """dst[...] = src for (S, N, D) arrays with unit-stride rows, the S * N rows shared out
    over the threads (rnnkit.fast.kernels.copy_steps)."""
    S, N, D = dst.shape
    for k in prange(S * N):
        a, b = dst[k // N, k % N], src[k // N, k % N]
        for j in range(D):
            a[j] = b[j]


def repeats(a: np.ndarray) -> bool:
    """Whether a (T, N, H) buffer is inference's one row repeated over T with stride 0
    (rnnkit.fast.scan)."""
    return a.strides[0] == 0


def one_or_all(a: np.ndarray) -> np.ndarray:
    """A (T, N, H) buffer, or the one (1, N, H) row of an inference buffer that repeats it.

    Compiled, a buffer that ``repeats`` has no fixed layout and its loops run scalar. Its
    first row alone is contiguous."""
    return a[:1] if repeats(a) else a


@njit(inline="always", **OPTS)
def at(a, t):
    """Step t's rows of a buffer from one_or_all."""
    return a[t] if a.shape[0] > 1 else a[0]


@njit(inline="always", **OPTS)
def span_rows(n, r0, r1):
    """How many of the rows [r0, r1) run at a step that runs the rows [:n]."""
    return min(max(n - r0, 0), r1 - r0)


@njit(inline="always", **OPTS)
def previous_rows(seq, init, n_active, reverse, t, n, scratch, r0):
    """rnnkit.fast.fused.history.previous, compiled, for the rows [r0, r0 + n) (a whole loop's span
    of the batch): the states before step t, as rows [:n] of the returned view."""
    src = t + 1 if reverse else t - 1
    if src < 0 or src >= seq.shape[0]:
        return init[r0:]
    m = span_rows(n_active[src], r0, r0 + n)
    if m >= n:
        return seq[src][r0:]
    for r in range(r0, r0 + m):
        copy_row(scratch[r], seq[src, r])
    for r in range(r0 + m, r0 + n):
        copy_row(scratch[r], init[r])
    return scratch[r0:]
