"""The trainer's configuration: one dataclass, every field a CLI flag (0 means "off")."""
from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass, fields

from rnnkit.errors import fail


@dataclass
class TrainConfig:
    epochs: float = 1.0            # passes over the training data (fractions allowed)
    max_steps: int = 0             # batches to train on in all; > 0 overrides epochs
    bptt: int = 0                  # > 0: truncated BPTT, batches cut into chunks of this many steps
    clip_norm: float = 5.0         # clip gradients to this global L2 norm; 0 = off
    clip_value: float = 0.0        # clip each gradient entry to [-v, v]; 0 = off
    val_every: int = 0             # batches between validations; 0 = at the end of each epoch
    patience: int = 0              # stop after this many validations without improvement; 0 = off
    log_every: int = 10            # batches between metric lines
    checkpoint_every: int = 0      # batches between checkpoints; 0 = at the end only
    keep_checkpoints: int = 3      # the newest checkpoints kept; 0 = all
    seed: int = 0                  # dropout masks and data order
    progress: bool = True          # progress bar (tqdm) on stderr
    checkpoint_minutes: float = 10.0   # also a checkpoint after this many minutes; 0 = off
    max_bad_steps: int = 5         # non-finite losses or gradients in a row before stopping
    explode_factor: float = 10.0   # warn when the gradient norm > this x its running median
    vanish_ratio: float = 1e-6     # warn when the first step's ||dL/dh|| < this x the last's
    tensorboard: str = ""          # folder for TensorBoard event files (tensorboardX); "" = off

    def check(self) -> "TrainConfig":
        """Refuse settings that make no sense before any training starts."""
        positive = {"epochs"}
        at_least_one = {"max_bad_steps", "log_every"}
        off_at_zero = {"max_steps", "bptt", "clip_norm", "clip_value", "patience",
                       "checkpoint_every", "checkpoint_minutes", "explode_factor",
                       "vanish_ratio"}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "progress":
                if not isinstance(value, bool):
                    fail(f.name, "true or false", repr(value))
                continue
            if f.name == "tensorboard":
                self._check_tensorboard(value)
                continue
            kind = float if f.type in ("float", float) else int
            ok_type = isinstance(value, (int, float)) and not isinstance(value, bool) and \
                (kind is float or float(value).is_integer())
            if not ok_type or not math.isfinite(value):
                fail(f.name, f"a finite {'number' if kind is float else 'integer'}", repr(value))
            low = 1 if f.name in at_least_one else 0
            if f.name in positive and not value > 0:
                fail(f.name, "a number > 0", repr(value))
            if value < low:
                fail(f.name, f"a value >= {low}" + (" (0 = off)" if f.name in off_at_zero
                                                     else ""), repr(value))
        if 0 < self.explode_factor <= 1:
            fail("explode_factor", "a factor > 1 (0 = off)", repr(self.explode_factor))
        if self.vanish_ratio >= 1:
            fail("vanish_ratio", "a ratio in [0, 1) (0 = off)", repr(self.vanish_ratio))
        return self

    @staticmethod
    def _check_tensorboard(value) -> None:
        """A folder name, and the writer's package present before any work starts (the CLI
        names the extra to install)."""
        if not isinstance(value, str):
            fail("tensorboard", "a folder name (\"\" = off)", repr(value))
        if value and os.path.exists(value) and not os.path.isdir(value):
            fail("tensorboard", "a folder name (\"\" = off)", f"{value!r}, which is a file")
        if value and importlib.util.find_spec("tensorboardX") is None:
            raise ModuleNotFoundError("No module named 'tensorboardX' (for --tensorboard)",
                                      name="tensorboardX")
