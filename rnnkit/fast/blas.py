"""Matrix products for the engine's large GEMMs: Intel MKL when installed, else NumPy.

``matmul(a, b, out)`` computes ``out = a @ b`` (``accumulate=True``: ``out += a @ b``) for 2-d
float32/float64 arrays. With the ``mkl`` package (``pip install rnnkit[mkl]``, x86-64) and a
large product (below) it calls MKL's ``cblas_?gemm`` directly; otherwise, and whenever a
layout does not suit BLAS, it is ``np.matmul``.

Why: NumPy's wheels link OpenBLAS, whose products of an RNN's shapes were slower than MKL's
on an Intel Xeon, and MKL is what PyTorch's CPU build uses; below MIN_MACS MKL's call
overhead makes it the slower one, so small products stay with NumPy (docs/performance.md,
section 1). ``accumulate`` uses BLAS's beta = 1: gradients add into their buffers with no
temporary.

The two libraries must not take turns within a training step: each keeps a worker thread
spinning for a while after a product, which the other's next product then waits for. So
each scan (one direction of one layer) calls ``choose`` with the size of its per-step
product, and the choice holds until the next scan (it is kept in the context's
rnnkit.fast.setting.Setting, ``scan_mkl``): with MKL chosen every product above OpenBLAS's
single-thread size (``SINGLE_THREAD_MACS``) goes to MKL, without it none does. Before any
scan (a model of Dense layers alone) the size of each product decides.

MKL runs on its GNU OpenMP layer when the system's libgomp loads, else on Intel's.
``RNNKIT_BLAS=numpy`` turns MKL off; ``use("numpy")`` does so within a block.

Where MKL is not tuned for the processor
(``mkl_tuned``), the float32 products chosen for MKL go where ``route_float32`` sends them:
rnnkit.fast.kernels sends them to OpenBLAS (rnnkit.fast.openblas) split over the loops' threads.
"""
from __future__ import annotations

import ctypes
import functools
from contextlib import contextmanager

import numpy as np

from rnnkit.fast import openblas, setting
from rnnkit.fast.mkl import load as _load
from rnnkit.fast.openblas import SINGLE_THREAD_MACS, numpy_openblas

MIN_MACS = 1 << 22
LOOP_PACK_MACS = 1 << 21         # a compiled loop's products from this size use packed weights
# and a product of one row from this size of W (K x N): below it packing gains little
# (docs/performance.md, section 1: MKL called from inside a compiled loop)
ONE_ROW_PACK_MACS = 1 << 16
NO_PRODUCT = (0,) * 8            # loop_product's tuple for the loop's own product
_ROW, _NO_TRANS, _TRANS, _PACKED, _B_MATRIX = 101, 111, 112, 151, 162
_float32_route = None           # route_float32(): (gemm, name) or None


def _cpu_vendor() -> str:
    vendor = openblas.cpu().get("vendor_id")
    if vendor is not None:
        return vendor
    import platform
    return next((v for v in ("GenuineIntel", "AuthenticAMD") if v in platform.processor()), "")


def mkl_tuned() -> bool:
    """Whether MKL runs kernels tuned for this processor: an Intel one (or one not known),
    unless the context's setting says otherwise (rnnkit.fast.setting, ``tuned``).

    On others MKL takes a generic path and generates no code for a shape (``jit_kernel``),
    and its products lost to OpenBLAS's and, at batch 1, to the loop's own (AMD EPYC Zen 4
    and Zen 5: docs/performance.md, section 1). So there ``loop_product`` takes OpenBLAS
    for the loops' products (at every size on rnnkit's own), rnnkit.fast.kernels.select the
    loop's own product at batch 1, and rnnkit.fast.kernels sends the large products to
    OpenBLAS too (``route_float32``).
    """
    tuned = setting.current().tuned
    return _intel() if tuned is None else tuned


def tuned_for(vendor: str) -> bool:
    """Whether MKL has kernels tuned for a processor of this vendor (/proc/cpuinfo's
    vendor_id; "" where unknown)."""
    return vendor in ("GenuineIntel", "")


@functools.cache
def _intel() -> bool:
    return tuned_for(_cpu_vendor())


def _enabled() -> bool:
    return setting.current().mkl


def gemm_address() -> int:
    """The address of MKL's cblas_sgemm, for compiled time loops to call (0 without MKL)."""
    lib = _load() if _enabled() else False
    return ctypes.cast(lib.cblas_sgemm, ctypes.c_void_p).value if lib else 0


def backend() -> str:
    """'mkl (gnu threads)' or 'mkl (intel threads)' when MKL serves the large products,
    else 'numpy'."""
    lib = _load() if _enabled() else False
    return f"mkl ({lib.threading_layer} threads)" if lib else "numpy"


@contextmanager
def use(name: str):
    """Within this block the large products go to ``name``: 'mkl' (if installed) or 'numpy'."""
    if name not in ("mkl", "numpy"):
        raise ValueError(f"blas.use: expected 'mkl' or 'numpy', got {name!r}")
    with setting.using(mkl=name == "mkl"):
        yield


def choose(step_macs: int, compiled_loop: bool = False) -> bool:
    """A scan whose per-step product has ``step_macs`` multiply-adds starts: MKL serves it
    (and what follows, until the next scan) if that product is at least ``MIN_MACS``, or if
    its time loop is compiled whole (``compiled_loop``, rnnkit.fast.kernels), making no call to
    NumPy's OpenBLAS between the steps for MKL's threads to wait on:
    - split over the threads, the loop runs on MKL's OpenMP threads, and an OpenBLAS thread
      left spinning would take one of its cores;
    - at batch 1 its own products leave the scan's others to a library, and MKL's input
      projection was the faster (docs/performance.md, section 1)."""
    chosen = (step_macs >= MIN_MACS or compiled_loop) and _enabled() and bool(_load())
    if setting.current().scan_mkl is not chosen:        # (no new object while it holds)
        setting.keep(scan_mkl=chosen)
    return chosen


def route_key() -> tuple:
    """What decides where the products go now (``use``, the last scan's ``choose`` and
    ``mkl_tuned``): a product made for MKL under one setting (rnnkit.fast.blas.Packed) must not
    serve another."""
    now = setting.current()
    return now.mkl, now.scan_mkl, mkl_tuned()


def wants_mkl(macs: int) -> bool:
    """Whether a product of ``macs`` multiply-adds goes to MKL under the current setting."""
    now = setting.current()
    if not now.mkl:
        return False
    if now.scan_mkl is None:
        return macs >= MIN_MACS
    return now.scan_mkl and macs > SINGLE_THREAD_MACS


def operand(a: np.ndarray):
    """(CBLAS transpose flag, leading dimension) for a row- or column-major 2-d view, else
    None."""
    size = a.itemsize
    s0, s1 = a.strides
    if s1 == size and s0 % size == 0 and s0 // size >= a.shape[1]:
        return _NO_TRANS, s0 // size
    if s0 == size and s1 % size == 0 and s1 // size >= a.shape[0]:
        return _TRANS, s1 // size
    if a.flags.c_contiguous:                     # a size-1 axis with an odd stride
        return _NO_TRANS, max(1, a.shape[1])
    if a.flags.f_contiguous:
        return _TRANS, max(1, a.shape[0])
    return None


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None,
           accumulate: bool = False) -> np.ndarray:
    """out = a @ b, or out += a @ b with ``accumulate``; a (M, K), b (K, N), out (M, N)."""
    M, K = a.shape
    N = b.shape[1]
    if out is None:
        out = np.zeros((M, N), np.result_type(a, b)) if accumulate else \
            np.empty((M, N), np.result_type(a, b))
    if wants_mkl(M * N * K) and _gemm(a, b, out, accumulate):
        return out
    if K == 1:          # an outer product: a broadcast multiply, NumPy's matmul is slow at it
        if accumulate:
            out += a * b
        else:
            np.multiply(a, b, out=out)
    elif accumulate:
        out += a @ b
    else:
        np.matmul(a, b, out=out)
    return out


ASUM_SIZE = 1 << 20


def absolute_sum(a: np.ndarray) -> float | None:
    """sum(|a|) by MKL's ?asum on its threads, for a C-contiguous float32/float64 array of at
    least ASUM_SIZE elements; None otherwise (no MKL, another layout, a smaller array). A NaN
    or infinity anywhere makes it non-finite, so it tells that all of ``a`` is finite in one
    pass with no temporary (faster than np.isfinite(a).all(): docs/performance.md, section
    1). Smaller arrays stay with NumPy, and so do all while the last scan chose NumPy's
    products: MKL's threads, woken between OpenBLAS's, would be left spinning in their way
    (the module's docstring)."""
    if a.size < ASUM_SIZE or a.dtype.char not in "fd" or not a.flags.c_contiguous or \
            a.size >= 1 << 31 or setting.current().scan_mkl is False:
        return None
    lib = _load() if _enabled() else False
    if not lib:
        return None
    fn = lib.cblas_sasum if a.dtype.char == "f" else lib.cblas_dasum
    return fn(a.size, a.ctypes.data, 1)


def transpose_into(a: np.ndarray, out: np.ndarray) -> bool:
    """out[...] = a.T by MKL's ?omatcopy for C-contiguous float32/float64 arrays; False, with
    nothing done, otherwise, and (as ``absolute_sum``) while the last scan chose NumPy's
    products. Faster than a tiled NumPy copy (rnnkit.fast.fused.weights; docs/performance.md,
    section 1)."""
    if a.dtype.char not in "fd" or out.dtype != a.dtype or out.shape != a.shape[::-1] or \
            not (a.flags.c_contiguous and out.flags.c_contiguous) or a.size == 0 or \
            setting.current().scan_mkl is False:
        return False
    lib = _load() if _enabled() else False
    if not lib:
        return False
    R, C = a.shape
    fn = lib.MKL_Somatcopy if a.dtype.char == "f" else lib.MKL_Domatcopy
    fn(b"R", b"T", R, C, 1.0, a.ctypes.data, C, out.ctypes.data, R)
    return True


def column_sums(a: np.ndarray) -> np.ndarray:
    """a.sum(axis=0) of a 2-d array, as the product of a row of ones with it (the bias
    gradients: dL/da summed over steps and rows): faster than NumPy's reduction over rows,
    and BLAS's blocked accumulation comes out closer to the float64 sum (docs/performance.md,
    section 1)."""
    return matmul(np.ones((1, a.shape[0]), a.dtype), a)[0]


class Packed:
    """``W`` (K, N) for a time loop's per-step products ``a @ W``, a of up to ``rows`` rows.

    On MKL (when the scan chose it and the product is large enough to go there) W is packed
    once into MKL's internal layout (cblas_?gemm_pack) and every step runs
    cblas_?gemm_compute on it: an ordinary call packs W again each time
    (docs/performance.md, section 1). Otherwise ``matmul`` is
    ``rnnkit.fast.blas.matmul(a, W, out, accumulate)``."""

    def __init__(self, W: np.ndarray, rows: int, always: bool = False):
        """``always``: pack W whenever MKL is installed, whatever the scan chose (a compiled
        loop calling MKL itself)."""
        self.W, self.buf = W, None
        K, N = W.shape
        lib = _load() if _enabled() else False
        if lib and (always or wants_mkl(rows * K * N)) and W.dtype.char in "fd" and \
                W.flags.c_contiguous:
            kind = "s" if W.dtype.char == "f" else "d"
            size = getattr(lib, f"cblas_{kind}gemm_pack_get_size")(_B_MATRIX, rows, N, K)
            self.buf = np.empty(-(-size // W.itemsize), W.dtype)
            getattr(lib, f"cblas_{kind}gemm_pack")(_ROW, _B_MATRIX, _NO_TRANS, rows, N, K, 1.0,
                                                   W.ctypes.data, N, self.buf.ctypes.data)
            self.compute = getattr(lib, f"cblas_{kind}gemm_compute")

    def matmul(self, a: np.ndarray, out: np.ndarray, accumulate: bool = False) -> np.ndarray:
        """out = a @ W, or out += a @ W with ``accumulate``."""
        if self.buf is None or a.dtype != self.W.dtype or out.dtype != self.W.dtype or \
                not row_major(a) or not row_major(out) or not out.flags.writeable or \
                np.may_share_memory(out, a):
            return matmul(a, self.W, out, accumulate)
        M, K = a.shape
        N = self.W.shape[1]
        if M:
            self.compute(_ROW, _NO_TRANS, _PACKED, M, N, K, a.ctypes.data, a.strides[0] //
                         a.itemsize, self.buf.ctypes.data, N, 1.0 if accumulate else 0.0,
                         out.ctypes.data, out.strides[0] // out.itemsize)
        return out


MAX_JIT_KERNELS = 256
_jit_kernels: dict = {}     # (m, n, k, accumulate) -> (kernel, jitter): kept for the process


def jit_kernel(m: int, n: int, k: int, accumulate: bool) -> tuple[int, int]:
    """MKL's sgemm generated for one shape (mkl_cblas_jit_create_sgemm): row-major
    (m, k) @ (k, n) with rows of exactly k and n elements, ``c = a @ b`` or, ``accumulate``,
    ``c += a @ b``. -> (kernel address, jitter), called as kernel(jitter, a, b, c); (0, 0)
    without MKL's JIT, where it generates none (an AMD processor), or after MAX_JIT_KERNELS
    shapes. Generated once per shape and kept: a training run meets few shapes, and making
    one costs more than many calls save."""
    key = (m, n, k, accumulate)
    if key not in _jit_kernels:
        lib = _load() if _enabled() else False
        if not lib or not lib.jit or len(_jit_kernels) >= MAX_JIT_KERNELS or min(key[:3]) < 1:
            return 0, 0
        jitter = ctypes.c_void_p()
        status = lib.mkl_cblas_jit_create_sgemm(ctypes.byref(jitter), _ROW, _NO_TRANS,
                                                _NO_TRANS, m, n, k, 1.0, k, n,
                                                1.0 if accumulate else 0.0, n)
        # 0: code generated; 1: none for this shape or processor (MKL generates none on AMD's
        # Zen: the kernel would call the plain sgemm, as the loop does anyway); 2: failed
        kernel = lib.mkl_jit_get_sgemm_ptr(jitter) if status == 0 else None
        if not kernel and jitter.value:
            lib.mkl_jit_destroy(jitter)
        _jit_kernels[key] = (kernel, jitter.value) if kernel else (0, 0)
    return _jit_kernels[key]


def loop_product(W: np.ndarray, rows: int, gemm: int, accumulate: bool = False,
                 parts: int = 1, shared: bool = False):
    """-> (product, keep) for a compiled time loop's float32 ``a @ W`` (``accumulate``:
    ``+=``), a of up to ``rows`` rows split over ``parts`` threads, each taking the product of
    its span (rnnkit.fast.kernels.fastmath.matmul_rows, ``part``), and an object that must stay
    alive while the loop runs.

    ``product`` is (function, packed, threads, jit, jitter, jit_rows, jit_accumulate, ilp64):
    - function, packed: cblas_sgemm_compute and W packed, from LOOP_PACK_MACS multiply-adds,
      else the plain sgemm at address ``gemm`` and 0; 0, 0 for the loop's own product
      (``gemm`` = 0). Where MKL is not ``mkl_tuned``, OpenBLAS's sgemm (rnnkit.fast.openblas:
      ilp64, it takes 64-bit integers): the one rnnkit loads for itself, on one thread, at
      every size; else NumPy's up to SINGLE_THREAD_MACS, which it runs on the calling thread
      without its thread pool;
    - threads: MKL_Set_Num_Threads_Local, which each thread running the loop sets to 1 for
      itself (fastmath.local_threads): a loop's small products are slower on two threads,
      and nested OpenMP inside a split loop far slower; 0 with ``shared``: the loop's MKL
      products on all of MKL's threads (rnnkit.fast.kernels.STEP_SHARED_MACS);
    - jit, jitter, jit_rows, jit_accumulate: below LOOP_PACK_MACS, MKL's sgemm generated for
      exactly a first span's rows of dense a and out (``jit_kernel``), else 0s: the plain
      sgemm checks its arguments and sizes its blocking at every call (above LOOP_PACK_MACS
      the generated one is the slower; benchmarks/loop_products.py).
    The measurements: docs/performance.md, section 1."""
    if not gemm:
        return NO_PRODUCT, None
    threads = 0 if shared else \
        ctypes.cast(_load().MKL_Set_Num_Threads_Local, ctypes.c_void_p).value
    rows = -(-rows // parts)                    # the first (largest) span's
    K, N = W.shape
    library = openblas.products() if not mkl_tuned() else None
    if library and rows * K * N <= library.single_thread_macs:
        return (library.sgemm, 0, threads, 0, 0, 0, 0, int(library.ilp64)), None
    if rows * K * N < LOOP_PACK_MACS and not (rows == 1 and K * N >= ONE_ROW_PACK_MACS):
        dense = W.dtype == np.float32 and W.flags.c_contiguous
        jit, jitter = jit_kernel(rows, N, K, accumulate) if dense else (0, 0)
        return (gemm, 0, threads, jit, jitter, rows, int(accumulate), 0), None
    packed = Packed(W, rows, always=True)
    if packed.buf is None or W.dtype != np.float32:
        return (gemm, 0, threads, 0, 0, 0, 0, 0), None
    return (ctypes.cast(packed.compute, ctypes.c_void_p).value, packed.buf.ctypes.data,
            threads, 0, 0, 0, 0, 0), packed


def row_major(a: np.ndarray) -> bool:
    """A 2-d view BLAS can take as row-major with a leading dimension (rows of unit stride)."""
    return a.strides[1] == a.itemsize and a.strides[0] % a.itemsize == 0 and \
        a.strides[0] // a.itemsize >= a.shape[1] and a.flags.aligned


def _gemm(a, b, out, accumulate: bool) -> bool:
    lib = _load()
    if not lib or not (a.dtype == b.dtype == out.dtype) or a.dtype.char not in "fd":
        return False
    if not row_major(out) or not out.flags.writeable:
        return False
    la, lb = operand(a), operand(b)
    if la is None or lb is None or np.may_share_memory(out, a) or np.may_share_memory(out, b):
        return False
    if a.dtype.char == "f" and _float32_route is not None and not mkl_tuned():
        _float32_route[0](la[0], la[1], lb[0], lb[1], a, b, out, accumulate)
        return True
    M, K = a.shape
    N = b.shape[1]
    fn = lib.cblas_sgemm if a.dtype.char == "f" else lib.cblas_dgemm
    fn(_ROW, la[0], lb[0], M, N, K, 1.0, a.ctypes.data, la[1], b.ctypes.data, lb[1],
       1.0 if accumulate else 0.0, out.ctypes.data, out.strides[0] // out.itemsize)
    return True


def route_float32(gemm, name: str = "") -> None:
    """Where MKL is not tuned for the processor (``mkl_tuned``), send the float32 products
    that would go to MKL's sgemm to ``gemm(ta, lda, tb, ldb, a, b, out, accumulate)`` instead
    (ta, tb: CBLAS transpose flags); None: back to MKL. ``name`` says where, for
    ``large_products``. rnnkit.fast.kernels registers OpenBLAS split over the loops' threads
    (rnnkit.fast.kernels.products) once it knows they share one OpenMP pool: a fact about the
    process, not a choice."""
    global _float32_route
    _float32_route = None if gemm is None else (gemm, name)


def float32_route():
    """The product registered by ``route_float32`` (None if none), whether or not it serves
    now."""
    return None if _float32_route is None else _float32_route[0]


def large_products() -> str:
    """Where the large float32 products go: ``backend()``, or where ``route_float32`` sends
    them."""
    if _float32_route is not None and not mkl_tuned() and _enabled() and _load():
        return _float32_route[1]
    return backend()


__all__ = ["ASUM_SIZE", "MIN_MACS", "NO_PRODUCT", "SINGLE_THREAD_MACS", "Packed",
           "absolute_sum", "backend", "choose", "column_sums", "float32_route", "gemm_address",
           "jit_kernel", "large_products", "loop_product", "matmul", "mkl_tuned",
           "numpy_openblas", "operand", "route_float32", "route_key", "row_major",
           "transpose_into", "tuned_for", "use", "wants_mkl"]
