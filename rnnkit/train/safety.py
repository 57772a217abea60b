"""What keeps a run from losing work: signals caught between steps, the leftovers of a killed
process cleared at the next start, and checks that only finite weights are saved.

- ``Interrupts``: within the block SIGINT and SIGTERM are recorded instead of raised, so the
  trainer can finish its step, save a checkpoint and stop (a second Ctrl-C still stops at
  once, as before).
- ``clear_leftovers``: temporary files of atomic writes (rnnkit.serialize) that a killed
  process left behind, and a torn last line of metrics.jsonl.
- ``non_finite``: the names of arrays holding NaN or infinity.
"""
from __future__ import annotations

import signal
import threading
from pathlib import Path

import numpy as np

from rnnkit.errors import RnnkitError


class TrainingInterrupted(RnnkitError):
    """Training stopped on SIGINT or SIGTERM, after saving a checkpoint where it could."""


class TrainingDiverged(RnnkitError):
    """The loss, gradients or weights became non-finite and training cannot go on."""


class Interrupts:
    """Records SIGINT / SIGTERM within the block (``.received``: the signal's name or None).
    Outside the main thread, where Python cannot install handlers, it records nothing."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self):
        self.received: str | None = None
        self._before: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt         # asked twice: stop now
        self.received = signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name)
                self._before[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._before.items():
            signal.signal(sig, handler)
        self._before.clear()


def clear_leftovers(run_dir: Path) -> list[Path]:
    """Remove what a process killed mid-write left in a run folder: atomic writes' temporary
    files (``.<name>.*.tmp``) and a torn last line of metrics.jsonl. -> what was removed
    (the metrics file, if its last line was cut)."""
    removed = []
    for folder in (run_dir, run_dir / "checkpoints"):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        data = metrics.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(metrics, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
            removed.append(metrics)
    return removed


def non_finite(arrays: dict) -> list[str]:
    """The names of the float arrays in ``arrays`` that hold NaN or infinity."""
    return [name for name, a in arrays.items()
            if isinstance(a, np.ndarray) and a.dtype.kind == "f" and not np.isfinite(a).all()]


__all__ = ["Interrupts", "TrainingDiverged", "TrainingInterrupted", "clear_leftovers",
           "non_finite"]
