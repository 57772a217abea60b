"""The trainer's configuration: one dataclass, every field a CLI flag (0 means "off")."""
from __future__ import annotations

from dataclasses import dataclass


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
    keep_checkpoints: int = 3
    seed: int = 0                  # dropout masks and data order
    progress: bool = True          # progress bar (tqdm) on stderr
