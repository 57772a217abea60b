"""A linear-chain conditional random field over per-step tag scores (Lafferty et al. 2001;
the output layer of Lample et al. 2016's BiLSTM-CRF tagger).

For a row of length L with emissions E (L, K) and tags y_0..y_{L-1}, the score of the path is

    s(y) = a_start[y_0] + sum_t E[t, y_t] + sum_{t>0} A[y_{t-1}, y_t] + a_end[y_{L-1}]

and p(y | E) = exp s(y) / Z with Z the sum over all K^L paths. The loss is the negative
log-likelihood log Z - s(y_gold), with log Z from the forward algorithm in log space:

    alpha_0 = a_start + E[0];   alpha_t[j] = logsumexp_i(alpha_{t-1}[i] + A[i, j]) + E[t, j]
    log Z = logsumexp_j(alpha_{L-1}[j] + a_end[j])

Its gradient is "expected counts minus gold counts": the marginals p(y_t = k) and
p(y_{t-1} = i, y_t = j) come from alpha and the backward recursion

    beta_{L-1} = a_end;         beta_t[i] = logsumexp_j(A[i, j] + E[t+1, j] + beta_{t+1}[j])

as exp(alpha_t + beta_t - log Z). Viterbi decoding is the forward recursion with max for
logsumexp, and back-pointers. Batches are right-padded: ``lengths`` (N,) masks every step
past a row's end, so padding changes no score, gradient or decoded tag.

Parameters: A (K, K) transitions (row: from, column: to), a_start (K,), a_end (K,).
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import as_array, check_array, check_lengths, fail


def init_crf_params(num_tags: int, dtype=np.float32) -> dict[str, np.ndarray]:
    """Zeros: every path equally likely until the emissions and the data say otherwise."""
    return {"A": np.zeros((num_tags, num_tags), dtype), "a_start": np.zeros(num_tags, dtype),
            "a_end": np.zeros(num_tags, dtype)}


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def _check(emissions, lengths, params, tags=None):
    """The parameters first: their K tags and dtype are what the emissions must have."""
    E = check_array("emissions", emissions, ndim=3, layout="(N, T, K)")
    N, T, K = E.shape
    if N == 0 or T == 0:
        fail("emissions", "at least one batch row and one time step", f"shape {E.shape}")
    if E.dtype.kind != "f":
        fail("emissions", "a float array", f"dtype {E.dtype.name}")
    if not isinstance(params, dict) or any(k not in params for k in ("A", "a_start", "a_end")):
        fail("params", "a dict with A, a_start and a_end (init_crf_params)", type(params).__name__)
    for name, shape in (("A", (K, K)), ("a_start", (K,)), ("a_end", (K,))):
        # (which of the two is wrong cannot be told: the message names both)
        if isinstance(params[name], np.ndarray) and params[name].dtype != E.dtype:
            fail(name, f"dtype {E.dtype.name} (that of emissions)",
                 f"dtype {params[name].dtype.name}")
        check_array(name, params[name], ndim=len(shape), shape=shape, dtype=E.dtype,
                    layout=f"(K = {K} tags and the dtype of emissions)")
    lens = np.full(N, T, np.int64) if lengths is None else check_lengths(lengths, N, T)
    if tags is not None:
        tags = as_array("tags", tags)
        if tags.shape != (N, T) or tags.dtype.kind not in "iu":
            fail("tags", f"integer tag ids of shape {(N, T)}", f"shape {tags.shape}, "
                 f"dtype {tags.dtype.name}")
        valid = np.arange(T)[None, :] < lens[:, None]
        if valid.any() and (tags[valid].min() < 0 or tags[valid].max() >= K):
            fail("tags", f"tag ids in [0, {K - 1}]",
                 f"min {tags[valid].min()}, max {tags[valid].max()}")
        tags = np.where(valid, tags, 0)         # padding's tags are never read
    return E, lens, tags


def crf_forward(emissions: np.ndarray, tags: np.ndarray, lengths, params: dict):
    """emissions (N, T, K), gold tags (N, T), lengths (N,) or None -> (nll (N,), cache).

    nll[n] = log Z_n - s_n(tags[n]), one per row, in the emissions' dtype."""
    if tags is None:
        fail("tags", "the gold tag ids (N, T)", "None")
    E, lens, y = _check(emissions, lengths, params, tags)
    A, a_start, a_end = params["A"], params["a_start"], params["a_end"]
    N, T, K = E.shape
    rows = np.arange(N)
    valid = np.arange(T)[None, :] < lens[:, None]                     # (N, T)
    alpha = np.empty_like(E)                                          # (N, T, K)
    alpha[:, 0] = a_start + E[:, 0]
    for t in range(1, T):
        step = _logsumexp(alpha[:, t - 1, :, None] + A, axis=1) + E[:, t]
        alpha[:, t] = np.where(valid[:, t, None], step, alpha[:, t - 1])   # carried past the end
    log_z = _logsumexp(alpha[:, -1] + a_end, axis=1)                  # (N,)
    last = y[rows, lens - 1]
    gold = a_start[y[:, 0]] + a_end[last]
    gold = gold + np.where(valid, np.take_along_axis(E, y[:, :, None], 2)[:, :, 0], 0).sum(1)
    gold = gold + np.where(valid[:, 1:], A[y[:, :-1], y[:, 1:]], 0).sum(1)
    return log_z - gold, (E, y, lens, valid, alpha, log_z, params)


def crf_backward(dnll: np.ndarray, cache):
    """dL/dnll (N,) -> (dL/demissions (N, T, K), {"A", "a_start", "a_end"} gradients).

    Expected minus gold counts, weighted by each row's dnll; zero at padded steps."""
    E, y, lens, valid, alpha, log_z, params = cache
    A, a_end = params["A"], params["a_end"]
    N, T, K = E.shape
    dnll = np.asarray(dnll, E.dtype)
    if dnll.shape != (N,):
        fail("dnll", f"shape ({N},) (one per row)", f"shape {dnll.shape}")
    rows = np.arange(N)
    beta = np.empty_like(E)
    beta[:, -1] = a_end
    for t in range(T - 2, -1, -1):
        step = _logsumexp(A + (E[:, t + 1] + beta[:, t + 1])[:, None, :], axis=2)
        beta[:, t] = np.where(valid[:, t + 1, None], step, a_end)    # a row's last step: a_end
    w = dnll[:, None, None]
    marginal = np.exp(np.where(valid[:, :, None], alpha + beta - log_z[:, None, None],
                               -np.inf))                               # (N, T, K)
    gold = np.zeros_like(E)
    np.put_along_axis(gold, y[:, :, None], valid[:, :, None].astype(E.dtype), axis=2)
    dE = (marginal - gold) * w
    # pairwise marginals p(y_{t-1} = i, y_t = j) for the steps inside each row
    # (past a row's end the exponent is no log-probability and may overflow: -inf there)
    log_pair = alpha[:, :-1, :, None] + A + (E[:, 1:] + beta[:, 1:])[:, :, None, :]
    log_pair = np.where(valid[:, 1:, None, None], log_pair - log_z[:, None, None, None], -np.inf)
    pair = np.exp(log_pair) * dnll[:, None, None, None]                # (N, T-1, K, K)
    dA = pair.sum(axis=(0, 1))
    np.add.at(dA, (y[:, :-1][valid[:, 1:]], y[:, 1:][valid[:, 1:]]),
              -np.broadcast_to(dnll[:, None], valid[:, 1:].shape)[valid[:, 1:]])
    first, last = y[:, 0], y[rows, lens - 1]
    da_start = (marginal[:, 0] * w[:, 0]).sum(0)
    np.add.at(da_start, first, -dnll)
    da_end = (marginal[rows, lens - 1] * w[:, 0]).sum(0)
    np.add.at(da_end, last, -dnll)
    return dE, {"A": dA, "a_start": da_start, "a_end": da_end}


def crf_viterbi(emissions: np.ndarray, lengths, params: dict) -> np.ndarray:
    """The highest-scoring tag path of each row -> (N, T) int64 tag ids (0 past each end)."""
    E, lens, _ = _check(emissions, lengths, params)
    A, a_start, a_end = params["A"], params["a_start"], params["a_end"]
    N, T, K = E.shape
    valid = np.arange(T)[None, :] < lens[:, None]
    score = a_start + E[:, 0]                                         # (N, K)
    back = np.zeros((N, T, K), np.int64)
    for t in range(1, T):
        cand = score[:, :, None] + A                                  # (N, K from, K to)
        best = cand.argmax(axis=1)
        step = np.take_along_axis(cand, best[:, None, :], 1)[:, 0] + E[:, t]
        back[:, t] = best
        score = np.where(valid[:, t, None], step, score)
    rows = np.arange(N)
    path = np.zeros((N, T), np.int64)
    tag = (score + a_end).argmax(axis=1)
    for t in range(T - 1, -1, -1):
        inside = t < lens
        path[:, t] = np.where(inside, tag, 0)
        # step back only from inside a row (at its last step, `tag` is already the end tag)
        tag = np.where(inside & (t > 0), back[rows, t, tag], tag)
    return path
