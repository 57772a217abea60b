"""Large float32 products on OpenBLAS, split over the compiled loops' OpenMP threads.

Where MKL is not tuned for the processor (rnnkit.fast.blas.mkl_tuned, e.g. AMD's), OpenBLAS's
large products are faster than MKL's. But OpenBLAS threads its products with a pool of its
own, and a second pool beside the OpenMP threads the loops run on takes the cores from them
after each product. So each thread of the loops' pool takes a part of the product, rows of
the result (or columns, when it has more of those), and runs it on OpenBLAS on that thread
alone. The OpenBLAS rnnkit loads for itself (rnnkit.fast.openblas.bundled) stays on one
thread; NumPy's, where that one is missing, is set to one thread for the call (it is
process-wide: a NumPy product another Python thread makes meanwhile runs on one thread) and
restored after it. The measurements: docs/performance.md, section 1.
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast.openblas import OpenBLAS
from rnnkit.fast.kernels.fastmath import OPTS, _sgemm, _sgemm64, get_num_threads, njit, prange


@njit(parallel=True, **OPTS)
def _split(fn, ilp64, parts, ta, tb, M, N, K, a, lda, b, ldb, beta, c, ldc):
    """c = a @ b (beta 0) or c += a @ b (beta 1), row-major; a, b, c are addresses; ta, tb:
    111 for an operand as stored, 112 transposed (then stored K x M, N x K). Part p of
    ``parts`` takes a block of c's rows, or of its columns when it has more of those."""
    by_rows = M >= N
    for p in prange(parts):
        span = -(-(M if by_rows else N) // parts)
        lo = p * span
        hi = min(M if by_rows else N, lo + span)
        if hi <= lo:
            continue
        if by_rows:            # rows lo:hi of a, and of c
            a_p, b_p, c_p = a + 4 * (lo * lda if ta == 111 else lo), b, c + 4 * lo * ldc
            m, n = hi - lo, N
        else:                  # columns lo:hi of b, and of c
            a_p, b_p, c_p = a, b + 4 * (lo if tb == 111 else lo * ldb), c + 4 * lo
            m, n = M, hi - lo
        if ilp64:
            _sgemm64(fn, ta, tb, m, n, K, a_p, lda, b_p, ldb, beta, c_p, ldc)
        else:
            _sgemm(fn, ta, tb, m, n, K, a_p, lda, b_p, ldb, beta, c_p, ldc)


def split_gemm(openblas: OpenBLAS, ta: int, lda: int, tb: int, ldb: int, a: np.ndarray,
               b: np.ndarray, out: np.ndarray, accumulate: bool) -> None:
    """out = a @ b, or out += a @ b, float32, on ``openblas`` split over the threads; (ta,
    lda), (tb, ldb): each operand's CBLAS transpose flag and leading dimension."""
    M, K = a.shape
    N = b.shape[1]
    before = openblas.get_threads()
    if before != 1:
        openblas.set_threads(1)
    try:
        _split(openblas.sgemm, openblas.ilp64, get_num_threads(), ta, tb, M, N, K,
               a.ctypes.data, lda, b.ctypes.data, ldb, np.float32(1 if accumulate else 0),
               out.ctypes.data, out.strides[0] // 4)
    finally:
        if before != 1:
            openblas.set_threads(before)


class Split:
    """``split_gemm`` on one OpenBLAS, as rnnkit.fast.blas.route_float32 takes it."""

    def __init__(self, library: OpenBLAS):
        self.library = library

    def __call__(self, ta, lda, tb, ldb, a, b, out, accumulate) -> None:
        split_gemm(self.library, ta, lda, tb, ldb, a, b, out, accumulate)
