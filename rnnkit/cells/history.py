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

from rnnkit import blas


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
            reverse: bool, into: np.ndarray | None = None) -> np.ndarray:
    """sum over t of dA[t]^T @ (states before step t): (T, N, G) x (T, N, H) -> (G, H).

    Added into ``into`` (e.g. the weight's gradient) if given. dA must be zero at padded
    steps. Two matrix products, no (T, N, H) copy: the shifted sequence is a contiguous slice
    of ``seq``, plus one product for the rows' first steps."""
    T, N, G = dA.shape
    H = seq.shape[2]
    if into is None:
        into = np.zeros((G, H), np.result_type(dA, seq))
    if reverse:       # seq[t + 1] is zero where row r starts at t: its init comes in below
        blas.matmul(dA[:-1].reshape(-1, G).T, seq[1:].reshape(-1, H), into, accumulate=True)
        lens = (n_active[:, None] > np.arange(N)).sum(axis=0)
        rows = np.flatnonzero(lens)
        blas.matmul(dA[lens[rows] - 1, rows].T, init[rows], into, accumulate=True)
    else:
        blas.matmul(dA[1:].reshape(-1, G).T, seq[:-1].reshape(-1, H), into, accumulate=True)
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
