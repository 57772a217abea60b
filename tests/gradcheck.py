"""Central finite differences, shared by the gradient tests (float64 parameters, in place)."""
import numpy as np
import pytest


def numeric_grad(f, arr: np.ndarray, eps: float = 1e-6, index=None) -> np.ndarray:
    """d f() / d arr by central differences at every entry (or only the flat `index`es)."""
    assert arr.dtype == np.float64 and arr.flags.c_contiguous
    flat = arr.reshape(-1)
    g = np.full(arr.size, np.nan)
    for i in (range(arr.size) if index is None else index):
        old = flat[i]
        flat[i] = old + eps
        f_plus = f()
        flat[i] = old - eps
        f_minus = f()
        flat[i] = old
        g[i] = (f_plus - f_minus) / (2 * eps)
    return g.reshape(arr.shape)


def check_sampled_params(model, loss, rng, samples: int = 5, eps: float = 1e-6,
                         rel: float = 1e-5, abs: float = 1e-9) -> None:
    """model.grads agree with finite differences of loss() at `samples` entries per parameter."""
    for name, p in model.params.items():
        index = rng.choice(p.size, size=min(samples, p.size), replace=False)
        numeric = numeric_grad(loss, p, eps, index).reshape(-1)
        analytic = model.grads[name].reshape(-1)
        for i in index:
            assert analytic[i] == pytest.approx(numeric[i], rel=rel, abs=abs), name
