"""Attention over a source sequence, masked by its lengths, with an explicit backward.

Queries q (N, Tq, Hq) against keys k (N, Ts, Hk) (the encoder's outputs, also the values):

    additive  (Bahdanau et al. 2015)  score(q, k) = v^T tanh(W_q q + W_k k)
    dot       (Luong et al. 2015)     score(q, k) = q . k          (Hq == Hk)
    general   (Luong et al. 2015)     score(q, k) = q^T W_a k
    a = softmax over the source steps of the scores, c = sum_s a_s k_s   (weights, context)

Source steps at or past a row's length get score -inf, so their weight is exactly 0 (exp of
-inf), not merely small, and no gradient reaches them. All Tq queries are scored in one
batched product; a decoder stepping one token at a time calls ``attend`` with Tq = 1.

The key side of each score (W_k k, W_a k) does not depend on the query, so it is made once
per source (``project``) and shared by every target step: ``forward`` = ``project`` then
``attend``, and ``backward`` = ``attend_backward`` then ``project_backward``. A stepping
decoder adds the steps' dkeys and dpk up and calls ``project_backward`` once.

Parameters (flat dict, grads with the same names): additive ``W_q`` (A, Hq), ``W_k`` (A, Hk),
``v`` (A,); general ``W_a`` (Hq, Hk); dot none.
"""
from __future__ import annotations

import numpy as np

from rnnkit import blas
from rnnkit.errors import (check_array, check_choice, check_float_dtype, check_int,
                           check_lengths, check_param_count, check_seed, fail)
from rnnkit.init import as_rng

KINDS = ("additive", "dot", "general")


def source_mask(lengths, N: int, Ts: int) -> np.ndarray:
    """(N, Ts) booleans, True at each row's valid source steps (all True without lengths)."""
    if lengths is None:
        return np.ones((N, Ts), bool)
    lens = check_lengths(lengths, N, Ts)
    return np.arange(Ts)[None, :] < lens[:, None]


def masked_softmax(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """softmax over the last axis of scores (N, Tq, Ts), exactly 0 where mask (N, Ts) is False."""
    s = np.where(mask[:, None, :], scores, -np.inf)
    s -= s.max(axis=-1, keepdims=True)      # every row has a valid step (lengths >= 1)
    np.exp(s, out=s)
    s /= s.sum(axis=-1, keepdims=True)
    return s


class Attention:
    """One attention score, its parameters and gradients; ``attn_size`` A for additive only."""

    def __init__(self, kind: str, query_size: int, key_size: int, attn_size: int | None = None,
                 *, dtype=np.float32, seed: int | np.random.Generator | None = None):
        check_choice("kind", kind, KINDS)
        check_int("query_size", query_size)
        check_int("key_size", key_size)
        if attn_size is not None:
            check_int("attn_size", attn_size)
        sizes = {"query_size": query_size, "key_size": key_size, "attn_size": attn_size or 0}
        check_param_count(max(sizes, key=sizes.get),
                          (query_size + key_size + 1) * max(attn_size or query_size, key_size))
        dtype = check_float_dtype("dtype", dtype)
        check_seed("seed", seed)
        if kind == "dot" and query_size != key_size:
            fail("key_size", f"{query_size} (dot attention needs query_size == key_size)",
                 key_size)
        self.kind, self.query_size, self.key_size = kind, query_size, key_size
        self.attn_size = attn_size or query_size
        self.dtype = np.dtype(dtype)
        rng = as_rng(seed)
        if kind == "additive":          # U(-1/sqrt(fan_in), ...) as torch.nn.Linear
            A = self.attn_size
            self.params = {"W_q": _uniform(rng, (A, query_size), query_size, self.dtype),
                           "W_k": _uniform(rng, (A, key_size), key_size, self.dtype),
                           "v": _uniform(rng, (A,), A, self.dtype)}
        elif kind == "general":
            self.params = {"W_a": _uniform(rng, (query_size, key_size), key_size, self.dtype)}
        else:
            self.params = {}
        self.grads = {k: np.zeros_like(p) for k, p in self.params.items()}

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g[...] = 0

    # -- the whole thing -----------------------------------------------------------------
    def forward(self, q: np.ndarray, keys: np.ndarray, lengths=None):
        """q (N, Tq, Hq), keys (N, Ts, Hk), lengths (N,) of the source -> (context (N, Tq, Hk),
        weights (N, Tq, Ts), cache)."""
        keys = check_array("keys", keys, ndim=3, shape=(None, None, self.key_size),
                           dtype=self.dtype, layout="(N, Ts, Hk)")
        N, Ts, _ = keys.shape
        if N == 0 or Ts == 0:
            fail("keys", "at least one batch row and one source step", f"shape {keys.shape}")
        q = check_array("q", q, ndim=3, shape=(N, None, self.query_size), dtype=self.dtype,
                        layout="(N, Tq, Hq)")
        if q.shape[1] == 0:
            fail("q", "at least one query step", f"shape {q.shape}")
        mask = source_mask(lengths, N, Ts)
        pk = self.project(keys)
        context, weights, cache = self.attend(q, keys, pk, mask)
        return context, weights, cache

    def backward(self, dcontext: np.ndarray, cache, dweights: np.ndarray | None = None):
        """dL/dcontext (and optionally dL/dweights) -> (dq, dkeys); adds into ``grads``."""
        dq, dkeys, dpk = self.attend_backward(dcontext, cache, dweights)
        dkeys += self.project_backward(dpk, cache["keys"])
        return dq, dkeys

    # -- the key side, once per source -----------------------------------------------------
    def project(self, keys: np.ndarray) -> np.ndarray:
        """keys (N, Ts, Hk) -> what each query is scored against: W_k k (additive, (N, Ts, A)),
        W_a k (general, (N, Ts, Hq)) or k itself (dot)."""
        if self.kind == "dot":
            return keys
        return _times(keys, self.params["W_k" if self.kind == "additive" else "W_a"].T)

    def project_backward(self, dpk: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """dL/d(project(keys)) -> dL/dkeys; adds dW_k or dW_a into ``grads``."""
        if self.kind == "dot":
            return dpk.copy()
        name = "W_k" if self.kind == "additive" else "W_a"
        Hk = keys.shape[-1]
        blas.matmul(dpk.reshape(-1, dpk.shape[-1]).T, keys.reshape(-1, Hk), self.grads[name],
                    accumulate=True)
        return _times(dpk, self.params[name])

    # -- the query side, per target step or for all at once ---------------------------------
    def attend(self, q: np.ndarray, keys: np.ndarray, pk: np.ndarray, mask: np.ndarray):
        """q (N, Tq, Hq), keys (N, Ts, Hk), pk = project(keys), mask (N, Ts) ->
        (context (N, Tq, Hk), weights (N, Tq, Ts), cache)."""
        if self.kind == "additive":
            pq = _times(q, self.params["W_q"].T)                        # (N, Tq, A)
            e = np.tanh(pq[:, :, None, :] + pk[:, None, :, :])          # (N, Tq, Ts, A)
            scores = (e.reshape(-1, e.shape[-1]) @ self.params["v"]).reshape(e.shape[:-1])
        else:
            e = None
            scores = q @ pk.transpose(0, 2, 1)                          # (N, Tq, Ts)
        a = masked_softmax(scores, mask)
        context = a @ keys                                              # (N, Tq, Hk)
        return context, a, {"q": q, "keys": keys, "pk": pk, "a": a, "e": e}

    def attend_backward(self, dcontext: np.ndarray, cache, dweights: np.ndarray | None = None):
        """dL/dcontext (N, Tq, Hk) [+ dL/dweights] -> (dq, dkeys, dpk): dkeys is the gradient
        through the values only; dpk goes to ``project_backward``."""
        q, keys, pk, a, e = (cache[k] for k in ("q", "keys", "pk", "a", "e"))
        dcontext = check_array("dcontext", dcontext, ndim=3, shape=q.shape[:2] + keys.shape[2:],
                               dtype=self.dtype, layout="(N, Tq, Hk)")
        da = dcontext @ keys.transpose(0, 2, 1)                         # (N, Tq, Ts)
        if dweights is not None:
            da = da + dweights
        dkeys = a.transpose(0, 2, 1) @ dcontext                         # (N, Ts, Hk)
        ds = a * (da - (da * a).sum(axis=-1, keepdims=True))            # 0 where a is 0
        if self.kind == "additive":
            v, W_q = self.params["v"], self.params["W_q"]
            A = v.shape[0]
            self.grads["v"] += np.tensordot(ds, e, axes=([0, 1, 2], [0, 1, 2]))
            dz = ds[..., None] * v * (1 - e * e)                         # (N, Tq, Ts, A)
            dpq, dpk = dz.sum(axis=2), dz.sum(axis=1)                   # (N, Tq, A), (N, Ts, A)
            blas.matmul(dpq.reshape(-1, A).T, q.reshape(-1, q.shape[-1]), self.grads["W_q"],
                        accumulate=True)
            dq = _times(dpq, W_q)
        else:
            dq = ds @ pk                                                # (N, Tq, Hq)
            dpk = ds.transpose(0, 2, 1) @ q                             # (N, Ts, Hq)
        return dq, dkeys, dpk


def _times(x: np.ndarray, W: np.ndarray) -> np.ndarray:
    """x (N, T, a) @ W (a, b) as one 2-d product (NumPy's stacked matmul with a broadcast
    weight took a loop without BLAS: 3 s for 64 x 25 x 512 @ 512 x 512)."""
    x2 = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    return blas.matmul(x2, W).reshape(x.shape[:-1] + (W.shape[1],))


def _uniform(rng, shape: tuple, fan_in: int, dtype) -> np.ndarray:
    k = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-k, k, shape).astype(dtype)
