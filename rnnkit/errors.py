"""The one exception type for errors a user can cause, and the checks that raise it.

Every message names the argument, what was expected and what was received, e.g.
``x: expected a 3-d array (N, T, D), got shape (5, 3)``.
"""
from __future__ import annotations

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
    arr = np.asarray(lengths)
    if arr.ndim != 1 or arr.shape[0] != batch:
        fail("lengths", f"a 1-d array of {batch} integers (one per batch row)",
             f"shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        fail("lengths", "integers", f"dtype {arr.dtype.name}")
    if batch and (arr.min() < 1 or arr.max() > steps):
        fail("lengths", f"values in [1, {steps}] (the padded sequence length T)",
             f"min {arr.min()}, max {arr.max()}")
    return arr.astype(np.int64)
