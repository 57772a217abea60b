"""rnnkit.fast.strided: the input projection and input weight gradient made on a batch-first input
where it lies, equal to the products on a time-major copy; refused, writing nothing, where they
do not apply."""
import numpy as np
import pytest

import rnnkit
from rnnkit.fast import blas, mkl, setting, strided
from rnnkit.fast.kernels.fastmath import AVAILABLE

HAS_MKL = bool(mkl.load()) and blas.mkl_tuned()
TOL = {np.float32: dict(rtol=1e-5, atol=1e-4), np.float64: dict(rtol=1e-12, atol=1e-11)}


@pytest.fixture
def on_mkl(monkeypatch):
    """Every product to MKL, as after a scan that chose it, and project at any size."""
    setting.keep(scan_mkl=True)
    monkeypatch.setattr(blas, "SINGLE_THREAD_MACS", 0)
    monkeypatch.setattr(strided, "PROJECT_MIN_MACS", 0)


def batch_first(rng, N, T, D, dtype, padded=False):
    """x (N, T, D), and its (T, N, D) view as a layer's scan sees it."""
    x = rng.standard_normal((N, T, D + (3 if padded else 0))).astype(dtype)[:, :, :D]
    return x, x.transpose(1, 0, 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_project_equals_the_product_of_every_step(on_mkl, dtype, transposed, padded):
    rng = np.random.default_rng(0)
    x, view = batch_first(rng, 5, 7, 6, dtype, padded)
    W = rng.standard_normal((9, 6) if transposed else (6, 9)).astype(dtype)
    W = W.T if transposed else W                      # (a cell's Wx_T is a transposed view)
    out = np.full((7, 5, 9), np.nan, dtype)
    assert strided.project(view, W, out) == HAS_MKL
    if HAS_MKL:
        np.testing.assert_allclose(out, np.einsum("ntd,dg->tng", x, W), **TOL[dtype])
    else:
        assert np.isnan(out).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_grad_adds_the_sum_over_steps(on_mkl, monkeypatch, dtype):
    monkeypatch.setattr(strided, "GRAD_MIN_MACS", 0)
    rng = np.random.default_rng(1)
    x, view = batch_first(rng, 5, 7, 6, dtype, padded=True)
    dA = rng.standard_normal((7, 5, 8)).astype(dtype)
    dW = rng.standard_normal((8, 6)).astype(dtype)
    expected = dW + np.einsum("tng,ntd->gd", dA, x)
    assert strided.weight_grad(dA, view, dW) == HAS_MKL
    if HAS_MKL:
        np.testing.assert_allclose(dW, expected, **TOL[dtype])


def refusals():
    """(name, arguments of project) that it must refuse, each with an out of NaN."""
    rng = np.random.default_rng(2)
    x, view = batch_first(rng, 4, 3, 8, np.float32)
    W = rng.standard_normal((8, 16)).astype(np.float32)
    out = lambda shape=(3, 4, 16), dtype=np.float32: np.full(shape, np.nan, dtype)  # noqa
    return [("time-major x: one product serves", (np.ascontiguousarray(view), W, out())),
            ("more than PROJECT_MAX_WIDTH * D gates",
             (view, rng.standard_normal((8, 17)).astype(np.float32), out((3, 4, 17)))),
            ("float64 out", (view, W, out(dtype=np.float64))),
            ("int input", (view.astype(np.int32), W, out())),
            ("out of another shape", (view, W, out((3, 4, 15)))),
            ("out not contiguous", (view, W, out((3, 4, 32))[:, :, ::2])),
            ("rows not of unit stride", (x[:, :, ::2].transpose(1, 0, 2), W[::2], out()))]


@pytest.mark.parametrize("name,args", refusals(), ids=[r[0] for r in refusals()])
def test_project_refuses_what_it_does_not_serve(on_mkl, name, args):
    out = args[2]
    assert not strided.project(*args)
    assert np.isnan(out).all()


def test_project_refuses_an_out_that_overlaps_x(on_mkl):
    buf = np.random.default_rng(3).standard_normal((2, 3, 4)).astype(np.float32)
    before = buf.copy()
    x = buf.transpose(1, 0, 2)                        # (3, 2, 4), out = buf viewed (3, 2, 4)
    assert not strided.project(x, np.eye(4, dtype=np.float32), buf.reshape(3, 2, 4))
    np.testing.assert_array_equal(buf, before)


def test_a_projection_under_project_min_macs_is_refused(on_mkl, monkeypatch):
    monkeypatch.setattr(strided, "PROJECT_MIN_MACS", 3 * 4 * 8 * 16 + 1)
    _, view = batch_first(np.random.default_rng(7), 4, 3, 8, np.float32)
    out = np.zeros((3, 4, 16), np.float32)
    assert not strided.project(view, np.ones((8, 16), np.float32), out)
    assert not out.any()
    monkeypatch.setattr(strided, "PROJECT_MIN_MACS", 3 * 4 * 8 * 16)
    assert strided.project(view, np.ones((8, 16), np.float32), out) == HAS_MKL


def test_wider_or_smaller_weight_grads_are_refused(on_mkl):
    """Each case outside one limit only, 64 rows a step: 128 x 1024 is 2^23 multiply-adds a
    step (GRAD_MIN_MACS), as is 512 x 256."""
    rng = np.random.default_rng(4)
    _, view = batch_first(rng, 64, 3, 128, np.float32)
    wide = batch_first(rng, 64, 3, 512, np.float32)[1]
    for x, G, why in ((view, 1024, "G over GRAD_MAX_WIDTH * D"), (wide, 256, "G under D"),
                      (view, 128, "a step's product under GRAD_MIN_MACS"),
                      (wide, 1024, "D * G over GRAD_MAX_WEIGHTS")):
        dA = rng.standard_normal((3, 64, G)).astype(np.float32)
        dW = np.zeros((G, x.shape[2]), np.float32)
        assert not strided.weight_grad(dA, x, dW), why
        assert not dW.any(), why


@pytest.mark.parametrize("case", ["numpy", "numpy's products chosen", "mkl not tuned"])
def test_neither_serves_where_mkl_does_not(monkeypatch, case):
    """use('numpy'), a scan that chose NumPy's products (MKL's threads must not wake between
    OpenBLAS's), and a processor MKL is not tuned for."""
    monkeypatch.setattr(strided, "GRAD_MIN_MACS", 0)
    setting.keep(scan_mkl=case != "numpy's products chosen")
    monkeypatch.setattr(blas, "SINGLE_THREAD_MACS", 0)
    setting.keep(tuned=case != "mkl not tuned")
    rng = np.random.default_rng(5)
    _, view = batch_first(rng, 4, 3, 8, np.float32)
    W, dA = np.ones((8, 8), np.float32), np.ones((3, 4, 8), np.float32)
    out, dW = np.zeros((3, 4, 8), np.float32), np.zeros((8, 8), np.float32)
    with blas.use("numpy" if case == "numpy" else "mkl"):
        assert not strided.project(view, W, out)
        assert not strided.weight_grad(dA, view, dW)
    assert not out.any() and not dW.any()


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_a_layer_trained_on_a_batch_first_input_gets_the_copying_path_s_gradients(
        monkeypatch, cell):
    """An Elman layer whose scans take both products on the input where it lies (weight_grad
    served at this small size), against the same layer with the copies; a GRU's gates are
    wider than PROJECT_MAX_WIDTH inputs, so its projection copies."""
    monkeypatch.setattr(strided, "GRAD_MIN_MACS", 0)
    monkeypatch.setattr(strided, "PROJECT_MIN_MACS", 0)
    made = {"project": [], "weight_grad": []}
    for name in made:
        real = getattr(strided, name)
        monkeypatch.setattr(strided, name, lambda *a, real=real, calls=made[name]:
                            calls.append(real(*a)) or calls[-1])
    rng = np.random.default_rng(6)
    x = rng.standard_normal((16, 9, 48), np.float32)
    R = rng.standard_normal((16, 9, 64), np.float32)
    runs = []
    for served in (True, False):
        layer = {"rnn": rnnkit.RNN, "gru": rnnkit.GRU}[cell](48, 64, seed=0)
        if not served:
            monkeypatch.setattr(strided, "project", lambda *a: False)
            monkeypatch.setattr(strided, "weight_grad", lambda *a: False)
        out, _, cache = layer.forward(x)
        dx, _ = layer.backward(R, None, cache)
        runs.append((out, dx, {k: g.copy() for k, g in layer.grads.items()}))
    expect = HAS_MKL and AVAILABLE and cell == "rnn"      # (a compiled loop chose MKL)
    assert any(made["project"]) == expect and any(made["weight_grad"]) == expect
    for a, b in zip(runs[0][:2], runs[1][:2]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    for name in runs[1][2]:
        np.testing.assert_allclose(runs[0][2][name], runs[1][2][name], rtol=1e-4, atol=1e-4,
                                   err_msg=name)
