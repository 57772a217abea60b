"""Gradient flow through time (notes 001 and 004): how much of the error at the end of a
sequence reaches its beginning.

Note 001 writes BPTT as dL/dW = dL/dh_T sum_k (dh_T/dh_k)(dh_k^+/dW): step k's share of the
gradient is carried back by the Jacobian product

    dh_T/dh_k = dh_T/dh_{T-1} dh_{T-1}/dh_{T-2} ... dh_{k+1}/dh_k

whose norm shrinks (vanishing gradients) or grows (exploding) geometrically with T - k for a
plain RNN. For a model and a batch this module gives, for the first recurrent layer:

- ``jacobian_norms``: the spectral norm ||dh_T/dh_k||_2 for k = 0 (h_0) ... T, averaged
  over the rows. The product is run backwards with the cell's own ``step_back`` (one seed
  e_j per hidden unit), so for an LSTM it includes every path through the cell state;
- ``gradient_flow``: those, and ||dL/dh_t|| for every t from the model's own backward on the
  reference scan (rnnkit.train.watch.hidden_gradients);
- ``compare_cells`` and ``plot_flow``: RNN vs LSTM vs GRU at one length, as numbers and a
  PNG with a log scale (``rnnkit trace --flow``).
"""
from __future__ import annotations

import io

import numpy as np

from rnnkit import cells
from rnnkit.errors import check_int, fail
from rnnkit.layers import Recurrent
from rnnkit.layers import scan as reference
from rnnkit.losses import mean_squared_error
from rnnkit.models import SequenceModel
from rnnkit.serialize import atomic_write_bytes
from rnnkit.diagnostics.trace import layer_params
from rnnkit.train.watch import first_layer, hidden_gradients, step_norms


def _repeat_rows(cache: tuple, k: int) -> tuple:
    """A step's cache with each batch row repeated k times (one copy per seed)."""
    return tuple(np.repeat(a, k, axis=0) if isinstance(a, np.ndarray) and a.ndim >= 1 else a
                 for a in cache)


def jacobian_products(cell: str, params: dict, x: np.ndarray, options: dict | None = None,
                      states0: tuple | None = None) -> np.ndarray:
    """x (N, T, D) through one cell with ``params`` -> J (T + 1, N, H, H), J[k] = dh_T/dh_k
    (J[T] = I). float64. Each step back multiplies the product by one step's Jacobian,
    applied by the cell's ``step_back`` to H seeds at once."""
    spec = cells.get(cell)
    options = spec.resolve(options or {})
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x = np.asarray(x, np.float64)
    N, T, _ = x.shape
    H = p["W_hh"].shape[1] if "W_hh" in p else p["u"].shape[0]
    if states0 is None:
        states0 = tuple(np.zeros((N, H)) for _ in spec.states)
    _, _, cache = reference.scan_forward(spec, options, p, np.ascontiguousarray(
        x.transpose(1, 0, 2)), states0, np.full(T, N), reverse=False)
    J = np.empty((T + 1, N, H, H))
    J[T] = np.eye(H)
    d = [np.tile(np.eye(H), (N, 1))] + [np.zeros((N * H, H)) for _ in spec.states[1:]]
    for t in range(T - 1, -1, -1):          # step t reads h_t and writes h_{t+1}
        _, *d, _ = spec.step_back(*d, _repeat_rows(cache["steps"][t], H), p, **options)
        J[t] = d[0].reshape(N, H, H)        # row j: d h_T[j] / d h_t
    return J


def jacobian_norms(cell: str, params: dict, x: np.ndarray, options: dict | None = None,
                   states0: tuple | None = None) -> np.ndarray:
    """(T + 1,) ||dh_T/dh_k||_2 for k = 0 ... T, the mean over the batch rows."""
    J = jacobian_products(cell, params, x, options, states0)
    return np.linalg.norm(J, ord=2, axis=(2, 3)).mean(axis=1)


def gradient_flow(model, inputs, targets, loss_fn, lengths=None) -> dict:
    """For a model with a recurrent layer ``model.rnn`` (SequenceModel, LanguageModel) and
    one batch: {"dL_dh": (T,) mean ||dL/dh_t|| of the first layer in reading order,
    "dh_T_dh_k": (T + 1,) mean ||dh_T/dh_k||_2 of the first layer, k = 0 ... T}.
    The Jacobians are of full-length rows (``lengths`` is for the loss)."""
    rnn = getattr(model, "rnn", None)
    if not isinstance(rnn, Recurrent):
        fail("model", "a model with a recurrent layer .rnn (SequenceModel, LanguageModel)",
             type(model).__name__)
    entry = first_layer(hidden_gradients(model, loss_fn, inputs, targets, lengths))
    x = model.embed.forward(np.asarray(inputs))[0] if getattr(model, "embed", None) else inputs
    direction = 1 if rnn.reverse else 0
    if rnn.reverse:
        x = x[:, ::-1]
    return {"dL_dh": step_norms(entry),
            "dh_T_dh_k": jacobian_norms(rnn.spec.name, layer_params(rnn, 0, direction), x,
                                        rnn.options)}


def compare_cells(cell_names=("rnn", "lstm", "gru"), length: int = 100, hidden_size: int = 32,
                  batch: int = 16, seed: int = 0, forget_bias: float | None = None) -> dict:
    """Each cell at initialisation (``seed``; PyTorch's uniform scheme) on the same batch of
    ``length`` steps of N(0, 1) inputs, many-to-one with a squared error on the last step:
    cell -> gradient_flow. The name "lstm+fb" in ``cell_names`` is an LSTM whose forget gate
    starts open: b_xf = ``forget_bias`` (default 1; b_hf = 0), as ``LSTM(forget_bias=)``."""
    check_int("length", length)
    check_int("hidden_size", hidden_size)
    check_int("batch", batch)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, length, 1))
    y = rng.standard_normal((batch, 1))
    out = {}
    for name in cell_names:
        cell, bias = ((("lstm", 1.0 if forget_bias is None else forget_bias))
                      if name == "lstm+fb" else (name, None))
        model = SequenceModel(input_size=1, hidden_size=hidden_size, cell=cell, readout="last",
                              dtype="float64", seed=seed)
        if bias is not None:            # (as the LSTM layer's forget_bias does)
            H = hidden_size
            model.rnn.params["l0.b_xh"][H:2 * H] = bias
            model.rnn.params["l0.b_hh"][H:2 * H] = 0
        out[name] = gradient_flow(model, x, y, mean_squared_error)
    return out


def plot_flow(results: dict, path, title: str = "", labels: dict | None = None) -> None:
    """Two panels, log scale, one line per cell (named by ``labels`` where given):
    ||dh_T/dh_k|| against T - k, and ||dL/dh_t|| against t; written atomically to ``path``
    (PNG)."""
    labels = labels or {}
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, r in results.items():
        J = np.asarray(r["dh_T_dh_k"])
        T = len(J) - 1
        label = labels.get(name, name)
        left.semilogy(T - np.arange(T + 1), np.where(J > 0, J, np.nan), label=label)
        g = np.asarray(r["dL_dh"])
        right.semilogy(np.arange(1, len(g) + 1), np.where(g > 0, g, np.nan), label=label)
    left.set_xlabel("T - k (steps back from the end)")
    left.set_ylabel("mean ||dh_T / dh_k||_2")
    right.set_xlabel("time step t")
    right.set_ylabel("mean ||dL / dh_t||")
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    if title:
        fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
