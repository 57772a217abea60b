"""rnnkit.fast.kernels.products: large float32 products on OpenBLAS (rnnkit's own, or NumPy's),
split over the loops' OpenMP threads, where MKL is not tuned for the processor."""
import numpy as np
import pytest

import rnnkit
from rnnkit.fast import blas, kernels, openblas, setting
from rnnkit.fast.kernels.fastmath import AVAILABLE

LIBRARIES = {"numpy": openblas.numpy_openblas(), "bundled": openblas.bundled()}
pytestmark = pytest.mark.skipif(not AVAILABLE or LIBRARIES["numpy"] is None,
                                reason="needs numba and NumPy on OpenBLAS")


@pytest.fixture(autouse=True, scope="module")
def openmp_first():
    """numba's threading layer is chosen by its first parallel loop: let rnnkit choose it, as
    in use, where the split products run only after kernels.shared_openmp."""
    kernels.shared_openmp()


def operand(rng, shape, transposed, padded):
    """A float32 (shape) view, row-major or (``transposed``) column-major, inside a wider
    array when ``padded``."""
    rows, cols = shape[::-1] if transposed else shape
    base = rng.standard_normal((rows, cols + (5 if padded else 0))).astype(np.float32)[:, :cols]
    return base.T if transposed else base


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("M,K,N", [(37, 19, 11), (11, 19, 37), (1, 8, 1), (3, 2, 300)])
@pytest.mark.parametrize("which", ["numpy", "bundled"])
def test_split_product_equals_the_product(ta, tb, accumulate, M, K, N, which):
    """Rows split (M >= N) or columns, each transpose, padded operands and result, parts with
    no rows (1 x 1 over two threads); OpenBLAS's thread count is back as it was."""
    from rnnkit.fast.kernels.products import split_gemm
    library = LIBRARIES[which]
    if library is None:
        pytest.skip("needs scipy-openblas32 (rnnkit[fast])")
    rng = np.random.default_rng(M * N + ta + 2 * tb)
    a = operand(rng, (M, K), ta, padded=True)
    b = operand(rng, (K, N), tb, padded=True)
    start = np.ones((M, N + 3), np.float32)
    out = start[:, :N]
    la, lb = blas.operand(a), blas.operand(b)
    threads = library.get_threads()
    split_gemm(library, *la, *lb, a, b, out, accumulate)
    assert library.get_threads() == threads
    expected = a.astype(np.float64) @ b + (1 if accumulate else 0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(start[:, N:], 1)          # the padding is not written


def test_where_mkl_is_not_tuned_the_large_products_go_to_the_split_openblas(monkeypatch):
    """Registered by kernels.shared_openmp where MKL and the loops share GNU OpenMP, and used
    where MKL is not tuned; float64 stays with MKL; a training step's results agree with
    MKL's."""
    if not kernels.shared_openmp():
        pytest.skip("needs MKL on GNU OpenMP")
    from rnnkit.fast.kernels import products
    calls = []
    real = products.split_gemm

    def spy(*args):
        calls.append(args[6].shape)
        return real(*args)
    monkeypatch.setattr(products, "split_gemm", spy)
    assert blas.float32_route().library is openblas.products()
    setting.keep(tuned=False)
    assert blas.large_products().startswith(f"openblas {openblas.products().core}")
    rng = np.random.default_rng(0)
    a32, b32 = (rng.standard_normal((256, 256)).astype(np.float32) for _ in range(2))
    blas.choose(blas.MIN_MACS)                              # a scan with a large step
    blas.matmul(a32, b32)
    blas.matmul(a32.astype(np.float64), b32.astype(np.float64))
    assert calls == [(256, 256)]

    layer = rnnkit.LSTM(64, 128, seed=0)
    x = rng.standard_normal((64, 9, 64)).astype(np.float32)

    def step():
        layer.zero_grad()
        out, _, cache = layer.forward(x)
        dx, _ = layer.backward(np.ones_like(out), None, cache)
        return [out, dx, *[layer.grads[k].copy() for k in sorted(layer.grads)]]
    split = step()
    assert len(calls) > 1                                   # projection, weight gradients
    with setting.using(tuned=True):                         # MKL's products
        on_mkl = step()
    for got, want in zip(split, on_mkl):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_where_mkl_is_tuned_nothing_is_rerouted(monkeypatch):
    from rnnkit.fast.kernels import products
    calls = []
    monkeypatch.setattr(products, "split_gemm", lambda *args: calls.append(1))
    kernels.shared_openmp()
    setting.keep(tuned=True)
    assert blas.large_products() == blas.backend()
    a = np.ones((256, 256), np.float32)
    blas.choose(blas.MIN_MACS)
    np.testing.assert_array_equal(blas.matmul(a, a), 256)
    assert calls == []
