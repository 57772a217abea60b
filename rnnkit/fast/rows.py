"""Row-wise passes over a large (M, V) array, a block of rows at a time, on the threads.

A softmax over 20,000 words at 32 x 35 steps is five NumPy passes (max, subtract, exp, sum,
scale) over 90 MB: over the whole array, each pass reads it back from memory; a block of
rows at a time, the block stays in the core's cache from one pass to the next. NumPy's
ufuncs release the GIL, so blocks run on threads side by side. Each row meets the same
operations in the same order whatever the blocks and threads, so the results are
bit-identical to whole-array passes (tests/fast/test_rows.py pins them).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

BLOCK_BYTES = 1 << 18           # rows of at most 256 KB a block: within a core's L2
MIN_SPLIT_BYTES = 8 << 20       # below this, threads cost more than they save
_pools: dict[int, ThreadPoolExecutor] = {}


def threads() -> int:
    """The threads the BLAS and the compiled loops use (OMP_NUM_THREADS, else the cores)."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        return os.cpu_count() or 1


def for_row_blocks(fn, rows: int, row_bytes: int, workers: int | None = None) -> None:
    """fn(start, stop) for consecutive blocks of rows covering [0, rows): the blocks split
    into `workers` (default ``threads()``) contiguous spans run side by side when the array
    is at least MIN_SPLIT_BYTES, else one after another on the calling thread. fn must
    only write rows [start, stop) of its outputs."""
    size = max(1, BLOCK_BYTES // max(1, row_bytes))
    blocks = [(s, min(s + size, rows)) for s in range(0, rows, size)]
    workers = min(workers or threads(), len(blocks))
    if workers <= 1 or rows * row_bytes < MIN_SPLIT_BYTES:
        for start, stop in blocks:
            fn(start, stop)
        return
    cut = [len(blocks) * k // workers for k in range(workers + 1)]

    def span(k):
        for start, stop in blocks[cut[k]:cut[k + 1]]:
            fn(start, stop)
    pool = _pools.get(workers)
    if pool is None:
        pool = _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="rnnkit-rows")
    others = [pool.submit(span, k) for k in range(1, workers)]
    try:
        span(0)                         # the calling thread takes the first span
    finally:
        for f in others:
            f.result()                  # (raises what the thread raised)
