"""Fast time loops for the cells, chosen automatically; the readable NumPy path is the reference.

``select`` picks, for float32 and when numba is installed (``pip install rnnkit[fast]``):
- the whole time loop compiled, when the recurrent product per step is small (batch x
  gates*H x H multiply-adds < WHOLE_LOOP_MACS, i.e. batch 1-2 at H = 128): per-step Python
  and BLAS-call overhead is what costs there; the loop writes its product out below
  OWN_PRODUCT_MACS at batch 1 (OWN_ROWS_PRODUCT_MACS at larger batches), and from there,
  with MKL installed, calls MKL itself, on one thread (at batch 1 on weights packed once),
  up to MKL_LOOP_MACS (e.g. batch 32 at H = 64-128); where MKL is not tuned for the processor
  (rnnkit.fast.blas.mkl_tuned, e.g. AMD's), its products go to OpenBLAS instead
  (rnnkit.fast.openblas: at every size on rnnkit's own, up to its single-thread size on
  NumPy's) and batch 1 keeps
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
  WHOLE_LOOP_MACS up;
- otherwise the recurrent product by NumPy's BLAS and all gate arithmetic of a step in one
  compiled pass (RNN, LSTM, GRU with reset after);
- otherwise (float64, peepholes, GRU reset-before, clip, no numba) the reference in
  rnnkit.cells.
Every fast path fills the same cache as the reference and is pinned to it by tests.
``reference_only()`` switches the fast paths off, e.g. to compare.

With the per-step product on Intel MKL (``rnnkit.fast.blas``, a scan with a large step) the LSTM
and GRU step kernels also split their rows over the threads, when numba's parallel loops and
MKL share one OpenMP runtime (``shared_openmp``): then the worker thread that MKL's product
leaves spinning takes the next kernel's half at once. With NumPy's OpenBLAS the two thread
pools would fight over the cores, so without MKL the kernels stay serial.

The measurements behind each threshold below: docs/performance.md, section 2.
"""
from __future__ import annotations

import functools
import os
from contextlib import contextmanager

import numpy as np

from rnnkit.fast import blas, openblas, setting
from rnnkit.fast.fused import ElmanCell, GRUCell, LSTMCell
from rnnkit.fast.kernels.fastmath import AVAILABLE, set_target
from rnnkit.fast.steps import COPY_SPLIT_BYTES

# below this, per-step Python and BLAS-call overhead outweigh the product: the whole loop is
# compiled (docs/performance.md#whole_loop_macs)
WHOLE_LOOP_MACS = 1 << 17
# batch 1: the loop's own product below this, MKL's on packed weights above; where MKL is not
# tuned (AMD) the own product up to MKL_LOOP_MACS (docs/performance.md#own_product_macs)
OWN_PRODUCT_MACS = 1 << 16
# two rows or more: MKL's generated sgemm beats the own product, which reads W once a row,
# from here (docs/performance.md#own_rows_product_macs)
OWN_ROWS_PRODUCT_MACS = 1 << 13
# up to this, with MKL and no split, the whole loop calls MKL's sgemm itself: no Python
# between steps (docs/performance.md#mkl_loop_macs)
MKL_LOOP_MACS = 1 << 22
# a split loop's spans have at least this many rows: spans of one row lose
# (docs/performance.md#min_span_rows)
MIN_SPAN_ROWS = 4
# inference with the loop's own product projects each step's input in the loop up to this
# many inputs: one row of projection, not T (docs/performance.md#loop_projection_inputs)
LOOP_PROJECTION_INPUTS = 16
# inference on MKL projects in the loop from spans of this many rows (and D <= H): no (T, N,
# gates) buffer to memory and back (docs/performance.md#mkl_projection_rows)
MKL_PROJECTION_ROWS = 16
# ... while a span's step of that projection stays below this
# (docs/performance.md#mkl_projection_macs)
MKL_PROJECTION_MACS = 1 << 25
# a stepped scan at batch 1 (text generation) gives its MKL product to all threads from here:
# each keeps its share of W_hh cached between calls (docs/performance.md#step_shared_macs)
STEP_SHARED_MACS = 1 << 17
# inference splits each step by hidden units from this many rows and bytes of loop weights
# (a core's L2 on an AMD EPYC) (docs/performance.md#units_split_rows-and-units_split_bytes)
UNITS_SPLIT_ROWS = 16
UNITS_SPLIT_BYTES = 1 << 20


@contextmanager
def reference_only():
    """Within this block every scan runs the NumPy reference path (rnnkit.fast.setting,
    ``loops``)."""
    with setting.using(loops=False):
        yield


def _enabled() -> bool:
    return AVAILABLE and setting.current().loops


@functools.cache
def shared_openmp() -> bool:
    """True when MKL runs on GNU OpenMP and numba's parallel loops do too (its 'omp' layer),
    so both use the system's one libgomp and its one pool of threads. Sets numba's threading
    layer to 'omp' unless the user chose another (NUMBA_THREADING_LAYER). Where MKL is not
    tuned for the processor, the large float32 products then go to OpenBLAS (rnnkit.fast.openblas),
    split over that pool (rnnkit.fast.kernels.products). A fact about the process: asked once."""
    shared = False
    if AVAILABLE and blas.backend() == "mkl (gnu threads)":
        import numba
        if numba.config.THREADING_LAYER in ("default", "omp") and \
                os.environ.get("NUMBA_THREADING_LAYER", "omp") == "omp":
            numba.config.THREADING_LAYER = "omp"
            try:
                from rnnkit.fast.kernels.fastmath import probe_threads
                probe_threads(4)
                shared = numba.threading_layer() == "omp"
            except (ValueError, ImportError, RuntimeError):
                shared = False
    library = openblas.products()
    if shared and library:
        from rnnkit.fast.kernels.products import Split
        which = "rnnkit's own" if library == openblas.bundled() else "NumPy's"
        blas.route_float32(Split(library),
                           f"openblas {library.core} ({which}), split over the threads")
    return shared


def loop_parts(N: int) -> int:
    """Threads a whole loop over N batch rows splits its batch over (1: it runs whole).

    The scan then sends its other products to MKL too (``blas.choose``): OpenBLAS, after a
    two-thread product, leaves a thread spinning that takes one of the loop's cores
    (docs/performance.md, section 1)."""
    if N < 2 * MIN_SPAN_ROWS or not shared_openmp():
        return 1
    from rnnkit.fast.kernels.fastmath import get_num_threads
    return max(1, min(get_num_threads(), N // MIN_SPAN_ROWS))


def copy_steps(dst: np.ndarray, src: np.ndarray) -> None:
    """dst[...] = src for (S, N, D) arrays of one dtype, e.g. some steps of a batch-first
    input copied time-major for their product (rnnkit.fast.scan.time_major_rows): from
    COPY_SPLIT_BYTES split over the threads where the loops run on GNU OpenMP
    (``shared_openmp``), else NumPy's copy on the calling thread."""
    if _enabled() and dst.nbytes >= COPY_SPLIT_BYTES and dst.dtype == src.dtype and \
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


def serves(dtype) -> bool:
    """Whether the compiled loops run at this dtype (numba installed and not switched off)."""
    return _enabled() and np.dtype(dtype) == np.float32


def select(cell, dtype, N: int, H: int, D: int = 0, train: bool = True, stepped: bool = False):
    """The fast kernel for this cell and size (input size D), or None for the reference path;
    ``train``: a forward that keeps what backward needs, else inference; ``stepped``:
    inference called one step at a time (STEP_SHARED_MACS)."""
    if not serves(dtype):
        return None
    set_target()                    # (numba's vector width, before the first compile)
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
    if isinstance(cell, LSTMCell):
        kernel = LSTMKernel(whole, gemm, parts)
    elif isinstance(cell, GRUCell):
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
           "WHOLE_LOOP_MACS", "copy_steps", "loop_parts", "reference_only", "select", "serves",
           "shared_openmp", "units_split"]
