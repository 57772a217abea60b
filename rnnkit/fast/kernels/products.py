"""Large float32 products on OpenBLAS, split over the compiled loops' OpenMP threads.

Where MKL is not tuned for the processor (rnnkit.fast.blas.mkl_tuned, e.g. AMD's), OpenBLAS's
large products are faster than MKL's: on an AMD EPYC (Zen 4), two threads, 25600 x 512 @
512 x 2048 ran at 160-173 GFLOP/s against MKL's 134, 6400 x 128 @ 128 x 1024 at 146 against
81. But OpenBLAS threads its products with a pool of its own, and a second pool beside the
OpenMP threads the loops run on takes the cores from them after each product (two pools
spinning on two cores: a medium RNN training step took 1.44x the time). So each thread of
the loops' pool takes a part of the product, rows of the result (or columns, when it has
more of those), and runs it on OpenBLAS on that thread alone. The OpenBLAS rnnkit loads for
itself (rnnkit.fast.openblas.bundled) stays on one thread; NumPy's, where that one is missing, is
set to one thread for the call (it is process-wide: a NumPy product another Python thread
makes meanwhile runs on one thread) and restored after it.

Against MKL's products (one process, taking turns, training steps): large LSTM 0.87 of the
time, GRU 0.89, RNN 0.85-0.87; medium 0.92-0.95; small LSTM 0.96. Inference, which keeps
its large products inside the loops, is unchanged.
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
