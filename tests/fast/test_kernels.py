"""The compiled fast paths are pinned to the NumPy reference (float32 rounding), and fall back."""
import numba  # noqa: F401  (the test extra installs it; these tests must run in CI)
import numpy as np
import pytest

import rnnkit
from rnnkit.fast import blas, kernels, setting
from rnnkit.fast.kernels.fastmath import get_num_threads

CELLS = {"rnn_tanh": lambda *a, **k: rnnkit.RNN(*a, **k),
         "rnn_relu": lambda *a, **k: rnnkit.RNN(*a, nonlinearity="relu", **k),
         "lstm": lambda *a, **k: rnnkit.LSTM(*a, **k),
         "gru": lambda *a, **k: rnnkit.GRU(*a, **k)}


def run(layer, x, lengths, state, R, S):
    layer.zero_grad()
    out, h_n, cache = layer.forward(x, state, lengths)
    dx, d0 = layer.backward(R, S, cache)
    return [out, *([h_n] if not isinstance(h_n, tuple) else h_n), dx,
            *([d0] if not isinstance(d0, tuple) else d0),
            *[layer.grads[k].copy() for k in sorted(layer.grads)]], cache


def assert_pinned(fast, ref):
    for a, b in zip(fast, ref):
        scale = max(np.abs(b).max(), 1e-3)
        assert np.abs(a - b).max() <= 2e-6 * scale


LOOPS = ("whole loop", "whole loop, mkl", "whole loop, split", "whole loop, mkl, split",
         "whole loop, openblas, split", "per step")
MODES = [(c, loop) for c in CELLS for loop in LOOPS]


def set_loop(monkeypatch, loop):
    """Make every scan take ``loop`` (one of LOOPS); the MKL whole loop needs MKL; a split
    loop (its batch over the threads, a span of rows each) needs MKL on GNU OpenMP. The MKL
    loops' per-step products are there for every size (WHOLE_LOOP_MACS = 0). The "openblas"
    loop is the MKL loop where MKL is not tuned for the processor (blas.mkl_tuned): its small
    products go to NumPy's OpenBLAS; the "mkl" loops take MKL's, whatever the processor."""
    mkl = "mkl" in loop or "openblas" in loop
    own = loop.startswith("whole loop") and not mkl
    setting.keep(tuned="openblas" not in loop)
    monkeypatch.setattr(kernels, "WHOLE_LOOP_MACS", 1 << 40 if own else 0)
    monkeypatch.setattr(kernels, "OWN_PRODUCT_MACS", 1 << 40 if own else 0)
    monkeypatch.setattr(kernels, "OWN_ROWS_PRODUCT_MACS", 1 << 40 if own else 0)
    monkeypatch.setattr(kernels, "MKL_LOOP_MACS", 1 << 40 if mkl else 0)
    monkeypatch.setattr(kernels, "MIN_SPAN_ROWS", 1 if "split" in loop else 1 << 20)
    # the split MKL loop on packed weights (cblas_sgemm_compute), the other on plain sgemm
    monkeypatch.setattr(blas, "LOOP_PACK_MACS", 0 if loop == "whole loop, mkl, split" else 1 << 40)


def check_loop(kernel, loop):
    """The scan ran ``loop``; without MKL the MKL whole loop falls back to the per-step one,
    and a loop stays whole without MKL's GNU OpenMP layer, or threads, to split it over."""
    has_mkl = blas.gemm_address() != 0
    mkl = "mkl" in loop or "openblas" in loop
    if mkl and not has_mkl:
        loop, mkl = "per step", False
    assert kernel.whole_loop == (loop != "per step")
    assert (kernel.gemm != 0) == mkl
    can_split = kernels.shared_openmp() and get_num_threads() > 1
    assert (kernel.parts > 1) == ("split" in loop and can_split)


def pinned_case(cell, bidirectional, lengths, seed, with_states=True):
    """A 2-layer layer's fast path against the reference; -> the first scan's fast kernel."""
    rng = np.random.default_rng(seed)
    N, T, D, H = 5, 7, 4, 6
    dirs = 2 if bidirectional else 1
    layer = CELLS[cell](D, H, 2, bidirectional=bidirectional, seed=1)
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    h0 = rng.standard_normal((2 * dirs, N, H)).astype(np.float32)
    R = rng.standard_normal((N, T, dirs * H)).astype(np.float32)
    state = S = None
    if with_states:
        state = (h0, h0[::-1].copy()) if cell == "lstm" else h0
        S = (h0 * 0.5, h0 * 0.25) if cell == "lstm" else h0 * 0.5
    fast, cache = run(layer, x, lengths, state, R, S)
    with kernels.reference_only():
        ref, ref_cache = run(layer, x, lengths, state, R, S)
    assert "steps" in ref_cache["layers"][0][1][0]          # the reference scan ran it
    assert_pinned(fast, ref)
    return cache["layers"][0][1][0]["fast"]


@pytest.mark.parametrize("cell,loop", MODES)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_fast_path_equals_reference(cell, bidirectional, loop, monkeypatch):
    set_loop(monkeypatch, loop)
    chosen = pinned_case(cell, bidirectional, np.array([3, 7, 1, 6, 7]), seed=0)
    assert chosen is not None
    check_loop(chosen, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_lstm_inference_in_saturation_equals_reference(loop, monkeypatch):
    """Inference's LSTM gates share their divisions (lstm._infer_rows); with weights 8x
    their size the gates saturate (past +-7.9 tanh's rational form is clamped) and the cell
    state grows to about T / 3: still the reference's values, as in training. (Larger
    weights make the recurrence chaotic: at 30x training's fast path, which keeps its
    activations, is 6e-6 from the reference.)"""
    set_loop(monkeypatch, loop)
    rng = np.random.default_rng(8)
    N, T, D, H = 3, 30, 4, 5
    layer = rnnkit.LSTM(D, H, seed=4)
    for p in layer.params.values():
        p *= 8
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    out, (h_n, c_n), _ = layer.forward(x, grad=False)
    train_out, (_, train_c), _ = layer.forward(x)
    with kernels.reference_only():
        ref_out, (ref_h, ref_c), _ = layer.forward(x, grad=False)
    assert np.abs(ref_c).max() > T / 4 and np.abs(ref_out).max() > 0.999
    assert_pinned([out, h_n, c_n, train_out, train_c], [ref_out, ref_h, ref_c, ref_out, ref_c])


@pytest.mark.parametrize("cell,loop", MODES)
def test_a_nan_weight_gives_nan_where_the_reference_does(cell, loop, monkeypatch):
    """A NaN in a recurrent bias reaches the outputs, states and gradients as in the
    reference, in training and at inference: the fast tanh once clamped NaN to +-7.9 and
    gave finite outputs (a diverged or corrupted model looked healthy)."""
    set_loop(monkeypatch, loop)
    rng = np.random.default_rng(5)
    N, T, D, H = 3, 6, 4, 5
    layer = CELLS[cell](D, H, seed=2)
    layer.params["l0.b_hh"][1] = np.nan
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    R = rng.standard_normal((N, T, H)).astype(np.float32)
    lengths = np.array([6, 2, 4])
    fast, _ = run(layer, x, lengths, None, R, None)
    infer = layer.forward(x, None, lengths, grad=False)[0]
    with kernels.reference_only():
        ref, _ = run(layer, x, lengths, None, R, None)
        ref_infer = layer.forward(x, None, lengths, grad=False)[0]
    assert np.isnan(ref[0]).any()
    for a, b in zip([*fast, infer], [*ref, ref_infer]):
        assert np.array_equal(np.isnan(a), np.isnan(b))
        assert_pinned([np.nan_to_num(a)], [np.nan_to_num(b)])


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("loop", ["whole loop", "whole loop, mkl", "whole loop, mkl, split"])
def test_inference_projecting_in_the_loop_equals_reference(cell, bidirectional, loop,
                                                           monkeypatch):
    """Inference through a whole loop projects each step's input in the loop, with its own
    product (LOOP_PROJECTION_INPUTS; its recurrent product its own or, "mkl", MKL's, as at
    batch 1 from OWN_PRODUCT_MACS) or MKL's (MKL_PROJECTION_ROWS, here from one row a span):
    2 layers, padded rows, reverse direction, states, an input whose features are strided
    (the loop gets a copy with unit stride)."""
    set_loop(monkeypatch, loop)
    monkeypatch.setattr(kernels, "MKL_PROJECTION_ROWS", 1)
    split = "split" in loop
    if not split:                                       # small: the loop's own projection
        monkeypatch.setattr(kernels, "WHOLE_LOOP_MACS", 1 << 40)
    rng = np.random.default_rng(4)
    N, T, D, H = 3, 9, 5, 6
    dirs = 2 if bidirectional else 1
    layer = CELLS[cell](D, H, 2, bidirectional=bidirectional, seed=3)
    chosen = kernels.select(layer.cell, np.float32, N, H, D)
    assert chosen.projects_input == (not split or chosen.gemm != 0)     # split: needs MKL
    assert (chosen.input_gemm == 0) == (not split or chosen.gemm == 0)
    assert (chosen.gemm != 0) == ("mkl" in loop and blas.gemm_address() != 0)
    x = rng.standard_normal((N, T, 2 * D)).astype(np.float32)[:, :, ::2]
    h0 = rng.standard_normal((2 * dirs, N, H)).astype(np.float32)
    state = (h0, h0[::-1].copy()) if cell == "lstm" else h0
    lengths = np.array([9, 4, 2])                    # sorted: the layer does not copy x
    out, h_n, cache = layer.forward(x, state, lengths, grad=False)
    with kernels.reference_only():
        ref_out, ref_h, _ = layer.forward(x, state, lengths, grad=False)
    assert cache is None
    states = (lambda h: list(h) if cell == "lstm" else [h])
    assert_pinned([out, *states(h_n)], [ref_out, *states(ref_h)])
    assert np.all(out[1, 4:] == 0) and np.all(out[2, 2:] == 0)    # padded steps: zero output


@pytest.mark.parametrize("loop", ["whole loop", "whole loop, mkl, split"])
def test_inference_projecting_in_the_loop_takes_broadcast_inputs(loop, monkeypatch):
    """An input broadcast over the batch (rows 0 bytes apart, read-only) or over time: MKL
    cannot take rows that overlap, so the loop gets a copy of the first; same outputs."""
    set_loop(monkeypatch, loop)
    monkeypatch.setattr(kernels, "MKL_PROJECTION_ROWS", 1)
    rng = np.random.default_rng(6)
    N, T, D, H = 4, 5, 3, 6
    layer = rnnkit.LSTM(D, H, seed=2)
    for x in (np.broadcast_to(rng.standard_normal((1, T, D)).astype(np.float32), (N, T, D)),
              np.broadcast_to(rng.standard_normal((N, 1, D)).astype(np.float32), (N, T, D))):
        out, h_n, _ = layer.forward(x, grad=False)
        with kernels.reference_only():
            ref_out, ref_h, _ = layer.forward(np.ascontiguousarray(x), grad=False)
        assert_pinned([out, *h_n], [ref_out, *ref_h])


@pytest.mark.parametrize("tuned", [True, False])
def test_a_small_loop_calls_mkl_from_smaller_products_with_more_rows(tuned, monkeypatch):
    """The loop's own product below OWN_PRODUCT_MACS at batch 1 and below
    OWN_ROWS_PRODUCT_MACS with more rows; MKL's from there (when installed). Where MKL is not
    tuned for the processor, batch 1 keeps its own product, in a whole loop, up to
    MKL_LOOP_MACS."""
    setting.keep(tuned=tuned)
    mkl = blas.gemm_address() != 0
    lstm = rnnkit.LSTM(4, 8).cell                            # 4 gates: 4 N H^2 a step
    # batch 1: 4 x 127^2 < 2^16 <= 4 x 128^2; batch 2: 8 x 31^2 < 2^13 <= 8 x 32^2
    for N, H, calls_mkl in ((1, 127, False), (1, 128, mkl and tuned), (2, 31, False),
                            (2, 32, mkl)):
        chosen = kernels.select(lstm, np.float32, N, H, 4)
        assert chosen.whole_loop and (chosen.gemm != 0) == calls_mkl
        assert chosen.projects_input and chosen.input_gemm == 0     # 4 inputs: its own
    # batch 1, 4 x 512^2 = 2^20 multiply-adds a step: MKL's packed product, or its own
    large = kernels.select(lstm, np.float32, 1, 512, 4)
    assert large.whole_loop is (mkl or not tuned) and (large.gemm != 0) == (mkl and tuned)
    assert not kernels.select(lstm, np.float32, 1, 1024, 4).whole_loop     # 2^22: per step


def scan_inference(cell, N, T, D, H, grad=False, seed=5):
    """One scan of a one-layer ``cell`` layer, fast and reference: -> (kernel, whether the
    scan kept one row of projection, out, reference out)."""
    from rnnkit.fast.scan import scan_forward
    from rnnkit.layers import scan as reference
    rng = np.random.default_rng(seed)
    layer = CELLS[cell](D, H, seed=0)
    p = layer._direction(0, 0)
    x = rng.standard_normal((T, N, D)).astype(np.float32)
    h0 = np.zeros((N, H), np.float32)
    c0 = h0.copy() if cell == "lstm" else None
    n_active = np.full(T, N)
    out, *_, cache = scan_forward(layer.cell, p, x, h0, c0, n_active, False, grad=grad)
    gates = cache.get("gates", cache["out"])
    one_row = gates.strides[0] == 0 and "gates" in cache
    states0 = (h0,) if c0 is None else (h0, c0)
    ref, _, _ = reference.scan_forward(layer.spec, layer.options, p, x, states0, n_active,
                                       False)
    return cache["fast"], one_row, out, ref


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_the_loop_projects_only_small_inputs_at_inference(cell, monkeypatch):
    """The scan skips its projection and keeps one row of it exactly when the kernel says so."""
    set_loop(monkeypatch, "whole loop")
    for D, grad, projects in ((kernels.LOOP_PROJECTION_INPUTS, False, True),
                              (kernels.LOOP_PROJECTION_INPUTS + 1, False, False),
                              (4, True, False)):
        fast, one_row, out, ref = scan_inference(cell, 1, 6, D, 8, grad)
        assert fast.projects_input is (D <= kernels.LOOP_PROJECTION_INPUTS)
        assert one_row is (projects and cell in ("lstm", "gru"))
        assert_pinned([out], [ref])


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_the_mkl_loop_projects_at_inference_with_enough_rows_and_few_inputs(cell, monkeypatch):
    """A whole loop on MKL projects its input at inference when each thread's span has at
    least MKL_PROJECTION_ROWS rows, the input is no wider than the hidden state and a span's
    step of projection is below MKL_PROJECTION_MACS."""
    set_loop(monkeypatch, "whole loop, mkl, split")
    monkeypatch.setattr(kernels, "MIN_SPAN_ROWS", 4)
    if blas.gemm_address() == 0 or not kernels.shared_openmp() or get_num_threads() < 2:
        pytest.skip("needs MKL on GNU OpenMP and two threads")
    rows, H = kernels.MKL_PROJECTION_ROWS, 8
    for N, D, grad, projects in ((2 * rows, H, False, True), (2 * rows - 2, H, False, False),
                                 (2 * rows, H + 1, False, False), (2 * rows, H, True, False)):
        fast, one_row, out, ref = scan_inference(cell, N, 4, D, H, grad)
        assert fast.parts == 2 and fast.gemm != 0
        assert fast.projects_input is (N == 2 * rows and D <= H)
        assert one_row is (projects and cell in ("lstm", "gru"))
        assert_pinned([out], [ref])
    span_step = rows * H * CELLS[cell](H, H).cell.n_gates * H         # reaches it: no
    monkeypatch.setattr(kernels, "MKL_PROJECTION_MACS", span_step)
    fast, one_row, out, ref = scan_inference(cell, 2 * rows, 4, H, H)
    assert not fast.projects_input and not one_row
    assert_pinned([out], [ref])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_parallel_step_kernels_equal_reference(cell, bidirectional, monkeypatch):
    """With MKL on GNU OpenMP the LSTM/GRU step kernels split their rows over the threads;
    5 rows over 2 threads, and steps where only 1 row runs (one part empty)."""
    for name in ("MIN_MACS", "SINGLE_THREAD_MACS"):      # every scan counts as large
        monkeypatch.setattr(blas, name, 0)
    set_loop(monkeypatch, "per step")
    assert kernels.shared_openmp() == (blas.backend() == "mkl (gnu threads)")
    chosen = pinned_case(cell, bidirectional, np.array([1, 7, 1, 6, 7]), seed=3,
                         with_states=False)
    assert chosen.parallel == kernels.shared_openmp()


@pytest.mark.parametrize("split", [True, False])
def test_fast_path_matches_reference_at_a_benchmark_size(split, monkeypatch):
    """64 x 4*128 x 128: the whole loop split over the threads where it can be, else per step
    (2^22 multiply-adds a step: the whole loop on one thread would be slower)."""
    if not split:
        monkeypatch.setattr(kernels, "MIN_SPAN_ROWS", 1 << 20)
    rng = np.random.default_rng(1)
    layer = rnnkit.LSTM(16, 128, seed=2)
    x = rng.standard_normal((64, 30, 16)).astype(np.float32)
    R = rng.standard_normal((64, 30, 128)).astype(np.float32)
    fast, cache = run(layer, x, None, None, R, None)
    chosen = cache["layers"][0][1][0]["fast"]
    assert chosen.whole_loop is (chosen.parts > 1)
    assert (chosen.parts > 1) == (split and kernels.loop_parts(64) > 1)
    with kernels.reference_only():
        ref, _ = run(layer, x, None, None, R, None)
    assert_pinned(fast, ref)


def test_selection_by_dtype_variant_and_size():
    assert kernels.select(rnnkit.LSTM(2, 4).cell, np.float64, 4, 4) is None
    # variants without a compiled loop have no fused form: the reference scan runs them
    assert rnnkit.LSTM(2, 4, peepholes=True).cell is None
    assert rnnkit.GRU(2, 4, reset_after=False).cell is None
    assert rnnkit.RNN(2, 4, clip=1.0).cell is None
    split = kernels.loop_parts(128) > 1          # MKL on GNU OpenMP, and 2+ threads
    for layer in (rnnkit.RNN(2, 512), rnnkit.LSTM(2, 512)):
        large = kernels.select(layer.cell, np.float32, 128, 512)
        assert large.whole_loop is split and large.parts == kernels.loop_parts(128)
        assert large.gemm == (blas.gemm_address() if split else 0)
    assert kernels.select(rnnkit.GRU(2, 128).cell, np.float32, 1, 128).whole_loop is True
    small = kernels.select(rnnkit.LSTM(2, 64).cell, np.float32, 32, 64)     # 32 x 4*64 x 64
    assert small.whole_loop is (blas.gemm_address() != 0) and small.gemm == blas.gemm_address()
    with blas.use("numpy"):
        assert kernels.select(rnnkit.LSTM(2, 64).cell, np.float32, 32, 64).whole_loop is False
    with kernels.reference_only():
        assert kernels.select(rnnkit.LSTM(2, 4).cell, np.float32, 4, 4) is None


def test_without_numba_everything_runs_on_the_reference(monkeypatch):
    setting.keep(loops=False)
    layer = rnnkit.GRU(3, 4, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    out, _, cache = layer.forward(x)
    assert "steps" in cache["layers"][0][1][0] and np.isfinite(out).all()   # the reference


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("loop", LOOPS)
def test_vanishing_gradients_are_flushed_before_they_turn_subnormal(cell, loop, monkeypatch):
    """A loss at the last step only: BPTT's gradient decays through the steps into float32's
    subnormal range, where arithmetic is 10-100x slower. The fast kernels flush it to zero
    below fastmath.TINY; the reference (plain NumPy) shows the range is really reached."""
    set_loop(monkeypatch, loop)
    rng = np.random.default_rng(5)
    N, T, D, H = 2, 600, 3, 8
    layer = CELLS[cell](D, H, seed=4)
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    R = np.zeros((N, T, H), np.float32)
    R[:, -1] = rng.standard_normal((N, H))

    def dx_of():
        layer.zero_grad()
        out, _, cache = layer.forward(x)
        return layer.backward(R, None, cache)[0]

    def subnormal(a):
        return int(np.sum((a != 0) & (np.abs(a) < np.finfo(np.float32).tiny)))

    fast = dx_of()
    with kernels.reference_only():
        ref = dx_of()
    assert subnormal(ref) > 0
    assert subnormal(fast) == 0
    np.testing.assert_allclose(fast, ref, rtol=1e-3, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("split", [True, False])
def test_a_loop_calling_mkl_runs_it_on_one_thread_and_restores_the_count(split, monkeypatch):
    """Each thread running a whole loop sets MKL's thread count for itself to 1 (a nested
    OpenMP setting made the split loop 8x slower), and back afterwards."""
    monkeypatch.setattr(kernels, "MIN_SPAN_ROWS", 4 if split else 1 << 20)
    layer = rnnkit.LSTM(8, 32, seed=0)                   # 32 x 4*32 x 32: MKL's sgemm
    x = np.random.default_rng(0).standard_normal((32, 5, 8)).astype(np.float32)
    lib = blas._load()
    seen = []
    real = blas.loop_product

    def spy(W, rows, gemm, accumulate=False, parts=1, shared=False):
        product, keep = real(W, rows, gemm, accumulate, parts, shared)
        seen.append(product)
        return product, keep
    monkeypatch.setattr(blas, "loop_product", spy)
    if lib:
        before = lib.MKL_Set_Num_Threads_Local(3)        # this thread's own count: 3
    try:
        out, _, cache = layer.forward(x)
        layer.backward(np.ones_like(out), None, cache)
        after = lib.MKL_Set_Num_Threads_Local(0) if lib else None
    finally:
        if lib:
            lib.MKL_Set_Num_Threads_Local(before)
    assert len(seen) == 2                                # forward and backward loops
    if lib:
        assert after == 3                                # restored on the calling thread
        assert all(p[0] != 0 and p[2] != 0 for p in seen)
    else:
        assert all(p == blas.NO_PRODUCT for p in seen)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("split_from", [0, 1 << 40])
def test_copy_steps_copies_a_batch_first_input_time_major_exactly(monkeypatch, dtype,
                                                                  split_from):
    """Split over the threads (from COPY_SPLIT_BYTES) or NumPy's copy: the same bits."""
    from rnnkit.fast.kernels import fastmath
    monkeypatch.setattr(kernels, "COPY_SPLIT_BYTES", split_from)
    calls, real = [], fastmath.copy_split
    monkeypatch.setattr(fastmath, "copy_split", lambda d, s: calls.append(1) or real(d, s))
    x = np.random.default_rng(7).standard_normal((5, 9, 6)).astype(dtype)    # (N, T, D)
    steps = x.transpose(1, 0, 2)[2:7]                          # 5 steps, time-major view
    dst = np.full((5, 5, 6), np.nan, dtype)
    kernels.copy_steps(dst, steps)
    assert np.array_equal(dst, steps)
    assert len(calls) == (split_from == 0 and kernels.shared_openmp())
