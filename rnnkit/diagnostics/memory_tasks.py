"""Long-memory tasks (note 004's vanishing gradient, measured): seeded data, baselines, scores.

- Adding problem (Hochreiter & Schmidhuber 1997): T steps of (value in [-1, 1], marker);
  exactly two markers are 1, one in each half of the sequence (Le et al. 2015 place them so,
  which makes the longest gap close to T); the target is the sum of the two marked values.
  A sequence is solved when the absolute error is below ``tolerance`` (0.04); a model solves
  the task when it solves >= 95 % of the test sequences. Predicting the mean (0) scores an
  MSE of Var(X1 + X2) = 2/3. (Hochreiter & Schmidhuber's target is 0.5 + (X1 + X2) / 4 with
  the same 0.04: that is 0.16 on the sum; ``HS97_TOLERANCE``.)
- Copy memory (Arjovsky, Shah & Bengio 2016): 10 symbols from 8, T - 1 blanks, a delimiter,
  10 blanks; the output is T + 10 blanks then the 10 symbols. A model without memory can do
  no better than blanks then a uniform guess: cross-entropy 10 ln 8 / (T + 20) per step.
- Key recall ("I grew up in France ... I speak fluent ___", note 004): distractor tokens, a
  key token, G more distractors, a query token; the target is the key's class (its
  "language"). Every sequence has the same length, the key placed G + 1 steps before the
  end, so one model is scored at every gap. Chance is 1 / keys.

Token ids. Copy: 0 blank, 1..symbols the symbols, symbols + 1 the delimiter. Recall: 0..keys-1
the keys, then the distractors, then the query (``recall_vocab``).
"""
from __future__ import annotations

import math

import numpy as np

from rnnkit.errors import check_int, check_number, fail
from rnnkit.init import as_rng

TOLERANCE = 0.04            # the adding problem's "solved" error on one sequence
HS97_TOLERANCE = 0.16       # the same 0.04 on Hochreiter & Schmidhuber's target 0.5 + sum / 4
SOLVED_FRACTION = 0.95      # of test sequences, for the task to count as solved


# --- the adding problem --------------------------------------------------------------------
def adding_problem(n: int, T: int, rng=None, dtype=np.float32):
    """-> x (n, T, 2): [value, marker], y (n, 1): the sum of the two marked values,
    positions (n, 2): the marked steps (one in [0, T/2), one in [T/2, T))."""
    check_int("n", n)
    check_int("T", T, 2)
    rng = as_rng(rng)
    values = rng.uniform(-1.0, 1.0, size=(n, T)).astype(dtype)
    half = T // 2
    positions = np.stack([rng.integers(0, half, size=n), rng.integers(half, T, size=n)], axis=1)
    markers = np.zeros((n, T), dtype)
    rows = np.arange(n)[:, None]
    markers[rows, positions] = 1
    x = np.stack([values, markers], axis=2)                         # (n, T, 2)
    y = values[rows, positions].sum(axis=1, keepdims=True)          # (n, 1)
    return x, y, positions


def adding_baseline(tolerance: float = TOLERANCE) -> dict:
    """Predict the mean 0 every time: its MSE, Var(X1 + X2) = 2 Var(U[-1, 1]) = 2/3, and the
    fraction of sequences it solves, P(|X1 + X2| < a) = a - a^2/4 (triangular density)."""
    a = check_number("tolerance", tolerance, 0.0, 2.0, lo_open=True)
    return {"mse": 2.0 / 3.0, "solved": a - a * a / 4}


def adding_scores(pred: np.ndarray, y: np.ndarray, tolerance: float = TOLERANCE) -> dict:
    """MSE, the fraction of sequences with |error| < tolerance (and < HS97_TOLERANCE), and
    whether that fraction reaches SOLVED_FRACTION."""
    err = np.abs(np.asarray(pred, np.float64).reshape(-1) - np.asarray(y, np.float64).reshape(-1))
    solved = float(np.mean(err < tolerance))
    return {"mse": float(np.mean(err * err)), "solved": solved,
            "solved_hs97": float(np.mean(err < HS97_TOLERANCE)),
            "task_solved": solved >= SOLVED_FRACTION}


# --- copy memory ---------------------------------------------------------------------------
def copy_memory(n: int, T: int, rng=None, symbols: int = 8, length: int = 10):
    """-> x (n, T + 2 length) ids, y (n, T + 2 length) ids (layout in the module docstring)."""
    check_int("n", n)
    check_int("T", T)
    check_int("symbols", symbols, 2)
    check_int("length", length)
    rng = as_rng(rng)
    steps = T + 2 * length
    data = rng.integers(1, symbols + 1, size=(n, length))
    x = np.zeros((n, steps), np.int64)
    x[:, :length] = data
    x[:, length + T - 1] = symbols + 1                              # the delimiter: "now copy"
    y = np.zeros((n, steps), np.int64)
    y[:, T + length:] = data
    return x, y


def copy_vocab(symbols: int = 8) -> int:
    return symbols + 2


def copy_baseline(T: int, symbols: int = 8, length: int = 10) -> float:
    """Cross-entropy per step of the best memoryless model: length ln(symbols) / (T + 2 length)."""
    check_int("T", T)
    return length * math.log(symbols) / (T + 2 * length)


def copy_scores(logits: np.ndarray, y: np.ndarray, length: int = 10) -> dict:
    """Accuracy on the recalled symbols (the last ``length`` steps); chance is 1/symbols."""
    recalled = np.argmax(logits[:, -length:], axis=-1)
    return {"symbol_accuracy": float(np.mean(recalled == y[:, -length:]))}


# --- key recall ----------------------------------------------------------------------------
def recall_vocab(keys: int = 8, distractors: int = 16) -> int:
    return keys + distractors + 1


def key_recall(n: int, steps: int, gaps, rng=None, keys: int = 8, distractors: int = 16):
    """-> x (n, steps) ids, y (n,) the key's class, gaps (n,).

    ``gaps``: an int (every row) or an array of n gaps in [0, steps - 2]; row i holds the key at
    step steps - 2 - gaps[i], distractors everywhere else, and the query at the last step."""
    check_int("n", n)
    check_int("steps", steps, 2)
    check_int("keys", keys, 2)
    check_int("distractors", distractors)
    rng = as_rng(rng)
    g = np.broadcast_to(np.asarray(gaps), (n,)).astype(np.int64)
    if g.min() < 0 or g.max() > steps - 2:
        fail("gaps", f"gaps in [0, {steps - 2}] (steps - 2)", f"min {g.min()}, max {g.max()}")
    x = rng.integers(keys, keys + distractors, size=(n, steps))
    y = rng.integers(0, keys, size=n)
    x[np.arange(n), steps - 2 - g] = y
    x[:, -1] = keys + distractors                                   # the query: "which one?"
    return x, y, g.copy()


def recall_scores(logits: np.ndarray, y: np.ndarray, gaps: np.ndarray) -> dict:
    """Accuracy overall and at each gap present: {"accuracy": a, "by_gap": {gap: a}}."""
    right = np.argmax(logits, axis=-1) == y
    by_gap = {int(g): float(np.mean(right[gaps == g])) for g in np.unique(gaps)}
    return {"accuracy": float(np.mean(right)), "by_gap": by_gap}
