"""One long token stream as a stateful data source for language modelling.

The layout is `lm_batches`': the stream is cut into N contiguous rows and batch k holds steps
[k*T, (k+1)*T) of every row, so row i of batch k+1 continues row i of batch k and a trainer
carries the recurrent state across batches (``stateful = True``), resetting it each epoch.
"""
from __future__ import annotations

from itertools import islice
from typing import Iterator

import numpy as np

from rnnkit.data.batch import Batch
from rnnkit.data.batching import check_start, epoch_rng
from rnnkit.data.text import lm_batches
from rnnkit.errors import as_array, check_flag, check_int, fail


class TextStream:
    """Batches (N, T) of inputs and next-token targets over one id stream (T,).

    With ``random_offset=True`` epoch e starts the stream at an offset in [0, seq_len) drawn
    from (seed, e), so the cut points between chunks move from epoch to epoch (the model does
    not always see the same characters at the start of a truncated-BPTT window); the number
    of batches can then differ by one between epochs. Without it every epoch is identical.
    Resuming at ``start`` skips the first `start` batches of the epoch; the recurrent state
    at that point is the trainer's to restore (it cannot be recomputed from the data).
    """

    stateful = True

    def __init__(self, ids, batch_size: int, seq_len: int, *, random_offset: bool = False,
                 seed: int = 0):
        ids = as_array("ids", ids)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            fail("ids", "a 1-d array of integer token ids", f"shape {ids.shape}, "
                 f"dtype {ids.dtype}")
        if ids.size and ids.min() < 0:
            fail("ids", "token ids >= 0", f"min {ids.min()}")
        check_int("batch_size", batch_size)
        check_int("seq_len", seq_len)
        check_flag("random_offset", random_offset)
        epoch_rng(seed, 0)                       # validates the seed
        self.ids, self.batch_size, self.seq_len = ids, int(batch_size), int(seq_len)
        self.random_offset, self.seed = random_offset, int(seed)
        worst = self.seq_len - 1 if random_offset else 0
        need = self.batch_size * self.seq_len + 1 + worst
        if len(ids) < need:
            fail("ids", f"at least batch_size * seq_len + 1{' + seq_len - 1' if worst else ''}"
                 f" = {need} tokens", f"{len(ids)}")

    def offset(self, epoch: int) -> int:
        """Where epoch `epoch` starts in the stream (0 unless ``random_offset``)."""
        rng = epoch_rng(self.seed, epoch)
        return int(rng.integers(self.seq_len)) if self.random_offset else 0

    def num_batches(self, epoch: int = 0) -> int:
        rows = (len(self.ids) - self.offset(epoch) - 1) // self.batch_size
        return rows // self.seq_len

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        start = check_start(start, self.num_batches(epoch))
        chunks = lm_batches(self.ids[self.offset(epoch):], self.batch_size, self.seq_len)
        return (Batch(inputs=x, targets=y) for x, y in islice(chunks, start, None))
