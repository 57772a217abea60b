"""Hooks into training: progress bar, metrics as JSON lines, loss-curve PNG, your own.

A callback overrides any of ``on_train_begin``, ``on_step_end``, ``on_validation_end`` and
``on_train_end``; each gets the trainer and, for steps and validations, a dict of numbers.
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

from rnnkit.errors import RnnkitError
from rnnkit.serialize import atomic_write_bytes


class Callback:
    def on_train_begin(self, trainer) -> None: ...

    def on_step_end(self, trainer, logs: dict) -> None: ...

    def on_validation_end(self, trainer, logs: dict) -> None: ...

    def on_train_end(self, trainer) -> None: ...


class ProgressBar(Callback):
    """tqdm bar over batches: loss, gradient norm, items (tokens or sequences) per second, ETA.

    The rate and the ETA are measured from batch ``settle`` on: the first batches of a run
    include one-off work (compiling kernels, laying out weights, warming caches) that would
    otherwise make the ETA read hours for a run of minutes."""

    settle = 3

    def on_train_begin(self, trainer):
        from tqdm.auto import tqdm
        # smoothing=0: tqdm's rate is (n - initial) / time since start_t, both reset below
        self.bar = tqdm(total=trainer.total_steps, initial=trainer.step, unit="batch",
                        dynamic_ncols=True, disable=False, smoothing=0)
        self.seen, self.items, self.start = 0, 0, time.perf_counter()

    def on_step_end(self, trainer, logs):
        self.seen += 1
        self.bar.update(1)
        if self.seen == self.settle:            # measure from here on
            self.bar.initial, self.bar.start_t = self.bar.n, self.bar._time()
            self.items, self.start = 0, time.perf_counter()
        elif self.seen > self.settle:
            self.items += logs["items"]
        postfix = {"loss": f"{logs['loss']:.3f}", "gnorm": f"{logs['grad_norm']:.2f}"}
        if self.seen > self.settle:
            rate = self.items / max(time.perf_counter() - self.start, 1e-9)
            postfix["items_per_s"] = f"{rate:,.0f}"
        self.bar.set_postfix(postfix, refresh=False)

    def on_validation_end(self, trainer, logs):
        extra = "".join(f", {k[4:].replace('_', ' ')} {v:.4f}" for k, v in logs.items()
                        if k.startswith("val_") and k != "val_loss" and isinstance(v, float))
        self.bar.write(f"step {logs['step']}: validation loss {logs['val_loss']:.4f}{extra}")

    def on_train_end(self, trainer):
        self.bar.close()


class MetricsLog(Callback):
    """Appends one JSON object per line: training rows every ``log_every`` batches
    (mean loss since the last row, the last step's gradient norm before clipping and the
    largest since the last row, lr, items/s) and validation rows."""

    def __init__(self, path: str | Path, log_every: int = 10):
        self.path, self.log_every = Path(path), max(1, log_every)
        self.losses, self.items, self.start = [], 0, time.perf_counter()
        self.norm_max = 0.0                 # (a spike between rows stays visible)

    def _append(self, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def on_step_end(self, trainer, logs):
        self.losses.append(logs["loss"])
        self.items += logs["items"]
        self.norm_max = max(self.norm_max, logs["grad_norm"])     # (max ignores a NaN norm)
        if trainer.step % self.log_every == 0:
            elapsed = max(time.perf_counter() - self.start, 1e-9)
            self._append({"kind": "train", "step": trainer.step, "epoch": trainer.epoch,
                          "loss": sum(self.losses) / len(self.losses),
                          "grad_norm": logs["grad_norm"], "grad_norm_max": self.norm_max,
                          "lr": logs["lr"], "items_per_s": self.items / elapsed})
            self.losses, self.items, self.start = [], 0, time.perf_counter()
            self.norm_max = 0.0

    def on_validation_end(self, trainer, logs):
        self._append({"kind": "validation", **logs})


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    lines = [line for line in path.read_text("utf-8").splitlines() if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:          # only the last line may be torn (a killed write)
                raise RnnkitError(f"{path}: expected one JSON object a line, got {line[:60]!r} "
                                  f"on line {i + 1}") from None
    return rows


class LossCurve(Callback):
    """At the end, plots training and validation loss against step from the metrics file."""

    def __init__(self, metrics_path: str | Path, png_path: str | Path):
        self.metrics_path, self.png_path = Path(metrics_path), Path(png_path)

    def on_train_end(self, trainer):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        rows = read_metrics(self.metrics_path)
        train = [(r["step"], r["loss"]) for r in rows if r["kind"] == "train"]
        val = [(r["step"], r["val_loss"]) for r in rows if r["kind"] == "validation"]
        fig, ax = plt.subplots(figsize=(7, 4))
        if train:
            ax.plot(*zip(*train), label="training (mean per logged window)")
        if val:
            ax.plot(*zip(*val), "o-", label="validation")
        ax.set_xlabel("step (batches)")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        if train or val:
            ax.legend()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        atomic_write_bytes(self.png_path, buf.getvalue())
