"""Layer behaviour: streaming, precision, truncated BPTT, initialisation, padding, directions."""
import numpy as np
import pytest
from gradcheck import numeric_grad

from layer_cases import CELLS, COMPILED, arrays, make, random_state, state_dot
from rnnkit import RNN, RnnkitError

N, T, D, H = 3, 6, 3, 4
LENGTHS = np.array([4, 2, 6])          # unsorted; the sort permutation is a 3-cycle

def tol(dtype):
    return dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)


# ----------------------------------------------------------------------------- (a) streaming
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", list(CELLS))
def test_step_by_step_equals_full_sequence(cell, dtype):
    layer = make(cell, D, H, num_layers=2, dtype=dtype, seed=1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, T, D)).astype(dtype)
    state0 = random_state(cell, (2, N, H), rng, dtype)
    out, st, _ = layer.forward(x, state0)
    state, steps = state0, []
    for t in range(T):
        o, state, _ = layer.forward(x[:, t:t + 1], state)
        steps.append(o)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), out, **tol(dtype))
    for a, b in zip(arrays(state), arrays(st)):
        np.testing.assert_allclose(a, b, **tol(dtype))
    # the state really is carried: restarting from zeros each step gives something else
    o0, _, _ = layer.forward(x[:, 1:2])
    assert not np.allclose(o0, out[:, 1:2], atol=1e-4)


# ----------------------------------------------------------------------------- (b) precision
@pytest.mark.parametrize("cell", list(CELLS))
def test_float32_and_float64_agree(cell):
    l32 = make(cell, D, H, num_layers=2, bidirectional=True, dtype=np.float32, seed=3)
    l64 = make(cell, D, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=3)
    for k in l32.params:
        l64.params[k][...] = l32.params[k].astype(np.float64)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((N, T, D))
    o32, s32, c32 = l32.forward(x.astype(np.float32), None, LENGTHS)
    o64, s64, c64 = l64.forward(x, None, LENGTHS)
    assert o32.dtype == np.float32 and o64.dtype == np.float64
    np.testing.assert_allclose(o32, o64, rtol=0, atol=1e-5)
    for a, b in zip(arrays(s32), arrays(s64)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    R = rng.standard_normal(o64.shape)
    dx32, _ = l32.backward(R.astype(np.float32), None, c32)
    dx64, _ = l64.backward(R, None, c64)
    assert dx32.dtype == np.float32
    np.testing.assert_allclose(dx32, dx64, rtol=1e-4, atol=1e-4)
    for k in l32.grads:
        assert l32.grads[k].dtype == np.float32
        np.testing.assert_allclose(l32.grads[k], l64.grads[k], rtol=1e-4, atol=1e-4, err_msg=k)


# ----------------------------------------------------------------------------- (c) truncated BPTT
@pytest.mark.parametrize("cell", list(CELLS))
def test_truncated_bptt(cell):
    layer = make(cell, D, H, num_layers=2, dtype=np.float64, seed=5)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((N, T, D))
    R = rng.standard_normal((N, T, H))
    S = random_state(cell, (2, N, H), rng, np.float64)
    k = 2

    # full pass
    layer.zero_grad()
    out, st, cache = layer.forward(x)
    dx_full, ds0_full = layer.backward(R, S, cache)
    g_full = {n: g.copy() for n, g in layer.grads.items()}

    # chunks with the carried state give the same outputs and final state
    state, outs, caches = None, [], []
    for s in range(0, T, k):
        o, state, c = layer.forward(x[:, s:s + k], state)
        outs.append(o)
        caches.append(c)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), out, rtol=1e-12, atol=1e-13)
    for a, b in zip(arrays(state), arrays(st)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)

    # chunk length T is exactly full BPTT
    layer.zero_grad()
    o, s_, c = layer.forward(x[:, 0:T], None)
    dx, ds0 = layer.backward(R, S, c)
    np.testing.assert_array_equal(dx, dx_full)
    for n in g_full:
        np.testing.assert_array_equal(layer.grads[n], g_full[n])

    # chained backward through the chunks (passing the state gradient on) is full BPTT too
    layer.zero_grad()
    dstate, dxs = S, []
    for i in range(len(caches) - 1, -1, -1):
        dx_i, dstate = layer.backward(R[:, i * k:(i + 1) * k], dstate, caches[i])
        dxs.insert(0, dx_i)
    np.testing.assert_allclose(np.concatenate(dxs, axis=1), dx_full, rtol=1e-10, atol=1e-12)
    for n in g_full:
        np.testing.assert_allclose(layer.grads[n], g_full[n], rtol=1e-10, atol=1e-12, err_msg=n)

    # truncated: the second chunk's gradients = finite differences of its own loss with the
    # carried state held fixed (gradient stopped at the chunk boundary)
    o1, s1, _ = layer.forward(x[:, 0:k])
    s1 = tuple(a.copy() for a in s1) if isinstance(s1, tuple) else s1.copy()
    R2 = R[:, k:2 * k]
    layer.zero_grad()
    o2, st2, c2 = layer.forward(x[:, k:2 * k], s1)
    layer.backward(R2, S, c2)
    g2 = {n: g.copy() for n, g in layer.grads.items()}

    def loss2():
        o, s, _ = layer.forward(x[:, k:2 * k], s1)
        return float(np.sum(o * R2)) + state_dot(s, S)

    for n, p in layer.params.items():
        np.testing.assert_allclose(g2[n], numeric_grad(loss2, p), rtol=1e-6, atol=1e-8, err_msg=n)
    # and these differ from the full-BPTT gradient (the cut is real)
    assert any(not np.allclose(g2[n], g_full[n]) for n in g_full)


@pytest.mark.parametrize("cell", ["lstm", "gru_before", "rnn_tanh"])
def test_forwards_in_flight_are_independent(cell):
    """Two forwards then two backwards (in either order) give the per-pair results."""
    layer = make(cell, D, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=7)
    rng = np.random.default_rng(8)
    xa, xb = rng.standard_normal((2, N, T, D))
    Ra, Rb = rng.standard_normal((2, N, T, 2 * H))

    def alone(x, R, lengths):
        layer.zero_grad()
        _, _, c = layer.forward(x, None, lengths)
        dx, _ = layer.backward(R, None, c)
        return dx, {n: g.copy() for n, g in layer.grads.items()}

    dxa, ga = alone(xa, Ra, LENGTHS)
    dxb, gb = alone(xb, Rb, None)
    layer.zero_grad()
    _, _, ca = layer.forward(xa, None, LENGTHS)
    _, _, cb = layer.forward(xb, None, None)
    dxb2, _ = layer.backward(Rb, None, cb)
    dxa2, _ = layer.backward(Ra, None, ca)
    np.testing.assert_allclose(dxa2, dxa, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dxb2, dxb, rtol=1e-12, atol=1e-14)
    for n in ga:
        np.testing.assert_allclose(layer.grads[n], ga[n] + gb[n], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", list(CELLS))
def test_backward_differentiates_the_weights_of_its_forward(cell):
    """An optimiser step between forward and backward must not leak into the gradients."""
    layer = make(cell, D, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=11)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((N, T, D))
    R = rng.standard_normal((N, T, 2 * H))
    layer.zero_grad()
    _, _, cache = layer.forward(x, None, LENGTHS)
    dx_ref, _ = layer.backward(R, None, cache)
    grads_ref = {n: g.copy() for n, g in layer.grads.items()}

    layer.zero_grad()
    _, _, cache = layer.forward(x, None, LENGTHS)
    for p in layer.params.values():
        p += 0.1                                      # in place, as optimisers update
    dx, _ = layer.backward(R, None, cache)
    np.testing.assert_array_equal(dx, dx_ref)
    for n in grads_ref:
        np.testing.assert_array_equal(layer.grads[n], grads_ref[n])


@pytest.mark.parametrize("cell", COMPILED)
def test_forward_cache_keeps_one_copy_of_the_recurrent_weights(cell):
    """Only the loop's layout of W_hh lives from forward to backward, which restores W_hh
    from it: a second copy made the peak memory of a batch-1 GRU step PyTorch's and more."""
    layer = make(cell, D, H, seed=3)
    _, _, cache = layer.forward(np.ones((N, T, D), layer.dtype))
    k = cache["layers"][0][1][0]["k"]
    W_hh, W_xh = layer.params["l0.W_hh"], layer.params["l0.W_xh"]
    owners = {id(a if a.base is None else a.base): a.size for name, a in k.items()
              if name.startswith("W")}                      # (Wx_T may view W_xh)
    assert sum(owners.values()) == W_hh.size + W_xh.size
    layer.backward(np.ones((N, T, H), layer.dtype), None, cache)
    np.testing.assert_array_equal(k["W_hh"], W_hh)


def test_forward_does_not_modify_inputs():
    layer = make("lstm", D, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=9)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((N, T, D))
    st = random_state("lstm", (4, N, H), rng, np.float64)
    R = rng.standard_normal((N, T, 2 * H))
    S = random_state("lstm", (4, N, H), rng, np.float64)
    copies = [a.copy() for a in (x, *st, R, *S)]
    _, _, c = layer.forward(x, st, LENGTHS)
    layer.backward(R, S, c)
    for a, b in zip((x, *st, R, *S), copies):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_output_is_the_time_major_buffer_read_only_while_backward_needs_it(lengths, dtype):
    """No batch-first copy of the output: it is a transposed view of time-major memory,
    read-only with grad=True (backward reads it), writable in inference."""
    layer = make("gru_after", D, H, num_layers=2, bidirectional=True, dtype=dtype, seed=9)
    x = np.random.default_rng(9).standard_normal((N, T, D)).astype(dtype)
    out, _, cache = layer.forward(x, lengths=lengths)
    assert out.shape == (N, T, 2 * H) and out.transpose(1, 0, 2).flags.c_contiguous
    with pytest.raises(ValueError, match="read-only"):
        out[0, 0, 0] = 1.0
    out2, _, _ = layer.forward(x, lengths=lengths, grad=False)
    out2[0, 0, 0] = 1.0
    np.testing.assert_array_equal(out2[1:], out[1:])


def test_dropout_is_inverted_and_between_layers_only():
    """2-layer ReLU RNN whose second layer is the identity: out2 = mask * out1 exactly."""
    p_drop, Hb = 0.25, 64
    two = RNN(D, Hb, num_layers=2, nonlinearity="relu", dropout=p_drop, dtype=np.float64,
              seed=1)
    one = RNN(D, Hb, nonlinearity="relu", dtype=np.float64, seed=2)
    for name in one.params:
        one.params[name][...] = two.params[name]
    two.params["l1.W_xh"][...] = np.eye(Hb)
    for name in ("l1.W_hh", "l1.b_xh", "l1.b_hh"):
        two.params[name][...] = 0
    x = np.random.default_rng(3).standard_normal((N, T, D))
    out1, _, _ = one.forward(x)
    out_eval, _, _ = two.forward(x, training=False)
    np.testing.assert_array_equal(out_eval, out1)            # no dropout at inference
    out_tr, _, _ = two.forward(x, training=True, rng=np.random.default_rng(4))
    pos = out1 > 1e-3
    assert pos.sum() > 200
    ratio = out_tr[pos] / out1[pos]
    keep = 1 - p_drop
    assert np.all(np.isclose(ratio, 0) | np.isclose(ratio, 1 / keep, rtol=1e-12))
    assert abs(np.isclose(ratio, 0).mean() - p_drop) < 0.08
    # the layer's own generator is used (and advanced) when no rng is passed
    a, _, _ = two.forward(x, training=True)
    b, _, _ = two.forward(x, training=True)
    assert not np.array_equal(a, b)


# ----------------------------------------------------------------------------- (e) padding
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("cell", list(CELLS))
def test_padding_matches_rows_run_alone(cell, with_state):
    layer = make(cell, D, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=2)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, T, D))
    state = random_state(cell, (4, N, H), rng, np.float64) if with_state else None
    out, st, _ = layer.forward(x, state, LENGTHS)
    for i, L in enumerate(LENGTHS):
        assert np.all(out[i, L:] == 0)
        if cell != "rnn_relu":                                # relu outputs may be 0
            assert np.all(out[i, :L] != 0)
        row_state = None if state is None else (
            tuple(a[:, i:i + 1] for a in state) if isinstance(state, tuple) else state[:, i:i + 1])
        o_i, s_i, _ = layer.forward(x[i:i + 1, :L], row_state)
        np.testing.assert_allclose(out[i:i + 1, :L], o_i, rtol=1e-12, atol=1e-14)
        for a, b in zip(arrays(st), arrays(s_i)):
            np.testing.assert_allclose(a[:, i:i + 1], b, rtol=1e-12, atol=1e-14)
    # a full-length row equals no lengths at all
    full, _, _ = layer.forward(x, state)
    j = int(np.argmax(LENGTHS))
    np.testing.assert_allclose(out[j], full[j], rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- (f) directions
@pytest.mark.parametrize("cell", list(CELLS))
def test_bidirectional_halves_are_forward_and_reverse_layers(cell):
    bi = make(cell, D, H, bidirectional=True, dtype=np.float64, seed=4)
    fw = make(cell, D, H, dtype=np.float64, seed=5)
    rv = make(cell, D, H, reverse=True, dtype=np.float64, seed=6)
    for name in fw.params:
        fw.params[name][...] = bi.params[name]
        rv.params[name][...] = bi.params[name.replace("l0.", "l0_reverse.")]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, T, D))
    for lengths in (None, LENGTHS):
        out, st, _ = bi.forward(x, None, lengths)
        o_f, s_f, _ = fw.forward(x, None, lengths)
        o_r, s_r, _ = rv.forward(x, None, lengths)
        np.testing.assert_allclose(out[..., :H], o_f, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(out[..., H:], o_r, rtol=1e-12, atol=1e-14)
        for a, bf, br in zip(arrays(st), arrays(s_f), arrays(s_r)):
            np.testing.assert_allclose(a[0], bf[0], rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(a[1], br[0], rtol=1e-12, atol=1e-14)
    # reverse=True is a forward layer (same weights) run on the time-reversed sequence
    fw2 = make(cell, D, H, dtype=np.float64, seed=8)
    for name in fw2.params:
        fw2.params[name][...] = rv.params[name]
    o_flip, s_flip, _ = fw2.forward(x[:, ::-1].copy())
    o_r, s_r, _ = rv.forward(x)
    np.testing.assert_allclose(o_r, o_flip[:, ::-1], rtol=1e-12, atol=1e-14)
    for a, b in zip(arrays(s_r), arrays(s_flip)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # with lengths: the reverse direction reads each row's valid part backwards
    o_r, s_r, _ = rv.forward(x, None, LENGTHS)
    for i, L in enumerate(LENGTHS):
        o_i, s_i, _ = fw2.forward(x[i:i + 1, :L][:, ::-1].copy())
        np.testing.assert_allclose(o_r[i, :L], o_i[0, ::-1], rtol=1e-12, atol=1e-14)
        for a, b in zip(arrays(s_r), arrays(s_i)):
            np.testing.assert_allclose(a[:, i], b[:, 0], rtol=1e-12, atol=1e-14)
    # the reverse half's final state summarises step 0
    out, st, _ = bi.forward(x, None, LENGTHS)
    np.testing.assert_allclose(arrays(st)[0][1], out[:, 0, H:], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inference_without_a_cache_equals_the_training_forward(cell, dtype):
    layer = make(cell, D, H, num_layers=2, bidirectional=True, dtype=dtype, seed=13)
    rng = np.random.default_rng(14)
    x = rng.standard_normal((N, T, D)).astype(dtype)
    state = random_state(cell, (4, N, H), rng, dtype)
    out, final, cache = layer.forward(x, state, LENGTHS)
    out2, final2, cache2 = layer.forward(x, state, LENGTHS, grad=False)
    assert cache is not None and cache2 is None
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out2, out, rtol=tol, atol=tol)
    for a, b in zip(arrays(final2), arrays(final)):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    with pytest.raises(RnnkitError, match="cache: expected the cache of a forward"):
        layer.backward(np.zeros_like(out), None, cache2)


@pytest.mark.parametrize("dtype, whole_loop_macs, mkl_loop_macs", [
    (np.float64, 0, 0),             # reference path
    (np.float32, 1 << 30, 0),       # fast, whole loop
    (np.float32, 0, 1 << 30),       # fast, whole loop calling MKL (per step without MKL)
    (np.float32, 0, 0)])            # fast, per step
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_input_in_chunks_equals_one_product(cell, dtype, whole_loop_macs, mkl_loop_macs,
                                            monkeypatch):
    """The first layer reads the batch-first x a few steps at a time (input projection and
    W_xh gradient), and the Elman cell's backward goes a chunk of steps at a time, each
    chunk's gradient products taken before the next. One chunk, chunks of 2 steps, of 1;
    the projection in one piece, in pieces of 2 steps, of 1."""
    from rnnkit.fast import kernels
    from rnnkit.fast import steps as scan      # the chunk sizes the scan reads
    monkeypatch.setattr(kernels, "WHOLE_LOOP_MACS", whole_loop_macs)
    monkeypatch.setattr(kernels, "MKL_LOOP_MACS", mkl_loop_macs)
    layer = make(cell, D, H, num_layers=2, bidirectional=True, dtype=dtype, seed=21)
    rng = np.random.default_rng(22)
    x = rng.standard_normal((N, T, D)).astype(dtype)
    R = rng.standard_normal((N, T, 2 * H)).astype(dtype)
    results = []
    monkeypatch.setattr(scan, "MIN_CHUNK_ROWS", 1)
    step_bytes = N * D * np.dtype(dtype).itemsize     # of x, in the forward's projection
    for chunks, rows, steps in ((1, 1 << 20, T), (3, 1 << 20, 2), (8, 1 << 20, 1),
                                (1, 2 * N, T)):
        monkeypatch.setattr(scan, "CHUNKS", chunks)
        monkeypatch.setattr(scan, "CHUNK_ROWS", rows)
        monkeypatch.setattr(scan, "PROJECTION_BYTES", steps * step_bytes)
        layer.zero_grad()
        out, _, cache = layer.forward(x, lengths=LENGTHS)
        dx, _ = layer.backward(R, None, cache)
        results.append((out, dx, {k: g.copy() for k, g in layer.grads.items()}))
    out1, dx1, g1 = results[0]
    assert dx1.shape == (N, T, D) and dx1.transpose(1, 0, 2).flags.c_contiguous
    for out2, dx2, g2 in results[1:]:
        np.testing.assert_allclose(out2, out1, **tol(dtype))
        np.testing.assert_allclose(dx2, dx1, **tol(dtype))
        for k in g1:
            np.testing.assert_allclose(g2[k], g1[k], **tol(dtype))
