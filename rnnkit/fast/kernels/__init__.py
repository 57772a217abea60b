"""Fast time loops for the cells, chosen automatically; the readable NumPy path is the reference.

``select`` picks, for float32 and when numba is installed (``pip install rnnkit[fast]``):
- the whole time loop compiled, when the recurrent product per step is small (batch x
  gates*H x H multiply-adds < WHOLE_LOOP_MACS, i.e. batch 1-2 at H = 128): per-step Python
  and BLAS-call overhead is what costs there; the loop writes its product out below
  OWN_PRODUCT_MACS at batch 1 (OWN_ROWS_PRODUCT_MACS at larger batches), and from there,
  with MKL installed, calls MKL itself, on one thread (at batch 1 on weights packed once),
  up to MKL_LOOP_MACS (e.g. batch 32 at H = 64-128); where MKL is not tuned for the processor
  (rnnkit.fast.blas.mkl_tuned, e.g. AMD's), its products go to OpenBLAS instead (rnnkit.fast.openblas:
  at every size on rnnkit's own, up to its single-thread size on NumPy's) and batch 1 keeps
  the loop's own product; at inference below WHOLE_LOOP_MACS with
  at most LOOP_PROJECTION_INPUTS inputs (by its own product), or on MKL with spans of at
  least MKL_PROJECTION_ROWS rows, no more inputs than hidden units and a span's projection
  below MKL_PROJECTION_MACS, it also projects each step's input itself, keeping one row of
  projection instead of T;
- a whole loop splits its batch over the threads (``loop_parts``), each running the loop on
  its span of rows with no synchronisation between steps (rows are independent in time),
  when MKL runs on GNU OpenMP like numba's parallel loops (``shared_openmp``): MKL's product
  inside a worker then runs on that thread, on weights packed once for large products
  (rnnkit.fast.blas.loop_product). Split, the whole loop with MKL is taken at every size from
  WHOLE_LOOP_MACS up: against the per-step loop (interleaved processes, train / infer)
  medium LSTM 0.88 / 0.75, GRU 0.89 / 0.79, RNN 0.73 / 0.78; large LSTM 0.89 / 0.92, GRU
  0.82 / 0.95, RNN 0.95 / 0.91;
- otherwise the recurrent product by NumPy's BLAS and all gate arithmetic of a step in one
  compiled pass (RNN, LSTM, GRU with reset after);
- otherwise (float64, peepholes, GRU reset-before, clip, no numba) the reference in
  rnnkit.cells.
Every fast path fills the same cache as the reference and is pinned to it by tests.
``reference_only()`` switches the fast paths off, e.g. to compare.

With the per-step product on Intel MKL (``rnnkit.fast.blas``, a scan with a large step) the LSTM
and GRU step kernels also split their rows over the threads, when numba's parallel loops and
MKL share one OpenMP runtime (``shared_openmp``): then the worker thread that MKL's product
leaves spinning takes the next kernel's half at once. With NumPy's OpenBLAS doing the
products the two thread pools fought over the 2 cores instead: a medium LSTM step loop took
489 ms against 62 serially, so without MKL the kernels stay serial.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from functools import partial

import numpy as np

from rnnkit.fast import blas, openblas
from rnnkit.fast.fused import ElmanCell, GRUCell, LSTMCell
from rnnkit.fast.kernels.fastmath import AVAILABLE
from rnnkit.fast.steps import COPY_SPLIT_BYTES

# Measured (H = 128, T = 300, LSTM/GRU/RNN): the compiled loop's own product beats a BLAS
# call per step at batch 1 (1.2-3x), breaks even at 2, loses from 4-8 on (2x at batch 32).
WHOLE_LOOP_MACS = 1 << 17
# But called from the compiled loop itself (no Python between steps), MKL's product on packed
# weights beats the loop's own from this size (blas.ONE_ROW_PACK_MACS) on an Intel Xeon: the
# LSTM at batch 1, 1 x 1000 x 16 x 128, took a median 0.91 / 0.93 of the time (train / infer;
# seven measurements, pairs in one process and interleaved processes, 0.84-1.16 / 0.82-1.16 on
# this noisy VM; the product alone 0.71-0.73). The GRU's smaller W (128 x 384) gained in
# training (0.88-0.98) but not at inference (0.83-1.21), so it stays below. Where MKL is not
# tuned for the processor (blas.mkl_tuned) the own product runs on up to MKL_LOOP_MACS: on an
# AMD EPYC (Zen 4) the same LSTM took 0.60 / 0.56 of the time of MKL's (one process, taking
# turns).
OWN_PRODUCT_MACS = 1 << 16
# With two rows or more (parts of one thread) MKL's generated sgemm wins from much smaller
# products, the loop's own going through W once a row (pairs, T = 500, train / infer): GRU
# batch 2 at H = 128 0.65 / 0.68, LSTM batch 4 at H = 64 0.59 / 0.63, batch 2 at 64 0.78 /
# 0.87, at 32 (8K multiply-adds) 0.84 / 0.93; RNN batch 4 at 64 0.66 / 0.63; GRU batch 4 at
# 16 (3K) 1.01 / 1.00.
OWN_ROWS_PRODUCT_MACS = 1 << 13
# From there to this, with MKL and no split (loop_parts): the whole loop still, its product
# by MKL's sgemm on the calling thread (fastmath.matmul_rows), no Python between steps.
# Against a BLAS call per step (interleaved processes, 32 x 50 x 32 x 64): LSTM train/infer
# 0.85/0.76 of the time, GRU 0.56/0.77, RNN 0.79/0.46; even at 2^22 (LSTM 64 x 128);
# 1.2-1.6x slower at 2^23-2^24.
MKL_LOOP_MACS = 1 << 22
# A whole loop splits its batch into spans of at least this many rows, one per thread.
# Split against whole, interleaved in one process (T = 100, D = 32, H = 64, train / infer):
# LSTM batch 32 (2 x 16 rows) 0.75 / 0.67, batch 8 0.86 / 0.77, batch 4 0.85 / 0.78; GRU 32
# 0.67 / 0.61; RNN 32 0.82 / 0.78, 8 0.84 / 0.83, but 4 1.41 / 1.04; spans of one row lose
# (LSTM batch 2: 1.10 / 0.90, at H = 128 1.12 / 1.03).
MIN_SPAN_ROWS = 4
# Inference through a whole loop with its own product (batch 1-2) and at most this many
# inputs: the loop projects each step's input itself, into one row of projection, instead of
# one product for all steps into a (T, N, gates) buffer before it. Against that product
# (one process, the two ways taking turns call by call, T = 1000, H = 128, median of the
# pairs' ratios): input 16 LSTM 0.86-0.90, GRU 0.95-0.97, RNN 0.82-0.97; at input 64 the
# step's product costs more than it saves (LSTM 1.17), and training, whose forward keeps
# every step's gates, gains nothing (0.99-1.02).
LOOP_PROJECTION_INPUTS = 16
# Inference through a whole loop on MKL whose spans have at least this many rows, with no
# more inputs than hidden units: the loop projects each step's input too, by MKL on W_xh
# packed once, instead of one product before the loop into a (T, N, gates) buffer (26 MB for
# the medium LSTM) that goes out to memory and comes back. Same pairs (inference, N x T x D x
# H, LSTM unless named): 32 x 50 x 32 x 64 (spans of 16 rows) LSTM 0.89, GRU 0.88, RNN 0.85;
# 64 x 100 x 128 x 256 LSTM 0.93-0.98, GRU 0.97, RNN 0.92; 128 x 200 x 512 x 512 LSTM 0.97
# and 1.04, GRU 1.01, RNN 0.94; 64 x 100 x 64-256 x 128-256 0.90-0.99; 32 x 100 x 128 x 128-256
# 0.97-1.03. It loses with spans of 8 rows (16 x 200 x 128 x 256: 1.07; 4 rows 1.20, batch 1
# 1.39: each step streams W_xh for few rows) and with more inputs than hidden units (32 and
# 64 x 100 x 512 x 256: 1.10, 1.03). Training gains too little to take it (0.96-1.02; its
# forward keeps every step's gates anyway).
MKL_PROJECTION_ROWS = 16
# ... while a span's step of that projection (span x D x gates*H) stays below this: on an AMD
# EPYC (Zen 4), 128 x 200 x 512 x 512 inference projecting before the loop took (one process,
# taking turns) LSTM 0.85, GRU 0.95 of the time (spans of 64 x 512 x 2048 and x 1536), the
# RNN (64 x 512 x 512) 1.07; the Intel measurements above were 0.97-1.04 for these.
MKL_PROJECTION_MACS = 1 << 25
# A scan stepped one step a call (rnnkit.fast.scan.Stepper: text generation) at batch 1
# gives its loop's product to all of MKL's threads, not the calling thread alone, from this
# many multiply-adds: each thread then keeps its share of W_hh in its own cache between the
# calls, while the other layers' weights and the head pass through. Generating (one process,
# H = 256, fresh processes taking turns) GRU 1 / 2 layers 0.84 / 0.80 of the time a token,
# LSTM 0.79 / 0.73. A whole sequence keeps its W_hh in cache from step to step anyway, and
# then loses (batch 1, 1000 steps, H = 256: GRU 1.3-1.45x, LSTM 1.05-1.3x).
STEP_SHARED_MACS = 1 << 17
# Inference splits each step over the threads by hidden units (rnnkit.fast.kernels.columns),
# where that runs, from this many rows and this many bytes of weights in the loop (a core's
# L2 on an AMD EPYC): a thread of the batch-split loop then streams them in at every step.
# One process, taking turns with it (N x T x D x H, inference, AMD EPYC Zen 5, LSTM / GRU /
# RNN): 64 x 100 x 128 x 256 (1.5 / 1.2 / 0.4 MB of weights) 0.87-0.90 / 0.85-0.88 / 0.97;
# 128 x 200 x 512 x 512 (4 / 3 / 1 MB, input projected before the loop) 0.99 / 0.94 / 0.96;
# 16 x 200 x 128 x 256 0.75 / 0.78 / 1.27, 32 x 50 x 128 x 256 0.75 / 0.88 / 1.06; below it,
# 64 x 100 x 128 x 128 (0.5 / 0.4 / 0.1 MB) 1.04 / 0.89 / 1.05, 32 x 100 x 64 x 128 1.14 /
# 1.12 / 1.76, 32 x 50 x 32 x 64 1.79 / 1.27 / 2.08 (the threads meet 50-100 times for little
# work). Those were measured with row-major products (h @ W_part); the unit-major ones it runs
# now (W_part @ h) took, against them, 0.95 / 0.94 / 1.06 of the time (medium) and 0.98 /
# 0.95 / 1.02 (large).
UNITS_SPLIT_ROWS = 16
UNITS_SPLIT_BYTES = 1 << 20

_enabled = AVAILABLE


@contextmanager
def reference_only():
    """Within this block every scan runs the NumPy reference path."""
    global _enabled
    before, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = before


_openmp: bool | None = None


def shared_openmp() -> bool:
    """True when MKL runs on GNU OpenMP and numba's parallel loops do too (its 'omp' layer),
    so both use the system's one libgomp and its one pool of threads. Sets numba's threading
    layer to 'omp' unless the user chose another (NUMBA_THREADING_LAYER). Where MKL is not
    tuned for the processor, the large float32 products then go to OpenBLAS (rnnkit.fast.openblas),
    split over that pool (rnnkit.fast.kernels.products)."""
    global _openmp
    if _openmp is None:
        _openmp = False
        if AVAILABLE and blas.backend() == "mkl (gnu threads)":
            import numba
            if numba.config.THREADING_LAYER in ("default", "omp") and \
                    os.environ.get("NUMBA_THREADING_LAYER", "omp") == "omp":
                numba.config.THREADING_LAYER = "omp"
                try:
                    from rnnkit.fast.kernels.fastmath import probe_threads
                    probe_threads(4)
                    _openmp = numba.threading_layer() == "omp"
                except (ValueError, ImportError, RuntimeError):
                    _openmp = False
        library = openblas.products()
        if _openmp and library and not blas.mkl_tuned():
            from rnnkit.fast.kernels.products import split_gemm
            which = "rnnkit's own" if library == openblas.bundled() else "NumPy's"
            blas.route_float32(partial(split_gemm, library),
                               f"openblas {library.core} ({which}), split over the threads")
    return _openmp


def loop_parts(N: int) -> int:
    """Threads a whole loop over N batch rows splits its batch over (1: it runs whole).

    The scan then sends its other products to MKL too (``blas.choose``): OpenBLAS, after a
    two-thread product, leaves a thread spinning that takes one of the loop's cores (a small
    LSTM's inference took 7.1 ms split, against 3.3 whole and 2.0 split with MKL)."""
    if N < 2 * MIN_SPAN_ROWS or not shared_openmp():
        return 1
    from rnnkit.fast.kernels.fastmath import get_num_threads
    return max(1, min(get_num_threads(), N // MIN_SPAN_ROWS))


def copy_steps(dst: np.ndarray, src: np.ndarray) -> None:
    """dst[...] = src for (S, N, D) arrays of one dtype, e.g. some steps of a batch-first
    input copied time-major for their product (rnnkit.fast.scan.time_major_rows): from
    COPY_SPLIT_BYTES split over the threads where the loops run on GNU OpenMP
    (``shared_openmp``), else NumPy's copy on the calling thread."""
    if _enabled and dst.nbytes >= COPY_SPLIT_BYTES and dst.dtype == src.dtype and \
            dst.strides[2] == src.strides[2] == dst.itemsize and shared_openmp():
        from rnnkit.fast.kernels.fastmath import copy_split
        copy_split(dst, src)
    else:
        np.copyto(dst, src)


def units_split(N: int, weights: int):
    """The OpenBLAS an inference loop split by hidden units (rnnkit.fast.kernels.columns) runs its
    products on, or None: where MKL is not tuned for the processor and rnnkit has an OpenBLAS
    of its own (on one thread at every size), with the loops on GNU OpenMP over two threads
    or more, at least UNITS_SPLIT_ROWS rows and ``weights`` (bytes: the loop's W_hh, and W_xh
    when it projects the input itself) of at least UNITS_SPLIT_BYTES."""
    if blas.mkl_tuned() or N < UNITS_SPLIT_ROWS or weights < UNITS_SPLIT_BYTES or \
            not shared_openmp():
        return None
    from rnnkit.fast.kernels.fastmath import get_num_threads
    return openblas.bundled() if get_num_threads() >= 2 else None


def select(cell, dtype, N: int, H: int, D: int = 0, train: bool = True, stepped: bool = False):
    """The fast kernel for this cell and size (input size D), or None for the reference path;
    ``train``: a forward that keeps what backward needs, else inference; ``stepped``:
    inference called one step at a time (STEP_SHARED_MACS)."""
    if not _enabled or np.dtype(dtype) != np.float32 or getattr(cell, "clip", None):
        return None
    from rnnkit.fast.kernels.gru import GRUKernel
    from rnnkit.fast.kernels.lstm import LSTMKernel
    from rnnkit.fast.kernels.rnn import ElmanKernel
    macs = N * cell.n_gates * H * H
    parts = loop_parts(N)
    own = macs < (OWN_PRODUCT_MACS if N == 1 else OWN_ROWS_PRODUCT_MACS)
    if N == 1 and not blas.mkl_tuned():     # its generic path loses to the loop's own product
        own = macs < MKL_LOOP_MACS
    gemm = blas.gemm_address() if not own and (macs < MKL_LOOP_MACS or parts > 1) else 0
    whole = macs < WHOLE_LOOP_MACS or gemm != 0 or own
    parts = parts if whole else 1
    if isinstance(cell, LSTMCell) and not cell.peepholes:
        kernel = LSTMKernel(whole, gemm, parts)
    elif isinstance(cell, GRUCell) and cell.reset_after:
        kernel = GRUKernel(whole, gemm, parts)
    elif isinstance(cell, ElmanCell):
        kernel = ElmanKernel(whole, cell.nonlinearity == "relu", gemm, parts)
    else:
        return None
    span = -(-N // parts)
    # the input projected in the loop: by the loop's own product, or by MKL's
    input_own = macs < WHOLE_LOOP_MACS and 0 < D <= LOOP_PROJECTION_INPUTS
    input_mkl = gemm != 0 and span >= MKL_PROJECTION_ROWS and 0 < D <= H and \
        span * D * cell.n_gates * H < MKL_PROJECTION_MACS
    kernel.projects_input = whole and (input_own or input_mkl)
    kernel.input_gemm = 0 if input_own else gemm
    inputs = D if kernel.projects_input else 0
    kernel.by_units = None if train or not whole else \
        units_split(N, 4 * cell.n_gates * H * (H + inputs))
    kernel.shared_threads = stepped and not train and N == 1 and gemm != 0 and \
        macs >= STEP_SHARED_MACS
    if kernel.by_units is not None:     # it projects the input, in the loop or before it
        kernel.units_in_loop, kernel.projects_input = kernel.projects_input, True
    return kernel


__all__ = ["AVAILABLE", "COPY_SPLIT_BYTES", "LOOP_PROJECTION_INPUTS", "MIN_SPAN_ROWS",
           "MKL_LOOP_MACS", "MKL_PROJECTION_MACS", "MKL_PROJECTION_ROWS", "OWN_PRODUCT_MACS",
           "OWN_ROWS_PRODUCT_MACS", "STEP_SHARED_MACS", "UNITS_SPLIT_ROWS", "UNITS_SPLIT_BYTES",
           "WHOLE_LOOP_MACS", "copy_steps", "loop_parts", "reference_only", "select",
           "shared_openmp", "units_split"]
