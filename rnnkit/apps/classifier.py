"""A many-to-one classifier for the apps (notes 001, 002), on the public layers' API:

    x_t = dropout(E[token_t])  (token ids)   or the input features x_t
    h_t = RNN/LSTM/GRU(x_t, h_{t-1})          stacked, optionally bidirectional, with lengths
    s   = pool(h_1..h_len)                    "last": the top layer's final state(s)
                                              "mean" / "max": over the valid steps only
                                              "meanmax": both, side by side
    logits = W_hy dropout(s) + b_y            (N, C); softmax cross-entropy trains it

"last" for a bidirectional layer joins the forward direction's state at each row's last
valid step with the reverse direction's after reading the row back to its first step, as
SequenceModel(readout="last") does. Padded steps never reach s: the layers' outputs there
are zero and the pools mask them.
"""
from __future__ import annotations

import numpy as np

from rnnkit.apps import common
from rnnkit.errors import fail
from rnnkit.init import as_rng
from rnnkit.layers import BY_CELL, Dense, Embedding
from rnnkit.layers.dropout import dropout_backward, dropout_forward
from rnnkit.losses import softmax_cross_entropy

CELLS = BY_CELL
POOLINGS = ("last", "mean", "max", "meanmax")


def pool_forward(out: np.ndarray, lengths: np.ndarray, how: str):
    """out (N, T, F), lengths (N,) -> (N, F) mean or max over each row's valid steps; cache."""
    N, T, F = out.shape
    valid = np.arange(T)[None, :] < lengths[:, None]                     # (N, T)
    if how == "mean":
        s = np.where(valid[:, :, None], out, 0).sum(axis=1) / lengths[:, None].astype(out.dtype)
        return s.astype(out.dtype), ("mean", out.shape, valid, lengths)
    masked = np.where(valid[:, :, None], out, -np.inf)
    arg = masked.argmax(axis=1)                                           # (N, F)
    s = np.take_along_axis(out, arg[:, None, :], axis=1)[:, 0]
    return s, ("max", out.shape, arg)


def pool_backward(ds: np.ndarray, cache) -> np.ndarray:
    """(N, F) -> dL/dout (N, T, F): spread evenly over valid steps, or to each argmax."""
    if cache[0] == "mean":
        _, shape, valid, lengths = cache
        scale = (valid / lengths[:, None]).astype(ds.dtype)               # (N, T)
        return scale[:, :, None] * ds[:, None, :]
    _, shape, arg = cache
    dout = np.zeros(shape, ds.dtype)
    np.put_along_axis(dout, arg[:, None, :], ds[:, None, :], axis=1)
    return dout


class SequenceClassifier:
    """Parameters ``embed.E`` (token inputs), ``rnn.l{k}[_reverse].*``, ``head.W_hy``,
    ``head.b_y``."""

    def __init__(self, *, vocab_size: int = 0, input_size: int = 0, embed_dim: int = 128,
                 hidden_size: int = 128, num_layers: int = 1, cell: str = "lstm",
                 bidirectional: bool = True, pooling: str = "last", embed_dropout: float = 0.0,
                 dropout: float = 0.0, num_classes: int = 2, dtype: str = "float32",
                 seed: int | np.random.Generator | None = None):
        if cell not in CELLS:
            fail("cell", f"one of {tuple(CELLS)}", repr(cell))
        if pooling not in POOLINGS:
            fail("pooling", f"one of {POOLINGS}", repr(pooling))
        if (vocab_size > 0) == (input_size > 0):
            fail("vocab_size/input_size", "exactly one of them > 0 (token ids or features)",
                 f"vocab_size={vocab_size}, input_size={input_size}")
        for name, p in (("embed_dropout", embed_dropout), ("dropout", dropout)):
            if not 0 <= p < 1:
                fail(name, "a probability in [0, 1)", repr(p))
        self.config = {"vocab_size": vocab_size, "input_size": input_size,
                       "embed_dim": embed_dim, "hidden_size": hidden_size,
                       "num_layers": num_layers, "cell": cell, "bidirectional": bidirectional,
                       "pooling": pooling, "embed_dropout": embed_dropout, "dropout": dropout,
                       "num_classes": num_classes, "dtype": np.dtype(dtype).name}
        rng = as_rng(seed)
        self.dtype, self.pooling = np.dtype(dtype), pooling
        self.embed_dropout, self.dropout = embed_dropout, dropout
        self.embed = (Embedding(vocab_size, embed_dim, dtype=dtype, seed=rng) if vocab_size
                      else None)
        self.rnn = CELLS[cell](embed_dim if vocab_size else input_size, hidden_size, num_layers,
                               bidirectional=bidirectional, dtype=dtype, seed=rng)
        features = self.rnn.dirs * hidden_size * (2 if pooling == "meanmax" else 1)
        self.head = Dense(features, num_classes, dtype=dtype, seed=rng)
        parts = {k: v for k, v in (("embed", self.embed), ("rnn", self.rnn),
                                   ("head", self.head)) if v is not None}
        self.params = {f"{p}.{k}": v for p, m in parts.items() for k, v in m.params.items()}
        self.grads = {f"{p}.{k}": v for p, m in parts.items() for k, v in m.grads.items()}

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g[...] = 0

    def forward(self, inputs, state=None, lengths=None, *, training: bool = False,
                rng: np.random.Generator | None = None, grad: bool = True):
        """(N, T) ids or (N, T, D) features -> logits (N, C), final state, cache."""
        rng = rng if rng is not None else np.random.default_rng(0)
        if self.embed is not None:
            x, emb_cache = self.embed.forward(inputs)
        else:
            x, emb_cache = inputs, None
        x, emb_mask = dropout_forward(x, self.embed_dropout, training, rng)
        out, state, rnn_cache = self.rnn.forward(x, state, lengths, training=training, rng=rng,
                                                 grad=grad)
        N, T = out.shape[:2]
        lens = np.full(N, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
        pools = []
        if self.pooling == "last":
            h_n = state[0] if isinstance(state, tuple) else state
            s = np.concatenate(list(h_n[-self.rnn.dirs:]), axis=1)            # (N, dirs*H)
        else:
            kinds = ("mean", "max") if self.pooling == "meanmax" else (self.pooling,)
            parts = []
            for how in kinds:
                p, c = pool_forward(out, lens, how)
                parts.append(p)
                pools.append(c)
            s = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        s, s_mask = dropout_forward(s, self.dropout, training, rng)
        logits, head_cache = self.head.forward(np.ascontiguousarray(s))
        if not grad:
            return logits, state, None
        return logits, state, (emb_cache, emb_mask, rnn_cache, pools, s_mask, head_cache)

    def backward(self, dlogits: np.ndarray, cache) -> np.ndarray | None:
        """Accumulates parameter gradients; returns dL/d(input features) (None for ids)."""
        emb_cache, emb_mask, rnn_cache, pools, s_mask, head_cache = cache
        ds = self.head.backward(dlogits, head_cache)
        ds = dropout_backward(ds, s_mask)
        if self.pooling == "last":
            H, dirs = self.rnn.hidden_size, self.rnn.dirs
            dh_n = np.zeros((self.rnn.num_layers * dirs, ds.shape[0], H), self.dtype)
            for d in range(dirs):
                dh_n[-dirs + d] = ds[:, d * H:(d + 1) * H]
            dstate = (dh_n, np.zeros_like(dh_n)) if self.rnn.has_cell_state else dh_n
            dx, _ = self.rnn.backward(None, dstate, rnn_cache)
        else:
            width = ds.shape[1] // len(pools)
            dout = sum(pool_backward(np.ascontiguousarray(ds[:, i * width:(i + 1) * width]), c)
                       for i, c in enumerate(pools))
            dx, _ = self.rnn.backward(dout.astype(self.dtype, copy=False), None, rnn_cache)
        dx = dropout_backward(dx, emb_mask)
        if self.embed is not None:
            self.embed.backward(np.ascontiguousarray(dx), emb_cache)
            return None
        return dx


def score(model, data) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of a classifier over a data source."""
    loss, right, count = 0.0, 0, 0
    for batch in data.batches(0):
        logits, _, _ = model.forward(batch.inputs, None, batch.lengths, grad=False)
        targets = np.asarray(batch.targets)
        loss += softmax_cross_entropy(logits, targets)[0] * len(targets)
        right += int((logits.argmax(axis=1) == targets).sum())
        count += len(targets)
    return loss / max(count, 1), right / max(count, 1)


def probabilities(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def accuracy_trainer(model, optimizer, train, val, cfg, tcfg, run_dir, log):
    """A trainer that keeps the weights with the best validation accuracy (and stops early on
    it), with the app's learning-rate schedule (``cfg.schedule``, ``cfg.lr``)."""
    trainer = common.ScoredTrainer(model, softmax_cross_entropy, optimizer, train, val,
                                   config=tcfg, run_dir=run_dir, log=log, score_fn=score,
                                   score_name="accuracy")
    trainer.schedule = common.make_lr_schedule(cfg.schedule, cfg.lr, trainer.total_steps)
    return trainer


def finish(trainer, log, app: str, scored: str) -> dict:
    """Train to the end; -> the summary with the best validation accuracy."""
    summary = common.fit(trainer, log)
    log(f"best validation accuracy {-trainer.best_val:.4f} (weights in best.safetensors); "
        f"`rnnkit {app} evaluate {trainer.run_dir}` scores {scored}")
    return dict(summary, best_val_accuracy=-trainer.best_val)
