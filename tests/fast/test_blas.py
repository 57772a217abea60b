"""rnnkit.fast.blas: MKL for the large products when installed, NumPy otherwise; same results."""
import ctypes
import os
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest

from rnnkit import Dense
from rnnkit.fast import blas, setting
from layer_cases import CELLS, make


def mkl_installed() -> bool:
    try:
        metadata.distribution("mkl")
    except metadata.PackageNotFoundError:
        return False
    return True


def mkl_generates(m, n, k, accumulate) -> bool:
    """Whether MKL generates an sgemm for this shape on this processor, asked of MKL itself
    (it generates none on AMD's Zen, where the loops call the plain sgemm instead)."""
    lib = blas._load()
    if not lib or not lib.jit:
        return False
    jitter = ctypes.c_void_p()
    status = lib.mkl_cblas_jit_create_sgemm(ctypes.byref(jitter), 101, 111, 111, m, n, k, 1.0,
                                            k, n, 1.0 if accumulate else 0.0, n)
    if jitter.value:
        lib.mkl_jit_destroy(jitter)
    return status == 0


@pytest.fixture
def every_product(monkeypatch):
    """Send every product, however small, through the chosen backend."""
    monkeypatch.setattr(blas, "MIN_MACS", 0)
    monkeypatch.setattr(blas, "SINGLE_THREAD_MACS", 0)


@pytest.fixture
def mkl_calls(monkeypatch):
    """The products sent to MKL, as (M, K, N), with the real size thresholds; a projection
    of all steps made on a batch-first input where it lies (rnnkit.fast.strided) as one."""
    from rnnkit.fast import strided
    calls, real, project = [], blas._gemm, strided.project
    monkeypatch.setattr(blas, "_gemm", lambda a, b, out, acc:
                        calls.append(a.shape + b.shape[1:]) or real(a, b, out, acc))

    def projected(x, W, out):
        made = project(x, W, out)
        if made:
            calls.append((x.shape[0] * x.shape[1],) + W.shape)
        return made
    monkeypatch.setattr(strided, "project", projected)
    return calls


def square(n, dtype=np.float32):
    return np.ones((n, n), dtype)


def test_before_any_scan_the_size_of_each_product_decides(mkl_calls):
    blas.matmul(square(64), square(64))                       # 262144 multiply-adds
    blas.matmul(square(256), square(256))                     # 16.7M
    assert mkl_calls == ([(256, 256, 256)] if mkl_installed() else [])


def test_a_reference_scan_with_a_small_step_keeps_every_product_with_numpy(mkl_calls):
    """Its per-step products are NumPy's: an MKL product in between would wait on them."""
    from rnnkit.fast import kernels
    layer = make("lstm", 3, 4)
    with kernels.reference_only():
        layer.forward(np.ones((2, 5, 3), np.float32))
    np.testing.assert_array_equal(blas.matmul(square(256), square(256)), 256 * square(256))
    assert mkl_calls == []


def test_a_scan_with_a_large_step_sends_the_mid_sized_products_to_mkl(mkl_calls):
    assert blas.choose(blas.MIN_MACS) == mkl_installed()
    blas.matmul(square(64), square(64))                       # OpenBLAS's single-thread size
    blas.matmul(square(128), square(128))                     # 2.1M: above it
    assert mkl_calls == ([(128, 128, 128)] if mkl_installed() else [])


def test_a_scan_whose_loop_is_split_over_the_threads_sends_its_products_to_mkl(mkl_calls):
    """A small step, but its whole loop runs on MKL's OpenMP threads: an OpenBLAS thread
    left spinning by the input projection would take one of the loop's cores. (Training:
    at inference this loop projects its input itself, MKL_PROJECTION_ROWS.)"""
    from rnnkit.fast import kernels
    layer = make("lstm", 32, 64)
    layer.forward(np.ones((32, 50, 32), np.float32))
    split = kernels.loop_parts(32) > 1
    assert split == (kernels.shared_openmp() and kernels.fastmath.get_num_threads() > 1)
    # on one thread (NUMBA_NUM_THREADS=1) the loop is compiled whole instead of split: its
    # products go to MKL all the same
    whole = kernels.AVAILABLE and kernels.select(layer.cell, np.float32, 32, 64).whole_loop
    assert whole or not split
    assert ((1600, 32, 256) in mkl_calls) == (whole and mkl_installed())   # input projection
    assert blas.choose(0, compiled_loop=True) == mkl_installed()


def test_a_batch_one_scan_compiled_whole_sends_its_products_to_mkl(mkl_calls):
    """Its loop makes no OpenBLAS call, so nothing waits on a thread of the other library;
    MKL took the input projection in 129 us against OpenBLAS's 310 (1000 x 16 @ 16 x 512).
    (At inference with at most LOOP_PROJECTION_INPUTS inputs the loop projects them itself.)"""
    from rnnkit.fast import kernels
    D = kernels.LOOP_PROJECTION_INPUTS + 1
    layer = make("lstm", D, 128)
    layer.forward(np.ones((1, 50, D), np.float32), grad=False)
    whole = kernels.AVAILABLE and kernels.select(layer.cell, np.float32, 1, 128).whole_loop
    assert ((50, D, 512) in mkl_calls) == (whole and mkl_installed())
    small = make("lstm", D - 1, 128)
    small.forward(np.ones((1, 50, D - 1), np.float32), grad=False)
    assert (50, D - 1, 512) not in mkl_calls or not whole


def test_compiled_loops_get_large_weights_packed_and_small_products_generated(monkeypatch):
    setting.keep(tuned=True)               # as on an Intel processor
    gemm = blas.gemm_address()
    product, keep = blas.loop_product(square(256), 64, gemm)      # 4.2M >= LOOP_PACK_MACS
    if gemm:
        threads = ctypes.cast(blas._load().MKL_Set_Num_Threads_Local, ctypes.c_void_p).value
        assert product == (ctypes.cast(keep.compute, ctypes.c_void_p).value,
                           keep.buf.ctypes.data, threads, 0, 0, 0, 0, 0) and product[0] != gemm
        small, keep = blas.loop_product(square(64), 32, gemm, accumulate=True)   # sgemm
        jit = blas.jit_kernel(32, 64, 64, True)
        assert small == (gemm, 0, threads, *jit, 32, 1, 0) and keep is None
        assert (jit[0] != 0) == mkl_generates(32, 64, 64, True)
        split, _ = blas.loop_product(square(64), 63, gemm, accumulate=True, parts=2)
        assert split[3:] == (*jit, 32, 1, 0)               # for the first span, 32 rows
        # one row: packed from ONE_ROW_PACK_MACS (128 x 512), generated below (128 x 511)
        W = np.ones((128, blas.ONE_ROW_PACK_MACS // 128), np.float32)
        one, keep = blas.loop_product(W, 1, gemm)
        assert one[1] == keep.buf.ctypes.data != 0 and one[3] == 0
        one, keep = blas.loop_product(np.ascontiguousarray(W[:, 1:]), 1, gemm)
        assert one[1] == 0 and keep is None and one[5] == 1
        assert blas.loop_product(W, 2, gemm)[0][1] == 0     # two rows: not packed
    else:
        assert product == blas.NO_PRODUCT and keep is None
    assert blas.loop_product(square(256), 64, 0) == (blas.NO_PRODUCT, None)    # the loop's own


@pytest.mark.parametrize("own_openblas", [True, False])
def test_where_mkl_is_not_tuned_loop_products_go_to_openblas(own_openblas, monkeypatch):
    """To rnnkit's own OpenBLAS (rnnkit.fast.openblas.bundled, one thread) at every size; without
    it, to NumPy's up to SINGLE_THREAD_MACS, which it runs on the calling thread, and above
    to MKL's packed product as on Intel."""
    from rnnkit.fast import openblas
    setting.keep(tuned=False)
    if not own_openblas:
        monkeypatch.setattr(openblas, "bundled", lambda: None)
    elif openblas.bundled() is None:
        pytest.skip("needs scipy-openblas32 (rnnkit[fast])")
    gemm = blas.gemm_address()
    if not gemm:
        assert blas.loop_product(square(64), 32, gemm) == (blas.NO_PRODUCT, None)
        return
    library = openblas.products()
    assert library is not None                  # NumPy's wheels bring OpenBLAS, ILP64
    threads = ctypes.cast(blas._load().MKL_Set_Num_Threads_Local, ctypes.c_void_p).value
    # 2 x 32 rows x 64 x 128 = 2^18 a span; 2 x 33 rows above; 64 x 256 x 256 = 4.2M
    for rows, W in ((64, np.ones((64, 128), np.float32)), (66, np.ones((64, 128), np.float32)),
                    (64, square(256))):
        product, keep = blas.loop_product(W, rows, gemm, parts=2 if W.shape[0] == 64 else 1)
        if own_openblas or (rows // 2) * W.size <= blas.SINGLE_THREAD_MACS:
            assert product == (library.sgemm, 0, threads, 0, 0, 0, 0, int(library.ilp64))
            assert keep is None
        elif W.shape[0] == 64:
            assert product[0] == gemm and product[7] == 0
        else:
            assert product[1] == keep.buf.ctypes.data != 0          # MKL's, packed


def test_mkl_counts_as_tuned_on_intel_processors_only_unless_the_setting_says():
    for vendor, tuned in (("GenuineIntel", True), ("AuthenticAMD", False), ("", True)):
        assert blas.tuned_for(vendor) is tuned
    assert blas.mkl_tuned() is blas.tuned_for(blas._cpu_vendor())
    for tuned in (True, False):
        with setting.using(tuned=tuned):
            assert blas.mkl_tuned() is tuned


@pytest.mark.skipif(not mkl_installed(), reason="the loops call a library's sgemm with MKL")
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("tuned", [True, False])
def test_loop_products_compute_their_product(accumulate, tuned, monkeypatch):
    """The products rnnkit.fast.blas.loop_product hands a compiled loop, called as the loops call
    them: MKL's generated sgemm (where MKL generates one) or plain sgemm; or, where MKL is
    not tuned for the processor, NumPy's OpenBLAS (64-bit sizes)."""
    from rnnkit.fast.kernels.fastmath import AVAILABLE
    if not AVAILABLE:
        pytest.skip("the loops that call it need numba")
    from numba import njit
    from rnnkit.fast.kernels.fastmath import matmul_rows
    setting.keep(tuned=tuned)
    run = njit(lambda gemm, acc, h, W, n, a: matmul_rows(gemm, acc, h, W, n, a))
    rng = np.random.default_rng(4)
    h = rng.standard_normal((16, 64)).astype(np.float32)
    W = rng.standard_normal((64, 96)).astype(np.float32)
    start = rng.standard_normal((16, 96)).astype(np.float32)
    product, _ = blas.loop_product(W, 16, blas.gemm_address(), accumulate)
    if tuned:
        assert (product[3] != 0) == mkl_generates(16, 96, 64, accumulate)   # for 16 rows
    else:
        from rnnkit.fast import openblas
        library = openblas.products()
        assert product[0] == library.sgemm and product[7] == int(library.ilp64)
    for n in (16, 9):                                      # 9: fewer rows, the plain sgemm
        acc = start.copy()
        run(product, acc, h, W, n, accumulate)
        expected = h[:n].astype(np.float64) @ W + (start[:n] if accumulate else 0)
        np.testing.assert_allclose(acc[:n], expected, rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(acc[n:], start[n:])


def test_backend_is_mkl_exactly_when_it_is_installed():
    assert blas.backend().startswith("mkl") == mkl_installed()
    with blas.use("numpy"):
        assert blas.backend() == "numpy"


def test_environment_variable_turns_mkl_off():
    env = dict(os.environ, RNNKIT_BLAS="numpy")
    out = subprocess.run([sys.executable, "-c", "from rnnkit.fast import blas; print(blas.backend())"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "numpy"


def test_use_rejects_an_unknown_backend():
    with pytest.raises(ValueError, match="blas.use: expected 'mkl' or 'numpy', got 'cublas'"):
        with blas.use("cublas"):
            pass


def operand(rng, shape, dtype, transposed, padded):
    """A (shape) view laid out row-major, column-major, and/or inside a wider array."""
    rows, cols = shape[::-1] if transposed else shape
    base = rng.standard_normal((rows, cols + (3 if padded else 0))).astype(dtype)[:, :cols]
    return base.T if transposed else base


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("accumulate", [False, True])
def test_products_of_every_layout_match_numpy(every_product, dtype, ta, tb, padded, accumulate):
    rng = np.random.default_rng(0)
    a = operand(rng, (7, 5), dtype, ta, padded)
    b = operand(rng, (5, 9), dtype, tb, padded)
    wide = rng.standard_normal((7, 12)).astype(dtype)
    out = wide[:, :9] if padded else np.ascontiguousarray(wide[:, :9])
    start = out.copy()
    expected = a.astype(np.float64) @ b.astype(np.float64) + (start if accumulate else 0)
    got = blas.matmul(a, b, out, accumulate=accumulate)
    assert got is out
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
    if padded:                                     # the columns beside the view are untouched
        np.testing.assert_array_equal(wide[:, 9:], wide[:, 9:].copy())


@pytest.mark.parametrize("accumulate", [False, True])
def test_outer_products_match_numpy(accumulate):
    """K = 1 (a batch-1 step's gradient times its initial state) is an outer product."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 1, 7)).astype(np.float32)[0].T       # (7, 1), strided
    b = rng.standard_normal((1, 5)).astype(np.float32)
    out = rng.standard_normal((7, 5)).astype(np.float32)
    expected = a.astype(np.float64) * b + (out if accumulate else 0)
    assert blas.matmul(a, b, out, accumulate=accumulate) is out
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", ["mkl", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [0, 1, 1600])
def test_column_sums_are_the_sums_over_rows(every_product, backend, dtype, rows):
    """The bias gradients' sums, as a product with a row of ones, on either library."""
    a = np.random.default_rng(3).standard_normal((rows, 37)).astype(dtype)
    with blas.use(backend):
        got = blas.column_sums(a)
    assert got.shape == (37,) and got.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, a.astype(np.float64).sum(axis=0), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_absolute_sum_is_mkls_sum_of_magnitudes_for_large_arrays_only(monkeypatch, dtype):
    a = np.random.default_rng(4).standard_normal((blas.ASUM_SIZE // 64, 64)).astype(dtype)
    got = blas.absolute_sum(a)
    if not mkl_installed():
        assert got is None
        return
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert got == pytest.approx(np.abs(a.astype(np.float64)).sum(), rel=tol)
    assert blas.absolute_sum(a[:-1]) is None                     # fewer than ASUM_SIZE
    assert blas.absolute_sum(a.T) is None                        # not C-contiguous
    with blas.use("numpy"):
        assert blas.absolute_sum(a) is None
    setting.keep(scan_mkl=False)                  # the last scan took NumPy's
    assert blas.absolute_sum(a) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transpose_into_is_mkls_exact_transpose_of_contiguous_arrays(monkeypatch, dtype):
    a = np.random.default_rng(5).standard_normal((96, 40)).astype(dtype)
    out = np.full((40, 96), np.nan, dtype)
    if not mkl_installed():
        assert not blas.transpose_into(a, out) and np.isnan(out).all()
        return
    assert blas.transpose_into(a, out)
    np.testing.assert_array_equal(out, a.T)
    out[...] = np.nan
    refused = [(a[:, ::2], out[::2]),                       # not C-contiguous
               (a, np.empty((96, 40), dtype)),              # not the transposed shape
               (a, out.astype(np.float16)),                 # another dtype
               (a[:0], out[:, :0]),                         # empty
               (a.astype(np.int32), np.zeros((40, 96), np.int32))]   # not a float
    assert not any(blas.transpose_into(x, y) for x, y in refused)
    with blas.use("numpy"):
        assert not blas.transpose_into(a, out)
    setting.keep(scan_mkl=False)             # the last scan took NumPy's
    assert not blas.transpose_into(a, out)
    assert np.isnan(out).all()                              # and wrote nothing


@pytest.mark.parametrize("where", [0, 1 << 19, -1])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_arrays_are_checked_finite_wherever_the_bad_value_is(monkeypatch, where, bad,
                                                                   dtype):
    from rnnkit.errors import RnnkitError, check_array
    a = np.ones(blas.ASUM_SIZE, dtype)
    assert check_array("a", a, ndim=1) is a
    a[where] = bad
    with pytest.raises(RnnkitError, match="a: expected finite values, got 1 NaN or infinite"):
        check_array("a", a, ndim=1)


def test_large_finite_arrays_whose_magnitudes_overflow_a_sum_pass_the_check(monkeypatch):
    from rnnkit.errors import check_array
    a = np.full(blas.ASUM_SIZE, 3e38, np.float32)
    if mkl_installed():
        assert not np.isfinite(blas.absolute_sum(a))
    assert check_array("a", a, ndim=1) is a


@pytest.mark.parametrize("case", ["overlap", "strided", "ints", "mixed", "new"])
def test_layouts_blas_cannot_take_fall_back_to_numpy(every_product, case):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 4)).astype(np.float32)
    b = rng.standard_normal((4, 6)).astype(np.float32)
    out = np.zeros((6, 6), np.float32)
    if case == "overlap":                          # out is the left operand's memory
        big = rng.standard_normal((6, 6)).astype(np.float32)
        a, out = big[:, :4], big
        b = rng.standard_normal((4, 6)).astype(np.float32)
    elif case == "strided":
        a = rng.standard_normal((6, 8)).astype(np.float32)[:, ::2]
    elif case == "ints":
        a, b, out = (a * 10).astype(np.int64), (b * 10).astype(np.int64), out.astype(np.int64)
    elif case == "mixed":
        b = b.astype(np.float64)
        out = out.astype(np.float64)
    elif case == "new":
        out = None
    expected = a.astype(np.float64) @ b.astype(np.float64)
    got = blas.matmul(a, b, out)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_layers_give_the_same_outputs_and_gradients_with_either_backend(every_product, cell):
    rng = np.random.default_rng(2)
    N, T, D, H = 5, 7, 4, 6
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    dout = rng.standard_normal((N, T, 2 * H)).astype(np.float32)
    lengths = np.array([7, 3, 7, 1, 5])
    results = {}
    for name in ("numpy", "mkl"):
        layer = make(cell, D, H, bidirectional=True, dtype=np.float32)
        head = Dense(2 * H, 3, dtype=np.float32, seed=0)
        with blas.use(name):
            out, _, cache = layer.forward(x, lengths=lengths)
            y, head_cache = head.forward(out)
            dh = head.backward(np.ones_like(y), head_cache)
            dx, _ = layer.backward(dout + dh, None, cache)
        results[name] = [out, y, dx] + [layer.grads[k] for k in sorted(layer.grads)] + \
            [head.grads["W_hy"]]
    for got, ref in zip(results["mkl"], results["numpy"]):
        np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [7, 3, 0])                   # as packed; fewer rows; none
@pytest.mark.parametrize("accumulate", [False, True])
def test_packed_weights_give_the_product_for_any_rows_up_to_the_packed(every_product, dtype,
                                                                       rows, accumulate):
    """A time loop packs W once (MKL's gemm_pack) and takes every step's a @ W from it; the
    rows a step runs shrink as sequences end. a inside a wider array, out a row block."""
    rng = np.random.default_rng(3)
    W = rng.standard_normal((5, 6)).astype(dtype)
    packed = blas.Packed(W, 7)
    assert (packed.buf is not None) == mkl_installed()
    a = rng.standard_normal((7, 9)).astype(dtype)[:rows, :5]
    out = rng.standard_normal((8, 6)).astype(dtype)
    expected = out.astype(np.float64)
    expected[:rows] = a.astype(np.float64) @ W + (expected[:rows] if accumulate else 0)
    packed.matmul(a, out[:rows], accumulate=accumulate)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)


def test_packed_weights_stay_with_numpy_when_the_scan_chose_it(mkl_calls):
    blas.choose(0)                                            # a small scan: NumPy
    packed = blas.Packed(square(256), 64)
    assert packed.buf is None
    out = packed.matmul(np.ones((64, 256), np.float32), np.empty((64, 256), np.float32))
    np.testing.assert_array_equal(out, np.full((64, 256), 256, np.float32))
    assert mkl_calls == []
