"""Next-token language model (many-to-many, notes 002/004): Embedding -> RNN/LSTM/GRU -> logits.

    x_t = E[token_t];  h_t = RNN(x_t, h_{t-1});  logits_t = W_hy h_t + b_y
    p(token_{t+1} | tokens_<=t) = softmax(logits_t)

With ``tie_weights=True`` (Press & Wolf 2017) the output matrix is the embedding matrix,
W_hy = E (V, H), which needs embed_dim == hidden_size: one (V, H) parameter "embed.E" serves
both, and its gradient is the sum of its two uses (the head's dW_hy and the embedding's
scattered rows accumulate into the same array). It starts from the head's initialisation,
U(-1/sqrt(H), 1/sqrt(H)): the embedding's N(0, 1) would make the first logits ~sqrt(H) wide.
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import check_ids, check_int, check_number, check_rng, fail
from rnnkit.init import as_rng
from rnnkit.models.sequence_model import SequenceModel


class LanguageModel(SequenceModel):
    """A SequenceModel with token inputs and per-step logits over the same vocabulary."""

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden_size: int = 256,
                 num_layers: int = 1, cell: str = "lstm", dropout: float = 0.0, *,
                 tie_weights: bool = False, dtype=np.float32,
                 seed: int | np.random.Generator | None = None):
        if tie_weights and embed_dim != hidden_size:
            fail("embed_dim", f"hidden_size = {hidden_size} with tie_weights (W_hy = E)",
                 repr(embed_dim))
        super().__init__(vocab_size=vocab_size, embed_dim=embed_dim, hidden_size=hidden_size,
                         num_layers=num_layers, cell=cell, dropout=dropout,
                         output_size=vocab_size, readout="steps", dtype=dtype, seed=seed)
        self.config = {"vocab_size": vocab_size, "embed_dim": embed_dim,
                       "hidden_size": hidden_size, "num_layers": num_layers, "cell": cell,
                       "dropout": dropout}
        if tie_weights:         # (the key only when set: untied runs' saved configs stay valid)
            self.config["tie_weights"] = True
            self.embed.params["E"] = self.head.params["W_hy"]
            self.embed.grads["E"] = self.head.grads["W_hy"]
            self.params = {k: v for k, v in self.params.items() if k != "head.W_hy"}
            self.grads = {k: v for k, v in self.grads.items() if k != "head.W_hy"}
            self.params["embed.E"], self.grads["embed.E"] = self.embed.params["E"], \
                self.embed.grads["E"]

    @property
    def tied(self) -> bool:
        return self.embed.params["E"] is self.head.params["W_hy"]

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
