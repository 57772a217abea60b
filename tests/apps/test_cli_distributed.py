"""`rnnkit <app> train` unchanged under torchrun and mpirun: the 2-rank run's validation
losses equal one process's (to float32 rounding), rank 0 alone writes the run's files.

torchrun --standalone finds a free port itself; the mpirun test needs Open MPI's `mpirun`
and mpi4py and is skipped where either is missing.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rnnkit.cli import main
from rnnkit.train import read_metrics

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 300


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **extra)
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "RNNKIT_DISTRIBUTED",
                 "TORCHELASTIC_RESTART_COUNT"):
        env.pop(name, None)
    return env


def _val_losses(run: Path) -> list[float]:
    return [row["val_loss"] for row in read_metrics(run / "metrics.jsonl")
            if row.get("kind") == "validation"]


def _same_as_one_process(tmp_path, args, launcher, env):
    proc = subprocess.run([*launcher, "-m", "rnnkit", *args, "--run-dir",
                           str(tmp_path / "two")], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert main([*args, "--run-dir", str(tmp_path / "one")]) == 0
    two, one = _val_losses(tmp_path / "two"), _val_losses(tmp_path / "one")
    assert len(two) == len(one) == 2
    assert two == pytest.approx(one, rel=1e-6, abs=0)
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == \
        sorted(p.name for p in (tmp_path / "one" / "checkpoints").iterdir())
    return proc.stdout


def test_text_train_under_torchrun_equals_one_process(tmp_path):
    args = ["text", "train", "--max-steps", "6", "--hidden-size", "16", "--embed-dim", "8",
            "--batch-size", "5", "--seq-len", "16", "--val-every", "3", "--no-progress",
            "--sample-length", "5", "--dropout", "0"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2"]
    out = _same_as_one_process(tmp_path, args, torchrun, _env())
    assert out.count("validation loss before training") == 1    # rank 0 alone logs


MPI = shutil.which("mpirun") is not None
try:
    import mpi4py  # noqa: F401
except ImportError:
    MPI = False


@pytest.mark.skipif(not MPI, reason="needs mpirun (Open MPI) and mpi4py")
def test_sentiment_train_under_mpirun_equals_one_process(tmp_path):
    from test_app_sentiment import write_csv
    data = write_csv(tmp_path / "reviews.csv", n=90)
    args = ["sentiment", "train", "--data", str(data), "--hidden-size", "8", "--embed-dim",
            "8", "--batch-size", "9", "--max-steps", "6", "--val-every", "3", "--no-progress",
            "--embed-dropout", "0", "--dropout", "0"]
    env = _env(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    _same_as_one_process(tmp_path, args, ["mpirun", "-n", "2", sys.executable], env)
