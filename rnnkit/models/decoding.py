"""Decoding a Seq2Seq: greedy, sampling (temperature, top-k) and beam search, batched over
sentences.

Each function encodes the batch once, starts every row at ``bos`` and calls the model's
``decode_step`` (one decoder step for all rows), for at most ``max_len`` generated tokens,
the end token included; a row stops at ``eos``. The result, ``Decoded``, holds per sentence
its tokens (without the end token), its score and its attention weights, one row (Ts,) per
generated token, the end token's included (None without attention).

Beam search keeps ``beam`` hypotheses per sentence, all sentences' beams as the rows of one
batch. At every step each sentence's 2 * beam best extensions are ranked by log-probability;
those among the first ``beam`` that end in ``eos`` are finished, and the first ``beam`` that
do not go on (as fairseq does). A sentence is done when its ``beam`` best finished hypotheses
all score at least its best live one (as Hugging Face's); at ``max_len`` the live ones are
finished as they are. The answer is the finished hypothesis
with the best length-normalised score log P / lp(L), lp(L) = ((5 + L) / 6)^alpha (Wu et al.
2016, GNMT; L counts the end token; alpha = 0: no normalisation). With beam = 1 this is
greedy decoding exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnkit.errors import fail


@dataclass
class Decoded:
    tokens: list            # per sentence, a list of token ids without the end token
    scores: np.ndarray      # (N,) log-probability (greedy, sampling) or normalised (beam)
    attention: list         # per sentence (len + 1 if it ended, Ts) weights, or None


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=1, keepdims=True))
    return z


def _check(bos, eos, max_len, V):
    for name, v in (("bos", bos), ("eos", eos)):
        if not isinstance(v, (int, np.integer)) or not 0 <= v < V:
            fail(name, f"a token id in [0, {V - 1}]", repr(v))
    if not isinstance(max_len, (int, np.integer)) or max_len < 1:
        fail("max_len", "a positive integer", repr(max_len))


def greedy(model, src, src_lengths=None, *, bos: int, eos: int, max_len: int) -> Decoded:
    """The most likely token at every step."""
    return _one_path(model, src, src_lengths, bos, eos, max_len,
                     lambda logp: logp.argmax(axis=1))


def sample(model, src, src_lengths=None, *, bos: int, eos: int, max_len: int,
           rng: np.random.Generator, temperature: float = 1.0, top_k: int = 0) -> Decoded:
    """A token drawn at every step from softmax(logits / temperature), restricted to the
    top_k most likely tokens if top_k > 0. ``rng`` is the only source of randomness."""
    if not isinstance(rng, np.random.Generator):
        fail("rng", "a np.random.Generator", type(rng).__name__)
    if not temperature > 0:
        fail("temperature", "a positive number", repr(temperature))
    V = model.head.out_features
    if not isinstance(top_k, (int, np.integer)) or not 0 <= top_k <= V:
        fail("top_k", f"an integer in [0, {V}] (0: all tokens)", repr(top_k))

    def pick(logp):
        z = logp / temperature
        if top_k:
            kth = np.partition(z, V - top_k, axis=1)[:, V - top_k, None]
            z = np.where(z >= kth, z, -np.inf)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        cdf = np.cumsum(p, axis=1)
        u = rng.random(len(z))[:, None] * cdf[:, -1:]
        return np.minimum((cdf <= u).sum(axis=1), V - 1)
    return _one_path(model, src, src_lengths, bos, eos, max_len, pick)


def _one_path(model, src, src_lengths, bos, eos, max_len, pick) -> Decoded:
    with model.frozen():
        return _one_path_frozen(model, src, src_lengths, bos, eos, max_len, pick)


def _one_path_frozen(model, src, src_lengths, bos, eos, max_len, pick) -> Decoded:
    V = model.head.out_features
    _check(bos, eos, max_len, V)
    mem = model.encode(src, src_lengths)
    dstate = model.start(mem)
    N = len(src)
    tokens = np.full(N, bos, np.int64)
    done = np.zeros(N, bool)
    lengths = np.zeros(N, np.int64)             # generated tokens, the end token included
    scores = np.zeros(N)
    out, atts = [], []
    rows = np.arange(N)
    for _ in range(max_len):
        logits, dstate, a = model.decode_step(tokens, dstate, mem)
        logp = _log_softmax(logits)
        tokens = np.where(done, eos, pick(logp))
        scores += np.where(done, 0.0, logp[rows, tokens])
        lengths += ~done
        done |= tokens == eos
        out.append(tokens)
        atts.append(a)
        if done.all():
            break
    out = np.stack(out, axis=1)
    A = None if atts[0] is None else np.stack(atts, axis=1)
    toks = [[int(w) for w in out[n, :lengths[n]]] for n in range(N)]
    toks = [t[:-1] if t and t[-1] == eos else t for t in toks]
    return Decoded(toks, scores, [None if A is None else A[n, :lengths[n]] for n in range(N)])


def beam_search(model, src, src_lengths=None, *, bos: int, eos: int, max_len: int,
                beam: int = 5, alpha: float = 0.6) -> Decoded:
    """Beam search of width ``beam`` with GNMT length normalisation ``alpha``."""
    with model.frozen():
        return _beam_frozen(model, src, src_lengths, bos, eos, max_len, beam, alpha)


def _beam_frozen(model, src, src_lengths, bos, eos, max_len, beam, alpha) -> Decoded:
    V = model.head.out_features
    _check(bos, eos, max_len, V)
    if not isinstance(beam, (int, np.integer)) or beam < 1:
        fail("beam", "a positive integer", repr(beam))
    if not alpha >= 0:
        fail("alpha", "a number >= 0", repr(alpha))
    k = int(beam)
    mem = model.encode(src, src_lengths)
    N = len(src)
    mem = mem.take(np.repeat(np.arange(N), k))          # sentence n's beams: rows n*k ...
    dstate = model.start(mem)
    tokens = np.full(N * k, bos, np.int64)
    scores = np.full((N, k), -np.inf)
    scores[:, 0] = 0.0                  # the beams start identical: expand only the first
    done = np.zeros(N, bool)
    finished = [[] for _ in range(N)]   # (normalised score, step, parent beam, token)
    toks, pars, atts = [], [], []       # per step: tokens and parents (N, k), weights (N, k, Ts)
    lp = (lambda L: ((5.0 + L) / 6.0) ** alpha)
    order = np.arange(2 * k)
    for t in range(max_len):
        logits, dstate, a = model.decode_step(tokens, dstate, mem)
        atts.append(None if a is None else a.reshape(N, k, -1))
        cand = (scores[:, :, None] + _log_softmax(logits).reshape(N, k, V)).reshape(N, k * V)
        m = min(2 * k, k * V)
        idx = np.argpartition(-cand, m - 1, axis=1)[:, :m]
        val = np.take_along_axis(cand, idx, axis=1)
        srt = np.lexsort((idx, -val), axis=1)           # best first, ties by index
        idx, val = np.take_along_axis(idx, srt, axis=1), np.take_along_axis(val, srt, axis=1)
        parent, word = idx // V, idx % V
        is_eos = (word == eos) & np.isfinite(val)
        for n, j in zip(*np.nonzero(is_eos[:, :k] & ~done[:, None])):
            finished[n].append((val[n, j] / lp(t + 1), t, parent[n, j], eos))
        # the first k extensions that do not end go on (at most k of the 2k end)
        go = np.argsort(np.where(word == eos, m + order, order), axis=1, kind="stable")[:, :k]
        parent, word = np.take_along_axis(parent, go, 1), np.take_along_axis(word, go, 1)
        live = np.take_along_axis(val, go, 1)
        done |= np.array([_settled(f, k, live[n].max() / lp(t + 1))
                          for n, f in enumerate(finished)])
        scores = np.where(done[:, None], -np.inf, live)
        toks.append(word)
        pars.append(parent)
        rows = (np.arange(N)[:, None] * k + parent).reshape(-1)
        dstate = _take_dstate(dstate, rows)
        tokens = word.reshape(-1)
        if done.all():
            break
    last = len(toks) - 1
    for n in np.flatnonzero(~done):     # max_len reached: the live beams end as they are
        for j in range(k):
            if np.isfinite(scores[n, j]):
                finished[n].append((scores[n, j] / lp(last + 1), last + 1, j, None))
    out, best_scores, attention = [], np.empty(N), []
    for n in range(N):
        score, t, j, w = max(finished[n], key=lambda f: f[0])
        seq, att = _backtrack(n, t, j, w, toks, pars, atts)
        out.append(seq)
        best_scores[n] = score
        attention.append(att)
    return Decoded(out, best_scores, attention)


def _settled(finished: list, k: int, best_live: float) -> bool:
    """A sentence is done when its k best finished hypotheses all score at least its best
    live one (normalised at the current length, as Hugging Face's beam search). Counting k
    finished ones alone (fairseq) stops too early when the vocabulary is small: with 29
    characters an end token ranks among a sharp distribution's first k continuations at
    every step, so k hopeless endings filled the list before the likely caption ended."""
    return len(finished) >= k and sorted(f[0] for f in finished)[-k] >= best_live


def _backtrack(n, t, p, w, toks, pars, atts):
    """The tokens and weights of the hypothesis whose step-t extension of beam p is w (None:
    beam p after step t - 1 itself, unended)."""
    seq, att = [], []
    if w is not None:
        att.append(None if atts[t] is None else atts[t][n, p])
    for s in range(t - 1, -1, -1):
        seq.append(int(toks[s][n, p]))
        p = pars[s][n, p]
        att.append(None if atts[s] is None else atts[s][n, p])
    seq.reverse()
    att.reverse()
    return seq, (None if atts[0] is None else np.stack(att))


def _take_dstate(dstate, rows):
    state, feed = dstate
    state = tuple(s[:, rows] for s in state) if isinstance(state, tuple) else state[:, rows]
    return state, (None if feed is None else feed[rows])
