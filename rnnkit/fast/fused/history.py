"""The state each row had BEFORE step t, read from the states after each step.

BPTT needs h_{t-1} (and the LSTM C_{t-1}) at every step, but they are the states after the
neighbouring step: keeping them as their own (T, N, H) arrays doubles that part of the
cache. Here they are derived from ``seq`` (T, N, H), the states after each step, and
``init`` (N, H), the initial states, in the scans' layout (time-major, batch sorted by
length so the rows running at step t are ``[:n_active[t]]``, padded steps zero):

- forward in time, step t follows step t - 1, and every row running at t ran at t - 1:
  the previous states are ``seq[t - 1, :n]``, or ``init`` at t = 0;
- reverse, step t follows step t + 1, where only the first ``n_active[t + 1]`` rows ran:
  the rows starting at t (their last valid step) take theirs from ``init``.
"""
from __future__ import annotations

import numpy as np

from rnnkit.fast import blas


def previous(seq: np.ndarray, init: np.ndarray, n_active: np.ndarray, reverse: bool, t: int,
             n: int, scratch: np.ndarray) -> np.ndarray:
    """Rows [:n] of the states before step t: a view where it can, else rows of ``scratch``."""
    src = t + 1 if reverse else t - 1
    if src < 0 or src >= seq.shape[0]:
        return init[:n]
    m = int(n_active[src])
    if m >= n:
        return seq[src, :n]
    buf = scratch[:n]
    buf[:m] = seq[src, :m]
    buf[m:] = init[m:n]
    return buf


def product(dA: np.ndarray, seq: np.ndarray, init: np.ndarray, n_active: np.ndarray,
            reverse: bool, into: np.ndarray | None = None, t0: int = 0) -> np.ndarray:
    """sum over t of dA[t - t0]^T @ (states before step t): (L, N, G) x (T, N, H) -> (G, H).

    dA covers the steps [t0, t0 + L) (all of them by default) and must be zero at padded
    steps. Added into ``into`` (e.g. the weight's gradient) if given. Two matrix products, no
    (L, N, H) copy: the shifted sequence is a contiguous slice of ``seq``, plus one product
    for the initial states the range reads, unless they are zero."""
    L, N, G = dA.shape
    T, _, H = seq.shape
    t1 = t0 + L
    if into is None:
        into = np.zeros((G, H), np.result_type(dA, seq))
    if reverse:       # seq[t + 1] is zero where row r starts at t: its init comes in below
        m = min(t1, T - 1) - t0
        if m > 0:
            blas.matmul(dA[:m].reshape(-1, G).T, seq[t0 + 1:t0 + 1 + m].reshape(-1, H), into,
                        accumulate=True)
        start = (n_active[:, None] > np.arange(N)).sum(axis=0) - 1     # each row's first step
        rows = np.flatnonzero((start >= t0) & (start < t1))
        if rows.size and init[rows].any():
            blas.matmul(dA[start[rows] - t0, rows].T, init[rows], into, accumulate=True)
    else:
        first = 1 if t0 == 0 else 0
        if L > first:
            blas.matmul(dA[first:].reshape(-1, G).T, seq[t0 + first - 1:t1 - 1].reshape(-1, H),
                        into, accumulate=True)
        if t0 == 0 and init.any():      # (zero initial states, the default, add nothing)
            blas.matmul(dA[0].T, init, into, accumulate=True)
    return into


def shifted(seq: np.ndarray, init: np.ndarray, n_active: np.ndarray,
            reverse: bool) -> np.ndarray:
    """All the states before each step as one (T, N, H) array (zero at padded steps)."""
    T, N, _ = seq.shape
    out = np.zeros_like(seq)
    scratch = np.empty_like(init)
    for t in range(T):
        n = int(n_active[t])
        out[t, :n] = previous(seq, init, n_active, reverse, t, n, scratch)
    return out
