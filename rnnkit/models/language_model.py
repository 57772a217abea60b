"""Next-token language model (many-to-many, notes 002/004): Embedding -> RNN/LSTM/GRU -> logits.

    x_t = E[token_t];  h_t = RNN(x_t, h_{t-1});  logits_t = W_hy h_t + b_y
    p(token_{t+1} | tokens_<=t) = softmax(logits_t)
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import fail
from rnnkit.init import as_rng
from rnnkit.layers import GRU, LSTM, RNN, Dense, Embedding

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


class LanguageModel:
    """Parameters: ``embed.E``, ``rnn.l{k}.*`` and ``head.W_hy``/``head.b_y`` in one flat dict."""

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden_size: int = 256,
                 num_layers: int = 1, cell: str = "lstm", dropout: float = 0.0, *,
                 dtype=np.float32, seed: int | np.random.Generator | None = None):
        if cell not in CELLS:
            fail("cell", f"one of {tuple(CELLS)}", repr(cell))
        rng = as_rng(seed)
        self.config = {"vocab_size": vocab_size, "embed_dim": embed_dim,
                       "hidden_size": hidden_size, "num_layers": num_layers, "cell": cell,
                       "dropout": dropout}
        self.embed = Embedding(vocab_size, embed_dim, dtype=dtype, seed=rng)
        self.rnn = CELLS[cell](embed_dim, hidden_size, num_layers, dropout=dropout,
                               dtype=dtype, seed=rng)
        self.head = Dense(hidden_size, vocab_size, "identity", dtype=dtype, seed=rng)
        parts = {"embed": self.embed, "rnn": self.rnn, "head": self.head}
        self.params = {f"{p}.{k}": v for p, m in parts.items() for k, v in m.params.items()}
        self.grads = {f"{p}.{k}": v for p, m in parts.items() for k, v in m.grads.items()}

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g[...] = 0

    def forward(self, ids: np.ndarray, state=None, lengths=None, *, training: bool = False,
                rng: np.random.Generator | None = None):
        """ids (N, T) -> logits (N, T, V), final state, cache. `rng` draws dropout masks."""
        x, emb_cache = self.embed.forward(ids)
        h, state, rnn_cache = self.rnn.forward(x, state, lengths, training=training, rng=rng)
        logits, head_cache = self.head.forward(h)
        return logits, state, (emb_cache, rnn_cache, head_cache)

    def backward(self, dlogits: np.ndarray, cache, dstate=None) -> None:
        """Accumulates every parameter gradient into ``grads``; the state gradient is dropped
        (truncated BPTT: the carried state is a constant for this chunk)."""
        emb_cache, rnn_cache, head_cache = cache
        dh = self.head.backward(dlogits, head_cache)
        dx, _ = self.rnn.backward(dh, dstate, rnn_cache)
        self.embed.backward(dx, emb_cache)

    def generate(self, prime: list[int], length: int, *, temperature: float = 1.0,
                 rng: np.random.Generator | None = None) -> list[int]:
        """Feed `prime`, then sample `length` tokens one step at a time from softmax(logits/T)."""
        if not prime:
            fail("prime", "at least one token", "an empty sequence")
        if not temperature > 0:
            fail("temperature", "a positive number", repr(temperature))
        rng = as_rng(rng)
        logits, state, _ = self.forward(np.asarray([prime]))
        out = []
        for _ in range(length):
            z = logits[0, -1].astype(np.float64) / temperature
            p = np.exp(z - z.max())
            token = int(rng.choice(p.size, p=p / p.sum()))
            out.append(token)
            logits, state, _ = self.forward(np.asarray([[token]]), state)
        return out
