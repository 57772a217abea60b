"""The compiled passes outside the time loops (rnnkit.fast.kernels.updates) give their NumPy forms'
results to the bit, are the ones the layers and optimisers use, and fall back without numba."""
import numba  # noqa: F401  (the test extra installs it; these tests must run in CI)
import numpy as np
import pytest

from rnnkit import Embedding
from rnnkit.fast import setting
from rnnkit.fast.kernels import updates
from rnnkit.optim import Adam, AdamW, adam_update


def test_scatter_add_rows_equals_add_at_with_repeated_ids():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 7, 300)                  # every id many times, in no order
    rows = rng.standard_normal((300, 5)).astype(np.float32)
    table = rng.standard_normal((7, 5)).astype(np.float32)
    want = table.copy()
    np.add.at(want, ids, rows)
    updates.scatter_add_rows(table, ids, rows)
    np.testing.assert_array_equal(table, want)    # same sums in the same order: bit-identical


def test_scatter_add_rows_takes_strided_rows_and_small_ids():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 4, 20).astype(np.int8)
    rows = rng.standard_normal((5, 20)).T          # not C-contiguous
    table = np.zeros((4, 5))
    want = table.copy()
    np.add.at(want, ids, rows)
    updates.scatter_add_rows(table, ids, rows)
    np.testing.assert_array_equal(table, want)


def test_embedding_backward_uses_the_compiled_pass_and_matches_without_it(monkeypatch):
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 9, (4, 30))
    dout = rng.standard_normal((4, 30, 6)).astype(np.float32)
    grads = []
    for compiled in (True, False):
        setting.keep(loops=compiled)
        calls = []
        monkeypatch.setattr(updates, "compiled_scatter",
                            lambda *a, f=updates.compiled_scatter: calls.append(1) or f(*a))
        emb = Embedding(9, 6, seed=0)
        emb.backward(dout, ids)
        emb.backward(dout, ids)                    # accumulates
        assert len(calls) == (2 if compiled else 0)
        grads.append(emb.grads["E"])
    np.testing.assert_array_equal(grads[0], grads[1])
    want = np.zeros((9, 6), np.float32)
    np.add.at(want, ids.reshape(-1), dout.reshape(-1, 6))
    np.add.at(want, ids.reshape(-1), dout.reshape(-1, 6))
    np.testing.assert_array_equal(grads[0], want)


CASES = [(np.float32, 0.0, False), (np.float32, 0.1, False), (np.float32, 0.05, True),
         (np.float64, 0.1, False), (np.float64, 0.05, True)]


@pytest.mark.parametrize("dtype,wd,decoupled", CASES,
                         ids=[f"{np.dtype(d).name}-wd{w}-{'adamw' if c else 'adam'}"
                              for d, w, c in CASES])
def test_adam_step_equals_adam_update_to_the_bit(dtype, wd, decoupled):
    rng = np.random.default_rng(3)
    p, m, v = (rng.standard_normal((6, 5)).astype(dtype) for _ in range(3))
    v = np.abs(v)
    p2, m2, v2 = p.copy(), m.copy(), v.copy()
    hyper = dict(lr=3e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=wd,
                 decoupled=decoupled)
    for t in range(1, 6):
        g = rng.standard_normal((6, 5)).astype(dtype)
        g_before = g.copy()
        assert updates.adam_step(p, g, m, v, t, **hyper)
        adam_update(p2, g, m2, v2, t, **hyper, compiled=False)     # NumPy, the same rule
        np.testing.assert_array_equal(g, g_before)     # the L2 term does not touch g
    for a, b in ((p, p2), (m, m2), (v, v2)):
        np.testing.assert_array_equal(a, b)


def test_adam_step_declines_what_it_cannot_run(monkeypatch):
    p = np.ones((4, 3), np.float32)
    args = (p, np.ones((4, 3), np.float32), np.zeros((4, 3), np.float32),
            np.zeros((4, 3), np.float32), 1)
    hyper = dict(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False)
    strided = (p, np.ones((3, 4), np.float32).T, *args[2:])
    mixed = (p, np.ones((4, 3)), *args[2:])
    assert not updates.adam_step(*strided, **hyper)
    assert not updates.adam_step(*mixed, **hyper)
    np.testing.assert_array_equal(p, 1)                # declined: nothing changed
    setting.keep(loops=False)
    assert not updates.adam_step(*args, **hyper)


@pytest.mark.parametrize("cls,hyper", [(Adam, {"weight_decay": 0.1}), (AdamW, {})])
def test_optimizers_step_the_same_with_and_without_numba(monkeypatch, cls, hyper):
    rng = np.random.default_rng(4)
    start = {"W": rng.standard_normal((8, 3)).astype(np.float32),
             "b": rng.standard_normal(3).astype(np.float32),
             "strided": np.asarray(rng.standard_normal((3, 5)).astype(np.float32).T)}
    results = []
    for compiled in (True, False):
        setting.keep(loops=compiled)
        params = {k: v.copy() for k, v in start.items()}
        opt = cls(params, lr=1e-2, **hyper)
        grads_rng = np.random.default_rng(5)
        for _ in range(4):
            opt.step({k: grads_rng.standard_normal(v.shape).astype(np.float32)
                      for k, v in params.items()})
        results.append(params)
    for k in start:
        np.testing.assert_array_equal(results[0][k], results[1][k])
        assert not np.array_equal(results[0][k], start[k])


NO_NUMBA = """
import sys
sys.modules["numba"] = None                      # import numba now raises ImportError
import numpy as np
from rnnkit import Embedding
from rnnkit.fast.kernels import fastmath
from rnnkit.optim import Adam
assert not fastmath.AVAILABLE
{body}
np.save(sys.argv[1], np.concatenate([emb.grads["E"].ravel(), params["W"].ravel()]))
"""
BODY = """
rng = np.random.default_rng(6)
emb = Embedding(5, 4, seed=0)
emb.backward(rng.standard_normal((3, 7, 4)).astype(np.float32), rng.integers(0, 5, (3, 7)))
params = {"W": rng.standard_normal((4, 4)).astype(np.float32)}
opt = Adam(params, lr=1e-2)
for _ in range(3):
    opt.step({"W": rng.standard_normal((4, 4)).astype(np.float32)})
"""


def test_without_numba_the_same_results_come_from_numpy(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "no_numba.npy"
    subprocess.run([sys.executable, "-c", NO_NUMBA.format(body=BODY), str(path)], check=True)
    scope = {"np": np, "Embedding": Embedding, "Adam": Adam}
    exec(BODY, scope)                                  # here, numba is installed
    assert updates.AVAILABLE
    here = np.concatenate([scope["emb"].grads["E"].ravel(), scope["params"]["W"].ravel()])
    np.testing.assert_array_equal(np.load(path), here)
