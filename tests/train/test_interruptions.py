"""Real interruptions of `rnnkit text train` in its own process: SIGKILL at random points
(some during a checkpoint write), and SIGINT; `resume` then ends bit-identical to an
uninterrupted run."""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnnkit.train.checkpoint import latest_checkpoint, load_checkpoint
from trainers import TEXT

ROOT = Path(__file__).resolve().parents[2]
STEPS = 40


def command(tmp_path, run: Path, verb="train"):
    text = tmp_path / "text.txt"
    if not text.exists():
        text.write_text(TEXT, "utf-8")
    if verb == "resume":
        return [sys.executable, "-m", "rnnkit", "text", "resume", str(run)]
    return [sys.executable, "-m", "rnnkit", "text", "train", "--run-dir", str(run),
            "--text", str(text), "--hidden-size", "32", "--embed-dim", "8", "--batch-size",
            "8", "--seq-len", "32", "--max-steps", str(STEPS), "--checkpoint-every", "1",
            "--val-every", "10", "--schedule", "cosine", "--dropout", "0.1", "--num-layers",
            "2", "--sample-length", "5", "--no-progress"]


def env():
    return dict(os.environ, PYTHONPATH=str(ROOT))


def final(run: Path) -> dict:
    ck = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    assert ck["trainer"]["step"] == STEPS
    return {**ck["model_params"], **{f"optim/{k}": v for k, v in ck["optim_state"]["slots"].items()}}


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("whole")
    subprocess.run(command(tmp, tmp / "run"), check=True, env=env(), capture_output=True)
    return final(tmp / "run")


def wait_for_checkpoint(run: Path, proc, timeout=120.0):
    start = time.monotonic()
    while not (run / "checkpoints" / "latest.json").exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() - start < timeout
        time.sleep(0.01)


def assert_same(got: dict, want: dict):
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


@pytest.mark.parametrize("trial", range(3))
def test_sigkill_anywhere_then_resume_is_bit_identical(tmp_path, whole, trial):
    run = tmp_path / "run"
    proc = subprocess.Popen(command(tmp_path, run), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    wait_for_checkpoint(run, proc)          # (then a checkpoint is written every step)
    time.sleep(random.Random(trial).uniform(0.0, 0.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.returncode == 0:                # it finished first: nothing to resume
        assert_same(final(run), whole)
        return
    done = subprocess.run(command(tmp_path, run, "resume"), env=env(), capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert not list(run.rglob("*.tmp"))
    assert_same(final(run), whole)


def test_sigint_saves_says_how_to_resume_and_resume_is_bit_identical(tmp_path, whole):
    run = tmp_path / "run"
    proc = subprocess.Popen(command(tmp_path, run), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    wait_for_checkpoint(run, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err       # (sent at the first of 40 checkpoints)
    assert err.strip().splitlines()[-1].startswith(
        "rnnkit text train: training interrupted by SIGINT after step ")
    assert "Traceback" not in err and f"`resume {run}` continues it" in err
    done = subprocess.run(command(tmp_path, run, "resume"), env=env(), capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert_same(final(run), whole)
