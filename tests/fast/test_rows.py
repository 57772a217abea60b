"""Row blocks on threads (rnnkit.fast.rows) and the softmax cross-entropy that runs on them:
bit-identical to whole-array NumPy passes for any block size and thread count."""
import numpy as np
import pytest

from rnnkit.fast import rows
from rnnkit.losses import softmax_cross_entropy


def whole_array_softmax_cross_entropy(logits, targets, lengths=None):
    """The plain form: batch-first rows, one NumPy pass over the whole array at a time."""
    N, T, V = logits.shape
    z, t = np.ascontiguousarray(logits).reshape(-1, V), targets.reshape(-1)
    valid = np.ones(N * T, bool) if lengths is None else \
        (np.arange(T)[None, :] < np.asarray(lengths)[:, None]).reshape(-1)
    w = 1.0 / valid.sum()
    dz = np.subtract(z, z.max(axis=1, keepdims=True))
    picked = dz[np.arange(N * T), t]
    np.exp(dz, out=dz)
    total = dz.sum(axis=1)
    nll = np.log(total) - picked
    scale = (valid * w).astype(z.dtype)
    dz *= (scale / total)[:, None]
    dz[np.arange(N * T), t] -= scale
    return float(np.where(valid, nll, 0).sum(dtype=np.float64) * w), dz.reshape(N, T, V)


@pytest.mark.parametrize("block_bytes, split_bytes, workers", [
    (1 << 18, 8 << 20, None), (400, 0, 2), (1000, 0, 3), (1 << 30, 0, 2)])
def test_row_blocks_cover_every_row_once(monkeypatch, block_bytes, split_bytes, workers):
    monkeypatch.setattr(rows, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(rows, "MIN_SPLIT_BYTES", split_bytes)
    seen = np.zeros(37, int)

    def fn(a, b):
        seen[a:b] += 1
    rows.for_row_blocks(fn, 37, 100, workers)
    np.testing.assert_array_equal(seen, 1)


def test_a_thread_s_error_reaches_the_caller(monkeypatch):
    monkeypatch.setattr(rows, "MIN_SPLIT_BYTES", 0)

    def fn(a, b):
        if a > 0:
            raise ValueError("in a worker")
    with pytest.raises(ValueError, match="in a worker"):
        rows.for_row_blocks(fn, 10, 1 << 17, workers=2)


@pytest.mark.parametrize("split_bytes, block_bytes", [(8 << 20, 1 << 18), (0, 1 << 18),
                                                      (0, 3000), (1 << 40, 1 << 40)])
@pytest.mark.parametrize("time_major", [False, True])
def test_softmax_cross_entropy_is_bit_identical_to_whole_array_passes(
        monkeypatch, split_bytes, block_bytes, time_major):
    monkeypatch.setattr(rows, "MIN_SPLIT_BYTES", split_bytes)
    monkeypatch.setattr(rows, "BLOCK_BYTES", block_bytes)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    rng = np.random.default_rng(0)
    N, T, V = 6, 9, 501
    memory = (3 * rng.standard_normal((T, N, V) if time_major else (N, T, V))).astype(np.float32)
    logits = memory.transpose(1, 0, 2) if time_major else memory
    targets = rng.integers(0, V, (N, T))
    for lengths in (None, np.array([9, 3, 5, 9, 1, 7])):
        loss, d = softmax_cross_entropy(logits, targets, lengths)
        want_loss, want_d = whole_array_softmax_cross_entropy(logits, targets, lengths)
        np.testing.assert_array_equal(d, want_d)
        assert loss == pytest.approx(want_loss, rel=1e-12)
