"""Connectionist temporal classification (Graves et al. 2006): a loss for unsegmented
sequence labelling, and the decoders that read its outputs.

A network emits, at each of T frames, a distribution over C classes, one of which is the
blank (class ``blank``, 0 by default). A label sequence l = (l_1 .. l_U) is any frame path
that, with repeats merged and blanks dropped, reads l. With the blank-extended sequence
l' = (b, l_1, b, l_2, .., b, l_U, b) of length S' = 2U + 1 the forward variables are

    alpha_1(1) = y_1(b),  alpha_1(2) = y_1(l_1)
    alpha_t(s) = y_t(l'_s) [alpha_{t-1}(s) + alpha_{t-1}(s-1) + skip(s) alpha_{t-1}(s-2)]

where skip(s) holds when l'_s is not blank and l'_s != l'_{s-2} (a blank is needed between
repeated labels); p(l|x) = alpha_T(S') + alpha_T(S'-1). The backward variables beta mirror
them from the end. Both include y_t(l'_s), so the posterior that path position s is at
frame t is gamma_t(s) = alpha_t(s) beta_t(s) / (y_t(l'_s) p(l|x)), and for logits z with
y = softmax(z):

    d(-ln p(l|x)) / d z_t(k) = y_t(k) - sum_{s: l'_s = k} gamma_t(s)

Everything runs in log space (products are sums, sums are logaddexp) so that long inputs
do not underflow, vectorised over the batch: one loop over time, each row stopping at its
own input length. Reductions follow torch.nn.functional.ctc_loss: "sum", "mean" (each row's
loss divided by its target length, then averaged over the batch) and "none".
"""
from __future__ import annotations

import numpy as np

from rnnkit.errors import check_array, check_choice, fail

REDUCTIONS = ("mean", "sum", "none")


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _check(logits, targets, input_lengths, target_lengths, blank):
    logits = check_array("logits", logits, ndim=3)
    if not np.issubdtype(logits.dtype, np.floating):
        fail("logits", "a float array (N, T, C)", f"dtype {logits.dtype}")
    N, T, C = logits.shape
    if not 0 <= blank < C:
        fail("blank", f"a class id in [0, {C})", repr(blank))
    targets = np.asarray(targets)
    if targets.ndim != 2 or targets.shape[0] != N or not np.issubdtype(targets.dtype,
                                                                         np.integer):
        fail("targets", f"integer labels (N={N}, S) padded to the longest row",
             f"{targets.dtype} array of shape {targets.shape}")
    lens = []
    for name, v, hi in (("input_lengths", input_lengths, T),
                        ("target_lengths", target_lengths, targets.shape[1])):
        v = np.asarray(v)
        if v.shape != (N,) or not np.issubdtype(v.dtype, np.integer) or \
                (N and (v.min() < 0 or v.max() > hi)):
            fail(name, f"N={N} integers in [0, {hi}]", f"{v.dtype} array {v.tolist()}")
        lens.append(v.astype(np.int64))
    in_lens, tgt_lens = lens
    if N and in_lens.min() < 1:
        fail("input_lengths", "at least one frame per row", in_lens.tolist())
    inside = np.arange(targets.shape[1])[None, :] < tgt_lens[:, None]
    used = targets[inside]
    if used.size and (used.min() < 0 or used.max() >= C or (used == blank).any()):
        fail("targets", f"labels in [0, {C}) other than the blank {blank}",
             f"labels {sorted(set(used.tolist()))}")
    return logits, np.where(inside, targets, blank).astype(np.int64), in_lens, tgt_lens


def _extend(targets: np.ndarray, tgt_lens: np.ndarray, blank: int):
    """l' (N, 2S+1) with blanks between labels; valid (N, 2S+1); skip (N, 2S+1)."""
    N, S = targets.shape
    ext = np.full((N, 2 * S + 1), blank, np.int64)
    ext[:, 1::2] = targets
    valid = np.arange(2 * S + 1)[None, :] < (2 * tgt_lens + 1)[:, None]
    skip = np.zeros_like(valid)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    return ext, valid, skip


def ctc_forward_backward(log_probs: np.ndarray, ext, valid, skip, in_lens, tgt_lens):
    """log alpha, log beta (N, T, S') and ln p(l|x) (N,) for log-probabilities (N, T, C)."""
    N, T, _ = log_probs.shape
    Sx = ext.shape[1]
    lp = np.take_along_axis(log_probs, np.broadcast_to(ext[:, None, :], (N, T, Sx)), axis=2)
    lp = np.where(valid[:, None, :], lp, -np.inf)                       # (N, T, S')
    rows = np.arange(N)
    alpha = np.full((N, T, Sx), -np.inf)
    alpha[:, 0, 0] = lp[:, 0, 0]
    alpha[:, 0, 1] = np.where(tgt_lens > 0, lp[:, 0, 1], -np.inf)
    with np.errstate(invalid="ignore"):
        for t in range(1, T):
            prev = alpha[:, t - 1]
            a = prev.copy()
            a[:, 1:] = np.logaddexp(a[:, 1:], prev[:, :-1])
            a[:, 2:] = np.where(skip[:, 2:], np.logaddexp(a[:, 2:], prev[:, :-2]), a[:, 2:])
            alpha[:, t] = a + lp[:, t]
        last = 2 * tgt_lens                                              # index of S'-1
        end = alpha[rows, in_lens - 1]                                   # (N, S')
        loglik = np.logaddexp(end[rows, last],
                              np.where(tgt_lens > 0, end[rows, np.maximum(last - 1, 0)],
                                       -np.inf))
        beta = np.full((N, T, Sx), -np.inf)
        skip_next = np.zeros_like(skip)                   # may s jump to s + 2?
        skip_next[:, :-2] = skip[:, 2:]
        start = np.full((N, Sx), -np.inf)
        start[rows, last] = 0.0
        start[rows, np.maximum(last - 1, 0)] = np.where(tgt_lens > 0, 0.0, start[rows, 0])
        for t in range(T - 1, -1, -1):
            if t + 1 < T:
                nxt = beta[:, t + 1]
                b = nxt.copy()
                b[:, :-1] = np.logaddexp(b[:, :-1], nxt[:, 1:])
                b[:, :-2] = np.where(skip_next[:, :-2], np.logaddexp(b[:, :-2], nxt[:, 2:]),
                                     b[:, :-2])
            else:
                b = np.full((N, Sx), -np.inf)
            b = np.where((t == in_lens - 1)[:, None], start, b)          # each row's end
            beta[:, t] = b + lp[:, t]
    return alpha, beta, loglik, lp


def ctc_loss(logits: np.ndarray, targets, input_lengths, target_lengths, *, blank: int = 0,
             reduction: str = "mean", zero_infinity: bool = False):
    """-ln p(targets | logits) and its gradient w.r.t. the logits (before the softmax).

    logits (N, T, C); targets (N, S) integer labels (entries past a row's target length are
    ignored); input_lengths, target_lengths (N,). A row whose target cannot be aligned in
    its frames (too long for them) has an infinite loss; ``zero_infinity`` makes its loss
    and gradient zero, as in torch. Returns (loss, dlogits) with dlogits in the logits'
    dtype; loss a float, or an (N,) float64 array for reduction="none".
    """
    check_choice("reduction", reduction, REDUCTIONS)
    logits, targets, in_lens, tgt_lens = _check(logits, targets, input_lengths,
                                                target_lengths, blank)
    N, T, C = logits.shape
    log_probs = log_softmax(logits.astype(np.float64))
    ext, valid, skip = _extend(targets, tgt_lens, blank)
    alpha, beta, loglik, lp = ctc_forward_backward(log_probs, ext, valid, skip, in_lens,
                                                   tgt_lens)
    losses = -loglik                                                     # (N,)
    feasible = np.isfinite(loglik)
    with np.errstate(invalid="ignore"):
        log_gamma = alpha + beta - lp
        gamma = np.where(np.isfinite(log_gamma) & feasible[:, None, None],
                         np.exp(log_gamma - np.where(feasible, loglik, 0)[:, None, None]), 0.0)
    onehot = (ext[:, :, None] == np.arange(C)[None, None, :]).astype(np.float64)
    grad = np.exp(log_probs) - gamma @ onehot                            # (N, T, C)
    frames = np.arange(T)[None, :] < in_lens[:, None]                    # (N, T)
    grad *= frames[:, :, None]
    if zero_infinity:
        losses = np.where(feasible, losses, 0.0)
        grad *= feasible[:, None, None]
    else:       # an impossible row has no gradient: NaN on its frames, as torch gives
        grad[(~feasible)[:, None] & frames] = np.nan
    if reduction == "none":
        return losses, grad.astype(logits.dtype)
    if reduction == "mean":
        w = 1.0 / (np.maximum(tgt_lens, 1) * max(N, 1))
        loss = float((losses * w).sum())
        grad *= w[:, None, None]
    else:
        loss = float(losses.sum())
    return loss, grad.astype(logits.dtype)


def ctc_trainer_loss(blank: int = 0, reduction: str = "mean", zero_infinity: bool = True):
    """A loss for rnnkit.train.Trainer: ``loss_fn(logits, targets, lengths)`` with targets
    (N, S) labels right-padded with -1 (their count is the target length) and lengths the
    frames of each row. Impossible rows count zero (a batch is not lost to one)."""
    def loss_fn(logits, targets, lengths=None):
        targets = np.asarray(targets)
        N, T = logits.shape[:2]
        in_lens = np.full(N, T, np.int64) if lengths is None else np.asarray(lengths)
        return ctc_loss(logits, targets, in_lens, (targets >= 0).sum(axis=1), blank=blank,
                        reduction=reduction, zero_infinity=zero_infinity)
    return loss_fn


# --- decoding -------------------------------------------------------------------------------
def greedy_decode(log_probs: np.ndarray, lengths=None, blank: int = 0) -> list[list[int]]:
    """Best path: the most likely class at each frame, repeats merged, blanks dropped.
    log_probs (or logits, or probabilities: only the argmax matters) (N, T, C)."""
    x = check_array("log_probs", log_probs, ndim=3)
    N, T, _ = x.shape
    lens = np.full(N, T) if lengths is None else np.asarray(lengths)
    best = x.argmax(axis=2)
    out = []
    for n in range(N):
        path = best[n, :int(lens[n])]
        keep = np.ones(len(path), bool)
        keep[1:] = path[1:] != path[:-1]
        out.append([int(k) for k in path[keep] if k != blank])
    return out


def prefix_beam_search(log_probs: np.ndarray, beam: int = 8, blank: int = 0,
                       prune: float = -12.0) -> tuple[list[int], float]:
    """The most probable labelling of one utterance, summing over its paths (Hannun et al.
    2014): each prefix keeps ln P(prefix, ending in blank) and ln P(prefix, ending in its
    last label), so that "a a" (two labels, a blank between) and "aa" (one) stay apart.
    log_probs (T, C) log-softmax outputs; classes below ``prune`` at a frame are skipped.
    Returns (labels, ln p)."""
    x = check_array("log_probs", log_probs, ndim=2)
    if not isinstance(beam, int) or beam < 1:
        fail("beam", "an integer >= 1", repr(beam))
    beams = {(): (0.0, -np.inf)}                       # prefix -> (ln p_blank, ln p_label)
    for row in x:
        nxt: dict = {}

        def add(prefix, pb, pl):
            ob, ol = nxt.get(prefix, (-np.inf, -np.inf))
            nxt[prefix] = (np.logaddexp(ob, pb), np.logaddexp(ol, pl))

        candidates = [int(k) for k in np.flatnonzero(row >= prune)] or [int(row.argmax())]
        for prefix, (pb, pl) in beams.items():
            total = np.logaddexp(pb, pl)
            for k in candidates:
                p = row[k]
                if k == blank:
                    add(prefix, total + p, -np.inf)
                    continue
                grown = prefix + (k,)
                if prefix and prefix[-1] == k:
                    add(grown, -np.inf, pb + p)        # a repeat needs a blank between
                    add(prefix, -np.inf, pl + p)       # else it merges into the last label
                else:
                    add(grown, -np.inf, total + p)
        beams = dict(sorted(nxt.items(), key=lambda kv: -np.logaddexp(*kv[1]))[:beam])
    prefix, (pb, pl) = max(beams.items(), key=lambda kv: np.logaddexp(*kv[1]))
    return list(prefix), float(np.logaddexp(pb, pl))
