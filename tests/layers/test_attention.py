"""rnnkit.layers.attention: finite differences in float64 for every score kind, exact zeros
at padded source steps, and the values against a direct reading of the equations."""
import numpy as np
import pytest

from gradcheck import numeric_grad

from rnnkit import RnnkitError
from rnnkit.layers.attention import Attention

N, TQ, TS, HQ, HK = 3, 4, 5, 6, 6
LENGTHS = np.array([5, 2, 3])
KINDS = ["additive", "dot", "general"]


def make(kind, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    attn = Attention(kind, HQ, HK, attn_size=7 if kind == "additive" else None, dtype=dtype,
                     seed=1)
    q = rng.standard_normal((N, TQ, HQ)).astype(dtype)
    k = rng.standard_normal((N, TS, HK)).astype(dtype)
    return attn, q, k, rng


def reference(attn, q, k, lengths):
    """Each score written out one query and key at a time, then a softmax over valid keys."""
    p = attn.params
    ctx = np.zeros(q.shape[:2] + (k.shape[2],))
    w = np.zeros(q.shape[:2] + (k.shape[1],))
    for n in range(q.shape[0]):
        L = lengths[n]
        for i in range(q.shape[1]):
            if attn.kind == "additive":
                s = np.array([p["v"] @ np.tanh(p["W_q"] @ q[n, i] + p["W_k"] @ k[n, j])
                              for j in range(L)])
            elif attn.kind == "dot":
                s = np.array([q[n, i] @ k[n, j] for j in range(L)])
            else:
                s = np.array([q[n, i] @ p["W_a"] @ k[n, j] for j in range(L)])
            a = np.exp(s - s.max())
            a /= a.sum()
            w[n, i, :L] = a
            ctx[n, i] = a @ k[n, :L]
    return ctx, w


@pytest.mark.parametrize("kind", KINDS)
def test_values_match_the_equations(kind):
    attn, q, k, _ = make(kind)
    ctx, w, _ = attn.forward(q, k, LENGTHS)
    ref_ctx, ref_w = reference(attn, q, k, LENGTHS)
    np.testing.assert_allclose(ctx, ref_ctx, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(w, ref_w, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
def test_padded_source_steps_get_exactly_zero_weight_and_gradient(kind):
    attn, q, k, rng = make(kind, np.float32)
    k[1, 2:] = 1e3                      # huge padding values must change nothing
    ctx, w, cache = attn.forward(q, k, LENGTHS)
    pad = np.arange(TS)[None, :] >= LENGTHS[:, None]                # (N, TS)
    assert np.all(w[np.broadcast_to(pad[:, None], w.shape)] == 0.0)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=1e-6)
    _, dk = attn.backward(rng.standard_normal(ctx.shape).astype(np.float32), cache)
    assert np.all(dk[pad] == 0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_by_finite_differences(kind):
    attn, q, k, rng = make(kind)
    dctx = rng.standard_normal((N, TQ, HK))
    dw = rng.standard_normal((N, TQ, TS))

    def loss():
        c, w, _ = attn.forward(q, k, LENGTHS)
        return float((c * dctx).sum() + (w * dw).sum())

    _, _, cache = attn.forward(q, k, LENGTHS)
    attn.zero_grad()
    dq, dk = attn.backward(dctx, cache, dw)
    np.testing.assert_allclose(dq, numeric_grad(loss, q), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dk, numeric_grad(loss, k), rtol=1e-6, atol=1e-8)
    for name, p in attn.params.items():
        np.testing.assert_allclose(attn.grads[name], numeric_grad(loss, p), rtol=1e-6,
                                   atol=1e-8, err_msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_step_by_step_equals_all_queries_at_once(kind):
    attn, q, k, _ = make(kind)
    ctx, w, _ = attn.forward(q, k, LENGTHS)
    pk = attn.project(k)
    mask = np.arange(TS)[None, :] < LENGTHS[:, None]
    for t in range(TQ):
        c_t, w_t, _ = attn.attend(q[:, t:t + 1], k, pk, mask)
        np.testing.assert_allclose(c_t[:, 0], ctx[:, t], rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(w_t[:, 0], w[:, t], rtol=1e-13, atol=1e-14)


def test_bad_input_raises():
    attn, q, k, _ = make("general", np.float32)
    with pytest.raises(RnnkitError, match="lengths"):
        attn.forward(q, k, np.array([6, 1, 1]))
    with pytest.raises(RnnkitError, match="lengths"):
        attn.forward(q, k, np.array([0, 1, 1]))
    with pytest.raises(RnnkitError, match="keys"):
        attn.forward(q, k.astype(np.float64), LENGTHS)
    with pytest.raises(RnnkitError, match="keys"):
        attn.forward(q, k[:, :0], None)
    with pytest.raises(RnnkitError, match="q"):
        attn.forward(q[:, :, :3], k, LENGTHS)
    with pytest.raises(RnnkitError, match="kind"):
        Attention("cosine", 4, 4)
    with pytest.raises(RnnkitError, match="key_size"):
        Attention("dot", 4, 5)
