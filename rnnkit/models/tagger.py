"""A sequence tagger: one label per word (named entities), many-to-many aligned, bidirectional
(note 001), after Lample et al. 2016:

    c_w   = [h_fwd_last ; h_bwd_last] of a BiLSTM over the characters of word w   (spelling,
            capitalisation, affixes: a representation even for words never seen in training)
    x_t   = dropout([E_word[w_t] ; c_{w_t} ; E_case[casing(w_t)]])
    h_t   = dropout(BiLSTM(x_1..x_T)_t)                      both directions of the sentence
    e_t   = W_hy h_t + b_y                                   per-step tag scores (N, T, K)
    tags  = argmax_k e_t  (output="softmax")   or   Viterbi over e with a CRF (output="crf")

Each distinct word of a batch is spelled once (``TaggerInputs.chars``) and its vector copied
to every place it occurs; backward adds those places' gradients back. The loss
(``Tagger.loss``) is per-token softmax cross-entropy or the CRF's negative log-likelihood,
both averaged over the batch's words; the CRF's parameters are the model's (``crf.*``), so the
loss adds their gradient into ``grads`` (call it between ``zero_grad`` and ``backward``, as the
trainer does).
"""
from __future__ import annotations

import numpy as np

from rnnkit.data.conll import CASINGS, TaggerInputs
from rnnkit.errors import (check_choice, check_float_dtype, check_int, check_number,
                           check_seed, fail)
from rnnkit.init import as_rng
from rnnkit.layers import LSTM, Dense, Embedding
from rnnkit.layers.crf import crf_backward, crf_forward, crf_viterbi, init_crf_params
from rnnkit.layers.dropout import dropout_backward, dropout_forward
from rnnkit.losses import softmax_cross_entropy

OUTPUTS = ("softmax", "crf")


class Tagger:
    """Parameters ``word_embed.E``, ``char_embed.E``, ``char_rnn.*``, ``case_embed.E`` (if
    case_dim), ``rnn.*``, ``head.W_hy``, ``head.b_y`` and ``crf.A``, ``crf.a_start``,
    ``crf.a_end`` (output="crf")."""

    def __init__(self, *, num_words: int, num_chars: int, num_tags: int, word_dim: int = 100,
                 char_dim: int = 25, char_hidden: int = 25, case_dim: int = 0,
                 hidden_size: int = 100, num_layers: int = 1, dropout: float = 0.5,
                 output: str = "crf", dtype: str = "float32",
                 seed: int | np.random.Generator | None = None):
        check_choice("output", output, OUTPUTS)
        check_number("dropout", dropout, 0.0, 1.0, hi_open=True,
                     expected="a probability in [0, 1)")
        for name, value in (("num_words", num_words), ("num_chars", num_chars),
                            ("num_tags", num_tags), ("word_dim", word_dim),
                            ("char_dim", char_dim), ("char_hidden", char_hidden),
                            ("hidden_size", hidden_size), ("num_layers", num_layers)):
            check_int(name, value)
        check_int("case_dim", case_dim, 0)
        dtype = check_float_dtype("dtype", dtype)
        check_seed("seed", seed)
        self.config = {"num_words": num_words, "num_chars": num_chars, "num_tags": num_tags,
                       "word_dim": word_dim, "char_dim": char_dim, "char_hidden": char_hidden,
                       "case_dim": case_dim, "hidden_size": hidden_size,
                       "num_layers": num_layers, "dropout": dropout, "output": output,
                       "dtype": np.dtype(dtype).name}
        rng = as_rng(seed)
        self.dtype, self.output, self.dropout = np.dtype(dtype), output, dropout
        self.word_embed = Embedding(num_words, word_dim, dtype=dtype, seed=rng)
        self.char_embed = Embedding(num_chars, char_dim, dtype=dtype, seed=rng)
        # N(0, 1/D) rather than N(0, 1): unit-variance inputs saturate the LSTMs' gates at
        # the start (Lample et al. scale theirs likewise)
        for embed, dim in ((self.word_embed, word_dim), (self.char_embed, char_dim)):
            embed.params["E"] *= embed.dtype.type(1 / np.sqrt(dim))
        self.char_rnn = LSTM(char_dim, char_hidden, bidirectional=True, dtype=dtype, seed=rng)
        self.case_embed = None
        if case_dim:
            self.case_embed = Embedding(len(CASINGS), case_dim, dtype=dtype, seed=rng)
            self.case_embed.params["E"] *= self.dtype.type(1 / np.sqrt(case_dim))
        d_in = word_dim + 2 * char_hidden + case_dim
        self.rnn = LSTM(d_in, hidden_size, num_layers, bidirectional=True, dtype=dtype,
                        dropout=dropout if num_layers > 1 else 0.0, seed=rng)
        self.head = Dense(2 * hidden_size, num_tags, dtype=dtype, seed=rng)
        parts = {"word_embed": self.word_embed, "char_embed": self.char_embed,
                 "char_rnn": self.char_rnn, "case_embed": self.case_embed, "rnn": self.rnn,
                 "head": self.head}
        parts = {k: v for k, v in parts.items() if v is not None}
        self.params = {f"{p}.{k}": v for p, m in parts.items() for k, v in m.params.items()}
        self.grads = {f"{p}.{k}": v for p, m in parts.items() for k, v in m.grads.items()}
        if output == "crf":
            self.crf = init_crf_params(num_tags, self.dtype)
            self.params.update({f"crf.{k}": v for k, v in self.crf.items()})
            self.grads.update({f"crf.{k}": np.zeros_like(v) for k, v in self.crf.items()})

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g[...] = 0

    # --- dropout, a pair like every operation ------------------------------------------------
    def _dropout(self, x: np.ndarray, training: bool, rng: np.random.Generator):
        return dropout_forward(x, self.dropout, training, rng)

    # --- forward / backward ------------------------------------------------------------------
    def forward(self, inputs: TaggerInputs, state=None, lengths=None, *, training: bool = False,
                rng: np.random.Generator | None = None, grad: bool = True):
        """inputs (TaggerInputs of N sentences of T words) -> (emissions (N, T, K), None, cache).

        `state` is unused (each sentence starts from zeros); grad=False keeps no cache."""
        if not isinstance(inputs, TaggerInputs):
            fail("inputs", "a rnnkit.data.conll.TaggerInputs batch", type(inputs).__name__)
        rng = rng if rng is not None else self.rnn.rng
        N, T = inputs.words.shape
        # the characters of each distinct word -> (U, 2 Hc): final states of both directions
        c_x, c_ids = self.char_embed.forward(inputs.chars)
        _, (c_h, _), c_cache = self.char_rnn.forward(c_x, None, inputs.char_lengths, grad=grad)
        spelled = np.concatenate([c_h[0], c_h[1]], axis=1)                   # (U, 2Hc)
        w_x, w_ids = self.word_embed.forward(inputs.words)                   # (N, T, Dw)
        parts = [w_x, spelled[inputs.char_index]]
        if self.case_embed is not None:
            parts.append(self.case_embed.forward(inputs.cases)[0])
        x, x_mask = self._dropout(np.concatenate(parts, axis=2), training, rng)
        h, _, rnn_cache = self.rnn.forward(x, None, lengths, training=training, rng=rng,
                                           grad=grad)
        h, h_mask = self._dropout(h, training, rng)
        emissions, head_cache = self.head.forward(h)                          # (N, T, K)
        if not grad:
            return emissions, None, None
        return emissions, None, (inputs, c_ids, c_cache, spelled.shape, w_ids, x_mask,
                                 rnn_cache, h_mask, head_cache)

    def backward(self, doutputs: np.ndarray, cache) -> None:
        """dL/demissions (N, T, K) -> accumulates every parameter's gradient into ``grads``."""
        inputs, c_ids, c_cache, spelled_shape, w_ids, x_mask, rnn_cache, h_mask, head_cache \
            = cache
        dh = self.head.backward(doutputs, head_cache)
        dh = dropout_backward(dh, h_mask)
        dx, _ = self.rnn.backward(dh, None, rnn_cache)
        dx = dropout_backward(dx, x_mask)
        Dw, Hc = self.word_embed.embedding_dim, self.char_rnn.hidden_size
        self.word_embed.backward(np.ascontiguousarray(dx[:, :, :Dw]), w_ids)
        if self.case_embed is not None:
            self.case_embed.backward(np.ascontiguousarray(dx[:, :, Dw + 2 * Hc:]), inputs.cases)
        dspelled = np.zeros(spelled_shape, self.dtype)                        # (U, 2Hc)
        np.add.at(dspelled, inputs.char_index.reshape(-1),
                  dx[:, :, Dw:Dw + 2 * Hc].reshape(-1, 2 * Hc))
        dh_n = np.stack([dspelled[:, :Hc], dspelled[:, Hc:]])                # (2, U, Hc)
        dc_x, _ = self.char_rnn.backward(None, (dh_n, np.zeros_like(dh_n)), c_cache)
        self.char_embed.backward(np.ascontiguousarray(dc_x), c_ids)

    # --- loss and decoding -------------------------------------------------------------------
    def loss(self, emissions: np.ndarray, targets: np.ndarray, lengths=None):
        """(emissions (N, T, K), gold tags (N, T), lengths) -> (mean loss per word, dL/demissions).

        output="crf": the CRF's negative log-likelihood summed over the batch and divided by
        its number of words; adds dL/d(crf.*) into ``grads``."""
        if self.output == "softmax":
            return softmax_cross_entropy(emissions, targets, lengths)
        N, T, _ = emissions.shape
        words = N * T if lengths is None else int(np.sum(lengths))
        nll, cache = crf_forward(emissions, targets, lengths, self.crf)
        demissions, grads = crf_backward(np.full(N, 1.0 / words, self.dtype), cache)
        for k, g in grads.items():
            self.grads[f"crf.{k}"] += g
        return float(nll.sum(dtype=np.float64) / words), demissions

    def decode(self, emissions: np.ndarray, lengths) -> np.ndarray:
        """Tag ids (N, T), 0 past each row's end: Viterbi (crf) or per-step argmax (softmax)."""
        if self.output == "crf":
            return crf_viterbi(emissions, lengths, self.crf)
        N, T, _ = emissions.shape
        lens = np.full(N, T) if lengths is None else np.asarray(lengths)
        return np.where(np.arange(T)[None, :] < lens[:, None], emissions.argmax(axis=2), 0)

    def predict(self, inputs: TaggerInputs, lengths) -> np.ndarray:
        emissions, _, _ = self.forward(inputs, None, lengths, grad=False)
        return self.decode(emissions, lengths)
