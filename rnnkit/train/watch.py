"""Watching the gradient during training: the two failures the notes warn about (note 004).

- Exploding gradients: the global gradient norm before clipping (the trainer's ``grad_norm``)
  jumps above ``explode_factor`` times its running median over the last ``WINDOW`` steps.
  Checked at every step from numbers the trainer already has, so it costs nothing.
- Vanishing gradients: at each validation, one batch (at most ``ROWS`` rows) is run forward
  and backward on the reference scan, which records dL/dh_t for every step t
  (``rnnkit.layers.scan.record_hidden_gradients``); when the earliest step's norm falls below
  ``vanish_ratio`` times the last step's, the first recurrent layer does not learn from the
  start of its sequences. This costs one reference-engine forward and backward of those rows
  per validation (docs/diagnostics.md gives the figure); the weights, the gradients, the
  trainer's random generator and the data order are left as they were.

Each warns once, as one log line. The validation rows of metrics.jsonl get ``grad_flow``
(the mean ||dL/dh_t|| over the rows, in the order the first layer reads the steps) and
``grad_flow_ratio``.
"""
from __future__ import annotations

import math
from collections import deque
from contextlib import nullcontext

import numpy as np

from rnnkit.fast import setting
from rnnkit.layers import scan
from rnnkit.train.callbacks import Callback

WINDOW = 50          # steps in the running median
WARMUP = 10          # steps before the first comparison (the median needs a few)
ROWS = 8             # batch rows measured for dL/dh_t (the cost grows with them)


def hidden_gradients(model, loss_fn, inputs, targets, lengths=None) -> list[dict]:
    """dL/dh_t for every step of every recurrent scan of ``model`` on one batch, as
    ``scan.record_hidden_gradients`` records them (the backwards' order: the top layer
    first). Inference mode (no dropout, no random numbers); the model's gradients are zero
    afterwards, as before a training step."""
    model.zero_grad()
    before = setting.current().scan_mkl     # the library later products follow, kept as it was
    try:
        with _one_blas_thread(), setting.using(scan_mkl=before), scan.use("reference"), \
                scan.record_hidden_gradients() as found:
            outputs, _, cache = model.forward(inputs, None, lengths, training=False)
            _, doutputs = loss_fn(outputs, targets, lengths)
            model.backward(doutputs, cache)
    finally:
        model.zero_grad()
    return found


def _one_blas_thread():
    """BLAS on the calling thread alone within the block (threadpoolctl, where installed):
    the reference scan's per-step products are small, and a busy machine's cores make a
    BLAS thread pool wait on each other (50 times slower on this 2-core machine under load,
    docs/diagnostics.md)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def first_layer(found: list[dict]) -> dict | None:
    """The record of the scan nearest the input (forward direction where there are two)."""
    for entry in reversed(found):           # backward runs the bottom layer last
        if entry["prefix"] == "l0.":
            return entry
    return found[-1] if found else None


def step_norms(entry: dict) -> np.ndarray:
    """Mean over the active rows of ||dL/dh_t||, in the order the scan read the steps."""
    dh, n_active = entry["dh"], entry["n_active"]
    norms = np.linalg.norm(dh.astype(np.float64), axis=2)                  # (T, N)
    mean = np.array([norms[t, :n].mean() if n else 0.0 for t, n in enumerate(n_active)])
    return mean[::-1] if entry["reverse"] else mean


def first_to_last(entry: dict) -> float:
    """Median over rows of ||dL/dh at the first step read|| / ||dL/dh at the last step read||
    (each row's own last step where rows have lengths); nan where no row has a gradient."""
    dh, n_active = entry["dh"], entry["n_active"]
    norms = np.linalg.norm(dh.astype(np.float64), axis=2)                  # (T, N)
    lengths = (n_active[:, None] > np.arange(dh.shape[1])[None, :]).sum(axis=0)
    rows = np.arange(dh.shape[1])
    first = np.where(entry["reverse"], lengths - 1, 0)
    last = np.where(entry["reverse"], 0, lengths - 1)
    top, bottom = norms[first, rows], norms[last, rows]
    ok = (bottom > 0) & (lengths > 0)
    return float(np.median(top[ok] / bottom[ok])) if ok.any() else math.nan


def _rows(batch, n: int):
    """The first n rows of a batch whose parts are arrays (else the whole batch)."""
    parts = (batch.inputs, batch.targets, batch.lengths)
    if all(p is None or isinstance(p, np.ndarray) for p in parts) and \
            isinstance(batch.inputs, np.ndarray):
        return tuple(None if p is None else p[:n] for p in parts)
    return parts


class GradientWatch(Callback):
    """The trainer's warnings about exploding and vanishing gradients (see the module)."""

    def __init__(self, explode_factor: float, vanish_ratio: float, log=print):
        self.explode_factor, self.vanish_ratio, self.log = explode_factor, vanish_ratio, log
        self.recent: deque = deque(maxlen=WINDOW)
        self.exploded = self.vanished = False

    def on_step_end(self, trainer, logs):
        norm = logs.get("grad_norm", math.nan)
        if not self.explode_factor or not math.isfinite(norm):
            return
        if len(self.recent) >= WARMUP and not self.exploded:
            median = float(np.median(self.recent))
            if median > 0 and norm > self.explode_factor * median:
                self.exploded = True
                self.log(f"step {trainer.step}: exploding gradients: norm {norm:.4g} before "
                         f"clipping is {norm / median:.1f} x its running median {median:.4g} "
                         f"(--explode-factor {self.explode_factor:g}); clip (--clip-norm) or "
                         f"lower the learning rate")
        self.recent.append(norm)

    def on_validation_end(self, trainer, logs):
        if not self.vanish_ratio:
            return
        data = trainer.val_data if trainer.val_data is not None else trainer.train_data
        batch = next(iter(data.batches(0)), None)
        if batch is None:
            return
        found = hidden_gradients(trainer.model, trainer.loss_fn, *_rows(batch, ROWS))
        entry = first_layer(found)
        if entry is None:                   # no recurrent scan ran on the reference engine
            return
        ratio = first_to_last(entry)
        logs["grad_flow"] = [float(v) for v in step_norms(entry)]
        logs["grad_flow_ratio"] = ratio
        if not self.vanished and ratio < self.vanish_ratio:     # (nan: not measurable)
            self.vanished = True
            self.log(f"step {trainer.step}: vanishing gradients: ||dL/dh|| at the first step "
                     f"of the first layer is {ratio:.3g} x the last step's (below "
                     f"--vanish-ratio {self.vanish_ratio:g}) over {entry['dh'].shape[0]} steps; "
                     f"the start of a sequence barely trains it (an LSTM or GRU, or shorter "
                     f"sequences, help)")
