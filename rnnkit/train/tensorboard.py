"""TensorBoard logging (``TrainConfig(tensorboard=DIR)``, ``--tensorboard DIR``), written by
tensorboardX (the optional extra "tensorboard"): view with ``tensorboard --logdir DIR``.

- scalars every ``log_every`` steps: train/loss (mean since the last write), train/lr,
  train/grad_norm (before clipping) and train/grad_norm_max (the largest since the last write);
- at each validation every number of the validation row (val/loss, val/accuracy, ...), and,
  where the gradient watch measured it (rnnkit.train.watch), the gradient-flow curve
  ||dL/dh_t|| against t as a figure and grad_flow/first_to_last as a scalar;
- histograms of every weight and its gradient (the last step's, after clipping) every
  ``HISTOGRAM_EVERY`` writes of scalars, and at each validation.
"""
from __future__ import annotations

import math

import numpy as np

from rnnkit.train.callbacks import Callback

HISTOGRAM_EVERY = 10        # histograms every this many scalar writes (they are large)


class TensorBoard(Callback):
    def __init__(self, logdir: str, log_every: int = 10):
        from tensorboardX import SummaryWriter      # the CLI names the extra if it is missing
        self.writer = SummaryWriter(logdir=str(logdir))
        self.log_every = max(1, log_every)
        self.losses, self.norm_max, self.writes = [], 0.0, 0

    def on_step_end(self, trainer, logs):
        self.losses.append(logs["loss"])
        self.norm_max = max(self.norm_max, logs["grad_norm"])
        if trainer.step % self.log_every:
            return
        step, w = trainer.step, self.writer
        finite = [v for v in self.losses if math.isfinite(v)]
        if finite:
            w.add_scalar("train/loss", float(np.mean(finite)), step)
        w.add_scalar("train/lr", float(logs["lr"]), step)
        if math.isfinite(logs["grad_norm"]):
            w.add_scalar("train/grad_norm", float(logs["grad_norm"]), step)
            w.add_scalar("train/grad_norm_max", float(self.norm_max), step)
        self.losses, self.norm_max = [], 0.0
        self.writes += 1
        if self.writes % HISTOGRAM_EVERY == 1:
            self._histograms(trainer)

    def on_validation_end(self, trainer, logs):
        step, w = logs.get("step", trainer.step), self.writer
        for name, value in logs.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and \
                    name.startswith(("val_", "best_")) and math.isfinite(value):
                w.add_scalar(name.replace("_", "/", 1), float(value), step)
        flow = logs.get("grad_flow")
        if flow:
            w.add_figure("grad_flow/dL_dh", _flow_figure(flow, step), step)
            ratio = logs.get("grad_flow_ratio", math.nan)
            if math.isfinite(ratio):
                w.add_scalar("grad_flow/first_to_last", ratio, step)
        self._histograms(trainer)
        w.flush()

    def _histograms(self, trainer) -> None:
        model = trainer.model
        for name, p in model.params.items():
            if np.isfinite(p).all():
                self.writer.add_histogram(f"weights/{name}", p, trainer.step)
            g = model.grads.get(name)
            if g is not None and np.isfinite(g).all():
                self.writer.add_histogram(f"grads/{name}", g, trainer.step)

    def on_train_end(self, trainer):
        self.writer.flush()
        self.writer.close()


def _flow_figure(flow: list, step: int):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    values = np.asarray(flow, dtype=np.float64)
    ax.semilogy(np.arange(1, len(values) + 1), np.where(values > 0, values, np.nan))
    ax.set_xlabel("time step t (first layer, in reading order)")
    ax.set_ylabel("mean ||dL/dh_t||")
    ax.set_title(f"gradient flow through time at step {step}")
    ax.grid(alpha=0.3, which="both")
    return fig
