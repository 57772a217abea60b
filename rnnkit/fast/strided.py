"""Products over the steps of a batch-first input, made on the input where it lies.

A layer's input is batch-first, (N, T, D); its scans see it as a (T, N, D) view, whose step t
is N rows T * D elements apart. The input projection (x_t @ W for every step) and the input
weight gradient (the sum over the steps of dA_t^T x_t) are otherwise one product each on a
time-major copy of x (rnnkit.fast.scan.time_major_rows). Where MKL serves them, these make
them on the view itself, as T products of N rows each: no copy, which measured faster where
each step's product is large and W no wider than about x's rows (each function's limits;
docs/performance.md, section 5). They return False, having done nothing, where they do not
apply; the caller then copies.
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast import blas, mkl

PROJECT_MAX_WIDTH = 2         # project serves W (D, G) with G <= this * D...
PROJECT_MAX_WEIGHTS = 1 << 18  # ...and D * G up to this, from PROJECT_MIN_MACS in all
PROJECT_MIN_MACS = 1 << 22
GRAD_MIN_MACS = 1 << 23       # weight_grad serves steps' products from this size...
GRAD_MAX_WIDTH = 2            # ...with D <= G <= this * D...
GRAD_MAX_WEIGHTS = 1 << 18    # ...and D * G up to this
_ROW, _NO_TRANS, _TRANS = 101, 111, 112


def _steps(x: np.ndarray, macs: int):
    """(step, row) strides of x in elements where MKL serves a product of ``macs``
    multiply-adds and takes x's rows as they lie, else None."""
    T, N, D = x.shape
    if x.flags.c_contiguous or min(x.shape) == 0 or not blas.mkl_tuned() or \
            not blas.wants_mkl(macs) or x.dtype.char not in "fd" or not mkl.load():
        return None
    size = x.itemsize
    step, row, column = x.strides
    if column != size or step % size or row % size or step < 0 or row // size < D or \
            max(step, row) // size >= 1 << 31:
        return None
    return step // size, row // size


def _usable(out: np.ndarray, *inputs: np.ndarray) -> bool:
    return all(a.dtype == out.dtype for a in inputs) and out.flags.writeable and \
        out.size < 1 << 31 and not any(np.may_share_memory(out, a) for a in inputs)


def project(x: np.ndarray, W: np.ndarray, out: np.ndarray) -> bool:
    """out[t] = x[t] @ W for each step of a (T, N, D) view x, into a C-contiguous (T, N, G)
    out: one call of MKL's cblas_?gemm_batch_strided.

    Only for G <= PROJECT_MAX_WIDTH * D and D * G <= PROJECT_MAX_WEIGHTS: beyond, the copy's
    share of the work shrinks, and each of the T products reads all of W again. Below
    PROJECT_MIN_MACS in all the copy stays: too little gain for a higher resident peak
    (docs/performance.md, section 5)."""
    T, N, D = x.shape
    G = W.shape[1]
    strides = _steps(x, T * N * D * G)
    if strides is None:             # (first: a stepper's x_t is time-major, every token)
        return False
    w = blas.operand(W)
    if w is None or G > PROJECT_MAX_WIDTH * D or \
            D * G > PROJECT_MAX_WEIGHTS or T * N * D * G < PROJECT_MIN_MACS or \
            out.shape != (T, N, G) or not out.flags.c_contiguous or not _usable(out, x, W):
        return False
    lib = mkl.load()
    gemm = lib.cblas_sgemm_batch_strided if x.dtype.char == "f" else \
        lib.cblas_dgemm_batch_strided
    gemm(_ROW, _NO_TRANS, w[0], N, G, D, 1.0, x.ctypes.data, strides[1], strides[0],
         W.ctypes.data, w[1], 0, 0.0, out.ctypes.data, G, N * G, T)
    return True


def weight_grad(dA: np.ndarray, x: np.ndarray, dW: np.ndarray) -> bool:
    """dW += the sum over t of dA[t]^T @ x[t], dA a C-contiguous (T, N, G) array, x a (T, N,
    D) view, dW (G, D) row-major: T products of N rows each, adding into dW (beta = 1).

    Only for D <= G <= GRAD_MAX_WIDTH * D, D * G <= GRAD_MAX_WEIGHTS and N * D * G >=
    GRAD_MIN_MACS (benchmarks/strided_products.py measures them): outside, a wider dW leaves
    the cache between the products and a smaller step's product gains nothing sure
    (docs/performance.md, section 5)."""
    T, N, D = x.shape
    G = dA.shape[2]
    strides = _steps(x, T * N * D * G)
    if strides is None or not D <= G <= GRAD_MAX_WIDTH * D or D * G > GRAD_MAX_WEIGHTS or \
            N * D * G < GRAD_MIN_MACS or dA.shape[:2] != (T, N) or \
            not dA.flags.c_contiguous or dW.shape != (G, D) or \
            not blas.row_major(dW) or not _usable(dW, dA, x):
        return False
    lib = mkl.load()
    gemm = lib.cblas_sgemm if x.dtype.char == "f" else lib.cblas_dgemm
    size = x.itemsize
    a, b, c, ldc = dA.ctypes.data, x.ctypes.data, dW.ctypes.data, dW.strides[0] // size
    for t in range(T):
        gemm(_ROW, _TRANS, _NO_TRANS, G, D, N, 1.0, a + t * N * G * size, G,
             b + t * strides[0] * size, strides[1], 1.0, c, ldc)
    return True
