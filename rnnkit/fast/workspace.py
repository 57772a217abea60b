"""Reused memory for the time scans' large buffers (BPTT cache, gradients of the gates).

A fresh large array costs a page fault per page on first touch, a large share of a training
step (docs/performance.md, section 3). So the scans take their buffers from a pool that
keeps them between calls, as PyTorch's GPU caching allocator does.

Every buffer starts at a multiple of ALIGN bytes (a cache line; see ``aligned_empty``).

A buffer is handed out again only when nothing refers to it any more: every view of a NumPy
array holds a reference to the array that owns the memory, so the pool reads the owner's
reference count. A cache the caller still holds, or an output derived from a buffer, is
never reused under them.

Small requests (below ``MIN_BYTES``) go to NumPy as usual. The pool keeps at most
``max_bytes`` (``RNNKIT_WORKSPACE_MB``, default 2048; 0 turns it off); a request that
would exceed it gets an ordinary array. ``clear()`` gives the memory back.
"""
from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np

from rnnkit.errors import fail

MIN_BYTES = 1 << 18


ALIGN = 64              # bytes: a cache line, and a whole number of any vector register


def aligned_empty(shape, dtype) -> np.ndarray:
    """An uninitialised C-ordered array starting at an address that is a multiple of ALIGN.

    NumPy's arrays start where malloc puts them, often 16 or 48 bytes past a multiple of 64.
    The compiled loops' own products read their weights a row of vectors at a time, and
    loads that straddle cache lines cost (docs/performance.md, section 3)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(int(s) for s in shape) * dtype.itemsize
    buf = np.empty(nbytes + ALIGN, np.uint8)
    start = -buf.ctypes.data % ALIGN
    return buf[start:start + nbytes].view(dtype).reshape(shape)


def _refs(bufs: list, i: int) -> int:
    """References to the memory of bufs[i], an aligned view (``aligned_empty``): every view
    of it refers to the array that owns that memory, its base."""
    return sys.getrefcount(bufs[i].base)


class Pool:
    """Flat byte buffers, lent out as shaped views; best fit, at most twice the request."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.poison = False       # tests: fill every lent buffer with NaN to catch stale reads
        self._bufs: list[np.ndarray] = []
        self._lock = threading.Lock()
        probe = [aligned_empty((1,), np.uint8)]
        self._free_refs = _refs(probe, 0)     # the count of a buffer only the pool holds

    def empty(self, shape, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        view = self._lend(shape, dtype, self._take) if \
            math.prod(shape) * dtype.itemsize >= MIN_BYTES else None
        if view is None:
            view = np.empty(shape, dtype)
            if self.poison and dtype.kind == "f":
                view.fill(np.nan)
        return view

    def spare(self, shape, dtype) -> np.ndarray | None:
        """A view of a buffer the pool holds and nothing uses, of one to two times the
        request, whatever its size; None where there is none (no buffer is made for it)."""
        return self._lend(shape, dtype, self._reuse)

    def _lend(self, shape, dtype, find) -> np.ndarray | None:
        """A (shape, dtype) view of the buffer ``find(nbytes)`` gives (``_take``, ``_reuse``),
        or None."""
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes == 0 or self.max_bytes <= 0:
            return None
        with self._lock:
            buf = find(nbytes)
            if buf is None:
                return None
            view = buf[:nbytes].view(dtype).reshape(tuple(int(s) for s in shape))
        if self.poison and dtype.kind == "f":
            view.fill(np.nan)
        return view

    def _reuse(self, nbytes: int) -> np.ndarray | None:
        best = None
        for i in range(len(self._bufs)):
            size = self._bufs[i].nbytes
            if (nbytes <= size <= 2 * nbytes and _refs(self._bufs, i) == self._free_refs
                    and (best is None or size < self._bufs[best].nbytes)):
                best = i
        if best is None:
            return None
        buf = self._bufs.pop(best)
        self._bufs.append(buf)                # most recently used last
        return buf

    def _take(self, nbytes: int) -> np.ndarray | None:
        buf = self._reuse(nbytes)
        if buf is not None:
            return buf
        total = sum(b.nbytes for b in self._bufs)
        i = 0
        while total + nbytes > self.max_bytes and i < len(self._bufs):
            if _refs(self._bufs, i) == self._free_refs:     # evict the least recently used
                total -= self._bufs.pop(i).nbytes
            else:
                i += 1
        if total + nbytes > self.max_bytes:
            return None
        buf = aligned_empty((nbytes,), np.uint8)
        self._bufs.append(buf)
        return buf

    def clear(self) -> None:
        """Forget every buffer; those still lent out live on as ordinary arrays."""
        with self._lock:
            self._bufs.clear()

    def stats(self) -> dict:
        with self._lock:
            in_use = [_refs(self._bufs, i) != self._free_refs for i in range(len(self._bufs))]
            return {"buffers": len(self._bufs), "bytes": sum(b.nbytes for b in self._bufs),
                    "bytes_in_use": sum(b.nbytes for b, u in zip(self._bufs, in_use) if u),
                    "max_bytes": self.max_bytes}


def _default_max_bytes() -> int:
    raw = os.environ.get("RNNKIT_WORKSPACE_MB", "2048")
    try:
        mb = float(raw)
    except ValueError:
        mb = -1.0
    if mb < 0:
        fail("RNNKIT_WORKSPACE_MB", "a number of megabytes >= 0", repr(raw))
    return int(mb * (1 << 20))


pool = Pool(_default_max_bytes())


def configure(max_mb: float) -> None:
    """Cap the pool at max_mb megabytes (0 turns it off) and drop what it holds."""
    if not isinstance(max_mb, (int, float)) or isinstance(max_mb, bool) or max_mb < 0:
        fail("max_mb", "a number of megabytes >= 0", repr(max_mb))
    pool.max_bytes = int(max_mb * (1 << 20))
    pool.clear()


def clear() -> None:
    pool.clear()


def stats() -> dict:
    return pool.stats()


def empty(shape, dtype) -> np.ndarray:
    """An uninitialised array, from the pool when large."""
    return pool.empty(shape, dtype)


def spare_or_empty(shape, dtype) -> np.ndarray:
    """A buffer the pool holds unused, even for a small request (``Pool.spare``), else
    ``empty``: for an array made after a step's large buffers went back to the pool."""
    view = pool.spare(shape, dtype)
    return empty(shape, dtype) if view is None else view


def time_major(shape, dtype, n_active: np.ndarray) -> np.ndarray:
    """A (T, N, ...) buffer whose padded rows (t, n_active[t]:) are zero and the rest unset.

    Steps write only their active rows, and the products after the loop read every row, so
    the padded ones must be zero (padded outputs and gradients are exactly zero)."""
    return zero_padding(pool.empty(shape, dtype), n_active)


def zero_padding(a: np.ndarray, n_active: np.ndarray) -> np.ndarray:
    """Zero the padded rows (t, n_active[t]:) of a (T, N, ...) array in place; returns it."""
    if not n_active.size or n_active.min() >= a.shape[1]:      # no padding (the usual case)
        return a
    for t in np.flatnonzero(n_active < a.shape[1]):
        a[t, n_active[t]:] = 0
    return a
