"""Next-token language model (many-to-many, notes 002/004): Embedding -> RNN/LSTM/GRU -> logits.

    x_t = E[token_t];  h_t = RNN(x_t, h_{t-1});  logits_t = W_hy h_t + b_y
    p(token_{t+1} | tokens_<=t) = softmax(logits_t)
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import check_ids, check_int, check_number, check_rng
from rnnkit.init import as_rng
from rnnkit.models.sequence_model import SequenceModel


class LanguageModel(SequenceModel):
    """A SequenceModel with token inputs and per-step logits over the same vocabulary."""

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden_size: int = 256,
                 num_layers: int = 1, cell: str = "lstm", dropout: float = 0.0, *,
                 dtype=np.float32, seed: int | np.random.Generator | None = None):
        super().__init__(vocab_size=vocab_size, embed_dim=embed_dim, hidden_size=hidden_size,
                         num_layers=num_layers, cell=cell, dropout=dropout,
                         output_size=vocab_size, readout="steps", dtype=dtype, seed=seed)
        self.config = {"vocab_size": vocab_size, "embed_dim": embed_dim,
                       "hidden_size": hidden_size, "num_layers": num_layers, "cell": cell,
                       "dropout": dropout}

    def generate(self, prime: list[int], length: int, *, temperature: float = 1.0,
                 rng: np.random.Generator | None = None) -> list[int]:
        """Feed `prime`, then sample `length` tokens one step at a time from softmax(logits/T)."""
        prime = check_ids("prime", prime, self.embed.num_embeddings, ndim=1)
        check_int("length", length, 0)
        temperature = check_number("temperature", temperature, 0, lo_open=True)
        rng = as_rng(check_rng("rng", rng))
        with self.rnn.frozen():         # the weights are compared once, not once a token
            logits, state, _ = self.forward(prime[None], grad=False)
            step = self.stepper(state)          # (the state carried inside, from the prime)
            z, out = logits[0, -1], []
            for _ in range(length):
                z = z.astype(np.float64) / temperature
                p = np.exp(z - z.max())
                token = int(rng.choice(p.size, p=p / p.sum()))
                out.append(token)
                z = step(np.asarray([token]))[0]
        return out
