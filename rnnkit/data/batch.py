"""What a trainer consumes: batches, and data sources that can resume mid-epoch.

A `Batch` is inputs, targets and (for right-padded variable-length data) lengths. A data
source yields the batches of one epoch in a deterministic order given (seed, epoch), so that
training can stop after batch k of epoch e and resume from exactly there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Protocol

import numpy as np


@dataclass
class Batch:
    inputs: Any                       # (N, T) ids, (N, T, D) features, or a tuple for seq2seq
    targets: Any                      # what the loss compares the model's outputs with
    lengths: np.ndarray | None = None # (N,) valid steps of each row, None = all T

    @property
    def size(self) -> int:
        """Number of target items (valid steps for per-step targets), for throughput."""
        t = np.asarray(self.targets)
        lengths = self.lengths      # seq2seq: (source, target) lengths; the target's count
        if isinstance(lengths, tuple):
            lengths = lengths[-1]
        if lengths is not None and t.ndim >= 2:
            return int(np.sum(lengths))
        return int(t.size) if t.ndim <= 2 else int(np.prod(t.shape[:2]))


class DataSource(Protocol):
    """Batches of one epoch, in an order fixed by (seed, epoch).

    ``stateful`` sources (language-model streams) continue each batch row in the next batch,
    so a trainer carries the recurrent state from one batch to the next within an epoch.
    """
    stateful: bool

    def num_batches(self, epoch: int) -> int: ...

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]: ...
