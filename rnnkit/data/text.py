"""The bundled demo text, and language-model batches that carry state across chunks."""
from __future__ import annotations

from importlib import resources

import numpy as np

from rnnkit.errors import fail


def bundled_text() -> str:
    """The ~1 MB Shakespeare sample shipped with rnnkit (provenance in data/README.md)."""
    return resources.files("rnnkit.data").joinpath("shakespeare_1mb.txt").read_text("utf-8")


def lm_batches(ids: np.ndarray, batch_size: int, seq_len: int):
    """Yield (inputs, targets) of shape (N, T) for truncated BPTT over a long stream.

    The stream is cut into N contiguous rows, and consecutive batches continue each row where
    the previous batch stopped, so the final state of one batch is the right initial state
    of the next.
    """
    rows = (len(ids) - 1) // batch_size
    if rows < seq_len:
        fail("ids", f"at least batch_size * seq_len + 1 = {batch_size * seq_len + 1} tokens",
             f"{len(ids)}")
    x = ids[:rows * batch_size].reshape(batch_size, rows)
    y = ids[1:rows * batch_size + 1].reshape(batch_size, rows)
    for s in range(0, rows - seq_len + 1, seq_len):
        yield x[:, s:s + seq_len], y[:, s:s + seq_len]
