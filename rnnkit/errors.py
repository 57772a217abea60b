"""The one exception type for errors a user can cause, and the checks that raise it.

Every message names the argument, what was expected and what was received, e.g.
``x: expected a 3-d array (N, T, D), got shape (5, 3)``.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np


class RnnkitError(ValueError):
    """Bad input to an rnnkit function: wrong shape, dtype, range or non-finite values."""


def fail(name: str, expected: str, got: object) -> None:
    raise RnnkitError(f"{name}: expected {expected}, got {got}")


def check_array(name: str, a: object, *, ndim: int, shape: tuple | None = None,
                dtype: np.dtype | None = None, layout: str = "", finite=None) -> np.ndarray:
    """Check rank, sizes (None in `shape` = any), float dtype and finiteness of `a`.

    ``finite(a)``: a faster test of finiteness for large arrays (rnnkit.fast.all_finite),
    which may answer False for finite values; they are then counted one by one."""
    if not isinstance(a, np.ndarray):
        fail(name, "a NumPy array", type(a).__name__)
    if a.ndim != ndim:
        fail(name, f"a {ndim}-d array {layout}".rstrip(), f"shape {a.shape}")
    if shape is not None:
        for axis, (want, have) in enumerate(zip(shape, a.shape)):
            if want is not None and want != have:
                want_shape = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
                fail(name, f"shape {want_shape} {layout}".rstrip(),
                     f"shape {a.shape} (axis {axis} is {have}, not {want})")
    if dtype is not None and a.dtype != dtype:
        fail(name, f"dtype {np.dtype(dtype).name} (the layer's dtype; convert with "
             f".astype(np.{np.dtype(dtype).name}))", f"dtype {a.dtype.name}")
    if a.dtype.kind == "f" and not (finite or _finite)(a):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        if bad:     # (a sum of |a| can overflow with every value finite)
            fail(name, "finite values", f"{bad} NaN or infinite value(s)")
    return a


def _finite(a: np.ndarray) -> bool:
    return bool(np.isfinite(a).all())


def check_lengths(lengths: object, batch: int, steps: int) -> np.ndarray:
    """Check a `lengths` array for a right-padded batch: integers in [1, T], one per row."""
    arr = as_array("lengths", lengths)
    if arr.ndim != 1 or arr.shape[0] != batch:
        fail("lengths", f"a 1-d array of {batch} integers (one per batch row)",
             f"shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        fail("lengths", "integers", f"dtype {arr.dtype.name}")
    if batch and (arr.min() < 1 or arr.max() > steps):
        fail("lengths", f"values in [1, {steps}] (the padded sequence length T)",
             f"min {arr.min()}, max {arr.max()}")
    return arr.astype(np.int64)


# --- scalar arguments: one check per kind, each naming the argument as the user wrote it ---
MAX_SIZE = 2 ** 31 - 1          # larger sizes (or a layer of more numbers) no memory holds


def check_int(name: str, value: object, lo: int = 1, hi: int = MAX_SIZE) -> int:
    """An integer (Python or NumPy, not bool nor float) in [lo, hi], as a Python int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or not lo <= value <= hi:
        fail(name, f"an integer in [{lo}, {hi}]" if hi < MAX_SIZE else
             "a positive integer" if lo == 1 else f"an integer >= {lo}", repr(value))
    return int(value)


def check_param_count(name: str, count: int, limit: int = MAX_SIZE) -> None:
    """Refuse, before anything is allocated, a layer of more than ``limit`` numbers (an
    absurd size: 2**31 float32 numbers are 8 GiB)."""
    if count > limit:
        fail(name, f"a size whose parameters fit in memory (at most {limit} numbers)",
             f"{repr(count)} numbers")


def check_number(name: str, value: object, lo: float, hi: float = math.inf, *,
                 lo_open: bool = False, hi_open: bool = False,
                 expected: str | None = None) -> float:
    """A finite real number in [lo, hi] (ends open where asked); returned as a Python float.
    ``expected``: the message's words for it (default "a number in [lo, hi]")."""
    ok = (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
          and math.isfinite(value) and (value > lo if lo_open else value >= lo)
          and (value < hi if hi_open else value <= hi))
    if not ok:
        span = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open or hi == math.inf else ']'}"
        fail(name, expected or f"a number in {span}", repr(value))
    return float(value)


def check_flag(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        fail(name, "True or False", repr(value))
    return bool(value)


def check_output_file(name: str, path) -> None:
    """A file path to write: not a folder, in a folder that exists (checked before any work,
    so that a long computation does not end in a failed write)."""
    import os
    if os.path.isdir(path):
        fail(name, "a file's path", f"{str(path)!r}, which is a folder")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        fail(name, "a path in an existing folder", f"{str(path)!r} (no folder {parent!r})")


def check_choice(name: str, value: object, allowed) -> object:
    """One of ``allowed`` (compared only when hashable, so that a list is refused cleanly)."""
    if not isinstance(value, (str, int, type(None))) or isinstance(value, bool) \
            or value not in allowed:
        fail(name, f"one of {tuple(allowed)}", repr(value))
    return value


def check_seed(name: str, value: object):
    """None, an integer >= 0 or a np.random.Generator (what ``init.as_rng`` takes)."""
    if value is None or isinstance(value, np.random.Generator):
        return value
    return check_int(name, value, 0, 2 ** 128)


def check_rng(name: str, value: object):
    if value is not None and not isinstance(value, np.random.Generator):
        fail(name, "a np.random.Generator or None", type(value).__name__)
    return value


def check_float_dtype(name: str, value: object) -> np.dtype:
    """float32 or float64, given as a name, a NumPy type or a dtype."""
    try:
        dtype = None if value is None or isinstance(value, (int, list, tuple)) else \
            np.dtype(value)
    except TypeError:
        dtype = None
    if dtype not in (np.float32, np.float64):
        fail(name, "float32 or float64", repr(value) if dtype is None else dtype.name)
    return dtype


def check_ids(name: str, ids: object, size: int, ndim: int | None = None) -> np.ndarray:
    """Integer token ids in [0, size): an array or (non-ragged) nested list of ``ndim``."""
    arr = as_array(name, ids)
    if ndim is not None and arr.ndim != ndim:
        fail(name, f"a {ndim}-d array of token ids", f"shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        fail(name, "an integer array of token ids", f"dtype {arr.dtype.name}")
    if arr.size == 0:
        fail(name, "at least one token id in each row", f"shape {arr.shape}")
    if arr.min() < 0 or arr.max() >= size:
        fail(name, f"token ids in [0, {size - 1}]", f"min {arr.min()}, max {arr.max()}")
    return arr


def as_array(name: str, value: object) -> np.ndarray:
    """np.asarray(value), refusing ragged nested lists and objects NumPy cannot hold."""
    if value is None or isinstance(value, (str, bytes, dict)):
        fail(name, "an array", type(value).__name__)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            arr = np.asarray(value)
    except (ValueError, TypeError, OverflowError, Warning) as e:
        fail(name, "a rectangular array (every row of the same length)",
             f"{type(value).__name__} ({e})")
    if arr.dtype.kind in "OSUV":
        fail(name, "numbers", f"dtype {arr.dtype.name}")
    return arr
