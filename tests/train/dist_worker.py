"""One rank of the data-parallel tests (tests/train/test_distributed.py), run as a process:

    python tests/train/dist_worker.py OUT.npz RUN_DIR --backend torch --init file://F
        --rank R --world-size W [--steps N] [--dtype float64] [--data stream]
        [--kill-at K] [--resume]

trains an LSTM language model on variable-length sequences (batches of 7 rows, the last
of each epoch 1 row) and saves the final weights to OUT.npz. --kill-at K: SIGKILL this
process after step K (a lost rank); --resume: continue from RUN_DIR's latest checkpoint.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys

import numpy as np

from rnnkit.data import SequenceDataset, TextStream
from rnnkit.losses import softmax_cross_entropy
from rnnkit.models import LanguageModel
from rnnkit.optim import make_optimizer
from rnnkit.train import Callback, Trainer, TrainConfig
from rnnkit.train import distributed

V = 11


def sequences(n: int = 36, seed: int = 5):
    """n token sequences of 3 to 19 steps: inputs and next-token targets."""
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, V, rng.integers(4, 21)) for _ in range(n)]
    return [s[:-1] for s in seqs], [s[1:] for s in seqs]


def make_trainer(run_dir=None, *, steps: int = 8, dtype: str = "float32", data: str = "seqs",
                 comm=None, callbacks=()):
    """data "seqs": variable-length sequences; "stream": a token stream of 5 rows whose
    state is carried from batch to batch (truncated BPTT)."""
    if data == "stream":
        ids = np.random.default_rng(5).integers(0, V, 400)
        data = TextStream(ids, 5, 6)
    else:
        inputs, targets = sequences()
        data = SequenceDataset(inputs, targets, 7, seed=3, bucket=False, per_step_targets=True)
    model = LanguageModel(V, 6, 9, num_layers=2, cell="lstm", dtype=np.dtype(dtype), seed=1)
    opt = make_optimizer("sgd", model.params, lr=0.5, momentum=0.9)
    config = TrainConfig(max_steps=steps, clip_norm=1.0, checkpoint_every=2,
                         checkpoint_minutes=0, keep_checkpoints=10, progress=False, seed=0)
    return Trainer(model, softmax_cross_entropy, opt, data, config=config, run_dir=run_dir,
                   log=lambda *a: None, comm=comm, callbacks=callbacks)


class KillAt(Callback):
    """SIGKILL this process once `step` batches are done: a rank lost mid-run."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, trainer, logs):
        if trainer.step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("run_dir")
    p.add_argument("--backend", default="torch", choices=("torch", "mpi", "local"))
    p.add_argument("--init")
    p.add_argument("--rank", type=int, default=-1)
    p.add_argument("--world-size", type=int, default=-1)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--data", default="seqs", choices=("seqs", "stream"))
    p.add_argument("--kill-at", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)
    if args.backend == "torch":
        comm = distributed.TorchCommunicator(args.init, args.rank, args.world_size)
    else:
        comm = distributed.connect(args.backend)
    distributed.use(comm)
    trainer = make_trainer(args.run_dir, steps=args.steps, dtype=args.dtype, data=args.data,
                           callbacks=[KillAt(args.kill_at)] if args.kill_at else ())
    if args.resume:
        trainer.restore()
    trainer.fit()
    np.savez(args.out, rank=comm.rank, world_size=comm.world_size, step=trainer.step,
             **trainer.model.params)
    if hasattr(comm, "close"):
        comm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
