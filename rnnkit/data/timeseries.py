"""Time series for forecasting: read a CSV column, split by time, scale, cut into windows.

The order of work that avoids leaking the future into training:

    series = load_csv_series(path, "passengers")                  # (T,)
    train, val, test = train_val_test_split(series, 0.1, 0.2, context=lookback)
    scaler = StandardScaler().fit(train)                           # statistics of train only
    X, y = make_windows(scaler.transform(train), lookback)         # (M, L, 1), (M, 1)
    source = WindowDataset(X, y, batch_size=16, seed=0)

``context=lookback`` gives val and test the `lookback` points before them, so their first
window predicts their first point; those points are inputs only, never targets.
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from rnnkit.data.batching import ArrayDataset
from rnnkit.data.scalers import MinMaxScaler, StandardScaler, float_array, scaler_from_dict
from rnnkit.errors import check_int, fail

__all__ = ["StandardScaler", "MinMaxScaler", "scaler_from_dict", "make_windows",
           "train_val_test_split", "WindowDataset", "load_csv_series"]


def make_windows(series, lookback: int, horizon: int = 1, *,
                 target: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every window of `lookback` steps and the `horizon` steps that follow it.

    series (T,) or (T, F). Returns X (M, lookback, F) and y (M, horizon) for a 1-d series or
    a chosen `target` column, else (M, horizon, F); M = T - lookback - horizon + 1, and
    ``X[i] = series[i:i+lookback]``, ``y[i] = series[i+lookback:i+lookback+horizon]``.
    """
    s = float_array("series", series)
    if s.ndim > 2:
        fail("series", "a 1-d (T,) or 2-d (T, F) array", f"shape {s.shape}")
    for name, value in (("lookback", lookback), ("horizon", horizon)):
        check_int(name, value)
    s2 = s.reshape(len(s), -1)                          # (T, F)
    if target is not None and not (isinstance(target, (int, np.integer))
                                   and 0 <= target < s2.shape[1]):
        fail("target", f"None or a feature index in [0, {s2.shape[1] - 1}]", repr(target))
    m = len(s) - lookback - horizon + 1
    if m < 1:
        fail("series", f"at least lookback + horizon = {lookback + horizon} steps",
             f"{len(s)}")
    starts = np.arange(m)[:, None]
    X = s2[starts + np.arange(lookback)]                # (M, L, F)
    y = s2[starts + lookback + np.arange(horizon)]      # (M, horizon, F)
    if s.ndim == 1:
        y = y[..., 0]
    elif target is not None:
        y = y[..., target]
    return X, y


def train_val_test_split(series, val: float = 0.1, test: float = 0.2, *,
                         context: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut along time (axis 0), never shuffled: the oldest part trains, the newest tests.

    val and test are fractions of T (rounded); train keeps the rest. Non-empty val and test
    parts start with the `context` points before them (inputs for their first windows).
    """
    s = np.asarray(series)
    if s.ndim < 1:
        fail("series", "an array with time on axis 0", f"shape {s.shape}")
    for name, frac in (("val", val), ("test", test)):
        if not 0 <= frac < 1:
            fail(name, "a fraction in [0, 1)", repr(frac))
    n = len(s)
    n_test, n_val = int(round(n * test)), int(round(n * val))
    n_train = n - n_val - n_test
    if n_train < 1:
        fail("series", f"enough steps for a non-empty train part (val={val}, test={test})",
             f"{n} steps")
    if not isinstance(context, (int, np.integer)) or not 0 <= context <= n_train:
        fail("context", f"an integer in [0, {n_train}] (the train part's length)",
             repr(context))

    def part(lo: int, hi: int) -> np.ndarray:
        return s[lo - context:hi] if hi > lo else s[lo:lo]

    return s[:n_train], part(n_train, n_train + n_val), part(n_train + n_val, n)


class WindowDataset(ArrayDataset):
    """Fixed-length windows X (M, L, F) and float targets y (M, ...) as a data source.

    Not stateful (windows overlap; each starts from a zero state). The order is a function of
    (seed, epoch) only: a permutation per epoch, or the time order if ``shuffle=False``.
    """

    def __init__(self, X, y, batch_size: int, *, seed: int = 0, shuffle: bool = True):
        X = float_array("X", X, min_ndim=3)
        if X.ndim != 3:
            fail("X", "a 3-d array (M, lookback, F)", f"shape {X.shape}")
        y = float_array("y", y)
        if len(y) != len(X):
            fail("y", f"{len(X)} targets (one per window of X)", f"shape {y.shape}")
        super().__init__(X, y, batch_size, seed=seed, shuffle=shuffle)


def load_csv_series(path: str | os.PathLike, column: str | Sequence[str]) -> np.ndarray:
    """The numeric column(s) of a CSV file with a header row: (T,) for one name, (T, F) for
    a list of names. Missing file, missing column or a non-number raise RnnkitError."""
    path = Path(path)
    if not path.is_file():
        fail(str(path), "an existing CSV file", "no such file")
    names = [column] if isinstance(column, str) else list(column)
    try:
        rows = _read_rows(path, names, column)
    except UnicodeDecodeError as e:
        fail(str(path), "a UTF-8 CSV file", f"bytes that are not UTF-8 (at byte {e.start})")
    except csv.Error as e:
        fail(str(path), "a CSV file", f"unreadable CSV ({e})")
    if not rows:
        fail(str(path), "at least one data row", "only a header")
    values = np.array(rows, np.float64)
    return values[:, 0] if isinstance(column, str) else values


def _read_rows(path: Path, names: list, column) -> list:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            fail(str(path), "a CSV file with a header row", "an empty file")
        missing = [c for c in names if c not in header]
        if missing or not names:
            fail("column", f"column name(s) among {header} of {path.name}",
                 repr(missing[0] if missing else column))
        cols = [header.index(c) for c in names]
        rows = []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                rows.append([float(row[c]) for c in cols])
            except (ValueError, IndexError):
                got = [row[c] if c < len(row) else "<missing>" for c in cols]
                fail(f"{path}:{line}", f"numbers in column(s) {names}", repr(got))
            if not all(map(math.isfinite, rows[-1])):
                fail(f"{path}:{line}", f"finite numbers in column(s) {names}",
                     repr([row[c] for c in cols]))
    return rows

