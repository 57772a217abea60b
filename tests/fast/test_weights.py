"""rnnkit.fast.fused.weights: the time loops' weight layouts."""
import numpy as np
import pytest

from rnnkit.fast import blas, setting, workspace
from rnnkit.fast.fused import weights


@pytest.mark.parametrize("shape", [(512, 512), (1024, 256), (520, 512), (256, 64), (3, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("backend", ["mkl", "numpy"])
def test_transposed_is_the_scaled_transpose_laid_out_in_rows(monkeypatch, shape, dtype, scaled,
                                                              backend):
    """MKL's omatcopy where installed; else tiled (the first two shapes) or not (too small,
    or not in whole tiles); exactly, and starting at a cache line."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal(shape).astype(dtype)
    scale = rng.choice(np.array([0.5, 1.0], dtype), shape[0]) if scaled else None
    with blas.use(backend):
        got = weights.transposed(W, scale)
    expected = (W * scale[:, None]).T if scaled else W.T
    assert got.flags.c_contiguous and got.dtype == dtype
    assert got.ctypes.data % workspace.ALIGN == 0
    np.testing.assert_array_equal(got, expected)


def test_tiles_are_used_from_their_size_up():
    assert 512 * 512 >= weights.TILED_SIZE > 256 * 512


@pytest.mark.parametrize("shape", [(1024, 256), (3, 5)])
@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("backend", ["mkl", "numpy"])
def test_restored_undoes_transposed_exactly(monkeypatch, shape, scaled, backend):
    """The backward's W_hh comes back bit for bit from the forward's scaled transpose."""
    rng = np.random.default_rng(1)
    W = rng.standard_normal(shape).astype(np.float32)
    scale = rng.choice(np.array([0.5, 1.0], np.float32), shape[0]) if scaled else None
    with blas.use(backend):
        got = weights.restored(weights.transposed(W, scale), scale)
    assert got.flags.c_contiguous and got.dtype == W.dtype
    np.testing.assert_array_equal(got, W)
