"""Encoder-decoder (many-to-many translation, one-to-many captioning), with attention.

    k_s = Encoder(E_src[x_s])                       any stack, bidirectional, lengths
    s_0 = encoder's final state  or  tanh(W_b [final top states] + b_b)  (the bridge)
          or tanh(W_b f + b_b) for a feature vector f (one-to-many: an image encoding)
    s_t = Decoder([E_tgt[y_{t-1}]; c_t if additive; h~_{t-1} if input feeding], s_{t-1})
    c_t = sum_s a_ts k_s,  a_t = softmax_s score(q_t, k_s), masked by the source lengths
          q_t = s_t (Luong: dot, general), q_t = s_{t-1} (Bahdanau: additive)
    h~_t = tanh(W_c [c_t; s_t] + b_c)   (h~_t = s_t without attention)
    logits_t = W_hy h~_t + b_y         one matrix product over all steps

Training is teacher forcing: the target's input y_{<t} is given (``tgt_in``, usually the
target shifted right behind a start token). Without input feeding, Luong attention and no
attention run the decoder over the whole target in one call; additive attention and input
feeding need each step's output before the next step's input, so the decoder layer is called
once per step (T = 1) and the steps' caches are backpropagated in reverse, carrying the state
gradient. The head runs on the valid target steps only: logits at padded steps are 0.
``dropout`` (training only) masks both embeddings' outputs, the input of each stacked layer
after the first, and h~ before the head: the places Zaremba et al. (2014) and OpenNMT drop.

Parameters: ``src_embed.E``, ``enc.l{k}[_reverse].*``, ``bridge.h.*`` [``bridge.c.*`` for an
LSTM] (rnnkit.layers.bridge), ``tgt_embed.E``, ``dec.l{k}.*``, ``attn.*`` (W_q, W_k, v /
W_a), ``combine.*`` (W_c, b_c as a Dense's W_hy, b_y), ``head.W_hy``, ``head.b_y``.
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager

import numpy as np

from rnnkit import cells
from rnnkit.errors import check_array, check_lengths, fail
from rnnkit.init import as_rng
from rnnkit.layers import BY_CELL, Dense, Embedding
from rnnkit.layers.attention import Attention, source_mask
from rnnkit.layers.bridge import Bridge
from rnnkit.layers.dropout import dropout_backward, dropout_forward

CELLS = BY_CELL
ATTENTIONS = ("none", "additive", "dot", "general")


class Memory:
    """What the decoder reads of one encoded batch: keys (N, Ts, K), their projection, the
    source mask (N, Ts) and the decoder's initial state. ``take`` picks rows (beam search)."""

    def __init__(self, keys, pk, mask, state0):
        self.keys, self.pk, self.mask, self.state0 = keys, pk, mask, state0

    def take(self, rows: np.ndarray) -> "Memory":
        pick = (lambda a: None if a is None else a[rows])
        return Memory(pick(self.keys), pick(self.pk), pick(self.mask),
                      take_state(self.state0, rows))


def take_state(state, rows: np.ndarray):
    """Rows of a recurrent state (layers, N, H) or an LSTM's (h, c)."""
    if isinstance(state, tuple):
        return tuple(s[:, rows] for s in state)
    return state[:, rows]


def _top(state) -> np.ndarray:
    return (state[0] if isinstance(state, tuple) else state)[-1]


def _dtanh(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    return dy * (1 - y * y)


class Seq2Seq:
    """Source ids (src_vocab > 0) or a feature vector (feature_size > 0) -> target logits."""

    def __init__(self, *, tgt_vocab: int, src_vocab: int = 0, feature_size: int = 0,
                 embed_dim: int = 64, hidden_size: int = 128, num_layers: int = 1,
                 bidirectional: bool = False, dec_hidden_size: int | None = None,
                 dec_layers: int | None = None, cell: str = "lstm", attention: str = "none",
                 attn_size: int | None = None, input_feeding: bool = False,
                 bridge: bool | None = None, dropout: float = 0.0, dtype: str = "float32",
                 seed: int | np.random.Generator | None = None):
        if cell not in CELLS:
            fail("cell", f"one of {tuple(CELLS)}", repr(cell))
        if attention not in ATTENTIONS:
            fail("attention", f"one of {ATTENTIONS}", repr(attention))
        if (src_vocab > 0) == (feature_size > 0):
            fail("src_vocab/feature_size", "exactly one of them > 0 (source ids or a feature "
                 "vector)", f"src_vocab={src_vocab}, feature_size={feature_size}")
        if feature_size and (attention != "none" or input_feeding):
            fail("attention", "'none' without input feeding for a feature-vector source "
                 "(there is no sequence to attend to)", repr(attention))
        if not isinstance(tgt_vocab, (int, np.integer)) or tgt_vocab < 1:
            fail("tgt_vocab", "a positive integer", repr(tgt_vocab))
        Hd = dec_hidden_size or hidden_size
        Ld = dec_layers or num_layers
        dirs = 2 if bidirectional else 1
        needed = bool(feature_size) or dirs == 2 or Hd != hidden_size or Ld != num_layers
        if bridge is False and needed:
            fail("bridge", "True or None when the decoder's state cannot take the encoder's "
                 "(a feature source, a bidirectional encoder, or other sizes)", False)
        self.config = {"tgt_vocab": tgt_vocab, "src_vocab": src_vocab,
                       "feature_size": feature_size, "embed_dim": embed_dim,
                       "hidden_size": hidden_size, "num_layers": num_layers,
                       "bidirectional": bidirectional, "dec_hidden_size": Hd, "dec_layers": Ld,
                       "cell": cell, "attention": attention, "attn_size": attn_size,
                       "input_feeding": input_feeding, "bridge": bool(needed or bridge),
                       "dropout": dropout, "dtype": np.dtype(dtype).name}
        rng = as_rng(seed)
        self.dtype = np.dtype(dtype)
        self.attention, self.input_feeding, self.dropout = attention, input_feeding, dropout
        self.hidden, self.layers = Hd, Ld
        kw = dict(dtype=dtype, seed=rng)
        parts = {}
        K = dirs * hidden_size                  # the encoder's output size: the keys'
        if src_vocab:
            parts["src_embed"] = Embedding(src_vocab, embed_dim, **kw)
            parts["enc"] = CELLS[cell](embed_dim, hidden_size, num_layers,
                                       bidirectional=bidirectional, dropout=dropout, **kw)
        if self.config["bridge"]:
            parts["bridge"] = Bridge(feature_size or K, Ld, Hd,
                                     cells.get(cell).has_cell_state, **kw)
        parts["tgt_embed"] = Embedding(tgt_vocab, embed_dim, **kw)
        d_in = embed_dim + (K if attention == "additive" else 0) + (Hd if input_feeding else 0)
        parts["dec"] = CELLS[cell](d_in, Hd, Ld, dropout=dropout, **kw)
        if attention != "none":
            parts["attn"] = Attention(attention, Hd, K, attn_size, **kw)
            parts["combine"] = Dense(K + Hd, Hd, **kw)
        parts["head"] = Dense(Hd, tgt_vocab, **kw)
        for name, part in parts.items():
            setattr(self, name, part)
        self.parts = parts
        self.stepped = attention == "additive" or input_feeding
        self.params = {f"{p}.{k}": v for p, m in parts.items() for k, v in m.params.items()}
        self.grads = {f"{p}.{k}": v for p, m in parts.items() for k, v in m.grads.items()}

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g[...] = 0

    # -- source side -----------------------------------------------------------------------
    def _encode(self, src, src_lengths, training, rng, grad):
        """-> (Memory, cache)."""
        if self.config["feature_size"]:
            f = check_array("src", src, ndim=2, shape=(None, self.config["feature_size"]),
                            dtype=self.dtype, layout="(N, F) features")
            state0, bcache = self.bridge.forward(f, f)
            return Memory(None, None, None, state0), ("features", bcache)
        ids = np.asarray(src)
        if ids.ndim != 2 or ids.shape[1] == 0:
            fail("src", "a 2-d array (N, Ts) of token ids with Ts >= 1", f"shape {ids.shape}")
        x, ecache = self.src_embed.forward(ids)
        x, xmask = dropout_forward(x, self.dropout, training, rng)
        keys, enc_state, enc_cache = self.enc.forward(x, None, src_lengths, training=training,
                                                      rng=rng, grad=grad)
        keys = np.ascontiguousarray(keys)               # (N, Ts, K), read at every step
        if self.config["bridge"]:
            dirs = self.enc.dirs
            h, c = enc_state if isinstance(enc_state, tuple) else (enc_state, None)
            top = (lambda s: np.concatenate(list(s[-dirs:]), axis=1))      # (N, dirs*H)
            state0, bcache = self.bridge.forward(top(h), None if c is None else top(c))
        else:
            state0, bcache = enc_state, None
        pk = mask = None
        if self.attention != "none":
            mask = source_mask(src_lengths, *ids.shape)
            pk = self.attn.project(keys)
        return Memory(keys, pk, mask, state0), ("ids", ecache, xmask, enc_cache, bcache)

    # -- one decoder step (teacher-forced training when stepped, and all decoding) -----------
    def _step(self, emb_t, state, feed, mem: Memory, training, rng, grad):
        """emb_t (N, E), state s_{t-1}, feed h~_{t-1} or None -> (h~_t, s_t, a_t, cache)."""
        parts, a, acache = [emb_t], None, None
        if self.attention == "additive":            # Bahdanau: query s_{t-1}, c_t an input
            ctx, a, acache = self.attn.attend(_top(state)[:, None], mem.keys, mem.pk, mem.mask)
            parts.append(ctx[:, 0])
        if feed is not None:
            parts.append(feed)
        x = np.concatenate(parts, axis=1)[:, None] if len(parts) > 1 else emb_t[:, None]
        out, state, dcache = self.dec.forward(x, state, None, training=training, rng=rng,
                                              grad=grad)
        s = out[:, 0]
        h, ccache = s, None
        if self.attention != "none":
            if self.attention != "additive":        # Luong: query s_t
                ctx, a, acache = self.attn.attend(s[:, None], mem.keys, mem.pk, mem.mask)
            z, ccache = self.combine.forward(np.concatenate([ctx[:, 0], s], axis=1))
            h = np.tanh(z)
        return h, state, (None if a is None else a[:, 0]), (dcache, acache, ccache, h)

    def _step_backward(self, dh, dstate, cache, dkeys, dpk):
        """dL/dh~_t, dL/ds_t (carried) -> (d emb_t, d feed, dL/ds_{t-1}); adds into dkeys, dpk."""
        dcache, acache, ccache, h = cache
        K = self.combine.in_features - self.hidden if self.attention != "none" else 0
        ds = dh
        if self.attention != "none":
            dcat = self.combine.backward(_dtanh(dh, h), ccache)
            dctx, ds = dcat[:, :K], dcat[:, K:]
            if self.attention != "additive":
                ds = ds + self._attend_backward(dctx, acache, dkeys, dpk)
        dx, dstate = self.dec.backward(ds[:, None], dstate, dcache)
        dx = dx[:, 0]
        E = self.tgt_embed.embedding_dim
        demb, rest = dx[:, :E], dx[:, E:]
        if self.attention == "additive":
            dq = self._attend_backward(rest[:, :K] + dctx, acache, dkeys, dpk)
            (dstate[0] if isinstance(dstate, tuple) else dstate)[-1] += dq
            rest = rest[:, K:]
        return demb, (rest if self.input_feeding else None), dstate

    def _attend_backward(self, dctx, acache, dkeys, dpk):
        dq, dk, dp = self.attn.attend_backward(dctx[:, None], acache)
        dkeys += dk
        dpk += dp
        return dq[:, 0]

    # -- the model -------------------------------------------------------------------------
    def forward(self, inputs, state=None, lengths=None, *, training: bool = False,
                rng: np.random.Generator | None = None, grad: bool = True):
        """inputs (src, tgt_in): src (N, Ts) ids or (N, F) features, tgt_in (N, Tt) ids (the
        target shifted right); lengths None or (src_lengths, tgt_lengths), each None or (N,).
        -> (logits (N, Tt, V), the decoder's final state (at each row's last target step),
        cache); ``cache["attention"]`` holds the weights (N, Tt, Ts) for inspection (None
        without attention). ``state`` must be None: the decoder starts from the source."""
        if state is not None:
            fail("state", "None (the decoder starts from the encoded source)",
                 type(state).__name__)
        src, tgt_in = _pair("inputs", inputs, "(src, tgt_in)")
        src_lengths, tgt_lengths = _pair("lengths", lengths, "(src_lengths, tgt_lengths)")
        tgt = np.asarray(tgt_in)
        if tgt.ndim != 2 or tgt.shape[1] == 0:
            fail("tgt_in", "a 2-d array (N, Tt) of token ids with Tt >= 1", f"shape {tgt.shape}")
        N, Tt = tgt.shape
        if np.ndim(src) == 0 or np.shape(src)[0] != N:
            fail("src", f"{N} rows (as tgt_in)", f"shape {np.shape(src)}")
        if tgt_lengths is not None:
            tgt_lengths = check_lengths(tgt_lengths, N, Tt)
        mem, enc_cache = self._encode(src, src_lengths, training, rng, grad)
        emb, tcache = self.tgt_embed.forward(tgt)
        emb, emask = dropout_forward(emb, self.dropout, training, rng)
        if self.stepped:
            H, A, state, steps = self._run_steps(emb, mem, tgt_lengths, training, rng, grad)
            dec = ("steps", steps)
        else:
            H, A, state, dec = self._run_whole(emb, mem, tgt_lengths, training, rng, grad)
        H, hmask = dropout_forward(H, self.dropout, training, rng)
        logits, hcache = self._head_forward(H, tgt_lengths)
        if not grad:
            return logits, state, None
        return logits, state, {"enc": enc_cache, "mem": mem, "tgt": tcache, "dec": dec,
                               "head": hcache, "attention": A, "masks": (emask, hmask)}

    def _head_forward(self, H, tgt_lengths):
        """logits = W_hy h~ + b_y as one product over the valid steps only: padded target
        steps (about a third of a batch of sentences of 10-25 words) get logits 0."""
        N, Tt, _ = H.shape
        valid = None if tgt_lengths is None else np.arange(Tt)[None, :] < tgt_lengths[:, None]
        if valid is None or valid.all():
            logits, hcache = self.head.forward(H)
            return logits, (None, hcache)
        rows, hcache = self.head.forward(H[valid])                      # (valid, V)
        logits = np.empty((N, Tt, rows.shape[1]), self.dtype)
        logits[valid] = rows
        logits[~valid] = 0
        return logits, (valid, hcache)

    def _head_backward(self, dlogits, cache):
        valid, hcache = cache
        if valid is None:
            return self.head.backward(dlogits, hcache)
        dlogits = check_array("dlogits", dlogits, ndim=3, shape=valid.shape + (None,),
                              dtype=self.dtype, layout="(N, Tt, V)")
        drows = self.head.backward(dlogits[valid], hcache)
        dH = np.zeros(valid.shape + (drows.shape[1],), self.dtype)
        dH[valid] = drows
        return dH

    def _run_whole(self, emb, mem, tgt_lengths, training, rng, grad):
        S, state, dcache = self.dec.forward(emb, mem.state0, tgt_lengths, training=training,
                                            rng=rng, grad=grad)
        if self.attention == "none":
            return S, None, state, ("whole", dcache, None, None, S)
        S = np.ascontiguousarray(S)
        ctx, A, acache = self.attn.attend(S, mem.keys, mem.pk, mem.mask)
        z, ccache = self.combine.forward(np.concatenate([ctx, S], axis=2))
        H = np.tanh(z)
        return H, A, state, ("whole", dcache, acache, ccache, H)

    def _run_steps(self, emb, mem, tgt_lengths, training, rng, grad):
        N, Tt, _ = emb.shape
        H = np.empty((N, Tt, self.hidden), self.dtype)
        A = None if self.attention == "none" else np.empty((N, Tt, mem.keys.shape[1]), self.dtype)
        state = mem.state0
        feed = np.zeros((N, self.hidden), self.dtype) if self.input_feeding else None
        final = None if tgt_lengths is None else _copy_state(state)
        steps = []
        for t in range(Tt):
            h, state, a, cache = self._step(emb[:, t], state, feed, mem, training, rng, grad)
            H[:, t] = h
            if A is not None:
                A[:, t] = a
            feed = h if self.input_feeding else None
            steps.append(cache)
            if tgt_lengths is not None:         # each row's final state at its own last step
                rows = np.flatnonzero(tgt_lengths == t + 1)
                for f, s in zip(*((final, state) if isinstance(state, tuple) else
                                  ((final,), (state,)))):
                    f[:, rows] = s[:, rows]
        return H, A, (state if tgt_lengths is None else final), steps

    def backward(self, dlogits: np.ndarray, cache) -> np.ndarray | None:
        """dL/dlogits (N, Tt, V) -> accumulates every parameter's gradient; returns
        dL/d(features) for a feature source (None for source ids)."""
        if not isinstance(cache, dict):
            fail("cache", "the cache of a forward(..., grad=True)", type(cache).__name__)
        mem, dec = cache["mem"], cache["dec"]
        emask, hmask = cache["masks"]
        dH = dropout_backward(self._head_backward(dlogits, cache["head"]), hmask)
        dkeys = dpk = None
        if self.attention != "none":
            dkeys, dpk = np.zeros_like(mem.keys), np.zeros_like(mem.pk)
        if dec[0] == "steps":
            demb = np.empty(dH.shape[:2] + (self.tgt_embed.embedding_dim,), self.dtype)
            dstate, dfeed = None, None
            for t in range(dH.shape[1] - 1, -1, -1):
                dh = dH[:, t] if dfeed is None else dH[:, t] + dfeed
                demb[:, t], dfeed, dstate = self._step_backward(dh, dstate, dec[1][t], dkeys, dpk)
            dstate0 = dstate
        else:
            _, dcache, acache, ccache, H = dec
            dS = dH
            if self.attention != "none":
                dcat = self.combine.backward(_dtanh(dH, H), ccache)
                K = mem.keys.shape[2]
                dctx, dS = dcat[..., :K], dcat[..., K:]
                dq, dk, dp = self.attn.attend_backward(np.ascontiguousarray(dctx), acache)
                dS = dS + dq
                dkeys += dk
                dpk += dp
            demb, dstate0 = self.dec.backward(dS, None, dcache)
        self.tgt_embed.backward(dropout_backward(demb, emask), cache["tgt"])
        return self._encoder_backward(cache["enc"], mem, dstate0, dkeys, dpk)

    def _encoder_backward(self, enc, mem, dstate0, dkeys, dpk):
        if enc[0] == "features":
            grads = self.bridge.backward(dstate0, enc[1])
            return grads[0] if len(grads) == 1 else grads[0] + grads[1]
        _, ecache, xmask, enc_cache, bcache = enc
        if dkeys is not None:
            dkeys += self.attn.project_backward(dpk, mem.keys)
        if bcache is None:
            dstate = dstate0
        else:                   # the bridge read the top layer's final state(s)
            dirs, He = self.enc.dirs, self.enc.hidden_size
            shape = (self.enc.num_layers * dirs, _rows(dstate0), He)
            ds = []
            for g in self.bridge.backward(dstate0, bcache):
                d = np.zeros(shape, self.dtype)
                for k in range(dirs):
                    d[len(d) - dirs + k] = g[:, k * He:(k + 1) * He]
                ds.append(d)
            dstate = tuple(ds) if len(ds) == 2 else ds[0]
        dx, _ = self.enc.backward(dkeys, dstate, enc_cache)
        self.src_embed.backward(dropout_backward(dx, xmask), ecache)
        return None

    # -- decoding (rnnkit.models.decoding drives these) ------------------------------------
    @contextmanager
    def frozen(self):
        """The recurrent layers' ``frozen``: within it, inference compares the weights it keeps
        laid out with the parameters once, not at every decoder step."""
        with ExitStack() as stack:
            for name in ("enc", "dec"):
                if name in self.parts:
                    stack.enter_context(self.parts[name].frozen())
            yield self

    def encode(self, src, src_lengths=None) -> Memory:
        """Inference: the source's Memory (keys, mask, the decoder's initial state)."""
        return self._encode(src, src_lengths, False, None, False)[0]

    def start(self, mem: Memory):
        """The decoder's state before its first token: (recurrent state, h~ fed or None)."""
        N = _rows(mem.state0)
        feed = np.zeros((N, self.hidden), self.dtype) if self.input_feeding else None
        return mem.state0, feed

    def decode_step(self, tokens: np.ndarray, dstate, mem: Memory):
        """tokens (M,) -> (logits (M, V), next decoder state, attention weights (M, Ts) or None)."""
        emb, _ = self.tgt_embed.forward(tokens)
        state, feed = dstate
        h, state, a, _ = self._step(emb, state, feed, mem, False, None, False)
        logits, _ = self.head.forward(h)
        return logits, (state, h if self.input_feeding else None), a


def _rows(state) -> int:
    return (state[0] if isinstance(state, tuple) else state).shape[1]


def _copy_state(state):
    return tuple(s.copy() for s in state) if isinstance(state, tuple) else state.copy()


def _pair(name: str, value, layout: str):
    if value is None and name == "lengths":
        return None, None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        fail(name, f"a pair {layout}", type(value).__name__)
    return value
