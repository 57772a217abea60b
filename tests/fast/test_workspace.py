"""The scans' memory pool: reuse only what nothing refers to, and never change a result."""
import contextlib

import numpy as np
import pytest

import rnnkit
from rnnkit.fast import kernels, workspace
from rnnkit.fast.workspace import MIN_BYTES, Pool

from layer_cases import CELLS, arrays, make

BIG = (MIN_BYTES // 4, 2)        # float32: twice the smallest pooled size


def test_a_freed_buffer_is_reused_and_a_held_one_is_not():
    pool = Pool(1 << 30)
    a = pool.empty(BIG, np.float32)
    a_ptr = a.ctypes.data
    b = pool.empty(BIG, np.float32)
    assert b.ctypes.data != a_ptr                     # a is still held
    view = a[3:].T                                    # a view keeps the memory lent out
    del a
    c = pool.empty(BIG, np.float32)
    assert c.ctypes.data not in (a_ptr, b.ctypes.data)
    del view
    d = pool.empty(BIG, np.float32)
    assert d.ctypes.data == a_ptr
    assert pool.stats()["buffers"] == 3 and pool.stats()["bytes_in_use"] == 3 * 2 * MIN_BYTES


def test_best_fit_at_most_twice_the_request_and_dtype_views():
    pool = Pool(1 << 30)
    big = pool.empty((8 * MIN_BYTES,), np.uint8)
    big_ptr = big.ctypes.data
    del big
    small = pool.empty((MIN_BYTES,), np.float64)      # 8 MIN_BYTES bytes: fits exactly
    assert small.ctypes.data == big_ptr and small.dtype == np.float64
    del small
    tiny = pool.empty((MIN_BYTES // 4,), np.float32)  # 1/8 of the buffer: not worth pinning
    assert tiny.ctypes.data != big_ptr
    assert pool.stats()["buffers"] == 2


def test_the_cap_is_respected_and_free_buffers_are_evicted():
    pool = Pool(3 * MIN_BYTES)
    a = pool.empty((2 * MIN_BYTES,), np.uint8)
    b = pool.empty((2 * MIN_BYTES,), np.uint8)        # over the cap: an ordinary array
    assert pool.stats()["buffers"] == 1 and b.base is None
    del a
    c = pool.empty((3 * MIN_BYTES,), np.uint8)        # evicts a's free buffer to fit
    assert pool.stats() == {"buffers": 1, "bytes": 3 * MIN_BYTES,
                            "bytes_in_use": 3 * MIN_BYTES, "max_bytes": 3 * MIN_BYTES}
    assert c.base is not None
    pool.clear()
    assert pool.stats()["buffers"] == 0 and c.sum() == c.sum()    # c lives on


def test_small_requests_and_a_disabled_pool_use_plain_arrays():
    pool = Pool(1 << 30)
    assert pool.empty((4,), np.float32).base is None
    off = Pool(0)
    assert off.empty(BIG, np.float32).base is None and off.stats()["buffers"] == 0


def test_time_major_zeroes_only_the_padded_rows():
    pool_before = workspace.pool.poison
    workspace.pool.poison = True
    try:
        buf = workspace.time_major((3, 4, 2), np.float32, np.array([4, 2, 1]))
    finally:
        workspace.pool.poison = pool_before
    assert np.isnan(buf[0]).all() and np.isnan(buf[1, :2]).all() and np.isnan(buf[2, :1]).all()
    assert (buf[1, 2:] == 0).all() and (buf[2, 1:] == 0).all()


def test_configure_rejects_bad_sizes(monkeypatch):
    for bad in (-1, "2GB", None, True):
        with pytest.raises(rnnkit.RnnkitError, match="max_mb"):
            workspace.configure(bad)
    monkeypatch.setenv("RNNKIT_WORKSPACE_MB", "lots")
    with pytest.raises(rnnkit.RnnkitError, match="RNNKIT_WORKSPACE_MB"):
        workspace._default_max_bytes()


def _train_step(layer, x, lengths, R):
    layer.zero_grad()
    out, state, cache = layer.forward(x, None, lengths)
    dx, d0 = layer.backward(R, None, cache)
    return [out, *arrays(state), dx, *arrays(d0), *[layer.grads[k].copy() for k in sorted(layer.grads)]]


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_poisoned_buffers_change_nothing(cell, fast, monkeypatch):
    """Every lent buffer filled with NaN first: a read of memory no step wrote shows up."""
    rng = np.random.default_rng(3)
    N, T, D, H = 6, 9, 5, 8
    layer = make(cell, D, H, 2, bidirectional=True, seed=2)
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    lengths = np.array([9, 4, 1, 9, 6, 2])
    R = rng.standard_normal((N, T, 2 * H)).astype(np.float32)
    monkeypatch.setattr(workspace, "MIN_BYTES", 64)          # pool even these small buffers
    with contextlib.nullcontext() if fast else kernels.reference_only():
        monkeypatch.setattr(workspace, "pool", Pool(0))
        expect = [a.copy() for a in _train_step(layer, x, lengths, R)]
        monkeypatch.setattr(workspace, "pool", Pool(1 << 30))
        workspace.pool.poison = True
        for _ in range(3):                                  # the later steps reuse buffers
            got = _train_step(layer, x, lengths, R)
            infer, _, _ = layer.forward(x, None, lengths, grad=False)
            # a NaN anywhere fails; the fast path's vector loops round a few elements
            # differently with the buffers' alignment, hence not bit-exact
            for a, b in zip(got + [infer], expect + [expect[0]]):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert workspace.pool.stats()["buffers"] > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_pooled_and_aligned_arrays_start_at_a_cache_line(dtype):
    pool = Pool(1 << 30)
    held = [pool.empty((MIN_BYTES + k,), dtype) for k in (0, 1, 3, 17)]
    held += [workspace.aligned_empty(shape, dtype) for shape in ((1,), (3, 5), (7, 9, 11))]
    for a in held:
        assert a.ctypes.data % workspace.ALIGN == 0 and a.flags.c_contiguous
        a[...] = 1                                   # writable, the whole of it
    assert [a.shape for a in held[-3:]] == [(1,), (3, 5), (7, 9, 11)]


def test_the_loops_weights_start_at_a_cache_line():
    from rnnkit.fast.fused.weights import restored, transposed
    rng = np.random.default_rng(0)
    for shape in ((5, 3), (128, 128), (256, 512)):          # (and the tiled copy)
        W = rng.standard_normal(shape).astype(np.float32)
        assert transposed(W).ctypes.data % workspace.ALIGN == 0
        assert restored(transposed(W)).ctypes.data % workspace.ALIGN == 0
    layer = CELLS["lstm"](16, 32, seed=0)
    layer.forward(np.ones((1, 3, 16), np.float32), grad=False)
    k = layer._prepared[(0, 0)]._k
    assert k["Wh_T"].ctypes.data % workspace.ALIGN == 0
    assert k["Wx_rows"].ctypes.data % workspace.ALIGN == 0          # projected in the loop


def test_the_elman_training_step_pools_three_arrays_dx_taking_the_inputs_copy():
    """out, dL/da and one (T, N, D) buffer: the scan's time-major copy of a batch-first x,
    free again before backward needs dx (a fourth array would be 1/6 more memory here)."""
    N, T, D, H = 32, 64, 64, 64              # each array 512 KiB: all pooled
    layer = rnnkit.RNN(D, H, seed=0)
    x = np.random.default_rng(0).standard_normal((N, T, D)).astype(np.float32)
    workspace.clear()
    out, _, cache = layer.forward(x)
    dx, _ = layer.backward(np.ones_like(out), None, cache)
    assert workspace.stats()["bytes"] == 3 * N * T * H * 4
    assert any(np.shares_memory(dx, b) for b in workspace.pool._bufs)


def test_spare_lends_a_free_buffer_of_any_request_and_makes_none():
    pool = Pool(1 << 30)
    assert pool.spare((4,), np.float32) is None and pool.stats()["buffers"] == 0
    a = pool.empty((MIN_BYTES,), np.uint8)
    ptr = a.ctypes.data
    assert pool.spare((MIN_BYTES // 8,), np.float32) is None      # a is still lent out
    del a
    assert pool.spare((MIN_BYTES // 16,), np.float32) is None     # under half of it
    b = pool.spare((MIN_BYTES // 8, 1), np.float32)               # half, below MIN_BYTES
    assert b.ctypes.data == ptr and b.shape == (MIN_BYTES // 8, 1)
    assert pool.spare((MIN_BYTES // 8,), np.float32) is None      # b holds it now
    assert Pool(0).spare((4,), np.float32) is None


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_backward_gives_the_spent_cache_buffers_to_the_input_s_copy_and_dx(cell):
    """After the recurrent weights' gradient, the cache's (T, N, H) buffers but the gates
    (their gradients, which dx is made from) are spent: the input's time-major copy and then
    dx (T, N, D), smaller than the pooled size here, take a spent one's place, so neither
    adds to the step's peak (a small GRU's fell from 2.21 to 2.02 MB)."""
    N, T, D, H = 32, 50, 32, 64
    layer = {"gru": rnnkit.GRU, "lstm": rnnkit.LSTM}[cell](D, H, seed=0)
    x = np.random.default_rng(0).standard_normal((N, T, D)).astype(np.float32)
    workspace.clear()
    out, _, cache = layer.forward(x)
    scan = cache["layers"][0][1][0]
    spent = {name: a.ctypes.data for name, a in scan.items() if isinstance(a, np.ndarray)
             and a.ndim == 3 and name not in ("gates", "x", "out")}
    assert spent and all(a.nbytes == T * N * H * 4 for name, a in scan.items() if name in spent)
    copies = []
    real = kernels.copy_steps
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kernels, "copy_steps", lambda into, x: copies.append(into.ctypes.data)
                   or real(into, x))
        dx, _ = layer.backward(np.ones_like(out), None, cache)
    assert copies and set(copies + [dx.ctypes.data]) <= set(spent.values())
    assert not set(spent) & set(scan)
