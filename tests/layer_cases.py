"""The cell variants and state helpers shared by the layer tests."""
import numpy as np

from rnnkit import GRU, LSTM, RNN
from rnnkit.layers import LayerNormGRU, LayerNormLSTM

CELLS = {
    "rnn_tanh": lambda *a, **kw: RNN(*a, nonlinearity="tanh", **kw),
    "rnn_relu": lambda *a, **kw: RNN(*a, nonlinearity="relu", **kw),
    "lstm": lambda *a, **kw: LSTM(*a, **kw),
    "lstm_peep": lambda *a, **kw: LSTM(*a, peepholes=True, **kw),
    "gru_after": lambda *a, **kw: GRU(*a, reset_after=True, **kw),
    "gru_before": lambda *a, **kw: GRU(*a, reset_after=False, **kw),
    "lnlstm": lambda *a, **kw: LayerNormLSTM(*a, **kw),
    "lngru_per_gate": lambda *a, **kw: LayerNormGRU(*a, per_gate=True, **kw),
}

# the variants the compiled loops serve: the others run on the reference scan (rnnkit.cells)
COMPILED = [c for c in CELLS if c not in ("lstm_peep", "gru_before")]


def make(cell, *args, seed=0, **kw):
    layer = CELLS[cell](*args, seed=seed, **kw)
    rng = np.random.default_rng(seed + 100)
    for name, p in layer.params.items():
        if name.endswith(".P"):
            p[...] = rng.uniform(-0.8, 0.8, p.shape)
    return layer


def is_lstm(cell):
    return cell.startswith(("lstm", "lnlstm"))


def arrays(state):
    return list(state) if isinstance(state, tuple) else [state]


def random_state(cell, shape, rng, dtype):
    if is_lstm(cell):
        return tuple(rng.uniform(-0.8, 0.8, shape).astype(dtype) for _ in range(2))
    return rng.uniform(-0.8, 0.8, shape).astype(dtype)


def state_dot(state, S):
    return float(sum(np.sum(a * b) for a, b in zip(arrays(state), arrays(S))))
